//! `/stats/summary`, `/metrics/resource`, `/metrics/probes` and `/metrics`: the kubelet's stats
//! and metrics endpoints (`pkg/kubelet/server/stats/handler.go`, and the metrics routes of
//! `pkg/kubelet/server/server.go` `InstallDefaultHandlers`). The figures come from the stats
//! provider (`crate::stats`), the agent's own metrics (`crate::metrics`) and the prober's
//! (`crate::metrics::probes`, a registry of its own as in the kubelet).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ServerState;
use crate::stats::types::Summary;

/// What Prometheus' text format 0.0.4 is served as (the kubelet's default without negotiation).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/stats/summary", get(summary))
        .route("/metrics", get(metrics))
        .route("/metrics/resource", get(resource))
        .route("/metrics/probes", get(probes))
        .route("/api/v1/nodes/{name}/proxy/{*path}", get(node_proxy))
}

/// `nodes/{name}/proxy/{path}`: the API server's proxy to a node's kubelet, which is how
/// `kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary` reaches these endpoints. The
/// facade *is* the kubelet, so the proxy hands the request to the handler itself, for the
/// read-only kubelet paths.
async fn node_proxy(
    State(s): State<ServerState>,
    axum::extract::Path((name, path)): axum::extract::Path<(String, String)>,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if name != s.node.name {
        return super::status::ApiError::not_found("nodes", &name).into_response();
    }
    match path.trim_end_matches('/') {
        "stats/summary" => summary(State(s), query).await,
        "metrics" => metrics(State(s)).await,
        "metrics/resource" => resource(State(s)).await,
        "metrics/probes" => probes(State(s)).await,
        "healthz" => "ok".into_response(),
        other => super::status::ApiError::not_found("nodes/proxy", other).into_response(),
    }
}

/// `?only_cpu_and_memory=true`, as `handleSummary` parses it (`strconv.ParseBool`).
#[derive(serde::Deserialize, Default)]
struct SummaryQuery {
    only_cpu_and_memory: Option<String>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Build the summary off the async workers (it reads files and walks log directories).
async fn build_summary(s: &ServerState, only_cpu_and_memory: bool) -> Option<Summary> {
    let provider = s.stats.clone();
    let pods = s.statuses.list();
    match tokio::task::spawn_blocking(move || provider.summary(&pods, only_cpu_and_memory)).await {
        Ok(summary) => Some(summary),
        Err(e) => {
            tracing::error!(error = %e, "stats summary task failed");
            None
        }
    }
}

async fn summary(
    State(s): State<ServerState>,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = query.unwrap_or_default();
    let only = match q.only_cpu_and_memory.as_deref() {
        None => false,
        Some(v) => {
            match parse_bool(v) {
                Some(b) => b,
                None => {
                    return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Internal Error: parse form failed: only_cpu_and_memory={v:?} is not a bool"),
                )
                    .into_response();
                }
            }
        }
    };
    match build_summary(&s, only).await {
        Some(summary) => axum::Json(summary).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error: failed to get node info",
        )
            .into_response(),
    }
}

fn prometheus(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    r
}

async fn resource(State(s): State<ServerState>) -> Response {
    let summary = build_summary(&s, true).await;
    prometheus(crate::metrics::resource::render(summary.as_ref()))
}

async fn probes(State(s): State<ServerState>) -> Response {
    let pods = s.statuses.list();
    prometheus(crate::metrics::probes::probes().render(&pods, s.stats.proc_root()))
}

async fn metrics(State(s): State<ServerState>) -> Response {
    let pods = s.statuses.list();
    prometheus(crate::metrics::kubelet().render(&pods, s.stats.proc_root()))
}

/// The `method` label: the request's method if it is one of HTTP's own (RFC 9110 and PATCH),
/// else `other`. hyper accepts any token as a method, and each new label value is a new
/// series kept for the agent's life: 3000 made-up methods grew `/metrics` to 5.9 MB. The
/// kubelet labels with `req.Method` as is (Go's server accepts any token too); the API server
/// folds unknown verbs into `other`, as here.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: count and time every request as `kubelet_http_requests_total` and
/// `kubelet_http_requests_duration_seconds` (`pkg/kubelet/server/server.go`'s filter). Every
/// label comes from a closed set, so no client can grow the series: `path` is the kubelet's
/// root-path bucket (`metrics::http_path_bucket`, `other` for the rest), `method` is
/// [`method_label`], `long_running` a bool, `server_type` fixed.
pub(super) async fn track(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = crate::metrics::http_path_bucket(req.uri().path());
    let long_running = matches!(path, "exec" | "attach" | "portForward")
        || (path == "containerLogs"
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "follow=true")));
    let method = method_label(req.method());
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    crate::metrics::kubelet().http_request(method, path, long_running, start.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_a_closed_set() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["M0X", "get", "PROPFIND"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}
