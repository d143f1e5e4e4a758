//! Debug endpoints that explain the agent's state to a person: `/debug/eviction` (the
//! eviction manager's signals, thresholds, conditions, ranking and last decisions) and
//! `/debug/node` (capacity, allocatable and conditions, what `kubectl describe node` would
//! show until the Node object exists). Read-only, like the rest of the server.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::ServerState;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/debug/eviction", get(eviction))
        .route("/debug/node", get(node))
}

async fn eviction(State(s): State<ServerState>) -> Json<Value> {
    let report = s.eviction.report.borrow().clone();
    Json(serde_json::to_value(report.as_ref()).unwrap_or(Value::Null))
}

async fn node(State(s): State<ServerState>) -> Json<Value> {
    let report = s.eviction.report.borrow().clone();
    Json(json!({
        "name": s.node.name,
        "labels": s.node.labels,
        "hostIP": s.node.host_ip,
        "capacity": s.node.capacity,
        "allocatable": s.node.allocatable,
        "conditions": report.conditions,
    }))
}
