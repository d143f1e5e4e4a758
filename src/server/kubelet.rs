//! The kubelet's own read-only endpoints (`server.go` `InstallDefaultHandlers`):
//! `/healthz`, `/pods` (every static pod with live status, as a v1 `PodList`) and
//! `/runningpods/` (pods as the runtime sees them: only those with running containers, and only
//! their identity and containers' names).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde_json::{Value, json};

use super::ServerState;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pods", get(pods))
        .route("/pods/", get(pods))
        .route("/runningpods/", get(running_pods))
        .route("/configz", get(configz))
}

/// `/configz`: the configuration in effect after flags, file and defaults, in the
/// KubeletConfiguration shape, wrapped as the kubelet wraps it.
async fn configz(State(s): State<ServerState>) -> Json<Value> {
    Json((*s.configz).clone())
}

async fn healthz() -> &'static str {
    "ok"
}

fn pod_list(items: Vec<Value>) -> Json<Value> {
    Json(json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    }))
}

async fn pods(State(s): State<ServerState>) -> Json<Value> {
    let items = s
        .statuses
        .list()
        .iter()
        .filter_map(|p| serde_json::to_value(p.as_ref()).ok())
        .collect();
    pod_list(items)
}

async fn running_pods(State(s): State<ServerState>) -> Json<Value> {
    let items = s
        .statuses
        .list()
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|st| st.container_statuses.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                })
        })
        .filter_map(|p| {
            let running = Pod {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: p.metadata.name.clone(),
                    namespace: p.metadata.namespace.clone(),
                    uid: p.metadata.uid.clone(),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    containers: p
                        .spec
                        .iter()
                        .flat_map(|s| s.containers.iter())
                        .map(|c| Container {
                            name: c.name.clone(),
                            image: c.image.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                status: None,
            };
            serde_json::to_value(running).ok()
        })
        .collect();
    pod_list(items)
}
