//! The pod worker: one task per pod, the single owner of that pod's lifecycle.
//!
//! Mirrors `pkg/kubelet/pod_workers.go` (one goroutine per pod; only it decides whether the pod
//! is running, terminating or terminated, the lesson of kubernetes PR 102344) and the part of
//! `kuberuntime_manager.go` `SyncPod` / `computePodActions` that decides which containers to
//! start: init containers in order (sidecars with `restartPolicy: Always` keep running), then
//! the regular containers, restarted according to the restart policy with crash-loop backoff.
//! Everything else talks to a worker through messages: the pod manager asks it to terminate,
//! the PLEG tells it a container exited, the prober reports probe results.

pub mod backoff;
mod container;
pub mod image;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::mpsc;

use crate::cm::manager::ContainerManager;
use crate::events::{self, EventRecorder, EventType, ObjectRef};
use crate::prober::{ProbeResult, ProbeType, ProbeUpdate};
use crate::runtime::env::NodeEnv;
use crate::runtime::{ContainerRecord, ContainerRuntime, Exit, PodSandboxConfig};
use crate::status_manager::StatusManager;

use container::{Kind, Slot};

/// What a pod worker needs from the rest of the agent. Shared by all workers, read-only.
pub struct PodContext {
    /// The container runtime: sandboxes and containers, behind the CRI-shaped seam.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Pod and container cgroups.
    pub cm: ContainerManager,
    /// Events.
    pub recorder: EventRecorder,
    /// Where workers publish pod status.
    pub statuses: Arc<StatusManager>,
    /// Node facts for env vars and oom_score_adj.
    pub node: NodeEnv,
    /// Machine memory capacity (MemTotal), for the Burstable oom_score_adj formula.
    pub memory_capacity: i64,
    /// The lowest `oom_score_adj` the agent may give a container (see
    /// `kubelet::apply_own_oom_score_adj`).
    pub oom_score_adj_floor: i32,
    /// `--root-dir` (pod directories and their emptyDir volumes).
    pub root_dir: PathBuf,
    /// `seccompDefault`.
    pub seccomp_default: bool,
    /// `--pod-logs-dir`.
    pub pod_logs_dir: PathBuf,
    /// Directory of the `/var/log/containers`-style symlinks.
    pub container_logs_dir: PathBuf,
    /// `containerLogMaxSize` in bytes.
    pub log_max_size: u64,
    /// `containerLogMaxFiles`.
    pub log_max_files: u32,
    /// The node-wide crash-loop back-off (`kl.backOff`), outliving each pod's worker.
    pub backoff: Arc<backoff::NodeBackoff>,
    /// The node's images; `None` only with the deprecated `ImageRootfs=false` (containers as
    /// processes on the node).
    pub images: Option<Arc<image::NodeImages>>,
}

/// Why and how a pod is being terminated.
#[derive(Clone, Debug, Default)]
pub struct TerminateRequest {
    /// Overrides `terminationGracePeriodSeconds` (eviction uses 1 s for hard thresholds).
    pub grace_override: Option<i64>,
    /// Final phase, reason and message to report (eviction), if any.
    pub final_status: Option<(String, String, String)>,
    /// Add the condition `DisruptionTarget=True` (reason `TerminationByKubelet`, the final
    /// message). The kubelet adds it for threshold evictions, not for local-storage limit
    /// evictions (`evictPod` is called with no condition there).
    pub disruption_target: bool,
}

/// Messages a pod worker acts on.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Stop every container and clean up; the worker ends afterwards.
    Terminate(TerminateRequest),
    /// The runtime reported a container's exit (the PLEG's event).
    ContainerExited {
        /// Container name.
        name: String,
        /// Runtime ID of the instance that exited.
        id: String,
        /// How it ended.
        exit: Exit,
    },
    /// A probe's result changed.
    Probe(ProbeUpdate),
    /// A stop of one container (preStop, SIGTERM, grace, SIGKILL) finished.
    Stopped {
        /// Container name.
        name: String,
    },
}

/// The pod manager's handle on a running worker.
pub struct PodWorkerHandle {
    /// The pod's UID.
    pub uid: String,
    /// `<namespace>/<name>`.
    pub full_name: String,
    tx: mpsc::UnboundedSender<WorkerMsg>,
}

impl PodWorkerHandle {
    /// Ask the worker to terminate the pod.
    pub fn terminate(&self, req: TerminateRequest) {
        let _ = self.tx.send(WorkerMsg::Terminate(req));
    }
}

/// Start the worker of one pod. `adopted` holds the containers a previous agent left running (or
/// exited) for this pod's UID. `done` receives the UID once the pod is fully terminated.
pub fn spawn(
    pod: Arc<Pod>,
    adopted: Vec<ContainerRecord>,
    ctx: Arc<PodContext>,
    done: mpsc::UnboundedSender<String>,
) -> PodWorkerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let full_name = crate::api::pod::full_name(&pod);
    let handle = PodWorkerHandle {
        uid: uid.clone(),
        full_name,
        tx: tx.clone(),
    };
    let worker = PodWorker::new(pod, ctx, tx);
    tokio::spawn(async move {
        worker.run(rx, adopted).await;
        let _ = done.send(uid);
    });
    handle
}

struct PodWorker {
    pod: Arc<Pod>,
    ctx: Arc<PodContext>,
    tx: mpsc::UnboundedSender<WorkerMsg>,
    slots: Vec<Slot>,
    start_time: jiff::Timestamp,
    /// Set when an init container failed under `restartPolicy: Never`.
    failed: bool,
    terminating: Option<TerminateRequest>,
    old_status: Option<PodStatus>,
    stopping: HashMap<String, ()>,
    /// `kubelet_pod_start_duration_seconds` is observed once, when every container first runs
    /// (set from the start for re-adopted pods, which this agent did not start).
    start_observed: bool,
    /// Set once this worker set up the pod's volumes: cleanup tears down only what was set up.
    volumes_set_up: bool,
    /// Every volume is set up; until then no container starts.
    volumes_ready: bool,
    /// The pod's sandbox, once made (or found again after an agent restart).
    sandbox_id: Option<String>,
    /// The pod's own IPs (its sandbox's network); empty: the node's network.
    pod_ips: Vec<String>,
}

impl PodWorker {
    fn new(pod: Arc<Pod>, ctx: Arc<PodContext>, tx: mpsc::UnboundedSender<WorkerMsg>) -> Self {
        let mut slots = Vec::new();
        if let Some(spec) = &pod.spec {
            for c in spec.init_containers.iter().flatten() {
                let kind = if crate::api::pod::is_restartable_init_container(c) {
                    Kind::Sidecar
                } else {
                    Kind::Init
                };
                slots.push(Slot::new(c.clone(), kind));
            }
            for c in &spec.containers {
                slots.push(Slot::new(c.clone(), Kind::Regular));
            }
        }
        PodWorker {
            pod,
            ctx,
            tx,
            slots,
            start_time: jiff::Timestamp::now(),
            failed: false,
            terminating: None,
            old_status: None,
            stopping: HashMap::new(),
            start_observed: false,
            volumes_set_up: false,
            volumes_ready: false,
            sandbox_id: None,
            pod_ips: Vec::new(),
        }
    }

    /// `RunPodSandbox` before the pod's first container, unless a previous agent made the
    /// pod's sandbox already (looked for only when it left containers of this pod, so that a
    /// new pod's start reads no other pod's records).
    fn ensure_sandbox(&mut self, adopted: bool) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        if adopted
            && let Some(sb) = self
                .ctx
                .runtime
                .list_pod_sandboxes()
                .into_iter()
                .rev()
                .find(|s| s.config.pod_uid == uid && s.ready)
        {
            tracing::info!(pod = %self.pod_name(), podUID = %uid, sandbox = %sb.id, "re-adopted the pod's sandbox");
            self.pod_ips = sb.network.map(|n| n.ips).unwrap_or_default();
            self.sandbox_id = Some(sb.id);
            return;
        }
        match self
            .ctx
            .runtime
            .run_pod_sandbox(&sandbox_config(&self.pod, &self.ctx))
        {
            Ok(id) => {
                tracing::debug!(pod = %self.pod_name(), podUID = %uid, sandbox = %id, "pod sandbox created");
                let sb = self.ctx.runtime.pod_sandbox_status(&id);
                self.pod_ips = sb
                    .as_ref()
                    .and_then(|s| s.network.as_ref())
                    .map(|n| n.ips.clone())
                    .unwrap_or_default();
                // A pod that asked for its own network but keeps the node's says why.
                let host_network = sb.as_ref().is_some_and(|s| s.config.host_network);
                if self.pod_ips.is_empty()
                    && !host_network
                    && let Some(why) = self.ctx.runtime.node_network_reason()
                {
                    self.event(
                        EventType::Normal,
                        events::NODE_NETWORK,
                        None,
                        format!("Pod uses the node's network: {why} (docs/networking.md)"),
                    );
                }
                self.sandbox_id = Some(id);
            }
            Err(e) => {
                tracing::error!(pod = %self.pod_name(), podUID = %uid, error = %e, "create pod sandbox");
                self.event(
                    EventType::Warning,
                    events::FAILED_CREATE_POD_SANDBOX,
                    None,
                    format!("Failed to create pod sandbox: {e}"),
                );
            }
        }
    }

    /// `StopPodSandbox` once every container is gone; `RemovePodSandbox` too when the pod goes
    /// with its containers (an evicted pod keeps them, and its sandbox, until it is removed).
    fn release_sandbox(&mut self, remove: bool) {
        let Some(id) = self.sandbox_id.clone() else {
            return;
        };
        if let Err(e) = self.ctx.runtime.stop_pod_sandbox(&id) {
            tracing::warn!(pod = %self.pod_name(), sandbox = %id, error = %e, "stop pod sandbox");
        }
        if remove {
            if let Err(e) = self.ctx.runtime.remove_pod_sandbox(&id) {
                tracing::warn!(pod = %self.pod_name(), sandbox = %id, error = %e, "remove pod sandbox");
            }
            self.sandbox_id = None;
        }
    }

    /// The node's facts for env vars and volumes, with the pod's own IP once it has one.
    fn node_env(&self) -> crate::runtime::env::NodeEnv {
        crate::runtime::env::NodeEnv {
            pod_ip: self.pod_ips.first().cloned(),
            ..self.ctx.node.clone()
        }
    }

    fn pod_name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn grace_seconds(&self) -> i64 {
        if let Some(g) = self.terminating.as_ref().and_then(|t| t.grace_override) {
            return g;
        }
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<WorkerMsg>,
        adopted: Vec<ContainerRecord>,
    ) {
        let pod_name = self.pod_name().to_string();
        tracing::info!(pod = %pod_name, uid = ?self.pod.metadata.uid, "pod worker started");
        self.start_observed = !adopted.is_empty();
        let had_containers = !adopted.is_empty();
        self.adopt(adopted).await;
        let cgroup_ok = match self.ctx.cm.ensure_pod_cgroup(&self.pod) {
            // The pod's cgroup is what this agent has for a sandbox: a started pod
            // (`kubelet_started_pods_total`), unless a previous agent started it.
            Ok(_) if !self.start_observed => {
                crate::metrics::kubelet().pod_started();
                true
            }
            Ok(_) => true,
            Err(e) => {
                tracing::error!(pod = %pod_name, error = %e, "create pod cgroup");
                self.event(
                    EventType::Warning,
                    events::FAILED_CREATE_POD_CONTAINER,
                    None,
                    format!("unable to ensure pod container exists: {e}"),
                );
                false
            }
        };
        if cgroup_ok {
            self.ensure_sandbox(had_containers);
        }
        // Volumes only for a pod that got its sandbox (the kubelet mounts volumes after the pod
        // cgroup exists); whatever was attempted is torn down at cleanup, nothing else.
        if cgroup_ok {
            self.set_up_volumes();
        }
        // Visible in /pods as Pending (containers ContainerCreating) before the first start,
        // as the kubelet sets the pod's status before it syncs containers.
        self.publish();
        let mut first_sync = true;
        loop {
            if self.terminating.is_none() {
                let t = std::time::Instant::now();
                self.sync().await;
                crate::metrics::kubelet().observe_pod_sync(first_sync, t.elapsed());
                first_sync = false;
            }
            self.publish();
            if self.terminating.is_some() && self.all_stopped() {
                break;
            }
            let wake = self.next_wake();
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = sleep_until(wake) => continue,
            };
            let Some(msg) = msg else { break };
            self.handle(msg).await;
        }
        self.cleanup();
        tracing::info!(pod = %pod_name, "pod worker finished: pod terminated and cleaned up");
    }

    async fn handle(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Terminate(req) => {
                if self.terminating.is_some() {
                    return;
                }
                tracing::info!(pod = %self.pod_name(), "terminating pod");
                self.terminating = Some(req);
                let grace = self.grace_seconds();
                let names: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|s| s.current.is_some())
                    .map(|s| s.spec.name.clone())
                    .collect();
                // All stop at once, except that with sidecars the main containers go first and
                // the sidecars after them, in reverse order of declaration (the kubelet's
                // termination ordering, within the one grace period).
                let init: Vec<(String, bool)> = self
                    .slots
                    .iter()
                    .filter(|s| s.kind != Kind::Regular)
                    .map(|s| (s.spec.name.clone(), s.kind == Kind::Sidecar))
                    .collect();
                let main: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|s| s.kind == Kind::Regular)
                    .map(|s| s.spec.name.clone())
                    .collect();
                let mut turns = container::TerminationTurn::plan(&init, &main, &names);
                for name in names {
                    let msg = format!("Stopping container {name}");
                    let turn = turns.as_mut().and_then(|t| t.remove(&name));
                    self.begin_stop_in_turn(&name, grace, msg, turn);
                }
                for s in &mut self.slots {
                    s.stop_probes();
                    s.waiting = None;
                }
            }
            WorkerMsg::ContainerExited { name, id, exit } => self.on_exit(&name, &id, exit),
            WorkerMsg::Stopped { name } => {
                self.stopping.remove(&name);
            }
            WorkerMsg::Probe(u) => self.on_probe(u),
        }
    }

    /// Every regular container of the pod runs (the pod "started", for its start duration).
    fn all_regular_running(&self, status: &PodStatus) -> bool {
        let cs = status.container_statuses.as_deref().unwrap_or_default();
        !cs.is_empty()
            && cs
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    }

    fn all_stopped(&self) -> bool {
        self.slots.iter().all(|s| s.current.is_none())
    }

    fn next_wake(&self) -> Option<tokio::time::Instant> {
        if self.terminating.is_some() {
            return None;
        }
        self.slots.iter().filter_map(|s| s.backoff_until).min()
    }

    fn event(&self, t: EventType, reason: &str, container: Option<&Slot>, message: String) {
        let mut obj = ObjectRef::pod(&self.pod);
        if let Some(s) = container {
            obj.field_path = Some(s.field_path());
        }
        self.ctx.recorder.event(obj, t, reason, message);
    }

    fn on_probe(&mut self, u: ProbeUpdate) {
        let Some(idx) = self.slots.iter().position(|s| s.spec.name == u.container) else {
            return;
        };
        let slot = &mut self.slots[idx];
        if slot.current.as_ref().map(|c| c.meta.attempt) != Some(u.instance) {
            return; // a result about an instance that is gone
        }
        match (u.probe, u.result) {
            (ProbeType::Readiness, r) => slot.ready = r == ProbeResult::Success,
            (ProbeType::Startup, ProbeResult::Success) => {
                slot.started = true;
                if let Some(tx) = &slot.started_tx {
                    let _ = tx.send(true);
                }
            }
            (ProbeType::Liveness | ProbeType::Startup, ProbeResult::Failure) => {
                let what = if u.probe == ProbeType::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                let msg = u.message.clone();
                let name = slot.spec.name.clone();
                self.event(
                    EventType::Warning,
                    events::UNHEALTHY,
                    Some(&self.slots[idx]),
                    msg,
                );
                let grace = self.slots[idx]
                    .probe_grace(u.probe)
                    .unwrap_or_else(|| self.grace_seconds());
                self.begin_stop(
                    &name,
                    grace,
                    format!("Container {name} failed {what} probe, will be restarted"),
                );
            }
            _ => {}
        }
    }

    /// Stop one running container without blocking the worker: preStop, SIGTERM, wait for the
    /// rest of the grace period (at least 2 s), SIGKILL of its cgroup. The exit arrives through
    /// the PLEG like any other.
    fn begin_stop(&mut self, name: &str, grace_secs: i64, message: String) {
        self.begin_stop_in_turn(name, grace_secs, message, None);
    }

    /// [`Self::begin_stop`] at a place in the pod's termination order.
    fn begin_stop_in_turn(
        &mut self,
        name: &str,
        grace_secs: i64,
        message: String,
        order: Option<container::TerminationTurn>,
    ) {
        let Some(idx) = self.slots.iter().position(|s| s.spec.name == name) else {
            return;
        };
        if self.stopping.contains_key(name) {
            return;
        }
        let Some(inst) = self.slots[idx].current.as_ref() else {
            return;
        };
        self.event(
            EventType::Normal,
            events::KILLING,
            Some(&self.slots[idx]),
            message,
        );
        self.stopping.insert(name.to_string(), ());
        let slot = &self.slots[idx];
        // The kubelet's killContainer runs preStop for every kill: deletion, a failed liveness
        // or startup probe, a failed postStart hook.
        let pre_stop = slot
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.clone());
        let job = container::StopJob {
            pod: self.pod.clone(),
            ctx: self.ctx.clone(),
            spec: slot.spec.clone(),
            field_path: slot.field_path(),
            container_id: inst.meta.id.clone(),
            exec: inst.exec.clone(),
            grace: Duration::from_secs(grace_secs.max(0) as u64),
            pre_stop,
            order,
        };
        let tx = self.tx.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            job.run().await;
            let _ = tx.send(WorkerMsg::Stopped { name });
        });
    }

    fn publish(&mut self) {
        let status = self.build_status();
        if !self.start_observed && self.all_regular_running(&status) {
            self.start_observed = true;
            let since = jiff::Timestamp::now().duration_since(self.start_time);
            let d = std::time::Duration::try_from(since).unwrap_or_default();
            crate::metrics::kubelet().observe_pod_start(d);
        }
        self.old_status = Some(status.clone());
        let mut pod = (*self.pod).clone();
        pod.status = Some(status);
        self.ctx.statuses.set(Arc::new(pod));
    }

    /// Sets up the pod's volumes (`crate::volumes`); a failure is a `FailedMount` event, and the
    /// containers wait in `ContainerCreating` until a later attempt (`worker/container.rs`)
    /// succeeds, as the kubelet's `WaitForAttachAndMount` keeps them waiting.
    pub(super) fn set_up_volumes(&mut self) {
        self.volumes_set_up = true;
        let memory_limit = crate::cm::helpers::pod_resource_config(&self.pod, 0).memory;
        match crate::volumes::set_up_pod_volumes(
            &self.ctx.root_dir,
            &self.pod,
            memory_limit,
            &self.node_env(),
        ) {
            Ok(_) => self.volumes_ready = true,
            Err(e) => {
                tracing::warn!(pod = %self.pod_name(), error = %e, "set up pod volumes");
                self.event(
                    EventType::Warning,
                    events::FAILED_MOUNT,
                    None,
                    e.to_string(),
                );
            }
        }
    }

    fn cleanup(&mut self) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        crate::metrics::probes::probes().forget_pod(&uid);
        // A pod terminated with a final status (eviction) keeps that status visible, and, like
        // the kubelet, which keeps dead containers until the pod object goes (or container GC
        // reclaims disk), keeps its exited containers and their logs so that `kubectl logs`
        // still shows what the evicted pod wrote. The pod manager removes them when the pod is
        // removed or replaced, or when the eviction manager reclaims disk
        // ([`remove_dead_containers`]).
        let keep_dead = self
            .terminating
            .as_ref()
            .is_some_and(|t| t.final_status.is_some());
        if !keep_dead {
            // The worker knows every instance it still keeps (older ones were removed as it
            // went), so it removes those directly instead of listing every container on the node.
            let ids: Vec<String> = self
                .slots
                .iter()
                .flat_map(|s| [s.last.as_ref(), s.previous.as_ref()])
                .flatten()
                .map(|f| f.id.clone())
                .collect();
            for id in ids {
                self.remove_instance(&id);
            }
        } else {
            tracing::info!(pod = %self.pod_name(), uid = %uid, "keeping the terminated pod's exited containers and logs until the pod is removed or replaced");
        }
        // The volumes of a terminated pod are torn down at once (the kubelet unmounts the
        // volumes of terminated pods): an evicted pod's emptyDir frees its space now. Before
        // the pod cgroup goes, since the eviction manager takes a gone cgroup to mean the pod's
        // resources are reclaimed (`podResourcesAreReclaimed` checks volumes first, too).
        // The sandbox first: its pinned namespace files, under the pod directory, cannot be
        // unlinked while mounted.
        self.release_sandbox(!keep_dead);
        if self.volumes_set_up {
            crate::volumes::tear_down_pod_dir(&self.ctx.root_dir, &uid);
        }
        match self.ctx.cm.pod_cgroup(&self.pod) {
            Ok(pod_cg) => {
                if let Err(e) = self.ctx.cm.destroy(&pod_cg) {
                    tracing::warn!(pod = %self.pod_name(), cgroup = %pod_cg, error = %e, "remove pod cgroup");
                }
            }
            Err(e) => tracing::warn!(pod = %self.pod_name(), error = %e, "pod cgroup name"),
        }
        if !keep_dead {
            crate::logs::remove_pod_logs(
                &self.ctx.pod_logs_dir,
                &self.ctx.container_logs_dir,
                self.pod.metadata.namespace.as_deref().unwrap_or("default"),
                self.pod_name(),
                &uid,
            );
            // A pod terminated with a final status (eviction) keeps it visible; the pod manager
            // decides when it goes.
            self.ctx.statuses.remove(&uid);
        }
    }
}

/// Remove the exited containers a terminated pod kept (its runtime records, log files and
/// `/var/log/containers` links) and its log directory: the container GC of a pod that is gone
/// (`kuberuntime_gc.go` `evictPodLogsDirectories` / `removeOldestN` for a deleted pod).
/// Returns how many containers were removed.
pub fn remove_dead_containers(ctx: &PodContext, pod: &Pod) -> usize {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if uid.is_empty() {
        return 0;
    }
    let mut n = 0;
    for rec in ctx.runtime.list() {
        if rec.meta.pod_uid == uid && !rec.is_running() {
            ctx.runtime.remove(&rec.meta.id);
            crate::logs::remove_container_links(&ctx.container_logs_dir, &rec.meta.log_path);
            n += 1;
        }
    }
    remove_sandboxes(ctx, |pod_uid| pod_uid == uid);
    crate::logs::remove_pod_logs(
        &ctx.pod_logs_dir,
        &ctx.container_logs_dir,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        uid,
    );
    n
}

/// Stop and remove the sandboxes of the pods `gone(pod UID)` names (pods removed, or left by a
/// previous agent and no longer desired).
pub fn remove_sandboxes(ctx: &PodContext, gone: impl Fn(&str) -> bool) {
    for sb in ctx.runtime.list_pod_sandboxes() {
        if !gone(&sb.config.pod_uid) {
            continue;
        }
        let removed = ctx
            .runtime
            .stop_pod_sandbox(&sb.id)
            .and_then(|()| ctx.runtime.remove_pod_sandbox(&sb.id));
        if let Err(e) = removed {
            tracing::warn!(podUID = %sb.config.pod_uid, sandbox = %sb.id, error = %e, "remove pod sandbox");
        }
    }
}

/// The pod's `PodSandboxConfig` (`generatePodSandboxConfig`): its identity, hostname, host
/// namespaces, DNS and the log directory.
fn sandbox_config(pod: &Pod, ctx: &PodContext) -> PodSandboxConfig {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    PodSandboxConfig {
        log_directory: crate::logs::pod_log_dir(&ctx.pod_logs_dir, &namespace, &name, &uid),
        hostname: spec
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| name.clone()),
        subdomain: spec.and_then(|s| s.subdomain.clone()),
        host_network: flag(|s| s.host_network),
        host_ipc: flag(|s| s.host_ipc),
        host_pid: flag(|s| s.host_pid),
        share_process_namespace: flag(|s| s.share_process_namespace),
        dns_policy: spec.and_then(|s| s.dns_policy.clone()),
        dns_config: spec.and_then(|s| s.dns_config.clone()),
        host_aliases: spec
            .and_then(|s| s.host_aliases.clone())
            .unwrap_or_default(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        set_hostname_as_fqdn: flag(|s| s.set_hostname_as_fqdn),
        sysctls: crate::sysctl::pod_sysctls(pod).into_iter().collect(),
        port_mappings: spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(crate::runtime::network::PortMapping {
                    host_port: u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
            })
            .collect(),
        // Host-filesystem pods, and every pod run from its image (the ImageRootfs gate).
        isolated: ctx.images.is_some()
            || pod
                .metadata
                .annotations
                .as_ref()
                .is_some_and(crate::runtime::spec::wants_host_filesystem),
        pod_uid: uid,
        pod_name: name,
        pod_namespace: namespace,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
