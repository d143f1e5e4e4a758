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
use crate::server::authz::rbac::PolicyRule;
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

/// The request's body as an object of `kind`, or the 400 the API server gives.
fn decode(body: &[u8], kind: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
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
    let everything = || {
        vec![
            PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Default::default()
            },
            PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Default::default()
            },
        ]
    };
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
