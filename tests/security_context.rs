//! The security context end to end (as root), looked at from inside the container: the user
//! and groups (`id`), the capability sets, `NoNewPrivs` (`/proc/self/status`), a write to `/`,
//! the ownership of an `emptyDir` under `fsGroup`, and what `kubectl exec` gets. Settings
//! minikubelet does not enforce refuse the pod; a check that fails leaves the container in
//! `CreateContainerConfigError`; the other pods run on.
//!
//! Cleanup: the agent and every process in its test cgroup are killed on drop
//! (`common::Agent`).
mod common;

use std::time::Duration;

use common::{Agent, container_status};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// containerd's 14 default capabilities as the kernel's mask (`CapBnd` of a default container).
const DEFAULT_CAPS: &str = "00000000a80425fb";

/// What a container prints about itself, then it sleeps.
const REPORT: &str = "id; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status; \
    if touch /rootfs-write 2>/dev/null; then echo root=rw; else echo root=ro; fi; \
    grep -c ' /proc/keys ' /proc/self/mountinfo | sed 's/^/keys-masked=/'; \
    grep ' /sys ' /proc/self/mountinfo | grep -q ' /sys rw' && echo sys=rw || echo sys=ro; \
    if mknod /tmp/kmsg c 1 11 2>/dev/null; then \
      if true < /tmp/kmsg 2>/dev/null; then echo dev=open; else echo dev=refused; fi; \
    else echo dev=nomknod; fi; \
    [ -c /dev/kmsg ] && echo hostdev=yes || echo hostdev=no; \
    echo done; while :; do sleep 1; done";

fn logs_of(a: &Agent, pod: &Value, container: &str) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    a.wait_for(&format!("{container}'s report"), T, |a| {
        let text = a.get(&format!("/containerLogs/default/{name}/{container}"))?;
        text.contains("done").then_some(text)
    })
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn kubectl(a: &Agent, args: &[&str]) -> String {
    common::kubectl_stdout(a, args, T)
}

/// The issue's restricted pod (non-root, every capability dropped, no privilege escalation, a
/// read-only root) beside a default container and a privileged one; the device cgroup keeps a
/// default container from a node it makes (`/dev/kmsg`'s numbers), the privileged one has the
/// node's devices.
#[test]
fn each_container_gets_the_security_context_it_asks_for() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "sc.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sc}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{fsGroup: 2000, supplementalGroups: [3000]}}
  volumes:
  - {{name: data, emptyDir: {{}}}}
  containers:
  - name: restricted
    image: localhost/busybox:test
    command: [sh, -c, "{REPORT}"]
    volumeMounts: [{{name: data, mountPath: /data}}, {{name: data, mountPath: /part, subPath: part}}]
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      runAsGroup: 1000
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
  - name: default
    image: localhost/busybox:test
    command: [sh, -c, "{REPORT}"]
  - name: tuned
    image: localhost/busybox:test
    command: [sh, -c, "{REPORT}"]
    securityContext:
      capabilities: {{add: [sys_time], drop: [NET_RAW, mknod]}}
  - name: privileged
    image: localhost/busybox:test
    command: [sh, -c, "{REPORT}"]
    securityContext: {{privileged: true}}
"#
        ),
    );
    a.wait_running("sc", "privileged", T);
    let pod = a.pod("sc").unwrap();

    let r = logs_of(&a, &pod, "restricted");
    // supplementalGroups and fsGroup (the kernel keeps them sorted).
    assert!(r.contains("uid=1000 gid=1000 groups=1000,2000,3000"), "{r}");
    assert_eq!(line(&r, "CapBnd:"), "0000000000000000", "{r}");
    assert_eq!(line(&r, "CapEff:"), "0000000000000000", "{r}");
    assert_eq!(line(&r, "NoNewPrivs:"), "1", "{r}");
    assert!(r.contains("root=ro"), "{r}");
    assert!(r.contains("keys-masked=1"), "{r}");
    assert!(r.contains("dev=nomknod") && r.contains("hostdev=no"), "{r}");

    let d = logs_of(&a, &pod, "default");
    // The image's /etc/group lists root in wheel: merged (supplementalGroupsPolicy Merge).
    assert!(
        d.contains("uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
        "{d}"
    );
    assert_eq!(line(&d, "CapBnd:"), DEFAULT_CAPS, "{d}");
    assert_eq!(line(&d, "CapEff:"), DEFAULT_CAPS, "{d}");
    assert_eq!(line(&d, "NoNewPrivs:"), "0", "{d}");
    assert!(d.contains("root=rw") && d.contains("sys=ro"), "{d}");
    // CAP_MKNOD makes the node, the device cgroup keeps it closed (runc's allowlist).
    assert!(d.contains("dev=refused") && d.contains("hostdev=no"), "{d}");

    // + SYS_TIME (25), - NET_RAW (13), - MKNOD (27): 0xa80425fb + 0x2000000 - 0x2000 - 0x8000000
    let t = logs_of(&a, &pod, "tuned");
    assert_eq!(line(&t, "CapEff:"), "00000000a20405fb", "{t}");

    let p = logs_of(&a, &pod, "privileged");
    // Every capability the agent has (containerd's `cap.Current()`): the test's own set.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = line(&status, "CapBnd:").to_string();
    assert_eq!(line(&p, "CapBnd:"), all, "{p}");
    assert_eq!(line(&p, "CapEff:"), all, "{p}");
    assert!(p.contains("keys-masked=0") && p.contains("sys=rw"), "{p}");
    // Every device: the node's own in /dev, and any it makes.
    assert!(p.contains("dev=open") && p.contains("hostdev=yes"), "{p}");

    // fsGroup: the emptyDir belongs to group 2000 with the setgid bit; what the non-root
    // container writes there inherits the group.
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let dir = a
        .root_dir
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir/data");
    let meta = std::fs::metadata(&dir).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid(), 2000);
    assert_eq!(meta.mode() & 0o7777, 0o2777, "{:o}", meta.mode());

    // kubectl exec runs with the container's user, capabilities and no_new_privs.
    let name = pod["metadata"]["name"].as_str().unwrap();
    let out = kubectl(
        &a,
        &[
            "exec",
            name,
            "-c",
            "restricted",
            "--",
            "sh",
            "-c",
            "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /part/from-exec && stat -c %g /part/from-exec && touch /data/from-exec && stat -c %g /data/from-exec",
        ],
    );
    assert!(out.starts_with("1000\n"), "{out}");
    assert_eq!(line(&out, "CapEff:"), "0000000000000000", "{out}");
    assert_eq!(line(&out, "NoNewPrivs:"), "1", "{out}");
    // A subPath the agent made is as writable as the volume, and keeps its group.
    assert!(out.trim_end().ends_with("2000\n2000"), "{out}");
}

/// A setting minikubelet does not enforce refuses the pod at admission; runAsNonRoot against an
/// image that runs as root and an unknown capability name stop the container with
/// `CreateContainerConfigError`, in the kubelet's words; a pod beside them runs.
#[test]
fn what_cannot_be_enforced_is_refused_with_the_reason() {
    let a = Agent::start(&[]);
    let pod = |name: &str, sc: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, 'while :; do sleep 1; done']\n    securityContext: {sc}\n"
        )
    };
    a.write_manifest("ok.yaml", &pod("ok", "{runAsUser: 1000}"));
    a.write_manifest(
        "apparmor.yaml",
        &pod("apparmor", "{appArmorProfile: {type: RuntimeDefault}}"),
    );
    a.write_manifest("nonroot.yaml", &pod("nonroot", "{runAsNonRoot: true}"));
    a.write_manifest(
        "badcap.yaml",
        &pod("badcap", "{capabilities: {add: [CAP_NET_ADMIN]}}"),
    );
    // The kubelet's AppArmor admit handler, in its words where the kernel has no AppArmor;
    // where it has, the profile is applied (`apparmor_profiles_where_the_kernel_has_them`).
    if apparmor_off_because().is_some() {
        let refused = a.wait_for("apparmor refused", T, |a| {
            a.pod("apparmor")
                .filter(|p| p["status"]["phase"] == "Failed")
        });
        assert_eq!(refused["status"]["reason"], "AppArmor");
        assert_eq!(
            refused["status"]["message"].as_str().unwrap(),
            "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host"
        );
    }
    let waiting = |name: &str| {
        a.wait_for(&format!("{name} config error"), T, |a| {
            let p = a.pod(name)?;
            let w = container_status(&p, "c")?["state"]["waiting"].clone();
            (w["reason"] == "CreateContainerConfigError").then_some((p, w))
        })
    };
    let (p, w) = waiting("nonroot");
    assert_eq!(
        w["message"].as_str().unwrap(),
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"{}_default({})\", container: c)",
            p["metadata"]["name"].as_str().unwrap(),
            p["metadata"]["uid"].as_str().unwrap()
        )
    );
    let (_, w) = waiting("badcap");
    let m = w["message"].as_str().unwrap();
    assert!(
        m.contains("unknown capability \"CAP_NET_ADMIN\" (as CAP_CAP_NET_ADMIN)")
            && m.contains("without the CAP_ prefix"),
        "{m}"
    );
    a.wait_running("ok", "c", T);
}

/// `supplementalGroupsPolicy: Strict`: only the pod's groups, not the image's memberships of
/// the user (root in wheel in the test image).
#[test]
fn strict_supplemental_groups_leave_out_the_images_memberships() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "strict.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: strict}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {supplementalGroupsPolicy: Strict, supplementalGroups: [3000]}\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, 'id; echo done; while :; do sleep 1; done']\n",
    );
    a.wait_running("strict", "c", T);
    let pod = a.pod("strict").unwrap();
    let out = logs_of(&a, &pod, "c");
    assert!(
        out.contains("uid=0(root) gid=0(root) groups=0(root),3000"),
        "{out}"
    );
}

/// Pod sysctls: the safe `kernel.shm_rmid_forced` and an unsafe one allowed by
/// `--allowed-unsafe-sysctls` are written in the pod's own IPC namespace (the node's values do
/// not change); one not allowlisted, and every `net.*` one while pods share the node's network,
/// refuse the pod with the kubelet's `SysctlForbidden`.
#[test]
fn sysctls_in_the_pods_namespace_or_refused() {
    let node_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let node_msgmax = std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap();
    let a = Agent::start(&["--allowed-unsafe-sysctls=kernel.msg*"]);
    let pod = |name: &str, sysctls: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {{sysctls: {sysctls}}}\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, 'echo shm=$(cat /proc/sys/kernel/shm_rmid_forced) msgmax=$(cat /proc/sys/kernel/msgmax); echo done; while :; do sleep 1; done']\n"
        )
    };
    a.write_manifest(
        "ipc.yaml",
        &pod(
            "ipc",
            "[{name: kernel.shm_rmid_forced, value: '1'}, {name: kernel/msgmax, value: '12345'}]",
        ),
    );
    a.write_manifest(
        "net.yaml",
        &pod("net", "[{name: net.ipv4.tcp_syncookies, value: '0'}]"),
    );
    a.write_manifest(
        "sem.yaml",
        &pod("sem", "[{name: kernel.sem, value: '1 2 3 4'}]"),
    );
    a.wait_running("ipc", "c", T);
    let p = a.pod("ipc").unwrap();
    let out = logs_of(&a, &p, "c");
    assert!(out.starts_with("shm=1 msgmax=12345\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        node_shm
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap(),
        node_msgmax
    );
    for (name, msg) in [
        (
            "net",
            "Pod was rejected: forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled",
        ),
        (
            "sem",
            "Pod was rejected: forbidden sysctl: \"kernel.sem\" not allowlisted",
        ),
    ] {
        let p = a.wait_for(&format!("{name} refused"), T, |a| {
            a.pod(name).filter(|p| p["status"]["phase"] == "Failed")
        });
        assert_eq!(p["status"]["reason"], "SysctlForbidden");
        let m = p["status"]["message"].as_str().unwrap();
        assert!(m.starts_with(msg), "{m}");
    }
}

/// `seccompProfile: RuntimeDefault`: the container runs under a filter (`Seccomp: 2`) that
/// refuses what the profile blocks (a user namespace, which needs no capability otherwise),
/// unless a capability unlocks it (`SYS_ADMIN` lets `unshare` through); a container without a
/// profile is unconfined, as with the kubelet's `seccompDefault: false`; `kubectl exec` gets the
/// container's filter too.
#[test]
fn runtime_default_seccomp_refuses_what_it_blocks() {
    let a = Agent::start(&[]);
    let probe = "grep -E '^Seccomp:' /proc/self/status; if unshare -U true 2>/dev/null; then echo unshare=ok; else echo unshare=refused; fi; echo done; while :; do sleep 1; done";
    a.write_manifest(
        "sc.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: seccomp}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: confined
    image: localhost/busybox:test
    command: [sh, -c, "{probe}"]
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
  - name: unlocked
    image: localhost/busybox:test
    command: [sh, -c, "{probe}"]
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}, capabilities: {{add: [SYS_ADMIN]}}}}
  - name: unconfined
    image: localhost/busybox:test
    command: [sh, -c, "{probe}"]
"#
        ),
    );
    a.wait_running("seccomp", "unconfined", T);
    let pod = a.pod("seccomp").unwrap();
    let confined = logs_of(&a, &pod, "confined");
    assert_eq!(line(&confined, "Seccomp:"), "2", "{confined}");
    assert!(confined.contains("unshare=refused"), "{confined}");
    let unlocked = logs_of(&a, &pod, "unlocked");
    assert_eq!(line(&unlocked, "Seccomp:"), "2", "{unlocked}");
    assert!(unlocked.contains("unshare=ok"), "{unlocked}");
    let free = logs_of(&a, &pod, "unconfined");
    assert_eq!(line(&free, "Seccomp:"), "0", "{free}");
    let name = pod["metadata"]["name"].as_str().unwrap();
    let out = kubectl(
        &a,
        &[
            "exec",
            name,
            "-c",
            "confined",
            "--",
            "sh",
            "-c",
            "grep -E '^Seccomp:' /proc/self/status; unshare -U true || echo refused",
        ],
    );
    assert_eq!(line(&out, "Seccomp:"), "2", "{out}");
    assert!(out.contains("refused"), "{out}");
}

/// `seccompProfile: Localhost` profiles from `<root-dir>/seccomp/`, in runc's format: a profile
/// that logs (`SCMP_ACT_LOG`), one with an errno of its own for `mkdir` and a kill for `sync`
/// (the container sees `EACCES`, and a shell running `sync` dies of `SIGSYS`); `kubectl exec`
/// gets the same filter. A profile that does not exist is the container's `CreateContainerError`
/// with containerd's message, and once the file is there the container starts (tried again
/// every 10 s, as the kubelet's pod worker does). A pod beside it runs throughout.
#[test]
fn localhost_seccomp_profiles_from_the_root_dir() {
    let a = Agent::start(&[]);
    let profiles = a.root_dir.join("seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("audit.json"),
        r#"{"defaultAction": "SCMP_ACT_LOG"}"#,
    )
    .unwrap();
    std::fs::write(
        profiles.join("fine.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
              {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
              {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"},
              {"names": ["not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let probe = "grep -E '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>&1 | sed 's/^/mkdir: /'; sh -c sync; echo sync=$?; echo done; while :; do sleep 1; done";
    let container = |name: &str, file: &str| {
        format!(
            "  - name: {name}\n    image: localhost/busybox:test\n    command: [sh, -c, \"{probe}\"]\n    securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: {file}}}}}\n"
        )
    };
    a.write_manifest(
        "local.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: local}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{}{}",
            container("audit", "profiles/audit.json"),
            container("fine", "profiles/fine.json"),
        ),
    );
    a.write_manifest(
        "missing.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: missing}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{}",
            container("c", "profiles/later.json"),
        ),
    );
    a.wait_running("local", "fine", T);
    let pod = a.pod("local").unwrap();
    let audit = logs_of(&a, &pod, "audit");
    assert_eq!(line(&audit, "Seccomp:"), "2", "{audit}");
    assert!(audit.contains("sync=0"), "{audit}");
    assert!(!audit.contains("mkdir: "), "{audit}");
    let fine = logs_of(&a, &pod, "fine");
    assert_eq!(line(&fine, "Seccomp:"), "2", "{fine}");
    assert!(fine.contains("Permission denied"), "{fine}");
    // 128 + SIGSYS.
    assert!(fine.contains("sync=159"), "{fine}");
    let name = pod["metadata"]["name"].as_str().unwrap();
    let out = kubectl(
        &a,
        &[
            "exec",
            name,
            "-c",
            "fine",
            "--",
            "sh",
            "-c",
            "mkdir /tmp/e || echo refused",
        ],
    );
    assert!(out.contains("refused"), "{out}");

    let w = a.wait_for("missing profile", T, |a| {
        let p = a.pod("missing")?;
        let w = container_status(&p, "c")?["state"]["waiting"].clone();
        (w["reason"] == "CreateContainerError").then_some(w)
    });
    let path = a.root_dir.join("seccomp/profiles/later.json");
    assert_eq!(
        w["message"].as_str().unwrap(),
        format!(
            "failed to generate seccomp spec opts: cannot load seccomp profile {path:?}: No such file or directory (os error 2)"
        )
    );
    std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
    a.wait_running("missing", "c", Duration::from_secs(30));
    a.wait_running("local", "audit", T);
}

/// The kubelet's `seccompDefault`: a container whose pod names no profile runs under
/// `RuntimeDefault`; one that asks for `Unconfined` does not.
#[test]
fn seccomp_default_confines_containers_without_a_profile() {
    let a = Agent::start(&["--seccomp-default"]);
    let probe = "grep -E '^Seccomp:' /proc/self/status; echo done; while :; do sleep 1; done";
    a.write_manifest(
        "d.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: d}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: plain
    image: localhost/busybox:test
    command: [sh, -c, "{probe}"]
  - name: unconfined
    image: localhost/busybox:test
    command: [sh, -c, "{probe}"]
    securityContext: {{seccompProfile: {{type: Unconfined}}}}
"#
        ),
    );
    a.wait_running("d", "unconfined", T);
    let pod = a.pod("d").unwrap();
    assert_eq!(line(&logs_of(&a, &pod, "plain"), "Seccomp:"), "2");
    assert_eq!(line(&logs_of(&a, &pod, "unconfined"), "Seccomp:"), "0");
}

/// Why the kernel's AppArmor cannot be used here, if it cannot (runc's and the kubelet's
/// `IsEnabled`: securityfs shows it and the module's `enabled` parameter is `Y`).
fn apparmor_off_because() -> Option<&'static str> {
    let on = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    if !on {
        Some("the kernel has no AppArmor on")
    } else if !std::path::Path::new("/sys/kernel/security/apparmor").is_dir() {
        Some("securityfs does not show AppArmor (/sys/kernel/security/apparmor)")
    } else {
        None
    }
}

/// The profiles this test loaded, removed again (`apparmor_parser -R`) when it ends, also on
/// failure; the default profile only if it was not loaded before.
struct LoadedProfiles {
    parser: std::path::PathBuf,
    texts: Vec<String>,
}

impl LoadedProfiles {
    fn load(&mut self, text: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new(&self.parser)
            .arg("-Kr")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run apparmor_parser");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        self.texts.push(text.to_string());
        assert!(child.wait().unwrap().success(), "apparmor_parser -r");
    }
}

impl Drop for LoadedProfiles {
    fn drop(&mut self) {
        use std::io::Write;
        for text in &self.texts {
            let Ok(mut child) = std::process::Command::new(&self.parser)
                .arg("-R")
                .stdin(std::process::Stdio::piped())
                .spawn()
            else {
                continue;
            };
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text.as_bytes());
            }
            let _ = child.wait();
        }
    }
}

fn apparmor_loaded(name: &str) -> bool {
    std::fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .is_ok_and(|t| t.lines().any(|l| l.starts_with(&format!("{name} ("))))
}

/// AppArmor where the kernel has it (skipped, with the reason, where it has not or
/// `apparmor_parser` is missing): a `Localhost` profile the kernel has loaded is the
/// container's (`attr/current`) and refuses what it denies, and `kubectl exec` runs under it
/// too; `RuntimeDefault` runs under minikubelet's default profile, loaded with
/// `apparmor_parser`; a privileged container gets no default profile; a `Localhost` profile
/// that is not loaded is the container's `CreateContainerError` in containerd's words, until it
/// is loaded (tried again every 10 s).
#[test]
fn apparmor_profiles_where_the_kernel_has_them() {
    if let Some(why) = apparmor_off_because() {
        println!("skipped: {why}");
        return;
    }
    let Some(parser) = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
    else {
        println!(
            "skipped: no apparmor_parser to load the test's profile (Debian's apparmor package)"
        );
        return;
    };
    let profile = |name: &str| {
        format!(
            "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  network,\n  capability,\n  signal,\n  ptrace,\n  unix,\n  umount,\n  deny /tmp/aa-denied w,\n}}\n"
        )
    };
    let default_was_loaded = apparmor_loaded("minikubelet-default");
    let mut loaded = LoadedProfiles {
        parser: parser.clone(),
        texts: vec![],
    };
    loaded.load(&profile("mkl-it-test"));
    let a = Agent::start(&[]);
    if !default_was_loaded {
        // What the agent loads for RuntimeDefault goes again at the end: `-R` needs only the name.
        loaded
            .texts
            .push("profile minikubelet-default {}\n".to_string());
    }
    let probe = "echo current=$(cat /proc/self/attr/apparmor/current 2>/dev/null || cat /proc/self/attr/current); if touch /tmp/aa-denied 2>/dev/null; then echo denied=written; else echo denied=refused; fi; echo done; while :; do sleep 1; done";
    let container = |name: &str, sc: &str| {
        format!(
            "  - name: {name}\n    image: localhost/busybox:test\n    command: [sh, -c, \"{probe}\"]\n    securityContext: {sc}\n"
        )
    };
    a.write_manifest(
        "aa.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: aa}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{}{}{}",
            container(
                "local",
                "{appArmorProfile: {type: Localhost, localhostProfile: mkl-it-test}}"
            ),
            container("default", "{appArmorProfile: {type: RuntimeDefault}}"),
            container(
                "privileged",
                "{privileged: true, appArmorProfile: {type: RuntimeDefault}}"
            ),
        ),
    );
    a.write_manifest(
        "later.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: later}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{}",
            container(
                "c",
                "{appArmorProfile: {type: Localhost, localhostProfile: mkl-it-later}}"
            ),
        ),
    );
    a.wait_running("aa", "privileged", T);
    let pod = a.pod("aa").unwrap();
    let local = logs_of(&a, &pod, "local");
    assert!(local.contains("current=mkl-it-test (enforce)"), "{local}");
    assert!(local.contains("denied=refused"), "{local}");
    let default = logs_of(&a, &pod, "default");
    assert!(
        default.contains("current=minikubelet-default (enforce)"),
        "{default}"
    );
    let privileged = logs_of(&a, &pod, "privileged");
    assert!(privileged.contains("current=unconfined"), "{privileged}");
    assert!(privileged.contains("denied=written"), "{privileged}");
    let name = pod["metadata"]["name"].as_str().unwrap();
    let out = kubectl(
        &a,
        &[
            "exec",
            name,
            "-c",
            "local",
            "--",
            "cat",
            "/proc/self/attr/current",
        ],
    );
    assert_eq!(out.trim(), "mkl-it-test (enforce)", "{out}");

    let w = a.wait_for("profile not loaded", T, |a| {
        let p = a.pod("later")?;
        let w = container_status(&p, "c")?["state"]["waiting"].clone();
        (w["reason"] == "CreateContainerError").then_some(w)
    });
    assert_eq!(
        w["message"].as_str().unwrap(),
        "failed to generate apparmor spec opts: apparmor profile not found mkl-it-later"
    );
    loaded.load(&profile("mkl-it-later"));
    a.wait_running("later", "c", Duration::from_secs(30));
    a.wait_running("aa", "local", T);
}
