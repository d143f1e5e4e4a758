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
//! - A transient error (EMFILE, EIO...) listing the directory or reading a file never reads as
//!   "no pods": the last good set (or that file's last good pod) is kept, a
//!   `FailedToReadManifests` warning names the path and the error, and the listing is retried
//!   after `TRANSIENT_RETRY`. Only a file that is gone (ENOENT) or invalid loses its pod.
//! - A manifest is opened once: its checks (regular file, owned by root, not writable by group
//!   or others, every directory on its resolved path root-owned and not writable by others
//!   unless sticky) and its read use that one descriptor, and the read stops at the size cap.

mod watch;

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch as tokio_watch};

use crate::api;
use crate::api::pod::full_name;
use crate::events::{EventRecorder, EventType, ObjectRef};

/// The kubelet's `maxConfigLength`: a manifest larger than this is refused unread.
pub const MAX_MANIFEST_BYTES: u64 = 10 * 1024 * 1024;

/// Event reason for a manifest that cannot become a pod (the kubelet only logs this).
pub const REASON_INVALID_MANIFEST: &str = "InvalidManifest";
/// Event reason the kubelet's config mux uses for a duplicate pod name.
pub const REASON_FAILED_VALIDATION: &str = "FailedValidation";
/// Event reason for a field that minikubelet accepts but does not implement yet.
pub const REASON_UNSUPPORTED_FIELD: &str = "UnsupportedField";
/// Event reason for a manifest directory or file that could not be read for a reason that may
/// pass (EMFILE, EIO...): its pods are kept (minikubelet's own reason; the kubelet only logs).
pub const REASON_FAILED_TO_READ_MANIFESTS: &str = "FailedToReadManifests";

/// A file that was written less than this long ago and does not parse is probably still being
/// written (`cat > file` arrives in several writes): wait this long and look again before
/// reporting it. Longer hides more half-written files but delays the report of a real mistake.
const SETTLE_TIME: Duration = Duration::from_millis(300);

/// After a transient error listing or reading manifests, look again this soon rather than at
/// the next relist: shorter recovers sooner, longer retries an fd-starved agent less often.
const TRANSIENT_RETRY: Duration = Duration::from_secs(1);

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
    #[error(
        "{path}: directory {dir} on its resolved path is writable by non-root users (owner uid {uid}, mode {mode:o}), who could swap the file for their own; run `chown root: {dir} && chmod go-w {dir}` (or set the sticky bit, as on /tmp), or start with --allow-insecure-manifest-path"
    )]
    InsecureDir {
        path: PathBuf,
        dir: PathBuf,
        uid: u32,
        mode: u32,
    },
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
        let mut source = FileSource::new(cfg, recorder, Box::new(RealFs));
        source.run(tx).await;
    });
    rx
}

/// The calls the source makes to reach manifests: the real file system, or (in unit tests) one
/// that injects the transient errors the audit met (EMFILE).
trait ManifestFs: Send {
    /// The entries of a directory (full paths), or the first error listing it.
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
    /// Open a manifest for reading: follows symlinks, close-on-exec, non-blocking (a FIFO
    /// must not hang the source).
    fn open(&self, file: &Path) -> std::io::Result<File>;
}

struct RealFs;

impl ManifestFs for RealFs {
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn open(&self, file: &Path) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(file)
    }
}

/// Why a manifest gave no pod this time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Unread {
    /// It is gone (ENOENT) or not a regular file: skipped without a report, as the listing does.
    Skip,
    /// It cannot become a pod: reported once, its pod (if any) removed.
    Invalid(String),
    /// It could not be read for a reason that may pass: its last good pod is kept.
    Transient(String),
}

/// True for the I/O errors that say the file is not there, as opposed to "could not look".
fn is_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// True for errors about the file itself that no retry will fix (a symlink loop, a name too
/// long, a non-directory in the middle of the path, a special file that refuses plain reads).
/// Every other error (EMFILE, ENFILE, ENOMEM, EIO, EACCES...) may pass.
fn is_permanent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENXIO
                | libc::ENODEV
                | libc::EOVERFLOW
                | libc::EFBIG
        )
    )
}

struct CacheEntry {
    /// (dev, inode, size, mtime ns, ctime ns): a file whose key is unchanged is not re-read.
    key: (u64, u64, u64, i64, i64),
    result: Result<Arc<SourcePod>, String>,
}

struct FileSource {
    cfg: FileSourceConfig,
    recorder: EventRecorder,
    fs: Box<dyn ManifestFs>,
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
    fn new(cfg: FileSourceConfig, recorder: EventRecorder, fs: Box<dyn ManifestFs>) -> Self {
        FileSource {
            cfg,
            recorder,
            fs,
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
            // A half-written file is looked at again after SETTLE_TIME, a transient error
            // after TRANSIENT_RETRY.
            let settle_at = self
                .list_and_emit(&tx)
                .map(|d| tokio::time::Instant::now() + d);
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

    /// One full listing. Returns how soon to look again when some file should be looked at
    /// before the next relist (it failed to parse while it was still being written, or a
    /// transient error kept its last good pod).
    fn list_and_emit(&mut self, tx: &tokio_watch::Sender<Arc<PodSet>>) -> Option<Duration> {
        let (files, dir_problem) = match self.list_files() {
            Ok(v) => v,
            Err(e) => {
                // Never "the pod set is empty": keep what was emitted last, and retry.
                let key = self.cfg.path.clone();
                self.report_transient(&key, e.to_string());
                return Some(TRANSIENT_RETRY);
            }
        };
        self.reported
            .retain(|k, v| k != &self.cfg.path || !v.starts_with(TRANSIENT_PREFIX));
        let mut recheck: Option<Duration> = None;
        let mut soon = |d: Duration| recheck = Some(recheck.map_or(d, |r: Duration| r.min(d)));
        let mut parsed: Vec<Arc<SourcePod>> = Vec::new();
        let mut live: std::collections::HashSet<PathBuf> = Default::default();
        for file in files {
            live.insert(file.clone());
            let result = match &dir_problem {
                Some(e) => Err(Unread::Invalid(e.clone())),
                None => self.read_cached(&file),
            };
            let reason = match result {
                Ok(p) => {
                    self.reported.remove(&file);
                    parsed.push(p);
                    continue;
                }
                Err(Unread::Skip) => continue,
                Err(Unread::Transient(reason)) => {
                    // Keep the pod this file declared last time it was read.
                    if let Some(CacheEntry { result: Ok(p), .. }) = self.cache.get(&file) {
                        parsed.push(p.clone());
                    }
                    self.report_transient(&file, reason);
                    soon(TRANSIENT_RETRY);
                    continue;
                }
                Err(Unread::Invalid(reason)) => reason,
            };
            if dir_problem.is_none() && recently_modified(&file) {
                soon(SETTLE_TIME);
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

    /// Log and report (once per distinct error) a transient failure to read `path`.
    fn report_transient(&mut self, path: &Path, error: String) {
        let msg = format!(
            "{TRANSIENT_PREFIX}{}: {error}; keeping the static pods it last declared and retrying in {}s",
            path.display(),
            TRANSIENT_RETRY.as_secs()
        );
        if self.reported.get(path) == Some(&msg) {
            return;
        }
        tracing::warn!(path = %path.display(), error = %error, "cannot read static pod path; keeping the last good pods");
        self.recorder.event(
            ObjectRef::node(&self.cfg.node_name),
            EventType::Warning,
            REASON_FAILED_TO_READ_MANIFESTS,
            msg.clone(),
        );
        self.reported.insert(path.to_path_buf(), msg);
    }

    /// The files to read, sorted, and a problem that refuses all of them (insecure directory).
    /// `Err` when the path could not be listed for another reason than "not there".
    fn list_files(&self) -> Result<(Vec<PathBuf>, Option<String>), std::io::Error> {
        let path = &self.cfg.path;
        let with_path = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("list {}: {e}", path.display()))
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            // Not there yet: an empty set, retried.
            Err(e) if is_gone(&e) || is_permanent(&e) => return Ok((Vec::new(), None)),
            Err(e) => return Err(with_path(e)),
        };
        if meta.is_file() {
            return Ok((vec![path.clone()], None));
        }
        let problem = if self.cfg.allow_insecure {
            None
        } else {
            insecure(path, &meta).map(|e| e.to_string())
        };
        let mut files = Vec::new();
        for p in self.fs.read_dir(path).map_err(with_path)? {
            if p.file_name()
                .is_none_or(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => files.push(p),
                Ok(m) if m.is_dir() => {
                    tracing::debug!(path = %p.display(), "not recursing into subdirectory of static pod path")
                }
                Ok(_) => {}                 // FIFOs, devices, sockets: skipped
                Err(e) if is_gone(&e) => {} // a dangling symlink: skipped
                // Could not look: the read says why, and keeps its last good pod.
                Err(_) => files.push(p),
            }
        }
        files.sort();
        Ok((files, problem))
    }

    /// Open, check and (unless its identity is unchanged since the last read) read one manifest,
    /// all through one descriptor.
    fn read_cached(&mut self, file: &Path) -> Result<Arc<SourcePod>, Unread> {
        let transient = |what: &str, e: std::io::Error| {
            Unread::Transient(format!("{}: {what}: {e}", file.display()))
        };
        let mut f = match self.fs.open(file) {
            Ok(f) => f,
            Err(e) if is_gone(&e) => return Err(Unread::Skip),
            Err(e) if is_permanent(&e) => {
                return Err(Unread::Invalid(
                    ManifestError::Read {
                        path: file.to_path_buf(),
                        source: e,
                    }
                    .to_string(),
                ));
            }
            Err(e) => return Err(transient("open", e)),
        };
        let meta = f.metadata().map_err(|e| transient("fstat", e))?;
        if !meta.is_file() {
            return Err(Unread::Skip);
        }
        if !self.cfg.allow_insecure {
            if let Some(e) = insecure(file, &meta) {
                return Err(Unread::Invalid(e.to_string()));
            }
            match check_parent_dirs(file, &f, &meta) {
                Ok(None) => {}
                Ok(Some(e)) => return Err(Unread::Invalid(e.to_string())),
                Err(e) => return Err(transient("check the directories on its path", e)),
            }
        }
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
            return entry.result.clone().map_err(Unread::Invalid);
        }
        let result = match self.read_file(file, &mut f, &meta) {
            Err(ManifestError::Read { source, .. }) if !is_permanent(&source) => {
                return Err(transient("read", source));
            }
            r => r.map_err(|e| e.to_string()),
        };
        self.cache.insert(
            file.to_path_buf(),
            CacheEntry {
                key,
                result: result.clone(),
            },
        );
        result.map_err(Unread::Invalid)
    }

    /// Parse the manifest open as `f` (already checked). A [`ManifestError::Read`] is transient.
    fn read_file(
        &mut self,
        file: &Path,
        f: &mut File,
        meta: &std::fs::Metadata,
    ) -> Result<Arc<SourcePod>, ManifestError> {
        let path = file.to_path_buf();
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path });
        }
        let bytes = read_capped(f).map_err(|source| match source {
            None => ManifestError::TooLarge { path: path.clone() },
            Some(source) => ManifestError::Read {
                path: path.clone(),
                source,
            },
        })?;
        let decoded = api::decode::decode_pod(&bytes, file).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut pod = decoded.pod;
        api::defaults::apply_defaults(&mut pod);
        // The UID hashes the resolved path: a failure to resolve it must not give another UID
        // (that would replace the pod), so it is transient like a read error.
        let abs = std::fs::canonicalize(file).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let now = jiff::Timestamp::now();
        let unmade = pod.clone();
        api::static_pod::make_static(&mut pod, &decoded.raw, &self.cfg.node_name, &abs, now);
        // `config.seen` is when this UID was first seen, not when the file was last read. Made
        // again from the pod as decoded: make_static appends the node name to the pod's name.
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let seen = *self.seen_at.entry(uid).or_insert(now);
        if seen != now {
            pod = unmade;
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
    /// Files that share a `metadata.uid` are all refused, with an event naming them all: the
    /// UID keys everything the agent keeps for a pod, so neither can win safely.
    fn resolve_duplicates(&mut self, parsed: Vec<Arc<SourcePod>>) -> Vec<Arc<SourcePod>> {
        let mut by_uid: BTreeMap<String, Vec<Arc<SourcePod>>> = BTreeMap::new();
        for p in parsed {
            by_uid.entry(p.uid().to_string()).or_default().push(p);
        }
        let mut by_name: BTreeMap<String, Vec<Arc<SourcePod>>> = BTreeMap::new();
        for (uid, cands) in by_uid {
            if cands.len() == 1 {
                for p in cands {
                    by_name.entry(full_name(&p.pod)).or_default().push(p);
                }
                continue;
            }
            let files: Vec<String> = cands.iter().map(|c| c.file.display().to_string()).collect();
            for c in &cands {
                let msg = format!(
                    "Error validating pod {} from file {} due to duplicate metadata.uid {uid:?}: declared by {}; ignoring all of them (remove metadata.uid from the manifests, or give each its own)",
                    full_name(&c.pod),
                    c.file.display(),
                    files.join(", ")
                );
                if self.reported.get(&c.file) != Some(&msg) {
                    tracing::warn!(pod = %full_name(&c.pod), podUID = %uid, file = %c.file.display(), files = ?files, "static pods with the same UID refused");
                    self.recorder.event(
                        ObjectRef::node(&self.cfg.node_name),
                        EventType::Warning,
                        REASON_FAILED_VALIDATION,
                        msg.clone(),
                    );
                    self.reported.insert(c.file.clone(), msg);
                }
            }
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

/// Reads are made in chunks of this size (a multiple of 8, which some procfs files require
/// of every read); a file is read at most one chunk past [`MAX_MANIFEST_BYTES`].
const READ_CHUNK: usize = 64 << 10;

/// Read `f` to its end, or fail with `None` once it has more than [`MAX_MANIFEST_BYTES`]: the
/// cap holds while reading, whatever size `fstat` gave (procfs files say 0).
fn read_capped(f: &mut File) -> Result<Vec<u8>, Option<std::io::Error>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                    return Err(None);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
}

/// Prefix of the `reported` entries of transient errors.
const TRANSIENT_PREFIX: &str = "cannot read ";

/// True for a directory that lets only root change its entries: owned by root and not writable
/// by group or others, or sticky (like /tmp: others cannot rename or remove root's entries).
fn dir_is_safe(meta: &std::fs::Metadata) -> bool {
    meta.uid() == 0 && (meta.mode() & 0o022 == 0 || meta.mode() & libc::S_ISVTX != 0)
}

/// Check every directory on the resolved path of the open manifest `f`: each must be safe
/// ([`dir_is_safe`]), walked from `/` with `openat(O_NOFOLLOW)` so that no symlink is followed
/// on the way, and the name at the end must still be the open file. `Ok(Some)` names the
/// unsafe directory; `Err` is an I/O error (transient, or the file moved meanwhile).
fn check_parent_dirs(
    file: &Path,
    f: &File,
    meta: &std::fs::Metadata,
) -> std::io::Result<Option<ManifestError>> {
    let resolved = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let moved = || std::io::Error::other("the file was moved or replaced while it was checked");
    let mut names = Vec::new();
    for c in resolved.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(n),
            _ => return Err(moved()),
        }
    }
    let Some(last) = names.pop() else {
        return Err(moved());
    };
    let check = |fd: &OwnedFd, dir: &Path| -> std::io::Result<Option<ManifestError>> {
        let dmeta = File::from(fd.try_clone()?).metadata()?;
        Ok((!dir_is_safe(&dmeta)).then(|| ManifestError::InsecureDir {
            path: file.to_path_buf(),
            dir: dir.to_path_buf(),
            uid: dmeta.uid(),
            mode: dmeta.mode() & 0o7777,
        }))
    };
    let mut dir = PathBuf::from("/");
    let mut fd = open_dir_at(None, Path::new("/"))?;
    for name in names {
        if let Some(e) = check(&fd, &dir)? {
            return Ok(Some(e));
        }
        fd = open_dir_at(Some(&fd), Path::new(name))?;
        dir.push(name);
    }
    if let Some(e) = check(&fd, &dir)? {
        return Ok(Some(e));
    }
    let c = CString::new(last.as_bytes()).map_err(|_| moved())?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid dir fd, a NUL-terminated name and a stat buffer we own.
    let r = unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if st.st_dev != meta.dev() || st.st_ino != meta.ino() {
        return Err(moved());
    }
    Ok(None)
}

/// `openat(dirfd, name, O_PATH|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)`.
fn open_dir_at(at: Option<&OwnedFd>, name: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let dirfd = at.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: plain syscall on a NUL-terminated path; on success we own the new fd.
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    /// The real file system, with errors injected on demand.
    #[derive(Clone, Default)]
    struct FaultyFs {
        /// Listing fails with this errno.
        list_errno: Arc<Mutex<Option<i32>>>,
        /// Opening this file fails with this errno.
        open_errno: Arc<Mutex<Option<(PathBuf, i32)>>>,
    }

    impl ManifestFs for FaultyFs {
        fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
            if let Some(e) = *self.list_errno.lock().unwrap() {
                return Err(std::io::Error::from_raw_os_error(e));
            }
            RealFs.read_dir(dir)
        }

        fn open(&self, file: &Path) -> std::io::Result<File> {
            if let Some((f, e)) = &*self.open_errno.lock().unwrap()
                && f == file
            {
                return Err(std::io::Error::from_raw_os_error(*e));
            }
            RealFs.open(file)
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\nspec:\n  containers:\n  - {name: c, image: busybox, command: [sleep, '1']}\n";

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        fs: FaultyFs,
        recorder: EventRecorder,
        source: FileSource,
        tx: tokio_watch::Sender<Arc<PodSet>>,
        rx: tokio_watch::Receiver<Arc<PodSet>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let dir = tmp.path().join("manifests");
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let fs = FaultyFs::default();
            let recorder = EventRecorder::new("node-1");
            let cfg = FileSourceConfig {
                path: dir.clone(),
                check_frequency: Duration::from_secs(20),
                node_name: "node-1".into(),
                // Tests may run as a non-root user in CI: the ownership checks have their own
                // integration tests.
                allow_insecure: nix::unistd::geteuid().as_raw() != 0,
            };
            let source = FileSource::new(cfg, recorder.clone(), Box::new(fs.clone()));
            let (tx, rx) = tokio_watch::channel(Arc::new(PodSet::default()));
            Fixture {
                _tmp: tmp,
                dir,
                fs,
                recorder,
                source,
                tx,
                rx,
            }
        }

        fn write(&self, file: &str, text: &str) {
            let p = self.dir.join(file);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            // Old enough not to count as still being written.
            let old = SystemTime::now() - Duration::from_secs(10);
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }

        fn relist(&mut self) -> Option<Duration> {
            self.source.list_and_emit(&self.tx)
        }

        fn names(&self) -> Vec<String> {
            self.rx
                .borrow()
                .pods
                .iter()
                .map(|p| p.pod.metadata.name.clone().unwrap())
                .collect()
        }

        fn events(&self, reason: &str) -> Vec<String> {
            self.recorder
                .list()
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.message.unwrap_or_default())
                .collect()
        }
    }

    #[test]
    fn a_listing_error_keeps_the_last_good_set() {
        let mut f = Fixture::new();
        f.write("a.yaml", &POD.replace("NAME", "a"));
        f.write("b.yaml", &POD.replace("NAME", "b"));
        assert_eq!(f.relist(), None);
        assert_eq!(f.names(), ["a-node-1", "b-node-1"]);

        *f.fs.list_errno.lock().unwrap() = Some(libc::EMFILE);
        assert_eq!(f.relist(), Some(TRANSIENT_RETRY), "retried soon");
        assert_eq!(f.names(), ["a-node-1", "b-node-1"], "not emptied");
        let ev = f.events(REASON_FAILED_TO_READ_MANIFESTS);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].contains(&f.dir.display().to_string()), "{}", ev[0]);
        assert!(ev[0].contains("Too many open files"), "{}", ev[0]);
        // The same error again is not reported again.
        f.relist();
        assert_eq!(f.events(REASON_FAILED_TO_READ_MANIFESTS).len(), 1);

        // Recovered: a deletion made meanwhile takes effect.
        *f.fs.list_errno.lock().unwrap() = None;
        std::fs::remove_file(f.dir.join("a.yaml")).unwrap();
        assert_eq!(f.relist(), None);
        assert_eq!(f.names(), ["b-node-1"]);
    }

    #[test]
    fn a_listing_error_before_the_first_listing_is_not_an_empty_set() {
        let mut f = Fixture::new();
        f.write("a.yaml", &POD.replace("NAME", "a"));
        *f.fs.list_errno.lock().unwrap() = Some(libc::EIO);
        f.relist();
        assert!(!f.rx.borrow().seen, "the source must not count as seen");
        *f.fs.list_errno.lock().unwrap() = None;
        f.relist();
        assert!(f.rx.borrow().seen);
        assert_eq!(f.names(), ["a-node-1"]);
    }

    #[test]
    fn a_read_error_keeps_that_files_pod_but_a_deletion_removes_it() {
        let mut f = Fixture::new();
        f.write("a.yaml", &POD.replace("NAME", "a"));
        f.write("b.yaml", &POD.replace("NAME", "b"));
        f.relist();
        let a = f.dir.join("a.yaml");
        *f.fs.open_errno.lock().unwrap() = Some((a.clone(), libc::EMFILE));
        // Edited meanwhile: the edit cannot be read yet, so the old pod stays.
        f.write("a.yaml", &POD.replace("NAME", "a").replace("'1'", "'2'"));
        assert_eq!(f.relist(), Some(TRANSIENT_RETRY));
        assert_eq!(f.names(), ["a-node-1", "b-node-1"]);
        let ev = f.events(REASON_FAILED_TO_READ_MANIFESTS);
        assert!(
            ev.iter()
                .any(|m| m.contains("a.yaml") && m.contains("Too many open files")),
            "{ev:?}"
        );
        assert!(
            f.events(REASON_INVALID_MANIFEST).is_empty(),
            "not reported as invalid"
        );

        // ENOENT is "gone": the pod goes.
        *f.fs.open_errno.lock().unwrap() = Some((a.clone(), libc::ENOENT));
        f.relist();
        assert_eq!(f.names(), ["b-node-1"]);
    }

    #[test]
    fn a_read_error_for_a_file_never_read_gives_no_pod_and_no_invalid_report() {
        let mut f = Fixture::new();
        f.write("a.yaml", &POD.replace("NAME", "a"));
        *f.fs.open_errno.lock().unwrap() = Some((f.dir.join("a.yaml"), libc::EIO));
        f.relist();
        assert!(f.names().is_empty());
        assert!(f.events(REASON_INVALID_MANIFEST).is_empty());
        *f.fs.open_errno.lock().unwrap() = None;
        assert_eq!(f.relist(), None);
        assert_eq!(f.names(), ["a-node-1"]);
    }

    #[test]
    fn the_size_cap_holds_while_reading() {
        let mut f = Fixture::new();
        // A FIFO is not a regular file: skipped by the listing without blocking. A file that
        // grows past the cap after its size was taken is refused by the capped read.
        let big = f.dir.join("big.yaml");
        f.write("big.yaml", "");
        let mut file = File::open(&big).unwrap();
        let meta = file.metadata().unwrap();
        std::fs::write(&big, vec![b'#'; (MAX_MANIFEST_BYTES + 10) as usize]).unwrap();
        let err = f.source.read_file(&big, &mut file, &meta).unwrap_err();
        assert!(matches!(err, ManifestError::TooLarge { .. }), "{err}");
        f.relist();
        assert!(f.names().is_empty());
    }

    #[test]
    fn a_file_read_again_keeps_its_pod_name() {
        let mut f = Fixture::new();
        f.write("a.yaml", &POD.replace("NAME", "a"));
        f.relist();
        std::thread::sleep(Duration::from_millis(5));
        // Same content, new mtime: read again, same UID, first-seen time kept.
        f.write("a.yaml", &POD.replace("NAME", "a"));
        f.relist();
        assert_eq!(f.names(), ["a-node-1"]);
    }

    #[test]
    fn files_with_the_same_uid_are_all_refused() {
        let mut f = Fixture::new();
        let with_uid = |name: &str| {
            POD.replace(
                "{name: NAME}",
                &format!("{{name: {name}, uid: 3b5e6c1e-0d7a-4a0e-9a55-2f1c4c7c9d10}}"),
            )
        };
        f.write("a.yaml", &POD.replace("NAME", "a"));
        f.write("dupa.yaml", &with_uid("dupa"));
        f.write("dupb.yaml", &with_uid("dupb"));
        f.relist();
        assert_eq!(f.names(), ["a-node-1"]);
        let ev = f.events(REASON_FAILED_VALIDATION);
        assert_eq!(ev.len(), 2, "{ev:?}");
        for m in &ev {
            assert!(m.contains("dupa.yaml") && m.contains("dupb.yaml"), "{m}");
            assert!(m.contains("duplicate metadata.uid"), "{m}");
        }
        std::fs::remove_file(f.dir.join("dupa.yaml")).unwrap();
        f.relist();
        assert_eq!(f.names(), ["a-node-1", "dupb-node-1"]);
    }
}
