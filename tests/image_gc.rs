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
