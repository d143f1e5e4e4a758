//! `metav1.Status`: the one builder for every error answer of the kubelet API, the API-server
//! facade, the logs endpoint and the streaming server (so kubectl prints `Error from server
//! (Reason): message`), and for the exit status a remote command sends on its error stream.
//!
//! Mirrors apimachinery's `pkg/api/errors` (`StatusError`, `NewNotFound`, ...) and
//! `remotecommand.writeStatus`/`v4WriteStatusFunc` (the error stream).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error: the HTTP code, the Status `reason`, its message and optional `details`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code (also the Status `code`).
    pub code: StatusCode,
    /// `StatusReason` (`NotFound`, `BadRequest`, ...).
    pub reason: &'static str,
    /// The human-readable message kubectl prints.
    pub message: String,
    /// `details` (name, kind, causes), when known.
    pub details: Option<Value>,
}

impl ApiError {
    /// Any code with the reason the API server pairs with it.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
        }
    }

    /// 404 `<resource> "<name>" not found` (`errors.NewNotFound`).
    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError {
            details: Some(json!({"name": name, "kind": resource})),
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("{resource} {name:?} not found"),
            )
        }
    }

    /// 400 with `message` (`errors.NewBadRequest`).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 `<resource> "<name>" is forbidden: <why>` (`errors.NewForbidden`).
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(json!({"name": name, "kind": resource})),
            ..Self::new(
                StatusCode::FORBIDDEN,
                format!("{resource} {name:?} is forbidden: {why}"),
            )
        }
    }

    /// 405 (`errors.NewMethodNotSupported`).
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 422 `<Kind> "<name>" is invalid: <causes>` (`errors.NewInvalid`).
    pub fn invalid(kind: &str, name: &str, causes: &[FieldError]) -> Self {
        let text = aggregate(causes);
        ApiError {
            details: Some(json!({
                "name": name,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.kind.reason(),
                    "message": c.body(),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{kind} {name:?} is invalid: {text}"),
            )
        }
    }

    /// 500 (`errors.NewInternalError`).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal error occurred: {message}"),
        )
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_status().to_string();
        let mut resp = (self.code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The `StatusReason` the API server uses for an HTTP code.
pub fn reason_for(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// Kinds of field errors (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Invalid value`.
    Invalid,
    /// `Forbidden`.
    Forbidden,
    /// `Unsupported value`.
    NotSupported,
}

impl FieldErrorKind {
    fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// One validation error (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind.
    pub kind: FieldErrorKind,
    /// The field path (`tailLines`); may be empty.
    pub field: String,
    /// The bad value as Go prints it; empty for Forbidden.
    pub value: String,
    /// Why.
    pub detail: String,
}

impl FieldError {
    /// `field.Error.ErrorBody`.
    pub fn body(&self) -> String {
        match self.kind {
            FieldErrorKind::Invalid => format!("Invalid value: {}: {}", self.value, self.detail),
            FieldErrorKind::Forbidden => format!("Forbidden: {}", self.detail),
            FieldErrorKind::NotSupported => {
                format!("Unsupported value: {}: {}", self.value, self.detail)
            }
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// `ErrorList.ToAggregate().Error()`: one error as is, several as `[a, b]`.
pub fn aggregate(errs: &[FieldError]) -> String {
    match errs {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An error answer decided early, carried in `Result`s (boxed: a `Response` is large).
#[derive(Debug)]
pub struct Refusal(pub Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal(Box::new(e.into_response()))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// An HTTP error answer with a Status body and the reason the API server pairs with `code`.
pub fn error_response(code: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(code, message).into_response()
}

/// 400 BadRequest.
pub fn bad_request(message: impl Into<String>) -> Response {
    error_response(StatusCode::BAD_REQUEST, message)
}

/// 404 NotFound with a free-form message (the kubelet's `http.Error(w, msg, 404)` paths).
pub fn not_found(message: impl Into<String>) -> Response {
    error_response(StatusCode::NOT_FOUND, message)
}

/// 500 InternalError with a free-form message.
pub fn internal(message: impl Into<String>) -> Response {
    error_response(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// The error-stream Status for a command that exited 0.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The error-stream Status for a non-zero exit code, as the kubelet words it; kubectl prints
/// `command terminated with exit code N` and exits with N.
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

/// The error-stream Status for any other failure after the upgrade
/// (`apierrors.NewInternalError`).
pub fn internal_error(message: &str) -> Value {
    let mut v = ApiError::internal(message).to_status();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("kind");
        obj.remove("apiVersion");
    }
    v["details"] = json!({"causes": [{"message": message}]});
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies() {
        let cases = [
            (
                ApiError::not_found("pods", "nope"),
                404,
                "NotFound",
                "pods \"nope\" not found",
            ),
            (
                ApiError::bad_request("a container name must be specified"),
                400,
                "BadRequest",
                "a container name must be specified",
            ),
            (
                ApiError::forbidden("pods", "web-node1", "static pod"),
                403,
                "Forbidden",
                "pods \"web-node1\" is forbidden: static pod",
            ),
            (
                ApiError::invalid(
                    "PodLogOptions",
                    "web",
                    &[FieldError {
                        kind: FieldErrorKind::Invalid,
                        field: "tailLines".into(),
                        value: "-1".into(),
                        detail: "must be greater than or equal to 0".into(),
                    }],
                ),
                422,
                "Invalid",
                "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0",
            ),
        ];
        for (e, code, reason, message) in cases {
            let v = e.to_status();
            assert_eq!(v["kind"], "Status");
            assert_eq!(v["status"], "Failure");
            assert_eq!(v["code"], code);
            assert_eq!(v["reason"], reason);
            assert_eq!(v["message"], message);
        }
    }

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
            (
                internal_error("boom"),
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": "Internal error occurred: boom",
                    "reason": "InternalError",
                    "details": {"causes": [{"message": "boom"}]},
                    "code": 500,
                }),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn unauthorized_is_the_api_servers_status() {
        assert_eq!(
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").to_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
    }

    #[test]
    fn aggregate_like_go() {
        let f = |field: &str| FieldError {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: String::new(),
            detail: "no".into(),
        };
        assert_eq!(aggregate(&[f("a")]), "a: Forbidden: no");
        assert_eq!(
            aggregate(&[f("a"), f("")]),
            "[a: Forbidden: no, : Forbidden: no]"
        );
    }
}
