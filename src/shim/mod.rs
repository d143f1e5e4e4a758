//! The per-container supervisor ("shim") and the agent's side of its contract.
//!
//! Mirrors conmon / containerd-shim: one small process per container holds the container's
//! output pipes, writes its CRI log (through [`crate::logs`]), reaps it and records its exit
//! status under the agent's root dir, so containers survive the agent — even a `kill -9` of
//! it — and the agent re-adopts them from files when it comes back.
//!
//! # The state directory (one per container instance)
//! | file | written by | when |
//! |---|---|---|
//! | `config.json` ([`ShimConfig`]) | agent ([`write_config`]) | before [`start`] |
//! | `state.json` ([`ShimState`]) | shim, atomically | once the container process has exec'd |
//! | `exit.json` ([`ExitStatus`]) | shim, atomically | the container is gone and its output drained, or it could not start |
//! | `shim.log` | shim (its stderr) | diagnostics of the shim itself |
//! | `attach.sock` ([`ATTACH_SOCKET`]) | shim, while the container runs | attach: the container's stdin and a copy of its output ([`attach`]) |
//!
//! # Processes
//! The agent runs `<exe> shim <state-dir>` ([`shim_exe`]: the small `minikubelet-shim` binary
//! beside the agent, else the agent itself) with the write end of a pipe as its stdout
//! (the *launcher*). The launcher forks the shim and exits at once, so once [`start`] has reaped
//! it the shim is no child of the agent's (it is reparented to init or the nearest subreaper:
//! the agent must not be a subreaper itself). The shim calls `setsid`, becomes a child subreaper,
//! forks the container and, when the container has exec'd (or failed to), writes its
//! answer as one JSON line on that pipe and closes it: [`start`] waits for that line rather than
//! polling files, which keeps it on the pod start latency path at a few milliseconds.
//!
//! The shim is single-threaded and synchronous (poll(2) over the pipes and a signalfd for
//! SIGCHLD; no tokio, no tracing subscriber): it must be dispatched from `main` before anything
//! else starts a thread, because it forks.
pub mod apparmor;
pub mod attach;
mod child;
pub(crate) mod isolate;
pub mod oci;
mod pause;
pub mod seccomp;
mod supervisor;

pub use pause::{PAUSE_ARG, start_pid_holder};

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use supervisor::{Launch, main};

/// The container's spec as the agent hands it to the shim.
pub const CONFIG_FILE: &str = "config.json";
/// The runtime's record of the container (`crate::runtime::ContainerMeta`).
pub const META_FILE: &str = "meta.json";
/// The running container's identity, written by the shim.
pub const STATE_FILE: &str = "state.json";
/// The container's exit, written by the shim.
pub const EXIT_FILE: &str = "exit.json";
/// The shim's own diagnostics (its stderr).
pub const SHIM_LOG_FILE: &str = "shim.log";
/// The unix socket on which the shim serves attach: the container's stdin (kept open when
/// [`ShimConfig::stdin`] is set) and a copy of its output ([`attach`]).
pub const ATTACH_SOCKET: &str = "attach.sock";

/// The separate shim binary's file name, looked for beside the agent's executable.
pub const SHIM_BINARY: &str = "minikubelet-shim";

/// The binary the agent starts shims from: [`SHIM_BINARY`] beside `agent_exe` when it is an
/// executable file (a fraction of the agent's exec cost per container start), else the agent
/// itself, whose hidden `shim` subcommand is the fallback. Both are run as `<exe> shim <dir>`.
pub fn shim_exe(agent_exe: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let sibling = agent_exe.with_file_name(SHIM_BINARY);
    match std::fs::metadata(&sibling) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => sibling,
        _ => agent_exe.to_path_buf(),
    }
}

/// The trailing argument of a shim started ahead of its container: `<exe> shim <state-dir>
/// --prestarted` ([`prestart`], [`Launch::Prestarted`]).
pub const PRESTARTED_ARG: &str = "--prestarted";

/// How long [`start`] waits for the shim's answer. Normal starts take a few milliseconds; the
/// bound is for a wedged start (e.g. a cgroup.procs write stuck behind
/// `cgroup_threadgroup_rwsem`, a hung disk). Longer avoids failing a slow-but-healthy start on a
/// loaded node; shorter frees the pod worker sooner. The shim may still finish after a timeout:
/// the agent then finds its `state.json` on its next relist.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Written by the agent as `<state-dir>/config.json` before starting the shim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShimConfig {
    /// e.g. `<pod-uid>-<container>-<restartCount>`; for logs and diagnostics.
    pub container_id: String,
    /// Command and args; `argv[0]` without a '/' is looked up in `PATH` from `env`.
    pub argv: Vec<String>,
    /// The container's whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory (the shim's `/` when unset).
    pub working_dir: Option<PathBuf>,
    /// User to run as (`runAsUser`).
    pub uid: Option<u32>,
    /// Primary group to run as (`runAsGroup`).
    pub gid: Option<u32>,
    /// Supplementary groups (`supplementalGroups`, `fsGroup`).
    pub supplemental_groups: Vec<u32>,
    /// The files the child writes "0" into before exec to join the container's cgroups (one
    /// per v1 hierarchy, one on v2; from [`crate::cgroup::CgroupFs::join_files`]: `tasks` on
    /// v1, which moves the single-threaded child without the threadgroup lock; `cgroup.procs`
    /// on v2, where the shim starts the child in the cgroup with `clone3(CLONE_INTO_CGROUP)`
    /// and this write is only the fallback). The name is kept for configs already written.
    pub cgroup_procs: Vec<PathBuf>,
    /// Written to `/proc/self/oom_score_adj` in the child before exec.
    pub oom_score_adj: Option<i32>,
    /// The CRI log file, e.g. `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log`.
    pub log_path: PathBuf,
    /// `containerLogMaxSize` in bytes: rotate before a record would push the file past it (0: never).
    pub log_max_size: u64,
    /// `containerLogMaxFiles`: the shim only renames; the agent's `LogManager` compresses and prunes.
    pub log_max_files: u32,
    /// Keep a pipe to the container's stdin for a later attach (else stdin is /dev/null).
    pub stdin: bool,
    /// `stdinOnce`: close the container's stdin when the first attach client that used it
    /// detaches or closes its stdin.
    #[serde(default)]
    pub stdin_once: bool,
    /// Run the container in its own namespaces and root filesystem, as its OCI spec says
    /// (`crate::runtime::spec`); `None`: a process on the node's filesystem and namespaces, as
    /// before. With isolation the spec's `process` (args, env, cwd, user, capabilities,
    /// rlimits, oomScoreAdj, noNewPrivileges) is what runs; `argv`, `env`, `working_dir`,
    /// `uid`, `gid`, `supplemental_groups` and `oom_score_adj` above are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
}

/// The bundle subdirectory of a container's state dir: `config.json` (the OCI spec) and
/// `rootfs/` (the mountpoint of its root, mounted only inside the container's mount namespace).
pub const BUNDLE_DIR: &str = "bundle";

/// An isolated container: where its bundle is, what its root filesystem is made of, and its
/// OCI runtime spec (written as `<bundle>/config.json`, as containerd hands it to runc).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The bundle directory (absolute), e.g. `<state-dir>/bundle`.
    pub bundle: PathBuf,
    /// The root filesystem mounted at `<bundle>/<spec.root.path>`.
    pub rootfs: Rootfs,
    /// The container's OCI runtime spec.
    pub spec: oci::Spec,
}

/// What a container's root filesystem is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Rootfs {
    /// An overlayfs of the image's layers with the container's own writable layer.
    Overlay {
        /// Layer directories, topmost first (overlayfs `lowerdir` order).
        lower: Vec<PathBuf>,
        /// The container's writable layer.
        upper: PathBuf,
        /// overlayfs's work dir, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// The node's own filesystem (an rbind of `/`), for pods annotated
    /// `minikubelet.io/host-filesystem: "true"`.
    Host,
}

/// Writes `<bundle>/config.json`: the container's OCI spec, pretty-printed as runc reads it.
pub fn write_bundle(iso: &Isolation) -> Result<(), ShimError> {
    create_private_dir_all(&iso.bundle).map_err(|source| ShimError::Write {
        path: iso.bundle.clone(),
        source,
    })?;
    let path = iso.bundle.join(CONFIG_FILE);
    let bytes = serde_json::to_vec_pretty(&iso.spec).map_err(|e| ShimError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_private(&path, &bytes).map_err(|source| ShimError::Write { path, source })
}

/// Written by the shim as `<state-dir>/state.json` once the container process has exec'd.
///
/// To learn when `exit.json` is final without polling, the agent can `pidfd_open(shim_pid)`
/// (after checking [`shim_alive`]): it becomes readable when the shim exits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShimState {
    /// The shim's pid.
    pub shim_pid: i32,
    /// The container's main process (also its process group and session id).
    pub pid: i32,
    /// When the container's process exec'd, RFC 3339 with nanoseconds, UTC.
    pub started_at: String,
}

/// Written by the shim as `<state-dir>/exit.json` when the container is gone and its output
/// drained, or when it could not be started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit status, or 128+signal when killed by a signal (as runtimes report), 128 when
    /// the container could not be started.
    pub exit_code: i32,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// As in [`ShimState::started_at`]; `None` if it never started.
    pub started_at: Option<String>,
    /// When the shim reaped it (or gave up starting it), RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    /// Why it could not start, e.g. `exec "foo": No such file or directory`.
    pub start_error: Option<String>,
}

/// What the agent sends a prestarted shim on its stdin (then closes it), as JSON: the
/// container to run and the agent's record of it (`meta.json`, already rendered). The shim
/// creates the state dir and writes `config.json` and `meta.json` itself once the container
/// runs, so no file is written on the pod start path, yet the records exist even when the
/// agent dies right after sending this.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StartRequest {
    /// Written as `config.json`.
    pub config: ShimConfig,
    /// Written verbatim as `meta.json` (the runtime's `ContainerMeta`, pretty JSON).
    pub meta_json: String,
}

/// The shim's one-line answer on the handshake pipe.
#[derive(Serialize, Deserialize, Debug)]
enum Handshake {
    /// The container runs.
    Started(ShimState),
    /// The container could not be started (also in `exit.json`).
    Failed(ExitStatus),
}

/// Errors of the shim module (agent side and shim side).
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Reading a state-dir file failed.
    #[error("read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing a state-dir file failed.
    #[error("write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A state-dir file holds invalid JSON.
    #[error("parse {}: {source}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The shim binary could not be run.
    #[error("spawn shim {} for {}: {source}", .exe.display(), .state_dir.display())]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// The container's state dir.
        state_dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Waiting for the shim's answer failed.
    #[error("wait for shim of {}: {source}", .state_dir.display())]
    Handshake {
        /// The container's state dir.
        state_dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The shim did not answer within [`START_TIMEOUT`].
    #[error("shim for {} did not report within {timeout:?}", .state_dir.display())]
    Timeout {
        /// The container's state dir.
        state_dir: PathBuf,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The shim went away without an answer.
    #[error("shim for {} exited without reporting: {detail}", .state_dir.display())]
    NoReport {
        /// The container's state dir.
        state_dir: PathBuf,
        /// What was received instead.
        detail: String,
    },
    /// The container could not be started; `status` is also in `exit.json`.
    #[error("start container in {}: {}", .state_dir.display(), .status.start_error.as_deref().unwrap_or("unknown error"))]
    StartFailed {
        /// The container's state dir.
        state_dir: PathBuf,
        /// The recorded exit, with `start_error` set.
        status: Box<ExitStatus>,
    },
}

/// Writes `<state-dir>/config.json` (atomically), creating the state dir if needed.
pub fn write_config(state_dir: &Path, config: &ShimConfig) -> Result<(), ShimError> {
    create_private_dir_all(state_dir).map_err(|source| ShimError::Write {
        path: state_dir.to_path_buf(),
        source,
    })?;
    write_json_atomic(&state_dir.join(CONFIG_FILE), config)
}

/// Marks every descriptor from 3 up close-on-exec, so that the next exec keeps fds 0-2 only:
/// `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11), else `fcntl` on each fd below
/// `max_fd`. Marked rather than closed, so that an exec-error pipe still works until the exec.
///
/// # Safety
/// Async-signal-safe (two plain syscalls): callable between fork and exec.
pub(crate) unsafe fn cloexec_above_stdio(max_fd: libc::c_int) {
    // SAFETY: plain syscalls on integers.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            for fd in 3..max_fd {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// Mode of the state directories (`<root-dir>/containers` and each `<id>`): root only, since
/// `config.json` holds the container's argv and env (audit finding 16).
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the files in a state directory.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// `mkdir -p` whose new directories are created with mode 0700 (no window with a wider mode);
/// `path` itself, if it already existed, is narrowed to 0700 too (a state dir of an older agent).
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)?;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o777 != PRIVATE_DIR_MODE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

/// `std::fs::write` of a file created with mode 0600 (an existing file keeps its mode: the
/// state files are written once, or through [`write_json_atomic`]'s fresh temporary file).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?
        .write_all(bytes)
}

/// Reads `<state-dir>/config.json`.
pub fn read_config(state_dir: &Path) -> Result<ShimConfig, ShimError> {
    let path = state_dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ShimError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ShimError::Parse { path, source })
}

/// Reads `<state-dir>/state.json`; `None` if the shim has not written it (yet, or ever).
pub fn read_state(state_dir: &Path) -> Result<Option<ShimState>, ShimError> {
    read_json(&state_dir.join(STATE_FILE))
}

/// Reads `<state-dir>/exit.json`; `None` while the container runs (or its shim died).
pub fn read_exit(state_dir: &Path) -> Result<Option<ExitStatus>, ShimError> {
    read_json(&state_dir.join(EXIT_FILE))
}

/// Is this shim still alive and really ours? Guards against pid reuse: `/proc/<pid>/cmdline`
/// must be `<exe> shim <state-dir>` (the agent or `minikubelet-shim`, as [`start`] runs both) or
/// `<dir>/minikubelet-shim <state-dir>` (a zombie's cmdline is empty, so a dead shim is not alive).
/// A cmdline that cannot be read for another reason than "no such process" counts as alive.
pub fn shim_alive(state: &ShimState, state_dir: &Path) -> bool {
    shim_alive_in(Path::new("/proc"), state, state_dir)
}

/// [`shim_alive`] against a given procfs root.
pub fn shim_alive_in(proc_root: &Path, state: &ShimState, state_dir: &Path) -> bool {
    if state.shim_pid <= 0 {
        return false;
    }
    let cmdline = match std::fs::read(proc_root.join(state.shim_pid.to_string()).join("cmdline")) {
        Ok(c) => c,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            return false;
        }
        // EMFILE and the like say nothing about the shim: taking it for dead would remove a
        // running container's record (the audit's finding 3).
        Err(e) => {
            tracing::debug!(shim_pid = state.shim_pid, error = %e, "cannot read the shim's cmdline; treating it as alive");
            return true;
        }
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let wanted = [state_dir.to_path_buf(), absolute(state_dir)];
    let is_dir = |arg: &[u8]| {
        wanted
            .iter()
            .any(|w| w.as_os_str().as_encoded_bytes() == arg)
    };
    let shim_binary =
        |arg0: &[u8]| arg0.rsplit(|&b| b == b'/').next() == Some(SHIM_BINARY.as_bytes());
    (args.len() >= 3 && args[1] == b"shim" && is_dir(args[2]))
        || (args.len() >= 2 && shim_binary(args[0]) && is_dir(args[1]))
}

/// Agent side: starts a shim for a prepared state dir (`config.json` written) and waits for it
/// to report. Returns the [`ShimState`] once the container runs, [`ShimError::StartFailed`]
/// when it could not be started (exec failed, cgroup join failed, ...).
///
/// Blocking (a few milliseconds; at most [`START_TIMEOUT`]): call it from a blocking thread.
pub fn start(exe: &Path, state_dir: &Path) -> Result<ShimState, ShimError> {
    let state_dir = absolute(state_dir);
    let started = Instant::now();
    let (mut reader, writer) = std::io::pipe().map_err(|source| ShimError::Handshake {
        state_dir: state_dir.clone(),
        source,
    })?;
    let mut launcher = spawn_launcher(exe, &state_dir, None, Stdio::null(), writer)?;
    let answer = read_answer(&mut reader, started + START_TIMEOUT);
    // The launcher exits right after forking the shim; reap it so the agent keeps no zombie.
    if !matches!(launcher.try_wait(), Ok(Some(_))) {
        if answer.is_err() {
            let _ = launcher.kill();
        }
        let _ = launcher.wait();
    }
    take_answer(answer, state_dir, started)
}

/// Runs `<exe> shim <state-dir> [flag]` (the launcher) with an empty environment, `stdin`, the
/// handshake pipe's write end as stdout, and no stderr.
fn spawn_launcher(
    exe: &Path,
    state_dir: &Path,
    flag: Option<&str>,
    stdin: Stdio,
    answer: std::io::PipeWriter,
) -> Result<std::process::Child, ShimError> {
    let mut cmd = Command::new(exe);
    cmd.arg("shim").arg(state_dir);
    if let Some(flag) = flag {
        cmd.arg(flag);
    }
    cmd.env_clear()
        .stdin(stdin)
        .stdout(Stdio::from(answer))
        .stderr(Stdio::null());
    let spawned = cmd.spawn();
    // Drop our copies of the child's pipe ends, or we would never see EOF.
    drop(cmd);
    spawned.map_err(|source| ShimError::Spawn {
        exe: exe.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        source,
    })
}

/// A shim started ahead of its container by [`prestart`]: detached, exec'd and waiting for
/// [`Prestarted::start`]. Dropping it closes the shim's stdin: it exits, touching nothing.
///
/// This takes the exec of the shim binary (and the dynamic loader, and the launcher's fork)
/// off the pod start latency path: the agent keeps one spare (see `crate::runtime`).
#[derive(Debug)]
pub struct Prestarted {
    state_dir: PathBuf,
    go: std::io::PipeWriter,
    answer: std::io::PipeReader,
}

/// How long [`prestart`] waits for the launcher to fork the shim and exit (it does so at once).
/// Only bounds a binary that is not a shim at all; off the pod start path.
const LAUNCHER_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a shim for a state dir that does not exist yet ([`Launch::Prestarted`]). Returns
/// once the launcher has forked the shim and exited: the shim is then detached and blocks on
/// its stdin until [`Prestarted::start`].
///
/// Blocking (about a millisecond): call it from a blocking thread.
pub fn prestart(exe: &Path, state_dir: &Path) -> Result<Prestarted, ShimError> {
    let state_dir = absolute(state_dir);
    let handshake = |source| ShimError::Handshake {
        state_dir: state_dir.clone(),
        source,
    };
    let (answer, answer_w) = std::io::pipe().map_err(handshake)?;
    let (go_r, go) = std::io::pipe().map_err(handshake)?;
    let mut launcher = spawn_launcher(
        exe,
        &state_dir,
        Some(PRESTARTED_ARG),
        Stdio::from(go_r),
        answer_w,
    )?;
    let deadline = Instant::now() + LAUNCHER_EXIT_TIMEOUT;
    loop {
        match launcher.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                // The launcher lives ~1 ms (exec, fork, exit): a short nap reaps it soon
                // after; a longer one only delays when the spare becomes available.
                std::thread::sleep(Duration::from_micros(200));
            }
            _ => {
                let _ = launcher.kill();
                let _ = launcher.wait();
                return Err(ShimError::NoReport {
                    state_dir,
                    detail: format!(
                        "the launcher did not exit within {LAUNCHER_EXIT_TIMEOUT:?} (not a minikubelet shim?)"
                    ),
                });
            }
        }
    }
    Ok(Prestarted {
        state_dir,
        go,
        answer,
    })
}

impl Prestarted {
    /// The state dir this shim was started for (absolute).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Sends the shim its container ([`StartRequest`]) and waits for its answer, as [`start`]
    /// does. The state dir need not exist: the shim makes it.
    pub fn start(self, request: &StartRequest) -> Result<ShimState, ShimError> {
        use std::io::Write;
        let started = Instant::now();
        let Prestarted {
            state_dir,
            mut go,
            mut answer,
        } = self;
        let bytes = serde_json::to_vec(request).map_err(|e| ShimError::Write {
            path: state_dir.clone(),
            source: std::io::Error::other(e),
        })?;
        // EPIPE: the shim is gone (killed while waiting); the answer pipe then reads EOF and
        // the error below says so. The shim reads to EOF, so a request bigger than the pipe's
        // buffer (a large env) is fine.
        let _ = go.write_all(&bytes);
        drop(go);
        let got = read_answer(&mut answer, started + START_TIMEOUT);
        take_answer(got, state_dir, started)
    }
}

/// Turns what a shim wrote on the handshake pipe into the container's state or an error.
fn take_answer(
    answer: Result<Vec<u8>, AnswerError>,
    state_dir: PathBuf,
    started: Instant,
) -> Result<ShimState, ShimError> {
    let answer = match answer {
        Ok(a) => a,
        Err(AnswerError::Timeout) => {
            return Err(ShimError::Timeout {
                state_dir,
                timeout: START_TIMEOUT,
            });
        }
        Err(AnswerError::Io(source)) => return Err(ShimError::Handshake { state_dir, source }),
    };
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    match serde_json::from_slice::<Handshake>(line) {
        Ok(Handshake::Started(state)) => {
            tracing::debug!(state_dir = %state_dir.display(), pid = state.pid, shim_pid = state.shim_pid, elapsed = ?started.elapsed(), "container started by shim");
            Ok(state)
        }
        Ok(Handshake::Failed(status)) => Err(ShimError::StartFailed {
            state_dir,
            status: Box::new(status),
        }),
        Err(_) => {
            // Nothing usable on the pipe: the shim died early. exit.json may still say why.
            if let Ok(Some(status)) = read_exit(&state_dir) {
                return Err(ShimError::StartFailed {
                    state_dir,
                    status: Box::new(status),
                });
            }
            let detail = if answer.is_empty() {
                "no answer".to_string()
            } else {
                format!("unexpected answer {:?}", String::from_utf8_lossy(&answer))
            };
            Err(ShimError::NoReport { state_dir, detail })
        }
    }
}

enum AnswerError {
    Timeout,
    Io(std::io::Error),
}

/// Reads the handshake pipe up to its first newline or EOF, giving up at `deadline`.
fn read_answer(
    reader: &mut std::io::PipeReader,
    deadline: Instant,
) -> Result<Vec<u8>, AnswerError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AnswerError::Timeout);
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(AnswerError::Io(e.into())),
        }
        match reader.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.contains(&b'\n') {
                    return Ok(answer);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(AnswerError::Io(e)),
        }
    }
}

/// `p` made absolute (against the current directory), as shims are given their state dir.
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ShimError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ShimError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ShimError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `value` as JSON to `path` through `path.tmp` and a rename, so readers never see a
/// half-written file.
fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ShimError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec(value).map_err(|e| ShimError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    // A temporary file left by a crash keeps its old mode: start from a fresh one.
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, &bytes).map_err(|source| ShimError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ShimError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The exit code a runtime reports for a wait status: the status, or 128+signal.
fn exit_code_of(status: nix::sys::wait::WaitStatus) -> Option<(i32, Option<i32>)> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// Exit code of the `shim` subcommand when it could not even read its state dir.
fn failure() -> ExitCode {
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), None);
        assert_eq!(read_exit(dir.path()).unwrap(), None);
        let state = ShimState {
            shim_pid: 10,
            pid: 11,
            started_at: "2024-01-01T00:00:00.5Z".into(),
        };
        write_json_atomic(&dir.path().join(STATE_FILE), &state).unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), Some(state));
        std::fs::write(dir.path().join(EXIT_FILE), "{").unwrap();
        let err = read_exit(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("parse ") && err.contains("exit.json"),
            "{err}"
        );
        let cfg = ShimConfig {
            container_id: "uid-c-0".into(),
            argv: vec!["sh".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: None,
            uid: Some(1),
            gid: None,
            supplemental_groups: vec![],
            cgroup_procs: vec![],
            oom_score_adj: Some(-997),
            log_path: "/tmp/0.log".into(),
            log_max_size: 10 << 20,
            log_max_files: 5,
            stdin: false,
            stdin_once: false,
            isolation: None,
        };
        write_config(&dir.path().join("sub"), &cfg).unwrap();
        assert_eq!(read_config(&dir.path().join("sub")).unwrap(), cfg);
        let json = std::fs::read_to_string(dir.path().join("sub").join(CONFIG_FILE)).unwrap();
        assert!(json.contains(r#""env":[["PATH","/bin"]]"#), "{json}");
    }

    #[test]
    fn shim_alive_checks_cmdline() {
        let proc_root = tempfile::tempdir().unwrap();
        let state_dir = Path::new("/run/mkl/containers/abc");
        let write = |pid: i32, cmdline: &[u8]| {
            std::fs::create_dir_all(proc_root.path().join(pid.to_string())).unwrap();
            std::fs::write(
                proc_root.path().join(pid.to_string()).join("cmdline"),
                cmdline,
            )
            .unwrap();
        };
        write(
            100,
            b"/usr/bin/minikubelet\0shim\0/run/mkl/containers/abc\0",
        );
        write(
            101,
            b"/usr/bin/minikubelet\0shim\0/run/mkl/containers/other\0",
        );
        write(102, b"sleep\x00100\x00");
        write(103, b"");
        write(
            105,
            b"/usr/local/bin/minikubelet-shim\0shim\0/run/mkl/containers/abc\0",
        );
        write(106, b"minikubelet-shim\0/run/mkl/containers/abc\0");
        write(107, b"/usr/bin/sleep\0/run/mkl/containers/abc\0");
        write(
            108,
            b"/usr/local/bin/minikubelet-shim\0/run/mkl/containers/other\0",
        );
        let st = |shim_pid| ShimState {
            shim_pid,
            pid: 1,
            started_at: String::new(),
        };
        let cases = [
            (100, true),
            (101, false),
            (102, false),
            (103, false),
            (104, false),
            (105, true),
            (106, true),
            (107, false),
            (108, false),
            (0, false),
        ];
        for (pid, want) in cases {
            assert_eq!(
                shim_alive_in(proc_root.path(), &st(pid), state_dir),
                want,
                "pid {pid}"
            );
        }
    }

    #[test]
    fn shim_exe_prefers_the_small_binary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("minikubelet");
        let sibling = dir.path().join(SHIM_BINARY);
        // (sibling present, its mode, expected binary)
        let cases = [
            (false, 0o755, &agent),
            (true, 0o644, &agent),
            (true, 0o755, &sibling),
        ];
        for (present, mode, want) in cases {
            let _ = std::fs::remove_file(&sibling);
            if present {
                std::fs::write(&sibling, b"").unwrap();
                std::fs::set_permissions(&sibling, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            assert_eq!(&shim_exe(&agent), want, "present {present} mode {mode:o}");
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::create_dir(dir.path().join("sub").join(SHIM_BINARY)).unwrap();
        let agent2 = dir.path().join("sub").join("minikubelet");
        assert_eq!(shim_exe(&agent2), agent2, "a directory is no binary");
    }

    #[test]
    fn exit_codes_like_runtimes() {
        use nix::sys::signal::Signal;
        use nix::sys::wait::WaitStatus;
        use nix::unistd::Pid;
        let p = Pid::from_raw(1);
        let cases = [
            (WaitStatus::Exited(p, 0), Some((0, None))),
            (WaitStatus::Exited(p, 3), Some((3, None))),
            (
                WaitStatus::Signaled(p, Signal::SIGKILL, false),
                Some((137, Some(9))),
            ),
            (
                WaitStatus::Signaled(p, Signal::SIGTERM, true),
                Some((143, Some(15))),
            ),
            (WaitStatus::StillAlive, None),
        ];
        for (ws, want) in cases {
            assert_eq!(exit_code_of(ws), want, "{ws:?}");
        }
    }
}
