//! Watching processes the runtime did not fork: a pidfd (`pidfd_open(2)`, Linux 5.3) becomes
//! readable the instant the process exits, so nothing polls while containers run; without
//! pidfd, `/proc` is polled. [`super::ShimRuntime`] waits on each container's shim this way
//! (`ContainerRuntime::wait`, the event source of the PLEG, see `crate::pleg`) and reads
//! `/proc/<pid>/stat` before it signals a process.
//!
//! Mirrors nothing in the kubelet itself: containerd's shims report exits over ttrpc; here the
//! shim's own exit is the event.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Fallback poll period where pidfd is unavailable: shorter reacts faster to exits, longer
/// wakes the agent less often per container.
const PROC_POLL: Duration = Duration::from_millis(100);

struct PidFd(OwnedFd);

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the kernel returns a new fd that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// True if the kernel supports pidfd_open (reported by `minikubelet check`).
pub fn pidfd_supported() -> bool {
    pidfd_open(std::process::id() as i32).is_ok()
}

/// Resolve when process `pid` has exited (it may not be our child).
pub async fn wait_pid_exit(pid: i32) {
    match pidfd_open(pid) {
        // SAFETY: `PidFd` owns the descriptor and closes it only when the AsyncFd (which
        // deregisters first) is dropped, so the fd stays valid while registered.
        Ok(fd) => match unsafe { AsyncFd::register_with_interest(PidFd(fd), Interest::READABLE) } {
            Ok(afd) => {
                let _ = afd.readable().await;
                return;
            }
            Err(e) => tracing::debug!(pid, error = ?e, "pidfd not pollable; polling /proc"),
        },
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return,
        Err(e) => tracing::debug!(pid, error = %e, "pidfd_open failed; polling /proc"),
    }
    // Only "gone" ends the wait: a state that cannot be read (EMFILE) is not an exit.
    while process_state(pid) != ProcState::Gone {
        tokio::time::sleep(PROC_POLL).await;
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Running, sleeping, stopped...: not a zombie.
    Alive,
    /// No such process (ENOENT/ESRCH), or a zombie / dead task.
    Gone,
    /// The state could not be read (EMFILE, EACCES, EIO...): the process may well be alive.
    Unknown,
}

/// The state of `pid` as `/proc` tells it. A read error other than "no such process" is
/// [`ProcState::Unknown`], never "gone": the audit's EMFILE made every pod look exited.
pub fn process_state(pid: i32) -> ProcState {
    process_state_in(std::path::Path::new("/proc"), pid)
}

/// [`process_state`] with another procfs root (unit tests).
pub fn process_state_in(proc_root: &std::path::Path, pid: i32) -> ProcState {
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Ok(s) => match s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
        {
            Some("Z" | "X") => ProcState::Gone,
            Some(_) => ProcState::Alive,
            // A stat line without a state field: not something a live process shows.
            None => ProcState::Unknown,
        },
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            ProcState::Gone
        }
        Err(e) => {
            tracing::debug!(pid, error = %e, "cannot read the process state; treating it as alive");
            ProcState::Unknown
        }
    }
}

/// True unless `/proc/<pid>` is known to be gone or a zombie: a process whose state cannot be
/// read counts as alive, so that stopping it still signals and kills.
pub fn process_alive(pid: i32) -> bool {
    process_state(pid) != ProcState::Gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_state_is_unknown_not_gone() {
        let root = tempfile::tempdir().unwrap();
        let write = |pid: i32, stat: &str| {
            let d = root.path().join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), stat).unwrap();
        };
        write(10, "10 (sleep) S 1 10 10 0");
        write(11, "11 (a) b) Z 1 11 11 0");
        write(12, "12 (x) X 1");
        // `stat` is a directory: reading it fails with EISDIR, neither ENOENT nor ESRCH.
        std::fs::create_dir_all(root.path().join("13/stat")).unwrap();
        let st = |pid| process_state_in(root.path(), pid);
        assert_eq!(st(10), ProcState::Alive);
        assert_eq!(st(11), ProcState::Gone);
        assert_eq!(st(12), ProcState::Gone);
        assert_eq!(st(13), ProcState::Unknown);
        assert_eq!(st(14), ProcState::Gone, "no /proc entry: gone");
        assert!(process_alive(std::process::id() as i32));
    }
}
