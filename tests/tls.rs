//! The kubelet API over TLS with authentication, against the real agent and real clients:
//! curl (CA, client certificates, bearer tokens), kubectl 1.32 (the kubeconfig the agent
//! writes, with `--token` or a client certificate: get, logs, exec over WebSocket,
//! port-forward) and the Python `kubernetes` client. Certificates are made at test time with
//! rcgen: a CA, a serving certificate for 127.0.0.1/localhost, a client certificate, and a
//! second CA whose client certificate must be rejected. Everything stays on loopback; the
//! non-loopback rule is exercised by binding 0.0.0.0 and connecting through 127.0.0.1.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Agent;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const T: Duration = Duration::from_secs(30);
const TOKEN: &str = "s3cr3t-token-for-bob";

/// The RBAC policy of most tests here: bob (a token user) may do everything. alice's
/// certificate carries O=system:masters and needs none.
const BOB_IS_ADMIN: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-is-admin}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
"#;

/// The files of a small PKI, written into a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, flag: &str, name: &str) -> String {
        format!("--{flag}={}", self.path(name).display())
    }

    /// ca.crt; server.crt/.key (SANs 127.0.0.1, localhost); client.crt/.key (CN alice,
    /// O system:masters); eve.crt/.key (CN eve, no group); rogue-client.crt/.key from another
    /// CA; tokens.csv (bob); rbac.yaml (bob is a cluster-admin).
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();

        let (ca_cert, ca_key) = ca("minikubelet-test-ca");
        write("ca.crt", &ca_cert.pem());
        let issuer = Issuer::new(ca_params("minikubelet-test-ca"), ca_key);

        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "node1");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write("server.crt", &p.signed_by(&key, &issuer).unwrap().pem());
        write("server.key", &key.serialize_pem());

        let key = KeyPair::generate().unwrap();
        write(
            "client.crt",
            &client_params("alice")
                .signed_by(&key, &issuer)
                .unwrap()
                .pem(),
        );
        write("client.key", &key.serialize_pem());

        // eve: a certificate from the same CA, in no group, bound to nothing.
        let key = KeyPair::generate().unwrap();
        let mut eve = client_params("eve");
        eve.distinguished_name = rcgen::DistinguishedName::new();
        eve.distinguished_name.push(DnType::CommonName, "eve");
        write("eve.crt", &eve.signed_by(&key, &issuer).unwrap().pem());
        write("eve.key", &key.serialize_pem());

        let (_, rogue_key) = ca("rogue-ca");
        let rogue = Issuer::new(ca_params("rogue-ca"), rogue_key);
        let key = KeyPair::generate().unwrap();
        write(
            "rogue-client.crt",
            &client_params("mallory")
                .signed_by(&key, &rogue)
                .unwrap()
                .pem(),
        );
        write("rogue-client.key", &key.serialize_pem());

        write("tokens.csv", &format!("{TOKEN},bob,1002,\"devs,ops\"\n"));
        // bob is no superuser: without this policy RBAC refuses him everything.
        write("rbac.yaml", BOB_IS_ADMIN);
        Pki { dir }
    }

    /// The agent flags: TLS, client CA, token file, and the policy that lets bob in.
    fn flags(&self) -> Vec<String> {
        vec![
            self.arg("tls-cert-file", "server.crt"),
            self.arg("tls-private-key-file", "server.key"),
            self.arg("client-ca-file", "ca.crt"),
            self.arg("token-auth-file", "tokens.csv"),
            self.arg("authorization-policy-path", "rbac.yaml"),
        ]
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    (ca_params(cn).self_signed(&key).unwrap(), key)
}

fn client_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

type Out = common::ClientRun;

/// Runs `cmd` to completion, with no input, killed after 30 s (`code` -1 then).
fn run(cmd: Command) -> Out {
    common::run_client(cmd, b"", T)
}

/// curl against `https://127.0.0.1:<port><path>` trusting the test CA; `-w` appends the
/// HTTP code on its own line.
fn curl(a: &Agent, pki: &Pki, path: &str, extra: &[&str]) -> Out {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(pki.path("ca.crt"))
        .args(extra)
        .arg(format!("https://127.0.0.1:{}{path}", a.port));
    run(c)
}

/// (HTTP code, body) of a curl run that reached the server.
fn code_and_body(o: &Out) -> (u16, String) {
    let (body, code) = o.stdout.rsplit_once('\n').unwrap_or(("", &o.stdout));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

const UNAUTHORIZED: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

/// A 403 Status with this message.
fn assert_forbidden(o: &Out, message: &str) {
    let (code, body) = code_and_body(o);
    assert_eq!(code, 403, "{o:?}");
    let got: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!(got["kind"], "Status", "{body}");
    assert_eq!(got["reason"], "Forbidden", "{body}");
    assert_eq!(got["message"], message, "{body}");
}

fn assert_unauthorized(o: &Out, what: &str) {
    let (code, body) = code_and_body(o);
    assert_eq!(code, 401, "{what}: {o:?}");
    let got: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    let want: serde_json::Value = serde_json::from_str(UNAUTHORIZED).unwrap();
    assert_eq!(got, want, "{what}");
}

/// kubectl 1.32 with the agent's own kubeconfig, a fresh HOME, and `creds`.
fn kubectl(a: &Agent, home: &Path, creds: &[String], args: &[&str]) -> Command {
    let mut c = common::kubectl_with_kubeconfig(a, home);
    c.args(creds).args(args);
    c
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "echo hello-over-tls; sleep 3600"]
"#;

/// Waits (over HTTPS, with the token) until the pod named `<name>-<node>` has its first
/// container running; its full name.
fn wait_running_over_tls(a: &Agent, pki: &Pki, name: &str) -> String {
    a.wait_for(&format!("{name} running"), T, |a| {
        let o = curl(
            a,
            pki,
            "/pods",
            &["-H", &format!("Authorization: Bearer {TOKEN}")],
        );
        let v: serde_json::Value = serde_json::from_str(&code_and_body(&o).1).ok()?;
        v["items"].as_array()?.iter().find_map(|p| {
            let full = p["metadata"]["name"].as_str()?;
            (full.starts_with(&format!("{name}-"))
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .then(|| full.to_string())
        })
    })
}

fn start_tls_agent(pki: &Pki, extra: &[&str]) -> Agent {
    let mut flags = pki.flags();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Agent::start(&flags)
}

#[test]
fn curl_over_tls_with_certificates_and_tokens() {
    let pki = Pki::new();
    let a = start_tls_agent(&pki, &[]);
    let bearer = format!("Authorization: Bearer {TOKEN}");

    // Authenticated: a client certificate from the CA, or the token.
    let cert = pki.path("client.crt").display().to_string();
    let key = pki.path("client.key").display().to_string();
    let o = curl(&a, &pki, "/healthz", &["--cert", &cert, "--key", &key]);
    assert_eq!(code_and_body(&o), (200, "ok".to_string()), "{o:?}");
    let o = curl(&a, &pki, "/pods", &["-H", &bearer]);
    let (code, body) = code_and_body(&o);
    assert_eq!(code, 200, "{o:?}");
    assert!(body.contains("\"kind\":\"PodList\""), "{body}");
    // A valid certificate proves who eve is, not that she may do anything: no binding, 403.
    let eve = [
        "--cert",
        &pki.path("eve.crt").display().to_string(),
        "--key",
        &pki.path("eve.key").display().to_string(),
    ]
    .map(String::from);
    let eve: Vec<&str> = eve.iter().map(String::as_str).collect();
    assert_forbidden(
        &curl(&a, &pki, "/pods", &eve),
        "Forbidden (user=eve, verb=get, resource=nodes, subresource(s)=[pods proxy])",
    );
    assert_forbidden(
        &curl(&a, &pki, "/api/v1/namespaces/default/pods", &eve),
        "pods is forbidden: User \"eve\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
    );

    // Unauthenticated, a wrong token, another scheme: 401 with the API server's Status, on
    // every path (also those nobody serves).
    for (what, extra) in [
        ("no credentials", vec![]),
        ("wrong token", vec!["-H", "Authorization: Bearer nope"]),
        ("basic auth", vec!["-u", "bob:s3cr3t"]),
    ] {
        for path in [
            "/healthz",
            "/pods",
            "/api/v1/namespaces/default/pods",
            "/nowhere",
        ] {
            assert_unauthorized(&curl(&a, &pki, path, &extra), &format!("{what} {path}"));
        }
    }

    // A certificate from another CA fails the handshake: no HTTP answer at all.
    let rogue_cert = pki.path("rogue-client.crt").display().to_string();
    let rogue_key = pki.path("rogue-client.key").display().to_string();
    let o = curl(
        &a,
        &pki,
        "/pods",
        &["--cert", &rogue_cert, "--key", &rogue_key],
    );
    // TLS 1.3: the client's handshake is done before the server judges its certificate, so
    // curl meets the server's `unknown_ca` alert on its first read (56, not 35).
    assert_eq!(o.code, 56, "{o:?}");
    assert!(o.stderr.contains("alert unknown ca"), "{o:?}");
    assert_eq!(code_and_body(&o).0, 0, "{o:?}");

    // Plain HTTP on the TLS port gets no answer either.
    assert_eq!(common::http_get(a.port, "/healthz"), None);
    // A client that does not trust the serving certificate refuses it.
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20"])
        .arg(format!("https://127.0.0.1:{}/healthz", a.port));
    let o = run(c);
    assert_eq!(
        o.code, 60,
        "curl: peer certificate cannot be authenticated: {o:?}"
    );

    // The agent is still there and logged who was refused, with the reason.
    let o = curl(&a, &pki, "/healthz", &["-H", &bearer]);
    assert_eq!(code_and_body(&o).0, 200);
    assert!(a.log_contains("unauthorized request"));
    assert!(a.log_contains("invalid bearer token"));
}

#[test]
fn kubectl_python_and_streams_over_tls() {
    let pki = Pki::new();
    let a = start_tls_agent(&pki, &[]);
    a.write_manifest("box.yaml", PODS);
    wait_running_over_tls(&a, &pki, "box");

    // The kubeconfig the agent wrote speaks https and trusts the serving certificate.
    let kc = std::fs::read_to_string(a.root_dir.join("kubeconfig")).unwrap();
    assert!(
        kc.contains(&format!("server: https://127.0.0.1:{}", a.port)),
        "{kc}"
    );
    assert!(kc.contains("certificate-authority-data: "), "{kc}");

    let home = tempfile::tempdir().unwrap();
    let token = vec![format!("--token={TOKEN}")];
    let cert = vec![
        format!("--client-certificate={}", pki.path("client.crt").display()),
        format!("--client-key={}", pki.path("client.key").display()),
    ];

    // The kubeconfig's own user (the agent's admin token) gets in as it is; a wrong token is
    // told to log in.
    let o = run(kubectl(
        &a,
        home.path(),
        &[],
        &["get", "pods", "-o", "name"],
    ));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("pod/box-"), "{o:?}");
    let o = run(kubectl(
        &a,
        home.path(),
        &["--token=wrong".into()],
        &["get", "pods"],
    ));
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        // `(the server has asked for the client to provide credentials)` during discovery,
        // as against a real API server.
        o.stderr
            .contains("error: You must be logged in to the server"),
        "{o:?}"
    );

    let mut pod = String::new();
    for creds in [&token, &cert] {
        let o = run(kubectl(
            &a,
            home.path(),
            creds,
            &["get", "pods", "-o", "name"],
        ));
        assert_eq!(o.code, 0, "{creds:?}: {o:?}");
        pod = o
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("pod/").filter(|n| n.starts_with("box-")))
            .unwrap_or_else(|| panic!("no box pod: {o:?}"))
            .to_string();

        let o = run(kubectl(&a, home.path(), creds, &["logs", &pod]));
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "hello-over-tls\n"),
            "{o:?}"
        );

        // exec: kubectl 1.32 speaks WebSocket (v5.channel.k8s.io) by default, here through TLS.
        let o = run(kubectl(
            &a,
            home.path(),
            creds,
            &["exec", &pod, "--", "sh", "-c", "echo exec-over-tls; exit 3"],
        ));
        assert_eq!((o.code, o.stdout.as_str()), (3, "exec-over-tls\n"), "{o:?}");
    }

    // port-forward through TLS to a listener in the pod (WebSocket tunnel, kubectl's default).
    let pod_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = kubectl(
        &a,
        home.path(),
        &token,
        &[
            "exec",
            &pod,
            "--",
            // busybox nc: a persistent server (-ll) that greets each connection and closes.
            "nc",
            "-ll",
            "-p",
            &pod_port.to_string(),
            "-e",
            "echo",
            "hello through the tls tunnel",
        ],
    );
    server
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = server.spawn().unwrap();
    a.wait_for("listener in the pod", T, |_| {
        TcpStream::connect(("127.0.0.1", pod_port)).ok().map(|_| ())
    });
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut pf = kubectl(
        &a,
        home.path(),
        &token,
        &[
            "port-forward",
            &format!("pod/{pod}"),
            &format!("{local}:{pod_port}"),
        ],
    );
    pf.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut pf = pf.spawn().unwrap();
    let mut pf_out = pf.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        let mut told = false;
        while let Ok(n) = pf_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if !told && seen.contains("Forwarding from") {
                told = true;
                let _ = tx.send(());
            }
        }
    });
    let forwarded = rx.recv_timeout(T).map(|()| {
        let mut s = TcpStream::connect(("127.0.0.1", local)).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        got
    });
    let _ = pf.kill();
    let _ = pf.wait();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        forwarded.as_deref(),
        Ok("hello through the tls tunnel\n"),
        "{}",
        common::tail(&a.agent_log(), 30)
    );

    // The Python client with a kubeconfig made the documented way: the agent's kubeconfig
    // plus a user with the token (`kubectl config set-credentials`).
    let py_kc = home.path().join("kubeconfig-bob");
    std::fs::copy(a.root_dir.join("kubeconfig"), &py_kc).unwrap();
    for args in [
        vec!["config", "set-credentials", "bob", &token[0]],
        vec!["config", "set-context", "--current", "--user=bob"],
    ] {
        let mut c = Command::new(common::kubectl());
        c.env_clear()
            .env("HOME", home.path())
            .arg(format!("--kubeconfig={}", py_kc.display()))
            .args(&args);
        let o = run(c);
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
    }
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(
            "import sys\nfrom kubernetes import client, config\nconfig.load_kube_config(config_file=sys.argv[1])\nfor p in client.CoreV1Api().list_namespaced_pod('default').items:\n    print(p.metadata.name)\n",
        )
        .arg(&py_kc);
    let o = run(py);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.lines().any(|l| l == pod), "{o:?}");
}

#[test]
fn wildcard_address_with_tls_and_tokens_serves_and_authenticates() {
    let pki = Pki::new();
    // 0.0.0.0 is not loopback: TLS and authentication are required, and given.
    let a = Agent::start(&[
        "--address=0.0.0.0",
        &pki.arg("tls-cert-file", "server.crt"),
        &pki.arg("tls-private-key-file", "server.key"),
        &pki.arg("token-auth-file", "tokens.csv"),
    ]);
    // bob authenticates, but this agent has no RBAC policy: he is refused (403, not 401),
    // in the kubelet's words.
    let o = curl(
        &a,
        &pki,
        "/healthz",
        &["-H", &format!("Authorization: Bearer {TOKEN}")],
    );
    assert_forbidden(
        &o,
        "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[healthz proxy])",
    );
    assert_unauthorized(&curl(&a, &pki, "/pods", &[]), "no token on 0.0.0.0");
    // No client CA: a client certificate is not a way in (and is not asked for).
    let cert = pki.path("client.crt").display().to_string();
    let key = pki.path("client.key").display().to_string();
    assert_unauthorized(
        &curl(&a, &pki, "/pods", &["--cert", &cert, "--key", &key]),
        "certificate without --client-ca-file",
    );
    // The kubeconfig points kubectl at loopback.
    let kc = std::fs::read_to_string(a.root_dir.join("kubeconfig")).unwrap();
    assert!(
        kc.contains(&format!("server: https://127.0.0.1:{}", a.port)),
        "{kc}"
    );
}

#[test]
fn tls_on_loopback_without_authenticators_takes_the_admin_token() {
    // Loopback without a client CA or token file: TLS encrypts, and requests authenticate
    // all the same, with the admin token of the agent's kubeconfig.
    let pki = Pki::new();
    let a = Agent::start(&[
        &pki.arg("tls-cert-file", "server.crt"),
        &pki.arg("tls-private-key-file", "server.key"),
    ]);
    assert_unauthorized(&curl(&a, &pki, "/healthz", &[]), "no token on loopback");
    let o = curl(
        &a,
        &pki,
        "/healthz",
        &["-H", &format!("Authorization: {}", a.bearer())],
    );
    assert_eq!(code_and_body(&o), (200, "ok".to_string()), "{o:?}");
}

#[test]
fn anonymous_enabled_serves_requests_without_credentials_but_not_wrong_tokens() {
    let pki = Pki::new();
    let a = start_tls_agent(&pki, &["--anonymous-auth=true"]);
    // A request without credentials is system:anonymous, whom RBAC refuses until a binding
    // says otherwise (the policy is re-read when it changes).
    let o = curl(&a, &pki, "/healthz", &[]);
    assert_forbidden(
        &o,
        "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[healthz proxy])",
    );
    std::fs::write(
        pki.path("rbac.yaml"),
        format!(
            "{BOB_IS_ADMIN}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: health}}\nrules: [{{apiGroups: [''], resources: [nodes/healthz], verbs: [get]}}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: anyone-health}}\nsubjects: [{{kind: Group, apiGroup: rbac.authorization.k8s.io, name: 'system:unauthenticated'}}]\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: health}}\n"
        ),
    )
    .unwrap();
    a.wait_for("the policy letting anonymous /healthz in", T, |a| {
        (code_and_body(&curl(a, &pki, "/healthz", &[])) == (200, "ok".to_string())).then_some(())
    });
    assert_forbidden(
        &curl(&a, &pki, "/pods", &[]),
        "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[pods proxy])",
    );
    assert_unauthorized(
        &curl(&a, &pki, "/healthz", &["-H", "Authorization: Bearer nope"]),
        "wrong token with anonymous enabled",
    );
}

#[test]
fn the_serving_certificate_is_reloaded_when_its_files_change() {
    // As the kubelet's ReloadKubeletServerCertificateFile (beta, on by default since 1.31): a
    // certificate renewed on disk is served without a restart; a pair that does not load is
    // refused and the previous one stays.
    let pki = Pki::new();
    let mut a = start_tls_agent(&pki, &[]);
    let healthz = |ca: &str| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {TOKEN}"))
            .arg("--cacert")
            .arg(pki.path(ca))
            .arg(format!("https://127.0.0.1:{}/healthz", a.port));
        run(c)
    };
    assert_eq!(healthz("ca.crt").stdout, "ok");

    // A renewed certificate from another CA, written as cert-manager does (file by file,
    // each through a rename).
    let (new_ca, new_ca_key) = ca("renewed-ca");
    std::fs::write(pki.path("renewed-ca.crt"), new_ca.pem()).unwrap();
    let issuer = Issuer::new(ca_params("renewed-ca"), new_ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "node1");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let replace = |name: &str, text: &str| {
        let tmp = pki.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, pki.path(name)).unwrap();
    };
    replace("server.crt", &p.signed_by(&key, &issuer).unwrap().pem());
    replace("server.key", &key.serialize_pem());
    a.wait_for("the renewed certificate to be served", T, |_| {
        (healthz("renewed-ca.crt").stdout == "ok").then_some(())
    });
    let old = healthz("ca.crt");
    assert_eq!(
        old.code, 60,
        "the old CA no longer verifies the server: {old:?}"
    );
    assert!(
        old.stderr
            .contains("unable to get local issuer certificate"),
        "{old:?}"
    );
    assert!(
        a.log_contains("loaded a new serving certificate"),
        "{}",
        a.agent_log()
    );

    // A key that is not one: logged, and the renewed certificate is still served.
    replace(
        "server.key",
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    a.wait_for("the broken key to be noticed", T, |a| {
        let _ = healthz("renewed-ca.crt");
        a.log_contains("do not load; still serving the previous certificate")
            .then_some(())
    });
    assert_eq!(healthz("renewed-ca.crt").stdout, "ok");
    a.stop();
}

#[test]
fn kubectl_attach_over_tls_with_a_client_certificate() {
    // Attach is the one stream the TLS test above leaves out: kubectl upgrades an HTTPS
    // connection authenticated by its client certificate, sends stdin and reads the output.
    let pki = Pki::new();
    let a = start_tls_agent(&pki, &[]);
    a.write_manifest("talker.yaml", common::TALKER);
    let pod = wait_running_over_tls(&a, &pki, "talker");
    let home = tempfile::tempdir().unwrap();
    let cert = vec![
        format!("--client-certificate={}", pki.path("client.crt").display()),
        format!("--client-key={}", pki.path("client.key").display()),
    ];
    let r = common::run_client(
        kubectl(&a, home.path(), &cert, &["attach", "-i", &pod]),
        b"over-tls\n",
        T,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "got over-tls\nbye\n", "{r:?}");
    // The rogue client's certificate does not chain to the client CA: no attach.
    let rogue = vec![
        format!(
            "--client-certificate={}",
            pki.path("rogue-client.crt").display()
        ),
        format!("--client-key={}", pki.path("rogue-client.key").display()),
    ];
    let r = common::run_client(
        kubectl(&a, home.path(), &rogue, &["attach", "-i", &pod]),
        b"no\n",
        T,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("remote error: tls: unknown certificate authority"),
        "{r:?}"
    );
}

/// `--tls-min-version` and `--tls-cipher-suites`, seen by curl (OpenSSL): a TLS 1.2 client is
/// refused by a TLS 1.3-only server; a TLS 1.2 client offering only a suite that is not listed
/// is refused, one offering a listed suite is served. The serving key is ECDSA (rcgen's
/// default), so the ECDHE_ECDSA suites are the ones that apply.
#[test]
fn tls_min_version_and_cipher_suites_restrict_the_handshake() {
    let pki = Pki::new();
    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    {
        let a = start_tls_agent(&pki, &["--tls-min-version=VersionTLS13"]);
        let o = curl(&a, &pki, "/healthz", &tls12);
        assert_eq!(o.code, 35, "TLS 1.2 against VersionTLS13: {o:?}");
        assert!(o.stderr.contains("alert protocol version"), "{o:?}");
        assert_eq!(code_and_body(&o).0, 0, "{o:?}");
        let o = curl(
            &a,
            &pki,
            "/healthz",
            &["-H", &format!("Authorization: Bearer {TOKEN}")],
        );
        assert_eq!(code_and_body(&o), (200, "ok".to_string()), "TLS 1.3: {o:?}");
    }
    let a = start_tls_agent(
        &pki,
        &["--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
    );
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let with = |cipher: &str| {
        let mut args = tls12.to_vec();
        args.extend(["--ciphers", cipher, "-H", &bearer]);
        curl(&a, &pki, "/healthz", &args)
    };
    let o = with("ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_eq!(o.code, 35, "an unlisted TLS 1.2 suite: {o:?}");
    assert!(o.stderr.contains("alert handshake failure"), "{o:?}");
    assert_eq!(code_and_body(&o).0, 0, "{o:?}");
    let o = with("ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_eq!(
        code_and_body(&o),
        (200, "ok".to_string()),
        "the listed suite: {o:?}"
    );
    // TLS 1.3 is not restricted by the list, as in Go.
    let o = curl(&a, &pki, "/healthz", &["-H", &bearer]);
    assert_eq!(code_and_body(&o), (200, "ok".to_string()), "TLS 1.3: {o:?}");
    let configz: serde_json::Value =
        serde_json::from_str(&code_and_body(&curl(&a, &pki, "/configz", &["-H", &bearer])).1)
            .unwrap_or_default();
    assert_eq!(
        configz["kubeletconfig"]["tlsCipherSuites"],
        serde_json::json!(["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]),
        "{configz}"
    );
}
