//! The kubelet's HTTP server on `--address:--port`.
//!
//! Mirrors `pkg/kubelet/server/server.go`. The server only reads: pod status from the status
//! manager, node facts, events. It never changes pod state itself; what a client asks for
//! (later: exec, attach, port-forward) goes to the runtime through the streaming server, as the
//! kubelet hands it to the CRI shim's streaming server (`pkg/kubelet/cri/streaming`).
//!
//! Layout, so later parts slot in: `kubelet` holds the kubelet's own endpoints (`/healthz`,
//! `/pods`, `/runningpods/`; later `/containerLogs`, `/exec`, `/stats/summary`, `/metrics`);
//! a `streaming` module will serve `/exec/{token}` and friends; an `apiserver` facade will serve
//! the API-server paths kubectl asks for.

mod debug;
mod kubelet;
mod remotecommand;
pub mod streaming;
mod upgrade_proxy;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::events::EventRecorder;
use crate::node::NodeFacts;
use crate::status_manager::StatusManager;

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Pods with live status.
    pub statuses: Arc<StatusManager>,
    /// The node.
    pub node: Arc<NodeFacts>,
    /// Events.
    pub recorder: EventRecorder,
    /// The eviction manager's report and conditions.
    pub eviction: crate::eviction::manager::EvictionView,
    /// The runtime's streaming server (exec, attach, port-forward sessions).
    pub streaming: Arc<streaming::StreamingServer>,
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serve on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The router with every endpoint.
pub fn router(state: ServerState) -> Router {
    kubelet::routes()
        .merge(debug::routes())
        .merge(remotecommand::routes())
        // TEMPORARY until the apiserver branch lands: drop this line with kubectl_min.rs.
        .merge(streaming::kubectl_min::routes())
        .with_state(state)
}

/// Bind the listener (so start-up fails early and clearly if the port is taken).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Serve { addr, source })
}
