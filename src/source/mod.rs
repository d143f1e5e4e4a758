//! The manifest source: reads `--pod-manifest-path` (a directory or one file), watches it with
//! inotify and re-lists it every `fileCheckFrequency`, and emits the complete desired set of
//! static pods each time it changes.
//!
//! Mirrors `pkg/kubelet/config/file.go` and `file_linux.go`: every regular file whose name does
//! not start with `.` is a manifest (no extension filter, subdirectories skipped, symlinks
//! followed), one Pod per file, at most 10 MiB. Like the kubelet's file source it always emits
//! the whole set (the kubelet's `SET` operation); the pod manager diffs it by UID, so an edited
//! manifest (new UID) becomes REMOVE old + ADD new.
//!
//! Deliberate differences from the kubelet, each announced in an event:
//! - Two files that declare the same pod: the second is refused with a `FailedValidation`
//!   event naming both files (the kubelet's file source silently lets the later file win).
//! - A manifest file or directory that non-root users can write is refused (its contents run as
//!   root), unless `--allow-insecure-manifest-path` is given.
//! - A file that becomes invalid removes its pod at once (the kubelet keeps the old pod until its
//!   next 20 s relist; the end state is the same).

mod watch;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch as tokio_watch};

use crate::api;
use crate::events::{EventRecorder, EventType, ObjectRef};

/// The kubelet's `maxConfigLength`: a manifest larger than this is refused unread.
pub const MAX_MANIFEST_BYTES: u64 = 10 * 1024 * 1024;

/// Event reason for a manifest that cannot become a pod (the kubelet only logs this).
pub const REASON_INVALID_MANIFEST: &str = "InvalidManifest";
/// Event reason the kubelet's config mux uses for a duplicate pod name.
pub const REASON_FAILED_VALIDATION: &str = "FailedValidation";
/// Event reason for a field that minikubelet accepts but does not implement yet.
pub const REASON_UNSUPPORTED_FIELD: &str = "UnsupportedField";

/// A file that was written less than this long ago and does not parse is probably still being
/// written (`cat > file` arrives in several writes): wait this long and look again before
/// reporting it. Longer hides more half-written files but delays the report of a real mistake.
const SETTLE_TIME: Duration = Duration::from_millis(300);

/// One static pod read from one manifest file, after defaults and validation.
#[derive(Debug)]
pub struct SourcePod {
    /// The pod as the kubelet would hold it: defaulted, named `<name>-<node>`, with its UID.
    pub pod: Pod,
    /// The file it came from.
    pub file: PathBuf,
    /// Fields in the manifest that minikubelet does not implement yet (path: why).
    pub unsupported: Vec<String>,
}

impl SourcePod {
    /// The pod's UID (the kubelet's `kubernetes.io/config.hash`).
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }
}

/// The complete desired set the source currently sees, in file-name order.
#[derive(Debug, Default)]
pub struct PodSet {
    /// Every pod that parsed, validated and was not a duplicate.
    pub pods: Vec<Arc<SourcePod>>,
    /// False until the first full listing was done (the kubelet's "source seen"): until then
    /// nobody may treat a running pod as an orphan.
    pub seen: bool,
}

/// Configuration of the file source.
#[derive(Clone, Debug)]
pub struct FileSourceConfig {
    /// `--pod-manifest-path`: a directory or a single file.
    pub path: PathBuf,
    /// `fileCheckFrequency`: the full relist period, the safety net under inotify.
    pub check_frequency: Duration,
    /// The node name that pod names and UIDs are derived from.
    pub node_name: String,
    /// `--allow-insecure-manifest-path`: accept files that non-root users can write.
    pub allow_insecure: bool,
}

/// Errors that concern one manifest file; they never stop the source.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: is larger than {MAX_MANIFEST_BYTES} bytes; split it or remove it")]
    TooLarge { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: is writable by non-root users (owner uid {uid}, mode {mode:o}) and its contents would run as root; run `chown root: {path} && chmod go-w {path}`, or start with --allow-insecure-manifest-path"
    )]
    Insecure { path: PathBuf, uid: u32, mode: u32 },
    #[error("{path}: couldn't parse as pod({reason}), please check config file")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: invalid pod: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Start the file source on the current tokio runtime. The returned receiver always holds the
/// latest complete set; intermediate sets may be skipped, which is fine for SET semantics.
pub fn spawn(cfg: FileSourceConfig, recorder: EventRecorder) -> tokio_watch::Receiver<Arc<PodSet>> {
    let (tx, rx) = tokio_watch::channel(Arc::new(PodSet::default()));
    tokio::spawn(async move {
        let mut source = FileSource::new(cfg, recorder);
        source.run(tx).await;
    });
    rx
}

struct CacheEntry {
    /// (dev, inode, size, mtime ns, ctime ns): a file whose key is unchanged is not re-read.
    key: (u64, u64, u64, i64, i64),
    result: Result<Arc<SourcePod>, String>,
}

struct FileSource {
    cfg: FileSourceConfig,
    recorder: EventRecorder,
    cache: HashMap<PathBuf, CacheEntry>,
    /// First time each pod UID was seen: the `kubernetes.io/config.seen` annotation.
    seen_at: HashMap<String, jiff::Timestamp>,
    /// Which file currently holds each pod full name, so a later duplicate is the one refused.
    owners: BTreeMap<String, PathBuf>,
    /// Last error reported per file, so a broken file is reported once, not every relist.
    reported: HashMap<PathBuf, String>,
    /// UIDs whose unsupported fields were already reported.
    warned: std::collections::HashSet<String>,
    last_emitted: Vec<(String, PathBuf)>,
    first_done: bool,
}

impl FileSource {
    fn new(cfg: FileSourceConfig, recorder: EventRecorder) -> Self {
        FileSource {
            cfg,
            recorder,
            cache: HashMap::new(),
            seen_at: HashMap::new(),
            owners: BTreeMap::new(),
            reported: HashMap::new(),
            warned: Default::default(),
            last_emitted: Vec::new(),
            first_done: false,
        }
    }

    async fn run(&mut self, tx: tokio_watch::Sender<Arc<PodSet>>) {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<()>();
        let mut watcher: Option<watch::Watcher> = None;
        let mut relist = tokio::time::interval(self.cfg.check_frequency);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While the path does not exist yet, look for it this often (the kubelet retries every
        // 1 s): a shorter period notices a new directory sooner at the cost of idle wake-ups.
        let mut retry_watch = tokio::time::interval(Duration::from_secs(1));
        loop {
            if watcher.is_none() {
                match watch::Watcher::new(&self.cfg.path, ev_tx.clone()) {
                    Ok(w) => {
                        tracing::info!(path = %self.cfg.path.display(), "watching static pod path");
                        watcher = Some(w);
                    }
                    Err(e) => {
                        tracing::debug!(path = %self.cfg.path.display(), error = %e, "static pod path not watchable yet")
                    }
                }
            }
            // A half-written file is looked at again after SETTLE_TIME.
            let settle_at = self
                .list_and_emit(&tx)
                .then(|| tokio::time::Instant::now() + SETTLE_TIME);
            tokio::select! {
                ev = ev_rx.recv() => {
                    if ev.is_none() { return; }
                    // Coalesce a burst (100 manifests dropped at once) into one relist.
                    while ev_rx.try_recv().is_ok() {}
                    if let Some(w) = &watcher
                        && !w.is_alive() { watcher = None; }
                }
                _ = relist.tick() => {}
                _ = retry_watch.tick(), if watcher.is_none() => {}
                _ = async { if let Some(t) = settle_at { tokio::time::sleep_until(t).await } else { std::future::pending::<()>().await } } => {}
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    /// One full listing. Returns true if some file should be looked at again shortly
    /// (it failed to parse while it was still being written).
    fn list_and_emit(&mut self, tx: &tokio_watch::Sender<Arc<PodSet>>) -> bool {
        let (files, dir_problem) = self.list_files();
        let mut recheck = false;
        let mut parsed: Vec<Arc<SourcePod>> = Vec::new();
        let mut live: std::collections::HashSet<PathBuf> = Default::default();
        for file in files {
            live.insert(file.clone());
            let result = match &dir_problem {
                Some(e) => Err(e.clone()),
                None => self.read_cached(&file),
            };
            match result {
                Ok(p) => {
                    self.reported.remove(&file);
                    parsed.push(p);
                }
                Err(reason) => {
                    if dir_problem.is_none() && recently_modified(&file) {
                        recheck = true;
                        continue;
                    }
                    if self.reported.get(&file) != Some(&reason) {
                        tracing::warn!(file = %file.display(), reason = %reason, "Could not process manifest file");
                        self.recorder.event(
                            ObjectRef::node(&self.cfg.node_name),
                            EventType::Warning,
                            REASON_INVALID_MANIFEST,
                            reason.clone(),
                        );
                        self.reported.insert(file.clone(), reason);
                    }
                }
            }
        }
        self.cache.retain(|k, _| live.contains(k));
        self.reported.retain(|k, _| live.contains(k));

        let pods = self.resolve_duplicates(parsed);
        for p in &pods {
            if !p.unsupported.is_empty() && self.warned.insert(p.uid().to_string()) {
                self.recorder.event(
                    ObjectRef::pod(&p.pod),
                    EventType::Warning,
                    REASON_UNSUPPORTED_FIELD,
                    format!(
                        "minikubelet does not implement these fields yet and runs the pod without them: {}",
                        p.unsupported.join("; ")
                    ),
                );
            }
        }
        let live_uids: std::collections::HashSet<&str> = pods.iter().map(|p| p.uid()).collect();
        self.seen_at.retain(|k, _| live_uids.contains(k.as_str()));
        self.warned.retain(|k| live_uids.contains(k.as_str()));

        let summary: Vec<(String, PathBuf)> = pods
            .iter()
            .map(|p| (p.uid().to_string(), p.file.clone()))
            .collect();
        if !self.first_done || summary != self.last_emitted {
            tracing::debug!(pods = summary.len(), "static pod set changed");
            self.first_done = true;
            self.last_emitted = summary;
            let _ = tx.send(Arc::new(PodSet { pods, seen: true }));
        }
        recheck
    }

    /// The files to read, sorted, and a problem that refuses all of them (insecure directory).
    fn list_files(&self) -> (Vec<PathBuf>, Option<String>) {
        let path = &self.cfg.path;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return (Vec::new(), None), // not there yet: an empty set, retried
        };
        if meta.is_file() {
            return (vec![path.clone()], None);
        }
        let problem = if self.cfg.allow_insecure {
            None
        } else {
            insecure(path, &meta).map(|e| e.to_string())
        };
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot list static pod path");
                return (Vec::new(), None);
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => files.push(p),
                Ok(m) if m.is_dir() => {
                    tracing::debug!(path = %p.display(), "not recursing into subdirectory of static pod path")
                }
                _ => {}
            }
        }
        files.sort();
        (files, problem)
    }

    fn read_cached(&mut self, file: &Path) -> Result<Arc<SourcePod>, String> {
        let meta = std::fs::metadata(file).map_err(|e| {
            ManifestError::Read {
                path: file.to_path_buf(),
                source: e,
            }
            .to_string()
        })?;
        let key = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        );
        if let Some(entry) = self.cache.get(file)
            && entry.key == key
        {
            return entry.result.clone();
        }
        let result = self.read_file(file, &meta).map_err(|e| e.to_string());
        self.cache.insert(
            file.to_path_buf(),
            CacheEntry {
                key,
                result: result.clone(),
            },
        );
        result
    }

    fn read_file(
        &mut self,
        file: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<Arc<SourcePod>, ManifestError> {
        let path = file.to_path_buf();
        if !self.cfg.allow_insecure
            && let Some(e) = insecure(file, meta)
        {
            return Err(e);
        }
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path });
        }
        let bytes = std::fs::read(file).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path });
        }
        let decoded = api::decode::decode_pod(&bytes, file).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut pod = decoded.pod;
        api::defaults::apply_defaults(&mut pod);
        let abs = std::fs::canonicalize(file).unwrap_or_else(|_| path.clone());
        let now = jiff::Timestamp::now();
        api::static_pod::make_static(&mut pod, &decoded.raw, &self.cfg.node_name, &abs, now);
        // `config.seen` is when this UID was first seen, not when the file was last read.
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let seen = *self.seen_at.entry(uid).or_insert(now);
        if seen != now {
            api::static_pod::make_static(&mut pod, &decoded.raw, &self.cfg.node_name, &abs, seen);
        }
        let mut unsupported: Vec<String> = decoded.warnings.iter().map(|w| w.to_string()).collect();
        match api::validation::validate(&pod) {
            Ok(u) => unsupported.extend(u.iter().map(|u| u.to_string())),
            Err(errs) => {
                let reason = errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(ManifestError::Invalid { path, reason });
            }
        }
        Ok(Arc::new(SourcePod {
            pod,
            file: path,
            unsupported,
        }))
    }

    /// Refuse the second file that declares an already-declared pod, with an event naming both.
    /// The file that already held the name keeps it; on a fresh start, file-name order decides.
    fn resolve_duplicates(&mut self, parsed: Vec<Arc<SourcePod>>) -> Vec<Arc<SourcePod>> {
        let mut by_name: BTreeMap<String, Vec<Arc<SourcePod>>> = BTreeMap::new();
        for p in parsed {
            by_name.entry(full_name(&p.pod)).or_default().push(p);
        }
        let mut owners = BTreeMap::new();
        let mut keep = Vec::new();
        for (name, mut cands) in by_name {
            let prev = self.owners.get(&name);
            let idx = prev
                .and_then(|f| cands.iter().position(|c| &c.file == f))
                .unwrap_or(0);
            let winner = cands.remove(idx);
            for loser in cands {
                let msg = format!(
                    "Error validating pod {name} from file {} due to duplicate pod name {:?}: {} already declares it; ignoring this file (rename the pod or remove one of the files)",
                    loser.file.display(),
                    loser.pod.metadata.name.as_deref().unwrap_or_default(),
                    winner.file.display()
                );
                let key = loser.file.clone();
                if self.reported.get(&key) != Some(&msg) {
                    tracing::warn!(pod = %name, file = %loser.file.display(), winner = %winner.file.display(), "duplicate static pod refused");
                    self.recorder.event(
                        ObjectRef::node(&self.cfg.node_name),
                        EventType::Warning,
                        REASON_FAILED_VALIDATION,
                        msg.clone(),
                    );
                    self.reported.insert(key, msg);
                }
            }
            owners.insert(name, winner.file.clone());
            keep.push(winner);
        }
        self.owners = owners;
        keep.sort_by(|a, b| a.file.cmp(&b.file));
        keep
    }
}

/// `<namespace>/<name>`: the kubelet's full name of a pod, unique per node.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn insecure(path: &Path, meta: &std::fs::Metadata) -> Option<ManifestError> {
    let mode = meta.mode() & 0o7777;
    let uid = meta.uid();
    if uid != 0 || mode & 0o022 != 0 {
        return Some(ManifestError::Insecure {
            path: path.to_path_buf(),
            uid,
            mode,
        });
    }
    None
}

fn recently_modified(file: &Path) -> bool {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < SETTLE_TIME)
}

/// Check the manifest path at start-up: an insecure directory stops the agent with the fix.
pub fn preflight(path: &Path, allow_insecure: bool) -> Result<(), ManifestError> {
    if allow_insecure {
        return Ok(());
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => insecure(path, &m).map_or(Ok(()), Err),
        _ => Ok(()),
    }
}
