//! TEMPORARY: the least of the API server's surface that `kubectl exec/attach/port-forward`
//! needs before they reach the pod's subresources — `/version`, legacy discovery (`/api`,
//! `/apis`, `/api/v1`) and a single pod GET.
//!
//! The `apiserver` branch builds the real API facade (discovery, pods, nodes, logs, events,
//! Tables). When it is merged, drop this file and its `.merge(...)` line in `server/mod.rs`:
//! the routes overlap and axum refuses overlapping routes at start-up.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::status;
use crate::server::ServerState;

/// The routes.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api))
        .route("/apis", get(apis))
        .route("/api/v1", get(api_v1))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(pod))
}

async fn version() -> Json<Value> {
    // Minor 32: the kubectl dispatcher then runs kubectl 1.32 (WebSocket exec, v5).
    Json(json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-minikubelet",
        "platform": "linux/amd64",
    }))
}

async fn api() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }))
}

async fn apis() -> Json<Value> {
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
}

async fn api_v1() -> Json<Value> {
    let sub = |name: &str, kind: &str, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": verbs});
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
            sub("pods/exec", "PodExecOptions", &["create", "get"]),
            sub("pods/attach", "PodAttachOptions", &["create", "get"]),
            sub("pods/portforward", "PodPortForwardOptions", &["create", "get"]),
        ],
    }))
}

async fn pod(State(s): State<ServerState>, Path((ns, name)): Path<(String, String)>) -> Response {
    let found = s.statuses.list().into_iter().find(|p| {
        p.metadata.name.as_deref() == Some(name.as_str())
            && p.metadata.namespace.as_deref().unwrap_or("default") == ns
    });
    match found.and_then(|p| serde_json::to_value(p.as_ref()).ok()) {
        Some(mut v) => {
            v["kind"] = json!("Pod");
            v["apiVersion"] = json!("v1");
            Json(v).into_response()
        }
        None => status::not_found(format!("pods {name:?} not found")),
    }
}
