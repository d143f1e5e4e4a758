//! The kubelet's image garbage collector (`pkg/kubelet/images/image_gc_manager.go`): when the
//! image filesystem is at least `imageGCHighThresholdPercent` full, delete images least
//! recently used first, never one in use and never one younger than `imageMinimumGCAge`, until
//! usage is down to `imageGCLowThresholdPercent`. Layers a surviving image shares stay (the
//! store's sweep counts references by chain ID). [`plan`] is pure: the caller gives usage,
//! images, time. [`ImageGc`] is the agent's `realImageGCManager`: [`ImageGc::garbage_collect`]
//! every [`IMAGE_GC_PERIOD`] ([`ImageGc::run`]), and [`ImageGc::delete_unused_images`] for the
//! eviction manager's node-level reclaim. An image is in use while a container the node still
//! has (running or exited, not yet removed) has its layers as its overlay root, as the kubelet
//! counts every container the runtime lists.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::store::{ImageRecord, Store, StoreError};
use crate::events::{self, EventRecorder, EventType, ObjectRef};

/// The kubelet's `ImageGCPeriod`: how often the image GC looks at the image filesystem. Shorter
/// frees space sooner when the disk fills between eviction cycles (which reclaim images
/// themselves under pressure), at the cost of a statvfs and a read of every image record and
/// container config per pass.
pub const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);
/// An environment variable that shortens [`IMAGE_GC_PERIOD`] (a duration such as `1s`), for
/// tests; not a kubelet setting.
pub const IMAGE_GC_PERIOD_ENV: &str = "MINIKUBELET_IMAGE_GC_PERIOD";

#[derive(Clone, Copy, Debug)]
pub struct GcPolicy {
    /// `imageGCHighThresholdPercent`, default 85.
    pub high_threshold_percent: u8,
    /// `imageGCLowThresholdPercent`, default 80.
    pub low_threshold_percent: u8,
    /// `imageMinimumGCAge`, default 2 m: an image just pulled is not deleted before its pod
    /// starts.
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// The image filesystem's size and free bytes (statvfs of the store).
#[derive(Clone, Copy, Debug)]
pub struct FsUsage {
    pub capacity: u64,
    pub available: u64,
}

/// statvfs of `path`.
pub fn fs_usage(path: &std::path::Path) -> std::io::Result<FsUsage> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let f = s.fragment_size();
    Ok(FsUsage {
        capacity: s.blocks() * f,
        available: s.blocks_available() * f,
    })
}

/// The images to delete (names, in order), and the bytes the kubelet expects that to free.
pub fn plan(
    policy: &GcPolicy,
    usage: FsUsage,
    images: &[ImageRecord],
    in_use: &HashSet<String>,
    now: u64,
) -> (Vec<String>, u64) {
    match amount_to_free(policy, usage) {
        Some(to_free) => free_space(policy, to_free, images, in_use, now),
        None => (vec![], 0),
    }
}

/// The bytes to free when usage is at or above the high threshold (`GarbageCollect`): down to
/// the low threshold. `None` below it, for an empty filesystem, or with the threshold at 100
/// (the kubelet's way to turn image GC off).
pub fn amount_to_free(policy: &GcPolicy, usage: FsUsage) -> Option<u64> {
    if usage.capacity == 0 || policy.high_threshold_percent >= 100 {
        return None;
    }
    let available = usage.available.min(usage.capacity);
    let used_percent = 100 - (available.saturating_mul(100) / usage.capacity) as u8;
    if used_percent < policy.high_threshold_percent {
        return None;
    }
    let target_available =
        usage.capacity * (100 - u64::from(policy.low_threshold_percent.min(100))) / 100;
    Some(target_available.saturating_sub(available))
}

/// `freeSpace`: unused images old enough, least recently used first, until `to_free` bytes.
pub fn free_space(
    policy: &GcPolicy,
    to_free: u64,
    images: &[ImageRecord],
    in_use: &HashSet<String>,
    now: u64,
) -> (Vec<String>, u64) {
    let mut candidates: Vec<&ImageRecord> = images
        .iter()
        .filter(|r| !in_use.contains(&r.name) && !in_use.contains(&r.id))
        .filter(|r| now.saturating_sub(r.pulled_at) >= policy.min_age.as_secs())
        .collect();
    candidates.sort_by_key(|r| (r.last_used, r.pulled_at));
    let mut freed = 0;
    let mut out = Vec::new();
    for r in candidates {
        if freed >= to_free {
            break;
        }
        freed += r.size + r.unpacked_size();
        out.push(r.name.clone());
    }
    (out, freed)
}

/// Names of the images whose layers are the overlay root of a container in
/// `<root_dir>/containers` (its `config.json`, written by the runtime at create, kept until the
/// container is removed, read again after an agent restart).
pub fn images_in_use(root_dir: &Path, store: &Store, images: &[ImageRecord]) -> HashSet<String> {
    let mut roots = Vec::new();
    let dirs = std::fs::read_dir(root_dir.join("containers"))
        .into_iter()
        .flatten();
    for d in dirs.flatten() {
        let cfg = std::fs::read(d.path().join(crate::shim::CONFIG_FILE)).ok();
        let cfg = cfg.and_then(|b| serde_json::from_slice::<crate::shim::ShimConfig>(&b).ok());
        if let Some(crate::shim::Rootfs::Overlay { lower, .. }) =
            cfg.and_then(|c| c.isolation).map(|i| i.rootfs)
        {
            roots.push(lower);
        }
    }
    images
        .iter()
        .filter(|r| store.lower_dirs(r).is_ok_and(|l| roots.contains(&l)))
        .map(|r| r.name.clone())
        .collect()
}

/// Why a pass of the image GC failed (the kubelet's texts).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("failed to get imageFs stats: statvfs {path}: {source}")]
    Stats {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnough { to_free: u64, freed: u64 },
    #[error("image store: {0}")]
    Store(#[from] StoreError),
}

/// The agent's image GC (`realImageGCManager`).
pub struct ImageGc {
    store: Store,
    root_dir: PathBuf,
    policy: GcPolicy,
    recorder: EventRecorder,
    node_name: String,
}

impl ImageGc {
    /// A GC over `store`; `root_dir` holds the containers whose images are in use.
    pub fn new(
        store: Store,
        root_dir: &Path,
        policy: GcPolicy,
        recorder: EventRecorder,
        node_name: &str,
    ) -> Self {
        ImageGc {
            store,
            root_dir: root_dir.to_path_buf(),
            policy,
            recorder,
            node_name: node_name.to_string(),
        }
    }

    /// Delete `names` and sweep what no image refers to any more, under the store's lock (a
    /// pull in progress finishes first). Returns the bytes the sweep freed.
    fn delete(&self, names: &[String]) -> Result<u64, GcError> {
        let _lock = self.store.lock()?;
        for n in names {
            match self.store.remove(n) {
                Ok(r) => {
                    tracing::info!(image = %r.name, imageID = %r.id, "removing image to free bytes")
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.store.sweep()?)
    }

    /// `GarbageCollect`: one pass, when usage is at or above the high threshold. Blocking.
    pub fn garbage_collect(&self) -> Result<u64, GcError> {
        let root = self.store.root();
        let usage = fs_usage(root).map_err(|source| GcError::Stats {
            path: root.to_path_buf(),
            source,
        })?;
        if usage.capacity == 0 {
            let e = GcError::InvalidCapacity;
            self.warn(events::INVALID_DISK_CAPACITY, &e);
            return Err(e);
        }
        let Some(to_free) = amount_to_free(&self.policy, usage) else {
            return Ok(0);
        };
        let used_percent = 100 - usage.available.saturating_mul(100) / usage.capacity;
        tracing::info!(
            usage = used_percent,
            highThreshold = self.policy.high_threshold_percent,
            amountToFree = to_free,
            lowThreshold = self.policy.low_threshold_percent,
            "disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let images = self.store.list()?;
        let in_use = images_in_use(&self.root_dir, &self.store, &images);
        let (names, freed) =
            free_space(&self.policy, to_free, &images, &in_use, super::store::now());
        self.delete(&names)?;
        if freed < to_free {
            let e = GcError::NotEnough { to_free, freed };
            self.warn(events::FREE_DISK_SPACE_FAILED, &e);
            return Err(e);
        }
        Ok(freed)
    }

    /// `DeleteUnusedImages`: every unused image older than the minimum age, whatever the
    /// thresholds (the eviction manager's reclaim under disk pressure). Blocking.
    pub fn delete_unused_images(&self) -> Result<u64, GcError> {
        let images = self.store.list()?;
        let in_use = images_in_use(&self.root_dir, &self.store, &images);
        let (names, _) = free_space(
            &self.policy,
            u64::MAX,
            &images,
            &in_use,
            super::store::now(),
        );
        if names.is_empty() {
            return Ok(0);
        }
        self.delete(&names)
    }

    fn warn(&self, reason: &str, e: &GcError) {
        self.recorder.event(
            ObjectRef::node(&self.node_name),
            EventType::Warning,
            reason,
            e.to_string(),
        );
    }

    /// The kubelet's `StartGarbageCollection` loop for images: a pass every `period` (the
    /// first after one period, once the pods of a restarted agent are adopted); a second
    /// failure in a row is an `ImageGCFailed` event.
    pub async fn run(self: std::sync::Arc<Self>, period: Duration) {
        let mut failed_before = false;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let gc = self.clone();
            let result = tokio::task::spawn_blocking(move || gc.garbage_collect()).await;
            match result {
                Ok(Ok(freed)) => {
                    failed_before = false;
                    tracing::debug!(freed, "image garbage collection succeeded");
                }
                Ok(Err(e)) => {
                    if failed_before {
                        tracing::error!(error = %e, "image garbage collection failed multiple times in a row");
                        self.warn(events::IMAGE_GC_FAILED, &e);
                    } else {
                        tracing::error!(error = %e, "image garbage collection failed once; stats initialization may not have completed yet");
                    }
                    failed_before = true;
                }
                Err(e) => tracing::error!(error = %e, "image garbage collection panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(name: &str, size: u64, pulled: u64, used: u64) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            id: format!("sha256:{name}"),
            manifest_digest: String::new(),
            layers: vec![],
            size,
            pulled_at: pulled,
            last_used: used,
        }
    }

    #[test]
    fn amount_to_free_table() {
        let p = |h, l| GcPolicy {
            high_threshold_percent: h,
            low_threshold_percent: l,
            min_age: Duration::ZERO,
        };
        let u = |c, a| FsUsage {
            capacity: c,
            available: a,
        };
        // (policy, usage, want)
        let cases = [
            (p(85, 80), u(100, 16), None),    // 84 % used: below
            (p(85, 80), u(100, 15), Some(5)), // 85 %: at the threshold, down to 80 %
            (p(85, 80), u(1000, 0), Some(200)),
            (p(100, 80), u(100, 0), None),   // 100: GC off
            (p(1, 0), u(100, 60), Some(40)), // down to 0 %: everything
            (p(85, 80), u(0, 0), None),      // no capacity
            (p(85, 80), u(100, 200), None),  // available > capacity: treated as empty
        ];
        for (policy, usage, want) in cases {
            assert_eq!(amount_to_free(&policy, usage), want, "{policy:?} {usage:?}");
        }
    }

    #[test]
    fn delete_unused_keeps_in_use_and_young() {
        let imgs = [
            img("young", 50, 990, 0),
            img("inuse", 50, 0, 1),
            img("old", 4, 0, 5),
        ];
        let in_use: HashSet<String> = ["inuse".to_string()].into();
        let (d, _) = free_space(&GcPolicy::default(), u64::MAX, &imgs, &in_use, 1000);
        assert_eq!(d, ["old"]);
        // The image's ID marks it used as well as its name.
        let by_id: HashSet<String> = ["sha256:old".to_string()].into();
        let (d, _) = free_space(&GcPolicy::default(), u64::MAX, &imgs[2..], &by_id, 1000);
        assert!(d.is_empty());
    }

    #[test]
    fn below_high_threshold_nothing() {
        let u = FsUsage {
            capacity: 100,
            available: 16,
        };
        let (d, _) = plan(
            &GcPolicy::default(),
            u,
            &[img("a", 10, 0, 0)],
            &HashSet::new(),
            1000,
        );
        assert!(d.is_empty());
    }

    #[test]
    fn lru_first_skips_in_use_and_young_until_low() {
        // 90 % used: free down to 80 % → 10 bytes.
        let u = FsUsage {
            capacity: 100,
            available: 10,
        };
        let imgs = [
            img("young", 50, 990, 0), // pulled 10 s ago
            img("inuse", 50, 0, 1),
            img("old", 4, 0, 5),
            img("older", 4, 0, 2),
            img("recent", 4, 0, 900),
            img("spare", 4, 0, 950),
        ];
        let in_use: HashSet<String> = ["inuse".to_string()].into();
        let (d, freed) = plan(&GcPolicy::default(), u, &imgs, &in_use, 1000);
        assert_eq!(d, ["older", "old", "recent"]);
        assert_eq!(freed, 12);
    }
}
