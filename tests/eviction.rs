//! The eviction manager under real pressure, with the real binary: nothing mocked.
//!
//! Memory: the agent runs with `--system-reserved` sized from this machine's MemTotal so that
//! the `kubepods` cgroup (node allocatable) is 640 MiB, and `--eviction-hard=memory.available<400Mi`,
//! which enforceNodeAllocatable=pods copies to `allocatableMemory.available<400Mi`. A BestEffort
//! pod that allocates 300 MiB pushes kubepods' working set past 240 MiB: it is evicted, while a
//! Guaranteed pod within its request keeps running. The machine itself is never short.
//!
//! Disk: the agent's root dir and logs live on a 64 MiB tmpfs mounted in a private mount
//! namespace (`unshare -m`); a pod writing logs fast crosses `nodefs.available<20%`.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, container_status};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn mem_total() -> i64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = m
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

const GUARANTEED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  containers:
  - name: main
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 100m, memory: 32Mi}
"#;

/// A BestEffort pod that allocates (and touches) 300 MiB after a second.
const HOG: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: eat
    command: ["python3", "-c", "import time; time.sleep(1); b = b'x' * (300 << 20); time.sleep(3600)"]
"#;

const BESTEFFORT_SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  containers:
  - name: main
    command: ["sleep", "3600"]
"#;

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn eviction_report(a: &Agent) -> Value {
    serde_json::from_str(&a.get("/debug/eviction").unwrap_or_default()).unwrap_or(Value::Null)
}

fn condition(a: &Agent, ty: &str) -> Option<String> {
    let node: Value = serde_json::from_str(&a.get("/debug/node")?).ok()?;
    node["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .and_then(|c| c["status"].as_str().map(String::from))
}

#[test]
fn memory_pressure_evicts_besteffort_keeps_guaranteed_and_readmits() {
    let reserved = mem_total() - (640 << 20);
    let a = Agent::start(&[
        &format!("--system-reserved=memory={reserved}"),
        "--eviction-hard=memory.available<400Mi",
        "--eviction-pressure-transition-period=5s",
    ]);
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    assert_eq!(condition(&a, "MemoryPressure").as_deref(), Some("False"));
    let steady_started = container_status(&a.pod("steady").unwrap(), "main").unwrap()["state"]
        ["running"]["startedAt"]
        .clone();

    a.write_manifest("hog.yaml", HOG);
    a.wait_running("hog", "eat", T);
    let hog_uid = a.pod("hog").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();

    // Evicted: Failed / Evicted, the kubelet's message, DisruptionTarget.
    let hog = a.wait_for("hog evicted", T, |a| {
        a.pod("hog")
            .filter(|p| phase(p) == "Failed" && p["status"]["reason"] == "Evicted")
    });
    let msg = hog["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "The node was low on resource: memory. Threshold quantity: 400Mi, available: "
        ),
        "{msg}"
    );
    assert!(
        msg.contains("Container eat was using ")
            && msg.ends_with(", request is 0, has larger consumption of memory. "),
        "{msg}"
    );
    let dt = hog["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .expect("DisruptionTarget condition");
    assert_eq!(dt["status"], "True");
    assert_eq!(dt["reason"], "TerminationByKubelet");
    assert_eq!(hog["metadata"]["uid"], hog_uid.as_str());

    // Events: the node's EvictionThresholdMet and the pod's Evicted (with the deviation note).
    let log = a.agent_log();
    assert!(log.contains("EvictionThresholdMet") && log.contains("Attempting to reclaim memory"));
    assert!(log.contains("Static pod evicted: minikubelet evicts static pods"));

    // The Guaranteed pod kept running, untouched.
    let steady = a.pod("steady").unwrap();
    let c = container_status(&steady, "main").unwrap();
    assert_eq!(c["state"]["running"]["startedAt"], steady_started);
    assert_eq!(c["restartCount"], 0);

    // The decision is explained at /debug/eviction.
    let report = eviction_report(&a);
    let decisions = report["decisions"].as_array().unwrap();
    let d = decisions
        .iter()
        .find(|d| d["action"] == "evicted")
        .expect("an eviction decision");
    assert_eq!(d["signal"], "allocatableMemory.available");
    assert!(d["pod"].as_str().unwrap().starts_with("default/hog-"));
    assert_eq!(d["gracePeriodSeconds"], 1);
    // From the poll that saw the crossing to the decision (the fast path's target: 500 ms).
    assert!(d["reactionMs"].as_u64().unwrap() <= 500, "{d}");

    // ... and as tables by `minikubelet explain-eviction`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .args(["explain-eviction", &format!("--port={}", a.port)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "allocatableMemory.available",
        "MemoryPressure  True",
        "evicted default/hog-",
        "the kubelet would not evict this pod",
        "default/steady-",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // While MemoryPressure holds, a new BestEffort pod is refused (the hog's memory is gone,
    // but the condition lingers for the 5 s transition period).
    assert_eq!(condition(&a, "MemoryPressure").as_deref(), Some("True"));
    a.write_manifest("late.yaml", BESTEFFORT_SLEEPER);
    let late = a.wait_for("late refused", Duration::from_secs(5), |a| {
        a.pod("late").filter(|p| phase(p) == "Failed")
    });
    assert_eq!(late["status"]["reason"], "Evicted");
    assert_eq!(
        late["status"]["message"],
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    );

    // The condition clears after the transition period; the evicted pod and the refused one
    // come back as new instances.
    let start = Instant::now();
    a.wait_for("MemoryPressure cleared", Duration::from_secs(20), |a| {
        (condition(a, "MemoryPressure").as_deref() == Some("False")).then_some(())
    });
    assert!(start.elapsed() < Duration::from_secs(15));
    a.wait_running("late", "main", T);
    // The hog comes back and (allocating again) may be evicted again: seeing it run is enough.
    a.wait_for("hog running again", T, |a| {
        let p = a.pod("hog")?;
        container_status(&p, "eat").filter(|c| !c["state"]["running"].is_null())
    });
    a.remove_manifest("hog.yaml");
    let log = a.agent_log();
    assert!(log.contains("re-admitting pods evicted or refused under pressure"));
}

/// Runs the agent inside a private mount namespace with its root and logs dirs on a tmpfs of
/// `size`; the mount vanishes with the namespace.
fn start_on_tmpfs(size: &str, extra: &[&str]) -> Agent {
    Agent::start_in_tmpfs(size, extra)
}

const LOGGER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  containers:
  - name: talk
    command: ["sh", "-c", "sleep 1; yes 'a line of log output that fills the disk quickly' | head -c 60000000; sleep 3600"]
"#;

#[test]
fn disk_pressure_evicts_a_pod_that_fills_the_logs() {
    let a = start_on_tmpfs(
        "64m",
        &[
            "--eviction-hard=nodefs.available<40%",
            "--eviction-pressure-transition-period=5s",
            "--container-log-max-size=100Mi",
        ],
    );
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    a.write_manifest("chatty.yaml", LOGGER);
    let p = a.wait_for("chatty evicted", T, |a| {
        a.pod("chatty")
            .filter(|p| phase(p) == "Failed" && p["status"]["reason"] == "Evicted")
    });
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The node was low on resource: ephemeral-storage. Threshold quantity: "),
        "{msg}"
    );
    assert!(msg.contains("Container talk was using "), "{msg}");
    assert_eq!(condition(&a, "DiskPressure").as_deref(), Some("True"));
    // Under DiskPressure every new pod is refused.
    a.write_manifest("late.yaml", GUARANTEED.replace("steady", "late2").as_str());
    let late = a.wait_for("late2 refused", Duration::from_secs(5), |a| {
        a.pod("late2").filter(|p| phase(p) == "Failed")
    });
    assert_eq!(
        late["status"]["message"],
        "Pod was rejected: The node had condition: [DiskPressure]. "
    );
    // The steady pod keeps running.
    a.wait_running("steady", "main", T);
}
