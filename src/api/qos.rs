//! A pod's QoS class: Guaranteed, Burstable or BestEffort.
//!
//! Mirrors `pkg/apis/core/v1/helper/qos/qos.go` (`ComputePodQOS`): only cpu and memory count,
//! over init and regular containers; zero quantities are ignored; Guaranteed needs cpu and
//! memory limits on every container and the summed requests equal to the summed limits.
//! Pod-level `spec.resources` (gate PodLevelResources) is not implemented: validation reports
//! it as unsupported and it does not take part here.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use super::quantity::Quantity;
use super::resources::ContainerResources;

/// A pod's quality-of-service class (`v1.PodQOSClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has equal cpu and memory requests and limits.
    Guaranteed,
    /// Anything between.
    Burstable,
    /// No container requests or limits cpu or memory.
    BestEffort,
}

impl QosClass {
    /// The API spelling: `Guaranteed`, `Burstable`, `BestEffort`.
    pub fn as_str(&self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Computes the pod's QoS class from its spec (`ComputePodQOS`).
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    // Running sums of the positive cpu and memory requests and limits.
    let mut requests: [Option<Quantity>; 2] = [None, None];
    let mut limits: [Option<Quantity>; 2] = [None, None];
    let mut is_guaranteed = true;
    let positive = |q: Option<Quantity>| q.filter(|q| q.sign().is_gt());
    let add = |sum: &mut Option<Quantity>, q: Quantity| *sum = Some(sum.map_or(q, |s| s + q));
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = ContainerResources::of(c);
        for (i, q) in [r.requests.cpu, r.requests.memory].into_iter().enumerate() {
            if let Some(q) = positive(q) {
                add(&mut requests[i], q);
            }
        }
        let mut limits_found = 0;
        for (i, q) in [r.limits.cpu, r.limits.memory].into_iter().enumerate() {
            if let Some(q) = positive(q) {
                add(&mut limits[i], q);
                limits_found += 1;
            }
        }
        if limits_found < 2 {
            is_guaranteed = false;
        }
    }
    if requests.iter().all(Option::is_none) && limits.iter().all(Option::is_none) {
        return QosClass::BestEffort;
    }
    if is_guaranteed {
        for (req, lim) in requests.iter().zip(limits.iter()) {
            if let Some(req) = req
                && *lim != Some(*req)
            {
                is_guaranteed = false;
            }
        }
    }
    let count = |l: &[Option<Quantity>; 2]| l.iter().filter(|q| q.is_some()).count();
    if is_guaranteed && count(&requests) == count(&limits) {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::test_support::{container, pod, sidecar};

    #[test]
    fn qos_test_go_cases() {
        // From pkg/apis/core/v1/helper/qos/qos_test.go (TestComputePodQOS).
        let table = vec![
            (
                "guaranteed",
                pod(
                    vec![],
                    vec![container(
                        "a",
                        "cpu=100m,memory=100Mi",
                        "cpu=100m,memory=100Mi",
                    )],
                ),
                QosClass::Guaranteed,
            ),
            (
                "guaranteed, two containers",
                pod(
                    vec![],
                    vec![
                        container("a", "cpu=100m,memory=100Mi", "cpu=100m,memory=100Mi"),
                        container("b", "cpu=100m,memory=100Mi", "cpu=100m,memory=100Mi"),
                    ],
                ),
                QosClass::Guaranteed,
            ),
            (
                "guaranteed with a zero extended resource",
                pod(
                    vec![],
                    vec![container(
                        "a",
                        "cpu=100m,memory=100Mi,nvidia.com/gpu=2",
                        "cpu=100m,memory=100Mi,nvidia.com/gpu=2",
                    )],
                ),
                QosClass::Guaranteed,
            ),
            (
                "best-effort",
                pod(vec![], vec![container("a", "", ""), container("b", "", "")]),
                QosClass::BestEffort,
            ),
            (
                "best-effort with extended resources only",
                pod(
                    vec![],
                    vec![container("a", "nvidia.com/gpu=2", "nvidia.com/gpu=2")],
                ),
                QosClass::BestEffort,
            ),
            (
                "best-effort with zero quantities",
                pod(
                    vec![],
                    vec![container("a", "cpu=0,memory=0", "cpu=0,memory=0")],
                ),
                QosClass::BestEffort,
            ),
            (
                "burstable: one container without limits",
                pod(
                    vec![],
                    vec![
                        container("a", "cpu=100m,memory=100Mi", "cpu=100m,memory=100Mi"),
                        container("b", "", ""),
                    ],
                ),
                QosClass::Burstable,
            ),
            (
                "burstable: requests below limits",
                pod(
                    vec![],
                    vec![container("a", "cpu=5m,memory=10Mi", "cpu=10m,memory=100Mi")],
                ),
                QosClass::Burstable,
            ),
            (
                "burstable: missing memory limit",
                pod(
                    vec![],
                    vec![container("a", "cpu=100m,memory=100Mi", "cpu=100m")],
                ),
                QosClass::Burstable,
            ),
            (
                "burstable: a request without any limit",
                pod(vec![], vec![container("a", "cpu=10m", "")]),
                QosClass::Burstable,
            ),
            (
                "burstable: init container without limits",
                pod(
                    vec![container("init", "", "")],
                    vec![container(
                        "a",
                        "cpu=100m,memory=100Mi",
                        "cpu=100m,memory=100Mi",
                    )],
                ),
                QosClass::Burstable,
            ),
            (
                "burstable: init container request differs",
                pod(
                    vec![container(
                        "init",
                        "cpu=10m,memory=10Mi",
                        "cpu=100m,memory=100Mi",
                    )],
                    vec![container(
                        "a",
                        "cpu=100m,memory=100Mi",
                        "cpu=100m,memory=100Mi",
                    )],
                ),
                QosClass::Burstable,
            ),
            (
                "guaranteed with a guaranteed sidecar",
                pod(
                    vec![sidecar("s", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi")],
                    vec![container("a", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi")],
                ),
                QosClass::Guaranteed,
            ),
            (
                "sums are compared, not each container",
                pod(
                    vec![],
                    vec![
                        container("a", "cpu=1,memory=1Gi", "cpu=2,memory=1Gi"),
                        container("b", "cpu=2,memory=1Gi", "cpu=1,memory=1Gi"),
                    ],
                ),
                QosClass::Guaranteed,
            ),
        ];
        for (name, p, want) in table {
            assert_eq!(qos_class(&p), want, "{name}");
        }
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
        assert_eq!(QosClass::Guaranteed.to_string(), "Guaranteed");
    }
}
