//! The API-server facade: enough of the Kubernetes API server's surface that the real kubectl
//! (1.32) can talk to the agent directly, with no control plane: discovery, pods (Tables, JSON,
//! watch, the `log` subresource, a refused delete), nodes, events, namespaces, the node lease
//! and `metrics.k8s.io` for `kubectl top`.
//!
//! In a cluster, kubectl talks to kube-apiserver, which serves pods from etcd (the kubelet's
//! mirror pods, for static pods), prints Tables (`pkg/printers/internalversion`), and proxies
//! `log` to the kubelet's `/containerLogs` (`pkg/registry/core/pod/rest/log.go`); metrics-server
//! answers `metrics.k8s.io` from the kubelet's `/metrics/resource`. Here every one of those
//! reads goes straight to the agent's own state: the status manager is the pod store, the
//! event recorder the event store, and `log` calls the kubelet handler in-process.
//! `docs/kubectl.md` follows a request through both.
//!
//! What the API server adds to a mirror pod is added here when a pod is served:
//! `creationTimestamp` (when the kubelet first saw the manifest), `kubernetes.io/config.mirror`,
//! the Node owner reference, and a `deletionTimestamp` once the manifest is gone but the pod is
//! still stopping (so kubectl shows `Terminating`).

pub(crate) mod authorization;
mod discovery;
mod events;
mod metrics;
mod nodes;
mod pods;
mod selectors;
pub mod table;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde_json::Value;

use super::ServerState;
use crate::api::static_pod::{CONFIG_HASH_ANNOTATION, CONFIG_SEEN_ANNOTATION};
use crate::node::SystemInfo;
use crate::server::status::ApiError;
use crate::source::PodSet;
use table::IncludeObject;

/// The API server's `kubernetes.io/config.mirror` annotation on a mirror pod.
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What the facade needs besides the kubelet's state.
pub struct ApiContext {
    /// When the agent started: the Node's and the namespaces' `creationTimestamp`.
    pub started: Timestamp,
    /// The port the agent serves on (`daemonEndpoints.kubeletEndpoint`).
    pub port: u16,
    /// The static pod path, for messages.
    pub manifest_dir: Option<PathBuf>,
    /// The desired pods with their manifest files, from the file source.
    pub sources: Option<tokio::sync::watch::Receiver<Arc<PodSet>>>,
    /// Facts for the Node's `nodeInfo`.
    pub system: SystemInfo,
    /// `/proc`, for the node's CPU usage.
    pub proc_root: PathBuf,
    /// When each pod still running was first seen without its manifest: its deletionTimestamp.
    deleting: Mutex<HashMap<String, Timestamp>>,
}

impl ApiContext {
    /// A context; `sources` is `None` when the agent has no manifest path.
    pub fn new(
        port: u16,
        manifest_dir: Option<PathBuf>,
        sources: Option<tokio::sync::watch::Receiver<Arc<PodSet>>>,
        system: SystemInfo,
    ) -> Self {
        ApiContext {
            started: Timestamp::now(),
            port,
            manifest_dir,
            sources,
            system,
            proc_root: PathBuf::from("/proc"),
            deleting: Mutex::new(HashMap::new()),
        }
    }

    /// The manifest file of the pod with this UID, if the source still has it.
    pub fn manifest_of(&self, uid: &str) -> Option<PathBuf> {
        let set = self.sources.as_ref()?.borrow().clone();
        set.pods
            .iter()
            .find(|p| p.uid() == uid)
            .map(|p| p.file.clone())
    }
}

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .merge(discovery::routes())
        .merge(pods::routes())
        .merge(nodes::routes())
        .merge(events::routes())
        .merge(metrics::routes())
        .merge(authorization::routes())
}

/// The kubeconfig the agent writes at `<root-dir>/kubeconfig` (mode 0600): one cluster at the
/// agent's address (a wildcard address becomes loopback), namespace `default`, and the user
/// `kubernetes-admin` with the agent's admin token (`server::admin`). With TLS
/// (`serving_cert_pem`) the server is `https://` and the serving certificate itself is the CA
/// to trust, embedded so the file can be copied elsewhere; other users' credentials are theirs
/// (`kubectl --token=...`, `--client-certificate/--client-key`: docs/kubectl.md). Over plain
/// HTTP the server URL ends in `/auth/<token>` as well, since kubectl sends a kubeconfig's
/// token over TLS only (`auth::TOKEN_PATH_PREFIX`).
pub fn kubeconfig(
    address: std::net::IpAddr,
    port: u16,
    serving_cert_pem: Option<&[u8]>,
    admin_token: &str,
) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let host = match address {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        a => a,
    };
    let host = match host {
        IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    // Over plain HTTP kubectl would not send the user's token (client-go sends credentials
    // over TLS only): the server URL carries it too (`auth::TOKEN_PATH_PREFIX`).
    let (scheme, path, ca) = match serving_cert_pem {
        Some(pem) => {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD.encode(pem);
            (
                "https",
                String::new(),
                format!("\n    certificate-authority-data: {data}"),
            )
        }
        None => (
            "http",
            format!("{}{admin_token}", crate::server::auth::TOKEN_PATH_PREFIX),
            String::new(),
        ),
    };
    format!(
        "# Written by minikubelet: kubectl talks to this node's agent directly.\n\
apiVersion: v1\n\
kind: Config\n\
clusters:\n\
- name: minikubelet\n  cluster:\n    server: {scheme}://{host}:{port}{path}{ca}\n\
contexts:\n\
- name: minikubelet\n  context:\n    cluster: minikubelet\n    user: kubernetes-admin\n    namespace: default\n\
current-context: minikubelet\n\
users:\n\
- name: kubernetes-admin\n  user:\n    token: {admin_token}\n\
preferences: {{}}\n"
    )
}

/// The admin token of a kubeconfig that [`kubeconfig`] wrote (its user's `token:` line), for
/// the agent's own command-line clients (`minikubelet explain-eviction`).
pub fn kubeconfig_token(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("token:"))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// 404 for any path nobody serves, as a Status.
pub async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "the server could not find the requested resource",
    )
    .into_response()
}

/// 405 for a method a path does not serve, as a Status (`errors.NewMethodNotSupported`).
pub async fn method_not_allowed(method: axum::http::Method) -> Response {
    let mut r = ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({method}); this node's API is read-only"
    ))
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    r
}

/// A JSON response with `Content-Type: application/json`.
fn json(v: Value) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Whether the client asked for a Table (`Accept: application/json;as=Table;...`).
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.contains("as=Table")))
}

/// The query parameters of a list, get or watch.
#[derive(Debug, Default)]
struct ListQuery {
    limit: Option<usize>,
    continue_: Option<String>,
    fields: selectors::FieldSelector,
    labels: selectors::LabelSelector,
    watch: bool,
    resource_version: Option<u64>,
    include: IncludeObject,
    timeout: Option<std::time::Duration>,
}

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let num = |k: &str| -> Result<Option<u64>, ApiError> {
            get(k)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| ApiError::bad_request(format!("invalid {k} {v:?}")))
                })
                .transpose()
        };
        Ok(ListQuery {
            limit: num("limit")?.filter(|l| *l > 0).map(|l| l as usize),
            continue_: get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            fields: selectors::FieldSelector::parse(get("fieldSelector").unwrap_or(""))?,
            labels: selectors::LabelSelector::parse(get("labelSelector").unwrap_or(""))?,
            watch: get("watch").is_some_and(crate::server::logs::query_bool),
            resource_version: num("resourceVersion")?,
            include: match get("includeObject") {
                None => IncludeObject::Metadata,
                Some(v) => IncludeObject::parse(v)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid includeObject {v:?}")))?,
            },
            timeout: num("timeoutSeconds")?.map(std::time::Duration::from_secs),
        })
    }
}

/// Apply `limit`/`continue` to items sorted by `key`: the page and the next continue token.
fn paginate<T>(
    items: Vec<T>,
    q: &ListQuery,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let mut items: Vec<T> = match &q.continue_ {
        Some(after) => items.into_iter().filter(|i| key(i) > *after).collect(),
        None => items,
    };
    match q.limit {
        Some(l) if items.len() > l => {
            items.truncate(l);
            let next = items.last().map(&key);
            (items, next)
        }
        _ => (items, None),
    }
}

/// The pod as the API server would serve its mirror pod.
fn api_pod(s: &ServerState, pod: &Pod, desired: Option<&PodSet>, now: Timestamp) -> Pod {
    let mut p = pod.clone();
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let annotations = p.metadata.annotations.get_or_insert_with(Default::default);
    if let Some(hash) = annotations.get(CONFIG_HASH_ANNOTATION).cloned() {
        annotations.insert(CONFIG_MIRROR_ANNOTATION.to_string(), hash);
    }
    if p.metadata.creation_timestamp.is_none() {
        let seen = annotations
            .get(CONFIG_SEEN_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .or_else(|| {
                p.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0)
            });
        // Whole seconds, as the API server stores creation times.
        p.metadata.creation_timestamp = seen
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
            .map(Time);
    }
    p.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: s.node.name.clone(),
        uid: crate::node::node_uid(&s.node.name, &s.api.system.machine_id),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    if let Some(set) = desired
        && set.seen
        && !set.pods.iter().any(|sp| sp.uid() == uid)
    {
        let since = s
            .api
            .deleting
            .lock()
            .map(|mut d| *d.entry(uid.clone()).or_insert(now))
            .unwrap_or(now);
        p.metadata.deletion_timestamp = Timestamp::from_second(since.as_second()).ok().map(Time);
        p.metadata.deletion_grace_period_seconds = p
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds);
    }
    p
}

/// Every pod as served, sorted by namespace and name (the API server's key order).
fn api_pods(s: &ServerState) -> Vec<Pod> {
    let now = Timestamp::now();
    let desired = s.api.sources.as_ref().map(|r| r.borrow().clone());
    let pods = s.statuses.list();
    if let Ok(mut d) = s.api.deleting.lock() {
        d.retain(|uid, _| pods.iter().any(|p| p.metadata.uid.as_deref() == Some(uid)));
    }
    let mut out: Vec<Pod> = pods
        .iter()
        .map(|p| api_pod(s, p, desired.as_deref(), now))
        .collect();
    out.sort_by_key(pod_key);
    out
}

/// `<namespace>/<name>`.
fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("default"),
        p.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The Node object as served now.
fn node_object(s: &ServerState) -> Node {
    let now = Timestamp::now();
    let started = Timestamp::from_second(s.api.started.as_second()).unwrap_or(s.api.started);
    // The eviction manager measures pressure and reports the conditions; until its first
    // report, the node is a healthy one.
    let mut conditions = s.eviction.report.borrow().conditions.clone();
    if conditions.is_empty() {
        conditions = crate::node::default_node_conditions(started);
    }
    s.node
        .to_node_object(&s.api.system, &conditions, started, s.api.port, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_accept_headers() {
        let cases = [
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                true,
            ),
            ("application/json", false),
            (
                "application/vnd.kubernetes.protobuf,application/json",
                false,
            ),
        ];
        for (accept, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(wants_table(&h), want, "{accept}");
        }
    }

    #[test]
    fn kubeconfig_server() {
        let cases = [
            (
                "127.0.0.1",
                None,
                "server: http://127.0.0.1:10250/auth/0123abcd\n",
            ),
            (
                "0.0.0.0",
                None,
                "server: http://127.0.0.1:10250/auth/0123abcd\n",
            ),
            ("::", None, "server: http://[::1]:10250/auth/0123abcd\n"),
            (
                "10.0.0.5",
                Some(&b"PEM"[..]),
                "server: https://10.0.0.5:10250\n    certificate-authority-data: UEVN\n",
            ),
        ];
        for (addr, cert, want) in cases {
            let k = kubeconfig(addr.parse().unwrap(), 10250, cert, "0123abcd");
            assert!(k.contains(want), "{k}");
            assert!(
                k.contains("users:\n- name: kubernetes-admin\n  user:\n    token: 0123abcd\n"),
                "{k}"
            );
            assert!(k.contains("    user: kubernetes-admin\n"), "{k}");
            assert_eq!(kubeconfig_token(&k).as_deref(), Some("0123abcd"));
            assert!(k.contains("namespace: default"));
            assert!(k.contains("current-context: minikubelet"));
        }
    }

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let q = |limit, cont: Option<&str>| ListQuery {
            limit,
            continue_: cont.map(String::from),
            ..Default::default()
        };
        let (page, next) = paginate(items.clone(), &q(Some(2), None), |s| s.clone());
        assert_eq!(
            (page, next.as_deref()),
            (vec!["a".to_string(), "b".into()], Some("b"))
        );
        let (page, next) = paginate(items.clone(), &q(Some(2), Some("d")), |s| s.clone());
        assert_eq!((page, next), (vec!["e".to_string()], None));
        let (page, next) = paginate(items.clone(), &q(None, None), |s| s.clone());
        assert_eq!((page.len(), next), (5, None));
    }
}
