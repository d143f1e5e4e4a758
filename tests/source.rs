//! The manifest source and admission with the real binary: bad files are reported one by one
//! while good pods run, duplicates are refused with an event naming both files, insecure paths
//! are refused, a directory that appears later is picked up, admission rejects what does not fit.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Agent, container_status};

const T: Duration = Duration::from_secs(20);

const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sleep, '3600']}\n";

/// Events are logged by the recorder as `event ... reason="X" message`; find one in the log.
fn event_logged(a: &Agent, reason: &str, needle: &str) -> bool {
    a.agent_log().lines().any(|l| {
        l.contains("minikubelet::events")
            && l.contains(&format!("reason=\"{reason}\""))
            && l.contains(needle)
    })
}

#[test]
fn bad_manifests_are_reported_per_file_while_good_pods_run() {
    let a = Agent::start(&[]);
    a.write_manifest("good.yaml", GOOD);
    let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.yaml", b"".to_vec(), "empty.yaml"),
        ("binary.bin", vec![0u8, 159, 146, 150, 0, 1, 2], "binary.bin"),
        (
            "service.yaml",
            b"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n".to_vec(),
            "service.yaml",
        ),
        // Host filesystem: there the image's entrypoint is not read, so a container without
        // a command cannot start (from its image it would run the image's `Cmd`).
        (
            "nocommand.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: nocmd, annotations: {minikubelet.io/host-filesystem: 'true'}}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test}\n".to_vec(),
            "",
        ),
        (
            "badquantity.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: bq}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '1']\n    resources: {limits: {memory: 12XB}}\n".to_vec(),
            "badquantity.yaml",
        ),
        (
            "unknownfield.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: uf}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sleep, '3600'], imagePullPolicyy: Always}\n".to_vec(),
            "",
        ),
        (
            "secret.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: sec}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '1']\n    env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n".to_vec(),
            "secret.yaml",
        ),
        ("noname.yaml", b"apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n".to_vec(), "noname.yaml"),
    ];
    for (name, bytes, _) in &corpus {
        let p = a.manifests.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Over 10 MiB: refused unread.
    let big = a.manifests.join("huge.yaml");
    std::fs::write(&big, vec![b'#'; 11 << 20]).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Unreadable: a dangling symlink.
    std::os::unix::fs::symlink(
        "/nonexistent/target.yaml",
        a.manifests.join("dangling.yaml"),
    )
    .unwrap();

    a.wait_running("good", "c", T);
    for (name, _, needle) in &corpus {
        if needle.is_empty() {
            continue;
        }
        a.wait_for(&format!("InvalidManifest event for {name}"), T, |a| {
            event_logged(a, "InvalidManifest", needle).then_some(())
        });
    }
    a.wait_for("huge.yaml refused", T, |a| {
        event_logged(a, "InvalidManifest", "huge.yaml").then_some(())
    });
    assert!(a.agent_log().contains("larger than"), "size message");
    assert!(
        a.agent_log()
            .contains("static pods may not reference secrets")
    );
    // No command: the pod exists, its container waits with CreateContainerConfigError.
    let c = a.wait_for("CreateContainerConfigError", T, |a| {
        container_status(&a.pod("nocmd")?, "c")
            .filter(|c| c["state"]["waiting"]["reason"] == "CreateContainerConfigError")
    });
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("no command")
    );
    // Unknown field: the pod runs, and the field is named in a warning event.
    a.wait_running("uf", "c", T);
    a.wait_for("unknown field named", T, |a| {
        event_logged(a, "UnsupportedField", "imagePullPolicyy").then_some(())
    });
    // The good pod was never disturbed.
    let good = a.pod("good").unwrap();
    assert_eq!(container_status(&good, "c").unwrap()["restartCount"], 0);
}

#[test]
fn duplicate_pod_names_refuse_the_second_file() {
    let a = Agent::start(&[]);
    a.write_manifest("a.yaml", GOOD);
    a.wait_running("good", "c", T);
    a.write_manifest("b.yaml", &GOOD.replace("3600", "3601"));
    a.wait_for("duplicate event naming both files", T, |a| {
        let log = a.agent_log();
        log.lines()
            .any(|l| l.contains("FailedValidation") && l.contains("a.yaml") && l.contains("b.yaml"))
            .then_some(())
    });
    // a.yaml keeps the pod.
    let p = a.pod("good").unwrap();
    assert_eq!(p["spec"]["containers"][0]["command"][1], "3600");
}

#[test]
fn insecure_manifest_directory_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .arg(format!("--pod-manifest-path={}", dir.display()))
        .arg(format!("--root-dir={}", tmp.path().join("root").display()))
        .arg("--port=1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("writable by non-root users") && err.contains("chmod go-w"),
        "{err}"
    );
}

#[test]
fn insecure_file_is_refused_with_the_fix() {
    let a = Agent::start(&[]);
    // Made writable before it appears (a rename), so the agent never sees a secure version.
    let staged = a.tmp.path().join("open.yaml");
    std::fs::write(&staged, GOOD).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::rename(&staged, a.manifests.join("open.yaml")).unwrap();
    a.wait_for("insecure file event", T, |a| {
        event_logged(a, "InvalidManifest", "writable by non-root users").then_some(())
    });
    assert!(a.pod("good").is_none());
}

#[test]
fn manifest_directory_created_later_is_picked_up() {
    let mut a = Agent::start(&[]);
    a.kill9();
    let later = a.tmp.path().join("later");
    a.manifests = later.clone();
    a.spawn();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir(&later).unwrap();
    std::fs::set_permissions(&later, std::fs::Permissions::from_mode(0o755)).unwrap();
    a.write_manifest("good.yaml", GOOD);
    a.wait_running("good", "c", T);
}

#[test]
fn admission_rejects_what_does_not_fit() {
    let a = Agent::start(&["--node-labels=disk=ssd"]);
    a.write_manifest(
        "huge.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '1']\n    resources: {requests: {memory: 100Ti}}\n",
    );
    a.write_manifest(
        "hdd.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hdd}\nspec:\n  nodeSelector: {disk: hdd}\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sleep, '1']}\n",
    );
    a.write_manifest(
        "ssd.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ssd}\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '3600']\n    ports: [{containerPort: 18999, hostPort: 18999}]\n",
    );
    a.wait_running("ssd", "c", T);
    // Written after ssd runs: files are admitted in name order, and this one must come second.
    a.write_manifest(
        "port.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: port}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '3600']\n    ports: [{containerPort: 18999, hostPort: 18999}]\n",
    );
    let huge = a.wait_for("huge rejected", T, |a| {
        a.pod("huge").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(huge["status"]["reason"], "OutOfmemory");
    let msg = huge["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Pod was rejected: Node didn't have enough resource: memory"),
        "{msg}"
    );
    let hdd = a.wait_for("hdd rejected", T, |a| {
        a.pod("hdd").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(hdd["status"]["reason"], "NodeAffinity");
    a.wait_running("ssd", "c", T);
    let port = a.wait_for("port conflict", T, |a| {
        a.pod("port").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(port["status"]["reason"], "NodePorts");
}

#[test]
fn init_containers_run_in_order_then_sidecar_and_main() {
    let a = Agent::start(&[]);
    let marker = a.tmp.path().join("order");
    let m = marker.display();
    a.write_manifest(
        "init.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: init
  # Host filesystem: the containers append to one file that the test reads on the node
  # (there are no volumes to share it through yet).
  annotations: {{minikubelet.io/host-filesystem: "true"}}
spec:
  initContainers:
  - {{name: first, image: localhost/busybox:test, command: [sh, -c, 'echo first >> {m}']}}
  - {{name: second, image: localhost/busybox:test, command: [sh, -c, 'sleep 0.3; echo second >> {m}']}}
  - name: side
    image: localhost/busybox:test
    restartPolicy: Always
    command: [sh, -c, 'echo side >> {m}; exec sleep 3600']
  containers:
  - {{name: main, image: localhost/busybox:test, command: [sh, -c, 'echo main >> {m}; exec sleep 3600']}}
"#
        ),
    );
    a.wait_running("init", "main", T);
    let p = a.pod("init").unwrap();
    assert_eq!(p["status"]["phase"], "Running");
    let order = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        ["first", "second", "side", "main"]
    );
    let first = container_status(&p, "first").unwrap();
    assert_eq!(first["state"]["terminated"]["reason"], "Completed");
    let side = container_status(&p, "side").unwrap();
    assert!(
        side["state"]["running"].is_object(),
        "sidecar keeps running"
    );
    let init_cond = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap()
        .clone();
    assert_eq!(init_cond["status"], "True");
}

#[test]
fn failed_init_container_with_restart_never_fails_the_pod() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "initfail.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: initfail}\nspec:\n  restartPolicy: Never\n  initContainers:\n  - {name: bad, image: localhost/busybox:test, command: [sh, -c, 'exit 4']}\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sleep, '3600']}\n",
    );
    let p = a.wait_for("pod Failed", T, |a| {
        a.pod("initfail")
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    let main = container_status(&p, "main").unwrap();
    assert!(
        main["state"]["running"].is_null(),
        "main container must not start"
    );
}

#[test]
fn hooks_run_post_start_and_pre_stop() {
    let a = Agent::start(&[]);
    let post = a.tmp.path().join("post");
    let pre = a.tmp.path().join("pre");
    a.write_manifest(
        "hooks.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooks
  # Host filesystem: the hooks write files that the test reads on the node.
  annotations: {{minikubelet.io/host-filesystem: "true"}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: localhost/busybox:test
    # PID 1 of its PID namespace: it stops on TERM only with a handler.
    command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo started > {}']}}}}
      preStop: {{exec: {{command: [sh, -c, 'echo stopping > {}']}}}}
"#,
            post.display(),
            pre.display()
        ),
    );
    a.wait_running("hooks", "c", T);
    assert_eq!(std::fs::read_to_string(&post).unwrap().trim(), "started");
    a.remove_manifest("hooks.yaml");
    a.wait_for("pod gone", T, |a| a.pod("hooks").is_none().then_some(()));
    assert_eq!(std::fs::read_to_string(&pre).unwrap().trim(), "stopping");
}

#[test]
fn failing_post_start_hook_kills_the_container() {
    let a = Agent::start(&[]);
    // The container stops on TERM (a handler: it is PID 1 of its PID namespace), so the kill
    // after the failed hook does not wait out the grace period.
    a.write_manifest(
        "badhook.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: badhook}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n    lifecycle:\n      postStart: {exec: {command: [sh, -c, 'exit 1']}}\n",
    );
    a.wait_for("FailedPostStartHook event", T, |a| {
        event_logged(a, "FailedPostStartHook", "").then_some(())
    });
    a.wait_for(
        "container restarted after the failed hook",
        Duration::from_secs(30),
        |a| {
            let c = container_status(&a.pod("badhook")?, "c")?;
            (c["restartCount"].as_i64()? >= 1).then_some(())
        },
    );
}

#[test]
fn env_field_and_resource_refs_and_user() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "env.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: env, labels: {app: web}}
spec:
  securityContext: {runAsUser: 65534, runAsGroup: 65534, supplementalGroups: [4242]}
  containers:
  - name: c
    image: localhost/busybox:test
    workingDir: /tmp
    command: [sh, -c, 'echo "$POD_NAME $NS $APP $MEM $GREETING $(id -u) $(id -g) $(pwd)"; id -G; exec sleep 3600']
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: NAME, value: world}
    - {name: GREETING, value: "hello-$(NAME)"}
    resources: {limits: {memory: 64Mi}}
"#,
    );
    a.wait_running("env", "c", T);
    let pod = a.pod("env").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let log = a.logs_dir.join(format!("default_{name}_{uid}/c/0.log"));
    let text = a.wait_for("log written", T, |_| {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.lines().count() >= 2)
    });
    assert!(
        text.contains(&format!(
            "{name} default web 64 hello-world 65534 65534 /tmp"
        )),
        "{text}"
    );
    assert!(text.contains("4242"), "supplemental group missing: {text}");
}
