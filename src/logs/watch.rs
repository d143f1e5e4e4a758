//! One inotify instance for every log follower of the agent: a watch per followed container log
//! directory, shared by its followers and removed when the last one goes. Followers are async
//! tasks; a change in a directory bumps a counter that wakes each of them (a
//! `tokio::sync::watch` channel: a change between two waits is never missed). The inotify
//! descriptor sits in tokio's reactor, so the watcher costs no thread.
//!
//! Mirrors the fsnotify watcher of `pkg/kubelet/kuberuntime/logs/logs.go` `ReadLogs`. Deviation:
//! the kubelet makes an fsnotify watcher (an inotify instance) per follower; here one instance
//! serves all, since instances are few per user (`max_user_instances`, 128 by default) and an
//! agent that spent them would break every other root program's inotify.
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// What wakes followers: a write (`MODIFY`), and the rename and create of a rotation. Opens,
/// reads and closes are left out: every follower opens and reads the file, and would wake the
/// others for nothing.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ONLYDIR
}

/// The inotify descriptor, for tokio's reactor.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One watched directory.
struct Dir {
    /// Bumped at every change in the directory.
    changes: watch::Sender<u64>,
    /// The kernel dropped the watch (the directory is gone): no more wake-ups.
    gone: AtomicBool,
}

/// The agent's watcher of container log directories.
pub struct LogWatcher {
    fd: AsyncFd<Fd>,
    /// Watched directories by watch descriptor, with how many followers hold each.
    dirs: Mutex<HashMap<WatchDescriptor, (usize, Arc<Dir>)>>,
    /// The task reading events runs (it stops with its runtime).
    alive: AtomicBool,
}

/// A follower's hold on the watch of its log directory; dropping it releases the watch.
pub struct DirWatch {
    watcher: Arc<LogWatcher>,
    wd: WatchDescriptor,
    dir: Arc<Dir>,
    changes: watch::Receiver<u64>,
}

static AGENT: Mutex<Option<Arc<LogWatcher>>> = Mutex::new(None);

impl LogWatcher {
    /// A new watcher (one inotify instance) whose events a task of the current tokio runtime
    /// reads. Errors when no instance is left or outside a runtime.
    pub fn new() -> std::io::Result<Arc<LogWatcher>> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let w = Arc::new(LogWatcher {
            // SAFETY: the Inotify owns its descriptor, which stays open and the same until it is
            // dropped with the AsyncFd.
            fd: unsafe { AsyncFd::register(Fd(inotify)) }.map_err(std::io::Error::from)?,
            dirs: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
        });
        tokio::spawn(read_events(w.clone()));
        Ok(w)
    }

    /// The agent's watcher, made on first use (again if the runtime of the last one ended);
    /// `None` if it cannot be made now (followers then poll).
    pub fn agent() -> Option<Arc<LogWatcher>> {
        let mut cur = AGENT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = cur.as_ref().filter(|w| w.alive.load(Ordering::SeqCst)) {
            return Some(w.clone());
        }
        match LogWatcher::new() {
            Ok(w) => {
                *cur = Some(w.clone());
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no inotify instance for log followers; they poll");
                None
            }
        }
    }

    /// Watch `dir` for a follower (the watch is shared with the other followers of `dir`).
    pub fn watch(self: &Arc<Self>, dir: &Path) -> std::io::Result<DirWatch> {
        // add_watch and rm_watch under the lock: a watch being removed is never handed out.
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        let wd = self.fd.get_ref().0.add_watch(dir, mask())?;
        let (holders, d) = dirs.entry(wd).or_insert_with(|| {
            let dir = Dir {
                changes: watch::Sender::new(0),
                gone: AtomicBool::new(false),
            };
            (0, Arc::new(dir))
        });
        *holders += 1;
        Ok(DirWatch {
            watcher: self.clone(),
            wd,
            dir: d.clone(),
            changes: d.changes.subscribe(),
        })
    }

    /// Directories watched now.
    pub fn watched(&self) -> usize {
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn release(&self, wd: WatchDescriptor, dir: &Arc<Dir>) {
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((holders, d)) = dirs.get_mut(&wd) else {
            return;
        };
        if !Arc::ptr_eq(d, dir) {
            return;
        }
        *holders -= 1;
        if *holders == 0 {
            dirs.remove(&wd);
            if let Err(e) = self.fd.get_ref().0.rm_watch(wd) {
                tracing::debug!(error = %e, "remove a log directory watch");
            }
        }
    }

    fn dispatch(&self, events: &[InotifyEvent]) {
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut woken: Vec<WatchDescriptor> = Vec::new();
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were lost: wake every follower to look.
                for (_, d) in dirs.values() {
                    d.changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                continue;
            }
            if !woken.contains(&ev.wd)
                && let Some((_, d)) = dirs.get(&ev.wd)
            {
                d.changes.send_modify(|n| *n = n.wrapping_add(1));
                woken.push(ev.wd);
            }
            if ev.mask.contains(AddWatchFlags::IN_IGNORED)
                && let Some((_, d)) = dirs.remove(&ev.wd)
            {
                d.gone.store(true, Ordering::SeqCst);
                d.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// Reads the instance's events and wakes the followers of each directory concerned.
async fn read_events(w: Arc<LogWatcher>) {
    /// Marks the watcher dead when the task ends, also when its runtime drops it.
    struct Alive(Arc<LogWatcher>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.alive.store(false, Ordering::SeqCst);
            // Followers waiting on a dead watcher fall back to polling.
            let dirs = self.0.dirs.lock().unwrap_or_else(PoisonError::into_inner);
            for (_, d) in dirs.values() {
                d.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
    let w = Alive(w);
    loop {
        let mut ready = match w.0.fd.readable().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "log watcher stopped; log followers poll");
                return;
            }
        };
        match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
            Ok(Ok(events)) => w.0.dispatch(&events),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "log watcher stopped; log followers poll");
                return;
            }
            Err(_would_block) => {}
        }
    }
}

impl DirWatch {
    /// Forget the changes so far: [`DirWatch::changed`] waits for the next one.
    pub fn mark_seen(&mut self) {
        self.changes.borrow_and_update();
    }

    /// Whether changes still wake this follower (the directory is watched, the watcher runs).
    pub fn is_live(&self) -> bool {
        !self.dir.gone.load(Ordering::SeqCst) && self.watcher.alive.load(Ordering::SeqCst)
    }

    /// Waits for a change in the directory since the last [`DirWatch::mark_seen`].
    pub async fn changed(&mut self) {
        if self.is_live() {
            // The sender lives in `self.dir`: this never errs.
            let _ = self.changes.changed().await;
        } else {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.watcher.release(self.wd, &self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn inotify_instances() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify")
            })
            .count()
    }

    #[tokio::test]
    async fn followers_share_one_instance_and_one_watch_per_directory() {
        let before = inotify_instances();
        let w = LogWatcher::new().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut on_a: Vec<DirWatch> = (0..50).map(|_| w.watch(a.path()).unwrap()).collect();
        let mut on_b = w.watch(b.path()).unwrap();
        assert_eq!(w.watched(), 2);
        // Other tests of this process may hold instances too; this watcher holds exactly one.
        assert!(inotify_instances() <= before + 1);
        for f in on_a.iter_mut().chain([&mut on_b]) {
            f.mark_seen();
        }
        std::fs::write(a.path().join("0.log"), "x\n").unwrap();
        for f in &mut on_a {
            tokio::time::timeout(Duration::from_secs(5), f.changed())
                .await
                .expect("every follower of the directory is woken");
        }
        // The other directory saw nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), on_b.changed())
                .await
                .is_err()
        );
        on_a.truncate(1);
        assert_eq!(w.watched(), 2);
        drop(on_a);
        drop(on_b);
        assert_eq!(w.watched(), 0, "the last follower removes the watch");
        // A removed directory stops waking its followers (they poll).
        let c = tempfile::tempdir().unwrap();
        let mut on_c = w.watch(c.path()).unwrap();
        on_c.mark_seen();
        std::fs::remove_dir(c.path()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), on_c.changed())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while on_c.is_live() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
