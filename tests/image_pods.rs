//! Image-based pods end to end (as root, no network beyond loopback), the agent's default: a
//! busybox image built here from `/bin/busybox` is pushed
//! to Debian's docker-registry on 127.0.0.1; the agent pulls it (`Pulling`/`Pulled` events,
//! `imageID`), runs the container on an overlay of its layers with the image's entrypoint,
//! env and working dir (PID 1 of its own namespace), `kubectl exec` enters it, `command` and
//! `args` override by the kubelet's rules; the image errors have the kubelet's reasons; with
//! the deprecated `--feature-gates=ImageRootfs=false` an image-only pod gets "has no command".
//!
//! Cleanup: the registry is killed on drop, the agent and every process in its test cgroup
//! too (`common::Agent`); the overlays are mounted inside the containers' own mount
//! namespaces, so they go with the containers.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{Agent, container_status};

#[path = "common/images_fixture.rs"]
mod fixture;
use fixture::*;

const T: Duration = Duration::from_secs(60);

/// busybox, `sh` and `sleep` links, /etc/passwd and a file only the image has; entrypoint
/// `sh -c`, a cmd that prints its pid and sleeps.
fn busybox_app() -> Image {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian package busybox-static)");
    let tar = Tar::default()
        .dir("bin/")
        .file_mode("bin/busybox", &bb, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/sleep", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc/")
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .file("etc/group", b"root:x:0:\napp:x:1000:\n")
        .file("only-in-image", b"from the image\n")
        .dir("data/")
        .done();
    image_with_config(
        &[tar],
        goarch(),
        serde_json::json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo pid=$$ from=$FROM_IMAGE cwd=$(pwd); exec sleep 3600"],
            "Env": ["PATH=/bin", "FROM_IMAGE=yes"],
            "WorkingDir": "/data",
        }),
    )
}

/// The same files with neither ENTRYPOINT nor CMD.
fn no_command_image() -> Image {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox");
    let tar = Tar::default()
        .dir("bin/")
        .file_mode("bin/busybox", &bb, 0o755)
        .done();
    image_with_config(&[tar], goarch(), serde_json::json!({"Env": ["PATH=/bin"]}))
}

/// The pod's events (reason, message, fieldPath) from the API server surface.
fn events(a: &Agent, pod: &str) -> Vec<(String, String, String)> {
    a.pod_events(pod)
        .into_iter()
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&e["reason"]),
                s(&e["message"]),
                s(&e["involvedObject"]["fieldPath"]),
            )
        })
        .collect()
}

fn logs(a: &Agent, pod: &str, container: &str) -> String {
    common::http_get(a.port, &format!("/containerLogs/default/{pod}/{container}"))
        .map(|(_, b)| b)
        .unwrap_or_default()
}

fn waiting_reason(a: &Agent, pod: &str, container: &str) -> Option<(String, String)> {
    let p = a.pod(pod)?;
    let c = container_status(&p, container)?;
    let w = &c["state"]["waiting"];
    Some((
        w["reason"].as_str()?.to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Mount points under `dir` in this process's mount namespace.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_image_only_pod_runs_from_its_image() {
    let reg = Registry::start();
    let digest = reg.push("test/app", "1", &busybox_app());
    let a = Agent::start(&[]);
    let image = format!("127.0.0.1:{}/test/app:1", reg.port);
    a.write_manifest(
        "app.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {{name: main, image: '{image}'}}\n  - {{name: args, image: '{image}', args: ['echo args from=$FROM_IMAGE; exec sleep 3600']}}\n  - {{name: cmd, image: '{image}', command: [/bin/busybox, sh, -c], args: ['echo cmd $0 cwd=$(pwd); exec sleep 3600', zero], workingDir: /bin}}\n"
        ),
    );
    let main = a.wait_running("app", "main", T);
    a.wait_running("app", "args", T);
    a.wait_running("app", "cmd", T);
    let pod = a.pod("app").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // imageID as the kubelet shows it: the repository at the manifest digest.
    assert_eq!(
        main["imageID"],
        format!("127.0.0.1:{}/test/app@{digest}", reg.port),
        "{main}"
    );
    assert_eq!(main["image"], image.as_str());

    // The image's entrypoint, cmd, env and working dir; PID 1 of its own namespace.
    let out = a.wait_for("main's output", T, |a| {
        let l = logs(a, &pod, "main");
        l.contains("pid=").then_some(l)
    });
    assert!(out.contains("pid=1 from=yes cwd=/data"), "{out}");
    // `args` replaces CMD and keeps ENTRYPOINT; `command` replaces ENTRYPOINT and drops CMD.
    let out = a.wait_for("args' output", T, |a| {
        let l = logs(a, &pod, "args");
        l.contains("args").then_some(l)
    });
    assert!(out.contains("args from=yes"), "{out}");
    let out = a.wait_for("cmd's output", T, |a| {
        let l = logs(a, &pod, "cmd");
        l.contains("cmd").then_some(l)
    });
    assert!(out.contains("cmd zero cwd=/bin"), "{out}");

    // Pulling, then Pulled with time and size, once for the pull and "already present" after.
    let ev = a.wait_for("Pulled events", T, |a| {
        let ev = events(a, "app");
        (ev.iter().filter(|e| e.0 == "Pulled").count() >= 3).then_some(ev)
    });
    let field = "spec.containers{main}";
    assert!(
        ev.iter()
            .any(|e| e.0 == "Pulling" && e.1 == format!("Pulling image \"{image}\"")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.0 == "Pulled"
            && e.1
                .starts_with(&format!("Successfully pulled image \"{image}\" in "))
            && e.1.contains("Image size: ")),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e.2 == field), "{ev:?}");
    // Recorded as the pull begins, before the pull's result.
    let pulling = ev.iter().position(|e| e.0 == "Pulling").unwrap();
    let pulled = ev
        .iter()
        .position(|e| e.1.starts_with("Successfully pulled image"))
        .unwrap();
    assert!(pulling < pulled, "{ev:?}");

    // kubectl exec enters it: the image's root, not the node's.
    let home = tempfile::tempdir().unwrap();
    let r = common::run_client(
        {
            let mut c = Command::new(common::kubectl());
            c.env_clear()
                .env("HOME", home.path())
                .env("PATH", "/usr/bin:/bin")
                .arg(format!("--kubeconfig={}", a.kubeconfig().display()))
                .args(["exec", &pod, "-c", "main", "--", "sh", "-c"])
                .arg("cat /only-in-image; test -e /etc/debian_version && echo node-root; echo one=$(cat /proc/1/cmdline | tr '\\0' ' '); echo env=$FROM_IMAGE; echo host=$(hostname); grep -c 'Kubernetes-managed hosts file' /etc/hosts");
            c
        },
        b"",
        T,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("from the image"), "{}", r.stdout);
    assert!(!r.stdout.contains("node-root"), "{}", r.stdout);
    assert!(r.stdout.contains("one=sleep 3600"), "{}", r.stdout);
    assert!(r.stdout.contains("env=yes"), "{}", r.stdout);
    // In its pod's sandbox: the pod's hostname (UTS namespace) and the kubelet-managed hosts file.
    assert!(r.stdout.contains(&format!("host={pod}\n")), "{}", r.stdout);
    assert!(r.stdout.ends_with("1\n"), "{}", r.stdout);
    assert!(
        std::path::Path::new("/etc/debian_version").exists(),
        "the check above needs a node with /etc/debian_version"
    );

    // Image GC keeps an image a container uses, even when asked to remove every image.
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .args(["image", "prune", "--all", "--root-dir"])
        .arg(&a.root_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    // (The harness's unused test image goes; the one the pod runs from stays.)
    assert!(!text.contains("test/app"), "{text}");

    // Removal: the containers and their state (upper layers included) go; no mount is left.
    a.remove_manifest("app.yaml");
    a.wait_for("app removed", T, |a| a.pod("app").is_none().then_some(()));
    let containers = a.root_dir.join("containers");
    a.wait_for("container state removed", T, |_| {
        (std::fs::read_dir(&containers).unwrap().count() <= 1).then_some(())
    });
    assert_eq!(mounts_under(&a.root_dir), Vec::<String>::new());
}

#[test]
fn image_errors_have_the_kubelets_reasons() {
    let reg = Registry::start();
    reg.push("test/app", "1", &busybox_app());
    reg.push("test/nocmd", "1", &no_command_image());
    let a = Agent::start(&[]);
    let r = format!("127.0.0.1:{}", reg.port);
    a.write_manifest(
        "bad.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {{name: never, image: '{r}/test/missing:1', imagePullPolicy: Never}}\n  - {{name: notag, image: '{r}/test/app:nope'}}\n  - {{name: invalid, image: '{r}/Test/App:1'}}\n  - {{name: nocmd, image: '{r}/test/nocmd:1'}}\n"
        ),
    );
    let (_, m) = a.wait_for("ErrImageNeverPull", T, |a| {
        waiting_reason(a, "bad", "never").filter(|w| w.0 == "ErrImageNeverPull")
    });
    assert_eq!(
        m,
        format!("Container image \"{r}/test/missing:1\" is not present with pull policy of Never")
    );
    let (_, m) = a.wait_for("InvalidImageName", T, |a| {
        waiting_reason(a, "bad", "invalid").filter(|w| w.0 == "InvalidImageName")
    });
    assert!(m.starts_with("Failed to apply default image tag"), "{m}");
    let (_, m) = a.wait_for("the no-command error", T, |a| {
        waiting_reason(a, "bad", "nocmd").filter(|w| w.0 == "CreateContainerError")
    });
    assert!(m.contains("no command specified"), "{m}");
    // A tag the registry does not have: ErrImagePull, then ImagePullBackOff between pulls.
    let (_, m) = a.wait_for("ErrImagePull", T, |a| {
        waiting_reason(a, "bad", "notag").filter(|w| w.0 == "ErrImagePull")
    });
    assert!(
        m.starts_with(&format!("Failed to pull image \"{r}/test/app:nope\"")),
        "{m}"
    );
    let (_, m) = a.wait_for("ImagePullBackOff", T, |a| {
        waiting_reason(a, "bad", "notag").filter(|w| w.0 == "ImagePullBackOff")
    });
    assert_eq!(m, format!("Back-off pulling image \"{r}/test/app:nope\""));
    let ev = events(&a, "bad");
    for (reason, field) in [
        ("ErrImageNeverPull", "spec.containers{never}"),
        ("InspectFailed", "spec.containers{invalid}"),
        ("BackOff", "spec.containers{notag}"),
    ] {
        assert!(
            ev.iter().any(|e| e.0 == reason && e.2 == field),
            "{reason}: {ev:?}"
        );
    }
    assert!(
        ev.iter()
            .any(|e| e.0 == "Failed" && e.1 == "Error: ErrImagePull"),
        "{ev:?}"
    );
    a.remove_manifest("bad.yaml");
    a.wait_for("bad removed", T, |a| a.pod("bad").is_none().then_some(()));
}

#[test]
fn with_the_gate_off_an_image_only_pod_has_no_command() {
    let mut a = Agent::start_unspawned(&["--feature-gates=ImageRootfs=false"]);
    a.with_test_image = false;
    a.spawn();
    a.write_manifest(
        "plain.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - {name: main, image: busybox}\n",
    );
    let (reason, m) = a.wait_for("CreateContainerConfigError", T, |a| {
        waiting_reason(a, "plain", "main").filter(|w| w.0 != "ContainerCreating")
    });
    assert_eq!(reason, "CreateContainerConfigError");
    assert!(m.contains("has no command"), "{m}");
    // Nothing was pulled: the agent made no image store.
    assert!(!a.root_dir.join("images").exists());
}

/// After `kill -9` of the agent, the adopted image container keeps its `image` and `imageID`,
/// and its exec probe still runs with the image's env and working dir (the runtime's record of
/// the container, as containerd keeps it in its metadata).
#[test]
fn an_adopted_image_container_keeps_its_image_and_exec_context() {
    let reg = Registry::start();
    let digest = reg.push("test/app", "1", &busybox_app());
    let mut a = Agent::start(&[]);
    let image = format!("127.0.0.1:{}/test/app:1", reg.port);
    // Ready only while the probe sees the image's env and working dir.
    let probe = r#"["/bin/sh", "-c", "[ \"$FROM_IMAGE\" = yes ] && [ \"$(pwd)\" = /data ]"]"#;
    a.write_manifest(
        "app.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: '{image}'\n    readinessProbe:\n      exec: {{command: {probe}}}\n      periodSeconds: 1\n"
        ),
    );
    let ready = |a: &Agent| {
        let c = container_status(&a.pod("app")?, "main")?;
        (c["ready"] == true).then_some(c)
    };
    let before = a.wait_for("main ready", T, ready);
    let want_id = format!("127.0.0.1:{}/test/app@{digest}", reg.port);
    assert_eq!(before["imageID"], want_id.as_str(), "{before}");
    a.kill9();
    a.spawn();
    // Adopted: the same container, its image, and ready again by the same exec probe.
    let after = a.wait_for("main adopted and ready", T, |a| {
        let c = ready(a)?;
        (c["containerID"] == before["containerID"]).then_some(c)
    });
    assert_eq!(after["image"], image.as_str(), "{after}");
    assert_eq!(after["imageID"], want_id.as_str(), "{after}");
    assert_eq!(after["restartCount"], 0, "{after}");
    a.remove_manifest("app.yaml");
}

#[test]
fn a_container_never_created_has_no_image_id() {
    // A node whose resolv.conf cannot be read gets no pod sandbox (as the kubelet fails
    // `RunPodSandbox` then): the container is never created, so its status shows the spec's
    // image and no imageID, although the image is present.
    let a = Agent::start(&["--resolv-conf=/nonexistent/resolv.conf"]);
    a.write_manifest(
        "nosb.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nosb}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sleep, '3600']}\n",
    );
    a.wait_for("FailedCreatePodSandBox", T, |a| {
        (a.pod_events("nosb").iter())
            .find(|e| e["reason"] == "FailedCreatePodSandBox")
            .cloned()
    });
    // After a retry (5 s later): still creating, never started.
    std::thread::sleep(Duration::from_secs(6));
    let pod = a.pod("nosb").unwrap();
    let status = container_status(&pod, "c").unwrap();
    assert_eq!(
        status["state"]["waiting"]["reason"], "ContainerCreating",
        "{status}"
    );
    assert_eq!(status["image"], "localhost/busybox:test", "{status}");
    assert_eq!(status["imageID"], "", "{status}");
    assert!(status["containerID"].is_null(), "{status}");
    assert_eq!(status["restartCount"], 0, "not a failed start: {status}");
    let events = a.pod_events("nosb");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "FailedCreatePodSandBox"),
        "{events:?}"
    );
}
