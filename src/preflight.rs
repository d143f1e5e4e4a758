//! `minikubelet check`: the agent's start-up checks printed as a report, each failure with its
//! exact fix.
//!
//! Mirrors the checks the kubelet makes while it starts (`NewContainerManager`: swap, cgroup
//! controllers; `validateSystemRequirements`), gathered in one place so a learner can see what a
//! node needs before it runs a pod.

/// `println!` that ignores a closed stdout (`minikubelet check | head -1` must not panic).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::cgroup::{CgroupFs, Layout};
use crate::config::Config;

struct Report {
    ok: bool,
}

impl Report {
    fn line(&mut self, pass: bool, what: &str, detail: &str, fix: Option<&str>) {
        let tag = if pass { "ok  " } else { "FAIL" };
        say!("[{tag}] {what}: {detail}");
        if !pass {
            self.ok = false;
            if let Some(fix) = fix {
                say!("       fix: {fix}");
            }
        }
    }
    fn info(&self, what: &str, detail: &str) {
        say!("[info] {what}: {detail}");
    }
}

/// Print the report; true when every check passed.
pub fn report(config: &Config) -> bool {
    let mut r = Report { ok: true };
    let proc_root = Path::new("/proc");

    r.line(
        nix::unistd::geteuid().is_root(),
        "privileges",
        if nix::unistd::geteuid().is_root() { "running as root" } else { "not root" },
        Some("run minikubelet as root (sudo): it creates cgroups and starts processes as other users"),
    );

    match crate::config::swap::swap_on(proc_root) {
        Ok(false) => r.line(true, "swap", "off", None),
        Ok(true) if !config.fail_swap_on => r.info(
            "swap",
            "on, allowed by --fail-swap-on=false (failSwapOn: false)",
        ),
        Ok(true) => r.line(
            false,
            "swap",
            crate::config::swap::SWAP_ON_ERROR,
            Some(
                "swapoff -a (and remove swap from /etc/fstab), or start with --fail-swap-on=false",
            ),
        ),
        Err(e) => r.line(false, "swap", &e.to_string(), None),
    }

    match CgroupFs::detect() {
        Err(e) => r.line(
            false,
            "cgroups",
            &e.to_string(),
            Some("mount the cgroup filesystem at /sys/fs/cgroup (cgroup2, or the v1 controllers cpu, memory, pids, freezer)"),
        ),
        Ok(fs) => {
            let f = fs.features();
            let layout = match f.layout {
                Layout::V1 => "cgroup v1",
                Layout::Hybrid => "hybrid (v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified): treated as v1",
                Layout::V2 => "cgroup v2 (unified)",
            };
            r.info("cgroup layout", layout);
            for h in &f.hierarchies {
                let ctrls: Vec<String> = h.controllers.iter().map(|c| c.to_string()).collect();
                r.info(
                    &format!("cgroup {}", ctrls.join(",")),
                    &format!(
                        "mounted at {}, this process in {}, available [{}], enabled [{}]",
                        h.mount_point.display(),
                        h.own.display(),
                        h.available.join(" "),
                        h.enabled.join(" ")
                    ),
                );
            }
            r.line(
                f.missing_controllers.is_empty(),
                "cgroup controllers",
                &if f.missing_controllers.is_empty() {
                    "cpu, memory, pids available".to_string()
                } else {
                    format!("missing: {:?}", f.missing_controllers)
                },
                Some("enable the missing controllers (v1: mount them; v2: add them to the parent's cgroup.subtree_control, or set Delegate=yes in the systemd unit)"),
            );
            let kill = if f.layout.is_v2() {
                if f.has_cgroup_kill {
                    "cgroup.kill (kernel >= 5.14): a pod's processes are killed in one write"
                } else {
                    "no cgroup.kill (kernel < 5.14): freeze, SIGKILL every process, thaw"
                }
            } else {
                "cgroup v1: freeze (freezer controller), SIGKILL every process, thaw"
            };
            r.info("kill method", kill);
        }
    }

    r.line(
        crate::pleg::pidfd_supported(),
        "pidfd",
        if crate::pleg::pidfd_supported() {
            "pidfd_open available: container exits are events, nothing polls"
        } else {
            "pidfd_open unavailable (kernel < 5.3): exits are found by polling /proc every 100 ms"
        },
        None,
    );
    if let Ok(exe) = std::env::current_exe() {
        let shim = crate::shim::shim_exe(&exe);
        let detail = if shim != exe {
            format!("{} (its own small binary)", shim.display())
        } else {
            format!(
                "{} shim (no {} beside the agent: each container start execs the whole agent)",
                exe.display(),
                crate::shim::SHIM_BINARY
            )
        };
        r.info("shim binary", &detail);
    }
    r.info(
        "clone3",
        "not used: each container joins its cgroup from a pre-exec write of its pid into cgroup.procs, which works on v1 and v2 alike",
    );

    match &config.static_pod_path {
        None => r.info(
            "manifest path",
            "none set (--pod-manifest-path): no pods will run",
        ),
        Some(p) => match std::fs::metadata(p) {
            Err(_) => r.info(
                "manifest path",
                &format!(
                    "{} does not exist yet; it is picked up when it appears",
                    p.display()
                ),
            ),
            Ok(m) => {
                let insecure = m.uid() != 0 || m.mode() & 0o022 != 0;
                let detail = format!(
                    "{} owner uid {} mode {:o}",
                    p.display(),
                    m.uid(),
                    m.mode() & 0o7777
                );
                let fix = format!(
                    "chown root: {0} && chmod go-w {0} (or --allow-insecure-manifest-path)",
                    p.display()
                );
                r.line(
                    !insecure || config.allow_insecure_manifest_path,
                    "manifest path",
                    &detail,
                    Some(&fix),
                );
            }
        },
    }
    let addr = std::net::SocketAddr::new(config.address, config.port);
    match crate::server::auth::Security::from_config(config) {
        Ok(sec) => {
            let scheme = if sec.tls.is_some() { "https" } else { "http" };
            let a = &sec.authn;
            let authn = format!(
                "requests must authenticate, loopback too (admin token of {}, client certificates: {}, tokens: {}, anonymous: {})",
                config.root_dir.join("kubeconfig").display(),
                if a.client_certificates { "yes" } else { "no" },
                a.tokens.as_ref().map_or(0, |t| t.len()),
                if a.anonymous {
                    "ALLOWED: anyone who can connect may exec as root into every container"
                } else {
                    "refused"
                },
            );
            r.line(
                true,
                "kubelet API",
                &format!("{scheme}://{addr}, {authn}"),
                None,
            );
        }
        Err(e) => r.line(false, "kubelet API", &e.to_string(), None),
    }
    match (config.authorization_mode, &config.authorization_policy_path) {
        (crate::config::AuthorizationMode::Rbac, Some(p)) => {
            match crate::server::authz::policy::load(p) {
                Ok((policy, _)) => r.line(
                    true,
                    "authorization",
                    &format!(
                        "RBAC from {}: {} roles, {} cluster roles, {} bindings",
                        p.display(),
                        policy.roles.len(),
                        policy.cluster_roles.len(),
                        policy.role_bindings.len() + policy.cluster_role_bindings.len()
                    ),
                    None,
                ),
                Err(e) => r.line(false, "authorization", &e.to_string(), None),
            }
        }
        (mode, _) => r.line(
            true,
            "authorization",
            &format!("{mode} (docs/authorization.md)"),
            None,
        ),
    }
    say!(
        "{}",
        if r.ok {
            "all checks passed"
        } else {
            "some checks failed"
        }
    );
    r.ok
}
