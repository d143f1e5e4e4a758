//! The predicates every part of the kubelet asks of a pod: its full name, its priority, whether it
//! is critical or static, whether an init container is a sidecar. One copy each, on the ground
//! floor, so that eviction, cm, status and the pod workers need not import one another for them.
//!
//! Mirrors `pkg/kubelet/container` (`GetPodFullName`), `k8s.io/component-helpers/scheduling/corev1`
//! (`PodPriority`), `pkg/kubelet/types/pod_update.go` (`IsStaticPod`,
//! `IsCriticalPodBasedOnPriority`) and `pkg/api/v1/pod` (`IsRestartableInitContainer`).

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::resources::CONTAINER_RESTART_POLICY_ALWAYS;
use super::static_pod::{API_SOURCE, CONFIG_SOURCE_ANNOTATION, NAMESPACE_DEFAULT};

/// `scheduling.SystemCriticalPriority`: pods at or above it are critical.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// Priority of the `system-node-critical` class.
pub const SYSTEM_NODE_CRITICAL_PRIORITY: i32 = SYSTEM_CRITICAL_PRIORITY + 1000;

/// The init containers, then the regular ones, each with its field path
/// (`spec.initContainers[0]`, `spec.containers[1]`), for messages that name the field.
pub fn container_paths(spec: &PodSpec) -> Vec<(String, &Container)> {
    let init = spec.init_containers.iter().flatten().enumerate();
    let init = init.map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let main = spec.containers.iter().enumerate();
    let main = main.map(|(i, c)| (format!("spec.containers[{i}]"), c));
    init.chain(main).collect()
}

/// `<namespace>/<name>`: the kubelet's full name of a pod, unique per node.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata
            .namespace
            .as_deref()
            .unwrap_or(NAMESPACE_DEFAULT),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `corev1helpers.PodPriority`: `spec.priority`, else the built-in classes' values, else 0.
pub fn pod_priority(pod: &Pod) -> i32 {
    let spec = pod.spec.as_ref();
    if let Some(p) = spec.and_then(|s| s.priority) {
        return p;
    }
    match spec.and_then(|s| s.priority_class_name.as_deref()) {
        Some("system-node-critical") => SYSTEM_NODE_CRITICAL_PRIORITY,
        Some("system-cluster-critical") => SYSTEM_CRITICAL_PRIORITY,
        _ => 0,
    }
}

/// Critical by priority (`IsCriticalPodBasedOnPriority`). Unlike the kubelet's `IsCriticalPod`,
/// being a static pod does not make a pod critical here (minikubelet runs only static pods).
pub fn is_critical(pod: &Pod) -> bool {
    pod_priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

/// `kubetypes.IsStaticPod`: the pod's config source annotation is present and is not `api`.
///
/// minikubelet's file source sets `kubernetes.io/config.source: file` on every pod.
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|source| source != API_SOURCE)
}

/// `podutil.IsRestartableInitContainer`: an init container with `restartPolicy: Always`, i.e. a
/// sidecar. Only meaningful for entries of `spec.initContainers`.
pub fn is_restartable_init_container(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some(CONTAINER_RESTART_POLICY_ALWAYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    #[test]
    fn priority_and_critical() {
        let mut p = Pod::default();
        assert_eq!(pod_priority(&p), 0);
        assert!(!is_critical(&p));
        p.spec = Some(PodSpec {
            priority_class_name: Some("system-node-critical".into()),
            ..Default::default()
        });
        assert_eq!(pod_priority(&p), 2_000_001_000);
        assert!(is_critical(&p));
        p.spec.as_mut().unwrap().priority = Some(5);
        assert!(!is_critical(&p), "an explicit priority wins");
    }

    #[test]
    fn full_name_defaults_the_namespace() {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        assert_eq!(full_name(&p), "default/web");
        p.metadata.namespace = Some("kube-system".into());
        assert_eq!(full_name(&p), "kube-system/web");
    }

    #[test]
    fn sidecar_is_an_init_container_that_restarts_always() {
        let mut c = Container::default();
        assert!(!is_restartable_init_container(&c));
        c.restart_policy = Some("Always".into());
        assert!(is_restartable_init_container(&c));
    }
}
