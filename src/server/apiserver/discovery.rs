//! Discovery: `/version`, `/api`, `/apis` and the resource lists of `v1`,
//! `authorization.k8s.io/v1` (the self reviews `kubectl auth can-i` posts) and
//! `metrics.k8s.io/v1beta1`, in the legacy (non-aggregated) form kubectl falls back to
//! (`apiserver/pkg/endpoints/discovery`). kubectl resolves `pods`, `po`, `no`, `ev` with them.
//!
//! `/version` reports minor `32`: the `kubectl` on PATH is a dispatcher that runs
//! `kubectl.1.<minor>` from its folder, and 1.32 is the client this facade is tested with.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::json;
use crate::node::KUBELET_VERSION;
use crate::server::ServerState;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/api", get(api))
        .route("/api/", get(api))
        .route("/apis", get(apis))
        .route("/apis/", get(apis))
        .route("/api/v1", get(core_v1))
        .route("/api/v1/", get(core_v1))
        .route("/apis/authorization.k8s.io", get(authorization_group))
        .route("/apis/authorization.k8s.io/v1", get(authorization_v1))
        .route("/apis/authorization.k8s.io/v1/", get(authorization_v1))
        .route("/apis/metrics.k8s.io", get(metrics_group))
        .route("/apis/metrics.k8s.io/v1beta1", get(metrics_v1beta1))
        .route("/apis/metrics.k8s.io/v1beta1/", get(metrics_v1beta1))
}

/// `version.Info`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": KUBELET_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", crate::node::go_arch()),
    })
}

async fn version() -> Response {
    json(version_info())
}

async fn api(headers: HeaderMap) -> Response {
    // The address the client used, as the API server reports it for clients from anywhere.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }))
}

/// An `APIGroup` with one version.
fn group_value(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": [gv],
        "preferredVersion": gv,
    })
}

fn metrics_group_value() -> Value {
    group_value("metrics.k8s.io", "v1beta1")
}

fn authorization_group_value() -> Value {
    group_value(super::authorization::GROUP, "v1")
}

async fn apis() -> Response {
    let groups: Vec<Value> = [authorization_group_value(), metrics_group_value()]
        .into_iter()
        .map(|mut g| {
            if let Some(o) = g.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            g
        })
        .collect();
    json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

async fn metrics_group() -> Response {
    json(metrics_group_value())
}

async fn authorization_group() -> Response {
    json(authorization_group_value())
}

async fn authorization_v1() -> Response {
    json(super::authorization::resources())
}

/// One `APIResource`.
fn resource(
    name: &str,
    singular: &str,
    namespaced: bool,
    kind: &str,
    verbs: &[&str],
    short: &[&str],
) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    r
}

/// The resource in the `all` category (`kubectl get all`).
fn categories(mut r: Value) -> Value {
    r["categories"] = json!(["all"]);
    r
}

/// The `v1` resources served here.
pub fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [
            resource("events", "event", true, "Event", &["get", "list", "watch"], &["ev"]),
            resource("namespaces", "namespace", false, "Namespace", &["get", "list"], &["ns"]),
            resource("nodes", "node", false, "Node", &["get", "list"], &["no"]),
            resource("nodes/status", "", false, "Node", &["get"], &[]),
            categories(resource("pods", "pod", true, "Pod", &["delete", "get", "list", "watch"], &["po"])),
            resource("pods/attach", "", true, "PodAttachOptions", &["create", "get"], &[]),
            resource("pods/exec", "", true, "PodExecOptions", &["create", "get"], &[]),
            resource("pods/log", "", true, "Pod", &["get"], &[]),
            resource("pods/portforward", "", true, "PodPortForwardOptions", &["create", "get"], &[]),
            resource("pods/status", "", true, "Pod", &["get"], &[]),
            categories(resource("services", "service", true, "Service", &["get", "list"], &["svc"])),
        ],
    })
}

async fn core_v1(State(_s): State<ServerState>) -> Response {
    json(core_v1_resources())
}

async fn metrics_v1beta1() -> Response {
    json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "metrics.k8s.io/v1beta1",
        "resources": [
            resource("nodes", "", false, "NodeMetrics", &["get", "list"], &[]),
            resource("pods", "", true, "PodMetrics", &["get", "list"], &[]),
        ],
    }))
}
