//! `metrics.k8s.io/v1beta1` for `kubectl top pod` and `kubectl top node`: what metrics-server
//! serves from the kubelets' `/metrics/resource`, measured here from the cgroups directly.
//!
//! CPU is the rate of the cgroup's CPU time (`cpuacct.usage`, `cpu.stat usage_usec`) over a
//! short window sampled per request; memory is the working set (usage − inactive file), as the
//! kubelet's summary reports it. The node's CPU comes from `/proc/stat`, its memory from the
//! root memory cgroup. metrics-server instead scrapes every 15 s and reports the rate between
//! two scrapes. The readings are the stats provider's (`crate::stats`), which `/stats/summary`
//! and `/metrics/resource` serve.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::{ListQuery, api_pods, json};
use crate::api::quantity::{Format, Quantity};
use crate::cgroup::CgroupName;
use crate::server::ServerState;
use crate::server::status::ApiError;
use crate::stats::cpu::{node_cpu_ns, rate};

/// How long CPU use is sampled for one request: longer smooths bursts but makes every
/// `kubectl top` wait that long; half a second reads well for an interactive command.
const SAMPLE_WINDOW: Duration = Duration::from_millis(500);
/// The `window` reported with each sample (Go duration syntax).
const WINDOW_TEXT: &str = "500ms";

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(all_pods))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            get(namespaced_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            get(one_pod),
        )
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(nodes))
        .route("/apis/metrics.k8s.io/v1beta1/nodes/{name}", get(one_node))
}

/// CPU in nano-cores as a quantity (`1500000n`).
fn cpu_quantity(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

/// Memory in bytes as metrics-server writes it (binary suffixes).
fn memory_quantity(bytes: u64) -> String {
    Quantity::new(i64::try_from(bytes).unwrap_or(i64::MAX), Format::BinarySI).to_string()
}

/// The containers of `pod` that run now, with their cgroups.
fn running_containers(s: &ServerState, pod: &Pod) -> Vec<(String, CgroupName)> {
    crate::stats::running_containers(pod)
        .into_iter()
        .filter_map(|(name, _)| s.cm.container_cgroup(pod, &name).ok().map(|cg| (name, cg)))
        .collect()
}

/// `PodMetrics` for each pod that has a running container, sampled over [`SAMPLE_WINDOW`].
async fn pod_metrics(s: &ServerState, pods: &[Pod]) -> Vec<Value> {
    let cgroups = s.cm.cgroups().clone();
    let targets: Vec<Vec<(String, CgroupName)>> =
        pods.iter().map(|p| running_containers(s, p)).collect();
    let before: Vec<Vec<Option<u64>>> = targets
        .iter()
        .map(|cs| {
            cs.iter()
                .map(|(_, cg)| cgroups.cpu_usage_ns(cg).ok())
                .collect()
        })
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep(SAMPLE_WINDOW).await;
    let elapsed = t0.elapsed();
    let now = Timestamp::now();
    let mut items = Vec::new();
    for ((pod, cs), before) in pods.iter().zip(&targets).zip(&before) {
        let containers: Vec<Value> = cs
            .iter()
            .zip(before)
            .filter_map(|((name, cg), b)| {
                let after = cgroups.cpu_usage_ns(cg).ok()?;
                let mem = cgroups.memory_stats(cg).ok()?;
                Some(json!({
                    "name": name,
                    "usage": {
                        "cpu": cpu_quantity(rate((*b)?, after, elapsed)),
                        "memory": memory_quantity(mem.working_set_bytes),
                    },
                }))
            })
            .collect();
        if containers.is_empty() {
            continue;
        }
        items.push(json!({
            "metadata": {
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "labels": pod.metadata.labels,
                "creationTimestamp": now.to_string(),
            },
            "timestamp": now.to_string(),
            "window": WINDOW_TEXT,
            "containers": containers,
        }));
    }
    items
}

fn parse(query: Pairs) -> Result<ListQuery, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = ListQuery::parse(&pairs)?;
    q.fields.check(&["metadata.name", "metadata.namespace"])?;
    Ok(q)
}

async fn list_pods(s: ServerState, namespace: Option<String>, query: Pairs) -> Response {
    let q = match parse(query) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let pods: Vec<Pod> = api_pods(&s)
        .into_iter()
        .filter(|p| {
            namespace
                .as_deref()
                .is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns))
                && q.labels.matches(p.metadata.labels.as_ref())
                && q.fields.matches(|f| match f {
                    "metadata.name" => p.metadata.name.clone().unwrap_or_default(),
                    _ => p.metadata.namespace.clone().unwrap_or_default(),
                })
        })
        .collect();
    let items = pod_metrics(&s, &pods).await;
    json(json!({
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }))
}

async fn all_pods(State(s): State<ServerState>, query: Pairs) -> Response {
    list_pods(s, None, query).await
}

async fn namespaced_pods(
    State(s): State<ServerState>,
    Path(namespace): Path<String>,
    query: Pairs,
) -> Response {
    list_pods(s, Some(namespace), query).await
}

async fn one_pod(
    State(s): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let pods: Vec<Pod> = api_pods(&s)
        .into_iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && p.metadata.name.as_deref() == Some(name.as_str())
        })
        .collect();
    match pod_metrics(&s, &pods).await.pop() {
        Some(mut m) => {
            m["kind"] = json!("PodMetrics");
            m["apiVersion"] = json!("metrics.k8s.io/v1beta1");
            json(m)
        }
        None => ApiError::not_found("podmetrics.metrics.k8s.io", &name).into_response(),
    }
}

async fn node_metrics(s: &ServerState) -> Value {
    let before = node_cpu_ns(&s.api.proc_root);
    let t0 = Instant::now();
    tokio::time::sleep(SAMPLE_WINDOW).await;
    let elapsed = t0.elapsed();
    let after = node_cpu_ns(&s.api.proc_root);
    let cpu = match (before, after) {
        (Some(b), Some(a)) => rate(b, a, elapsed),
        _ => 0,
    };
    let memory =
        s.cm.cgroups()
            .root_memory_stats()
            .map(|m| m.working_set_bytes)
            .unwrap_or(0);
    let now = Timestamp::now();
    json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": s.node.name,
            "labels": s.node.labels,
            "creationTimestamp": now.to_string(),
        },
        "timestamp": now.to_string(),
        "window": WINDOW_TEXT,
        "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)},
    })
}

async fn nodes(State(s): State<ServerState>, query: Pairs) -> Response {
    let q = match parse(query) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let mut items = Vec::new();
    if q.labels.matches(Some(&s.node.labels))
        && q.fields.matches(|f| match f {
            "metadata.name" => s.node.name.clone(),
            _ => String::new(),
        })
    {
        let mut m = node_metrics(&s).await;
        if let Some(o) = m.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        items.push(m);
    }
    json(json!({
        "kind": "NodeMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }))
}

async fn one_node(State(s): State<ServerState>, Path(name): Path<String>) -> Response {
    if name != s.node.name {
        return ApiError::not_found("nodemetrics.metrics.k8s.io", &name).into_response();
    }
    json(node_metrics(&s).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_quantity(1_500_000), "1500000n");
        assert_eq!(memory_quantity(10 << 20), "10Mi");
        assert_eq!(memory_quantity(1000), "1k");
    }
}
