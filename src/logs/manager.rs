//! Housekeeping of rotated container logs, mirroring `pkg/kubelet/logs/container_log_manager.go`.
//!
//! In the kubelet the log manager also does the rotation (rename, then `ReopenContainerLog` on
//! the runtime). Here the shim that owns the file rotates it by size between two records, so the
//! manager keeps only the rest of the kubelet's `rotateLog`: remove leftovers of an interrupted
//! compression, delete the oldest rotated files beyond `containerLogMaxFiles`, and gzip every
//! rotated file but the newest (left plain so a `kubectl logs -f` that was reading it can finish).
use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LogsError;

/// The kubelet's `containerLogMonitorInterval` default: how often the agent calls
/// [`LogManager::housekeep_dir`]. Shorter catches up with chatty containers sooner (fewer
/// uncompressed rotated files on disk) at the cost of a directory scan per container per tick.
pub const CONTAINER_LOG_MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// Suffix of a compressed rotated log (kubelet `compressSuffix`).
pub const COMPRESS_SUFFIX: &str = ".gz";
/// Suffix of a compression in progress (kubelet `tmpSuffix`).
pub const TMP_SUFFIX: &str = ".tmp";

/// Applies `containerLogMaxFiles` to container log directories.
#[derive(Clone, Debug)]
pub struct LogManager {
    max_files: u32,
}

/// What one housekeeping pass changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    /// Rotated files replaced by their `.gz`, as the new `.gz` paths.
    pub compressed: Vec<PathBuf>,
    /// Files deleted: excess rotated files and leftovers of interrupted compressions.
    pub removed: Vec<PathBuf>,
}

impl HousekeepingReport {
    fn extend(&mut self, other: HousekeepingReport) {
        self.compressed.extend(other.compressed);
        self.removed.extend(other.removed);
    }
}

impl LogManager {
    /// A manager keeping at most `max_files` files per container log, the live one included
    /// (`containerLogMaxFiles`, at least 2, as the kubelet's validation requires).
    pub fn new(max_files: u32) -> Result<Self, LogsError> {
        if max_files < 2 {
            return Err(LogsError::InvalidMaxFiles { max_files });
        }
        Ok(LogManager { max_files })
    }

    /// Housekeeping for every `<restartCount>.log` in one container's log directory.
    pub fn housekeep_dir(&self, container_log_dir: &Path) -> Result<HousekeepingReport, LogsError> {
        let mut report = HousekeepingReport::default();
        let mut bases = Vec::new();
        for entry in read_dir_names(container_log_dir)? {
            if let Some(base) = log_base(&entry)
                && !bases.iter().any(|b| b == base)
            {
                bases.push(base.to_string());
            }
        }
        bases.sort();
        for base in bases {
            report.extend(self.housekeep_log(&container_log_dir.join(base))?);
        }
        Ok(report)
    }

    /// Housekeeping for one container log `N.log` and its rotated files `N.log.*`.
    pub fn housekeep_log(&self, log_path: &Path) -> Result<HousekeepingReport, LogsError> {
        let mut report = HousekeepingReport::default();
        let rotated = rotated_logs(log_path)?;
        // cleanupUnusedLogs: *.tmp and plain files whose .gz exists are left over from a
        // compression that was interrupted.
        let mut inuse = Vec::new();
        for l in &rotated {
            let name = l.to_string_lossy();
            let compressed_twin = PathBuf::from(format!("{name}{COMPRESS_SUFFIX}"));
            if name.ends_with(TMP_SUFFIX)
                || (!name.ends_with(COMPRESS_SUFFIX) && rotated.contains(&compressed_twin))
            {
                remove(l)?;
                report.removed.push(l.clone());
            } else {
                inuse.push(l.clone());
            }
        }
        // removeExcessLogs: the live file plus at most max_files-1 rotated ones, oldest go first
        // (names sort in rotation order), so as not to break an ongoing `kubectl logs`.
        let keep = (self.max_files - 1) as usize;
        let excess = inuse.len().saturating_sub(keep);
        for l in inuse.drain(..excess) {
            remove(&l)?;
            report.removed.push(l);
        }
        // Compress all rotated files but the newest.
        if let Some((_newest, older)) = inuse.split_last() {
            for l in older {
                if !l.to_string_lossy().ends_with(COMPRESS_SUFFIX) {
                    report.compressed.push(compress(l)?);
                }
            }
        }
        if !report.compressed.is_empty() || !report.removed.is_empty() {
            tracing::debug!(log = %log_path.display(), compressed = report.compressed.len(), removed = report.removed.len(), "container log housekeeping");
        }
        Ok(report)
    }
}

/// The rotated files of `log_path` (`N.log.*`, any suffix), sorted oldest first by name.
pub fn rotated_logs(log_path: &Path) -> Result<Vec<PathBuf>, LogsError> {
    let dir = log_path.parent().unwrap_or(Path::new("."));
    let Some(base) = log_path
        .file_name()
        .map(|b| format!("{}.", b.to_string_lossy()))
    else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = read_dir_names(dir)?
        .into_iter()
        .filter(|n| n.starts_with(&base) && n.len() > base.len())
        .map(|n| dir.join(n))
        .collect();
    out.sort();
    Ok(out)
}

/// `N.log` for a file named `N.log` or `N.log.<anything>` whose `N` is a restart count.
fn log_base(name: &str) -> Option<&str> {
    let end = name.find(".log")? + ".log".len();
    let (base, rest) = name.split_at(end);
    let digits = &base[..base.len() - 4];
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (rest.is_empty() || rest.starts_with('.'));
    ok.then_some(base)
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, LogsError> {
    let rd =
        std::fs::read_dir(dir).map_err(|source| LogsError::io("read directory", dir, source))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|source| LogsError::io("read directory", dir, source))?;
        if let Ok(n) = e.file_name().into_string() {
            names.push(n);
        }
    }
    Ok(names)
}

fn remove(path: &Path) -> Result<(), LogsError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogsError::io("remove", path, source)),
    }
}

/// `X` → `X.gz` through `X.tmp` (kubelet `compressLog`), then removes `X`.
fn compress(log: &Path) -> Result<PathBuf, LogsError> {
    let name = log.as_os_str().to_string_lossy();
    let tmp = PathBuf::from(format!("{name}{TMP_SUFFIX}"));
    let gz = PathBuf::from(format!("{name}{COMPRESS_SUFFIX}"));
    let src = File::open(log).map_err(|source| LogsError::io("open", log, source))?;
    let mode = src
        .metadata()
        .map_err(|source| LogsError::io("stat", log, source))?
        .permissions()
        .mode()
        & 0o777;
    // The compressed file gets the log's own mode (0640) from its creation on: no moment when
    // it is readable by more than the log was. A leftover .tmp (which would keep its own mode)
    // is replaced.
    remove(&tmp)?;
    let dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|source| LogsError::io("create", &tmp, source))?;
    // The umask may only have narrowed it; make it exact.
    dst.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|source| LogsError::io("chmod", &tmp, source))?;
    let mut enc = flate2::write::GzEncoder::new(dst, flate2::Compression::default());
    let result = std::io::copy(&mut BufReader::new(src), &mut enc)
        .and_then(|_| enc.finish())
        .and_then(|f| f.sync_all());
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(LogsError::io("compress", log, source));
    }
    std::fs::rename(&tmp, &gz).map_err(|source| LogsError::io("rename", &tmp, source))?;
    remove(log)?;
    Ok(gz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn names(dir: &Path) -> Vec<String> {
        let mut n = read_dir_names(dir).unwrap();
        n.sort();
        n
    }

    #[test]
    fn rejects_max_files_below_two() {
        assert!(
            LogManager::new(1)
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
        assert!(LogManager::new(2).is_ok());
    }

    #[test]
    fn housekeeping_table() {
        // (max_files, files present, files after)
        let cases: &[(u32, &[&str], &[&str])] = &[
            (5, &["0.log"], &["0.log"]),
            (
                5,
                &["0.log", "0.log.20240101-000001"],
                &["0.log", "0.log.20240101-000001"],
            ),
            (
                5,
                &["0.log", "0.log.20240101-000001", "0.log.20240101-000002"],
                &["0.log", "0.log.20240101-000001.gz", "0.log.20240101-000002"],
            ),
            (
                3,
                &[
                    "0.log",
                    "0.log.20240101-000001.gz",
                    "0.log.20240101-000002",
                    "0.log.20240101-000003",
                    "0.log.20240101-000004",
                ],
                &["0.log", "0.log.20240101-000003.gz", "0.log.20240101-000004"],
            ),
            (
                2,
                &["0.log", "0.log.20240101-000001", "0.log.20240101-000002"],
                &["0.log", "0.log.20240101-000002"],
            ),
            // Leftovers of an interrupted compression.
            (
                5,
                &[
                    "0.log",
                    "0.log.20240101-000001",
                    "0.log.20240101-000001.gz",
                    "0.log.20240101-000002.tmp",
                    "0.log.20240101-000003",
                ],
                &["0.log", "0.log.20240101-000001.gz", "0.log.20240101-000003"],
            ),
            // Each restart count is its own log; unrelated files are left alone.
            (
                2,
                &[
                    "0.log",
                    "0.log.20240101-000001",
                    "0.log.20240101-000002",
                    "1.log",
                    "1.log.20240101-000003",
                    "notes.txt",
                ],
                &[
                    "0.log",
                    "0.log.20240101-000002",
                    "1.log",
                    "1.log.20240101-000003",
                    "notes.txt",
                ],
            ),
        ];
        for (max_files, before, after) in cases {
            let dir = tempfile::tempdir().unwrap();
            for f in *before {
                std::fs::write(dir.path().join(f), format!("content of {f}\n")).unwrap();
            }
            LogManager::new(*max_files)
                .unwrap()
                .housekeep_dir(dir.path())
                .unwrap();
            assert_eq!(
                names(dir.path()),
                *after,
                "max_files={max_files} before={before:?}"
            );
        }
    }

    #[test]
    fn compressed_file_holds_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("3.log");
        std::fs::write(&log, "live\n").unwrap();
        std::fs::write(dir.path().join("3.log.20240101-000001"), "first\n").unwrap();
        std::fs::write(dir.path().join("3.log.20240101-000002"), "second\n").unwrap();
        let report = LogManager::new(5).unwrap().housekeep_log(&log).unwrap();
        assert_eq!(
            report.compressed,
            vec![dir.path().join("3.log.20240101-000001.gz")]
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(&report.compressed[0]).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "first\n");
    }

    #[test]
    fn compressed_file_keeps_the_log_mode() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, "live\n").unwrap();
        for (i, mode) in [(1, 0o640), (2, 0o600), (3, 0o644)] {
            let f = dir.path().join(format!("0.log.20240101-00000{i}"));
            std::fs::write(&f, "old\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // A leftover .tmp with another mode is not reused.
        let tmp = dir.path().join("0.log.20240101-000002.gz.tmp");
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        let rotated = rotated_logs(&log).unwrap();
        for (f, want) in rotated
            .iter()
            .filter(|f| !f.to_string_lossy().ends_with(".tmp"))
            .zip([0o640, 0o600])
        {
            let gz = compress(f).unwrap();
            let mode = std::fs::metadata(&gz).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}", gz.display());
        }
    }

    #[test]
    fn log_base_names() {
        let cases = [
            ("0.log", Some("0.log")),
            ("12.log.20240101-000001.gz", Some("12.log")),
            ("x.log", None),
            ("0.logs", None),
            (".log", None),
            ("0.txt", None),
        ];
        for (name, want) in cases {
            assert_eq!(log_base(name), want, "{name}");
        }
    }
}
