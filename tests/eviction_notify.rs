//! The eviction manager's kernel notifications (`src/eviction/threshold_notifier.rs`), with the
//! real binary and real cgroups: nothing mocked.
//!
//! On cgroup v1 (this suite's machines) the agent registers eventfds in `cgroup.event_control`
//! of the root memory cgroup (`memory.available`) and of `kubepods`
//! (`allocatableMemory.available`), as the kubelet does with `kernelMemcgNotification`. To show
//! that a notification, not the poll or the period, made the decision, the agent runs with the
//! fast poll off (`MINIKUBELET_EVICTION_FAST_POLL=off`) and a one-hour monitoring period: after
//! its first cycle at start, nothing but a notification can run a cycle. Assertions are on the
//! trigger recorded with the decision, never on a time.
//!
//! On cgroup v2 there are no usage thresholds: the agent arms a PSI trigger
//! (`memory.pressure`) and a watch on `kubepods/memory.events`, which wake the manager on
//! pressure or on a limit hit anywhere below kubepods. The same tests then check that notifier:
//! the crossing is silent, and a small pod's OOM (which moves `kubepods/memory.events`) wakes
//! the manager, which finds the crossing (as `tests/vm/scenarios/agent-cgroup2-eviction.sh`).
//! No test skips on either version.

mod common;

use std::time::Duration;

use common::Agent;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// A BestEffort pod that allocates (and touches) 480 MiB steadily, 4 MiB at a time (a copy of a
/// 4 MiB string into each of 120 shell variables, some tens of milliseconds apiece): well past
/// the armed usage value even when `inactive_file` (added to it at arming time, as the kubelet
/// does) was large then, since nothing re-arms the notifier in this test (poll off, 1 h period).
/// Its shell is PID 1 of its PID namespace: it stops on TERM by a handler, and waits for its
/// last `sleep` (which it would otherwise exec in its own place, freeing the variables).
const HOG: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: eat
    image: localhost/busybox:test
    command:
    - sh
    - -c
    - |
      trap 'exit 0' TERM
      sleep 0.5
      x=$(head -c 4194304 /dev/zero | tr '\0' x)
      i=0
      while [ $i -lt 120 ]; do eval "v$i=\$x"; i=$((i+1)); done
      sleep 3600 & wait
"#;

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn eviction_report(a: &Agent) -> Value {
    serde_json::from_str(&a.get("/debug/eviction").unwrap_or_default()).unwrap_or(Value::Null)
}

/// The log lines that mention `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// cgroup v2: a pod with a 16 MiB limit whose shell reads 64 MiB into a variable. Its OOM moves
/// `memory.events` of its cgroup and of every ancestor up to kubepods (the file is
/// hierarchical).
const POKE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: poke}
spec:
  restartPolicy: Never
  containers:
  - name: bump
    image: localhost/busybox:test
    command: ["sh", "-c", "b=$(head -c 67108864 /dev/zero | tr '\\0' x)"]
    resources:
      limits: {memory: 16Mi}
"#;

/// The `memory signal watched` log line of `signal`, once the manager has started.
fn watched_line(a: &Agent, signal: &str) -> String {
    a.wait_for(&format!("{signal} watched"), T, |a| {
        lines_with(&a.agent_log(), "eviction manager: memory signal watched")
            .into_iter()
            .find(|l| l.contains(&format!("signal={signal} ")))
            .map(String::from)
    })
}

/// cgroup v2: the kubepods notifier is armed (`memory.events`, and the PSI trigger where the
/// kernel has PSI on) on the agent's kubepods, as the log and `/debug/eviction` say.
fn assert_v2_kubepods_notifier(a: &Agent) {
    let line = watched_line(a, "allocatableMemory.available");
    assert!(
        line.contains("memory.events")
            && line.contains(&format!("{}/pods/kubepods", a.cgroup.name)),
        "{line}"
    );
    let report = a.wait_for("the eviction report", T, |a| {
        let r = eviction_report(a);
        r["memoryWatches"].is_array().then_some(r)
    });
    assert!(
        report["memoryWatches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["signal"] == "allocatableMemory.available"
                && w["mechanisms"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m == "memory.events"))),
        "{report}"
    );
}

#[test]
fn a_kernel_memory_notification_triggers_the_eviction() {
    // kubepods = 640 MiB; memory.available<400Mi is copied to allocatableMemory.available.
    let reserved = common::mem_total() - (640 << 20);
    let a = Agent::start_wrapped(
        &["env", "MINIKUBELET_EVICTION_FAST_POLL=off"],
        &[
            &format!("--system-reserved=memory={reserved}"),
            "--eviction-hard=memory.available<400Mi",
            "--kernel-memcg-notification=true",
            "--eviction-monitoring-period=1h",
            "--eviction-pressure-transition-period=5s",
        ],
    );
    if common::is_v2() {
        assert_v2_kubepods_notifier(&a);
    } else {
        assert_v1_notifiers_armed(&a);
    }
    // Logged when the manager started, before it armed anything.
    let log = a.agent_log();
    assert!(
        log.contains("fast_poll=\"off (MINIKUBELET_EVICTION_FAST_POLL=off)\"")
            || log.contains("fast_poll=off (MINIKUBELET_EVICTION_FAST_POLL=off)"),
        "{log}"
    );

    a.write_manifest("hog.yaml", HOG);
    if common::is_v2() {
        // The crossing wakes nothing on v2: once the hog holds its memory, a pod's OOM below
        // kubepods does (unless a PSI stall woke the manager first: a notification too).
        let uid = a.wait_for("the hog listed", T, |a| {
            a.pod("hog")?["metadata"]["uid"].as_str().map(String::from)
        });
        let evicted = a.wait_for("the hog's memory allocated", T, |a| {
            if a.pod("hog").is_some_and(|p| phase(&p) == "Failed") {
                return Some(true);
            }
            let f = a.pod_cgroup_file(&uid, None, "memory.current")?;
            let current: i64 = std::fs::read_to_string(f).ok()?.trim().parse().ok()?;
            (current >= 400 << 20).then_some(false)
        });
        if !evicted {
            a.write_manifest("poke.yaml", POKE);
        }
    }
    let hog = a.wait_for("hog evicted", T, |a| {
        a.pod("hog")
            .filter(|p| phase(p) == "Failed" && p["status"]["reason"] == "Evicted")
    });
    let msg = hog["status"]["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("The node was low on resource: memory. Threshold quantity: 400Mi"),
        "{msg}"
    );
    // Decided in a cycle a kubepods notification ran: neither the poll (off) nor the period
    // (1 h) could have run it.
    let report = eviction_report(&a);
    let d = report["decisions"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["action"] == "evicted").cloned())
        .unwrap_or_else(|| panic!("no eviction decision in {report}"));
    assert_eq!(d["signal"], "allocatableMemory.available", "{d}");
    let log = a.agent_log();
    let crossed = lines_with(&log, "a threshold was crossed; running a cycle now");
    if common::is_v2() {
        let trigger = d["trigger"].as_str().unwrap_or_default();
        assert!(
            ["notification:memory.events", "notification:psi-trigger"].contains(&trigger),
            "{d}"
        );
        assert!(
            crossed
                .iter()
                .any(|l| l.contains(&format!("trigger={trigger}"))),
            "{crossed:#?}"
        );
    } else {
        assert_eq!(d["trigger"], "notification:memcg-threshold", "{d}");
        assert!(
            crossed
                .iter()
                .any(|l| l.contains("trigger=notification:memcg-threshold")
                    && l.contains("notified_signal=allocatableMemory.available")),
            "{crossed:#?}"
        );
    }
    assert!(
        !crossed.iter().any(|l| l.contains("trigger=poll")),
        "{crossed:#?}"
    );
}

/// cgroup v1: the first cycle (at start) arms both memcg notifiers: registration accepted by
/// the kernel, on the root memory cgroup and on kubepods.
fn assert_v1_notifiers_armed(a: &Agent) {
    let armed = a.wait_for("notifiers armed", T, |a| {
        let log = a.agent_log();
        let lines: Vec<String> = lines_with(&log, "created memoryThresholdNotifier")
            .into_iter()
            .map(String::from)
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    let kubepods = armed
        .iter()
        .find(|l| l.contains("signal=allocatableMemory.available"))
        .unwrap_or_else(|| panic!("no kubepods notifier in {armed:#?}"));
    assert!(
        kubepods.contains("mechanism=memcg-threshold")
            && kubepods.contains(&format!("{}/pods/kubepods", a.cgroup.name)),
        "{kubepods}"
    );
    let root = armed
        .iter()
        .find(|l| l.contains("signal=memory.available"))
        .unwrap_or_else(|| panic!("no root notifier in {armed:#?}"));
    // memory.available compares the root memory cgroup's usage: the hierarchy's root.
    assert!(root.contains("cgroup=/sys/fs/cgroup/memory "), "{root}");
    let report = eviction_report(a);
    let watches = report["memoryWatches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        watches
            .iter()
            .any(|w| w["signal"] == "allocatableMemory.available"
                && w["mechanisms"] == serde_json::json!(["memcg-threshold"])),
        "{report}"
    );
}

#[test]
fn without_kernel_memcg_notification_the_poll_is_used_and_said() {
    let a = Agent::start(&["--eviction-hard=memory.available<100Mi"]);
    let line = a.wait_for("memory signal watched", T, |a| {
        lines_with(&a.agent_log(), "eviction manager: memory signal watched")
            .first()
            .map(|l| l.to_string())
    });
    assert!(
        line.contains("signal=memory.available")
            && line.contains("mechanism=poll")
            && line.contains("kernelMemcgNotification is false"),
        "{line}"
    );
    assert!(!a.log_contains("created memoryThresholdNotifier"));
    // The report is published by the manager's first cycle, which may follow the log line.
    let report = a.wait_for("the eviction report", T, |a| {
        let r = eviction_report(a);
        (r["fastPoll"] != "").then_some(r)
    });
    assert_eq!(report["fastPoll"], "100ms", "{report}");
    assert_eq!(
        report["memoryWatches"][0]["mechanisms"],
        serde_json::json!(["poll"]),
        "{report}"
    );
}

/// The root memory cgroup's working set (usage − total_inactive_file), cgroup v1.
fn root_working_set() -> i64 {
    let dir = std::path::Path::new("/sys/fs/cgroup/memory");
    let usage: i64 = std::fs::read_to_string(dir.join("memory.usage_in_bytes"))
        .expect("root memory.usage_in_bytes")
        .trim()
        .parse()
        .expect("a number");
    let stat = std::fs::read_to_string(dir.join("memory.stat")).expect("root memory.stat");
    let inactive: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    usage - inactive
}

/// The lines of cycles the manager ran: each cycle that finds the threshold met and no pod to
/// evict says so once.
fn cycles_run(a: &Agent) -> usize {
    lines_with(&a.agent_log(), "unable to evict any pods from the node").len()
}

#[test]
fn a_threshold_met_with_nothing_to_evict_does_not_wake_the_manager_in_a_loop() {
    // memory.available is met from the start (the threshold is above what is available) and
    // no pod runs. v1: the usage value armed lies below the usage now; the notifier must not
    // keep waking the manager because usage is past it: the manager already knows. v2 arms no
    // usage value: a notification while the threshold is already met must not run a cycle.
    let quantity = if common::is_v2() {
        // Above all memory: met from the start for memory.available and for its copy,
        // allocatableMemory.available, even while kubepods holds nothing (v2 arms no usage
        // value, so nothing needs it below capacity). The poke pod below adds no crossing.
        2 * common::mem_total()
    } else {
        common::mem_total() - root_working_set() / 2
    };
    let a = Agent::start_wrapped(
        &["env", "MINIKUBELET_EVICTION_FAST_POLL=off"],
        &[
            &format!("--eviction-hard=memory.available<{quantity}"),
            "--kernel-memcg-notification=true",
            "--eviction-monitoring-period=1h",
        ],
    );
    if common::is_v2() {
        assert_v2_kubepods_notifier(&a);
    } else {
        a.wait_for("notifier armed", T, |a| {
            a.log_contains("created memoryThresholdNotifier")
                .then_some(())
        });
    }
    a.wait_for("the threshold met, nothing to evict", T, |a| {
        (cycles_run(a) > 0).then_some(())
    });
    let cycles = cycles_run(&a);
    if common::is_v2() {
        // Make the v2 notifier fire: a pod's OOM moves kubepods/memory.events. The pod is not
        // BestEffort (admitted under memory pressure) and ends Failed: nothing to evict still.
        let before = oom_kills_below_kubepods(&a);
        a.write_manifest("poke.yaml", POKE);
        a.wait_for("the poke pod's OOM in kubepods/memory.events", T, |a| {
            (oom_kills_below_kubepods(a) > before).then_some(())
        });
    }
    // Let a loop, if there were one, show: a wake-up re-reads the signals (and re-arms, v1).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cycles_run(&a),
        cycles,
        "cycles ran again with nothing new:\n{}",
        a.agent_log()
    );
    if !common::is_v2() {
        let log = a.agent_log();
        let rearmed = lines_with(&log, "setting notifier to capacity").len();
        let past = lines_with(&log, "usage already past the value just armed").len();
        assert!(
            rearmed < 5 && past == 0,
            "re-armed {rearmed}, woken {past} times:\n{log}"
        );
    }
}

/// cgroup v2: `oom_kill` of the agent's `kubepods/memory.events` (0 before the first).
fn oom_kills_below_kubepods(a: &Agent) -> i64 {
    let events = a
        .cgroup
        .find("pods/kubepods", "memory.events")
        .expect("kubepods/memory.events");
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
