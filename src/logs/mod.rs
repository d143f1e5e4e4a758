//! Container log files: the kubelet's log paths, the CRI log line format (writer and parser),
//! size rotation, housekeeping of rotated files, reading logs back, and the watcher that wakes
//! log followers.
//!
//! Mirrors `pkg/kubelet/logs` (the container log manager), `pkg/kubelet/kuberuntime/logs` (CRI
//! log parsing and `ReadLogs`), the path helpers of `pkg/kubelet/kuberuntime/helpers.go` and
//! `legacy.go`, and, for writing, containerd's CRI logger, which the [`shim`](crate::shim) plays.
mod cri;
mod manager;
mod reader;
mod tail;
mod timestamp;
mod watch;

use std::path::{Path, PathBuf};

pub use cri::{CriLine, CriLogWriter, LineSplitter, MAX_LINE_SIZE, Stream, Tag, parse_cri_line};
pub use manager::{
    COMPRESS_SUFFIX, CONTAINER_LOG_MONITOR_INTERVAL, HousekeepingReport, LogManager, TMP_SUFFIX,
    rotated_logs,
};
pub use reader::{
    CriRecord, CriRecords, LogOptions, LogReader, MAX_RECORD_LINE, ReadStep, log_files, read_logs,
};
pub use timestamp::{TimeBuf, UnixTime};
pub use watch::{DirWatch, LogWatcher};

/// The kubelet's default `podLogsDir`.
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";
/// Where the kubelet keeps the legacy per-container symlinks.
pub const LEGACY_CONTAINER_LOGS_DIR: &str = "/var/log/containers";
/// ext4's file name limit, which the legacy symlink name is cut to (kubelet `ext4MaxFileNameLen`).
const EXT4_MAX_FILE_NAME_LEN: usize = 255;

/// Errors of the log files module.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// A file system call on a log file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CRI log line lacks a field.
    #[error("{field} is not found")]
    MissingField {
        /// "timestamp", "stream type" or "log tag".
        field: &'static str,
    },
    /// A CRI log line's timestamp is not RFC 3339.
    #[error("unexpected timestamp format {value:?}: {reason}")]
    Timestamp {
        /// The text found.
        value: String,
        /// Why it did not parse.
        reason: String,
    },
    /// A CRI log line names a stream other than stdout or stderr.
    #[error("unexpected stream type {value:?}")]
    StreamType {
        /// The text found.
        value: String,
    },
    /// `containerLogMaxFiles` below the kubelet's minimum.
    #[error("containerLogMaxFiles must be at least 2, got {max_files}")]
    InvalidMaxFiles {
        /// The value given.
        max_files: u32,
    },
}

impl LogsError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        LogsError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `<pod_logs_dir>/<namespace>_<pod name>_<pod uid>` (kubelet `BuildPodLogsDirectory`).
pub fn pod_log_dir(pod_logs_dir: &Path, namespace: &str, pod_name: &str, pod_uid: &str) -> PathBuf {
    pod_logs_dir.join(format!("{namespace}_{pod_name}_{pod_uid}"))
}

/// `<pod log dir>/<container>` (kubelet `BuildContainerLogsDirectory`).
pub fn container_log_dir(
    pod_logs_dir: &Path,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
    container: &str,
) -> PathBuf {
    pod_log_dir(pod_logs_dir, namespace, pod_name, pod_uid).join(container)
}

/// `<pod log dir>/<container>/<restartCount>.log` (kubelet `buildContainerLogsPath`).
pub fn container_log_path(
    pod_logs_dir: &Path,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
    container: &str,
    restart_count: u32,
) -> PathBuf {
    container_log_dir(pod_logs_dir, namespace, pod_name, pod_uid, container)
        .join(format!("{restart_count}.log"))
}

/// The `/var/log/containers` symlink name `<pod>_<namespace>_<container>-<containerID>.log`, cut
/// to 255 bytes with the `.log` suffix kept (kubelet `logSymlink`).
pub fn container_symlink_name(
    pod_name: &str,
    namespace: &str,
    container: &str,
    container_id: &str,
) -> String {
    const SUFFIX: &str = ".log";
    let mut name = format!("{pod_name}_{namespace}_{container}-{container_id}");
    let mut cut = EXT4_MAX_FILE_NAME_LEN - SUFFIX.len();
    if name.len() > cut {
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name.push_str(SUFFIX);
    name
}

/// Create the `/var/log/containers`-style symlink `<dir>/<pod>_<ns>_<container>-<id>.log` to a
/// container's log file (kubelet `createContainerLogSymlink`). Failure is logged, not fatal: the
/// log itself is what matters.
pub fn link_container_log(
    container_logs_dir: &Path,
    pod_name: &str,
    namespace: &str,
    container: &str,
    container_id: &str,
    log_path: &Path,
) {
    let link = container_logs_dir.join(container_symlink_name(
        pod_name,
        namespace,
        container,
        container_id,
    ));
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(log_path, &link) {
        tracing::warn!(link = %link.display(), target = %log_path.display(), error = %e, "create container log symlink");
    }
}

/// Remove a container instance's log file, its rotated files and its symlinks
/// (kubelet `removeContainerLog`).
pub fn remove_container_logs(log_path: &Path) {
    let mut files = rotated_logs(log_path).unwrap_or_default();
    files.push(log_path.to_path_buf());
    for f in files {
        if let Err(e) = std::fs::remove_file(&f)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %f.display(), error = %e, "remove container log");
        }
    }
}

/// Remove the `/var/log/containers`-style symlinks that point at `log_path` (the kubelet removes
/// a container's link with its log).
pub fn remove_container_links(container_logs_dir: &Path, log_path: &Path) {
    let Ok(entries) = std::fs::read_dir(container_logs_dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if std::fs::read_link(&p).is_ok_and(|t| t == log_path)
            && let Err(err) = std::fs::remove_file(&p)
        {
            tracing::warn!(link = %p.display(), error = %err, "remove container log symlink");
        }
    }
}

/// Remove a pod's whole log directory and every symlink pointing into it (what the kubelet's
/// garbage collection does once a pod is gone).
pub fn remove_pod_logs(
    pod_logs_dir: &Path,
    container_logs_dir: &Path,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
) {
    let dir = pod_log_dir(pod_logs_dir, namespace, pod_name, pod_uid);
    if let Ok(entries) = std::fs::read_dir(container_logs_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if std::fs::read_link(&p).is_ok_and(|t| t.starts_with(&dir)) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), error = %e, "remove pod logs");
    }
}

/// One housekeeping pass over every container log directory under `pod_logs_dir`
/// (`<ns>_<pod>_<uid>/<container>/`): compress rotated files and prune to `max_files`.
pub fn housekeeping_all(pod_logs_dir: &Path, max_files: u32) {
    let Ok(manager) = LogManager::new(max_files) else {
        return;
    };
    let Ok(pods) = std::fs::read_dir(pod_logs_dir) else {
        return;
    };
    for pod in pods.flatten() {
        let Ok(containers) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for c in containers.flatten() {
            if c.file_type().is_ok_and(|t| t.is_dir())
                && let Err(e) = manager.housekeep_dir(&c.path())
            {
                tracing::warn!(dir = %c.path().display(), error = %e, "log housekeeping");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths() {
        let root = Path::new(DEFAULT_POD_LOGS_DIR);
        assert_eq!(
            pod_log_dir(
                root,
                "kube-system",
                "etcd-node1",
                "0a1b2c3d-0000-4000-8000-000000000001"
            ),
            Path::new("/var/log/pods/kube-system_etcd-node1_0a1b2c3d-0000-4000-8000-000000000001")
        );
        assert_eq!(
            container_log_path(root, "default", "web", "uid-1", "nginx", 3),
            Path::new("/var/log/pods/default_web_uid-1/nginx/3.log")
        );
    }

    #[test]
    fn symlink_names() {
        let long = "c".repeat(300);
        let cases = [
            (
                ("web", "default", "nginx", "abc123"),
                "web_default_nginx-abc123.log".to_string(),
            ),
            (
                ("p", "ns", "c", long.as_str()),
                format!("p_ns_c-{}.log", "c".repeat(255 - 4 - 7)),
            ),
        ];
        for ((pod, ns, c, id), want) in cases {
            let got = container_symlink_name(pod, ns, c, id);
            assert_eq!(got, want);
            assert!(got.len() <= 255);
        }
    }
}
