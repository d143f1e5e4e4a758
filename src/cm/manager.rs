//! The container manager: the node's cgroup tree for pods and the values written into it.
//!
//! Mirrors `pkg/kubelet/cm`: `node_container_manager_linux.go` (the `kubepods` cgroup, limited to
//! node allocatable), `qos_container_manager_linux.go` (the `burstable` and `besteffort` cgroups)
//! and `pod_container_manager_linux.go` (one `pod<uid>` cgroup per pod). The container cgroups
//! below a pod are the runtime's in the kubelet; here the runtime and cm are one process, so they
//! are made here too, named after the container:
//!
//! ```text
//! <cgroup-root>/kubepods/                     node allocatable (Guaranteed pods live here)
//! <cgroup-root>/kubepods/pod<uid>/<container>
//! <cgroup-root>/kubepods/burstable/pod<uid>/<container>
//! <cgroup-root>/kubepods/besteffort/pod<uid>/<container>
//! ```
//! `cm` knows pods' cgroups, not processes: starting a process inside one is the runtime's job.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::api::qos::{QosClass, qos_class};
use crate::cgroup::{CgroupFs, CgroupName, WeightMap};
use crate::cm::helpers::{self, ResourceConfig};

/// Name of the node-allocatable cgroup.
pub const KUBEPODS: &str = "kubepods";

/// Errors of the container manager, naming the cgroup concerned.
#[derive(Debug, thiserror::Error)]
pub enum CmError {
    #[error("cgroup {name}: {source}")]
    Cgroup {
        name: String,
        source: crate::cgroup::Error,
    },
}

/// Node-level settings the container manager needs.
#[derive(Clone, Debug)]
pub struct CmConfig {
    /// `cgroupsPerQOS`: create the QoS tree (if false, pods sit directly under the root).
    pub cgroups_per_qos: bool,
    /// `podPidsLimit`: written to every pod cgroup's `pids.max` when > 0.
    pub pod_pids_limit: i64,
    /// `enforceNodeAllocatable` contains `pods`: limit `kubepods` to allocatable.
    pub enforce_pods: bool,
    /// Node capacity in milli-CPU.
    pub capacity_milli_cpu: i64,
    /// Node memory capacity (MemTotal) in bytes.
    pub capacity_memory: i64,
    /// Memory reserved for the system and kube (not the eviction threshold: the kubelet does not
    /// subtract it from the `kubepods` limit).
    pub reserved_memory: i64,
    /// CPU reserved for the system and kube, in milli-CPU.
    pub reserved_milli_cpu: i64,
    /// pid.max for `kubepods` (allocatable pids) if any are reserved.
    pub allocatable_pids: Option<i64>,
    /// `memorySwap.swapBehavior`.
    pub swap_behavior: crate::cm::swap::SwapBehavior,
    /// `SwapTotal` in bytes (LimitedSwap divides it among Burstable containers).
    pub swap_total: i64,
}

/// The container manager.
#[derive(Clone)]
pub struct ContainerManager {
    cgroups: Arc<CgroupFs>,
    cfg: CmConfig,
}

/// A cgroup name from fixed components (always valid).
fn name(components: &[&str]) -> CgroupName {
    CgroupName::new(components.iter().copied()).unwrap_or_else(|_| CgroupName::root())
}

/// `parent/component`, refusing a component that is not a plain directory name.
fn child(parent: &CgroupName, component: &str) -> Result<CgroupName, CmError> {
    parent.child(component).map_err(|source| CmError::Cgroup {
        name: format!("{parent}/{component}"),
        source,
    })
}

fn wrap(name: &CgroupName) -> impl FnOnce(crate::cgroup::Error) -> CmError + '_ {
    move |source| CmError::Cgroup {
        name: name.to_string(),
        source,
    }
}

impl ContainerManager {
    /// A manager over a resolved cgroup hierarchy.
    pub fn new(cgroups: Arc<CgroupFs>, cfg: CmConfig) -> Self {
        ContainerManager { cgroups, cfg }
    }

    /// The cgroup filesystem underneath.
    pub fn cgroups(&self) -> &Arc<CgroupFs> {
        &self.cgroups
    }

    /// Create `kubepods` (limited to allocatable when enforced) and the QoS cgroups
    /// (`setupNode` + `qosContainerManager.Start`).
    pub fn setup_node(&self) -> Result<(), CmError> {
        let kubepods = self.kubepods();
        self.cgroups.create(&kubepods).map_err(wrap(&kubepods))?;
        let allocatable_cpu = self.cfg.capacity_milli_cpu - self.cfg.reserved_milli_cpu;
        self.cgroups
            .set_cpu_shares(&kubepods, helpers::milli_cpu_to_shares(allocatable_cpu))
            .map_err(wrap(&kubepods))?;
        if self.cfg.enforce_pods {
            let limit = self.cfg.capacity_memory - self.cfg.reserved_memory;
            tracing::info!(cgroup = %kubepods, memory_limit = limit, "enforcing node allocatable on kubepods");
            self.cgroups
                .set_memory_limit(&kubepods, Some(limit))
                .map_err(wrap(&kubepods))?;
            if let Some(p) = self.cfg.allocatable_pids {
                self.cgroups
                    .set_pids_max(&kubepods, Some(p))
                    .map_err(wrap(&kubepods))?;
            }
        }
        if self.cfg.cgroups_per_qos {
            for (qos, shares) in [(QosClass::Burstable, 2), (QosClass::BestEffort, 2)] {
                let name = self.qos_cgroup(qos);
                self.cgroups.create(&name).map_err(wrap(&name))?;
                self.cgroups
                    .set_cpu_shares(&name, shares)
                    .map_err(wrap(&name))?;
            }
        }
        Ok(())
    }

    /// The node-allocatable cgroup.
    pub fn kubepods(&self) -> CgroupName {
        name(&[KUBEPODS])
    }

    fn qos_cgroup(&self, qos: QosClass) -> CgroupName {
        match qos {
            QosClass::Guaranteed => self.kubepods(),
            QosClass::Burstable => name(&[KUBEPODS, "burstable"]),
            QosClass::BestEffort => name(&[KUBEPODS, "besteffort"]),
        }
    }

    /// The pod's cgroup: `pod<uid>` under its QoS cgroup (`GetPodContainerName`).
    pub fn pod_cgroup(&self, pod: &Pod) -> Result<CgroupName, CmError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let parent = if self.cfg.cgroups_per_qos {
            self.qos_cgroup(qos_class(pod))
        } else {
            self.kubepods()
        };
        child(&parent, &format!("pod{uid}"))
    }

    /// The cgroup of one container of the pod.
    pub fn container_cgroup(&self, pod: &Pod, container: &str) -> Result<CgroupName, CmError> {
        child(&self.pod_cgroup(pod)?, container)
    }

    /// Create the pod cgroup with `ResourceConfigForPod` values (`EnsureExists`).
    pub fn ensure_pod_cgroup(&self, pod: &Pod) -> Result<CgroupName, CmError> {
        let name = self.pod_cgroup(pod)?;
        let cfg = helpers::pod_resource_config(pod, self.cfg.pod_pids_limit);
        self.cgroups.create(&name).map_err(wrap(&name))?;
        self.apply(&name, &cfg, WeightMap::Kubelet)?;
        Ok(name)
    }

    /// Create a fresh cgroup for a new container instance, with the values the runtime would get
    /// over CRI (`calculateLinuxResources`). A left-over cgroup of the previous instance is
    /// killed and removed first, so each instance starts with clean counters (its OOM count).
    pub fn create_container_cgroup(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<CgroupName, CmError> {
        let name = self.container_cgroup(pod, &container.name)?;
        if self.cgroups.exists(&name) {
            let _ = self.cgroups.kill(&name);
            self.cgroups.remove(&name).map_err(wrap(&name))?;
        }
        self.cgroups.create(&name).map_err(wrap(&name))?;
        // The runtime writes a container's cgroup: on v2 its `cpu.weight` uses the runtime's map.
        let cfg = helpers::container_resource_config(container);
        self.apply(&name, &cfg, WeightMap::Runtime)?;
        let machine = helpers::SwapMachine {
            mem_total: self.cfg.capacity_memory,
            swap_total: self.cfg.swap_total,
            cgroup_v2: self.cgroups.layout().is_v2(),
        };
        let swap = helpers::container_swap_limit(pod, container, self.cfg.swap_behavior, machine);
        match self.cgroups.set_memory_swap_limit(&name, swap) {
            Ok(true) => tracing::debug!(cgroup = %name, ?swap, "container swap limit set"),
            // swapControllerAvailable() == false: the kubelet logs and leaves it alone.
            Ok(false) => tracing::debug!(cgroup = %name, "no swap cgroup controller present"),
            Err(e) => return Err(wrap(&name)(e)),
        }
        // cgroup v2: the whole container is one OOM unit, as the kubelet sets it
        // (unless singleProcessOOMKill); a no-op on v1.
        self.cgroups
            .set_memory_oom_group(&name, true)
            .map_err(wrap(&name))?;
        // The runtime's device rules (runc's): the standard nodes, or every device for a
        // privileged container.
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        let rules = crate::cgroup::devices::container_rules(privileged);
        if !self
            .cgroups
            .set_devices(&name, &rules)
            .map_err(wrap(&name))?
        {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!("no cgroup v1 devices hierarchy is mounted: containers are not kept from device nodes they make (runc would refuse to run)");
            });
        }
        Ok(name)
    }

    fn apply(
        &self,
        name: &CgroupName,
        cfg: &ResourceConfig,
        map: WeightMap,
    ) -> Result<(), CmError> {
        let cg = &self.cgroups;
        if let Some(shares) = cfg.cpu_shares {
            cg.set_cpu_shares_with(name, shares, map)
                .map_err(wrap(name))?;
        }
        if cfg.cpu_quota.is_some() || cfg.cpu_period.is_some() {
            cg.set_cpu_quota(
                name,
                cfg.cpu_quota,
                cfg.cpu_period.unwrap_or(helpers::QUOTA_PERIOD),
            )
            .map_err(wrap(name))?;
        }
        if cfg.memory.is_some() {
            cg.set_memory_limit(name, cfg.memory).map_err(wrap(name))?;
        }
        if cfg.pids_limit.is_some() {
            cg.set_pids_max(name, cfg.pids_limit).map_err(wrap(name))?;
        }
        Ok(())
    }

    /// The files a container's new processes write "0" into to join its cgroups (one per
    /// hierarchy in use: `tasks` on v1, `cgroup.procs` on v2, see
    /// [`crate::cgroup::CgroupFs::join_files`]): what the runtime needs to start a process
    /// inside the container's cgroups.
    pub fn container_join_files(&self, name: &CgroupName) -> Vec<std::path::PathBuf> {
        self.cgroups.join_files(name)
    }

    /// Kill everything in a cgroup subtree and remove it (`Destroy`).
    pub fn destroy(&self, name: &CgroupName) -> Result<(), CmError> {
        if !self.cgroups.exists(name) {
            return Ok(());
        }
        self.cgroups.kill(name).map_err(wrap(name))?;
        self.cgroups.remove(name).map_err(wrap(name))
    }

    /// Keep `burstable`'s cpu shares at the sum of its pods' CPU requests
    /// (`qosContainerManager.UpdateCgroups`); `besteffort` stays at the minimum, 2.
    pub fn update_qos_cgroups<'a>(&self, pods: impl Iterator<Item = &'a Pod>) {
        if !self.cfg.cgroups_per_qos {
            return;
        }
        let milli: i64 = pods
            .filter(|p| qos_class(p) == QosClass::Burstable)
            .map(|p| crate::api::resources::pod_requests(p).milli_cpu)
            .sum();
        let name = self.qos_cgroup(QosClass::Burstable);
        if let Err(e) = self
            .cgroups
            .set_cpu_shares(&name, helpers::milli_cpu_to_shares(milli))
        {
            tracing::warn!(cgroup = %name, error = %e, "update burstable QoS cgroup");
        }
    }

    /// Pod cgroups that exist on disk, with the UID from their name (`GetAllPodsFromCgroups`).
    pub fn existing_pod_cgroups(&self) -> Vec<(String, CgroupName)> {
        let mut out = Vec::new();
        let parents = if self.cfg.cgroups_per_qos {
            vec![
                self.kubepods(),
                self.qos_cgroup(QosClass::Burstable),
                self.qos_cgroup(QosClass::BestEffort),
            ]
        } else {
            vec![self.kubepods()]
        };
        for parent in parents {
            for child in self.cgroups.children(&parent).unwrap_or_default() {
                if let (Some(uid), Ok(name)) =
                    (child.strip_prefix("pod"), self::child(&parent, &child))
                {
                    out.push((uid.to_string(), name));
                }
            }
        }
        out
    }
}
