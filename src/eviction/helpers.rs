//! The eviction manager's pure decisions: which thresholds are met (with minimum reclaim and
//! grace periods), which node conditions hold (with the transition period), how pods are
//! ranked for each starved resource, who may be evicted, and the eviction message.
//!
//! Mirrors `pkg/kubelet/eviction/helpers.go` (`thresholdsMet`, `mergeThresholds`,
//! `thresholdsFirstObservedAt`, `nodeConditions`, `nodeConditionsObservedSince`,
//! `thresholdsMetGracePeriod`, `rankMemoryPressure`, `rankDiskPressureFunc`, `rankPIDPressure`,
//! `evictionMessage`) and the state `synchronize` keeps between cycles in
//! `eviction_manager.go`. Nothing here reads the kernel or the clock: time is passed in.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::api::pod::{is_critical, pod_priority};
use crate::api::quantity::{Format, Quantity};
use crate::eviction::signals::{Observations, PodUsage};
use crate::eviction::thresholds::{Signal, Threshold};

/// A node condition the eviction manager reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum NodeCondition {
    /// Memory signals met.
    MemoryPressure,
    /// Filesystem signals (bytes or inodes) met.
    DiskPressure,
    /// `pid.available` met.
    PIDPressure,
}

impl NodeCondition {
    /// Every condition, in the order the kubelet lists them on a node.
    pub const ALL: [NodeCondition; 3] = [
        NodeCondition::MemoryPressure,
        NodeCondition::DiskPressure,
        NodeCondition::PIDPressure,
    ];

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeCondition::MemoryPressure => "MemoryPressure",
            NodeCondition::DiskPressure => "DiskPressure",
            NodeCondition::PIDPressure => "PIDPressure",
        }
    }
}

/// The resource a signal starves (`signalToResource`), as named in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Resource {
    /// `memory`.
    Memory,
    /// `ephemeral-storage`.
    EphemeralStorage,
    /// `inodes`.
    Inodes,
    /// `pids`.
    Pids,
}

impl Resource {
    /// The name in messages and annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }
}

/// `signalToNodeCondition`.
pub fn signal_condition(s: Signal) -> NodeCondition {
    match s {
        Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => {
            NodeCondition::MemoryPressure
        }
        Signal::PidAvailable => NodeCondition::PIDPressure,
        _ => NodeCondition::DiskPressure,
    }
}

/// `signalToResource`.
pub fn signal_resource(s: Signal) -> Resource {
    match s {
        Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Resource::Memory,
        Signal::NodeFsAvailable | Signal::ImageFsAvailable | Signal::ContainerFsAvailable => {
            Resource::EphemeralStorage
        }
        Signal::NodeFsInodesFree | Signal::ImageFsInodesFree | Signal::ContainerFsInodesFree => {
            Resource::Inodes
        }
        Signal::PidAvailable => Resource::Pids,
    }
}

/// The threshold in absolute units for this observation, plus the minimum reclaim when asked
/// (`GetThresholdQuantity` + `thresholdsMet`'s `enforceMinReclaim`).
pub fn threshold_quantity(t: &Threshold, capacity: i64, with_min_reclaim: bool) -> i64 {
    let mut q = t.value.quantity_for(capacity);
    if with_min_reclaim && let Some(r) = t.min_reclaim {
        q = q.saturating_add(r.quantity_for(capacity));
    }
    q
}

/// `thresholdsMet`: thresholds whose signal is observed with available < quantity.
pub fn thresholds_met(
    thresholds: &[Threshold],
    obs: &Observations,
    enforce_min_reclaim: bool,
) -> Vec<Threshold> {
    thresholds
        .iter()
        .filter(|t| {
            obs.get(&t.signal).is_some_and(|o| {
                threshold_quantity(t, o.capacity, enforce_min_reclaim) > o.available
            })
        })
        .cloned()
        .collect()
}

/// `mergeThresholds`: union without duplicates.
fn merge_thresholds(mut a: Vec<Threshold>, b: Vec<Threshold>) -> Vec<Threshold> {
    for t in b {
        if !a.contains(&t) {
            a.push(t);
        }
    }
    a
}

/// What the eviction manager remembers between cycles.
#[derive(Clone, Debug, Default)]
pub struct EvictionState {
    /// Thresholds met (ignoring grace) with when each was first seen met.
    pub first_observed: Vec<(Threshold, Instant)>,
    /// Thresholds acted on in the last cycle (past their grace period); min reclaim keeps these
    /// met until `available ≥ threshold + minReclaim`.
    pub thresholds_met: Vec<Threshold>,
    /// When each condition was last backed by a met threshold.
    pub conditions_last_observed: BTreeMap<NodeCondition, Instant>,
    /// The node's pressure conditions now.
    pub node_conditions: Vec<NodeCondition>,
}

impl EvictionState {
    /// One cycle of `synchronize`'s bookkeeping: returns the thresholds to act on (met,
    /// past their grace period), memory first.
    pub fn observe(
        &mut self,
        configured: &[Threshold],
        obs: &Observations,
        now: Instant,
        transition: Duration,
    ) -> Vec<Threshold> {
        let mut met = thresholds_met(configured, obs, false);
        if !self.thresholds_met.is_empty() {
            let unresolved = thresholds_met(&self.thresholds_met, obs, true);
            met = merge_thresholds(met, unresolved);
        }
        // thresholdsFirstObservedAt
        let first: Vec<(Threshold, Instant)> = met
            .iter()
            .map(|t| {
                let at = self
                    .first_observed
                    .iter()
                    .find(|(old, _)| old == t)
                    .map_or(now, |(_, at)| *at);
                (t.clone(), at)
            })
            .collect();
        // nodeConditions + nodeConditionsLastObservedAt + nodeConditionsObservedSince: the
        // conditions ignore grace periods and linger for the transition period.
        for t in &met {
            self.conditions_last_observed
                .insert(signal_condition(t.signal), now);
        }
        self.conditions_last_observed
            .retain(|_, at| now.duration_since(*at) < transition);
        self.node_conditions = self.conditions_last_observed.keys().copied().collect();
        // thresholdsMetGracePeriod
        let mut act: Vec<Threshold> = first
            .iter()
            .filter(|(t, at)| now.duration_since(*at) >= t.grace_period)
            .map(|(t, _)| t.clone())
            .collect();
        sort_memory_first(&mut act);
        self.first_observed = first;
        self.thresholds_met = act.clone();
        act
    }

    /// When something changes without a new crossing: the earliest moment a met threshold's
    /// grace period ends or a condition's transition period runs out.
    pub fn next_deadline(&self, transition: Duration) -> Option<Instant> {
        let grace = self
            .first_observed
            .iter()
            .filter(|(t, _)| !t.grace_period.is_zero())
            .map(|(t, at)| *at + t.grace_period);
        let linger = self
            .conditions_last_observed
            .values()
            .map(|at| *at + transition);
        grace.chain(linger).min()
    }
}

/// `byEvictionPriority`: memory signals first, then the rest in order.
pub fn sort_memory_first(t: &mut [Threshold]) {
    t.sort_by_key(|t| signal_resource(t.signal) != Resource::Memory);
}

/// A pod with what is known of its usage, for ranking.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its usage, if it could be measured.
    pub usage: Option<PodUsage>,
}

fn pod_request(pod: &Pod, r: Resource) -> i64 {
    let req = crate::api::resources::pod_requests(pod);
    match r {
        Resource::Memory => req.memory,
        Resource::EphemeralStorage => req.ephemeral_storage,
        Resource::Inodes | Resource::Pids => 0,
    }
}

/// The usage that ranking compares for a resource.
pub fn usage_of(u: &PodUsage, r: Resource) -> Option<i64> {
    match r {
        Resource::Memory => u.memory_working_set,
        Resource::EphemeralStorage => u.ephemeral_storage,
        Resource::Inodes => u.inodes,
        Resource::Pids => u.processes,
    }
}

/// `cmpBool`: true before false.
fn true_first(a: bool, b: bool) -> Ordering {
    b.cmp(&a)
}

fn exceeds_requests(a: &Candidate, b: &Candidate, r: Resource) -> Ordering {
    let ua = a.usage.as_ref().and_then(|u| usage_of(u, r));
    let ub = b.usage.as_ref().and_then(|u| usage_of(u, r));
    match (ua, ub) {
        (Some(ua), Some(ub)) => {
            true_first(ua > pod_request(&a.pod, r), ub > pod_request(&b.pod, r))
        }
        // pods without stats first
        _ => true_first(ua.is_none(), ub.is_none()),
    }
}

fn lower_priority_first(a: &Candidate, b: &Candidate) -> Ordering {
    pod_priority(&a.pod).cmp(&pod_priority(&b.pod))
}

fn larger_excess_first(a: &Candidate, b: &Candidate, r: Resource) -> Ordering {
    let ua = a.usage.as_ref().and_then(|u| usage_of(u, r));
    let ub = b.usage.as_ref().and_then(|u| usage_of(u, r));
    match (ua, ub) {
        (Some(ua), Some(ub)) => (ub - pod_request(&b.pod, r)).cmp(&(ua - pod_request(&a.pod, r))),
        _ => true_first(ua.is_none(), ub.is_none()),
    }
}

/// Rank pods for the starved resource, first to evict first: memory and disk by (usage above
/// request, lower priority, larger usage − request); pids by (lower priority, more processes).
pub fn rank(r: Resource, pods: &mut [Candidate]) {
    match r {
        Resource::Pids => pods
            .sort_by(|a, b| lower_priority_first(a, b).then_with(|| larger_excess_first(a, b, r))),
        _ => pods.sort_by(|a, b| {
            exceeds_requests(a, b, r)
                .then_with(|| lower_priority_first(a, b))
                .then_with(|| larger_excess_first(a, b, r))
        }),
    }
}

/// `resource.NewQuantity(v, BinarySI).String()`.
pub fn binary_si(v: i64) -> String {
    Quantity::new(v, Format::BinarySI).to_string()
}

/// The eviction message and annotations (`evictionMessage`).
pub fn eviction_message(
    r: Resource,
    pod: &Pod,
    usage: Option<&PodUsage>,
    acted: &[Threshold],
    obs: &Observations,
) -> (String, BTreeMap<String, String>) {
    let mut msg = format!("The node was low on resource: {}. ", r.as_str());
    // getThresholdMetInfo: the first acted threshold of this resource with an observation.
    if let Some((t, o)) = acted
        .iter()
        .filter(|t| signal_resource(t.signal) == r)
        .find_map(|t| obs.get(&t.signal).map(|o| (t, o)))
    {
        msg += &format!(
            "Threshold quantity: {}, available: {}. ",
            binary_si(t.value.quantity_for(o.capacity)),
            binary_si(o.available)
        );
    }
    let mut annotations = BTreeMap::new();
    let Some(usage) = usage else {
        return (msg, annotations);
    };
    let mut names = Vec::new();
    let mut usages = Vec::new();
    for cu in &usage.containers {
        let Some(c) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == cu.name))
        else {
            continue;
        };
        let used = match r {
            Resource::Memory => cu.memory_working_set,
            Resource::EphemeralStorage => cu.ephemeral_storage,
            _ => None,
        };
        let request = c
            .resources
            .as_ref()
            .and_then(|res| res.requests.as_ref())
            .and_then(|m| m.get(r.as_str()))
            .and_then(|q| Quantity::from_api(q).ok())
            .unwrap_or(Quantity::ZERO);
        if let Some(used) = used
            && Quantity::new(used, Format::BinarySI) > request
        {
            let used = binary_si(used);
            msg += &format!(
                "Container {} was using {used}, request is {request}, has larger consumption of {}. ",
                c.name,
                r.as_str()
            );
            names.push(c.name.clone());
            usages.push(used);
        }
    }
    annotations.insert("offending_containers".into(), names.join(","));
    annotations.insert("offending_containers_usage".into(), usages.join(","));
    annotations.insert("starved_resource".into(), r.as_str().into());
    (msg, annotations)
}

/// The kubelet's `Admit` under pressure (`eviction_manager.go`), for a pod that is not
/// critical by priority: no condition → admit; only MemoryPressure → admit unless BestEffort
/// without a toleration of `node.kubernetes.io/memory-pressure:NoSchedule`; else refuse.
/// Returns the refusal message `The node had condition: [..]. `.
pub fn admit_under_pressure(conditions: &[NodeCondition], pod: &Pod) -> Result<(), String> {
    if conditions.is_empty() || is_critical(pod) {
        return Ok(());
    }
    if conditions == [NodeCondition::MemoryPressure] {
        let best_effort = crate::api::qos::qos_class(pod) == crate::api::qos::QosClass::BestEffort;
        if !best_effort || tolerates_memory_pressure(pod) {
            return Ok(());
        }
    }
    let names: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
    Err(format!("The node had condition: [{}]. ", names.join(" ")))
}

/// Does the pod tolerate the taint `node.kubernetes.io/memory-pressure:NoSchedule`
/// (`ToleratesTaint`)?
fn tolerates_memory_pressure(pod: &Pod) -> bool {
    const KEY: &str = "node.kubernetes.io/memory-pressure";
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                let effect_ok = t
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoSchedule");
                let exists = t.operator.as_deref() == Some("Exists");
                let key_ok = match t.key.as_deref() {
                    None | Some("") => exists,
                    Some(k) => k == KEY,
                };
                let value_ok = exists || t.value.as_deref().unwrap_or("").is_empty();
                effect_ok && key_ok && value_ok
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pod::SYSTEM_CRITICAL_PRIORITY;
    use crate::eviction::signals::{ContainerUsage, Observation};
    use crate::eviction::thresholds::{Operator, ThresholdValue};

    const MI: i64 = 1 << 20;

    fn th(signal: Signal, value: ThresholdValue, grace: u64, reclaim: Option<i64>) -> Threshold {
        Threshold {
            signal,
            operator: Operator::LessThan,
            value,
            grace_period: Duration::from_secs(grace),
            min_reclaim: reclaim.map(ThresholdValue::Quantity),
        }
    }

    fn obs(pairs: &[(Signal, i64, i64)]) -> Observations {
        pairs
            .iter()
            .map(|&(s, a, c)| {
                (
                    s,
                    Observation {
                        available: a,
                        capacity: c,
                    },
                )
            })
            .collect()
    }

    fn pod(name: &str, priority: Option<i32>, mem_request: Option<&str>) -> Arc<Pod> {
        let mut v = serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c"}]},
        });
        if let Some(p) = priority {
            v["spec"]["priority"] = p.into();
        }
        if let Some(r) = mem_request {
            v["spec"]["containers"][0]["resources"] =
                serde_json::json!({"requests": {"memory": r, "ephemeral-storage": r}});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn cand(p: Arc<Pod>, mem: Option<i64>) -> Candidate {
        Candidate {
            pod: p,
            usage: mem.map(|m| PodUsage {
                memory_working_set: Some(m),
                ephemeral_storage: Some(m),
                processes: Some(m),
                inodes: Some(m),
                volumes: Default::default(),
                containers: vec![ContainerUsage {
                    name: "c".into(),
                    memory_working_set: Some(m),
                    ephemeral_storage: Some(m),
                }],
            }),
        }
    }

    #[test]
    fn thresholds_met_with_and_without_min_reclaim() {
        let t = th(
            Signal::MemoryAvailable,
            ThresholdValue::Quantity(100 * MI),
            0,
            Some(50 * MI),
        );
        let p = th(
            Signal::NodeFsAvailable,
            ThresholdValue::Percentage(0.1),
            0,
            None,
        );
        // (available memory, available disk of 1000, min reclaim?, want memory met, want disk met)
        let cases = [
            (99 * MI, 99, false, true, true),
            (100 * MI, 100, false, false, false),
            (120 * MI, 101, false, false, false),
            (120 * MI, 101, true, true, false),
            (150 * MI, 99, true, false, true),
        ];
        for (mem, disk, reclaim, want_mem, want_disk) in cases {
            let o = obs(&[
                (Signal::MemoryAvailable, mem, 8192 * MI),
                (Signal::NodeFsAvailable, disk, 1000),
            ]);
            let met = thresholds_met(&[t.clone(), p.clone()], &o, reclaim);
            assert_eq!(met.contains(&t), want_mem, "{mem} {reclaim}");
            assert_eq!(met.contains(&p), want_disk, "{disk}");
        }
        // An unobserved signal is never met.
        assert!(thresholds_met(&[t], &Observations::new(), false).is_empty());
    }

    #[test]
    fn min_reclaim_keeps_an_acted_threshold_met() {
        let t = th(
            Signal::MemoryAvailable,
            ThresholdValue::Quantity(100 * MI),
            0,
            Some(50 * MI),
        );
        let mut s = EvictionState::default();
        let t0 = Instant::now();
        let tr = Duration::from_secs(300);
        let low = obs(&[(Signal::MemoryAvailable, 90 * MI, 1000 * MI)]);
        let mid = obs(&[(Signal::MemoryAvailable, 120 * MI, 1000 * MI)]);
        let high = obs(&[(Signal::MemoryAvailable, 160 * MI, 1000 * MI)]);
        assert_eq!(s.observe(std::slice::from_ref(&t), &mid, t0, tr), vec![]);
        assert_eq!(
            s.observe(std::slice::from_ref(&t), &low, t0, tr),
            vec![t.clone()]
        );
        // above the threshold but below threshold + min reclaim: still acted on
        assert_eq!(
            s.observe(std::slice::from_ref(&t), &mid, t0, tr),
            vec![t.clone()]
        );
        assert_eq!(s.observe(std::slice::from_ref(&t), &high, t0, tr), vec![]);
        assert_eq!(s.observe(std::slice::from_ref(&t), &mid, t0, tr), vec![]);
    }

    #[test]
    fn soft_thresholds_wait_for_grace_but_conditions_do_not() {
        let soft = th(
            Signal::MemoryAvailable,
            ThresholdValue::Quantity(300 * MI),
            30,
            None,
        );
        let mut s = EvictionState::default();
        let t0 = Instant::now();
        let tr = Duration::from_secs(60);
        let low = obs(&[(Signal::MemoryAvailable, 200 * MI, 1000 * MI)]);
        let ok = obs(&[(Signal::MemoryAvailable, 500 * MI, 1000 * MI)]);
        let cfg = [soft.clone()];
        assert!(s.observe(&cfg, &low, t0, tr).is_empty());
        assert_eq!(s.node_conditions, vec![NodeCondition::MemoryPressure]);
        assert_eq!(s.next_deadline(tr), Some(t0 + Duration::from_secs(30)));
        assert!(
            s.observe(&cfg, &low, t0 + Duration::from_secs(29), tr)
                .is_empty()
        );
        assert_eq!(
            s.observe(&cfg, &low, t0 + Duration::from_secs(30), tr),
            vec![soft.clone()]
        );
        // A dip resets the grace period.
        s.observe(&cfg, &ok, t0 + Duration::from_secs(31), tr);
        assert!(
            s.observe(&cfg, &low, t0 + Duration::from_secs(32), tr)
                .is_empty()
        );
    }

    #[test]
    fn conditions_linger_for_the_transition_period() {
        let t = th(
            Signal::NodeFsAvailable,
            ThresholdValue::Percentage(0.1),
            0,
            None,
        );
        let p = th(Signal::PidAvailable, ThresholdValue::Quantity(100), 0, None);
        let mut s = EvictionState::default();
        let t0 = Instant::now();
        let tr = Duration::from_secs(5);
        let cfg = [t, p];
        let bad = obs(&[
            (Signal::NodeFsAvailable, 5, 100),
            (Signal::PidAvailable, 50, 1000),
        ]);
        let good = obs(&[
            (Signal::NodeFsAvailable, 50, 100),
            (Signal::PidAvailable, 500, 1000),
        ]);
        s.observe(&cfg, &bad, t0, tr);
        assert_eq!(
            s.node_conditions,
            vec![NodeCondition::DiskPressure, NodeCondition::PIDPressure]
        );
        // (seconds after the last crossing, conditions still reported)
        for (secs, want) in [(1, true), (4, true), (5, false), (9, false)] {
            let mut s2 = s.clone();
            s2.observe(&cfg, &good, t0 + Duration::from_secs(secs), tr);
            assert_eq!(!s2.node_conditions.is_empty(), want, "{secs}s");
        }
        assert_eq!(s.next_deadline(tr), Some(t0 + tr));
    }

    #[test]
    fn memory_thresholds_sort_first() {
        let mut v = vec![
            th(
                Signal::NodeFsAvailable,
                ThresholdValue::Quantity(1),
                0,
                None,
            ),
            th(Signal::PidAvailable, ThresholdValue::Quantity(1), 0, None),
            th(
                Signal::AllocatableMemoryAvailable,
                ThresholdValue::Quantity(1),
                0,
                None,
            ),
        ];
        sort_memory_first(&mut v);
        assert_eq!(v[0].signal, Signal::AllocatableMemoryAvailable);
        assert_eq!(v[1].signal, Signal::NodeFsAvailable);
    }

    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter()
            .map(|c| c.pod.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn memory_ranking_like_the_kubelet() {
        // The kubelet's TestOrderedByExceedsRequestMemory / TestOrderedByPriority spirit:
        // exceeding requests first, then lower priority, then larger excess.
        let mut c = vec![
            cand(pod("guaranteed-ok", Some(0), Some("100Mi")), Some(50 * MI)),
            cand(
                pod("burst-high-prio", Some(1000), Some("10Mi")),
                Some(200 * MI),
            ),
            cand(pod("besteffort-small", Some(0), None), Some(20 * MI)),
            cand(pod("besteffort-big", Some(0), None), Some(300 * MI)),
            cand(pod("no-stats", Some(5000), None), None),
            cand(pod("low-prio-ok", Some(-10), Some("1Gi")), Some(10 * MI)),
        ];
        rank(Resource::Memory, &mut c);
        assert_eq!(
            names(&c),
            vec![
                "no-stats",
                "besteffort-big",
                "besteffort-small",
                "burst-high-prio",
                "low-prio-ok",
                "guaranteed-ok"
            ]
        );
    }

    #[test]
    fn pid_ranking_priority_then_processes() {
        let mut c = vec![
            cand(pod("a", Some(10), None), Some(500)),
            cand(pod("b", Some(0), None), Some(5)),
            cand(pod("c", Some(0), None), Some(50)),
        ];
        rank(Resource::Pids, &mut c);
        assert_eq!(names(&c), vec!["c", "b", "a"]);
    }

    #[test]
    fn disk_ranking_uses_ephemeral_storage_requests() {
        let mut c = vec![
            cand(pod("within", Some(0), Some("1Gi")), Some(100 * MI)),
            cand(pod("over", Some(0), Some("1Mi")), Some(5 * MI)),
        ];
        rank(Resource::EphemeralStorage, &mut c);
        assert_eq!(names(&c), vec!["over", "within"]);
    }

    #[test]
    fn message_in_the_kubelet_format() {
        let t = th(
            Signal::AllocatableMemoryAvailable,
            ThresholdValue::Quantity(350 * MI),
            0,
            None,
        );
        let o = obs(&[(Signal::AllocatableMemoryAvailable, 300 * MI, 600 * MI)]);
        let c = cand(pod("hog", Some(0), None), Some(280 * MI));
        let (m, a) = eviction_message(
            Resource::Memory,
            &c.pod,
            c.usage.as_ref(),
            std::slice::from_ref(&t),
            &o,
        );
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 350Mi, available: 300Mi. Container c was using 280Mi, request is 0, has larger consumption of memory. "
        );
        assert_eq!(a["offending_containers"], "c");
        assert_eq!(a["offending_containers_usage"], "280Mi");
        assert_eq!(a["starved_resource"], "memory");
        // Within its request: no container sentence; percentage threshold of capacity; like
        // apimachinery, BinarySI below 1024 prints as DecimalSI (1000 -> 1k).
        let p = th(
            Signal::NodeFsAvailable,
            ThresholdValue::Percentage(0.1),
            0,
            None,
        );
        let o = obs(&[(Signal::NodeFsAvailable, 1000, 10240)]);
        let c = cand(pod("ok", Some(0), Some("1Gi")), Some(4096));
        let (m, _) = eviction_message(
            Resource::EphemeralStorage,
            &c.pod,
            c.usage.as_ref(),
            &[p],
            &o,
        );
        assert_eq!(
            m,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 1Ki, available: 1k. "
        );
    }

    #[test]
    fn admission_under_pressure() {
        use NodeCondition::*;
        let be = pod("be", None, None);
        let burst = pod("burst", None, Some("10Mi"));
        let critical = pod("crit", Some(SYSTEM_CRITICAL_PRIORITY), None);
        let mut tol: Pod = (*be).clone();
        tol.spec.as_mut().unwrap().tolerations = Some(vec![
            serde_json::from_value(serde_json::json!({
                "key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"
            }))
            .unwrap(),
        ]);
        let mut wildcard: Pod = (*be).clone();
        wildcard.spec.as_mut().unwrap().tolerations = Some(vec![
            serde_json::from_value(serde_json::json!({"operator": "Exists"})).unwrap(),
        ]);
        let mut wrong_effect: Pod = (*be).clone();
        wrong_effect.spec.as_mut().unwrap().tolerations = Some(vec![
            serde_json::from_value(serde_json::json!({
                "key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoExecute"
            }))
            .unwrap(),
        ]);
        let mem = [MemoryPressure];
        let disk = [DiskPressure];
        let both = [MemoryPressure, DiskPressure];
        let cases: Vec<(&str, &[NodeCondition], &Pod, Option<&str>)> = vec![
            ("no pressure", &[], &be, None),
            (
                "memory, BestEffort",
                &mem,
                &be,
                Some("The node had condition: [MemoryPressure]. "),
            ),
            ("memory, Burstable", &mem, &burst, None),
            ("memory, tolerating BestEffort", &mem, &tol, None),
            ("memory, wildcard toleration", &mem, &wildcard, None),
            (
                "memory, NoExecute toleration",
                &mem,
                &wrong_effect,
                Some("The node had condition: [MemoryPressure]. "),
            ),
            (
                "disk, Burstable",
                &disk,
                &burst,
                Some("The node had condition: [DiskPressure]. "),
            ),
            (
                "both, Burstable",
                &both,
                &burst,
                Some("The node had condition: [MemoryPressure DiskPressure]. "),
            ),
            ("disk, critical", &disk, &critical, None),
        ];
        for (name, conds, p, want) in cases {
            assert_eq!(
                admit_under_pressure(conds, p).err().as_deref(),
                want,
                "{name}"
            );
        }
    }
}
