//! Eviction signals: what the eviction manager observes about the node and each pod.
//!
//! Mirrors `makeSignalObservations` in `pkg/kubelet/eviction/helpers.go` with the numbers the
//! kubelet's summary provider gets from cAdvisor (`pkg/kubelet/stats/helper.go`,
//! cadvisor `container/libcontainer/handler.go`, `fs/fs.go`) and
//! `pkg/kubelet/stats/pidlimit/pidlimit_linux.go`:
//!
//! | signal | available | capacity |
//! |---|---|---|
//! | `memory.available` | MemTotal − working set of the root memory cgroup | MemTotal |
//! | `allocatableMemory.available` | kubepods limit − kubepods working set | the limit |
//! | `nodefs.*`, `imagefs.*`, `containerfs.*` | statvfs of `--root-dir`: `f_bavail·f_frsize` / `f_ffree` | `f_blocks·f_frsize` / `f_files` |
//! | `pid.available` | min(pid_max, threads-max) − running tasks (`/proc/loadavg`) | that min |
//!
//! Working set = usage − inactive_file (see [`crate::cgroup::MemoryStats`]). The filesystem and
//! `/proc` readers live in [`crate::stats::fs`] (the summary provider's), and this module builds
//! `Observation`s on top of them, as the kubelet's eviction manager reads the summary.
//! The image store lives under `--root-dir` (`<root-dir>/images`), so it shares nodefs: there
//! is no separate image filesystem, and `imagefs.*` and `containerfs.*` are observed on
//! nodefs, as the kubelet does when its image filesystem is on the node's (cadvisor finds both
//! on one device). Pressure on any of them is reclaimed first by removing dead containers and
//! unused images (`reclaimNodeLevelResources`, [`crate::eviction::manager`]), then by evicting
//! pods.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cgroup::MemoryStats;
use crate::eviction::thresholds::Signal;
use crate::stats::fs::{FsError, FsStats};

/// One observed signal (`signalObservation`): what is available and out of what capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Available amount (bytes, inodes or pids).
    pub available: i64,
    /// Capacity the percentage thresholds refer to.
    pub capacity: i64,
}

/// Every signal observed in one pass.
pub type Observations = BTreeMap<Signal, Observation>;

/// `memory.available` from MemTotal and the root cgroup: available = MemTotal − working set
/// (clamped at 0, cadvisor's `AvailableBytes`), capacity = available + working set.
pub fn memory_available(mem_total: i64, root: &MemoryStats) -> Observation {
    let ws = i64::try_from(root.working_set_bytes).unwrap_or(i64::MAX);
    let available = (mem_total - ws).max(0);
    Observation {
        available,
        capacity: available + ws,
    }
}

/// `allocatableMemory.available` from the `kubepods` cgroup: limit − working set; `None` when
/// kubepods is unlimited (the kubelet sets no available bytes then, so the signal is absent).
pub fn allocatable_memory_available(kubepods: &MemoryStats) -> Option<Observation> {
    let limit = i64::try_from(kubepods.limit_bytes?).ok()?;
    let ws = i64::try_from(kubepods.working_set_bytes).unwrap_or(i64::MAX);
    let available = (limit - ws).max(0);
    Some(Observation {
        available,
        capacity: available + ws,
    })
}

/// The byte and inode signals of a filesystem; inodes only when the filesystem has a limit.
pub fn fs_observations(fs: &FsStats) -> (Observation, Option<Observation>) {
    let bytes = Observation {
        available: fs.available_bytes,
        capacity: fs.capacity_bytes,
    };
    let inodes = (fs.inodes > 0).then_some(Observation {
        available: fs.inodes_free,
        capacity: fs.inodes,
    });
    (bytes, inodes)
}

/// `pid.available` from the node's process limits ([`crate::stats::fs::pids`]).
pub fn pid_available(proc_root: &Path) -> Result<Observation, FsError> {
    let p = crate::stats::fs::pids(proc_root)?;
    Ok(Observation {
        available: p.max - p.running,
        capacity: p.max,
    })
}

/// What one pass of node observation needs; memory figures come from the cgroup module.
#[derive(Clone, Debug)]
pub struct NodeInputs {
    /// MemTotal in bytes.
    pub mem_total: Option<i64>,
    /// The root memory cgroup (`CgroupFs::root_memory_stats`).
    pub root_memory: Option<MemoryStats>,
    /// `kubepods`, when node allocatable is enforced on pods.
    pub kubepods_memory: Option<MemoryStats>,
    /// statvfs of `--root-dir`.
    pub nodefs: Option<FsStats>,
    /// `pid.available`.
    pub pids: Option<Observation>,
}

/// Every signal the inputs allow (`makeSignalObservations`); a signal whose input failed is
/// simply absent, as in the kubelet (its thresholds then cannot be met).
pub fn observations(inputs: &NodeInputs) -> Observations {
    let mut out = Observations::new();
    if let (Some(total), Some(root)) = (inputs.mem_total, inputs.root_memory.as_ref()) {
        out.insert(Signal::MemoryAvailable, memory_available(total, root));
    }
    if let Some(obs) = inputs
        .kubepods_memory
        .as_ref()
        .and_then(allocatable_memory_available)
    {
        out.insert(Signal::AllocatableMemoryAvailable, obs);
    }
    if let Some(fs) = &inputs.nodefs {
        out = with_fs(&out, fs);
    }
    if let Some(p) = inputs.pids {
        out.insert(Signal::PidAvailable, p);
    }
    out
}

/// `obs` with its filesystem signals replaced by a new statvfs (after a node-level reclaim).
pub fn with_fs(obs: &Observations, fs: &FsStats) -> Observations {
    let mut out = obs.clone();
    let (bytes, inodes) = fs_observations(fs);
    for s in [
        Signal::NodeFsAvailable,
        Signal::ImageFsAvailable,
        Signal::ContainerFsAvailable,
    ] {
        out.insert(s, bytes);
    }
    if let Some(inodes) = inodes {
        for s in [
            Signal::NodeFsInodesFree,
            Signal::ImageFsInodesFree,
            Signal::ContainerFsInodesFree,
        ] {
            out.insert(s, inodes);
        }
    }
    out
}

/// One container's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// Memory working set in bytes.
    pub memory_working_set: Option<i64>,
    /// Local ephemeral storage (logs and the writable layer) in bytes.
    pub ephemeral_storage: Option<i64>,
}

/// What the eviction manager knows about one pod's usage (the pod part of the summary).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUsage {
    /// Memory working set of the pod cgroup in bytes.
    pub memory_working_set: Option<i64>,
    /// Processes (tasks) in the pod cgroup.
    pub processes: Option<i64>,
    /// Local ephemeral storage: the pod's logs, emptyDir volumes and its containers' writable
    /// layers, bytes.
    pub ephemeral_storage: Option<i64>,
    /// Inodes used by the same.
    pub inodes: Option<i64>,
    /// Bytes used by each emptyDir volume.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, i64>,
    /// Per container.
    pub containers: Vec<ContainerUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(usage: u64, inactive: u64, limit: Option<u64>) -> MemoryStats {
        MemoryStats {
            usage_bytes: usage,
            inactive_file_bytes: inactive,
            working_set_bytes: usage.saturating_sub(inactive),
            limit_bytes: limit,
        }
    }

    const MI: u64 = 1 << 20;

    #[test]
    fn memory_signals_table() {
        // (mem_total, usage, inactive, want available, want capacity)
        let cases: &[(i64, u64, u64, i64, i64)] = &[
            (8192 << 20, 3000 * MI, 1000 * MI, 6192 << 20, 8192 << 20),
            // inactive_file larger than usage: working set 0
            (1024 << 20, 10 * MI, 20 * MI, 1024 << 20, 1024 << 20),
            // working set beyond MemTotal (v2 anon+file overshoot): available clamps at 0
            (100 << 20, 200 * MI, 0, 0, 200 << 20),
        ];
        for &(total, usage, inactive, avail, cap) in cases {
            let o = memory_available(total, &ms(usage, inactive, None));
            assert_eq!(
                o,
                Observation {
                    available: avail,
                    capacity: cap
                },
                "{total} {usage} {inactive}"
            );
        }
        let kp = allocatable_memory_available(&ms(300 * MI, 50 * MI, Some(600 * MI))).unwrap();
        assert_eq!(kp.available, 350 << 20);
        assert_eq!(kp.capacity, 600 << 20);
        assert_eq!(allocatable_memory_available(&ms(1, 0, None)), None);
    }

    #[test]
    fn pid_available_is_max_minus_running() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/kernel")).unwrap();
        std::fs::write(d.path().join("sys/kernel/pid_max"), "32768\n").unwrap();
        std::fs::write(d.path().join("loadavg"), "1.58 2.01 2.06 3/3518 2291\n").unwrap();
        assert_eq!(
            pid_available(d.path()).unwrap(),
            Observation {
                available: 32768 - 3518,
                capacity: 32768
            }
        );
    }

    #[test]
    fn observations_from_inputs() {
        let fs = FsStats {
            available_bytes: 10,
            capacity_bytes: 100,
            inodes_free: 5,
            inodes: 50,
        };
        let inputs = NodeInputs {
            mem_total: Some(1000),
            root_memory: Some(ms(400, 100, None)),
            kubepods_memory: Some(ms(100, 0, Some(500))),
            nodefs: Some(fs),
            pids: Some(Observation {
                available: 7,
                capacity: 9,
            }),
        };
        let o = observations(&inputs);
        assert_eq!(o[&Signal::MemoryAvailable].available, 700);
        assert_eq!(o[&Signal::AllocatableMemoryAvailable].available, 400);
        for s in [
            Signal::NodeFsAvailable,
            Signal::ImageFsAvailable,
            Signal::ContainerFsAvailable,
        ] {
            assert_eq!(o[&s].available, 10);
            assert_eq!(o[&s].capacity, 100);
        }
        assert_eq!(o[&Signal::NodeFsInodesFree].available, 5);
        assert_eq!(o[&Signal::ImageFsInodesFree].capacity, 50);
        assert_eq!(o[&Signal::PidAvailable].available, 7);
        // Missing inputs: absent signals; a filesystem without inode limit: no inode signals.
        let o = observations(&NodeInputs {
            mem_total: None,
            root_memory: Some(ms(1, 0, None)),
            kubepods_memory: Some(ms(1, 0, None)),
            nodefs: Some(FsStats { inodes: 0, ..fs }),
            pids: None,
        });
        assert_eq!(
            o.keys().copied().collect::<Vec<_>>(),
            vec![
                Signal::NodeFsAvailable,
                Signal::ImageFsAvailable,
                Signal::ContainerFsAvailable
            ]
        );
    }
}
