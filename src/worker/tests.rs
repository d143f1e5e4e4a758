//! Rootless unit tests of the pod worker and the pod manager on the fake runtime
//! (`crate::runtime::fake`), a temp dir standing in for cgroupfs, and paused time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::cgroup::{CgroupFs, FAKE_KERNEL_DIR, RootFs};
use crate::cm::manager::CmConfig;
use crate::eviction::request::Request;
use crate::pod_workers::PodManager;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::{ContainerMeta, ContainerRuntime};
use crate::source::{PodSet, SourcePod};

struct Harness {
    _tmp: tempfile::TempDir,
    rt: Arc<FakeRuntime>,
    ctx: Arc<PodContext>,
}

/// A cgroup v1 tree (cpu,cpuacct, memory, pids) in a temp dir, a fake runtime, a context.
fn harness() -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join(FAKE_KERNEL_DIR);
    let (proc_root, sys_root) = (base.join("proc"), base.join("sys"));
    let cg = sys_root.join("fs/cgroup");
    let ctrls = ["cpu,cpuacct", "memory", "pids"];
    let mut mountinfo = format!(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n31 22 0:27 / {} rw,relatime - tmpfs tmpfs rw,mode=755\n",
        cg.display()
    );
    let mut cgroup = String::new();
    for (i, c) in ctrls.iter().enumerate() {
        let dir = cg.join(c);
        std::fs::create_dir_all(&dir).unwrap();
        mountinfo += &format!(
            "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{c}\n",
            32 + i,
            28 + i,
            dir.display()
        );
        cgroup += &format!("{}:{c}:/\n", ctrls.len() - i);
    }
    std::fs::create_dir_all(proc_root.join("self")).unwrap();
    std::fs::write(proc_root.join("self/mountinfo"), mountinfo).unwrap();
    std::fs::write(proc_root.join("self/cgroup"), cgroup).unwrap();
    let fs = Arc::new(CgroupFs::detect_with_hint(&proc_root, &sys_root, RootFs::Other).unwrap());
    let cm = ContainerManager::new(
        fs,
        CmConfig {
            cgroups_per_qos: true,
            pod_pids_limit: 0,
            enforce_pods: false,
            capacity_milli_cpu: 4000,
            capacity_memory: 8 << 30,
            reserved_memory: 0,
            reserved_milli_cpu: 0,
            allocatable_pids: None,
            swap_behavior: Default::default(),
            swap_total: 0,
        },
    );
    cm.setup_node().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let runtime: Arc<dyn ContainerRuntime> = rt.clone();
    let ctx = Arc::new(PodContext {
        runtime,
        cm,
        recorder: EventRecorder::new("node1"),
        statuses: Arc::new(StatusManager::default()),
        node: NodeEnv {
            host_ip: "10.0.0.1".into(),
            pod_ip: None,
            allocatable_milli_cpu: 4000,
            allocatable_memory: 8 << 30,
            allocatable_ephemeral_storage: 100 << 30,
        },
        memory_capacity: 8 << 30,
        oom_score_adj_floor: -999,
        root_dir: tmp.path().join("root"),
        seccomp_default: false,
        pod_logs_dir: tmp.path().join("pods"),
        container_logs_dir: tmp.path().join("containers"),
        log_max_size: 0,
        log_max_files: 5,
        backoff: Arc::default(),
        images: None,
    });
    Harness { _tmp: tmp, rt, ctx }
}

/// A static pod `name` with UID `uid`: init containers `init` (`name`, sidecar?), containers
/// `main`, restart policy `policy`.
fn pod(name: &str, uid: &str, policy: &str, init: &[(&str, bool)], main: &[&str]) -> Arc<Pod> {
    let c = |n: &str| json!({"name": n, "image": "busybox", "command": ["/bin/true"]});
    let inits: Vec<_> = init
        .iter()
        .map(|(n, sidecar)| {
            let mut v = c(n);
            if *sidecar {
                v["restartPolicy"] = json!("Always");
            }
            v
        })
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "annotations": {"kubernetes.io/config.source": "file"}},
            "spec": {"restartPolicy": policy, "initContainers": inits,
                "containers": main.iter().map(|n| c(n)).collect::<Vec<_>>(),
                "terminationGracePeriodSeconds": 1},
        }))
        .unwrap(),
    )
}

/// Wait (in paused time, giving the blocking start threads real time) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn status_of(h: &Harness, uid: &str, container: &str) -> Option<ContainerStatus> {
    let p = h.ctx.statuses.get(uid)?;
    let st = p.status.as_ref()?;
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .cloned()
}

fn phase(h: &Harness, uid: &str) -> Option<String> {
    h.ctx.statuses.get(uid)?.status.as_ref()?.phase.clone()
}

fn waiting_reason(h: &Harness, uid: &str, container: &str) -> Option<String> {
    status_of(h, uid, container)?.state?.waiting?.reason
}

fn creates(h: &Harness) -> Vec<String> {
    h.rt.calls_of("create ")
}

fn start(h: &Harness, p: &Arc<Pod>) -> (PodWorkerHandle, mpsc::UnboundedReceiver<String>) {
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    (
        spawn(p.clone(), Vec::new(), h.ctx.clone(), done_tx),
        done_rx,
    )
}

#[tokio::test(start_paused = true)]
async fn restart_policy_always_on_failure_never() {
    let h = harness();
    // (policy, exit code, restarted?)
    let cases = [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ];
    for (i, (policy, code, restarted)) in cases.into_iter().enumerate() {
        let name = format!("p{i}");
        let uid = format!("uid-{i}");
        let p = pod(&name, &uid, policy, &[], &["app"]);
        let (_w, _done) = start(&h, &p);
        until("first start", || h.rt.running_id(&name, "app").is_some()).await;
        assert!(h.rt.exit(&name, "app", code));
        let want = if restarted { 2 } else { 1 };
        let label = |n| format!("create {name}/app#{n}");
        until("exit recorded", || {
            status_of(&h, &uid, "app").is_some_and(|s| s.state.is_some_and(|s| s.running.is_none()))
                || h.rt.calls().contains(&label(1))
        })
        .await;
        // Let the worker act on the exit, then count the starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = creates(&h)
            .iter()
            .filter(|c| c.starts_with(&format!("create {name}/")))
            .count();
        assert_eq!(n, want, "{policy} exit {code}: {:?}", h.rt.calls());
        if !restarted {
            let want_phase = if code == 0 { "Succeeded" } else { "Failed" };
            until("terminal phase", || {
                phase(&h, &uid).as_deref() == Some(want_phase)
            })
            .await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_before_the_app() {
    let h = harness();
    let p = pod(
        "web",
        "u1",
        "Always",
        &[("one", false), ("two", false)],
        &["app"],
    );
    let (_w, _done) = start(&h, &p);
    until("one", || h.rt.running_id("web", "one").is_some()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(creates(&h), vec!["create web/one#0"], "two waits for one");
    h.rt.exit("web", "one", 0);
    until("two", || h.rt.running_id("web", "two").is_some()).await;
    assert_eq!(h.rt.running_id("web", "app"), None);
    h.rt.exit("web", "two", 0);
    until("app", || h.rt.running_id("web", "app").is_some()).await;
    assert_eq!(
        creates(&h),
        vec!["create web/one#0", "create web/two#0", "create web/app#0"]
    );
    // The sandbox came first, once.
    assert_eq!(h.rt.calls()[0], "run_pod_sandbox web");
    assert_eq!(h.rt.calls_of("run_pod_sandbox").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_under_never_fails_the_pod() {
    let h = harness();
    let p = pod("job", "u1", "Never", &[("setup", false)], &["app"]);
    let (_w, _done) = start(&h, &p);
    until("setup", || h.rt.running_id("job", "setup").is_some()).await;
    h.rt.exit("job", "setup", 3);
    until("Failed", || phase(&h, "u1").as_deref() == Some("Failed")).await;
    assert_eq!(creates(&h), vec!["create job/setup#0"]);
}

#[tokio::test(start_paused = true)]
async fn sidecars_start_before_and_stop_after_the_app() {
    let h = harness();
    let p = pod("web", "u1", "Always", &[("proxy", true)], &["app"]);
    let (w, mut done) = start(&h, &p);
    until("app", || h.rt.running_id("web", "app").is_some()).await;
    assert!(
        h.rt.running_id("web", "proxy").is_some(),
        "the sidecar keeps running"
    );
    assert_eq!(creates(&h), vec!["create web/proxy#0", "create web/app#0"]);
    w.terminate(TerminateRequest::default());
    let uid = done.recv().await.unwrap();
    assert_eq!(uid, "u1");
    let stops = h.rt.calls_of("stop ");
    assert_eq!(stops, vec!["stop web/app#0", "stop web/proxy#0"]);
    let calls = h.rt.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(at("stop web/proxy#0") < at("stop_pod_sandbox web"));
    assert!(at("stop_pod_sandbox web") < at("remove_pod_sandbox web"));
    assert!(h.rt.list().is_empty(), "containers removed with the pod");
    assert!(h.rt.list_pod_sandboxes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_second_crash_enters_crash_loop_back_off() {
    let h = harness();
    let p = pod("web", "u1", "Always", &[], &["app"]);
    let (_w, _done) = start(&h, &p);
    until("first", || h.rt.running_id("web", "app").is_some()).await;
    h.rt.exit("web", "app", 1);
    // The first restart is immediate.
    until("second", || {
        creates(&h).len() == 2 && h.rt.running_id("web", "app").is_some()
    })
    .await;
    h.rt.exit("web", "app", 1);
    until("back-off", || {
        waiting_reason(&h, "u1", "app").as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let st = status_of(&h, "u1", "app").unwrap();
    let msg = st.state.unwrap().waiting.unwrap().message.unwrap();
    assert!(
        msg.starts_with("back-off 10s restarting failed container=app"),
        "{msg}"
    );
    assert_eq!(st.restart_count, 1);
    assert_eq!(creates(&h).len(), 2, "no start during the back-off");
    let events = h.ctx.recorder.for_object("u1");
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("BackOff"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_is_a_run_container_error() {
    let h = harness();
    h.rt.fail_next_start("app", "exec \"nope\": No such file or directory");
    let p = pod("web", "u1", "Always", &[], &["app"]);
    let (_w, _done) = start(&h, &p);
    until("RunContainerError or retry", || {
        waiting_reason(&h, "u1", "app").as_deref() == Some("RunContainerError")
            || h.rt.running_id("web", "app").is_some()
    })
    .await;
    // Retried at once through the back-off (the first retry is not delayed).
    until("retry", || h.rt.running_id("web", "app").is_some()).await;
    let st = status_of(&h, "u1", "app").unwrap();
    let last = st.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.reason.as_deref(), Some("StartError"));
    assert_eq!(
        last.message.as_deref(),
        Some("exec \"nope\": No such file or directory")
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_post_start_hook_kills_the_container() {
    let h = harness();
    let mut p = (*pod("web", "u1", "Always", &[], &["app"])).clone();
    p.spec.as_mut().unwrap().containers[0].lifecycle = Some(
        serde_json::from_value(json!({"postStart": {"exec": {"command": ["/bin/false"]}}}))
            .unwrap(),
    );
    let p = Arc::new(p);
    let (_w, _done) = start(&h, &p);
    until("stop after the hook", || {
        !h.rt.calls_of("stop web/app#0").is_empty()
    })
    .await;
    let events = h.ctx.recorder.for_object("u1");
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedPostStartHook")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("FailedPostStartHook"))),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn running_and_exited_containers_are_re_adopted() {
    let h = harness();
    let p = pod("web", "u1", "Always", &[("setup", false)], &["app"]);
    let meta = |name: &str, id: &str| ContainerMeta {
        image: String::new(),
        image_id: String::new(),
        id: id.into(),
        pod_uid: "u1".into(),
        pod_name: "web".into(),
        pod_namespace: "default".into(),
        container_name: name.into(),
        attempt: 0,
        spec_hash: String::new(),
        cgroup: vec![
            "kubepods".into(),
            "besteffort".into(),
            "podu1".into(),
            name.into(),
        ],
        log_path: h
            .ctx
            .pod_logs_dir
            .join(format!("default_web_u1/{name}/0.log")),
        created_at: jiff::Timestamp::now().to_string(),
        sandbox_id: String::new(),
    };
    h.rt.seed(meta("setup", &"1".repeat(32)), Some(0));
    h.rt.seed(meta("app", &"2".repeat(32)), None);
    let sandbox =
        h.rt.run_pod_sandbox(&crate::runtime::PodSandboxConfig {
            pod_uid: "u1".into(),
            pod_name: "web".into(),
            ..Default::default()
        })
        .unwrap();
    let (done_tx, _done) = mpsc::unbounded_channel();
    let _w = spawn(p.clone(), h.rt.list(), h.ctx.clone(), done_tx);
    until("running", || {
        status_of(&h, "u1", "app").is_some_and(|s| s.state.is_some_and(|s| s.running.is_some()))
    })
    .await;
    assert!(
        creates(&h).is_empty(),
        "nothing started again: {:?}",
        h.rt.calls()
    );
    assert_eq!(
        h.rt.calls_of("run_pod_sandbox").len(),
        1,
        "the sandbox is found again"
    );
    let setup = status_of(&h, "u1", "setup").unwrap();
    assert_eq!(
        setup.state.unwrap().terminated.unwrap().reason.as_deref(),
        Some("Completed")
    );
    // The adopted container's exit still reaches the worker.
    h.rt.exit("web", "app", 0);
    until("restarted", || creates(&h) == vec!["create web/app#1"]).await;
    let _ = sandbox;
}

/// The pod manager with one desired set, a request channel and the set's sender.
fn manager(
    h: &Harness,
    pods: &[Arc<Pod>],
) -> (watch::Sender<Arc<PodSet>>, mpsc::UnboundedSender<Request>) {
    let node = crate::admission::NodeInfo {
        name: "node1".into(),
        labels: Default::default(),
        allocatable: crate::admission::Resources {
            milli_cpu: 4000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
            pods: 110,
        },
    };
    let (m, done_rx) = PodManager::new(h.ctx.clone(), node, HashMap::new());
    let (set_tx, set_rx) = watch::channel(Arc::new(set(pods)));
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    tokio::spawn(m.run(set_rx, done_rx, req_rx));
    set_tx.send_modify(|_| {});
    (set_tx, req_tx)
}

fn set(pods: &[Arc<Pod>]) -> PodSet {
    PodSet {
        pods: pods
            .iter()
            .map(|p| {
                Arc::new(SourcePod {
                    pod: (**p).clone(),
                    file: format!("/m/{}.yaml", p.metadata.name.as_deref().unwrap()).into(),
                    unsupported: Vec::new(),
                })
            })
            .collect(),
        seen: true,
    }
}

#[tokio::test(start_paused = true)]
async fn eviction_is_handed_to_the_pod_worker() {
    let h = harness();
    let p = pod("web", "u1", "Always", &[], &["app"]);
    let (_set, req) = manager(&h, &[p]);
    until("app", || h.rt.running_id("web", "app").is_some()).await;
    req.send(Request::Evict {
        uid: "u1".into(),
        grace_seconds: 1,
        message: "The node was low on resource: memory.".into(),
        disruption_target: true,
    })
    .unwrap();
    until("Failed/Evicted", || {
        h.ctx.statuses.get("u1").is_some_and(|p| {
            let s = p.status.clone().unwrap_or_default();
            s.phase.as_deref() == Some("Failed") && s.reason.as_deref() == Some("Evicted")
        })
    })
    .await;
    assert_eq!(h.rt.calls_of("stop "), vec!["stop web/app#0"]);
    let st = h.ctx.statuses.get("u1").unwrap().status.clone().unwrap();
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    );
    // An evicted pod keeps its exited container (for logs) until it is removed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.rt.list().len(), 1);
    assert!(h.rt.calls_of("remove_pod_sandbox").is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_edited_manifest_waits_for_the_old_pod_to_terminate() {
    let h = harness();
    let old = pod("web", "old", "Always", &[], &["app"]);
    let (set_tx, _req) = manager(&h, std::slice::from_ref(&old));
    until("old app", || h.rt.running_id("web", "app").is_some()).await;
    // The edit: same full name, new UID. The order of the runtime's calls shows the
    // serialisation: the new pod's first call comes after the old one is gone.
    let new = pod("web", "new", "Always", &[], &["app"]);
    set_tx.send(Arc::new(set(&[new]))).unwrap();
    until("new app", || creates(&h).len() == 2).await;
    let calls = h.rt.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap_or(usize::MAX);
    let stop_old = at("stop web/app#0");
    let second_create = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "create web/app#0")
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    assert!(
        stop_old < second_create,
        "old stopped before the new one starts: {calls:?}"
    );
    let removed_old = at("remove_pod_sandbox web");
    assert!(removed_old < second_create, "{calls:?}");
}

/// The manifest goes and comes back (the same UID) while the old instance still terminates:
/// once it has, the pod starts again (before, it stayed gone until the next change).
#[tokio::test(start_paused = true)]
async fn a_pod_put_back_while_it_terminates_starts_again() {
    let h = harness();
    let p = pod("web", "u1", "Always", &[], &["app"]);
    let (set_tx, _req) = manager(&h, std::slice::from_ref(&p));
    until("app", || h.rt.running_id("web", "app").is_some()).await;
    // The container takes 5 s to stop: the file is back long before the old instance is gone.
    h.rt.set_stop_delay(Duration::from_secs(5));
    set_tx.send(Arc::new(set(&[]))).unwrap();
    until("stopping", || !h.rt.calls_of("stop ").is_empty()).await;
    set_tx
        .send(Arc::new(set(std::slice::from_ref(&p))))
        .unwrap();
    until("started again", || creates(&h).len() == 2).await;
    until("running again", || h.rt.running_id("web", "app").is_some()).await;
    assert!(h.ctx.statuses.get("u1").is_some());
}
