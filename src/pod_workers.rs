//! The pod manager and its pod workers: turns the source's desired set into running workers.
//!
//! Mirrors `pkg/kubelet/config/config.go` (diff a SET by UID into ADD / REMOVE),
//! `pkg/kubelet/pod/pod_manager.go`, the `HandlePodAdditions` / `HandlePodRemoves` half of the
//! kubelet's sync loop, and the bookkeeping of `pod_workers.go`: a static pod whose full name is
//! still held by a terminating instance waits until that instance is gone
//! (`allowStaticPodStart`), so an edited manifest never runs old and new pod side by side.
//! Pods are admitted here (`canAdmitPod`) before a worker exists; a rejected pod gets a
//! terminal status and no worker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};

use crate::admission::{self, NodeInfo};
use crate::api::pod::full_name;
use crate::events::{EventType, ObjectRef};
use crate::eviction::helpers::NodeCondition;
use crate::eviction::request::Request;
use crate::runtime::ContainerRecord;
use crate::source::{PodSet, SourcePod};
use crate::status::phase::FAILED;
use crate::worker::{self, PodContext, PodWorkerHandle, TerminateRequest};

/// The reason of an evicted pod's status (and of a pod refused under pressure).
const EVICTED: &str = "Evicted";

/// The pod manager: desired pods, admitted pods, and one worker per admitted pod.
pub struct PodManager {
    ctx: Arc<PodContext>,
    node: NodeInfo,
    workers: HashMap<String, PodWorkerHandle>,
    admitted: HashMap<String, Arc<Pod>>,
    terminating: HashMap<String, String>,
    /// full name -> UID currently holding it (running or terminating)
    holders: HashMap<String, String>,
    /// full name -> pod waiting for the previous instance to terminate
    pending: BTreeMap<String, Arc<SourcePod>>,
    rejected: HashMap<String, Arc<Pod>>,
    adopted: HashMap<String, Vec<ContainerRecord>>,
    orphans_cleaned: bool,
    done_tx: mpsc::UnboundedSender<String>,
    /// UIDs being evicted: once terminated they stay `Failed`/`Evicted` until re-admitted.
    evicted: std::collections::HashSet<String>,
    /// Evicted pods whose exited containers and logs are kept until they are removed or
    /// replaced (or reclaimed under disk pressure).
    kept_dead: std::collections::HashSet<String>,
    /// The eviction manager's pressure conditions, for the second admission step.
    pressure: Option<watch::Receiver<Vec<NodeCondition>>>,
    /// UIDs whose worker finished: added again, they are restarted pods
    /// (`kubelet_restarted_pods_total`).
    finished_uids: std::collections::HashSet<String>,
    /// The sysctls pods may set (`--allowed-unsafe-sysctls` and the safe set).
    sysctls: crate::sysctl::Allowlist,
}

impl PodManager {
    /// A pod manager; `adopted` is what the runtime found on disk at start-up, by pod UID.
    pub fn new(
        ctx: Arc<PodContext>,
        node: NodeInfo,
        adopted: HashMap<String, Vec<ContainerRecord>>,
    ) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        (
            PodManager {
                ctx,
                node,
                workers: HashMap::new(),
                admitted: HashMap::new(),
                terminating: HashMap::new(),
                holders: HashMap::new(),
                pending: BTreeMap::new(),
                rejected: HashMap::new(),
                adopted,
                orphans_cleaned: false,
                done_tx,
                evicted: Default::default(),
                kept_dead: Default::default(),
                pressure: None,
                finished_uids: Default::default(),
                sysctls: crate::sysctl::Allowlist::new(&[]).unwrap_or_default(),
            },
            done_rx,
        )
    }

    /// Allow the pods' sysctls of this list (the safe set plus `--allowed-unsafe-sysctls`).
    pub fn with_sysctls(mut self, allowlist: crate::sysctl::Allowlist) -> Self {
        self.sysctls = allowlist;
        self
    }

    /// Admit pods also against the eviction manager's pressure conditions
    /// (`eviction_manager.go` `Admit`).
    pub fn with_pressure(mut self, conditions: watch::Receiver<Vec<NodeCondition>>) -> Self {
        self.pressure = Some(conditions);
        self
    }

    /// The sync loop: apply each new desired set, retire finished workers, serve requests.
    /// Ends when the source goes away.
    pub async fn run(
        mut self,
        mut source: watch::Receiver<Arc<PodSet>>,
        mut done_rx: mpsc::UnboundedReceiver<String>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        loop {
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() { return; }
                    let set = source.borrow_and_update().clone();
                    self.apply(&set);
                }
                Some(uid) = done_rx.recv() => self.finished(&uid, &source.borrow().clone()),
                Some(req) = requests.recv() => {
                    let set = source.borrow().clone();
                    self.request(req, &set);
                }
            }
        }
    }

    fn request(&mut self, req: Request, set: &PodSet) {
        match req {
            Request::ReclaimDeadContainers { reply } => {
                let mut removed = 0;
                for (uid, p) in &self.rejected {
                    if self.kept_dead.remove(uid) {
                        removed += worker::remove_dead_containers(&self.ctx, p);
                    }
                }
                if removed > 0 {
                    tracing::info!(
                        containers = removed,
                        "eviction manager: removed the exited containers and logs of evicted pods to reclaim disk"
                    );
                }
                let _ = reply.send(removed);
            }
            Request::Readmit => {
                let before = self.rejected.len();
                let mut readmitted = Vec::new();
                self.rejected.retain(|uid, p| {
                    let evicted =
                        p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some(EVICTED);
                    if evicted {
                        readmitted.push((uid.clone(), p.clone()));
                    }
                    !evicted
                });
                // The new instance has the same UID (and so the same log directory): the
                // evicted instance's containers and logs go now.
                for (uid, p) in readmitted {
                    self.forget_dead(&uid, &p);
                }
                if self.rejected.len() != before {
                    tracing::info!(
                        pods = before - self.rejected.len(),
                        "re-admitting pods evicted or refused under pressure, as new instances"
                    );
                    self.apply(set);
                }
            }
            Request::Evict {
                uid,
                grace_seconds,
                message,
                disruption_target,
            } => {
                if let Some(w) = self.workers.get(&uid) {
                    self.evicted.insert(uid.clone());
                    self.terminating.insert(uid.clone(), w.full_name.clone());
                    w.terminate(TerminateRequest {
                        grace_override: Some(grace_seconds),
                        final_status: Some((FAILED.into(), EVICTED.into(), message)),
                        disruption_target,
                    });
                }
            }
        }
    }

    /// Diff a desired set against what runs (`podStorage.merge`).
    fn apply(&mut self, set: &PodSet) {
        let desired: HashMap<&str, &Arc<SourcePod>> =
            set.pods.iter().map(|p| (p.uid(), p)).collect();
        // REMOVE: workers whose pod left the set
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|uid| {
                !desired.contains_key(uid.as_str()) && !self.terminating.contains_key(*uid)
            })
            .cloned()
            .collect();
        for uid in gone {
            if let Some(w) = self.workers.get(&uid) {
                tracing::info!(pod = %w.full_name, uid = %uid, "SyncLoop REMOVE");
                self.terminating.insert(uid.clone(), w.full_name.clone());
                w.terminate(TerminateRequest::default());
            }
            self.admitted.remove(&uid);
        }
        let mut removed = Vec::new();
        self.rejected.retain(|uid, p| {
            let keep = desired.contains_key(uid.as_str());
            if !keep {
                self.ctx.statuses.remove(uid);
                removed.push((uid.clone(), p.clone()));
            }
            keep
        });
        for (uid, p) in removed {
            self.forget_dead(&uid, &p);
        }
        self.pending.retain(|_, p| desired.contains_key(p.uid()));
        // ADD: pods not seen before
        let mut uids = std::collections::HashSet::new();
        for p in &set.pods {
            let uid = p.uid();
            // The source refuses files that share a UID (every map here is keyed by it); one
            // that got through anyway is named, not dropped silently.
            if !uids.insert(uid) {
                tracing::error!(pod = %full_name(&p.pod), podUID = %uid, file = %p.file.display(), "a second static pod with the same UID in the desired set; ignoring it");
                continue;
            }
            if self.workers.contains_key(uid) || self.rejected.contains_key(uid) {
                continue;
            }
            let name = full_name(&p.pod);
            match self.holders.get(&name) {
                Some(holder) if holder != uid => {
                    tracing::info!(pod = %name, uid = %uid, waiting_for = %holder, "static pod waits for its previous instance to terminate");
                    self.pending.insert(name, p.clone());
                }
                _ => self.add(p),
            }
        }
        if set.seen && !self.orphans_cleaned {
            self.orphans_cleaned = true;
            self.clean_orphans(&desired.keys().map(|s| s.to_string()).collect());
        }
        self.ctx
            .cm
            .update_qos_cgroups(self.admitted.values().map(|p| p.as_ref()));
    }

    fn add(&mut self, p: &Arc<SourcePod>) {
        let uid = p.uid().to_string();
        let name = full_name(&p.pod);
        let admitted: Vec<&Pod> = self.admitted.values().map(|p| p.as_ref()).collect();
        let pressure = self
            .pressure
            .as_ref()
            .map(|c| c.borrow().clone())
            .unwrap_or_default();
        let admitted_result = admission::admit_sysctls(&self.sysctls, &p.pod)
            .and_then(|()| admission::admit(&self.node, &admitted, &p.pod))
            .and_then(|()| admission::admit_under_pressure(&pressure, &p.pod))
            .and_then(|()| admission::admit_security_context(&p.pod));
        if let Err(rej) = admitted_result {
            tracing::warn!(pod = %name, reason = %rej.reason, message = %rej.message, "pod rejected by admission");
            self.ctx.recorder.event(
                ObjectRef::pod(&p.pod),
                EventType::Warning,
                &rej.reason,
                rej.message.clone(),
            );
            let mut pod = p.pod.clone();
            pod.status = Some(admission::rejected_status(&rej));
            let pod = Arc::new(pod);
            self.ctx.statuses.set(pod.clone());
            self.rejected.insert(uid, pod);
            return;
        }
        tracing::info!(pod = %name, uid = %uid, file = %p.file.display(), "SyncLoop ADD");
        let pod = Arc::new(p.pod.clone());
        let adopted = self.adopted.remove(&uid).unwrap_or_default();
        if self.finished_uids.remove(&uid) {
            crate::metrics::kubelet().pod_restarted(true);
        }
        let handle = worker::spawn(pod.clone(), adopted, self.ctx.clone(), self.done_tx.clone());
        self.admitted.insert(uid.clone(), pod);
        self.holders.insert(name, uid.clone());
        self.workers.insert(uid, handle);
    }

    fn finished(&mut self, uid: &str, set: &Arc<PodSet>) {
        let Some(w) = self.workers.remove(uid) else {
            return;
        };
        self.terminating.remove(uid);
        let admitted_pod = self.admitted.remove(uid);
        self.finished_uids.insert(uid.to_string());
        let was_evicted = self.evicted.contains(uid);
        // An evicted pod that is still desired stays visible as Failed/Evicted, held like a
        // rejected pod until no pressure condition remains (`eviction::request::Request::Readmit`).
        // Its exited containers and logs stay until it is removed or replaced.
        if self.evicted.remove(uid) {
            self.kept_dead.insert(uid.to_string());
            match self.ctx.statuses.get(uid) {
                Some(pod) if set.pods.iter().any(|p| p.uid() == uid) => {
                    self.rejected.insert(uid.to_string(), pod);
                }
                Some(pod) => {
                    self.ctx.statuses.remove(uid);
                    self.forget_dead(uid, &pod);
                }
                None => {
                    if let Some(pod) = admitted_pod {
                        self.forget_dead(uid, &pod);
                    }
                }
            }
        }
        if self.holders.get(&w.full_name).map(String::as_str) == Some(uid) {
            self.holders.remove(&w.full_name);
        }
        if let Some(next) = self.pending.remove(&w.full_name)
            && set.pods.iter().any(|p| p.uid() == next.uid())
        {
            self.add(&next);
        }
        // Removed, then put back (the same file: the same UID) while this worker was still
        // terminating: `apply` skipped it then, as the UID still had a worker. It starts now as
        // a new instance, as the kubelet restarts a pod that is known terminated and still
        // desired (`SyncKnownPods` -> `TerminatedAndRecreatedPod`, `HandlePodCleanups`).
        // An evicted pod stays terminal until re-admitted (`Request::Readmit`).
        if !was_evicted
            && !self.rejected.contains_key(uid)
            && !self.workers.contains_key(uid)
            && let Some(p) = set.pods.iter().find(|p| p.uid() == uid)
        {
            tracing::info!(pod = %w.full_name, uid = %uid, "pod was terminated but is still desired: starting it again");
            let p = p.clone();
            self.add(&p);
        }
        self.ctx
            .cm
            .update_qos_cgroups(self.admitted.values().map(|p| p.as_ref()));
    }

    /// The pod is removed or replaced: the exited containers and logs it kept go with it.
    fn forget_dead(&mut self, uid: &str, pod: &Pod) {
        if self.kept_dead.remove(uid) {
            let n = worker::remove_dead_containers(&self.ctx, pod);
            tracing::info!(uid = %uid, containers = n, "removed the exited containers and logs of a pod that was evicted");
        }
    }

    /// Kill and remove what a previous agent left for pods that are no longer desired
    /// (`HandlePodCleanups`): their containers, then their pod cgroups.
    fn clean_orphans(&mut self, desired: &std::collections::HashSet<String>) {
        let orphans: Vec<String> = self
            .adopted
            .keys()
            .filter(|uid| !desired.contains(*uid))
            .cloned()
            .collect();
        for uid in orphans {
            for rec in self.adopted.remove(&uid).unwrap_or_default() {
                tracing::info!(uid = %uid, container = %rec.meta.container_name, "removing container of a pod that is no longer desired");
                if let Ok(cg) =
                    crate::cgroup::CgroupName::new(rec.meta.cgroup.iter().map(String::as_str))
                {
                    let _ = self.ctx.cm.destroy(&cg);
                }
                self.ctx.runtime.remove(&rec.meta.id);
            }
        }
        // The sandboxes of pods that are gone (`KillPod` then the GC's `removeSandbox`); before
        // their pod directories, which hold the pinned namespace files.
        worker::remove_sandboxes(&self.ctx, |uid| {
            !desired.contains(uid) && !self.workers.contains_key(uid)
        });
        // cleanupOrphanedPodDirs: pod directories (emptyDir volumes) of pods that are gone.
        if let Ok(rd) = std::fs::read_dir(self.ctx.root_dir.join("pods")) {
            for e in rd.flatten() {
                let uid = e.file_name().to_string_lossy().to_string();
                if !desired.contains(&uid) && !self.workers.contains_key(&uid) {
                    crate::volumes::tear_down_pod_dir(&self.ctx.root_dir, &uid);
                }
            }
        }
        for (uid, cg) in self.ctx.cm.existing_pod_cgroups() {
            if !desired.contains(&uid) && !self.workers.contains_key(&uid) {
                tracing::info!(uid = %uid, cgroup = %cg, "removing orphaned pod cgroup");
                if let Err(e) = self.ctx.cm.destroy(&cg) {
                    tracing::warn!(cgroup = %cg, error = %e, "remove orphaned pod cgroup");
                }
            }
        }
    }
}
