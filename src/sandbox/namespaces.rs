//! A pod's namespaces held without a process, the way CRI-O's `pinns` and
//! `internal/config/nsmgr` hold them: a short-lived thread unshares the namespaces, sets the
//! pod's hostname in the new UTS namespace, bind-mounts `/proc/thread-self/ns/<kind>` onto a
//! file, and exits. The bind mount keeps the namespace alive (no pause process), in the node's
//! mount namespace, so it outlives a `kill -9` of the agent; [`adopt`] finds and checks the
//! files again at start, [`unpin`] unmounts (`MNT_DETACH`) and unlinks them.
//!
//! The files live in `<root-dir>/pods/<uid>/sandbox/ns/{ipc,uts,net}` rather than CRI-O's
//! `/var/run/{ipc,uts,net}ns/<id>`: every agent (and every test) with its own `--root-dir`
//! has its own namespaces, everything of a pod is under its pod directory, and after a reboot
//! (when the bind mounts are gone) the left-over plain files are found by [`adopt`] and
//! cleaned up instead of lying forgotten in a second tree.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem type of a namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// `NS_GET_NSTYPE` from `linux/nsfs.h` (`_IO(0xb7, 0x3)`): the `CLONE_NEW*` type of a
/// namespace file descriptor.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// At most this many mounts are taken off one file by [`unpin`]: a file normally carries one;
/// more than a few means something else keeps mounting there, and looping forever would hang
/// the pod's teardown.
const MAX_STACKED_MOUNTS: usize = 8;

/// A namespace kind a pod sandbox can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsKind {
    /// The IPC namespace (System V IPC, POSIX message queues).
    Ipc,
    /// The UTS namespace (hostname, domain name).
    Uts,
    /// The network namespace (not used until pods get their own network).
    Net,
}

impl NsKind {
    /// Every kind, in the order they are pinned.
    pub const ALL: [NsKind; 3] = [NsKind::Ipc, NsKind::Uts, NsKind::Net];

    /// The name of the kind in `/proc/<pid>/ns/` (and of its file in the sandbox).
    pub fn as_str(self) -> &'static str {
        match self {
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Net => "net",
        }
    }

    /// The `unshare(2)` / `setns(2)` flag.
    pub fn flag(self) -> CloneFlags {
        match self {
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Net => CloneFlags::CLONE_NEWNET,
        }
    }
}

/// Errors pinning, adopting or removing namespaces, each naming the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// A file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A system call on the pinning thread failed.
    #[error("{op}: {source}")]
    Sys {
        /// The call.
        op: String,
        /// The error.
        source: nix::Error,
    },
    /// The pinning thread could not be started or panicked.
    #[error("namespace pinning thread: {0}")]
    Thread(String),
    /// A file that should hold a namespace holds something else (or nothing).
    #[error("{path} does not hold a {kind} namespace: {reason}")]
    NotPinned {
        /// The kind it should hold.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NsError + 'a {
    move |source| NsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The namespaces one sandbox holds: a path per pinned kind; `None` where the pod uses the
/// node's namespace (or, for `net`, until pod networking exists).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedNamespaces {
    /// The IPC namespace file, unless `hostIPC`.
    pub ipc: Option<PathBuf>,
    /// The UTS namespace file, unless `hostNetwork`.
    pub uts: Option<PathBuf>,
    /// The network namespace file: only when pod networking is on and not `hostNetwork`.
    pub net: Option<PathBuf>,
}

impl PinnedNamespaces {
    /// The path for `kind`, if pinned.
    pub fn get(&self, kind: NsKind) -> Option<&Path> {
        match kind {
            NsKind::Ipc => self.ipc.as_deref(),
            NsKind::Uts => self.uts.as_deref(),
            NsKind::Net => self.net.as_deref(),
        }
    }

    fn set(&mut self, kind: NsKind, path: PathBuf) {
        match kind {
            NsKind::Ipc => self.ipc = Some(path),
            NsKind::Uts => self.uts = Some(path),
            NsKind::Net => self.net = Some(path),
        }
    }

    /// The kinds that are pinned.
    pub fn kinds(&self) -> Vec<NsKind> {
        NsKind::ALL
            .into_iter()
            .filter(|k| self.get(*k).is_some())
            .collect()
    }
}

/// Create `dir` (and missing parents) with mode 0700.
pub(crate) fn make_private_dir(dir: &Path) -> Result<(), NsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory", dir))
}

/// Unshare `kinds` on a dedicated short-lived thread (never a tokio worker: `unshare` changes
/// the calling thread only, and the thread is gone afterwards), set `hostname` in the new UTS
/// namespace if one is made, and bind-mount each new namespace onto `<dir>/<kind>`.
/// On failure nothing stays mounted or created.
pub fn pin(
    dir: &Path,
    kinds: &[NsKind],
    hostname: Option<&str>,
    sysctls: &[(String, String)],
) -> Result<PinnedNamespaces, NsError> {
    make_private_dir(dir)?;
    if kinds.is_empty() {
        return Ok(PinnedNamespaces::default());
    }
    let dir_owned = dir.to_path_buf();
    let kinds_owned = kinds.to_vec();
    let hostname = hostname.map(str::to_string);
    let sysctls = sysctls.to_vec();
    let res = std::thread::Builder::new()
        .name("sandbox-pinns".into())
        .spawn(move || pin_on_this_thread(&dir_owned, &kinds_owned, hostname.as_deref(), &sysctls))
        .map_err(|e| NsError::Thread(e.to_string()))?
        .join()
        .map_err(|_| NsError::Thread("panicked".into()))?;
    if res.is_err() {
        // The thread cleaned up what it made; this catches a file it created but could not
        // remove, so that no half sandbox stays behind.
        let _ = unpin(dir);
    }
    res
}

fn pin_on_this_thread(
    dir: &Path,
    kinds: &[NsKind],
    hostname: Option<&str>,
    sysctls: &[(String, String)],
) -> Result<PinnedNamespaces, NsError> {
    let flags = kinds.iter().fold(CloneFlags::empty(), |f, k| f | k.flag());
    nix::sched::unshare(flags).map_err(|source| NsError::Sys {
        op: format!("unshare({flags:?})"),
        source,
    })?;
    if let Some(h) = hostname.filter(|_| kinds.contains(&NsKind::Uts)) {
        nix::unistd::sethostname(h).map_err(|source| NsError::Sys {
            op: format!("sethostname({h:?})"),
            source,
        })?;
    }
    // The pod's IPC sysctls, written in its new namespaces before they are pinned (CRI-O's
    // `pinns -s`); this thread's /proc/sys shows the namespaces it just unshared. Network
    // ones wait for the pod's network (`crate::runtime::network::write_sysctls`), as they are
    // written after CNI with containerd. Admission let through only sysctls of the pod's own
    // namespaces.
    for (name, value) in sysctls {
        match crate::sysctl::namespaced_by(name) {
            crate::sysctl::Namespace::Ipc if kinds.contains(&NsKind::Ipc) => {}
            crate::sysctl::Namespace::Net if kinds.contains(&NsKind::Net) => continue,
            _ => {
                return Err(NsError::Sys {
                    op: format!("sysctl {name}: not in a namespace of the pod's own"),
                    source: nix::errno::Errno::EPERM,
                });
            }
        }
        let Some(path) = crate::sysctl::proc_sys_path(name) else {
            return Err(NsError::Sys {
                op: format!("sysctl {name}: not a plain name"),
                source: nix::errno::Errno::EINVAL,
            });
        };
        if let Err(e) = std::fs::write(path, value.as_bytes()) {
            return Err(NsError::Sys {
                op: format!("sysctl {name}={value}"),
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            });
        }
    }
    let mut out = PinnedNamespaces::default();
    for &kind in kinds {
        let target = dir.join(kind.as_str());
        if let Err(e) = bind_ns(kind, &target) {
            let _ = unpin(dir);
            return Err(e);
        }
        out.set(kind, target);
    }
    Ok(out)
}

fn bind_ns(kind: NsKind, target: &Path) -> Result<(), NsError> {
    // An empty file as the mount point; mode 0400 (the nsfs mount shows its own mode on top).
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o400)
        .open(target)
        .map_err(io("create namespace file", target))?;
    let source = format!("/proc/thread-self/ns/{}", kind.as_str());
    nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source_err| NsError::Sys {
        op: format!("bind-mount {source} onto {}", target.display()),
        source: source_err,
    })
}

/// Check that `path` is a namespace file of `kind` (an nsfs mount of the right type).
pub fn check(kind: NsKind, path: &Path) -> Result<(), NsError> {
    let not = |reason: String| NsError::NotPinned {
        kind: kind.as_str(),
        path: path.to_path_buf(),
        reason,
    };
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| not(e.to_string()))?;
    let st = nix::sys::statfs::fstatfs(&f).map_err(|e| not(e.to_string()))?;
    let fs_type = st.filesystem_type().0 as i64;
    if fs_type != NSFS_MAGIC {
        return Err(not(format!(
            "not an nsfs mount (filesystem type {fs_type:#x})"
        )));
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which `f` owns.
    let t = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE as _) };
    if t < 0 {
        return Err(not(format!(
            "NS_GET_NSTYPE: {}",
            std::io::Error::last_os_error()
        )));
    }
    if t != kind.flag().bits() {
        return Err(not(format!("it holds a namespace of type {t:#x}")));
    }
    Ok(())
}

/// Find the namespace files in `dir` again (after an agent restart) and check each. A file
/// that does not hold its namespace (a plain file left by a reboot, a failed pin) is
/// unmounted if anything is mounted there and removed. Returns the valid ones.
pub fn adopt(dir: &Path) -> Result<PinnedNamespaces, NsError> {
    let mut out = PinnedNamespaces::default();
    for kind in NsKind::ALL {
        let path = dir.join(kind.as_str());
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("stat namespace file", &path)(e)),
            Ok(_) => {}
        }
        match check(kind, &path) {
            Ok(()) => out.set(kind, path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "removing a stale namespace file");
                release(&path)?;
            }
        }
    }
    Ok(out)
}

/// Unmount (`MNT_DETACH`: containers that still hold the namespace keep it until they exit)
/// and unlink every namespace file in `dir`, then remove `dir`. Missing files are fine.
pub fn unpin(dir: &Path) -> Result<(), NsError> {
    for kind in NsKind::ALL {
        release(&dir.join(kind.as_str()))?;
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove namespace directory", dir)(e)),
    }
}

/// Take every mount off `path` and unlink it.
fn release(path: &Path) -> Result<(), NsError> {
    for _ in 0..MAX_STACKED_MOUNTS {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            // EINVAL: not a mount point (any more); ENOENT: no file.
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
            Err(source) => {
                return Err(NsError::Sys {
                    op: format!("umount {}", path.display()),
                    source,
                });
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove namespace file", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ipc");
        std::fs::write(&p, "").unwrap();
        let e = check(NsKind::Ipc, &p).unwrap_err().to_string();
        assert!(e.contains("not an nsfs mount"), "{e}");
    }

    #[test]
    fn adopt_removes_stale_plain_files_and_unpin_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let ns = d.path().join("ns");
        std::fs::create_dir(&ns).unwrap();
        std::fs::write(ns.join("uts"), "").unwrap();
        assert_eq!(adopt(&ns).unwrap(), PinnedNamespaces::default());
        assert!(!ns.join("uts").exists());
        unpin(&ns).unwrap();
        unpin(&ns).unwrap();
        assert!(!ns.exists());
    }

    #[test]
    fn kinds_map_to_their_flags() {
        assert_eq!(NsKind::Ipc.flag(), CloneFlags::CLONE_NEWIPC);
        assert_eq!(NsKind::Net.as_str(), "net");
        let mut p = PinnedNamespaces::default();
        p.set(NsKind::Uts, "/x".into());
        assert_eq!(p.kinds(), vec![NsKind::Uts]);
    }
}
