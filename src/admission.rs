//! Pod admission: may this pod run on this node next to the pods already admitted?
//!
//! Mirrors the kubelet's predicate admit handler (`pkg/kubelet/lifecycle/predicate.go`) and
//! the scheduler's `AdmissionCheck` it calls (`noderesources.Fits`, node affinity +
//! nodeSelector, `NodeName`, `NodePorts`). Pure: the caller passes the node's allocatable
//! resources and labels and the pods admitted before, and turns a [`Rejection`] into a
//! `Failed` pod with [`rejected_status`] plus a Warning event with the same reason and message.
//!
//! Deliberate deviations from the kubelet:
//! - **No preemption.** For a critical pod (every static pod) that doesn't fit, the kubelet
//!   tries to preempt lower-priority pods and, on a node of static pods only, finds none and
//!   reports `UnexpectedAdmissionError` ("... no set of running pods found to reclaim
//!   resources: [(res: memory, q: N), ]"). minikubelet runs only static pods, so it never
//!   preempts and reports the fit failure itself (`OutOfmemory`, `OutOfcpu`, ...), which says
//!   what is actually wrong.
//! - **No taint check.** The kubelet skips it for static pods, and all pods here are static.
//! - No device plugins, extended resources, `SupplementalGroupsPolicy` or `InvalidNodeInfo`
//!   (node info is always local).

use crate::api::resources::{ResourceAmounts, pod_requests};
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerPort, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodStatus,
};

/// The pod's `kubernetes.io/os` label doesn't match the node.
pub const POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH: &str = "PodOSSelectorNodeLabelDoesNotMatch";
/// `spec.os.name` doesn't match the node's OS.
pub const POD_OS_NOT_SUPPORTED: &str = "PodOSNotSupported";
/// Not enough allocatable CPU.
pub const OUT_OF_CPU: &str = "OutOfcpu";
/// Not enough allocatable memory.
pub const OUT_OF_MEMORY: &str = "OutOfmemory";
/// Not enough allocatable ephemeral storage.
pub const OUT_OF_EPHEMERAL_STORAGE: &str = "OutOfephemeral-storage";
/// `maxPods` reached.
pub const OUT_OF_PODS: &str = "OutOfpods";
/// Required node affinity or nodeSelector doesn't match the node (scheduler plugin name).
pub const NODE_AFFINITY: &str = "NodeAffinity";
/// `spec.nodeName` names another node (scheduler plugin name).
pub const NODE_NAME: &str = "NodeName";
/// A requested host port is taken (scheduler plugin name).
pub const NODE_PORTS: &str = "NodePorts";
/// Refused by the eviction manager under node pressure.
pub const EVICTED: &str = "Evicted";
/// Admission failed for a reason that could not be categorised.
pub const UNEXPECTED_ADMISSION_ERROR: &str = "UnexpectedAdmissionError";

/// `nodeaffinity.ErrReasonPod`.
const ERR_REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `nodename.ErrReason`.
const ERR_REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// `nodeports.ErrReason`.
const ERR_REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// The well-known OS label (`v1.LabelOSStable`).
const LABEL_OS: &str = "kubernetes.io/os";
/// `HostPortInfo`'s wildcard address.
const BIND_ALL_HOST_IP: &str = "0.0.0.0";

/// Node resources available to pods (allocatable = capacity − reserved − hard eviction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Maximum number of pods (`maxPods`).
    pub pods: i64,
}

/// What admission needs to know about the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name (`metadata.name`).
    pub name: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Allocatable resources.
    pub allocatable: Resources,
}

/// Why a pod was not admitted (`PodAdmitResult` with `Admit: false`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pod rejected: {reason}: {message}")]
pub struct Rejection {
    /// Machine-readable reason, e.g. `OutOfmemory`.
    pub reason: String,
    /// Human-readable message, e.g. `Node didn't have enough resource: memory, ...`.
    pub message: String,
}

impl Rejection {
    fn new(reason: &str, message: impl Into<String>) -> Self {
        Rejection {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    fn predicate(name: &str, desc: &str) -> Self {
        Self::new(name, format!("Predicate {name} failed: {desc}"))
    }
}

/// The status the kubelet's `rejectPod` sets: phase `Failed`, the reason, and the message
/// prefixed with `Pod was rejected: `. `qosClass` is left to the caller.
pub fn rejected_status(rej: &Rejection) -> PodStatus {
    PodStatus {
        phase: Some("Failed".to_string()),
        reason: Some(rej.reason.clone()),
        message: Some(format!("Pod was rejected: {}", rej.message)),
        ..Default::default()
    }
}

/// The eviction manager's admit handler, the second step after [`admit`]
/// (`eviction_manager.go` `Admit`): under MemoryPressure BestEffort pods are refused unless they
/// tolerate `node.kubernetes.io/memory-pressure:NoSchedule`; under any other pressure condition
/// every pod is refused; reason `Evicted`, message `The node had condition: [DiskPressure]. `.
/// Pods critical by priority are always admitted. Deviation: the kubelet also admits every
/// static pod as critical; minikubelet runs only static pods and refuses them like any pod.
pub fn admit_under_pressure(
    conditions: &[crate::eviction::helpers::NodeCondition],
    pod: &Pod,
) -> Result<(), Rejection> {
    crate::eviction::helpers::admit_under_pressure(conditions, pod)
        .map_err(|message| Rejection::new(EVICTED, message))
}

/// The sysctl admit handler (`pkg/kubelet/sysctl`): reason `SysctlForbidden`.
pub fn admit_sysctls(allowlist: &crate::sysctl::Allowlist, pod: &Pod) -> Result<(), Rejection> {
    allowlist
        .admit(pod)
        .map_err(|m| Rejection::new(crate::sysctl::SYSCTL_FORBIDDEN, m))
}

/// The security admit step (the kubelet's AppArmor admit handler, and minikubelet's refusal of
/// every other security setting it does not enforce: `crate::security_context::admit`), then
/// the refusal of volumes it would not set up as asked (`crate::volumes::admit`).
pub fn admit_security_context(pod: &Pod) -> Result<(), Rejection> {
    crate::security_context::admit(pod).map_err(|e| Rejection::new(e.reason, e.message))?;
    crate::volumes::admit(pod).map_err(|e| Rejection::new(e.reason, e.message))
}

/// Admit `pod` onto `node` next to the already `admitted` pods (the kubelet's active pods,
/// excluding `pod` itself), in the kubelet's order; only the first failure is reported.
pub fn admit(node: &NodeInfo, admitted: &[&Pod], pod: &Pod) -> Result<(), Rejection> {
    // Checks that preemption would not help come first.
    if reject_based_on_os_selector(pod, node) {
        return Err(Rejection::new(
            POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH,
            "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label",
        ));
    }
    if reject_based_on_os_field(pod) {
        return Err(Rejection::new(
            POD_OS_NOT_SUPPORTED,
            "Failed to admit pod as the OS field doesn't match node OS",
        ));
    }

    // AdmissionCheck: resources, node affinity, node name, host ports.
    fits_resources(node, admitted, pod)?;
    if !matches_required_node_affinity(pod, node) {
        return Err(Rejection::predicate(
            NODE_AFFINITY,
            ERR_REASON_NODE_AFFINITY,
        ));
    }
    if !fits_node_name(pod, node) {
        return Err(Rejection::predicate(NODE_NAME, ERR_REASON_NODE_NAME));
    }
    if !fits_host_ports(pod, admitted) {
        return Err(Rejection::predicate(NODE_PORTS, ERR_REASON_NODE_PORTS));
    }
    Ok(())
}

/// `rejectPodAdmissionBasedOnOSSelector`: the node's OS label is taken to be the running OS
/// (the kubelet overwrites a missing or different label with GOOS), and a pod *label*
/// `kubernetes.io/os` must equal it. nodeSelector is not looked at here.
fn reject_based_on_os_selector(pod: &Pod, node: &NodeInfo) -> bool {
    let node_os = match node.labels.get(LABEL_OS) {
        Some(os) if os == std::env::consts::OS => os.as_str(),
        _ => std::env::consts::OS,
    };
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_OS))
        .is_some_and(|want| want != node_os)
}

/// `rejectPodAdmissionBasedOnOSField`: `spec.os.name` must be the running OS.
fn reject_based_on_os_field(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.os.as_ref())
        .is_some_and(|os| os.name != std::env::consts::OS)
}

// ---- resource fit (noderesources.Fits) ----

/// `noderesources.fitsRequest`: pod count first, then cpu, memory, ephemeral-storage.
fn fits_resources(node: &NodeInfo, admitted: &[&Pod], pod: &Pod) -> Result<(), Rejection> {
    let alloc = node.allocatable;
    let used_pods = i64::try_from(admitted.len()).unwrap_or(i64::MAX);
    if used_pods.saturating_add(1) > alloc.pods {
        return Err(insufficient("pods", 1, used_pods, alloc.pods));
    }
    let want = pod_requests(pod);
    if want == ResourceAmounts::default() {
        return Ok(());
    }
    let used = admitted
        .iter()
        .map(|p| pod_requests(p))
        .fold(ResourceAmounts::default(), ResourceAmounts::saturating_add);
    let checks = [
        ("cpu", want.milli_cpu, used.milli_cpu, alloc.milli_cpu),
        ("memory", want.memory, used.memory, alloc.memory),
        (
            "ephemeral-storage",
            want.ephemeral_storage,
            used.ephemeral_storage,
            alloc.ephemeral_storage,
        ),
    ];
    for (name, requested, used, capacity) in checks {
        if requested > 0 && requested > capacity.saturating_sub(used) {
            return Err(insufficient(name, requested, used, capacity));
        }
    }
    Ok(())
}

/// `InsufficientResourceError` → reason `OutOf<resource>` and its message.
fn insufficient(resource: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    Rejection {
        reason: format!("OutOf{resource}"),
        message: format!(
            "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
}

// ---- node affinity and nodeSelector (component-helpers nodeaffinity.RequiredNodeAffinity) ----

/// `GetRequiredNodeAffinity(pod).Match(node)`: nodeSelector labels AND the required node
/// affinity terms (OR of terms).
fn matches_required_node_affinity(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(ns) => ns.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// One `NodeSelectorTerm`: all matchExpressions and all matchFields; an empty term matches
/// nothing, and a term with an invalid requirement is skipped (does not match).
fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels_ok = exprs
        .iter()
        .map(|r| label_requirement_matches(r, &node.labels))
        .collect::<Option<Vec<bool>>>();
    let fields_ok = fields
        .iter()
        .map(|r| field_requirement_matches(r, node))
        .collect::<Option<Vec<bool>>>();
    match (labels_ok, fields_ok) {
        (Some(l), Some(f)) => l.into_iter().chain(f).all(|ok| ok),
        _ => false,
    }
}

/// A label requirement (`nodeSelectorRequirementsAsSelector` + `labels.Requirement.Matches`);
/// `None` when the requirement itself is invalid.
fn label_requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> Option<bool> {
    let values = r.values.as_deref().unwrap_or_default();
    let label = labels.get(&r.key);
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => None,
        "In" => Some(label.is_some_and(|v| values.contains(v))),
        "NotIn" => Some(!label.is_some_and(|v| values.contains(v))),
        "Exists" | "DoesNotExist" if !values.is_empty() => None,
        "Exists" => Some(label.is_some()),
        "DoesNotExist" => Some(label.is_none()),
        "Gt" | "Lt" => {
            let [want] = values else { return None };
            let want: i64 = want.parse().ok()?;
            let have = label.and_then(|v| v.parse::<i64>().ok());
            Some(have.is_some_and(|h| {
                if r.operator == "Gt" {
                    h > want
                } else {
                    h < want
                }
            }))
        }
        _ => None,
    }
}

/// A field requirement (`nodeSelectorRequirementsAsFieldSelector`): only `In`/`NotIn` with
/// exactly one value; the node's only field is `metadata.name`.
fn field_requirement_matches(r: &NodeSelectorRequirement, node: &NodeInfo) -> Option<bool> {
    let [want] = r.values.as_deref().unwrap_or_default() else {
        return None;
    };
    let have = if r.key == "metadata.name" {
        node.name.as_str()
    } else {
        ""
    };
    match r.operator.as_str() {
        "In" => Some(have == want),
        "NotIn" => Some(have != want),
        _ => None,
    }
}

// ---- node name and host ports ----

/// `nodename.Fits`: empty or equal to the node's name.
fn fits_node_name(pod: &Pod, node: &NodeInfo) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == node.name)
}

/// `schedutil.GetHostPorts`: ports with a host port, of sidecars and regular containers.
fn host_ports(pod: &Pod) -> Vec<&ContainerPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| crate::api::pod::is_restartable_init_container(c));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.as_deref().unwrap_or_default())
        .filter(|p| p.host_port.is_some_and(|hp| hp > 0))
        .collect()
}

/// (host IP, protocol, port) with `HostPortInfo.sanitize` defaults: `0.0.0.0`, `TCP`.
fn sanitized(p: &ContainerPort) -> (&str, &str, i32) {
    let ip = p
        .host_ip
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(BIND_ALL_HOST_IP);
    let proto = p
        .protocol
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("TCP");
    (ip, proto, p.host_port.unwrap_or(0))
}

/// `nodeports.Fits` via `HostPortInfo.CheckConflict`: `0.0.0.0` conflicts with the same
/// protocol/port on any IP; a specific IP conflicts with itself and `0.0.0.0`.
fn fits_host_ports(pod: &Pod, admitted: &[&Pod]) -> bool {
    let used: Vec<(&str, &str, i32)> = admitted
        .iter()
        .flat_map(|p| host_ports(p))
        .map(sanitized)
        .collect();
    host_ports(pod)
        .into_iter()
        .map(sanitized)
        .all(|(ip, proto, port)| {
            !used.iter().any(|&(uip, uproto, uport)| {
                uproto == proto
                    && uport == port
                    && (ip == BIND_ALL_HOST_IP || uip == BIND_ALL_HOST_IP || uip == ip)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, PodOS, PodSpec, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn q(list: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    }
    fn c(name: &str, requests: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: q(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
    fn pod_with(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
    fn req_pod(requests: &[(&str, &str)]) -> Pod {
        pod_with(vec![c("app", requests)])
    }
    fn node() -> NodeInfo {
        NodeInfo {
            name: "machine".into(),
            labels: BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), "machine".to_string()),
                ("zone".to_string(), "a".to_string()),
                ("cores".to_string(), "8".to_string()),
            ]),
            allocatable: Resources {
                milli_cpu: 10,
                memory: 20,
                ephemeral_storage: 100,
                pods: 32,
            },
        }
    }
    fn with_spec(mut p: Pod, f: impl FnOnce(&mut PodSpec)) -> Pod {
        f(p.spec.as_mut().unwrap());
        p
    }
    fn reason(r: Result<(), Rejection>) -> Option<String> {
        r.err().map(|e| e.reason)
    }

    #[test]
    fn resource_fit() {
        // predicate_test.go TestGeneralPredicates: node cpu 10m, memory 20, pods 32.
        let existing = req_pod(&[("cpu", "5m"), ("memory", "19")]);
        let node = node();
        #[allow(clippy::type_complexity)] // (name, admitted, pod, expected (reason, message))
        let cases: Vec<(&str, Vec<&Pod>, Pod, Option<(&str, &str)>)> = vec![
            ("no requests", vec![&existing], req_pod(&[]), None),
            (
                "fits",
                vec![],
                req_pod(&[("cpu", "8m"), ("memory", "10")]),
                None,
            ),
            (
                "not enough cpu and memory: cpu reported first",
                vec![&existing],
                req_pod(&[("cpu", "8m"), ("memory", "10")]),
                Some((
                    OUT_OF_CPU,
                    "Node didn't have enough resource: cpu, requested: 8, used: 5, capacity: 10",
                )),
            ),
            (
                "not enough memory",
                vec![&existing],
                req_pod(&[("cpu", "1m"), ("memory", "2")]),
                Some((
                    OUT_OF_MEMORY,
                    "Node didn't have enough resource: memory, requested: 2, used: 19, capacity: 20",
                )),
            ),
            (
                "exactly full fits",
                vec![&existing],
                req_pod(&[("cpu", "5m"), ("memory", "1")]),
                None,
            ),
            (
                "not enough ephemeral storage",
                vec![],
                req_pod(&[("ephemeral-storage", "101")]),
                Some((
                    OUT_OF_EPHEMERAL_STORAGE,
                    "Node didn't have enough resource: ephemeral-storage, requested: 101, used: 0, capacity: 100",
                )),
            ),
            (
                "init container larger than the node",
                vec![],
                with_spec(req_pod(&[]), |s| {
                    s.init_containers = Some(vec![c("i", &[("memory", "21")])])
                }),
                Some((
                    OUT_OF_MEMORY,
                    "Node didn't have enough resource: memory, requested: 21, used: 0, capacity: 20",
                )),
            ),
        ];
        for (name, admitted, p, want) in cases {
            let got = admit(&node, &admitted, &p).err();
            let got = got
                .as_ref()
                .map(|r| (r.reason.as_str(), r.message.as_str()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pod_count_is_checked_first() {
        let mut n = node();
        n.allocatable.pods = 1;
        let existing = req_pod(&[("cpu", "9m")]);
        let err = admit(&n, &[&existing], &req_pod(&[("cpu", "8m")])).unwrap_err();
        assert_eq!(
            err,
            Rejection {
                reason: OUT_OF_PODS.into(),
                message:
                    "Node didn't have enough resource: pods, requested: 1, used: 1, capacity: 1"
                        .into(),
            }
        );
        // Even a pod with no requests counts against maxPods.
        assert_eq!(
            reason(admit(&n, &[&existing], &req_pod(&[]))),
            Some(OUT_OF_PODS.into())
        );
        assert_eq!(reason(admit(&n, &[], &req_pod(&[]))), None);
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }
    fn exprs(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(rs),
            match_fields: None,
        }
    }
    fn fields(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(rs),
        }
    }
    fn affinity_pod(terms: Vec<NodeSelectorTerm>) -> Pod {
        with_spec(req_pod(&[]), |s| {
            s.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        })
    }

    #[test]
    fn node_affinity_and_selector() {
        let sel = |pairs: &[(&str, &str)]| {
            with_spec(req_pod(&[]), |s| {
                s.node_selector = Some(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            })
        };
        let cases: Vec<(&str, Pod, bool)> = vec![
            ("no constraints", req_pod(&[]), true),
            ("nodeSelector matches", sel(&[("zone", "a")]), true),
            ("empty nodeSelector", sel(&[]), true),
            ("nodeSelector value differs", sel(&[("zone", "b")]), false),
            (
                "nodeSelector label missing",
                sel(&[("zone", "a"), ("gpu", "yes")]),
                false,
            ),
            (
                "In",
                affinity_pod(vec![exprs(vec![req("zone", "In", &["b", "a"])])]),
                true,
            ),
            (
                "In misses",
                affinity_pod(vec![exprs(vec![req("zone", "In", &["b"])])]),
                false,
            ),
            (
                "In on missing label",
                affinity_pod(vec![exprs(vec![req("x", "In", &["a"])])]),
                false,
            ),
            (
                "NotIn",
                affinity_pod(vec![exprs(vec![req("zone", "NotIn", &["b"])])]),
                true,
            ),
            (
                "NotIn hit",
                affinity_pod(vec![exprs(vec![req("zone", "NotIn", &["a"])])]),
                false,
            ),
            (
                "NotIn on missing label",
                affinity_pod(vec![exprs(vec![req("x", "NotIn", &["a"])])]),
                true,
            ),
            (
                "Exists",
                affinity_pod(vec![exprs(vec![req("zone", "Exists", &[])])]),
                true,
            ),
            (
                "Exists missing",
                affinity_pod(vec![exprs(vec![req("x", "Exists", &[])])]),
                false,
            ),
            (
                "DoesNotExist",
                affinity_pod(vec![exprs(vec![req("x", "DoesNotExist", &[])])]),
                true,
            ),
            (
                "DoesNotExist present",
                affinity_pod(vec![exprs(vec![req("zone", "DoesNotExist", &[])])]),
                false,
            ),
            (
                "Gt",
                affinity_pod(vec![exprs(vec![req("cores", "Gt", &["4"])])]),
                true,
            ),
            (
                "Gt equal",
                affinity_pod(vec![exprs(vec![req("cores", "Gt", &["8"])])]),
                false,
            ),
            (
                "Lt",
                affinity_pod(vec![exprs(vec![req("cores", "Lt", &["16"])])]),
                true,
            ),
            (
                "Lt smaller",
                affinity_pod(vec![exprs(vec![req("cores", "Lt", &["2"])])]),
                false,
            ),
            (
                "Gt non-numeric label",
                affinity_pod(vec![exprs(vec![req("zone", "Gt", &["1"])])]),
                false,
            ),
            (
                "Gt missing label",
                affinity_pod(vec![exprs(vec![req("x", "Gt", &["1"])])]),
                false,
            ),
            (
                "expressions are ANDed",
                affinity_pod(vec![exprs(vec![
                    req("zone", "In", &["a"]),
                    req("cores", "Gt", &["10"]),
                ])]),
                false,
            ),
            (
                "terms are ORed",
                affinity_pod(vec![
                    exprs(vec![req("zone", "In", &["b"])]),
                    exprs(vec![req("cores", "Gt", &["1"])]),
                ]),
                true,
            ),
            ("no terms match nothing", affinity_pod(vec![]), false),
            (
                "empty term matches nothing",
                affinity_pod(vec![NodeSelectorTerm::default()]),
                false,
            ),
            (
                "empty term is skipped, another matches",
                affinity_pod(vec![
                    NodeSelectorTerm::default(),
                    exprs(vec![req("zone", "Exists", &[])]),
                ]),
                true,
            ),
            (
                "invalid requirement skips the term",
                affinity_pod(vec![
                    exprs(vec![req("zone", "In", &[])]),
                    exprs(vec![req("zone", "Exists", &["a"])]),
                ]),
                false,
            ),
            (
                "invalid Gt value",
                affinity_pod(vec![exprs(vec![req("cores", "Gt", &["x"])])]),
                false,
            ),
            (
                "Gt with two values",
                affinity_pod(vec![exprs(vec![req("cores", "Gt", &["1", "2"])])]),
                false,
            ),
            (
                "unknown operator",
                affinity_pod(vec![exprs(vec![req("zone", "Like", &["a"])])]),
                false,
            ),
            (
                "matchFields In",
                affinity_pod(vec![fields(vec![req("metadata.name", "In", &["machine"])])]),
                true,
            ),
            (
                "matchFields In other",
                affinity_pod(vec![fields(vec![req("metadata.name", "In", &["other"])])]),
                false,
            ),
            (
                "matchFields NotIn",
                affinity_pod(vec![fields(vec![req(
                    "metadata.name",
                    "NotIn",
                    &["other"],
                )])]),
                true,
            ),
            (
                "matchFields two values is invalid",
                affinity_pod(vec![fields(vec![req(
                    "metadata.name",
                    "In",
                    &["machine", "x"],
                )])]),
                false,
            ),
            (
                "matchFields Exists is invalid",
                affinity_pod(vec![fields(vec![req("metadata.name", "Exists", &[])])]),
                false,
            ),
            (
                "expressions and fields in one term are ANDed",
                affinity_pod(vec![NodeSelectorTerm {
                    match_expressions: Some(vec![req("zone", "In", &["a"])]),
                    match_fields: Some(vec![req("metadata.name", "In", &["other"])]),
                }]),
                false,
            ),
            (
                "nodeSelector AND affinity",
                with_spec(
                    affinity_pod(vec![exprs(vec![req("zone", "In", &["a"])])]),
                    |s| {
                        s.node_selector =
                            Some(BTreeMap::from([("zone".to_string(), "b".to_string())]));
                    },
                ),
                false,
            ),
        ];
        for (name, p, want) in cases {
            let got = admit(&node(), &[], &p);
            if want {
                assert_eq!(got, Ok(()), "{name}");
            } else {
                assert_eq!(
                    got,
                    Err(Rejection {
                        reason: NODE_AFFINITY.into(),
                        message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector".into(),
                    }),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn node_name() {
        let named = |n: &str| with_spec(req_pod(&[]), |s| s.node_name = Some(n.into()));
        assert_eq!(admit(&node(), &[], &named("machine")), Ok(()));
        assert_eq!(admit(&node(), &[], &named("")), Ok(()));
        assert_eq!(
            admit(&node(), &[], &named("other")),
            Err(Rejection {
                reason: NODE_NAME.into(),
                message: "Predicate NodeName failed: node(s) didn't match the requested node name"
                    .into(),
            })
        );
    }

    fn port_pod(ports: &[(&str, &str, i32)]) -> Pod {
        pod_with(vec![Container {
            name: "app".into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(ip, proto, port)| ContainerPort {
                        container_port: 80,
                        host_ip: (!ip.is_empty()).then(|| ip.to_string()),
                        protocol: (!proto.is_empty()).then(|| proto.to_string()),
                        host_port: Some(*port),
                        name: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }])
    }

    #[test]
    fn host_ports() {
        // Mirrors the scheduler's nodeports / HostPortInfo tests.
        type P = &'static [(&'static str, &'static str, i32)];
        let cases: Vec<(&str, P, P, bool)> = vec![
            ("nothing used", &[], &[("", "TCP", 8080)], true),
            (
                "same port, defaults",
                &[("", "", 8080)],
                &[("", "", 8080)],
                false,
            ),
            (
                "empty protocol is TCP",
                &[("", "TCP", 8080)],
                &[("", "", 8080)],
                false,
            ),
            (
                "other protocol",
                &[("", "UDP", 8080)],
                &[("", "TCP", 8080)],
                true,
            ),
            (
                "other port",
                &[("", "TCP", 8080)],
                &[("", "TCP", 8081)],
                true,
            ),
            (
                "different specific IPs",
                &[("127.0.0.1", "TCP", 8080)],
                &[("127.0.0.2", "TCP", 8080)],
                true,
            ),
            (
                "same specific IP",
                &[("127.0.0.1", "TCP", 8080)],
                &[("127.0.0.1", "TCP", 8080)],
                false,
            ),
            (
                "used on 0.0.0.0, want specific",
                &[("0.0.0.0", "TCP", 8080)],
                &[("127.0.0.1", "TCP", 8080)],
                false,
            ),
            (
                "used specific, want 0.0.0.0",
                &[("127.0.0.1", "TCP", 8080)],
                &[("0.0.0.0", "TCP", 8080)],
                false,
            ),
            (
                "used specific, want default IP",
                &[("127.0.0.1", "TCP", 8080)],
                &[("", "TCP", 8080)],
                false,
            ),
            (
                "0.0.0.0 other protocol",
                &[("0.0.0.0", "UDP", 8080)],
                &[("127.0.0.1", "TCP", 8080)],
                true,
            ),
            (
                "hostPort 0 is not a host port",
                &[("", "TCP", 0)],
                &[("", "TCP", 0)],
                true,
            ),
            (
                "second wanted port conflicts",
                &[("", "TCP", 9090)],
                &[("", "TCP", 8080), ("", "TCP", 9090)],
                false,
            ),
        ];
        for (name, used, want, fits) in cases {
            let existing = port_pod(used);
            let got = admit(&node(), &[&existing], &port_pod(want));
            if fits {
                assert_eq!(got, Ok(()), "{name}");
            } else {
                assert_eq!(
                    got,
                    Err(Rejection {
                        reason: NODE_PORTS.into(),
                        message: "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports".into(),
                    }),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn host_ports_of_sidecars_count_regular_init_containers_do_not() {
        let init_with_port = |restart: Option<&str>| {
            with_spec(req_pod(&[]), |s| {
                s.init_containers = Some(vec![Container {
                    name: "i".into(),
                    restart_policy: restart.map(str::to_string),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }]);
            })
        };
        let taken = port_pod(&[("", "TCP", 8080)]);
        assert_eq!(
            reason(admit(&node(), &[&taken], &init_with_port(Some("Always")))),
            Some(NODE_PORTS.into())
        );
        assert_eq!(
            reason(admit(&node(), &[&taken], &init_with_port(None))),
            None
        );
        // And the other way round: an admitted sidecar holds its port.
        let side = init_with_port(Some("Always"));
        assert_eq!(
            reason(admit(&node(), &[&side], &taken)),
            Some(NODE_PORTS.into())
        );
    }

    #[test]
    fn os_checks() {
        let os = std::env::consts::OS;
        let labeled = |v: &str| {
            let mut p = req_pod(&[]);
            p.metadata.labels = Some(BTreeMap::from([(LABEL_OS.to_string(), v.to_string())]));
            p
        };
        let with_os = |v: &str| with_spec(req_pod(&[]), |s| s.os = Some(PodOS { name: v.into() }));
        let mut lying = node();
        lying.labels.insert(LABEL_OS.into(), "windows".into());
        let cases: Vec<(&str, NodeInfo, Pod, Option<&str>)> = vec![
            ("label matches", node(), labeled(os), None),
            (
                "label differs",
                node(),
                labeled("windows"),
                Some(POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH),
            ),
            (
                "node label is overridden by the running OS",
                lying.clone(),
                labeled(os),
                None,
            ),
            (
                "node label windows does not admit windows pods",
                lying,
                labeled("windows"),
                Some(POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH),
            ),
            ("spec.os matches", node(), with_os(os), None),
            (
                "spec.os differs",
                node(),
                with_os("windows"),
                Some(POD_OS_NOT_SUPPORTED),
            ),
        ];
        for (name, n, p, want) in cases {
            assert_eq!(
                reason(admit(&n, &[], &p)),
                want.map(str::to_string),
                "{name}"
            );
        }
        let err = admit(&node(), &[], &labeled("windows")).unwrap_err();
        assert_eq!(
            err.message,
            "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
        );
        let err = admit(&node(), &[], &with_os("windows")).unwrap_err();
        assert_eq!(
            err.message,
            "Failed to admit pod as the OS field doesn't match node OS"
        );
    }

    #[test]
    fn only_the_first_reason_is_reported() {
        let everything_wrong = || {
            let mut p = with_spec(port_pod(&[("", "TCP", 80)]), |s| {
                s.node_name = Some("other".into());
                s.node_selector = Some(BTreeMap::from([("zone".to_string(), "b".to_string())]));
                s.containers[0].resources = Some(ResourceRequirements {
                    requests: q(&[("memory", "1Gi")]),
                    ..Default::default()
                });
            });
            p.metadata.labels = Some(BTreeMap::from([(
                LABEL_OS.to_string(),
                "windows".to_string(),
            )]));
            p
        };
        let n = node();
        let taken = port_pod(&[("", "TCP", 80)]);
        let mut p = everything_wrong();
        assert_eq!(
            reason(admit(&n, &[&taken], &p)),
            Some(POD_OS_SELECTOR_NODE_LABEL_DOES_NOT_MATCH.into())
        );
        p.metadata.labels = None;
        assert_eq!(reason(admit(&n, &[&taken], &p)), Some(OUT_OF_MEMORY.into()));
        p.spec.as_mut().unwrap().containers[0].resources = None;
        assert_eq!(reason(admit(&n, &[&taken], &p)), Some(NODE_AFFINITY.into()));
        p.spec.as_mut().unwrap().node_selector = None;
        assert_eq!(reason(admit(&n, &[&taken], &p)), Some(NODE_NAME.into()));
        p.spec.as_mut().unwrap().node_name = None;
        assert_eq!(reason(admit(&n, &[&taken], &p)), Some(NODE_PORTS.into()));
        assert_eq!(reason(admit(&n, &[], &p)), None);
    }

    #[test]
    fn rejected_status_is_failed_with_prefixed_message() {
        let rej = Rejection {
            reason: OUT_OF_MEMORY.into(),
            message:
                "Node didn't have enough resource: memory, requested: 2, used: 19, capacity: 20"
                    .into(),
        };
        let st = rejected_status(&rej);
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(st.reason.as_deref(), Some("OutOfmemory"));
        assert_eq!(
            st.message.as_deref(),
            Some(
                "Pod was rejected: Node didn't have enough resource: memory, requested: 2, used: 19, capacity: 20"
            )
        );
        assert_eq!(st.conditions, None);
        assert_eq!(st.qos_class, None);
        assert_eq!(
            rej.to_string(),
            "pod rejected: OutOfmemory: Node didn't have enough resource: memory, requested: 2, used: 19, capacity: 20"
        );
    }
}
