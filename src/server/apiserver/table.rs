//! Server-side printing: `meta.k8s.io/v1` Tables with the columns and cells `kubectl get`
//! shows, computed here as the API server's printers compute them
//! (`pkg/printers/internalversion/printers.go`: `printPod`, `printNode`, `printEvent`,
//! `printNamespace`; `apimachinery/pkg/util/duration.HumanDuration`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::pod::is_restartable_init_container;

/// One column of a Table (`TableColumnDefinition`).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Header text (kubectl upper-cases it).
    pub name: &'static str,
    /// `string`, `integer`, ...
    pub type_: &'static str,
    /// `name` for the object's name column.
    pub format: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, description: &'static str, priority: u8) -> Column {
    Column {
        name,
        type_: "string",
        format: "",
        description,
        priority,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};
const AGE: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// `podColumnDefinitions`.
pub const POD_COLUMNS: [Column; 9] = [
    NAME,
    col(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
        0,
    ),
    col(
        "Status",
        "The aggregate status of the containers in this pod.",
        0,
    ),
    col(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        0,
    ),
    col("Age", AGE, 0),
    col(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        1,
    ),
    col(
        "Node",
        "NodeName indicates in which node this pod is scheduled.",
        1,
    ),
    col(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
        1,
    ),
    col(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness.",
        1,
    ),
];

/// `nodeColumnDefinitions`.
pub const NODE_COLUMNS: [Column; 10] = [
    NAME,
    col("Status", "The status of the node", 0),
    col("Roles", "The roles of the node", 0),
    col("Age", AGE, 0),
    col("Version", "Kubelet Version reported by the node.", 0),
    col(
        "Internal-IP",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
        1,
    ),
    col(
        "External-IP",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
        1,
    ),
    col(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        1,
    ),
    col(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        1,
    ),
    col(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        1,
    ),
];

/// `eventColumnDefinitions` (the server prints with `Wide: true`, so all ten cells are sent).
pub const EVENT_COLUMNS: [Column; 10] = [
    col("Last Seen", "The last time the event was seen", 0),
    col(
        "Type",
        "Type of this event (Normal, Warning), new types could be added in the future.",
        0,
    ),
    col("Reason", "The reason this event is generated.", 0),
    col("Object", "The related object.", 0),
    col("Subobject", "The subobject of this event.", 1),
    col("Source", "The component reporting this event.", 1),
    col(
        "Message",
        "A human-readable description of the status of this operation.",
        0,
    ),
    col("First Seen", "The first time the event was seen", 1),
    col("Count", "The number of times this event has occurred.", 1),
    col("Name", "Name of the event.", 1),
];

/// `namespaceColumnDefinitions`.
pub const NAMESPACE_COLUMNS: [Column; 3] = [
    NAME,
    col("Status", "The status of the namespace", 0),
    col("Age", AGE, 0),
];

/// What a row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the API server's default; kubectl needs it for `-A`).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "None" => Some(IncludeObject::None),
            "Metadata" | "" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// A Table; `columns` is `None` for the second and later tables of a watch (kubectl keeps the
/// headers of the first).
pub fn table(columns: Option<&[Column]>, rows: Vec<Value>, resource_version: &str) -> Value {
    let defs: Option<Vec<Value>> = columns.map(|cols| {
        cols.iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect()
    });
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// A row: cells, row conditions, and the object as `include` asks.
pub fn row<T: Serialize>(
    cells: Vec<Value>,
    conditions: Option<Value>,
    object: &T,
    include: IncludeObject,
) -> Value {
    let mut r = json!({"cells": cells});
    if let Some(c) = conditions {
        r["conditions"] = c;
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let full = serde_json::to_value(object).unwrap_or(Value::Null);
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": full.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => {
            r["object"] = serde_json::to_value(object).unwrap_or(Value::Null);
        }
    }
    r
}

/// `duration.HumanDuration`: how kubectl writes an age (`45s`, `3m20s`, `5h4m`, `2d3h`, `4y`).
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs();
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the age of `t` at `now`, `<unknown>` without one.
pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

fn is_restartable_init(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|ics| ics.iter().find(|c| c.name == name))
        .is_some_and(is_restartable_init_container)
}

fn has_condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The READY, STATUS and RESTARTS cells and the last restart time, as `printPod` computes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// Ready containers (regular ones plus started restartable init containers).
    pub ready: usize,
    /// Containers counted for READY.
    pub total: usize,
    /// The STATUS text.
    pub reason: String,
    /// Restarts counted.
    pub restarts: i64,
    /// When the most recent counted restart happened.
    pub last_restart: Option<Timestamp>,
}

/// `printPod`'s status logic.
pub fn pod_summary(pod: &Pod) -> PodSummary {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let total = spec.containers.len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init_container(c))
            .count();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    if status.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    }) {
        reason = "SchedulingGated".into();
    }
    let later = |acc: &mut Option<Timestamp>, t: Option<Timestamp>| {
        if let Some(t) = t
            && acc.is_none_or(|a| a < t)
        {
            *acc = Some(t);
        }
    };
    let last_finished = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        c.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| t.0)
    };

    let mut initializing = false;
    let init_statuses = status.init_container_statuses.clone().unwrap_or_default();
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        later(&mut last_restart, last_finished(c));
        let restartable = is_restartable_init(pod, &c.name);
        if restartable {
            restartable_restarts += i64::from(c.restart_count);
            later(&mut last_restartable_restart, last_finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if restartable && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(s) => format!("Init:Signal:{s}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || has_condition_true(pod, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        let statuses = status.container_statuses.clone().unwrap_or_default();
        for c in statuses.iter().rev() {
            restarts += i64::from(c.restart_count);
            later(&mut last_restart, last_finished(c));
            let state = c.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(s) => format!("Signal:{s}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() && status.reason.as_deref() == Some("NodeLost") {
        reason = "Unknown".into();
    } else if pod.metadata.deletion_timestamp.is_some() && phase != "Succeeded" && phase != "Failed"
    {
        reason = "Terminating".into();
    }
    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// The nine cells of a pod row.
pub fn pod_cells(pod: &Pod, now: Timestamp) -> Vec<Value> {
    let s = pod_summary(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(t), now)),
        _ => s.restarts.to_string(),
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let or_none = |v: Option<String>| {
        v.filter(|v| !v.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    let ip = or_none(
        status
            .pod_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .map(|ip| ip.ip.clone()),
    );
    let gates = match spec.readiness_gates.as_ref().filter(|g| !g.is_empty()) {
        None => "<none>".to_string(),
        Some(gates) => {
            let conds = status.conditions.clone().unwrap_or_default();
            let n = gates
                .iter()
                .filter(|g| {
                    conds
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{n}/{}", gates.len())
        }
    };
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.reason),
        json!(restarts),
        json!(since(
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            now
        )),
        json!(ip),
        json!(or_none(spec.node_name.clone())),
        json!(or_none(status.nominated_node_name.clone())),
        json!(gates),
    ]
}

/// The row conditions `printPod` adds for finished pods (kubectl dims them).
pub fn pod_row_conditions(pod: &Pod) -> Option<Value> {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(
            json!([{"type": "Completed", "status": "True", "reason": "PodCompleted", "message": "The pod has completed successfully."}]),
        ),
        Some("Failed") => Some(
            json!([{"type": "Completed", "status": "True", "reason": "PodFailed", "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

/// The ten cells of a node row.
pub fn node_cells(node: &Node, now: Timestamp) -> Vec<Value> {
    let status = node.status.clone().unwrap_or_default();
    let mut state: Vec<String> = status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| {
            if c.status == "True" {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .into_iter()
        .collect();
    if state.is_empty() {
        state.push("Unknown".into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        state.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
            if !r.is_empty() {
                roles.push(r.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.push(v.clone());
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |t: &str| {
        status
            .addresses
            .as_ref()
            .and_then(|a| a.iter().find(|a| a.type_ == t))
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = status.node_info.clone().unwrap_or_default();
    let or_unknown = |s: String| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s
        }
    };
    vec![
        json!(node.metadata.name.clone().unwrap_or_default()),
        json!(state.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(since(
            node.metadata.creation_timestamp.as_ref().map(|t| t.0),
            now
        )),
        json!(info.kubelet_version),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_unknown(info.os_image)),
        json!(or_unknown(info.kernel_version)),
        json!(or_unknown(info.container_runtime_version)),
    ]
}

/// The ten cells of an event row.
pub fn event_cells(e: &Event, now: Timestamp) -> Vec<Value> {
    let first = e
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0));
    let first_seen = since(first, now);
    let last_seen = match &e.last_timestamp {
        Some(t) => since(Some(t.0), now),
        None => first_seen.clone(),
    };
    let count = if e.count.unwrap_or(0) == 0 {
        1
    } else {
        e.count.unwrap_or(1)
    };
    let obj = &e.involved_object;
    let kind = obj.kind.clone().unwrap_or_default().to_lowercase();
    let target = match obj.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = e.source.as_ref().map(|s| {
        let component = s.component.clone().unwrap_or_default();
        match s.host.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => format!("{component}, {h}"),
            None => component,
        }
    });
    vec![
        json!(last_seen),
        json!(e.type_.clone().unwrap_or_default()),
        json!(e.reason.clone().unwrap_or_default()),
        json!(target),
        json!(obj.field_path.clone().unwrap_or_default()),
        json!(source.unwrap_or_default()),
        json!(e.message.clone().unwrap_or_default().trim()),
        json!(first_seen),
        json!(count),
        json!(e.metadata.name.clone().unwrap_or_default()),
    ]
}

/// The three cells of a namespace row.
pub fn namespace_cells(ns: &Namespace, now: Timestamp) -> Vec<Value> {
    vec![
        json!(ns.metadata.name.clone().unwrap_or_default()),
        json!(
            ns.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        ),
        json!(since(
            ns.metadata.creation_timestamp.as_ref().map(|t| t.0),
            now
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn human_durations_like_kubectl() {
        // apimachinery duration_test.go TestHumanDuration
        let cases = [
            (SignedDuration::from_secs(1), "1s"),
            (SignedDuration::from_millis(1500), "1s"),
            (SignedDuration::from_secs(70), "70s"),
            (SignedDuration::from_secs(119), "119s"),
            (SignedDuration::from_secs(120), "2m"),
            (SignedDuration::from_secs(190), "3m10s"),
            (SignedDuration::from_secs(600), "10m"),
            (SignedDuration::from_secs(10799), "179m"),
            (SignedDuration::from_secs(3 * 3600), "3h"),
            (SignedDuration::from_secs(3 * 3600 + 5 * 60), "3h5m"),
            (SignedDuration::from_secs(8 * 3600), "8h"),
            (SignedDuration::from_secs(47 * 3600), "47h"),
            (SignedDuration::from_secs(48 * 3600), "2d"),
            (SignedDuration::from_secs(51 * 3600), "2d3h"),
            (SignedDuration::from_secs(8 * 24 * 3600), "8d"),
            (SignedDuration::from_secs(2 * 365 * 24 * 3600), "2y"),
            (
                SignedDuration::from_secs((2 * 365 + 10) * 24 * 3600),
                "2y10d",
            ),
            (SignedDuration::from_secs(9 * 365 * 24 * 3600), "9y"),
            (SignedDuration::from_millis(-500), "0s"),
            (SignedDuration::from_secs(-5), "<invalid>"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_status_column() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let running = |name: &str, ready: bool| json!({"name": name, "ready": ready, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}});
        let cases: Vec<(Value, &str, &str, &str)> = vec![
            (
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [running("a", true), running("b", true)]}}),
                "2/2",
                "Running",
                "0",
            ),
            (
                json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
                    "containerStatuses": [{"name": "a", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2025-01-01T00:55:00Z"}}}]}}),
                "0/1",
                "CrashLoopBackOff",
                "3 (5m ago)",
            ),
            (
                json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a"}]}, "status": {"phase": "Succeeded",
                    "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                "0/1",
                "Completed",
                "0",
            ),
            (
                json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}, "status": {"phase": "Pending",
                    "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}],
                    "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"waiting": {"reason": "PodInitializing"}}}]}}),
                "0/1",
                "Init:0/1",
                "0",
            ),
            (
                json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}, "status": {"phase": "Pending",
                    "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 2, "image": "", "imageID": "",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                "0/1",
                "Init:CrashLoopBackOff",
                "2",
            ),
            (
                json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}, "status": {"phase": "Failed",
                    "initContainerStatuses": [{"name": "i", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                        "state": {"terminated": {"exitCode": 2}}}]}}),
                "0/1",
                "Init:ExitCode:2",
                "0",
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:59:00Z"}, "spec": {"containers": [{"name": "a"}]},
                    "status": {"phase": "Running", "containerStatuses": [running("a", true)]}}),
                "1/1",
                "Terminating",
                "0",
            ),
            (
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [running("a", true), {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                "1/2",
                "NotReady",
                "0",
            ),
            (
                json!({"spec": {"initContainers": [{"name": "s", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "s", "ready": true, "started": true, "restartCount": 1, "image": "", "imageID": "", "state": {"running": {}}}],
                    "containerStatuses": [running("a", true)]}}),
                "2/2",
                "Running",
                "1",
            ),
        ];
        for (v, ready, status, restarts) in cases {
            let p = pod(v.clone());
            let cells = pod_cells(&p, now);
            assert_eq!(cells[1], ready, "{v}");
            assert_eq!(cells[2], status, "{v}");
            assert_eq!(cells[3], restarts, "{v}");
        }
    }

    #[test]
    fn pod_wide_cells() {
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let p = pod(
            json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:50:00Z"},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x"}]},
            "status": {"podIPs": [{"ip": "10.0.0.5"}], "conditions": [{"type": "x", "status": "True"}]}}),
        );
        let cells = pod_cells(&p, now);
        assert_eq!(cells[0], "web");
        assert_eq!(cells[4], "10m");
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "node1");
        assert_eq!(cells[7], "<none>");
        assert_eq!(cells[8], "1/1");
    }

    #[test]
    fn node_cells_roles_and_status() {
        let now: Timestamp = "2025-01-03T00:00:00Z".parse().unwrap();
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}],
              "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
              "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "x://1",
                "architecture": "", "bootID": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "", "systemUUID": ""}}})).unwrap();
        let c = node_cells(&n, now);
        assert_eq!(c[1], "NotReady,SchedulingDisabled");
        assert_eq!(c[2], "control-plane,worker");
        assert_eq!(c[3], "2d");
        assert_eq!(c[5], "10.0.0.1");
        assert_eq!(c[6], "<none>");
    }

    #[test]
    fn row_objects() {
        let p = pod(json!({"metadata": {"name": "web", "namespace": "default"}}));
        let r = row(vec![json!("web")], None, &p, IncludeObject::Metadata);
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["metadata"]["namespace"], "default");
        let r = row(vec![json!("web")], None, &p, IncludeObject::None);
        assert!(r.get("object").is_none());
        let r = row(vec![json!("web")], None, &p, IncludeObject::Object);
        assert_eq!(r["object"]["kind"], "Pod");
    }
}
