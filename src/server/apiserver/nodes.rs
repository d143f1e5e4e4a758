//! The node and what surrounds it: the one Node (list, get, `status`), its Lease in
//! `kube-node-lease` (which `kubectl describe node` shows), namespaces, and services, of which
//! a static-pod node has none (the list exists so `kubectl get all` and `cluster-info` work).
//!
//! The kubelet registers its Node and renews a Lease every 10 s (`nodestatus`, `nodelease`);
//! here both are built from the agent's state whenever they are read.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;

use super::table::{self, NAMESPACE_COLUMNS, NODE_COLUMNS};
use super::{ListQuery, json, node_object, wants_table};
use crate::server::ServerState;
use crate::server::status::ApiError;

/// The kubelet's `nodeLeaseDurationSeconds` default.
const NODE_LEASE_DURATION_SECONDS: i32 = 40;
/// The namespaces every cluster has.
const BUILTIN_NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{name}", get(get_node))
        .route("/api/v1/nodes/{name}/status", get(get_node))
        .route(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}",
            get(get_lease),
        )
        .route("/api/v1/namespaces", get(list_namespaces))
        .route("/api/v1/namespaces/{name}", get(get_namespace))
        .route("/api/v1/services", get(list_services))
        .route(
            "/api/v1/namespaces/{namespace}/services",
            get(list_services),
        )
        .route(
            "/api/v1/namespaces/{namespace}/services/{name}",
            get(get_service),
        )
}

/// `serviceColumnDefinitions`.
const SERVICE_COLUMNS: [table::Column; 7] = [
    table::Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: "Name must be unique within a namespace.",
        priority: 0,
    },
    table::Column {
        name: "Type",
        type_: "string",
        format: "",
        description: "type determines how the Service is exposed.",
        priority: 0,
    },
    table::Column {
        name: "Cluster-IP",
        type_: "string",
        format: "",
        description: "clusterIP is the IP address of the service.",
        priority: 0,
    },
    table::Column {
        name: "External-IP",
        type_: "string",
        format: "",
        description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        priority: 0,
    },
    table::Column {
        name: "Port(s)",
        type_: "string",
        format: "",
        description: "The list of ports that are exposed by this service.",
        priority: 0,
    },
    table::Column {
        name: "Age",
        type_: "string",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
        priority: 0,
    },
    table::Column {
        name: "Selector",
        type_: "string",
        format: "",
        description: "Route service traffic to pods with label keys and values matching this selector.",
        priority: 1,
    },
];

/// Services: none (there is no service proxy on a static-pod node).
async fn list_services(headers: HeaderMap) -> Response {
    json(if wants_table(&headers) {
        table::table(Some(&SERVICE_COLUMNS), Vec::new(), "")
    } else {
        json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": []})
    })
}

async fn get_service(Path((_namespace, name)): Path<(String, String)>) -> Response {
    ApiError::not_found("services", &name).into_response()
}

fn parse(query: Pairs, fields: &[&str]) -> Result<ListQuery, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = ListQuery::parse(&pairs)?;
    q.fields.check(fields)?;
    Ok(q)
}

fn node_rows(nodes: &[Node], q: &ListQuery) -> Vec<serde_json::Value> {
    let now = Timestamp::now();
    nodes
        .iter()
        .map(|n| table::row(table::node_cells(n, now), None, n, q.include))
        .collect()
}

async fn list_nodes(State(s): State<ServerState>, headers: HeaderMap, query: Pairs) -> Response {
    let result = (|| {
        let q = parse(query, &["metadata.name", "spec.unschedulable"])?;
        let node = node_object(&s);
        let nodes: Vec<Node> = [node]
            .into_iter()
            .filter(|n| {
                q.fields.matches(|f| match f {
                    "metadata.name" => n.metadata.name.clone().unwrap_or_default(),
                    _ => "false".into(),
                }) && q.labels.matches(n.metadata.labels.as_ref())
            })
            .collect();
        let rv = s.statuses.resource_version().to_string();
        Ok::<_, ApiError>(json(if wants_table(&headers) {
            table::table(Some(&NODE_COLUMNS), node_rows(&nodes, &q), &rv)
        } else {
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": nodes})
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn get_node(
    State(s): State<ServerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    let result = (|| {
        let q = parse(query, &[])?;
        if name != s.node.name {
            return Err(ApiError::not_found("nodes", &name));
        }
        let node = node_object(&s);
        let rv = s.statuses.resource_version().to_string();
        Ok(json(if wants_table(&headers) {
            table::table(Some(&NODE_COLUMNS), node_rows(&[node], &q), &rv)
        } else {
            serde_json::to_value(&node).unwrap_or_default()
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn get_lease(State(s): State<ServerState>, Path(name): Path<String>) -> Response {
    if name != s.node.name {
        return ApiError::not_found("leases.coordination.k8s.io", &name).into_response();
    }
    let node = node_object(&s);
    json(json!({
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "creationTimestamp": node.metadata.creation_timestamp,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": NODE_LEASE_DURATION_SECONDS,
            "renewTime": micro_time(Timestamp::now()),
        },
    }))
}

/// A `metav1.MicroTime`: RFC 3339 with exactly six fractional digits, as Go parses it.
fn micro_time(t: Timestamp) -> String {
    let secs = Timestamp::from_second(t.as_second()).unwrap_or(t);
    let text = secs.to_string();
    let base = text.trim_end_matches('Z');
    format!("{base}.{:06}Z", t.subsec_microsecond())
}

/// The namespaces: the built-in ones and every namespace a pod is in.
fn namespaces(s: &ServerState) -> Vec<Namespace> {
    let mut names: BTreeSet<String> = BUILTIN_NAMESPACES.iter().map(|n| n.to_string()).collect();
    for p in s.statuses.list() {
        names.insert(
            p.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        );
    }
    let created = Timestamp::from_second(s.api.started.as_second()).unwrap_or(s.api.started);
    names
        .into_iter()
        .map(|n| Namespace {
            metadata: ObjectMeta {
                labels: Some([("kubernetes.io/metadata.name".to_string(), n.clone())].into()),
                name: Some(n),
                creation_timestamp: Some(Time(created)),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
        })
        .collect()
}

async fn list_namespaces(
    State(s): State<ServerState>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    let result = (|| {
        let q = parse(query, &["metadata.name", "status.phase"])?;
        let items: Vec<Namespace> = namespaces(&s)
            .into_iter()
            .filter(|n| {
                q.fields.matches(|f| match f {
                    "metadata.name" => n.metadata.name.clone().unwrap_or_default(),
                    _ => "Active".into(),
                }) && q.labels.matches(n.metadata.labels.as_ref())
            })
            .collect();
        let now = Timestamp::now();
        Ok::<_, ApiError>(json(if wants_table(&headers) {
            let rows = items
                .iter()
                .map(|n| table::row(table::namespace_cells(n, now), None, n, q.include))
                .collect();
            table::table(Some(&NAMESPACE_COLUMNS), rows, "")
        } else {
            json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items})
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn get_namespace(
    State(s): State<ServerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    let result = (|| {
        let q = parse(query, &[])?;
        let ns = namespaces(&s)
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| ApiError::not_found("namespaces", &name))?;
        Ok::<_, ApiError>(json(if wants_table(&headers) {
            let rows = vec![table::row(
                table::namespace_cells(&ns, Timestamp::now()),
                None,
                &ns,
                q.include,
            )];
            table::table(Some(&NAMESPACE_COLUMNS), rows, "")
        } else {
            serde_json::to_value(&ns).unwrap_or_default()
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_times() {
        let cases = [
            (
                "2026-11-28T12:40:10.060195966Z",
                "2026-11-28T12:40:10.060195Z",
            ),
            ("2026-11-28T12:40:10Z", "2026-11-28T12:40:10.000000Z"),
        ];
        for (t, want) in cases {
            assert_eq!(micro_time(t.parse().unwrap()), want);
        }
    }
}
