//! CPU figures: cumulative CPU time and the rate (`usageNanoCores`) derived from two readings.
//!
//! A cgroup's CPU counter only grows; a rate needs two readings. cAdvisor gets them from its
//! housekeeping loop; the kubelet's CRI stats provider (`pkg/kubelet/stats/cri_stats_provider.go`,
//! `getAndUpdateContainerUsageNanoCores`) keeps the last cumulative reading per container and
//! computes the rate against it when stats are asked for. [`UsageCache`] is that cache: the
//! first scrape of a cgroup has no `usageNanoCores`, every later one reports the average over
//! the time since the previous scrape.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Two scrapes closer than this reuse the rate of the last window instead of measuring a new
/// one: a few milliseconds of CPU time is too coarse to divide by (tick granularity), and two
/// clients scraping at once (metrics-server and a human) should not make each other's readings
/// noisy. One second still follows a 10–15 s scrape interval exactly.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);

/// Nano-cores used between two CPU-time readings `elapsed` apart (0 if the counter went back,
/// e.g. the cgroup was recreated).
pub fn rate(before: u64, after: u64, elapsed: Duration) -> u64 {
    let ns = elapsed.as_nanos().max(1);
    (u128::from(after.saturating_sub(before)) * 1_000_000_000 / ns) as u64
}

/// Clock ticks per second (`USER_HZ`), for `/proc` CPU times.
pub fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .map_or(100, |h| h as u64)
}

/// Busy CPU time of the whole machine from `<proc_root>/stat`, in nanoseconds: every field of
/// the `cpu` line but idle and iowait (cAdvisor's root container reads the root cgroup's
/// `cpuacct.usage`, which counts the same time).
pub fn node_cpu_ns(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    Some(busy * (1_000_000_000 / clock_ticks()))
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    cumulative_ns: u64,
    at: Instant,
    /// The rate over the window that ended at `at`, if there was a window.
    nano_cores: Option<u64>,
}

/// The last cumulative reading per cgroup (keyed by the caller: a cgroup path, `node`, ...).
#[derive(Debug, Default)]
pub struct UsageCache {
    samples: Mutex<HashMap<String, Sample>>,
}

impl UsageCache {
    /// Record `cumulative_ns` read now for `key` and return the rate since the previous
    /// reading: `None` on the first reading of a key or after the counter went back (a new
    /// cgroup under the same key); within [`MIN_WINDOW`] of the last window the rate of that
    /// window is returned and the stored sample kept.
    pub fn update(&self, key: &str, cumulative_ns: u64) -> Option<u64> {
        self.update_at(key, cumulative_ns, Instant::now())
    }

    fn update_at(&self, key: &str, cumulative_ns: u64, now: Instant) -> Option<u64> {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Sample {
            cumulative_ns,
            at: now,
            nano_cores: None,
        };
        let Some(prev) = samples.get(key).copied() else {
            samples.insert(key.to_string(), fresh);
            return None;
        };
        if cumulative_ns < prev.cumulative_ns {
            samples.insert(key.to_string(), fresh);
            return None;
        }
        let elapsed = now.saturating_duration_since(prev.at);
        if elapsed < MIN_WINDOW {
            return prev.nano_cores;
        }
        let nano_cores = rate(prev.cumulative_ns, cumulative_ns, elapsed);
        samples.insert(
            key.to_string(),
            Sample {
                nano_cores: Some(nano_cores),
                ..fresh
            },
        );
        Some(nano_cores)
    }

    /// Forget every key not in `keep` (containers and pods gone since the last scrape).
    pub fn retain(&self, keep: &std::collections::HashSet<String>) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        // 50 ms of CPU time in 500 ms: a tenth of a core.
        assert_eq!(
            rate(1_000_000_000, 1_050_000_000, Duration::from_millis(500)),
            100_000_000
        );
        assert_eq!(rate(10, 5, Duration::from_secs(1)), 0);
    }

    #[test]
    fn cache_needs_two_readings_and_a_window() {
        let c = UsageCache::default();
        let t0 = Instant::now();
        assert_eq!(c.update_at("a", 1_000, t0), None);
        // Too soon: no window yet, nothing to report.
        assert_eq!(
            c.update_at("a", 2_000, t0 + Duration::from_millis(10)),
            None
        );
        // Two seconds, half a core.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(c.update_at("a", 1_000_001_000, t2), Some(500_000_000));
        // Too soon again: the last window's rate.
        assert_eq!(
            c.update_at("a", 1_000_001_000, t2 + Duration::from_millis(5)),
            Some(500_000_000)
        );
        // The counter went back (a new cgroup): start over.
        assert_eq!(c.update_at("a", 10, t2 + Duration::from_secs(3)), None);
        let keep = std::collections::HashSet::new();
        c.retain(&keep);
        assert_eq!(c.update_at("a", 20, t2 + Duration::from_secs(9)), None);
    }

    #[test]
    fn node_cpu_from_proc_stat() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("stat"),
            "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n",
        )
        .unwrap();
        assert_eq!(
            node_cpu_ns(d.path()),
            Some(161 * (1_000_000_000 / clock_ticks()))
        );
    }
}
