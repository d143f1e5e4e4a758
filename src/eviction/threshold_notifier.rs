//! Threshold notifiers: the kernel wakes the eviction manager when memory crosses a threshold,
//! instead of the manager finding out at its next poll or cycle.
//!
//! Mirrors `pkg/kubelet/eviction/memory_threshold_notifier.go` (`memoryThresholdNotifier`,
//! `UpdateThreshold`) and `threshold_notifier_linux.go` (`linuxCgroupNotifier`):
//!
//! - **cgroup v1, as the kubelet.** For each memory threshold (hard or soft), an eventfd is
//!   registered in `cgroup.event_control` of the memory cgroup whose usage the signal compares:
//!   the root of the memory hierarchy for `memory.available`, `kubepods` for
//!   `allocatableMemory.available`. The line written is `<eventfd> <fd of memory.usage_in_bytes>
//!   <bytes>` with bytes = capacity − threshold quantity + inactive_file: the kernel compares
//!   *usage*, the signal is *working set* = usage − inactive_file, so the usage threshold moves
//!   with the inactive file cache and is re-armed after each cycle (the kubelet: at most every
//!   10 s, `notifierRefreshInterval`). The kernel signals the eventfd when usage crosses the value
//!   in either direction; the kubelet then runs `synchronize` at once.
//! - **cgroup v2, beyond the kubelet.** v2 has no usage thresholds and the kubelet arms nothing
//!   (a disabled notifier, kubernetes issue #106331). minikubelet arms what v2 offers, which
//!   reports *pressure*, not a crossing: a PSI trigger (`some 150000 1000000`: tasks stalled on
//!   memory 150 ms within 1 s) on `kubepods/memory.pressure` (or `/proc/pressure/memory` for
//!   `memory.available`), and a watch on `kubepods/memory.events` (the kernel notifies pollers
//!   of the file when `high`, `max`, `oom` or `oom_kill` move anywhere below `kubepods`). Either
//!   wakes the manager, which re-reads the signals; the crossing itself is still found by the
//!   poll, which therefore keeps its short period on v2.
//!
//! Every fd is waited on with tokio's `AsyncFd` in a task of its own (no extra thread);
//! dropping the task closes the eventfd, which unregisters the memcg event in the kernel.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cgroup::{Controller, MemoryStats};
use crate::cm::manager::ContainerManager;
use crate::eviction::helpers::threshold_quantity;
use crate::eviction::signals::Observation;
use crate::eviction::thresholds::{Signal, Threshold};

/// The cgroup v1 file the kernel compares with a registered threshold (`memoryUsageAttribute`).
pub const MEMORY_USAGE_ATTRIBUTE: &str = "memory.usage_in_bytes";
/// The v2 PSI trigger: stalled 150 ms within a 1 s window. Lower catches milder reclaim
/// (more wake-ups that find nothing to do); the window is the kernel's shortest allowed
/// multiple that reacts within a second. Only root may use windows under 2 s (we are root).
pub const PSI_TRIGGER: &str = "some 150000 1000000";
/// After a notification, a notifier waits this long before it may wake the manager again. A
/// container sitting at its memory limit moves `memory.events` `max` thousands of times a
/// second; 50 ms bounds the wake-ups to 20/s per notifier while delaying a second, distinct
/// crossing by at most 50 ms.
pub const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(50);
/// A v1 notifier is re-armed when its usage value moved by at least this much. The root memory
/// cgroup's inactive file cache moves by a few pages all the time; re-registering for each page
/// would cost an eventfd and two opens per read for nothing, while 1 MiB of error is far below
/// any threshold's precision (the kernel itself checks thresholds only every 128 charged pages
/// per CPU, 512 KiB).
pub const REARM_SLACK: u64 = 1 << 20;
/// How many wake-ups may wait for the manager. One is enough: a pending wake-up already makes
/// it re-read every signal; more would only queue identical work.
const WAKE_QUEUE: usize = 1;

/// How a signal is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// v1 `cgroup.event_control` + eventfd on `memory.usage_in_bytes` (the kubelet's).
    MemcgThreshold,
    /// v2 PSI trigger on `memory.pressure` (or `/proc/pressure/memory`).
    PsiTrigger,
    /// v2 `memory.events` modification (poll `POLLPRI`, as inotify `IN_MODIFY` would report it).
    MemoryEvents,
    /// No notification: the fast poll (or only the periodic cycle).
    Poll,
}

impl Mechanism {
    /// Name in logs and `/debug/eviction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::MemcgThreshold => "memcg-threshold",
            Mechanism::PsiTrigger => "psi-trigger",
            Mechanism::MemoryEvents => "memory.events",
            Mechanism::Poll => "poll",
        }
    }
}

/// A notification: which signal's notifier fired, how, on which cgroup file.
#[derive(Clone, Debug)]
pub struct Wake {
    /// The signal watched.
    pub signal: Signal,
    /// The mechanism that fired.
    pub mechanism: Mechanism,
    /// The file watched.
    pub path: PathBuf,
}

/// Errors arming a notifier, naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// A cgroup or pressure file could not be opened.
    #[error("open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused the registration or trigger.
    #[error("write {line:?} to {path}: {source}")]
    Register {
        /// The control or pressure file.
        path: PathBuf,
        /// What was written.
        line: String,
        /// The error.
        source: std::io::Error,
    },
    /// eventfd(2) failed.
    #[error("eventfd: {0}")]
    Eventfd(nix::Error),
    /// The fd could not be registered with the runtime's epoll.
    #[error("epoll registration of {path}: {source}")]
    Epoll {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The usage threshold would be zero or negative (threshold above capacity).
    #[error("threshold {threshold} is not below capacity {capacity}: nothing to arm")]
    NotBelowCapacity {
        /// Threshold quantity in bytes.
        threshold: i64,
        /// Capacity in bytes.
        capacity: i64,
    },
}

/// The usage value to register for a threshold (`UpdateThreshold`): capacity − threshold
/// quantity + inactive_file, where capacity = available + working set and inactive_file =
/// usage − working set, all from the stats the signal was computed from. `obs` is the signal's
/// observation, `stats` the memory cgroup's figures.
pub fn memcg_threshold(
    threshold: &Threshold,
    obs: &Observation,
    stats: &MemoryStats,
) -> Result<u64, NotifierError> {
    let capacity = obs.capacity;
    let quantity = threshold.value.quantity_for(capacity);
    let inactive =
        i64::try_from(stats.usage_bytes.saturating_sub(stats.working_set_bytes)).unwrap_or(0);
    let usage_threshold = capacity - quantity;
    if usage_threshold <= 0 {
        return Err(NotifierError::NotBelowCapacity {
            threshold: quantity,
            capacity,
        });
    }
    Ok(u64::try_from(usage_threshold.saturating_add(inactive)).unwrap_or(u64::MAX))
}

/// `NewCgroupNotifier` (v1): an eventfd registered on `<dir>/memory.usage_in_bytes` at `bytes`.
pub fn register_memcg_threshold(dir: &Path, bytes: u64) -> Result<EventFd, NotifierError> {
    let watch_path = dir.join(MEMORY_USAGE_ATTRIBUTE);
    let watch = File::open(&watch_path).map_err(|source| NotifierError::Open {
        path: watch_path,
        source,
    })?;
    let control_path = dir.join("cgroup.event_control");
    let mut control = std::fs::OpenOptions::new()
        .write(true)
        .open(&control_path)
        .map_err(|source| NotifierError::Open {
            path: control_path.clone(),
            source,
        })?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(NotifierError::Eventfd)?;
    let line = format!("{} {} {bytes}", efd.as_raw_fd(), watch.as_raw_fd());
    // One write: the kernel parses the whole line at once. The watch and control fds can be
    // closed afterwards (the kubelet does too); the registration lives as long as the eventfd.
    control
        .write_all(line.as_bytes())
        .map_err(|source| NotifierError::Register {
            path: control_path,
            line,
            source,
        })?;
    Ok(efd)
}

/// A PSI trigger on a pressure file (`memory.pressure` or `/proc/pressure/memory`).
pub fn register_psi_trigger(path: &Path) -> Result<File, NotifierError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| NotifierError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    // The trigger string must be written in one write including the terminating NUL.
    f.write_all(format!("{PSI_TRIGGER}\0").as_bytes())
        .map_err(|source| NotifierError::Register {
            path: path.to_path_buf(),
            line: PSI_TRIGGER.into(),
            source,
        })?;
    Ok(f)
}

/// Wait for `fd` with `interest`, send a [`Wake`] each time, drain with `consume`.
fn spawn_waiter<T: AsRawFd + Send + Sync + 'static>(
    fd: T,
    interest: Interest,
    wake: Wake,
    tx: mpsc::Sender<Wake>,
    consume: fn(&T),
) -> Result<JoinHandle<()>, NotifierError> {
    // SAFETY: `fd` (an `EventFd` or a `File`) owns its descriptor, which stays open and the
    // same until the `AsyncFd` that took ownership of it is dropped.
    let afd = unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| {
        NotifierError::Epoll {
            path: wake.path.clone(),
            source: e.into_parts().1,
        }
    })?;
    Ok(tokio::spawn(async move {
        loop {
            let mut guard = match afd.ready(interest).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(signal = %wake.signal, mechanism = %wake.mechanism.as_str(), path = %wake.path.display(), error = %e,
                        "eviction manager: error waiting for memory notifications; the poll and the periodic cycle remain");
                    return;
                }
            };
            consume(guard.get_inner());
            guard.clear_ready();
            tracing::debug!(signal = %wake.signal, mechanism = %wake.mechanism.as_str(), path = %wake.path.display(),
                "eviction manager: memory notification");
            // Full: a wake-up is already pending, which re-reads every signal.
            let _ = tx.try_send(wake.clone());
            tokio::time::sleep(NOTIFY_DEBOUNCE).await;
        }
    }))
}

/// `memory.usage_in_bytes` of a v1 memory cgroup; `None` when unreadable (the next cycle
/// reports the cgroup's errors).
fn read_usage(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(MEMORY_USAGE_ATTRIBUTE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn drain_eventfd(efd: &EventFd) {
    // EAGAIN when already drained: nothing to do.
    let _ = efd.read();
}

fn reread(f: &File) {
    // Reading the file again is what resets kernfs' "changed" mark (of->event) for POLLPRI.
    let mut f = f;
    let _ = f.rewind();
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
}

fn psi_consumed(_: &File) {
    // The kernel clears the PSI event when poll reports it.
}

/// One memory threshold's notifier (`memoryThresholdNotifier`).
struct MemoryThresholdNotifier {
    threshold: Threshold,
    /// The memory cgroup directory (v1) or watched file's cgroup (v2).
    cgroup: PathBuf,
    /// v1: the usage value registered now.
    armed_bytes: Option<u64>,
    /// v1: the registration has fired. The kernel signals a memcg threshold when usage
    /// crosses it, so a fired registration stays silent while usage keeps rising: it must be
    /// replaced even if its value would not move (found by a flaky test: the inactive file
    /// cache grew between arming and the crossing, the cycle saw the threshold not met, and
    /// the re-arm was skipped as within [`REARM_SLACK`], so nothing woke the manager again).
    spent: bool,
    /// The waiting tasks; aborting them closes their fds.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MemoryThresholdNotifier {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What [`ThresholdNotifiers::start`] decided for one memory signal, for the startup log and
/// `/debug/eviction`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalWatch {
    /// The signal.
    pub signal: String,
    /// Mechanisms in use (`memcg-threshold`, `psi-trigger`, `memory.events`, `poll`).
    pub mechanisms: Vec<&'static str>,
    /// The cgroup (or pressure file) watched.
    pub cgroup: Option<String>,
    /// Why this mechanism (and not a notification).
    pub reason: String,
}

/// Every memory notifier of the eviction manager, and the channel their wake-ups arrive on.
pub struct ThresholdNotifiers {
    v2: bool,
    root_memcg: Option<PathBuf>,
    kubepods_memcg: Option<PathBuf>,
    notifiers: Vec<MemoryThresholdNotifier>,
    tx: mpsc::Sender<Wake>,
    rx: mpsc::Receiver<Wake>,
    /// Per memory signal: how it is watched.
    pub watches: Vec<SignalWatch>,
}

impl ThresholdNotifiers {
    /// Arms what `kernelMemcgNotification` asks for (nothing when false). Must run inside the
    /// tokio runtime. v1 notifiers are registered at the first [`Self::update_thresholds`].
    pub fn start(
        enabled: bool,
        cm: &ContainerManager,
        thresholds: &[Threshold],
        enforce_pods: bool,
    ) -> Self {
        let cgroups = cm.cgroups();
        let v2 = cgroups.layout().is_v2();
        let root_memcg = cgroups
            .features()
            .hierarchies
            .into_iter()
            .find(|h| h.controllers.contains(&Controller::Memory))
            .map(|h| h.mount_point);
        let kubepods_memcg = enforce_pods
            .then(|| cgroups.path(Controller::Memory, &cm.kubepods()))
            .flatten();
        let (tx, rx) = mpsc::channel(WAKE_QUEUE);
        let mut me = ThresholdNotifiers {
            v2,
            root_memcg,
            kubepods_memcg,
            notifiers: Vec::new(),
            tx,
            rx,
            watches: Vec::new(),
        };
        let memory: Vec<&Threshold> = thresholds
            .iter()
            .filter(|t| {
                matches!(
                    t.signal,
                    Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable
                )
            })
            .collect();
        for signal in [Signal::MemoryAvailable, Signal::AllocatableMemoryAvailable] {
            let ths: Vec<&Threshold> = memory
                .iter()
                .copied()
                .filter(|t| t.signal == signal)
                .collect();
            if ths.is_empty() {
                continue;
            }
            let cgroup = me.cgroup_of(signal);
            if !enabled {
                me.watches.push(SignalWatch {
                    signal: signal.to_string(),
                    mechanisms: vec![Mechanism::Poll.as_str()],
                    cgroup: cgroup.map(|c| c.display().to_string()),
                    reason: "kernelMemcgNotification is false (the kubelet's default)".into(),
                });
                continue;
            }
            let Some(cgroup) = cgroup else {
                me.watches.push(SignalWatch {
                    signal: signal.to_string(),
                    mechanisms: vec![Mechanism::Poll.as_str()],
                    cgroup: None,
                    reason: "no memory cgroup to watch".into(),
                });
                continue;
            };
            if v2 {
                me.start_v2(signal, ths, cgroup);
            } else {
                for t in ths {
                    me.notifiers.push(MemoryThresholdNotifier {
                        threshold: t.clone(),
                        cgroup: cgroup.clone(),
                        armed_bytes: None,
                        spent: false,
                        tasks: Vec::new(),
                    });
                }
                me.watches.push(SignalWatch {
                    signal: signal.to_string(),
                    mechanisms: vec![Mechanism::MemcgThreshold.as_str()],
                    cgroup: Some(cgroup.display().to_string()),
                    reason: "cgroup v1: cgroup.event_control eventfd on memory.usage_in_bytes, as the kubelet".into(),
                });
            }
        }
        me
    }

    /// The memory cgroup a signal's usage is read from.
    fn cgroup_of(&self, signal: Signal) -> Option<PathBuf> {
        match signal {
            Signal::MemoryAvailable => self.root_memcg.clone(),
            Signal::AllocatableMemoryAvailable => self.kubepods_memcg.clone(),
            _ => None,
        }
    }

    fn start_v2(&mut self, signal: Signal, ths: Vec<&Threshold>, cgroup: PathBuf) {
        let mut tasks = Vec::new();
        let mut mechanisms = Vec::new();
        let mut why_not = Vec::new();
        // memory.available is node-wide: the root cgroup has no memory.events, and its PSI is
        // /proc/pressure/memory.
        let psi = if signal == Signal::MemoryAvailable {
            PathBuf::from("/proc/pressure/memory")
        } else {
            cgroup.join("memory.pressure")
        };
        match register_psi_trigger(&psi).and_then(|f| {
            spawn_waiter(
                f,
                Interest::PRIORITY,
                Wake {
                    signal,
                    mechanism: Mechanism::PsiTrigger,
                    path: psi.clone(),
                },
                self.tx.clone(),
                psi_consumed,
            )
        }) {
            Ok(t) => {
                tasks.push(t);
                mechanisms.push(Mechanism::PsiTrigger.as_str());
            }
            Err(e) => why_not.push(format!("no PSI trigger ({e}; needs CONFIG_PSI and psi=1)")),
        }
        if signal == Signal::AllocatableMemoryAvailable {
            let events = cgroup.join("memory.events");
            match File::open(&events)
                .map_err(|source| NotifierError::Open {
                    path: events.clone(),
                    source,
                })
                .and_then(|f| {
                    reread(&f);
                    spawn_waiter(
                        f,
                        Interest::PRIORITY,
                        Wake {
                            signal,
                            mechanism: Mechanism::MemoryEvents,
                            path: events.clone(),
                        },
                        self.tx.clone(),
                        reread,
                    )
                }) {
                Ok(t) => {
                    tasks.push(t);
                    mechanisms.push(Mechanism::MemoryEvents.as_str());
                }
                Err(e) => why_not.push(format!("no memory.events watch ({e})")),
            }
        }
        mechanisms.push(Mechanism::Poll.as_str());
        let mut reason = "cgroup v2 has no usage thresholds (the kubelet arms nothing, issue #106331): pressure notifications wake the manager, the poll finds the crossing".to_string();
        for w in why_not {
            reason.push_str("; ");
            reason.push_str(&w);
        }
        self.watches.push(SignalWatch {
            signal: signal.to_string(),
            mechanisms,
            cgroup: Some(cgroup.display().to_string()),
            reason,
        });
        if let Some(first) = ths.first() {
            self.notifiers.push(MemoryThresholdNotifier {
                threshold: (*first).clone(),
                cgroup,
                armed_bytes: None,
                spent: false,
                tasks,
            });
        }
    }

    /// True when every memory threshold has an exact (v1 memcg) notification armed, so the
    /// memory part of the poll may slow down.
    pub fn exact(&self) -> bool {
        !self.v2
            && !self.watches.is_empty()
            && self
                .watches
                .iter()
                .all(|w| w.mechanisms == [Mechanism::MemcgThreshold.as_str()])
            && self.notifiers.iter().all(|n| n.armed_bytes.is_some())
    }

    /// `UpdateThreshold` for every v1 notifier: (re-)register where the usage value moved.
    /// `root` and `kubepods` are the stats the observations were computed from.
    pub fn update_thresholds(
        &mut self,
        obs: &crate::eviction::signals::Observations,
        root: Option<&MemoryStats>,
        kubepods: Option<&MemoryStats>,
    ) {
        if self.v2 {
            return;
        }
        let tx = self.tx.clone();
        for n in &mut self.notifiers {
            let stats = match n.threshold.signal {
                Signal::MemoryAvailable => root,
                _ => kubepods,
            };
            let (Some(o), Some(stats)) = (obs.get(&n.threshold.signal), stats) else {
                continue;
            };
            let bytes = match memcg_threshold(&n.threshold, o, stats) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(signal = %n.threshold.signal, error = %e, "eviction manager: notifier not armed");
                    continue;
                }
            };
            if !n.spent
                && n.armed_bytes
                    .is_some_and(|a| a.abs_diff(bytes) < REARM_SLACK)
            {
                continue;
            }
            let first = n.armed_bytes.is_none();
            let armed = register_memcg_threshold(&n.cgroup, bytes).and_then(|efd| {
                spawn_waiter(
                    efd,
                    Interest::READABLE,
                    Wake {
                        signal: n.threshold.signal,
                        mechanism: Mechanism::MemcgThreshold,
                        path: n.cgroup.join(MEMORY_USAGE_ATTRIBUTE),
                    },
                    tx.clone(),
                    drain_eventfd,
                )
            });
            match armed {
                Ok(task) => {
                    for t in n.tasks.drain(..) {
                        t.abort();
                    }
                    n.tasks.push(task);
                    n.armed_bytes = Some(bytes);
                    n.spent = false;
                    // The kernel signals crossings only: a value that usage already passed
                    // while the cycle ran (a fast allocator moves hundreds of MiB a second)
                    // would stay silent until usage fell below it again. Wake the manager now,
                    // as the crossing would have; the next update re-arms. Not when the
                    // observation already had the threshold met: the manager knows, and a
                    // node under pressure with nothing left to evict would wake it in a loop.
                    let met = threshold_quantity(&n.threshold, o.capacity, false) > o.available;
                    if let Some(usage) = read_usage(&n.cgroup).filter(|u| !met && *u >= bytes) {
                        tracing::debug!(signal = %n.threshold.signal, usage_threshold = bytes, usage,
                            "eviction manager: usage already past the value just armed; waking the manager now");
                        n.spent = true;
                        let _ = tx.try_send(Wake {
                            signal: n.threshold.signal,
                            mechanism: Mechanism::MemcgThreshold,
                            path: n.cgroup.join(MEMORY_USAGE_ATTRIBUTE),
                        });
                    }
                    if first {
                        tracing::info!(
                            signal = %n.threshold.signal,
                            mechanism = %Mechanism::MemcgThreshold.as_str(),
                            cgroup = %n.cgroup.display(),
                            hard = n.threshold.is_hard(),
                            usage_threshold = bytes,
                            "eviction manager: created memoryThresholdNotifier"
                        );
                    } else {
                        tracing::debug!(signal = %n.threshold.signal, usage_threshold = bytes,
                            "eviction manager: setting notifier to capacity");
                    }
                }
                Err(e) => {
                    tracing::warn!(signal = %n.threshold.signal, cgroup = %n.cgroup.display(), error = %e,
                        "eviction manager: failed to create memory threshold notifier; the fast poll stays on");
                    n.armed_bytes = None;
                }
            }
        }
    }

    /// The next notification; pending forever when nothing is armed. Cancel-safe. A v1
    /// registration that fired is marked spent: the next [`Self::update_thresholds`] replaces
    /// it.
    pub async fn next(&mut self) -> Wake {
        match self.rx.recv().await {
            Some(w) => {
                if w.mechanism == Mechanism::MemcgThreshold {
                    for n in &mut self.notifiers {
                        if n.threshold.signal == w.signal {
                            n.spent = true;
                        }
                    }
                }
                w
            }
            // Unreachable while `self.tx` lives; wait forever rather than spin.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::thresholds::{Operator, ThresholdValue};

    const MI: i64 = 1 << 20;

    fn th(signal: Signal, value: ThresholdValue) -> Threshold {
        Threshold {
            signal,
            operator: Operator::LessThan,
            value,
            grace_period: Duration::ZERO,
            min_reclaim: None,
        }
    }

    fn stats(usage: i64, inactive: i64) -> MemoryStats {
        MemoryStats {
            usage_bytes: usage as u64,
            inactive_file_bytes: inactive as u64,
            working_set_bytes: (usage - inactive).max(0) as u64,
            limit_bytes: None,
        }
    }

    /// The kubelet's `UpdateThreshold`: capacity − quantity + inactive_file.
    #[test]
    fn usage_threshold_is_capacity_minus_quantity_plus_inactive_file() {
        // (capacity, usage, inactive, threshold, want)
        let cases: &[(i64, i64, i64, ThresholdValue, i64)] = &[
            // kubepods of 640Mi, 400Mi threshold, 100Mi used of which 30Mi inactive file:
            // notify when usage reaches 240Mi + 30Mi.
            (
                640 * MI,
                100 * MI,
                30 * MI,
                ThresholdValue::Quantity(400 * MI),
                270 * MI,
            ),
            // percentage of capacity (exact in f32): 25% of 1000Mi, no inactive file
            (
                1000 * MI,
                10 * MI,
                0,
                ThresholdValue::Percentage(0.25),
                750 * MI,
            ),
            // inactive file larger than usage (working set 0): the whole usage is inactive
            (
                8192 * MI,
                20 * MI,
                50 * MI,
                ThresholdValue::Quantity(100 * MI),
                8092 * MI + 20 * MI,
            ),
        ];
        for &(capacity, usage, inactive, value, want) in cases {
            let s = stats(usage, inactive);
            let ws = s.working_set_bytes as i64;
            let obs = Observation {
                available: capacity - ws,
                capacity,
            };
            let got =
                memcg_threshold(&th(Signal::AllocatableMemoryAvailable, value), &obs, &s).unwrap();
            assert_eq!(got as i64, want, "{capacity} {usage} {inactive} {value}");
        }
        // A threshold at or above capacity cannot be armed.
        let obs = Observation {
            available: 100 * MI,
            capacity: 100 * MI,
        };
        let err = memcg_threshold(
            &th(Signal::MemoryAvailable, ThresholdValue::Quantity(100 * MI)),
            &obs,
            &stats(0, 0),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not below capacity"), "{err}");
    }

    /// The usage threshold is where the signal crosses: at that usage (with the same inactive
    /// file), `available` equals the threshold quantity.
    #[test]
    fn usage_threshold_matches_the_signal() {
        let capacity = 640 * MI;
        let inactive = 12 * MI;
        let t = th(
            Signal::AllocatableMemoryAvailable,
            ThresholdValue::Quantity(400 * MI),
        );
        let s = stats(50 * MI, inactive);
        let obs = crate::eviction::signals::allocatable_memory_available(&MemoryStats {
            limit_bytes: Some(capacity as u64),
            ..s
        })
        .unwrap();
        let at = memcg_threshold(&t, &obs, &s).unwrap() as i64;
        let at_crossing = crate::eviction::signals::allocatable_memory_available(&MemoryStats {
            usage_bytes: at as u64,
            inactive_file_bytes: inactive as u64,
            working_set_bytes: (at - inactive) as u64,
            limit_bytes: Some(capacity as u64),
        })
        .unwrap();
        assert_eq!(at_crossing.available, 400 * MI);
    }

    /// Errors name the file.
    #[test]
    fn registration_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = register_memcg_threshold(d.path(), 1).unwrap_err();
        assert!(e.to_string().contains("memory.usage_in_bytes"), "{e}");
        std::fs::write(d.path().join(MEMORY_USAGE_ATTRIBUTE), "0\n").unwrap();
        let e = register_memcg_threshold(d.path(), 1).unwrap_err();
        assert!(e.to_string().contains("cgroup.event_control"), "{e}");
        let e = register_psi_trigger(&d.path().join("memory.pressure")).unwrap_err();
        assert!(e.to_string().contains("memory.pressure"), "{e}");
    }
}
