//! Pod phase: `getPhase` from `pkg/kubelet/kubelet_pods.go` and the "no way back from a terminal
//! phase" rule of `generateAPIPodStatus` / the status manager.
//!
//! Mirrors Kubernetes 1.34 with the alpha gate `ContainerRestartRules` off (per-container
//! restart rules are not honoured; the pod's `restartPolicy` decides).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{find_status, has_any_regular_container_started};
use crate::api::pod::{is_restartable_init_container, is_static};

/// `Pending`: accepted, but one or more containers has not been started.
pub const PENDING: &str = "Pending";
/// `Running`: all containers started, at least one still running or restarting.
pub const RUNNING: &str = "Running";
/// `Succeeded`: all containers terminated with exit 0 and won't be restarted.
pub const SUCCEEDED: &str = "Succeeded";
/// `Failed`: all containers terminated, at least one in failure, and won't be restarted.
pub const FAILED: &str = "Failed";
/// `Unknown`: exists in the API; never produced by this logic.
pub const UNKNOWN: &str = "Unknown";

/// True for `Succeeded` and `Failed`.
pub fn is_terminal(phase: &str) -> bool {
    phase == SUCCEEDED || phase == FAILED
}

/// The phase of a pod from its container statuses, exactly as the kubelet's `getPhase`.
///
/// `init_statuses` are matched against `spec.initContainers`, `statuses` against
/// `spec.containers`. `pod_is_terminal` is true once the pod worker has decided the pod is
/// finished (terminating or terminated); for static pods it has no effect (kubelet TODO #116484)
/// and the restartPolicy rules decide, e.g. `Always` → `Running`.
pub fn get_phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
) -> String {
    let Some(spec) = pod.spec.as_ref() else {
        return PENDING.to_string();
    };
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");

    let mut pending_restartable_init = 0;
    let mut pending_regular_init = 0;
    let mut failed_initialization = 0;

    // Regular init containers.
    for c in init_containers
        .iter()
        .filter(|c| !is_restartable_init_container(c))
    {
        let Some(st) = find_status(init_statuses, &c.name) else {
            pending_regular_init += 1;
            continue;
        };
        let state = st.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            pending_regular_init += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            if t.exit_code != 0 {
                failed_initialization += 1;
            }
        } else if state.and_then(|s| s.waiting.as_ref()).is_some() {
            match last_terminated_exit_code(st) {
                Some(code) if code != 0 => failed_initialization += 1,
                Some(_) => {}
                None => pending_regular_init += 1,
            }
        } else {
            pending_regular_init += 1;
        }
    }

    let mut unknown = 0;
    let mut running = 0;
    let mut waiting = 0;
    let mut stopped = 0;
    let mut succeeded = 0;

    // Sidecar (restartable) init containers: only running / never-started ones count.
    for c in init_containers
        .iter()
        .filter(|c| is_restartable_init_container(c))
    {
        let Some(st) = find_status(init_statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            if st.started != Some(true) {
                pending_restartable_init += 1;
            }
            running += 1;
        } else if state.and_then(|s| s.terminated.as_ref()).is_some() {
            // Terminated sidecars are not taken into account for the pod phase.
        } else if state.and_then(|s| s.waiting.as_ref()).is_some() {
            if last_terminated_exit_code(st).is_none() {
                pending_restartable_init += 1;
                waiting += 1;
            }
        } else {
            pending_restartable_init += 1;
            unknown += 1;
        }
    }

    for c in &spec.containers {
        let Some(st) = find_status(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.and_then(|s| s.waiting.as_ref()).is_some() {
            if last_terminated_exit_code(st).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_initialization > 0 && restart_policy == "Never" {
        return FAILED.to_string();
    }

    // The pod has been initialized once a regular container started; a restarting sidecar
    // must not put it back into Pending then.
    let pod_has_initialized = has_any_regular_container_started(pod, statuses);
    let phase = if pending_regular_init > 0
        || (pending_restartable_init > 0 && !pod_has_initialized)
        || waiting > 0
    {
        PENDING
    } else if running > 0 && unknown == 0 {
        RUNNING
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal && !is_static(pod) {
            if stopped == succeeded {
                SUCCEEDED
            } else {
                FAILED
            }
        } else if restart_policy == "Always" {
            RUNNING
        } else if stopped == succeeded {
            SUCCEEDED
        } else if restart_policy == "Never" {
            FAILED
        } else {
            // OnFailure with at least one failure: restarting.
            RUNNING
        }
    } else {
        PENDING
    };
    phase.to_string()
}

/// The phase to report given the previously reported one: a pod never leaves `Succeeded` or
/// `Failed` (`generateAPIPodStatus` three-way merge, status manager).
pub fn next_phase(old: &str, new: &str) -> String {
    if is_terminal(old) && new != old {
        old.to_string()
    } else {
        new.to_string()
    }
}

fn last_terminated_exit_code(st: &ContainerStatus) -> Option<i32> {
    st.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}
