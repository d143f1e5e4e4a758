//! The image store's accounting with the real binary (as root, no network): a container's
//! writable layer (its overlay's upper dir) is its `rootfs` in `/stats/summary`, part of its
//! pod's `ephemeral-storage`, and an `ephemeral-storage` limit it outgrows evicts the pod with
//! the kubelet's message.
//!
//! Cleanup: the agent and every process in its test cgroup go with `common::Agent`; the
//! overlays are mounted inside the containers' own mount namespaces.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::Agent;

#[path = "common/images_fixture.rs"]
mod fixture;

const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// Writes `mib` MiB into its own root filesystem (`/fill`, in the writable layer), then waits;
/// `limits` is YAML for `resources.limits` of the writer, `other` a second container's.
fn writer(name: &str, mib: u32, limits: &str, other: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: fill
    image: localhost/busybox:test
    command: ["sh", "-c", "dd if=/dev/zero of=/fill bs=1048576 count={mib} 2>/dev/null && sync && echo filled; trap 'exit 0' TERM; while :; do sleep 1; done"]
    resources:
      limits: {limits}
{other}"#
    )
}

fn pod_stats(summary: &Value, name: &str) -> Option<Value> {
    summary["pods"]
        .as_array()?
        .iter()
        .find(|p| {
            p["podRef"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
        })
        .cloned()
}

#[test]
fn a_containers_writable_layer_is_its_ephemeral_storage() {
    let a = Agent::start(&["--eviction-monitoring-period=1s"]);

    // 4 MiB written into the root filesystem, no limit: counted, nothing evicted.
    a.write_manifest("big.yaml", &writer("big", 4, "{}", ""));
    a.wait_running("big", "fill", T);
    let (rootfs, eph) = a.wait_for("the writable layer in /stats/summary", T, |a| {
        let s: Value = serde_json::from_str(&a.get("/stats/summary")?).ok()?;
        let p = pod_stats(&s, "big")?;
        let c = p["containers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "fill")?
            .clone();
        let rootfs = c["rootfs"]["usedBytes"].as_u64()?;
        (rootfs >= 4 * MIB).then(|| (c["rootfs"].clone(), p["ephemeral-storage"].clone()))
    });
    // Not the whole image (busybox is ~1-2 MiB): only what the container wrote, a few files.
    assert!(rootfs["usedBytes"].as_u64().unwrap() < 5 * MIB, "{rootfs}");
    assert!(rootfs["inodesUsed"].as_u64().unwrap() >= 1, "{rootfs}");
    assert!(rootfs["capacityBytes"].as_u64().unwrap() > 0, "{rootfs}");
    assert!(eph["usedBytes"].as_u64().unwrap() >= 4 * MIB, "{eph}");

    // A container limited to 2Mi that writes 4 MiB, beside one whose own limit keeps the
    // pod's total (12Mi) above its usage: the container check fires, with the kubelet's text.
    a.write_manifest(
        "over.yaml",
        &writer(
            "over",
            4,
            "{ephemeral-storage: 2Mi}",
            "  - name: idle\n    image: localhost/busybox:test\n    command: [sleep, '3600']\n    resources:\n      limits: {ephemeral-storage: 10Mi}\n",
        ),
    );
    let p = a.wait_for("over evicted", T, |a| {
        a.pod("over")
            .filter(|p| p["status"]["phase"] == "Failed" && p["status"]["reason"] == "Evicted")
    });
    assert_eq!(
        p["status"]["message"],
        r#"Container fill exceeded its local ephemeral storage limit "2Mi". "#,
        "{p}"
    );
    // The unlimited pod keeps running.
    let big = a.pod("big").unwrap();
    assert_eq!(big["status"]["phase"], "Running", "{big}");
    a.remove_manifest("big.yaml");
    a.remove_manifest("over.yaml");
}

/// The image GC of the agent: with the high threshold at 1 % (any disk is fuller) and no
/// minimum age, a pass deletes every image no container uses and keeps the one a running pod
/// (adopted across a restart) uses; it cannot get the disk down to 0 %, so it warns with the
/// kubelet's `FreeDiskSpaceFailed`, and a second failure in a row is `ImageGCFailed`.
#[test]
fn the_agent_collects_unused_images_and_keeps_those_in_use() {
    let mut a = Agent::start(&[]);
    a.write_manifest(
        "user.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: user}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sleep, '3600']}\n",
    );
    a.wait_running("user", "main", T);
    // A second image no container uses: one small layer of its own, as a `docker save` tar.
    let bin = env!("CARGO_BIN_EXE_minikubelet");
    let layer = fixture::Tar::default().file("spare.txt", b"spare").done();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": fixture::goarch(), "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [fixture::sha(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": ["localhost/spare:1"], "Layers": ["layer.tar"]}
    ]))
    .unwrap();
    let archive = a.tmp.path().join("spare.tar");
    std::fs::write(
        &archive,
        fixture::Tar::default()
            .file("config.json", &config)
            .file("layer.tar", &layer)
            .file("manifest.json", &manifest)
            .done(),
    )
    .unwrap();
    let images = |a: &Agent| -> Vec<String> {
        let out = std::process::Command::new(bin)
            .args(["image", "ls", "-q", "--root-dir"])
            .arg(&a.root_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let out = std::process::Command::new(bin)
        .args(["image", "import"])
        .arg(&archive)
        .arg("--root-dir")
        .arg(&a.root_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before = images(&a);
    assert!(before.iter().any(|n| n.contains("spare")), "{before:?}");

    // Restart with the GC armed and a one-second period.
    a.stop();
    a.extra = [
        "--image-gc-high-threshold=1",
        "--image-gc-low-threshold=0",
        "--minimum-image-ttl-duration=0s",
    ]
    .map(String::from)
    .to_vec();
    a.wrapper = ["env", "MINIKUBELET_IMAGE_GC_PERIOD=1s"]
        .map(String::from)
        .to_vec();
    a.spawn();
    let after = a.wait_for("the unused image collected", T, |a| {
        let l = images(a);
        (!l.iter().any(|n| n.contains("spare"))).then_some(l)
    });
    assert!(
        after.iter().any(|n| n.contains("busybox:test")),
        "the image in use was kept: {after:?}"
    );
    // The pod still runs (its layers were kept with it).
    let p = a.pod("user").unwrap();
    assert_eq!(p["status"]["phase"], "Running", "{p}");
    let reasons = a.wait_for("FreeDiskSpaceFailed and ImageGCFailed", T, |a| {
        let s: Value = serde_json::from_str(&a.get("/api/v1/events")?).ok()?;
        let reasons: Vec<String> = s["items"]
            .as_array()?
            .iter()
            .filter(|e| e["involvedObject"]["kind"] == "Node")
            .filter_map(|e| {
                Some(format!(
                    "{}: {}",
                    e["reason"].as_str()?,
                    e["message"].as_str()?
                ))
            })
            .collect();
        (reasons.iter().any(|r| r.starts_with("ImageGCFailed"))).then_some(reasons)
    });
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "FreeDiskSpaceFailed: Failed to garbage collect required amount of images. Attempted to free "
        )),
        "{reasons:?}"
    );
    // /stats/summary's imagefs shows what the store holds.
    let s: Value = serde_json::from_str(&a.get("/stats/summary").unwrap()).unwrap();
    let used = s["node"]["runtime"]["imageFs"]["usedBytes"]
        .as_u64()
        .unwrap();
    assert!(used > 0, "{s:#}");
    a.remove_manifest("user.yaml");
}
