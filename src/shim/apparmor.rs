//! AppArmor on the node: whether the kernel has it, which profiles it has loaded, loading the
//! runtime's default profile, and putting a container's process under a profile at its `execve`.
//!
//! Three programs split this work in a real node, and this module serves the two halves that
//! minikubelet plays: the runtime's (containerd's `pkg/apparmor`, `contrib/apparmor` and the CRI
//! plugin's `appArmorProfileExists`: a `Localhost` profile must be loaded, the default one is
//! generated and loaded with `apparmor_parser`) and the OCI runtime's (runc's
//! `libcontainer/apparmor`: the child writes `exec <profile>` to its own
//! `/proc/self/attr/apparmor/exec`, and the kernel switches it onto the profile when it execs
//! the container's command). It lives beside the shim, which executes it, so that the shim
//! depends on nothing of the runtime's (as `crate::shim::oci`).
//!
//! The kernel's interface is securityfs: `/sys/kernel/security/apparmor/profiles` lists the
//! loaded profiles, one a line, `name (mode)` (`namespace://name (mode)` for a namespaced one),
//! and a profile is loaded by writing its compiled form to `.replace`; `apparmor_parser`
//! compiles the text and does that write.
use std::ffi::CStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `apparmor_parser` may take to compile and load a profile. The default profile
/// takes tens of milliseconds; a parser stuck on a lock or a hung filesystem must not hold a
/// container's creation (and its pod worker) forever. Longer only delays the error.
const PARSER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the parser is looked at while it runs: well under its usual run time, and 100
/// wake-ups a second for the few milliseconds it runs.
const PARSER_POLL: Duration = Duration::from_millis(10);
/// The most of the parser's error output kept for the message.
const MAX_PARSER_STDERR: u64 = 64 * 1024;

/// Where securityfs shows AppArmor (runc's and the kubelet's `IsEnabled` look for it).
pub const APPARMOR_FS: &str = "/sys/kernel/security/apparmor";
/// The kernel's list of loaded profiles.
pub const PROFILES: &str = "/sys/kernel/security/apparmor/profiles";
/// The module parameter that says whether AppArmor is on (`Y`).
const ENABLED_PARAMETER: &str = "/sys/module/apparmor/parameters/enabled";

/// The name of minikubelet's default profile, what `RuntimeDefault` (and, as with containerd, a
/// container that names no profile) runs under. containerd's is `cri-containerd.apparmor.d`;
/// ours has its own name because its text is ours ([`RUNTIME_DEFAULT_PROFILE`]), and a node
/// that also runs containerd keeps both apart.
pub const RUNTIME_DEFAULT_NAME: &str = "minikubelet-default";

/// minikubelet's default profile, written for this project with the intent of Docker's and
/// containerd's default (`docker-default`, `cri-containerd.apparmor.d`): everything a
/// container ordinarily does (files, network, the capabilities its bounding set leaves it) is
/// allowed; mounting is denied even with `CAP_SYS_ADMIN`; the kernel's knobs and secrets under
/// `/proc` and `/sys` cannot be written (nor the worst read); signals come from the node's
/// unconfined processes (the shim, the agent) and from containers of the same profile, and
/// ptrace stays among those. Shorter than containerd's (no `/proc/sys/kernel/shm*` exception:
/// `/proc/sys` is read-only in an unprivileged container anyway; no includes, so that it
/// compiles on a node without AppArmor's abstractions); docs/security-context.md.
pub const RUNTIME_DEFAULT_PROFILE: &str = "\
profile minikubelet-default flags=(attach_disconnected,mediate_deleted) {
  file,
  network,
  capability,
  umount,
  signal (receive) peer=unconfined,
  signal (send,receive) peer=minikubelet-default,
  ptrace (trace,read,tracedby,readby) peer=minikubelet-default,

  deny mount,
  deny pivot_root,

  deny /proc/* wl,
  deny /proc/sys/** wl,
  deny /proc/sysrq-trigger rwlkx,
  deny /proc/kcore rwlkx,
  deny /proc/kmsg rwlkx,

  deny /sys/** wl,
  deny /sys/firmware/** rwlkx,
  deny /sys/kernel/security/** rwlkx,
  deny /sys/devices/virtual/powercap/** rwlkx,
}
";

/// Whether the kernel has AppArmor on: securityfs shows it and the module's `enabled`
/// parameter is `Y` (runc's `IsEnabled`, which the kubelet's admit handler calls). Read at each
/// call (a stat and a one-line read, microseconds), so a node where securityfs is mounted after
/// the agent started is seen.
pub fn enabled() -> bool {
    Path::new(APPARMOR_FS).is_dir()
        && std::fs::read(ENABLED_PARAMETER).is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// Whether `profiles` (the text of [`PROFILES`]) lists a profile called `name`, in any mode:
/// a line `name (enforce)`, as containerd's `appArmorProfileExists` matches it.
pub fn listed(profiles: &str, name: &str) -> bool {
    !name.is_empty()
        && profiles.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(" ("))
        })
}

/// Why a profile could not be looked up or loaded.
#[derive(Debug, thiserror::Error)]
pub enum AppArmorError {
    /// The kernel's list of profiles could not be read.
    #[error("read {path}: {source}")]
    Profiles {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `apparmor_parser` could not be run, or refused the profile.
    #[error("load apparmor profile {name} with {parser}: {message}")]
    Load {
        name: String,
        parser: PathBuf,
        message: String,
    },
}

/// Whether the kernel has loaded the profile `name` ([`listed`] in [`PROFILES`]).
pub fn is_loaded(name: &str) -> Result<bool, AppArmorError> {
    let text = std::fs::read_to_string(PROFILES).map_err(|source| AppArmorError::Profiles {
        path: PROFILES.into(),
        source,
    })?;
    Ok(listed(&text, name))
}

/// `apparmor_parser`, where Debian and Ubuntu install it (containerd and the kubelet look for
/// `/sbin/apparmor_parser`; on a merged-`/usr` system that is `/usr/sbin`).
pub fn parser() -> Option<PathBuf> {
    ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Compiles `text` (the profile `name`) with `parser` and loads it into the kernel, replacing a
/// loaded one of that name (containerd's `apparmor_parser -Kr`: `-K` skips the parser's cache,
/// `-r` replaces). The text goes in on stdin: no file to clean up.
pub fn load(parser: &Path, name: &str, text: &str) -> Result<(), AppArmorError> {
    let err = |message: String| AppArmorError::Load {
        name: name.to_string(),
        parser: parser.to_path_buf(),
        message,
    };
    let mut child = Command::new(parser)
        .arg("-Kr")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("run: {e}")))?;
    // Its error output is read beside it, so that a chatty parser never blocks on a full pipe.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut said = String::new();
        if let Some(e) = stderr {
            let _ = e.take(MAX_PARSER_STDERR).read_to_string(&mut said);
        }
        said
    });
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(text.as_bytes())
    {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err(format!("write the profile to its stdin: {e}")));
    }
    let deadline = Instant::now() + PARSER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(PARSER_POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("did not finish in {PARSER_TIMEOUT:?}; killed")));
            }
            Err(e) => return Err(err(format!("wait: {e}"))),
        }
    };
    let said = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(err(format!("parser error({:?}): {status}", said.trim())));
    }
    tracing::info!(profile = name, parser = %parser.display(), "apparmor profile loaded");
    Ok(())
}

/// The attribute files a process writes to change its profile at its next `execve`: the
/// AppArmor-specific one (kernels from 5.8, beside other LSMs' own), else the older shared one
/// (runc's `setProcAttr` falls back the same way).
pub const EXEC_ATTRS: [&CStr; 2] = [c"/proc/self/attr/apparmor/exec", c"/proc/self/attr/exec"];

/// What the child writes to one of [`EXEC_ATTRS`]: `exec <profile>` (libapparmor's
/// `aa_change_onexec`), prepared before `fork`.
pub fn change_onexec_command(profile: &str) -> Vec<u8> {
    format!("exec {profile}").into_bytes()
}

/// Asks the kernel to put this process under the profile of `command` (from
/// [`change_onexec_command`]) when it next execs. Async-signal-safe (open, write, close on
/// memory prepared before `fork`): the shim's child and the exec child call it after they have
/// entered the container's root, so `/proc` is the container's. On failure, the index in
/// [`EXEC_ATTRS`] of the file tried last and the errno.
///
/// # Safety
/// Only async-signal-safe calls; safe to call between `fork` and `execve`.
pub unsafe fn change_onexec(command: &[u8]) -> Result<(), (usize, i32)> {
    let mut last = (0, libc::ENOENT);
    for (i, attr) in EXEC_ATTRS.iter().enumerate() {
        // SAFETY: open/write/close on a static path and a live buffer.
        unsafe {
            let fd = libc::open(attr.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                let e = *libc::__errno_location();
                last = (i, e);
                // Only a missing file sends us to the older one, as with runc.
                if e == libc::ENOENT {
                    continue;
                }
                return Err(last);
            }
            let n = libc::write(fd, command.as_ptr().cast(), command.len());
            let e = *libc::__errno_location();
            libc::close(fd);
            if n < 0 {
                return Err((i, e));
            }
            return Ok(());
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `profiles` file as a node with snaps and containerd shows it.
    const PROFILES_TEXT: &str = "\
snap.lxd.hook.install (enforce)
cri-containerd.apparmor.d (enforce)
minikubelet-default (enforce)
mkl-test (complain)
lxd-c1_</var/snap/lxd/common/lxd>://unconfined (enforce)
/usr/bin/man (enforce)
";

    /// `load` feeds the profile on stdin and reports the parser's complaint and status.
    #[test]
    fn a_parser_that_refuses_is_reported_with_its_words() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("apparmor_parser");
        std::fs::write(
            &fake,
            "#!/bin/sh\nwc -c >&2\necho 'syntax error' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = load(&fake, "p", "profile p {}\n").unwrap_err().to_string();
        assert!(e.contains("13") && e.contains("syntax error"), "{e}");
    }

    #[test]
    fn profiles_are_found_by_their_whole_name() {
        assert!(listed(PROFILES_TEXT, "minikubelet-default"));
        assert!(listed(PROFILES_TEXT, "mkl-test"), "complain mode counts");
        assert!(listed(PROFILES_TEXT, "/usr/bin/man"));
        assert!(listed(
            PROFILES_TEXT,
            "lxd-c1_</var/snap/lxd/common/lxd>://unconfined"
        ));
        // A prefix of a loaded name, a name with more after it, or nothing, is not loaded.
        assert!(!listed(PROFILES_TEXT, "mkl"));
        assert!(!listed(PROFILES_TEXT, "minikubelet-default (enforce)"));
        assert!(!listed(PROFILES_TEXT, "missing"));
        assert!(!listed(PROFILES_TEXT, ""));
        assert!(!listed("", "mkl-test"));
    }

    #[test]
    fn the_exec_attribute_asks_for_the_profile_at_exec() {
        assert_eq!(change_onexec_command("mkl-test"), b"exec mkl-test");
    }

    /// The default profile compiles (`apparmor_parser -Q`: parse and compile, load nothing),
    /// where the parser is installed; it needs no AppArmor in the kernel.
    #[test]
    fn the_runtime_default_profile_compiles() {
        let Some(parser) = parser() else {
            println!("skipped: no apparmor_parser on this machine");
            return;
        };
        let mut child = Command::new(&parser)
            .args(["-Q", "-S"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(RUNTIME_DEFAULT_PROFILE.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(RUNTIME_DEFAULT_PROFILE.starts_with(&format!("profile {RUNTIME_DEFAULT_NAME} ")));
    }
}
