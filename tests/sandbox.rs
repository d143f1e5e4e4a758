//! The pod sandbox as root (`minikubelet::sandbox`): namespaces pinned by bind mounts with no
//! process holding them, joined with util-linux's `nsenter` the way the container side will
//! `setns`; they outlive the manager that made them (a `kill -9` of the real agent:
//! tests/pod_sandbox.rs), are adopted again, and `remove` leaves no mount and no file. The node's own namespaces and hostname never change.
//! Every test removes its mounts also on failure (`Guard`).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use minikubelet::sandbox::{SandboxError, SandboxManager, SandboxOptions, dns};

/// Removes the sandbox and then anything still mounted under the test's root, on drop.
struct Guard {
    root: tempfile::TempDir,
    mgr: SandboxManager,
    uids: Vec<String>,
}

impl Guard {
    fn new(pod_network: bool) -> Guard {
        let root = tempfile::tempdir().unwrap();
        let resolv = root.path().join("node-resolv.conf");
        std::fs::write(&resolv, "nameserver 10.0.0.2\nsearch corp.example\n").unwrap();
        let mut opts = SandboxOptions::new(
            root.path(),
            dns::Configurer {
                cluster_dns: vec!["10.96.0.10".parse().unwrap()],
                cluster_domain: "cluster.local".into(),
                resolv_conf: Some(resolv),
                node_ips: vec![],
            },
        );
        opts.pod_network = pod_network;
        Guard {
            mgr: SandboxManager::new(opts),
            root,
            uids: Vec::new(),
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for uid in &self.uids {
            let _ = self.mgr.remove(uid);
        }
        for m in mounts_under(self.root.path()) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points in this mount namespace at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn pod(uid: &str, spec: serde_json::Value) -> Pod {
    let mut s = serde_json::json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": uid},
        "spec": s,
    }))
    .unwrap()
}

fn node_hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `nsenter <args> sh -c 'readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname'`.
fn nsenter(args: &[String]) -> Vec<String> {
    let out = Command::new("nsenter")
        .args(args)
        .args([
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; readlink /proc/self/ns/net; hostname",
        ])
        .output()
        .expect("nsenter (util-linux) must be installed for this test");
    assert!(
        out.status.success(),
        "nsenter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn own_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// No process on the node is in the namespace `link` (`uts:[4026...]`).
fn no_process_holds(link: &str, kind: &str) {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(l) = std::fs::read_link(e.path().join("ns").join(kind)) {
            assert_ne!(
                l.to_string_lossy(),
                link,
                "process {:?} holds the pod's namespace",
                e.file_name()
            );
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            }
        }
    }
    out
}

#[test]
fn sandbox_namespaces_are_the_pods_own_and_held_by_no_process() {
    let host = node_hostname();
    let (host_ipc, host_uts, host_net) = (own_ns("ipc"), own_ns("uts"), own_ns("net"));
    let mut g = Guard::new(false);
    g.uids.push("u1".into());
    let p = pod(
        "u1",
        serde_json::json!({"hostname": "db-0", "subdomain": "db"}),
    );
    let run = g.mgr.run_pod_sandbox(&p, &["10.0.0.5".into()]).unwrap();
    let paths = run.paths;
    let ipc = paths.namespaces.ipc.clone().expect("an IPC namespace");
    let uts = paths.namespaces.uts.clone().expect("a UTS namespace");
    assert_eq!(paths.namespaces.net, None, "pods keep the node's network");
    assert_eq!(ipc, g.root().join("pods/u1/sandbox/ns/ipc"));
    assert!(!paths.pid_holder_needed);

    let seen = nsenter(&[
        format!("--ipc={}", ipc.display()),
        format!("--uts={}", uts.display()),
    ]);
    assert_ne!(seen[0], host_ipc);
    assert_ne!(seen[1], host_uts);
    assert_eq!(seen[2], host_net, "the network stays the node's");
    assert_eq!(seen[3], "db-0");
    no_process_holds(&seen[0], "ipc");
    no_process_holds(&seen[1], "uts");
    // Each file is checked for its own kind.
    use minikubelet::sandbox::namespaces::{NsKind, check};
    check(NsKind::Uts, &uts).unwrap();
    let e = check(NsKind::Ipc, &uts).unwrap_err().to_string();
    assert!(e.contains("holds a namespace of type 0x4000000"), "{e}");

    // The files, with the kubelet's content and modes.
    let hosts = std::fs::read_to_string(&paths.hosts_file).unwrap();
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n"),
        "{hosts}"
    );
    assert!(
        hosts.contains("10.0.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n"),
        "{hosts}"
    );
    assert_eq!(
        std::fs::read_to_string(&paths.hostname_file).unwrap(),
        "db-0\n"
    );
    assert_eq!(
        std::fs::read_to_string(&paths.resolv_conf).unwrap(),
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [&paths.hosts_file, &paths.hostname_file, &paths.resolv_conf] {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    let sb = g.root().join("pods/u1/sandbox");
    assert_eq!(
        std::fs::metadata(&sb).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Idempotent: a second run keeps the same namespaces.
    let again = g.mgr.run_pod_sandbox(&p, &["10.0.0.5".into()]).unwrap();
    let seen2 = nsenter(&[format!("--uts={}", uts.display())]);
    assert_eq!(again.paths.namespaces, paths.namespaces);
    assert_eq!(seen2[1], seen[1]);

    // Remove: no mount and no file left.
    g.mgr.remove("u1").unwrap();
    assert_eq!(mounts_under(g.root()), Vec::<PathBuf>::new());
    assert!(
        !g.root().join("pods/u1").exists(),
        "{:?}",
        files_under(g.root())
    );
    g.mgr.remove("u1").unwrap();

    assert_eq!(node_hostname(), host, "the node's hostname changed");
    assert_eq!((own_ns("ipc"), own_ns("uts")), (host_ipc, host_uts));
}

/// The sandbox outlives the manager that made it (its namespaces are held by the bind mounts,
/// not by a process: the thread that unshared them is gone) and a new manager adopts it. That
/// it outlives `kill -9` of the real agent is checked in `tests/pod_sandbox.rs`.
#[test]
fn sandbox_outlives_its_maker_and_is_adopted() {
    let mut g = Guard::new(false);
    g.uids.push("u2".into());
    {
        let maker = SandboxManager::new(SandboxOptions::new(g.root(), dns::Configurer::default()));
        maker
            .run_pod_sandbox(&pod("u2", serde_json::json!({})), &["10.0.0.5".into()])
            .unwrap();
    }

    // A new manager (an agent restarted) adopts it; the namespace is still the pod's.
    let paths = g.mgr.adopt("u2").unwrap().expect("the sandbox is adopted");
    let uts = paths.namespaces.uts.clone().unwrap();
    let seen = nsenter(&[format!("--uts={}", uts.display())]);
    assert_eq!(seen[3], "web");
    assert_ne!(seen[1], own_ns("uts"));
    assert_eq!(g.mgr.list(), vec!["u2".to_string()]);
    g.mgr.remove("u2").unwrap();
    assert_eq!(mounts_under(g.root()), Vec::<PathBuf>::new());
    assert!(files_under(&g.root().join("pods")).is_empty());
    assert_eq!(g.mgr.adopt("u2").unwrap(), None);
}

#[test]
fn stale_namespace_files_are_cleaned_up() {
    let mut g = Guard::new(false);
    g.uids.push("u3".into());
    let paths = g
        .mgr
        .run_pod_sandbox(&pod("u3", serde_json::json!({})), &["10.0.0.5".into()])
        .unwrap()
        .paths;
    // As after a reboot: the bind mount is gone, a plain file stays.
    let uts = paths.namespaces.uts.unwrap();
    nix::mount::umount2(&uts, nix::mount::MntFlags::MNT_DETACH).unwrap();
    match g.mgr.adopt("u3") {
        Err(SandboxError::NotReady { reason, .. }) => {
            assert!(reason.contains("uts"), "{reason}")
        }
        other => panic!("adopted a stale sandbox: {other:?}"),
    }
    assert_eq!(mounts_under(g.root()), Vec::<PathBuf>::new());
    assert!(files_under(&g.root().join("pods")).is_empty());

    // An unfinished sandbox (no sandbox.json) with a plain file where a namespace would be.
    let ns = g.root().join("pods/u3/sandbox/ns");
    std::fs::create_dir_all(&ns).unwrap();
    std::fs::write(ns.join("ipc"), "").unwrap();
    assert_eq!(g.mgr.adopt("u3").unwrap(), None);
    assert!(files_under(&g.root().join("pods")).is_empty());
}

#[test]
fn host_namespaces_get_no_files_and_process_sharing_is_reported() {
    let host = node_hostname();
    let mut g = Guard::new(false);
    g.uids.extend(["h1".to_string(), "h2".to_string()]);
    let p = g
        .mgr
        .run_pod_sandbox(
            &pod(
                "h1",
                serde_json::json!({"hostIPC": true, "shareProcessNamespace": true}),
            ),
            &["10.0.0.5".into()],
        )
        .unwrap()
        .paths;
    assert_eq!(p.namespaces.ipc, None);
    assert!(p.namespaces.uts.is_some());
    assert!(!g.root().join("pods/h1/sandbox/ns/ipc").exists());
    assert!(p.pid_holder_needed);

    let p = g
        .mgr
        .run_pod_sandbox(
            &pod("h2", serde_json::json!({"hostNetwork": true, "hostPID": true, "shareProcessNamespace": true})),
            &["10.0.0.5".into()],
        )
        .unwrap()
        .paths;
    assert_eq!(
        p.namespaces.uts, None,
        "hostNetwork keeps the node's UTS namespace"
    );
    assert!(p.namespaces.ipc.is_some());
    assert_eq!(p.hostname, host);
    assert!(
        !p.pid_holder_needed,
        "hostPID: the node's PID namespace, no holder"
    );
    let hosts = std::fs::read_to_string(&p.hosts_file).unwrap();
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"),
        "{hosts}"
    );
    for uid in ["h1", "h2"] {
        g.mgr.remove(uid).unwrap();
    }
    assert_eq!(mounts_under(g.root()), Vec::<PathBuf>::new());
    assert!(files_under(&g.root().join("pods")).is_empty());
    assert_eq!(node_hostname(), host);
}

#[test]
fn a_failed_sandbox_leaves_nothing() {
    let g = Guard::new(false);
    let bad = pod("f1", serde_json::json!({"hostname": "Not_A_Label"}));
    let e = g.mgr.run_pod_sandbox(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("pod Hostname \"Not_A_Label\" is not a valid DNS label"),
        "{e}"
    );
    assert!(
        files_under(g.root())
            .iter()
            .all(|f| !f.starts_with(g.root().join("pods")))
    );
    assert!(matches!(
        g.mgr
            .run_pod_sandbox(&pod("../x", serde_json::json!({})), &[]),
        Err(SandboxError::UnsafeUid(_))
    ));
}

/// The network namespace's code path (off in the agent until pod networking): a pinned net
/// namespace that is not the node's.
#[test]
fn network_namespace_path_pins_a_new_network() {
    let host_net = own_ns("net");
    let mut g = Guard::new(true);
    g.uids.push("n1".into());
    let p = g
        .mgr
        .run_pod_sandbox(&pod("n1", serde_json::json!({})), &["10.0.0.5".into()])
        .unwrap()
        .paths;
    let net = p.namespaces.net.clone().expect("a network namespace");
    let seen = nsenter(&[format!("--net={}", net.display())]);
    assert_ne!(seen[2], host_net);
    assert_eq!(g.mgr.adopt("n1").unwrap().unwrap().namespaces, p.namespaces);
    g.mgr.remove("n1").unwrap();
    assert_eq!(mounts_under(g.root()), Vec::<PathBuf>::new());
    assert_eq!(own_ns("net"), host_net);
}
