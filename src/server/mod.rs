//! The kubelet's HTTP server on `--address:--port`.
//!
//! Mirrors `pkg/kubelet/server/server.go`. The server only reads: pod status from the status
//! manager, node facts, events. It never changes pod state itself; what a client asks for
//! (later: exec, attach, port-forward) goes to the runtime through the streaming server, as the
//! kubelet hands it to the CRI shim's streaming server (`pkg/kubelet/cri/streaming`).
//!
//! Layout, so later parts slot in: `kubelet` holds the kubelet's own endpoints (`/healthz`,
//! `/pods`, `/runningpods/`); `stats` serves `/stats/summary`, `/metrics`,
//! `/metrics/resource` and `/metrics/probes`; `logs` serves
//! `/containerLogs`; a `streaming` module will serve `/exec/{token}` and friends; the
//! `apiserver` facade serves the API-server paths kubectl asks for (`docs/kubectl.md`), and
//! every path nobody serves gets a 404 `Status`.

pub mod admin;
pub mod apiserver;
pub mod auth;
pub mod authz;
pub mod conn;
mod debug;
pub mod host_check;
mod kubelet;
pub mod logs;
pub mod names;
mod remotecommand;
mod stats;
pub mod status;
pub mod streaming;
pub mod tls;
mod upgrade_proxy;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::cm::manager::ContainerManager;
use crate::events::EventRecorder;
use crate::node::NodeFacts;
use crate::runtime::ContainerRuntime;
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
    /// The runtime's container records (which log file an instance wrote, whether it runs).
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Pod and container cgroups (for metrics).
    pub cm: ContainerManager,
    /// What the API-server facade needs beyond the kubelet's state.
    pub api: Arc<apiserver::ApiContext>,
    /// The effective configuration as `/configz` serves it: `{"kubeletconfig": {...}}`.
    pub configz: Arc<serde_json::Value>,
    /// The stats provider (`/stats/summary`, `/metrics/resource`).
    pub stats: Arc<crate::stats::StatsProvider>,
    /// The authorizer (every request, and SelfSubjectAccessReviews).
    pub authz: Arc<authz::Authorizer>,
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
        .merge(logs::routes())
        .merge(apiserver::routes())
        .merge(stats::routes())
        .fallback(apiserver::not_found)
        .method_not_allowed_fallback(apiserver::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.authz.clone(),
            authz::authorize,
        ))
        .layer(axum::middleware::from_fn(stats::track))
        .with_state(state)
}

/// Bind the listener (so start-up fails early and clearly if the port is taken).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serve until `shutdown` resolves: over TLS if `security.tls` is set; every request through
/// the Host/Origin check, then the authenticator.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    security: auth::Security,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    // Every request goes through these before routing (an outer router whose only service is
    // the API): the last layer added runs first. A token in the path becomes the bearer token,
    // then Host/Origin are checked, then the request authenticates.
    let app = Router::new()
        .fallback_service(router(state))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security.authn),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security.hosts),
            host_check::guard,
        ))
        .layer(axum::middleware::from_fn(auth::path_token));
    let limits = conn::Limits::from_rlimit();
    tracing::info!(
        address = %addr,
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        tls = security.tls.is_some(),
        "kubelet API listening"
    );
    conn::serve(listener, app, security.tls, limits, shutdown).await;
    Ok(())
}
