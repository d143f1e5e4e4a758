//! Pods annotated `minikubelet.io/host-filesystem: "true"` get a real pod sandbox through the
//! agent (as root): their containers are PID 1 of their own PID namespace with their own mount
//! namespace, join the pod's pinned IPC and UTS namespaces (the pod's hostname) and the node's
//! network, and see the kubelet-managed `/etc/hosts`; `kubectl exec` and exec probes run inside;
//! the sandbox survives a kill -9 of the agent and is adopted; removing the pod removes every
//! mount and file; `shareProcessNamespace` joins one PID namespace; with the deprecated
//! `ImageRootfs=false` a pod gets no namespaces.
//!
//! Cleanup: containers and PID holders run in the test's cgroup, which the `Agent` guard kills;
//! the guard also unmounts whatever is left under the agent's directories (pinned namespaces
//! outlive a killed agent), also when a test fails.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::Agent;
use common::isolated::{host_ns, value};

const T: Duration = Duration::from_secs(30);

/// The container: reports what it sees, marks its own `/dev/shm`, then waits (a trap, since
/// SIGTERM to a PID 1 without a handler is ignored).
const REPORT: &str = "echo pid=$$$$; echo mnt=$(readlink /proc/self/ns/mnt); echo ipc=$(readlink /proc/self/ns/ipc); echo uts=$(readlink /proc/self/ns/uts); echo net=$(readlink /proc/self/ns/net); echo hostname=$$(hostname); echo hosts=$$(head -n 1 /etc/hosts); touch /dev/shm/mkl-sandbox-ready; echo done=1; trap \"exit 0\" TERM; while :; do sleep 1; done";

fn manifest(name: &str, annotated: bool, spec: &str, containers: &str) -> String {
    let annotations = if annotated {
        "  annotations: {minikubelet.io/host-filesystem: \"true\"}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotations}spec:\n  terminationGracePeriodSeconds: 2\n{spec}  containers:\n{containers}"
    )
}

fn meta(a: &Agent, name: &str, field: &str) -> String {
    a.pod(name).unwrap()["metadata"][field]
        .as_str()
        .unwrap()
        .to_string()
}

/// The container's log once it contains `needle`.
fn logs_with(a: &Agent, pod: &str, container: &str, needle: &str) -> String {
    a.wait_for(&format!("{container}'s output with {needle}"), T, |a| {
        let (code, body) =
            common::http_get(a.port, &format!("/containerLogs/default/{pod}/{container}"))?;
        (code == 200 && body.contains(needle)).then_some(body)
    })
}

/// `ipc:[<inode>]`, as `/proc/<pid>/ns/ipc` reads, of a pinned namespace file.
fn pinned(path: &Path, kind: &str) -> String {
    let ino = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino();
    format!("{kind}:[{ino}]")
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn kubectl(a: &Agent, args: &[&str]) -> String {
    common::kubectl_stdout(a, args, T)
}

/// The pods' PID holders (`shim --pause`) among the agent's processes.
fn pid_holders(a: &Agent) -> Vec<i32> {
    a.cgroup
        .pids()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"--pause"))
        })
        .collect()
}

/// Removes the pod's manifest and waits until it is gone with every mount under the root dir.
fn remove_and_check_clean(a: &Agent, name: &str) {
    a.remove_manifest(&format!("{name}.yaml"));
    a.wait_for(&format!("{name} removed"), T, |a| {
        a.pod(name).is_none().then_some(())
    });
    a.wait_for("the sandbox's mounts gone", T, |a| {
        mounts_under(&a.root_dir).is_empty().then_some(())
    });
}

fn kubectl_exec(a: &Agent, pod: &str, script: &str) -> String {
    kubectl(a, &["exec", pod, "-c", "c", "--", "sh", "-c", script])
}

#[test]
fn a_host_filesystem_pod_runs_in_its_sandbox_and_keeps_it_across_a_restart() {
    let mut a = Agent::start(&[]);
    let container = format!(
        "  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, '{REPORT}']\n    readinessProbe:\n      exec: {{command: [test, -f, /dev/shm/mkl-sandbox-ready]}}\n      periodSeconds: 1\n"
    );
    a.write_manifest(
        "sb.yaml",
        &manifest("sb", true, "  hostname: box\n", &container),
    );
    a.wait_running("sb", "c", T);
    let pod = meta(&a, "sb", "name");
    let uid = meta(&a, "sb", "uid");
    let ns_dir = a.root_dir.join("pods").join(&uid).join("sandbox/ns");
    let out = logs_with(&a, &pod, "c", "done=1");

    assert_eq!(value(&out, "pid="), "1", "{out}");
    assert_ne!(value(&out, "mnt="), host_ns("mnt"), "{out}");
    for kind in ["ipc", "uts"] {
        let seen = value(&out, &format!("{kind}="));
        assert_ne!(seen, host_ns(kind), "{kind}: {out}");
        assert_eq!(seen, pinned(&ns_dir.join(kind), kind), "{kind}: {out}");
    }
    assert_eq!(value(&out, "net="), host_ns("net"), "{out}");
    assert!(!ns_dir.join("net").exists(), "pods keep the node's network");
    assert_eq!(value(&out, "hostname="), "box", "{out}");
    assert_eq!(
        value(&out, "hosts="),
        "# Kubernetes-managed hosts file.",
        "{out}"
    );
    // The exec probe runs inside: the file exists only in the container's own /dev/shm.
    assert!(!Path::new("/dev/shm/mkl-sandbox-ready").exists());
    a.wait_for("the exec probe to pass inside the container", T, |a| {
        let p = a.pod("sb")?;
        (common::container_status(&p, "c")?["ready"] == true).then_some(())
    });
    let events = kubectl(&a, &["get", "events"]);
    assert!(
        events.contains("HostFilesystem") && events.contains(&format!("pod/{pod}")),
        "{events}"
    );
    assert!(a.log_contains("neither pulled nor used"));

    // kubectl exec enters the same namespaces.
    let script = "echo hostname=$(hostname); echo uts=$(readlink /proc/self/ns/uts); echo mnt=$(readlink /proc/self/ns/mnt); echo shm=$(ls /dev/shm)";
    let ex = kubectl_exec(&a, &pod, script);
    assert_eq!(value(&ex, "hostname="), "box", "{ex}");
    assert_eq!(value(&ex, "uts="), value(&out, "uts="), "{ex}");
    assert_eq!(value(&ex, "mnt="), value(&out, "mnt="), "{ex}");
    assert_eq!(value(&ex, "shm="), "mkl-sandbox-ready", "{ex}");

    // kill -9 of the agent: the container and its sandbox stay; the new agent adopts them.
    let id_before =
        common::container_status(&a.pod("sb").unwrap(), "c").unwrap()["containerID"].clone();
    let uts_before = pinned(&ns_dir.join("uts"), "uts");
    a.kill9();
    a.spawn();
    a.wait_running("sb", "c", T);
    let id_after =
        common::container_status(&a.pod("sb").unwrap(), "c").unwrap()["containerID"].clone();
    assert_eq!(id_before, id_after, "the container was not re-adopted");
    assert_eq!(pinned(&ns_dir.join("uts"), "uts"), uts_before);
    let ex = kubectl_exec(&a, &pod, script);
    assert_eq!(value(&ex, "uts="), value(&out, "uts="), "{ex}");

    // Removing the pod removes its namespaces, files and mounts.
    remove_and_check_clean(&a, "sb");
    assert!(!a.root_dir.join("pods").join(&uid).join("sandbox").exists());
}

#[test]
fn share_process_namespace_joins_one_pid_namespace() {
    let a = Agent::start(&[]);
    let wait = "trap \"exit 0\" TERM; while :; do sleep 1; done";
    let containers = format!(
        "  - name: a\n    image: localhost/busybox:test\n    command: [sh, -c, '{wait}', mkl-marker-a]\n  - name: b\n    image: localhost/busybox:test\n    command: [sh, -c, 'sleep 1; echo pid=$$$$; for f in /proc/[0-9]*/cmdline; do tr \"\\0\" \" \" < $$f; echo; done; echo done=1; {wait}']\n"
    );
    a.write_manifest(
        "share.yaml",
        &manifest(
            "share",
            true,
            "  shareProcessNamespace: true\n",
            &containers,
        ),
    );
    a.wait_running("share", "b", T);
    let pod = meta(&a, "share", "name");
    let out = logs_with(&a, &pod, "b", "done=1");
    assert!(out.contains("mkl-marker-a"), "b does not see a: {out}");
    assert_ne!(value(&out, "pid="), "1", "PID 1 is the pod's holder: {out}");
    assert_eq!(pid_holders(&a).len(), 1, "one PID holder for the pod");
    remove_and_check_clean(&a, "share");
    a.wait_for("the PID holder gone", T, |a| {
        pid_holders(a).is_empty().then_some(())
    });
}

#[test]
fn with_the_gate_off_a_pod_gets_no_namespaces() {
    // The deprecated mode: containers as processes on the node, in its namespaces.
    let a = Agent::start(&["--feature-gates=ImageRootfs=false"]);
    // Without the marker file: the node's /dev/shm is this container's.
    let report = REPORT.replace("touch /dev/shm/mkl-sandbox-ready; ", "");
    let container = format!(
        "  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, '{report}']\n"
    );
    a.write_manifest("plain.yaml", &manifest("plain", false, "", &container));
    a.wait_running("plain", "c", T);
    let pod = meta(&a, "plain", "name");
    let uid = meta(&a, "plain", "uid");
    let out = logs_with(&a, &pod, "c", "done=1");
    for kind in ["mnt", "ipc", "uts", "net"] {
        assert_eq!(value(&out, &format!("{kind}=")), host_ns(kind), "{out}");
    }
    assert!(!a.root_dir.join("pods").join(&uid).join("sandbox").exists());
    assert!(mounts_under(&a.root_dir).is_empty());
    a.remove_manifest("plain.yaml");
    a.wait_for("plain removed", T, |a| {
        a.pod("plain").is_none().then_some(())
    });
}

#[test]
fn host_namespaces_dns_and_host_aliases_of_a_host_filesystem_pod() {
    let a = Agent::start(&[]);
    let script = "echo pid=$$$$; echo pidns=$(readlink /proc/self/ns/pid); echo mnt=$(readlink /proc/self/ns/mnt); echo ipc=$(readlink /proc/self/ns/ipc); echo uts=$(readlink /proc/self/ns/uts); echo hosts=$$(head -n 1 /etc/hosts); echo alias=$$(grep -c mkl-alias /etc/hosts); echo ns=$$(grep nameserver /etc/resolv.conf); echo done=1; trap \"exit 0\" TERM; while :; do sleep 1; done";
    let spec = "  hostNetwork: true\n  hostIPC: true\n  hostPID: true\n  dnsPolicy: None\n  dnsConfig: {nameservers: [192.0.2.53]}\n  hostAliases: [{ip: 192.0.2.7, hostnames: [mkl-alias]}]\n";
    let container = format!(
        "  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, '{script}']\n"
    );
    a.write_manifest("hostns.yaml", &manifest("hostns", true, spec, &container));
    a.wait_running("hostns", "c", T);
    let pod = meta(&a, "hostns", "name");
    let out = logs_with(&a, &pod, "c", "done=1");
    assert_ne!(value(&out, "pid="), "1", "hostPID: {out}");
    for kind in ["pid", "ipc", "uts"] {
        let key = if kind == "pid" {
            "pidns="
        } else {
            &format!("{kind}=")
        };
        assert_eq!(value(&out, key), host_ns(kind), "{kind}: {out}");
    }
    assert_ne!(value(&out, "mnt="), host_ns("mnt"), "{out}");
    assert_eq!(
        value(&out, "hosts="),
        "# Kubernetes-managed hosts file (host network).",
        "{out}"
    );
    assert_eq!(value(&out, "alias="), "1", "{out}");
    assert_eq!(value(&out, "ns="), "nameserver 192.0.2.53", "{out}");
    remove_and_check_clean(&a, "hostns");
}

#[test]
fn a_pod_removed_while_the_agent_is_down_loses_its_sandbox_at_the_next_start() {
    let mut a = Agent::start(&[]);
    let container = format!(
        "  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, '{REPORT}']\n"
    );
    a.write_manifest("gone.yaml", &manifest("gone", true, "", &container));
    a.wait_running("gone", "c", T);
    let uid = meta(&a, "gone", "uid");
    let sandbox = a.root_dir.join("pods").join(&uid).join("sandbox");
    assert!(sandbox.join("ns/uts").exists());
    a.kill9();
    a.remove_manifest("gone.yaml");
    assert!(
        !mounts_under(&a.root_dir).is_empty(),
        "the pinned namespaces outlive the agent"
    );
    a.spawn();
    a.wait_for("the orphaned sandbox's mounts gone", T, |a| {
        mounts_under(&a.root_dir).is_empty().then_some(())
    });
    a.wait_for("the orphaned sandbox's files gone", T, |_| {
        (!sandbox.exists()).then_some(())
    });
    assert!(a.pod("gone").is_none());
}
