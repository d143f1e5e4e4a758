//! `/metrics/probes`: the prober's metrics, in a registry of their own.
//!
//! Owns `prober_probe_total` and `prober_probe_duration_seconds` and the text of the
//! `/metrics/probes` endpoint. Mirrors `pkg/kubelet/prober/prober_manager.go` (`ProberResults`,
//! `ProberDuration`: names, labels, help texts, stability), how `pkg/kubelet/prober/worker.go`
//! feeds them (`doProbe` counts every probe run that produced a result; an errored run is
//! thrown away uncounted; the duration is observed for `successful` and `unknown` runs only)
//! and the separate registry `pkg/kubelet/server/server.go` (`InstallDefaultHandlers`) builds
//! for the endpoint, with `process_start_time_seconds` beside them.
//!
//! | metric | labels |
//! |---|---|
//! | `prober_probe_total` (counter) | `container`, `namespace`, `pod`, `pod_uid`, `probe_type` (`Liveness`, `Readiness`, `Startup`), `result` (`successful`, `failed`, `unknown`) |
//! | `prober_probe_duration_seconds` (histogram, Prometheus' default buckets) | `container`, `namespace`, `pod`, `probe_type` |
//! | `process_start_time_seconds` (gauge) | |
//!
//! How long a series lives: the kubelet has one worker per (pod, container, probe type) that
//! outlives the container's restarts, and deletes the container's series when it stops, which
//! is when the pod is removed or reaches `Succeeded`/`Failed`. Here a worker is bound to one
//! container instance ([`crate::prober`]), so a container's series belong to a
//! [`ProbeSeries`] per worker and outlive it: counters survive a liveness restart, as the
//! kubelet's do. They are deleted when the pod worker finishes ([`ProbeMetrics::forget_pod`]:
//! the pod was removed or evicted), and, for a pod that completed while it stays listed, when
//! the endpoint is next read and no worker feeds them ([`ProbeMetrics::render`]).
//!
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{DEF_BUCKETS, text};
use crate::stats::types::PodReference;

/// `prober_probe_total`'s labels (the Go client writes them sorted, as declared here).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    container: String,
    namespace: String,
    pod: String,
    pod_uid: String,
    probe_type: String,
    result: String,
}

/// `prober_probe_duration_seconds`'s labels: no `pod_uid`, no `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    container: String,
    namespace: String,
    pod: String,
    probe_type: String,
}

/// Which container's probe a set of series belongs to (the kubelet's `probeKey`, plus the
/// names its labels carry).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    duration: DurationLabels,
    pod_uid: String,
}

impl SeriesKey {
    /// The three `prober_probe_total` label sets (`proberResults*MetricLabels`).
    fn result_labels(&self, result: &str) -> ResultLabels {
        let d = &self.duration;
        ResultLabels {
            container: d.container.clone(),
            namespace: d.namespace.clone(),
            pod: d.pod.clone(),
            pod_uid: self.pod_uid.clone(),
            probe_type: d.probe_type.clone(),
            result: result.to_string(),
        }
    }
}

/// `result` of a passing probe (`probeResultSuccessful`).
pub const RESULT_SUCCESSFUL: &str = "successful";
/// `result` of a failing probe (`probeResultFailed`); its duration is not observed.
pub const RESULT_FAILED: &str = "failed";
/// `result` of a probe that could not tell (`probeResultUnknown`).
pub const RESULT_UNKNOWN: &str = "unknown";

/// The `result` label values. The registry takes label strings, not the prober's types, so the
/// prober depends on the metrics and not the other way round.
const RESULTS: [&str; 3] = [RESULT_SUCCESSFUL, RESULT_FAILED, RESULT_UNKNOWN];

/// Where a probe result's label is in [`RESULTS`]; a label outside it counts as unknown.
fn result_index(result: &str) -> usize {
    RESULTS.iter().position(|r| *r == result).unwrap_or(2)
}

type DurationFamily = Family<DurationLabels, Histogram, fn() -> Histogram>;

/// The prober's metrics and the registry `/metrics/probes` serves.
pub struct ProbeMetrics {
    registry: Registry,
    results: Family<ResultLabels, Counter>,
    duration: DurationFamily,
    /// Every container probe with series, and how many workers feed it now.
    tracked: Mutex<HashMap<SeriesKey, usize>>,
}

/// The process-wide prober metrics (the kubelet's package-level `ProberResults` and
/// `ProberDuration`).
pub fn probes() -> &'static ProbeMetrics {
    static METRICS: LazyLock<ProbeMetrics> = LazyLock::new(ProbeMetrics::new);
    &METRICS
}

impl std::fmt::Debug for ProbeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeMetrics").finish_non_exhaustive()
    }
}

impl Default for ProbeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProbeMetrics {
    /// A registry of its own, with both families.
    pub fn new() -> Self {
        let results: Family<ResultLabels, Counter> = Family::default();
        let duration: DurationFamily = Family::new_with_constructor(|| Histogram::new(DEF_BUCKETS));
        let mut registry = Registry::default();
        // The crate appends the final "." of the kubelet's help texts.
        registry.register(
            "prober_probe_duration_seconds",
            "[ALPHA] Duration in seconds for a probe response",
            duration.clone(),
        );
        // Registered as `prober_probe`: the crate appends `_total` to counters.
        registry.register(
            "prober_probe",
            "[ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result",
            results.clone(),
        );
        ProbeMetrics {
            registry,
            results,
            duration,
            tracked: Mutex::new(HashMap::new()),
        }
    }

    /// The series of one probe worker: `probe_type` (`Liveness`, `Readiness`, `Startup`) of
    /// `container` in `pod`. They are counted as fed until the returned value is dropped (the
    /// worker ended).
    pub fn series(&self, probe_type: &str, container: &str, pod: &PodReference) -> ProbeSeries<'_> {
        let key = SeriesKey {
            duration: DurationLabels {
                container: container.to_string(),
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                probe_type: probe_type.to_string(),
            },
            pod_uid: pod.uid.clone(),
        };
        *self.lock().entry(key.clone()).or_default() += 1;
        let results = RESULTS.map(|r| key.result_labels(r));
        ProbeSeries {
            metrics: self,
            results,
            key,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesKey, usize>> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the series of every container probe that no worker feeds and whose pod is not
    /// in `pods` or has terminated (`Succeeded`/`Failed`); returns how many were deleted.
    fn prune(&self, pods: &[Arc<Pod>]) -> usize {
        let running: std::collections::HashSet<&str> = pods
            .iter()
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.delete(|k, workers| workers == 0 && !running.contains(k.pod_uid.as_str()))
    }

    /// The pod worker of `uid` finished (the pod terminated and was cleaned up): its series
    /// go, as the kubelet's probe workers delete theirs when they stop. Its probe workers were
    /// stopped already, though an aborted task may drop its [`ProbeSeries`] a moment later:
    /// a series no longer tracked records nothing. Together with the pruning at each read,
    /// this bounds the series by the pods the agent has, scraped or not.
    pub fn forget_pod(&self, uid: &str) -> usize {
        self.delete(|k, _| k.pod_uid == uid)
    }

    /// Deletes the series for which `gone(key, workers feeding it)` holds.
    fn delete(&self, gone: impl Fn(&SeriesKey, usize) -> bool) -> usize {
        let mut tracked = self.lock();
        let gone: Vec<SeriesKey> = tracked
            .iter()
            .filter(|(k, workers)| gone(k, **workers))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            tracked.remove(key);
            for r in RESULTS {
                self.results.remove(&key.result_labels(r));
            }
            // Another pod of the same name (a static pod's new UID) may share the histogram.
            if !tracked.keys().any(|k| k.duration == key.duration) {
                self.duration.remove(&key.duration);
            }
            tracing::debug!(pod = %key.duration.pod, namespace = %key.duration.namespace,
                pod_uid = %key.pod_uid, container = %key.duration.container,
                probe = %key.duration.probe_type, "probe metrics deleted");
        }
        gone.len()
    }

    /// The `/metrics/probes` body: the prober's families, then `process_start_time_seconds`
    /// (`compbasemetrics.RegisterProcessStartTime`). `pods` is the pod list now: series of pods
    /// gone from it (or terminal) that no worker feeds are deleted first.
    pub fn render(&self, pods: &[Arc<Pod>], proc_root: &Path) -> String {
        self.prune(pods);
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encode the prober metrics");
        }
        if let Some(start) = super::process_start_time(proc_root) {
            // component-base's own gauge, hence the stability prefix `/metrics` does not have.
            text::header(
                &mut out,
                "process_start_time_seconds",
                "[ALPHA] Start time of the process since unix epoch in seconds.",
                "gauge",
            );
            text::sample(&mut out, "process_start_time_seconds", &[], start, None);
        }
        out
    }
}

/// One probe worker's series; dropping it records that the worker ended.
#[derive(Debug)]
pub struct ProbeSeries<'a> {
    metrics: &'a ProbeMetrics,
    key: SeriesKey,
    /// `prober_probe_total`'s label sets, indexed as [`RESULTS`].
    results: [ResultLabels; 3],
}

impl ProbeSeries<'_> {
    /// One probe run produced `result` (one of the `RESULT_*` labels) in `took` (`doProbe` after
    /// `prober.probe`): counted by result; its duration observed unless it failed, as the kubelet
    /// does.
    pub fn record(&self, result: &str, took: Duration) {
        if !self.metrics.lock().contains_key(&self.key) {
            // Its pod was forgotten ([`ProbeMetrics::forget_pod`]) while this worker stopped.
            return;
        }
        self.metrics
            .results
            .get_or_create(&self.results[result_index(result)])
            .inc();
        if result != RESULT_FAILED {
            self.metrics
                .duration
                .get_or_create(&self.key.duration)
                .observe(took.as_secs_f64());
        }
    }
}

impl Drop for ProbeSeries<'_> {
    fn drop(&mut self) {
        let mut tracked = self.metrics.lock();
        if let Some(workers) = tracked.get_mut(&self.key) {
            *workers = workers.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: &str, phase: &str) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn web() -> PodReference {
        PodReference {
            name: "web-n1".into(),
            namespace: "default".into(),
            uid: "u1".into(),
        }
    }

    fn lines(m: &ProbeMetrics, pods: &[Arc<Pod>]) -> Vec<String> {
        let d = tempfile::tempdir().unwrap();
        m.render(pods, d.path())
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn kubelet_names_labels_and_help() {
        let m = ProbeMetrics::new();
        let s = m.series("Readiness", "c", &web());
        s.record(RESULT_SUCCESSFUL, Duration::from_millis(3));
        s.record(RESULT_SUCCESSFUL, Duration::from_millis(30));
        s.record(RESULT_FAILED, Duration::from_secs(20));
        let l = m.series("Liveness", "c", &web());
        l.record(RESULT_UNKNOWN, Duration::from_millis(7));
        let text = lines(&m, &[pod("u1", "Running")]);
        for want in [
            "# HELP prober_probe_total [ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.",
            "# TYPE prober_probe_total counter",
            r#"prober_probe_total{container="c",namespace="default",pod="web-n1",pod_uid="u1",probe_type="Readiness",result="successful"} 2"#,
            r#"prober_probe_total{container="c",namespace="default",pod="web-n1",pod_uid="u1",probe_type="Readiness",result="failed"} 1"#,
            r#"prober_probe_total{container="c",namespace="default",pod="web-n1",pod_uid="u1",probe_type="Liveness",result="unknown"} 1"#,
            "# HELP prober_probe_duration_seconds [ALPHA] Duration in seconds for a probe response.",
            "# TYPE prober_probe_duration_seconds histogram",
            // The failed run (20 s) is not observed: two successes, both under 50 ms.
            r#"prober_probe_duration_seconds_count{container="c",namespace="default",pod="web-n1",probe_type="Readiness"} 2"#,
            r#"prober_probe_duration_seconds_bucket{container="c",namespace="default",pod="web-n1",probe_type="Readiness",le="0.005"} 1"#,
            r#"prober_probe_duration_seconds_bucket{container="c",namespace="default",pod="web-n1",probe_type="Readiness",le="0.05"} 2"#,
            r#"prober_probe_duration_seconds_bucket{container="c",namespace="default",pod="web-n1",probe_type="Readiness",le="10"} 2"#,
            r#"prober_probe_duration_seconds_bucket{container="c",namespace="default",pod="web-n1",probe_type="Readiness",le="+Inf"} 2"#,
            // An unknown result is timed, as in worker.go.
            r#"prober_probe_duration_seconds_count{container="c",namespace="default",pod="web-n1",probe_type="Liveness"} 1"#,
        ] {
            assert!(
                text.iter().any(|l| l == want),
                "{want} in\n{}",
                text.join("\n")
            );
        }
        assert!(
            !text
                .iter()
                .any(|l| l.contains("Liveness") && l.contains("result=\"failed\"")),
            "no series for results that never happened"
        );
        // The agent's start time, from the real /proc.
        let text = m.render(&[], Path::new("/proc"));
        let start = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(start.is_some_and(|s| s > 1.6e9), "{text}");
        assert!(text.contains(
            "# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
        ));
    }

    #[test]
    fn series_live_through_restarts_and_go_with_their_pod() {
        let m = ProbeMetrics::new();
        let readiness = |m: &ProbeMetrics, pods: &[Arc<Pod>]| {
            lines(m, pods)
                .into_iter()
                .find(|l| l.starts_with("prober_probe_total{") && l.contains("Readiness"))
        };
        // First instance: probes, then its worker ends (the container exited).
        let s = m.series("Readiness", "c", &web());
        s.record(RESULT_SUCCESSFUL, Duration::ZERO);
        drop(s);
        // The pod is still there (the container restarts): the counter stays.
        let running = [pod("u1", "Running")];
        assert!(readiness(&m, &running).is_some_and(|l| l.ends_with(" 1")));
        // The next instance's worker carries on counting.
        let s = m.series("Readiness", "c", &web());
        s.record(RESULT_SUCCESSFUL, Duration::ZERO);
        assert!(readiness(&m, &running).is_some_and(|l| l.ends_with(" 2")));
        // The pod left the list while its worker still runs: kept until the worker ends.
        assert!(readiness(&m, &[]).is_some());
        drop(s);
        assert_eq!(m.prune(&[]), 1);
        assert_eq!(readiness(&m, &[]), None);
        assert!(
            !lines(&m, &[]).iter().any(|l| l.contains("web-n1")),
            "histogram deleted too"
        );

        // A terminal pod's series go although the pod is still listed.
        let s = m.series("Readiness", "c", &web());
        s.record(RESULT_SUCCESSFUL, Duration::ZERO);
        drop(s);
        assert_eq!(m.prune(&[pod("u1", "Failed")]), 1);
    }

    #[test]
    fn a_forgotten_pod_loses_its_series_unscraped_and_a_late_worker_records_nothing() {
        let m = ProbeMetrics::new();
        let s = m.series("Liveness", "c", &web());
        s.record(RESULT_FAILED, Duration::ZERO);
        // The pod worker finished while this probe worker had not yet dropped its series.
        assert_eq!(m.forget_pod("u1"), 1);
        s.record(RESULT_FAILED, Duration::ZERO);
        drop(s);
        assert!(
            !lines(&m, &[pod("u1", "Running")])
                .iter()
                .any(|l| l.contains("web-n1"))
        );
        assert_eq!(m.forget_pod("u1"), 0);
    }

    #[test]
    fn a_shared_histogram_stays_while_a_pod_of_that_name_has_series() {
        // A static pod's manifest changed: a new UID, the same name; the old pod goes.
        let m = ProbeMetrics::new();
        let old = m.series("Readiness", "c", &web());
        old.record(RESULT_SUCCESSFUL, Duration::ZERO);
        let new_pod = PodReference {
            uid: "u2".into(),
            ..web()
        };
        let new = m.series("Readiness", "c", &new_pod);
        new.record(RESULT_SUCCESSFUL, Duration::ZERO);
        drop(old);
        let text = lines(&m, &[pod("u2", "Running")]);
        assert!(!text.iter().any(|l| l.contains("pod_uid=\"u1\"")));
        assert!(text.iter().any(|l| l.contains("pod_uid=\"u2\"")));
        assert!(
            text.iter()
                .any(|l| l.starts_with("prober_probe_duration_seconds_count{") && l.ends_with(" 2")),
            "{}",
            text.join("\n")
        );
    }
}
