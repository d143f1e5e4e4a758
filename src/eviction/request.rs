//! The eviction manager's outbox: what it asks of the pod manager.
//!
//! Mirrors the functions the kubelet injects into `eviction.NewManager` (`killPodFunc`, the
//! container GC's `DeleteAllUnusedContainers`) and the admission retry that follows when
//! pressure ends. Eviction owns the type; the pod manager (`crate::pod_workers`) receives it and
//! translates each request into worker messages, so eviction never imports the pod workers.

/// A request from the eviction manager to act on pods.
#[derive(Debug)]
pub enum Request {
    /// Terminate the pod as evicted (`killPodFunc`): final status `Failed`/`Evicted`.
    Evict {
        /// The pod's UID.
        uid: String,
        /// The grace period in seconds, overriding `terminationGracePeriodSeconds`.
        grace_seconds: i64,
        /// The status message (also the event's text).
        message: String,
        /// Add the condition `DisruptionTarget=True` (reason `TerminationByKubelet`). The kubelet
        /// adds it for threshold evictions, not for local-storage limit evictions.
        disruption_target: bool,
    },
    /// No pressure condition remains: pods evicted or refused under pressure that are still
    /// desired are admitted again, as new instances (a controller would replace them).
    Readmit,
    /// Disk pressure: remove the exited containers (and their logs) that evicted pods kept,
    /// the eviction manager's node-level reclaim (`containerGC.DeleteAllUnusedContainers`).
    /// The reply carries how many containers were removed.
    ReclaimDeadContainers {
        /// Where the count goes.
        reply: tokio::sync::oneshot::Sender<usize>,
    },
}
