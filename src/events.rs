//! Events: the kubelet's event recorder and, since minikubelet has no API server, the event
//! storage the API server would keep.
//!
//! Mirrors client-go `tools/record` (`recorderImpl.makeEvent`, `EventCorrelator`: aggregation
//! of similar events, de-duplication of identical ones, the per-object spam filter), the
//! reasons of `pkg/kubelet/events/event.go`, and the API server's bounded, expiring event
//! storage (`--event-ttl`). Every event is also logged through `tracing` before correlation,
//! like the kubelet's `StartStructuredLogging`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tokio::sync::broadcast;

// ---- reasons (pkg/kubelet/events/event.go and the places that emit them) ----

/// Container created.
pub const CREATED: &str = "Created";
/// Container started.
pub const STARTED: &str = "Started";
/// A container runs from the node's root filesystem instead of its image (minikubelet's own
/// reason: pods annotated `minikubelet.io/host-filesystem: "true"`).
pub const HOST_FILESYSTEM: &str = "HostFilesystem";
/// Creating or starting a container failed (`FailedToCreateContainer`, `FailedToStartContainer`).
pub const FAILED: &str = "Failed";
/// Container is being killed.
pub const KILLING: &str = "Killing";
/// Container killed to admit a critical pod.
pub const PREEMPTING: &str = "Preempting";
/// Crash-loop (or image pull) backoff.
pub const BACK_OFF: &str = "BackOff";
/// Container did not stop within its grace period.
pub const EXCEEDED_GRACE_PERIOD: &str = "ExceededGracePeriod";
/// Killing the pod failed.
pub const FAILED_KILL_POD: &str = "FailedKillPod";
/// Creating the pod's cgroup failed.
pub const FAILED_CREATE_POD_CONTAINER: &str = "FailedCreatePodContainer";
/// Network plugin not ready.
pub const NETWORK_NOT_READY: &str = "NetworkNotReady";
/// Image being pulled (not used by minikubelet, which pulls no images).
pub const PULLING: &str = "Pulling";
/// Image pulled / present (not used by minikubelet).
pub const PULLED: &str = "Pulled";
/// Node became Ready.
pub const NODE_READY: &str = "NodeReady";
/// Node became NotReady.
pub const NODE_NOT_READY: &str = "NodeNotReady";
/// Node schedulable.
pub const NODE_SCHEDULABLE: &str = "NodeSchedulable";
/// Node unschedulable.
pub const NODE_NOT_SCHEDULABLE: &str = "NodeNotSchedulable";
/// Kubelet starting (`StartingKubelet`).
pub const STARTING: &str = "Starting";
/// Kubelet setup failed.
pub const KUBELET_SETUP_FAILED: &str = "KubeletSetupFailed";
/// Node reboot detected.
pub const REBOOTED: &str = "Rebooted";
/// Container garbage collection failed.
pub const CONTAINER_GC_FAILED: &str = "ContainerGCFailed";
/// Image garbage collection failed.
pub const IMAGE_GC_FAILED: &str = "ImageGCFailed";
/// The image GC could not free enough (`FreeDiskSpaceFailed`).
pub const FREE_DISK_SPACE_FAILED: &str = "FreeDiskSpaceFailed";
/// The image filesystem reports a capacity of 0 (`InvalidDiskCapacity`).
pub const INVALID_DISK_CAPACITY: &str = "InvalidDiskCapacity";
/// Enforcing node allocatable on the kubepods cgroup failed.
pub const FAILED_NODE_ALLOCATABLE_ENFORCEMENT: &str = "FailedNodeAllocatableEnforcement";
/// Node allocatable enforced (`SuccessfulNodeAllocatableEnforcement`).
pub const NODE_ALLOCATABLE_ENFORCED: &str = "NodeAllocatableEnforced";
/// Pod sandbox changed; it will be killed and re-created.
pub const SANDBOX_CHANGED: &str = "SandboxChanged";
/// Creating the pod sandbox failed.
pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
/// minikubelet's own: the pod keeps the node's network (no CNI network on the node).
pub const NODE_NETWORK: &str = "NodeNetwork";
/// Reading the pod sandbox status failed.
pub const FAILED_POD_SANDBOX_STATUS: &str = "FailedPodSandBoxStatus";
/// Probe failed (`ContainerUnhealthy`).
pub const UNHEALTHY: &str = "Unhealthy";
/// Probe succeeded with a warning (`ContainerProbeWarning`).
pub const PROBE_WARNING: &str = "ProbeWarning";
/// Pod sync failed.
pub const FAILED_SYNC: &str = "FailedSync";
/// Manifest validation failed (config sources).
pub const FAILED_VALIDATION: &str = "FailedValidation";
/// An emptyDir volume could not be set up (`events.FailedMountVolume`).
pub const FAILED_MOUNT: &str = "FailedMount";
/// postStart hook failed.
pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
/// preStop hook failed.
pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
/// Pod evicted by the eviction manager (`pkg/kubelet/eviction`).
pub const EVICTED: &str = "Evicted";
/// Eviction threshold met, on the node (`pkg/kubelet/eviction`).
pub const EVICTION_THRESHOLD_MET: &str = "EvictionThresholdMet";
/// Node condition events (`pkg/kubelet/nodestatus/setters.go`).
pub const NODE_HAS_SUFFICIENT_MEMORY: &str = "NodeHasSufficientMemory";
/// Node has memory pressure.
pub const NODE_HAS_INSUFFICIENT_MEMORY: &str = "NodeHasInsufficientMemory";
/// Node has no disk pressure.
pub const NODE_HAS_NO_DISK_PRESSURE: &str = "NodeHasNoDiskPressure";
/// Node has disk pressure.
pub const NODE_HAS_DISK_PRESSURE: &str = "NodeHasDiskPressure";
/// Node has enough PIDs.
pub const NODE_HAS_SUFFICIENT_PID: &str = "NodeHasSufficientPID";
/// Node is short of PIDs.
pub const NODE_HAS_INSUFFICIENT_PID: &str = "NodeHasInsufficientPID";

// ---- bounds and rates ----

/// Events kept in the store. The API server keeps every event until its TTL; a bounded store
/// keeps memory flat under event storms (a crash-looping pod, failing probes) at the price of
/// forgetting the least recently updated events early. 1000 covers hours of a busy node.
const MAX_STORED_EVENTS: usize = 1000;
/// API server `--event-ttl` default: an event disappears one hour after its last update. Long
/// enough to debug a recent failure, short enough that old noise goes away.
const EVENT_TTL: SignedDuration = SignedDuration::from_secs(3600);
/// Bound of each correlator cache (aggregation, dedupe, spam). client-go uses 4096
/// (`maxLruCacheEntries`) for components with far more memory to spend; one node's events fit
/// in 1024, which caps the three caches at about 2 MiB instead of 8 (the spine benchmark saw
/// agent RSS at 100 pods reach 26 MiB with 4096, against a 25 MiB target). Fewer entries only
/// mean an old repeated event may be counted afresh.
const MAX_LRU_CACHE_ENTRIES: usize = 1024;
/// client-go `defaultAggregateMaxEvents`: similar events (differing only in message) before
/// they are combined into one; fewer would hide useful detail, more would flood the list.
const AGGREGATE_MAX_EVENTS: usize = 10;
/// client-go `defaultAggregateIntervalInSeconds`: window in which similar events are counted.
const AGGREGATE_INTERVAL: SignedDuration = SignedDuration::from_secs(600);
/// client-go `defaultSpamBurst`: events a source may emit about one object before throttling.
const SPAM_BURST: f64 = 25.0;
/// client-go `defaultSpamQPS`: refill of the per-object budget, one event every 5 minutes;
/// tames the long tail of always-unhealthy objects, at the cost of hiding their later events
/// (the logs still show them).
const SPAM_QPS: f64 = 1.0 / 300.0;
/// Watch channel depth. A subscriber that falls further behind gets `Lagged` and must re-list;
/// large enough for a `kubectl get events -w` over a slow link.
const WATCH_CHANNEL_CAPACITY: usize = 1024;
/// Prefix client-go puts on combined events (`EventAggregatorByReasonMessageFunc`).
const AGGREGATE_MESSAGE_PREFIX: &str = "(combined from similar events): ";
/// Source component of every event the kubelet records.
const COMPONENT: &str = "kubelet";

/// Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

impl EventType {
    /// The API spelling, `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about (the kubelet's `ObjectReference`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `Pod` or `Node`.
    pub kind: String,
    /// Namespace; empty for a node.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Object UID; the kubelet uses the node name as a node's UID.
    pub uid: String,
    /// Part of the object, e.g. `spec.containers{web}`.
    pub field_path: Option<String>,
}

impl ObjectRef {
    /// A reference to a whole pod.
    pub fn pod(pod: &Pod) -> Self {
        ObjectRef {
            kind: "Pod".into(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            field_path: None,
        }
    }

    /// A reference to one container of a pod: `spec.initContainers{name}` for init containers,
    /// else `spec.containers{name}` (`fieldpath.ExtractContainerFieldPath`).
    pub fn container(pod: &Pod, container: &str) -> Self {
        let is_init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|ics| ics.iter().any(|c| c.name == container));
        let list = if is_init {
            "initContainers"
        } else {
            "containers"
        };
        ObjectRef {
            field_path: Some(format!("spec.{list}{{{container}}}")),
            ..Self::pod(pod)
        }
    }

    /// The kubelet's node reference: kind `Node`, UID = node name, no namespace.
    pub fn node(node_name: &str) -> Self {
        ObjectRef {
            kind: "Node".into(),
            namespace: String::new(),
            name: node_name.into(),
            uid: node_name.into(),
            field_path: None,
        }
    }

    fn to_api(&self) -> ObjectReference {
        ObjectReference {
            api_version: (self.kind == "Pod").then(|| "v1".to_string()),
            kind: Some(self.kind.clone()),
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: (!self.uid.is_empty()).then(|| self.uid.clone()),
            field_path: self.field_path.clone(),
            resource_version: None,
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A change to the event store, for watchers.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// A new event.
    Added(Event),
    /// An existing event was seen again (count, lastTimestamp, maybe message changed).
    Modified(Event),
    /// An event expired or was dropped from the bounded store.
    Deleted(Event),
}

/// Source of the current time; tests use a fake one.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Records events, correlates them like client-go and stores them like the API server.
/// Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    node_name: String,
    clock: Clock,
    capacity: usize,
    state: Mutex<State>,
    watch: broadcast::Sender<WatchEvent>,
}

#[derive(Default)]
struct State {
    /// Least recently written first.
    store: VecDeque<Event>,
    aggregator: Lru<AggregateRecord>,
    logger: Lru<EventLog>,
    spam: Lru<TokenBucket>,
    last_name_nanos: i128,
    resource_version: u64,
}

struct AggregateRecord {
    local_keys: BTreeSet<String>,
    last_timestamp: Timestamp,
}

struct EventLog {
    count: i32,
    first_timestamp: Time,
    name: String,
}

/// client-go's token bucket (`flowcontrol.NewTokenBucketRateLimiter`), one per source+object.
struct TokenBucket {
    tokens: f64,
    last: Timestamp,
}

impl TokenBucket {
    fn try_accept(&mut self, now: Timestamp) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A small LRU map (client-go uses groupcache's `lru.Cache`); eviction scans, which is fine
/// for a few thousand entries and rare evictions.
struct Lru<V> {
    map: HashMap<String, (V, u64)>,
    tick: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
        }
    }
}

impl<V> Lru<V> {
    fn get(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|e| {
            e.1 = tick;
            &mut e.0
        })
    }

    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if !self.map.contains_key(key) {
            self.evict_if_full();
        }
        let entry = self
            .map
            .entry(key.to_string())
            .or_insert_with(|| (make(), tick));
        entry.1 = tick;
        &mut entry.0
    }

    fn insert(&mut self, key: &str, value: V) {
        self.tick += 1;
        if !self.map.contains_key(key) {
            self.evict_if_full();
        }
        self.map.insert(key.to_string(), (value, self.tick));
    }

    fn evict_if_full(&mut self) {
        if self.map.len() < MAX_LRU_CACHE_ENTRIES {
            return;
        }
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.map.remove(&k);
        }
    }
}

impl EventRecorder {
    /// A recorder for the kubelet on `node_name`, using the system clock.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self::with_clock(node_name, Arc::new(Timestamp::now))
    }

    /// A recorder with an explicit clock.
    pub fn with_clock(node_name: impl Into<String>, clock: Clock) -> Self {
        Self::with_capacity(node_name, clock, MAX_STORED_EVENTS)
    }

    fn with_capacity(node_name: impl Into<String>, clock: Clock, capacity: usize) -> Self {
        let (watch, _) = broadcast::channel(WATCH_CHANNEL_CAPACITY);
        EventRecorder {
            inner: Arc::new(Inner {
                node_name: node_name.into(),
                clock,
                capacity,
                state: Mutex::new(State::default()),
                watch,
            }),
        }
    }

    /// Record an event about `object` (client-go `Event`): logged, then aggregated,
    /// de-duplicated, spam-filtered and stored.
    pub fn event(&self, object: ObjectRef, type_: EventType, reason: &str, message: String) {
        self.annotated_event(object, type_, reason, message, BTreeMap::new());
    }

    /// Record an event with annotations (client-go `AnnotatedEventf`): they become the Event's
    /// `metadata.annotations`, as the eviction manager's `offending_containers`,
    /// `offending_containers_usage` and `starved_resource` do on an `Evicted` event.
    pub fn annotated_event(
        &self,
        object: ObjectRef,
        type_: EventType,
        reason: &str,
        message: String,
        annotations: BTreeMap<String, String>,
    ) {
        let field_path = object.field_path.as_deref().unwrap_or("");
        let annotations_text = annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        match type_ {
            EventType::Normal => tracing::info!(
                object = %object, kind = %object.kind, field_path, reason, message = %message,
                annotations = %annotations_text, "event"
            ),
            EventType::Warning => tracing::warn!(
                object = %object, kind = %object.kind, field_path, reason, message = %message,
                annotations = %annotations_text, "event"
            ),
        }
        let now = (self.inner.clock)();
        let mut state = self.lock();
        let mut event = self.make_event(&mut state, &object, type_, reason, message, now);
        if !annotations.is_empty() {
            event.metadata.annotations = Some(annotations);
        }
        let (event, key) = aggregate(&mut state, event, now);
        let event = observe(&mut state, event, &key);
        if !spam_filter_accepts(&mut state, &event, now) {
            tracing::debug!(object = %object, reason, "event throttled by the spam filter");
            return;
        }
        self.write(&mut state, event, now);
    }

    /// All stored events, least recently updated first, as the API would list them.
    pub fn list(&self) -> Vec<Event> {
        let now = (self.inner.clock)();
        let mut state = self.lock();
        self.expire(&mut state, now);
        state.store.iter().cloned().collect()
    }

    /// The stored events whose involved object has this UID.
    pub fn for_object(&self, uid: &str) -> Vec<Event> {
        self.list()
            .into_iter()
            .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
            .collect()
    }

    /// Changes to the store from now on (for `kubectl get events -w`).
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.watch.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent store (every write is a single
        // push or field update), so a poisoned lock is safe to keep using.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// client-go `recorderImpl.makeEvent`.
    fn make_event(
        &self,
        state: &mut State,
        object: &ObjectRef,
        type_: EventType,
        reason: &str,
        message: String,
        now: Timestamp,
    ) -> Event {
        // Name is `<object>.<hex unix nanos>`; nanos are made strictly increasing so two
        // events in the same nanosecond still get distinct names.
        let nanos = now.as_nanosecond().max(state.last_name_nanos + 1);
        state.last_name_nanos = nanos;
        let namespace = if object.namespace.is_empty() {
            "default".to_string()
        } else {
            object.namespace.clone()
        };
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", object.name, nanos)),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object.to_api(),
            reason: Some(reason.to_string()),
            message: Some(message),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(type_.as_str().to_string()),
            source: Some(EventSource {
                component: Some(COMPONENT.to_string()),
                host: Some(self.inner.node_name.clone()),
            }),
            reporting_component: Some(COMPONENT.to_string()),
            reporting_instance: Some(self.inner.node_name.clone()),
            ..Default::default()
        }
    }

    /// Store the event as the API server would on create or patch.
    fn write(&self, state: &mut State, mut event: Event, now: Timestamp) {
        self.expire(state, now);
        state.resource_version += 1;
        let rv = state.resource_version.to_string();
        let name = event.metadata.name.clone();
        let existing = state.store.iter().position(|e| e.metadata.name == name);
        let change = match existing.and_then(|i| state.store.remove(i)) {
            Some(mut old) => {
                old.count = event.count;
                old.message = event.message.take();
                old.last_timestamp = event.last_timestamp.take();
                old.metadata.resource_version = Some(rv);
                state.store.push_back(old.clone());
                WatchEvent::Modified(old)
            }
            None => {
                event.metadata.uid = Some(new_uid());
                event.metadata.creation_timestamp = Some(Time(now));
                event.metadata.resource_version = Some(rv);
                state.store.push_back(event.clone());
                WatchEvent::Added(event)
            }
        };
        // No receivers is fine: nobody is watching.
        let _ = self.inner.watch.send(change);
        while state.store.len() > self.inner.capacity {
            if let Some(dropped) = state.store.pop_front() {
                let _ = self.inner.watch.send(WatchEvent::Deleted(dropped));
            }
        }
    }

    /// Drop events whose last update is older than the TTL.
    fn expire(&self, state: &mut State, now: Timestamp) {
        while let Some(front) = state.store.front() {
            let last = front.last_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
            if now.duration_since(last) <= EVENT_TTL {
                break;
            }
            if let Some(dropped) = state.store.pop_front() {
                let _ = self.inner.watch.send(WatchEvent::Deleted(dropped));
            }
        }
    }
}

/// client-go `getEventKey`: identical events share this key.
fn event_key(e: &Event) -> String {
    let o = &e.involved_object;
    let src = e.source.as_ref();
    [
        src.and_then(|s| s.component.as_deref()),
        src.and_then(|s| s.host.as_deref()),
        o.kind.as_deref(),
        o.namespace.as_deref(),
        o.name.as_deref(),
        o.field_path.as_deref(),
        o.uid.as_deref(),
        o.api_version.as_deref(),
        e.type_.as_deref(),
        e.reason.as_deref(),
        e.message.as_deref(),
    ]
    .map(|s| s.unwrap_or(""))
    .join("\u{0}")
}

/// client-go `getSpamKey`: source + object (no field path, type, reason or message).
fn spam_key(e: &Event) -> String {
    let o = &e.involved_object;
    let src = e.source.as_ref();
    [
        src.and_then(|s| s.component.as_deref()),
        src.and_then(|s| s.host.as_deref()),
        o.kind.as_deref(),
        o.namespace.as_deref(),
        o.name.as_deref(),
        o.uid.as_deref(),
        o.api_version.as_deref(),
    ]
    .map(|s| s.unwrap_or(""))
    .join("\u{0}")
}

/// client-go `EventAggregatorByReasonFunc`: (aggregate key, local key = message).
fn aggregate_keys(e: &Event) -> (String, String) {
    let o = &e.involved_object;
    let src = e.source.as_ref();
    let key = [
        src.and_then(|s| s.component.as_deref()),
        src.and_then(|s| s.host.as_deref()),
        o.kind.as_deref(),
        o.namespace.as_deref(),
        o.name.as_deref(),
        o.uid.as_deref(),
        o.api_version.as_deref(),
        e.type_.as_deref(),
        e.reason.as_deref(),
        e.reporting_component.as_deref(),
        e.reporting_instance.as_deref(),
    ]
    .map(|s| s.unwrap_or(""))
    .join("\u{0}");
    (key, e.message.clone().unwrap_or_default())
}

/// client-go `EventAggregator.EventAggregate`: after 10 distinct messages for the same
/// object+reason within 10 minutes, events are replaced by one combined event.
fn aggregate(state: &mut State, event: Event, now: Timestamp) -> (Event, String) {
    let full_key = event_key(&event);
    let (aggregate_key, local_key) = aggregate_keys(&event);
    let record = state
        .aggregator
        .get_or_insert_with(&aggregate_key, || AggregateRecord {
            local_keys: BTreeSet::new(),
            last_timestamp: now,
        });
    if now.duration_since(record.last_timestamp) > AGGREGATE_INTERVAL {
        record.local_keys.clear();
    }
    record.local_keys.insert(local_key);
    record.last_timestamp = now;
    if record.local_keys.len() < AGGREGATE_MAX_EVENTS {
        return (event, full_key);
    }
    // Do not grow the local key set any larger than the max.
    record.local_keys.pop_first();
    let message = format!(
        "{AGGREGATE_MESSAGE_PREFIX}{}",
        event.message.as_deref().unwrap_or("")
    );
    let combined = Event {
        message: Some(message),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        ..event
    };
    (combined, aggregate_key)
}

/// client-go `eventLogger.eventObserve`: a repeat of a known key keeps the first occurrence's
/// name and firstTimestamp and bumps the count.
fn observe(state: &mut State, mut event: Event, key: &str) -> Event {
    if let Some(last) = state.logger.get(key) {
        event.metadata.name = Some(last.name.clone());
        event.first_timestamp = Some(last.first_timestamp.clone());
        event.count = Some(last.count.saturating_add(1));
    }
    let log = EventLog {
        count: event.count.unwrap_or(1),
        first_timestamp: event
            .first_timestamp
            .clone()
            .unwrap_or(Time(Timestamp::UNIX_EPOCH)),
        name: event.metadata.name.clone().unwrap_or_default(),
    };
    state.logger.insert(key, log);
    event
}

/// client-go `EventSourceObjectSpamFilter.Filter`, inverted: true when the event may pass.
fn spam_filter_accepts(state: &mut State, event: &Event, now: Timestamp) -> bool {
    state
        .spam
        .get_or_insert_with(&spam_key(event), || TokenBucket {
            tokens: SPAM_BURST,
            last: now,
        })
        .try_accept(now)
}

/// A random RFC 4122 version 4 UID, as the API server assigns.
fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::sync::atomic::{AtomicI64, Ordering};

    struct FakeClock(Arc<AtomicI64>);
    impl FakeClock {
        fn new() -> (Self, Clock) {
            let secs = Arc::new(AtomicI64::new(1_700_000_000));
            let s2 = secs.clone();
            let clock: Clock =
                Arc::new(move || Timestamp::from_second(s2.load(Ordering::SeqCst)).unwrap());
            (FakeClock(secs), clock)
        }
        fn advance(&self, s: i64) {
            self.0.fetch_add(s, Ordering::SeqCst);
        }
        fn now(&self) -> Timestamp {
            Timestamp::from_second(self.0.load(Ordering::SeqCst)).unwrap()
        }
    }

    fn test_pod(uid: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                init_containers: Some(vec![Container {
                    name: "setup".into(),
                    ..Default::default()
                }]),
                containers: vec![Container {
                    name: "app".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn recorder() -> (FakeClock, EventRecorder) {
        let (fake, clock) = FakeClock::new();
        (fake, EventRecorder::with_clock("node1", clock))
    }

    #[test]
    fn object_refs() {
        let p = test_pod("u1");
        let cases = [
            (ObjectRef::pod(&p), "Pod", "default", "web", "u1", None),
            (
                ObjectRef::container(&p, "app"),
                "Pod",
                "default",
                "web",
                "u1",
                Some("spec.containers{app}"),
            ),
            (
                ObjectRef::container(&p, "setup"),
                "Pod",
                "default",
                "web",
                "u1",
                Some("spec.initContainers{setup}"),
            ),
            (ObjectRef::node("node1"), "Node", "", "node1", "node1", None),
        ];
        for (r, kind, ns, name, uid, fp) in cases {
            assert_eq!(
                (
                    r.kind.as_str(),
                    r.namespace.as_str(),
                    r.name.as_str(),
                    r.uid.as_str(),
                    r.field_path.as_deref()
                ),
                (kind, ns, name, uid, fp)
            );
        }
        assert_eq!(ObjectRef::pod(&p).to_string(), "default/web");
        assert_eq!(ObjectRef::node("n").to_string(), "n");
    }

    #[test]
    fn event_as_the_api_returns_it() {
        let (fake, rec) = recorder();
        let p = test_pod("u1");
        rec.event(
            ObjectRef::container(&p, "app"),
            EventType::Normal,
            STARTED,
            "Started container app".into(),
        );
        rec.event(
            ObjectRef::node("node1"),
            EventType::Warning,
            REBOOTED,
            "Node node1 has been rebooted".into(),
        );
        let evs = rec.list();
        assert_eq!(evs.len(), 2);

        let e = &evs[0];
        let name = e.metadata.name.as_deref().unwrap();
        let nanos = fake.now().as_nanosecond();
        assert_eq!(name, format!("web.{nanos:x}"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.uid.is_some());
        assert_eq!(e.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(
            e.involved_object,
            ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some("web".into()),
                uid: Some("u1".into()),
                field_path: Some("spec.containers{app}".into()),
                resource_version: None,
            }
        );
        assert_eq!(e.reason.as_deref(), Some(STARTED));
        assert_eq!(e.message.as_deref(), Some("Started container app"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.first_timestamp, Some(Time(fake.now())));
        assert_eq!(e.last_timestamp, Some(Time(fake.now())));
        assert_eq!(
            e.source,
            Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node1".into())
            })
        );
        assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
        assert_eq!(e.reporting_instance.as_deref(), Some("node1"));
        assert_eq!(e.event_time, None);

        let n = &evs[1];
        assert_ne!(
            n.metadata.name, e.metadata.name,
            "names are unique within one nanosecond"
        );
        assert_eq!(
            n.metadata.namespace.as_deref(),
            Some("default"),
            "node events go to default"
        );
        assert_eq!(n.involved_object.kind.as_deref(), Some("Node"));
        assert_eq!(n.involved_object.namespace, None);
        assert_eq!(n.involved_object.api_version, None);
        assert_eq!(n.type_.as_deref(), Some("Warning"));

        // The JSON form uses the API's field names.
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["involvedObject"]["fieldPath"], "spec.containers{app}");
        assert_eq!(json["reportingComponent"], "kubelet");
        assert_eq!(json["count"], 1);
    }

    #[test]
    fn annotated_event_carries_its_annotations() {
        let (_fake, rec) = recorder();
        let p = test_pod("u1");
        let annotations: BTreeMap<String, String> = [
            ("offending_containers", "app"),
            ("offending_containers_usage", "280Mi"),
            ("starved_resource", "memory"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        rec.annotated_event(
            ObjectRef::pod(&p),
            EventType::Warning,
            EVICTED,
            "The node was low on resource: memory. ".into(),
            annotations.clone(),
        );
        rec.event(
            ObjectRef::pod(&p),
            EventType::Normal,
            KILLING,
            "Stopping container app".into(),
        );
        let events = rec.list();
        let v = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(v["reason"], "Evicted");
        assert_eq!(
            v["metadata"]["annotations"],
            serde_json::json!({
                "offending_containers": "app",
                "offending_containers_usage": "280Mi",
                "starved_resource": "memory"
            })
        );
        // An event without annotations has none (not an empty map).
        let v = serde_json::to_value(&events[1]).unwrap();
        assert!(v["metadata"].get("annotations").is_none(), "{v}");
    }

    #[test]
    fn identical_events_are_deduplicated() {
        let (fake, rec) = recorder();
        let p = test_pod("u1");
        let t0 = fake.now();
        let obj = ObjectRef::container(&p, "app");
        let msg = "Back-off restarting failed container app in pod web_default(u1)";
        rec.event(obj.clone(), EventType::Warning, BACK_OFF, msg.into());
        fake.advance(10);
        rec.event(obj.clone(), EventType::Warning, BACK_OFF, msg.into());
        fake.advance(20);
        rec.event(obj.clone(), EventType::Warning, BACK_OFF, msg.into());
        let evs = rec.list();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].count, Some(3));
        assert_eq!(evs[0].first_timestamp, Some(Time(t0)));
        assert_eq!(evs[0].last_timestamp, Some(Time(fake.now())));
        assert_eq!(
            evs[0].metadata.name.as_deref().unwrap(),
            format!("web.{:x}", t0.as_nanosecond())
        );

        // Anything that differs makes a new event: type, reason, message, field path.
        let variants = [
            (obj.clone(), EventType::Normal, BACK_OFF, msg),
            (obj.clone(), EventType::Warning, FAILED, msg),
            (obj.clone(), EventType::Warning, BACK_OFF, "other"),
            (
                ObjectRef::container(&p, "setup"),
                EventType::Warning,
                BACK_OFF,
                msg,
            ),
        ];
        for (o, t, r, m) in variants {
            rec.event(o, t, r, m.into());
        }
        assert_eq!(rec.list().len(), 5);
    }

    #[test]
    fn similar_events_are_aggregated() {
        let (fake, rec) = recorder();
        let p = test_pod("u1");
        let obj = ObjectRef::container(&p, "app");
        for i in 1..=9 {
            rec.event(
                obj.clone(),
                EventType::Warning,
                UNHEALTHY,
                format!("Readiness probe failed: {i}"),
            );
        }
        assert_eq!(rec.list().len(), 9);
        // The 10th distinct message within 10 minutes becomes a combined event.
        rec.event(
            obj.clone(),
            EventType::Warning,
            UNHEALTHY,
            "Readiness probe failed: 10".into(),
        );
        let evs = rec.list();
        assert_eq!(evs.len(), 10);
        let combined = evs.last().unwrap();
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): Readiness probe failed: 10")
        );
        assert_eq!(combined.count, Some(1));
        // Further new messages update the combined event.
        fake.advance(5);
        rec.event(
            obj.clone(),
            EventType::Warning,
            UNHEALTHY,
            "Readiness probe failed: 11".into(),
        );
        let evs = rec.list();
        assert_eq!(evs.len(), 10);
        let combined2 = evs.last().unwrap();
        assert_eq!(combined2.metadata.name, combined.metadata.name);
        assert_eq!(combined2.count, Some(2));
        assert_eq!(
            combined2.message.as_deref(),
            Some("(combined from similar events): Readiness probe failed: 11")
        );
        assert_eq!(combined2.last_timestamp, Some(Time(fake.now())));

        // After more than 10 quiet minutes the window restarts.
        fake.advance(601);
        rec.event(
            obj,
            EventType::Warning,
            UNHEALTHY,
            "Readiness probe failed: fresh".into(),
        );
        let evs = rec.list();
        assert_eq!(
            evs.last().unwrap().message.as_deref(),
            Some("Readiness probe failed: fresh")
        );
    }

    #[test]
    fn spam_filter_throttles_per_object() {
        let (fake, rec) = recorder();
        let p = test_pod("u1");
        let other = test_pod("u2");
        // 25 distinct reasons so neither dedupe nor aggregation applies.
        for i in 0..25 {
            rec.event(
                ObjectRef::pod(&p),
                EventType::Normal,
                &format!("R{i}"),
                "m".into(),
            );
        }
        assert_eq!(rec.for_object("u1").len(), 25);
        rec.event(ObjectRef::pod(&p), EventType::Normal, "R25", "m".into());
        assert_eq!(
            rec.for_object("u1").len(),
            25,
            "26th event about the object is dropped"
        );
        // Other objects have their own budget.
        rec.event(ObjectRef::pod(&other), EventType::Normal, "R0", "m".into());
        assert_eq!(rec.for_object("u2").len(), 1);
        // One token comes back after 5 minutes.
        fake.advance(300);
        rec.event(ObjectRef::pod(&p), EventType::Normal, "R26", "m".into());
        rec.event(ObjectRef::pod(&p), EventType::Normal, "R27", "m".into());
        let reasons: Vec<_> = rec
            .for_object("u1")
            .iter()
            .filter_map(|e| e.reason.clone())
            .collect();
        assert!(reasons.contains(&"R26".to_string()));
        assert!(!reasons.contains(&"R27".to_string()));
    }

    #[test]
    fn throttled_repeats_are_still_counted() {
        // client-go counts before it filters, so the next accepted write carries the total.
        let (fake, rec) = recorder();
        let p = test_pod("u1");
        let obj = ObjectRef::container(&p, "app");
        for _ in 0..40 {
            rec.event(obj.clone(), EventType::Warning, BACK_OFF, "Back-off".into());
        }
        assert_eq!(rec.list()[0].count, Some(25));
        fake.advance(300);
        rec.event(obj, EventType::Warning, BACK_OFF, "Back-off".into());
        let evs = rec.list();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].count, Some(41));
    }

    #[test]
    fn store_is_bounded_and_expires() {
        let (fake, clock) = FakeClock::new();
        let rec = EventRecorder::with_capacity("node1", clock, 3);
        let mut rx = rec.subscribe();
        for i in 0..4 {
            rec.event(
                ObjectRef::node(&format!("n{i}")),
                EventType::Normal,
                STARTING,
                "Starting kubelet.".into(),
            );
            fake.advance(1);
        }
        let names: Vec<_> = rec
            .list()
            .iter()
            .map(|e| e.involved_object.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["n1", "n2", "n3"], "oldest dropped");
        let mut deleted = 0;
        while let Ok(w) = rx.try_recv() {
            if let WatchEvent::Deleted(e) = w {
                assert_eq!(e.involved_object.name.as_deref(), Some("n0"));
                deleted += 1;
            }
        }
        assert_eq!(deleted, 1);

        // An update moves an event to the back, so it is not the next to go.
        rec.event(
            ObjectRef::node("n1"),
            EventType::Normal,
            STARTING,
            "Starting kubelet.".into(),
        );
        let names: Vec<_> = rec
            .list()
            .iter()
            .map(|e| e.involved_object.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["n2", "n3", "n1"]);

        // One hour after their last update events are gone.
        fake.advance(3600);
        assert_eq!(
            rec.list().len(),
            1,
            "n1 was updated 4s after n2/n3, still within the hour"
        );
        fake.advance(5);
        assert!(rec.list().is_empty());
    }

    #[test]
    fn for_object_filters_by_uid() {
        let (_fake, rec) = recorder();
        let (a, b) = (test_pod("ua"), test_pod("ub"));
        rec.event(
            ObjectRef::pod(&a),
            EventType::Normal,
            KILLING,
            "Stopping container app".into(),
        );
        rec.event(
            ObjectRef::pod(&b),
            EventType::Normal,
            KILLING,
            "Stopping container app".into(),
        );
        rec.event(
            ObjectRef::container(&a, "app"),
            EventType::Normal,
            CREATED,
            "Created container: app".into(),
        );
        let got: Vec<_> = rec
            .for_object("ua")
            .iter()
            .map(|e| e.reason.clone().unwrap())
            .collect();
        assert_eq!(got, [KILLING, CREATED]);
        assert!(rec.for_object("nope").is_empty());
    }

    #[test]
    fn subscribers_see_added_then_modified() {
        let (_fake, rec) = recorder();
        let mut rx = rec.subscribe();
        let clone = rec.clone();
        let p = test_pod("u1");
        clone.event(
            ObjectRef::pod(&p),
            EventType::Warning,
            FAILED_SYNC,
            "error".into(),
        );
        clone.event(
            ObjectRef::pod(&p),
            EventType::Warning,
            FAILED_SYNC,
            "error".into(),
        );
        match rx.try_recv().unwrap() {
            WatchEvent::Added(e) => assert_eq!(e.count, Some(1)),
            other => panic!("want Added, got {other:?}"),
        }
        match rx.try_recv().unwrap() {
            WatchEvent::Modified(e) => {
                assert_eq!(e.count, Some(2));
                assert_eq!(e.metadata.resource_version.as_deref(), Some("2"));
            }
            other => panic!("want Modified, got {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn recorder_is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<EventRecorder>();
        let (_fake, rec) = recorder();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        rec.event(
                            ObjectRef::node(&format!("t{t}")),
                            EventType::Normal,
                            &format!("R{i}"),
                            "m".into(),
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(rec.list().len(), 40);
        let mut names: Vec<_> = rec
            .list()
            .into_iter()
            .map(|e| e.metadata.name.unwrap())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 40);
    }

    #[test]
    fn uid_format() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
