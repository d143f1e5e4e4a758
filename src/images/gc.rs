//! The kubelet's image garbage collector (`pkg/kubelet/images/image_gc_manager.go`): when the
//! image filesystem is at least `imageGCHighThresholdPercent` full, delete images least
//! recently used first, never one in use and never one younger than `imageMinimumGCAge`, until
//! usage is down to `imageGCLowThresholdPercent`. Layers a surviving image shares stay (the
//! store's sweep counts references by chain ID). Pure: the caller gives usage, images, time.

use std::collections::HashSet;
use std::time::Duration;

use super::store::ImageRecord;

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
    if usage.capacity == 0 {
        return (vec![], 0);
    }
    let used_percent = 100 - (usage.available.saturating_mul(100) / usage.capacity) as u8;
    if used_percent < policy.high_threshold_percent {
        return (vec![], 0);
    }
    let target_available = usage.capacity * (100 - policy.low_threshold_percent as u64) / 100;
    let to_free = target_available.saturating_sub(usage.available);
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
