//! The pod lifecycle event generator: tells a pod's worker when one of its containers exited.
//!
//! Mirrors `pkg/kubelet/pleg`. The kubelet's generic PLEG re-lists the runtime every second and
//! diffs; its evented PLEG (KEP-3386) takes events from the runtime instead. minikubelet's shims
//! are its runtime, so it can do better than either: each running container's shim is watched
//! through a pidfd (`pidfd_open(2)`, Linux 5.3), which becomes readable the instant the shim
//! exits, after it has recorded the container's exit. No polling while containers run.

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
    while process_alive(pid) {
        tokio::time::sleep(PROC_POLL).await;
    }
}

/// True while `/proc/<pid>` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
