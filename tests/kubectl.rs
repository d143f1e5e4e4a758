//! The real kubectl 1.32 against the real agent: the API-server facade (discovery, Tables,
//! JSON, watch, describe, events, top, a refused delete) and the kubelet's log endpoint, plus
//! the kubelet paths called directly with the query forms the API server sends and with bad
//! input. Each test runs its own agent (see `common`) and kubectl with a fresh `HOME`, so
//! kubectl's discovery cache never leaks between tests. kubectl is called as the versioned
//! binary: the `kubectl` on PATH is a dispatcher that picks a version from `/version`.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, container_status, http_get};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// kubectl with its own HOME, pointed at one agent.
struct Kubectl {
    home: tempfile::TempDir,
    /// The agent's `<root-dir>/kubeconfig` (its server and admin token).
    kubeconfig: std::path::PathBuf,
}

/// What a kubectl run printed and how it ended.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(a: &Agent) -> Kubectl {
        Kubectl {
            home: tempfile::tempdir().unwrap(),
            kubeconfig: a.kubeconfig(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::kubectl());
        c.env_clear()
            .env("HOME", self.home.path())
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run to completion (killed after 30 s).
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self.command(args).spawn().expect("run kubectl");
        wait_output(&mut child, T)
    }

    /// Run and expect exit 0; the stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "kubectl {args:?} failed: {o:?}");
        o.stdout
    }
}

fn wait_output(child: &mut Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -9;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    Output {
        code,
        stdout,
        stderr,
    }
}

/// A background process whose output is collected by a thread.
struct Streaming {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Streaming {
    fn start(mut cmd: Command) -> Streaming {
        let mut child = cmd.spawn().expect("spawn");
        let mut stdout = child.stdout.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Streaming { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(&self.text()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; output so far:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request with an empty body and the admin token: (status, body).
fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    common::http_request(port, method, path, common::token_for(port).as_deref(), &[])
        .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

fn name_of(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap().to_string()
}

/// The columns of a kubectl table line.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The text with every run of blanks made one space (describe output aligns with tabs).
fn squash(s: &str) -> String {
    s.lines()
        .map(|l| fields(l).join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The table line whose first column is `name`.
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| fields(l).first() == Some(&name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{out}"))
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "echo main-started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
  - name: side
    image: localhost/busybox:test
    command: ["sh", "-c", "echo side-says-hello; echo side-err >&2; exec sleep 3600"]
"#;

const INIT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: init, namespace: kube-system}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: wait, image: localhost/busybox:test, command: [sleep, "3600"]}
  containers:
  - {name: main, image: localhost/busybox:test, command: [sleep, "3600"]}
"#;

#[test]
fn get_describe_nodes_events_and_errors() {
    let a = Agent::start(&[]);
    a.write_manifest("web.yaml", WEB);
    a.wait_running("web", "main", T);
    a.wait_running("web", "side", T);
    let pod = name_of(&a.pod("web").unwrap());
    let node = pod.trim_start_matches("web-").to_string();
    let k = Kubectl::new(&a);

    // /version reports minor 32 (what the dispatcher on PATH reads).
    let (code, body) = http_get(a.port, "/version").unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("32"))
    );

    // get pods: server-side Table, all columns.
    let out = k.ok(&["get", "pods"]);
    assert_eq!(
        fields(out.lines().next().unwrap()),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let l = fields(line_of(&out, &pod));
    assert_eq!(&l[1..4], ["2/2", "Running", "0"], "{out}");
    // -o wide: the priority-1 columns with server-made cells.
    let out = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        fields(out.lines().next().unwrap()),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let l = fields(line_of(&out, &pod));
    assert_eq!(&l[6..], [node.as_str(), "<none>", "<none>"], "{out}");
    // -A: the NAMESPACE column comes from the row objects.
    let out = k.ok(&["get", "pods", "-A"]);
    assert!(
        out.lines().next().unwrap().starts_with("NAMESPACE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| fields(l)[..2] == ["default", pod.as_str()]),
        "{out}"
    );
    // JSON, YAML, jsonpath, label and field selectors.
    let list: Value = serde_json::from_str(&k.ok(&["get", "pods", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["status"]["phase"], "Running");
    let yaml = k.ok(&["get", "pod", &pod, "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("kubernetes.io/config.mirror"),
        "{yaml}"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-o",
            "jsonpath={.items[*].spec.containers[*].name}"
        ]),
        "main side"
    );
    assert!(k.ok(&["get", "pods", "-l", "app=web"]).contains(&pod));
    assert_eq!(k.ok(&["get", "pods", "-l", "app=db"]), "");
    let out = k.run(&["get", "pods", "--field-selector", "status.phase!=Running"]);
    assert!(
        out.stdout.is_empty() && out.stderr.contains("No resources found"),
        "{out:?}"
    );
    assert!(
        k.ok(&[
            "get",
            "pods",
            "--field-selector",
            &format!("spec.nodeName={node}")
        ])
        .contains(&pod)
    );
    // One pod by name, by short name; a missing one is a NotFound Status.
    assert!(line_of(&k.ok(&["get", "po", &pod]), &pod).contains("Running"));
    let o = k.run(&["get", "pod", "nope"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("Error from server (NotFound): pods \"nope\" not found"),
        "{o:?}"
    );

    // describe pod: status, containers, conditions, events.
    let d = squash(&k.ok(&["describe", "pod", &pod]));
    for want in [
        format!("Name: {pod}"),
        "Namespace: default".to_string(),
        format!("Node: {node}/"),
        "Status: Running".to_string(),
        format!("Controlled By: Node/{node}"),
        "main:".to_string(),
        "side:".to_string(),
        "Ready True".to_string(),
        "Normal Started".to_string(),
    ] {
        assert!(d.contains(&want), "describe pod lacks {want:?}:\n{d}");
    }

    // Nodes: the Table, the Node object, describe (conditions, capacity, pods, events).
    let out = k.ok(&["get", "nodes", "-o", "wide"]);
    let l = fields(line_of(&out, &node));
    assert_eq!(&l[1..3], ["Ready", "<none>"], "{out}");
    assert_eq!(l[4], "v1.32.0-minikubelet");
    assert!(out.contains("minikubelet://0.1.0"), "{out}");
    let n: Value = serde_json::from_str(&k.ok(&["get", "node", &node, "-o", "json"])).unwrap();
    let types: Vec<&str> = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    assert!(n["status"]["allocatable"]["memory"].is_string());
    assert_eq!(n["status"]["addresses"][1]["type"], "Hostname");
    let d = squash(&k.ok(&["describe", "node", &node]));
    for want in [
        "KubeletHasSufficientMemory",
        "KubeletReady",
        "Capacity:",
        "Allocatable:",
        "Kubelet Version: v1.32.0-minikubelet",
        "Non-terminated Pods:",
        pod.as_str(),
        "Starting kubelet.",
        "HolderIdentity:",
    ] {
        assert!(d.contains(want), "describe node lacks {want:?}:\n{d}");
    }

    // Events: the Table across kinds.
    let ev = k.ok(&["get", "events"]);
    assert!(ev.lines().next().unwrap().starts_with("LAST SEEN"), "{ev}");
    assert!(
        ev.contains(&format!("pod/{pod}")) && ev.contains(&format!("node/{node}")),
        "{ev}"
    );
    assert!(ev.contains("Started"), "{ev}");
    // Namespaces.
    assert!(line_of(&k.ok(&["get", "ns"]), "kube-system").contains("Active"));
    // A pod whose init container runs: Init:0/1, and its main container has no log yet.
    a.write_manifest("init.yaml", INIT);
    let init_pod = a.wait_for("init running", T, |a| {
        let p = a.pod("init")?;
        container_status(&p, "wait")?["state"]["running"].as_object()?;
        Some(name_of(&p))
    });
    let out = k.ok(&["get", "pods", "-A"]);
    assert!(
        out.lines().any(|l| fields(l).get(..4)
            == Some(&["kube-system", init_pod.as_str(), "0/1", "Init:0/1"][..])),
        "{out}"
    );
    let o = k.run(&["logs", "-n", "kube-system", &init_pod]);
    assert!(
        o.stderr.contains(&format!(
            "container \"main\" in pod \"{init_pod}\" is waiting to start: PodInitializing"
        )),
        "{o:?}"
    );
    a.remove_manifest("init.yaml");

    // delete is refused with the way to remove a static pod.
    let o = k.run(&["delete", "pod", &pod]);
    assert_eq!(o.code, 1, "{o:?}");
    let manifest = a.manifests.join("web.yaml");
    assert!(
        o.stderr.contains("Error from server (Forbidden)")
            && o.stderr
                .contains(&format!("manifest file {}", manifest.display())),
        "{o:?}"
    );
    assert!(a.pod("web").is_some());

    // The kubeconfig the agent wrote works by itself.
    let kc = a.root_dir.join("kubeconfig");
    let out = Command::new(common::kubectl())
        .env_clear()
        .env("HOME", k.home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "get", "pods"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&pod),
        "{out:?}"
    );
}

const COUNTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  # Removed by the watch test: `sleep` as PID 1 ignores SIGTERM; no 30 s grace period.
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; done; echo oops >&2; sleep 4; echo late; exec sleep 3600"]
"#;

#[test]
fn logs_with_every_flag_and_the_kubelet_paths() {
    let a = Agent::start(&[]);
    a.write_manifest("counter.yaml", COUNTER);
    a.wait_running("counter", "main", T);
    let pod = name_of(&a.pod("counter").unwrap());
    let k = Kubectl::new(&a);
    let deadline = Instant::now() + T;
    while !k.ok(&["logs", &pod]).contains("late") {
        assert!(Instant::now() < deadline, "no 'late' line");
        std::thread::sleep(Duration::from_millis(200));
    }
    // --since: the first lines were written 4 s before "late", which was just written.
    let recent = k.ok(&["logs", &pod, "--since=3s"]);
    assert!(
        recent.contains("late") && !recent.contains("line-1\n"),
        "{recent}"
    );
    let all = k.ok(&["logs", &pod]);
    let want: String = (1..=10).map(|i| format!("line-{i}\n")).collect::<String>() + "oops\nlate\n";
    assert_eq!(all, want);
    assert_eq!(k.ok(&["logs", &pod, "--tail=2"]), "oops\nlate\n");
    assert_eq!(
        k.ok(&["logs", &pod, "-c", "main", "--limit-bytes=10"]),
        "line-1\nlin"
    );
    let ts = k.ok(&["logs", &pod, "--timestamps", "--tail=1"]);
    let (stamp, text) = ts.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "late");
    assert_eq!(stamp.len(), "2006-01-02T15:04:05.000000000Z".len(), "{ts}");
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{ts}");
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
    assert_eq!(k.ok(&["logs", &pod, &format!("--since-time={future}")]), "");
    // A container the pod doesn't have is refused by kubectl itself; --previous with no
    // previous instance is the kubelet's error, passed on by the API.
    let o = k.run(&["logs", &pod, "-c", "nope"]);
    assert!(
        o.code != 0 && o.stderr.contains("container nope is not valid"),
        "{o:?}"
    );
    let o = k.run(&["logs", &pod, "--previous"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(&format!("Error from server (BadRequest): previous terminated container \"main\" in pod \"{pod}\" not found")),
        "{o:?}"
    );

    // The kubelet's own path with the query forms the API server sends.
    let base = format!("/containerLogs/default/{pod}/main");
    let get = |q: &str| http_get(a.port, &format!("{base}{q}")).unwrap();
    assert_eq!(get(""), (200, want.clone()));
    assert_eq!(get("?tailLines=2").1, "oops\nlate\n");
    assert_eq!(get("?tail=1").1, "late\n");
    assert_eq!(get("?tail=all").1, want);
    assert_eq!(get("?limitBytes=7").1, "line-1\n");
    assert_eq!(
        get("?sinceTime=2000-01-01T00:00:00Z&timestamps=true")
            .1
            .lines()
            .count(),
        12
    );
    assert_eq!(get("?stream=Stderr").1, "oops\n");
    // Bad input: each answered with a Status and the kubelet's code.
    let status = |path: &str| {
        let (code, body) = http_get(a.port, path).unwrap();
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not a Status: {body}"));
        assert_eq!(v["kind"], "Status", "{path}");
        assert_eq!(v["code"], code, "{path}");
        (code, v["message"].as_str().unwrap().to_string())
    };
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("{base}?tailLines=-1"),
            422,
            "tailLines: Invalid value: -1",
        ),
        (format!("{base}?tailLines=x"), 400, "Unable to decode query"),
        (format!("{base}?limitBytes=0"), 422, "limitBytes"),
        (
            format!("{base}?sinceSeconds=1&sinceTime=2025-01-01T00:00:00Z"),
            422,
            "at most one of",
        ),
        (
            format!("{base}?previous=true"),
            400,
            "previous terminated container",
        ),
        (
            format!("/containerLogs/default/{pod}/nope"),
            404,
            "container \"nope\" not found in pod",
        ),
        (
            "/containerLogs/default/nope/main".to_string(),
            404,
            "pod \"nope\" does not exist",
        ),
        (
            format!("/containerLogs/default/{pod}/.."),
            400,
            "invalid container name",
        ),
        (
            format!("/containerLogs/default/{pod}/%2E%2E"),
            400,
            "invalid container name",
        ),
        (
            "/containerLogs/default/..%2F..%2Fetc/main".to_string(),
            400,
            "invalid pod name",
        ),
        (
            format!("/containerLogs/kube-system/{pod}/main"),
            404,
            "does not exist",
        ),
        // The API path: its own validation and messages.
        (
            format!("/api/v1/namespaces/default/pods/{pod}/log?tailLines=-1"),
            422,
            "PodLogOptions",
        ),
        (
            format!("/api/v1/namespaces/default/pods/{pod}/log?container=nope"),
            400,
            "container nope is not valid for pod",
        ),
        (
            "/api/v1/namespaces/default/pods/nope/log".to_string(),
            404,
            "pods \"nope\" not found",
        ),
        (
            "/api/v1/namespaces/default/pods/x/exec-nothing".to_string(),
            404,
            "could not find the requested resource",
        ),
    ];
    for (path, code, msg) in cases {
        let (got, m) = status(&path);
        assert_eq!(got, code, "{path}: {m}");
        assert!(m.contains(msg), "{path}: {m:?} lacks {msg:?}");
    }
    // Other methods: a 405 Status, with the static-pod advice where it applies.
    let cases = [
        ("POST", base.clone(), "does not allow this method"),
        (
            "DELETE",
            "/api/v1/nodes".to_string(),
            "does not allow this method",
        ),
        (
            "PUT",
            format!("/api/v1/namespaces/default/pods/{pod}"),
            "edit its manifest file",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods".to_string(),
            "writing, editing or deleting manifest files",
        ),
    ];
    for (method, path, msg) in cases {
        let (code, body) = http_request(a.port, method, &path);
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: {body}"));
        assert_eq!(
            (code, v["reason"].as_str()),
            (405, Some("MethodNotAllowed")),
            "{method} {path}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(msg),
            "{method} {path}: {v}"
        );
    }
    // Nothing outside the pod's log directory was touched or read.
    assert!(a.pod("counter").is_some());
}

const CRASHER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); exit 3"]
"#;

#[test]
fn logs_previous_after_a_crash_and_crashloop_status() {
    let a = Agent::start(&[]);
    a.write_manifest("crasher.yaml", CRASHER);
    let pod = a.wait_for("a restart", T, |a| {
        let p = a.pod("crasher")?;
        let c = container_status(&p, "main")?;
        (c["restartCount"].as_i64()? >= 1 && c["lastState"]["terminated"].is_object())
            .then(|| name_of(&p))
    });
    let k = Kubectl::new(&a);
    let prev = k.ok(&["logs", &pod, "--previous"]);
    assert!(
        prev.starts_with("run-") && prev.lines().count() == 1,
        "{prev}"
    );
    // The current (or last) instance is another run.
    let cur = k.ok(&["logs", &pod]);
    assert!(cur.starts_with("run-"), "{cur}");
    // kubectl shows the restart count and the crash loop.
    let out = a.wait_for("CrashLoopBackOff or Error in get pods", T, |_| {
        let out = k.ok(&["get", "pods"]);
        let l = line_of(&out, &pod).to_string();
        (l.contains("CrashLoopBackOff") || l.contains("Error")).then_some(l)
    });
    let f = fields(&out);
    assert_eq!(f[1], "0/1");
    assert!(f[3].parse::<u32>().unwrap() >= 1, "{out}");
    assert!(out.contains("ago)"), "{out}");
}

const CHATTY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  # Removed at the end of its test: its shell (PID 1) stops at SIGTERM.
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); if [ $((i % 100)) = 0 ]; then sleep 0.1; fi; done; trap 'exit 0' TERM; sleep 3600 & wait"]
"#;

#[test]
fn logs_follow_across_rotations() {
    let a = Agent::start(&[
        "--container-log-max-size=16Ki",
        "--container-log-max-files=3",
    ]);
    a.write_manifest("chatty.yaml", CHATTY);
    a.wait_running("chatty", "main", T);
    let pod = name_of(&a.pod("chatty").unwrap());
    let k = Kubectl::new(&a);
    let f = Streaming::start(k.command(&["logs", "-f", &pod]));
    f.wait_for("all 3000 lines", Duration::from_secs(60), |t| {
        t.contains("line-2999-")
    });
    // Several rotations happened while following (only the last few files are kept).
    let dir = std::fs::read_dir(&a.logs_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("main");
    let rotated = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".log.")
        })
        .count();
    assert!(rotated >= 1, "no rotated file in {}", dir.display());
    // Every line arrived once, in order: following crossed each rotation (3000 lines of 64
    // bytes is about 12 files of 16 KiB).
    let text = f.text();
    let got: Vec<&str> = text.lines().collect();
    let want: Vec<String> = (0..3000)
        .map(|i| format!("line-{i}-{}", "x".repeat(48)))
        .collect();
    assert_eq!(got.len(), 3000, "lines lost or repeated");
    assert!(
        got.iter().zip(&want).all(|(g, w)| g == w),
        "lines out of order"
    );
    // A follower whose client goes away stops, although the container runs on, quiet.
    let gone = "end=ClientGone";
    let before = a.agent_log().matches(gone).count();
    let mut g = Streaming::start(k.command(&["logs", "-f", "--tail=1", &pod]));
    g.wait_for("the last line", T, |t| t.contains("line-2999-"));
    let _ = g.child.kill();
    let _ = g.child.wait();
    a.wait_for("the follower to notice its client left", T, |a| {
        (a.agent_log().matches(gone).count() > before).then_some(())
    });
    // The instance ends: kubectl's stream ends and it exits 0.
    let mut f = f;
    a.remove_manifest("chatty.yaml");
    let o = wait_output(&mut f.child, T);
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn get_pods_watch_sees_changes() {
    let a = Agent::start(&[]);
    a.write_manifest("web.yaml", WEB);
    a.wait_running("web", "main", T);
    let pod = name_of(&a.pod("web").unwrap());
    let k = Kubectl::new(&a);
    let w = Streaming::start(k.command(&["get", "pods", "-w"]));
    w.wait_for("the initial list", T, |t| t.contains(&pod));
    assert_eq!(
        w.text().lines().filter(|l| l.starts_with("NAME")).count(),
        1
    );
    // A new pod appears as a new line; the header is not repeated.
    a.write_manifest("counter.yaml", COUNTER);
    w.wait_for("the new pod running", T, |t| {
        t.lines()
            .any(|l| l.starts_with("counter-") && l.contains("Running"))
    });
    // Removing its manifest: Terminating (the API server's deletionTimestamp) then gone.
    a.remove_manifest("counter.yaml");
    w.wait_for("the pod terminating", T, |t| {
        t.lines().any(|l| {
            l.starts_with("counter-")
                && (l.contains("Terminating") || l.contains("Completed") || l.contains("Error"))
        })
    });
    assert_eq!(
        w.text().lines().filter(|l| l.starts_with("NAME")).count(),
        1,
        "{}",
        w.text()
    );
    // The same watch through the API as JSON events.
    let (code, body) = http_get(
        a.port,
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
    )
    .unwrap();
    assert_eq!(code, 200);
    let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Pod");
}

const BURNER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: burner}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.1; done"]
    resources:
      limits: {cpu: 200m, memory: 64Mi}
"#;

#[test]
fn top_pod_and_node() {
    let a = Agent::start(&[]);
    a.write_manifest("burner.yaml", BURNER);
    a.wait_running("burner", "main", T);
    let pod = name_of(&a.pod("burner").unwrap());
    let node = pod.trim_start_matches("burner-").to_string();
    let k = Kubectl::new(&a);
    std::thread::sleep(Duration::from_secs(1));
    let out = k.ok(&["top", "pod"]);
    assert_eq!(
        fields(out.lines().next().unwrap()),
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{out}"
    );
    let l = fields(line_of(&out, &pod));
    let cpu: u32 = l[1].trim_end_matches('m').parse().unwrap();
    assert!(
        cpu > 0 && cpu <= 260,
        "burner uses up to its 200m limit: {out}"
    );
    assert!(l[2].ends_with("Mi"), "{out}");
    let out = k.ok(&["top", "pod", &pod, "--containers"]);
    assert!(out.contains("main"), "{out}");
    let out = k.ok(&["top", "node"]);
    let l = fields(line_of(&out, &node));
    assert!(
        l[1].ends_with('m') && l[2].ends_with('%') && l[3].ends_with("Mi") && l[4].ends_with('%'),
        "{out}"
    );
}

#[test]
fn kubeconfig_is_written() {
    let a = Agent::start(&[]);
    let text = std::fs::read_to_string(a.root_dir.join("kubeconfig")).unwrap();
    assert!(
        text.contains(&format!("server: http://127.0.0.1:{}", a.port)),
        "{text}"
    );
    assert!(text.contains("namespace: default"), "{text}");
}

/// The official Python client (installed by `.ci/run`): typed lists and gets (its models
/// refuse objects that lack required fields), logs, following logs, and a pod watch.
#[test]
fn python_client_lists_reads_and_follows() {
    let a = Agent::start(&[]);
    a.write_manifest("web.yaml", WEB);
    a.wait_running("web", "main", T);
    let pod = name_of(&a.pod("web").unwrap());
    let script = r#"
import sys
from kubernetes import client, watch
from kubernetes import config
cfg = client.Configuration()
config.load_kube_config(config_file=sys.argv[1], client_configuration=cfg)
name = sys.argv[2]
api = client.CoreV1Api(client.ApiClient(cfg))
print("pods=" + ",".join(p.metadata.name for p in api.list_namespaced_pod("default").items))
print("all=%d" % len(api.list_pod_for_all_namespaces().items))
print("phase=" + api.read_namespaced_pod(name, "default").status.phase)
print("side=" + api.read_namespaced_pod_log(name, "default", container="side", tail_lines=2).replace("\n", "|"))
print("kubelet=" + api.list_node().items[0].status.node_info.kubelet_version)
print("events=%d" % len(api.list_namespaced_event("default").items))
w = watch.Watch()
n = 0
for line in w.stream(api.read_namespaced_pod_log, name=name, namespace="default", container="main", follow=True):
    if line.startswith("tick"):
        n += 1
    if n >= 5:
        w.stop()
        break
print("followed=%d" % n)
for e in watch.Watch().stream(api.list_namespaced_pod, "default", timeout_seconds=2):
    print("watch=%s %s" % (e["type"], e["object"].metadata.name))
    break
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &a.kubeconfig().display().to_string(), &pod])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("python3");
    let o = wait_output(&mut child, T);
    assert_eq!(
        o.code, 0,
        "python client failed (is `kubernetes` installed? .ci/run installs it): {o:?}"
    );
    for want in [
        format!("pods={pod}\n"),
        "all=1\n".to_string(),
        "phase=Running\n".to_string(),
        "side=side-says-hello|side-err|\n".to_string(),
        "kubelet=v1.32.0-minikubelet\n".to_string(),
        "followed=5\n".to_string(),
        format!("watch=ADDED {pod}\n"),
    ] {
        assert!(o.stdout.contains(&want), "lacks {want:?}: {o:?}");
    }
}
