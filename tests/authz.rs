//! Authorization (RBAC from `--authorization-policy-path`) against the real agent and real
//! clients: curl, kubectl 1.32 (`logs`, `exec`, `auth can-i`, `get --raw`) and the Python
//! `kubernetes` client. The agent serves loopback with `--token-auth-file`, so every request
//! carries a bearer token, over TLS (a self-signed certificate made here): kubectl sends no
//! credentials to an `http://` server. The users:
//! - `admin` (group `system:masters`): the superuser, no binding needed;
//! - `bob`: a Role in `default` allowing `get` on `pods` and `pods/log`;
//! - `carol` (group `runners`): a ClusterRole allowing `create` on `nodes/proxy` (`/run`);
//! - `erin`: a ClusterRole allowing `get` on `nodes/stats` (`/stats/summary` only);
//! - `dave`: nothing, until the policy file is edited.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Agent;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

const TOKENS: &str = "admin-token,admin,1000,system:masters\nbob-token,bob,1001\ncarol-token,carol,1002,runners\nerin-token,erin,1003\ndave-token,dave,1004\n";

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: log-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-reads-logs, namespace: default}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: log-reader}
"#;

const NODE_POLICY: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: node-runner}
  rules: [{apiGroups: [""], resources: [nodes/proxy], verbs: [create]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: runners}
  subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: runners}]
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-runner}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: node-stats}
  rules: [{apiGroups: [""], resources: [nodes/stats], verbs: [get]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: erin-stats}
  subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: erin}]
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-stats}
"#;

const DAVE_TOO: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dave-reads-logs, namespace: default}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: dave}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: log-reader}
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "echo hello-from-web; sleep 3600"]
"#;

/// A policy directory (root-owned, 0755) with the tokens file beside it.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rbac")).unwrap();
        std::fs::set_permissions(
            dir.path().join("rbac"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(dir.path().join("tokens.csv"), TOKENS).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("rbac/10-logs.yaml"), POLICY).unwrap();
        std::fs::write(dir.path().join("rbac/20-node.yaml"), NODE_POLICY).unwrap();
        Setup { dir }
    }

    fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("rbac")
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// TLS and the token file, without a policy.
    fn authn_flags(&self) -> Vec<String> {
        vec![
            format!("--tls-cert-file={}", self.cert().display()),
            format!(
                "--tls-private-key-file={}",
                self.dir.path().join("server.key").display()
            ),
            format!(
                "--token-auth-file={}",
                self.dir.path().join("tokens.csv").display()
            ),
        ]
    }

    /// TLS, the token file and the policy directory.
    fn flags(&self) -> Vec<String> {
        let mut v = self.authn_flags();
        v.push(format!(
            "--authorization-policy-path={}",
            self.policy_dir().display()
        ));
        v
    }
}

fn start(extra: &[String]) -> Agent {
    let flags: Vec<&str> = extra.iter().map(String::as_str).collect();
    Agent::start(&flags)
}

/// curl with a bearer token: (HTTP code, body).
fn curl(a: &Agent, s: &Setup, token: &str, method: &str, path: &str) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ])
    .arg("--cacert")
    .arg(s.cert())
    .arg("-H")
    .arg(format!("Authorization: Bearer {token}"))
    .arg(format!("https://127.0.0.1:{}{path}", a.port));
    let o = common::run_client(c, b"", T);
    assert_eq!(o.code, 0, "curl {method} {path}: {o:?}");
    let (body, code) = o.stdout.rsplit_once('\n').unwrap_or(("", &o.stdout));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The message of a 403 Status (panics on anything else).
fn forbidden(reply: (u16, String)) -> String {
    assert_eq!(reply.0, 403, "{reply:?}");
    let v: Value = serde_json::from_str(&reply.1).expect("a Status body");
    assert_eq!(
        (&v["kind"], &v["status"], &v["reason"], &v["code"]),
        (
            &Value::from("Status"),
            &Value::from("Failure"),
            &Value::from("Forbidden"),
            &Value::from(403)
        ),
        "{v}"
    );
    v["message"].as_str().unwrap_or_default().to_string()
}

/// kubectl 1.32 with the agent's kubeconfig and a token.
fn kubectl(a: &Agent, home: &Path, token: &str, args: &[&str]) -> common::ClientRun {
    let mut c = common::kubectl_with_kubeconfig(a, home);
    c.arg(format!("--token={token}")).args(args);
    common::run_client(c, b"", T)
}

/// The Python client listing the pods of `default` as the token's user: `Ok(names)` or
/// `Err(status)` from its ApiException.
fn python_list_pods(a: &Agent, s: &Setup, token: &str) -> Result<Vec<String>, String> {
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(
            "import sys\nfrom kubernetes import client\nfrom kubernetes.client.rest import ApiException\nc = client.Configuration()\nc.host = sys.argv[1]\nc.api_key = {'authorization': 'Bearer ' + sys.argv[2]}\nc.ssl_ca_cert = sys.argv[3]\ntry:\n    for p in client.CoreV1Api(client.ApiClient(c)).list_namespaced_pod('default').items:\n        print(p.metadata.name)\nexcept ApiException as e:\n    print('ApiException', e.status, e.reason)\n    sys.exit(3)\n",
        )
        .arg(format!("https://127.0.0.1:{}", a.port))
        .arg(token)
        .arg(s.cert());
    let o = common::run_client(py, b"", T);
    match o.code {
        0 => Ok(o.stdout.lines().map(str::to_string).collect()),
        3 => Err(o.stdout.trim().to_string()),
        _ => panic!("python client failed: {o:?}"),
    }
}

/// Waits until the pod `web-<node>` runs (asked as admin); its name.
fn wait_web(a: &Agent, s: &Setup) -> String {
    a.wait_for("web running", T, |a| {
        let (code, body) = curl(a, s, "admin-token", "GET", "/pods");
        if code != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["items"].as_array()?.iter().find_map(|p| {
            let name = p["metadata"]["name"].as_str()?;
            (name.starts_with("web-")
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .then(|| name.to_string())
        })
    })
}

#[test]
fn rbac_policy_decides_for_kubectl_curl_and_python() {
    let s = Setup::new();
    let a = start(&s.flags());
    a.write_manifest("web.yaml", POD);
    let pod = wait_web(&a, &s);
    let home = tempfile::tempdir().unwrap();
    let exec_path = format!("/api/v1/namespaces/default/pods/{pod}/exec?command=id&stdout=true");

    // bob may read logs but not exec.
    let o = kubectl(&a, home.path(), "bob-token", &["logs", &pod]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "hello-from-web\n"),
        "{o:?}"
    );
    let o = kubectl(&a, home.path(), "bob-token", &["exec", &pod, "--", "id"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "Error from server (Forbidden): pods \"{pod}\" is forbidden: User \"bob\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
        )),
        "{o:?}"
    );
    // The same answers over curl, as the API server's Status: the WebSocket GET is `get`, the
    // SPDY POST `create`.
    assert_eq!(
        forbidden(curl(&a, &s, "bob-token", "GET", &exec_path)),
        format!(
            "pods \"{pod}\" is forbidden: User \"bob\" cannot get resource \"pods/exec\" in API group \"\" in the namespace \"default\""
        )
    );
    let (code, body) = curl(&a, &s, "bob-token", "POST", &exec_path);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 403);
    assert_eq!(
        v["details"],
        serde_json::json!({"name": pod, "kind": "pods"}),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().ends_with(
            "cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
        ),
        "{v}"
    );
    assert_eq!(
        forbidden(curl(
            &a,
            &s,
            "bob-token",
            "GET",
            "/api/v1/namespaces/kube-system/pods"
        )),
        "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
    );
    // The kubelet's own paths, in the kubelet's words (kubectl shows the same).
    let o = kubectl(
        &a,
        home.path(),
        "bob-token",
        &["get", "--raw", "/stats/summary"],
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains(
            "Error from server (Forbidden): Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[stats])"
        ),
        "{o:?}"
    );

    // kubectl auth can-i asks the node. kubectl reads `pods/log` as TYPE/NAME (a pod named
    // "log"); a subresource is `--subresource=log`.
    for (token, args, answer) in [
        ("bob-token", vec!["get", "pods", "--subresource=log"], "yes"),
        ("bob-token", vec!["get", "pods/log"], "yes"),
        ("dave-token", vec!["get", "pods/log"], "no"),
        ("dave-token", vec!["get", "pods", "--subresource=log"], "no"),
        (
            "bob-token",
            vec!["get", "pods", "--subresource=log", "-n", "kube-system"],
            "no",
        ),
        ("bob-token", vec!["create", "pods/exec"], "no"),
        (
            "bob-token",
            vec!["create", "pods", "--subresource=exec"],
            "no",
        ),
        (
            "carol-token",
            vec!["create", "nodes", "--subresource=proxy"],
            "yes",
        ),
        (
            "erin-token",
            vec!["create", "nodes", "--subresource=proxy"],
            "no",
        ),
        (
            "admin-token",
            vec!["create", "pods", "--subresource=exec"],
            "yes",
        ),
    ] {
        let mut argv = vec!["auth", "can-i"];
        argv.extend(&args);
        let o = kubectl(&a, home.path(), token, &argv);
        assert_eq!(
            (o.code, o.stdout.trim()),
            (if answer == "yes" { 0 } else { 1 }, answer),
            "{token} {args:?}: {o:?}"
        );
    }
    let o = kubectl(&a, home.path(), "bob-token", &["auth", "can-i", "--list"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("pods/log ") && l.contains("[get list]")),
        "{o:?}"
    );

    // /run needs nodes/proxy (carol's group); nodes/stats allows /stats/summary only (erin).
    let run = format!("/run/default/{pod}/main?cmd=echo+ran-by-carol");
    assert_eq!(
        curl(&a, &s, "carol-token", "POST", &run),
        (200, "ran-by-carol\n".to_string())
    );
    assert_eq!(
        forbidden(curl(&a, &s, "bob-token", "POST", &run)),
        "Forbidden (user=bob, verb=create, resource=nodes, subresource(s)=[proxy])"
    );
    let (code, body) = curl(&a, &s, "erin-token", "GET", "/stats/summary");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"node\""), "{body}");
    assert_eq!(
        forbidden(curl(&a, &s, "erin-token", "GET", "/pods")),
        "Forbidden (user=erin, verb=get, resource=nodes, subresource(s)=[pods proxy])"
    );
    assert_eq!(
        forbidden(curl(&a, &s, "erin-token", "GET", "/metrics")),
        "Forbidden (user=erin, verb=get, resource=nodes, subresource(s)=[metrics])"
    );
    forbidden(curl(&a, &s, "erin-token", "POST", &run));

    // system:masters needs no binding.
    let o = kubectl(
        &a,
        home.path(),
        "admin-token",
        &["exec", &pod, "--", "echo", "root-ok"],
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "root-ok\n"), "{o:?}");

    // The Python client: refused with 403 without a binding, served with one.
    assert_eq!(
        python_list_pods(&a, &s, "dave-token"),
        Err("ApiException 403 Forbidden".to_string())
    );
    assert_eq!(python_list_pods(&a, &s, "bob-token"), Ok(vec![pod.clone()]));

    // Denials are logged with the attributes.
    assert!(
        a.log_contains("forbidden request") && a.log_contains("user=bob"),
        "{}",
        common::tail(&a.agent_log(), 20)
    );

    // Editing the policy takes effect without a restart.
    std::fs::write(s.policy_dir().join("30-dave.yaml"), DAVE_TOO).unwrap();
    a.wait_for("dave's new binding", T, |_| {
        python_list_pods(&a, &s, "dave-token").ok()
    });
    let o = kubectl(&a, home.path(), "dave-token", &["logs", &pod]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "hello-from-web\n"),
        "{o:?}"
    );
    assert!(a.log_contains("authorization policy changed: reloaded"));

    // A broken policy is refused, named, and the last good one stays.
    std::fs::write(
        s.policy_dir().join("40-broken.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: oops}\nrules: [{apiGroups: [''], resources: [pods], verbz: [get]}]\n",
    )
    .unwrap();
    a.wait_for("the broken policy to be reported", T, |a| {
        a.log_contains("keeping the last good policy").then_some(())
    });
    let log = a.agent_log();
    let line = log
        .lines()
        .find(|l| l.contains("keeping the last good policy"))
        .unwrap_or_default();
    assert!(
        line.contains("40-broken.yaml")
            && line.contains("ClusterRole")
            && line.contains("oops")
            && line.contains("rules[0]")
            && line.contains("verbz"),
        "{line}"
    );
    assert_eq!(
        python_list_pods(&a, &s, "dave-token"),
        Ok(vec![pod.clone()])
    );
    assert_eq!(
        curl(&a, &s, "carol-token", "POST", &run),
        (200, "ran-by-carol\n".to_string())
    );
}

#[test]
fn always_allow_serves_every_authenticated_user() {
    let s = Setup::new();
    let mut flags = s.flags();
    flags.push("--authorization-mode=AlwaysAllow".into());
    let a = start(&flags);
    assert!(
        a.log_contains(
            "authorization mode AlwaysAllow: every authenticated user may do everything"
        ),
        "{}",
        a.agent_log()
    );
    assert!(a.log_contains("is ignored: authorization.mode (--authorization-mode) is AlwaysAllow"));
    let (code, body) = curl(&a, &s, "dave-token", "GET", "/pods");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        curl(&a, &s, "dave-token", "GET", "/healthz"),
        (200, "ok".into())
    );
    // Still authenticated: a wrong token is refused.
    assert_eq!(curl(&a, &s, "wrong", "GET", "/healthz").0, 401);
    let home = tempfile::tempdir().unwrap();
    let o = kubectl(
        &a,
        home.path(),
        "dave-token",
        &["auth", "can-i", "create", "pods/exec"],
    );
    assert_eq!((o.code, o.stdout.trim()), (0, "yes"), "{o:?}");
}

#[test]
fn no_policy_means_only_system_masters() {
    let s = Setup::new();
    let a = start(&s.authn_flags());
    assert!(a.log_contains("only group system:masters may use the API"));
    assert_eq!(
        forbidden(curl(&a, &s, "bob-token", "GET", "/healthz")),
        "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[healthz proxy])"
    );
    assert_eq!(
        curl(&a, &s, "admin-token", "GET", "/healthz"),
        (200, "ok".into())
    );
    // Discovery stays open to every authenticated user, as the API server's system:discovery.
    assert_eq!(curl(&a, &s, "bob-token", "GET", "/api").0, 200);
    let (code, body) = curl(&a, &s, "bob-token", "GET", "/apis");
    assert_eq!(code, 200);
    assert!(body.contains("authorization.k8s.io"), "{body}");
}

#[test]
fn webhook_mode_and_broken_policies_stop_the_start() {
    let s = Setup::new();
    let root = s.dir.path().join("root");
    let run = |extra: &[String]| {
        let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
            .arg(format!("--root-dir={}", root.display()))
            .arg("--port=1")
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?}: started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["--authorization-mode=Webhook".into()]);
    assert!(
        err.contains("authorization.mode (--authorization-mode) \"Webhook\"")
            && err.contains("no API server")
            && err.contains("--authorization-policy-path"),
        "{err}"
    );
    std::fs::write(
        s.policy_dir().join("50-bad.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n",
    )
    .unwrap();
    let err = run(&s.flags());
    assert!(
        err.contains("50-bad.yaml")
            && err.contains("RoleBinding \"b\"")
            && err.contains("metadata.namespace: Required value"),
        "{err}"
    );
    assert!(!root.exists(), "refused before anything was touched");
}
