//! Running one plugin binary: find it, give it its environment and stdin, read its stdout and
//! stderr within bounds and its exit within a deadline (libcni's `pkg/invoke`: `FindInPath`,
//! `Args.AsEnv`, `RawExec.ExecPlugin` and `pluginErr`).
//!
//! Where this differs from libcni, and why: the plugin gets only `PATH` of the agent's
//! environment (libcni passes all of `os.Environ()`; nothing of the agent's is the plugin's
//! business, and `PATH` is kept because plugins run `iptables`); it runs in a process group of
//! its own, killed whole when the call times out (libcni has no timeout of its own: it kills
//! the plugin alone when the caller's context ends); stdout is bounded (libcni reads it all);
//! and "text file busy" is not retried (libcni retries 5 times, one second apart, for a plugin
//! binary being replaced while it is run).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Deserialize;

/// Largest stdout read from a plugin: a result is a few hundred bytes to a few KiB; more is a
/// broken plugin, refused rather than held in memory and copied into the result cache.
pub const MAX_STDOUT_BYTES: usize = 1 << 20;

/// Stderr kept for an error message; the rest is read and dropped, so a chatty plugin never
/// blocks on a full pipe.
const MAX_STDERR_BYTES: usize = 16 << 10;

/// `PATH` for the plugin when the agent has none: where `iptables` and `ip` live on Debian.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a plugin call failed; [`super::CniError::Plugin`] adds the plugin and the verb.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// libcni's `FindInPath` wording.
    #[error("failed to find plugin {plugin:?} in path {dirs}")]
    NotFound { plugin: String, dirs: String },
    #[error("could not run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin did not finish within {after:?} and was killed (with its children)")]
    Timeout { after: Duration },
    #[error("plugin wrote more than {max} bytes to stdout and was killed")]
    StdoutTooLarge { max: usize },
    #[error("waiting for the plugin: {0}")]
    Wait(#[source] std::io::Error),
    /// The CNI error object the plugin printed (`{"code","msg","details"}`), shown as libcni's
    /// `types.Error` shows it: `msg; details`.
    #[error("{}", error_text(msg, details))]
    Failed {
        code: u32,
        msg: String,
        details: String,
        /// What it wrote to stderr (bounded), for the log.
        stderr: String,
    },
    /// libcni's `pluginErr` wordings for a plugin that failed without an error object.
    #[error("{}", no_object_text(stdout, stderr, status))]
    FailedNoObject {
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// It succeeded, but its output is not a result.
    #[error("invalid result: {0}")]
    BadResult(#[from] super::result::ResultError),
    /// VERSION printed something that is not a version report.
    #[error("invalid VERSION output {output:?}: {why}")]
    BadVersion { output: String, why: String },
}

fn error_text(msg: &str, details: &str) -> String {
    if details.is_empty() {
        msg.to_string()
    } else {
        format!("{msg}; {details}")
    }
}

fn no_object_text(stdout: &str, stderr: &str, status: &ExitStatus) -> String {
    if !stdout.is_empty() {
        format!("netplugin failed but error parsing its diagnostic message {stdout:?}: {status}")
    } else if stderr.is_empty() {
        format!("netplugin failed with no error message: {status}")
    } else {
        format!("netplugin failed: {stderr:?}: {status}")
    }
}

/// libcni's `types.Error`, as plugins print it on stdout when they fail.
#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// `<dir>/<plugin>` of the first dir that has it as an executable regular file (libcni's
/// `FindInPath`, which takes any file; a directory or a non-executable one would fail later
/// and less clearly).
pub fn find_plugin(plugin: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
    use std::os::unix::fs::PermissionsExt;
    for dir in bin_dirs {
        let path = dir.join(plugin);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(path);
        }
    }
    Err(PluginError::NotFound {
        plugin: plugin.to_string(),
        // Go's `%s` of a `[]string`: `[/opt/cni/bin /usr/lib/cni]`.
        dirs: format!(
            "[{}]",
            bin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    })
}

/// The environment of a call: `PATH`, then the `CNI_*` variables of `Args.AsEnv`.
pub(crate) fn plugin_env(
    command: &str,
    container_id: &str,
    netns: &Path,
    ifname: &str,
    args: &[(String, String)],
    bin_dirs: &[PathBuf],
) -> Vec<(String, String)> {
    let path = std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let cni_path = bin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let cni_args = args
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    vec![
        ("PATH".into(), path),
        ("CNI_COMMAND".into(), command.into()),
        ("CNI_CONTAINERID".into(), container_id.into()),
        ("CNI_NETNS".into(), netns.display().to_string()),
        ("CNI_ARGS".into(), cni_args),
        ("CNI_IFNAME".into(), ifname.into()),
        ("CNI_PATH".into(), cni_path),
    ]
}

/// Run `plugin` with `env` (and nothing else) and `stdin`; its stdout if it exits 0 within
/// `timeout`. A failure is parsed from the CNI error object on stdout, else described from
/// stderr and the exit status, as libcni's `pluginErr` does.
pub(crate) fn exec(
    plugin: &Path,
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, PluginError> {
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills the plugin and what it started (an
        // iptables waiting on the xtables lock) together.
        .process_group(0)
        .spawn()
        .map_err(|source| PluginError::Spawn {
            path: plugin.to_path_buf(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    let outcome = pump(&mut child, stdin, deadline);
    let (stdout, stderr) = match outcome {
        Ok(out) => out,
        Err(e) => {
            kill_group(&child);
            let _ = child.wait();
            return Err(match e {
                Pump::Timeout => PluginError::Timeout { after: timeout },
                Pump::TooLarge => PluginError::StdoutTooLarge {
                    max: MAX_STDOUT_BYTES,
                },
                Pump::Io(e) => PluginError::Wait(e),
            });
        }
    };
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(s)) => s,
        Ok(None) => {
            kill_group(&child);
            let _ = child.wait();
            return Err(PluginError::Timeout { after: timeout });
        }
        Err(e) => return Err(PluginError::Wait(e)),
    };
    if status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match serde_json::from_slice::<ErrorObject>(&stdout) {
        Ok(e) if !stdout.is_empty() => Err(PluginError::Failed {
            code: e.code,
            msg: e.msg,
            details: e.details,
            stderr,
        }),
        _ => Err(PluginError::FailedNoObject {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        }),
    }
}

enum Pump {
    Timeout,
    TooLarge,
    Io(std::io::Error),
}

/// Write `stdin` and read stdout and stderr to their ends, all in one `poll` loop bounded by
/// `deadline`, so that no pipe can block the call past it: a plugin that never reads its stdin
/// or never closes its stdout is a timeout, not a hang.
fn pump(child: &mut Child, stdin: &[u8], deadline: Instant) -> Result<(Vec<u8>, Vec<u8>), Pump> {
    let (Some(inp), Some(mut out), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Pump::Io(std::io::Error::other("plugin pipes missing")));
    };
    for fd in [inp.as_fd(), out.as_fd(), err.as_fd()] {
        set_nonblocking(fd).map_err(Pump::Io)?;
    }
    // Dropped (closed) once all of `stdin` is written: the plugin reads to EOF.
    let mut inp = (!stdin.is_empty()).then_some(inp);
    let (mut written, mut stdout, mut stderr) = (0, Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut buf = vec![0u8; 64 << 10];
    while out_open || err_open {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Pump::Timeout);
        }
        // Round up so a sub-millisecond rest does not spin with a 0 ms timeout.
        let ms = u32::try_from(left.as_millis() + 1).unwrap_or(u32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let (ready_in, ready_out, ready_err) = {
            let mut fds = Vec::with_capacity(3);
            let inp_idx = inp.as_ref().map(|i| {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLOUT));
                fds.len() - 1
            });
            let out_idx = out_open.then(|| {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let err_idx = err_open.then(|| {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Pump::Io(e.into())),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(inp_idx), ready(out_idx), ready(err_idx))
        };
        if ready_in && let Some(i) = inp.as_mut() {
            match i.write(&stdin[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The plugin closed its stdin (EPIPE): it has read what it wanted.
                Err(_) => written = stdin.len(),
            }
            if written == stdin.len() {
                inp = None;
            }
        }
        if ready_out {
            match out.read(&mut buf) {
                Ok(0) => out_open = false,
                Ok(n) => {
                    if stdout.len() + n > MAX_STDOUT_BYTES {
                        return Err(Pump::TooLarge);
                    }
                    stdout.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Pump::Io(e)),
            }
        }
        if ready_err {
            match err.read(&mut buf) {
                Ok(0) => err_open = false,
                Ok(n) => {
                    let keep = n.min(MAX_STDERR_BYTES.saturating_sub(stderr.len()));
                    stderr.extend_from_slice(&buf[..keep]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Pump::Io(e)),
            }
        }
    }
    Ok((stdout, stderr))
}

fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok(())
}

/// The exit status once the plugin has closed its pipes. It exits right after (its stdout
/// closes as it exits), so this checks at once and then in short, growing sleeps, until
/// `deadline`. `Ok(None)`: still running at the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut nap = Duration::from_micros(50);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(nap.min(left));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// SIGKILL to the plugin's process group (its pid: `process_group(0)` made it the leader).
fn kill_group(child: &Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn finds_executable_regular_files_in_dir_order() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(a.path().join("bridge")).unwrap();
        let p = a.path().join("portmap");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let want_bridge = script(b.path(), "bridge", "");
        let want_portmap = script(b.path(), "portmap", "");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_plugin("bridge", &dirs).unwrap(), want_bridge);
        assert_eq!(find_plugin("portmap", &dirs).unwrap(), want_portmap);
        let err = find_plugin("nope", &dirs).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "failed to find plugin \"nope\" in path [{} {}]",
                a.path().display(),
                b.path().display()
            )
        );
    }

    #[test]
    fn env_is_path_and_cni_only() {
        let env = plugin_env(
            "ADD",
            "abc",
            Path::new("/run/netns/x"),
            "eth0",
            &[("A".into(), "1".into()), ("B".into(), "2".into())],
            &[PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        );
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "PATH",
                "CNI_COMMAND",
                "CNI_CONTAINERID",
                "CNI_NETNS",
                "CNI_ARGS",
                "CNI_IFNAME",
                "CNI_PATH"
            ]
        );
        let get = |k: &str| env.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_ARGS"), Some("A=1;B=2"));
        assert_eq!(get("CNI_PATH"), Some("/opt/cni/bin:/usr/lib/cni"));
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/x"));
    }

    #[test]
    fn stdin_in_stdout_out_and_nothing_else_in_the_environment() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "echo", "env | sort > \"$OUT\"; cat");
        let out = d.path().join("env");
        let env = vec![
            ("OUT".to_string(), out.display().to_string()),
            ("CNI_COMMAND".to_string(), "ADD".to_string()),
        ];
        // Larger than a pipe's buffer, to go through the poll loop's partial writes.
        let stdin = vec![b'x'; 200 << 10];
        let got = exec(&p, &env, &stdin, Duration::from_secs(10)).unwrap();
        assert_eq!(got, stdin);
        let seen = std::fs::read_to_string(out).unwrap();
        let names: Vec<&str> = seen.lines().filter_map(|l| l.split('=').next()).collect();
        // `sh` adds PWD (and SHLVL on some shells) itself; nothing comes from this process.
        for n in &names {
            assert!(
                ["OUT", "CNI_COMMAND", "PWD", "SHLVL", "_"].contains(n),
                "{seen}"
            );
        }
    }

    #[test]
    fn a_cni_error_object_is_the_message() {
        let d = tempfile::tempdir().unwrap();
        let p = script(
            d.path(),
            "fail",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available","details":"range 10.88.0.0/30 is full"}'; echo oops >&2; exit 1"#,
        );
        let err = exec(&p, &[], b"{}", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IP addresses available; range 10.88.0.0/30 is full"
        );
        let PluginError::Failed { code, stderr, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((code, stderr.as_str()), (11, "oops\n"));
    }

    #[test]
    fn failures_without_an_object_say_what_libcni_says() {
        let d = tempfile::tempdir().unwrap();
        let silent = script(d.path(), "silent", "exit 3");
        let err = exec(&silent, &[], b"", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "netplugin failed with no error message: exit status: 3"
        );
        let stderr = script(d.path(), "stderr", "echo 'bad thing' >&2; exit 1");
        let err = exec(&stderr, &[], b"", Duration::from_secs(10)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("netplugin failed: \"bad thing\\n\""),
            "{err}"
        );
        let garbage = script(d.path(), "garbage", "echo 'not json'; exit 1");
        let err = exec(&garbage, &[], b"", Duration::from_secs(10)).unwrap_err();
        assert!(
            err.to_string()
                .contains("error parsing its diagnostic message"),
            "{err}"
        );
    }

    #[test]
    fn a_hanging_plugin_and_its_children_are_killed_at_the_deadline() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        // The plugin starts a child that holds stdout open, then hangs.
        let p = script(
            d.path(),
            "hang",
            &format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display()),
        );
        let t = Instant::now();
        let err = exec(&p, &[], b"{}", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, PluginError::Timeout { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The child was killed with the group (it may linger as a zombie of init for a moment).
        let gone = (0..100).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "));
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the plugin's child {pid} survived");
    }

    #[test]
    fn stdout_over_the_bound_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "big", "head -c 2097152 /dev/zero; sleep 30");
        let t = Instant::now();
        let err = exec(&p, &[], b"", Duration::from_secs(20)).unwrap_err();
        assert!(matches!(err, PluginError::StdoutTooLarge { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = exec(
            Path::new("/nonexistent/plugin"),
            &[],
            b"",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, PluginError::Spawn { .. }), "{err:?}");
    }
}
