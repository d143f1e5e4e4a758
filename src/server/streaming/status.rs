//! `metav1.Status` objects: the exit status sent on a remote command's error stream, and the
//! body of every error answer, so kubectl prints `Error from server (Reason): message`.
//!
//! Mirrors `remotecommand.writeStatus`/`v4WriteStatusFunc` (the error stream) and apimachinery's
//! `errors.StatusError` (HTTP answers).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The Status for a command that exited 0.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The Status for a non-zero exit code, as the kubelet words it; kubectl prints `command
/// terminated with exit code N` and exits with N.
pub fn non_zero_exit(command: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status for any other failure after the upgrade (`apierrors.NewInternalError`).
pub fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// An HTTP error answer with a Status body. `reason` is a `metav1.StatusReason`
/// (`NotFound`, `BadRequest`, ...).
pub fn error_response(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = (code, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error answer decided early, carried in `Result`s (boxed: a `Response` is large).
#[derive(Debug)]
pub struct Refusal(pub Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// 400 BadRequest.
pub fn bad_request(message: impl Into<String>) -> Response {
    error_response(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// 404 NotFound.
pub fn not_found(message: impl Into<String>) -> Response {
    error_response(StatusCode::NOT_FOUND, "NotFound", message)
}

/// 500 InternalError.
pub fn internal(message: impl Into<String>) -> Response {
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_shapes_kubectl_reads() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let cases = [
            (success(), json!({"metadata": {}, "status": "Success"})),
            (
                non_zero_exit(&argv, 3),
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
                }),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let e = internal_error("boom");
        assert_eq!(e["reason"], "InternalError");
        assert_eq!(e["message"], "Internal error occurred: boom");
    }
}
