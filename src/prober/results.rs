//! Probe results and the updates a worker sends when its result changes.
//!
//! Mirrors `pkg/kubelet/prober/results` (`Result`, `Update`); the kubelet's per-type results
//! managers become the pod worker's own bookkeeping of these updates.
use std::fmt;

use super::ProbeType;

/// A container's probe result (`results.Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    /// Passing: live, ready, or started.
    Success,
    /// Failing past the failure threshold (or readiness before its first success).
    Failure,
    /// Not known yet: a startup probe before it reached a threshold.
    Unknown,
}

impl ProbeResult {
    /// The `result` label of the probe metrics (`probeResultSuccessful`, ...).
    pub fn metric_label(self) -> &'static str {
        use crate::metrics::probes::{RESULT_FAILED, RESULT_SUCCESSFUL, RESULT_UNKNOWN};
        match self {
            ProbeResult::Success => RESULT_SUCCESSFUL,
            ProbeResult::Failure => RESULT_FAILED,
            ProbeResult::Unknown => RESULT_UNKNOWN,
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // results.Result.String()
        f.write_str(match self {
            ProbeResult::Success => "Success",
            ProbeResult::Failure => "Failure",
            ProbeResult::Unknown => "UNKNOWN",
        })
    }
}

/// A change of one probe's result for one container instance (`results.Update`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeUpdate {
    /// The container's name.
    pub container: String,
    /// Which instance of the container: its restart count when it was started.
    pub instance: u32,
    /// Which probe.
    pub probe: ProbeType,
    /// The new result.
    pub result: ProbeResult,
    /// The kubelet's event text for the probe run that caused the change, e.g.
    /// `Liveness probe failed: HTTP probe failed with statuscode: 500` or
    /// `Readiness probe warning: Probe terminated redirects, Response body: `; empty for a plain
    /// success and for the initial result.
    pub message: String,
}
