//! Role-based access control: the `rbac.authorization.k8s.io/v1` objects and their evaluation.
//!
//! Mirrors the API server's RBAC authorizer (`plugin/pkg/auth/authorizer/rbac/rbac.go`), its
//! rule resolver (`pkg/registry/rbac/validation/rule.go`: ClusterRoleBindings first, then the
//! RoleBindings of the request's namespace; a RoleBinding to a ClusterRole grants that role's
//! rules in the binding's namespace only), the matchers of
//! `pkg/apis/rbac/v1/evaluation_helpers.go` and the object validation of
//! `pkg/apis/rbac/validation`. The API server's superuser rule (group `system:masters` may do
//! anything, `authorizerfactory.NewPrivilegedGroups`) and the bootstrap roles every API server
//! has (`system:discovery`, `system:basic-user`, `system:public-info-viewer`, bound to the
//! authenticated and unauthenticated groups; `cluster-admin` and `system:kubelet-api-admin`,
//! unbound) are built in (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::attributes::Attributes;
use crate::server::auth::UserInfo;

/// The API group of the RBAC objects, and of User and Group subjects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The only version read.
pub const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
/// The API server's superuser group (`user.SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// `rbacv1.PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// `get`, `list`, ... or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups (`""` is core) or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// `pods`, `pods/log`, `*/scale`, `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names; empty allows every name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths, a trailing `*` matching any suffix.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// `rbacv1.Subject`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// `rbac.authorization.k8s.io` for User and Group, `""` for ServiceAccount.
    #[serde(default)]
    pub api_group: String,
    /// The user, group or service account name.
    pub name: String,
    /// The service account's namespace.
    #[serde(default)]
    pub namespace: String,
}

/// `rbacv1.RoleRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRef {
    /// Always `rbac.authorization.k8s.io`.
    #[serde(default)]
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// A Role or ClusterRole, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// Its rules.
    pub rules: Vec<PolicyRule>,
}

/// A RoleBinding (with a namespace) or ClusterRoleBinding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Its name.
    pub name: String,
    /// Its namespace; empty for a ClusterRoleBinding.
    pub namespace: String,
    /// The role it grants.
    pub role_ref: RoleRef,
    /// Who it grants it to.
    pub subjects: Vec<Subject>,
}

/// A whole policy: the objects of every file, plus the built-in bootstrap roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// ClusterRoles by name.
    pub cluster_roles: HashMap<String, Role>,
    /// Roles by (namespace, name).
    pub roles: HashMap<(String, String), Role>,
    /// ClusterRoleBindings, in file order.
    pub cluster_role_bindings: Vec<Binding>,
    /// RoleBindings, in file order.
    pub role_bindings: Vec<Binding>,
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why: the binding that allowed it, or the resolution errors met while denying it
    /// (`RBAC: allowed by ...`, `RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`).
    pub reason: String,
}

/// The rules that allow everything: what a superuser (or `AlwaysAllow`) is reported to hold.
pub fn everything() -> Vec<PolicyRule> {
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
}

/// `VerbMatches`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

/// `APIGroupMatches`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// `ResourceMatches`: `*`, the exact `resource/subresource`, or `*/subresource`.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `ResourceNameMatches`: no names allows all.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// `NonResourceURLMatches`: `*`, exact, or a prefix ending in `*`.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
    })
}

/// `RuleAllows`.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &a.combined_resource(), &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// `appliesToUser`: `namespace` defaults a ServiceAccount subject's namespace (a RoleBinding's).
fn applies_to_user(user: &UserInfo, s: &Subject, namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.name == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                namespace
            } else {
                &s.namespace
            };
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

/// `describeSubject`.
fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_namespace
            } else {
                &s.namespace
            };
            format!("{} {:?}", s.kind, format!("{}/{ns}", s.name))
        }
        _ => format!("{} {:?}", s.kind, s.name),
    }
}

impl Binding {
    /// The first subject the user matches.
    fn subject_for(&self, user: &UserInfo) -> Option<&Subject> {
        self.subjects
            .iter()
            .find(|s| applies_to_user(user, s, &self.namespace))
    }

    /// `clusterRoleBindingDescriber`/`roleBindingDescriber`.
    fn describe(&self, subject: &Subject) -> String {
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {:?} of {} {:?} to {}",
                self.name,
                self.role_ref.kind,
                self.role_ref.name,
                describe_subject(subject, "")
            )
        } else {
            format!(
                "RoleBinding {:?} of {} {:?} to {}",
                format!("{}/{}", self.name, self.namespace),
                self.role_ref.kind,
                self.role_ref.name,
                describe_subject(subject, &self.namespace)
            )
        }
    }
}

impl Policy {
    /// `GetRoleReferenceRules`.
    fn role_rules(&self, r: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        match r.kind.as_str() {
            "Role" => self
                .roles
                .get(&(namespace.to_string(), r.name.clone()))
                .map(|x| x.rules.as_slice())
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io {:?} not found", r.name)),
            "ClusterRole" => self
                .cluster_roles
                .get(&r.name)
                .map(|x| x.rules.as_slice())
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        r.name
                    )
                }),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// `VisitRulesFor`: every rule granted to `user` in `namespace` (cluster-wide ones first),
    /// with the binding that granted it; `visit` returns false to stop. Resolution errors (a
    /// binding to a missing role) are handed over as `Err`.
    fn visit_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(Result<(&Binding, &Subject, &PolicyRule), String>) -> bool,
    ) {
        let bindings = self.cluster_role_bindings.iter().chain(
            self.role_bindings
                .iter()
                .filter(|b| !namespace.is_empty() && b.namespace == namespace),
        );
        for b in bindings {
            let Some(subject) = b.subject_for(user) else {
                continue;
            };
            match self.role_rules(&b.role_ref, &b.namespace) {
                Ok(rules) => {
                    for rule in rules {
                        if !visit(Ok((b, subject, rule))) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !visit(Err(e)) {
                        return;
                    }
                }
            }
        }
    }

    /// The RBAC authorizer's `Authorize`, behind the superuser rule.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut errors = Vec::new();
        let mut allowed_by = None;
        self.visit_rules_for(user, &a.namespace, |item| match item {
            Ok((b, s, rule)) if rule_allows(a, rule) => {
                allowed_by = Some(b.describe(s));
                false
            }
            Ok(_) => true,
            Err(e) => {
                errors.push(e);
                true
            }
        });
        match allowed_by {
            Some(by) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {by}"),
            },
            None => Decision {
                allowed: false,
                reason: match errors.len() {
                    0 => String::new(),
                    // `utilerrors.NewAggregate`: one error as itself, several in brackets.
                    1 => format!("RBAC: {}", errors[0]),
                    _ => format!("RBAC: [{}]", errors.join(", ")),
                },
            },
        }
    }

    /// `RulesFor` (for SelfSubjectRulesReview): the rules granted to `user` in `namespace`,
    /// and the resolution errors. Members of `system:masters` get `*` on everything, as the
    /// API server's privileged-group authorizer reports.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            rules = everything();
        }
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, |item| {
            match item {
                Ok((_, _, rule)) => rules.push(rule.clone()),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// The bootstrap policy every API server has (`bootstrappolicy.ClusterRoles` and
    /// `ClusterRoleBindings`, the parts that concern this node).
    pub fn bootstrap() -> Policy {
        fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
            PolicyRule {
                verbs: verbs.iter().map(|s| s.to_string()).collect(),
                api_groups: groups.iter().map(|s| s.to_string()).collect(),
                resources: resources.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }
        }
        fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
            PolicyRule {
                verbs: verbs.iter().map(|s| s.to_string()).collect(),
                non_resource_urls: urls.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }
        }
        fn group(name: &str) -> Subject {
            Subject {
                kind: "Group".into(),
                api_group: RBAC_GROUP.into(),
                name: name.into(),
                namespace: String::new(),
            }
        }
        let roles = [
            (
                "cluster-admin",
                vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
            ),
            (
                "system:discovery",
                vec![urls(
                    &["get"],
                    &[
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/version",
                        "/version/",
                        "/openapi",
                        "/openapi/*",
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                    ],
                )],
            ),
            (
                "system:basic-user",
                vec![
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    ),
                    rule(
                        &["create"],
                        &["authentication.k8s.io"],
                        &["selfsubjectreviews"],
                    ),
                ],
            ),
            (
                "system:public-info-viewer",
                vec![urls(
                    &["get"],
                    &["/livez", "/readyz", "/healthz", "/version", "/version/"],
                )],
            ),
            (
                // With the fine-grained kubelet subresources (KubeletFineGrainedAuthz), which
                // this node checks.
                "system:kubelet-api-admin",
                vec![
                    rule(&["get", "list", "watch"], &[""], &["nodes"]),
                    rule(&["proxy"], &[""], &["nodes"]),
                    rule(
                        &["*"],
                        &[""],
                        &[
                            "nodes/proxy",
                            "nodes/metrics",
                            "nodes/spec",
                            "nodes/stats",
                            "nodes/log",
                            "nodes/healthz",
                            "nodes/pods",
                            "nodes/configz",
                        ],
                    ),
                ],
            ),
        ];
        let bindings = [
            ("system:discovery", vec![group("system:authenticated")]),
            ("system:basic-user", vec![group("system:authenticated")]),
            (
                "system:public-info-viewer",
                vec![
                    group("system:authenticated"),
                    group("system:unauthenticated"),
                ],
            ),
        ];
        Policy {
            cluster_roles: roles
                .into_iter()
                .map(|(name, rules)| {
                    (
                        name.to_string(),
                        Role {
                            name: name.to_string(),
                            rules,
                        },
                    )
                })
                .collect(),
            roles: HashMap::new(),
            cluster_role_bindings: bindings
                .into_iter()
                .map(|(name, subjects)| Binding {
                    name: name.to_string(),
                    namespace: String::new(),
                    role_ref: RoleRef {
                        api_group: RBAC_GROUP.into(),
                        kind: "ClusterRole".into(),
                        name: name.to_string(),
                    },
                    subjects,
                })
                .collect(),
            role_bindings: Vec::new(),
        }
    }
}

/// A user for the tests of this module and its parent.
#[cfg(test)]
pub(super) fn test_user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::test_user as user;
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: groups.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            non_resource_urls: Vec::new(),
        }
    }

    fn res(verb: &str, ns: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    fn url(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rule_matching_like_evaluation_helpers() {
        let pods_log = rule(&["get"], &[""], &["pods/log"], &[]);
        let star_sub = rule(&["get"], &[""], &["*/log"], &[]);
        let all = rule(&["*"], &["*"], &["*"], &[]);
        let named = rule(&["get"], &[""], &["pods"], &["web"]);
        let nodes_proxy = rule(&["get", "create"], &[""], &["nodes/proxy"], &[]);
        let metrics_group = rule(&["list"], &["metrics.k8s.io"], &["pods"], &[]);
        let mut prefix = rule(&["get"], &[], &[], &[]);
        prefix.non_resource_urls = vec!["/apis/*".into(), "/version".into()];
        // (rule, attributes, allowed)
        let cases = [
            (
                &pods_log,
                res("get", "default", "", "pods", "log", "x"),
                true,
            ),
            (
                &pods_log,
                res("list", "default", "", "pods", "log", "x"),
                false,
            ),
            (&pods_log, res("get", "default", "", "pods", "", "x"), false),
            (
                &pods_log,
                res("get", "default", "", "pods", "exec", "x"),
                false,
            ),
            (
                &pods_log,
                res("get", "default", "apps", "pods", "log", "x"),
                false,
            ),
            (
                &star_sub,
                res("get", "default", "", "pods", "log", "x"),
                true,
            ),
            (&star_sub, res("get", "", "", "nodes", "log", "n"), true),
            (&star_sub, res("get", "", "", "nodes", "", "n"), false),
            (&star_sub, res("get", "", "", "nodes", "xlog", "n"), false),
            (
                &all,
                res("delete", "x", "apps", "deployments", "scale", "d"),
                true,
            ),
            (&all, url("get", "/api"), false),
            (&named, res("get", "default", "", "pods", "", "web"), true),
            (&named, res("get", "default", "", "pods", "", "db"), false),
            (&named, res("get", "default", "", "pods", "", ""), false),
            (
                &nodes_proxy,
                res("create", "", "", "nodes", "proxy", "n1"),
                true,
            ),
            (
                &nodes_proxy,
                res("get", "", "", "nodes", "stats", "n1"),
                false,
            ),
            (
                &metrics_group,
                res("list", "default", "metrics.k8s.io", "pods", "", ""),
                true,
            ),
            (
                &metrics_group,
                res("list", "default", "", "pods", "", ""),
                false,
            ),
            (&prefix, url("get", "/apis/metrics.k8s.io"), true),
            (&prefix, url("get", "/apis/"), true),
            (&prefix, url("get", "/apis"), false),
            (&prefix, url("get", "/version"), true),
            (&prefix, url("get", "/version/"), false),
            (&prefix, url("post", "/version"), false),
            (&prefix, res("get", "", "", "apis", "", ""), false),
        ];
        for (i, (r, a, want)) in cases.iter().enumerate() {
            assert_eq!(rule_allows(a, r), *want, "case {i}: {r:?} {a:?}");
        }
    }

    fn binding(
        name: &str,
        ns: &str,
        kind: &str,
        role: &str,
        subjects: &[(&str, &str, &str)],
    ) -> Binding {
        Binding {
            name: name.into(),
            namespace: ns.into(),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: subjects
                .iter()
                .map(|(k, n, sns)| Subject {
                    kind: k.to_string(),
                    api_group: if *k == "ServiceAccount" {
                        ""
                    } else {
                        RBAC_GROUP
                    }
                    .into(),
                    name: n.to_string(),
                    namespace: sns.to_string(),
                })
                .collect(),
        }
    }

    fn policy() -> Policy {
        let mut p = Policy::bootstrap();
        p.roles.insert(
            ("default".into(), "log-reader".into()),
            Role {
                name: "log-reader".into(),
                rules: vec![rule(&["get"], &[""], &["pods", "pods/log"], &[])],
            },
        );
        p.cluster_roles.insert(
            "pod-exec".into(),
            Role {
                name: "pod-exec".into(),
                rules: vec![rule(&["create", "get"], &[""], &["pods/exec"], &[])],
            },
        );
        p.cluster_roles.insert(
            "node-stats".into(),
            Role {
                name: "node-stats".into(),
                rules: vec![rule(&["get"], &[""], &["nodes/stats"], &[])],
            },
        );
        p.role_bindings.push(binding(
            "bob-logs",
            "default",
            "Role",
            "log-reader",
            &[("User", "bob", "")],
        ));
        p.role_bindings.push(binding(
            "ops-exec",
            "team-a",
            "ClusterRole",
            "pod-exec",
            &[("Group", "ops", "")],
        ));
        p.role_bindings.push(binding(
            "sa-exec",
            "team-a",
            "ClusterRole",
            "pod-exec",
            &[("ServiceAccount", "robot", "")],
        ));
        p.role_bindings.push(binding(
            "dangling",
            "default",
            "Role",
            "missing",
            &[("User", "carol", "")],
        ));
        p.cluster_role_bindings.push(binding(
            "stats",
            "",
            "ClusterRole",
            "node-stats",
            &[("ServiceAccount", "scraper", "monitoring")],
        ));
        p.cluster_role_bindings.push(binding(
            "dangling-c",
            "",
            "ClusterRole",
            "nope",
            &[("User", "carol", "")],
        ));
        p
    }

    #[test]
    fn bindings_like_the_rule_resolver() {
        let p = policy();
        let bob = user("bob", &["system:authenticated"]);
        let ops = user("alice", &["ops", "system:authenticated"]);
        let robot = user(
            "system:serviceaccount:team-a:robot",
            &["system:authenticated"],
        );
        let robot_b = user(
            "system:serviceaccount:team-b:robot",
            &["system:authenticated"],
        );
        let scraper = user("system:serviceaccount:monitoring:scraper", &[]);
        let root = user("admin", &["system:masters"]);
        let anon = user("system:anonymous", &["system:unauthenticated"]);
        // (user, attributes, allowed)
        let cases = [
            (&bob, res("get", "default", "", "pods", "log", "web"), true),
            (&bob, res("get", "default", "", "pods", "", "web"), true),
            (&bob, res("get", "team-a", "", "pods", "log", "web"), false),
            (
                &bob,
                res("create", "default", "", "pods", "exec", "web"),
                false,
            ),
            (&bob, res("get", "", "", "pods", "log", "web"), false),
            (
                &ops,
                res("create", "team-a", "", "pods", "exec", "web"),
                true,
            ),
            (
                &ops,
                res("create", "default", "", "pods", "exec", "web"),
                false,
            ),
            (
                &robot,
                res("create", "team-a", "", "pods", "exec", "web"),
                true,
            ),
            (
                &robot_b,
                res("create", "team-a", "", "pods", "exec", "web"),
                false,
            ),
            (&scraper, res("get", "", "", "nodes", "stats", "n1"), true),
            (&scraper, res("get", "", "", "nodes", "proxy", "n1"), false),
            (&root, res("delete", "x", "y", "z", "", ""), true),
            (&root, url("post", "/anything"), true),
            (&bob, url("get", "/api"), true),
            (&bob, url("get", "/apis/metrics.k8s.io/v1beta1"), true),
            (&bob, url("get", "/metrics"), false),
            (&anon, url("get", "/api"), false),
            (&anon, url("get", "/version"), true),
            (
                &bob,
                res(
                    "create",
                    "",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                ),
                true,
            ),
            (
                &anon,
                res(
                    "create",
                    "",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                ),
                false,
            ),
        ];
        for (i, (u, a, want)) in cases.iter().enumerate() {
            assert_eq!(
                p.authorize(u, a).allowed,
                *want,
                "case {i}: {} {a:?}",
                u.name
            );
        }
    }

    #[test]
    fn reasons_name_the_binding_or_the_missing_role() {
        let p = policy();
        let bob = user("bob", &[]);
        assert_eq!(
            p.authorize(&bob, &res("get", "default", "", "pods", "log", "w"))
                .reason,
            "RBAC: allowed by RoleBinding \"bob-logs/default\" of Role \"log-reader\" to User \"bob\""
        );
        let robot = user("system:serviceaccount:team-a:robot", &[]);
        assert_eq!(
            p.authorize(&robot, &res("create", "team-a", "", "pods", "exec", "w"))
                .reason,
            "RBAC: allowed by RoleBinding \"sa-exec/team-a\" of ClusterRole \"pod-exec\" to ServiceAccount \"robot/team-a\""
        );
        let scraper = user("system:serviceaccount:monitoring:scraper", &[]);
        assert_eq!(
            p.authorize(&scraper, &res("get", "", "", "nodes", "stats", "n"))
                .reason,
            "RBAC: allowed by ClusterRoleBinding \"stats\" of ClusterRole \"node-stats\" to ServiceAccount \"scraper/monitoring\""
        );
        let d = p.authorize(&bob, &res("get", "default", "", "pods", "exec", "w"));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: String::new()
            }
        );
        let carol = user("carol", &[]);
        assert_eq!(
            p.authorize(&carol, &res("get", "", "", "pods", "", "w"))
                .reason,
            "RBAC: clusterrole.rbac.authorization.k8s.io \"nope\" not found"
        );
        assert_eq!(
            p.authorize(&carol, &res("get", "default", "", "pods", "", "w"))
                .reason,
            "RBAC: [clusterrole.rbac.authorization.k8s.io \"nope\" not found, role.rbac.authorization.k8s.io \"missing\" not found]"
        );
    }

    #[test]
    fn rules_for_lists_what_applies() {
        let p = policy();
        let (rules, errors) = p.rules_for(&user("bob", &["system:authenticated"]), "default");
        assert!(errors.is_empty());
        assert!(
            rules
                .iter()
                .any(|r| r.resources.contains(&"pods/log".to_string()))
        );
        assert!(
            rules
                .iter()
                .any(|r| r.non_resource_urls.contains(&"/api".to_string()))
        );
        let (rules, _) = p.rules_for(&user("bob", &["system:authenticated"]), "team-a");
        assert!(
            !rules
                .iter()
                .any(|r| r.resources.contains(&"pods/log".to_string()))
        );
        let (rules, _) = p.rules_for(&user("root", &["system:masters"]), "x");
        assert_eq!(rules[0].resources, ["*"]);
    }
}
