//! Joining cgroups from a `pre_exec` hook, so a child starts (and execs) inside its cgroup and
//! is charged from its first page on (on v1, memory already charged does not move with a task).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::Error;

/// The join files of one cgroup (`tasks` on v1, `cgroup.procs` on v2), prepared so that
/// joining needs no allocation.
#[derive(Clone, Debug)]
pub struct ProcsJoin {
    files: Vec<CString>,
}

impl ProcsJoin {
    /// Prepares the given paths (from [`super::CgroupFs::join_files`]). Only for a process that
    /// is single-threaded when it joins (as a child between fork and exec is): on v1 a `tasks`
    /// write moves only the calling thread.
    pub fn new(files: &[PathBuf]) -> Result<Self, Error> {
        let files = files
            .iter()
            .map(|f| {
                CString::new(f.as_os_str().as_bytes()).map_err(|_| Error::InvalidName {
                    name: f.display().to_string(),
                    reason: "path contains NUL",
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ProcsJoin { files })
    }

    /// Moves the calling process into the cgroup by writing "0" into each file.
    ///
    /// Async-signal-safe (only `open`, `write`, `close`; no allocation), so it may run in a
    /// `CommandExt::pre_exec` hook between fork and exec.
    pub fn join_current(&self) -> std::io::Result<()> {
        for f in &self.files {
            // SAFETY: `f` is a valid NUL-terminated path that outlives the call.
            let fd = unsafe { libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: writes one byte from a static buffer to the fd we just opened.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let result = match n {
                1 => Ok(()),
                n if n < 0 => Err(std::io::Error::last_os_error()),
                _ => Err(std::io::ErrorKind::WriteZero.into()),
            };
            // SAFETY: closes the fd opened above, exactly once.
            unsafe { libc::close(fd) };
            result?;
        }
        Ok(())
    }
}
