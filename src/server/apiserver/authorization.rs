//! `authorization.k8s.io/v1`: SelfSubjectAccessReview and SelfSubjectRulesReview, so that
//! `kubectl auth can-i` (and `can-i --list`) ask this node's authorizer what they may do.
//!
//! Mirrors the API server's `pkg/registry/authorization/selfsubjectaccessreview/rest.go` (the
//! requesting user, the spec's attributes, the authorizer's decision and reason) and
//! `selfsubjectrulesreview/rest.go` (the rules of the user in a namespace). Both are created
//! (POST) and never stored.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::json;
use crate::config::AuthorizationMode;
use crate::server::ServerState;
use crate::server::auth::UserInfo;
use crate::server::authz::attributes::Attributes;
use crate::server::authz::rbac::everything;
use crate::server::status::{ApiError, FieldError, FieldErrorKind};

/// The group served here.
pub const GROUP: &str = "authorization.k8s.io";

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(access_review),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(rules_review),
        )
}

/// The `APIResourceList` of `authorization.k8s.io/v1` (the self reviews only).
pub fn resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authorization.k8s.io/v1",
        "resources": [
            {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
            {"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview", "namespaced": false, "kind": "SelfSubjectRulesReview", "verbs": ["create"]},
        ],
    })
}

/// The magic of a Kubernetes protobuf body (`runtime/serializer/protobuf`).
const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";

/// The length-delimited fields of one protobuf message, by field number, in order (the only
/// wire type these reviews use for what we read; varints and fixed fields are skipped).
fn proto_fields(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        match tag & 7 {
            0 => {
                varint(&mut b)?;
            }
            1 => b = b.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                out.push((tag >> 3, b.get(..len)?));
                b = &b[len..];
            }
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

/// A protobuf message's string fields as a JSON object, named by `names[field - 1]`.
fn proto_strings(msg: &[u8], names: &[&str]) -> Option<Value> {
    let mut o = serde_json::Map::new();
    for (n, bytes) in proto_fields(msg)? {
        if let Some(name) = usize::try_from(n)
            .ok()
            .and_then(|n| names.get(n.checked_sub(1)?))
        {
            o.insert((*name).into(), json!(String::from_utf8_lossy(bytes)));
        }
    }
    Some(Value::Object(o))
}

/// A review sent as protobuf (kubectl's typed clients do: `application/vnd.kubernetes.protobuf`),
/// as the JSON object it stands for: the `runtime.Unknown` envelope, then the review's `spec`
/// (field 2): SelfSubjectAccessReviewSpec {1 resourceAttributes, 2 nonResourceAttributes} or
/// SelfSubjectRulesReviewSpec {1 namespace}.
pub(crate) fn decode_protobuf(body: &[u8], kind: &str) -> Option<Value> {
    let envelope = proto_fields(body.strip_prefix(PROTOBUF_MAGIC)?)?;
    let raw = envelope.iter().find(|(n, _)| *n == 2)?.1;
    let spec_bytes = proto_fields(raw)?
        .into_iter()
        .find(|(n, _)| *n == 2)
        .map_or(&[][..], |(_, b)| b);
    let mut spec = serde_json::Map::new();
    for (n, bytes) in proto_fields(spec_bytes)? {
        match (kind, n) {
            ("SelfSubjectAccessReview", 1) => {
                let names = [
                    "namespace",
                    "verb",
                    "group",
                    "version",
                    "resource",
                    "subresource",
                    "name",
                ];
                spec.insert("resourceAttributes".into(), proto_strings(bytes, &names)?);
            }
            ("SelfSubjectAccessReview", 2) => {
                spec.insert(
                    "nonResourceAttributes".into(),
                    proto_strings(bytes, &["path", "verb"])?,
                );
            }
            ("SelfSubjectRulesReview", 1) => {
                spec.insert("namespace".into(), json!(String::from_utf8_lossy(bytes)));
            }
            _ => {}
        }
    }
    Some(json!({"spec": spec}))
}

/// The request's body as an object of `kind` (JSON, or protobuf as kubectl sends it), or the
/// 400 the API server gives.
fn decode(body: &[u8], kind: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.starts_with(PROTOBUF_MAGIC) {
        return match decode_protobuf(body, kind) {
            Some(Value::Object(o)) => Ok(o),
            _ => Err(ApiError::bad_request(format!(
                "the body of the request is not a valid {kind} in protobuf"
            ))),
        };
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request is not a valid {kind}: {e}"
        ))
    })?;
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::bad_request(format!(
            "the body of the request is not a {kind} object"
        ))),
    }
}

fn string_at(v: Option<&Value>, key: &str) -> String {
    v.and_then(|o| o.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The answer object: what was sent, plus `status`.
fn answer(mut obj: serde_json::Map<String, Value>, kind: &str, status: Value) -> Response {
    obj.insert("kind".into(), json!(kind));
    obj.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
    obj.insert("metadata".into(), json!({"creationTimestamp": null}));
    obj.insert("status".into(), status);
    let mut r = json(Value::Object(obj));
    *r.status_mut() = StatusCode::CREATED;
    r
}

/// `POST .../selfsubjectaccessreviews`.
async fn access_review(
    State(s): State<ServerState>,
    user: Option<axum::Extension<UserInfo>>,
    body: Bytes,
) -> Response {
    let kind = "SelfSubjectAccessReview";
    let obj = match decode(&body, kind) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let spec = obj.get("spec");
    let resource = spec
        .and_then(|s| s.get("resourceAttributes"))
        .filter(|v| !v.is_null());
    let non_resource = spec
        .and_then(|s| s.get("nonResourceAttributes"))
        .filter(|v| !v.is_null());
    let attrs = match (resource, non_resource) {
        (Some(r), None) => Attributes {
            verb: string_at(Some(r), "verb"),
            resource_request: true,
            namespace: string_at(Some(r), "namespace"),
            api_group: string_at(Some(r), "group"),
            api_version: string_at(Some(r), "version"),
            resource: string_at(Some(r), "resource"),
            subresource: string_at(Some(r), "subresource"),
            name: string_at(Some(r), "name"),
            path: String::new(),
        },
        (None, Some(n)) => Attributes {
            verb: string_at(Some(n), "verb"),
            path: string_at(Some(n), "path"),
            ..Default::default()
        },
        (r, _) => {
            // `ValidateSelfSubjectAccessReviewSpec`.
            let detail = if r.is_some() {
                "cannot be specified in combination with resourceAttributes"
            } else {
                "exactly one of nonResourceAttributes or resourceAttributes must be specified"
            };
            let field = if r.is_some() {
                "spec.nonResourceAttributes"
            } else {
                "spec.resourceAttributes"
            };
            return ApiError::invalid(
                "SelfSubjectAccessReview.authorization.k8s.io",
                "",
                &[FieldError {
                    kind: FieldErrorKind::Invalid,
                    field: field.into(),
                    value: "null".into(),
                    detail: detail.into(),
                }],
            )
            .into_response();
        }
    };
    let status = match user {
        // Not authenticated (plain loopback without authenticators): everything is allowed,
        // and the review says so.
        None => {
            json!({"allowed": true, "reason": "requests are not authenticated on this node: every request is allowed"})
        }
        Some(axum::Extension(user)) => {
            let d = s.authz.authorize(&user, &attrs);
            let mut st = json!({"allowed": d.allowed});
            if !d.reason.is_empty() {
                st["reason"] = json!(d.reason);
            }
            st
        }
    };
    answer(obj, kind, status)
}

/// `POST .../selfsubjectrulesreviews`.
async fn rules_review(
    State(s): State<ServerState>,
    user: Option<axum::Extension<UserInfo>>,
    body: Bytes,
) -> Response {
    let kind = "SelfSubjectRulesReview";
    let obj = match decode(&body, kind) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let namespace = string_at(obj.get("spec"), "namespace");
    let (rules, errors) = match user {
        None => (everything(), Vec::new()),
        Some(_) if s.authz.mode() == AuthorizationMode::AlwaysAllow => (everything(), Vec::new()),
        Some(axum::Extension(user)) => s.authz.policy().rules_for(&user, &namespace),
    };
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            v
        })
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    answer(obj, kind, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited protobuf field.
    fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, u8::try_from(bytes.len()).unwrap()];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn protobuf_reviews_as_kubectl_sends_them() {
        let attrs = [
            field(1, b"default"),
            field(2, b"get"),
            field(5, b"pods"),
            field(6, b"log"),
        ]
        .concat();
        let review = [field(1, b""), field(2, &field(1, &attrs)), field(3, &[])].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let mut body = PROTOBUF_MAGIC.to_vec();
        body.extend([field(1, &type_meta), field(2, &review), field(4, b"")].concat());
        let o = decode(&body, "SelfSubjectAccessReview").unwrap();
        assert_eq!(
            o["spec"],
            json!({"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods", "subresource": "log"}})
        );
        let rules = [field(1, b""), field(2, &field(1, b"team-a"))].concat();
        let mut body = PROTOBUF_MAGIC.to_vec();
        body.extend(field(2, &rules));
        let o = decode(&body, "SelfSubjectRulesReview").unwrap();
        assert_eq!(o["spec"], json!({"namespace": "team-a"}));
        let mut bad = PROTOBUF_MAGIC.to_vec();
        bad.extend([0x12, 0x7f, 0x01]);
        assert_eq!(
            decode(&bad, "SelfSubjectAccessReview").unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
        let o = decode(
            br#"{"spec":{"nonResourceAttributes":{"path":"/api","verb":"get"}}}"#,
            "SelfSubjectAccessReview",
        )
        .unwrap();
        assert_eq!(o["spec"]["nonResourceAttributes"]["path"], "/api");
    }
}
