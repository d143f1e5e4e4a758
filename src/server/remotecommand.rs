//! The kubelet's streaming endpoints: `/exec`, `/attach`, `/run` and `/portForward`, plus the
//! API server's pod subresources that kubectl calls (`/api/v1/namespaces/{ns}/pods/{name}/exec`,
//! `/attach`, `/portforward`).
//!
//! Mirrors `pkg/kubelet/server/server.go` (`getExec`, `getAttach`, `getRun`, `getPortForward`,
//! `proxyStream`) and, for the API paths, the API server's `pkg/registry/core/pod/rest`
//! (`ExecREST`, `AttachREST`, `PortForwardREST`). The kubelet half only *validates and
//! delegates*:
//!
//! 1. parse the options (`remotecommand.NewOptions`: `stdin=1` etc.; a tty drops stderr; at
//!    least one stream), validate the names in the path;
//! 2. find the pod and its running container (the kubelet's `findContainer`);
//! 3. ask the runtime's streaming server for a URL (CRI `GetExec`/`GetAttach`/`GetPortForward`:
//!    [`StreamingServer`]);
//! 4. proxy the client's upgraded connection to that URL ([`super::upgrade_proxy`]).
//!
//! The API paths do what the API server does in front of that — find the pod (`pods "x" not
//! found`), default or check the container (`container x is not valid for pod y`) — and then
//! call the same kubelet half in-process: there is no separate API server to proxy through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use k8s_openapi::api::core::v1::Pod;

use super::ServerState;
use super::status::{self, Refusal};
use super::streaming::{AttachRequest, ExecRequest, PortForwardRequest, StreamingError};
use super::upgrade_proxy::{is_upgrade, proxy_stream};
use crate::runtime::exec::exec_sync;

/// How long `/run` lets a command run. The kubelet passes no timeout (the CRI call then has
/// none); a bound keeps a hung command from holding a request and a process forever.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The prefix of container IDs in pod status (`<runtime>://<id>`).
const CONTAINER_ID_PREFIX: &str = "minikubelet://";

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/exec/{ns}/{pod}/{container}", any(kubelet_exec))
        .route("/exec/{ns}/{pod}/{uid}/{container}", any(kubelet_exec_uid))
        .route("/attach/{ns}/{pod}/{container}", any(kubelet_attach))
        .route(
            "/attach/{ns}/{pod}/{uid}/{container}",
            any(kubelet_attach_uid),
        )
        .route("/run/{ns}/{pod}/{container}", post(kubelet_run))
        .route("/run/{ns}/{pod}/{uid}/{container}", post(kubelet_run_uid))
        .route("/portForward/{ns}/{pod}", any(kubelet_port_forward))
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            any(kubelet_port_forward_uid),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/exec", any(api_exec))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            any(api_attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            any(api_port_forward),
        )
}

/// Query pairs, percent-decoded (`+` is a space), in order; repeated keys stay repeated.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn all(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// How booleans are spelled: the kubelet's own paths take only `1` (what the API server writes
/// when it calls the kubelet); the API paths take what `strconv.ParseBool` accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Kubelet,
    Api,
}

fn flag(q: &[(String, String)], key: &str, style: Style) -> bool {
    matches!(
        (first(q, key), style),
        (Some("1"), _) | (Some("t" | "T" | "true" | "TRUE" | "True"), Style::Api)
    )
}

/// The stream options of a remote command (`remotecommand.NewOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr.
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

fn options(q: &[(String, String)], style: Style) -> Result<Options, Refusal> {
    let tty = flag(q, "tty", style);
    let mut o = Options {
        stdin: flag(q, "stdin", style),
        stdout: flag(q, "stdout", style),
        stderr: flag(q, "stderr", style),
        tty,
    };
    if o.tty && o.stderr {
        // The kubelet's rule: a terminal has a single output, stderr is dropped, not refused.
        tracing::debug!("exec with tty and stderr: bypassing stderr");
        o.stderr = false;
    }
    if !o.stdin && !o.stdout && !o.stderr {
        return Err(
            status::bad_request("you must specify at least 1 of stdin, stdout, stderr").into(),
        );
    }
    Ok(o)
}

fn valid_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_names(names: &[(&str, &str)]) -> Result<(), Refusal> {
    super::names::check_names(names).map_err(Refusal::from)
}

/// The kubelet's `GetPodByName` (+ the UID check of the `{uid}` paths).
fn find_pod(s: &ServerState, ns: &str, name: &str, uid: Option<&str>) -> Option<Arc<Pod>> {
    s.statuses.list().into_iter().find(|p| {
        p.metadata.name.as_deref() == Some(name)
            && p.metadata.namespace.as_deref().unwrap_or("default") == ns
            && uid.is_none_or(|u| p.metadata.uid.as_deref() == Some(u))
    })
}

/// The kubelet's `findContainer`: the runtime ID of the named container, if it is running.
fn running_container_id(pod: &Pod, container: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .and_then(|c| c.container_id.as_deref())
        .map(|id| {
            id.strip_prefix(CONTAINER_ID_PREFIX)
                .unwrap_or(id)
                .to_string()
        })
}

fn streaming_error(e: StreamingError) -> Response {
    match e {
        StreamingError::InvalidArgument(m) => status::bad_request(m),
        StreamingError::Cache(c) => {
            let mut r = status::error_response(StatusCode::TOO_MANY_REQUESTS, c.to_string());
            // The kubelet's hint: only a flood fills the cache; wait a token's lifetime.
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("60"),
            );
            r
        }
        other => status::internal(other.to_string()),
    }
}

/// Which remote command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

/// The kubelet half of exec/attach: find the running container, get the streaming URL, proxy.
#[allow(clippy::too_many_arguments)]
async fn remote_command(
    s: ServerState,
    kind: Kind,
    ns: String,
    pod_name: String,
    uid: Option<String>,
    container: String,
    query: Vec<(String, String)>,
    style: Style,
    req: Request,
) -> Response {
    let opts = match options(&query, style) {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_names(&[
        ("namespace", &ns),
        ("pod", &pod_name),
        ("container", &container),
    ]) {
        return r.into_response();
    }
    if uid.as_deref().is_some_and(|u| !valid_uid(u)) {
        return status::bad_request("invalid pod uid");
    }
    let Some(pod) = find_pod(&s, &ns, &pod_name, uid.as_deref()) else {
        return status::not_found("pod does not exist");
    };
    let Some(container_id) = running_container_id(&pod, &container) else {
        return status::not_found(format!(
            "container not found ({container:?}): it is not running in pod {pod_name:?}"
        ));
    };
    let cmd = all(&query, "command");
    if kind == Kind::Exec && cmd.is_empty() {
        return status::bad_request("you must specify a command");
    }
    stream_to(req, || match kind {
        Kind::Exec => {
            tracing::info!(pod = %pod_name, container = %container, command = ?cmd, tty = opts.tty, "exec");
            s.streaming.get_exec(ExecRequest {
                container_id,
                cmd,
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
        }
        Kind::Attach => {
            tracing::info!(pod = %pod_name, container = %container, "attach");
            s.streaming.get_attach(AttachRequest {
                container_id,
                stdin: opts.stdin,
                tty: opts.tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
        }
    })
    .await
}

/// Asks the streaming server for a URL (`get_url`, CRI GetExec and friends) and proxies the
/// client's upgrade to it. A request that is not an upgrade gets 400 before a token is
/// taken: the kubelet asks the runtime first and refuses later, so plain GETs fill the
/// runtime's 1000-token cache and lock every client out of exec for the tokens' minute.
async fn stream_to(
    req: Request,
    get_url: impl FnOnce() -> Result<String, StreamingError>,
) -> Response {
    if !is_upgrade(&req) {
        return status::bad_request("Upgrade request required");
    }
    match get_url() {
        Ok(url) => proxy_stream(req, &url).await,
        Err(e) => streaming_error(e),
    }
}

/// The kubelet's `/exec` and `/attach` paths, with and without the pod UID: one handler each,
/// the kind of stream fixed by the route.
async fn kubelet_remote_command(
    kind: Kind,
    s: ServerState,
    (ns, pod, uid, container): (String, String, Option<String>, String),
    q: Option<String>,
    req: Request,
) -> Response {
    let q = parse_query(q.as_deref());
    remote_command(s, kind, ns, pod, uid, container, q, Style::Kubelet, req).await
}

async fn kubelet_exec(
    State(s): State<ServerState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    kubelet_remote_command(Kind::Exec, s, (ns, pod, None, container), q, req).await
}

async fn kubelet_exec_uid(
    State(s): State<ServerState>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    kubelet_remote_command(Kind::Exec, s, (ns, pod, Some(uid), container), q, req).await
}

async fn kubelet_attach(
    State(s): State<ServerState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    kubelet_remote_command(Kind::Attach, s, (ns, pod, None, container), q, req).await
}

async fn kubelet_attach_uid(
    State(s): State<ServerState>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    kubelet_remote_command(Kind::Attach, s, (ns, pod, Some(uid), container), q, req).await
}

/// `/run`: the kubelet's `RunInContainer` (CRI ExecSync): run `cmd` (split on spaces) to
/// completion, answer its output.
async fn run(
    s: ServerState,
    ns: String,
    pod_name: String,
    uid: Option<String>,
    container: String,
    query: Vec<(String, String)>,
) -> Response {
    if let Err(r) = check_names(&[
        ("namespace", &ns),
        ("pod", &pod_name),
        ("container", &container),
    ]) {
        return r.into_response();
    }
    let Some(pod) = find_pod(&s, &ns, &pod_name, uid.as_deref()) else {
        return status::not_found("pod does not exist");
    };
    let cmd: Vec<String> = first(&query, "cmd")
        .unwrap_or("")
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if cmd.is_empty() {
        return status::bad_request("you must specify a command (cmd)");
    }
    let Some(id) = running_container_id(&pod, &container) else {
        return status::not_found(format!(
            "container not found ({container:?}): it is not running in pod {pod_name:?}"
        ));
    };
    let _slot = match s.streaming.run_slot() {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let ctx = match s.streaming.runtime().exec_context(&id) {
        Ok(c) => c,
        Err(e) => return status::internal(e.to_string()),
    };
    tracing::info!(pod = %pod_name, container = %container, command = ?cmd, "run in container");
    match exec_sync(&ctx, &cmd, RUN_TIMEOUT).await {
        Ok(out) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from(out.output),
        )
            .into_response(),
        Err(e) => status::internal(e.to_string()),
    }
}

async fn kubelet_run(
    State(s): State<ServerState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    run(s, ns, pod, None, container, parse_query(q.as_deref())).await
}

async fn kubelet_run_uid(
    State(s): State<ServerState>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    run(s, ns, pod, Some(uid), container, parse_query(q.as_deref())).await
}

/// Ports named in the query (`port=80,443` or `port` repeated), for WebSocket clients.
fn ports(q: &[(String, String)]) -> Result<Vec<u16>, Refusal> {
    let mut out = Vec::new();
    for v in all(q, "port") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n),
                _ => return Err(status::bad_request(format!("invalid port {p:?}")).into()),
            }
        }
    }
    Ok(out)
}

/// The kubelet half of port-forward.
async fn port_forward(
    s: ServerState,
    ns: String,
    pod_name: String,
    uid: Option<String>,
    query: Vec<(String, String)>,
    req: Request,
) -> Response {
    if let Err(r) = check_names(&[("namespace", &ns), ("pod", &pod_name)]) {
        return r.into_response();
    }
    let ports = match ports(&query) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let Some(pod) = find_pod(&s, &ns, &pod_name, uid.as_deref()) else {
        return status::not_found("pod does not exist");
    };
    stream_to(req, || {
        tracing::info!(pod = %pod_name, ?ports, "port-forward (dialed on 127.0.0.1 in the pod's network namespace, or the node's for a pod on the node's network)");
        s.streaming.get_port_forward(PortForwardRequest {
            pod_sandbox_id: pod.metadata.uid.clone().unwrap_or_default(),
            pod_name: pod_name.clone(),
            port: ports,
        })
    })
    .await
}

async fn kubelet_port_forward(
    State(s): State<ServerState>,
    Path((ns, pod)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    port_forward(s, ns, pod, None, parse_query(q.as_deref()), req).await
}

async fn kubelet_port_forward_uid(
    State(s): State<ServerState>,
    Path((ns, pod, uid)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    port_forward(s, ns, pod, Some(uid), parse_query(q.as_deref()), req).await
}

/// The API server's part of `pods/exec` and `pods/attach`: the pod must exist, the container
/// must be one of its own (defaulted when the pod has exactly one); then the kubelet half.
async fn api_remote_command(
    s: ServerState,
    kind: Kind,
    ns: String,
    name: String,
    query: Vec<(String, String)>,
    req: Request,
) -> Response {
    if let Err(r) = check_names(&[("namespace", &ns), ("pod", &name)]) {
        return r.into_response();
    }
    let Some(pod) = find_pod(&s, &ns, &name, None) else {
        return status::not_found(format!("pods {name:?} not found"));
    };
    let spec_names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|sp| {
            sp.containers
                .iter()
                .chain(sp.init_containers.iter().flatten())
                .map(|c| c.name.clone())
        })
        .collect();
    let container = match first(&query, "container").filter(|c| !c.is_empty()) {
        Some(c) if spec_names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return status::bad_request(format!("container {c} is not valid for pod {name}"));
        }
        None => {
            let regular: Vec<&String> = pod
                .spec
                .iter()
                .flat_map(|sp| sp.containers.iter().map(|c| &c.name))
                .collect();
            match regular.as_slice() {
                [only] => only.to_string(),
                _ => {
                    return status::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        regular
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                }
            }
        }
    };
    remote_command(s, kind, ns, name, None, container, query, Style::Api, req).await
}

async fn api_exec(
    State(s): State<ServerState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    api_remote_command(s, Kind::Exec, ns, name, parse_query(q.as_deref()), req).await
}

async fn api_attach(
    State(s): State<ServerState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    api_remote_command(s, Kind::Attach, ns, name, parse_query(q.as_deref()), req).await
}

async fn api_port_forward(
    State(s): State<ServerState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    if let Err(r) = check_names(&[("namespace", &ns), ("pod", &name)]) {
        return r.into_response();
    }
    if find_pod(&s, &ns, &name, None).is_none() {
        return status::not_found(format!("pods {name:?} not found"));
    }
    port_forward(s, ns, name, None, parse_query(q.as_deref()), req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query(Some(
            "command=sh&command=-c&command=echo+hi%20there%21&container=main&stdin=true&tty=1&bad=%zz",
        ));
        assert_eq!(all(&q, "command"), vec!["sh", "-c", "echo hi there!"]);
        assert_eq!(first(&q, "container"), Some("main"));
        assert_eq!(first(&q, "bad"), Some("%zz"));
        assert!(flag(&q, "stdin", Style::Api));
        assert!(!flag(&q, "stdin", Style::Kubelet));
        assert!(flag(&q, "tty", Style::Kubelet));
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn options_like_new_options() {
        type Flags = (bool, bool, bool, bool);
        let cases: Vec<(&str, Result<Flags, ()>)> = vec![
            ("stdout=1", Ok((false, true, false, false))),
            // A tty drops stderr.
            (
                "stdin=1&stdout=1&stderr=1&tty=1",
                Ok((true, true, false, true)),
            ),
            ("stdout=true", Err(())),
            ("", Err(())),
        ];
        for (raw, want) in cases {
            let got = options(&parse_query(Some(raw)), Style::Kubelet)
                .map(|o| (o.stdin, o.stdout, o.stderr, o.tty))
                .map_err(|_| ());
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn uids() {
        assert!(valid_uid("0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"));
        assert!(!valid_uid("../x"));
    }

    #[test]
    fn port_lists() {
        let p = |raw| ports(&parse_query(Some(raw))).map_err(|_| ());
        assert_eq!(p("port=80,443&port=8080"), Ok(vec![80, 443, 8080]));
        assert_eq!(p(""), Ok(vec![]));
        assert_eq!(p("port=0"), Err(()));
        assert_eq!(p("port=http"), Err(()));
    }
}
