//! inotify on the manifest path through the `notify` crate (the kubelet uses fsnotify the same
//! way in `file_linux.go`). Any relevant event only wakes the source, which then re-lists: the
//! design is level-triggered, so a lost or reordered event costs nothing but latency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

/// A live watch; dropping it stops the inotify thread.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
    alive: Arc<AtomicBool>,
}

impl Watcher {
    /// Watch `path` (a directory, non-recursively) or, for a single file, its parent directory,
    /// so that an editor's rename-over-save keeps being seen (a watch on the file itself dies
    /// with the replaced inode, notify issue #531).
    pub fn new(path: &Path, wake: UnboundedSender<()>) -> notify::Result<Self> {
        let meta = std::fs::metadata(path).map_err(notify::Error::io)?;
        let (target, only): (PathBuf, Option<std::ffi::OsString>) = if meta.is_dir() {
            (path.to_path_buf(), None)
        } else {
            let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            (parent, path.file_name().map(|n| n.to_os_string()))
        };
        let alive = Arc::new(AtomicBool::new(true));
        let alive_cb = alive.clone();
        let watched = target.clone();
        let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                Ok(ev) => {
                    if !relevant(&ev.kind) {
                        return;
                    }
                    if ev.need_rescan() {
                        let _ = wake.send(());
                        return;
                    }
                    // The watched directory itself went away: the source re-creates the watch.
                    if ev.paths.iter().any(|p| p == &watched)
                        && matches!(ev.kind, EventKind::Remove(_))
                    {
                        alive_cb.store(false, Ordering::Relaxed);
                    }
                    let hit = match &only {
                        None => ev.paths.iter().any(|p| !is_hidden(p)),
                        Some(name) => ev.paths.iter().any(|p| p.file_name() == Some(name)),
                    };
                    if hit || ev.paths.is_empty() {
                        let _ = wake.send(());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inotify watch error; relisting");
                    let _ = wake.send(());
                }
            }
        })?;
        inner.watch(&target, RecursiveMode::NonRecursive)?;
        Ok(Watcher {
            _inner: inner,
            alive,
        })
    }

    /// False once the watched directory was removed.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

/// The kubelet maps Create, Write, Chmod, Remove and Rename; we also take close-after-write,
/// which marks the end of a write. Opens and reads are noise (our own relist causes them).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
