//! Pod volumes end to end (as root): an `emptyDir` volume is bind-mounted at each container's
//! `volumeMounts[].mountPath` inside the container's mount namespace, shared by the pod's
//! containers, read-only where `readOnly: true`, and its contents live in the node directory
//! `<root-dir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>` (the kubelet's layout).
//!
//! Cleanup: the agent and every process in its test cgroup are killed on drop
//! (`common::Agent`); the bind mounts live in the containers' mount namespaces and go with them.
mod common;

use std::time::Duration;

use common::Agent;

const T: Duration = Duration::from_secs(60);

#[test]
fn an_empty_dir_is_mounted_in_each_container() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "shared.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: cache, emptyDir: {}}
  containers:
  - name: writer
    image: localhost/busybox:test
    command: [sh, -c, 'echo from-writer > /cache/note; while :; do sleep 1; done']
    volumeMounts: [{name: cache, mountPath: /cache}]
  - name: reader
    image: localhost/busybox:test
    command: [sh, -c, 'until [ -s /data/note ]; do sleep 0.1; done; echo read=$(cat /data/note); if touch /data/x 2>/dev/null; then echo rw; else echo ro; fi; grep " /data " /proc/self/mountinfo | head -n 1; while :; do sleep 1; done']
    volumeMounts: [{name: cache, mountPath: /data, readOnly: true}]
"#,
    );
    a.wait_running("shared", "reader", T);
    let pod = a.pod("shared").unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let logs = a.wait_for("reader's output", T, |a| {
        let text = a.get(&format!("/containerLogs/default/{name}/reader"))?;
        text.contains(" /data ").then_some(text)
    });
    assert!(logs.contains("read=from-writer"), "{logs}");
    assert!(logs.contains("\nro\n"), "readOnly: {logs}");
    // The volume's contents are the node directory's.
    let dir = a
        .root_dir
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/cache");
    assert_eq!(
        std::fs::read_to_string(dir.join("note")).unwrap(),
        "from-writer\n"
    );
    a.remove_manifest("shared.yaml");
    a.wait_for("pod removed", T, |a| {
        a.pod("shared").is_none().then_some(())
    });
    a.wait_for("volume torn down", T, |_| (!dir.exists()).then_some(()));
}

/// The node's mounts under `dir` (`/proc/self/mountinfo`'s mount points).
fn node_mounts_under(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// hostPath volumes with their `type` checks, a memory-backed emptyDir sized by its
/// `sizeLimit`, and a `Directory` that is missing: the pod waits in `ContainerCreating` with a
/// `FailedMount` event in the kubelet's words, and starts once the directory is there.
#[test]
fn host_paths_and_a_memory_empty_dir() {
    let a = Agent::start(&[]);
    let host = a.tmp.path().join("host");
    std::fs::create_dir_all(host.join("conf")).unwrap();
    std::fs::write(host.join("conf/app.conf"), "from-node\n").unwrap();
    let made = host.join("made/by/kubelet");
    let file = host.join("state.txt");
    let later = host.join("later");
    a.write_manifest(
        "hp.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hp}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: conf, hostPath: {{path: {conf}, type: Directory}}}}
  - {{name: made, hostPath: {{path: {made}, type: DirectoryOrCreate}}}}
  - {{name: state, hostPath: {{path: {file}, type: FileOrCreate}}}}
  - {{name: later, hostPath: {{path: {later}, type: Directory}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  containers:
  - name: c
    image: localhost/busybox:test
    command: [sh, -c, 'cat /conf/app.conf; if touch /conf/x 2>/dev/null; then echo conf=rw; else echo conf=ro; fi; echo written > /state; touch /made/here; grep " /mem " /proc/self/mountinfo | cut -d" " -f9; df -k /mem | tail -n 1; echo done; while :; do sleep 1; done']
    volumeMounts:
    - {{name: conf, mountPath: /conf, readOnly: true}}
    - {{name: made, mountPath: /made}}
    - {{name: state, mountPath: /state}}
    - {{name: later, mountPath: /later}}
    - {{name: mem, mountPath: /mem}}
"#,
            conf = host.join("conf").display(),
            made = made.display(),
            file = file.display(),
            later = later.display(),
        ),
    );
    // `later` does not exist: no container starts, the pod says why.
    let ev = a.wait_for("FailedMount", T, |a| {
        a.pod_events("hp")
            .into_iter()
            .find(|e| e["reason"] == "FailedMount")
    });
    assert_eq!(
        ev["message"],
        format!(
            "MountVolume.SetUp failed for volume \"later\" : hostPath type check failed: {} is not a directory",
            later.display()
        )
    );
    let p = a.pod("hp").unwrap();
    assert_eq!(
        common::container_status(&p, "c").unwrap()["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    // The types before it were set up in order (the kubelet mounts volumes independently).
    assert!(made.is_dir() && file.is_file());
    std::fs::create_dir(&later).unwrap();
    a.wait_running("hp", "c", T);
    let pod = a.pod("hp").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let logs = a.wait_for("the container's output", T, |a| {
        let text = a.get(&format!("/containerLogs/default/{name}/c"))?;
        text.contains("done").then_some(text)
    });
    assert!(logs.starts_with("from-node\nconf=ro\n"), "{logs}");
    assert!(logs.contains("\ntmpfs\n"), "a tmpfs at /mem: {logs}");
    assert!(logs.contains(" 8192 "), "sizeLimit 8Mi: {logs}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written\n");
    assert!(made.join("here").exists());
    // The tmpfs is the node's mount at the volume's directory, and goes with the pod.
    let vol = a
        .root_dir
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/mem");
    assert_eq!(
        node_mounts_under(&vol),
        vec![vol.display().to_string()],
        "tmpfs mounted on the node"
    );
    a.remove_manifest("hp.yaml");
    a.wait_for("pod removed", T, |a| a.pod("hp").is_none().then_some(()));
    a.wait_for("tmpfs unmounted, pod dir gone", T, |_| {
        (node_mounts_under(&vol).is_empty() && !vol.exists()).then_some(())
    });
    // hostPaths are the node's: they stay.
    assert!(host.join("conf/app.conf").exists() && file.exists());
}

/// `mountPropagation: HostToContainer`: a mount made on the node under the volume after the
/// container started appears inside it (`rslave`); with the default (`None`) it does not.
#[test]
fn host_to_container_propagation() {
    let a = Agent::start(&[]);
    let shared = a.tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The volume's directory as its own shared mount, so that later mounts below it propagate.
    let sh = |cmd: &str| {
        let st = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    };
    let d = shared.display();
    sh(&format!("mount --bind {d} {d} && mount --make-shared {d}"));
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-R", "-l", &self.0])
                .status();
        }
    }
    let _guard = Unmount(d.to_string());
    a.write_manifest(
        "prop.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: prop}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: s, hostPath: {{path: {d}, type: Directory}}}}
  containers:
  - name: slave
    image: localhost/busybox:test
    command: [sh, -c, 'until [ -e /s/sub/marker ]; do sleep 0.1; done; echo seen; while :; do sleep 1; done']
    volumeMounts: [{{name: s, mountPath: /s, mountPropagation: HostToContainer}}]
  - name: private
    image: localhost/busybox:test
    command: [sh, -c, 'while :; do if [ -e /s/sub/marker ]; then echo seen; else echo unseen; fi; sleep 0.5; done']
    volumeMounts: [{{name: s, mountPath: /s}}]
"#
        ),
    );
    a.wait_running("prop", "private", T);
    let name = a.pod("prop").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::create_dir(shared.join("sub")).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=1m none {d}/sub && touch {d}/sub/marker"
    ));
    a.wait_for("HostToContainer sees the node's new mount", T, |a| {
        let t = a.get(&format!("/containerLogs/default/{name}/slave"))?;
        t.contains("seen").then_some(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    let t = a
        .get(&format!("/containerLogs/default/{name}/private"))
        .unwrap();
    assert!(!t.contains("\nseen") && !t.starts_with("seen"), "{t}");
    a.remove_manifest("prop.yaml");
    a.wait_for("pod removed", T, |a| a.pod("prop").is_none().then_some(()));
}

/// What minikubelet would not set up as asked refuses the pod (`VolumeNotSupported`), with the
/// field and the fix; the pod beside it runs.
#[test]
fn volumes_not_set_up_as_asked_refuse_the_pod() {
    let a = Agent::start(&[]);
    let pod = |name: &str, volume: &str, mount: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes: [{volume}]\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sh, -c, 'while :; do sleep 1; done']\n    volumeMounts: [{mount}]\n"
        )
    };
    a.write_manifest(
        "nfs.yaml",
        &pod(
            "nfs",
            "{name: share, nfs: {server: 192.0.2.1, path: /export}}",
            "{name: share, mountPath: /share}",
        ),
    );
    a.write_manifest(
        "root.yaml",
        &pod(
            "root",
            "{name: r, hostPath: {path: /}}",
            "{name: r, mountPath: /host}",
        ),
    );
    a.write_manifest(
        "ok.yaml",
        &pod("ok", "{name: e, emptyDir: {}}", "{name: e, mountPath: /e}"),
    );
    for (name, start) in [
        (
            "nfs",
            "Pod was rejected: spec.volumes[0].nfs: this volume type is not implemented",
        ),
        (
            "root",
            "Pod was rejected: spec.containers[0].volumeMounts[0]: volume \"r\" is hostPath /",
        ),
    ] {
        let p = a.wait_for(&format!("{name} refused"), T, |a| {
            a.pod(name).filter(|p| p["status"]["phase"] == "Failed")
        });
        assert_eq!(p["status"]["reason"], "VolumeNotSupported");
        let m = p["status"]["message"].as_str().unwrap();
        assert!(m.starts_with(start), "{m}");
    }
    a.wait_running("ok", "c", T);
}

/// `subPath` and `subPathExpr` mount a part of a volume; a symbolic link planted in the volume
/// (by the pod's own init container, as an attacker would) that points out of it, absolutely
/// or by `..`, is refused with `CreateContainerConfigError` (the kubelet's CVE-2017-1002101
/// check), while one that stays inside is followed. The staging mounts go with the pod.
#[test]
fn sub_paths_mount_a_part_and_never_leave_the_volume() {
    let a = Agent::start(&[]);
    let sleep = "while :; do sleep 1; done";
    a.write_manifest(
        "sub.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sub}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: data, emptyDir: {{}}}}
  initContainers:
  - name: plant
    image: localhost/busybox:test
    command: [sh, -c, 'mkdir -p /data/site && echo hi > /data/site/index.html && echo cfg > /data/app.conf && ln -s / /data/escape && ln -s ../../../../../../../.. /data/rel && ln -s site /data/link']
    volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
  - name: site
    image: localhost/busybox:test
    command: [sh, -c, 'echo site=$(cat /srv/index.html) entries=$(ls /srv | wc -l); cat /etc/app.conf; echo within=$(cat /w/index.html); echo mine > /logs/f; echo done; {sleep}']
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    volumeMounts:
    - {{name: data, mountPath: /srv, subPath: site}}
    - {{name: data, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: data, mountPath: /w, subPath: link}}
    - {{name: data, mountPath: /logs, subPathExpr: 'logs/$(POD_NAME)'}}
  - name: escape
    image: localhost/busybox:test
    command: [sh, -c, '{sleep}']
    volumeMounts: [{{name: data, mountPath: /host, subPath: escape/etc}}]
  - name: rel
    image: localhost/busybox:test
    command: [sh, -c, '{sleep}']
    volumeMounts: [{{name: data, mountPath: /host, subPath: rel}}]
"#
        ),
    );
    a.wait_running("sub", "site", T);
    let pod = a.pod("sub").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let logs = a.wait_for("site's output", T, |a| {
        let t = a.get(&format!("/containerLogs/default/{name}/site"))?;
        t.contains("done").then_some(t)
    });
    assert!(
        logs.contains("site=hi entries=1\ncfg\nwithin=hi\n"),
        "{logs}"
    );
    let vol = a
        .root_dir
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/data");
    assert_eq!(
        std::fs::read_to_string(vol.join("logs").join(&name).join("f")).unwrap(),
        "mine\n"
    );
    for c in ["escape", "rel"] {
        let w = a.wait_for(&format!("{c} refused"), T, |a| {
            let p = a.pod("sub")?;
            let w = common::container_status(&p, c)?["state"]["waiting"].clone();
            (w["reason"] == "CreateContainerConfigError").then_some(w)
        });
        let m = w["message"].as_str().unwrap();
        assert!(
            m.starts_with(&format!(
                "failed to prepare subPath for volumeMount \"data\" of container \"{c}\": subpath "
            )) && m.contains("not within volume path"),
            "{m}"
        );
    }
    let staging = a.root_dir.join("pods").join(&uid).join("volume-subpaths");
    assert_eq!(
        node_mounts_under(&staging).len(),
        4,
        "one staging mount per subPath"
    );
    a.remove_manifest("sub.yaml");
    a.wait_for("pod removed", T, |a| a.pod("sub").is_none().then_some(()));
    a.wait_for("staging mounts gone", T, |_| {
        (node_mounts_under(&staging).is_empty() && !staging.exists()).then_some(())
    });
}

/// `downwardAPI` and `projected` volumes: the pod's metadata and a container's resources as
/// files, through the atomic writer's `..data` link, on a tmpfs, mounted read-only, with the
/// item's mode (`fsGroup` adds group read and the group); torn down with the pod.
#[test]
fn downward_api_and_projected_volumes() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "dapi.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: dapi
  labels: {app: web, tier: front}
  annotations: {build: "42"}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {fsGroup: 3000}
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: meta/labels, fieldRef: {fieldPath: metadata.labels}, mode: 256}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
  - name: proj
    projected:
      defaultMode: 288
      sources:
      - downwardAPI: {items: [{path: build, fieldRef: {fieldPath: "metadata.annotations['build']"}}]}
  containers:
  - name: c
    image: localhost/busybox:test
    resources: {limits: {memory: 64Mi}}
    command: [sh, -c, 'cat /info/name; echo; cat /info/meta/labels; echo; echo mem=$(cat /info/mem); echo build=$(cat /proj/build); stat -c %a /info/..data/meta/labels /proj/..data/build; stat -c %g /info/..data/name; readlink /info/name; if touch /info/x 2>/dev/null; then echo rw; else echo ro; fi; echo done; while :; do sleep 1; done']
    volumeMounts:
    - {name: info, mountPath: /info}
    - {name: proj, mountPath: /proj}
"#,
    );
    a.wait_running("dapi", "c", T);
    let pod = a.pod("dapi").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let logs = a.wait_for("the container's output", T, |a| {
        let t = a.get(&format!("/containerLogs/default/{name}/c"))?;
        t.contains("done").then_some(t)
    });
    let want = format!(
        "{name}\napp=\"web\"\ntier=\"front\"\nmem=64\nbuild=42\n440\n440\n3000\n..data/name\nro\ndone\n"
    );
    assert_eq!(logs, want);
    let dir = a
        .root_dir
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~downward-api/info");
    assert_eq!(
        node_mounts_under(&dir),
        vec![dir.display().to_string()],
        "a tmpfs"
    );
    a.remove_manifest("dapi.yaml");
    a.wait_for("pod removed", T, |a| a.pod("dapi").is_none().then_some(()));
    a.wait_for("volume gone", T, |_| {
        (node_mounts_under(&dir).is_empty() && !dir.exists()).then_some(())
    });
}
