//! The `oom_score_adj` each container's processes get, from the pod's QoS class and the
//! container's memory request.
//!
//! Mirrors `pkg/kubelet/qos/policy.go` (`GetContainerOOMScoreAdjust`, `isSidecarContainer`,
//! `minRegularContainerMemory`). Pod-level memory requests (gate PodLevelResources) are not
//! implemented.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::api::pod::is_restartable_init_container;
use crate::api::qos::{QosClass, qos_class};
use crate::api::resources::ContainerResources;
use crate::api::static_pod::is_node_critical_pod;

/// The kubelet's own `oom_score_adj`.
pub const KUBELET_OOM_SCORE_ADJ: i32 = -999;
/// kube-proxy's `oom_score_adj`.
pub const KUBE_PROXY_OOM_SCORE_ADJ: i32 = -999;
/// Guaranteed and node-critical containers: killed last.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// BestEffort containers: killed first.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// The `oom_score_adj` for `container` of `pod` on a node with `memory_capacity` bytes
/// (`GetContainerOOMScoreAdjust`): -997 for node-critical pods and Guaranteed pods, 1000 for
/// BestEffort, and for Burstable `1000 - 1000 * request / capacity` kept within [3, 999]; a
/// sidecar never scores above the regular container with the smallest memory request.
///
/// A non-positive capacity (unknown) is treated as "the request is nothing", giving 999,
/// where the kubelet would divide by zero.
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i32 {
    if is_node_critical_pod(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let score = |memory_request: i64| -> i64 {
        if memory_capacity <= 0 {
            return 1000;
        }
        let used = 1000 * i128::from(memory_request) / i128::from(memory_capacity);
        (1000 - used).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    let mut adjust = score(memory_request(container));
    if is_sidecar_container(pod, container)
        && let Some(min) = min_regular_container_memory(pod)
    {
        adjust = adjust.min(score(min));
    }
    // Burstable must stay above what a Guaranteed pod using all memory can reach ...
    let floor = i64::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
    if adjust < floor {
        return floor as i32;
    }
    // ... and below BestEffort.
    if adjust == i64::from(BEST_EFFORT_OOM_SCORE_ADJ) {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    adjust.min(i64::from(BEST_EFFORT_OOM_SCORE_ADJ)) as i32
}

fn memory_request(container: &Container) -> i64 {
    ContainerResources::of(container)
        .requests
        .memory
        .map_or(0, |q| q.value())
}

/// A container with `restartPolicy: Always` that is one of the pod's init containers
/// (`isSidecarContainer`).
fn is_sidecar_container(pod: &Pod, container: &Container) -> bool {
    is_restartable_init_container(container)
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|init| init.iter().any(|c| c.name == container.name))
}

/// The smallest memory request among the regular containers (`minRegularContainerMemory`).
fn min_regular_container_memory(pod: &Pod) -> Option<i64> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .map(memory_request)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::test_support::{container, pod, sidecar};
    use crate::api::static_pod::CONFIG_SOURCE_ANNOTATION;
    use std::collections::BTreeMap;

    const GI: i64 = 1 << 30;

    fn adj(p: &Pod, index: usize, capacity: i64) -> i32 {
        let spec = p.spec.as_ref().unwrap();
        container_oom_score_adj(p, &spec.containers[index], capacity)
    }

    #[test]
    fn qos_classes() {
        let capacity = 64 * GI;
        let best_effort = pod(vec![], vec![container("a", "", "")]);
        assert_eq!(adj(&best_effort, 0, capacity), 1000);
        let guaranteed = pod(
            vec![],
            vec![container("a", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi")],
        );
        assert_eq!(adj(&guaranteed, 0, capacity), -997);
        // The reference example: 8 GiB request on 64 GiB.
        let burstable = pod(vec![], vec![container("a", "memory=8Gi", "")]);
        assert_eq!(adj(&burstable, 0, capacity), 875);
    }

    #[test]
    fn burstable_bounds() {
        // policy_test.go: cpu-only request -> 999; request of half the memory -> 500;
        // request above capacity -> 3.
        let capacity = 8_000_000_000;
        let cpu_only = pod(vec![], vec![container("a", "cpu=100m", "")]);
        assert_eq!(adj(&cpu_only, 0, capacity), 999);
        let half = pod(vec![], vec![container("a", "memory=4G", "memory=8G")]);
        assert_eq!(adj(&half, 0, capacity), 500);
        let huge = pod(vec![], vec![container("a", "memory=10G", "")]);
        assert_eq!(adj(&huge, 0, capacity), 3);
        let tiny = pod(vec![], vec![container("a", "memory=1", "")]);
        assert_eq!(adj(&tiny, 0, capacity), 999);
        let all = pod(vec![], vec![container("a", "memory=7.99G", "")]);
        assert_eq!(adj(&all, 0, capacity), 3);
        assert_eq!(adj(&half, 0, 0), 999);
    }

    #[test]
    fn node_critical_static_pods() {
        let mut p = pod(vec![], vec![container("a", "", "")]);
        p.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_SOURCE_ANNOTATION.to_string(),
            "file".to_string(),
        )]));
        // A static BestEffort pod is critical but not node-critical.
        assert_eq!(adj(&p, 0, 64 * GI), 1000);
        p.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
        assert_eq!(adj(&p, 0, 64 * GI), -997);
    }

    #[test]
    fn sidecars_are_capped_to_the_smallest_regular_container() {
        let capacity = 8_000_000_000;
        let p = pod(
            vec![sidecar("s", "memory=1G", "")],
            vec![
                container("a", "memory=4G", ""),
                container("b", "memory=2G", ""),
            ],
        );
        let side = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        // Own score 875, smallest regular container (2G) scores 750: the sidecar gets 750.
        assert_eq!(container_oom_score_adj(&p, side, capacity), 750);
        assert_eq!(adj(&p, 0, capacity), 500);
        assert_eq!(adj(&p, 1, capacity), 750);
        // A sidecar with a bigger request than every regular container keeps its own score.
        let p = pod(
            vec![sidecar("s", "memory=6G", "")],
            vec![container("a", "memory=2G", "")],
        );
        let side = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        assert_eq!(container_oom_score_adj(&p, side, capacity), 250);
    }
}
