//! Nothing unbounded: the real agent under floods of idle connections (plain and TLS, started
//! with only 512 descriptors), abandoned exec streams with stdin queued, oversized WebSocket
//! messages, `/run` floods, plain GETs of streaming paths and made-up HTTP methods
//! (`docs/security.md`). The attacker's traffic is raw sockets; the administrator's requests
//! go through the `common` helpers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Agent;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(30);
/// The agent's header-read (and idle) timeout, `server::conn::HEADER_READ_TIMEOUT`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `sleep` as PID 1 ignores SIGTERM: grace 1 s keeps the removals short.
fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: localhost/busybox:test\n    command: [\"sleep\", \"3600\"]\n"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Counts connections the server closed (EOF or reset on read).
#[derive(Clone, Default)]
struct Closed(Arc<AtomicUsize>);

impl Closed {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Reads until the server closes `s` (or 120 s pass); counts it in `closed`.
async fn until_closed<S: tokio::io::AsyncRead + Unpin>(mut s: S, closed: Closed) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.0.fetch_add(1, Ordering::SeqCst);
}

/// Opens `n` attacker connections one after the other with `connect` (each left open,
/// watched by [`until_closed`] on `rt`); how many could be opened.
fn flood<S, F, Fut>(rt: &tokio::runtime::Runtime, n: usize, closed: &Closed, connect: F) -> usize
where
    S: tokio::io::AsyncRead + Unpin + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<S>>,
{
    let mut opened = 0;
    for _ in 0..n {
        if let Some(s) = rt.block_on(connect()) {
            opened += 1;
            rt.spawn(until_closed(s, closed.clone()));
        }
    }
    opened
}

impl Closed {
    /// Waits until `n` connections were closed or `deadline` passed; how many were.
    fn wait_for(&self, n: usize, deadline: Instant) -> usize {
        while self.get() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.get()
    }
}

/// The open descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The pod lifecycle still works while the flood is on: a new pod starts, and an old one
/// stops when its manifest goes.
fn pods_still_come_and_go(a: &Agent, new: &str, old: &str) {
    a.write_manifest(&format!("{new}.yaml"), &pod(new));
    a.wait_running(new, "main", T);
    a.remove_manifest(&format!("{old}.yaml"));
    a.wait_for(&format!("{old} gone"), T, |a| {
        a.get("/pods")
            .filter(|b| b.contains("\"items\"") && !b.contains(&format!("\"{old}-")))
    });
}

/// The agent's open-file limits (soft, hard), from `/proc/<pid>/limits`.
fn nofile(a: &Agent) -> (String, String) {
    let pid = a.pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut values = line.split_whitespace().skip(3).map(str::to_string);
    (values.next().unwrap(), values.next().unwrap())
}

fn assert_nofile_512(a: &Agent) {
    assert_eq!(nofile(a), ("512".to_string(), "512".to_string()));
}

#[test]
fn half_sent_headers_under_512_descriptors() {
    let a = Agent::start_wrapped(&["prlimit", "--nofile=512:512"], &[]);
    assert_nofile_512(&a);
    a.write_manifest("first.yaml", &pod("first"));
    a.wait_running("first", "main", T);
    let pid = a.pid().unwrap();

    let rt = runtime();
    let closed = Closed::default();
    let port = a.port;
    const CLIENTS: usize = 700;
    let started = Instant::now();
    let opened = flood(&rt, CLIENTS, &closed, || async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /pods HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            .await
            .ok()?;
        Some(s)
    });
    assert_eq!(opened, CLIENTS, "every attacker connection was accepted");

    // The administrator is served at once, the agent's descriptors stay under its limit.
    let t = Instant::now();
    assert_eq!(a.get("/healthz").as_deref(), Some("ok"));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        fds(pid) < 500,
        "agent fds {}\n{}",
        fds(pid),
        common::tail(&a.agent_log(), 40)
    );
    pods_still_come_and_go(&a, "second", "first");

    // Every idle client is dropped: the oldest when the cap is reached, the rest once the
    // header-read timeout runs out.
    assert_eq!(
        closed.wait_for(
            CLIENTS,
            started + HEADER_READ_TIMEOUT + Duration::from_secs(15)
        ),
        CLIENTS,
        "connections closed by the server after {:?}",
        started.elapsed()
    );
    assert_eq!(a.get("/healthz").as_deref(), Some("ok"));

    // A kept-alive connection idle after its answer is closed too.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HEADER_READ_TIMEOUT + Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        a.token()
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed");
    assert!(
        t.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
            && t.elapsed() < HEADER_READ_TIMEOUT + Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );
    drop(rt);
}

/// A CA, a serving certificate for 127.0.0.1 and a token file, in `dir`; the agent's flags.
fn tls_flags(dir: &std::path::Path, token: &str) -> Vec<String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "minikubelet-limits-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    write("ca.crt", &ca.self_signed(&ca_key).unwrap().pem());
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "node1");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    write("server.crt", &p.signed_by(&key, &issuer).unwrap().pem());
    write("server.key", &key.serialize_pem());
    write(
        "tokens.csv",
        &format!("{token},admin,1,\"system:masters\"\n"),
    );
    let arg = |flag: &str, name: &str| format!("--{flag}={}", dir.join(name).display());
    vec![
        arg("tls-cert-file", "server.crt"),
        arg("tls-private-key-file", "server.key"),
        arg("token-auth-file", "tokens.csv"),
    ]
}

#[test]
fn silent_tls_connections_under_512_descriptors() {
    let pki = tempfile::tempdir().unwrap();
    let token = "limits-admin-token";
    let flags = tls_flags(pki.path(), token);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let a = Agent::start_wrapped(&["prlimit", "--nofile=512:512"], &flags);
    assert_nofile_512(&a);
    let pid = a.pid().unwrap();
    let curl = |path: &str| {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "--max-time", "10", "--cacert"])
            .arg(pki.path().join("ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("https://127.0.0.1:{}{path}", a.port));
        common::run_client(c, b"", Duration::from_secs(15))
    };
    let first = curl("/healthz");
    assert_eq!(first.stdout, "ok", "{first:?}");

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path().join("ca.crt")).unwrap();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    use rustls::pki_types::pem::PemObject;
    let connector = tokio_rustls::TlsConnector::from(config);
    let rt = runtime();
    let closed = Closed::default();
    let port = a.port;
    const CLIENTS: usize = 500;
    let started = Instant::now();
    let handshaken = flood(&rt, CLIENTS, &closed, || {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
            connector.connect(name, tcp).await.ok()
        }
    });
    // The oldest are shed while the newest connect, so a handshake or two may be cut short;
    // nearly all complete.
    assert!(handshaken > CLIENTS * 9 / 10, "{handshaken} handshakes");

    let t = Instant::now();
    assert_eq!(curl("/healthz").stdout, "ok");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(fds(pid) < 500, "agent fds {}", fds(pid));
    a.write_manifest("tls-pod.yaml", &pod("tls-pod"));
    a.wait_for("tls-pod running over TLS", T, |_| {
        let body = curl("/pods").stdout;
        (body.contains("\"tls-pod-") && body.contains("\"running\"")).then_some(())
    });
    a.remove_manifest("tls-pod.yaml");
    a.wait_for("tls-pod gone", T, |_| {
        let body = curl("/pods").stdout;
        (body.contains("\"items\"") && !body.contains("\"tls-pod-")).then_some(())
    });

    assert_eq!(
        closed.wait_for(
            handshaken,
            started + HEADER_READ_TIMEOUT + Duration::from_secs(20)
        ),
        handshaken,
        "silent TLS connections closed after {:?}",
        started.elapsed()
    );
    drop(rt);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A v5 WebSocket exec on the kubelet path, or the HTTP error's status code.
async fn ws_exec(port: u16, pod: &str, query: &str) -> Result<Ws, u16> {
    let url = format!("ws://127.0.0.1:{port}/exec/default/{pod}/main?{query}");
    let mut req = common::with_token(url.into_client_request().unwrap());
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("exec: {e}"),
    }
}

/// stdout of a short exec, and the Status on the error channel.
async fn exec_output(port: u16, pod: &str, query: &str) -> (String, String) {
    let mut ws = ws_exec(port, pod, query).await.expect("exec upgraded");
    let (mut out, mut status) = (Vec::new(), Vec::new());
    while let Ok(Some(Ok(m))) = tokio::time::timeout(T, ws.next()).await {
        if let Message::Binary(b) = m {
            match b.first() {
                Some(1) => out.extend_from_slice(&b[1..]),
                Some(3) => status.extend_from_slice(&b[1..]),
                _ => {}
            }
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&status).into_owned(),
    )
}

/// Pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == want.as_bytes() && common::alive(*pid))
        })
        .collect()
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// An agent running the pod `box`; its full name.
fn agent_with_box() -> (Agent, String) {
    let a = Agent::start(&[]);
    a.write_manifest("box.yaml", &pod("box"));
    a.wait_running("box", "main", T);
    let name = a.pod("box").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    (a, name)
}

/// A `cat` of stdin with an argument no other process on the machine has.
const CAT: &str = "command=cat&command=-&command=/nonexistent-limits-9873&stdin=1&stdout=1";

#[test]
fn abandoned_exec_streams_end_and_big_messages_are_refused() {
    let (a, name) = agent_with_box();
    let pid = a.pid().unwrap();
    let rt = runtime();
    let port = a.port;

    // 128 sessions (the session cap) whose `sleep` never reads stdin: each sends 30 × 128 KiB
    // of stdin (as much as the server takes in 3 s) and disconnects without a Close.
    const SESSIONS: usize = 128;
    let argv = ["sleep", "9871"];
    let query = "command=sleep&command=9871&stdin=1&stdout=1";
    let rss_before = vm_rss_kib(pid);
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let name = name.clone();
        tasks.push(rt.spawn(async move {
            let mut ws = ws_exec(port, &name, query).await.expect("exec upgraded");
            let mut frame = vec![0u8; 128 * 1024 + 1];
            frame[0] = 0; // stdin
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                for _ in 0..30 {
                    if ws.send(Message::binary(frame.clone())).await.is_err() {
                        return;
                    }
                }
            })
            .await;
            drop(ws);
        }));
    }
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let left = Instant::now();
    a.wait_for("every abandoned exec's process gone", T, |_| {
        pids_running(&argv).is_empty().then_some(())
    });
    eprintln!(
        "abandoned sessions ended {:?} after their clients left",
        left.elapsed()
    );
    let rss_after = vm_rss_kib(pid);
    assert!(
        rss_after < rss_before + 96 * 1024,
        "VmRSS {rss_before} KiB → {rss_after} KiB"
    );

    // Their slots are free: a new exec runs.
    let (out, status) = rt.block_on(exec_output(
        port,
        &name,
        "command=echo&command=still-here&stdout=1",
    ));
    assert_eq!(out, "still-here\n");
    assert!(status.contains("\"Success\""), "{status}");

    // A message over 1 MiB ends its session with Close 1009 and a Status; 18 × 15 MiB do not
    // grow the agent.
    let rss_before = vm_rss_kib(pid);
    let (status, close) = rt.block_on(async {
        let mut ws = ws_exec(port, &name, CAT).await.unwrap();
        let mut big = vec![0u8; 2 << 20];
        big[0] = 0;
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.send(Message::binary(big))).await;
        let (mut status, mut close) = (String::new(), None);
        while let Ok(Some(Ok(m))) = tokio::time::timeout(T, ws.next()).await {
            match m {
                Message::Binary(b) if b.first() == Some(&3) => {
                    status = String::from_utf8_lossy(&b[1..]).into_owned();
                }
                Message::Close(c) => close = c.map(|c| u16::from(c.code)),
                _ => {}
            }
        }
        (status, close)
    });
    assert!(status.contains("over the limit"), "{status}");
    assert_eq!(close, Some(1009));
    let tasks: Vec<_> = (0..18)
        .map(|_| {
            let name = name.clone();
            rt.spawn(async move {
                let Ok(mut ws) = ws_exec(port, &name, CAT).await else {
                    return;
                };
                let mut big = vec![0u8; 15 << 20];
                big[0] = 0;
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.send(Message::binary(big)))
                    .await;
            })
        })
        .collect();
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let rss_after = vm_rss_kib(pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "VmRSS {rss_before} KiB → {rss_after} KiB after 18 × 15 MiB messages"
    );
    a.wait_for("the cat sessions gone", T, |_| {
        pids_running(&["cat", "-", "/nonexistent-limits-9873"])
            .is_empty()
            .then_some(())
    });
    drop(rt);
}

/// A raw POST with the administrator's token; the status code and body.
fn post(port: u16, path: &str) -> Option<(u16, String)> {
    let token = common::token_for(port)?;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(40))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((
        head.split_whitespace().nth(1)?.parse().ok()?,
        body.to_string(),
    ))
}

#[test]
fn run_plain_gets_and_made_up_methods_are_bounded() {
    let (a, name) = agent_with_box();
    let port = a.port;

    // `/run`: 40 at once, at most 32 run; the rest get 429 with a Status at once.
    let path = format!("/run/default/{name}/main?cmd=sleep+7");
    let answers: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..40).map(|_| s.spawn(|| post(port, &path))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = answers
        .iter()
        .filter(|r| matches!(r, Some((200, _))))
        .count();
    let refused: Vec<_> = answers
        .iter()
        .flatten()
        .filter(|(c, _)| *c == 429)
        .collect();
    assert!(ok <= 32 && ok > 0, "{answers:?}");
    assert_eq!(ok + refused.len(), 40, "{answers:?}");
    assert!(refused[0].1.contains("\"kind\":\"Status\""), "{refused:?}");

    // Plain GETs of streaming paths take no token: 1001 of them, then exec still works.
    for _ in 0..1001 {
        let (code, body) = common::http_get(
            port,
            &format!("/exec/default/{name}/main?command=true&stdout=1"),
        )
        .unwrap();
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("Upgrade request required"), "{body}");
    }
    let rt = runtime();
    let (out, _) = rt.block_on(exec_output(port, &name, "command=echo&command=ok&stdout=1"));
    assert_eq!(out, "ok\n");

    // Made-up methods (from an authenticated client: others never reach the metrics) are
    // counted as `other`.
    let token = a.token();
    for i in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "M{i}X /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    }
    let metrics = a.get("/metrics").unwrap();
    assert!(!metrics.contains("M17X"), "made-up methods are labels");
    assert!(metrics.contains("method=\"other\""));
    assert!(metrics.len() < 200_000, "{} bytes", metrics.len());

    // SIGTERM with an idle and a half-sent connection open: the agent still exits at once.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(half, "GET /pods HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut a = a;
    let t = Instant::now();
    let status = a.stop().unwrap();
    assert!(status.success(), "{status}");
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    drop((idle, half));
}

#[test]
fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
    let a = Agent::start_wrapped(&["prlimit", "--nofile=300:2048"], &[]);
    assert_eq!(nofile(&a), ("2048".to_string(), "2048".to_string()));
    let log = a.agent_log();
    assert!(
        log.contains("raised the open-file soft limit") && log.contains("from=300 to=2048"),
        "{}",
        common::tail(&log, 40)
    );
    // The connection cap follows: 2048 - 2048/4, at most 1024.
    assert!(
        log.contains("max_connections=1024"),
        "{}",
        common::tail(&log, 40)
    );
}
