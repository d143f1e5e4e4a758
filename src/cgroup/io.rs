//! The few file operations the layer does; every write and mkdir/rmdir is logged here.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;

/// Unit tests of the parts above the cgroup layer (the pod worker's) run on a temp dir standing
/// in for cgroupfs. Beneath a directory of this name, and in test builds only, the tree behaves
/// as the kernel's does where a plain directory cannot: a cgroup's files exist once written
/// and go with its `rmdir`. Production builds never take this path.
#[cfg(test)]
pub(crate) const FAKE_KERNEL_DIR: &str = "fake-cgroupfs-kernel";

#[cfg(test)]
fn fake_kernel(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == FAKE_KERNEL_DIR)
}

#[cfg(not(test))]
fn fake_kernel(_: &Path) -> bool {
    false
}

/// Writes `value` into an existing cgroup file (never creates one: a wrong name fails loudly).
pub(super) fn write_value(path: &Path, value: &str) -> Result<(), Error> {
    tracing::debug!(path = %path.display(), value, "cgroup write");
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    // One write(2) per value: cgroupfs parses each write on its own. O_TRUNC is ignored by
    // cgroupfs and keeps a fake tree's file equal to the last value.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(fake_kernel(path))
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// The file's content.
pub(super) fn read_string(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The file's content, `None` if it (or its cgroup) does not exist.
pub(super) fn read_string_opt(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whitespace-separated words (`cgroup.controllers`, `cgroup.subtree_control`).
pub(super) fn read_words(path: &Path) -> Result<Vec<String>, Error> {
    Ok(read_string(path)?
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// A single unsigned number (`memory.usage_in_bytes`, `cpuacct.usage`, ...).
pub(super) fn read_u64(path: &Path) -> Result<u64, Error> {
    let s = read_string(path)?;
    s.trim().parse().map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        reason: format!("{:?} is not a number: {e}", s.trim()),
    })
}

/// The pids in a `cgroup.procs` file; empty if the cgroup does not exist.
pub(super) fn read_pids(path: &Path) -> Result<Vec<i32>, Error> {
    let Some(s) = read_string_opt(path)? else {
        return Ok(Vec::new());
    };
    s.split_whitespace()
        .map(|p| {
            p.parse().map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                reason: format!("pid {p:?}: {e}"),
            })
        })
        .collect()
}

/// `mkdir`; an existing directory is fine.
pub(super) fn mkdir(path: &Path) -> Result<(), Error> {
    match std::fs::create_dir(path) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "cgroup mkdir");
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Mkdir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `mkdir -p base/comps...` (base must exist).
pub(super) fn mkdir_all(base: &Path, comps: &[String]) -> Result<(), Error> {
    let mut p = base.to_path_buf();
    for c in comps {
        p.push(c);
        mkdir(&p)?;
    }
    Ok(())
}

/// `dir` and every directory below it, parents before children; a vanished directory is skipped.
pub(super) fn walk_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Read { path: d, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: d.clone(),
                source,
            })?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
        out.push(d);
    }
    // Sort by depth: parents before children, so a reversed list removes leaves first.
    out.sort_by_key(|p| p.components().count());
    Ok(out)
}

/// The kernel frees a cgroup asynchronously after its last task exited, so an rmdir right after
/// a kill can see EBUSY for a few milliseconds. Like libcontainer's `RemovePath` we retry 5 times
/// from 10 ms, doubling (at most ~310 ms in all): long enough for that window, short enough not
/// to stall a pod's teardown when the cgroup really is busy (a live process, a child cgroup).
const RMDIR_ATTEMPTS: u32 = 5;
const RMDIR_FIRST_DELAY: Duration = Duration::from_millis(10);

/// `rmdir` with retries on EBUSY; an absent directory is fine.
pub(super) fn rmdir(path: &Path) -> Result<(), Error> {
    let mut delay = RMDIR_FIRST_DELAY;
    let mut attempt = 1;
    if fake_kernel(path)
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "cgroup rmdir");
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                tracing::debug!(path = %path.display(), attempt, "cgroup rmdir busy, retrying");
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            Err(source) => {
                return Err(Error::Rmdir {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}
