//! Pod status as the kubelet reports it: phase, kubelet-owned conditions and container state
//! reasons. Pure functions over k8s-openapi types; the pod worker owns the status and calls
//! these.
//!
//! Mirrors `getPhase` / the condition part of `generateAPIPodStatus` in
//! `pkg/kubelet/kubelet_pods.go`, `pkg/kubelet/status/generate.go` and the status manager's
//! `lastTransitionTime` handling (`pkg/kubelet/status/status_manager.go`). `status.qosClass`
//! is left to the caller (the api module computes QoS).

pub mod conditions;
pub mod phase;
pub mod reasons;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

pub use conditions::generate_conditions;
pub use phase::{get_phase, next_phase};
pub use reasons::default_waiting_state;

/// `kubecontainer.HasAnyRegularContainerStarted`: some regular container is running or terminated.
pub fn has_any_regular_container_started(pod: &Pod, statuses: &[ContainerStatus]) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    statuses.iter().any(|st| {
        spec.containers.iter().any(|c| c.name == st.name)
            && st
                .state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    })
}

/// `podutil.GetContainerStatus`: the status of the named container.
pub(crate) fn find_status<'a>(
    statuses: &'a [ContainerStatus],
    name: &str,
) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}
