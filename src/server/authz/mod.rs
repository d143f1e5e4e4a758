//! Who may do what: authorization of every authenticated request to the kubelet API and the
//! API-server facade.
//!
//! Mirrors the kubelet's authorization filter (`InstallAuthFilter` in
//! `pkg/kubelet/server/server.go`, with `GetRequestAttributes` of `auth.go`) and, for the
//! facade's paths, the API server's `WithAuthorization` filter. The kubelet asks the API
//! server (`authorization.mode: Webhook`, a SubjectAccessReview per request); minikubelet has
//! no API server, so it evaluates the API server's own RBAC rules itself, from
//! `rbac.authorization.k8s.io/v1` objects in files (`--authorization-policy-path`): the same
//! Roles and bindings a cluster admin would `kubectl apply`, answered as the API server would.
//! `docs/authorization.md` explains the model; the modes are `RBAC` (the default) and
//! `AlwaysAllow`.
//!
//! The policy is read again when its files change, by polling their mtimes
//! ([`POLICY_POLL_INTERVAL`]); a new policy that does not parse or validate is refused with a
//! warning naming the file, object and field, and the last good one stays in force.

pub mod attributes;
pub mod policy;
pub mod rbac;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use attributes::{Attributes, Check, Server};
use policy::{PolicyError, Stamp};
use rbac::{Decision, Policy};

use super::auth::UserInfo;
use super::status::ApiError;
use crate::config::AuthorizationMode;

/// How often the policy files' mtimes are compared with the ones last read. inotify would
/// notice edits at once, but editors replace files by rename, and directories of symlinks
/// (`..data`, as a mounted ConfigMap has) swap whole trees, both of which a watch loses
/// track of; a few `stat` calls every 3 s are cheap and cannot miss a change, at the cost of a
/// new policy taking up to 3 s to apply.
pub const POLICY_POLL_INTERVAL: Duration = Duration::from_secs(3);

/// The authorizer: the mode, the node it speaks for and the policy in force.
pub struct Authorizer {
    mode: AuthorizationMode,
    node: String,
    policy_path: Option<PathBuf>,
    policy: RwLock<Arc<Policy>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("mode", &self.mode)
            .field("node", &self.node)
            .field("policy_path", &self.policy_path)
            .finish_non_exhaustive()
    }
}

/// A request the authorizer refused: the attributes that were not allowed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The server whose wording the answer uses.
    pub server: Server,
    /// The attributes checked (the kubelet reports every subresource it tried).
    pub attributes: Vec<Attributes>,
    /// The attributes that failed (the first one not allowed).
    pub failed: Attributes,
    /// The authorizer's reason (empty when no rule matched).
    pub reason: String,
}

impl Authorizer {
    /// An authorizer with `policy` in force (no files, no reloading).
    pub fn new(mode: AuthorizationMode, node: &str, policy: Policy) -> Self {
        Authorizer {
            mode,
            node: node.to_string(),
            policy_path: None,
            policy: RwLock::new(Arc::new(policy)),
        }
    }

    /// Builds the authorizer of the configuration: reads the policy (a broken one stops the
    /// agent: there is no last good policy yet) and, in RBAC mode with a policy path, starts
    /// the thread that re-reads it when it changes.
    pub fn start(
        config: &crate::config::Config,
        node: &str,
    ) -> Result<Arc<Authorizer>, PolicyError> {
        let mode = config.authorization_mode;
        let path = config.authorization_policy_path.clone();
        let (policy, stamp) = match (&path, mode) {
            (Some(p), AuthorizationMode::Rbac) => policy::load(p)?,
            _ => (Policy::bootstrap(), Stamp::default()),
        };
        let authz = Arc::new(Authorizer {
            mode,
            node: node.to_string(),
            policy_path: path.clone(),
            policy: RwLock::new(Arc::new(policy)),
        });
        match (mode, &path) {
            (AuthorizationMode::AlwaysAllow, _) => {
                tracing::warn!(
                    "authorization mode AlwaysAllow: every authenticated user may do everything, exec into every container as root included"
                );
            }
            (AuthorizationMode::Rbac, None) => {
                tracing::info!(
                    "authorization mode RBAC with no --authorization-policy-path: only group system:masters may use the API (plus discovery and self access reviews for every authenticated user)"
                );
            }
            (AuthorizationMode::Rbac, Some(p)) => {
                let current = authz.policy();
                tracing::info!(path = %p.display(), cluster_roles = current.cluster_roles.len(), roles = current.roles.len(), cluster_role_bindings = current.cluster_role_bindings.len(), role_bindings = current.role_bindings.len(), "authorization mode RBAC: policy loaded");
                warn_dangling(&current);
                let watched = Arc::clone(&authz);
                let spawned = std::thread::Builder::new()
                    .name("authz-policy".into())
                    .spawn({
                        let p = p.clone();
                        move || watched.watch(p, stamp)
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the authorization policy watcher; policy changes need a restart");
                }
            }
        }
        Ok(authz)
    }

    /// The mode.
    pub fn mode(&self) -> AuthorizationMode {
        self.mode
    }

    /// The node name (`nodes/<name>` of the kubelet's attributes).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, p: Policy) {
        match self.policy.write() {
            Ok(mut g) => *g = Arc::new(p),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(p),
        }
    }

    /// One decision, by mode.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        match self.mode {
            AuthorizationMode::AlwaysAllow => Decision {
                allowed: true,
                reason: String::new(),
            },
            AuthorizationMode::Rbac => self.policy().authorize(user, a),
        }
    }

    /// Checks a request: `Ok` or the denial.
    pub fn check(&self, user: &UserInfo, check: Check) -> Result<(), Box<Denial>> {
        let mut failed = None;
        for a in &check.attributes {
            let d = self.authorize(user, a);
            if d.allowed && !check.all {
                return Ok(());
            }
            if !d.allowed && failed.is_none() {
                failed = Some((a.clone(), d.reason));
                if check.all {
                    break;
                }
            }
        }
        match failed {
            None => Ok(()),
            Some((failed, reason)) => Err(Box::new(Denial {
                server: check.server,
                attributes: check.attributes,
                failed,
                reason,
            })),
        }
    }

    /// The polling loop: re-reads the policy when its stamp changes; a broken policy is
    /// reported once per change and the last good one stays.
    fn watch(self: Arc<Self>, path: PathBuf, mut good: Stamp) {
        let mut bad: Option<Result<Stamp, String>> = None;
        loop {
            std::thread::sleep(POLICY_POLL_INTERVAL);
            let now = match policy::stamp(&path) {
                Ok(s) => s,
                Err(e) => {
                    let seen = Err(e.to_string());
                    if bad.as_ref() != Some(&seen) {
                        tracing::warn!(path = %path.display(), error = %e, "authorization policy unreadable; keeping the last good policy");
                        bad = Some(seen);
                    }
                    continue;
                }
            };
            if now == good {
                // Readable again and unchanged: a later failure is news again.
                bad = None;
                continue;
            }
            if bad.as_ref() == Some(&Ok(now.clone())) {
                continue;
            }
            match policy::load(&path) {
                Ok((p, stamp)) => {
                    tracing::info!(path = %path.display(), cluster_roles = p.cluster_roles.len(), roles = p.roles.len(), cluster_role_bindings = p.cluster_role_bindings.len(), role_bindings = p.role_bindings.len(), "authorization policy changed: reloaded");
                    warn_dangling(&p);
                    self.replace(p);
                    good = stamp;
                    bad = None;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "authorization policy changed but is invalid; keeping the last good policy");
                    bad = Some(Ok(now));
                }
            }
        }
    }
}

/// A binding to a role that does not exist is legal (the API server allows it too) but grants
/// nothing: worth a warning at load time.
fn warn_dangling(p: &Policy) {
    for b in p.cluster_role_bindings.iter().chain(&p.role_bindings) {
        let found = match b.role_ref.kind.as_str() {
            "Role" => p
                .roles
                .contains_key(&(b.namespace.clone(), b.role_ref.name.clone())),
            _ => p.cluster_roles.contains_key(&b.role_ref.name),
        };
        if !found {
            tracing::warn!(binding = %b.name, namespace = %b.namespace, role_kind = %b.role_ref.kind, role = %b.role_ref.name, "authorization policy: the binding refers to a role that does not exist; it grants nothing");
        }
    }
}

/// `forbiddenMessage` of the API server's `responsewriters`.
pub fn forbidden_message(user: &str, a: &Attributes) -> String {
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = a.combined_resource();
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    }
}

impl Denial {
    /// The answer: the API server's `ForbiddenStatusError` Status for the facade's paths, the
    /// kubelet's `Forbidden (user=..., ...)` for its own (as a Status too, like every other
    /// error of minikubelet's kubelet API; the kubelet writes it as plain text).
    pub fn to_api_error(&self, user: &UserInfo) -> ApiError {
        match self.server {
            Server::Kubelet => {
                let subs: Vec<&str> = self
                    .attributes
                    .iter()
                    .map(|a| a.subresource.as_str())
                    .collect();
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "Forbidden (user={}, verb={}, resource={}, subresource(s)=[{}])",
                        user.name,
                        self.failed.verb,
                        self.failed.resource,
                        subs.join(" ")
                    ),
                )
            }
            Server::ApiServer => {
                let a = &self.failed;
                let mut why = forbidden_message(&user.name, a);
                if !self.reason.is_empty() {
                    why = format!("{why}: {}", self.reason);
                }
                let (message, details) = if !a.resource_request {
                    (format!("forbidden: {why}"), json!({}))
                } else {
                    let qualified = if a.api_group.is_empty() {
                        a.resource.clone()
                    } else {
                        format!("{}.{}", a.resource, a.api_group)
                    };
                    let message = if a.name.is_empty() {
                        format!("{qualified} is forbidden: {why}")
                    } else {
                        format!("{qualified} {:?} is forbidden: {why}", a.name)
                    };
                    let mut d = json!({"kind": a.resource});
                    if !a.name.is_empty() {
                        d["name"] = json!(a.name);
                    }
                    if !a.api_group.is_empty() {
                        d["group"] = json!(a.api_group);
                    }
                    (message, d)
                };
                ApiError {
                    details: Some(details),
                    ..ApiError::new(StatusCode::FORBIDDEN, message)
                }
            }
        }
    }
}

/// The middleware behind the authenticator: authorizes the request's user for what the
/// request asks, or answers 403.
pub async fn authorize(State(authz): State<Arc<Authorizer>>, req: Request, next: Next) -> Response {
    // No user: the authenticator, which runs first on every address and inserts the user it
    // found (`system:anonymous` included), did not run. That is a wiring error; fail closed.
    let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
        tracing::error!(method = %req.method(), path = %req.uri().path(), "request reached the authorizer without a user; refusing it");
        return ApiError::new(StatusCode::FORBIDDEN, "Forbidden").into_response();
    };
    if authz.mode == AuthorizationMode::AlwaysAllow {
        return next.run(req).await;
    }
    let check = attributes::request_check(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        &authz.node,
    );
    match authz.check(&user, check) {
        Ok(()) => next.run(req).await,
        Err(denial) => {
            let a = &denial.failed;
            tracing::info!(user = %user.name, groups = ?user.groups, verb = %a.verb, resource = %a.resource, subresource = %a.subresource, namespace = %a.namespace, name = %a.name, api_group = %a.api_group, path = %a.path, reason = %denial.reason, "forbidden request");
            denial.to_api_error(&user).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rbac::test_user as user;
    use super::*;
    use axum::http::Method;

    fn authorizer(mode: AuthorizationMode) -> Authorizer {
        let text = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: logs, namespace: default}
rules: [{apiGroups: [""], resources: [pods, pods/log], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-logs, namespace: default}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: logs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: stats}
rules: [{apiGroups: [""], resources: [nodes/stats, nodes/pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-stats}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: stats}
"#;
        let p = policy::parse(std::path::Path::new("p.yaml"), text).unwrap();
        Authorizer::new(mode, "node-a", p)
    }

    fn check(a: &Authorizer, u: &UserInfo, m: Method, path: &str) -> Result<(), String> {
        let c = attributes::request_check(&m, path, None, a.node());
        a.check(u, c).map_err(|d| d.to_api_error(u).message)
    }

    #[test]
    fn denials_worded_as_the_api_server_and_the_kubelet() {
        let a = authorizer(AuthorizationMode::Rbac);
        let bob = user("bob", &["system:authenticated"]);
        assert_eq!(
            check(
                &a,
                &bob,
                Method::GET,
                "/api/v1/namespaces/default/pods/x/log"
            ),
            Ok(())
        );
        assert_eq!(
            check(&a, &bob, Method::POST, "/api/v1/namespaces/default/pods/x/exec"),
            Err("pods \"x\" is forbidden: User \"bob\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\"".into())
        );
        assert_eq!(
            check(&a, &bob, Method::GET, "/api/v1/namespaces/kube-system/pods"),
            Err("pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\"".into())
        );
        assert_eq!(
            check(&a, &bob, Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes"),
            Err("nodes.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope".into())
        );
        assert_eq!(check(&a, &bob, Method::GET, "/api"), Ok(()));
        let anon = user("system:anonymous", &["system:unauthenticated"]);
        assert_eq!(
            check(&a, &anon, Method::GET, "/api"),
            Err("forbidden: User \"system:anonymous\" cannot get path \"/api\"".into())
        );
        assert_eq!(check(&a, &bob, Method::GET, "/stats/summary"), Ok(()));
        assert_eq!(
            check(&a, &bob, Method::GET, "/pods"),
            Ok(()),
            "nodes/pods is enough for /pods"
        );
        assert_eq!(
            check(&a, &bob, Method::POST, "/run/default/x/c"),
            Err("Forbidden (user=bob, verb=create, resource=nodes, subresource(s)=[proxy])".into())
        );
        assert_eq!(
            check(&a, &bob, Method::GET, "/configz"),
            Err(
                "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[configz proxy])"
                    .into()
            )
        );
        let root = user("admin", &["system:masters"]);
        assert_eq!(check(&a, &root, Method::POST, "/run/default/x/c"), Ok(()));
        let open = authorizer(AuthorizationMode::AlwaysAllow);
        assert_eq!(
            check(&open, &anon, Method::POST, "/run/default/x/c"),
            Ok(())
        );
    }

    #[test]
    fn forbidden_status_details() {
        let a = authorizer(AuthorizationMode::Rbac);
        let bob = user("bob", &[]);
        let c = attributes::request_check(
            &Method::GET,
            "/api/v1/namespaces/default/pods/x/exec",
            None,
            "n",
        );
        let e = a.check(&bob, c).unwrap_err().to_api_error(&bob);
        assert_eq!(e.code, StatusCode::FORBIDDEN);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(e.details, Some(json!({"kind": "pods", "name": "x"})));
        assert!(
            e.message.contains("cannot get resource \"pods/exec\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn reload_keeps_the_last_good_policy() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("p.yaml");
        let binding = |user: &str| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: b}}\nsubjects: [{{kind: User, apiGroup: rbac.authorization.k8s.io, name: {user}}}]\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\n"
            )
        };
        std::fs::write(&f, binding("bob")).unwrap();
        let (p, stamp) = policy::load(&f).unwrap();
        let a = Arc::new(Authorizer {
            mode: AuthorizationMode::Rbac,
            node: "n".into(),
            policy_path: Some(f.clone()),
            policy: RwLock::new(Arc::new(p)),
        });
        let watched = Arc::clone(&a);
        let path = f.clone();
        std::thread::spawn(move || watched.watch(path, stamp));
        let bob = user("bob", &[]);
        let carol = user("carol", &[]);
        assert_eq!(check(&a, &bob, Method::POST, "/run/a/b/c"), Ok(()));
        let wait_for = |want: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + POLICY_POLL_INTERVAL * 4;
            while !want() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "policy not reloaded in time"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        std::fs::write(&f, binding("carol")).unwrap();
        wait_for(&|| check(&a, &carol, Method::POST, "/run/a/b/c").is_ok());
        assert!(check(&a, &bob, Method::POST, "/run/a/b/c").is_err());
        std::fs::write(&f, "kind: Nonsense\n").unwrap();
        std::thread::sleep(POLICY_POLL_INTERVAL * 2);
        assert_eq!(
            check(&a, &carol, Method::POST, "/run/a/b/c"),
            Ok(()),
            "the last good policy stays"
        );
    }
}
