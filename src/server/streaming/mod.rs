//! The streaming server: the CRI half of exec, attach and port-forward.
//!
//! Mirrors `staging/src/k8s.io/kubelet/pkg/cri/streaming` (server.go) — the server a CRI runtime
//! (containerd, CRI-O) runs beside itself — and `pkg/kubelet/cri/streaming/request_cache.go`.
//! The kubelet never serves these streams itself: it validates the client's request, asks the
//! runtime for a URL (`GetExec`, `GetAttach`, `GetPortForward`: [`StreamingServer::get_exec`]
//! and friends), and proxies the client's upgraded connection to that URL
//! (`crate::server::remotecommand`). The URL names a single-use token; this server takes the
//! request back out of its cache when the client arrives at `/exec/{token}`, `/attach/{token}`
//! or `/portforward/{token}`, upgrades, and runs the session:
//!
//! ```text
//! kubelet handler ──GetExec──► StreamingServer ─token─► RequestCache
//!        │ proxy (upgrade)            │ /exec/{token}
//!        └────────────────────────────► WebSocket (v5/v4/v1/base64) or SPDY/3.1
//!                                      └► runtime::exec (process in the container's context)
//!                                      └► the container's shim (attach.sock)
//!                                      └► 127.0.0.1:<port> (port-forward)
//! ```
//!
//! It listens on its own loopback port, as containerd's `stream_server_address` does, so
//! tokens are reachable only from the node; the kubelet API is the only public way in.
//! Connections are bounded: at most [`StreamingConfig::max_sessions`] at once, each closed
//! after [`StreamingConfig::idle_timeout`] without traffic (`streamingConnectionIdleTimeout`).

pub mod portforward;
pub mod remotecommand;
pub mod request_cache;
pub mod spdy;
pub mod wsstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::exec::StreamOptions;
use crate::runtime::{AttachTarget, ContainerRuntime};
use crate::server::status::{self, Refusal};
use request_cache::{CacheError, RequestCache};

/// The kubelet's `streamCreationTimeout`: how long the server waits for a SPDY client to open
/// all the streams a session needs. Generous for a slow network; a client that never opens them
/// holds a session slot at most this long.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions at once (exec, attach, port-forward connections). Each holds a few descriptors,
/// tasks and buffers (and an exec a process); the bound keeps a misbehaving client from using
/// them up. kubectl uses one per command.
pub const MAX_SESSIONS: usize = 128;
/// `/run` commands at once (the kubelet's `RunInContainer`, CRI ExecSync). Each holds a
/// process and its pipes for up to the command's timeout; the kubelet and the CRI bound
/// nothing, and 300 concurrent `/run?cmd=sleep+25` took 1200 descriptors. `/run` is a debugging
/// path (kubectl never calls it), so 32 is plenty; more get 429.
pub const MAX_RUNS: usize = 32;

/// Settings of the streaming server.
#[derive(Clone, Debug)]
pub struct StreamingConfig {
    /// Where it listens; loopback only (port 0: any free port).
    pub address: SocketAddr,
    /// `streamingConnectionIdleTimeout`.
    pub idle_timeout: Duration,
    /// [`STREAM_CREATION_TIMEOUT`].
    pub stream_creation_timeout: Duration,
    /// [`MAX_SESSIONS`].
    pub max_sessions: usize,
    /// How long a token stays valid ([`request_cache::CACHE_TTL`]).
    pub token_ttl: Duration,
}

impl StreamingConfig {
    /// Loopback, any port, the given idle timeout, kubelet defaults otherwise.
    pub fn new(idle_timeout: Duration) -> Self {
        StreamingConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            idle_timeout,
            stream_creation_timeout: STREAM_CREATION_TIMEOUT,
            max_sessions: MAX_SESSIONS,
            token_ttl: request_cache::CACHE_TTL,
        }
    }
}

/// CRI `ExecRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The runtime's container ID.
    pub container_id: String,
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// Run on a terminal.
    pub tty: bool,
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr (not with `tty`).
    pub stderr: bool,
}

/// CRI `AttachRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    /// The runtime's container ID.
    pub container_id: String,
    /// Stream stdin.
    pub stdin: bool,
    /// The container has a terminal.
    pub tty: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr (not with `tty`).
    pub stderr: bool,
}

/// CRI `PortForwardRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortForwardRequest {
    /// The pod (sandbox) whose ports are forwarded: its UID here.
    pub pod_sandbox_id: String,
    /// The pod's name, for messages.
    pub pod_name: String,
    /// Ports named in the kubelet request (WebSocket clients); SPDY clients name them per stream.
    pub port: Vec<u16>,
}

#[derive(Clone, Debug)]
enum CachedRequest {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

/// Errors of the streaming server, with the gRPC code the CRI would use in the message.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// A request that can never be served (gRPC InvalidArgument).
    #[error("{0}")]
    InvalidArgument(String),
    /// The token cache is full (gRPC ResourceExhausted): the kubelet answers 429.
    #[error("{0}")]
    Cache(#[from] CacheError),
    /// The listener could not be bound.
    #[error("streaming server: listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The streaming server.
pub struct StreamingServer {
    config: StreamingConfig,
    base_url: String,
    cache: RequestCache<CachedRequest>,
    runtime: Arc<dyn ContainerRuntime>,
    sessions: Arc<Semaphore>,
    runs: Arc<Semaphore>,
}

impl StreamingServer {
    /// Binds the listener and serves in a background task; the server, ready for `get_*`.
    pub async fn start(
        config: StreamingConfig,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Result<Arc<Self>, StreamingError> {
        let listener = tokio::net::TcpListener::bind(config.address)
            .await
            .map_err(|source| StreamingError::Bind {
                addr: config.address,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StreamingError::Bind {
                addr: config.address,
                source,
            })?;
        let server = Arc::new(Self::new(config, runtime, addr));
        let app = server.clone().router();
        // Connections wait here only until they upgrade (then the session cap holds them), so
        // the session cap bounds the waiting ones too; the header timeout is the API's.
        let limits = crate::server::conn::Limits {
            max_connections: server.config.max_sessions,
            ..crate::server::conn::Limits::from_rlimit()
        };
        tokio::spawn(crate::server::conn::serve(
            listener,
            app,
            None,
            limits,
            std::future::pending(),
        ));
        tracing::info!(address = %addr, "streaming server listening");
        Ok(server)
    }

    /// A server whose URLs point at `addr` (the caller serves [`Self::router`] there).
    pub fn new(
        config: StreamingConfig,
        runtime: Arc<dyn ContainerRuntime>,
        addr: SocketAddr,
    ) -> Self {
        StreamingServer {
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            runs: Arc::new(Semaphore::new(MAX_RUNS)),
            cache: RequestCache::with_limits(config.token_ttl, request_cache::MAX_IN_FLIGHT),
            config,
            base_url: format!("http://{addr}"),
            runtime,
        }
    }

    /// The runtime whose containers it streams (the kubelet's `/run` uses it for ExecSync).
    pub fn runtime(&self) -> &dyn ContainerRuntime {
        self.runtime.as_ref()
    }

    /// `http://<address>`, the prefix of every URL it hands out.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The routes: `/exec/{token}`, `/attach/{token}`, `/portforward/{token}` (GET or POST).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/exec/{token}", any(serve_exec))
            .route("/attach/{token}", any(serve_attach))
            .route("/portforward/{token}", any(serve_port_forward))
            .with_state(self)
    }

    /// CRI GetExec: validates the request and returns the URL to stream it from.
    pub fn get_exec(&self, req: ExecRequest) -> Result<String, StreamingError> {
        if req.container_id.is_empty() {
            return Err(StreamingError::InvalidArgument(
                "missing required container_id".into(),
            ));
        }
        if req.cmd.is_empty() {
            return Err(StreamingError::InvalidArgument(
                "missing required cmd".into(),
            ));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.url("exec", CachedRequest::Exec(req))
    }

    /// CRI GetAttach.
    pub fn get_attach(&self, req: AttachRequest) -> Result<String, StreamingError> {
        if req.container_id.is_empty() {
            return Err(StreamingError::InvalidArgument(
                "missing required container_id".into(),
            ));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.url("attach", CachedRequest::Attach(req))
    }

    /// CRI GetPortForward.
    pub fn get_port_forward(&self, req: PortForwardRequest) -> Result<String, StreamingError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(StreamingError::InvalidArgument(
                "missing required pod_sandbox_id".into(),
            ));
        }
        self.url("portforward", CachedRequest::PortForward(req))
    }

    fn url(&self, kind: &str, req: CachedRequest) -> Result<String, StreamingError> {
        let token = self.cache.insert(req)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// Checks that container `id` runs, or gives the answer explaining why not.
    fn running_container(&self, id: &str) -> Result<(), Refusal> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(status::not_found(format!("container {id:?} not found")).into());
        }
        match self.runtime.status(id) {
            Some(rec) if rec.is_running() => Ok(()),
            _ => Err(status::not_found(format!("container {id:?} is not running")).into()),
        }
    }

    fn session_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        slot(
            &self.sessions,
            "streaming sessions (exec, attach, port-forward)",
            self.config.max_sessions,
        )
    }

    /// A slot for one `/run` command ([`MAX_RUNS`]), or the 429 answer.
    pub fn run_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        slot(&self.runs, "/run commands", MAX_RUNS)
    }
}

/// A permit of `sem`, or 429 with a Status (and `Retry-After`: sessions end at any time).
fn slot(sem: &Arc<Semaphore>, what: &str, max: usize) -> Result<OwnedSemaphorePermit, Refusal> {
    sem.clone().try_acquire_owned().map_err(|_| {
        let mut r = status::error_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many {what} ({max} at once)"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r.into()
    })
}

/// The CRI server's checks of the stream flags.
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), StreamingError> {
    if tty && stderr {
        return Err(StreamingError::InvalidArgument(
            "tty and stderr cannot both be true".into(),
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(StreamingError::InvalidArgument(
            "one of stdin, stdout, or stderr must be set".into(),
        ));
    }
    Ok(())
}

/// What kind of upgrade a request asks for.
enum Upgrade {
    WebSocket,
    Spdy,
    None,
}

fn upgrade_kind(headers: &HeaderMap) -> Upgrade {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !connection_upgrade {
        Upgrade::None
    } else if upgrade.eq_ignore_ascii_case("websocket") {
        Upgrade::WebSocket
    } else if upgrade.to_ascii_lowercase().starts_with("spdy/3.1") {
        Upgrade::Spdy
    } else {
        Upgrade::None
    }
}

/// Every `X-Stream-Protocol-Version` the client offered, in order.
fn stream_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Answers a SPDY upgrade with `protocol` and hands the raw connection to `run`.
fn spdy_upgrade<F, Fut>(mut req: Request, protocol: &'static str, run: F) -> Response
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    resp
}

/// The first protocol the client offered that the server supports (the client's order).
fn pick<'a>(offered: &[String], supported: &[&'a str]) -> Option<&'a str> {
    offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()).copied())
}

async fn websocket(req: Request) -> Result<(WebSocketUpgrade, HeaderMap), Refusal> {
    let (mut parts, _body) = req.into_parts();
    let headers = parts.headers.clone();
    WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map(|ws| {
            // One message and one frame at most the size of a SPDY frame (axum's defaults are
            // 64 and 16 MiB); port-forward's tunnel carries SPDY frames, so the same bound.
            let ws = ws
                .max_message_size(remotecommand::MAX_MESSAGE_SIZE)
                .max_frame_size(remotecommand::MAX_MESSAGE_SIZE);
            (ws, headers)
        })
        .map_err(|e| status::bad_request(format!("websocket upgrade: {e}")).into())
}

/// `/exec/{token}` and `/attach/{token}`: the remote-command sessions.
enum Command {
    Exec(ExecRequest),
    Attach(AttachRequest),
}

async fn serve_exec(
    State(srv): State<Arc<StreamingServer>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    match srv.cache.consume(&token) {
        Some(CachedRequest::Exec(r)) => serve_command(srv, Command::Exec(r), req).await,
        _ => token_not_found(&token),
    }
}

async fn serve_attach(
    State(srv): State<Arc<StreamingServer>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    match srv.cache.consume(&token) {
        Some(CachedRequest::Attach(r)) => serve_command(srv, Command::Attach(r), req).await,
        _ => token_not_found(&token),
    }
}

fn token_not_found(token: &str) -> Response {
    status::not_found(format!(
        "streaming token {token:?} is unknown, used or expired"
    ))
}

async fn serve_command(srv: Arc<StreamingServer>, cmd: Command, req: Request) -> Response {
    let (container_id, opts) = match &cmd {
        Command::Exec(r) => (&r.container_id, opts(r.stdin, r.stdout, r.stderr, r.tty)),
        Command::Attach(r) => (&r.container_id, opts(r.stdin, r.stdout, r.stderr, r.tty)),
    };
    if let Err(resp) = srv.running_container(container_id) {
        return resp.into_response();
    }
    // Everything the session needs, read before the upgrade so failures are HTTP answers.
    let session = match cmd {
        Command::Exec(r) => match srv.runtime.exec_context(&r.container_id) {
            Ok(ctx) => Session::Exec(ctx, r.cmd),
            Err(e) => return status::internal(e.to_string()),
        },
        Command::Attach(r) => match srv.runtime.attach(&r.container_id) {
            Ok(AttachTarget { socket }) => Session::Attach(socket),
            Err(e) => return status::not_found(e.to_string()),
        },
    };
    let permit = match srv.session_slot() {
        Ok(p) => p,
        Err(resp) => return resp.into_response(),
    };
    let idle = srv.config.idle_timeout;
    match upgrade_kind(req.headers()) {
        Upgrade::WebSocket => {
            let (mut ws, headers) = match websocket(req).await {
                Ok(v) => v,
                Err(resp) => return resp.into_response(),
            };
            let offered = wsstream::offered(&headers);
            let Some((proto, echo)) =
                wsstream::negotiate(&offered, &wsstream::REMOTE_COMMAND_PROTOCOLS)
            else {
                return status::bad_request(format!(
                    "requested protocol(s) are not supported: {offered:?}; supports {:?}",
                    wsstream::REMOTE_COMMAND_PROTOCOLS.map(|p| p.name)
                ));
            };
            if echo {
                ws.set_selected_protocol(HeaderValue::from_static(proto.name));
            }
            tracing::debug!(protocol = proto.name, "remote command over websocket");
            ws.on_upgrade(move |socket| async move {
                let _permit = permit;
                remotecommand::serve_websocket(socket, proto, idle, move |i, o| {
                    session.run(opts, i, o)
                })
                .await;
            })
        }
        Upgrade::Spdy => {
            let offered = stream_protocols(req.headers());
            let Some(protocol) = pick(&offered, &remotecommand::SPDY_PROTOCOLS) else {
                return status::error_response(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {:?}",
                        remotecommand::SPDY_PROTOCOLS
                    ),
                );
            };
            tracing::debug!(protocol, "remote command over SPDY");
            let creation = srv.config.stream_creation_timeout;
            spdy_upgrade(req, protocol, move |io| async move {
                let _permit = permit;
                remotecommand::serve_spdy(io, opts, idle, creation, move |i, o| {
                    session.run(opts, i, o)
                })
                .await;
            })
        }
        Upgrade::None => status::bad_request("Upgrade request required"),
    }
}

fn opts(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> StreamOptions {
    StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
    }
}

/// What a remote-command session runs.
enum Session {
    Exec(crate::runtime::exec::ExecContext, Vec<String>),
    Attach(PathBuf),
}

impl Session {
    async fn run(
        self,
        opts: StreamOptions,
        input: tokio::sync::mpsc::Receiver<remotecommand::ClientInput>,
        output: tokio::sync::mpsc::Sender<remotecommand::ServerOutput>,
    ) -> remotecommand::Outcome {
        match self {
            Session::Exec(ctx, argv) => {
                remotecommand::run_exec(ctx, argv, opts, input, output).await
            }
            Session::Attach(socket) => remotecommand::run_attach(socket, opts, input, output).await,
        }
    }
}

async fn serve_port_forward(
    State(srv): State<Arc<StreamingServer>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let Some(CachedRequest::PortForward(pf)) = srv.cache.consume(&token) else {
        return token_not_found(&token);
    };
    let permit = match srv.session_slot() {
        Ok(p) => p,
        Err(resp) => return resp.into_response(),
    };
    let idle = srv.config.idle_timeout;
    let creation = srv.config.stream_creation_timeout;
    let pod = pf.pod_name.clone();
    // The pod's own network namespace, if its sandbox has one: ports are dialed on its loopback.
    let netns = srv
        .runtime
        .list_pod_sandboxes()
        .into_iter()
        .rev()
        .find(|s| s.config.pod_uid == pf.pod_sandbox_id && s.ready)
        .and_then(|s| s.paths)
        .and_then(|p| {
            p.namespaces
                .get(crate::sandbox::NsKind::Net)
                .map(std::path::Path::to_path_buf)
        });
    match upgrade_kind(req.headers()) {
        Upgrade::WebSocket => {
            let (mut ws, headers) = match websocket(req).await {
                Ok(v) => v,
                Err(resp) => return resp.into_response(),
            };
            let offered = wsstream::offered(&headers);
            if !offered.iter().any(|p| p == portforward::TUNNEL_PROTOCOL) {
                return status::bad_request(format!(
                    "requested protocol(s) are not supported: {offered:?}; supports [{:?}]",
                    portforward::TUNNEL_PROTOCOL
                ));
            }
            ws.set_selected_protocol(HeaderValue::from_static(portforward::TUNNEL_PROTOCOL));
            tracing::debug!(pod = %pod, "port-forward: SPDY tunneled in websocket");
            ws.on_upgrade(move |socket| async move {
                let _permit = permit;
                let io = portforward::tunnel(socket);
                portforward::serve_spdy(io, pod, netns, idle, creation).await;
            })
        }
        Upgrade::Spdy => {
            let offered = stream_protocols(req.headers());
            if pick(&offered, &[portforward::PORT_FORWARD_PROTOCOL]).is_none() {
                return status::error_response(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{:?}]",
                        portforward::PORT_FORWARD_PROTOCOL
                    ),
                );
            }
            tracing::debug!(pod = %pod, "port-forward over SPDY");
            spdy_upgrade(
                req,
                portforward::PORT_FORWARD_PROTOCOL,
                move |io| async move {
                    let _permit = permit;
                    portforward::serve_spdy(io, pod, netns, idle, creation).await;
                },
            )
        }
        Upgrade::None => status::bad_request("Upgrade request required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_exec_validates_like_the_cri_server() {
        let dir = tempfile::tempdir().unwrap();
        let rt: Arc<dyn ContainerRuntime> =
            Arc::new(crate::runtime::ShimRuntime::new(dir.path(), "/bin/false".into()).unwrap());
        let srv = StreamingServer::new(
            StreamingConfig::new(Duration::from_secs(60)),
            rt,
            "127.0.0.1:1234".parse().unwrap(),
        );
        let ok = ExecRequest {
            container_id: "c".into(),
            cmd: vec!["sh".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: false,
        };
        let url = srv.get_exec(ok.clone()).unwrap();
        let token = url.strip_prefix("http://127.0.0.1:1234/exec/").unwrap();
        assert_eq!(token.len(), request_cache::TOKEN_LEN);
        let cases = [
            (
                ExecRequest {
                    container_id: String::new(),
                    ..ok.clone()
                },
                "missing required container_id",
            ),
            (
                ExecRequest {
                    tty: true,
                    stderr: true,
                    ..ok.clone()
                },
                "tty and stderr cannot both be true",
            ),
            (
                ExecRequest {
                    stdout: false,
                    ..ok.clone()
                },
                "one of stdin, stdout, or stderr must be set",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(srv.get_exec(req).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn upgrade_kinds_and_protocol_choice() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert!(matches!(upgrade_kind(&h), Upgrade::Spdy));
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(matches!(upgrade_kind(&h), Upgrade::WebSocket));
        h.remove(header::CONNECTION);
        assert!(matches!(upgrade_kind(&h), Upgrade::None));
        let offered: Vec<String> = [
            "v3.channel.k8s.io",
            "v4.channel.k8s.io",
            "v5.channel.k8s.io",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick(&offered, &remotecommand::SPDY_PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
    }
}
