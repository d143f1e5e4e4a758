//! The kubelet's container log endpoint, `/containerLogs/{namespace}/{pod}/{container}`, and the
//! log streaming behind it, which the API facade's `pods/{name}/log` reuses.
//!
//! Mirrors `pkg/kubelet/server/server.go` `getContainerLogs` (query decoding, the legacy `tail`
//! parameter, validation), `pkg/kubelet/kubelet_pods.go` `GetKubeletContainerLogs` and
//! `validateContainerLogStatus` (which instance's log to read), and
//! `pkg/kubelet/kuberuntime/logs/logs.go` `ReadLogs` (following). The file of an instance comes
//! from the runtime's record of it (`ContainerStatus.LogPath` in CRI), never from the request:
//! names in the path only select a pod and a container of that pod.
//!
//! Deviations: errors are `metav1.Status` JSON rather than the kubelet's plain text, and names
//! that cannot be Kubernetes names (`..`, `/`, upper case) are refused with 400 before any
//! lookup. Reading spans rotated files (see [`crate::logs`]), and `follow` keeps going across a
//! rotation, as the kubelet's reader does by reopening the path.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::sync::mpsc;

use super::ServerState;
use super::names::check_names;
use super::status::{ApiError, FieldError, FieldErrorKind, aggregate};
use crate::logs::{
    COMPRESS_SUFFIX, CriRecord, LogOptions, RecordWriter, Stream, log_files, read_logs,
};
use crate::runtime::Runtime;

/// How long a follower with nothing new waits before it checks again whether its container
/// still runs and whether its client is still there. A write to the file wakes it at once
/// (inotify); this bounds how late it notices an exit that wrote nothing (the kubelet's 1 s).
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);
/// Without inotify (no instances left), how often a follower polls the file: the latency a
/// reader sees against a wake-up per follower ten times a second.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Bytes gathered before a chunk goes to the client: large chunks cost fewer wake-ups on a
/// busy log, and a follower flushes whatever it has each time it reaches the end of the file.
const CHUNK_SIZE: usize = 32 * 1024;
/// Chunks queued for a slow client before the reader waits for it (memory per request is
/// about this times [`CHUNK_SIZE`]).
const CHUNKS_IN_FLIGHT: usize = 8;
/// Read buffer of a follower.
const READ_SIZE: usize = 64 * 1024;

pub(super) fn routes() -> Router<ServerState> {
    Router::new().route(
        "/containerLogs/{namespace}/{pod}/{container}",
        get(container_logs),
    )
}

/// `PodLogOptions` (core/v1) as decoded from a query string.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodLogOptions {
    /// `container` (used by the API server's form only).
    pub container: Option<String>,
    /// Keep streaming until the instance ends.
    pub follow: bool,
    /// The previous instance's log.
    pub previous: bool,
    /// Prefix lines with their timestamps.
    pub timestamps: bool,
    /// Only records from the last N seconds.
    pub since_seconds: Option<i64>,
    /// Only records from this instant on.
    pub since_time: Option<Timestamp>,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// At most this many bytes.
    pub limit_bytes: Option<i64>,
    /// `Stdout`, `Stderr` or `All`.
    pub stream: Option<String>,
}

/// Go's query-parameter conversion of a bool: only `0` and `false` (any case) are false; a
/// present parameter with any other value, even empty, is true.
pub fn query_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

impl PodLogOptions {
    /// Decode (`ParameterCodec.DecodeParameters` for v1 `PodLogOptions`). The first value of a
    /// repeated parameter counts; unknown parameters are ignored. `tail=N|all` is the kubelet's
    /// legacy spelling of `tailLines`. The error names the parameter that did not parse.
    pub fn from_query(pairs: &[(String, String)], legacy_tail: bool) -> Result<Self, String> {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let int = |k: &str| -> Result<Option<i64>, String> {
            get(k)
                .map(|v| v.parse::<i64>().map_err(|e| format!("{k}={v:?}: {e}")))
                .transpose()
        };
        let mut tail_lines = int("tailLines")?;
        if legacy_tail && let Some(t) = get("tail").filter(|t| !t.is_empty()) {
            tail_lines = if t == "all" {
                None
            } else {
                Some(t.parse::<i64>().map_err(|e| format!("tail={t:?}: {e}"))?)
            };
        }
        let since_time = match get("sinceTime").filter(|v| !v.is_empty() && *v != "null") {
            None => None,
            Some(v) => Some(
                v.parse::<Timestamp>()
                    .map_err(|e| format!("sinceTime={v:?}: {e}"))?,
            ),
        };
        Ok(PodLogOptions {
            container: get("container").map(str::to_string),
            follow: get("follow").is_some_and(query_bool),
            previous: get("previous").is_some_and(query_bool),
            timestamps: get("timestamps").is_some_and(query_bool),
            since_seconds: int("sinceSeconds")?,
            since_time,
            tail_lines,
            limit_bytes: int("limitBytes")?,
            stream: get("stream").map(str::to_string),
        })
    }

    /// `ValidatePodLogOptions`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let invalid = |field: &str, value: i64, detail: &str| FieldError {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: value.to_string(),
            detail: detail.into(),
        };
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            errs.push(invalid(
                "tailLines",
                t,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(b) = self.limit_bytes.filter(|b| *b < 1) {
            errs.push(invalid("limitBytes", b, "must be greater than 0"));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => errs.push(FieldError {
                kind: FieldErrorKind::Forbidden,
                field: String::new(),
                value: String::new(),
                detail: "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            }),
            (Some(s), None) if s < 1 => {
                errs.push(invalid("sinceSeconds", s, "must be greater than 0"))
            }
            _ => {}
        }
        if let Some(s) = &self.stream {
            if !["Stdout", "Stderr", "All"].contains(&s.as_str()) {
                errs.push(FieldError {
                    kind: FieldErrorKind::NotSupported,
                    field: "stream".into(),
                    value: format!("{s:?}"),
                    detail: "supported values: \"All\", \"Stderr\", \"Stdout\"".into(),
                });
            } else if s != "All" && self.tail_lines.is_some() {
                errs.push(FieldError {
                    kind: FieldErrorKind::Forbidden,
                    field: String::new(),
                    value: String::new(),
                    detail: "`tailLines` and specific `stream` are mutually exclusive for now"
                        .into(),
                });
            }
        }
        errs
    }

    /// The reader's options at `now` (`NewLogOptions`): `since` is the later of
    /// now − sinceSeconds and sinceTime.
    pub fn to_log_options(&self, now: Timestamp) -> LogOptions {
        let mut since = self
            .since_seconds
            .and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok());
        if let Some(t) = self.since_time
            && since.is_none_or(|s| t > s)
        {
            since = Some(t);
        }
        LogOptions {
            tail_lines: self.tail_lines.map(|t| t.max(0) as u64),
            since_time: since,
            timestamps: self.timestamps,
            limit_bytes: self.limit_bytes.map(|b| b.max(1) as u64),
            stream: match self.stream.as_deref() {
                Some("Stdout") => Some(Stream::Stdout),
                Some("Stderr") => Some(Stream::Stderr),
                _ => None,
            },
        }
    }
}

/// The pod named `name` in `namespace`, as the status manager has it.
pub fn find_pod(s: &ServerState, namespace: &str, name: &str) -> Option<Arc<Pod>> {
    s.statuses.list().into_iter().find(|p| {
        p.metadata.name.as_deref() == Some(name)
            && p.metadata.namespace.as_deref().unwrap_or("default") == namespace
    })
}

/// Whether the pod's spec has a container (regular, init or ephemeral) named `name`.
pub fn has_container(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == name)
            || s.init_containers.iter().flatten().any(|c| c.name == name)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
    })
}

fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    [
        &st.container_statuses,
        &st.init_container_statuses,
        &st.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == name)
}

/// `validateContainerLogStatus`: the runtime ID of the instance whose log to read.
pub fn log_container_id(pod: &Pod, container: &str, previous: bool) -> Result<String, String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = container_status(pod, container) else {
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is not available"
        ));
    };
    let state = status.state.clone().unwrap_or_default();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone())
        .filter(|id| !id.is_empty());
    let strip = |id: String| {
        id.split_once("://")
            .map(|(_, i)| i.to_string())
            .unwrap_or(id)
    };
    let id = if previous {
        last.ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        })?
    } else if state.running.is_some() {
        status.container_id.clone().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.clone().filter(|i| !i.is_empty()) {
            Some(id) => id,
            None => last.ok_or_else(|| {
                format!("container {container:?} in pod {pod_name:?} is terminated")
            })?,
        }
    } else if let Some(id) = last {
        id
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            _ => reason,
        };
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
        ));
    } else {
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
        ));
    };
    Ok(strip(id))
}

/// The log file of instance `id`, checked to belong to `pod`'s container `container`: the
/// runtime's record must name this pod, and the file must sit in
/// `<ns>_<pod>_<uid>/<container>/`.
fn instance_log_path(
    runtime: &Runtime,
    pod: &Pod,
    container: &str,
    id: &str,
) -> Result<PathBuf, String> {
    let gone = || format!("log of container {container:?} instance {id} is no longer available");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(gone());
    }
    let rec = runtime.get(id).ok_or_else(gone)?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let path = rec.meta.log_path;
    let dir_ok = path.parent().is_some_and(|c| {
        c.file_name().is_some_and(|n| n == container)
            && c.parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| *n == *format!("{ns}_{name}_{uid}"))
    });
    if rec.meta.pod_uid != uid || rec.meta.container_name != container || !dir_ok {
        return Err(gone());
    }
    Ok(path)
}

/// Stream the log of `pod`'s container `container` (whose name the caller has checked
/// against the spec): 200 with a chunked body, or 400 with the reason the kubelet gives.
pub fn serve_logs(
    s: &ServerState,
    pod: &Pod,
    container: &str,
    opts: &PodLogOptions,
) -> Result<Response, ApiError> {
    let id = log_container_id(pod, container, opts.previous).map_err(ApiError::bad_request)?;
    let path = instance_log_path(&s.runtime, pod, container, &id).map_err(ApiError::bad_request)?;
    let log_opts = opts.to_log_options(Timestamp::now());
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let container = container.to_string();
    let runtime = s.runtime.clone();
    let follow = opts.follow;
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_SIZE),
        };
        let result = if follow {
            let running = || runtime.get(&id).is_some_and(|r| r.is_running());
            let tx = out.tx.clone();
            follow_logs(&path, &log_opts, running, || tx.is_closed(), &mut out)
        } else {
            read_logs(&path, &log_opts, &mut out)
                .map(|_| FollowEnd::EndOfLog)
                .map_err(std::io::Error::other)
        };
        let result = result.and_then(|end| out.flush().map(|()| end));
        match result {
            Ok(end) => {
                tracing::debug!(pod = %pod_name, container = %container, follow, end = ?end, "log stream ended")
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!(pod = %pod_name, container = %container, follow, end = ?FollowEnd::ClientGone, "log stream ended")
            }
            Err(e) => {
                tracing::warn!(pod = %pod_name, container = %container, follow, error = %e, "log stream failed")
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    }));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

async fn container_logs(
    State(s): State<ServerState>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(e) = check_names(&[
        ("namespace", &namespace),
        ("pod", &pod_name),
        ("container", &container),
    ]) {
        return e.into_response();
    }
    let Ok(Query(pairs)) = query else {
        return ApiError::bad_request("Unable to decode query.").into_response();
    };
    let opts = match PodLogOptions::from_query(&pairs, true) {
        Ok(o) => o,
        Err(e) => {
            return ApiError::bad_request(format!("Unable to decode query: {e}")).into_response();
        }
    };
    let errs = opts.validate();
    if !errs.is_empty() {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Invalid request: {}", aggregate(&errs)),
        )
        .into_response();
    }
    let Some(pod) = find_pod(&s, &namespace, &pod_name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        )
        .into_response();
    };
    if !has_container(&pod, &container) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        )
        .into_response();
    }
    serve_logs(&s, &pod, &container, &opts).unwrap_or_else(IntoResponse::into_response)
}

/// The response body as a [`Write`]: bytes gather into chunks that go to the client through a
/// bounded channel; a closed channel (the client left) is a broken pipe.
struct ChunkWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK_SIZE {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_SIZE),
        ));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// Writes records as `kubectl logs` shows them ([`RecordWriter`]); while catching up with
/// `tailLines`, keeps only the last N records.
struct Emitter<'a, W: Write> {
    w: RecordWriter<'a, W>,
    /// `Some((tailLines, the last records))` while catching up under `tailLines`.
    ring: Option<(u64, VecDeque<CriRecord>)>,
}

impl<W: Write> Emitter<'_, W> {
    /// Takes one record; `false` once the byte limit is reached.
    fn push(&mut self, r: CriRecord) -> std::io::Result<bool> {
        if let Some((n, ring)) = self.ring.as_mut() {
            ring.push_back(r);
            if ring.len() as u64 > *n {
                ring.pop_front();
            }
            return Ok(true);
        }
        self.w.record(&r)
    }

    /// Ends catching up: writes the records the tail kept.
    fn caught_up(&mut self) -> std::io::Result<bool> {
        for r in self.ring.take().map(|(_, ring)| ring).unwrap_or_default() {
            if !self.w.record(&r)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn parse_record(line: &[u8]) -> Option<CriRecord> {
    crate::logs::parse_cri_line(line).ok().map(|l| CriRecord {
        timestamp: l.timestamp,
        stream: l.stream,
        partial: l.partial,
        content: l.content.to_vec(),
    })
}

/// Identity of a file: device and inode.
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Every complete record of a rotated file (compressed or not), in order.
fn read_rotated<W: Write>(path: &Path, em: &mut Emitter<'_, W>) -> std::io::Result<bool> {
    let f = match File::open(path) {
        Ok(f) => f,
        // Compressed or pruned meanwhile: its `.gz` (listed too) or nothing is left to read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    let reader: Box<dyn Read> = if path.to_string_lossy().ends_with(COMPRESS_SUFFIX) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
            return Ok(true);
        }
        if let Some(r) = parse_record(&line)
            && !em.push(r)?
        {
            return Ok(false);
        }
    }
}

/// The live file a follower reads: its open handle, identity, and an incomplete last line.
struct LiveFile {
    path: PathBuf,
    file: Option<(File, (u64, u64))>,
    partial: Vec<u8>,
    buf: Vec<u8>,
}

impl LiveFile {
    fn open(path: &Path) -> Self {
        let mut lf = LiveFile {
            path: path.to_path_buf(),
            file: None,
            partial: Vec::new(),
            buf: vec![0; READ_SIZE],
        };
        lf.reopen();
        lf
    }

    fn reopen(&mut self) {
        self.partial.clear();
        self.file = File::open(&self.path)
            .and_then(|f| f.metadata().map(|m| (f, file_id(&m))))
            .ok();
    }

    fn id(&self) -> Option<(u64, u64)> {
        self.file.as_ref().map(|(_, id)| *id)
    }

    /// Whether the path now names another file than the one open (the shim rotated it).
    fn rotated(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => self.id() != Some(file_id(&m)),
            Err(_) => false,
        }
    }

    /// Emit every complete record available now; `false` once the byte limit is reached.
    fn read_available<W: Write>(&mut self, em: &mut Emitter<'_, W>) -> std::io::Result<bool> {
        let Some((f, _)) = self.file.as_mut() else {
            return Ok(true);
        };
        loop {
            let n = f.read(&mut self.buf)?;
            if n == 0 {
                return Ok(true);
            }
            self.partial.extend_from_slice(&self.buf[..n]);
            let mut start = 0;
            while let Some(pos) = self.partial[start..].iter().position(|&b| b == b'\n') {
                let end = start + pos + 1;
                let record = parse_record(&self.partial[start..end]);
                start = end;
                if let Some(r) = record
                    && !em.push(r)?
                {
                    return Ok(false);
                }
            }
            self.partial.drain(..start);
        }
    }
}

/// Wakes a follower when something happens in the log's directory (a write, the rename and
/// create of a rotation), or after a timeout.
struct Waker {
    rx: std::sync::mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Waker {
    fn new(dir: &Path) -> Self {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = tx.send(());
        })
        .and_then(|mut w| {
            w.watch(dir, notify::RecursiveMode::NonRecursive)
                .map(|()| w)
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "no inotify for a log follower; polling");
                None
            }
        };
        Waker {
            rx,
            _watcher: watcher,
        }
    }

    fn wait(&self) {
        let timeout = if self._watcher.is_some() {
            FOLLOW_RECHECK
        } else {
            FOLLOW_POLL
        };
        if self.rx.recv_timeout(timeout).is_ok() {
            while self.rx.try_recv().is_ok() {}
        }
    }
}

/// Why a log stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowEnd {
    /// Everything was written (not following).
    EndOfLog,
    /// The container instance is no longer running and its log was read to the end.
    InstanceEnded,
    /// `limitBytes` were written.
    LimitReached,
    /// The client closed the connection.
    ClientGone,
}

/// `ReadLogs` with `follow`: the records of the rotated files and the live file, then new
/// records as they are written, across rotations (at the end of the open file, if the path
/// names a new file, the rest of the old one is read and the new one opened), until the
/// instance is no longer `running` (after a last read), the byte limit is reached, or
/// `client_gone`.
pub fn follow_logs<W: Write>(
    log_path: &Path,
    opts: &LogOptions,
    running: impl Fn() -> bool,
    client_gone: impl Fn() -> bool,
    out: &mut W,
) -> std::io::Result<FollowEnd> {
    let dir = log_path.parent().unwrap_or(Path::new("."));
    let waker = Waker::new(dir);
    let mut live = LiveFile::open(log_path);
    let mut em = Emitter {
        w: RecordWriter::new(out, opts),
        ring: opts.tail_lines.map(|n| (n, VecDeque::new())),
    };
    let files = log_files(log_path).map_err(std::io::Error::other)?;
    for f in files.iter().filter(|f| f.as_path() != log_path) {
        // The rotation may have happened after the live file was opened: then the handle
        // already reads this file.
        let same = std::fs::metadata(f).is_ok_and(|m| Some(file_id(&m)) == live.id());
        if !same && !read_rotated(f, &mut em)? {
            return Ok(FollowEnd::LimitReached);
        }
    }
    if !live.read_available(&mut em)? || !em.caught_up()? {
        return Ok(FollowEnd::LimitReached);
    }
    loop {
        if !live.read_available(&mut em)? {
            return Ok(FollowEnd::LimitReached);
        }
        em.w.flush()?;
        if live.rotated() {
            if !live.read_available(&mut em)? {
                return Ok(FollowEnd::LimitReached);
            }
            live.reopen();
            continue;
        }
        if !running() {
            // The shim records the exit only after the output is drained: this read is the last.
            live.read_available(&mut em)?;
            if live.rotated() {
                live.reopen();
                live.read_available(&mut em)?;
            }
            em.w.flush()?;
            return Ok(FollowEnd::InstanceEnded);
        }
        if client_gone() {
            return Ok(FollowEnd::ClientGone);
        }
        waker.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn decode_query_like_the_parameter_codec() {
        let o = PodLogOptions::from_query(
            &pairs("follow=true&tailLines=5&timestamps=1&previous=false&limitBytes=100&sinceSeconds=10&insecureSkipTLSVerifyBackend=true"),
            true,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(100));
        assert_eq!(o.since_seconds, Some(10));
        // A present bool with any value but 0/false is true, even empty.
        let o =
            PodLogOptions::from_query(&pairs("follow&previous=FALSE&timestamps=0"), true).unwrap();
        assert!(o.follow && !o.previous && !o.timestamps);
        // The legacy tail parameter.
        let cases = [
            ("tail=7", Some(7)),
            ("tailLines=3&tail=all", None),
            ("tail=", None),
        ];
        for (q, want) in cases {
            assert_eq!(
                PodLogOptions::from_query(&pairs(q), true)
                    .unwrap()
                    .tail_lines,
                want,
                "{q}"
            );
        }
        let o = PodLogOptions::from_query(&pairs("sinceTime=2025-01-01T00:00:00Z"), true).unwrap();
        assert_eq!(o.since_time, Some("2025-01-01T00:00:00Z".parse().unwrap()));
        for bad in [
            "tailLines=x",
            "limitBytes=1.5",
            "sinceTime=yesterday",
            "tail=some",
        ] {
            assert!(
                PodLogOptions::from_query(&pairs(bad), true).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation_like_the_api_server() {
        let cases = [
            ("tailLines=0", ""),
            (
                "tailLines=-1",
                "tailLines: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "limitBytes=0",
                "limitBytes: Invalid value: 0: must be greater than 0",
            ),
            (
                "sinceSeconds=0",
                "sinceSeconds: Invalid value: 0: must be greater than 0",
            ),
            (
                "sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z",
                ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
            (
                "stream=Both",
                "stream: Unsupported value: \"Both\": supported values: \"All\", \"Stderr\", \"Stdout\"",
            ),
            (
                "stream=Stdout&tailLines=1",
                ": Forbidden: `tailLines` and specific `stream` are mutually exclusive for now",
            ),
            ("stream=All&tailLines=1", ""),
        ];
        for (q, want) in cases {
            let errs = PodLogOptions::from_query(&pairs(q), true)
                .unwrap()
                .validate();
            let got = if errs.is_empty() {
                String::new()
            } else {
                aggregate(&errs)
            };
            assert_eq!(got, want, "{q}");
        }
    }

    #[test]
    fn since_is_the_later_bound() {
        let now: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let o = PodLogOptions {
            since_seconds: Some(30),
            ..Default::default()
        };
        assert_eq!(
            o.to_log_options(now).since_time,
            Some("2025-01-01T00:00:30Z".parse().unwrap())
        );
        let o = PodLogOptions {
            since_time: Some("2025-01-01T00:00:10Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            o.to_log_options(now).since_time,
            Some("2025-01-01T00:00:10Z".parse().unwrap())
        );
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn which_instance_like_validate_container_log_status() {
        let cs = |state: serde_json::Value, last: serde_json::Value| {
            pod(
                serde_json::json!({"metadata": {"name": "web"}, "status": {"containerStatuses": [
                {"name": "main", "ready": false, "restartCount": 1, "image": "", "imageID": "",
                 "containerID": "minikubelet://cur", "state": state, "lastState": last}]}}),
            )
        };
        let term = |id: &str| serde_json::json!({"terminated": {"exitCode": 1, "containerID": id}});
        let cases: Vec<(Pod, bool, Result<&str, &str>)> = vec![
            (
                cs(serde_json::json!({"running": {}}), serde_json::json!({})),
                false,
                Ok("cur"),
            ),
            (
                cs(serde_json::json!({"running": {}}), serde_json::json!({})),
                true,
                Err("previous terminated container \"main\" in pod \"web\" not found"),
            ),
            (
                cs(
                    serde_json::json!({"running": {}}),
                    term("minikubelet://old"),
                ),
                true,
                Ok("old"),
            ),
            (
                cs(
                    serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                    term("minikubelet://old"),
                ),
                false,
                Ok("old"),
            ),
            (
                cs(
                    serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
                    serde_json::json!({}),
                ),
                false,
                Err("container \"main\" in pod \"web\" is waiting to start: ContainerCreating"),
            ),
            (
                cs(term("minikubelet://done"), serde_json::json!({})),
                false,
                Ok("done"),
            ),
            (
                pod(serde_json::json!({"metadata": {"name": "web"}})),
                false,
                Err("container \"main\" in pod \"web\" is not available"),
            ),
        ];
        for (p, previous, want) in cases {
            let got = log_container_id(&p, "main", previous);
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), want);
        }
    }

    fn line(ts: &str, text: &str) -> String {
        format!("{ts} stdout F {text}\n")
    }

    /// A follower in a thread, its output collected.
    struct Follow {
        out: Arc<std::sync::Mutex<Vec<u8>>>,
        running: Arc<AtomicBool>,
        handle: std::thread::JoinHandle<FollowEnd>,
    }

    struct SharedOut(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for SharedOut {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn start_follow(path: &Path, opts: LogOptions) -> Follow {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        let (p, o, r) = (path.to_path_buf(), out.clone(), running.clone());
        let handle = std::thread::spawn(move || {
            follow_logs(
                &p,
                &opts,
                || r.load(Ordering::SeqCst),
                || false,
                &mut SharedOut(o),
            )
            .unwrap()
        });
        Follow {
            out,
            running,
            handle,
        }
    }

    fn wait_for(out: &Arc<std::sync::Mutex<Vec<u8>>>, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = String::from_utf8_lossy(&out.lock().unwrap()).to_string();
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "got {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follow_across_rotation_until_the_instance_ends() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        append(&log, &line("2025-01-01T00:00:01Z", "one"));
        append(&log, &line("2025-01-01T00:00:02Z", "two"));
        let f = start_follow(&log, LogOptions::default());
        wait_for(&f.out, "one\ntwo\n");
        // A half-written record is held back until its newline arrives.
        append(&log, "2025-01-01T00:00:03Z stdout F thr");
        std::thread::sleep(Duration::from_millis(50));
        append(&log, "ee\n");
        wait_for(&f.out, "one\ntwo\nthree\n");
        // Rotation as the shim does it: a last write to the old file, rename, a new file.
        append(&log, &line("2025-01-01T00:00:04Z", "four"));
        std::fs::rename(&log, dir.path().join("0.log.20250101-000004")).unwrap();
        append(&log, &line("2025-01-01T00:00:05Z", "five"));
        wait_for(&f.out, "one\ntwo\nthree\nfour\nfive\n");
        // The instance ends: the follower does a last read and returns.
        append(&log, &line("2025-01-01T00:00:06Z", "six"));
        f.running.store(false, Ordering::SeqCst);
        assert_eq!(f.handle.join().unwrap(), FollowEnd::InstanceEnded);
        assert_eq!(
            String::from_utf8_lossy(&f.out.lock().unwrap()),
            "one\ntwo\nthree\nfour\nfive\nsix\n"
        );
    }

    #[test]
    fn follow_with_tail_spans_rotated_files_then_streams() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            dir.path().join("0.log.20250101-000001"),
            line("2025-01-01T00:00:01Z", "a") + &line("2025-01-01T00:00:02Z", "b"),
        )
        .unwrap();
        append(&log, &line("2025-01-01T00:00:03Z", "c"));
        let f = start_follow(
            &log,
            LogOptions {
                tail_lines: Some(2),
                timestamps: true,
                ..Default::default()
            },
        );
        wait_for(
            &f.out,
            "2025-01-01T00:00:02.000000000Z b\n2025-01-01T00:00:03.000000000Z c\n",
        );
        append(&log, &line("2025-01-01T00:00:04Z", "d"));
        wait_for(
            &f.out,
            "2025-01-01T00:00:02.000000000Z b\n2025-01-01T00:00:03.000000000Z c\n2025-01-01T00:00:04.000000000Z d\n",
        );
        f.running.store(false, Ordering::SeqCst);
        f.handle.join().unwrap();
    }

    #[test]
    fn follow_stops_at_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        append(&log, &line("2025-01-01T00:00:01Z", "one"));
        let f = start_follow(
            &log,
            LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            },
        );
        wait_for(&f.out, "one\n");
        append(&log, &line("2025-01-01T00:00:02Z", "two"));
        // Returns by itself, the instance still running.
        assert_eq!(f.handle.join().unwrap(), FollowEnd::LimitReached);
        assert_eq!(String::from_utf8_lossy(&f.out.lock().unwrap()), "one\ntw");
    }

    #[test]
    fn follow_and_read_logs_agree_on_a_finished_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let gz = File::create(dir.path().join("0.log.20250101-000001.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(
            (line("2025-01-01T00:00:01Z", "one") + "2025-01-01T00:00:02Z stderr F two\n")
                .as_bytes(),
        )
        .unwrap();
        enc.finish().unwrap();
        append(
            &log,
            &("2025-01-01T00:00:03Z stdout P thr\n".to_string()
                + &line("2025-01-01T00:00:03.5Z", "ee")
                + &line("2025-01-01T00:00:04Z", "four")),
        );
        let ts = |s: &str| s.parse::<Timestamp>().unwrap();
        let cases = [
            LogOptions::default(),
            LogOptions {
                tail_lines: Some(2),
                ..Default::default()
            },
            LogOptions {
                since_time: Some(ts("2025-01-01T00:00:02Z")),
                timestamps: true,
                ..Default::default()
            },
            LogOptions {
                stream: Some(Stream::Stderr),
                ..Default::default()
            },
            LogOptions {
                limit_bytes: Some(9),
                ..Default::default()
            },
        ];
        for opts in cases {
            let mut want = Vec::new();
            read_logs(&log, &opts, &mut want).unwrap();
            let mut got = Vec::new();
            follow_logs(&log, &opts, || false, || false, &mut got).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{opts:?}"
            );
        }
    }
}
