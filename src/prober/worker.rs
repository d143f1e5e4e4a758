//! The probe worker: one task per (container instance, probe type) that probes periodically,
//! counts consecutive results against the thresholds and reports changes of its result.
//!
//! Mirrors `pkg/kubelet/prober/worker.go` (`run`, `doProbe`) and `prober.go`
//! (`runProbeWithRetries`, the result mapping and event texts). Differences, because a worker
//! here is bound to one container instance rather than to a container name: it never waits for
//! "a new container ID"; after a liveness or startup failure it stops (the instance is about to
//! be killed, and the next instance gets new workers), and a startup worker stops once it
//! succeeded. The pod worker stops the others by dropping their handles.
//!
//! Every probe run that produced a result is counted in `/metrics/probes`
//! ([`crate::metrics::probes`]), as `doProbe` feeds `ProberResults` and `ProberDuration`.
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::runner::SpecProber;
use super::{HandlerResult, ProbeError, ProbeResult, ProbeType, ProbeUpdate};
use crate::metrics::probes::ProbeSeries;
use crate::runtime::exec::ExecContext;
use crate::stats::types::PodReference;

/// How many times one probe run is attempted when its handler errors (`maxProbeRetries`).
const MAX_PROBE_RETRIES: usize = 3;

/// Runs a probe's handler once; the worker's seam for tests.
pub(crate) trait Prober: Send + 'static {
    /// One run: the handler's verdict and output, or why it could not run.
    fn probe(&mut self)
    -> impl Future<Output = Result<(HandlerResult, String), ProbeError>> + Send;
}

/// What a worker probes: one probe of one container instance.
#[derive(Clone, Debug)]
pub struct ProbeWorkerSpec {
    /// The pod as [`crate::api::format_pod`] writes it, `<name>_<namespace>(<uid>)`, for logs.
    pub pod: String,
    /// The pod's name, namespace and UID: the labels of the worker's probe metrics.
    pub pod_ref: PodReference,
    /// Liveness, readiness or startup.
    pub kind: ProbeType,
    /// The probe, with API defaults applied.
    pub probe: Probe,
    /// The container spec: its name, ports (named probe ports) and env (`$(VAR)` in commands).
    pub container: Container,
    /// The instance: the container's restart count when this instance started.
    pub instance: u32,
    /// How exec probes run inside the container.
    pub exec: ExecContext,
    /// When this instance started running; `initialDelaySeconds` counts from here. A tokio
    /// instant (`Instant::from_std` converts), so tests can run on a paused clock.
    pub started_at: Instant,
}

/// Keeps a probe worker alive; dropping it (or [`stop`](Self::stop)) ends the worker.
#[derive(Debug)]
pub struct ProbeWorkerHandle {
    task: JoinHandle<()>,
}

impl ProbeWorkerHandle {
    /// Stops the worker (aborts its task; an exec probe in flight is killed).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Whether the worker has ended: stopped, or done after a liveness/startup failure, a
    /// startup success, or the receiver of its updates going away.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ProbeWorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the worker for one probe of one container instance.
///
/// It first reports the probe type's initial result (readiness Failure, liveness Success,
/// startup Unknown), then reports every change through `tx`. Liveness and readiness workers do
/// nothing while `started` holds `false` (`None` means the container counts as started: it has
/// no startup probe); a readiness worker probes at once when it turns `true`.
pub fn spawn_probe_worker(
    spec: ProbeWorkerSpec,
    tx: mpsc::Sender<ProbeUpdate>,
    started: Option<watch::Receiver<bool>>,
) -> ProbeWorkerHandle {
    let timing = Timing::from_probe(&spec.probe);
    let first_delay =
        first_probe_delay(timing.period, since_manager_start(), rand::random::<f64>());
    let prober = SpecProber::new(&spec.probe, &spec.container, spec.exec);
    let config = WorkerConfig {
        pod: spec.pod,
        pod_ref: spec.pod_ref,
        container: spec.container.name,
        instance: spec.instance,
        kind: spec.kind,
        timing,
        started_at: spec.started_at,
        first_delay,
    };
    spawn_worker(config, prober, tx, started)
}

/// When this agent's prober started (`probeManager.start`, set when the kubelet starts).
static MANAGER_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Record the agent's start for the probe jitter; called once by `kubelet::run`. Without it
/// (library use, tests) the first worker's spawn counts as the start.
pub fn mark_manager_start() {
    let _ = MANAGER_START.set(std::time::Instant::now());
}

fn since_manager_start() -> Duration {
    MANAGER_START.get_or_init(std::time::Instant::now).elapsed()
}

/// The kubelet's jitter (`worker.go` `run`): only while the agent started less than one period
/// ago, a random part (`fraction` in [0, 1)) of the period before the first probe, so that the
/// workers of every pod re-adopted at start do not probe in lockstep. A pod added to a running
/// agent is probed at once (after `initialDelaySeconds`).
pub(crate) fn first_probe_delay(
    period: Duration,
    since_start: Duration,
    fraction: f64,
) -> Duration {
    if period > since_start {
        period.mul_f64(fraction)
    } else {
        Duration::ZERO
    }
}

/// The probe's schedule and thresholds, with the API defaults for missing values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    pub period: Duration,
    pub initial_delay_secs: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub(crate) fn from_probe(probe: &Probe) -> Self {
        let at_least_one = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
        Timing {
            period: Duration::from_secs(u64::from(at_least_one(probe.period_seconds, 10))),
            initial_delay_secs: probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
            success_threshold: at_least_one(probe.success_threshold, 1),
            failure_threshold: at_least_one(probe.failure_threshold, 3),
        }
    }
}

/// Everything a worker needs besides its prober and channels.
#[derive(Clone, Debug)]
pub(crate) struct WorkerConfig {
    pub pod: String,
    pub pod_ref: PodReference,
    pub container: String,
    pub instance: u32,
    pub kind: ProbeType,
    pub timing: Timing,
    pub started_at: Instant,
    pub first_delay: Duration,
}

/// Starts a worker around any [`Prober`].
pub(crate) fn spawn_worker<P: Prober>(
    config: WorkerConfig,
    prober: P,
    tx: mpsc::Sender<ProbeUpdate>,
    started: Option<watch::Receiver<bool>>,
) -> ProbeWorkerHandle {
    ProbeWorkerHandle {
        task: tokio::spawn(run(config, prober, tx, started)),
    }
}

/// Whether the loop goes on.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// A worker's state (`worker` in worker.go).
struct Worker {
    config: WorkerConfig,
    /// This worker's `prober_probe_total` and `prober_probe_duration_seconds` series.
    metrics: ProbeSeries<'static>,
    tx: mpsc::Sender<ProbeUpdate>,
    /// The result last reported.
    current: ProbeResult,
    /// The result of the last probe run, and how many runs in a row returned it.
    last_result: Option<ProbeResult>,
    result_run: u32,
}

async fn run<P: Prober>(
    config: WorkerConfig,
    mut prober: P,
    tx: mpsc::Sender<ProbeUpdate>,
    mut started: Option<watch::Receiver<bool>>,
) {
    let initial = config.kind.initial_result();
    let metrics = crate::metrics::probes::probes().series(
        config.kind.as_str(),
        &config.container,
        &config.pod_ref,
    );
    let mut worker = Worker {
        config,
        metrics,
        tx,
        current: initial,
        last_result: None,
        result_run: 0,
    };
    if worker.report(initial, String::new()).await == Flow::Stop {
        return;
    }
    tokio::time::sleep(worker.config.first_delay).await;
    let mut ticker = tokio::time::interval(worker.config.timing.period);
    // A probe that overran its period is followed by one prompt run, then the schedule resumes
    // (Go's ticker drops ticks the same way).
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut started_open = started.is_some();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = started_changed(&mut started), if started_open => {
                if changed.is_err() {
                    // The pod worker is gone; keep the last value and the schedule.
                    started_open = false;
                    continue;
                }
                // The kubelet's manual trigger: readiness is probed as soon as the container
                // has started, not a period later.
                if !(worker.config.kind == ProbeType::Readiness && is_started(&started)) {
                    continue;
                }
            }
        }
        if worker.do_probe(&mut prober, &started).await == Flow::Stop {
            break;
        }
    }
    tracing::debug!(pod = %worker.config.pod, container = %worker.config.container, probe = %worker.config.kind, "probe worker done");
}

async fn started_changed(
    started: &mut Option<watch::Receiver<bool>>,
) -> Result<(), watch::error::RecvError> {
    match started {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

fn is_started(started: &Option<watch::Receiver<bool>>) -> bool {
    started.as_ref().is_none_or(|rx| *rx.borrow())
}

impl Worker {
    /// One tick (`doProbe`).
    async fn do_probe<P: Prober>(
        &mut self,
        prober: &mut P,
        started: &Option<watch::Receiver<bool>>,
    ) -> Flow {
        let kind = self.config.kind;
        let running_for = Instant::now().saturating_duration_since(self.config.started_at);
        if running_for.as_secs() < self.config.timing.initial_delay_secs {
            return Flow::Continue;
        }
        if kind != ProbeType::Startup && !is_started(started) {
            return Flow::Continue;
        }

        let probe_start = std::time::Instant::now();
        let mut outcome = None;
        let mut last_error = None;
        for _ in 0..MAX_PROBE_RETRIES {
            match prober.probe().await {
                Ok(ran) => {
                    outcome = Some(ran);
                    break;
                }
                Err(err) => last_error = Some(err),
            }
        }
        let Some((handler_result, output)) = outcome else {
            // Errored three times: the kubelet records an event and throws the run away.
            if let Some(err) = last_error {
                tracing::warn!(pod = %self.config.pod, container = %self.config.container, probe = %kind,
                    "{kind} probe errored and resulted in unknown state: {err}");
            }
            return Flow::Continue;
        };
        let (result, message) = match handler_result {
            HandlerResult::Success => (ProbeResult::Success, String::new()),
            HandlerResult::Warning => (
                ProbeResult::Success,
                format!("{kind} probe warning: {output}"),
            ),
            HandlerResult::Failure | HandlerResult::Unknown => (
                ProbeResult::Failure,
                format!("{kind} probe failed: {output}"),
            ),
        };
        self.metrics
            .record(result.metric_label(), probe_start.elapsed());
        if result == ProbeResult::Failure {
            tracing::info!(pod = %self.config.pod, container = %self.config.container, probe = %kind, output = %output, "probe failed");
        } else {
            tracing::trace!(pod = %self.config.pod, container = %self.config.container, probe = %kind, "probe succeeded");
        }

        if self.last_result == Some(result) {
            self.result_run += 1;
        } else {
            self.last_result = Some(result);
            self.result_run = 1;
        }
        let threshold = match result {
            ProbeResult::Failure => self.config.timing.failure_threshold,
            _ => self.config.timing.success_threshold,
        };
        if self.result_run < threshold {
            return Flow::Continue;
        }
        if result != self.current {
            self.current = result;
            if self.report(result, message).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        match (kind, result) {
            // The instance will be killed; its next instance gets new workers.
            (ProbeType::Liveness | ProbeType::Startup, ProbeResult::Failure) => Flow::Stop,
            // Started: nothing left for a startup probe to decide for this instance.
            (ProbeType::Startup, ProbeResult::Success) => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    /// Sends a result; `Stop` when nobody listens any more.
    async fn report(&self, result: ProbeResult, message: String) -> Flow {
        tracing::debug!(pod = %self.config.pod, container = %self.config.container, instance = self.config.instance, probe = %self.config.kind, %result, "probe result");
        let update = ProbeUpdate {
            container: self.config.container.clone(),
            instance: self.config.instance,
            probe: self.config.kind,
            result,
            message,
        };
        match self.tx.send(update).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    type Run = Result<(HandlerResult, String), ProbeError>;

    /// Jitter only while the agent is younger than one period (`worker.go`).
    #[test]
    fn first_probe_delay_only_right_after_the_agent_started() {
        let s = Duration::from_secs;
        // agent started 3 s ago, period 10 s: a random part of the period
        assert_eq!(first_probe_delay(s(10), s(3), 0.5), s(5));
        assert_eq!(first_probe_delay(s(10), s(3), 0.0), s(0));
        // a pod added to an agent running for 10 s or more: at once
        assert_eq!(first_probe_delay(s(10), s(10), 0.9), Duration::ZERO);
        assert_eq!(first_probe_delay(s(10), s(3600), 0.9), Duration::ZERO);
    }

    /// Plays a script of runs (the last one repeats) and records when it was called.
    struct FakeProber {
        script: VecDeque<Run>,
        calls: Arc<Mutex<Vec<Duration>>>,
        origin: Instant,
    }

    fn ok(result: HandlerResult, output: &str) -> Run {
        Ok((result, output.to_string()))
    }

    fn errored() -> Run {
        Err(ProbeError::MissingHandler {
            container: "c".into(),
        })
    }

    fn copy_run(run: &Run) -> Run {
        match run {
            Ok((r, o)) => Ok((*r, o.clone())),
            Err(_) => errored(),
        }
    }

    impl Prober for FakeProber {
        async fn probe(&mut self) -> Run {
            self.calls.lock().unwrap().push(self.origin.elapsed());
            match self.script.len() {
                0 => ok(HandlerResult::Success, ""),
                1 => copy_run(&self.script[0]),
                _ => self.script.pop_front().unwrap_or_else(errored),
            }
        }
    }

    struct Harness {
        rx: mpsc::Receiver<ProbeUpdate>,
        calls: Arc<Mutex<Vec<Duration>>>,
        handle: ProbeWorkerHandle,
    }

    fn timing(period: u64, initial_delay: u64, success: u32, failure: u32) -> Timing {
        Timing {
            period: Duration::from_secs(period),
            initial_delay_secs: initial_delay,
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn start(
        kind: ProbeType,
        timing: Timing,
        script: Vec<Run>,
        started: Option<watch::Receiver<bool>>,
    ) -> Harness {
        let origin = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let prober = FakeProber {
            script: script.into(),
            calls: calls.clone(),
            origin,
        };
        let (tx, rx) = mpsc::channel(16);
        let config = WorkerConfig {
            pod: "p_default".into(),
            pod_ref: PodReference::default(),
            container: "c".into(),
            instance: 2,
            kind,
            timing,
            started_at: origin,
            first_delay: Duration::ZERO,
        };
        let handle = spawn_worker(config, prober, tx, started);
        Harness { rx, calls, handle }
    }

    impl Harness {
        /// The next update within `secs` of (paused) time, or None when the worker ended or
        /// nothing came.
        async fn next(&mut self, secs: u64) -> Option<(ProbeResult, String)> {
            match tokio::time::timeout(Duration::from_secs(secs), self.rx.recv()).await {
                Ok(Some(u)) => {
                    assert_eq!((u.container.as_str(), u.instance), ("c", 2));
                    Some((u.result, u.message))
                }
                _ => None,
            }
        }

        fn calls(&self) -> Vec<u64> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|d| d.as_secs())
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn initial_results() {
        for (kind, want) in [
            (ProbeType::Liveness, ProbeResult::Success),
            (ProbeType::Readiness, ProbeResult::Failure),
            (ProbeType::Startup, ProbeResult::Unknown),
        ] {
            let mut h = start(kind, timing(10, 1000, 1, 3), vec![], None);
            assert_eq!(h.next(1).await, Some((want, String::new())), "{kind}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_table() {
        use HandlerResult::{Failure as F, Success as S, Warning as W};
        struct Case {
            name: &'static str,
            kind: ProbeType,
            success: u32,
            failure: u32,
            script: Vec<HandlerResult>,
            /// (result, message) updates after the initial one.
            want: Vec<(ProbeResult, &'static str)>,
            /// Whether the worker ends on its own.
            ends: bool,
        }
        let cases = vec![
            Case {
                name: "liveness fails after failureThreshold consecutive failures, then stops",
                kind: ProbeType::Liveness,
                success: 1,
                failure: 3,
                script: vec![F, F, S, F, F, F],
                want: vec![(ProbeResult::Failure, "Liveness probe failed: out")],
                ends: true,
            },
            Case {
                name: "liveness success is not reported again",
                kind: ProbeType::Liveness,
                success: 1,
                failure: 3,
                script: vec![S],
                want: vec![],
                ends: false,
            },
            Case {
                name: "readiness needs successThreshold successes in a row, and keeps going",
                kind: ProbeType::Readiness,
                success: 2,
                failure: 2,
                script: vec![S, F, S, S, F, F, S, S],
                want: vec![
                    (ProbeResult::Success, ""),
                    (ProbeResult::Failure, "Readiness probe failed: out"),
                    (ProbeResult::Success, ""),
                ],
                ends: false,
            },
            Case {
                name: "a redirect warning counts as success and carries its message",
                kind: ProbeType::Readiness,
                success: 1,
                failure: 3,
                script: vec![W],
                want: vec![(ProbeResult::Success, "Readiness probe warning: out")],
                ends: false,
            },
            Case {
                name: "startup succeeds and stops",
                kind: ProbeType::Startup,
                success: 1,
                failure: 3,
                script: vec![F, S],
                want: vec![(ProbeResult::Success, "")],
                ends: true,
            },
            Case {
                name: "startup fails after failureThreshold and stops",
                kind: ProbeType::Startup,
                success: 1,
                failure: 2,
                script: vec![F, F],
                want: vec![(ProbeResult::Failure, "Startup probe failed: out")],
                ends: true,
            },
        ];
        for case in cases {
            let script = case.script.iter().map(|r| ok(*r, "out")).collect();
            let mut h = start(
                case.kind,
                timing(10, 0, case.success, case.failure),
                script,
                None,
            );
            assert_eq!(
                h.next(1).await.map(|u| u.0),
                Some(case.kind.initial_result()),
                "{}",
                case.name
            );
            for (result, message) in &case.want {
                assert_eq!(
                    h.next(1000).await,
                    Some((*result, message.to_string())),
                    "{}",
                    case.name
                );
            }
            // Nothing else: the worker either ends (channel closed) or stays quiet.
            assert_eq!(h.next(1000).await, None, "{}", case.name);
            assert_eq!(h.handle.is_finished(), case.ends, "{}", case.name);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_every_period_after_the_initial_delay() {
        // initialDelaySeconds 25, period 10: the ticks at 0, 10 and 20 are skipped.
        let h = start(ProbeType::Liveness, timing(10, 25, 1, 3), vec![], None);
        tokio::time::sleep(Duration::from_secs(55)).await;
        assert_eq!(h.calls(), vec![30, 40, 50]);
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_and_readiness_wait_for_startup() {
        for (kind, want) in [
            // liveness waits for its next tick
            (ProbeType::Liveness, vec![40, 50]),
            // readiness is triggered at once
            (ProbeType::Readiness, vec![35, 40, 50]),
        ] {
            let (started_tx, started_rx) = watch::channel(false);
            let h = start(kind, timing(10, 0, 1, 3), vec![], Some(started_rx));
            tokio::time::sleep(Duration::from_secs(35)).await;
            assert!(
                h.calls().is_empty(),
                "{kind} probed before the container started"
            );
            started_tx.send(true).unwrap();
            tokio::time::sleep(Duration::from_secs(20)).await;
            assert_eq!(h.calls(), want, "{kind}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn errored_runs_are_retried_then_thrown_away() {
        // Two errors then a failure: one run (three calls), counted as one failure.
        let script = vec![errored(), errored(), ok(HandlerResult::Failure, "boom")];
        let mut h = start(ProbeType::Liveness, timing(10, 0, 1, 1), script, None);
        assert_eq!(h.next(1).await.map(|u| u.0), Some(ProbeResult::Success));
        assert_eq!(
            h.next(100).await,
            Some((ProbeResult::Failure, "Liveness probe failed: boom".into()))
        );
        assert_eq!(h.calls(), vec![0, 0, 0]);

        // Errors only: never a result change, however long.
        let mut h = start(
            ProbeType::Liveness,
            timing(10, 0, 1, 1),
            vec![errored()],
            None,
        );
        assert_eq!(h.next(1).await.map(|u| u.0), Some(ProbeResult::Success));
        assert_eq!(h.next(1000).await, None);
        assert!(!h.handle.is_finished());
        let calls = h.calls().len();
        assert!(calls >= 3 * 100 && calls.is_multiple_of(3), "{calls} calls");
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_handle_stops_probing() {
        let h = start(ProbeType::Readiness, timing(10, 0, 1, 3), vec![], None);
        tokio::time::sleep(Duration::from_secs(15)).await;
        let calls = h.calls.clone();
        drop(h.handle);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(calls.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_nobody_listens() {
        let Harness { rx, handle, .. } =
            start(ProbeType::Readiness, timing(10, 0, 1, 3), vec![], None);
        drop(rx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(handle.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn every_run_with_a_result_is_counted_until_the_worker_ends() {
        const UID: &str = "worker-metrics-test";
        let calls = Arc::new(Mutex::new(Vec::new()));
        // Success, failure, an errored run (three attempts, thrown away), then successes.
        let script = vec![
            ok(HandlerResult::Success, ""),
            ok(HandlerResult::Failure, "no"),
            errored(),
            errored(),
            errored(),
            ok(HandlerResult::Success, ""),
        ];
        let prober = FakeProber {
            script: script.into(),
            calls,
            origin: Instant::now(),
        };
        let (tx, _rx) = mpsc::channel(16);
        let config = WorkerConfig {
            pod: format!("metrics-web_ns1({UID})"),
            pod_ref: PodReference {
                name: "metrics-web".into(),
                namespace: "ns1".into(),
                uid: UID.into(),
            },
            container: "c".into(),
            instance: 0,
            kind: ProbeType::Readiness,
            timing: timing(10, 0, 1, 3),
            started_at: Instant::now(),
            first_delay: Duration::ZERO,
        };
        let handle = spawn_worker(config, prober, tx, None);
        // The value of this pod's series for `result`, read as the endpoint serves it (with no
        // pod listed: only a running worker keeps its series).
        let series = |result: &str| {
            let d = tempfile::tempdir().unwrap();
            let text = crate::metrics::probes::probes().render(&[], d.path());
            text.lines()
                .find(|l| {
                    l.starts_with("prober_probe_total{")
                        && l.contains(&format!("pod_uid=\"{UID}\""))
                        && l.contains(&format!("result=\"{result}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
        };
        // Runs at 0 (success), 10 (failure), 20 (errored).
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(series("successful").as_deref(), Some("1"));
        assert_eq!(series("failed").as_deref(), Some("1"));
        assert_eq!(series("unknown"), None, "an errored run is not counted");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(series("successful").as_deref(), Some("2"));
        let labels = r#"container="c",namespace="ns1",pod="metrics-web",pod_uid="worker-metrics-test",probe_type="Readiness",result="successful""#;
        let d = tempfile::tempdir().unwrap();
        assert!(
            crate::metrics::probes::probes()
                .render(&[], d.path())
                .contains(labels)
        );
        // The worker ends; its pod is not in the (empty) pod list: the series go.
        drop(handle);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(series("successful"), None);
        assert_eq!(series("failed"), None);
    }

    #[test]
    fn timing_defaults() {
        assert_eq!(Timing::from_probe(&Probe::default()), timing(10, 0, 1, 3));
        let probe = Probe {
            period_seconds: Some(0),
            initial_delay_seconds: Some(-5),
            success_threshold: Some(2),
            failure_threshold: Some(0),
            ..Default::default()
        };
        assert_eq!(Timing::from_probe(&probe), timing(1, 0, 2, 1));
    }
}
