//! Kubelet-owned pod conditions: `pkg/kubelet/status/generate.go`, the condition part of
//! `generateAPIPodStatus` (`kubelet_pods.go`) and the status manager's
//! `updateLastTransitionTime`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::phase::{FAILED, SUCCEEDED};
use super::{find_status, has_any_regular_container_started};
use crate::api::pod::is_restartable_init_container;

/// Condition type: the sandbox exists and its network is configured.
pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
/// Condition type: all init containers completed (sidecars: started).
pub const INITIALIZED: &str = "Initialized";
/// Condition type: the pod can serve (containers ready and readiness gates true).
pub const READY: &str = "Ready";
/// Condition type: all containers ready.
pub const CONTAINERS_READY: &str = "ContainersReady";
/// Condition type: the pod is bound to a node; always True on the kubelet.
pub const POD_SCHEDULED: &str = "PodScheduled";
/// Condition type: the pod is about to be terminated by a disruption (eviction, preemption).
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// Condition status `True`.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";

/// Reason: all container statuses are unknown. The kubelet uses it only for a `nil` status
/// list, which its own status generation never passes; slices here are never "nil", so missing
/// statuses are reported per container ("containers with unknown status: [...]") instead.
pub const UNKNOWN_CONTAINER_STATUSES: &str = "UnknownContainerStatuses";
/// Reason: all related containers have succeeded.
pub const POD_COMPLETED: &str = "PodCompleted";
/// Reason: the pod has failed, so its containers are not ready.
pub const POD_FAILED: &str = "PodFailed";
/// Reason: one or more containers are not ready.
pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
/// Reason: one or more init containers have not succeeded.
pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
/// Reason: one or more readiness gates are not ready.
pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// The kubelet-owned conditions whose `lastTransitionTime` the status manager maintains.
const KUBELET_OWNED: [&str; 5] = [
    POD_READY_TO_START_CONTAINERS,
    INITIALIZED,
    READY,
    CONTAINERS_READY,
    POD_SCHEDULED,
];

/// All pod conditions the kubelet reports, in its order: (`DisruptionTarget` carried over from
/// `old`), `PodReadyToStartContainers`, `Initialized`, `Ready`, `ContainersReady`,
/// `PodScheduled`.
///
/// `ContainerStatus.ready` must already hold the readiness the prober computed (running,
/// started, and readiness probe absent or Success; for regular init containers: terminated
/// with exit 0) and `started` the startup state. `sandbox_ready` is true when the pod's sandbox
/// exists and needs no recreation (`PodSandboxChanged` false). `lastTransitionTime` is kept from
/// `old` when a condition's status did not change, else set to `now`.
pub fn generate_conditions(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
    sandbox_ready: bool,
    old: Option<&PodStatus>,
    now: Timestamp,
) -> Vec<PodCondition> {
    let old_conditions = old
        .and_then(|o| o.conditions.as_deref())
        .unwrap_or_default();
    let mut conditions = Vec::with_capacity(6);

    // Disruption conditions are one-time facts set at eviction; they are copied, not regenerated.
    if let Some(c) = old_conditions.iter().find(|c| c.type_ == DISRUPTION_TARGET) {
        conditions.push(c.clone());
    }
    conditions.push(pod_ready_to_start_containers_condition(pod, sandbox_ready));
    conditions.push(pod_initialized_condition(
        pod,
        init_statuses,
        statuses,
        phase,
    ));
    let ready = pod_ready_condition(pod, &conditions, init_statuses, statuses, phase);
    conditions.push(ready);
    conditions.push(containers_ready_condition(
        pod,
        init_statuses,
        statuses,
        phase,
    ));
    conditions.push(condition(pod, POD_SCHEDULED, TRUE, None, None));

    for c in conditions
        .iter_mut()
        .filter(|c| KUBELET_OWNED.contains(&c.type_.as_str()))
    {
        update_last_transition_time(c, old_conditions, now);
    }
    conditions
}

/// `GeneratePodReadyToStartContainersCondition`: True once the sandbox is ready.
pub fn pod_ready_to_start_containers_condition(pod: &Pod, sandbox_ready: bool) -> PodCondition {
    let status = if sandbox_ready { TRUE } else { FALSE };
    condition(pod, POD_READY_TO_START_CONTAINERS, status, None, None)
}

/// `GeneratePodInitializedCondition`: True when every init container completed (sidecars:
/// started), or once any regular container has started.
pub fn pod_initialized_condition(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let init_containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in init_containers {
        let Some(st) = find_status(init_statuses, &c.name) else {
            unknown.push(c.name.as_str());
            continue;
        };
        let initialized = if is_restartable_init_container(c) {
            st.started == Some(true)
        } else {
            st.ready
        };
        if !initialized {
            incomplete.push(c.name.as_str());
        }
    }

    if phase == SUCCEEDED && unknown.is_empty() {
        return condition(pod, INITIALIZED, TRUE, Some(POD_COMPLETED), None);
    }
    // A regular container started: the pod was initialized before, even if a sidecar restarts.
    if has_any_regular_container_started(pod, statuses) {
        return condition(pod, INITIALIZED, TRUE, None, None);
    }

    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        condition(pod, INITIALIZED, TRUE, None, None)
    } else {
        let message = messages.join(", ");
        condition(
            pod,
            INITIALIZED,
            FALSE,
            Some(CONTAINERS_NOT_INITIALIZED),
            Some(message),
        )
    }
}

/// `GenerateContainersReadyCondition`: True when every regular container and every sidecar
/// is ready.
pub fn containers_ready_condition(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let empty = Vec::new();
    let (init_containers, containers) = match pod.spec.as_ref() {
        Some(s) => (s.init_containers.as_ref().unwrap_or(&empty), &s.containers),
        None => (&empty, &empty),
    };

    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = init_containers
        .iter()
        .filter(|c| is_restartable_init_container(c))
        .map(|c| (c, init_statuses));
    let regular = containers.iter().map(|c| (c, statuses));
    for (c, list) in sidecars.chain(regular) {
        match find_status(list, &c.name) {
            Some(st) if !st.ready => unready.push(c.name.as_str()),
            Some(_) => {}
            None => unknown.push(c.name.as_str()),
        }
    }

    if (phase == SUCCEEDED && unknown.is_empty()) || phase == FAILED {
        return terminal_phase_condition(pod, CONTAINERS_READY, phase);
    }

    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        condition(pod, CONTAINERS_READY, TRUE, None, None)
    } else {
        let message = messages.join(", ");
        condition(
            pod,
            CONTAINERS_READY,
            FALSE,
            Some(CONTAINERS_NOT_READY),
            Some(message),
        )
    }
}

/// `GeneratePodReadyCondition`: `ContainersReady`, then every readiness gate's condition (looked
/// up in `conditions`) must be True.
pub fn pod_ready_condition(
    pod: &Pod,
    conditions: &[PodCondition],
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let cr = containers_ready_condition(pod, init_statuses, statuses, phase);
    if cr.status != TRUE {
        return PodCondition {
            type_: READY.to_string(),
            ..cr
        };
    }

    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    let mut messages = Vec::new();
    for g in gates {
        match conditions.iter().find(|c| c.type_ == g.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                g.condition_type
            )),
            Some(c) if c.status != TRUE => messages.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                g.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition(pod, READY, TRUE, None, None)
    } else {
        let message = messages.join(", ");
        condition(
            pod,
            READY,
            FALSE,
            Some(READINESS_GATES_NOT_READY),
            Some(message),
        )
    }
}

/// The status manager's `updateLastTransitionTime`: keep the old time when the status is
/// unchanged, else `now`.
fn update_last_transition_time(c: &mut PodCondition, old: &[PodCondition], now: Timestamp) {
    let kept = old
        .iter()
        .find(|o| o.type_ == c.type_ && o.status == c.status)
        .and_then(|o| o.last_transition_time.clone());
    c.last_transition_time = Some(kept.unwrap_or(Time(now)));
}

fn terminal_phase_condition(pod: &Pod, type_: &str, phase: &str) -> PodCondition {
    let reason = match phase {
        FAILED => Some(POD_FAILED),
        SUCCEEDED => Some(POD_COMPLETED),
        _ => None,
    };
    condition(pod, type_, FALSE, reason, None)
}

fn condition(
    pod: &Pod,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        // PodObservedGenerationTracking (beta, on in 1.34): the generation the kubelet saw.
        observed_generation: pod.metadata.generation.filter(|g| *g > 0),
        last_probe_time: None,
        last_transition_time: None,
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}
