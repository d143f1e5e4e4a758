//! Eviction signals and thresholds: what may be configured and how it is parsed.
//!
//! Mirrors `pkg/kubelet/eviction/api/types.go` (signals, operator, threshold value),
//! `pkg/kubelet/eviction/defaults_linux.go` (default hard thresholds) and `ParseThresholdConfig`
//! with its helpers in `pkg/kubelet/eviction/helpers.go`, including the error texts. The flag
//! syntax (`memory.available<100Mi`, `memory.available=1m30s`) follows the kubelet's flag types.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::api::duration::{DurationError, parse_go_duration_nanos};
use crate::api::quantity::{Quantity, QuantityError};

/// Why a threshold configuration was refused (texts are the kubelet's).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// A signal name the kubelet does not know.
    #[error("unsupported eviction signal {0}")]
    UnsupportedSignal(String),
    /// A quantity threshold of zero or below.
    #[error("eviction threshold {signal} must be positive: {value}")]
    NotPositive {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
    },
    /// A percentage threshold below 0%.
    #[error("eviction percentage threshold {signal} must be >= 0%: {value}")]
    PercentageNegative {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
    },
    /// A percentage threshold above 100%.
    #[error("eviction percentage threshold {signal} must be <= 100%: {value}")]
    PercentageTooLarge {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
    },
    /// A value that is neither a quantity nor a percentage.
    #[error("invalid eviction value {value:?} for {signal}: {reason}")]
    InvalidValue {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A soft threshold with no matching grace period.
    #[error("grace period must be specified for the soft eviction threshold {0}")]
    NoGracePeriod(String),
    /// A grace period that is not a Go duration.
    #[error("invalid eviction grace period {value:?} for {signal}: {source}")]
    InvalidGracePeriod {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
        /// The parse error.
        source: DurationError,
    },
    /// A negative grace period.
    #[error("invalid eviction grace period specified: {0}, must be a positive value")]
    NegativeGracePeriod(String),
    /// A percentage minimum reclaim of zero or below.
    #[error("eviction percentage minimum reclaim {signal} must be positive: {value}")]
    MinReclaimPercentageNotPositive {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
    },
    /// A negative quantity minimum reclaim.
    #[error("negative eviction minimum reclaim specified for {0}")]
    NegativeMinReclaim(String),
    /// The same signal twice in one threshold flag.
    #[error("found duplicate eviction threshold for signal {0}")]
    DuplicateThreshold(String),
    /// The same signal twice in `--eviction-soft-grace-period`.
    #[error("duplicate eviction grace period specified for {0}")]
    DuplicateGracePeriod(String),
    /// The same signal twice in `--eviction-minimum-reclaim`.
    #[error("duplicate eviction minimum reclaim specified for {0}")]
    DuplicateMinReclaim(String),
    /// A threshold flag statement without `<`.
    #[error("invalid eviction threshold syntax {0}, expected <signal><operator><value>")]
    ThresholdSyntax(String),
    /// A grace period flag statement without `=`.
    #[error("invalid eviction grace period syntax {0}, expected <signal>=<duration>")]
    GracePeriodSyntax(String),
    /// A minimum reclaim flag statement without `=`.
    #[error("invalid eviction minimum reclaim syntax: {0}, expected <signal>=<value>")]
    MinReclaimSyntax(String),
}

/// A measured quantity that can trigger eviction (`pkg/kubelet/eviction/api` `Signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// `memory.available`: MemTotal − working set of the root cgroup.
    MemoryAvailable,
    /// `allocatableMemory.available`: kubepods limit − working set of kubepods.
    AllocatableMemoryAvailable,
    /// `nodefs.available`: free bytes on the kubelet's root filesystem.
    NodeFsAvailable,
    /// `nodefs.inodesFree`: free inodes on the kubelet's root filesystem.
    NodeFsInodesFree,
    /// `imagefs.available`: free bytes on the image filesystem.
    ImageFsAvailable,
    /// `imagefs.inodesFree`: free inodes on the image filesystem.
    ImageFsInodesFree,
    /// `containerfs.available`: free bytes on the container writable-layer filesystem.
    ContainerFsAvailable,
    /// `containerfs.inodesFree`: free inodes on the container writable-layer filesystem.
    ContainerFsInodesFree,
    /// `pid.available`: process ids left before the kernel limit.
    PidAvailable,
}

impl Signal {
    /// Every signal, in declaration order.
    pub const ALL: [Signal; 9] = [
        Signal::MemoryAvailable,
        Signal::AllocatableMemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::ContainerFsAvailable,
        Signal::ContainerFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The kubelet's name for the signal.
    pub fn as_str(&self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::AllocatableMemoryAvailable => "allocatableMemory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::ContainerFsAvailable => "containerfs.available",
            Signal::ContainerFsInodesFree => "containerfs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Signal::ALL
            .into_iter()
            .find(|sig| sig.as_str() == s)
            .ok_or_else(|| ThresholdError::UnsupportedSignal(s.to_string()))
    }
}

/// How a signal is compared with its threshold; the kubelet only has `LessThan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The threshold is met when the observed value is below it.
    LessThan,
}

/// A threshold's value: an absolute quantity or a fraction of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    /// An absolute amount (bytes, inodes or pids).
    Quantity(i64),
    /// A fraction of capacity, 0.1 for `10%`.
    Percentage(f32),
}

impl ThresholdValue {
    /// The absolute amount this value stands for given `capacity` (Go's `GetThresholdQuantity`).
    pub fn quantity_for(&self, capacity: i64) -> i64 {
        match *self {
            ThresholdValue::Quantity(q) => q,
            ThresholdValue::Percentage(p) => (capacity as f64 * f64::from(p)) as i64,
        }
    }
}

impl fmt::Display for ThresholdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdValue::Quantity(q) => write!(f, "{q}"),
            ThresholdValue::Percentage(p) => write!(f, "{}%", p * 100.0),
        }
    }
}

/// One eviction threshold (`evictionapi.Threshold`).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub signal: Signal,
    /// How it is compared.
    pub operator: Operator,
    /// The threshold.
    pub value: ThresholdValue,
    /// How long the threshold must be met before acting; zero for a hard threshold.
    pub grace_period: Duration,
    /// How much beyond the threshold to reclaim once it has fired.
    pub min_reclaim: Option<ThresholdValue>,
}

impl Threshold {
    /// True for a hard threshold (no grace period), Go's `isHardEvictionThreshold`.
    pub fn is_hard(&self) -> bool {
        self.grace_period.is_zero()
    }
}

/// The Linux default hard thresholds (`pkg/kubelet/eviction/defaults_linux.go`).
pub const DEFAULT_EVICTION_HARD: [(&str, &str); 5] = [
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
    ("imagefs.available", "15%"),
    ("imagefs.inodesFree", "5%"),
];

/// The default hard thresholds as a config map.
pub fn default_eviction_hard() -> BTreeMap<String, String> {
    DEFAULT_EVICTION_HARD
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The hard map actually used: the defaults when unset; exactly the given map when set (the
/// defaults are dropped) unless `merge_defaults`, in which case the defaults fill the gaps.
pub fn effective_eviction_hard(
    hard: Option<&BTreeMap<String, String>>,
    merge_defaults: bool,
) -> BTreeMap<String, String> {
    match hard {
        None => default_eviction_hard(),
        Some(map) => {
            let mut out = map.clone();
            if merge_defaults {
                for (k, v) in DEFAULT_EVICTION_HARD {
                    out.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
            out
        }
    }
}

/// Parses the eviction settings into thresholds, like the kubelet's `ParseThresholdConfig`:
/// hard thresholds (defaults applied per [`effective_eviction_hard`]), then soft ones (each
/// needs a grace period), minimum reclaims attached by signal, and — when
/// `enforce_node_allocatable` contains `pods` — an `allocatableMemory.available` copy of every
/// hard `memory.available` threshold. Maps are walked in key order so results are stable.
pub fn parse_thresholds<S: AsRef<str>>(
    hard: Option<&BTreeMap<String, String>>,
    soft: &BTreeMap<String, String>,
    soft_grace_period: &BTreeMap<String, String>,
    min_reclaim: &BTreeMap<String, String>,
    enforce_node_allocatable: &[S],
    merge_defaults: bool,
) -> Result<Vec<Threshold>, ThresholdError> {
    let hard = effective_eviction_hard(hard, merge_defaults);
    let mut results = parse_threshold_statements(&hard)?;
    let mut soft_thresholds = parse_threshold_statements(soft)?;
    let grace_periods = parse_grace_periods(soft_grace_period)?;
    let min_reclaims = parse_minimum_reclaims(min_reclaim)?;
    for t in &mut soft_thresholds {
        let period = grace_periods
            .get(&t.signal)
            .ok_or_else(|| ThresholdError::NoGracePeriod(t.signal.to_string()))?;
        t.grace_period = *period;
    }
    results.extend(soft_thresholds);
    for t in &mut results {
        if let Some(r) = min_reclaims.get(&t.signal) {
            t.min_reclaim = Some(*r);
        }
    }
    if enforce_node_allocatable
        .iter()
        .any(|k| k.as_ref() == "pods")
    {
        let extra: Vec<Threshold> = results
            .iter()
            .filter(|t| t.signal == Signal::MemoryAvailable && t.is_hard())
            .map(|t| Threshold {
                signal: Signal::AllocatableMemoryAvailable,
                operator: t.operator,
                value: t.value,
                grace_period: Duration::ZERO,
                min_reclaim: t.min_reclaim,
            })
            .collect();
        results.extend(extra);
    }
    Ok(results)
}

fn parse_threshold_statements(
    statements: &BTreeMap<String, String>,
) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out = Vec::new();
    for (signal, value) in statements {
        if let Some(t) = parse_threshold_statement(signal, value)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// One `signal -> value` statement; `None` when the value means "ignore this signal".
fn parse_threshold_statement(
    signal: &str,
    value: &str,
) -> Result<Option<Threshold>, ThresholdError> {
    let sig: Signal = signal.parse()?;
    let value = if value.ends_with('%') {
        // The kubelet compares the raw text: only exactly "0%" and "100%" are ignored.
        if value == "0%" || value == "100%" {
            return Ok(None);
        }
        let p = parse_percentage(signal, value)?;
        if p < 0.0 {
            return Err(ThresholdError::PercentageNegative {
                signal: signal.to_string(),
                value: value.to_string(),
            });
        }
        if p > 1.0 {
            return Err(ThresholdError::PercentageTooLarge {
                signal: signal.to_string(),
                value: value.to_string(),
            });
        }
        ThresholdValue::Percentage(p)
    } else {
        let q = parse_quantity(signal, value)?;
        if q.is_negative() || q.is_zero() {
            return Err(ThresholdError::NotPositive {
                signal: signal.to_string(),
                value: value.to_string(),
            });
        }
        ThresholdValue::Quantity(q.value())
    };
    Ok(Some(Threshold {
        signal: sig,
        operator: Operator::LessThan,
        value,
        grace_period: Duration::ZERO,
        min_reclaim: None,
    }))
}

fn parse_grace_periods(
    statements: &BTreeMap<String, String>,
) -> Result<BTreeMap<Signal, Duration>, ThresholdError> {
    let mut out = BTreeMap::new();
    for (signal, value) in statements {
        let sig: Signal = signal.parse()?;
        let nanos = parse_go_duration_nanos(value.trim()).map_err(|source| {
            ThresholdError::InvalidGracePeriod {
                signal: signal.clone(),
                value: value.clone(),
                source,
            }
        })?;
        if nanos < 0 {
            return Err(ThresholdError::NegativeGracePeriod(value.clone()));
        }
        out.insert(sig, Duration::from_nanos(nanos.unsigned_abs()));
    }
    Ok(out)
}

fn parse_minimum_reclaims(
    statements: &BTreeMap<String, String>,
) -> Result<BTreeMap<Signal, ThresholdValue>, ThresholdError> {
    let mut out = BTreeMap::new();
    for (signal, value) in statements {
        let sig: Signal = signal.parse()?;
        let v = if value.ends_with('%') {
            let p = parse_percentage(signal, value)?;
            if p <= 0.0 {
                return Err(ThresholdError::MinReclaimPercentageNotPositive {
                    signal: signal.clone(),
                    value: value.clone(),
                });
            }
            ThresholdValue::Percentage(p)
        } else {
            let q = parse_quantity(signal, value)?;
            if q.is_negative() {
                return Err(ThresholdError::NegativeMinReclaim(signal.clone()));
            }
            ThresholdValue::Quantity(q.value())
        };
        out.insert(sig, v);
    }
    Ok(out)
}

/// `"10.5%"` -> 0.105, as Go's `parsePercentage` (float32 / 100).
fn parse_percentage(signal: &str, value: &str) -> Result<f32, ThresholdError> {
    let number = value.trim_end_matches('%');
    let parsed: f64 = number.parse().map_err(|_| ThresholdError::InvalidValue {
        signal: signal.to_string(),
        value: value.to_string(),
        reason: "not a percentage".to_string(),
    })?;
    if !parsed.is_finite() {
        return Err(ThresholdError::InvalidValue {
            signal: signal.to_string(),
            value: value.to_string(),
            reason: "not a finite percentage".to_string(),
        });
    }
    Ok(parsed as f32 / 100.0)
}

fn parse_quantity(signal: &str, value: &str) -> Result<Quantity, ThresholdError> {
    Quantity::parse(value).map_err(|e| quantity_error(signal, value, e))
}

fn quantity_error(signal: &str, value: &str, e: QuantityError) -> ThresholdError {
    ThresholdError::InvalidValue {
        signal: signal.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    }
}

/// Fills in the `containerfs.*` thresholds from the filesystem layout, like the kubelet's
/// `UpdateContainerFsThresholds`: user-set containerfs values are replaced (with a warning) by
/// the nodefs thresholds (single filesystem, or split image/container filesystems) or the
/// imagefs thresholds (dedicated imagefs holding containers). Returns the warnings to log.
///
/// Unlike the kubelet, a containerfs threshold is only added when its source threshold exists;
/// the kubelet adds an empty (never-met) threshold instead, which has the same effect.
pub fn update_container_fs_thresholds(
    thresholds: Vec<Threshold>,
    image_fs: bool,
    separate_container_image_fs: bool,
) -> (Vec<Threshold>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut kept = Vec::with_capacity(thresholds.len());
    for t in thresholds {
        match t.signal {
            Signal::ContainerFsAvailable | Signal::ContainerFsInodesFree => {
                let kind = if t.is_hard() { "hard" } else { "soft" };
                warnings.push(format!("found {} for {kind} eviction. ignoring", t.signal));
            }
            _ => kept.push(t),
        }
    }
    let use_nodefs = image_fs == separate_container_image_fs;
    let (bytes_src, inodes_src) = if use_nodefs {
        (Signal::NodeFsAvailable, Signal::NodeFsInodesFree)
    } else {
        (Signal::ImageFsAvailable, Signal::ImageFsInodesFree)
    };
    let derived: Vec<Threshold> = kept
        .iter()
        .filter_map(|t| {
            let signal = if t.signal == bytes_src {
                Signal::ContainerFsAvailable
            } else if t.signal == inodes_src {
                Signal::ContainerFsInodesFree
            } else {
                return None;
            };
            Some(Threshold {
                signal,
                ..t.clone()
            })
        })
        .collect();
    kept.extend(derived);
    (kept, warnings)
}

/// Parses the flag form of a threshold map, `memory.available<100Mi,nodefs.available<10%`
/// (the kubelet's `LangleSeparatedMapStringString`). An empty string is an empty map.
pub fn parse_threshold_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_flag_pairs(
        s,
        '<',
        ThresholdError::ThresholdSyntax,
        ThresholdError::DuplicateThreshold,
    )
}

/// Parses `--eviction-soft-grace-period`, `memory.available=1m30s,...`.
pub fn parse_grace_period_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_flag_pairs(
        s,
        '=',
        ThresholdError::GracePeriodSyntax,
        ThresholdError::DuplicateGracePeriod,
    )
}

/// Parses `--eviction-minimum-reclaim`, `memory.available=500Mi,...`.
pub fn parse_minimum_reclaim_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_flag_pairs(
        s,
        '=',
        ThresholdError::MinReclaimSyntax,
        ThresholdError::DuplicateMinReclaim,
    )
}

fn parse_flag_pairs(
    s: &str,
    sep: char,
    syntax: fn(String) -> ThresholdError,
    duplicate: fn(String) -> ThresholdError,
) -> Result<BTreeMap<String, String>, ThresholdError> {
    let mut out = BTreeMap::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for statement in s.split(',') {
        let statement = statement.trim();
        let mut parts = statement.split(sep);
        let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(syntax(statement.to_string()));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(syntax(statement.to_string()));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(duplicate(k.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: i64 = 1 << 20;
    const GI: i64 = 1 << 30;

    fn q(v: i64) -> ThresholdValue {
        ThresholdValue::Quantity(v)
    }
    fn p(v: f32) -> ThresholdValue {
        ThresholdValue::Percentage(v)
    }
    fn t(
        signal: Signal,
        value: ThresholdValue,
        grace: u64,
        min_reclaim: Option<ThresholdValue>,
    ) -> Threshold {
        Threshold {
            signal,
            operator: Operator::LessThan,
            value,
            grace_period: Duration::from_secs(grace),
            min_reclaim,
        }
    }

    /// Flag-form inputs through the whole parser, with no allocatable enforcement. An empty
    /// hard flag is an explicitly empty map (no defaults), as in the kubelet's test.
    fn parse_flags(
        hard: &str,
        soft: &str,
        grace: &str,
        reclaim: &str,
    ) -> Result<Vec<Threshold>, ThresholdError> {
        let hard = parse_threshold_flag(hard)?;
        parse_thresholds(
            Some(&hard),
            &parse_threshold_flag(soft)?,
            &parse_grace_period_flag(grace)?,
            &parse_minimum_reclaim_flag(reclaim)?,
            &[] as &[&str],
            false,
        )
    }

    // The accepted cases of the kubelet's TestParseThresholdConfig (helpers_test.go).
    #[test]
    fn accepts_kubelet_examples() {
        use Signal::*;
        let cases: Vec<(&str, [&str; 4], Vec<Threshold>)> = vec![
            ("no values", ["", "", "", ""], vec![]),
            (
                "all flag values",
                [
                    "memory.available<150Mi",
                    "memory.available<300Mi",
                    "memory.available=30s",
                    "memory.available=0",
                ],
                vec![
                    t(MemoryAvailable, q(150 * MI), 0, Some(q(0))),
                    t(MemoryAvailable, q(300 * MI), 30, Some(q(0))),
                ],
            ),
            (
                "all flag values in percentages",
                [
                    "memory.available<10%",
                    "memory.available<30%",
                    "memory.available=30s",
                    "memory.available=5%",
                ],
                vec![
                    t(MemoryAvailable, p(0.1), 0, Some(p(0.05))),
                    t(MemoryAvailable, p(0.3), 30, Some(p(0.05))),
                ],
            ),
            (
                "disk flag values",
                [
                    "imagefs.available<150Mi,nodefs.available<100Mi",
                    "imagefs.available<300Mi,nodefs.available<200Mi",
                    "imagefs.available=30s,nodefs.available=30s",
                    "imagefs.available=2Gi,nodefs.available=1Gi",
                ],
                vec![
                    t(ImageFsAvailable, q(150 * MI), 0, Some(q(2 * GI))),
                    t(NodeFsAvailable, q(100 * MI), 0, Some(q(GI))),
                    t(ImageFsAvailable, q(300 * MI), 30, Some(q(2 * GI))),
                    t(NodeFsAvailable, q(200 * MI), 30, Some(q(GI))),
                ],
            ),
            (
                "disk flag values in percentages",
                [
                    "imagefs.available<15%,nodefs.available<10.5%",
                    "imagefs.available<30%,nodefs.available<20.5%",
                    "imagefs.available=30s,nodefs.available=30s",
                    "imagefs.available=10%,nodefs.available=5%",
                ],
                vec![
                    t(ImageFsAvailable, p(0.15), 0, Some(p(0.1))),
                    t(NodeFsAvailable, p(0.105), 0, Some(p(0.05))),
                    t(ImageFsAvailable, p(0.3), 30, Some(p(0.1))),
                    t(NodeFsAvailable, p(0.205), 30, Some(p(0.05))),
                ],
            ),
            (
                "inode flag values",
                [
                    "imagefs.inodesFree<150Mi,nodefs.inodesFree<100Mi",
                    "imagefs.inodesFree<300Mi,nodefs.inodesFree<200Mi",
                    "imagefs.inodesFree=30s,nodefs.inodesFree=30s",
                    "imagefs.inodesFree=2Gi,nodefs.inodesFree=1Gi",
                ],
                vec![
                    t(ImageFsInodesFree, q(150 * MI), 0, Some(q(2 * GI))),
                    t(NodeFsInodesFree, q(100 * MI), 0, Some(q(GI))),
                    t(ImageFsInodesFree, q(300 * MI), 30, Some(q(2 * GI))),
                    t(NodeFsInodesFree, q(200 * MI), 30, Some(q(GI))),
                ],
            ),
            (
                "0% and 100% are ignored, and then need no grace period",
                [
                    "memory.available<0%,nodefs.available<100%",
                    "pid.available<100%",
                    "",
                    "",
                ],
                vec![],
            ),
            (
                "pid signal",
                ["pid.available<10%", "", "", ""],
                vec![t(PidAvailable, p(0.1), 0, None)],
            ),
            (
                "grace and reclaim for signals without thresholds are ignored",
                ["", "", "nodefs.available=1m", "pid.available=100"],
                vec![],
            ),
        ];
        for (name, [h, s, g, r], want) in cases {
            let got = parse_flags(h, s, g, r).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    // The rejected cases of TestParseThresholdConfig, with the kubelet's messages.
    #[test]
    fn rejects_kubelet_examples() {
        let cases: &[(&str, [&str; 4], &str)] = &[
            (
                "invalid-signal",
                ["mem.available<150Mi", "", "", ""],
                "unsupported eviction signal mem.available",
            ),
            (
                "hard-signal-negative",
                ["memory.available<-150Mi", "", "", ""],
                "eviction threshold memory.available must be positive: -150Mi",
            ),
            (
                "hard-signal-zero",
                ["memory.available<0", "", "", ""],
                "eviction threshold memory.available must be positive: 0",
            ),
            (
                "hard-signal-negative-percentage",
                ["memory.available<-15%", "", "", ""],
                "eviction percentage threshold memory.available must be >= 0%: -15%",
            ),
            (
                "hard-signal-percentage-above-100",
                ["memory.available<150%", "", "", ""],
                "eviction percentage threshold memory.available must be <= 100%: 150%",
            ),
            (
                "soft-signal-negative",
                ["", "memory.available<-150Mi", "", ""],
                "eviction threshold memory.available must be positive: -150Mi",
            ),
            (
                "duplicate-signal",
                ["memory.available<150Mi,memory.available<100Mi", "", "", ""],
                "found duplicate eviction threshold for signal memory.available",
            ),
            (
                "valid-and-invalid-signal",
                ["memory.available<150Mi,invalid.foo<150Mi", "", "", ""],
                "unsupported eviction signal invalid.foo",
            ),
            (
                "soft-no-grace-period",
                ["", "memory.available<150Mi", "", ""],
                "grace period must be specified for the soft eviction threshold memory.available",
            ),
            (
                "soft-neg-grace-period",
                ["", "memory.available<150Mi", "memory.available=-30s", ""],
                "invalid eviction grace period specified: -30s, must be a positive value",
            ),
            (
                "neg-reclaim",
                ["", "", "", "memory.available=-300Mi"],
                "negative eviction minimum reclaim specified for memory.available",
            ),
            (
                "duplicate-reclaim",
                [
                    "",
                    "",
                    "",
                    "memory.available=-300Mi,memory.available=-100Mi",
                ],
                "duplicate eviction minimum reclaim specified for memory.available",
            ),
            (
                "duplicate-grace",
                ["", "", "memory.available=1s,memory.available=2s", ""],
                "duplicate eviction grace period specified for memory.available",
            ),
            (
                "zero-percent-reclaim",
                ["", "", "", "memory.available=0%"],
                "eviction percentage minimum reclaim memory.available must be positive: 0%",
            ),
            (
                "grace-for-unknown-signal",
                ["", "", "foo.available=1s", ""],
                "unsupported eviction signal foo.available",
            ),
            (
                "bad-syntax",
                ["memory.available=100Mi", "", "", ""],
                "invalid eviction threshold syntax memory.available=100Mi, expected <signal><operator><value>",
            ),
            (
                "bad-grace-syntax",
                ["", "", "memory.available", ""],
                "invalid eviction grace period syntax memory.available, expected <signal>=<duration>",
            ),
            (
                "bad-reclaim-syntax",
                ["", "", "", "memory.available<1Gi"],
                "invalid eviction minimum reclaim syntax: memory.available<1Gi, expected <signal>=<value>",
            ),
        ];
        for (name, [h, s, g, r], want) in cases {
            let err = parse_flags(h, s, g, r).expect_err(name);
            assert_eq!(err.to_string(), *want, "{name}");
        }
        let err = parse_flags("memory.available<lots", "", "", "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid eviction value \"lots\" for memory.available"),
            "{err}"
        );
        let err = parse_flags("", "memory.available<1Gi", "memory.available=1d", "").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }

    #[test]
    fn defaults_apply_when_hard_is_unset() {
        use Signal::*;
        let none = BTreeMap::new();
        let got = parse_thresholds(None, &none, &none, &none, &[] as &[&str], false).unwrap();
        // BTreeMap order of the default keys.
        assert_eq!(
            got,
            vec![
                t(ImageFsAvailable, p(0.15), 0, None),
                t(ImageFsInodesFree, p(0.05), 0, None),
                t(MemoryAvailable, q(100 * MI), 0, None),
                t(NodeFsAvailable, p(0.1), 0, None),
                t(NodeFsInodesFree, p(0.05), 0, None),
            ]
        );
    }

    #[test]
    fn setting_one_hard_key_drops_the_other_defaults_unless_merged() {
        let none = BTreeMap::new();
        let hard = parse_threshold_flag("memory.available<500Mi").unwrap();
        let only =
            parse_thresholds(Some(&hard), &none, &none, &none, &[] as &[&str], false).unwrap();
        assert_eq!(only, vec![t(Signal::MemoryAvailable, q(500 * MI), 0, None)]);

        let merged =
            parse_thresholds(Some(&hard), &none, &none, &none, &[] as &[&str], true).unwrap();
        assert_eq!(merged.len(), 5);
        assert!(merged.contains(&t(Signal::MemoryAvailable, q(500 * MI), 0, None)));
        assert!(merged.contains(&t(Signal::NodeFsAvailable, p(0.1), 0, None)));

        // An explicitly empty map means no hard thresholds at all.
        let empty =
            parse_thresholds(Some(&none), &none, &none, &none, &[] as &[&str], false).unwrap();
        assert!(empty.is_empty());
        let empty_merged =
            parse_thresholds(Some(&none), &none, &none, &none, &[] as &[&str], true).unwrap();
        assert_eq!(empty_merged.len(), 5);
    }

    #[test]
    fn allocatable_copies_hard_memory_thresholds_when_pods_enforced() {
        let hard = parse_threshold_flag("memory.available<150Mi").unwrap();
        let soft = parse_threshold_flag("memory.available<300Mi").unwrap();
        let grace = parse_grace_period_flag("memory.available=30s").unwrap();
        let reclaim = parse_minimum_reclaim_flag("memory.available=0").unwrap();
        let got = parse_thresholds(Some(&hard), &soft, &grace, &reclaim, &["pods"], false).unwrap();
        assert_eq!(
            got,
            vec![
                t(Signal::MemoryAvailable, q(150 * MI), 0, Some(q(0))),
                t(Signal::MemoryAvailable, q(300 * MI), 30, Some(q(0))),
                t(
                    Signal::AllocatableMemoryAvailable,
                    q(150 * MI),
                    0,
                    Some(q(0))
                ),
            ]
        );
        let none = BTreeMap::new();
        let without = parse_thresholds(
            Some(&hard),
            &none,
            &none,
            &none,
            &["system-reserved"],
            false,
        )
        .unwrap();
        assert_eq!(without.len(), 1);
    }

    #[test]
    fn containerfs_follows_nodefs_on_a_single_filesystem() {
        let hard = parse_threshold_flag(
            "nodefs.available<10%,nodefs.inodesFree<5%,containerfs.available<1Gi",
        )
        .unwrap();
        let soft = parse_threshold_flag("nodefs.available<20%").unwrap();
        let grace = parse_grace_period_flag("nodefs.available=1m").unwrap();
        let none = BTreeMap::new();
        let parsed =
            parse_thresholds(Some(&hard), &soft, &grace, &none, &[] as &[&str], false).unwrap();
        let (got, warnings) = update_container_fs_thresholds(parsed, false, false);
        assert_eq!(
            warnings,
            vec!["found containerfs.available for hard eviction. ignoring".to_string()]
        );
        assert_eq!(
            got,
            vec![
                t(Signal::NodeFsAvailable, p(0.1), 0, None),
                t(Signal::NodeFsInodesFree, p(0.05), 0, None),
                t(Signal::NodeFsAvailable, p(0.2), 60, None),
                t(Signal::ContainerFsAvailable, p(0.1), 0, None),
                t(Signal::ContainerFsInodesFree, p(0.05), 0, None),
                t(Signal::ContainerFsAvailable, p(0.2), 60, None),
            ]
        );
        // Dedicated imagefs (not split): containerfs copies imagefs.
        let hard = parse_threshold_flag("imagefs.available<15%,nodefs.available<10%").unwrap();
        let parsed =
            parse_thresholds(Some(&hard), &none, &none, &none, &[] as &[&str], false).unwrap();
        let (got, warnings) = update_container_fs_thresholds(parsed, true, false);
        assert!(warnings.is_empty());
        assert!(got.contains(&t(Signal::ContainerFsAvailable, p(0.15), 0, None)));
    }

    #[test]
    fn quantity_for_capacity() {
        assert_eq!(q(100 * MI).quantity_for(8 * GI), 100 * MI);
        assert_eq!(p(0.1).quantity_for(1000), 100);
        assert_eq!(p(0.05).quantity_for(0), 0);
        assert_eq!(p(0.5).quantity_for(10 * GI), 5 * GI);
        // Like Go, the float32 fraction is widened before multiplying.
        assert_eq!(
            p(0.15).quantity_for(10 * GI),
            (10.0 * GI as f64 * f64::from(0.15f32)) as i64
        );
    }

    #[test]
    fn signals_round_trip_their_names() {
        for s in Signal::ALL {
            assert_eq!(s.as_str().parse::<Signal>(), Ok(s));
        }
        assert_eq!(
            "swap.available".parse::<Signal>(),
            Err(ThresholdError::UnsupportedSignal("swap.available".into()))
        );
    }
}
