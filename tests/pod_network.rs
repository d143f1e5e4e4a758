//! Pods with their own network, end to end: the real agent with Debian's CNI plugins, run inside
//! a network namespace the test makes (its "node"), never the machine's own. The test's thread
//! joins that namespace first, so the agent it starts, the plugins, `kubectl` and every client
//! socket live there: the bridge, the veths, the iptables rules and the addresses (10.x) die with
//! it. Checked: two pods serving on port 80 each get an IP of `--pod-cidr` and reach each other;
//! the node reaches them; a hostPort reaches a pod through portmap; port-forward dials the pod's
//! own loopback; the pod's hosts file names its IP; an agent restarted after `kill -9` keeps the
//! pods and their IPs and tears down what it set up before; removing the pods leaves no veth, no
//! IP reservation, no iptables chain; a broken plugin is `FailedCreatePodSandBox` with the
//! plugin's message; no config and no `--pod-cidr` keeps the node's network, with an event.
//!
//! Cleanup: `Agent`'s drop kills the agent and its pods and unmounts the pinned namespaces; the
//! node namespace's drop deletes it, and with it everything the plugins made. Skipped, saying
//! so, when the plugins are not installed (scripts/deps.sh installs them).
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Agent, container_status};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const PLUGINS: &str = "/usr/lib/cni";

/// The test's node: a network namespace the test's thread has joined; deleted on drop.
struct Node {
    name: String,
}

impl Node {
    fn enter(test: &str) -> Option<Node> {
        if !Path::new(PLUGINS).join("bridge").exists() {
            eprintln!(
                "SKIPPED: {PLUGINS}/bridge missing (scripts/deps.sh installs containernetworking-plugins)"
            );
            return None;
        }
        let name = format!("mkl-{}-{test}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let node = Node { name };
        run("ip", &["-n", &node.name, "link", "set", "lo", "up"]);
        let f = std::fs::File::open(Path::new("/run/netns").join(&node.name)).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        Some(node)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An agent in the node with a pod network of `cidr`, its CNI files in its temp dir.
fn agent(cidr: Option<&str>, extra: &[&str]) -> Agent {
    let mut a = Agent::start_unspawned(&[]);
    let dir = a.tmp.path().to_path_buf();
    a.extra
        .push(format!("--cni-conf-dir={}", dir.join("net.d").display()));
    a.extra
        .push(format!("--cni-cache-dir={}", dir.join("cni").display()));
    a.extra.push(format!("--cni-bin-dir={PLUGINS}"));
    if let Some(c) = cidr {
        a.extra.push(format!("--pod-cidr={c}"));
    }
    a.extra.extend(extra.iter().map(|s| s.to_string()));
    a.spawn();
    a
}

fn web_pod(name: &str, host_port: Option<u16>) -> String {
    let ports = host_port.map_or(String::new(), |p| {
        format!("\n    ports: [{{containerPort: 80, hostPort: {p}}}]")
    });
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/busybox:test{ports}
    command: [sh, -c, "mkdir -p /tmp/www && echo hello from {name} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
"#
    )
}

fn pod_ip(a: &Agent, name: &str) -> String {
    a.wait_running(name, "web", T);
    let p = a.pod(name).unwrap();
    p["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn exec(a: &Agent, pod: &str, cmd: &str) -> String {
    let name = a.pod(pod).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    common::kubectl_stdout(a, &["exec", &name, "--", "sh", "-c", cmd], T)
}

/// A shell command that GETs `/` from `ip:port` (busybox `nc`: the static busybox's `wget`
/// crashes in an image without `/etc/services`).
fn get(ip: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}")
}

/// The body of an HTTP response: its last line.
fn body(response: &str) -> &str {
    response
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
}

/// The body of `/` at `ip:port`, fetched from the node (the test's namespace).
fn node_get(ip: &str, port: u16) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{} || true", get(ip, port).replace("nc ", "busybox nc ")),
        ])
        .output()
        .unwrap();
    body(&String::from_utf8_lossy(&out.stdout)).to_string()
}

/// The cached CNI results in the agent's cache dir: each pod's DEL removes its entries last,
/// after every plugin is done, so none left means every teardown has finished.
fn cached_results(a: &Agent) -> Vec<String> {
    std::fs::read_dir(a.tmp.path().join("cni/results"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Once the pods are gone: every teardown finishes (the pod is gone from the API before its
/// sandbox is torn down; a teardown is done when its cache entries are, the last step of each
/// DEL), and no veth, no IP reservation and no chain or rule of a pod is left (only portmap's
/// shared chains, which it keeps for the next pod as on a containerd node, with nothing of a pod
/// in them). The agent's warnings about sandboxes come with a failure.
fn assert_no_network_left(a: &Agent) {
    a.wait_for("teardowns done", T, |a| {
        cached_results(a).is_empty().then_some(())
    });
    let warnings: Vec<String> = a
        .agent_log()
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains("sandbox"))
        .map(str::to_string)
        .collect();
    let warnings = warnings.join("\n");
    assert!(
        veths().is_empty(),
        "{:?}\nagent warnings:\n{warnings}",
        veths()
    );
    let left: Vec<String> = std::fs::read_dir(a.tmp.path().join("cni/networks/minikubelet"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "IP reservations left: {left:?}\nagent warnings:\n{warnings}"
    );
    let nat = run("iptables-save", &["-t", "nat"]);
    let per_pod: Vec<&str> = nat
        .lines()
        .filter(|l| l.contains("CNI-") && !l.contains("CNI-HOSTPORT-"))
        .chain(
            nat.lines()
                .filter(|l| l.starts_with("-A CNI-HOSTPORT-DNAT")),
        )
        .collect();
    assert!(
        per_pod.is_empty(),
        "iptables rules left: {per_pod:?}\n{nat}\nagent warnings:\n{warnings}"
    );
}

fn veths() -> Vec<String> {
    run("ip", &["-o", "link", "show", "type", "veth"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pods_get_their_own_ips_and_reach_each_other() {
    let Some(_node) = Node::enter("ips") else {
        return;
    };
    let mut a = agent(Some("10.91.0.0/24"), &["--hairpin-mode=hairpin-veth"]);
    a.write_manifest("a.yaml", &web_pod("a", None));
    a.write_manifest("b.yaml", &web_pod("b", Some(8080)));
    let (ip_a, ip_b) = (pod_ip(&a, "a"), pod_ip(&a, "b"));
    assert!(
        ip_a.starts_with("10.91.0.") && ip_b.starts_with("10.91.0."),
        "{ip_a} {ip_b} {}",
        a.pod("a").unwrap()["status"]
    );
    assert_ne!(ip_a, ip_b);
    let pa = a.pod("a").unwrap();
    assert_eq!(pa["status"]["podIPs"][0]["ip"], ip_a.as_str());
    assert_ne!(pa["status"]["hostIP"], ip_a.as_str());
    // The default network was written for --pod-cidr, with the hairpin mode.
    let conf = std::fs::read_to_string(a.tmp.path().join("net.d/10-minikubelet.conflist")).unwrap();
    let conf: Value = serde_json::from_str(&conf).unwrap();
    assert_eq!(conf["plugins"][0]["hairpinMode"], true, "{conf}");

    // Pod to pod, on port 80 both; the node to a pod; a pod to the other's hostPort on the
    // bridge's address (portmap's DNAT).
    let out = exec(&a, "a", &get(&ip_b, 80));
    assert_eq!(body(&out), "hello from b", "{out}");
    assert_eq!(node_get(&ip_a, 80), "hello from a");
    let gw = "10.91.0.1";
    let out = exec(&a, "a", &get(gw, 8080));
    assert_eq!(body(&out), "hello from b", "{out}");
    // The pod's hosts file names its own IP; eth0 has it.
    let hosts = exec(&a, "a", "cat /etc/hosts");
    assert!(
        hosts.lines().any(|l| l.starts_with(&format!("{ip_a}\t"))),
        "{hosts}"
    );
    let addr = exec(&a, "a", "ip -4 -o addr show eth0");
    assert!(addr.contains(&format!("inet {ip_a}/24")), "{addr}");
    // /stats/summary: the pod's network is its eth0, with the bytes it moved.
    let summary: Value = serde_json::from_str(&a.get("/stats/summary").unwrap()).unwrap();
    let stats = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["podRef"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("a-"))
        })
        .cloned()
        .unwrap();
    assert_eq!(stats["network"]["name"], "eth0", "{}", stats["network"]);
    assert!(
        stats["network"]["rxBytes"].as_u64().unwrap_or(0) > 0,
        "{}",
        stats["network"]
    );
    assert!(
        stats["network"]["txBytes"].as_u64().unwrap_or(0) > 0,
        "{}",
        stats["network"]
    );
    // A pod's net.* sysctl is written in its own network namespace (after CNI, as with
    // containerd), the node's stays as it was.
    let node_range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    a.write_manifest(
        "s.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: sysctl}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    sysctls: [{name: net.ipv4.ip_local_port_range, value: "40000 50000"}]
  containers:
  - name: web
    image: localhost/busybox:test
    command: [sh, -c, "exec sleep 3600"]
"#,
    );
    pod_ip(&a, "sysctl");
    let range = exec(&a, "sysctl", "cat /proc/sys/net/ipv4/ip_local_port_range");
    assert_eq!(
        range.split_whitespace().collect::<Vec<_>>(),
        ["40000", "50000"]
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap(),
        node_range
    );
    a.remove_manifest("s.yaml");
    // The hairpin flag on the pods' veths (--hairpin-mode=hairpin-veth).
    let links = run("bridge", &["-d", "link", "show"]);
    assert!(links.contains("hairpin on"), "{links}");

    // kill -9 and a new agent: the pods run on with the same IPs, and their network is torn
    // down from the cache when they go.
    a.kill9();
    a.spawn();
    assert_eq!(pod_ip(&a, "a"), ip_a);
    assert_eq!(pod_ip(&a, "b"), ip_b);
    assert_eq!(node_get(&ip_b, 80), "hello from b");
    a.remove_manifest("a.yaml");
    a.remove_manifest("b.yaml");
    a.wait_for("pods gone", T, |a| a.pods().is_empty().then_some(()));
    assert_no_network_left(&a);
}

/// `kubectl port-forward` dials the pod's own loopback, not the node's.
#[test]
fn port_forward_reaches_the_pods_own_loopback() {
    let Some(_node) = Node::enter("pf") else {
        return;
    };
    let a = agent(Some("10.92.0.0/24"), &[]);
    a.write_manifest(
        "lo.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: lo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/busybox:test
    command: [sh, -c, "mkdir -p /tmp/www && echo only on the pod loopback > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8081 -h /tmp/www"]
"#,
    );
    pod_ip(&a, "lo");
    let name = a.pod("lo").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut pf = Command::new(common::kubectl())
        .args(["--kubeconfig"])
        .arg(a.kubeconfig())
        .args(["port-forward", &name, &format!("{local}:8081")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = a.wait_for("port-forward", T, |_| {
        let body = node_get("127.0.0.1", local);
        (!body.is_empty()).then_some(body)
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(got, "only on the pod loopback");
}

/// A network config whose plugin does not exist: the sandbox cannot be made, the pod waits in
/// ContainerCreating with `FailedCreatePodSandBox` and the plugin's error; no config and no
/// `--pod-cidr`: the node's network, with an event saying why.
#[test]
fn a_broken_plugin_and_no_network_say_why() {
    let Some(_node) = Node::enter("broken") else {
        return;
    };
    let mut a = Agent::start_unspawned(&[]);
    let dir = a.tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("net.d")).unwrap();
    std::fs::write(
        dir.join("net.d/10-broken.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "no-such-plugin"}]}"#,
    )
    .unwrap();
    a.extra
        .push(format!("--cni-conf-dir={}", dir.join("net.d").display()));
    a.extra
        .push(format!("--cni-cache-dir={}", dir.join("cni").display()));
    a.extra.push(format!("--cni-bin-dir={PLUGINS}"));
    a.spawn();
    a.write_manifest("w.yaml", &web_pod("w", None));
    let ev = a.wait_for("FailedCreatePodSandBox", T, |a| {
        a.pod_events("w")
            .into_iter()
            .find(|e| e["reason"] == "FailedCreatePodSandBox")
    });
    let msg = ev["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("failed to setup network for sandbox") && msg.contains("no-such-plugin"),
        "{msg}"
    );
    let p = a.pod("w").unwrap();
    assert_eq!(
        container_status(&p, "web").unwrap()["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    drop(a);

    // Neither config nor --pod-cidr.
    let a = agent(None, &[]);
    a.write_manifest("plain.yaml", &web_pod("plain", None));
    a.wait_running("plain", "web", T);
    let p = a.pod("plain").unwrap();
    assert_eq!(p["status"]["podIP"], p["status"]["hostIP"]);
    let ev = a.wait_for("NodeNetwork", T, |a| {
        a.pod_events("plain")
            .into_iter()
            .find(|e| e["reason"] == "NodeNetwork")
    });
    assert!(
        ev["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no --pod-cidr"),
        "{ev}"
    );
}

/// Churn: 100 pods added at once each get their own IP, and once removed leave no veth, no IP
/// reservation and no per-pod iptables rule behind.
#[test]
fn a_hundred_pods_come_and_go_without_leftovers() {
    let Some(_node) = Node::enter("churn") else {
        return;
    };
    let a = agent(Some("10.93.0.0/24"), &[]);
    const N: usize = 100;
    for i in 0..N {
        a.write_manifest(
            &format!("p{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: localhost/busybox:test\n    ports: [{{containerPort: 80, hostPort: {}}}]\n    command: [sh, -c, \"exec sleep 3600\"]\n",
                20000 + i
            ),
        );
    }
    let ips = a.wait_for("100 pods running with IPs", Duration::from_secs(240), |a| {
        let pods = a.pods();
        let ips: std::collections::BTreeSet<String> = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .filter(|ip| ip.starts_with("10.93.0."))
            .collect();
        (ips.len() == N).then_some(ips)
    });
    assert_eq!(ips.len(), N);
    assert_eq!(veths().len(), N);
    for i in 0..N {
        a.remove_manifest(&format!("p{i}.yaml"));
    }
    a.wait_for("pods gone", Duration::from_secs(240), |a| {
        a.pods().is_empty().then_some(())
    });
    assert_no_network_left(&a);
}
