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

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

pub use conditions::generate_conditions;
pub use phase::{get_phase, next_phase};
pub use reasons::default_waiting_state;

/// Annotation the config sources set to name a pod's source (`kubernetes.io/config.source`).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Config source value of pods that come from the API server.
pub const API_SERVER_SOURCE: &str = "api";

/// `kubetypes.IsStaticPod`: the pod's config source annotation is present and is not `api`.
///
/// minikubelet's file source sets `kubernetes.io/config.source: file` on every pod.
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s != API_SERVER_SOURCE)
}

/// `podutil.IsRestartableInitContainer`: an init container with `restartPolicy: Always` (sidecar).
pub fn is_restartable_init_container(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

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
