//! The eviction manager under real pressure, with the real binary: nothing mocked.
//!
//! Memory: the agent runs with `--system-reserved` sized from this machine's MemTotal so that
//! the `kubepods` cgroup (node allocatable) is 640 MiB, and `--eviction-hard=memory.available<400Mi`,
//! which enforceNodeAllocatable=pods copies to `allocatableMemory.available<400Mi`. A BestEffort
//! pod that allocates 300 MiB pushes kubepods' working set past 240 MiB: it is evicted, while a
//! Guaranteed pod within its request keeps running. The machine itself is never short.
//!
//! Disk: the agent's root dir and logs live on a small tmpfs mounted in a private mount
//! namespace (`unshare -m`, `Agent::start_in_tmpfs`); pods fill their logs or their emptyDir
//! (bind-mounted at its volumeMount; its files are on the node, in the root dir) to
//! cross `nodefs.available`, or create many files on a tmpfs with few inodes to cross
//! `nodefs.inodesFree`. The image store (the busybox test image: about 4 MiB and 300 inodes)
//! is on that tmpfs too; every threshold leaves room for it before the pods fill the disk.
//! The same setup shows soft grace periods, minimum reclaim, one eviction per cycle and
//! critical pods. Local-storage limits (emptyDir `sizeLimit`, `ephemeral-storage`) need no
//! pressure at all; `pid.available` uses a threshold just below what is free when the test
//! starts.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, container_status};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

const GUARANTEED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 100m, memory: 32Mi}
"#;

/// A BestEffort pod that allocates (and touches) 300 MiB after a second: dd reads 300 MiB of
/// zeros into one buffer and holds it, blocked writing to a `sleep` that never reads. Its shell
/// (PID 1) stops at SIGTERM, as the Python hog did, so an eviction does not wait out the grace
/// period.
const HOG: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: eat
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1; dd if=/dev/zero bs=300M count=1 2>/dev/null | sleep 3600 & wait"]
"#;

const BESTEFFORT_SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  containers:
  - name: main
    image: localhost/busybox:test
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
    let reserved = common::mem_total() - (640 << 20);
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
        .arg(format!("--kubeconfig={}", a.kubeconfig().display()))
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
    a.write_manifest("chatty.yaml", common::LOGGER);
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
    // The evicted pod keeps its logs, which still fill the disk; the next cycle's node-level
    // reclaim removes them (the kubelet's container GC under disk pressure), and that is
    // enough: no other pod is evicted.
    let d = a.wait_for("a reclaimed decision", T, |a| {
        decisions(a)
            .into_iter()
            .find(|d| d["action"] == "reclaimed")
    });
    assert_eq!(d["signal"], "nodefs.available");
    assert!(
        a.log_contains("removed the exited containers and logs of evicted pods to reclaim disk")
    );
    assert!(
        !decisions(&a).iter().any(|d| d["action"] == "evicted"
            && d["pod"]
                .as_str()
                .is_some_and(|p| p.starts_with("default/steady-"))),
        "the steady pod was evicted"
    );
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

// ---------------------------------------------------------------------------------------------
// Disk, inodes, local-storage limits, soft thresholds, minimum reclaim, pids, critical pods and
// one eviction per cycle. Pods write into their emptyDir through its volumeMount; its contents
// live in `<root-dir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>` on the node, where the
// eviction manager measures them. Everything is observed through the agent's API: /pods,
// /debug/eviction, /api/v1/events, /containerLogs, and the order of the agent's log lines.

/// Short cycles so that tests do not wait for the kubelet's 10 s period.
const MONITOR: &str = "--eviction-monitoring-period=1s";

/// A pod that writes `mib` MiB into its emptyDir `scratch`, mounted at /scratch (once
/// /scratch/go exists if `wait_for_go`: see [`go`]), then sleeps; it stops at SIGTERM (its
/// shell is PID 1, which would ignore it), so an eviction takes no grace period. `extra_spec`
/// is YAML inserted into `spec` (priority, limits, ...).
fn filler(name: &str, mib: u32, wait_for_go: bool, extra_spec: &str, volume: &str) -> String {
    let wait = if wait_for_go {
        "while [ ! -e /scratch/go ]; do sleep 0.1; done; "
    } else {
        ""
    };
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 30
{extra_spec}
  volumes:
  - name: scratch
    emptyDir: {volume}
  containers:
  - name: fill
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; echo hello from {name}; {wait}dd if=/dev/zero of=/scratch/blob bs=1M count={mib} 2>/dev/null; echo filled; sleep 3600 & wait"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
"#
    )
}

/// Lets waiting [`filler`] pods start writing: creates /scratch/go in each through the
/// kubelet's `/run` endpoint (an exec in the container).
fn go(a: &Agent, pods: &[&str]) {
    for pod in pods {
        let name = a.pod(pod).unwrap()["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, body) = common::http_request(
            a.port,
            "POST",
            &format!("/run/default/{name}/fill?cmd=touch+/scratch/go"),
            common::token_for(a.port).as_deref(),
            &[],
        )
        .unwrap_or_else(|| panic!("/run {name}: no answer"));
        assert_eq!(code, 200, "/run {name}: {body}");
    }
}

fn evicted(a: &Agent, name: &str) -> Option<Value> {
    a.pod(name)
        .filter(|p| phase(p) == "Failed" && p["status"]["reason"] == "Evicted")
}

fn decisions(a: &Agent) -> Vec<Value> {
    eviction_report(a)["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The Evicted events of a pod, from the API server surface.
fn evicted_events(a: &Agent, pod: &str) -> Vec<Value> {
    a.pod_events(pod)
        .into_iter()
        .filter(|e| e["reason"] == "Evicted")
        .collect()
}

fn has_condition(p: &Value, ty: &str) -> bool {
    p["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty))
}

#[test]
fn disk_pressure_evicts_a_pod_filling_its_empty_dir_with_annotated_event() {
    let a = start_on_tmpfs(
        "64m",
        &[
            "--eviction-hard=nodefs.available<40%",
            "--eviction-pressure-transition-period=30s",
            MONITOR,
        ],
    );
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    a.write_manifest("fill.yaml", &filler("fill", 45, false, "", "{}"));
    let p = a.wait_for("fill evicted", T, |a| evicted(a, "fill"));
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The node was low on resource: ephemeral-storage. Threshold quantity: "),
        "{msg}"
    );
    assert!(has_condition(&p, "DisruptionTarget"), "{p}");
    assert_eq!(condition(&a, "DiskPressure").as_deref(), Some("True"));
    // The ranking saw the emptyDir's usage.
    let d = decisions(&a);
    let d = d.iter().find(|d| d["action"] == "evicted").unwrap();
    assert_eq!(d["signal"], "nodefs.available");
    assert!(d["pod"].as_str().unwrap().starts_with("default/fill-"));
    // The Evicted event carries the kubelet's annotations as metadata.annotations.
    let ev = evicted_events(&a, "fill");
    assert_eq!(ev.len(), 1, "{ev:?}");
    let ann = &ev[0]["metadata"]["annotations"];
    assert_eq!(ann["starved_resource"], "ephemeral-storage", "{}", ev[0]);
    assert_eq!(ann["offending_containers"], "fill", "{}", ev[0]);
    assert!(
        ann["offending_containers_usage"].as_str().is_some(),
        "{}",
        ev[0]
    );
    assert_eq!(ev[0]["type"], "Warning");
    // New pods are refused while DiskPressure holds (the condition lingers 30 s).
    a.write_manifest("late.yaml", GUARANTEED.replace("steady", "late2").as_str());
    let late = a.wait_for("late2 refused", T, |a| {
        a.pod("late2").filter(|p| phase(p) == "Failed")
    });
    assert_eq!(late["status"]["reason"], "Evicted");
    assert_eq!(
        late["status"]["message"],
        "Pod was rejected: The node had condition: [DiskPressure]. "
    );
    // The other pod kept running.
    let steady = a.pod("steady").unwrap();
    assert_eq!(
        container_status(&steady, "main").unwrap()["restartCount"],
        0
    );
    a.remove_manifest("fill.yaml");
}

#[test]
fn inode_pressure_evicts_a_pod_creating_many_files() {
    // 2000 inodes, about 300 of them the image store's: a pod creating 1200 empty files
    // crosses nodefs.inodesFree<50%.
    let a = start_on_tmpfs(
        "64m,nr_inodes=2000",
        &[
            "--eviction-hard=nodefs.inodesFree<50%",
            "--eviction-pressure-transition-period=30s",
            MONITOR,
        ],
    );
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    let files = r#"
apiVersion: v1
kind: Pod
metadata: {name: files}
spec:
  volumes:
  - name: scratch
    emptyDir: {}
  containers:
  - name: touch
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; cd /scratch && i=0; while [ $i -lt 1200 ]; do : > f$i; i=$((i+1)); done; echo done; sleep 3600 & wait"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"#;
    a.write_manifest("files.yaml", files);
    let p = a.wait_for("files evicted", T, |a| evicted(a, "files"));
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "The node was low on resource: inodes. Threshold quantity: 1k, available: "
        ),
        "{msg}"
    );
    assert_eq!(condition(&a, "DiskPressure").as_deref(), Some("True"));
    let d = decisions(&a);
    let d = d.iter().find(|d| d["action"] == "evicted").unwrap();
    assert_eq!(d["signal"], "nodefs.inodesFree");
    assert_eq!(d["resource"], "inodes");
    let ev = evicted_events(&a, "files");
    assert_eq!(
        ev[0]["metadata"]["annotations"]["starved_resource"],
        "inodes"
    );
    // The steady pod is untouched.
    let steady = a.pod("steady").unwrap();
    assert_eq!(phase(&steady), "Running");
    a.remove_manifest("files.yaml");
}

/// A pod with two containers whose logs are limited: `a` (1Mi) writes 2 MiB of logs, `b`
/// (10Mi) only sleeps; the pod's total limit (11Mi) is not reached, so the container check fires.
const CONTAINER_LIMIT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  containers:
  - name: a
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; echo hello from the chatty pod; yes 'a line of log output' | head -c 2097152; sleep 3600 & wait"]
    resources:
      limits: {ephemeral-storage: 1Mi}
  - name: b
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    resources:
      limits: {ephemeral-storage: 10Mi}
"#;

#[test]
fn local_storage_limits_evict_the_offending_pods_and_logs_stay_readable() {
    // No threshold can fire (memory only, at a harmless level): only the limits evict.
    let a = Agent::start(&[MONITOR]);
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    // emptyDir sizeLimit 1Mi, 4 MiB written.
    a.write_manifest(
        "sized.yaml",
        &filler("sized", 4, false, "", "{sizeLimit: 1Mi}"),
    );
    // A pod-level ephemeral-storage limit of 2Mi (one container), 3 MiB in an emptyDir
    // without sizeLimit.
    a.write_manifest(
        "podlimit.yaml",
        &filler("podlimit", 3, false, "", "{}").replace(
            "  - name: fill\n",
            "  - name: fill\n    resources:\n      limits: {ephemeral-storage: 2Mi}\n",
        ),
    );
    a.write_manifest("chatty.yaml", CONTAINER_LIMIT);
    for (pod, want) in [
        (
            "sized",
            r#"Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". "#,
        ),
        (
            "podlimit",
            "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. ",
        ),
        (
            "chatty",
            r#"Container a exceeded its local ephemeral storage limit "1Mi". "#,
        ),
    ] {
        let p = a.wait_for(&format!("{pod} evicted"), T, |a| evicted(a, pod));
        assert_eq!(p["status"]["message"], want, "{pod}");
        // The kubelet adds no DisruptionTarget condition for a local-storage limit eviction.
        assert!(!has_condition(&p, "DisruptionTarget"), "{p}");
        let ev = evicted_events(&a, pod);
        assert_eq!(ev.len(), 1, "{pod}: {ev:?}");
        assert!(
            ev[0]["message"].as_str().unwrap().starts_with(want),
            "{}",
            ev[0]
        );
    }
    let d = decisions(&a);
    let signals: Vec<&str> = d
        .iter()
        .filter(|d| d["action"] == "evicted")
        .filter_map(|d| d["signal"].as_str())
        .collect();
    for s in [
        "emptydirfs.limit",
        "ephemeralpodfs.limit",
        "ephemeralcontainerfs.limit",
    ] {
        assert!(signals.contains(&s), "{s} not in {signals:?}");
    }
    assert!(
        d.iter()
            .all(|d| d["gracePeriodSeconds"] == 1 || d["action"] != "evicted")
    );
    // No pressure condition: nothing else was touched.
    assert_eq!(condition(&a, "DiskPressure").as_deref(), Some("False"));
    let steady = a.pod("steady").unwrap();
    assert_eq!(phase(&steady), "Running");

    // The evicted pod's logs are still readable, as `kubectl logs` of an evicted pod is.
    let chatty = a.pod("chatty").unwrap();
    let name = chatty["metadata"]["name"].as_str().unwrap();
    let (code, body) = common::http_get(
        a.port,
        &format!("/containerLogs/default/{name}/a?limitBytes=100"),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("hello from the chatty pod\n"), "{body}");
    let sized = a.pod("sized").unwrap();
    let name = sized["metadata"]["name"].as_str().unwrap();
    let (code, body) =
        common::http_get(a.port, &format!("/containerLogs/default/{name}/fill")).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("hello from sized\n"), "{body}");
    // Removing the manifest removes the pod and, with it, the logs it kept.
    let log_dir = a.logs_dir.join(format!(
        "default_{name}_{}",
        sized["metadata"]["uid"].as_str().unwrap()
    ));
    assert!(log_dir.exists());
    a.remove_manifest("sized.yaml");
    a.wait_for("sized gone with its logs", T, |a| {
        (a.pod("sized").is_none() && !log_dir.exists()).then_some(())
    });
}

/// RFC 3339 seconds of a report field.
fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

/// The nodefs.available threshold as /debug/eviction shows it.
fn nodefs_threshold(report: &Value) -> Option<Value> {
    report["signals"]
        .as_array()?
        .iter()
        .find(|s| s["signal"] == "nodefs.available")?["thresholds"]
        .as_array()?
        .first()
        .cloned()
}

#[test]
fn soft_threshold_waits_for_its_grace_period() {
    let a = start_on_tmpfs(
        "64m",
        &[
            "--eviction-soft=nodefs.available<40%",
            "--eviction-soft-grace-period=nodefs.available=5s",
            "--eviction-max-pod-grace-period=3",
            "--eviction-pressure-transition-period=30s",
            MONITOR,
        ],
    );
    a.write_manifest("fill.yaml", &filler("fill", 45, false, "", "{}"));
    // First: the threshold is met (DiskPressure at once, conditions ignore grace) but not
    // acted on, and the pod is still running.
    let (met_since, grace) = a.wait_for("soft threshold met, not acted on", T, |a| {
        let r = eviction_report(a);
        let t = nodefs_threshold(&r)?;
        if t["met"] != true || t["actedOn"] != false {
            return None;
        }
        let fill = a.pod("fill")?;
        assert_eq!(
            phase(&fill),
            "Running",
            "evicted before its grace period: {r}"
        );
        assert_eq!(condition(a, "DiskPressure").as_deref(), Some("True"));
        assert_eq!(t["hard"], false);
        Some((ts(&t["metSince"]), t["gracePeriod"].as_str()?.to_string()))
    });
    assert_eq!(grace, "5s");
    // Then: evicted once the grace period has passed, with min(evictionMaxPodGracePeriod,
    // the pod's terminationGracePeriodSeconds) = 3 s.
    let p = a.wait_for("fill evicted", T, |a| evicted(a, "fill"));
    assert!(has_condition(&p, "DisruptionTarget"));
    let d = decisions(&a);
    let d = d.iter().find(|d| d["action"] == "evicted").unwrap();
    assert_eq!(d["signal"], "nodefs.available");
    assert_eq!(d["gracePeriodSeconds"], 3);
    // The recorded decision comes at least the grace period after the first observation
    // (both recorded in whole seconds, hence the 1 s allowance).
    let waited = ts(&d["time"]).duration_since(met_since);
    assert!(
        waited >= jiff::SignedDuration::from_secs(4),
        "decided {waited:?} after the threshold was first met: {d}"
    );
    a.remove_manifest("fill.yaml");
}

/// `Threshold quantity: <q>, available: <a>. ` of an eviction message, in bytes.
fn threshold_and_available(msg: &str) -> (i64, i64) {
    let rest = msg.split_once("Threshold quantity: ").unwrap().1;
    let (q, rest) = rest.split_once(", available: ").unwrap();
    let avail = rest.split_once(". ").unwrap().0;
    let parse = |s: &str| {
        minikubelet::api::quantity::Quantity::parse(s)
            .unwrap()
            .value()
    };
    (parse(q), parse(avail))
}

#[test]
fn minimum_reclaim_keeps_evicting_until_the_extra_amount_is_free() {
    // 100 MiB disk, threshold 30 MiB free, minimum reclaim 30 MiB: once fired, the threshold
    // holds until 60 MiB are free. `keeper` (priority 1000) writes 50 MiB, `spike` 30 MiB:
    // with the image store's 4 MiB, 16 MiB free, the threshold fires and `spike` (lower
    // priority) goes first. That frees 30 MiB: 46 MiB free is above the threshold but below
    // threshold + minimum reclaim, so `keeper` is evicted too. Without minimum reclaim it would keep running. The period is
    // long: the crossing is seen by the fast poll, and the second eviction comes from the cycle
    // that runs at once after the first (as the kubelet's loop after `waitForPodsCleanup`),
    // not from a later period.
    let a = start_on_tmpfs(
        "100m",
        &[
            "--eviction-hard=nodefs.available<30%",
            "--eviction-minimum-reclaim=nodefs.available=30Mi",
            "--eviction-pressure-transition-period=60s",
            "--eviction-monitoring-period=1h",
        ],
    );
    a.write_manifest(
        "keeper.yaml",
        &filler("keeper", 50, true, "  priority: 1000", "{}"),
    );
    a.write_manifest("spike.yaml", &filler("spike", 30, true, "", "{}"));
    a.wait_running("keeper", "fill", T);
    a.wait_running("spike", "fill", T);
    go(&a, &["keeper", "spike"]);
    let spike = a.wait_for("spike evicted", T, |a| evicted(a, "spike"));
    let keeper = a.wait_for("keeper evicted", T, |a| evicted(a, "keeper"));
    let (q1, avail1) = threshold_and_available(spike["status"]["message"].as_str().unwrap());
    let (q2, avail2) = threshold_and_available(keeper["status"]["message"].as_str().unwrap());
    assert_eq!(q1, q2);
    assert!(
        avail1 < q1,
        "the first eviction is below the threshold: {avail1} {q1}"
    );
    // The second eviction happened with more than the threshold free, but less than
    // threshold + minimum reclaim: the minimum reclaim kept the threshold met.
    assert!(avail2 > q2, "{avail2} {q2}");
    assert!(avail2 < q2 + (30 << 20), "{avail2} {q2}");
    let d: Vec<Value> = decisions(&a)
        .into_iter()
        .filter(|d| d["action"] == "evicted")
        .collect();
    assert!(d[0]["pod"].as_str().unwrap().starts_with("default/spike-"));
    assert!(d[1]["pod"].as_str().unwrap().starts_with("default/keeper-"));
    assert_eq!(d[1]["trigger"], "retry", "{d:?}");
    // After both: 96 MiB free, the threshold and its reclaim are satisfied; nothing more.
    a.wait_for("threshold resolved", T, |a| {
        nodefs_threshold(&eviction_report(a)).filter(|t| t["met"] == false)
    });
    a.remove_manifest("keeper.yaml");
    a.remove_manifest("spike.yaml");
}

#[test]
fn one_pod_per_cycle_with_the_wait_for_the_first_to_be_gone() {
    // Two pods of 20 MiB each on 64 MiB with the threshold at 48 MiB free: both must go, but
    // one per cycle, the second only once the first is cleaned up.
    let a = start_on_tmpfs(
        "64m",
        &[
            "--eviction-hard=nodefs.available<75%",
            "--eviction-pressure-transition-period=60s",
            MONITOR,
        ],
    );
    a.write_manifest("one.yaml", &filler("one", 20, true, "", "{}"));
    a.write_manifest("two.yaml", &filler("two", 20, true, "", "{}"));
    a.wait_running("one", "fill", T);
    a.wait_running("two", "fill", T);
    go(&a, &["one", "two"]);
    a.wait_for("both evicted", T, |a| {
        (evicted(a, "one").is_some() && evicted(a, "two").is_some()).then_some(())
    });
    let d: Vec<Value> = decisions(&a)
        .into_iter()
        .filter(|d| d["action"] == "evicted")
        .collect();
    assert_eq!(d.len(), 2, "{d:?}");
    // Each decision names one pod, in the order of the agent's log: evict, wait until the
    // pod is cleaned up, evict the next.
    let log = a.agent_log();
    let first = d[0]["pod"].as_str().unwrap().trim_start_matches("default/");
    let second = d[1]["pod"].as_str().unwrap().trim_start_matches("default/");
    assert_ne!(first, second);
    let uid_first = a
        .pods()
        .into_iter()
        .find(|p| p["metadata"]["name"] == first)
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let line = |what: &str, who: &str| {
        log.lines()
            .position(|l| l.contains(what) && l.contains(who))
            .unwrap_or_else(|| panic!("no log line {what:?} for {who}"))
    };
    let evicting_first = line(
        "eviction manager: evicting pod",
        &format!("pod=default/{first} "),
    );
    let cleaned = line("evicted pod is cleaned up", &uid_first);
    let evicting_second = line(
        "eviction manager: evicting pod",
        &format!("pod=default/{second} "),
    );
    assert!(
        evicting_first < cleaned && cleaned < evicting_second,
        "the second eviction came before the first pod was cleaned up"
    );
}

#[test]
fn critical_pods_are_never_evicted() {
    // `critical` (system-node-critical) fills 45 MiB, `normal` 5 MiB: `normal` is evicted
    // (lower priority first); the pressure remains, the ranking then offers only `critical`,
    // which is skipped cycle after cycle.
    let a = start_on_tmpfs(
        "64m",
        &[
            "--eviction-hard=nodefs.available<40%",
            "--eviction-pressure-transition-period=60s",
            MONITOR,
        ],
    );
    a.write_manifest(
        "critical.yaml",
        &filler(
            "critical",
            45,
            true,
            "  priorityClassName: system-node-critical",
            "{}",
        ),
    );
    a.write_manifest("normal.yaml", &filler("normal", 5, true, "", "{}"));
    a.wait_running("critical", "fill", T);
    a.wait_running("normal", "fill", T);
    go(&a, &["critical", "normal"]);
    a.wait_for("normal evicted", T, |a| evicted(a, "normal"));
    // At least two cycles that found only the critical pod and skipped it.
    let d = a.wait_for("the critical pod skipped twice", T, |a| {
        let d = decisions(a);
        let skipped = d
            .iter()
            .filter(|d| {
                d["action"] == "skipped"
                    && d["pod"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("default/critical-"))
            })
            .count();
        (skipped >= 2).then_some(d)
    });
    assert!(
        d.iter()
            .any(|d| d["action"] == "none"
                && d["message"] == "unable to evict any pods from the node"),
        "{d:?}"
    );
    assert!(
        !d.iter().any(|d| d["action"] == "evicted"
            && d["pod"]
                .as_str()
                .is_some_and(|p| p.starts_with("default/critical-"))),
        "{d:?}"
    );
    let critical = a.pod("critical").unwrap();
    assert_eq!(phase(&critical), "Running");
    assert_eq!(
        container_status(&critical, "fill").unwrap()["restartCount"],
        0
    );
    assert!(a.log_contains("eviction manager: cannot evict a critical pod"));
    a.remove_manifest("critical.yaml");
}

/// `pid.available` as the agent computes it: min(pid_max, threads-max) − running tasks.
fn pid_available_now() -> i64 {
    let read = |p: &str| -> i64 { std::fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let max = read("/proc/sys/kernel/pid_max").min(read("/proc/sys/kernel/threads-max"));
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    let running: i64 = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap();
    max - running
}

#[test]
fn pid_pressure_evicts_the_pod_with_most_processes() {
    // The threshold sits 300 pids below what is available now; `forker` starts 600 sleeping
    // processes. The margin absorbs what other processes on the machine start meanwhile.
    let threshold = pid_available_now() - 300;
    let a = Agent::start(&[
        &format!("--eviction-hard=pid.available<{threshold}"),
        "--eviction-pressure-transition-period=60s",
        MONITOR,
    ]);
    a.write_manifest("steady.yaml", GUARANTEED);
    a.wait_running("steady", "main", T);
    a.write_manifest(
        "forker.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: forker}
spec:
  containers:
  - name: fork
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while [ $i -lt 600 ]; do sleep 3600 & i=$((i+1)); done; wait"]
"#,
    );
    let p = a.wait_for("forker evicted", T, |a| evicted(a, "forker"));
    let msg = p["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "The node was low on resource: pids. Threshold quantity: {}",
            minikubelet::eviction::helpers::binary_si(threshold)
        )),
        "{msg}"
    );
    assert!(has_condition(&p, "DisruptionTarget"));
    assert_eq!(condition(&a, "PIDPressure").as_deref(), Some("True"));
    let r = eviction_report(&a);
    let d = r["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "evicted")
        .cloned()
        .unwrap();
    assert_eq!(d["signal"], "pid.available");
    assert_eq!(d["resource"], "pids");
    assert!(d["pod"].as_str().unwrap().starts_with("default/forker-"));
    let ev = evicted_events(&a, "forker");
    assert_eq!(ev[0]["metadata"]["annotations"]["starved_resource"], "pids");
    // Its 600 processes are gone with its cgroup; the steady pod was never touched.
    let steady = a.pod("steady").unwrap();
    assert_eq!(phase(&steady), "Running");
    assert_eq!(
        container_status(&steady, "main").unwrap()["restartCount"],
        0
    );
    a.remove_manifest("forker.yaml");
}

#[test]
fn local_storage_capacity_isolation_false_enforces_no_limits() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         localStorageCapacityIsolation: false\nevictionHard: {memory.available: 100Mi}\n\
         evictionMonitoringPeriod: 1s\n",
    )
    .unwrap();
    let a = Agent::start(&[&format!("--config={}", cfg.display())]);
    assert!(a.log_contains("localStorageCapacityIsolation is false"));
    a.write_manifest(
        "sized.yaml",
        &filler("sized", 4, false, "", "{sizeLimit: 1Mi}"),
    );
    a.wait_running("sized", "fill", T);
    // Once the 4 MiB are written, three more published cycles (1 s each) see it over its
    // sizeLimit and leave it running.
    let name = a.pod("sized").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    a.wait_for("sized filled", T, |a| {
        a.get(&format!("/containerLogs/default/{name}/fill"))
            .filter(|l| l.contains("filled"))
    });
    let volume_seen = |a: &Agent| {
        let r = eviction_report(a);
        let pods = r["ranking"]["pods"].as_array().cloned().unwrap_or_default();
        pods.iter()
            .find(|p| p["pod"] == format!("default/{name}"))
            .and_then(|p| p["stats"]["volumes"]["scratch"].as_i64())
            .filter(|b| *b > 1 << 20)
            .and(r["observedAt"].as_str().map(String::from))
    };
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let at = a.wait_for("a cycle seeing the emptyDir over its limit", T, |a| {
            volume_seen(a).filter(|at| !seen.contains(at))
        });
        seen.push(at);
    }
    let p = a.pod("sized").unwrap();
    assert_eq!(phase(&p), "Running", "{p}");
    assert!(decisions(&a).iter().all(|d| d["action"] != "evicted"));
}
