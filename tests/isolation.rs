//! The container's isolation with the real shim (as root): an overlay rootfs built from
//! `/bin/busybox` in two layers, or the node's filesystem; what the container sees from inside
//! (PID 1, namespaces, mounts, masked and read-only paths, hostname, capabilities, ids), PID 1
//! taking its children with it, a symlinked mount target, and exec into the container.
//!
//! Cleanup: every mount is made inside the container's own mount namespace, so it goes with the
//! container; containers (PID 1 of their namespace: killing it ends the rest) and namespace
//! holders are killed by guards, also when a test fails.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minikubelet::runtime::spec::{self, BindMount, PidNamespace, SandboxPaths};
use minikubelet::shim::{self, Rootfs};

mod common;
use common::isolated::*;

#[test]
fn isolated_container_sees_its_own_root_pid_and_mounts() {
    let layers = Layers::new();
    let holder = Holder::new();
    let mut p = process(&format!("{FACTS}\necho written > /written"));
    p.uid = Some(0);
    let sandbox = SandboxPaths {
        uts: Some(holder.ns("uts")),
        ipc: Some(holder.ns("ipc")),
        hostname: Some("web-0".into()),
        ..Default::default()
    };
    let spec = spec::container_spec(&p, &sandbox, &[]);
    let out = run(isolation(spec, layers.rootfs()));
    assert_eq!(value(&out, "pid="), "1", "{out}");
    assert_ne!(value(&out, "mnt="), host_ns("mnt"));
    assert_ne!(value(&out, "pidns="), host_ns("pid"));
    assert_eq!(
        value(&out, "net="),
        host_ns("net"),
        "no net path: the node's"
    );
    let holder_ns = |k: &str| {
        std::fs::read_link(holder.ns(k))
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(value(&out, "uts="), holder_ns("uts"));
    assert_eq!(value(&out, "ipc="), holder_ns("ipc"));
    assert_eq!(value(&out, "hostname="), "web-0");
    assert_eq!(value(&out, "layer="), "top", "the top layer wins");
    assert_eq!(value(&out, "CapEff="), default_caps_mask());
    assert_eq!(value(&out, "CapPrm="), default_caps_mask());
    assert_eq!(value(&out, "CapBnd="), default_caps_mask());
    assert_eq!(value(&out, "NoNewPrivs="), "0");
    assert_eq!(value(&out, "kcore="), "0", "masked: /dev/null");
    assert_eq!(value(&out, "firmware="), "0", "masked: empty tmpfs");
    assert_eq!(value(&out, "sys="), "ro");
    assert_eq!(value(&out, "sysrq="), "ro");
    assert_eq!(value(&out, "devices="), "ok");
    assert_eq!(value(&out, "procs="), "1", "only PID 1 in its /proc");
    // The container's write went to its own upper layer.
    assert_eq!(
        std::fs::read_to_string(layers.upper.join("written")).unwrap(),
        "written\n"
    );
    let mounts: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mnt: "))
        .collect();
    let mount_of = |point: &str| {
        mounts
            .iter()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no mount at {point} in\n{}", mounts.join("\n")))
    };
    assert!(
        mount_of("/").contains(" - overlay overlay "),
        "{}",
        mount_of("/")
    );
    for (point, fs) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/shm", "tmpfs"),
        ("/sys", "sysfs"),
    ] {
        assert!(
            mount_of(point).contains(&format!(" - {fs} ")),
            "{point}: {}",
            mount_of(point)
        );
    }
    assert!(
        mount_of("/sys")
            .split(' ')
            .nth(5)
            .unwrap()
            .starts_with("ro")
    );
    assert!(mount_of("/dev/shm").contains("size=65536k"));
    assert!(
        mount_of("/sys/fs/cgroup")
            .split(' ')
            .nth(5)
            .unwrap()
            .starts_with("ro")
    );
}

#[test]
fn bundle_config_is_the_spec() {
    let layers = Layers::new();
    let spec = spec::container_spec(&process("true"), &SandboxPaths::host(), &[]);
    let (c, res) = Container::start(isolation(spec.clone(), layers.rootfs()));
    res.unwrap();
    c.wait_exit();
    let path = c.state_dir.join(shim::BUNDLE_DIR).join("config.json");
    let written: minikubelet::runtime::oci::Spec =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, spec);
}

#[test]
fn identity_and_no_new_privileges() {
    let layers = Layers::new();
    let mut p = process(FACTS);
    p.uid = Some(1000);
    p.gid = Some(1001);
    p.supplemental_groups = vec![2000, 2001];
    p.no_new_privileges = true;
    let spec = spec::container_spec(&p, &SandboxPaths::host(), &[]);
    let out = run(isolation(spec, layers.rootfs()));
    assert_eq!(
        value(&out, "Uid="),
        "1000\t1000\t1000\t1000".replace('\t', "")
    );
    assert_eq!(value(&out, "Gid="), "1001100110011001");
    assert_eq!(value(&out, "Groups="), "2000 2001");
    assert_eq!(value(&out, "NoNewPrivs="), "1");
    // As under runc: the sets survive setuid (keep-caps), but the exec of a non-root user
    // without ambient capabilities leaves none permitted or effective; the bounding set stays.
    assert_eq!(value(&out, "CapEff="), "0000000000000000");
    assert_eq!(value(&out, "CapPrm="), "0000000000000000");
    assert_eq!(value(&out, "CapBnd="), default_caps_mask());
    assert_eq!(
        value(&out, "hostname="),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
}

#[test]
fn host_filesystem_sees_the_nodes_files_with_its_own_proc_and_pid_1() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("marker");
    std::fs::write(&marker, "node file\n").unwrap();
    // The node's /bin/sh and tools.
    let script = format!("{FACTS}\necho marker=$(cat {})", marker.display());
    let p = process(&script);
    let spec = spec::container_spec(&p, &SandboxPaths::host(), &[]);
    let before = std::fs::read_dir(marker_dir.path()).unwrap().count();
    let out = run(isolation(spec, Rootfs::Host));
    assert_eq!(value(&out, "marker="), "node file");
    assert_eq!(value(&out, "pid="), "1");
    assert_eq!(value(&out, "procs="), "1");
    assert_ne!(value(&out, "mnt="), host_ns("mnt"));
    assert_eq!(value(&out, "kcore="), "0");
    assert_eq!(value(&out, "sys="), "ro");
    assert_eq!(
        std::fs::read_dir(marker_dir.path()).unwrap().count(),
        before
    );
}

/// Processes whose cmdline contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[test]
fn pid_1_exiting_ends_its_children() {
    let layers = Layers::new();
    // A child in its own session and process group: the shim's group kill would miss it.
    let secs = 700_000 + std::process::id() % 10_000;
    let script = format!("setsid sleep {secs} & sleep 0.3; exit 0");
    let spec = spec::container_spec(&process(&script), &SandboxPaths::host(), &[]);
    let (c, res) = Container::start(isolation(spec, layers.rootfs()));
    res.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while processes_with(&format!("sleep\0{secs}")).is_empty() {
        assert!(Instant::now() < until, "the child never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c.wait_exit().exit_code, 0);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&format!("sleep\0{secs}"));
        if left.is_empty() {
            break;
        }
        if Instant::now() > until {
            for pid in &left {
                // SAFETY: kill(2) of the leftover this test started.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            panic!("children outlived PID 1: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_symlinked_mount_target_cannot_leave_the_rootfs() {
    let layers = Layers::new();
    let outside = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("marker"), "bound\n").unwrap();
    // In the image: /data -> <outside> (absolute: a naive join would follow it onto the
    // node's directory) and /rel -> ../../../../<outside>.
    let bottom = &layers.lower[1];
    let outside_rel = outside.path().strip_prefix("/").unwrap();
    std::fs::create_dir_all(bottom.join(outside_rel)).unwrap();
    std::os::unix::fs::symlink(outside.path(), bottom.join("data")).unwrap();
    let outside2 = tempfile::tempdir().unwrap();
    let outside2_rel = outside2.path().strip_prefix("/").unwrap();
    std::fs::create_dir_all(bottom.join(outside2_rel)).unwrap();
    let rel = format!("../../../../../..{}", outside2.path().display());
    std::os::unix::fs::symlink(&rel, bottom.join("rel")).unwrap();
    let binds = ["/data", "/rel/sub"].map(|dest| BindMount {
        host_path: source.path().to_path_buf(),
        container_path: dest.into(),
        read_only: true,
        propagation: Default::default(),
    });
    let script = "cat /data/marker; cat /rel/sub/marker; grep -c \" $(readlink /data) \" /proc/self/mountinfo";
    let spec = spec::container_spec(&process(script), &SandboxPaths::host(), &binds);
    let out = run(isolation(spec, layers.rootfs()));
    assert_eq!(
        out.lines().take(2).collect::<Vec<_>>(),
        ["bound", "bound"],
        "{out}"
    );
    // The node's directory was never mounted on nor written to; the targets were made in
    // the container's own layer.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(outside2.path()).unwrap().count(), 0);
    let inside = layers.upper.join(outside2_rel);
    assert!(inside.join("sub").is_dir(), "{}", inside.display());
    // A dangling symlink is refused rather than followed out (runc would create its target
    // inside the root: see docs/isolation.md).
    std::os::unix::fs::symlink("/nowhere/at/all", bottom.join("dangling")).unwrap();
    let bind = BindMount {
        host_path: source.path().to_path_buf(),
        container_path: "/dangling".into(),
        read_only: true,
        propagation: Default::default(),
    };
    let spec = spec::container_spec(&process("true"), &SandboxPaths::host(), &[bind]);
    let (_c, res) = Container::start(isolation(spec, layers.rootfs()));
    let err = res.unwrap_err().to_string();
    assert!(err.contains("resolve mount target \"/dangling\""), "{err}");
    assert!(!std::path::Path::new("/nowhere").exists());
}

#[test]
fn a_failed_isolation_step_is_a_start_error() {
    let layers = Layers::new();
    let mut spec = spec::container_spec(&process("true"), &SandboxPaths::host(), &[]);
    spec.linux
        .namespaces
        .push(minikubelet::runtime::oci::Namespace {
            kind: "network".into(),
            path: Some("/nonexistent/ns/net".into()),
        });
    let (_c, res) = Container::start(isolation(spec.clone(), layers.rootfs()));
    let err = res.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ns/net"), "{err}");
    spec.linux.namespaces.pop();
    let missing = Rootfs::Overlay {
        lower: vec![layers.dir.path().join("no-such-layer")],
        upper: layers.upper.clone(),
        work: layers.work.clone(),
    };
    let (_c, res) = Container::start(isolation(spec.clone(), missing));
    let err = res.unwrap_err().to_string();
    assert!(err.contains("mount overlay rootfs"), "{err}");
    spec.process.args = vec!["/no/such/binary".into()];
    let (_c, res) = Container::start(isolation(spec, layers.rootfs()));
    let err = res.unwrap_err().to_string();
    assert!(err.contains("/no/such/binary"), "{err}");
}

#[test]
fn shared_pid_namespace_is_joined() {
    let layers = Layers::new();
    // The shim's pause mode: PID 1 of a new PID namespace that sleeps and reaps.
    let ns_pid = shim::start_pid_holder(common::shim_binary()).unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) of the holder this test started (a no-op once it is gone).
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let holder = Kill(ns_pid);
    let status = std::fs::read_to_string(format!("/proc/{ns_pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")),
        "the holder is PID 1 of its namespace: {status}"
    );
    let ns_path = PathBuf::from(format!("/proc/{ns_pid}/ns/pid"));
    let sandbox = SandboxPaths {
        pid: PidNamespace::Pod(ns_path.clone()),
        ..Default::default()
    };
    let spec = spec::container_spec(&process(FACTS), &sandbox, &[]);
    let out = run(isolation(spec, layers.rootfs()));
    assert_eq!(
        value(&out, "pidns="),
        std::fs::read_link(&ns_path).unwrap().display().to_string()
    );
    assert_ne!(value(&out, "pid="), "1", "the holder is PID 1");
    assert_eq!(value(&out, "procs="), "2", "the holder and the container");
    // SIGTERM ends the holder (it is init's child now: gone, or a zombie until init reaps).
    // SAFETY: kill(2) of the holder this test started.
    unsafe { libc::kill(ns_pid, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{ns_pid}/status"))
        .is_ok_and(|s| !s.contains("State:\tZ"))
    {
        assert!(Instant::now() < until, "the holder ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_enters_the_containers_namespaces_and_root() {
    use minikubelet::runtime::exec::{container_exec_context, exec_sync};
    let layers = Layers::new();
    let mut p = process("exec sleep 600");
    p.cwd = Some("/etc".into());
    let spec = spec::container_spec(&p, &SandboxPaths::host(), &[]);
    let (c, res) = Container::start(isolation(spec, layers.rootfs()));
    let st = res.unwrap();
    let ctx = container_exec_context(&c.state_dir).unwrap();
    assert_eq!(ctx.isolation.as_ref().map(|i| i.pid), Some(st.pid));
    let script = r#"echo pid=$$
echo mnt=$(readlink /proc/self/ns/mnt)
echo pidns=$(readlink /proc/self/ns/pid)
echo layer=$(cat /etc/layer)
echo one=$(tr '\0' ' ' < /proc/1/cmdline)
echo cwd=$(pwd)
grep -E '^(CapEff|CapBnd):' /proc/self/status | tr -d '\t' | sed 's/:/=/'"#;
    let argv: Vec<String> = ["sh", "-c", script].map(String::from).to_vec();
    let out = exec_sync(&ctx, &argv, Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.output).to_string();
    assert_eq!(out.exit_code, 0, "{text}");
    let container_ns = |k: &str| {
        std::fs::read_link(format!("/proc/{}/ns/{k}", st.pid))
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(value(&text, "mnt="), container_ns("mnt"), "{text}");
    assert_eq!(value(&text, "pidns="), container_ns("pid"));
    assert_ne!(value(&text, "pid="), "1");
    assert_eq!(value(&text, "layer="), "top", "the container's rootfs");
    assert_eq!(value(&text, "one="), "sleep 600", "its PID 1");
    assert_eq!(value(&text, "cwd="), "/etc");
    assert_eq!(value(&text, "CapEff="), default_caps_mask());
    assert_eq!(value(&text, "CapBnd="), default_caps_mask());
    // Exit codes pass through the intermediate process; a missing program is an error.
    let argv: Vec<String> = ["sh", "-c", "exit 7"].map(String::from).to_vec();
    let out = exec_sync(&ctx, &argv, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
    let argv = vec!["/no/such/program".to_string()];
    assert!(
        exec_sync(&ctx, &argv, Duration::from_secs(10))
            .await
            .is_err()
    );
    // A timeout kills the command inside the container too.
    let argv: Vec<String> = ["sleep", "654321"].map(String::from).to_vec();
    let err = exec_sync(&ctx, &argv, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(processes_with("sleep\x00654321").is_empty());
}

#[test]
fn a_host_filesystem_pod_runs_isolated_through_the_agent() {
    const T: Duration = Duration::from_secs(30);
    let a = common::Agent::start(&[]);
    a.write_manifest(
        "iso.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: iso\n  annotations: {minikubelet.io/host-filesystem: \"true\"}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'echo pid=$$$$; echo mnt=$(readlink /proc/self/ns/mnt); exec sleep 3600']}\n",
    );
    a.wait_running("iso", "c", T);
    let pod = a.pod("iso").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = a.wait_for("the container's output", T, |a| {
        let (code, body) =
            common::http_get(a.port, &format!("/containerLogs/default/{pod}/c")).unwrap();
        (code == 200 && body.contains("mnt=")).then_some(body)
    });
    assert_eq!(value(&logs, "pid="), "1", "{logs}");
    assert_ne!(value(&logs, "mnt="), host_ns("mnt"));
    a.remove_manifest("iso.yaml");
    a.wait_for("iso removed", T, |a| a.pod("iso").is_none().then_some(()));
}
