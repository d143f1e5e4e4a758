//! Liveness, readiness and startup probes: one worker per (container instance, probe type)
//! that runs the probe's handler periodically, applies the thresholds and reports changes of
//! its result to the pod worker.
//!
//! Mirrors `pkg/kubelet/prober` (`worker.go`, `prober.go`, `results`) and the handlers in
//! `pkg/probe/{exec,http,tcp}`. The kubelet's results managers and their update channels
//! become one `mpsc` channel of [`ProbeUpdate`]s owned by the pod worker, which alone decides
//! what a failure means (house rule: only a pod's worker changes that pod's lifecycle).
//!
//! Probe specs are expected with the API defaults already applied (`periodSeconds` 10,
//! `timeoutSeconds` 1, `successThreshold` 1, `failureThreshold` 3, `initialDelaySeconds` 0,
//! `httpGet.path` "/", `httpGet.scheme` HTTP); missing values fall back to those defaults.
pub mod exec;
pub mod http;
pub mod results;
mod runner;
pub mod tcp;
mod worker;

use std::collections::HashMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use results::{ProbeResult, ProbeUpdate};
pub use worker::{ProbeWorkerHandle, ProbeWorkerSpec, mark_manager_start, spawn_probe_worker};

use crate::runtime::exec::ExecError;

/// The pod IP probes and hooks target when their action names no host, for a pod on the node's
/// network (no CNI network on the node, or `hostNetwork`): the loopback address. A pod with its
/// own network is reached on its IP (`ExecContext::pod_ip`), from the node's namespace, as the
/// kubelet does.
pub const POD_IP: &str = "127.0.0.1";

/// The Kubernetes version minikubelet speaks (k8s-openapi feature `v1_34`); it appears in the
/// `User-Agent` of HTTP probes (`kube-probe/1.34`) and hooks (`kube-lifecycle/1.34`).
pub const KUBE_VERSION: &str = "1.34";

/// Which probe a worker runs (the kubelet's `probeType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeType {
    /// Failure ⇒ the container is killed and restarted per restartPolicy.
    Liveness,
    /// Failure ⇒ the container is not ready (no restart).
    Readiness,
    /// Until it succeeds, liveness and readiness are not run; failure ⇒ restart.
    Startup,
}

impl ProbeType {
    /// The result a worker reports before its first probe (`worker.go` `initialValue`).
    pub fn initial_result(self) -> ProbeResult {
        match self {
            ProbeType::Liveness => ProbeResult::Success,
            ProbeType::Readiness => ProbeResult::Failure,
            ProbeType::Startup => ProbeResult::Unknown,
        }
    }
}

impl ProbeType {
    /// The kubelet's `probeType.String()`, which starts its event messages and is the
    /// `probe_type` label of the probe metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        }
    }
}

impl fmt::Display for ProbeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a handler found (`pkg/probe.Result`), before the worker maps it to a
/// [`ProbeResult`]: a warning counts as success (with a `ProbeWarning` message), unknown as
/// failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerResult {
    /// The check passed.
    Success,
    /// The check passed with a remark (an HTTP redirect the prober did not follow).
    Warning,
    /// The check failed.
    Failure,
    /// The handler could not tell.
    Unknown,
}

/// Why a probe could not be run at all. The kubelet retries such a probe up to 3 times, then
/// throws the result away: an errored probe never changes the container's result.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe's port is a name the container does not declare, or out of range.
    #[error("probe of container {container:?}: {reason}")]
    Port { container: String, reason: String },
    /// The command could not be run in the container (other than a timeout, which is a failure).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// gRPC probes need an HTTP/2 + protobuf client minikubelet does not carry.
    #[error("probe of container {container:?}: grpc probes (port {port}) are not supported")]
    GrpcUnsupported { container: String, port: i32 },
    /// The probe has no exec, httpGet, tcpSocket or grpc action.
    #[error("missing probe handler for container {container:?}")]
    MissingHandler { container: String },
}

/// Resolves a probe's or hook's port against the container's declared ports
/// (`pkg/probe/util.go` `ResolveContainerPort`): a number is used as is; a name is looked up in
/// `ports[].name`, and failing that parsed as a number; the result must be 1..=65535.
pub fn resolve_container_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match named.or_else(|| name.parse::<i64>().ok()) {
                Some(n) => n,
                None => return Err(format!("port {name:?} not found")),
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// Expands `$(VAR)` references in an exec probe's command with the container's own `env`
/// entries (`ExpandContainerCommandOnlyStatic`): `$$` is a literal `$`, unknown references and
/// unterminated `$(` are kept as written. Entries set through `valueFrom` expand to "", as in
/// the kubelet.
pub fn expand_command_only_static(command: &[String], env: &[EnvVar]) -> Vec<String> {
    let vars: HashMap<&str, &str> = env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    command.iter().map(|arg| expand(arg, &vars)).collect()
}

/// `third_party/forked/golang/expansion.Expand` with `MappingFuncFor`.
fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        let name = &input[cursor + 2..cursor + 1 + close];
                        match vars.get(name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => {
                                out.extend_from_slice(b"$(");
                                out.extend_from_slice(name.as_bytes());
                                out.push(b')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    // Only ASCII bytes were split on, so the result is valid UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn resolve_container_port_table() {
        // pkg/probe/util_test.go TestResolveContainerPort, plus the range checks.
        let container = Container {
            name: "c".into(),
            ports: Some(vec![
                ContainerPort {
                    name: Some("foo".into()),
                    container_port: 8080,
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("huge".into()),
                    container_port: 70000,
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let cases: Vec<(IntOrString, Result<u16, String>)> = vec![
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("foo".into()), Ok(8080)),
            (IntOrString::String("80".into()), Ok(80)),
            (
                IntOrString::String("bar".into()),
                Err("port \"bar\" not found".into()),
            ),
            (IntOrString::Int(0), Err("invalid port number: 0".into())),
            (IntOrString::Int(-1), Err("invalid port number: -1".into())),
            (
                IntOrString::Int(65536),
                Err("invalid port number: 65536".into()),
            ),
            (
                IntOrString::String("huge".into()),
                Err("invalid port number: 70000".into()),
            ),
        ];
        for (port, want) in cases {
            assert_eq!(resolve_container_port(&port, &container), want, "{port:?}");
        }
    }

    #[test]
    fn expand_table() {
        // Cases from third_party/forked/golang/expansion/expand_test.go.
        let env: Vec<EnvVar> = [("VAR_A", "A"), ("VAR_B", "B"), ("VAR_EMPTY", "")]
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.to_string(),
                value: Some(v.to_string()),
                ..Default::default()
            })
            .chain(std::iter::once(EnvVar {
                name: "FROM".into(),
                value: None,
                ..Default::default()
            }))
            .collect();
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_EMPTY)", ""),
            ("$(FROM)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("f00__(VAR_A)__", "f00__(VAR_A)__"),
            ("$", "$"),
            ("$$", "$"),
            ("$()", "$()"),
            ("héllo $(VAR_B) wörld$", "héllo B wörld$"),
            ("$é", "$é"),
            ("", ""),
        ];
        for (input, want) in cases {
            let got = expand_command_only_static(&[input.to_string()], &env);
            assert_eq!(got, vec![want.to_string()], "{input:?}");
        }
    }

    #[test]
    fn initial_results_follow_the_kubelet() {
        assert_eq!(ProbeType::Liveness.initial_result(), ProbeResult::Success);
        assert_eq!(ProbeType::Readiness.initial_result(), ProbeResult::Failure);
        assert_eq!(ProbeType::Startup.initial_result(), ProbeResult::Unknown);
    }
}
