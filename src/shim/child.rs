//! Forking the container process: everything the child needs is prepared before `fork`, and
//! between `fork` and `execve` the child makes only async-signal-safe calls (raw libc: no
//! allocation, no locks), like runc's `nsexec` or std's `pre_exec` rules demand.
//!
//! How the child gets into its cgroups (so it is charged from its first page and everything it
//! forks starts there too): on v2 the shim starts it there, with
//! `clone3(CLONE_INTO_CGROUP)` and the cgroup's directory (kernel >= 5.7), so the child has
//! nothing to write; where the kernel lacks that (`ENOSYS`, `E2BIG`, `EINVAL`) and on v1 it
//! `fork`s, and the child writes `"0"` into each join file of [`ShimConfig::cgroup_procs`]:
//! `tasks` on v1, which moves the single-threaded child without the threadgroup lock that makes
//! a `cgroup.procs` write wait for an RCU grace period (see
//! [`crate::cgroup::CgroupFs::join_files`]), `cgroup.procs` on v2. A raw `clone3` is no
//! different from `fork` for the child: the same async-signal-safe steps follow.
//!
//! Child steps, in order: `setsid` (own session and process group, so the shim can signal the
//! whole group), join each cgroup unless `clone3` started it there, `oom_score_adj`, the container's
//! isolation (`isolate::enter`) and AppArmor profile (`exec <profile>` written to its
//! `/proc/self/attr/apparmor/exec`, which the kernel applies at the `execve`, as runc does),
//! seccomp and capabilities, `setgroups`/`setresgid`/`setresuid`, `chdir`, stdio onto 0/1/2, mark every other fd close-on-exec, reset the signal
//! mask and dispositions (the shim ignores several and Rust ignores SIGPIPE: ignored
//! dispositions survive exec), `execve` through the `PATH` candidates. A failing step writes
//! `(step, index, errno)` to a close-on-exec pipe and `_exit`s; a successful exec closes the
//! pipe, which is how the shim tells the two apart.
//!
//! Just before `execve` the child waits for one byte on a *gate* pipe: the shim meanwhile runs
//! what the container needs but the child's steps do not (opening the CRI log file), so the
//! two overlap instead of adding up, and a container never runs without its log: if that
//! fails, the shim closes the gate and the child `_exit`s without exec'ing.
use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use super::ShimConfig;
use super::isolate::{self, IsoStep, Plan};

/// The default `PATH` when the container's env has none (runc and Docker use the same).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running container process and the shim's ends of its stdio pipes.
#[derive(Debug)]
pub(super) struct Container {
    /// The container's main process.
    pub pid: Pid,
    /// Read end of the container's stdout (non-blocking).
    pub stdout: OwnedFd,
    /// Read end of the container's stderr (non-blocking).
    pub stderr: OwnedFd,
    /// Write end of the container's stdin, when [`ShimConfig::stdin`] asks to keep it.
    pub stdin: Option<OwnedFd>,
    /// The container is PID 1 of a PID namespace of its own: when it exits the kernel kills
    /// the rest, so the shim need not kill its process group.
    pub own_pid_ns: bool,
    /// Why the child was forked and joined `cgroup.procs` instead of being cloned into its v2
    /// cgroup (the kernel lacks `clone3(CLONE_INTO_CGROUP)`), for the shim's log: written once
    /// the log exists (a prestarted shim has no stderr until its state dir is written).
    pub clone3_fallback: Option<String>,
}

/// The child step that failed, sent over the error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    Setsid = 1,
    Cgroup = 2,
    OomScoreAdj = 3,
    Setgroups = 4,
    Setgid = 5,
    Setuid = 6,
    Chdir = 7,
    Stdio = 8,
    Exec = 9,
    NotFound = 10,
    Gate = 11,
    AppArmor = 12,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        [
            Setsid,
            Cgroup,
            OomScoreAdj,
            Setgroups,
            Setgid,
            Setuid,
            Chdir,
            Stdio,
            Exec,
            NotFound,
            Gate,
            AppArmor,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

/// Everything the child touches, built before `fork`.
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    candidates: Vec<CString>,
    cgroup_procs: Vec<CString>,
    oom_score_adj: Option<Vec<u8>>,
    set_groups: bool,
    groups: Vec<libc::gid_t>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    cwd: Option<CString>,
    /// The container's isolation ([`ShimConfig::isolation`]).
    iso: Option<Plan>,
    /// `exec <profile>` for the AppArmor attribute, when the spec names a profile
    /// (`process.apparmorProfile`).
    apparmor: Option<Vec<u8>>,
}

fn cstring(what: &str, s: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

fn path_cstring(what: &str, p: &Path) -> Result<CString, String> {
    cstring(what, p.as_os_str().as_encoded_bytes())
}

/// The process part of a [`ShimConfig`]: its own fields, or its isolation spec's `process`.
struct ProcessSpec {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<std::path::PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<u32>,
    oom_score_adj: Option<i32>,
}

impl ProcessSpec {
    fn of(cfg: &ShimConfig) -> ProcessSpec {
        match &cfg.isolation {
            None => ProcessSpec {
                argv: cfg.argv.clone(),
                env: cfg.env.clone(),
                cwd: cfg.working_dir.clone(),
                uid: cfg.uid,
                gid: cfg.gid,
                groups: cfg.supplemental_groups.clone(),
                oom_score_adj: cfg.oom_score_adj,
            },
            Some(iso) => {
                let p = &iso.spec.process;
                ProcessSpec {
                    argv: p.args.clone(),
                    env: p
                        .env
                        .iter()
                        .map(|e| match e.split_once('=') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            None => (e.clone(), String::new()),
                        })
                        .collect(),
                    cwd: Some(p.cwd.clone().into()),
                    // runc always sets the spec's ids and exactly its groups.
                    uid: Some(p.user.uid),
                    gid: Some(p.user.gid),
                    groups: p.user.additional_gids.clone(),
                    oom_score_adj: p.oom_score_adj,
                }
            }
        }
    }
}

impl Prepared {
    fn new(cfg: &ShimConfig) -> Result<Self, String> {
        let iso = cfg.isolation.as_ref().map(Plan::new).transpose()?;
        let ps = ProcessSpec::of(cfg);
        let Some(argv0) = ps.argv.first() else {
            return Err("no command specified".to_string());
        };
        if argv0.is_empty() {
            return Err("no command specified".to_string());
        }
        let argv = ps
            .argv
            .iter()
            .map(|a| cstring("argument", a.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = ps
            .env
            .iter()
            .map(|(k, v)| cstring("environment variable", format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()?;
        let candidates = if argv0.contains('/') {
            vec![cstring("command", argv0.as_str())?]
        } else {
            // execvpe semantics, decided with the container's PATH, not the shim's.
            let path = ps
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring("PATH entry", format!("{}/{argv0}", d.trim_end_matches('/'))))
                .collect::<Result<Vec<_>, _>>()?
        };
        let cgroup_procs = cfg
            .cgroup_procs
            .iter()
            .map(|p| path_cstring("cgroup path", p))
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = ps
            .cwd
            .as_deref()
            .map(|d| path_cstring("working dir", d))
            .transpose()?;
        Ok(Prepared {
            argv,
            envp,
            candidates,
            cgroup_procs,
            oom_score_adj: ps.oom_score_adj.map(|v| v.to_string().into_bytes()),
            // Like runc: a container with an identity gets exactly its own groups, not the
            // agent's; one without keeps root's.
            set_groups: ps.uid.is_some() || ps.gid.is_some() || !ps.groups.is_empty(),
            groups: ps.groups,
            gid: ps.gid,
            uid: ps.uid,
            cwd,
            iso,
            apparmor: cfg
                .isolation
                .as_ref()
                .and_then(|iso| iso.spec.process.apparmor_profile.as_deref())
                .map(super::apparmor::change_onexec_command),
        })
    }

    /// The message for a failed child step (as reported: a [`Step`] or an [`IsoStep`]), as
    /// runtimes word them.
    fn describe(&self, cfg: &ShimConfig, code: u32, index: usize, errno: i32) -> String {
        let err = Errno::from_raw(errno).desc();
        if let (Some(iso), Some(step)) = (&cfg.isolation, IsoStep::from_u32(code)) {
            return step.describe(iso, index, err);
        }
        let step = Step::from_u32(code).unwrap_or(Step::Exec);
        let ps = ProcessSpec::of(cfg);
        let argv0 = ps.argv.first().map(String::as_str).unwrap_or_default();
        match step {
            Step::Setsid => format!("setsid: {err}"),
            Step::Cgroup => {
                let path = cfg
                    .cgroup_procs
                    .get(index)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                format!("join cgroup: write \"0\" to {path}: {err}")
            }
            Step::OomScoreAdj => {
                format!(
                    "write {} to /proc/self/oom_score_adj: {err}",
                    ps.oom_score_adj.unwrap_or_default()
                )
            }
            Step::Setgroups => format!("setgroups {:?}: {err}", ps.groups),
            Step::Setgid => format!("setgid {}: {err}", ps.gid.unwrap_or_default()),
            Step::Setuid => format!("setuid {}: {err}", ps.uid.unwrap_or_default()),
            Step::Chdir => {
                let dir = ps.cwd.as_deref().unwrap_or(Path::new("/"));
                format!("chdir to cwd ({:?}) set in config: {err}", dir)
            }
            Step::Stdio => format!("set up stdio: {err}"),
            Step::Exec => format!("exec {argv0:?}: {err}"),
            Step::NotFound => format!("exec {argv0:?}: executable file not found in $PATH"),
            Step::Gate => format!("wait for the shim before exec: {err}"),
            Step::AppArmor => {
                let attr = super::apparmor::EXEC_ATTRS
                    .get(index)
                    .map(|a| a.to_string_lossy())
                    .unwrap_or_default();
                let profile = (cfg.isolation.as_ref())
                    .and_then(|iso| iso.spec.process.apparmor_profile.as_deref())
                    .unwrap_or_default();
                format!(
                    "unable to apply apparmor profile {profile:?}: write \"exec {profile}\" to {attr}: {err}"
                )
            }
        }
    }
}

/// `clone_args` of `clone3(2)` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, kernel 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (kernel 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The directory of the container's v2 cgroup, opened for `clone3(CLONE_INTO_CGROUP)`: when
/// the join files are one `cgroup.procs` on a cgroup2 mount. `None` on v1 (a `tasks` file, or
/// several hierarchies), or when it cannot be opened (the fallback write then reports the
/// path).
fn v2_cgroup_dir(join_files: &[std::path::PathBuf]) -> Option<(OwnedFd, &Path)> {
    let [file] = join_files else {
        return None;
    };
    if file.file_name()? != "cgroup.procs" {
        return None;
    }
    let dir = file.parent()?;
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let on_cgroup2 = nix::sys::statfs::fstatfs(&fd)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    on_cgroup2.then_some((fd, dir))
}

/// Whether a `clone3` error means the kernel (or a seccomp profile around the agent) lacks
/// `clone3` or `CLONE_INTO_CGROUP`, so `fork` and a `cgroup.procs` write must do.
fn clone3_unsupported(e: Errno) -> bool {
    matches!(e, Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL)
}

/// `clone3(CLONE_INTO_CGROUP)`: like `fork`, but the child starts in the cgroup of `dir`.
///
/// # Safety
/// As `fork`: in the child only async-signal-safe calls until exec or `_exit`. No libc
/// `atfork` handler runs, which is fine for a child that makes raw syscalls only.
unsafe fn clone_into_cgroup(dir: &OwnedFd) -> Result<ForkResult, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; without CLONE_VM the child gets
    // its own copy of the address space, as with fork.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        r if r < 0 => Err(Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as libc::pid_t),
        }),
    }
}

/// Forks and execs the container. Returns once it has exec'd (with what `before_exec`
/// returned), or the start error's message. `before_exec` runs in the shim while the child
/// takes its steps; the child execs only once it has returned `Ok` (its error is the start
/// error otherwise). The caller must have blocked SIGCHLD (the child unblocks everything
/// before exec).
pub(super) fn spawn<T>(
    cfg: &ShimConfig,
    before_exec: impl FnOnce() -> Result<T, String>,
) -> Result<(Container, T), String> {
    let prep = Prepared::new(cfg)?;
    let argv_ptrs = null_terminated(&prep.argv);
    let envp_ptrs = null_terminated(&prep.envp);

    let pipe = |what: &str| {
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("create {what} pipe: {}", e.desc()))
    };
    let (out_r, out_w) = pipe("stdout")?;
    let (err_r, err_w) = pipe("stderr")?;
    let (in_r, in_w) = if cfg.stdin {
        let (r, w) = pipe("stdin")?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
        (OwnedFd::from(null), None)
    };
    let (report_r, report_w) = pipe("exec report")?;
    let (gate_r, gate_w) = pipe("exec gate")?;
    // The PID namespace is the shim's to enter: it applies to the shim's next child.
    let own_pid_ns = match &cfg.isolation {
        Some(iso) => isolate::enter_pid_ns(&iso.spec)?,
        None => false,
    };

    // v2: start the child in its cgroup; else (or where the kernel cannot) fork and join.
    let into = v2_cgroup_dir(&cfg.cgroup_procs);
    // SAFETY (both): the shim is single-threaded, and the child only makes async-signal-safe
    // calls on memory prepared above before exec or _exit.
    let mut clone3_fallback = None;
    let cloned = match &into {
        Some((fd, dir)) => match unsafe { clone_into_cgroup(fd) } {
            Ok(r) => Some(r),
            Err(e) if clone3_unsupported(e) => {
                clone3_fallback = Some(format!(
                    "clone3(CLONE_INTO_CGROUP) unsupported ({}): fork and write \"0\" to {}/cgroup.procs instead",
                    e.desc(),
                    dir.display()
                ));
                None
            }
            Err(e) => {
                return Err(format!(
                    "clone3 into cgroup {}: {}",
                    dir.display(),
                    e.desc()
                ));
            }
        },
        None => None,
    };
    let in_cgroup = cloned.is_some();
    let forked = match cloned {
        Some(r) => Ok(r),
        None => unsafe { fork() },
    };
    match forked {
        Err(e) => Err(format!("fork: {}", e.desc())),
        Ok(ForkResult::Child) => {
            let fds = ChildFds {
                stdin: in_r.as_raw_fd(),
                stdout: out_w.as_raw_fd(),
                stderr: err_w.as_raw_fd(),
                report: report_w.as_raw_fd(),
                gate: gate_r.as_raw_fd(),
                gate_writer: gate_w.as_raw_fd(),
            };
            // SAFETY: see above; never returns.
            unsafe { exec_child(&prep, &argv_ptrs, &envp_ptrs, fds, in_cgroup) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop((in_r, out_w, err_w, report_w, gate_r));
            let gate = before_exec();
            if gate.is_ok() {
                // EPIPE (ignored) if the child already failed a step and exited.
                let _ = nix::unistd::write(&gate_w, b"g");
            }
            drop(gate_w);
            let report = read_report(&report_r);
            let ready = match gate {
                Ok(v) => v,
                Err(msg) => {
                    let _ = waitpid(child, None);
                    return Err(msg);
                }
            };
            match report {
                None => {
                    for fd in [&out_r, &err_r] {
                        set_nonblocking(fd.as_raw_fd());
                    }
                    let container = Container {
                        pid: child,
                        stdout: out_r,
                        stderr: err_r,
                        stdin: in_w,
                        own_pid_ns,
                        clone3_fallback,
                    };
                    Ok((container, ready))
                }
                Some((code, index, errno)) => {
                    let _ = waitpid(child, None);
                    Err(prep.describe(cfg, code, index, errno))
                }
            }
        }
    }
}

fn null_terminated(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Blocks until the child exec'd (EOF: `None`) or reported a failed step (its code).
fn read_report(fd: &OwnedFd) -> Option<(u32, usize, i32)> {
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into our own buffer from an fd we own.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    if got < buf.len() {
        return None;
    }
    let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    Some((word(0), word(4) as usize, word(8) as i32))
}

#[derive(Clone, Copy)]
struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    report: RawFd,
    gate: RawFd,
    /// The shim's end of the gate, closed first: else the child would hold it open itself and
    /// never see the EOF that says "do not exec".
    gate_writer: RawFd,
}

/// Reports a failed step to the shim and exits. Async-signal-safe.
unsafe fn fail(report: RawFd, step: Step, index: usize, errno: i32) -> ! {
    // SAFETY: as fail_code.
    unsafe { fail_code(report, step as u32, index, errno) }
}

/// [`fail`] with a step's code ([`Step`] or [`IsoStep`]).
unsafe fn fail_code(report: RawFd, code: u32, index: usize, errno: i32) -> ! {
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&code.to_ne_bytes());
    buf[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    buf[8..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(report, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

fn errno() -> i32 {
    Errno::last_raw()
}

/// Writes all of `data` to `path`. Async-signal-safe.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: open/write/close are async-signal-safe; `path` and `data` outlive the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n < 0 {
            return Err(e);
        }
        Ok(())
    }
}

/// The child between fork (or clone3) and exec. Only async-signal-safe calls. `in_cgroup`:
/// `clone3` started it in its cgroup, there is nothing to join.
unsafe fn exec_child(
    p: &Prepared,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fds: ChildFds,
    in_cgroup: bool,
) -> ! {
    // SAFETY: every call below is an async-signal-safe syscall wrapper on prepared memory.
    unsafe {
        libc::close(fds.gate_writer);
        if libc::setsid() < 0 {
            fail(fds.report, Step::Setsid, 0, errno());
        }
        let join = if in_cgroup {
            &[][..]
        } else {
            &p.cgroup_procs[..]
        };
        for (i, path) in join.iter().enumerate() {
            if let Err(e) = write_file(path, b"0") {
                fail(fds.report, Step::Cgroup, i, e);
            }
        }
        if let Some(v) = &p.oom_score_adj
            && let Err(e) = write_file(c"/proc/self/oom_score_adj", v)
        {
            fail(fds.report, Step::OomScoreAdj, 0, e);
        }
        if let Some(plan) = &p.iso {
            // Namespaces, root filesystem, mounts, pivot_root, hostname, masks, rlimits.
            if let Err((step, i, e)) = isolate::enter(plan) {
                fail_code(fds.report, step as u32, i, e);
            }
        }
        // runc's order: the AppArmor profile is asked for inside the container's root (its
        // /proc), still as root and before seccomp, to take effect at the execve.
        if let Some(cmd) = &p.apparmor
            && let Err((i, e)) = super::apparmor::change_onexec(cmd)
        {
            fail(fds.report, Step::AppArmor, i, e);
        }
        // runc's order: without no_new_privs, installing a filter needs CAP_SYS_ADMIN, so it
        // goes in here, before the capabilities and the user change (and the profile must let
        // setgroups, setuid, capset, prctl, read and execve through); with no_new_privs, as
        // late as possible, just before execve.
        let seccomp = p.iso.as_ref().and_then(|plan| plan.seccomp.as_ref());
        let late_seccomp = p.iso.as_ref().is_some_and(|plan| plan.no_new_privs);
        if let Some(filter) = seccomp.filter(|_| !late_seccomp)
            && let Err(e) = super::seccomp::install(filter)
        {
            fail_code(fds.report, IsoStep::Seccomp as u32, 0, e);
        }
        let caps = p.iso.as_ref().and_then(|plan| plan.caps);
        if let Some(c) = &caps
            && let Err(e) = c.before_setuid()
        {
            fail_code(fds.report, IsoStep::Capabilities as u32, 0, e);
        }
        if p.set_groups && libc::setgroups(p.groups.len(), p.groups.as_ptr()) < 0 {
            fail(fds.report, Step::Setgroups, 0, errno());
        }
        if let Some(gid) = p.gid
            && libc::setresgid(gid, gid, gid) < 0
        {
            fail(fds.report, Step::Setgid, 0, errno());
        }
        if let Some(uid) = p.uid
            && libc::setresuid(uid, uid, uid) < 0
        {
            fail(fds.report, Step::Setuid, 0, errno());
        }
        if let Some(c) = &caps
            && let Err(e) = c.after_setuid()
        {
            fail_code(fds.report, IsoStep::Capabilities as u32, 0, e);
        }
        // After setuid, so the container's user must be able to enter it (as with runc).
        let cwd = p.cwd.as_deref().unwrap_or(c"/");
        if libc::chdir(cwd.as_ptr()) < 0 {
            fail(fds.report, Step::Chdir, 0, errno());
        }
        for (from, to) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(fds.report, Step::Stdio, 0, errno());
            }
        }
        // Whatever the shim inherited or opened stays out of the container.
        super::cloexec_above_stdio(1024);
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if p.iso.as_ref().is_some_and(|plan| plan.no_new_privs)
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
        {
            fail_code(fds.report, IsoStep::NoNewPrivs as u32, 0, errno());
        }

        // The gate: one byte once the shim has the container's log open; EOF if it failed.
        let mut byte = 0u8;
        loop {
            let n = libc::read(fds.gate, (&raw mut byte).cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            fail(fds.report, Step::Gate, 0, if n < 0 { errno() } else { 0 });
        }
        if let Some(filter) = seccomp.filter(|_| late_seccomp)
            && let Err(e) = super::seccomp::install(filter)
        {
            fail_code(fds.report, IsoStep::Seccomp as u32, 0, e);
        }

        let mut saw_eacces = false;
        let mut last = libc::ENOENT;
        for path in &p.candidates {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            last = errno();
            match last {
                // execvp keeps searching on these.
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                libc::EACCES => saw_eacces = true,
                _ => fail(fds.report, Step::Exec, 0, last),
            }
        }
        if saw_eacces {
            fail(fds.report, Step::Exec, 0, libc::EACCES);
        }
        if p.candidates.len() == 1 && p.argv.first().is_some_and(|a| a.as_bytes().contains(&b'/')) {
            fail(fds.report, Step::Exec, 0, last);
        }
        fail(fds.report, Step::NotFound, 0, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(argv: &[&str], env: &[(&str, &str)]) -> ShimConfig {
        ShimConfig {
            container_id: "c".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            working_dir: None,
            uid: None,
            gid: None,
            supplemental_groups: vec![],
            cgroup_procs: vec![],
            oom_score_adj: None,
            log_path: "/tmp/x.log".into(),
            log_max_size: 0,
            log_max_files: 5,
            stdin: false,
            stdin_once: false,
            isolation: None,
        }
    }

    #[test]
    fn exec_candidates_follow_the_container_path() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&["./run"], &[("PATH", "/x")], &["./run"]),
            (
                &["sh"],
                &[("PATH", "/opt/bin:/usr/bin/")],
                &["/opt/bin/sh", "/usr/bin/sh"],
            ),
            (&["sh"], &[("PATH", "::/a")], &["/a/sh"]),
            (
                &["sh"],
                &[],
                &[
                    "/usr/local/sbin/sh",
                    "/usr/local/bin/sh",
                    "/usr/sbin/sh",
                    "/usr/bin/sh",
                    "/sbin/sh",
                    "/bin/sh",
                ],
            ),
        ];
        for (argv, env, want) in cases {
            let p = Prepared::new(&cfg(argv, env)).unwrap();
            let got: Vec<&str> = p.candidates.iter().map(|c| c.to_str().unwrap()).collect();
            assert_eq!(got, *want, "{argv:?} {env:?}");
        }
    }

    #[test]
    fn invalid_specs_are_start_errors() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&[], &[], "no command specified"),
            (&[""], &[], "no command specified"),
            (&["a\0b"], &[], "argument contains a NUL byte"),
            (
                &["sh"],
                &[("A", "x\0")],
                "environment variable contains a NUL byte",
            ),
        ];
        for (argv, env, want) in cases {
            let err = Prepared::new(&cfg(argv, env)).err().unwrap();
            assert_eq!(err, *want);
        }
    }

    #[test]
    fn step_messages() {
        let mut c = cfg(&["foo"], &[]);
        c.cgroup_procs = vec!["/sys/fs/cgroup/memory/x/cgroup.procs".into()];
        let p = Prepared::new(&c).unwrap();
        let cases = [
            (
                Step::Exec,
                libc::ENOENT,
                "exec \"foo\": No such file or directory",
            ),
            (
                Step::NotFound,
                libc::ENOENT,
                "exec \"foo\": executable file not found in $PATH",
            ),
            (
                Step::Cgroup,
                libc::ENOENT,
                "join cgroup: write \"0\" to /sys/fs/cgroup/memory/x/cgroup.procs: No such file or directory",
            ),
            (
                Step::Setuid,
                libc::EPERM,
                "setuid 0: Operation not permitted",
            ),
        ];
        for (step, errno, want) in cases {
            assert_eq!(p.describe(&c, step as u32, 0, errno), want);
        }
    }

    #[test]
    fn only_one_cgroup_procs_on_cgroup2_is_cloned_into() {
        let tmp = tempfile::tempdir().unwrap();
        let procs = tmp.path().join("cgroup.procs");
        let tasks = tmp.path().join("tasks");
        // v1: `tasks` files, several hierarchies, or a directory that is not on cgroup2.
        for files in [
            vec![],
            vec![tasks.clone()],
            vec![procs.clone(), procs.clone()],
            vec![procs.clone()],
            vec![tmp.path().join("absent/cgroup.procs")],
        ] {
            assert!(v2_cgroup_dir(&files).is_none(), "{files:?}");
        }
        // A cgroup2 mount (pure v2, or hybrid's `unified`) is.
        let v2 = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|m| {
                nix::sys::statfs::statfs(m)
                    .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            });
        if let Some(root) = v2 {
            let files = [root.join("cgroup.procs")];
            let (_, dir) = v2_cgroup_dir(&files).unwrap();
            assert_eq!(dir, root);
            assert!(v2_cgroup_dir(&[root.join("tasks")]).is_none());
        }
        for e in [Errno::ENOSYS, Errno::E2BIG, Errno::EINVAL] {
            assert!(clone3_unsupported(e));
        }
        for e in [Errno::EBADF, Errno::EBUSY, Errno::EACCES, Errno::EOPNOTSUPP] {
            assert!(!clone3_unsupported(e), "{e}");
        }
    }

    #[test]
    fn apparmor_profile_is_asked_for_by_name() {
        let mut c = cfg(&["sh"], &[]);
        let mut spec = crate::runtime::spec::container_spec(
            &crate::runtime::spec::ContainerProcess {
                args: vec!["sh".into()],
                ..Default::default()
            },
            &crate::runtime::spec::SandboxPaths::host(),
            &[],
        );
        spec.process.apparmor_profile = Some("mkl-test".into());
        c.isolation = Some(crate::shim::Isolation {
            bundle: "/tmp/bundle".into(),
            rootfs: crate::shim::Rootfs::Host,
            spec,
        });
        let p = Prepared::new(&c).unwrap();
        assert_eq!(p.apparmor.as_deref(), Some(&b"exec mkl-test"[..]));
        assert_eq!(
            p.describe(&c, Step::AppArmor as u32, 1, libc::EACCES),
            "unable to apply apparmor profile \"mkl-test\": write \"exec mkl-test\" to /proc/self/attr/exec: Permission denied"
        );
        // No profile in the spec: nothing is written.
        assert_eq!(Prepared::new(&cfg(&["sh"], &[])).unwrap().apparmor, None);
    }
}
