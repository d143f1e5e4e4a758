//! Running a container's lifecycle hooks (`postStart`, `preStop`): exec, httpGet and sleep
//! handlers.
//!
//! Mirrors `pkg/kubelet/lifecycle/handlers.go` (`handlerRunner.Run`). The kubelet's rules kept:
//! an exec hook fails when the command exits non-zero; an httpGet hook fails only when no
//! response arrives — **the status code is ignored**, a 500 is a successful hook; a sleep hook
//! just waits. The request is the probe's (`User-Agent: kube-lifecycle/1.34`, same-host
//! redirects). Timeouts are the caller's: the kubelet bounds preStop by the grace period and
//! postStart by nothing; here every run takes a `timeout`, and a hook that outlives it is
//! stopped (its exec process killed) and reported as [`HookError::Timeout`]. Dropping the
//! future cancels a hook the same way.
pub use crate::api::format_pod;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::prober::POD_IP;
use crate::prober::http::{HttpGetRequest, http_get};
use crate::prober::resolve_container_port;
use crate::runtime::exec::{ExecContext, ExecError, command_line, exec_sync};

/// Which kind of handler a hook ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// `exec`
    Exec,
    /// `httpGet`
    Http,
    /// `sleep`
    Sleep,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The words the kubelet starts its messages with.
        f.write_str(match self {
            HookKind::Exec => "Exec",
            HookKind::Http => "HTTP",
            HookKind::Sleep => "Sleep",
        })
    }
}

/// Why a lifecycle hook failed. [`HookError::message`] gives the kubelet's event text.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The exec hook's command could not run or exited non-zero.
    #[error(
        "exec lifecycle hook {command:?} for container {container:?} in pod {pod:?} failed: {error}, output: {output:?}"
    )]
    Exec {
        command: Vec<String>,
        container: String,
        pod: String,
        error: String,
        output: String,
    },
    /// The httpGet hook got no response (connection, port or request error).
    #[error(
        "http lifecycle hook ({path}) for container {container:?} in pod {pod:?} failed: {error}"
    )]
    Http {
        path: String,
        container: String,
        pod: String,
        error: String,
    },
    /// The hook did not finish within the time the caller allowed.
    #[error(
        "{kind} lifecycle hook ({what}) for container {container:?} in pod {pod:?} did not complete within {timeout:?}"
    )]
    Timeout {
        kind: HookKind,
        what: String,
        container: String,
        pod: String,
        timeout: Duration,
    },
    /// The handler names no exec, httpGet or sleep action (tcpSocket is not a hook action).
    #[error(
        "invalid lifecycle handler for container {container:?} in pod {pod:?}: no exec, httpGet or sleep action"
    )]
    Invalid { container: String, pod: String },
}

impl HookError {
    /// The kubelet's event message for this failure (`FailedPostStartHook`,
    /// `FailedPreStopHook`), e.g. `Exec lifecycle hook ([sh -c exit 3]) for Container "c" in Pod
    /// "p_default(uid)" failed - error: command 'sh -c exit 3' exited with 3, message: "out"`.
    pub fn message(&self) -> String {
        match self {
            HookError::Exec {
                command,
                container,
                pod,
                error,
                output,
            } => format!(
                "Exec lifecycle hook ([{}]) for Container {container:?} in Pod {pod:?} failed - error: {error}, message: {output:?}",
                command.join(" ")
            ),
            HookError::Http {
                path,
                container,
                pod,
                error,
            } => format!(
                "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}"
            ),
            HookError::Timeout {
                kind,
                what,
                container,
                pod,
                timeout,
            } => format!(
                "{kind} lifecycle hook ({what}) for Container {container:?} in Pod {pod:?} failed - error: not completed within {}",
                humantime::format_duration(*timeout)
            ),
            HookError::Invalid { .. } => {
                "Cannot run handler: invalid handler: no exec, httpGet or sleep action".to_string()
            }
        }
    }
}

/// Runs `handler` for `container` of `pod` in the container's `ctx`, allowing it `timeout`
/// (`HandlerRunner.Run`).
pub async fn run_handler(
    handler: &LifecycleHandler,
    pod: &Pod,
    container: &Container,
    ctx: &ExecContext,
    timeout: Duration,
) -> Result<(), HookError> {
    let pod_name = format_pod(pod);
    let container_name = container.name.clone();
    let timed_out = |kind: HookKind, what: String| HookError::Timeout {
        kind,
        what,
        container: container_name.clone(),
        pod: pod_name.clone(),
        timeout,
    };

    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let cmdline = command_line(&command);
        tracing::debug!(pod = %pod_name, container = %container_name, command = %cmdline, "running exec lifecycle hook");
        let failed = |error: String, output: String| HookError::Exec {
            command: command.clone(),
            container: container_name.clone(),
            pod: pod_name.clone(),
            error,
            output,
        };
        return match exec_sync(ctx, &command, timeout).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => Err(failed(
                format!("command '{cmdline}' exited with {}", out.exit_code),
                String::from_utf8_lossy(&out.output).into_owned(),
            )),
            Err(ExecError::Timeout { .. }) => {
                Err(timed_out(HookKind::Exec, format!("[{cmdline}]")))
            }
            Err(err) => Err(failed(err.to_string(), String::new())),
        };
    }

    if let Some(action) = &handler.http_get {
        let path = action.path.clone().unwrap_or_default();
        let failed = |error: String| HookError::Http {
            path: path.clone(),
            container: container_name.clone(),
            pod: pod_name.clone(),
            error,
        };
        let port = resolve_container_port(&action.port, container).map_err(&failed)?;
        let ip = ctx.pod_ip.as_deref().unwrap_or(POD_IP);
        let request = HttpGetRequest::for_action(action, ip, port, "lifecycle");
        tracing::debug!(pod = %pod_name, container = %container_name, url = %request.url, "running http lifecycle hook");
        return match http_get(&request, timeout).await {
            // Any status will do: the kubelet only checks that a response came back.
            Ok(response) => {
                tracing::debug!(pod = %pod_name, container = %container_name, status = response.status, "http lifecycle hook answered");
                Ok(())
            }
            Err(err) if err.timed_out => Err(timed_out(HookKind::Http, path.clone())),
            Err(err) => Err(failed(err.message)),
        };
    }

    if let Some(sleep) = &handler.sleep {
        let wanted = Duration::from_secs(sleep.seconds.max(0) as u64);
        tracing::debug!(pod = %pod_name, container = %container_name, seconds = sleep.seconds, "running sleep lifecycle hook");
        if wanted <= timeout {
            tokio::time::sleep(wanted).await;
            return Ok(());
        }
        tokio::time::sleep(timeout).await;
        return Err(timed_out(HookKind::Sleep, sleep.seconds.to_string()));
    }

    Err(HookError::Invalid {
        container: container_name,
        pod: pod_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::SleepAction;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("1234".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn kubelet_messages() {
        let cases = vec![
            (
                HookError::Exec {
                    command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                    container: "c".into(),
                    pod: "web_default(1234)".into(),
                    error: "command 'sh -c exit 3' exited with 3".into(),
                    output: "bye\n".into(),
                },
                "Exec lifecycle hook ([sh -c exit 3]) for Container \"c\" in Pod \"web_default(1234)\" failed - error: command 'sh -c exit 3' exited with 3, message: \"bye\\n\"",
            ),
            (
                HookError::Http {
                    path: "/hook".into(),
                    container: "c".into(),
                    pod: "web_default(1234)".into(),
                    error: "Get \"http://127.0.0.1:1/hook\": dial tcp 127.0.0.1:1: connect: connection refused".into(),
                },
                "HTTP lifecycle hook (/hook) for Container \"c\" in Pod \"web_default(1234)\" failed - error: Get \"http://127.0.0.1:1/hook\": dial tcp 127.0.0.1:1: connect: connection refused",
            ),
            (
                HookError::Timeout {
                    kind: HookKind::Sleep,
                    what: "30".into(),
                    container: "c".into(),
                    pod: "web_default(1234)".into(),
                    timeout: Duration::from_secs(2),
                },
                "Sleep lifecycle hook (30) for Container \"c\" in Pod \"web_default(1234)\" failed - error: not completed within 2s",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.message(), want);
        }
    }

    #[test]
    fn format_pod_like_the_kubelet() {
        assert_eq!(format_pod(&pod()), "web_default(1234)");
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_hook_waits_or_times_out() {
        let container = Container {
            name: "c".into(),
            ..Default::default()
        };
        let ctx = ExecContext::default();
        let handler = |seconds| LifecycleHandler {
            sleep: Some(SleepAction { seconds }),
            ..Default::default()
        };
        let start = tokio::time::Instant::now();
        run_handler(
            &handler(5),
            &pod(),
            &container,
            &ctx,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        let start = tokio::time::Instant::now();
        let err = run_handler(
            &handler(60),
            &pod(),
            &container,
            &ctx,
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert!(
            matches!(
                err,
                HookError::Timeout {
                    kind: HookKind::Sleep,
                    ..
                }
            ),
            "{err}"
        );

        let err = run_handler(
            &LifecycleHandler::default(),
            &pod(),
            &container,
            &ctx,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, HookError::Invalid { .. }));
    }
}
