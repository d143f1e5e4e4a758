//! Running a command inside a running container's context: the CRI `ExecSync` call.
//!
//! Mirrors what a CRI runtime does for `ExecSync` (containerd's `execInternal` + `runc exec`) as
//! the kubelet uses it through `kuberuntime.RunInContainer`: the process gets the container's
//! environment, working directory, user and groups, joins the container's cgroups before it
//! execs, and is killed when the timeout expires. Its stdout and stderr are collected, stdout
//! first then stderr (the kubelet's `append(stdout, stderr...)`), capped at 10 KiB.
//!
//! A container without isolation shares the node's namespaces, so its "context" is its env,
//! cwd, credentials and cgroups. An isolated one ([`ExecIsolation`]) is entered like `runc exec`
//! does (`nsexec`): the process marks itself non-dumpable (CVE-2019-5736: the container must
//! not reach the agent's binary through `/proc/<pid>/exe` while it is still the agent's image),
//! `setns`es into the container's ipc, uts, net, pid and mount namespaces, `chroot`s into its
//! root, forks once (a PID namespace applies to children only; the intermediate stays outside
//! it, waits and passes the exit code on), takes the container's capabilities and identity
//! and execs at once.
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::process::Command;
use tokio::time::Instant;

/// The PATH a container gets when its environment has none (containerd's `oci.defaultUnixEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this much output is kept (the kubelet's exec prober `maxReadLength`, 10 KiB); the
/// rest is read and discarded so the process never blocks on a full pipe.
pub const MAX_EXEC_OUTPUT: usize = 10 * 1024;

/// After the process exits, how long to keep reading output that a child it left behind still
/// holds open (`sh -c 'daemon &'`). Short, so a background process cannot stretch a probe to
/// its timeout; long enough that the exited process's last writes, already in the pipe, are
/// read. containerd has the same knob (`drain_exec_sync_io_timeout`).
const EXEC_IO_DRAIN_TIMEOUT: Duration = Duration::from_millis(100);

/// How to run a process in a running container's context: the container's env, working dir,
/// user and cgroup.
#[derive(Clone, Debug, Default)]
pub struct ExecContext {
    /// The container's environment, in order (later entries win, as in the kubelet).
    pub env: Vec<(String, String)>,
    /// The container's working directory; the agent's own when `None`.
    pub working_dir: Option<PathBuf>,
    /// The user to run as; the agent's own (root) when `None`.
    pub uid: Option<u32>,
    /// The primary group to run as; the agent's own when `None`.
    pub gid: Option<u32>,
    /// Supplementary groups; replaces the agent's whenever uid, gid or this list is set.
    pub supplemental_groups: Vec<u32>,
    /// The join files of the container's cgroups ([`crate::cgroup::CgroupFs::join_files`]:
    /// `tasks` on v1, `cgroup.procs` on v2); the child, single-threaded between fork and exec,
    /// writes "0" into each before exec, so it is accounted and limited with the container
    /// from its first instruction. On v1 `tasks` spares the write the threadgroup lock and its
    /// RCU grace period; a config recorded before that still names `cgroup.procs`, which works
    /// the same, only slower.
    pub cgroup_procs: Vec<PathBuf>,
    /// The container's `oom_score_adj`, written to `/proc/self/oom_score_adj` in the child
    /// before it drops to the container's user (as the shim does for the container itself);
    /// the agent's own is inherited when `None`.
    pub oom_score_adj: Option<i32>,
    /// The container's namespaces and root to enter; `None`: the node's (no isolation).
    pub isolation: Option<ExecIsolation>,
    /// The pod's own IP, which HTTP and TCP probes and hooks target when their action names no
    /// host; `None`: the pod is on the node's network, reached on the loopback.
    pub pod_ip: Option<String>,
}

/// How to enter an isolated container: its PID 1 (whose namespaces and root are joined) and the
/// capability sets and `no_new_privs` of its spec.
#[derive(Clone, Debug, Default)]
pub struct ExecIsolation {
    /// The container's main process (its PID 1), as seen from the node.
    pub pid: i32,
    /// The container's capability sets (`process.capabilities`; boxed: five lists).
    pub capabilities: Option<Box<crate::shim::oci::Capabilities>>,
    /// `process.noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `linux.seccomp` (boxed: rarely set).
    pub seccomp: Option<Box<crate::shim::oci::Seccomp>>,
    /// `process.apparmorProfile`: the exec'd command runs under the container's profile, as
    /// with `runc exec`.
    pub apparmor_profile: Option<String>,
}

/// What a finished command left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; 128 + signal number when a signal killed it (as shells and runtimes report).
    pub exit_code: i32,
    /// stdout then stderr, together at most [`MAX_EXEC_OUTPUT`] bytes.
    pub output: Vec<u8>,
}

/// Why a command could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The argv was empty.
    #[error("exec: empty command")]
    EmptyCommand,
    /// `argv[0]` has no '/' and is not an executable file in any PATH directory.
    #[error("exec {program:?} (command {command:?}): executable file not found in $PATH")]
    NotFound { command: String, program: String },
    /// A cgroup join file (`tasks` or `cgroup.procs`) of the container could not be opened.
    #[error("open {path} to exec {command:?} in the container's cgroup: {source}")]
    Cgroup {
        command: String,
        path: PathBuf,
        source: io::Error,
    },
    /// fork/exec failed, or a step in the child before exec did (join cgroup, setgroups,
    /// setgid, setuid, chdir).
    #[error("start {command:?}: {source}")]
    Spawn { command: String, source: io::Error },
    /// Waiting for the process failed.
    #[error("wait for {command:?}: {source}")]
    Wait { command: String, source: io::Error },
    /// The command outlived its timeout and was killed with SIGKILL (the kubelet's wording).
    #[error("command {command:?} timed out")]
    Timeout { command: String, timeout: Duration },
}

/// CRI ExecSync: run argv in the container's context; on timeout kill it (SIGKILL, its whole
/// process group) and return [`ExecError::Timeout`].
///
/// Dropping the returned future kills the process group too.
pub async fn exec_sync(
    ctx: &ExecContext,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let Prepared {
        mut cmd,
        command,
        cgroup_files,
        cgroup_fds,
        creds,
    } = prepare(ctx, argv)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec. It only makes async-signal-safe
    // system calls (write, setpgid, setgroups, setgid, setuid) on data prepared before the fork,
    // and allocates nothing (io::Error::last_os_error does not allocate).
    unsafe {
        cmd.pre_exec(move || enter_container(&cgroup_fds, &creds, false));
    }

    tracing::debug!(command = %command, cgroups = ?ctx.cgroup_procs, uid = ?ctx.uid, "exec in container");
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        command: command.clone(),
        source,
    })?;
    drop(cgroup_files);
    // Declared after `child`, so it drops first: while the leader is unreaped its pid is still
    // the group's id and cannot have been reused.
    let mut group = GroupKillGuard {
        pgid: child.id().and_then(|p| i32::try_from(p).ok()),
    };

    let mut stdout_buf = Vec::new();
    let mut stderr_buf = Vec::new();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let deadline = Instant::now() + timeout;
    let status = {
        let io = async {
            tokio::join!(
                read_capped(stdout, &mut stdout_buf),
                read_capped(stderr, &mut stderr_buf)
            )
        };
        tokio::pin!(io);
        let mut io_done = false;
        let status = loop {
            tokio::select! {
                biased;
                status = child.wait() => break Some(status),
                _ = &mut io, if !io_done => io_done = true,
                _ = tokio::time::sleep_until(deadline) => break None,
            }
        };
        if matches!(status, Some(Ok(_))) && !io_done {
            let drain_until = deadline.min(Instant::now() + EXEC_IO_DRAIN_TIMEOUT);
            let _ = tokio::time::timeout_at(drain_until, &mut io).await;
        }
        status
    };

    match status {
        Some(Ok(status)) => {
            group.pgid = None;
            let mut output = stdout_buf;
            output.extend_from_slice(&stderr_buf);
            output.truncate(MAX_EXEC_OUTPUT);
            let exit_code = exit_code(status);
            tracing::debug!(command = %command, exit_code, "exec finished");
            Ok(ExecOutput { exit_code, output })
        }
        Some(Err(source)) => Err(ExecError::Wait { command, source }),
        None => {
            group.kill();
            // Reap it now rather than leave it to the orphan queue; SIGKILL makes this prompt.
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::debug!(command = %command, ?timeout, "exec timed out, killed");
            Err(ExecError::Timeout { command, timeout })
        }
    }
}

/// A command ready to spawn in a container's context: argv resolved with the container's PATH,
/// environment, working directory, and the container's cgroup join files opened.
struct Prepared {
    cmd: Command,
    command: String,
    /// Kept open until the child has spawned: the child writes to their descriptors.
    cgroup_files: Vec<File>,
    cgroup_fds: Vec<RawFd>,
    creds: Credentials,
}

/// The namespaces (in `runc exec`'s order: ipc, uts, net, pid, mnt) and root of an isolated
/// container, opened before the fork.
const EXEC_NAMESPACES: [(&str, libc::c_int); 5] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// What the child needs to enter an isolated container, prepared before the fork.
struct Entry {
    /// Namespace fds with their flags (close-on-exec).
    namespaces: Vec<(OwnedFd, libc::c_int)>,
    /// `/proc/<pid>/root`, the container's root (close-on-exec).
    root: OwnedFd,
    /// The working dir inside the container.
    cwd: std::ffi::CString,
    caps: Option<crate::shim::isolate::CapPlan>,
    no_new_privs: bool,
    seccomp: Option<crate::shim::seccomp::Filter>,
    /// `exec <profile>` for the AppArmor attribute.
    apparmor: Option<Vec<u8>>,
}

impl Entry {
    fn open(iso: &ExecIsolation, cwd: Option<&Path>, command: &str) -> Result<Entry, ExecError> {
        let spawn = |source: io::Error| ExecError::Spawn {
            command: command.to_string(),
            source,
        };
        let proc = PathBuf::from(format!("/proc/{}", iso.pid));
        let mut namespaces = Vec::with_capacity(EXEC_NAMESPACES.len());
        for (name, flag) in EXEC_NAMESPACES {
            let path = proc.join("ns").join(name);
            let file = File::open(&path).map_err(|e| {
                spawn(io::Error::new(
                    e.kind(),
                    format!("open {}: {e}", path.display()),
                ))
            })?;
            namespaces.push((OwnedFd::from(file), flag));
        }
        let root = File::open(proc.join("root")).map_err(|e| {
            spawn(io::Error::new(
                e.kind(),
                format!("open the container's root /proc/{}/root: {e}", iso.pid),
            ))
        })?;
        let cwd = cwd.unwrap_or(Path::new("/"));
        let cwd = std::ffi::CString::new(cwd.as_os_str().as_encoded_bytes())
            .map_err(|_| spawn(io::Error::other("working dir contains a NUL byte")))?;
        let caps = iso
            .capabilities
            .as_ref()
            .map(|c| crate::shim::isolate::CapPlan::new(c))
            .transpose()
            .map_err(|e| spawn(io::Error::other(e)))?;
        let seccomp = iso
            .seccomp
            .as_deref()
            .map(crate::shim::seccomp::compile)
            .transpose()
            .map_err(|e| spawn(io::Error::other(e)))?;
        Ok(Entry {
            namespaces,
            root: OwnedFd::from(root),
            cwd,
            caps,
            no_new_privs: iso.no_new_privileges,
            seccomp,
            apparmor: iso
                .apparmor_profile
                .as_deref()
                .map(crate::shim::apparmor::change_onexec_command),
        })
    }

    /// In the forked child, after its cgroups and session: non-dumpable, into the namespaces
    /// and root, then a fork. The intermediate (outside the container's PID namespace) waits
    /// and exits with the command's status; the returned-to child goes on to exec.
    /// Async-signal-safe.
    fn enter(&self) -> io::Result<()> {
        fn check(ret: libc::c_int) -> io::Result<()> {
            if ret < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
        // SAFETY: raw syscalls on fds and strings prepared before the fork.
        unsafe {
            check(libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0))?;
            for (fd, flag) in &self.namespaces {
                check(libc::setns(fd.as_raw_fd(), *flag))?;
            }
            check(libc::fchdir(self.root.as_raw_fd()))?;
            check(libc::chroot(c".".as_ptr()))?;
            check(libc::chdir(self.cwd.as_ptr()))?;
            let pid = libc::fork();
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid > 0 {
                // The intermediate: hold nothing (not even the spawn's error pipe, so the
                // agent's spawn returns once the command has exec'd), wait, pass the status on.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                let mut status = 0;
                loop {
                    let r = libc::waitpid(pid, &mut status, 0);
                    if r < 0 && *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    break;
                }
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    255
                };
                libc::_exit(code);
            }
            // The container's AppArmor profile for the exec, inside its PID namespace and root
            // (so /proc/self is this process), then its seccomp filter, while still root (as
            // the shim's child does).
            // (No allocation here: an errno only, as for the other steps.)
            if let Some(cmd) = &self.apparmor {
                crate::shim::apparmor::change_onexec(cmd)
                    .map_err(|(_, e)| io::Error::from_raw_os_error(e))?;
            }
            if let Some(prog) = &self.seccomp {
                crate::shim::seccomp::install(prog).map_err(io::Error::from_raw_os_error)?;
            }
            if let Some(c) = &self.caps {
                c.before_setuid().map_err(io::Error::from_raw_os_error)?;
            }
        }
        Ok(())
    }

    /// After the identity switch: the capability sets and no_new_privs. Async-signal-safe.
    fn finish(&self) -> io::Result<()> {
        // SAFETY: raw syscalls on integers.
        unsafe {
            if let Some(c) = &self.caps {
                c.after_setuid().map_err(io::Error::from_raw_os_error)?;
            }
            if self.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The soft RLIMIT_NOFILE: no fd of this process is at or above it.
fn open_fd_limit() -> libc::c_int {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    // 1024 is the usual default when the limit cannot be read.
    if ok {
        libc::c_int::try_from(rl.rlim_cur).unwrap_or(libc::c_int::MAX)
    } else {
        1024
    }
}

/// `/proc/self/oom_score_adj`, written by the child before exec.
const OOM_SCORE_ADJ_PATH: &std::ffi::CStr = c"/proc/self/oom_score_adj";

fn prepare(ctx: &ExecContext, argv: &[String]) -> Result<Prepared, ExecError> {
    let Some(program) = argv.first() else {
        return Err(ExecError::EmptyCommand);
    };
    let command = argv.join(" ");
    let entry = ctx
        .isolation
        .as_ref()
        .map(|iso| Entry::open(iso, ctx.working_dir.as_deref(), &command))
        .transpose()?;
    let path_env = ctx
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    // In an isolated container the program is looked up by execvp inside its root, with its
    // PATH, after the chroot.
    let resolved = if entry.is_some() {
        PathBuf::from(program)
    } else {
        resolve_program(
            program,
            path_env.unwrap_or(DEFAULT_PATH),
            ctx.working_dir.as_deref(),
        )
        .ok_or_else(|| ExecError::NotFound {
            command: command.clone(),
            program: program.clone(),
        })?
    };

    // Opened here, in the agent, so a missing cgroup is reported with its path; the child only
    // writes to the inherited descriptors (they are close-on-exec, so the command never sees them).
    let mut cgroup_files = Vec::with_capacity(ctx.cgroup_procs.len());
    for path in &ctx.cgroup_procs {
        let file = File::options()
            .write(true)
            .open(path)
            .map_err(|source| ExecError::Cgroup {
                command: command.clone(),
                path: path.clone(),
                source,
            })?;
        cgroup_files.push(file);
    }
    let cgroup_fds: Vec<RawFd> = cgroup_files.iter().map(|f| f.as_raw_fd()).collect();
    let creds = Credentials {
        oom_score_adj: ctx.oom_score_adj.map(|v| v.to_string().into_bytes()),
        max_fd: open_fd_limit(),
        uid: ctx.uid,
        gid: ctx.gid,
        groups: ctx
            .supplemental_groups
            .iter()
            .map(|&g| g as libc::gid_t)
            .collect(),
        entry: None,
    };

    let mut cmd = Command::new(&resolved);
    cmd.arg0(program)
        .args(&argv[1..])
        .env_clear()
        .envs(ctx.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true);
    if path_env.is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    if let Some(dir) = &ctx.working_dir
        && entry.is_none()
    {
        cmd.current_dir(dir);
    }
    Ok(Prepared {
        cmd,
        command,
        cgroup_files,
        cgroup_fds,
        creds: Credentials { entry, ..creds },
    })
}

/// Which stdio streams a streaming exec gets (the flags of CRI `ExecRequest`), and whether
/// they go through a terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr (never together with `tty`: a terminal has one output).
    pub stderr: bool,
    /// Run the command on a new pseudo-terminal.
    pub tty: bool,
}

/// A boxed async reader (a pipe or the pty master's read half).
pub type BoxedReader = Box<dyn AsyncRead + Send + Unpin>;
/// A boxed async writer (a pipe or the pty master's write half).
pub type BoxedWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// A process started by [`exec_streaming`]: its stdio, its terminal, and its exit.
///
/// Dropping it kills the process's whole process group (or session, with a tty), so a client
/// that goes away leaves nothing running.
pub struct ExecSession {
    /// The command line, for messages.
    pub command: String,
    /// Write end of the process's stdin (the pty master with a tty), if asked for.
    pub stdin: Option<BoxedWriter>,
    /// Read end of its stdout (the pty master with a tty: stdout and stderr both), if asked for.
    pub stdout: Option<BoxedReader>,
    /// Read end of its stderr, if asked for (never with a tty).
    pub stderr: Option<BoxedReader>,
    /// The terminal's size control, with a tty.
    pub terminal: Option<TerminalResizer>,
    child: tokio::process::Child,
    group: GroupKillGuard,
}

impl ExecSession {
    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit; its exit code (128 + signal when killed by a signal).
    ///
    /// The process group is left alone after a normal exit (a daemon it started keeps
    /// running, as with `runc exec`); it is killed only when the session is dropped early.
    pub async fn wait(&mut self) -> Result<i32, ExecError> {
        let status = self.child.wait().await.map_err(|source| ExecError::Wait {
            command: self.command.clone(),
            source,
        })?;
        self.group.pgid = None;
        let code = exit_code(status);
        tracing::debug!(command = %self.command, exit_code = code, "exec session process exited");
        Ok(code)
    }
}

/// CRI Exec (the streaming kind): start argv in the container's context with the stdio the
/// client asked for — pipes, or one new pseudo-terminal for all three when `opts.tty` is set
/// (the process becomes a session leader with the terminal as its controlling tty, like
/// `runc exec -t`). Streams not asked for are `/dev/null`.
pub fn exec_streaming(
    ctx: &ExecContext,
    argv: &[String],
    opts: StreamOptions,
) -> Result<ExecSession, ExecError> {
    let Prepared {
        mut cmd,
        command,
        cgroup_files,
        cgroup_fds,
        creds,
    } = prepare(ctx, argv)?;
    let cmdline = command.clone();
    let spawn_err = move |source| ExecError::Spawn {
        command: cmdline.clone(),
        source,
    };
    let mut master = None;
    if opts.tty {
        // containerd's CRI exec sets TERM for a tty when the container has none.
        if !ctx.env.iter().any(|(k, _)| k == "TERM") {
            cmd.env("TERM", "xterm");
        }
        let pty = nix::pty::openpty(None, None).map_err(|e| spawn_err(e.into()))?;
        for fd in [&pty.master, &pty.slave] {
            set_cloexec(fd.as_raw_fd()).map_err(&spawn_err)?;
        }
        let slave = |pty: &OwnedFd| pty.try_clone().map(Stdio::from);
        cmd.stdin(slave(&pty.slave).map_err(&spawn_err)?)
            .stdout(slave(&pty.slave).map_err(&spawn_err)?)
            .stderr(slave(&pty.slave).map_err(&spawn_err)?);
        master = Some(pty.master);
    } else {
        let pipe_or_null = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        cmd.stdin(pipe_or_null(opts.stdin))
            .stdout(pipe_or_null(opts.stdout))
            .stderr(pipe_or_null(opts.stderr));
    }
    let new_session = opts.tty;
    // SAFETY: as in exec_sync: only async-signal-safe calls (write, setsid, ioctl, setpgid,
    // setgroups, setgid, setuid) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || enter_container(&cgroup_fds, &creds, new_session));
    }
    tracing::debug!(command = %command, tty = opts.tty, cgroups = ?ctx.cgroup_procs, uid = ?ctx.uid, "exec session in container");
    let child = cmd.spawn().map_err(&spawn_err)?;
    // The slave copies went with `cmd`'s Stdio into the child; ours must close so the master
    // reads EOF (EIO) once the process and its children are gone.
    drop(cmd);
    drop(cgroup_files);
    let group = GroupKillGuard {
        pgid: child.id().and_then(|p| i32::try_from(p).ok()),
    };
    let mut session = ExecSession {
        command,
        stdin: None,
        stdout: None,
        stderr: None,
        terminal: None,
        child,
        group,
    };
    match master {
        Some(master) => {
            session.terminal = Some(TerminalResizer(master.try_clone().map_err(&spawn_err)?));
            let (read, write) = tokio::io::split(PtyMaster::new(master).map_err(&spawn_err)?);
            if opts.stdin {
                session.stdin = Some(Box::new(write));
            }
            if opts.stdout || opts.stderr {
                session.stdout = Some(Box::new(read));
            }
        }
        None => {
            session.stdin = session
                .child
                .stdin
                .take()
                .map(|w| Box::new(w) as BoxedWriter);
            session.stdout = session
                .child
                .stdout
                .take()
                .map(|r| Box::new(r) as BoxedReader);
            session.stderr = session
                .child
                .stderr
                .take()
                .map(|r| Box::new(r) as BoxedReader);
        }
    }
    Ok(session)
}

/// A second descriptor of an exec session's pty master, to set the terminal's size.
pub struct TerminalResizer(OwnedFd);

impl TerminalResizer {
    /// Sets the terminal's size (TIOCSWINSZ on the master); the kernel sends SIGWINCH to the
    /// terminal's foreground process group.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is ours.
        let ret = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The master side of a pseudo-terminal as a non-blocking tokio reader and writer. EIO on read
/// (every slave descriptor closed: the process and its children are gone) is end of file.
struct PtyMaster(tokio::io::unix::AsyncFd<OwnedFd>);

impl PtyMaster {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: an OwnedFd is a valid open descriptor that stays the same until it is dropped
        // with the AsyncFd.
        unsafe { tokio::io::unix::AsyncFd::register(fd) }
            .map(PtyMaster)
            .map_err(io::Error::from)
    }
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            let mut guard = match self.0.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|fd| {
                // SAFETY: reading into an initialized buffer of the given length.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        loop {
            let mut guard = match self.0.poll_write_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let res = guard.try_io(|fd| {
                // SAFETY: writing from a valid slice.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        // A terminal has no half-close; the client's "stdin closed" becomes an EOF character
        // (written by the caller), as a terminal user would type Ctrl-D.
        std::task::Poll::Ready(Ok(()))
    }
}

/// The exec context of a running container, from the spec its shim was started with
/// (`<state-dir>/config.json`): the same env, working dir, user, groups and cgroup. This is how
/// a CRI runtime answers Exec — by container ID, from its own record of the container.
pub fn container_exec_context(state_dir: &Path) -> Result<ExecContext, crate::shim::ShimError> {
    let cfg = crate::shim::read_config(state_dir)?;
    if let Some(iso) = &cfg.isolation {
        let pid = crate::shim::read_state(state_dir)?.map_or(0, |s| s.pid);
        let p = &iso.spec.process;
        return Ok(ExecContext {
            env: p
                .env
                .iter()
                .map(|e| {
                    let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            working_dir: Some(PathBuf::from(&p.cwd)),
            uid: Some(p.user.uid),
            gid: Some(p.user.gid),
            supplemental_groups: p.user.additional_gids.clone(),
            cgroup_procs: cfg.cgroup_procs,
            oom_score_adj: p.oom_score_adj,
            isolation: Some(ExecIsolation {
                pid,
                capabilities: p.capabilities.clone().map(Box::new),
                no_new_privileges: p.no_new_privileges,
                seccomp: iso.spec.linux.seccomp.clone().map(Box::new),
                apparmor_profile: p.apparmor_profile.clone(),
            }),
            pod_ip: None,
        });
    }
    Ok(ExecContext {
        env: cfg.env,
        working_dir: cfg.working_dir,
        uid: cfg.uid,
        gid: cfg.gid,
        supplemental_groups: cfg.supplemental_groups,
        cgroup_procs: cfg.cgroup_procs,
        oom_score_adj: cfg.oom_score_adj,
        isolation: None,
        pod_ip: None,
    })
}

/// Credentials the child switches to, prepared before the fork.
struct Credentials {
    /// The decimal `oom_score_adj` to write, if any.
    oom_score_adj: Option<Vec<u8>>,
    /// One above the highest fd the child may hold (the fallback of close_range).
    max_fd: libc::c_int,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<libc::gid_t>,
    /// The isolated container to enter.
    entry: Option<Entry>,
}

/// In the forked child: join the container's cgroups and take the container's
/// `oom_score_adj` (still as root, since lowering it needs CAP_SYS_RESOURCE), become a process
/// group leader (so a timeout can kill everything it started) — with `new_session`, a session
/// leader whose controlling terminal is its stdin (a pty slave) — then drop to the container's
/// groups and user, in the order runc uses: setgroups, setgid, setuid. Last, every descriptor
/// above 2 is marked close-on-exec, so the command starts with fds 0-2 only, like the
/// container's own process (audit finding 7: the agent's inherited fds leaked into exec'd
/// processes). They are marked rather than closed: the spawn's exec-error pipe must stay open
/// until the exec.
fn enter_container(cgroup_fds: &[RawFd], creds: &Credentials, new_session: bool) -> io::Result<()> {
    fn check(ret: libc::c_int) -> io::Result<()> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
    for &fd in cgroup_fds {
        // SAFETY: fd is an open descriptor inherited from the parent; the buffer is static.
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(v) = &creds.oom_score_adj {
        // SAFETY: open/write/close on a static path and a buffer prepared before the fork.
        unsafe {
            let fd = libc::open(
                OOM_SCORE_ADJ_PATH.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, v.as_ptr().cast(), v.len());
            let err = io::Error::last_os_error();
            libc::close(fd);
            if n < 0 {
                return Err(err);
            }
        }
    }
    // SAFETY: plain system calls on integers and a pointer into a live Vec.
    unsafe {
        if new_session {
            check(libc::setsid())?;
            check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
        } else {
            check(libc::setpgid(0, 0))?;
        }
        if let Some(entry) = &creds.entry {
            entry.enter()?;
        }
        if creds.uid.is_some() || creds.gid.is_some() || !creds.groups.is_empty() {
            check(libc::setgroups(creds.groups.len(), creds.groups.as_ptr()))?;
        }
        if let Some(gid) = creds.gid {
            check(libc::setgid(gid))?;
        }
        if let Some(uid) = creds.uid {
            check(libc::setuid(uid))?;
        }
        if let Some(entry) = &creds.entry {
            entry.finish()?;
        }
        // Up to the fd limit read before the fork, where close_range is missing.
        crate::shim::cloexec_above_stdio(creds.max_fd);
    }
    Ok(())
}

/// Kills a process group with SIGKILL unless disarmed (pgid set to `None`).
struct GroupKillGuard {
    pgid: Option<i32>,
}

impl GroupKillGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKillGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `reader` to EOF, keeping at most [`MAX_EXEC_OUTPUT`] bytes in `buf`.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, buf: &mut Vec<u8>) {
    let Some(mut reader) = reader else { return };
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = MAX_EXEC_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The exit code as runtimes report it: the code, or 128 + the signal that killed the process.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// Resolves `argv[0]` like `execvp` with the container's PATH: a name containing '/' is used as
/// is; otherwise the first PATH entry holding an executable regular file of that name wins.
/// An empty PATH entry means the working directory.
pub fn resolve_program(program: &str, path: &str, working_dir: Option<&Path>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    if program.is_empty() {
        return None;
    }
    path.split(':').find_map(|dir| {
        let dir: PathBuf = if dir.is_empty() {
            working_dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        } else {
            PathBuf::from(dir)
        };
        let candidate = dir.join(program);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

/// The command line as the kubelet prints it in messages: argv joined by spaces.
pub fn command_line(argv: &[String]) -> String {
    argv.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn resolve_program_table() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let other = dir.path().join("other");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&other).unwrap();
        let exe = bin.join("tool");
        fs::write(&exe, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let plain = other.join("tool");
        fs::write(&plain, "not executable").unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir_all(other.join("adir")).unwrap();
        let path = format!("{}:{}", other.display(), bin.display());

        let cases: Vec<(&str, &str, Option<PathBuf>)> = vec![
            // a non-executable file earlier in PATH is skipped, like execvp does
            ("tool", path.as_str(), Some(exe.clone())),
            // a '/' in the name: used as is, no lookup
            ("./tool", path.as_str(), Some(PathBuf::from("./tool"))),
            ("/bin/sh", "", Some(PathBuf::from("/bin/sh"))),
            // directories are not executables
            ("adir", path.as_str(), None),
            ("missing", path.as_str(), None),
            ("", path.as_str(), None),
        ];
        for (program, path, want) in cases {
            assert_eq!(
                resolve_program(program, path, None),
                want,
                "{program} in {path}"
            );
        }
        // an empty PATH entry is the working directory
        assert_eq!(
            resolve_program("tool", ":/nonexistent", Some(&bin)),
            Some(bin.join("tool"))
        );
    }

    #[test]
    fn exit_codes_like_runtimes() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }

    #[tokio::test]
    async fn empty_command_is_an_error() {
        let err = exec_sync(&ExecContext::default(), &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::EmptyCommand));
    }

    #[tokio::test]
    async fn output_is_stdout_then_stderr_and_capped() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "echo err >&2; echo out; head -c 20000 /dev/zero",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = exec_sync(&ExecContext::default(), &argv, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.output.len(), MAX_EXEC_OUTPUT);
        assert!(out.output.starts_with(b"out\n"));
    }

    #[tokio::test]
    async fn not_found_names_the_command() {
        let argv = vec!["no-such-tool-xyz".to_string(), "arg".to_string()];
        let err = exec_sync(&ExecContext::default(), &argv, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec \"no-such-tool-xyz\" (command \"no-such-tool-xyz arg\"): executable file not found in $PATH"
        );
    }
}
