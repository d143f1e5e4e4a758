//! Integration tests for exec_sync, the probe handlers, the probe worker and the lifecycle hook
//! handlers, against real processes, a real cgroup and real sockets. Run as root: they create a
//! memory cgroup beneath this test process's own one (removed by a Drop guard) and run commands
//! as uid 65534.
mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, HTTPHeader, LifecycleHandler, Pod, Probe,
    SleepAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use minikubelet::lifecycle::handlers::{HookError, HookKind, run_handler};
use minikubelet::prober::exec::probe_exec;
use minikubelet::prober::http::probe_http;
use minikubelet::prober::tcp::probe_tcp;
use minikubelet::prober::{
    HandlerResult, ProbeResult, ProbeType, ProbeUpdate, ProbeWorkerSpec, spawn_probe_worker,
};
use minikubelet::runtime::exec::{ExecContext, ExecError, exec_sync};
use minikubelet::stats::types::PodReference;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// A memory cgroup beneath this process's own, removed on drop: in the v1 memory hierarchy, or
// in the one cgroup v2 hierarchy.

static CGROUP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Where the memory cgroups are: the v1 memory hierarchy, or the v2 hierarchy.
fn memory_root() -> &'static Path {
    if common::is_v2() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/memory")
    }
}

struct TestCgroup {
    dir: PathBuf,
    /// This process's own path in the hierarchy, e.g. `/process_api/<id>`.
    parent: String,
    name: String,
}

impl TestCgroup {
    fn new() -> Self {
        let v2 = common::is_v2();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        // v1: the line naming the memory controller; v2: the one `0::<path>` line.
        let parent = own
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let ours = if v2 {
                    id == "0" && controllers.is_empty()
                } else {
                    controllers.split(',').any(|c| c == "memory")
                };
                ours.then(|| path.to_string())
            })
            .next()
            .unwrap_or_else(|| panic!("no memory cgroup (v2: {v2}) in /proc/self/cgroup: {own}"));
        let name = format!(
            "mkl-prober-test-{}-{}",
            std::process::id(),
            CGROUP_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = memory_root()
            .join(parent.trim_start_matches('/'))
            .join(&name);
        fs::create_dir(&dir).unwrap();
        TestCgroup { dir, parent, name }
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The path a member sees in /proc/self/cgroup.
    fn path(&self) -> String {
        format!("{}/{}", self.parent.trim_end_matches('/'), self.name)
    }

    /// The line of /proc/<member>/cgroup that names this cgroup: `<id>:memory:<path>` (v1, the
    /// memory hierarchy's line ends so) or `0::<path>` (v2).
    fn is_member_line(&self, line: &str) -> bool {
        if common::is_v2() {
            line == format!("0::{}", self.path())
        } else {
            line.ends_with(&format!(":memory:{}", self.path()))
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if let Ok(procs) = fs::read_to_string(self.procs()) {
                for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("could not remove test cgroup {}", self.dir.display());
    }
}

/// Whether a process is gone (or only a zombie nobody reaped yet).
fn process_dead(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

// ---------------------------------------------------------------------------------------------
// exec_sync

#[tokio::test]
async fn exec_sync_runs_in_the_container_context() {
    let cgroup = TestCgroup::new();
    let workdir = tempfile::tempdir().unwrap();
    fs::set_permissions(workdir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = ExecContext {
        isolation: None,
        pod_ip: None,
        env: vec![
            ("FOO".into(), "bar baz".into()),
            ("PATH".into(), "/usr/bin:/bin".into()),
        ],
        working_dir: Some(workdir.path().to_path_buf()),
        uid: Some(65534),
        gid: Some(65534),
        supplemental_groups: vec![4242],
        cgroup_procs: vec![cgroup.procs()],
        oom_score_adj: None,
    };
    let script = "id -u; id -g; id -G; echo \"$FOO\"; pwd; cat /proc/self/cgroup; echo HOME=${HOME:-unset}; echo err >&2";
    let out = exec_sync(&ctx, &argv(&["sh", "-c", script]), Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8(out.output).unwrap();
    assert_eq!(out.exit_code, 0, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "65534", "uid: {text}");
    assert_eq!(lines[1], "65534", "gid: {text}");
    assert_eq!(lines[2], "65534 4242", "groups: {text}");
    assert_eq!(lines[3], "bar baz", "env: {text}");
    assert_eq!(Path::new(lines[4]), workdir.path(), "cwd: {text}");
    assert!(
        lines.iter().any(|l| cgroup.is_member_line(l)),
        "no cgroup line for {}: {text}",
        cgroup.path()
    );
    // env_clear: nothing of the agent's environment leaks in; stderr comes after stdout.
    assert!(text.contains("HOME=unset"), "{text}");
    assert_eq!(lines.last(), Some(&"err"), "{text}");
}

#[tokio::test]
async fn exec_sync_default_path_and_exit_codes() {
    let ctx = ExecContext::default();
    let out = exec_sync(
        &ctx,
        &argv(&["sh", "-c", "echo $PATH; exit 7"]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(
        String::from_utf8(out.output).unwrap().trim(),
        minikubelet::runtime::exec::DEFAULT_PATH
    );
    let out = exec_sync(
        &ctx,
        &argv(&["sh", "-c", "kill -9 $$"]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, 137);
}

#[tokio::test]
async fn exec_sync_timeout_kills_the_process_group() {
    let cgroup = TestCgroup::new();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let ctx = ExecContext {
        isolation: None,
        cgroup_procs: vec![cgroup.procs()],
        oom_score_adj: None,
        ..Default::default()
    };
    let script = format!("sleep 10 & echo $! > {}; wait", pidfile.display());
    let command = argv(&["sh", "-c", &script]);
    let started = Instant::now();
    let err = exec_sync(&ctx, &command, Duration::from_millis(500))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("command {:?} timed out", command.join(" "))
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The background `sleep 10`, in the same process group, was killed too.
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !process_dead(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(process_dead(pid), "sleep {pid} survived the timeout");
}

#[tokio::test]
async fn exec_sync_reports_a_missing_cgroup() {
    let ctx = ExecContext {
        isolation: None,
        cgroup_procs: vec![memory_root().join("no-such-cgroup-xyz/cgroup.procs")],
        ..Default::default()
    };
    let err = exec_sync(&ctx, &argv(&["true"]), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Cgroup { .. }), "{err}");
    assert!(err.to_string().contains("no-such-cgroup-xyz"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server for the httpGet probe and hook.

struct TestServer {
    port: u16,
    hits: Arc<HashMap<&'static str, AtomicUsize>>,
    last_request: Arc<tokio::sync::Mutex<String>>,
}

const PATHS: &[&str] = &[
    "/ok",
    "/fail",
    "/redirect",
    "/elsewhere",
    "/loop",
    "/headers",
    "/slow",
    "/chunked",
];

async fn serve() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits: Arc<HashMap<&'static str, AtomicUsize>> =
        Arc::new(PATHS.iter().map(|p| (*p, AtomicUsize::new(0))).collect());
    let last_request = Arc::new(tokio::sync::Mutex::new(String::new()));
    let (h, l) = (hits.clone(), last_request.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handle(sock, port, h.clone(), l.clone()));
        }
    });
    TestServer {
        port,
        hits,
        last_request,
    }
}

async fn handle(
    mut sock: TcpStream,
    port: u16,
    hits: Arc<HashMap<&'static str, AtomicUsize>>,
    last: Arc<tokio::sync::Mutex<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    if let Some(counter) = hits.get(path.as_str()) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    *last.lock().await = head.clone();
    let (status, extra, body): (u16, String, String) = match path.as_str() {
        "/ok" => (200, String::new(), "fine".into()),
        "/fail" => (500, String::new(), "secret body".into()),
        "/redirect" => (302, "Location: /ok\r\n".into(), String::new()),
        "/elsewhere" => (
            302,
            format!("Location: http://localhost:{port}/ok\r\n"),
            "moved".into(),
        ),
        "/loop" => (301, "Location: /loop\r\n".into(), String::new()),
        "/headers" => (200, String::new(), head.clone()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (200, String::new(), "late".into())
        }
        "/chunked" => {
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .await;
            return;
        }
        _ => (404, String::new(), "not found".into()),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(response.as_bytes()).await;
}

fn http_action(path: &str) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.into()),
        scheme: Some("HTTP".into()),
        port: IntOrString::Int(0),
        ..Default::default()
    }
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn http_probe_results() {
    let server = serve().await;
    let second = Duration::from_secs(2);
    let cases: Vec<(&str, HandlerResult, String)> = vec![
        ("/ok", HandlerResult::Success, "fine".into()),
        (
            "/fail",
            HandlerResult::Failure,
            "HTTP probe failed with statuscode: 500".into(),
        ),
        ("/redirect", HandlerResult::Success, "fine".into()),
        (
            "/elsewhere",
            HandlerResult::Warning,
            "Probe terminated redirects, Response body: moved".into(),
        ),
        ("/chunked", HandlerResult::Success, "abcde".into()),
    ];
    for (path, want, want_output) in cases {
        let got = probe_http("127.0.0.1", server.port, &http_action(path), second).await;
        assert_eq!(got, (want, want_output), "{path}");
    }

    // A same-host redirect loop: 10 requests, then a failure.
    let (result, output) =
        probe_http("127.0.0.1", server.port, &http_action("/loop"), second).await;
    assert_eq!(result, HandlerResult::Failure);
    assert!(output.ends_with("stopped after 10 redirects"), "{output}");
    assert_eq!(server.hits["/loop"].load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn http_probe_sends_the_kubelets_headers() {
    let server = serve().await;
    let mut action = http_action("/headers");
    action.http_headers = Some(vec![
        HTTPHeader {
            name: "x-custom".into(),
            value: "v1".into(),
        },
        HTTPHeader {
            name: "Host".into(),
            value: "virtual.example".into(),
        },
    ]);
    let (result, _) = probe_http("127.0.0.1", server.port, &action, Duration::from_secs(2)).await;
    assert_eq!(result, HandlerResult::Success);
    let head = server.last_request.lock().await.clone();
    for want in [
        "GET /headers HTTP/1.1\r\n",
        "Host: virtual.example\r\n",
        "User-Agent: kube-probe/1.34\r\n",
        "Accept: */*\r\n",
        "X-Custom: v1\r\n",
    ] {
        assert!(head.contains(want), "{want:?} missing from {head:?}");
    }
}

#[tokio::test]
async fn http_probe_failures() {
    let server = serve().await;
    let started = Instant::now();
    let (result, output) = probe_http(
        "127.0.0.1",
        server.port,
        &http_action("/slow"),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(result, HandlerResult::Failure);
    assert!(output.contains("Client.Timeout exceeded"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let port = closed_port().await;
    let (result, output) =
        probe_http("127.0.0.1", port, &http_action("/"), Duration::from_secs(1)).await;
    assert_eq!(result, HandlerResult::Failure);
    assert_eq!(
        output,
        format!(
            "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );

    let mut https = http_action("/ok");
    https.scheme = Some("HTTPS".into());
    let (result, output) =
        probe_http("127.0.0.1", server.port, &https, Duration::from_secs(1)).await;
    assert_eq!(result, HandlerResult::Failure);
    assert!(output.contains("no TLS client"), "{output}");
}

#[tokio::test]
async fn tcp_probe_open_and_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    assert_eq!(
        probe_tcp("127.0.0.1", open, Duration::from_secs(1)).await,
        (HandlerResult::Success, String::new())
    );
    drop(listener);
    let (result, output) = probe_tcp("127.0.0.1", open, Duration::from_secs(1)).await;
    assert_eq!(result, HandlerResult::Failure);
    assert_eq!(
        output,
        format!("dial tcp 127.0.0.1:{open}: connect: connection refused")
    );
}

#[tokio::test]
async fn exec_probe_results() {
    let ctx = ExecContext::default();
    let exec = |args: &[&str]| ExecAction {
        command: Some(argv(args)),
    };
    let second = Duration::from_secs(1);
    assert_eq!(
        probe_exec(&ctx, &exec(&["true"]), second).await.unwrap(),
        (HandlerResult::Success, String::new())
    );
    assert_eq!(
        probe_exec(&ctx, &exec(&["sh", "-c", "echo nope; exit 1"]), second)
            .await
            .unwrap(),
        (HandlerResult::Failure, "nope\n".into())
    );
    assert_eq!(
        probe_exec(&ctx, &exec(&["sleep", "5"]), second)
            .await
            .unwrap(),
        (
            HandlerResult::Failure,
            "command \"sleep 5\" timed out".into()
        )
    );
    // A command that cannot be started is a probe error, not a failure.
    assert!(
        probe_exec(&ctx, &exec(&["no-such-binary-xyz"]), second)
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Probe workers end to end.

async fn next_update(rx: &mut mpsc::Receiver<ProbeUpdate>) -> ProbeUpdate {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an update within 10s")
        .expect("the worker is running")
}

#[tokio::test]
async fn liveness_worker_reports_a_failing_exec_probe() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy");
    fs::write(&healthy, "").unwrap();
    let probe = Probe {
        exec: Some(ExecAction {
            // $(MARKER) is expanded from the container's env, as the kubelet does.
            command: Some(argv(&["test", "-f", "$(MARKER)"])),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Default::default()
    };
    let container = Container {
        name: "app".into(),
        env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "MARKER".into(),
            value: Some(healthy.display().to_string()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let (tx, mut rx) = mpsc::channel(8);
    let spec = ProbeWorkerSpec {
        pod: "web_default".into(),
        pod_ref: PodReference {
            name: "web".into(),
            namespace: "default".into(),
            uid: String::new(),
        },
        kind: ProbeType::Liveness,
        probe,
        container,
        instance: 0,
        exec: ExecContext::default(),
        started_at: tokio::time::Instant::now(),
    };
    let handle = spawn_probe_worker(spec, tx, None);
    let initial = next_update(&mut rx).await;
    assert_eq!(
        (initial.probe, initial.result),
        (ProbeType::Liveness, ProbeResult::Success)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fs::remove_file(&healthy).unwrap();
    let failed = next_update(&mut rx).await;
    assert_eq!(failed.result, ProbeResult::Failure);
    assert_eq!(failed.message, "Liveness probe failed: ");
    assert_eq!((failed.container.as_str(), failed.instance), ("app", 0));
    // The instance is going away: the worker is done.
    assert!(rx.recv().await.is_none());
    assert!(handle.is_finished());
}

#[tokio::test]
async fn readiness_worker_with_a_named_http_port() {
    let server = serve().await;
    let mut action = http_action("/ok");
    action.port = IntOrString::String("http".into());
    let probe = Probe {
        http_get: Some(action),
        period_seconds: Some(1),
        ..Default::default()
    };
    let container = Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(server.port),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let (tx, mut rx) = mpsc::channel(8);
    let spec = ProbeWorkerSpec {
        pod: "web_default".into(),
        pod_ref: PodReference {
            name: "web".into(),
            namespace: "default".into(),
            uid: String::new(),
        },
        kind: ProbeType::Readiness,
        probe,
        container,
        instance: 1,
        exec: ExecContext::default(),
        started_at: tokio::time::Instant::now(),
    };
    let _handle = spawn_probe_worker(spec, tx, None);
    assert_eq!(next_update(&mut rx).await.result, ProbeResult::Failure);
    let ready = next_update(&mut rx).await;
    assert_eq!(
        (ready.result, ready.message.as_str()),
        (ProbeResult::Success, "")
    );
}

// ---------------------------------------------------------------------------------------------
// Lifecycle hooks.

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("u1".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn container() -> Container {
    Container {
        name: "c".into(),
        ..Default::default()
    }
}

fn exec_hook(args: &[&str]) -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(argv(args)),
        }),
        ..Default::default()
    }
}

fn http_hook(port: u16, path: &str) -> LifecycleHandler {
    let mut action = http_action(path);
    action.port = IntOrString::Int(i32::from(port));
    LifecycleHandler {
        http_get: Some(action),
        ..Default::default()
    }
}

#[tokio::test]
async fn exec_hooks() {
    let ctx = ExecContext::default();
    let t = Duration::from_secs(5);
    run_handler(&exec_hook(&["true"]), &pod(), &container(), &ctx, t)
        .await
        .unwrap();
    let err = run_handler(
        &exec_hook(&["sh", "-c", "echo bye; exit 3"]),
        &pod(),
        &container(),
        &ctx,
        t,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Exec lifecycle hook ([sh -c echo bye; exit 3]) for Container \"c\" in Pod \"web_default(u1)\" failed - error: command 'sh -c echo bye; exit 3' exited with 3, message: \"bye\\n\""
    );
    let started = Instant::now();
    let err = run_handler(
        &exec_hook(&["sleep", "10"]),
        &pod(),
        &container(),
        &ctx,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            HookError::Timeout {
                kind: HookKind::Exec,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn http_hooks_ignore_the_status_code() {
    let server = serve().await;
    let ctx = ExecContext::default();
    let t = Duration::from_secs(2);
    for path in ["/ok", "/fail", "/redirect"] {
        run_handler(&http_hook(server.port, path), &pod(), &container(), &ctx, t)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert_eq!(server.hits["/fail"].load(Ordering::SeqCst), 1);
    assert!(
        server
            .last_request
            .lock()
            .await
            .contains("User-Agent: kube-lifecycle/1.34\r\n")
    );

    let port = closed_port().await;
    let err = run_handler(&http_hook(port, "/hook"), &pod(), &container(), &ctx, t)
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        format!(
            "HTTP lifecycle hook (/hook) for Container \"c\" in Pod \"web_default(u1)\" failed - error: Get \"http://127.0.0.1:{port}/hook\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );

    let err = run_handler(
        &http_hook(server.port, "/slow"),
        &pod(),
        &container(),
        &ctx,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            HookError::Timeout {
                kind: HookKind::Http,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn sleep_hook_sleeps() {
    let hook = LifecycleHandler {
        sleep: Some(SleepAction { seconds: 1 }),
        ..Default::default()
    };
    let started = Instant::now();
    run_handler(
        &hook,
        &pod(),
        &container(),
        &ExecContext::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );
}
