//! The eviction manager: watches the node's signals, reports pressure conditions, and evicts
//! one pod at a time when a threshold is crossed.
//!
//! Mirrors `pkg/kubelet/eviction/eviction_manager.go` (`synchronize`, `evictPod`,
//! `waitForPodsCleanup`) with the pure decisions in [`super::helpers`]. Two deliberate
//! differences (see `docs/deviations.md`):
//! - **Static pods are evicted** unless critical by priority; the kubelet treats every static
//!   pod as critical, which on a node of static pods only would make eviction inert. The
//!   `Evicted` event says so.
//! - **Faster reaction.** Besides the periodic cycle (`evictionMonitoringPeriod`, 10 s), a cheap
//!   poll re-reads the node signals every [`FAST_POLL`] and runs a full cycle the moment a
//!   threshold becomes met, or when a grace or transition period ends. With
//!   `kernelMemcgNotification`, the kernel's memory notifications
//!   ([`super::threshold_notifier`]) wake the loop as the kubelet's do, and on cgroup v1 the
//!   memory part of the poll slows to [`NOTIFIED_MEMORY_POLL`].
//!
//! Everything the manager knows is published as a [`Report`] (served at `/debug/eviction` and
//! `/debug/node`), and node conditions go to the pod manager for admission.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{NodeCondition as ApiNodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{mpsc, watch};

use crate::api::pod::{full_name, is_critical, pod_priority};
use crate::api::qos::qos_class;
use crate::cgroup::{CgroupName, Controller};
use crate::cm::manager::ContainerManager;
use crate::events::{self, EventRecorder, EventType, ObjectRef};
use crate::eviction::helpers::{
    self, Candidate, EvictionState, NodeCondition, Resource, signal_resource,
};
use crate::eviction::local_storage;
use crate::eviction::request::Request;
use crate::eviction::signals::{self, ContainerUsage, NodeInputs, Observations, PodUsage};
use crate::eviction::threshold_notifier::{SignalWatch, ThresholdNotifiers, Wake};
use crate::eviction::thresholds::{Signal, Threshold};
use crate::images::gc::ImageGc;
use crate::runtime::ContainerRuntime;
use crate::stats::fs;
use crate::status_manager::StatusManager;

/// How often the cheap node signals are re-read between full cycles. Each poll is a handful of
/// small cgroupfs/procfs reads and one statvfs (well under a millisecond); 100 ms bounds the
/// detection delay of a crossing far below the kubelet's 10 s while costing ~0.1% of a core.
pub const FAST_POLL: Duration = Duration::from_millis(100);
/// How often the memory signals are re-read when every memory threshold has a cgroup v1
/// notification armed: the kernel reports the crossing itself, so the poll is only a safety
/// net for what the usage threshold cannot see (the inactive file cache shrinking under a
/// constant usage moves the working set without moving usage). 1 s cuts the poll's memory
/// reads tenfold and bounds such a missed crossing to 1 s; disk and pids keep [`FAST_POLL`].
pub const NOTIFIED_MEMORY_POLL: Duration = Duration::from_secs(1);
/// The environment variable that turns the fast poll off (`off`): only the periodic cycle and
/// the notifiers remain, as in the kubelet. For the reaction benchmark's baseline and for tests
/// that must show a notification was the trigger; not a kubelet setting.
pub const FAST_POLL_ENV: &str = "MINIKUBELET_EVICTION_FAST_POLL";
/// The kubelet's `podCleanupTimeout`: how long a cycle waits for an evicted pod to be gone
/// before the next one may evict again. Longer avoids evicting a second pod needlessly while
/// the first still releases its memory; shorter recovers sooner from a pod that hangs.
const POD_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the cleanup wait looks (the kubelet polls every 1 s; 100 ms frees the loop sooner
/// for the cost of a few extra stat calls).
const POD_CLEANUP_POLL: Duration = Duration::from_millis(100);
/// The kubelet's `immediateEvictionGracePeriodSeconds` for hard thresholds.
const IMMEDIATE_EVICTION_GRACE_SECONDS: i64 = 1;
/// How long the node-level disk reclaim waits for the pod manager to remove dead containers.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(5);
/// Decisions kept for `/debug/eviction`: enough to explain a burst, bounded for memory.
const MAX_DECISIONS: usize = 20;
/// The note added wherever minikubelet decides differently from the kubelet.
pub const STATIC_POD_NOTE: &str = "minikubelet evicts static pods that are not critical by priority; the kubelet treats every static pod as critical and would not evict it (see docs/deviations.md)";

/// What the eviction manager is configured with.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// The node's name (events).
    pub node_name: String,
    /// All thresholds (hard, soft, allocatable and containerfs copies).
    pub thresholds: Vec<Threshold>,
    /// `evictionMonitoringPeriod`.
    pub monitoring_period: Duration,
    /// `evictionPressureTransitionPeriod`.
    pub pressure_transition_period: Duration,
    /// `evictionMaxPodGracePeriod` in seconds.
    pub max_pod_grace_period: i64,
    /// `/proc`.
    pub proc_root: PathBuf,
    /// `--root-dir` (nodefs).
    pub root_dir: PathBuf,
    /// `--pod-logs-dir`.
    pub pod_logs_dir: PathBuf,
    /// `enforceNodeAllocatable` contains `pods` (kubepods is limited, so
    /// `allocatableMemory.available` is observed).
    pub enforce_pods: bool,
    /// The kubelet's `localStorageCapacityIsolation` (default true): emptyDir `sizeLimit` and
    /// `ephemeral-storage` limits are enforced by eviction ([`super::local_storage`]).
    pub local_storage_capacity_isolation: bool,
    /// `kernelMemcgNotification`: arm the kernel's memory notifications.
    pub kernel_memcg_notification: bool,
    /// The fast poll ([`FAST_POLL`]); false only through [`FAST_POLL_ENV`].
    pub fast_poll: bool,
}

/// One threshold as `/debug/eviction` shows it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdReport {
    /// As configured: `350Mi`, `10%`.
    pub value: String,
    /// In absolute units for the current capacity.
    pub quantity: Option<i64>,
    /// Hard (no grace period) or soft.
    pub hard: bool,
    /// Soft grace period.
    pub grace_period: String,
    /// Minimum reclaim, as configured.
    pub min_reclaim: Option<String>,
    /// Met now (ignoring grace).
    pub met: bool,
    /// Since when (RFC 3339), if met.
    pub met_since: Option<String>,
    /// Past its grace period: the manager acts on it.
    pub acted_on: bool,
}

/// One signal as `/debug/eviction` shows it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalReport {
    /// Signal name.
    pub signal: String,
    /// The starved resource it maps to.
    pub resource: String,
    /// Observed available amount.
    pub available: Option<i64>,
    /// Capacity.
    pub capacity: Option<i64>,
    /// Thresholds on this signal.
    pub thresholds: Vec<ThresholdReport>,
}

/// One pod in the current ranking.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankedPod {
    /// `namespace/name`.
    pub pod: String,
    /// UID.
    pub uid: String,
    /// QoS class.
    pub qos_class: String,
    /// Priority.
    pub priority: i32,
    /// Critical by priority: never evicted.
    pub critical: bool,
    /// Usage of the ranked resource.
    pub usage: Option<i64>,
    /// Request of the ranked resource.
    pub request: i64,
    /// Usage above request.
    pub exceeds_request: bool,
    /// Full usage figures.
    pub stats: Option<PodUsage>,
}

/// The ranking for one resource.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ranking {
    /// The resource ranked for (the starved one, else memory).
    pub resource: String,
    /// First to evict first.
    pub pods: Vec<RankedPod>,
}

/// One decision of the manager.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When (RFC 3339).
    pub time: String,
    /// The threshold's signal.
    pub signal: String,
    /// The starved resource.
    pub resource: String,
    /// `evicted`, `skipped` (critical), `reclaimed` (disk freed by removing evicted pods' dead
    /// containers and logs, no eviction needed) or `none` (nothing evictable).
    pub action: String,
    /// `namespace/name`, if a pod.
    pub pod: Option<String>,
    /// Why.
    pub message: String,
    /// Grace period given, seconds.
    pub grace_period_seconds: Option<i64>,
    /// From the poll that first saw the threshold met to this decision, milliseconds.
    pub reaction_ms: Option<u64>,
    /// Where the kubelet would have decided differently.
    pub kubelet_would: Option<String>,
}

/// What made a cycle run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `evictionMonitoringPeriod` elapsed (the kubelet's only trigger without notifications).
    Period,
    /// The fast poll saw a threshold become met.
    Poll,
    /// A kernel notification woke the loop and a threshold was met.
    Notification {
        /// The notified signal.
        signal: String,
        /// `memcg-threshold`, `psi-trigger` or `memory.events`.
        mechanism: &'static str,
    },
    /// A soft grace period or the pressure transition period ended.
    Deadline,
    /// The previous cycle evicted a pod and a threshold is still met.
    Retry,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Period => f.write_str("period"),
            Trigger::Poll => f.write_str("poll"),
            Trigger::Notification { mechanism, .. } => write!(f, "notification:{mechanism}"),
            Trigger::Deadline => f.write_str("deadline"),
            Trigger::Retry => f.write_str("retry"),
        }
    }
}

/// A decision with what made its cycle run, as `/debug/eviction` lists it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggeredDecision {
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// What ran the cycle: `period`, `poll`, `notification:<mechanism>`, `deadline`, `retry`.
    pub trigger: String,
    /// When, to the millisecond (RFC 3339), for latency measurements.
    pub decided_at: String,
}

/// Everything the eviction manager knows, for `/debug/eviction` and `/debug/node`.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When the signals were last read.
    pub observed_at: Option<String>,
    /// Each signal with a threshold or an observation.
    pub signals: Vec<SignalReport>,
    /// The node's pressure conditions (as v1 `NodeCondition`s, with `Ready`).
    pub conditions: Vec<ApiNodeCondition>,
    /// The current ranking.
    pub ranking: Option<Ranking>,
    /// Last decisions, newest last.
    pub decisions: Vec<TriggeredDecision>,
    /// Timing settings.
    pub monitoring_period: String,
    /// Transition period.
    pub pressure_transition_period: String,
    /// Fast poll period.
    pub fast_poll: String,
    /// How each memory signal is watched (notifications or the poll), and why.
    pub memory_watches: Vec<SignalWatch>,
    /// How minikubelet's eviction differs from the kubelet's.
    pub deviations: Vec<String>,
}

/// Read-side of the manager: the latest report and the pressure conditions.
#[derive(Clone)]
pub struct EvictionView {
    /// The latest report.
    pub report: watch::Receiver<Arc<Report>>,
    /// The pressure conditions now (for admission).
    pub conditions: watch::Receiver<Vec<NodeCondition>>,
}

impl EvictionView {
    /// A view that never changes (no eviction manager), for tests and tools.
    pub fn empty() -> Self {
        let (r, report) = watch::channel(Arc::new(Report::default()));
        let (c, conditions) = watch::channel(Vec::new());
        std::mem::forget(r);
        std::mem::forget(c);
        EvictionView { report, conditions }
    }
}

/// The eviction manager task.
pub struct EvictionManager {
    cfg: ManagerConfig,
    cm: ContainerManager,
    /// The runtime, for the containers' writable layers (their part of ephemeral storage).
    runtime: Arc<dyn ContainerRuntime>,
    /// The image GC, the second node-level reclaim of disk pressure (`None` without images).
    image_gc: Option<Arc<ImageGc>>,
    statuses: Arc<StatusManager>,
    recorder: EventRecorder,
    requests: mpsc::UnboundedSender<Request>,
    state: EvictionState,
    mem_total: Option<i64>,
    /// status of each condition and its last transition time
    transitions: BTreeMap<NodeCondition, (bool, jiff::Timestamp)>,
    decisions: VecDeque<TriggeredDecision>,
    report_tx: watch::Sender<Arc<Report>>,
    conditions_tx: watch::Sender<Vec<NodeCondition>>,
    last_sync: Instant,
    /// What made the running cycle run (recorded with its decisions).
    trigger: Trigger,
    /// Memory stats of the last memory read (root, kubepods), reused while the memory poll
    /// is slowed by an armed notifier.
    memory_cache: (
        Option<crate::cgroup::MemoryStats>,
        Option<crate::cgroup::MemoryStats>,
    ),
    /// How the memory signals are watched (for the report).
    watches: Vec<SignalWatch>,
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.round(jiff::Unit::Second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The wall time of a monotonic instant in the past.
fn wall(at: Instant) -> jiff::Timestamp {
    let ago = Instant::now().saturating_duration_since(at);
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(ago).unwrap_or_default())
        .unwrap_or_else(|_| jiff::Timestamp::now())
}

impl EvictionManager {
    /// A manager and the view its report is published on.
    pub fn new(
        cfg: ManagerConfig,
        cm: ContainerManager,
        runtime: Arc<dyn ContainerRuntime>,
        statuses: Arc<StatusManager>,
        recorder: EventRecorder,
        requests: mpsc::UnboundedSender<Request>,
    ) -> (Self, EvictionView) {
        let (report_tx, report) = watch::channel(Arc::new(Report::default()));
        let (conditions_tx, conditions) = watch::channel(Vec::new());
        let now = jiff::Timestamp::now();
        let transitions = NodeCondition::ALL
            .iter()
            .map(|c| (*c, (false, now)))
            .collect();
        let m = EvictionManager {
            cfg,
            cm,
            runtime,
            image_gc: None,
            statuses,
            recorder,
            requests,
            state: EvictionState::default(),
            mem_total: None,
            transitions,
            decisions: VecDeque::new(),
            report_tx,
            conditions_tx,
            last_sync: Instant::now(),
            trigger: Trigger::Period,
            memory_cache: (None, None),
            watches: Vec::new(),
        };
        (m, EvictionView { report, conditions })
    }

    /// With the image GC as a node-level reclaim of disk pressure (`DeleteUnusedImages`).
    pub fn with_image_gc(mut self, image_gc: Option<Arc<ImageGc>>) -> Self {
        self.image_gc = image_gc;
        self
    }

    /// Run forever: the fast poll and the kernel's notifications, and a full cycle on a new
    /// crossing, a deadline, or every monitoring period.
    pub async fn run(mut self) {
        let mut notifiers = ThresholdNotifiers::start(
            self.cfg.kernel_memcg_notification,
            &self.cm,
            &self.cfg.thresholds,
            self.cfg.enforce_pods,
        );
        self.watches = notifiers.watches.clone();
        tracing::info!(
            thresholds = self.cfg.thresholds.len(),
            monitoring_period = ?self.cfg.monitoring_period,
            fast_poll = if self.cfg.fast_poll { format!("{FAST_POLL:?}") } else { format!("off ({FAST_POLL_ENV}=off)") },
            kernel_memcg_notification = self.cfg.kernel_memcg_notification,
            "eviction manager started"
        );
        for w in &notifiers.watches {
            tracing::info!(
                signal = %w.signal,
                mechanism = %w.mechanisms.join("+"),
                cgroup = %w.cgroup.as_deref().unwrap_or(""),
                reason = %w.reason,
                "eviction manager: memory signal watched"
            );
        }
        if self.cfg.fast_poll {
            tracing::info!(
                signals = "nodefs, imagefs, containerfs (statvfs), pid.available",
                mechanism = "poll",
                interval = ?FAST_POLL,
                "eviction manager: disk and pid signals polled (a deviation: the kubelet reads them every cycle; see docs/deviations.md)"
            );
        }
        let mut last_full: Option<Instant> = None;
        let mut last_memory: Option<Instant> = None;
        // Thresholds met at the previous read: a threshold that is met now and was not is a
        // crossing, which runs a full cycle at once.
        let mut poll_met: Vec<Threshold> = Vec::new();
        // The last cycle evicted a pod (and waited for it to be cleaned up): run the next cycle
        // at once, as the kubelet's loop does after `waitForPodsCleanup`. That cycle decides
        // with the minimum reclaim (a threshold stays met until signal >= threshold + reclaim),
        // which the poll's plain comparison below does not see.
        let mut again = false;
        let mut tick = tokio::time::interval(FAST_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken: Option<Wake> = tokio::select! {
                _ = tick.tick() => None,
                w = notifiers.next() => Some(w),
            };
            let now = Instant::now();
            let periodic = last_full.is_none_or(|l| now >= l + self.cfg.monitoring_period);
            let deadline = self
                .state
                .next_deadline(self.cfg.pressure_transition_period)
                .is_some_and(|d| d > self.last_sync && d <= now);
            if !self.cfg.fast_poll && woken.is_none() && !periodic && !deadline && !again {
                continue;
            }
            // The memory signals: at every tick, or every NOTIFIED_MEMORY_POLL when the kernel
            // reports crossings itself; always on a notification and before a cycle.
            let memory_poll = if notifiers.exact() {
                NOTIFIED_MEMORY_POLL
            } else {
                FAST_POLL
            };
            let read_memory = woken.is_some()
                || periodic
                || deadline
                || again
                || last_memory.is_none_or(|l| now >= l + memory_poll);
            let mut obs =
                signals::observations(&self.node_inputs(last_full.is_none(), read_memory));
            if read_memory {
                last_memory = Some(now);
            }
            let met = helpers::thresholds_met(&self.cfg.thresholds, &obs, false);
            let new_crossing = met.iter().any(|t| !poll_met.contains(t));
            let retry = again;
            poll_met = met;
            if !(new_crossing || retry || periodic || deadline) {
                if read_memory {
                    let (root, kubepods) = self.memory_cache;
                    notifiers.update_thresholds(&obs, root.as_ref(), kubepods.as_ref());
                }
                continue;
            }
            if !read_memory {
                // A disk or pid crossing: the cycle decides on fresh memory figures too.
                obs = signals::observations(&self.node_inputs(false, true));
                last_memory = Some(now);
            }
            self.trigger = if periodic {
                Trigger::Period
            } else if new_crossing {
                match &woken {
                    Some(w) => Trigger::Notification {
                        signal: w.signal.to_string(),
                        mechanism: w.mechanism.as_str(),
                    },
                    None => Trigger::Poll,
                }
            } else if deadline {
                Trigger::Deadline
            } else {
                Trigger::Retry
            };
            if new_crossing {
                tracing::info!(
                    trigger = %self.trigger,
                    notified_signal = %woken.as_ref().map(|w| w.signal.as_str()).unwrap_or(""),
                    "eviction manager: a threshold was crossed; running a cycle now"
                );
            } else {
                tracing::debug!(trigger = %self.trigger, "eviction manager: running a cycle");
            }
            again = self.synchronize(obs.clone(), now).await;
            last_full = Some(Instant::now());
            // `UpdateThreshold`: the usage value moves with the inactive file cache.
            let (root, kubepods) = self.memory_cache;
            notifiers.update_thresholds(&obs, root.as_ref(), kubepods.as_ref());
        }
    }

    fn node_inputs(&mut self, refresh_total: bool, read_memory: bool) -> NodeInputs {
        if refresh_total || self.mem_total.is_none() {
            self.mem_total = fs::mem_total(&self.cfg.proc_root).ok();
        }
        let cgroups = self.cm.cgroups();
        if read_memory {
            self.memory_cache = (
                cgroups.root_memory_stats().ok(),
                if self.cfg.enforce_pods {
                    cgroups.memory_stats(&self.cm.kubepods()).ok()
                } else {
                    None
                },
            );
        }
        NodeInputs {
            mem_total: self.mem_total,
            root_memory: self.memory_cache.0,
            kubepods_memory: self.memory_cache.1,
            nodefs: fs::fs_stats(&self.cfg.root_dir).ok(),
            pids: signals::pid_available(&self.cfg.proc_root).ok(),
        }
    }

    /// One cycle (`synchronize`); true if it evicted a pod.
    async fn synchronize(&mut self, obs: Observations, now: Instant) -> bool {
        self.mem_total = fs::mem_total(&self.cfg.proc_root).ok().or(self.mem_total);
        let act = self.state.observe(
            &self.cfg.thresholds,
            &obs,
            now,
            self.cfg.pressure_transition_period,
        );
        self.last_sync = now;
        self.update_conditions();
        let pods = self.active_pods();
        let resource = act
            .first()
            .map(|t| signal_resource(t.signal))
            .unwrap_or(Resource::Memory);
        let mut ranked: Vec<Candidate> = pods
            .iter()
            .map(|p| Candidate {
                pod: p.clone(),
                usage: self.pod_usage(p),
            })
            .collect();
        helpers::rank(resource, &mut ranked);
        // localStorageEviction: runs before the thresholds and, if it evicts, ends the cycle.
        if self.cfg.local_storage_capacity_isolation {
            let evicted = self.local_storage_eviction(&ranked);
            if !evicted.is_empty() {
                self.publish(&obs, resource, &ranked, &act);
                for (uid, cg) in &evicted {
                    self.wait_for_cleanup(uid, cg.as_ref()).await;
                }
                return true;
            }
        }
        let mut evicted = None;
        if let Some(threshold) = act.first() {
            // The first time this threshold was seen met, for the reaction time.
            let crossed = self
                .state
                .first_observed
                .iter()
                .find(|(t, _)| t == threshold)
                .map(|(_, at)| *at);
            self.recorder.event(
                ObjectRef::node(&self.cfg.node_name),
                EventType::Warning,
                events::EVICTION_THRESHOLD_MET,
                format!("Attempting to reclaim {}", resource.as_str()),
            );
            tracing::warn!(signal = %threshold.signal, resource = resource.as_str(), "eviction manager: attempting to reclaim");
            // reclaimNodeLevelResources: for disk signals, the dead containers (and logs) that
            // evicted pods keep, then every unused image (the image store shares nodefs, so
            // both reclaim nodefs and imagefs). Enough if every threshold is then clear
            // including its minimum reclaim.
            if matches!(resource, Resource::EphemeralStorage | Resource::Inodes)
                && self.reclaim_node_level_resources(&obs).await
            {
                tracing::info!(
                    resource = resource.as_str(),
                    "eviction manager: able to reduce resource pressure without evicting pods"
                );
                self.decide(Decision {
                    time: rfc3339(jiff::Timestamp::now()),
                    signal: threshold.signal.to_string(),
                    resource: resource.as_str().into(),
                    action: "reclaimed".into(),
                    pod: None,
                    message: "removed the exited containers and logs of evicted pods and unused images; no pod needs to be evicted".into(),
                    grace_period_seconds: None,
                    reaction_ms: None,
                    kubelet_would: None,
                });
                self.publish(&obs, resource, &ranked, &act);
                return false;
            }
            evicted = self.evict_one(threshold, resource, &act, &obs, &ranked, crossed);
        }
        self.publish(&obs, resource, &ranked, &act);
        match evicted {
            Some((uid, cg)) => {
                self.wait_for_cleanup(&uid, cg.as_ref()).await;
                true
            }
            None => false,
        }
    }

    /// Evict the first pod of the ranking that may be evicted; returns its UID and cgroup.
    fn evict_one(
        &mut self,
        threshold: &Threshold,
        resource: Resource,
        act: &[Threshold],
        obs: &Observations,
        ranked: &[Candidate],
        crossed: Option<Instant>,
    ) -> Option<(String, Option<CgroupName>)> {
        for c in ranked {
            let pod = &c.pod;
            let name = full_name(pod);
            if is_critical(pod) {
                tracing::info!(pod = %name, "eviction manager: cannot evict a critical pod");
                self.decide(Decision {
                    time: rfc3339(jiff::Timestamp::now()),
                    signal: threshold.signal.to_string(),
                    resource: resource.as_str().into(),
                    action: "skipped".into(),
                    pod: Some(name),
                    message: "cannot evict a critical pod (priority >= 2000000000)".into(),
                    grace_period_seconds: None,
                    reaction_ms: None,
                    kubelet_would: None,
                });
                continue;
            }
            let (message, annotations) =
                helpers::eviction_message(resource, pod, c.usage.as_ref(), act, obs);
            let grace = if threshold.is_hard() {
                IMMEDIATE_EVICTION_GRACE_SECONDS
            } else {
                let pod_grace = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30);
                self.cfg.max_pod_grace_period.min(pod_grace)
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            tracing::warn!(
                pod = %name, uid = %uid, signal = %threshold.signal, grace_period = grace,
                offending_containers = annotations.get("offending_containers").map(String::as_str).unwrap_or(""),
                offending_containers_usage = annotations.get("offending_containers_usage").map(String::as_str).unwrap_or(""),
                starved_resource = resource.as_str(),
                "eviction manager: evicting pod"
            );
            self.recorder.annotated_event(
                ObjectRef::pod(pod),
                EventType::Warning,
                events::EVICTED,
                format!("{message}(Static pod evicted: {STATIC_POD_NOTE}.)"),
                annotations.clone(),
            );
            let _ = self.requests.send(Request::Evict {
                uid: uid.clone(),
                grace_seconds: grace,
                message: message.clone(),
                disruption_target: true,
            });
            crate::metrics::kubelet().evicted(threshold.signal.as_str());
            self.decide(Decision {
                time: rfc3339(jiff::Timestamp::now()),
                signal: threshold.signal.to_string(),
                resource: resource.as_str().into(),
                action: "evicted".into(),
                pod: Some(name),
                message,
                grace_period_seconds: Some(grace),
                reaction_ms: crossed.map(|c| c.elapsed().as_millis() as u64),
                kubelet_would: Some(
                    "not evict this pod: the kubelet never evicts static pods".into(),
                ),
            });
            return Some((uid, self.cm.pod_cgroup(pod).ok()));
        }
        tracing::warn!("eviction manager: unable to evict any pods from the node");
        self.decide(Decision {
            time: rfc3339(jiff::Timestamp::now()),
            signal: threshold.signal.to_string(),
            resource: resource.as_str().into(),
            action: "none".into(),
            pod: None,
            message: "unable to evict any pods from the node".into(),
            grace_period_seconds: None,
            reaction_ms: None,
            kubelet_would: None,
        });
        None
    }

    /// `localStorageEviction`: every pod over an emptyDir `sizeLimit` or an
    /// `ephemeral-storage` limit is evicted at once (1 s grace, no `DisruptionTarget`, no
    /// annotations), unless critical. Returns the evicted pods' UIDs and cgroups.
    fn local_storage_eviction(
        &mut self,
        ranked: &[Candidate],
    ) -> Vec<(String, Option<CgroupName>)> {
        let mut out = Vec::new();
        for c in ranked {
            let Some(hit) = local_storage::limit_eviction(&c.pod, c.usage.as_ref()) else {
                continue;
            };
            let pod = &c.pod;
            let name = full_name(pod);
            if is_critical(pod) {
                tracing::error!(pod = %name, "eviction manager: cannot evict a critical pod");
                self.decide(Decision {
                    time: rfc3339(jiff::Timestamp::now()),
                    signal: hit.signal.into(),
                    resource: Resource::EphemeralStorage.as_str().into(),
                    action: "skipped".into(),
                    pod: Some(name),
                    message: format!("{}(critical pod: not evicted)", hit.message),
                    grace_period_seconds: None,
                    reaction_ms: None,
                    kubelet_would: None,
                });
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            tracing::warn!(
                pod = %name, uid = %uid, limit = hit.signal, grace_period = IMMEDIATE_EVICTION_GRACE_SECONDS,
                message = %hit.message, "eviction manager: evicting pod over its local storage limit"
            );
            self.recorder.event(
                ObjectRef::pod(pod),
                EventType::Warning,
                events::EVICTED,
                format!("{}(Static pod evicted: {STATIC_POD_NOTE}.)", hit.message),
            );
            let _ = self.requests.send(Request::Evict {
                uid: uid.clone(),
                grace_seconds: IMMEDIATE_EVICTION_GRACE_SECONDS,
                message: hit.message.clone(),
                disruption_target: false,
            });
            self.decide(Decision {
                time: rfc3339(jiff::Timestamp::now()),
                signal: hit.signal.into(),
                resource: Resource::EphemeralStorage.as_str().into(),
                action: "evicted".into(),
                pod: Some(name),
                message: hit.message,
                grace_period_seconds: Some(IMMEDIATE_EVICTION_GRACE_SECONDS),
                reaction_ms: None,
                kubelet_would: Some(
                    "not evict this pod: the kubelet never evicts static pods".into(),
                ),
            });
            out.push((uid, self.cm.pod_cgroup(pod).ok()));
        }
        out
    }

    /// `reclaimNodeLevelResources` for disk: ask the pod manager to remove the exited
    /// containers and logs of evicted pods (`DeleteAllUnusedContainers`), then delete every
    /// unused image old enough (`DeleteUnusedImages`), then re-read the filesystem; true if no
    /// threshold is met any more, minimum reclaim included.
    async fn reclaim_node_level_resources(&mut self, obs: &Observations) -> bool {
        let (reply, rx) = tokio::sync::oneshot::channel();
        // The pod manager answers at once (a few file removals); the bound only keeps a
        // wedged pod manager from stalling eviction, at the price of evicting a pod the
        // reclaim might have spared.
        let removed = match self.requests.send(Request::ReclaimDeadContainers { reply }) {
            Ok(()) => match tokio::time::timeout(RECLAIM_TIMEOUT, rx).await {
                Ok(Ok(n)) => n,
                _ => 0,
            },
            Err(_) => 0,
        };
        let mut freed_images = 0;
        if let Some(gc) = self.image_gc.clone() {
            match tokio::task::spawn_blocking(move || gc.delete_unused_images()).await {
                Ok(Ok(freed)) => freed_images = freed,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "eviction manager: failed to delete unused images");
                }
                Err(e) => tracing::warn!(error = %e, "eviction manager: image reclaim panicked"),
            }
        }
        tracing::info!(
            containers = removed,
            imageBytes = freed_images,
            "eviction manager: node-level reclaim"
        );
        if removed == 0 && freed_images == 0 {
            return false;
        }
        let Ok(fs) = fs::fs_stats(&self.cfg.root_dir) else {
            return false;
        };
        let after = signals::with_fs(obs, &fs);
        helpers::thresholds_met(&self.cfg.thresholds, &after, true).is_empty()
    }

    fn decide(&mut self, d: Decision) {
        if self.decisions.len() >= MAX_DECISIONS {
            self.decisions.pop_front();
        }
        self.decisions.push_back(TriggeredDecision {
            decision: d,
            trigger: self.trigger.to_string(),
            decided_at: jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        });
    }

    /// `waitForPodsCleanup`: until the pod's cgroup is gone and its status is terminal.
    async fn wait_for_cleanup(&self, uid: &str, cg: Option<&CgroupName>) {
        let deadline = Instant::now() + POD_CLEANUP_TIMEOUT;
        while Instant::now() < deadline {
            let cg_gone = cg.is_none_or(|c| !self.cm.cgroups().exists(c));
            let terminal = self.statuses.get(uid).is_none_or(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Failed" || ph == "Succeeded")
            });
            if cg_gone && terminal {
                tracing::info!(uid = %uid, "eviction manager: evicted pod is cleaned up");
                return;
            }
            tokio::time::sleep(POD_CLEANUP_POLL).await;
        }
        tracing::warn!(uid = %uid, timeout = ?POD_CLEANUP_TIMEOUT, "eviction manager: timed out waiting for the evicted pod to be cleaned up");
    }

    /// Pods that are running or about to (not terminal).
    fn active_pods(&self) -> Vec<Arc<Pod>> {
        self.statuses
            .list()
            .into_iter()
            .filter(|p| {
                !p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Failed" || ph == "Succeeded")
            })
            .collect()
    }

    fn pod_usage(&self, pod: &Pod) -> Option<PodUsage> {
        let cg = self.cm.pod_cgroup(pod).ok()?;
        let cgroups = self.cm.cgroups();
        let ws = |name: &CgroupName| {
            cgroups
                .memory_stats(name)
                .ok()
                .map(|m| i64::try_from(m.working_set_bytes).unwrap_or(i64::MAX))
        };
        let memory_working_set = ws(&cg);
        let processes = cgroups
            .path(Controller::Pids, &cg)
            .filter(|p| p.exists())
            .and_then(|_| cgroups.pids(&cg).ok())
            .map(|p| p.len() as i64);
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let log_dir = crate::logs::pod_log_dir(
            &self.cfg.pod_logs_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            uid,
        );
        let storage = fs::pod_local_storage(&log_dir, &self.cfg.root_dir, uid);
        // The writable layers are on nodefs (no dedicated image filesystem), so they count
        // toward the pod's and each container's usage, as in the kubelet's
        // `podEphemeralStorageLimitEviction` and `containerEphemeralStorageLimitEviction`.
        let layers = crate::stats::writable_layers(pod, self.runtime.as_ref());
        let layer = |name: &str| {
            layers
                .get(name)
                .map_or(0, |l| i64::try_from(l.used_bytes).unwrap_or(i64::MAX))
        };
        let layer_inodes: i64 = layers
            .values()
            .map(|l| i64::try_from(l.inodes_used).unwrap_or(i64::MAX))
            .fold(0, i64::saturating_add);
        let layer_bytes: i64 = layers.keys().map(|n| layer(n)).fold(0, i64::saturating_add);
        let per_container = &storage.per_container;
        let containers = pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| ContainerUsage {
                        name: c.name.clone(),
                        memory_working_set: cg.child(&c.name).ok().and_then(|n| ws(&n)),
                        ephemeral_storage: Some(
                            per_container
                                .get(&c.name)
                                .copied()
                                .unwrap_or(0)
                                .saturating_add(layer(&c.name)),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(PodUsage {
            memory_working_set,
            processes,
            ephemeral_storage: Some(storage.bytes.saturating_add(layer_bytes)),
            inodes: Some(storage.inodes.saturating_add(layer_inodes)),
            volumes: storage.per_volume,
            containers,
        })
    }

    /// Condition transitions: node events, the admission view, re-admission once clear.
    fn update_conditions(&mut self) {
        let now = jiff::Timestamp::now();
        let current = self.state.node_conditions.clone();
        for c in NodeCondition::ALL {
            let on = current.contains(&c);
            let Some(entry) = self.transitions.get_mut(&c) else {
                continue;
            };
            if entry.0 != on {
                *entry = (on, now);
                let (reason, _) = condition_reason(c, on);
                let event_reason = match (c, on) {
                    (NodeCondition::MemoryPressure, true) => events::NODE_HAS_INSUFFICIENT_MEMORY,
                    (NodeCondition::MemoryPressure, false) => events::NODE_HAS_SUFFICIENT_MEMORY,
                    (NodeCondition::DiskPressure, true) => events::NODE_HAS_DISK_PRESSURE,
                    (NodeCondition::DiskPressure, false) => events::NODE_HAS_NO_DISK_PRESSURE,
                    (NodeCondition::PIDPressure, true) => events::NODE_HAS_INSUFFICIENT_PID,
                    (NodeCondition::PIDPressure, false) => events::NODE_HAS_SUFFICIENT_PID,
                };
                tracing::info!(
                    condition = c.as_str(),
                    status = on,
                    reason,
                    "node condition changed"
                );
                self.recorder.event(
                    ObjectRef::node(&self.cfg.node_name),
                    EventType::Normal,
                    event_reason,
                    format!("Node {} status is now: {event_reason}", self.cfg.node_name),
                );
            }
        }
        let before = self.conditions_tx.borrow().clone();
        if before != current {
            let _ = self.conditions_tx.send(current.clone());
            if current.is_empty() {
                tracing::info!(
                    "no pressure condition remains: evicted and refused pods may be admitted again"
                );
                let _ = self.requests.send(Request::Readmit);
            }
        }
    }

    fn publish(
        &self,
        obs: &Observations,
        resource: Resource,
        ranked: &[Candidate],
        act: &[Threshold],
    ) {
        let mut signals_out = Vec::new();
        for s in Signal::ALL {
            let o = obs.get(&s);
            let ths: Vec<ThresholdReport> = self
                .cfg
                .thresholds
                .iter()
                .filter(|t| t.signal == s)
                .map(|t| {
                    let since = self
                        .state
                        .first_observed
                        .iter()
                        .find(|(f, _)| f == t)
                        .map(|(_, at)| *at);
                    ThresholdReport {
                        value: match t.value {
                            crate::eviction::thresholds::ThresholdValue::Quantity(q) => {
                                helpers::binary_si(q)
                            }
                            v => v.to_string(),
                        },
                        quantity: o.map(|o| t.value.quantity_for(o.capacity)),
                        hard: t.is_hard(),
                        grace_period: format!("{:?}", t.grace_period),
                        min_reclaim: t.min_reclaim.map(|r| match r {
                            crate::eviction::thresholds::ThresholdValue::Quantity(q) => {
                                helpers::binary_si(q)
                            }
                            v => v.to_string(),
                        }),
                        met: since.is_some(),
                        met_since: since.map(|at| rfc3339(wall(at))),
                        acted_on: act.contains(t),
                    }
                })
                .collect();
            if o.is_none() && ths.is_empty() {
                continue;
            }
            signals_out.push(SignalReport {
                signal: s.to_string(),
                resource: signal_resource(s).as_str().into(),
                available: o.map(|o| o.available),
                capacity: o.map(|o| o.capacity),
                thresholds: ths,
            });
        }
        let ranking = Ranking {
            resource: resource.as_str().into(),
            pods: ranked
                .iter()
                .map(|c| {
                    let usage = c
                        .usage
                        .as_ref()
                        .and_then(|u| helpers::usage_of(u, resource));
                    let request = request_of(&c.pod, resource);
                    RankedPod {
                        pod: full_name(&c.pod),
                        uid: c.pod.metadata.uid.clone().unwrap_or_default(),
                        qos_class: qos_class(&c.pod).as_str().into(),
                        priority: pod_priority(&c.pod),
                        critical: is_critical(&c.pod),
                        usage,
                        request,
                        exceeds_request: usage.is_some_and(|u| u > request),
                        stats: c.usage.clone(),
                    }
                })
                .collect(),
        };
        let report = Report {
            observed_at: Some(rfc3339(jiff::Timestamp::now())),
            signals: signals_out,
            conditions: self.api_conditions(),
            ranking: Some(ranking),
            decisions: self.decisions.iter().cloned().collect(),
            monitoring_period: format!("{:?}", self.cfg.monitoring_period),
            pressure_transition_period: format!("{:?}", self.cfg.pressure_transition_period),
            fast_poll: if self.cfg.fast_poll {
                format!("{FAST_POLL:?}")
            } else {
                "off".into()
            },
            memory_watches: self.watches.clone(),
            deviations: vec![
                STATIC_POD_NOTE.into(),
                format!(
                    "signals are re-read every {FAST_POLL:?} and a crossing runs a cycle at once; the kubelet waits for its next {:?} cycle",
                    self.cfg.monitoring_period
                ),
                "static pods are refused under pressure like other pods (the kubelet admits every static pod as critical)".into(),
            ],
        };
        let _ = self.report_tx.send(Arc::new(report));
    }

    /// The node's conditions as the kubelet's node status setters write them.
    fn api_conditions(&self) -> Vec<ApiNodeCondition> {
        let now = Time(jiff::Timestamp::now());
        let mut out: Vec<ApiNodeCondition> = NodeCondition::ALL
            .iter()
            .map(|c| {
                let (on, since) = self
                    .transitions
                    .get(c)
                    .copied()
                    .unwrap_or((false, jiff::Timestamp::now()));
                let (reason, message) = condition_reason(*c, on);
                ApiNodeCondition {
                    type_: c.as_str().into(),
                    status: if on { "True" } else { "False" }.into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_heartbeat_time: Some(now.clone()),
                    last_transition_time: Some(Time(since)),
                }
            })
            .collect();
        out.push(ApiNodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(now),
            last_transition_time: None,
        });
        out
    }
}

/// `nodestatus` setters' reason and message for a pressure condition.
fn condition_reason(c: NodeCondition, on: bool) -> (&'static str, &'static str) {
    match (c, on) {
        (NodeCondition::MemoryPressure, true) => (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        (NodeCondition::MemoryPressure, false) => (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (NodeCondition::DiskPressure, true) => {
            ("KubeletHasDiskPressure", "kubelet has disk pressure")
        }
        (NodeCondition::DiskPressure, false) => {
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")
        }
        (NodeCondition::PIDPressure, true) => (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (NodeCondition::PIDPressure, false) => (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    }
}

fn request_of(pod: &Pod, r: Resource) -> i64 {
    let req = crate::api::resources::pod_requests(pod);
    match r {
        Resource::Memory => req.memory,
        Resource::EphemeralStorage => req.ephemeral_storage,
        Resource::Inodes | Resource::Pids => 0,
    }
}
