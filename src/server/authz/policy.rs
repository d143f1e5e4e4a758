//! Reading an RBAC policy from `--authorization-policy-path`: one file, or the `*.yaml`,
//! `*.yml` and `*.json` files of a directory (not its subdirectories, not dot files), each
//! holding any number of YAML documents or JSON values, each a Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding or a `List` of them.
//!
//! In a cluster these objects live in the API server, which validates them on write
//! (`pkg/apis/rbac/validation`); here the files are the store, so the same checks run on every
//! read, and every error names the file, the object and the field. Objects are decoded
//! strictly: an unknown field is an error (it is most often a typo that would silently grant
//! or withhold something), except inside `metadata`, where only `name` and `namespace` are
//! used and the rest (labels, uid, resourceVersion...) of a `kubectl get -o yaml` is ignored.
//!
//! The files decide who may exec into every container as root, so like the static pod
//! manifests they must be owned by root (the agent's user) and writable by nobody else.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::rbac::{
    Binding, Policy, PolicyRule, RBAC_API_VERSION, RBAC_GROUP, Role, RoleRef, Subject,
};

/// The largest policy file read. RBAC policies are a few KiB; the cap keeps a mistaken path
/// (a log, a device) from being read into memory, at the cost of refusing absurdly large
/// policies (split them over several files).
pub const MAX_POLICY_FILE_BYTES: u64 = 4 << 20;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The path or a file in it could not be read.
    #[error("read authorization policy {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The io error.
        source: std::io::Error,
    },
    /// A file others than root may change.
    #[error(
        "authorization policy {path} is {why}: whoever can change it can grant themselves exec into every container; make it owned by root and not group- or world-writable (chown root {path}; chmod go-w {path})"
    )]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file larger than [`MAX_POLICY_FILE_BYTES`].
    #[error("authorization policy {path} is larger than {MAX_POLICY_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not YAML or JSON.
    #[error("authorization policy {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An object that is not a valid RBAC object.
    #[error("authorization policy {path}: {object}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `document 2 (ClusterRole "x")`.
        object: String,
        /// `rules[0].verbs: Required value: ...`.
        message: String,
    },
    /// The same object in two places.
    #[error("authorization policy {path}: {object} is defined twice (also in {first})")]
    Duplicate {
        /// The file of the second definition.
        path: PathBuf,
        /// `Role "x" in namespace "y"`.
        object: String,
        /// The file of the first.
        first: PathBuf,
    },
}

/// What a policy path looked like when read: each file's path, length and mtime. A different
/// stamp means "read it again".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, u64, Option<SystemTime>)>);

/// The files a policy path stands for: the file itself, or a directory's policy files sorted
/// by name.
fn policy_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let read_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PolicyError::Read { path: p, source }
    };
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err(path))? {
        let entry = entry.map_err(read_err(path))?;
        let p = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let wanted =
            !name.starts_with('.') && [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
        if wanted && std::fs::metadata(&p).map_err(read_err(&p))?.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The stamp of a policy path now.
pub fn stamp(path: &Path) -> Result<Stamp, PolicyError> {
    let mut out = Vec::new();
    for f in policy_files(path)? {
        let meta = std::fs::metadata(&f).map_err(|source| PolicyError::Read {
            path: f.clone(),
            source,
        })?;
        out.push((f, meta.len(), meta.modified().ok()));
    }
    Ok(Stamp(out))
}

/// Refuses a file or directory that someone other than the agent's user could change.
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), PolicyError> {
    let me = nix::unistd::geteuid().as_raw();
    let why = if meta.uid() != me && meta.uid() != 0 {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 && !(meta.is_dir() && meta.mode() & 0o1000 != 0) {
        Some(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(PolicyError::Insecure {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// Reads and validates the whole policy at `path`, on top of the bootstrap roles. Returns it
/// with the stamp of what was read.
pub fn load(path: &Path) -> Result<(Policy, Stamp), PolicyError> {
    let files = policy_files(path)?;
    let dir_meta = std::fs::metadata(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if dir_meta.is_dir() {
        check_owner(path, &dir_meta)?;
    }
    let mut builder = Builder::default();
    let mut stamp = Vec::new();
    for f in &files {
        let file = std::fs::File::open(f).map_err(|source| PolicyError::Read {
            path: f.clone(),
            source,
        })?;
        // The checks and the read use one open file, so a swap between them cannot matter.
        let meta = file.metadata().map_err(|source| PolicyError::Read {
            path: f.clone(),
            source,
        })?;
        check_owner(f, &meta)?;
        let mut text = String::new();
        file.take(MAX_POLICY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|source| PolicyError::Read {
                path: f.clone(),
                source,
            })?;
        if text.len() as u64 > MAX_POLICY_FILE_BYTES {
            return Err(PolicyError::TooLarge { path: f.clone() });
        }
        builder.add_file(f, &text)?;
        stamp.push((f.clone(), meta.len(), meta.modified().ok()));
    }
    Ok((builder.policy, Stamp(stamp)))
}

/// Parses a policy from text (a single file; for tests and `load`).
pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let mut b = Builder::default();
    b.add_file(path, text)?;
    Ok(b.policy)
}

/// The documents of a file: a JSON stream, else YAML (serde-saphyr with its default budgets,
/// as the manifest decoder uses it: alias bombs and deep nesting are refused).
fn documents(path: &Path, text: &str) -> Result<Vec<Value>, PolicyError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let parsed: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect();
        if let Ok(docs) = parsed {
            return Ok(docs);
        }
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| PolicyError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleObject {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
    /// Refused when set: no aggregation controller fills the rules in here.
    #[serde(default)]
    aggregation_rule: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BindingObject {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
    role_ref: RoleRef,
}

/// Collects the objects of every file, refusing duplicates.
struct Builder {
    policy: Policy,
    /// Where each object was first defined: `Kind/namespace/name` → file.
    seen: HashMap<String, PathBuf>,
}

impl Default for Builder {
    fn default() -> Self {
        let policy = Policy::bootstrap();
        let mut seen = HashMap::new();
        for name in policy.cluster_roles.keys() {
            seen.insert(format!("ClusterRole//{name}"), PathBuf::from("<built-in>"));
        }
        for b in &policy.cluster_role_bindings {
            seen.insert(
                format!("ClusterRoleBinding//{}", b.name),
                PathBuf::from("<built-in>"),
            );
        }
        Builder { policy, seen }
    }
}

/// A field error as the API server words it (`field.Error`).
fn required(field: &str, detail: &str) -> String {
    format!("{field}: Required value: {detail}")
}

fn invalid(field: &str, value: &impl std::fmt::Debug, detail: &str) -> String {
    format!("{field}: Invalid value: {value:?}: {detail}")
}

fn unsupported(field: &str, value: &str, supported: &[&str]) -> String {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "{field}: Unsupported value: {value:?}: supported values: {}",
        list.join(", ")
    )
}

/// `path.ValidatePathSegmentName` plus non-empty: what RBAC object names must be.
fn check_name(errs: &mut Vec<String>, field: &str, name: &str) {
    if name.is_empty() {
        errs.push(required(field, "name or generateName is required"));
    } else if name == "." || name == ".." || name.contains(['/', '%']) {
        errs.push(invalid(
            field,
            &name,
            "may not be '.' or '..' and may not contain '/' or '%'",
        ));
    }
}

/// `ValidatePolicyRule`.
fn check_rule(errs: &mut Vec<String>, field: &str, rule: &PolicyRule, namespaced: bool) {
    if rule.verbs.is_empty() {
        errs.push(required(
            &format!("{field}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    if !rule.non_resource_urls.is_empty() {
        if namespaced {
            errs.push(invalid(
                &format!("{field}.nonResourceURLs"),
                &rule.non_resource_urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !rule.api_groups.is_empty()
            || !rule.resources.is_empty()
            || !rule.resource_names.is_empty()
        {
            errs.push(invalid(
                &format!("{field}.nonResourceURLs"),
                &rule.non_resource_urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if rule.api_groups.is_empty() {
        errs.push(required(
            &format!("{field}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if rule.resources.is_empty() {
        errs.push(required(
            &format!("{field}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

/// `ValidateRoleBindingSubject`.
fn check_subject(errs: &mut Vec<String>, field: &str, s: &Subject, cluster: bool) {
    if s.name.is_empty() {
        errs.push(required(&format!("{field}.name"), ""));
    }
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.api_group.is_empty() {
                errs.push(unsupported(
                    &format!("{field}.apiGroup"),
                    &s.api_group,
                    &[""],
                ));
            }
            if cluster && s.namespace.is_empty() {
                errs.push(required(&format!("{field}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if s.api_group != RBAC_GROUP {
                errs.push(unsupported(
                    &format!("{field}.apiGroup"),
                    &s.api_group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(unsupported(
            &format!("{field}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

impl Builder {
    fn add_file(&mut self, path: &Path, text: &str) -> Result<(), PolicyError> {
        for (i, doc) in documents(path, text)?.into_iter().enumerate() {
            self.add_object(path, &format!("document {}", i + 1), doc)?;
        }
        Ok(())
    }

    fn add_object(&mut self, path: &Path, at: &str, doc: Value) -> Result<(), PolicyError> {
        let fail = |object: String, message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            object,
            message,
        };
        let Value::Object(obj) = &doc else {
            return Err(fail(
                at.to_string(),
                "not an object: want a Role, ClusterRole, RoleBinding, ClusterRoleBinding or List"
                    .into(),
            ));
        };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = if name.is_empty() {
            format!("{at} ({kind})")
        } else {
            format!("{at} ({kind} {name:?})")
        };
        if kind == "List" || kind.ends_with("List") && version == RBAC_API_VERSION {
            if version != "v1" && version != RBAC_API_VERSION {
                return Err(fail(
                    object,
                    unsupported("apiVersion", version, &["v1", RBAC_API_VERSION]),
                ));
            }
            let items = match obj.get("items") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(fail(object, "items: must be a list".into())),
            };
            for (j, item) in items.into_iter().enumerate() {
                self.add_object(path, &format!("{at} items[{j}]"), item)?;
            }
            return Ok(());
        }
        const KINDS: [&str; 4] = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];
        if !KINDS.contains(&kind) {
            return Err(fail(object, unsupported("kind", kind, &KINDS)));
        }
        if version != RBAC_API_VERSION {
            return Err(fail(
                object,
                unsupported("apiVersion", version, &[RBAC_API_VERSION]),
            ));
        }
        let namespaced = matches!(kind, "Role" | "RoleBinding");
        let mut errs = Vec::new();
        match kind {
            "Role" | "ClusterRole" => {
                let r: RoleObject = serde_path_to_error::deserialize(doc.clone())
                    .map_err(|e| fail(object.clone(), format!("{}: {}", e.path(), e.inner())))?;
                let ns = r.metadata.namespace.clone().unwrap_or_default();
                let name = r.metadata.name.clone().unwrap_or_default();
                check_name(&mut errs, "metadata.name", &name);
                check_namespace(&mut errs, namespaced, &ns);
                if r.aggregation_rule.is_some() {
                    errs.push(invalid(
                        "aggregationRule",
                        &"...",
                        "aggregated ClusterRoles are not supported (no aggregation controller runs here): list the rules in the ClusterRole itself",
                    ));
                }
                let rules = r.rules.unwrap_or_default();
                for (i, rule) in rules.iter().enumerate() {
                    check_rule(&mut errs, &format!("rules[{i}]"), rule, namespaced);
                }
                if !errs.is_empty() {
                    return Err(fail(object, errs.join(", ")));
                }
                let role = Role {
                    name: name.clone(),
                    rules,
                };
                self.check_duplicate(path, kind, &ns, &name)?;
                if namespaced {
                    self.policy.roles.insert((ns, name), role);
                } else {
                    self.policy.cluster_roles.insert(name, role);
                }
            }
            _ => {
                let b: BindingObject = serde_path_to_error::deserialize(doc.clone())
                    .map_err(|e| fail(object.clone(), format!("{}: {}", e.path(), e.inner())))?;
                let ns = b.metadata.namespace.clone().unwrap_or_default();
                let name = b.metadata.name.clone().unwrap_or_default();
                check_name(&mut errs, "metadata.name", &name);
                check_namespace(&mut errs, namespaced, &ns);
                if b.role_ref.api_group != RBAC_GROUP {
                    errs.push(unsupported(
                        "roleRef.apiGroup",
                        &b.role_ref.api_group,
                        &[RBAC_GROUP],
                    ));
                }
                let kinds: &[&str] = if namespaced {
                    &["Role", "ClusterRole"]
                } else {
                    &["ClusterRole"]
                };
                if !kinds.contains(&b.role_ref.kind.as_str()) {
                    errs.push(unsupported("roleRef.kind", &b.role_ref.kind, kinds));
                }
                check_name(&mut errs, "roleRef.name", &b.role_ref.name);
                let subjects = b.subjects.unwrap_or_default();
                for (i, s) in subjects.iter().enumerate() {
                    check_subject(&mut errs, &format!("subjects[{i}]"), s, !namespaced);
                }
                if !errs.is_empty() {
                    return Err(fail(object, errs.join(", ")));
                }
                self.check_duplicate(path, kind, &ns, &name)?;
                let binding = Binding {
                    name,
                    namespace: ns.clone(),
                    role_ref: b.role_ref,
                    subjects,
                };
                if namespaced {
                    self.policy.role_bindings.push(binding);
                } else {
                    self.policy.cluster_role_bindings.push(binding);
                }
            }
        }
        Ok(())
    }

    fn check_duplicate(
        &mut self,
        path: &Path,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<(), PolicyError> {
        let dup_key = format!("{kind}/{ns}/{name}");
        if let Some(first) = self.seen.get(&dup_key) {
            let object = if ns.is_empty() {
                format!("{kind} {name:?}")
            } else {
                format!("{kind} {name:?} in namespace {ns:?}")
            };
            return Err(PolicyError::Duplicate {
                path: path.to_path_buf(),
                object,
                first: first.clone(),
            });
        }
        self.seen.insert(dup_key, path.to_path_buf());
        Ok(())
    }
}

/// Roles and RoleBindings need a namespace; cluster objects must not have one.
fn check_namespace(errs: &mut Vec<String>, namespaced: bool, ns: &str) {
    if namespaced && ns.is_empty() {
        errs.push(required("metadata.namespace", ""));
    } else if !namespaced && !ns.is_empty() {
        errs.push(invalid(
            "metadata.namespace",
            &ns,
            "not allowed on this type",
        ));
    } else if namespaced {
        check_name(errs, "metadata.namespace", ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: log-reader, namespace: default, uid: "1234", labels: {a: b}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-logs, namespace: default}
subjects:
- {kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: log-reader}
---
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: node-runner}
  rules:
  - {apiGroups: [""], resources: [nodes/proxy], verbs: [create]}
  - {nonResourceURLs: ["/healthz"], verbs: [get]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: runners}
  subjects: [{kind: ServiceAccount, name: ci, namespace: build}]
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-runner}
"#;

    #[test]
    fn reads_documents_and_lists() {
        let p = parse(Path::new("p.yaml"), GOOD).unwrap();
        assert!(
            p.roles
                .contains_key(&("default".into(), "log-reader".into()))
        );
        assert!(p.cluster_roles.contains_key("node-runner"));
        assert!(
            p.cluster_roles.contains_key("system:discovery"),
            "bootstrap roles stay"
        );
        assert_eq!(p.role_bindings.len(), 1);
        assert!(p.cluster_role_bindings.iter().any(|b| b.name == "runners"));
        let json = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"x"},"rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]}"#;
        assert!(
            parse(Path::new("p.json"), json)
                .unwrap()
                .cluster_roles
                .contains_key("x")
        );
        assert!(parse(Path::new("empty.yaml"), "").is_ok());
    }

    #[test]
    fn errors_name_file_object_and_field() {
        // (text, words the message must contain)
        let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: default}\n";
        let cases: &[(String, &[&str])] = &[
            (format!("{role}rules:\n- {{apiGroups: [''], resources: [pods], verbz: [get]}}\n"),
             &["bad.yaml", "document 1 (Role \"r\")", "rules[0]", "unknown field `verbz`"]),
            (format!("{role}rules:\n- {{apiGroups: [''], resources: [pods]}}\n"),
             &["rules[0].verbs: Required value"]),
            (format!("{role}rules:\n- {{resources: [pods], verbs: [get]}}\n"),
             &["rules[0].apiGroups: Required value"]),
            (format!("{role}rules:\n- {{nonResourceURLs: [/x], verbs: [get]}}\n"),
             &["rules[0].nonResourceURLs", "namespaced rules cannot apply to non-resource URLs"]),
            (format!("{role}rules:\n- {{apiGroups: [''], resources: [pods], verbs: get}}\n"),
             &["rules[0].verbs", "invalid type"]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n".into(),
             &["metadata.namespace: Required value"]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: x}\n".into(),
             &["metadata.namespace: Invalid value"]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\naggregationRule: {}\n".into(),
             &["aggregationRule", "not supported"]),
            ("apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: ClusterRole\nmetadata: {name: r}\n".into(),
             &["apiVersion: Unsupported value: \"rbac.authorization.k8s.io/v1beta1\""]),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: r}\n".into(),
             &["kind: Unsupported value: \"Pod\""]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nsubjects: [{kind: User, name: bob}]\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: x}\n".into(),
             &["ClusterRoleBinding \"b\"", "subjects[0].apiGroup: Unsupported value: \"\""]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nsubjects: [{kind: ServiceAccount, name: sa}]\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: x}\n".into(),
             &["roleRef.kind: Unsupported value: \"Role\"", "subjects[0].namespace: Required value"]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b, namespace: d}\nsubjects: [{kind: Robot, name: r}]\n".into(),
             &["missing field `roleRef`"]),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cluster-admin}\n".into(),
             &["ClusterRole \"cluster-admin\" is defined twice", "<built-in>"]),
            (format!("{role}---\n{role}"), &["Role \"r\" in namespace \"default\" is defined twice"]),
            ("a: [".into(), &["bad.yaml"]),
            ("- 1\n".into(), &["document 1", "not an object"]),
            (format!("{role}---\n[1"), &["bad.yaml"]),
        ];
        for (text, words) in cases {
            let err = parse(Path::new("bad.yaml"), text).unwrap_err().to_string();
            for w in *words {
                assert!(err.contains(w), "{w:?} not in {err:?} for\n{text}");
            }
        }
    }

    #[test]
    fn the_documented_example_policy_loads() {
        let text = include_str!("../../../docs/examples/authorization-policy.yaml");
        let p = parse(Path::new("authorization-policy.yaml"), text).unwrap();
        assert!(
            p.roles
                .contains_key(&("default".into(), "developer".into()))
        );
        assert_eq!(p.role_bindings.len(), 1);
        assert!(
            p.cluster_role_bindings
                .iter()
                .any(|b| b.name == "node-operators")
        );
    }

    #[test]
    fn directories_and_stamps() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.txt"), "not read").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "not read: [").unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let (p, s) = load(dir.path()).unwrap();
        assert!(p.cluster_roles.contains_key("node-runner"));
        assert_eq!(s, stamp(dir.path()).unwrap());
        assert_eq!(s.0.len(), 1);
        std::fs::write(dir.path().join("c.yml"), "").unwrap();
        assert_ne!(s, stamp(dir.path()).unwrap());

        let f = dir.path().join("a.yaml");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("a.yaml")
                && err.contains("writable by others")
                && err.contains("chmod go-w"),
            "{err}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&f).is_ok());
        let err = load(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
