//! Crash-loop backoff, exactly as the kubelet computes it.
//!
//! Mirrors client-go `util/flowcontrol/backoff.go` as used by `kuberuntime_manager.go`
//! `doBackOff`: the first restart after a crash is immediate; each later one waits for the
//! current delay, measured from the previous instance's `finishedAt`, and the delay doubles from
//! 10 s up to 300 s. An entry that was not updated for twice the maximum (10 minutes of stable
//! running) starts again at 10 s. Times are milliseconds since the epoch so that tests can feed
//! any clock.
//!
//! [`NodeBackoff`] is the kubelet's one node-wide store (`kl.backOff`), shared by every pod
//! worker: an entry outlives its pod's worker, so removing a manifest and putting the identical
//! one back (same UID, same spec hash) keeps the delay where it was. Entries idle for 2 × the
//! maximum are garbage-collected (`Backoff.GC`, run by `HandlePodCleanups`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The kubelet's initial container restart delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// `MaxContainerBackOff`: the cap of the restart delay.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff_ms: i64,
    last_update_ms: i64,
}

/// Per-container backoff entries, keyed by the kubelet's stable container key
/// (`<pod>_<ns>_<uid>_<container>_<spec hash>`).
#[derive(Debug)]
pub struct Backoff {
    initial_ms: i64,
    max_ms: i64,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A backoff with the given initial delay and cap.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial_ms: initial.as_millis() as i64,
            max_ms: max.as_millis() as i64,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event_ms: i64, e: &Entry) -> bool {
        event_ms - e.last_update_ms > self.max_ms * 2
    }

    /// `IsInBackOffSince`: must a restart of a container that finished at `event_ms` still wait?
    pub fn is_in_backoff_since(&self, key: &str, event_ms: i64, now_ms: i64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if self.expired(event_ms, e) => false,
            Some(e) => now_ms - event_ms < e.backoff_ms,
        }
    }

    /// `Next`: record a restart; the next delay doubles, or starts over after a stable period.
    pub fn next(&mut self, key: &str, event_ms: i64, now_ms: i64) {
        let initial = self.initial_ms;
        let max = self.max_ms;
        let fresh = match self.entries.get(key) {
            None => true,
            Some(e) => self.expired(event_ms, e),
        };
        let e = self.entries.entry(key.to_string()).or_insert(Entry {
            backoff_ms: initial,
            last_update_ms: now_ms,
        });
        e.backoff_ms = if fresh {
            initial
        } else {
            (e.backoff_ms * 2).min(max)
        };
        e.last_update_ms = now_ms;
    }

    /// `GC`: forget entries not updated for more than 2 × the maximum.
    pub fn gc(&mut self, now_ms: i64) {
        let limit = self.max_ms * 2;
        self.entries
            .retain(|_, e| now_ms - e.last_update_ms <= limit);
    }

    /// The current delay for `key` (for the waiting message).
    pub fn get(&self, key: &str) -> Duration {
        Duration::from_millis(self.entries.get(key).map_or(0, |e| e.backoff_ms) as u64)
    }
}

/// The node-wide crash-loop back-off (`kl.backOff`): one [`Backoff`] behind a lock, shared by
/// every pod worker through `PodContext`.
#[derive(Debug, Default)]
pub struct NodeBackoff(Mutex<Backoff>);

impl NodeBackoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Backoff> {
        // A panic while holding the lock leaves plain numbers behind: keep using them.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Backoff::is_in_backoff_since`].
    pub fn is_in_backoff_since(&self, key: &str, event_ms: i64, now_ms: i64) -> bool {
        self.lock().is_in_backoff_since(key, event_ms, now_ms)
    }

    /// See [`Backoff::next`]; also drops entries idle for 2 × the maximum (the kubelet's
    /// periodic `GC`, done here whenever an entry is written, which bounds the map the same way).
    pub fn next(&self, key: &str, event_ms: i64, now_ms: i64) {
        let mut b = self.lock();
        b.gc(now_ms);
        b.next(key, event_ms, now_ms);
    }

    /// See [`Backoff::get`].
    pub fn get(&self, key: &str) -> Duration {
        self.lock().get(key)
    }

    /// Number of entries (tests, debugging).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A duration as Go's `time.Duration.String()` prints it (`10s`, `1m20s`, `5m0s`), which is how
/// it appears in the kubelet's `back-off 1m20s restarting failed container=...` message.
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let ms = d.subsec_millis();
    let secs = if ms == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{ms:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    /// A container that crashes right after each start: the delays the kubelet waits.
    #[test]
    fn crash_loop_delays_double_to_the_cap() {
        let mut b = Backoff::default();
        let key = "web_default_uid_c_hash";
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            // the container ran 1 s and finished at `now`
            now += S;
            let finished = now;
            let mut waited = 0;
            while b.is_in_backoff_since(key, finished, now) {
                now += S;
                waited += 1;
            }
            waits.push(waited);
            b.next(key, finished, now);
        }
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_delay() {
        let mut b = Backoff::default();
        let key = "k";
        b.next(key, 0, 0);
        b.next(key, 1, 1);
        assert_eq!(b.get(key), Duration::from_secs(20));
        // finished more than 2 x 300 s after the last update: treated as stable
        let finished = 601 * S + 1;
        assert!(!b.is_in_backoff_since(key, finished, finished));
        b.next(key, finished, finished);
        assert_eq!(b.get(key), INITIAL);
    }

    /// One store for the node: a second worker of the same pod (same key) continues the delay,
    /// another spec hash starts fresh, and entries idle for 2 × max are collected.
    #[test]
    fn node_wide_store_outlives_a_worker_and_is_collected() {
        let node = NodeBackoff::default();
        let key = "crash_default_uid_c_1f";
        node.next(key, 0, 0);
        node.next(key, S, 11 * S);
        // a new worker for the identical pod: the next crash waits 20 s, not 0
        assert!(node.is_in_backoff_since(key, 12 * S, 13 * S));
        assert_eq!(node.get(key), Duration::from_secs(20));
        assert!(!node.is_in_backoff_since("crash_default_uid_c_2e", 12 * S, 13 * S));
        assert_eq!(node.len(), 1);
        // another container's write 601 s later collects the idle entry
        node.next("other", 612 * S, 612 * S);
        assert_eq!(node.len(), 1);
        assert_eq!(node.get(key), Duration::ZERO);
    }

    #[test]
    fn go_duration_format() {
        for (secs, want) in [
            (10, "10s"),
            (80, "1m20s"),
            (160, "2m40s"),
            (300, "5m0s"),
            (3600, "1h0m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_secs(secs)), want);
        }
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
