//! The agent's own metrics on `/metrics`, named as the kubelet names them.
//!
//! Mirrors `pkg/kubelet/metrics/metrics.go` (and the HTTP metrics of
//! `pkg/kubelet/server/metrics`): like the kubelet's package-level metric variables, the
//! metrics live in one process-wide registry ([`kubelet()`]), so the code point that feeds one
//! needs a one-line call and no handle threaded through it. Only metrics fed by real code points
//! are exposed:
//!
//! | metric | fed by |
//! |---|---|
//! | `kubelet_node_name{node}` | start-up |
//! | `kubelet_running_pods`, `kubelet_running_containers{container_state}` | read from pod status at scrape time (the kubelet sets them at each PLEG relist) |
//! | `kubelet_started_pods_total` | the pod worker, once the pod's cgroup (its "sandbox") exists |
//! | `kubelet_started_containers_total{container_type}` | the pod worker, after each container start |
//! | `kubelet_restarted_pods_total{static}` | the pod manager, when a UID that had terminated is added again |
//! | `kubelet_pod_start_duration_seconds` | the pod worker, first seen → every container running |
//! | `kubelet_pod_worker_duration_seconds{operation_type}` | the pod worker, each sync |
//! | `kubelet_evictions{eviction_signal}` | the eviction manager, each pod evicted |
//! | `kubelet_http_requests_total`, `kubelet_http_requests_duration_seconds` | the server's middleware |
//! | `process_*` | `/proc/self` at scrape time (what Go's process collector reports) |
//!
//! The other endpoints have registries or writers of their own, as in the kubelet:
//!
//! | endpoint | module | mirrors |
//! |---|---|---|
//! | `/metrics/resource` | [`resource`]: the summary as series | `pkg/kubelet/metrics/collectors/resource_metrics.go` |
//! | `/metrics/probes` | [`probes`]: `prober_probe_total`, `prober_probe_duration_seconds`, fed by each probe run | `pkg/kubelet/prober/prober_manager.go`, `worker.go` |
//! | (all) | [`text`]: the exposition format where the crate cannot write it | client_golang's text encoder |

pub mod probes;
pub mod resource;
pub mod text;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `kubelet_pod_start_duration_seconds` buckets (`podStartupDurationBuckets`).
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];
/// Prometheus' default buckets (`metrics.DefBuckets`).
const DEF_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `{node}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    node: String,
}

/// `{container_state}`: `created`, `running`, `exited`, `unknown` (kubecontainer's states).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerStateLabel {
    container_state: String,
}

/// `{container_type}`: `container`, `init_container`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerTypeLabel {
    container_type: String,
}

/// `{static}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StaticLabel {
    r#static: String,
}

/// `{operation_type}`: `create` (a pod's first sync) or `sync`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    operation_type: String,
}

/// The labels of the kubelet server's HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    method: String,
    path: String,
    server_type: String,
    long_running: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the agent keeps.
pub struct KubeletMetrics {
    registry: Registry,
    node_name: Family<NodeLabel, Gauge>,
    running_pods: Gauge,
    running_containers: Family<ContainerStateLabel, Gauge>,
    started_pods: Counter,
    started_containers: Family<ContainerTypeLabel, Counter>,
    restarted_pods: Family<StaticLabel, Counter>,
    pod_start_duration: Histogram,
    pod_worker_duration: HistogramFamily<OperationLabel>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    /// `kubelet_evictions` has no `_total` in the kubelet, which `prometheus-client` always
    /// appends to counters: kept here and written by [`text`].
    evictions: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// The process-wide metrics (the kubelet's `legacyregistry`).
pub fn kubelet() -> &'static KubeletMetrics {
    static METRICS: LazyLock<KubeletMetrics> = LazyLock::new(KubeletMetrics::new);
    &METRICS
}

impl KubeletMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let m = KubeletMetrics {
            node_name: Family::default(),
            running_pods: Gauge::default(),
            running_containers: Family::default(),
            started_pods: Counter::default(),
            started_containers: Family::default(),
            restarted_pods: Family::default(),
            pod_start_duration: Histogram::new(POD_START_BUCKETS),
            pod_worker_duration: Family::new_with_constructor(|| Histogram::new(DEF_BUCKETS)),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(|| Histogram::new(DEF_BUCKETS)),
            evictions: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "kubelet_node_name",
            "[ALPHA] The node's name. The count is always 1",
            m.node_name.clone(),
        );
        registry.register(
            "kubelet_running_pods",
            "[ALPHA] Number of pods that have a running pod sandbox",
            m.running_pods.clone(),
        );
        registry.register(
            "kubelet_running_containers",
            "[ALPHA] Number of containers currently running",
            m.running_containers.clone(),
        );
        registry.register(
            "kubelet_started_pods",
            "[ALPHA] Cumulative number of pods started",
            m.started_pods.clone(),
        );
        registry.register(
            "kubelet_started_containers",
            "[ALPHA] Cumulative number of containers started",
            m.started_containers.clone(),
        );
        registry.register(
            "kubelet_restarted_pods",
            "[ALPHA] Number of pods that have been restarted because they were deleted and recreated with the same UID while the kubelet was watching them (common for static pods, extremely uncommon for API pods)",
            m.restarted_pods.clone(),
        );
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            m.pod_start_duration.clone(),
        );
        registry.register(
            "kubelet_pod_worker_duration_seconds",
            "[ALPHA] Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
            m.pod_worker_duration.clone(),
        );
        registry.register(
            "kubelet_http_requests",
            "[ALPHA] Number of the http requests received since the server started",
            m.http_requests.clone(),
        );
        registry.register(
            "kubelet_http_requests_duration_seconds",
            "[ALPHA] Duration in seconds to serve http requests",
            m.http_duration.clone(),
        );
        KubeletMetrics { registry, ..m }
    }

    /// `kubelet_node_name{node} 1`.
    pub fn set_node_name(&self, node: &str) {
        self.node_name
            .get_or_create(&NodeLabel {
                node: node.to_string(),
            })
            .set(1);
    }

    /// A pod's sandbox (here: its cgroup) was created.
    pub fn pod_started(&self) {
        self.started_pods.inc();
    }

    /// A container was started; `init` for init containers (sidecars included, as the kubelet
    /// counts them by where they are declared).
    pub fn container_started(&self, init: bool) {
        let t = if init { "init_container" } else { "container" };
        self.started_containers
            .get_or_create(&ContainerTypeLabel {
                container_type: t.to_string(),
            })
            .inc();
    }

    /// A pod UID that had terminated was added again (a static pod's manifest came back).
    pub fn pod_restarted(&self, is_static: bool) {
        self.restarted_pods
            .get_or_create(&StaticLabel {
                r#static: is_static.to_string(),
            })
            .inc();
    }

    /// From the kubelet first seeing the pod to all its containers running.
    pub fn observe_pod_start(&self, d: Duration) {
        self.pod_start_duration.observe(d.as_secs_f64());
    }

    /// One sync of a pod worker; `first` for the pod's first sync (`create`).
    pub fn observe_pod_sync(&self, first: bool, d: Duration) {
        let op = if first { "create" } else { "sync" };
        self.pod_worker_duration
            .get_or_create(&OperationLabel {
                operation_type: op.to_string(),
            })
            .observe(d.as_secs_f64());
    }

    /// A pod was evicted for `signal` (e.g. `memory.available`).
    pub fn evicted(&self, signal: &str) {
        let mut e = self.evictions.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(signal.to_string()).or_default() += 1;
    }

    /// One request served by the kubelet server.
    pub fn http_request(&self, method: &str, path: &str, long_running: bool, d: Duration) {
        let l = HttpLabels {
            method: method.to_string(),
            path: path.to_string(),
            server_type: "readwrite".to_string(),
            long_running: long_running.to_string(),
        };
        self.http_requests.get_or_create(&l).inc();
        self.http_duration
            .get_or_create(&l)
            .observe(d.as_secs_f64());
    }

    /// Pods with a running container, and containers by state, read from pod status now.
    fn set_running(&self, pods: &[std::sync::Arc<k8s_openapi::api::core::v1::Pod>]) {
        let mut running_pods = 0;
        let mut by_state: std::collections::BTreeMap<&str, i64> =
            ["created", "running", "exited", "unknown"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for p in pods {
            let Some(st) = p.status.as_ref() else {
                continue;
            };
            let mut any_running = false;
            for c in [&st.init_container_statuses, &st.container_statuses]
                .into_iter()
                .flatten()
                .flatten()
            {
                let state = match c.state.as_ref() {
                    Some(s) if s.running.is_some() => "running",
                    Some(s) if s.terminated.is_some() => "exited",
                    // Waiting with a previous instance: that instance has exited; without one
                    // nothing was created yet, so nothing is counted.
                    Some(s) if s.waiting.is_some() => {
                        if c.last_state
                            .as_ref()
                            .is_some_and(|l| l.terminated.is_some())
                        {
                            "exited"
                        } else {
                            continue;
                        }
                    }
                    _ => "unknown",
                };
                any_running |= state == "running";
                *by_state.entry(state).or_default() += 1;
            }
            running_pods += i64::from(any_running);
        }
        self.running_pods.set(running_pods);
        for (state, n) in by_state {
            self.running_containers
                .get_or_create(&ContainerStateLabel {
                    container_state: state.to_string(),
                })
                .set(n);
        }
    }

    /// The `/metrics` body: the registry, `kubelet_evictions`, and `process_*`.
    pub fn render(
        &self,
        pods: &[std::sync::Arc<k8s_openapi::api::core::v1::Pod>],
        proc_root: &std::path::Path,
    ) -> String {
        self.set_running(pods);
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encode the kubelet metrics");
        }
        text::header(
            &mut out,
            "kubelet_evictions",
            "[ALPHA] Cumulative number of pod evictions by eviction signal",
            "counter",
        );
        for (signal, n) in self
            .evictions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            text::sample(
                &mut out,
                "kubelet_evictions",
                &[("eviction_signal", signal)],
                *n as f64,
                None,
            );
        }
        process_metrics(&mut out, proc_root);
        out
    }
}

/// What the Go client's process collector reports, from `/proc/self`.
fn process_metrics(out: &mut String, proc_root: &std::path::Path) {
    let Ok(me) = procfs::process::Process::new_with_root(proc_root.join("self")) else {
        return;
    };
    let Ok(stat) = me.stat() else { return };
    let hz = crate::stats::cpu::clock_ticks() as f64;
    let mut family = |name: &str, help: &str, kind: &str, v: f64| {
        text::header(out, name, help, kind);
        text::sample(out, name, &[], v, None);
    };
    family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        (stat.utime + stat.stime) as f64 / hz,
    );
    family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        (stat.rss * procfs::page_size()) as f64,
    );
    family(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        "gauge",
        stat.vsize as f64,
    );
    if let Ok(fds) = me.fd_count() {
        family(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds as f64,
        );
    }
    if let Some(start) = start_time(proc_root, &stat) {
        family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            start,
        );
    }
}

/// When the agent started, in seconds since the epoch: the boot time (`btime` of `/proc/stat`)
/// plus the process's start in clock ticks.
fn start_time(proc_root: &std::path::Path, stat: &procfs::process::Stat) -> Option<f64> {
    let btime = std::fs::read_to_string(proc_root.join("stat"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })?;
    Some(btime + stat.starttime as f64 / crate::stats::cpu::clock_ticks() as f64)
}

/// `process_start_time_seconds` of the agent, read from `<proc_root>/self/stat`.
fn process_start_time(proc_root: &std::path::Path) -> Option<f64> {
    let me = procfs::process::Process::new_with_root(proc_root.join("self")).ok()?;
    start_time(proc_root, &me.stat().ok()?)
}

/// The `path` label of the HTTP metrics: the handler's root path as the kubelet buckets it
/// (`/pods`, `/stats`, `/metrics/resource`, `/containerLogs`, ...), `other` for the rest.
pub fn http_path_bucket(path: &str) -> &'static str {
    const BUCKETS: [&str; 16] = [
        "/metrics/resource",
        "/metrics/cadvisor",
        "/metrics/probes",
        "/metrics",
        "/stats",
        "/pods",
        "/runningpods",
        "/healthz",
        "/configz",
        "/containerLogs",
        "/logs",
        "/exec",
        "/attach",
        "/portForward",
        "/run",
        "/debug",
    ];
    BUCKETS
        .into_iter()
        .find(|b| path == *b || path.strip_prefix(b).is_some_and(|r| r.starts_with('/')))
        .map_or("other", |b| &b[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(http_path_bucket("/stats/summary"), "stats");
        assert_eq!(http_path_bucket("/metrics/resource"), "metrics/resource");
        assert_eq!(http_path_bucket("/metrics/probes"), "metrics/probes");
        assert_eq!(http_path_bucket("/metrics"), "metrics");
        assert_eq!(http_path_bucket("/containerLogs/ns/p/c"), "containerLogs");
        assert_eq!(http_path_bucket("/api/v1/pods"), "other");
        assert_eq!(http_path_bucket("/podsx"), "other");
    }

    #[test]
    fn kubelet_names_in_the_text() {
        let m = KubeletMetrics::new();
        m.set_node_name("n1");
        m.container_started(false);
        m.evicted("memory.available");
        m.observe_pod_start(Duration::from_millis(700));
        let d = tempfile::tempdir().unwrap();
        let text = m.render(&[], d.path());
        for line in [
            "kubelet_node_name{node=\"n1\"} 1",
            "kubelet_started_containers_total{container_type=\"container\"} 1",
            "kubelet_evictions{eviction_signal=\"memory.available\"} 1",
            "kubelet_running_pods 0",
            "kubelet_running_containers{container_state=\"running\"} 0",
            "kubelet_pod_start_duration_seconds_bucket{le=\"1\"} 1",
            "# TYPE kubelet_evictions counter",
            "# TYPE kubelet_started_pods_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
