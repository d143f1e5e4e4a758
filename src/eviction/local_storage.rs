//! Local-storage limit evictions: a pod whose emptyDir outgrows its `sizeLimit`, or whose
//! local ephemeral storage outgrows its `ephemeral-storage` limits, is evicted whatever the
//! node's thresholds say.
//!
//! Mirrors `localStorageEviction` in `pkg/kubelet/eviction/eviction_manager.go` and its three
//! checks, in the kubelet's order and with its messages:
//! 1. `emptyDirLimitEviction`: an emptyDir volume uses more than its `sizeLimit` (a positive
//!    limit) → `Usage of EmptyDir volume "<v>" exceeds the limit "<q>". `;
//! 2. `podEphemeralStorageLimitEviction`: the pod has an `ephemeral-storage` limit
//!    (`PodLimits`: the containers' limits summed, init containers' max, overhead) and its
//!    local storage (logs + emptyDir volumes + writable layers) exceeds it →
//!    `Pod ephemeral local storage usage exceeds the total limit of containers <q>. `;
//! 3. `containerEphemeralStorageLimitEviction`: a regular container with a non-zero
//!    `ephemeral-storage` limit uses more (logs + writable layer on a node without a dedicated
//!    image filesystem) → `Container <c> exceeded its local ephemeral storage limit "<q>". `.
//!
//! These run in every cycle before the threshold checks, only when the kubelet's
//! `LocalStorageCapacityIsolation` behaviour applies (the default), and may evict several pods
//! in one cycle; each eviction uses the 1 s grace period and, unlike a threshold eviction, no
//! `DisruptionTarget` condition and no annotations (the kubelet passes none). The image store
//! shares nodefs (no dedicated image filesystem), so a container's usage is its logs plus its
//! writable layer (the overlay's upper dir), as the kubelet counts it on such a node.

use k8s_openapi::api::core::v1::Pod;

use crate::api::quantity::{Format, Quantity};
use crate::api::resources::{EPHEMERAL_STORAGE, pod_limit_quantities};
use crate::eviction::signals::PodUsage;

/// The kubelet's metric label of an emptyDir limit eviction (`signalEmptyDirFsLimit`).
pub const SIGNAL_EMPTY_DIR_FS_LIMIT: &str = "emptydirfs.limit";
/// The kubelet's metric label of a pod limit eviction (`signalEphemeralPodFsLimit`).
pub const SIGNAL_EPHEMERAL_POD_FS_LIMIT: &str = "ephemeralpodfs.limit";
/// The kubelet's metric label of a container limit eviction (`signalEphemeralContainerFsLimit`).
pub const SIGNAL_EPHEMERAL_CONTAINER_FS_LIMIT: &str = "ephemeralcontainerfs.limit";

/// Why a pod is to be evicted for its local storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitEviction {
    /// The kubelet's label for the check that fired (`emptydirfs.limit`, ...).
    pub signal: &'static str,
    /// The eviction message (the pod's status message and the event's).
    pub message: String,
}

/// Go's `%q` of a plain string: Rust's `{:?}` agrees for the names and quantities used here
/// (no control characters or non-ASCII can occur in either).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn bytes(v: i64) -> Quantity {
    Quantity::new(v, Format::BinarySI)
}

/// `emptyDirLimitEviction`: the first emptyDir volume (spec order) with a positive
/// `sizeLimit` that its usage exceeds.
pub fn empty_dir_limit_eviction(pod: &Pod, usage: &PodUsage) -> Option<LimitEviction> {
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(size) = v
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
            .and_then(|q| Quantity::from_api(q).ok())
        else {
            continue;
        };
        let Some(used) = usage.volumes.get(&v.name) else {
            continue;
        };
        if size.sign() == std::cmp::Ordering::Greater && bytes(*used) > size {
            return Some(LimitEviction {
                signal: SIGNAL_EMPTY_DIR_FS_LIMIT,
                message: format!(
                    "Usage of EmptyDir volume {} exceeds the limit {}. ",
                    quoted(&v.name),
                    quoted(&size.to_string())
                ),
            });
        }
    }
    None
}

/// `podEphemeralStorageLimitEviction`: the pod's total local storage above its
/// `ephemeral-storage` limit.
pub fn pod_ephemeral_storage_limit_eviction(pod: &Pod, usage: &PodUsage) -> Option<LimitEviction> {
    let limit = pod_limit_quantities(pod).ephemeral_storage?;
    let used = bytes(usage.ephemeral_storage.unwrap_or(0));
    (used > limit).then(|| LimitEviction {
        signal: SIGNAL_EPHEMERAL_POD_FS_LIMIT,
        message: format!(
            "Pod ephemeral local storage usage exceeds the total limit of containers {limit}. "
        ),
    })
}

/// `containerEphemeralStorageLimitEviction`: the first container (in the order of the pod's
/// container stats, here the spec's) whose usage exceeds its non-zero `ephemeral-storage` limit.
pub fn container_ephemeral_storage_limit_eviction(
    pod: &Pod,
    usage: &PodUsage,
) -> Option<LimitEviction> {
    let containers = pod.spec.as_ref().map(|s| &s.containers)?;
    for cu in &usage.containers {
        let Some(limit) = containers
            .iter()
            .find(|c| c.name == cu.name)
            .and_then(|c| c.resources.as_ref())
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(EPHEMERAL_STORAGE))
            .and_then(|q| Quantity::from_api(q).ok())
            .filter(|q| q.value() != 0)
        else {
            continue;
        };
        let used = bytes(cu.ephemeral_storage.unwrap_or(0));
        if limit < used {
            return Some(LimitEviction {
                signal: SIGNAL_EPHEMERAL_CONTAINER_FS_LIMIT,
                message: format!(
                    "Container {} exceeded its local ephemeral storage limit {}. ",
                    cu.name,
                    quoted(&limit.to_string())
                ),
            });
        }
    }
    None
}

/// `localStorageEviction` for one pod: the first of the three checks that fires.
pub fn limit_eviction(pod: &Pod, usage: Option<&PodUsage>) -> Option<LimitEviction> {
    let usage = usage?;
    empty_dir_limit_eviction(pod, usage)
        .or_else(|| pod_ephemeral_storage_limit_eviction(pod, usage))
        .or_else(|| container_ephemeral_storage_limit_eviction(pod, usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::signals::ContainerUsage;

    const MI: i64 = 1 << 20;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn usage(total: i64, volumes: &[(&str, i64)], containers: &[(&str, i64)]) -> PodUsage {
        PodUsage {
            ephemeral_storage: Some(total),
            volumes: volumes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            containers: containers
                .iter()
                .map(|(n, b)| ContainerUsage {
                    name: n.to_string(),
                    ephemeral_storage: Some(*b),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn spec(limits: serde_json::Value, volumes: serde_json::Value) -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"limits": limits}},
                    {"name": "b"}
                ],
                "volumes": volumes
            }
        }))
    }

    #[test]
    fn empty_dir_size_limit() {
        let p = spec(
            serde_json::json!({}),
            serde_json::json!([
                {"name": "nolimit", "emptyDir": {}},
                {"name": "zero", "emptyDir": {"sizeLimit": "0"}},
                {"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}},
                {"name": "big", "emptyDir": {"sizeLimit": "1000000"}}
            ]),
        );
        // (volume usages, expected message)
        type Case<'a> = (Vec<(&'a str, i64)>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (vec![("nolimit", 100 * MI), ("zero", 100 * MI)], None),
            (vec![("cache", MI)], None),
            (
                vec![("cache", MI + 4096)],
                Some(r#"Usage of EmptyDir volume "cache" exceeds the limit "1Mi". "#),
            ),
            // The limit is printed in its canonical form.
            (
                vec![("big", 2 * MI)],
                Some(r#"Usage of EmptyDir volume "big" exceeds the limit "1M". "#),
            ),
        ];
        for (vols, want) in cases {
            let got = empty_dir_limit_eviction(&p, &usage(0, &vols, &[]));
            assert_eq!(got.as_ref().map(|e| e.message.as_str()), want, "{vols:?}");
            if let Some(e) = got {
                assert_eq!(e.signal, "emptydirfs.limit");
            }
        }
    }

    #[test]
    fn pod_and_container_limits() {
        let p = spec(
            serde_json::json!({"ephemeral-storage": "10Mi"}),
            serde_json::json!([{"name": "v", "emptyDir": {}}]),
        );
        // Total within the limit, container within its limit: nothing.
        assert_eq!(
            limit_eviction(&p, Some(&usage(9 * MI, &[("v", 8 * MI)], &[("a", MI)]))),
            None
        );
        // The emptyDir pushes the pod over: the pod message (the pod limit is the sum of
        // the containers' limits; `b` has none).
        assert_eq!(
            limit_eviction(&p, Some(&usage(11 * MI, &[("v", 10 * MI)], &[("a", MI)])))
                .map(|e| (e.signal, e.message)),
            Some((
                "ephemeralpodfs.limit",
                "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
                    .to_string()
            ))
        );
        // A container over its own limit (pod total below: the container check runs last,
        // so this needs a pod whose sum is higher, e.g. two limited containers).
        let two = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
                {"name": "b", "resources": {"limits": {"ephemeral-storage": "100Mi"}}}
            ]}
        }));
        assert_eq!(
            limit_eviction(&two, Some(&usage(2 * MI, &[], &[("a", 2 * MI), ("b", 0)])))
                .map(|e| (e.signal, e.message)),
            Some((
                "ephemeralcontainerfs.limit",
                r#"Container a exceeded its local ephemeral storage limit "1Mi". "#.to_string()
            ))
        );
        // No usage known: nothing.
        assert_eq!(limit_eviction(&two, None), None);
        // No ephemeral-storage limit anywhere: only emptyDir limits can evict.
        let none = spec(serde_json::json!({}), serde_json::json!([]));
        assert_eq!(
            limit_eviction(&none, Some(&usage(100 * MI, &[], &[("a", 100 * MI)]))),
            None
        );
    }

    #[test]
    fn empty_dir_check_comes_first() {
        let p = spec(
            serde_json::json!({"ephemeral-storage": "1Mi"}),
            serde_json::json!([{"name": "v", "emptyDir": {"sizeLimit": "1Mi"}}]),
        );
        let e = limit_eviction(&p, Some(&usage(5 * MI, &[("v", 4 * MI)], &[("a", MI)])))
            .map(|e| e.signal);
        assert_eq!(e, Some("emptydirfs.limit"));
    }
}
