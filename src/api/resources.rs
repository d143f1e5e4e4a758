//! Pod and container resource totals (cpu, memory, ephemeral-storage) and host ports, computed
//! the way the scheduler's fit check and the kubelet's admission see them.
//!
//! Mirrors `k8s.io/component-helpers/resource` (`PodRequests`, `PodLimits`,
//! `AggregateContainerRequests`, including the sidecar rules of KEP-753) and the scheduler's
//! `util.GetHostPorts` / `HostPortInfo`. Quantities are parsed once per container into
//! [`ContainerResources`]; sums stay exact and are rounded up only when converted to
//! [`ResourceAmounts`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::pod::is_restartable_init_container;
use super::quantity::Quantity;

/// The `cpu` resource name.
pub const CPU: &str = "cpu";
/// The `memory` resource name.
pub const MEMORY: &str = "memory";
/// The `ephemeral-storage` resource name.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The `restartPolicy` value that makes an init container a sidecar.
pub const CONTAINER_RESTART_POLICY_ALWAYS: &str = "Always";

/// cpu, memory and ephemeral-storage of one resource list, parsed once; `None` = not listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceQuantities {
    /// `cpu`.
    pub cpu: Option<Quantity>,
    /// `memory`.
    pub memory: Option<Quantity>,
    /// `ephemeral-storage`.
    pub ephemeral_storage: Option<Quantity>,
}

impl ResourceQuantities {
    /// Parses the three resources of an API resource list. Entries that do not parse count as
    /// absent: validation reports them, and a pod that failed validation never runs.
    pub fn from_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> ResourceQuantities {
        let Some(list) = list else {
            return ResourceQuantities::default();
        };
        let get = |name: &str| list.get(name).and_then(|q| Quantity::from_api(q).ok());
        ResourceQuantities {
            cpu: get(CPU),
            memory: get(MEMORY),
            ephemeral_storage: get(EPHEMERAL_STORAGE),
        }
    }

    /// Adds `other` into `self`, resource by resource (`addResourceList`).
    pub fn add(&mut self, other: &ResourceQuantities) {
        fn add(a: &mut Option<Quantity>, b: Option<Quantity>) {
            if let Some(b) = b {
                *a = Some(a.map_or(b, |a| a + b));
            }
        }
        add(&mut self.cpu, other.cpu);
        add(&mut self.memory, other.memory);
        add(&mut self.ephemeral_storage, other.ephemeral_storage);
    }

    /// Raises `self` to `other` wherever `other` is greater or `self` has no entry
    /// (`maxResourceList`).
    pub fn max(&mut self, other: &ResourceQuantities) {
        fn max(a: &mut Option<Quantity>, b: Option<Quantity>) {
            if let Some(b) = b
                && a.is_none_or(|a| b > a)
            {
                *a = Some(b);
            }
        }
        max(&mut self.cpu, other.cpu);
        max(&mut self.memory, other.memory);
        max(&mut self.ephemeral_storage, other.ephemeral_storage);
    }

    /// Rounded amounts: cpu in millicores (`MilliValue`), bytes for the others (`Value`);
    /// absent entries count as 0.
    pub fn amounts(&self) -> ResourceAmounts {
        ResourceAmounts {
            milli_cpu: self.cpu.map_or(0, |q| q.milli_value()),
            memory: self.memory.map_or(0, |q| q.value()),
            ephemeral_storage: self.ephemeral_storage.map_or(0, |q| q.value()),
        }
    }
}

/// One container's requests and limits, parsed once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerResources {
    /// `resources.requests`.
    pub requests: ResourceQuantities,
    /// `resources.limits`.
    pub limits: ResourceQuantities,
}

impl ContainerResources {
    /// Parses a container's `resources`.
    pub fn of(container: &Container) -> ContainerResources {
        let res = container.resources.as_ref();
        ContainerResources {
            requests: ResourceQuantities::from_list(res.and_then(|r| r.requests.as_ref())),
            limits: ResourceQuantities::from_list(res.and_then(|r| r.limits.as_ref())),
        }
    }
}

/// Rounded resource amounts, as the scheduler's `framework.Resource` holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceAmounts {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

impl ResourceAmounts {
    /// Field-wise saturating sum.
    pub fn saturating_add(self, other: ResourceAmounts) -> ResourceAmounts {
        ResourceAmounts {
            milli_cpu: self.milli_cpu.saturating_add(other.milli_cpu),
            memory: self.memory.saturating_add(other.memory),
            ephemeral_storage: self
                .ephemeral_storage
                .saturating_add(other.ephemeral_storage),
        }
    }
}

/// Which list of each container to aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// `resources.requests`.
    Requests,
    /// `resources.limits`.
    Limits,
}

/// Aggregates one list over all containers with the sidecar rules
/// (`aggregateContainerResourcesByFn`): max(sum of regular containers and sidecars, each init
/// container plus the sidecars started before it). `container_fn` sees each container's
/// effective list in that computation (the `ContainerFn` hook of `PodResourcesOptions`).
pub fn aggregate_container_resources(
    pod: &Pod,
    kind: ResourceKind,
    mut container_fn: impl FnMut(&ResourceQuantities),
) -> ResourceQuantities {
    let pick = |c: &Container| {
        let r = ContainerResources::of(c);
        match kind {
            ResourceKind::Requests => r.requests,
            ResourceKind::Limits => r.limits,
        }
    };
    let mut result = ResourceQuantities::default();
    let Some(spec) = pod.spec.as_ref() else {
        return result;
    };
    for c in &spec.containers {
        let own = pick(c);
        container_fn(&own);
        result.add(&own);
    }
    let mut sidecars = ResourceQuantities::default();
    let mut init_max = ResourceQuantities::default();
    for c in spec.init_containers.iter().flatten() {
        let own = pick(c);
        let effective = if is_restartable_init_container(c) {
            result.add(&own);
            sidecars.add(&own);
            sidecars
        } else {
            let mut combined = own;
            combined.add(&sidecars);
            combined
        };
        container_fn(&effective);
        init_max.max(&effective);
    }
    result.max(&init_max);
    result
}

/// The pod's total requests as exact quantities (`PodRequests`: containers with the sidecar
/// rules, plus `spec.overhead`).
pub fn pod_request_quantities(pod: &Pod) -> ResourceQuantities {
    let mut reqs = aggregate_container_resources(pod, ResourceKind::Requests, |_| {});
    let overhead = overhead(pod);
    reqs.add(&overhead);
    reqs
}

/// The pod's total limits as exact quantities (`PodLimits`: overhead is added only to
/// non-zero limits). An absent entry means no container limits that resource everywhere.
pub fn pod_limit_quantities(pod: &Pod) -> ResourceQuantities {
    let mut limits = aggregate_container_resources(pod, ResourceKind::Limits, |_| {});
    let overhead = overhead(pod);
    for (limit, extra) in [
        (&mut limits.cpu, overhead.cpu),
        (&mut limits.memory, overhead.memory),
        (&mut limits.ephemeral_storage, overhead.ephemeral_storage),
    ] {
        if let (Some(l), Some(extra)) = (limit.as_mut(), extra)
            && !l.is_zero()
        {
            *l += extra;
        }
    }
    limits
}

/// The pod's requests as the scheduler's fit check computes them (`computePodResourceRequest`).
pub fn pod_requests(pod: &Pod) -> ResourceAmounts {
    pod_request_quantities(pod).amounts()
}

/// The pod's limits (0 = no limit on that resource from the aggregation).
pub fn pod_limits(pod: &Pod) -> ResourceAmounts {
    pod_limit_quantities(pod).amounts()
}

/// One container's requests.
pub fn container_requests(container: &Container) -> ResourceAmounts {
    ContainerResources::of(container).requests.amounts()
}

/// One container's limits (0 = no limit).
pub fn container_limits(container: &Container) -> ResourceAmounts {
    ContainerResources::of(container).limits.amounts()
}

fn overhead(pod: &Pod) -> ResourceQuantities {
    ResourceQuantities::from_list(pod.spec.as_ref().and_then(|s| s.overhead.as_ref()))
}

/// A host port a pod wants on the node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host IP, `0.0.0.0` when the manifest leaves it empty.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP` (`TCP` when empty).
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

/// The wildcard host IP.
const DEFAULT_BIND_ALL_HOST_IP: &str = "0.0.0.0";

impl HostPort {
    /// Whether two host ports collide (`HostPortInfo.CheckConflict`): same protocol and port,
    /// and the same IP or either one the wildcard `0.0.0.0`.
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip
                || self.ip == DEFAULT_BIND_ALL_HOST_IP
                || other.ip == DEFAULT_BIND_ALL_HOST_IP)
    }
}

/// The host ports of the pod's regular containers and sidecars (init containers that run for
/// the pod's whole life), skipping ports without a host port (`util.GetHostPorts`).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable_init_container(c));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|hp| hp > 0))
        .map(|p| HostPort {
            ip: match p.host_ip.as_deref() {
                None | Some("") => DEFAULT_BIND_ALL_HOST_IP.to_string(),
                Some(ip) => ip.to_string(),
            },
            protocol: match p.protocol.as_deref() {
                None | Some("") => "TCP".to_string(),
                Some(proto) => proto.to_string(),
            },
            port: p.host_port.unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the api and cm unit tests.
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
    use std::collections::BTreeMap;

    /// `"cpu=100m,memory=1Gi"` -> resource list.
    pub fn list(spec: &str) -> Option<BTreeMap<String, ApiQuantity>> {
        if spec.is_empty() {
            return None;
        }
        Some(
            spec.split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), ApiQuantity(v.to_string()))
                })
                .collect(),
        )
    }

    /// A container with requests and limits given as `"cpu=1,memory=1Gi"`.
    pub fn container(name: &str, requests: &str, limits: &str) -> Container {
        Container {
            name: name.to_string(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A sidecar (init container with `restartPolicy: Always`).
    pub fn sidecar(name: &str, requests: &str, limits: &str) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(name, requests, limits)
        }
    }

    /// A pod with these init and regular containers.
    pub fn pod(init: Vec<Container>, containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                init_containers: if init.is_empty() { None } else { Some(init) },
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn amounts(milli_cpu: i64, memory: i64) -> ResourceAmounts {
        ResourceAmounts {
            milli_cpu,
            memory,
            ephemeral_storage: 0,
        }
    }

    #[test]
    fn pod_requests_follow_the_resourcehelper_rules() {
        // Cases from k8s.io/component-helpers/resource helpers_test.go (TestPodResourceRequests).
        let table: Vec<(&str, Pod, ResourceAmounts)> = vec![
            (
                "sum of regular containers",
                pod(
                    vec![],
                    vec![
                        container("a", "cpu=1,memory=1Gi", ""),
                        container("b", "cpu=500m,memory=512Mi", ""),
                    ],
                ),
                amounts(1500, 1536 << 20),
            ),
            (
                "init container larger than the sum",
                pod(
                    vec![container("init", "cpu=2,memory=100Mi", "")],
                    vec![container("a", "cpu=1,memory=1Gi", "")],
                ),
                amounts(2000, 1 << 30),
            ),
            (
                "sidecar adds to the regular containers",
                pod(
                    vec![sidecar("s", "cpu=1", "")],
                    vec![container("a", "cpu=1", "")],
                ),
                amounts(2000, 0),
            ),
            (
                "init after a sidecar counts the sidecar",
                pod(
                    vec![sidecar("s", "cpu=1", ""), container("i", "cpu=2", "")],
                    vec![container("a", "cpu=1", "")],
                ),
                amounts(3000, 0),
            ),
            (
                "init before a sidecar does not",
                pod(
                    vec![container("i", "cpu=2", ""), sidecar("s", "cpu=1", "")],
                    vec![container("a", "cpu=1", "")],
                ),
                amounts(2000, 0),
            ),
            (
                "multiple restartable and regular init containers",
                pod(
                    vec![
                        container("init-1", "cpu=5", ""),
                        sidecar("restartable-init-1", "cpu=1", ""),
                        container("init-2", "cpu=5", ""),
                        sidecar("restartable-init-2", "cpu=2", ""),
                    ],
                    vec![container("c", "cpu=1", "")],
                ),
                amounts(6000, 0),
            ),
            (
                "fractions sum before rounding",
                pod(
                    vec![],
                    vec![
                        container("a", "memory=1.5", ""),
                        container("b", "memory=1.5", ""),
                    ],
                ),
                amounts(0, 3),
            ),
            ("no containers", pod(vec![], vec![]), amounts(0, 0)),
        ];
        for (name, p, want) in table {
            assert_eq!(pod_requests(&p), want, "{name}");
        }
    }

    #[test]
    fn overhead_is_added() {
        let mut p = pod(vec![], vec![container("a", "cpu=1", "cpu=2")]);
        p.spec.as_mut().unwrap().overhead = list("cpu=250m,memory=64Mi");
        assert_eq!(pod_requests(&p), amounts(1250, 64 << 20));
        // Limits get overhead only where a non-zero limit exists.
        assert_eq!(pod_limits(&p), amounts(2250, 0));
    }

    #[test]
    fn limits_and_effective_container_lists() {
        let p = pod(
            vec![sidecar("s", "", "cpu=1"), container("i", "", "memory=1Gi")],
            vec![container("a", "", "cpu=1,memory=2Gi")],
        );
        assert_eq!(pod_limits(&p), amounts(2000, 2 << 30));
        let mut seen = Vec::new();
        aggregate_container_resources(&p, ResourceKind::Limits, |l| seen.push(l.amounts()));
        assert_eq!(
            seen,
            vec![
                amounts(1000, 2 << 30),
                amounts(1000, 0),
                amounts(1000, 1 << 30)
            ]
        );
    }

    #[test]
    fn container_helpers_and_bad_quantities() {
        let c = container(
            "a",
            "cpu=250m,ephemeral-storage=1G",
            "memory=1Gi,cpu=nonsense",
        );
        assert_eq!(
            container_requests(&c),
            ResourceAmounts {
                milli_cpu: 250,
                memory: 0,
                ephemeral_storage: 1_000_000_000
            }
        );
        assert_eq!(container_limits(&c), amounts(0, 1 << 30));
    }

    #[test]
    fn host_ports_include_sidecars_but_not_init_containers() {
        let port = |host_port: Option<i32>, ip: Option<&str>| ContainerPort {
            container_port: 80,
            host_port,
            host_ip: ip.map(str::to_string),
            ..Default::default()
        };
        let mut init = container("i", "", "");
        init.ports = Some(vec![port(Some(9000), None)]);
        let mut side = sidecar("s", "", "");
        side.ports = Some(vec![port(Some(9001), None)]);
        let mut main = container("a", "", "");
        main.ports = Some(vec![
            port(Some(8080), Some("127.0.0.1")),
            port(None, None),
            port(Some(0), None),
        ]);
        let p = pod(vec![init, side], vec![main]);
        let got = host_ports(&p);
        let hp = |ip: &str, port| HostPort {
            ip: ip.into(),
            protocol: "TCP".into(),
            port,
        };
        assert_eq!(got, vec![hp("0.0.0.0", 9001), hp("127.0.0.1", 8080)]);
        assert!(hp("0.0.0.0", 80).conflicts_with(&hp("10.0.0.1", 80)));
        assert!(!hp("10.0.0.2", 80).conflicts_with(&hp("10.0.0.1", 80)));
        assert!(!hp("0.0.0.0", 80).conflicts_with(&hp("0.0.0.0", 81)));
    }
}
