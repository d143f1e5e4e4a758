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
//!
//! A request holds no thread: each chunk of its body is read by a short blocking task when the
//! client can take it, and a follower waits as an async task, woken by the agent's one inotify
//! watcher ([`LogWatcher`]). Followers are capped at [`max_log_followers`] (429 beyond).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServerState;
use super::names::check_names;
use super::status::{ApiError, FieldError, FieldErrorKind, aggregate};
use crate::logs::{DirWatch, LogOptions, LogReader, LogWatcher, LogsError, ReadStep, Stream};
use crate::runtime::ContainerRuntime;

/// How long a follower with nothing new waits before it checks again whether its container
/// still runs (an in-memory look, the kubelet's 1 s). A write to the file wakes it at once
/// through the agent's shared inotify watcher; this bounds how late it notices an exit that
/// wrote nothing.
const FOLLOW_RECHECK: Duration = Duration::from_secs(1);
/// The safety net: a follower reads its file after this long without a wake-up even if no
/// event came (a lost event, a directory watched under another name). Shorter bounds how late
/// a missed line can be, at the price of a read per follower that often (with thousands of
/// followers, 10 s costs a few hundred cheap reads a second).
const FOLLOW_RESCAN: Duration = Duration::from_secs(10);
/// Without inotify (no instance or watch left), how often a follower reads its file: the
/// latency a reader sees against a read per follower four times a second.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Bytes gathered before a chunk goes to the client: large chunks cost fewer wake-ups and
/// blocking tasks on a busy log; a follower sends whatever it has when it reaches the end of the
/// file. Each request holds at most one chunk (read when the client can take it).
const CHUNK_SIZE: usize = 32 * 1024;
/// Followers (`logs -f`) at once, agent-wide, at most; more get 429. A follower costs no
/// thread, only memory (its state, an unfinished line, the connection's buffers: tens of KiB)
/// and two descriptors (its connection and the open log). But each holds one of the API's
/// connections for as long as it follows, so the cap is also at most half of the connection cap
/// ([`max_log_followers`]): followers alone can never take every connection and lock the
/// node's administrator out. 512 (half of `conn::MAX_CONNECTIONS_CEILING`) is far beyond what
/// one node's users follow.
pub const MAX_LOG_FOLLOWERS: usize = 512;

/// The followers' cap in force: [`MAX_LOG_FOLLOWERS`], or half the API's connection cap if
/// that is lower (a low open-file limit), at least 1.
pub fn max_log_followers() -> usize {
    let connections = super::conn::max_connections(super::conn::nofile_soft_limit());
    MAX_LOG_FOLLOWERS.min(connections / 2).max(1)
}
/// Log reads running at once in tokio's blocking pool, agent-wide. Each is short (one chunk, or
/// the backwards search of a tail, bounded by the log's size on disk); bounding them keeps the
/// rest of the pool for container starts, which share it, whatever the number of log requests.
/// More would read faster for many busy clients on many cores.
const LOG_READS_AT_ONCE: usize = 8;

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
    runtime: &dyn ContainerRuntime,
    pod: &Pod,
    container: &str,
    id: &str,
) -> Result<PathBuf, String> {
    let gone = || format!("log of container {container:?} instance {id} is no longer available");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(gone());
    }
    let rec = runtime.status(id).ok_or_else(gone)?;
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
/// against the spec): 200 with a chunked body, 400 with the reason the kubelet gives, or 429
/// when [`max_log_followers`] already follow.
pub fn serve_logs(
    s: &ServerState,
    pod: &Pod,
    container: &str,
    opts: &PodLogOptions,
) -> Result<Response, ApiError> {
    let id = log_container_id(pod, container, opts.previous).map_err(ApiError::bad_request)?;
    let path = instance_log_path(s.runtime.as_ref(), pod, container, &id)
        .map_err(ApiError::bad_request)?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let follow = if opts.follow {
        let (cap, max) = followers();
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            tracing::warn!(pod = %pod_name, container = %container, max, "too many log followers; request refused");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many log followers (at most {max} at once)"),
            ));
        };
        let runtime = s.runtime.clone();
        let running = Box::new(move || runtime.status(&id).is_some_and(|r| r.is_running()));
        Some(Following::new(
            &path,
            running,
            Some(permit),
            LogWatcher::agent(),
        ))
    } else {
        None
    };
    let stream = LogStream {
        path,
        opts: Some(opts.to_log_options(Timestamp::now())),
        reader: None,
        follow,
        end: None,
        pod: pod_name,
        container: container.to_string(),
    };
    let mut resp = Response::new(Body::from_stream(stream.into_stream()));
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

/// The followers' cap ([`max_log_followers`], read at the first follower: the agent raised its
/// open-file limit long before).
fn followers() -> &'static (Arc<Semaphore>, usize) {
    static FOLLOWERS: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();
    FOLLOWERS.get_or_init(|| {
        let max = max_log_followers();
        (Arc::new(Semaphore::new(max)), max)
    })
}

/// The bound on log reads in the blocking pool ([`LOG_READS_AT_ONCE`]).
fn log_reads() -> &'static Semaphore {
    static READS: Semaphore = Semaphore::const_new(LOG_READS_AT_ONCE);
    &READS
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
    /// Reading the log failed.
    Failed,
}

/// What a follower waits on between reads: its directory's watch, the clock, the instance.
struct Following {
    running: Box<dyn Fn() -> bool + Send + Sync>,
    watch: Option<DirWatch>,
    /// Its place under [`MAX_LOG_FOLLOWERS`], given back when the stream is dropped.
    _permit: Option<OwnedSemaphorePermit>,
    /// The instance has ended: the log is read to its end once more, then the stream ends.
    ending: bool,
}

impl Following {
    fn new(
        log_path: &Path,
        running: Box<dyn Fn() -> bool + Send + Sync>,
        permit: Option<OwnedSemaphorePermit>,
        watcher: Option<Arc<LogWatcher>>,
    ) -> Self {
        let dir = log_path.parent().unwrap_or(Path::new("."));
        let watch = watcher.and_then(|w| match w.watch(dir) {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "no inotify watch for a log follower; polling");
                None
            }
        });
        Following {
            running,
            watch,
            _permit: permit,
            ending: false,
        }
    }

    /// Until the directory changes, the instance ends, or it is time for a safety-net read.
    async fn wait(&mut self) {
        let since = tokio::time::Instant::now();
        loop {
            let live = self.watch.as_ref().is_some_and(DirWatch::is_live);
            let tick = if live { FOLLOW_RECHECK } else { FOLLOW_POLL };
            match self.watch.as_mut().filter(|_| live) {
                Some(w) => {
                    if tokio::time::timeout(tick, w.changed()).await.is_ok() {
                        return;
                    }
                }
                None => return tokio::time::sleep(tick).await,
            }
            if !(self.running)() || since.elapsed() >= FOLLOW_RESCAN {
                return;
            }
        }
    }
}

/// One log request's stream: the reader (opened by the first read), following, the outcome.
struct LogStream {
    path: PathBuf,
    opts: Option<LogOptions>,
    reader: Option<LogReader>,
    follow: Option<Following>,
    end: Option<FollowEnd>,
    pod: String,
    container: String,
}

impl LogStream {
    /// The response body: each chunk is read when the client can take it, so a slow client
    /// holds only this state.
    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures_util::stream::unfold(self, |mut st| async move {
            let chunk = st.next_chunk().await?;
            Some((Ok(chunk), st))
        })
    }

    /// The next non-empty chunk, `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.end.is_some() {
                return None;
            }
            if let Some(w) = self.follow.as_mut().and_then(|f| f.watch.as_mut()) {
                w.mark_seen();
            }
            let (chunk, step) = match self.read_chunk().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(pod = %self.pod, container = %self.container, follow = self.follow.is_some(), error = %e, "log stream failed");
                    self.end = Some(FollowEnd::Failed);
                    return None;
                }
            };
            match (step, self.follow.as_mut()) {
                (ReadStep::More, _) => {}
                (ReadStep::LimitReached, _) => self.end = Some(FollowEnd::LimitReached),
                (ReadStep::CaughtUp, None) => self.end = Some(FollowEnd::EndOfLog),
                (ReadStep::CaughtUp, Some(f)) if f.ending => {
                    self.end = Some(FollowEnd::InstanceEnded)
                }
                // The shim records the exit only after the output is drained: one more read to
                // the end is the last.
                (ReadStep::CaughtUp, Some(f)) if !(f.running)() => f.ending = true,
                (ReadStep::CaughtUp, Some(f)) => {
                    if chunk.is_empty() {
                        f.wait().await;
                    }
                }
            }
            if !chunk.is_empty() {
                return Some(chunk);
            }
        }
    }

    /// One chunk, read by a short blocking task (the first one opens the log and finds the
    /// tail), at most [`LOG_READS_AT_ONCE`] of them at once agent-wide.
    async fn read_chunk(&mut self) -> Result<(Bytes, ReadStep), LogsError> {
        let _turn = log_reads().acquire().await;
        let (path, opts, reader) = (self.path.clone(), self.opts.take(), self.reader.take());
        let follow = self.follow.is_some();
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = match reader {
                Some(r) => r,
                None => match LogReader::open(&path, opts.unwrap_or_default(), follow) {
                    Ok(r) => r,
                    Err(e) => return (None, Err(e)),
                },
            };
            let mut out = Vec::with_capacity(CHUNK_SIZE);
            let step = reader.read_some(&mut out, CHUNK_SIZE);
            (Some(reader), step.map(|s| (Bytes::from(out), s)))
        });
        let (reader, result) = task
            .await
            .map_err(|e| LogsError::io("read", &self.path, std::io::Error::other(e)))?;
        self.reader = reader;
        result
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        let end = self.end.unwrap_or(FollowEnd::ClientGone);
        tracing::debug!(pod = %self.pod, container = %self.container, follow = self.follow.is_some(), end = ?end, "log stream ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::read_logs;
    use std::io::Write;
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

    /// A follower as a task, its output collected.
    struct Follow {
        out: Arc<std::sync::Mutex<Vec<u8>>>,
        running: Arc<AtomicBool>,
        handle: tokio::task::JoinHandle<FollowEnd>,
    }

    /// A log stream of `path`; following with `running` if given.
    fn stream(path: &Path, opts: LogOptions, running: Option<Arc<AtomicBool>>) -> LogStream {
        let follow = running.map(|r| {
            let running = Box::new(move || r.load(Ordering::SeqCst));
            Following::new(path, running, None, LogWatcher::new().ok())
        });
        LogStream {
            path: path.to_path_buf(),
            opts: Some(opts),
            reader: None,
            follow,
            end: None,
            pod: "p".into(),
            container: "c".into(),
        }
    }

    /// Everything a stream sends, and how it ended.
    async fn drain(mut st: LogStream, out: Arc<std::sync::Mutex<Vec<u8>>>) -> FollowEnd {
        while let Some(chunk) = st.next_chunk().await {
            out.lock().unwrap().extend_from_slice(&chunk);
        }
        st.end.unwrap()
    }

    fn start_follow(path: &Path, opts: LogOptions) -> Follow {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        let st = stream(path, opts, Some(running.clone()));
        let handle = tokio::spawn(drain(st, out.clone()));
        Follow {
            out,
            running,
            handle,
        }
    }

    async fn wait_for(out: &Arc<std::sync::Mutex<Vec<u8>>>, want: &str) {
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
            tokio::time::sleep(Duration::from_millis(10)).await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_across_rotation_until_the_instance_ends() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        append(&log, &line("2025-01-01T00:00:01Z", "one"));
        append(&log, &line("2025-01-01T00:00:02Z", "two"));
        let f = start_follow(&log, LogOptions::default());
        wait_for(&f.out, "one\ntwo\n").await;
        // A half-written record is held back until its newline arrives.
        append(&log, "2025-01-01T00:00:03Z stdout F thr");
        tokio::time::sleep(Duration::from_millis(50)).await;
        append(&log, "ee\n");
        wait_for(&f.out, "one\ntwo\nthree\n").await;
        // Rotation as the shim does it: a last write to the old file, rename, a new file.
        append(&log, &line("2025-01-01T00:00:04Z", "four"));
        std::fs::rename(&log, dir.path().join("0.log.20250101-000004")).unwrap();
        append(&log, &line("2025-01-01T00:00:05Z", "five"));
        wait_for(&f.out, "one\ntwo\nthree\nfour\nfive\n").await;
        // The instance ends: the follower does a last read and returns.
        append(&log, &line("2025-01-01T00:00:06Z", "six"));
        f.running.store(false, Ordering::SeqCst);
        assert_eq!(f.handle.await.unwrap(), FollowEnd::InstanceEnded);
        assert_eq!(
            String::from_utf8_lossy(&f.out.lock().unwrap()),
            "one\ntwo\nthree\nfour\nfive\nsix\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_with_tail_spans_rotated_files_then_streams() {
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
        )
        .await;
        append(&log, &line("2025-01-01T00:00:04Z", "d"));
        wait_for(
            &f.out,
            "2025-01-01T00:00:02.000000000Z b\n2025-01-01T00:00:03.000000000Z c\n2025-01-01T00:00:04.000000000Z d\n",
        ).await;
        f.running.store(false, Ordering::SeqCst);
        f.handle.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_stops_at_the_byte_limit() {
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
        wait_for(&f.out, "one\n").await;
        append(&log, &line("2025-01-01T00:00:02Z", "two"));
        // Returns by itself, the instance still running.
        assert_eq!(f.handle.await.unwrap(), FollowEnd::LimitReached);
        assert_eq!(String::from_utf8_lossy(&f.out.lock().unwrap()), "one\ntw");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_and_read_logs_agree_on_a_finished_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let gz = std::fs::File::create(dir.path().join("0.log.20250101-000001.gz")).unwrap();
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
            let got = Arc::new(std::sync::Mutex::new(Vec::new()));
            let st = stream(&log, opts.clone(), Some(Arc::new(AtomicBool::new(false))));
            drain(st, got.clone()).await;
            let got = got.lock().unwrap().clone();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{opts:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_dropped_by_its_client_releases_its_watch() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        append(&log, &line("2025-01-01T00:00:01Z", "one"));
        let watcher = LogWatcher::new().unwrap();
        let running = Box::new(|| true);
        let follow = Following::new(&log, running, None, Some(watcher.clone()));
        let mut st = stream(&log, LogOptions::default(), None);
        st.follow = Some(follow);
        assert_eq!(st.next_chunk().await.as_deref(), Some(&b"one\n"[..]));
        assert_eq!(watcher.watched(), 1);
        // Waiting for more when the client leaves (hyper drops the body).
        let waiting = tokio::spawn(async move { st.next_chunk().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(watcher.watched(), 0);
    }
}
