//! The PID-1 holder of a pod that shares its PID namespace (`shareProcessNamespace: true`):
//! `<exe> shim --pause` makes a new PID namespace whose init sleeps and reaps, like the pause
//! image's `pause` or Debian's `catatonit`. The pod's containers join it by
//! `/proc/<holder>/ns/pid` (`crate::runtime::spec::PidNamespace::Pod`).
//!
//! The launcher forks the holder (PID 1 of the new namespace), prints its pid as seen from the
//! node on stdout and exits, so the holder is nobody's child but init's. SIGTERM or SIGINT
//! end it; its death ends every process left in the namespace.
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::ShimError;

/// The argument after `shim` that runs the holder instead of a container's shim.
pub const PAUSE_ARG: &str = "--pause";

/// Runs the launcher and the holder. Must be called before any thread exists: it forks.
pub(super) fn main() -> ExitCode {
    // SAFETY: closes fds >= 3, none of which this process uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
        eprintln!("pause: new pid namespace: {}", e.desc());
        return ExitCode::from(1);
    }
    // SAFETY: single-threaded (dispatched from main before anything else).
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("pause: fork: {}", e.desc());
            ExitCode::from(1)
        }
        Ok(ForkResult::Parent { child }) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{child}").and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            let _ = std::env::set_current_dir("/");
            if let Ok(null) = std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard fds.
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
                }
            }
            hold()
        }
    }
}

/// PID 1: wait for signals (blocked, so they reach an init too), reap on SIGCHLD, exit on
/// SIGTERM or SIGINT.
fn hold() -> ExitCode {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(sig);
    }
    if set.thread_block().is_err() {
        return ExitCode::from(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    if st == WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Ok(_) => return ExitCode::SUCCESS,
            Err(_) => {}
        }
    }
}

/// Starts a holder with `<exe> shim --pause`; returns its pid on the node (its PID namespace
/// is `/proc/<pid>/ns/pid`). Blocking, about a millisecond.
pub fn start_pid_holder(exe: &Path) -> Result<i32, ShimError> {
    let out = std::process::Command::new(exe)
        .args(["shim", PAUSE_ARG])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|source| ShimError::Spawn {
            exe: exe.to_path_buf(),
            state_dir: PAUSE_ARG.into(),
            source,
        })?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| ShimError::NoReport {
            state_dir: PAUSE_ARG.into(),
            detail: format!(
                "the pid holder printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            ),
        })
}
