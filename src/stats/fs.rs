//! Filesystem and `/proc` readers of the summary provider: statvfs of a filesystem, `du` of a
//! directory tree, a pod's local storage (logs and emptyDir volumes), `MemTotal` and the node's
//! process limits. The eviction manager builds its signal observations on top of these
//! (`crate::eviction::signals`), as the kubelet's eviction manager reads the summary.
//!
//! Mirrors the parts of cadvisor `fs/fs.go` and `pkg/kubelet/stats` (`pidlimit`,
//! `fsResourceAnalyzer`) the kubelet's summary uses. Nothing shells out; every function that
//! reads the kernel takes its root so unit tests can use a fake tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading a file or filesystem, naming the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
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
pub fn fs_stats(path: &Path) -> Result<FsStats, FsError> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|source| FsError::Statvfs {
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

fn read_trimmed(path: &Path) -> Result<String, FsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| FsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_i64(path: &Path) -> Result<i64, FsError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| FsError::Parse {
        path: path.to_path_buf(),
        reason: format!("not a number: {text:?}"),
    })
}

/// `MemTotal` of `<proc_root>/meminfo` in bytes.
pub fn mem_total(proc_root: &Path) -> Result<i64, FsError> {
    let path = proc_root.join("meminfo");
    crate::node::mem_total(proc_root).ok_or(FsError::Parse {
        path,
        reason: "no MemTotal line".into(),
    })
}

/// The node's process limits (`pidlimit.Stats`): max = min(`kernel/pid_max`,
/// `kernel/threads-max`), running = the number after `/` in the 4th field of `/proc/loadavg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pids {
    /// The most processes (threads) the node allows.
    pub max: i64,
    /// Processes (threads) now.
    pub running: i64,
}

/// Reads [`Pids`] from `<proc_root>`.
pub fn pids(proc_root: &Path) -> Result<Pids, FsError> {
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
        .ok_or_else(|| FsError::Parse {
            path: path.clone(),
            reason: format!("no running/total field in {text:?}"),
        })?;
    Ok(Pids { max, running })
}

pub use crate::fs_usage::dir_usage;

/// Local storage of one pod, as the summary's pod stats give it to the eviction manager.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalStorage {
    /// Logs plus emptyDir volumes, bytes (`PodStats.EphemeralStorage.UsedBytes`).
    pub bytes: i64,
    /// Inodes of the same.
    pub inodes: i64,
    /// Log bytes per container (`ContainerStats.Logs`; the writable layer is the runtime's,
    /// `crate::stats::writable_layers`).
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
        use std::os::unix::fs::MetadataExt;
        let parent_dev = std::fs::metadata(&empty_dirs).map(|m| m.dev()).ok();
        for e in rd.flatten() {
            let (b, i) = dir_usage(&e.path());
            per_volume.insert(e.file_name().to_string_lossy().to_string(), b);
            // A memory-backed emptyDir (a tmpfs mounted there) is the pod's memory, not its
            // local ephemeral storage (`IsLocalEphemeralVolume`).
            let on_disk = std::fs::metadata(e.path()).map(|m| m.dev()).ok() == parent_dev;
            if on_disk {
                bytes += b;
                inodes += i;
            }
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

    #[test]
    fn pids_from_fake_proc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/kernel")).unwrap();
        std::fs::write(d.path().join("sys/kernel/pid_max"), "32768\n").unwrap();
        std::fs::write(d.path().join("sys/kernel/threads-max"), "193102\n").unwrap();
        std::fs::write(d.path().join("loadavg"), "1.58 2.01 2.06 3/3518 2291\n").unwrap();
        assert_eq!(
            pids(d.path()).unwrap(),
            Pids {
                max: 32768,
                running: 3518
            }
        );
        std::fs::write(d.path().join("sys/kernel/threads-max"), "1000\n").unwrap();
        assert_eq!(pids(d.path()).unwrap().max, 1000);
        std::fs::write(d.path().join("loadavg"), "garbage\n").unwrap();
        assert!(pids(d.path()).is_err());
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
