//! Authentication of the kubelet API on loopback, as a local attacker and a web page would try
//! it: a second local user (`setpriv --reuid=65534`, "nobody") gets 401 everywhere and runs
//! nothing; root gets in with the admin token of the 0600 kubeconfig (curl, kubectl 1.32, the
//! Python client), which survives a restart; requests naming another host (DNS rebinding) or
//! carrying another site's `Origin` (CSRF, cross-site WebSocket) are refused with no side
//! effect; `--anonymous-auth=true` serves anonymous requests and says what that exposes.
//! Each side effect is a `touch` of a marker that must not appear, beside a positive control
//! that makes it appear.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Agent, ClientRun, http_raw, http_request, run_client};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(20);

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  # The commands run in it touch markers on the node's /tmp that the test looks for (a
  # command that ran must show; one refused must not): the node's filesystem, isolated.
  annotations: {minikubelet.io/host-filesystem: "true"}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sleep", "3600"]
"#;

/// An agent with the sleeper running; its pod name.
fn agent(extra: &[&str]) -> (Agent, String) {
    let a = Agent::start(extra);
    a.write_manifest("sleeper.yaml", SLEEPER);
    a.wait_running("sleeper", "main", T);
    let pod = a.pod("sleeper").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    (a, pod)
}

/// A marker path in the agent's temp dir (0755, root's: nobody cannot create it itself).
fn marker(a: &Agent, name: &str) -> PathBuf {
    a.tmp.path().join(name)
}

/// The `/run` path that touches `m` in the sleeper.
fn touch_path(pod: &str, m: &Path) -> String {
    format!("/run/default/{pod}/main?cmd=touch+{}", m.display())
}

/// curl as nobody (uid/gid 65534, no supplementary groups): the body then the status code on
/// the last line.
fn curl_as_nobody(args: &[&str]) -> ClientRun {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
    ])
    .args(args);
    run_client(c, b"", T)
}

/// The status code and the body of a `curl_as_nobody`/`curl` run.
fn code_and_body(r: &ClientRun) -> (u16, String) {
    let (body, code) = r.stdout.rsplit_once('\n').unwrap_or(("", &r.stdout));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// curl as root with the given extra arguments.
fn curl(args: &[&str]) -> ClientRun {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args);
    run_client(c, b"", T)
}

/// The headers of a WebSocket upgrade of exec (v5), for curl.
const UPGRADE: [&str; 10] = [
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "-H",
    "Sec-WebSocket-Protocol: v5.channel.k8s.io",
];

fn assert_status(body: &str, code: u16, reason: &str, words: &[&str]) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["code"], code, "{body}");
    assert_eq!(v["reason"], reason, "{body}");
    for w in words {
        assert!(
            v["message"].as_str().unwrap_or("").contains(w),
            "{w}: {body}"
        );
    }
    v
}

#[test]
fn a_second_local_user_gets_401_everywhere_and_runs_nothing() {
    let (a, pod) = agent(&[]);
    let base = format!("http://127.0.0.1:{}", a.port);
    let m = marker(&a, "nobody-ran");
    let run = touch_path(&pod, &m);
    let exec = format!(
        "/exec/default/{pod}/main?command=touch&command={}&stdout=1",
        m.display()
    );
    for (method, path) in [
        ("GET", "/healthz".to_string()),
        ("GET", "/pods".to_string()),
        ("GET", "/api/v1/pods".to_string()),
        ("GET", "/api/v1/namespaces/default/pods".to_string()),
        ("GET", format!("/containerLogs/default/{pod}/main")),
        ("GET", "/metrics".to_string()),
        ("GET", "/stats/summary".to_string()),
        ("GET", "/configz".to_string()),
        ("GET", "/debug/eviction".to_string()),
        ("GET", "/nowhere".to_string()),
        ("POST", run.clone()),
        ("GET", exec.clone()),
    ] {
        let url = format!("{base}{path}");
        let r = curl_as_nobody(&["-X", method, &url]);
        let (code, body) = code_and_body(&r);
        assert_eq!(code, 401, "nobody {method} {path}: {r:?}");
        assert_status(&body, 401, "Unauthorized", &[]);
    }
    // An exec upgrade (WebSocket) and the localhost name: the same.
    let url = format!("{base}{exec}");
    let mut args = vec!["--http1.1"];
    args.extend(UPGRADE);
    args.push(&url);
    assert_eq!(code_and_body(&curl_as_nobody(&args)).0, 401);
    let url = format!("http://localhost:{}{run}", a.port);
    assert_eq!(code_and_body(&curl_as_nobody(&["-X", "POST", &url])).0, 401);
    // A raw HTTP/1.0 request without Host (served past the Host check) still authenticates.
    let (code, _) = http_raw(a.port, "GET /pods HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!m.exists(), "nobody ran a command as root");

    // nobody cannot read the credential: both files are root's, 0600.
    for f in [
        a.root_dir.join("kubeconfig"),
        a.root_dir.join("pki/admin.token"),
    ] {
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid()),
            (0o600, 0),
            "{}",
            f.display()
        );
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&f);
        let r = run_client(c, b"", T);
        assert!(
            r.code != 0 && r.stderr.contains("Permission denied") && r.stdout.is_empty(),
            "{}: {r:?}",
            f.display()
        );
    }
    let pki = std::fs::metadata(a.root_dir.join("pki")).unwrap();
    assert_eq!(pki.mode() & 0o7777, 0o700);

    // The positive control: root with the token runs the same /run.
    let bearer = format!("Authorization: {}", a.bearer());
    let url = format!("{base}{run}");
    let r = curl(&["-X", "POST", "-H", &bearer, &url]);
    assert_eq!(code_and_body(&r).0, 200, "{r:?}");
    assert!(m.exists(), "the marker is made by an authenticated /run");
}

#[test]
fn root_gets_in_with_the_kubeconfig_token_which_survives_a_restart() {
    let (mut a, pod) = agent(&[]);
    let token = a.token();
    assert_eq!(token.len(), 64, "256 bits, hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(
        std::fs::read_to_string(a.root_dir.join("pki/admin.token"))
            .unwrap()
            .trim(),
        token
    );
    let kubeconfig = a.kubeconfig();
    let base = format!("http://127.0.0.1:{}", a.port);

    // curl with the token; a wrong one, or one of a different length, is 401.
    let r = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{base}/pods"),
    ]);
    let (code, body) = code_and_body(&r);
    assert_eq!(code, 200, "{r:?}");
    assert!(body.contains(&pod), "{body}");
    let mut wrong = token.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    for t in [wrong.as_str(), &token[..63], "x"] {
        let (code, body) = http_request(a.port, "GET", "/pods", Some(t), &[]).unwrap();
        assert_eq!(code, 401, "{t}");
        assert_status(&body, 401, "Unauthorized", &[]);
    }
    assert!(a.log_contains("invalid bearer token"));
    // The kubeconfig's server URL carries the token for kubectl over plain HTTP (it sends a
    // user's token over TLS only): `/auth/<token>` is stripped and authenticates.
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains(&format!("server: {base}/auth/{token}\n")),
        "{text}"
    );
    let (code, body) =
        http_request(a.port, "GET", &format!("/auth/{token}/pods"), None, &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, _) = http_request(a.port, "GET", &format!("/auth/{wrong}/pods"), None, &[]).unwrap();
    assert_eq!(code, 401);
    let (code, _) = http_request(a.port, "GET", "/auth//pods", None, &[]).unwrap();
    assert_eq!(code, 401);

    // kubectl 1.32 with the kubeconfig as it is.
    let home = tempfile::tempdir().unwrap();
    let kubectl = |args: &[&str]| {
        let mut c = Command::new(common::kubectl());
        c.env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(args);
        run_client(c, b"", T)
    };
    let r = kubectl(&["get", "pods", "-o", "name"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, format!("pod/{pod}").as_str()),
        "{r:?}"
    );
    let r = kubectl(&["exec", &pod, "--", "sh", "-c", "echo in-$((6*7))"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "in-42\n"), "{r:?}");

    // The Python client, from the kubeconfig.
    let script = "import sys\nfrom kubernetes import client, config\nconfig.load_kube_config(config_file=sys.argv[1])\nprint(','.join(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod('default').items))\n";
    let mut py = Command::new("python3");
    py.args(["-c", script]).arg(&kubeconfig);
    let r = run_client(py, b"", T);
    assert_eq!((r.code, r.stdout.trim()), (0, pod.as_str()), "{r:?}");

    // A restart keeps the token: copies of the kubeconfig keep working.
    let copy = std::fs::read_to_string(&kubeconfig).unwrap();
    a.stop();
    a.spawn();
    assert_eq!(a.token(), token);
    assert_eq!(std::fs::read_to_string(a.kubeconfig()).unwrap(), copy);
    let r = kubectl(&["get", "pods", "-o", "name"]);
    assert_eq!(r.code, 0, "{r:?}");
    let meta = std::fs::metadata(a.root_dir.join("kubeconfig")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0));
    assert!(
        !a.agent_log().contains(&token),
        "the token is never logged (paths are logged after /auth/<token> is stripped)"
    );
}

#[test]
fn other_hosts_and_other_origins_are_refused_with_no_side_effect() {
    let (a, pod) = agent(&[]);
    let token = a.token();
    let port = a.port.to_string();
    let m = marker(&a, "browser-ran");
    let run = touch_path(&pod, &m);

    // DNS rebinding: the page's own name, re-pointed at 127.0.0.1, is the Host. Refused
    // before authentication (the Status names the host), with or without a token.
    let rebind = format!("rebind.evil.example:{port}");
    for t in [Some(token.as_str()), None] {
        let (code, body) = http_request(a.port, "POST", &run, t, &[("Host", &rebind)]).unwrap();
        assert_eq!(code, 403, "{body}");
        assert_status(
            &body,
            403,
            "Forbidden",
            &[&format!("{rebind:?}"), "DNS rebinding"],
        );
    }
    // An absolute-form target naming another host counts as its Host.
    let abs = format!(
        "POST http://rebind.evil.example:{port}{run} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http_raw(a.port, &abs).unwrap().0, 403);

    // A browser's cross-site POST (a form or fetch with text/plain): refused.
    let origin_evil = [
        ("Host", format!("127.0.0.1:{port}")),
        ("Origin", "http://evil.example".to_string()),
        ("Content-Type", "text/plain".to_string()),
    ];
    let h: Vec<(&str, &str)> = origin_evil.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, body) = http_request(a.port, "POST", &run, Some(&token), &h).unwrap();
    assert_eq!(code, 403, "{body}");
    assert_status(
        &body,
        403,
        "Forbidden",
        &["\"http://evil.example\"", "cross-origin"],
    );
    // A null origin (sandboxed frame) and the same host on another port are other origins.
    for o in ["null", &format!("http://127.0.0.1:{}", a.port + 1)] {
        let (code, _) = http_request(a.port, "POST", &run, Some(&token), &[("Origin", o)]).unwrap();
        assert_eq!(code, 403, "{o}");
    }

    // A cross-site WebSocket exec (a GET upgrade): refused before the upgrade.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ws_exec = |origin: Option<&str>| {
        let url = format!(
            "ws://127.0.0.1:{}/exec/default/{pod}/main?command=touch&command={}&stdout=1",
            a.port,
            m.display()
        );
        let mut req = common::with_token(url.into_client_request().unwrap());
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        rt.block_on(async {
            match tokio_tungstenite::connect_async(req).await {
                Ok((mut ws, _)) => {
                    use futures_util::StreamExt;
                    // Read to the end: the command ran and its status came.
                    while let Some(Ok(_)) = ws.next().await {}
                    (101, String::new())
                }
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (
                    resp.status().as_u16(),
                    String::from_utf8_lossy(&resp.body().clone().unwrap_or_default()).to_string(),
                ),
                Err(e) => panic!("exec: {e}"),
            }
        })
    };
    let (code, body) = ws_exec(Some("http://evil.example"));
    assert_eq!(code, 403, "{body}");
    assert_status(&body, 403, "Forbidden", &["\"http://evil.example\""]);
    // SPDY (kubectl's fallback) is a GET upgrade too.
    let spdy = format!(
        "GET /exec/default/{pod}/main?command=touch&command={}&stdout=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        m.display()
    );
    assert_eq!(http_raw(a.port, &spdy).map(|r| r.0), Some(403));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!m.exists(), "a refused request ran its command");
    assert!(a.log_contains("refused request"));

    // Same-origin requests work: Python's websocket-client sends its own server as Origin.
    let same = format!("http://127.0.0.1:{}", a.port);
    let (code, body) = ws_exec(Some(&same));
    assert_eq!(code, 101, "{body}");
    assert!(m.exists(), "the same-origin exec ran");
    std::fs::remove_file(&m).unwrap();
    let (code, body) = http_request(
        a.port,
        "POST",
        &run,
        Some(&token),
        &[
            ("Host", &format!("localhost:{port}")),
            ("Origin", &format!("http://localhost:{port}")),
        ],
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(m.exists(), "the same-origin /run ran");
}

#[test]
fn anonymous_on_loopback_serves_everyone_and_says_so() {
    // Under RBAC (the default) anonymous requests get only what a binding grants
    // system:anonymous / system:unauthenticated: with no policy, nothing but discovery.
    let (a, _pod) = agent(&["--anonymous-auth=true"]);
    let r = curl_as_nobody(&[&format!("http://127.0.0.1:{}/pods", a.port)]);
    let (code, body) = code_and_body(&r);
    assert_eq!(code, 403, "{r:?}");
    assert!(body.contains("system:anonymous"), "{body}");
    drop(a);
    // AlwaysAllow on top opens the node to every local user, and the start-up warning says so.
    let (a, pod) = agent(&["--anonymous-auth=true", "--authorization-mode=AlwaysAllow"]);
    assert!(
        a.log_contains("--anonymous-auth=true")
            && a.log_contains("exec as root into every container"),
        "{}",
        a.agent_log()
    );
    let r = curl_as_nobody(&[&format!("http://127.0.0.1:{}/pods", a.port)]);
    let (code, body) = code_and_body(&r);
    assert_eq!(code, 200, "{r:?}");
    assert!(body.contains(&pod), "{body}");
    // Wrong tokens stay wrong; the admin token still works.
    assert_eq!(
        http_request(a.port, "GET", "/pods", Some("nope"), &[])
            .unwrap()
            .0,
        401
    );
    assert_eq!(common::http_get(a.port, "/pods").unwrap().0, 200);
    // The Host and Origin checks do not depend on authentication: a web page still gets
    // nothing.
    let m = marker(&a, "anonymous-browser-ran");
    let run = touch_path(&pod, &m);
    let (code, _) = http_request(
        a.port,
        "POST",
        &run,
        None,
        &[
            ("Host", "rebind.evil.example"),
            ("Content-Type", "text/plain"),
        ],
    )
    .unwrap();
    assert_eq!(code, 403);
    let (code, _) = http_request(
        a.port,
        "POST",
        &run,
        None,
        &[("Origin", "http://evil.example")],
    )
    .unwrap();
    assert_eq!(code, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!m.exists());
}
