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
//! Working set = usage − inactive_file (see [`crate::cgroup::MemoryStats`]). Nothing shells out;
//! every function that reads the kernel takes its root so unit tests can use a fake tree.
//! There is no separate image filesystem (no images), so `imagefs.*` and `containerfs.*` are
//! observed on nodefs, as the kubelet does on a single-disk node.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cgroup::MemoryStats;
use crate::eviction::thresholds::Signal;

/// Errors reading a signal, naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file had unexpected content.
    #[error("parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// statvfs failed.
    #[error("statvfs {path}: {source}")]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
}

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

/// Bytes and inodes of one filesystem, from statvfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    /// `f_bavail × f_frsize`.
    pub available_bytes: i64,
    /// `f_blocks × f_frsize`.
    pub capacity_bytes: i64,
    /// `f_ffree`.
    pub inodes_free: i64,
    /// `f_files` (0 on filesystems without an inode limit).
    pub inodes: i64,
}

/// statvfs of the filesystem holding `path`.
pub fn fs_stats(path: &Path) -> Result<FsStats, SignalError> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|source| SignalError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    let frsize = s.fragment_size() as i64;
    Ok(FsStats {
        available_bytes: (s.blocks_available() as i64).saturating_mul(frsize),
        capacity_bytes: (s.blocks() as i64).saturating_mul(frsize),
        inodes_free: s.files_free() as i64,
        inodes: s.files() as i64,
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

fn read_trimmed(path: &Path) -> Result<String, SignalError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SignalError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_i64(path: &Path) -> Result<i64, SignalError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| SignalError::Parse {
        path: path.to_path_buf(),
        reason: format!("not a number: {text:?}"),
    })
}

/// `MemTotal` of `<proc_root>/meminfo` in bytes.
pub fn mem_total(proc_root: &Path) -> Result<i64, SignalError> {
    let path = proc_root.join("meminfo");
    crate::node::mem_total(proc_root).ok_or(SignalError::Parse {
        path,
        reason: "no MemTotal line".into(),
    })
}

/// `pid.available` (`pidlimit.Stats`): max = min(`kernel/pid_max`, `kernel/threads-max`),
/// running = the number after `/` in the 4th field of `/proc/loadavg`.
pub fn pid_available(proc_root: &Path) -> Result<Observation, SignalError> {
    let pid_max = read_i64(&proc_root.join("sys/kernel/pid_max"))?;
    let max = match read_i64(&proc_root.join("sys/kernel/threads-max")) {
        Ok(t) => pid_max.min(t),
        Err(_) => pid_max,
    };
    let path = proc_root.join("loadavg");
    let text = read_trimmed(&path)?;
    let running = text
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, n)| n.parse::<i64>().ok())
        .ok_or_else(|| SignalError::Parse {
            path: path.clone(),
            reason: format!("no running/total field in {text:?}"),
        })?;
    Ok(Observation {
        available: max - running,
        capacity: max,
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

/// On-disk usage of a directory tree like `du` (allocated blocks × 512) and its inode count;
/// (0, 0) when it does not exist. Symlinks are counted, not followed.
pub fn dir_usage(path: &Path) -> (i64, i64) {
    let mut bytes = 0i64;
    let mut inodes = 0i64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        bytes = bytes.saturating_add((md.blocks() as i64).saturating_mul(512));
        inodes += 1;
        if md.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    (bytes, inodes)
}

/// One container's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// Memory working set in bytes.
    pub memory_working_set: Option<i64>,
    /// Local ephemeral storage (logs; no writable layer here) in bytes.
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
    /// Local ephemeral storage: the pod's logs plus emptyDir volumes, bytes.
    pub ephemeral_storage: Option<i64>,
    /// Inodes used by the same.
    pub inodes: Option<i64>,
    /// Bytes used by each emptyDir volume.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, i64>,
    /// Per container.
    pub containers: Vec<ContainerUsage>,
}

/// Local storage of one pod, as the summary's pod stats give it to the eviction manager.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalStorage {
    /// Logs plus emptyDir volumes, bytes (`PodStats.EphemeralStorage.UsedBytes`).
    pub bytes: i64,
    /// Inodes of the same.
    pub inodes: i64,
    /// Log bytes per container (`ContainerStats.Logs`; there is no writable layer).
    pub per_container: BTreeMap<String, i64>,
    /// Bytes per emptyDir volume (`PodStats.VolumeStats`).
    pub per_volume: BTreeMap<String, i64>,
}

/// Local storage of a pod: its log directory (per container subdirectory) and its emptyDir
/// volumes under `<root_dir>/pods/<uid>/volumes/kubernetes.io~empty-dir` (the kubelet's
/// layout, see [`crate::volumes`]).
pub fn pod_local_storage(pod_log_dir: &Path, root_dir: &Path, uid: &str) -> LocalStorage {
    let (mut bytes, mut inodes) = dir_usage(pod_log_dir);
    let mut per_container = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(pod_log_dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let (b, _) = dir_usage(&e.path());
                per_container.insert(e.file_name().to_string_lossy().to_string(), b);
            }
        }
    }
    let mut per_volume = BTreeMap::new();
    let empty_dirs = crate::volumes::empty_dirs_dir(root_dir, uid);
    if let Ok(rd) = std::fs::read_dir(&empty_dirs) {
        for e in rd.flatten() {
            let (b, i) = dir_usage(&e.path());
            bytes += b;
            inodes += i;
            per_volume.insert(e.file_name().to_string_lossy().to_string(), b);
        }
    }
    LocalStorage {
        bytes,
        inodes,
        per_container,
        per_volume,
    }
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
    fn pid_available_from_fake_proc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/kernel")).unwrap();
        std::fs::write(d.path().join("sys/kernel/pid_max"), "32768\n").unwrap();
        std::fs::write(d.path().join("sys/kernel/threads-max"), "193102\n").unwrap();
        std::fs::write(d.path().join("loadavg"), "1.58 2.01 2.06 3/3518 2291\n").unwrap();
        assert_eq!(
            pid_available(d.path()).unwrap(),
            Observation {
                available: 32768 - 3518,
                capacity: 32768
            }
        );
        std::fs::write(d.path().join("sys/kernel/threads-max"), "1000\n").unwrap();
        assert_eq!(pid_available(d.path()).unwrap().capacity, 1000);
        std::fs::write(d.path().join("loadavg"), "garbage\n").unwrap();
        assert!(pid_available(d.path()).is_err());
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

    #[test]
    fn statvfs_of_a_real_dir() {
        let d = tempfile::tempdir().unwrap();
        let s = fs_stats(d.path()).unwrap();
        assert!(s.capacity_bytes > 0 && s.available_bytes <= s.capacity_bytes);
        assert!(fs_stats(&d.path().join("missing")).is_err());
    }

    #[test]
    fn local_storage_counts_logs_and_empty_dirs() {
        let d = tempfile::tempdir().unwrap();
        let logs = d.path().join("logs/ns_pod_uid1");
        std::fs::create_dir_all(logs.join("web")).unwrap();
        std::fs::write(logs.join("web/0.log"), vec![b'x'; 64 * 1024]).unwrap();
        let vol = d
            .path()
            .join("root/pods/uid1/volumes/kubernetes.io~empty-dir/cache");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("f"), vec![b'y'; 32 * 1024]).unwrap();
        let ls = pod_local_storage(&logs, &d.path().join("root"), "uid1");
        assert!(ls.bytes >= 96 * 1024, "{}", ls.bytes);
        assert!(ls.inodes >= 5, "{}", ls.inodes);
        assert!(ls.per_container["web"] >= 64 * 1024);
        assert!(ls.per_volume["cache"] >= 32 * 1024);
        assert!(ls.per_volume["cache"] < 64 * 1024);
        assert_eq!(dir_usage(&d.path().join("nothing")), (0, 0));
    }
}
