//! Pods: list (namespaced and across namespaces), get, watch, `status` and `log`, and a
//! delete that explains how static pods are removed (`pkg/registry/core/pod`).

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::table::{self, IncludeObject, POD_COLUMNS};
use super::watch::{self, Encoder, WATCH_BUFFER};
use super::{ListQuery, api_pod, api_pods, json, paginate, pod_key, wants_table};
use crate::server::ServerState;
use crate::server::logs::{PodLogOptions, has_container, serve_logs};
use crate::server::names::is_object_name;
use crate::server::status::ApiError;
use crate::status_manager::PodChange;

/// The field selectors the pod registry supports (`pod.ToSelectableFields` + `PodIndexFunc`).
const POD_FIELDS: [&str; 11] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/api/v1/pods", get(list_all).fallback(collection_write))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(list_namespaced).fallback(collection_write),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}",
            get(get_pod).delete(delete_pod).fallback(object_write),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            get(get_pod).fallback(object_write),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            get(pod_log),
        )
}

fn pod_field(p: &Pod, field: &str) -> String {
    let spec = p.spec.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    match field {
        "metadata.name" => p.metadata.name.clone(),
        "metadata.namespace" => p.metadata.namespace.clone(),
        "spec.nodeName" => spec.node_name,
        "spec.restartPolicy" => spec.restart_policy,
        "spec.schedulerName" => spec.scheduler_name,
        "spec.serviceAccountName" => spec.service_account_name,
        "spec.hostNetwork" => Some(spec.host_network.unwrap_or(false).to_string()),
        "status.phase" => status.phase,
        "status.podIP" => status.pod_ip,
        "status.podIPs" => status
            .pod_ips
            .and_then(|ips| ips.first().map(|i| i.ip.clone())),
        "status.nominatedNodeName" => status.nominated_node_name,
        _ => None,
    }
    .unwrap_or_default()
}

fn matches(p: &Pod, namespace: Option<&str>, q: &ListQuery) -> bool {
    namespace.is_none_or(|ns| p.metadata.namespace.as_deref().unwrap_or("default") == ns)
        && q.fields.matches(|f| pod_field(p, f))
        && q.labels.matches(p.metadata.labels.as_ref())
}

fn row(p: &Pod, include: IncludeObject, now: Timestamp) -> serde_json::Value {
    table::row(
        table::pod_cells(p, now),
        table::pod_row_conditions(p),
        p,
        include,
    )
}

async fn list_all(State(s): State<ServerState>, headers: HeaderMap, query: Pairs) -> Response {
    list(s, None, &headers, query).unwrap_or_else(IntoResponse::into_response)
}

async fn list_namespaced(
    State(s): State<ServerState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    list(s, Some(namespace), &headers, query).unwrap_or_else(IntoResponse::into_response)
}

fn parse_query(query: Pairs) -> Result<ListQuery, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = ListQuery::parse(&pairs)?;
    q.fields.check(&POD_FIELDS)?;
    Ok(q)
}

fn list(
    s: ServerState,
    namespace: Option<String>,
    headers: &HeaderMap,
    query: Pairs,
) -> Result<Response, ApiError> {
    let q = parse_query(query)?;
    let as_table = wants_table(headers).then_some(q.include);
    if q.watch {
        return Ok(watch_pods(s, namespace, q, as_table));
    }
    let rv = s.statuses.resource_version().to_string();
    let pods: Vec<Pod> = api_pods(&s)
        .into_iter()
        .filter(|p| matches(p, namespace.as_deref(), &q))
        .collect();
    let (page, next) = paginate(pods, &q, pod_key);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    let now = Timestamp::now();
    Ok(json(match as_table {
        Some(include) => {
            let mut t = table::table(
                Some(&POD_COLUMNS),
                page.iter().map(|p| row(p, include, now)).collect(),
                &rv,
            );
            t["metadata"] = meta;
            t
        }
        None => json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": meta,
            "items": page,
        }),
    }))
}

/// The served pod `namespace/name`, or 404 `pods "name" not found`.
fn lookup(s: &ServerState, namespace: &str, name: &str) -> Result<Pod, ApiError> {
    if !is_object_name(namespace) || !is_object_name(name) {
        return Err(ApiError::not_found("pods", name));
    }
    api_pods(s)
        .into_iter()
        .find(|p| {
            p.metadata.name.as_deref() == Some(name)
                && p.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .ok_or_else(|| ApiError::not_found("pods", name))
}

async fn get_pod(
    State(s): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    let result = (|| {
        let q = parse_query(query)?;
        let p = lookup(&s, &namespace, &name)?;
        Ok::<_, ApiError>(json(if wants_table(&headers) {
            let rv = p.metadata.resource_version.clone().unwrap_or_default();
            table::table(
                Some(&POD_COLUMNS),
                vec![row(&p, q.include, Timestamp::now())],
                &rv,
            )
        } else {
            serde_json::to_value(&p).unwrap_or_default()
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Why a static pod cannot be deleted through the API, and how it is removed.
fn static_pod_message(s: &ServerState, p: &Pod) -> String {
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let uid = p.metadata.uid.as_deref().unwrap_or_default();
    match (s.api.manifest_of(uid), &s.api.manifest_dir) {
        (Some(file), _) => format!(
            "{name} is a static pod: the kubelet runs it from the manifest file {}; delete that file to remove the pod",
            file.display()
        ),
        (None, Some(dir)) => format!(
            "{name} is a static pod: the kubelet runs it from a manifest file in {}; delete that file to remove the pod",
            dir.display()
        ),
        (None, None) => {
            format!("{name} is a static pod: delete its manifest file to remove the pod")
        }
    }
}

async fn delete_pod(
    State(s): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let result = lookup(&s, &namespace, &name).and_then(|p| {
        let why = static_pod_message(&s, &p);
        tracing::info!(pod = %name, namespace = %namespace, "refused an API delete of a static pod");
        Err::<Response, _>(ApiError::forbidden("pods", &name, &why))
    });
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn object_write(Path(params): Path<Vec<(String, String)>>) -> Response {
    let name = params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    ApiError::method_not_allowed(format!(
        "pod {name:?} is a static pod and cannot be changed through the API: edit its manifest file instead"
    ))
    .into_response()
}

async fn collection_write() -> Response {
    ApiError::method_not_allowed(
        "pods are static pods here: create, change or delete them by writing, editing or deleting manifest files",
    )
    .into_response()
}

async fn pod_log(
    State(s): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    query: Pairs,
) -> Response {
    let result = (|| {
        let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let opts = PodLogOptions::from_query(&pairs, false).map_err(ApiError::bad_request)?;
        let errs = opts.validate();
        if !errs.is_empty() {
            return Err(ApiError::invalid("PodLogOptions", &name, &errs));
        }
        let served = lookup(&s, &namespace, &name)?;
        let spec = served.spec.clone().unwrap_or_default();
        let container = match opts.container.as_deref().filter(|c| !c.is_empty()) {
            Some(c) if has_container(&served, c) => c.to_string(),
            Some(c) => {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            None if spec.containers.len() == 1 => spec.containers[0].name.clone(),
            None => {
                let names: Vec<String> = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .chain(spec.containers.iter())
                    .map(|c| c.name.clone())
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        };
        // The kubelet reads the pod from its own store, not the served copy.
        let pod = crate::server::logs::find_pod(&s, &namespace, &name)
            .ok_or_else(|| ApiError::not_found("pods", &name))?;
        serve_logs(&s, &pod, &container, &opts)
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Resolves when the desired pod set changes; never without a source.
async fn sources_changed(
    rx: &mut Option<tokio::sync::watch::Receiver<std::sync::Arc<crate::source::PodSet>>>,
) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn watch_pods(
    s: ServerState,
    namespace: Option<String>,
    q: ListQuery,
    as_table: Option<IncludeObject>,
) -> Response {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let mut changes = s.statuses.subscribe();
    let mut sources = s.api.sources.clone();
    tokio::spawn(async move {
        let mut enc = Encoder::new(as_table, &POD_COLUMNS);
        let rv_of = |p: &Pod| {
            p.metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let start = q.resource_version.unwrap_or(0);
        // uid -> (last resource version sent or known, terminating)
        let mut known: HashMap<String, (u64, bool)> = HashMap::new();
        let mut out = Vec::new();
        for p in api_pods(&s) {
            if !matches(&p, namespace.as_deref(), &q) {
                continue;
            }
            let rv = rv_of(&p);
            let now = Timestamp::now();
            if start == 0 {
                out.push(enc.encode(
                    "ADDED",
                    &p,
                    || table::pod_cells(&p, now),
                    table::pod_row_conditions(&p),
                    &rv.to_string(),
                ));
            } else if rv > start {
                out.push(enc.encode(
                    "MODIFIED",
                    &p,
                    || table::pod_cells(&p, now),
                    table::pod_row_conditions(&p),
                    &rv.to_string(),
                ));
            }
            let uid = p.metadata.uid.clone().unwrap_or_default();
            known.insert(uid, (rv, p.metadata.deletion_timestamp.is_some()));
        }
        for line in out {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = q.timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            // The lines to send, and whether the watch ends after them.
            let (lines, end) = tokio::select! {
                ev = changes.recv() => match ev {
                    Ok(PodChange::Modified(p)) => {
                        let desired = s.api.sources.as_ref().map(|r| r.borrow().clone());
                        let p = api_pod(&s, &p, desired.as_deref(), Timestamp::now());
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        let rv = rv_of(&p);
                        let seen = known.get(&uid).copied();
                        if seen.is_some_and(|(r, _)| rv <= r) || !matches(&p, namespace.as_deref(), &q) {
                            continue;
                        }
                        known.insert(uid, (rv, p.metadata.deletion_timestamp.is_some()));
                        let type_ = if seen.is_some() { "MODIFIED" } else { "ADDED" };
                        let now = Timestamp::now();
                        (vec![enc.encode(type_, &p, || table::pod_cells(&p, now), table::pod_row_conditions(&p), &rv.to_string())], false)
                    }
                    Ok(PodChange::Deleted(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        if known.remove(&uid).is_none() {
                            continue;
                        }
                        let desired = s.api.sources.as_ref().map(|r| r.borrow().clone());
                        let p = api_pod(&s, &p, desired.as_deref(), Timestamp::now());
                        let rv = s.statuses.resource_version().to_string();
                        let now = Timestamp::now();
                        (vec![enc.encode("DELETED", &p, || table::pod_cells(&p, now), table::pod_row_conditions(&p), &rv)], false)
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => (vec![watch::expired(start)], true),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = sources_changed(&mut sources) => {
                    // A manifest went away: the pod now shows `Terminating` before its status changes.
                    let mut lines = Vec::new();
                    for p in api_pods(&s) {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        let terminating = p.metadata.deletion_timestamp.is_some();
                        if let Some(k) = known.get_mut(&uid) && k.1 != terminating {
                            k.1 = terminating;
                            let now = Timestamp::now();
                            let rv = rv_of(&p).to_string();
                            lines.push(enc.encode("MODIFIED", &p, || table::pod_cells(&p, now), table::pod_row_conditions(&p), &rv));
                        }
                    }
                    (lines, false)
                }
                () = tx.closed() => return,
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
            };
            for l in lines {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        }
    });
    watch::response(rx)
}
