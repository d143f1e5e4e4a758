//! The exec probe handler: run a command in the container; exit 0 is success.
//!
//! Mirrors `pkg/probe/exec` with the kubelet's `ExecProbeTimeout` behaviour (on since 1.20): a
//! command that outlives `timeoutSeconds` is killed and the probe fails with
//! `command "<cmd>" timed out`.
use std::time::Duration;

use k8s_openapi::api::core::v1::ExecAction;

use super::{HandlerResult, ProbeError};
use crate::runtime::exec::{ExecContext, ExecError, exec_sync};

/// Runs `action.command` in the container's context. Exit 0 ⇒ Success, any other exit ⇒
/// Failure, both with the command's output; a timeout ⇒ Failure; a command that could not be
/// started at all ⇒ [`ProbeError`] (the kubelet discards such a run).
pub async fn probe_exec(
    ctx: &ExecContext,
    action: &ExecAction,
    timeout: Duration,
) -> Result<(HandlerResult, String), ProbeError> {
    let command = action.command.as_deref().unwrap_or_default();
    match exec_sync(ctx, command, timeout).await {
        Ok(out) => {
            let output = String::from_utf8_lossy(&out.output).into_owned();
            let result = if out.exit_code == 0 {
                HandlerResult::Success
            } else {
                HandlerResult::Failure
            };
            Ok((result, output))
        }
        Err(err @ ExecError::Timeout { .. }) => Ok((HandlerResult::Failure, err.to_string())),
        Err(err) => Err(err.into()),
    }
}
