//! The shim process itself (`minikubelet shim <state-dir>`): detach, start the container, copy
//! its output into the CRI log, reap it, record its exit. Single-threaded and synchronous.
//!
//! The event loop polls the container's stdout and stderr pipes, a signalfd for SIGCHLD, and
//! the attach socket ([`super::attach`]) with its clients and the container's stdin pipe:
//! output goes to the CRI log and to every attached client.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, Signal, killpg, signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, setsid};

use super::attach::AttachServer;
use super::child::{self, Container};
use super::{
    CONFIG_FILE, EXIT_FILE, ExitStatus, Handshake, META_FILE, SHIM_LOG_FILE, STATE_FILE,
    ShimConfig, ShimState, StartRequest, absolute, exit_code_of, failure, read_config,
    write_json_atomic,
};
use crate::logs::{CriLogWriter, LineSplitter, Stream, Tag, UnixTime};

/// After the container's main process exits (and its process group is killed), how long the
/// shim keeps reading output held open by a leftover descendant that escaped the group. Longer
/// keeps more of such a process's last words; shorter reports the exit (and so the restart)
/// sooner. Without leftovers the pipes hit EOF at once and this bound is never reached.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read from a pipe at a time: one CRI line's worth, so a full read is at most one `P`
/// record; small, for the shim's memory target (the pipe itself buffers 64 KiB).
const READ_BUF_SIZE: usize = 16 * 1024;

/// Reads per stream per wakeup before the other stream gets its turn.
const MAX_READS_PER_WAKEUP: usize = 8;

/// How the agent started this shim: for a container whose state dir is ready, or ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `<exe> shim <state-dir>`: `config.json` is written; start the container at once.
    Now,
    /// `<exe> shim <state-dir> --prestarted` ([`super::PRESTARTED_ARG`]): started ahead of its
    /// container ([`super::prestart`]). The shim detaches, then reads its stdin (a pipe from
    /// the agent) to EOF: a [`super::StartRequest`] says what to run; nothing at all (the
    /// agent dropped it, or died) makes it exit without touching the state dir.
    Prestarted,
}

/// Runs the `shim` subcommand. Must be called before any thread exists: it forks.
///
/// In the process the agent started (the launcher) this forks the shim and returns at once;
/// the shim then runs until the container is gone and returns the shim's exit code.
pub fn main(state_dir: &Path, launch: Launch) -> ExitCode {
    if state_dir == Path::new(super::PAUSE_ARG) {
        return super::pause::main();
    }
    let state_dir = absolute(state_dir);
    // Nothing the agent leaked to us (sockets, files) may be held by a long-lived shim.
    // SAFETY: closes fds >= 3, none of which this process uses yet.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    ensure_stdio();
    // The agent kills containers through their cgroup, never through the shim; a terminal's
    // or the agent's process-group signals must not take the shim (and the logs) down.
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGPIPE,
    ] {
        // SAFETY: installing SIG_IGN runs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // SAFETY: single-threaded here (dispatched before anything else starts).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => ExitCode::SUCCESS,
        Ok(ForkResult::Child) => {
            let _ = setsid();
            match launch {
                Launch::Now => run(&state_dir, None),
                Launch::Prestarted => match wait_for_request() {
                    None => ExitCode::SUCCESS,
                    Some(Ok(req)) => run(&state_dir, Some(req)),
                    Some(Err(e)) => {
                        make_state_dir(&state_dir);
                        start_failed(&state_dir, format!("read the agent's start request: {e}"))
                    }
                },
            }
        }
        Err(e) => {
            start_failed(&state_dir, format!("fork shim: {}", e.desc()));
            failure()
        }
    }
}

/// Starts and supervises the container. `request` is a prestarted shim's [`StartRequest`]: its
/// state dir is written only once the container runs (or failed to), off the start path.
fn run(state_dir: &Path, request: Option<StartRequest>) -> ExitCode {
    let (cfg, mut unwritten) = match request {
        Some(req) => (req.config, Some(req.meta_json)),
        None => {
            redirect_stderr(&state_dir.join(SHIM_LOG_FILE));
            match read_config(state_dir) {
                Ok(c) => (c, None),
                Err(e) => return start_failed(state_dir, e.to_string()),
            }
        }
    };
    let _ = std::env::set_current_dir("/");
    let fail = |unwritten: &mut Option<String>, msg: String| {
        if let Some(meta) = unwritten.take() {
            write_state_dir(state_dir, &cfg, &meta);
        }
        start_failed(state_dir, msg)
    };
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        diag(&cfg, &format!("set child subreaper: {}", e.desc()));
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if let Err(e) = mask.thread_block() {
        return fail(&mut unwritten, format!("block SIGCHLD: {}", e.desc()));
    }
    let sigfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => return fail(&mut unwritten, format!("signalfd: {}", e.desc())),
    };
    // The log (and its directory, `<pod-logs-dir>/<ns>_<pod>_<uid>/<container>/`, which the
    // kubelet makes before CreateContainer) is made while the child joins its cgroups: the
    // child execs only once it is open.
    let spawned = child::spawn(&cfg, || {
        if let Some(dir) = cfg.log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("create log directory {}: {e}", dir.display()))?;
        }
        CriLogWriter::open(&cfg.log_path, cfg.log_max_size)
            .map_err(|e| format!("open log file: {e}"))
    });
    let (container, mut writer) = match spawned {
        Ok(v) => v,
        Err(msg) => return fail(&mut unwritten, msg),
    };
    let started_at = UnixTime::now().rfc3339_nano().to_string();
    if let Some(meta) = unwritten.take() {
        write_state_dir(state_dir, &cfg, &meta);
    }
    if let Some(note) = &container.clone3_fallback {
        diag(&cfg, note);
    }
    let state = ShimState {
        shim_pid: getpid().as_raw(),
        pid: container.pid.as_raw(),
        started_at: started_at.clone(),
    };
    if let Err(e) = write_json_atomic(&state_dir.join(STATE_FILE), &state) {
        diag(&cfg, &e.to_string());
    }
    handshake(&Handshake::Started(state));
    // The OCI bundle's config.json, off the start path (the record runc would be given).
    if let Some(iso) = &cfg.isolation
        && let Err(e) = super::write_bundle(iso)
    {
        diag(&cfg, &e.to_string());
    }

    let (wait_status, finished) = supervise(state_dir, &cfg, container, &mut writer, &sigfd);
    let (exit_code, signal) = exit_code_of(wait_status).unwrap_or((255, None));
    let status = ExitStatus {
        exit_code,
        signal,
        started_at: Some(started_at),
        finished_at: finished.rfc3339_nano().to_string(),
        start_error: None,
    };
    match write_json_atomic(&state_dir.join(EXIT_FILE), &status) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            diag(&cfg, &e.to_string());
            failure()
        }
    }
}

/// One of the container's output streams.
struct Output {
    file: File,
    stream: Stream,
    splitter: LineSplitter,
}

/// Copies output to the log until the main process is gone and the pipes are drained (or
/// [`DRAIN_TIMEOUT`] passed); returns its wait status and when it was reaped.
fn supervise(
    state_dir: &Path,
    cfg: &ShimConfig,
    container: Container,
    writer: &mut CriLogWriter,
    sigfd: &SignalFd,
) -> (WaitStatus, UnixTime) {
    let Container {
        pid,
        stdout,
        stderr,
        stdin,
        own_pid_ns,
        ..
    } = container;
    let output = |fd: OwnedFd, stream| {
        Some(Output {
            file: File::from(fd),
            stream,
            splitter: LineSplitter::default(),
        })
    };
    // Without the socket the container still runs; its stdin (if kept) stays open until it
    // exits, as before attach existed.
    let (mut attach, _stdin_kept) = match AttachServer::bind(state_dir, stdin, cfg.stdin_once) {
        Ok(a) => (Some(a), None),
        Err((e, stdin)) => {
            diag(cfg, &format!("attach socket: {e}; attach is unavailable"));
            (None, stdin)
        }
    };
    let mut outputs = [
        output(stdout, Stream::Stdout),
        output(stderr, Stream::Stderr),
    ];
    let mut buf = vec![0u8; READ_BUF_SIZE];
    let mut log_errors = 0u64;
    let mut exited: Option<(WaitStatus, UnixTime)> = None;
    let mut deadline: Option<Instant> = None;

    loop {
        if exited.is_some() && outputs.iter().all(Option::is_none) {
            break;
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    diag(
                        cfg,
                        "output still open after the container exited; giving up on it",
                    );
                    break;
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = Vec::with_capacity(3);
        fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        let mut which = Vec::with_capacity(2);
        for (i, o) in outputs.iter().enumerate() {
            if let Some(o) = o {
                fds.push(PollFd::new(o.file.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        let attach_at = fds.len();
        if let Some(a) = &attach {
            fds.extend(a.poll_fds());
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                diag(cfg, &format!("poll: {}", e.desc()));
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let attach_events: Vec<Option<PollFlags>> =
            fds[attach_at..].iter().map(|f| f.revents()).collect();
        drop(fds);
        if let Some(a) = &mut attach {
            a.handle(&attach_events);
        }
        for (slot, &i) in which.iter().enumerate() {
            if ready[slot + 1] {
                let still_open = outputs[i].as_mut().is_some_and(|o| {
                    copy_output(cfg, o, &mut buf, writer, &mut log_errors, attach.as_mut())
                });
                if !still_open {
                    outputs[i] = None;
                }
            }
        }
        if ready[0] {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            if let Some(status) = reap(pid) {
                exited.get_or_insert((status, UnixTime::now()));
            }
        }
        if exited.is_some() && deadline.is_none() {
            // With a PID namespace the kernel kills the rest of the container when its init
            // exits; without one, do it for the container's process group.
            if !own_pid_ns {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            deadline = Some(Instant::now() + DRAIN_TIMEOUT);
        }
    }
    for o in outputs.iter_mut().flatten() {
        let stream = o.stream;
        o.splitter.finish(&mut |tag, parts| {
            write_record(cfg, writer, stream, tag, parts, &mut log_errors)
        });
    }
    if let Some(a) = attach {
        a.finish();
    }
    reap(pid);
    // Only reached with `exited` set, unless poll itself failed: then wait for the child.
    exited.unwrap_or_else(|| {
        let status = waitpid(pid, None).unwrap_or(WaitStatus::StillAlive);
        (status, UnixTime::now())
    })
}

/// Reads what a stream has (bounded per wakeup) into the log; `false` once it hit EOF.
fn copy_output(
    cfg: &ShimConfig,
    o: &mut Output,
    buf: &mut [u8],
    writer: &mut CriLogWriter,
    log_errors: &mut u64,
    mut attach: Option<&mut AttachServer>,
) -> bool {
    let stream = o.stream;
    let mut emit = |tag, parts: &[&[u8]]| write_record(cfg, writer, stream, tag, parts, log_errors);
    for _ in 0..MAX_READS_PER_WAKEUP {
        match o.file.read(buf) {
            Ok(0) => {
                o.splitter.finish(&mut emit);
                return false;
            }
            Ok(n) => {
                o.splitter.push(&buf[..n], &mut emit);
                if let Some(a) = attach.as_deref_mut() {
                    a.broadcast(stream, &buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                diag(cfg, &format!("read container {}: {e}", stream.as_str()));
                o.splitter.finish(&mut emit);
                return false;
            }
        }
    }
    true
}

/// Writes one record; a failing log (full disk) never blocks or kills the container: the
/// output keeps being drained and the failure is noted in shim.log (first, then every 1000th).
fn write_record(
    cfg: &ShimConfig,
    writer: &mut CriLogWriter,
    stream: Stream,
    tag: Tag,
    parts: &[&[u8]],
    log_errors: &mut u64,
) {
    if let Err(e) = writer.write_record(UnixTime::now(), stream, tag, parts) {
        if (*log_errors).is_multiple_of(1000) {
            diag(
                cfg,
                &format!("container log: {e} ({} errors so far)", *log_errors + 1),
            );
        }
        *log_errors += 1;
    }
}

/// Reaps every exited child (the container and, as subreaper, its orphaned descendants);
/// returns the main process's status if it was among them.
fn reap(main: Pid) -> Option<WaitStatus> {
    let mut main_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(status) => {
                if status.pid() == Some(main) && exit_code_of(status).is_some() {
                    main_status = Some(status);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    main_status
}

/// Records a start failure in exit.json and answers the agent.
fn start_failed(state_dir: &Path, message: String) -> ExitCode {
    eprintln!(
        "{} shim[{}]: start failed: {message}",
        UnixTime::now().rfc3339_nano(),
        std::process::id()
    );
    let status = ExitStatus {
        exit_code: 128,
        signal: None,
        started_at: None,
        finished_at: UnixTime::now().rfc3339_nano().to_string(),
        start_error: Some(message),
    };
    let written = write_json_atomic(&state_dir.join(EXIT_FILE), &status);
    handshake(&Handshake::Failed(status));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shim[{}]: {e}", std::process::id());
            failure()
        }
    }
}

/// A prestarted shim's wait: reads stdin to EOF. `None`: nothing came (the agent will not use
/// this shim); else the parsed [`StartRequest`]. Either way stdin becomes /dev/null, so the
/// long-lived shim keeps no end of the agent's pipe.
fn wait_for_request() -> Option<Result<StartRequest, String>> {
    let mut bytes = Vec::new();
    let read = std::io::stdin().lock().read_to_end(&mut bytes);
    redirect(libc::STDIN_FILENO, Path::new("/dev/null"), true);
    match read {
        Ok(_) if bytes.is_empty() => None,
        Ok(_) => Some(serde_json::from_slice(&bytes).map_err(|e| e.to_string())),
        Err(e) => Some(Err(e.to_string())),
    }
}

/// Creates the state dir; a failure is only noted (the answer still reaches the agent).
fn make_state_dir(state_dir: &Path) {
    if let Err(e) = super::create_private_dir_all(state_dir) {
        eprintln!(
            "shim[{}]: create {}: {e}",
            std::process::id(),
            state_dir.display()
        );
    }
}

/// A prestarted shim's part of the state dir: the directory, `config.json` and `meta.json`
/// (the same bytes the agent writes for a shim it starts directly), then its own `shim.log`.
fn write_state_dir(state_dir: &Path, cfg: &ShimConfig, meta_json: &str) {
    make_state_dir(state_dir);
    let config = serde_json::to_vec_pretty(cfg).unwrap_or_default();
    for (name, bytes) in [
        (CONFIG_FILE, &config[..]),
        (META_FILE, meta_json.as_bytes()),
    ] {
        if let Err(e) = super::write_private(&state_dir.join(name), bytes) {
            diag(cfg, &format!("write {name}: {e}"));
        }
    }
    redirect_stderr(&state_dir.join(SHIM_LOG_FILE));
}

/// Sends the answer on stdout (the agent's pipe) and closes it: stdout becomes /dev/null.
fn handshake(answer: &Handshake) {
    if let Ok(mut line) = serde_json::to_vec(answer) {
        line.push(b'\n');
        let mut out = std::io::stdout().lock();
        // EPIPE when the agent gave up waiting: nothing more to do.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
    redirect(libc::STDOUT_FILENO, Path::new("/dev/null"), false);
}

/// Makes sure fds 0-2 are open, so no pipe of ours lands on them.
fn ensure_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            redirect(fd, Path::new("/dev/null"), fd == 0);
        }
    }
}

fn redirect_stderr(path: &Path) {
    if !redirect(libc::STDERR_FILENO, path, false) {
        redirect(libc::STDERR_FILENO, Path::new("/dev/null"), false);
    }
}

/// Points `fd` at `path` (appending); `false` if it could not be opened.
fn redirect(fd: i32, path: &Path, read: bool) -> bool {
    let file = if read {
        File::open(path)
    } else {
        std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new().create(true).append(true),
            super::PRIVATE_FILE_MODE,
        )
        .open(path)
    };
    match file {
        Ok(f) => {
            // SAFETY: dup2 onto a standard fd number; `f` is closed afterwards.
            unsafe { libc::dup2(f.as_raw_fd(), fd) };
            true
        }
        Err(_) => false,
    }
}

/// A line in shim.log.
fn diag(cfg: &ShimConfig, msg: &str) {
    eprintln!(
        "{} shim[{}] container={}: {msg}",
        UnixTime::now().rfc3339_nano(),
        std::process::id(),
        cfg.container_id
    );
}
