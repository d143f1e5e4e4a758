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
