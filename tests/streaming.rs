//! Exec, attach and port-forward against the real agent, with real clients: kubectl 1.32
//! (WebSocket v5, SPDY tunneled in WebSocket, and plain SPDY with the WEBSOCKETS switches off)
//! and a tokio-tungstenite client for the older channel protocols, the kubelet paths and bad
//! input. Each test runs its own agent in its own test cgroup (see `common`); the pods run
//! from the busybox test image, so `exec` enters the container (its PID 1, its overlay root).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, TALKER, container_status};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(20);

/// A pod with a long-running main container (its env and working dir checked by exec), a side
/// container reading stdin, and a few-lines printer for attach.
const BOX: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    workingDir: /tmp
    env: [{name: GREETING, value: hello-from-box}]
  - name: side
    image: localhost/busybox:test
    command: ["sleep", "3600"]
"#;

type Run = common::ClientRun;

/// Runs `cmd` with `stdin`, killing it after `timeout`; a client still running then fails the
/// test.
fn run(cmd: Command, stdin: &[u8], timeout: Duration) -> Run {
    let r = common::run_client(cmd, stdin, timeout);
    assert!(
        !r.timed_out,
        "client timed out; stdout {:?} stderr {:?}",
        r.stdout, r.stderr
    );
    r
}

/// kubectl 1.32 against the agent, with a fresh HOME (no discovery cache).
fn kubectl(a: &Agent, home: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::kubectl());
    c.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .arg(format!("--kubeconfig={}", a.kubeconfig().display()))
        .args(args);
    c
}

/// Starts an agent with the box pod running; the pod's full name.
fn agent_with_box() -> (Agent, String) {
    let a = Agent::start(&[]);
    a.write_manifest("box.yaml", BOX);
    a.wait_running("box", "main", T);
    a.wait_running("box", "side", T);
    let name = a.pod("box").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    (a, name)
}

#[test]
fn kubectl_exec_exit_codes_stdin_env_and_cgroup() {
    let (a, pod) = agent_with_box();
    let home = tempfile::tempdir().unwrap();
    let uid = a.pod("box").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();

    // Exit 0, in the container's env, working dir and cgroup, and in its PID namespace (its
    // PID 1 is main's sleep); the default container is main.
    let r = run(
        kubectl(
            &a,
            home.path(),
            &[
                "exec",
                &pod,
                "--",
                "sh",
                "-c",
                "echo $GREETING; pwd; cat /proc/self/cgroup; echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline)",
            ],
        ),
        b"",
        T,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("hello-from-box"));
    assert_eq!(lines.next(), Some("/tmp"));
    assert!(
        r.stdout.contains(&format!("pod{uid}/main")),
        "not in the container's cgroup: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("pid1=sleep 3600"),
        "not in the container's PID namespace: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains("Defaulted container \"main\""),
        "{}",
        r.stderr
    );

    // Exit codes come back as kubectl's own.
    for code in [3, 130] {
        let r = run(
            kubectl(
                &a,
                home.path(),
                &[
                    "exec",
                    &pod,
                    "-c",
                    "side",
                    "--",
                    "sh",
                    "-c",
                    &format!("echo out; echo err >&2; exit {code}"),
                ],
            ),
            b"",
            T,
        );
        assert_eq!(r.code, code, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "out\n");
        assert!(r.stderr.contains("err\n"), "{}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("command terminated with exit code {code}")),
            "{}",
            r.stderr
        );
    }

    // Piped stdin, closed with the v5 CLOSE signal so cat ends.
    let r = run(
        kubectl(&a, home.path(), &["exec", "-i", &pod, "--", "cat"]),
        b"a\nb\n",
        T,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "a\nb\n"), "{}", r.stderr);

    // The SPDY fallback (what kubectl does when WebSockets are off, and kubectl < 1.30 always):
    // stdin with its FIN, stdout, stderr and the exit code on the error stream.
    let mut cmd = kubectl(
        &a,
        home.path(),
        &[
            "exec",
            "-i",
            &pod,
            "--",
            "sh",
            "-c",
            "cat; echo e >&2; exit 5",
        ],
    );
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let r = run(cmd, b"over spdy\n", T);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (5, "over spdy\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("e\n"), "{}", r.stderr);

    // Unknown container: the server refuses before any upgrade, both over WebSocket and the
    // SPDY retry, with a Status kubectl prints.
    let r = run(
        kubectl(&a, home.path(), &["exec", &pod, "-c", "nope", "--", "true"]),
        b"",
        T,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("container nope is not valid for pod"),
        "{}",
        r.stderr
    );
    // Unknown pod.
    let r = run(
        kubectl(&a, home.path(), &["exec", "nope", "--", "true"]),
        b"",
        T,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("pods \"nope\" not found"), "{}", r.stderr);
}

#[test]
fn kubectl_exec_with_a_tty() {
    let (a, pod) = agent_with_box();
    let home = tempfile::tempdir().unwrap();
    // script(1) gives kubectl a real terminal, so -t is kept and a resize is sent.
    let inner = format!(
        "{} --kubeconfig={} exec -it {pod} -- sh -c 'test -t 0 && echo TTY-OK; stty size; exit 130'",
        common::kubectl(),
        a.kubeconfig().display()
    );
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm")
        .args(["-qec", &inner, "/dev/null"]);
    let r = run(cmd, b"", T);
    assert!(r.stdout.contains("TTY-OK"), "{:?} {:?}", r.stdout, r.stderr);
    assert_eq!(r.code, 130, "{:?} {:?}", r.stdout, r.stderr);
    // The same over SPDY (resize on its own stream).
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm")
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .args(["-qec", &inner, "/dev/null"]);
    let r = run(cmd, b"", T);
    assert!(r.stdout.contains("TTY-OK"), "{:?} {:?}", r.stdout, r.stderr);
    assert_eq!(r.code, 130, "{:?} {:?}", r.stdout, r.stderr);
}

#[test]
fn kubectl_attach_to_stdin_and_output() {
    let a = Agent::start(&[]);
    a.write_manifest("talker.yaml", TALKER);
    a.wait_running("talker", "main", T);
    let pod = a.pod("talker").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let home = tempfile::tempdir().unwrap();
    // stdinOnce: when kubectl's stdin ends, the container's does too, the loop ends, the
    // container exits and the attach session ends with success.
    let r = run(
        kubectl(&a, home.path(), &["attach", "-i", &pod]),
        b"x\ny\n",
        T,
    );
    assert_eq!(r.code, 0, "{:?} {:?}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "got x\ngot y\nbye\n", "{:?}", r.stderr);
    assert!(r.stderr.contains("err x\nerr y\n"), "{:?}", r.stderr);
    let c = a.wait_for("talker exited", T, |a| {
        let p = a.pod("talker")?;
        container_status(&p, "main").filter(|c| c["state"]["terminated"].is_object())
    });
    assert_eq!(c["state"]["terminated"]["exitCode"], 0);
    // The same lines are in the container's log: attach is a copy, not a diversion.
    let logs: String = walk_logs(&a.logs_dir);
    assert!(logs.contains("stdout F got x"), "{logs}");
}

fn walk_logs(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(s) = std::fs::read_to_string(&p) {
                out.push_str(&s);
            }
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET through a forwarded port; the body.
fn http_get_body(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read: {e} after {buf:?}"))?;
    buf.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .ok_or_else(|| format!("no HTTP answer: {buf:?}"))
}

#[test]
fn kubectl_port_forward_websocket_and_spdy() {
    let a = Agent::start(&[]);
    let pod_port = free_port();
    // busybox httpd serves a file the container writes into its own root; the pod has the
    // node's network (no pod network namespace yet), so it listens on the node's loopback.
    a.write_manifest(
        "web.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "mkdir -p /www && echo 'hello through the tunnel' > /www/hello.txt && exec httpd -f -p 127.0.0.1:{pod_port} -h /www"]
"#
        ),
    );
    a.wait_running("web", "main", T);
    let pod = a.pod("web").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Wait until the server listens.
    a.wait_for("httpd listening", T, |_| {
        TcpStream::connect(("127.0.0.1", pod_port)).ok().map(|_| ())
    });
    let home = tempfile::tempdir().unwrap();
    // WebSocket tunnel first (kubectl 1.32's default), then plain SPDY.
    for websockets in ["true", "false"] {
        let local = free_port();
        let mut cmd = kubectl(
            &a,
            home.path(),
            &[
                "port-forward",
                &format!("pod/{pod}"),
                &format!("{local}:{pod_port}"),
            ],
        );
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        // Keep reading kubectl's stdout to its end: it prints a line per connection, and Go
        // dies of SIGPIPE writing to a closed stdout.
        let mut stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let mut seen = String::new();
            let mut told = false;
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
                if !told && seen.contains("Forwarding from") {
                    told = true;
                    let _ = ready_tx.send(seen.clone());
                }
            }
            if !told {
                let _ = ready_tx.send(seen);
            }
        });
        let seen = ready_rx.recv_timeout(T).unwrap_or_default();
        assert!(seen.contains("Forwarding from"), "{seen:?}");
        // Two requests: two forwarded connections on one SPDY session.
        let bodies: Vec<Result<String, String>> =
            (0..2).map(|_| http_get_body(local, "/hello.txt")).collect();
        let _ = child.kill();
        let _ = child.wait();
        let errors = errors.join().unwrap();
        for body in bodies {
            assert_eq!(
                body.as_deref(),
                Ok("hello through the tunnel\n"),
                "websockets={websockets}\nkubectl: {errors}\n{}",
                common::tail(&a.agent_log(), 30)
            );
        }
    }
}

/// Reads a WebSocket session to its end: (stdout, stderr, status on channel 3, close code);
/// pongs are counted in `pongs`.
async fn read_session(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    base64: bool,
    pongs: &mut usize,
) -> (String, String, String, Option<u16>) {
    use base64::Engine;
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
    let mut close = None;
    while let Some(msg) = tokio::time::timeout(T, ws.next())
        .await
        .expect("session ended")
    {
        let (ch, data) = match msg.unwrap() {
            Message::Binary(b) if !base64 => match b.split_first() {
                Some((c, rest)) => (*c, rest.to_vec()),
                None => continue,
            },
            Message::Text(t) if base64 => {
                let s = t.as_str();
                let ch = s.as_bytes()[0] - b'0';
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&s[1..])
                    .unwrap();
                (ch, data)
            }
            Message::Close(f) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            Message::Pong(_) => {
                *pongs += 1;
                continue;
            }
            other => panic!("unexpected message {other:?}"),
        };
        match ch {
            1 => out.extend(data),
            2 => err.extend(data),
            3 => status.extend(data),
            _ => {}
        }
    }
    let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    (s(out), s(err), s(status), close)
}

async fn connect(
    url: &str,
    protocol: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut req = common::with_token(url.into_client_request().unwrap());
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(protocol)
    );
    Ok(ws)
}

#[test]
fn websocket_v4_base64_kubelet_paths_and_bad_input() {
    let (a, pod) = agent_with_box();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let base = format!("ws://127.0.0.1:{}", a.port);
        // The kubelet's own path with the query the API server writes (flags as `1`), v4 binary.
        let url = format!(
            "{base}/exec/default/{pod}/main?command=sh&command=-c&command=read+x%3B+echo+got+%24x%3B+exit+7&stdin=1&stdout=1&stderr=1"
        );
        let mut ws = connect(&url, "v4.channel.k8s.io").await.unwrap();
        // Pings are answered (sent first: once the server has sent its Close, it sends nothing).
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        ws.send(Message::Binary(b"\x00line\n".to_vec().into()))
            .await
            .unwrap();
        let mut pongs = 0;
        let (out, _err, status, close) = read_session(&mut ws, false, &mut pongs).await;
        assert_eq!(out, "got line\n");
        assert_eq!(pongs, 1, "the ping was answered");
        let st: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(st["details"]["causes"][0]["message"], "7");
        assert_eq!(close, Some(1000));

        // The API path with base64 text frames; the {uid} kubelet form too.
        let uid = a.pod("box").unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        for url in [
            format!("{base}/api/v1/namespaces/default/pods/{pod}/exec?command=echo&command=b64&container=side&stdout=true"),
            format!("{base}/exec/default/{pod}/{uid}/side?command=echo&command=b64&stdout=1"),
        ] {
            let mut ws = connect(&url, "v4.base64.channel.k8s.io").await.unwrap();
            let (out, _, status, close) = read_session(&mut ws, true, &mut 0).await;
            assert_eq!(out, "b64\n", "{url}");
            assert_eq!(
                serde_json::from_str::<Value>(&status).unwrap()["status"],
                "Success"
            );
            assert_eq!(close, Some(1000));
        }

        // Bad input: each refused before the upgrade, with a Status.
        let http = |path: String| {
            let port = a.port;
            async move {
                let mut req = common::with_token(
                    format!("ws://127.0.0.1:{port}{path}")
                        .into_client_request()
                        .unwrap(),
                );
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().unwrap());
                match tokio_tungstenite::connect_async(req).await {
                    Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                        let body = resp.body().clone().unwrap_or_default();
                        (resp.status().as_u16(), serde_json::from_slice::<Value>(&body).unwrap())
                    }
                    other => panic!("{path}: expected a refusal, got {:?}", other.map(|_| ())),
                }
            }
        };
        let cases = [
            ("/exec/default/nope/main?command=true&stdout=1".to_string(), 404, "pod does not exist"),
            (format!("/exec/default/{pod}/nope?command=true&stdout=1"), 404, "container not found"),
            (format!("/exec/default/{pod}/main?command=true"), 400, "you must specify at least 1 of stdin, stdout, stderr"),
            (format!("/exec/default/{pod}/main?stdout=1"), 400, "you must specify a command"),
            ("/exec/default/..%2Fx/main?command=true&stdout=1".to_string(), 400, "invalid pod name"),
            (format!("/exec/default/{pod}/wrong-uid/main?command=true&stdout=1"), 404, "pod does not exist"),
            ("/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=true".to_string(), 404, "pods \"nope\" not found"),
            (format!("/api/v1/namespaces/default/pods/{pod}/exec?command=true&stdout=true"), 400, "a container name must be specified"),
            (format!("/api/v1/namespaces/default/pods/{pod}/attach?container=zzz&stdout=true"), 400, "container zzz is not valid"),
        ];
        for (path, code, msg) in cases {
            let (got, body) = http(path.clone()).await;
            assert_eq!(got, code, "{path}: {body}");
            assert_eq!(body["kind"], "Status", "{path}");
            assert!(
                body["message"].as_str().unwrap_or("").contains(msg),
                "{path}: {body}"
            );
        }

        // The streaming server itself: unknown, reused and expired tokens are 404 Statuses.
        let streaming = a
            .agent_log()
            .lines()
            .find(|l| l.contains("streaming server listening"))
            .and_then(|l| l.split("address=").nth(1))
            .map(|s| s.split_whitespace().next().unwrap().trim_matches('"').to_string())
            .expect("streaming server address in the agent log");
        let unknown = format!("ws://{streaming}/exec/AAAAAAAA");
        let mut req = unknown.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 404);
                let body: Value =
                    serde_json::from_slice(&resp.body().clone().unwrap_or_default()).unwrap();
                assert_eq!(body["reason"], "NotFound");
            }
            other => panic!("unknown token accepted: {:?}", other.map(|_| ())),
        }
    });
}

/// The streaming server on its own, in-process: a token is single use and expires.
#[test]
fn streaming_tokens_single_use_and_expiry() {
    use minikubelet::server::streaming::{ExecRequest, StreamingConfig, StreamingServer};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let runtime: std::sync::Arc<dyn minikubelet::runtime::ContainerRuntime> =
            std::sync::Arc::new(
                minikubelet::runtime::ShimRuntime::new(root.path(), "/bin/false".into()).unwrap(),
            );
        let mut cfg = StreamingConfig::new(Duration::from_secs(60));
        cfg.token_ttl = Duration::from_millis(300);
        let srv = StreamingServer::start(cfg, runtime).await.unwrap();
        let req = ExecRequest {
            container_id: "0".repeat(32),
            cmd: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: false,
        };
        let refused = |url: String| async move {
            let ws_url = url.replace("http://", "ws://");
            let mut req = ws_url.into_client_request().unwrap();
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io".parse().unwrap(),
            );
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    let body: Value =
                        serde_json::from_slice(&resp.body().clone().unwrap_or_default()).unwrap();
                    (
                        resp.status().as_u16(),
                        body["message"].as_str().unwrap_or("").to_string(),
                    )
                }
                other => panic!("{url}: accepted: {:?}", other.map(|_| ())),
            }
        };
        // First use: the token is taken (the container then is not running); second use: gone.
        let url = srv.get_exec(req.clone()).unwrap();
        let (code, msg) = refused(url.clone()).await;
        assert_eq!(code, 404);
        assert!(msg.contains("is not running"), "{msg}");
        let (code, msg) = refused(url).await;
        assert_eq!(code, 404);
        assert!(msg.contains("unknown, used or expired"), "{msg}");
        // Expired before first use.
        let url = srv.get_exec(req.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (code, msg) = refused(url).await;
        assert_eq!(code, 404);
        assert!(msg.contains("unknown, used or expired"), "{msg}");
        // A token for exec does not open an attach.
        let url = srv.get_exec(req).unwrap().replace("/exec/", "/attach/");
        assert_eq!(refused(url).await.0, 404);
    });
}

/// A plain HTTP request with a method and the admin token; (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    common::http_request(port, method, path, common::token_for(port).as_deref(), &[])
        .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

#[test]
fn run_endpoint_and_idle_timeout() {
    let a = Agent::start(&["--streaming-connection-idle-timeout=1s"]);
    a.write_manifest("box.yaml", BOX);
    a.wait_running("box", "main", T);
    let pod = a.pod("box").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // /run: ExecSync in the container's context, output as the body.
    let (code, body) = http(
        a.port,
        "POST",
        &format!("/run/default/{pod}/main?cmd=sh+-c+pwd"),
    );
    assert_eq!((code, body.as_str()), (200, "/tmp\n"));
    let (code, body) = http(a.port, "POST", &format!("/run/default/{pod}/nope?cmd=true"));
    assert_eq!(code, 404, "{body}");
    // Exec and attach without an upgrade are refused (the kubelet's upgradeRequired).
    let (code, body) = http(
        a.port,
        "GET",
        &format!("/exec/default/{pod}/main?command=true&stdout=1"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Upgrade request required"), "{body}");

    // A session with no traffic either way ends after streamingConnectionIdleTimeout, with a
    // Failure status and a proper close; its process is killed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!(
            "ws://127.0.0.1:{}/exec/default/{pod}/main?command=sleep&command=30&stdout=1",
            a.port
        );
        let started = Instant::now();
        let mut ws = connect(&url, "v5.channel.k8s.io").await.unwrap();
        let (_, _, status, close) = read_session(&mut ws, false, &mut 0).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        let st: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(st["status"], "Failure");
        assert!(st["message"].as_str().unwrap().contains("idle"), "{status}");
        assert_eq!(close, Some(1000));
    });
    a.wait_for("idle exec killed", T, |a| {
        let procs = a.cgroup.pids();
        let sleeping = procs.iter().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.starts_with(b"sleep\x0030"))
                .unwrap_or(false)
        });
        (!sleeping).then_some(())
    });
}

/// The official Python client's exec (its WebSocket stream, `v4.channel.k8s.io`), installed by
/// `.ci/run` (`pip install kubernetes==31.0.0`).
#[test]
fn python_client_exec_stream() {
    let (a, pod) = agent_with_box();
    let script = r#"
import sys
from kubernetes import client
from kubernetes.stream import stream
from kubernetes import config
cfg = client.Configuration()
config.load_kube_config(config_file=sys.argv[1], client_configuration=cfg)
api = client.CoreV1Api(client.ApiClient(cfg))
out = stream(api.connect_get_namespaced_pod_exec, sys.argv[2], "default",
             command=["sh", "-c", "echo py-$GREETING"], container="main",
             stderr=True, stdin=False, stdout=True, tty=False)
print("out=" + out.strip())
resp = stream(api.connect_get_namespaced_pod_exec, sys.argv[2], "default",
              command=["sh", "-c", "read x; echo got-$x; exit 4"], container="main",
              stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
resp.write_stdin("line\n")
got = ""
while resp.is_open():
    resp.update(timeout=5)
    got += resp.read_stdout()
print("got=" + got.strip())
print("rc=%s" % resp.returncode)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &a.kubeconfig().display().to_string(), &pod]);
    let r = run(cmd, b"", T);
    assert_eq!(
        r.code, 0,
        "python client failed (is `kubernetes` installed? .ci/run installs it)\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(r.stdout.contains("out=py-hello-from-box"), "{}", r.stdout);
    assert!(r.stdout.contains("got=got-line"), "{}", r.stdout);
    assert!(r.stdout.contains("rc=4"), "{}", r.stdout);
}
