//! The listener half of the kubelet's HTTP server: accepting connections, the TLS handshake,
//! HTTP/1.1 with upgrades, and the bounds that keep a flood of connections from taking the
//! agent's file descriptors and memory.
//!
//! Mirrors what Go's `net/http.Server` does for the kubelet (`ListenAndServeKubeletServer` in
//! `pkg/kubelet/server/server.go`: `IdleTimeout` 90 s, `ReadTimeout`/`WriteTimeout` 4 h, so 4 h
//! to send a request head, no connection cap) with tighter bounds, because the same process
//! also runs the pods: descriptors it loses to idle clients are descriptors it cannot use to
//! list manifests or start containers (`docs/security.md`).
//!
//! - **Header-read timeout** ([`HEADER_READ_TIMEOUT`]): hyper's, from the moment the server
//!   waits for a request head (a new connection, or a kept-alive one after its last answer)
//!   until the head is complete. It is therefore also the keep-alive idle timeout.
//! - **TLS handshake timeout** ([`super::tls::HANDSHAKE_TIMEOUT`]).
//! - **Connection cap** ([`max_connections`], derived from `RLIMIT_NOFILE`). When the cap is
//!   reached, a new connection sheds the *oldest idle* one (no request in flight: handshaking,
//!   sending a head, or kept alive between requests), so one attacker holding idle sockets
//!   cannot lock out the administrator. When every connection is busy (answers in progress,
//!   `logs -f`), the server stops accepting until one ends and the kernel's backlog holds the
//!   newcomers.
//!
//! Upgraded connections (exec, attach, port-forward) leave this server once hyper hands them
//! over; the streaming server's session cap bounds them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use super::auth::{PeerIdentity, user_from_certificate};

/// How long a client may take to send a complete request head, counted from when the server
/// starts waiting for it: the connection's start, or the end of the previous answer on a
/// kept-alive connection (hyper's timer covers both, so this is the idle timeout as well).
///
/// Go's API server uses 32 s for the head (`ReadHeaderTimeout`) and 90 s idle (`IdleTimeout`,
/// as `http.DefaultTransport` keeps idle connections); the kubelet sets no `ReadHeaderTimeout`,
/// so a head may take its `ReadTimeout`, 4 h. 10 s is ample for a head (a few hundred bytes
/// that clients send in one write) and lets a silent connection hold a slot for 10 s only; the
/// price is that a client idle for more than 10 s between requests connects again (one more
/// TCP or TLS handshake; Go clients and kubectl do this on their own).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept out of the connection cap, at least: the agent's own files (manifests,
/// cgroup files, logs, `/proc` reads), pipes and sockets of the pods' shims, exec sessions'
/// processes and their connection to the streaming server, inotify instances of log
/// followers. 256 covers a node's worth of pods starting at once; the cap never goes below
/// [`MIN_CONNECTIONS`], so a tiny limit starves neither side completely.
const FD_RESERVE_MIN: u64 = 256;
/// Of a large limit, this fraction (1/4) stays out of the cap: more pods on a node that was
/// given more descriptors.
const FD_RESERVE_DIVISOR: u64 = 4;
/// The cap whatever the limit: each idle connection costs about 14 KiB (hyper's buffers, the
/// task, a TLS session), so 1024 bound that memory to ~15 MiB. Far more than the kubelet API
/// has honest clients (the API server, a metrics scraper or two, administrators' kubectl).
pub const MAX_CONNECTIONS_CEILING: usize = 1024;
/// The cap whatever the limit, at least (a limit below ~300 descriptors is a misconfiguration
/// the agent survives, not one it tunes for).
const MIN_CONNECTIONS: usize = 16;

/// How long a shutdown waits for answers in progress before it returns anyway. Go's
/// `Server.Shutdown` waits as long as its context allows (the kubelet never calls it: it just
/// exits); streams such as `logs -f` never finish on their own, so the wait needs a bound.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// After a failed `accept` (EMFILE, ENFILE, ENOMEM), how long to wait before the next: the
/// error persists until something closes, and retrying at once would spin. axum and Go wait
/// 1 s at most (Go backs off from 5 ms); 100 ms recovers fast once descriptors are free.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// At most one "connection limit reached" warning per interval: a flood would otherwise
/// flood the log too.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The connection cap for a soft `RLIMIT_NOFILE` of `nofile`: the limit minus a reserve for
/// the agent's other descriptors (`max(256, nofile / 4)`), within
/// [`MIN_CONNECTIONS`]..=[`MAX_CONNECTIONS_CEILING`]. Under 512 descriptors that is 256, under
/// the 1024 of a login shell 768. The trade-off: a larger share for connections lets more
/// honest clients in during a flood (there are few), a larger reserve keeps pods starting.
pub fn max_connections(nofile: u64) -> usize {
    let reserve = FD_RESERVE_MIN.max(nofile / FD_RESERVE_DIVISOR);
    let cap = usize::try_from(nofile.saturating_sub(reserve)).unwrap_or(usize::MAX);
    cap.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS_CEILING)
}

/// The soft `RLIMIT_NOFILE` now (after [`raise_nofile_limit`]); 1024 if it cannot be read.
pub fn nofile_soft_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// The open-file limits (soft, hard) the agent was started with, before
/// [`raise_nofile_limit`].
static NOFILE_AT_START: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// The open-file limits (soft, hard) the agent was started with, if they were read: what a
/// child should get back, as Go's `os/exec` restores the original soft limit for children
/// (programs using `select(2)` break above 1024).
pub fn nofile_at_start() -> Option<(u64, u64)> {
    NOFILE_AT_START.get().copied()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as containerd and every Go program since
/// Go 1.19 do at start: the 1024 of a login shell or a plain systemd unit is too few for a
/// process that holds descriptors for each pod, exec session and client. Logs both values.
/// Children (shims, containers, exec'd processes) inherit the raised limit unless their
/// spawner restores [`nofile_at_start`].
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let limits = getrlimit(Resource::RLIMIT_NOFILE);
    if let Ok(l) = limits {
        let _ = NOFILE_AT_START.set(l);
    }
    match limits {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(
                from = soft,
                to = hard,
                "raised the open-file soft limit (RLIMIT_NOFILE) to the hard limit"
            ),
            Err(e) => tracing::warn!(
                soft,
                hard,
                error = %e,
                "cannot raise the open-file soft limit (RLIMIT_NOFILE)"
            ),
        },
        Ok((soft, hard)) => {
            tracing::info!(soft, hard, "open-file limit (RLIMIT_NOFILE)");
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE)"),
    }
}

/// The bounds of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// Connections at once ([`max_connections`]).
    pub max_connections: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Limits {
    /// The defaults, with the cap derived from the current open-file limit.
    pub fn from_rlimit() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: max_connections(nofile_soft_limit()),
            handshake_timeout: super::tls::HANDSHAKE_TIMEOUT,
        }
    }
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests whose answer is not fully written yet.
    busy: AtomicUsize,
    /// When it last became idle, in ms since [`Registry::epoch`].
    idle_since: AtomicU64,
    /// Told to close (shed for a newer connection).
    shed: Notify,
}

/// The open connections.
struct Registry {
    conns: std::sync::Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled when a connection ends (room for the accept loop).
    freed: Notify,
    epoch: Instant,
    max: usize,
    /// When the last cap warning was logged (ms since `epoch`, +1 so 0 means never).
    warned: AtomicU64,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn register(&self, id: u64) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            shed: Notify::new(),
        });
        self.lock().insert(id, conn.clone());
        conn
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.freed.notify_one();
    }

    /// The idle connection that has been idle longest, if any.
    fn oldest_idle(&self) -> Option<Arc<Conn>> {
        self.lock()
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire))
            .cloned()
    }

    /// Over the cap: tells the oldest idle connection to close. `false` if all are busy.
    fn shed_oldest_idle(&self) -> bool {
        let Some(victim) = self.oldest_idle() else {
            return false;
        };
        victim.shed.notify_one();
        let now = self.now_ms() + 1;
        let last = self.warned.load(Ordering::Relaxed);
        let interval = u64::try_from(CAP_WARNING_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_connections = self.max,
                "connection limit reached: closing the longest-idle connections to make room (logged once a minute)"
            );
        }
        true
    }
}

/// Marks a connection busy from a request's head until its answer is written (dropped with
/// the answer's body).
struct BusyGuard {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl BusyGuard {
    fn new(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard { conn, registry }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now_ms(), Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its connection marked busy until it is written.
struct TrackedBody {
    inner: Body,
    _busy: BusyGuard,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) within `limits` until `shutdown`
/// resolves; then stops accepting, lets answers in progress finish (at most
/// [`SHUTDOWN_GRACE`]) and returns. Handlers get the connection's [`PeerIdentity`] as
/// `ConnectInfo`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry {
        conns: std::sync::Mutex::new(HashMap::new()),
        freed: Notify::new(),
        epoch: Instant::now(),
        max: limits.max_connections,
        warned: AtomicU64::new(0),
    });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        // Over the cap: a shed connection has not closed yet. Wait for it (asking again, in
        // case the one told started a request meanwhile), so that descriptors never go beyond
        // the cap plus one, however fast connections arrive.
        while registry.len() > registry.max {
            tokio::select! {
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    registry.shed_oldest_idle();
                }
                _ = &mut shutdown => return drain(&registry, stop_tx).await,
            }
        }
        // Full of busy connections: accept nothing until one ends (the kernel's backlog holds
        // newcomers). Full with idle ones: accept, then shed the longest idle.
        while registry.len() >= registry.max && registry.oldest_idle().is_none() {
            tokio::select! {
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut shutdown => return drain(&registry, stop_tx).await,
            }
        }
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the kubelet API port failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => return drain(&registry, stop_tx).await,
        };
        next_id += 1;
        let id = next_id;
        let conn = registry.register(id);
        if registry.len() > registry.max {
            registry.shed_oldest_idle();
        }
        let task = ConnTask {
            id,
            conn,
            registry: registry.clone(),
            app: app.clone(),
            limits: limits.clone(),
            stop: stop_rx.clone(),
            remote,
        };
        let acceptor = acceptor.clone();
        tokio::spawn(task.run(tcp, acceptor));
    }
}

/// Tells every connection to finish its answer and close, and waits for them (bounded).
async fn drain(registry: &Registry, stop: watch::Sender<bool>) {
    let _ = stop.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while registry.len() > 0 {
            tokio::select! {
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
}

/// One connection's task.
struct ConnTask {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    app: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    remote: SocketAddr,
}

impl ConnTask {
    async fn run(self, tcp: TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>) {
        let Some(acceptor) = acceptor else {
            return self.http(tcp, PeerIdentity::default()).await;
        };
        let handshake = tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(tcp));
        let mut stop = self.stop.clone();
        let tls = tokio::select! {
            r = handshake => r,
            _ = self.conn.shed.notified() => return self.done(),
            _ = stop.wait_for(|s| *s) => return self.done(),
        };
        match tls {
            Ok(Ok(tls)) => {
                // The certificates rustls verified against the client CA during the
                // handshake; the first is the client's own.
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|der| user_from_certificate(der))
                    .map(Arc::new);
                self.http(tls, PeerIdentity { client_cert }).await;
            }
            // Scanners and clients that do not trust our certificate end here: not worth
            // more than a debug line each.
            Ok(Err(e)) => {
                tracing::debug!(remote = %self.remote, error = %e, "TLS handshake failed");
                self.done();
            }
            Err(_) => {
                tracing::debug!(remote = %self.remote, timeout = ?self.limits.handshake_timeout, "TLS handshake timed out");
                self.done();
            }
        }
    }

    fn done(&self) {
        self.registry.remove(self.id);
    }

    /// HTTP/1.1 on `io` until the client closes, the head times out, it is shed or upgraded,
    /// or the server shuts down.
    async fn http<IO>(self, io: IO, peer: PeerIdentity)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (conn, registry, app) = (self.conn.clone(), self.registry.clone(), self.app.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = BusyGuard::new(conn.clone(), registry.clone());
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|inner| Body::new(TrackedBody { inner, _busy: busy })))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let served = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(served);
        let mut stop = self.stop.clone();
        let mut stopping = false;
        loop {
            tokio::select! {
                r = served.as_mut() => {
                    if let Err(e) = r {
                        // Header timeouts, resets, malformed requests: routine under load.
                        tracing::debug!(remote = %self.remote, error = %e, "connection ended");
                    }
                    break;
                }
                _ = self.conn.shed.notified() => {
                    // Only an idle connection is shed; one that just started a request stays.
                    if self.conn.busy.load(Ordering::Acquire) == 0 {
                        tracing::debug!(remote = %self.remote, "idle connection closed to make room (connection limit)");
                        break;
                    }
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_for_the_agent() {
        assert_eq!(max_connections(512), 256);
        assert_eq!(max_connections(1024), 768);
        assert_eq!(max_connections(100), MIN_CONNECTIONS);
        assert_eq!(max_connections(1 << 20), MAX_CONNECTIONS_CEILING);
        for n in [300, 512, 1024, 1300, 4096] {
            assert!(max_connections(n) as u64 + FD_RESERVE_MIN <= n, "{n}");
        }
    }

    #[test]
    fn the_oldest_idle_connection_is_shed_and_busy_ones_never() {
        let r = Arc::new(Registry {
            conns: std::sync::Mutex::new(HashMap::new()),
            freed: Notify::new(),
            epoch: Instant::now() - Duration::from_secs(10),
            max: 2,
            warned: AtomicU64::new(0),
        });
        let a = r.register(1);
        let b = r.register(2);
        a.idle_since.store(5, Ordering::Release);
        b.idle_since.store(7, Ordering::Release);
        let busy_a = BusyGuard::new(a.clone(), r.clone());
        assert!(Arc::ptr_eq(&r.oldest_idle().unwrap(), &b));
        let busy_b = BusyGuard::new(b.clone(), r.clone());
        assert!(r.oldest_idle().is_none());
        assert!(!r.shed_oldest_idle());
        drop(busy_b);
        std::thread::sleep(Duration::from_millis(5));
        drop(busy_a);
        // b became idle first now.
        assert!(Arc::ptr_eq(&r.oldest_idle().unwrap(), &b));
        assert!(r.shed_oldest_idle());
        r.remove(2);
        assert_eq!(r.len(), 1);
    }
}
