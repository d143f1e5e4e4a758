//! Pure formulas for the values the kubelet writes into cgroups: CPU shares and weights, CFS
//! quota, memory limits and pids limits, for one container or a whole pod.
//!
//! Mirrors `pkg/kubelet/cm/helpers_linux.go` (`MilliCPUToShares`, `MilliCPUToQuota`,
//! `ResourceConfigForPod`), `pkg/kubelet/cm/cgroup_manager_linux.go` (`getCPUWeight`, the v2
//! weight of the cgroups the kubelet writes) and `pkg/kubelet/kuberuntime/
//! kuberuntime_container_linux.go` (`calculateLinuxResources`, a container's values).

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::api::qos::{QosClass, qos_class};
use crate::api::resources::{
    ContainerResources, ResourceKind, aggregate_container_resources, pod_request_quantities,
};

/// Smallest `cpu.shares` the kernel accepts.
pub const MIN_SHARES: u64 = 2;
/// Largest `cpu.shares` the kernel accepts.
pub const MAX_SHARES: u64 = 262_144;
/// Shares for one whole CPU.
pub const SHARES_PER_CPU: u64 = 1024;
/// Millicores per CPU.
pub const MILLI_CPU_TO_CPU: i64 = 1000;
/// The CFS period, in microseconds (100ms).
pub const QUOTA_PERIOD: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds (1ms).
pub const MIN_QUOTA_PERIOD: i64 = 1000;
/// The smallest CPU limit that is not raised to `MIN_QUOTA_PERIOD`, in millicores.
pub const MIN_MILLI_CPU_LIMIT: i64 = 10;

/// Converts millicores to `cpu.shares`: 1024 per CPU, clamped to [2, 262144], 0 -> 2
/// (`MilliCPUToShares`). 250m -> 256, 1m -> 2.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        // The runtime turns zero into "unset", the kernel default of 1024; 2 really means zero.
        return MIN_SHARES;
    }
    let shares = i128::from(milli_cpu) * i128::from(SHARES_PER_CPU) / i128::from(MILLI_CPU_TO_CPU);
    shares.clamp(i128::from(MIN_SHARES), i128::from(MAX_SHARES)) as u64
}

/// Converts a millicore limit to a CFS quota for `period` microseconds, at least
/// `MIN_QUOTA_PERIOD`; 0 millicores -> 0, meaning no quota (`MilliCPUToQuota`).
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    let quota = i128::from(milli_cpu) * i128::from(period) / i128::from(MILLI_CPU_TO_CPU);
    quota.clamp(i128::from(MIN_QUOTA_PERIOD), i128::from(i64::MAX)) as i64
}

/// cgroup v2 `cpu.weight` for `cpu.shares`: the kubelet's linear map for the cgroups it writes
/// (kubepods, QoS, pod; 1024 -> 39) and the runtime's map for container cgroups (1024 -> 100).
pub use crate::cgroup::{
    cpu_shares_to_weight as shares_to_weight_linear,
    cpu_shares_to_weight_runtime as shares_to_weight_runtime,
};

/// The cgroup values for one pod or container (`cm.ResourceConfig`); `None` = leave unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    /// `cpu.shares` (v1) / source of `cpu.weight` (v2).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds; -1 = unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// A container's cgroup values (`calculateLinuxResources` with CFS quota enforced): shares from
/// the cpu request, or from the limit if there is no request; quota from the cpu limit; memory
/// from the memory limit.
pub fn container_resource_config(container: &Container) -> ResourceConfig {
    let r = ContainerResources::of(container);
    let milli = |q: Option<crate::api::Quantity>| q.map_or(0, |q| q.milli_value());
    let (cpu_request, cpu_limit) = (milli(r.requests.cpu), milli(r.limits.cpu));
    let shares = if cpu_request == 0 && cpu_limit != 0 {
        milli_cpu_to_shares(cpu_limit)
    } else {
        milli_cpu_to_shares(cpu_request)
    };
    let memory = r.limits.memory.map_or(0, |q| q.value());
    let quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    ResourceConfig {
        cpu_shares: Some(shares),
        cpu_quota: (quota != 0).then_some(quota),
        cpu_period: Some(QUOTA_PERIOD),
        memory: (memory != 0).then_some(memory),
        pids_limit: None,
    }
}

/// The swap a container may use (`configureContainerSwapResources` with the `NodeSwap` gate on,
/// its default since 1.30): `LimitedSwap` gives a Burstable, non-critical pod's container with a
/// memory request that differs from its limit `request / MemTotal × SwapTotal` bytes, on cgroup
/// v2 only (`calcSwapForBurstablePods`); everyone else, and `NoSwap` or `""`, gets no swap.
///
/// Deviation: "critical" is by priority only. The kubelet's `IsCriticalPod` also counts every
/// static pod, so on a real kubelet no static pod ever swaps; minikubelet runs nothing else, so
/// that rule would make `LimitedSwap` inert (the same reasoning as for eviction).
pub fn container_swap_limit(
    pod: &Pod,
    container: &Container,
    behavior: crate::cm::swap::SwapBehavior,
    machine: SwapMachine,
) -> crate::cgroup::SwapLimit {
    use crate::cgroup::SwapLimit;
    let r = ContainerResources::of(container);
    let limit = r.limits.memory.map(|q| q.value());
    let no_swap = SwapLimit::None {
        memory_limit: limit.filter(|l| *l > 0),
    };
    if behavior != crate::cm::swap::SwapBehavior::LimitedSwap || !machine.cgroup_v2 {
        return no_swap;
    }
    let request = r.requests.memory.map_or(0, |q| q.value());
    let requests_nothing = request == 0 && limit.unwrap_or(0) == 0;
    let request_equals_limit = limit.is_some_and(|l| l == request);
    if qos_class(pod) != QosClass::Burstable
        || crate::api::pod::is_critical(pod)
        || requests_nothing
        || request_equals_limit
    {
        return no_swap;
    }
    if machine.mem_total <= 0 || request > machine.mem_total {
        // calcSwapForBurstablePods: "container request %d is larger than total memory %d".
        return no_swap;
    }
    let share = request as f64 / machine.mem_total as f64;
    SwapLimit::Limited((share * machine.swap_total as f64) as i64)
}

/// What the swap formula needs to know of the machine (cadvisor's `MachineInfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapMachine {
    /// `MemTotal` in bytes.
    pub mem_total: i64,
    /// `SwapTotal` in bytes.
    pub swap_total: i64,
    /// The cgroup hierarchy is v2 (LimitedSwap needs it).
    pub cgroup_v2: bool,
}

/// Settings that shape a pod's cgroup values (kubelet flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodResourceOptions {
    /// `cpuCFSQuota`: enforce CPU limits with a CFS quota (default true).
    pub enforce_cpu_limits: bool,
    /// `cpuCFSQuotaPeriod` in microseconds (default 100000).
    pub cpu_period: u64,
    /// `podPidsLimit`; values <= 0 leave `pids.max` alone (default -1).
    pub pod_pids_limit: i64,
}

impl Default for PodResourceOptions {
    fn default() -> Self {
        PodResourceOptions {
            enforce_cpu_limits: true,
            cpu_period: QUOTA_PERIOD,
            pod_pids_limit: -1,
        }
    }
}

/// A pod cgroup's values with the default options and `pod_pids_limit`.
pub fn pod_resource_config(pod: &Pod, pod_pids_limit: i64) -> ResourceConfig {
    pod_resource_config_with(
        pod,
        &PodResourceOptions {
            pod_pids_limit,
            ..PodResourceOptions::default()
        },
    )
}

/// A pod cgroup's values (`ResourceConfigForPod`): shares from the summed requests (2 for
/// BestEffort); a CFS quota only if every container has a cpu limit (always for Guaranteed);
/// a memory limit only if every container has a memory limit; `pids.max` from `podPidsLimit`.
pub fn pod_resource_config_with(pod: &Pod, opts: &PodResourceOptions) -> ResourceConfig {
    let requests = pod_request_quantities(pod);
    let mut cpu_limits_declared = true;
    let mut memory_limits_declared = true;
    let mut limits = aggregate_container_resources(pod, ResourceKind::Limits, |l| {
        if l.cpu.is_none_or(|q| q.is_zero()) {
            cpu_limits_declared = false;
        }
        if l.memory.is_none_or(|q| q.is_zero()) {
            memory_limits_declared = false;
        }
    });
    // PodLimits adds the overhead to non-zero limits.
    let overhead = crate::api::resources::ResourceQuantities::from_list(
        pod.spec.as_ref().and_then(|s| s.overhead.as_ref()),
    );
    for (limit, extra) in [
        (&mut limits.cpu, overhead.cpu),
        (&mut limits.memory, overhead.memory),
    ] {
        if let (Some(l), Some(extra)) = (limit.as_mut(), extra)
            && !l.is_zero()
        {
            *l += extra;
        }
    }
    let cpu_requests = requests.cpu.map_or(0, |q| q.milli_value());
    let cpu_limits = limits.cpu.map_or(0, |q| q.milli_value());
    let memory_limits = limits.memory.map_or(0, |q| q.value());

    let shares = milli_cpu_to_shares(cpu_requests);
    let quota = if opts.enforce_cpu_limits {
        milli_cpu_to_quota(cpu_limits, opts.cpu_period)
    } else {
        -1
    };
    let mut config = ResourceConfig {
        pids_limit: (opts.pod_pids_limit > 0).then_some(opts.pod_pids_limit),
        ..ResourceConfig::default()
    };
    match qos_class(pod) {
        QosClass::Guaranteed => {
            config.cpu_shares = Some(shares);
            config.cpu_quota = Some(quota);
            config.cpu_period = Some(opts.cpu_period);
            config.memory = Some(memory_limits);
        }
        QosClass::Burstable => {
            config.cpu_shares = Some(shares);
            if cpu_limits_declared {
                config.cpu_quota = Some(quota);
                config.cpu_period = Some(opts.cpu_period);
            }
            if memory_limits_declared {
                config.memory = Some(memory_limits);
            }
        }
        QosClass::BestEffort => config.cpu_shares = Some(MIN_SHARES),
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::test_support::{container, list, pod, sidecar};

    #[test]
    fn swap_limits_like_the_kubelet() {
        use crate::cgroup::SwapLimit;
        use crate::cm::swap::SwapBehavior;
        let gib = 1i64 << 30;
        let v2 = SwapMachine {
            mem_total: 8 * gib,
            swap_total: 4 * gib,
            cgroup_v2: true,
        };
        let burstable = container("c", "memory=1Gi", "memory=2Gi");
        let p = pod(vec![], vec![burstable.clone()]);
        // LimitedSwap: request / MemTotal x SwapTotal = 1/8 x 4Gi.
        assert_eq!(
            container_swap_limit(&p, &burstable, SwapBehavior::LimitedSwap, v2),
            SwapLimit::Limited(gib / 2)
        );
        // NoSwap and "" never swap; the v1 memsw value is the memory limit.
        for b in [SwapBehavior::NoSwap, SwapBehavior::Unset] {
            assert_eq!(
                container_swap_limit(&p, &burstable, b, v2),
                SwapLimit::None {
                    memory_limit: Some(2 * gib)
                }
            );
        }
        // LimitedSwap on v1 falls back to NoSwap.
        let v1 = SwapMachine {
            cgroup_v2: false,
            ..v2
        };
        assert!(matches!(
            container_swap_limit(&p, &burstable, SwapBehavior::LimitedSwap, v1),
            SwapLimit::None { .. }
        ));
        // Guaranteed, BestEffort, request == limit, no memory request: no swap.
        let guaranteed = container("c", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi");
        let best = container("c", "", "");
        let equal = container("c", "cpu=100m,memory=1Gi", "memory=1Gi");
        let cpu_only = container("c", "cpu=100m", "");
        for c in [guaranteed, best, equal, cpu_only] {
            let p = pod(vec![], vec![c.clone()]);
            assert!(
                matches!(
                    container_swap_limit(&p, &c, SwapBehavior::LimitedSwap, v2),
                    SwapLimit::None { .. }
                ),
                "{c:?}"
            );
        }
        // A request larger than MemTotal is an error in the kubelet: NoSwap.
        let huge = container("c", "memory=16Gi", "memory=32Gi");
        let p = pod(vec![], vec![huge.clone()]);
        assert!(matches!(
            container_swap_limit(&p, &huge, SwapBehavior::LimitedSwap, v2),
            SwapLimit::None { .. }
        ));
    }

    #[test]
    fn milli_cpu_to_shares_table() {
        // helpers_linux_test.go / the reference examples.
        for (milli, shares) in [
            (0, 2),
            (1, 2),
            (2, 2),
            (3, 3),
            (250, 256),
            (500, 512),
            (1000, 1024),
            (1500, 1536),
            (256_000, 262_144),
            (300_000, 262_144),
            (-5, 2),
        ] {
            assert_eq!(milli_cpu_to_shares(milli), shares, "{milli}m");
        }
    }

    #[test]
    fn milli_cpu_to_quota_table() {
        // TestMilliCPUToQuota.
        for (milli, period, quota) in [
            (0, 100_000, 0),
            (5, 100_000, 1000),
            (9, 100_000, 1000),
            (10, 100_000, 1000),
            (200, 100_000, 20_000),
            (500, 100_000, 50_000),
            (1000, 100_000, 100_000),
            (1500, 100_000, 150_000),
            (1500, 50_000, 75_000),
            (5, 50_000, 1000),
        ] {
            assert_eq!(
                milli_cpu_to_quota(milli, period),
                quota,
                "{milli}m/{period}"
            );
        }
    }

    #[test]
    fn cpu_weight_maps() {
        for (shares, weight) in [
            (2, 1),
            (1024, 39),
            (262_144, 10_000),
            (300_000, 10_000),
            (1, 1),
            (0, 1),
        ] {
            assert_eq!(shares_to_weight_linear(shares), weight, "linear {shares}");
        }
        for (shares, weight) in [
            (0, 0),
            (2, 1),
            (3, 2),
            (100, 17),
            (102, 17),
            (1024, 100),
            (50_000, 2402),
            (262_144, 10_000),
        ] {
            assert_eq!(shares_to_weight_runtime(shares), weight, "runtime {shares}");
        }
    }

    #[test]
    fn container_configs() {
        let cfg = |req: &str, lim: &str| container_resource_config(&container("c", req, lim));
        assert_eq!(
            cfg("cpu=250m,memory=64Mi", "cpu=500m,memory=128Mi"),
            ResourceConfig {
                cpu_shares: Some(256),
                cpu_quota: Some(50_000),
                cpu_period: Some(QUOTA_PERIOD),
                memory: Some(128 << 20),
                pids_limit: None,
            }
        );
        // Shares from the limit when there is no request.
        assert_eq!(cfg("", "cpu=1").cpu_shares, Some(1024));
        // Nothing: minimal shares, no quota, no memory limit.
        assert_eq!(
            cfg("", ""),
            ResourceConfig {
                cpu_shares: Some(2),
                cpu_quota: None,
                cpu_period: Some(QUOTA_PERIOD),
                memory: None,
                pids_limit: None,
            }
        );
        assert_eq!(cfg("", "cpu=1m").cpu_quota, Some(MIN_QUOTA_PERIOD));
    }

    #[test]
    fn pod_configs() {
        let guaranteed = pod(
            vec![],
            vec![
                container("a", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi"),
                container("b", "cpu=500m,memory=512Mi", "cpu=500m,memory=512Mi"),
            ],
        );
        assert_eq!(
            pod_resource_config(&guaranteed, -1),
            ResourceConfig {
                cpu_shares: Some(1536),
                cpu_quota: Some(150_000),
                cpu_period: Some(QUOTA_PERIOD),
                memory: Some(1536 << 20),
                pids_limit: None,
            }
        );
        // Burstable: quota only when every container has a cpu limit, memory likewise.
        let burstable = pod(
            vec![],
            vec![
                container("a", "cpu=100m,memory=100Mi", "cpu=200m"),
                container("b", "cpu=100m", "cpu=300m,memory=1Gi"),
            ],
        );
        assert_eq!(
            pod_resource_config(&burstable, 1024),
            ResourceConfig {
                cpu_shares: Some(204),
                cpu_quota: Some(50_000),
                cpu_period: Some(QUOTA_PERIOD),
                memory: None,
                pids_limit: Some(1024),
            }
        );
        let partial = pod(
            vec![],
            vec![
                container("a", "cpu=100m", "cpu=200m"),
                container("b", "memory=1Gi", ""),
            ],
        );
        let cfg = pod_resource_config(&partial, 0);
        assert_eq!(
            (cfg.cpu_shares, cfg.cpu_quota, cfg.memory, cfg.pids_limit),
            (Some(102), None, None, None)
        );
        // An init container without limits after a limited sidecar still counts as limited.
        let sidecars = pod(
            vec![
                sidecar("s", "cpu=100m", "cpu=100m,memory=64Mi"),
                container("i", "cpu=50m", ""),
            ],
            vec![container("a", "cpu=100m", "cpu=100m,memory=64Mi")],
        );
        let cfg = pod_resource_config(&sidecars, -1);
        assert_eq!(
            (cfg.cpu_shares, cfg.cpu_quota, cfg.memory),
            (Some(204), Some(20_000), Some(128 << 20))
        );
        // BestEffort: shares 2 and nothing else.
        let best_effort = pod(vec![], vec![container("a", "", "")]);
        assert_eq!(
            pod_resource_config(&best_effort, 100),
            ResourceConfig {
                cpu_shares: Some(2),
                pids_limit: Some(100),
                ..ResourceConfig::default()
            }
        );
        // cpuCFSQuota=false: quota -1.
        let opts = PodResourceOptions {
            enforce_cpu_limits: false,
            ..PodResourceOptions::default()
        };
        assert_eq!(
            pod_resource_config_with(&guaranteed, &opts).cpu_quota,
            Some(-1)
        );
        // Overhead counts in requests and in the (declared) limits.
        let mut with_overhead = guaranteed.clone();
        with_overhead.spec.as_mut().unwrap().overhead = list("cpu=100m,memory=10Mi");
        let cfg = pod_resource_config(&with_overhead, -1);
        assert_eq!(
            (cfg.cpu_shares, cfg.cpu_quota, cfg.memory),
            (Some(1638), Some(160_000), Some((1536 + 10) << 20))
        );
    }
}
