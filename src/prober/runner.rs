//! Turning a container's `Probe` into runs of its handler: exec, httpGet or tcpSocket.
//!
//! Mirrors `prober.go` (`newProberAction` and the `*ProberAction.Run` methods): the exec
//! command is expanded with the container's static env, ports are resolved against the
//! container's ports on every run, and the host is the pod IP unless the action names one.
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};

use super::exec::probe_exec;
use super::http::probe_http;
use super::tcp::probe_tcp;
use super::worker::Prober;
use super::{
    HandlerResult, POD_IP, ProbeError, expand_command_only_static, resolve_container_port,
};
use crate::runtime::exec::ExecContext;

/// The handler a probe names.
enum Action {
    Exec(ExecAction),
    Http(HTTPGetAction),
    Tcp(TCPSocketAction),
    Grpc(i32),
    Missing,
}

/// Runs one container's probe spec: the real [`Prober`].
pub(crate) struct SpecProber {
    action: Action,
    container: Container,
    exec: ExecContext,
    timeout: Duration,
}

impl SpecProber {
    /// Prepares the probe's action for `container`, run in the container's `exec` context.
    pub(crate) fn new(probe: &Probe, container: &Container, exec: ExecContext) -> Self {
        let action = if let Some(exec_action) = &probe.exec {
            let command = expand_command_only_static(
                exec_action.command.as_deref().unwrap_or_default(),
                container.env.as_deref().unwrap_or_default(),
            );
            Action::Exec(ExecAction {
                command: Some(command),
            })
        } else if let Some(http) = &probe.http_get {
            Action::Http(http.clone())
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::Tcp(tcp.clone())
        } else if let Some(grpc) = &probe.grpc {
            Action::Grpc(grpc.port)
        } else {
            Action::Missing
        };
        SpecProber {
            action,
            container: container.clone(),
            exec,
            timeout: probe_timeout(probe),
        }
    }

    fn port(
        &self,
        port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    ) -> Result<u16, ProbeError> {
        resolve_container_port(port, &self.container).map_err(|reason| ProbeError::Port {
            container: self.container.name.clone(),
            reason,
        })
    }
}

impl Prober for SpecProber {
    async fn probe(&mut self) -> Result<(HandlerResult, String), ProbeError> {
        match &self.action {
            Action::Exec(action) => probe_exec(&self.exec, action, self.timeout).await,
            Action::Http(action) => {
                let port = self.port(&action.port)?;
                let ip = self.exec.pod_ip.as_deref().unwrap_or(POD_IP);
                Ok(probe_http(ip, port, action, self.timeout).await)
            }
            Action::Tcp(action) => {
                let port = self.port(&action.port)?;
                let host = action
                    .host
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .unwrap_or(self.exec.pod_ip.as_deref().unwrap_or(POD_IP));
                Ok(probe_tcp(host, port, self.timeout).await)
            }
            Action::Grpc(port) => Err(ProbeError::GrpcUnsupported {
                container: self.container.name.clone(),
                port: *port,
            }),
            Action::Missing => Err(ProbeError::MissingHandler {
                container: self.container.name.clone(),
            }),
        }
    }
}

/// `timeoutSeconds` (default 1, at least 1 second).
fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}
