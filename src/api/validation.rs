//! Validation of a static pod before it runs: the checks of `ValidatePodCreate` that matter
//! for the fields minikubelet uses, the static-pod ban on API object references, and the list
//! of fields that are accepted but not implemented yet.
//!
//! Mirrors `pkg/apis/core/validation/validation.go` (`ValidatePodCreate` and the helpers it
//! calls), apimachinery `pkg/util/validation` (name formats and their messages),
//! `pkg/api/pod/util.go` (`HasAPIObjectReference`) and the kubelet's refusal
//! `static pods may not reference <resource>` (`pkg/kubelet/config/common.go`, gate
//! PreventStaticPodAPIReferences). Messages follow `field.Error`:
//! `<field>: <Type>: <value>: <detail>`.
//!
//! Deliberate differences: `image` is not required (processes run from the node's filesystem);
//! a negative `terminationGracePeriodSeconds` is refused instead of being treated as 1.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, EnvVar, HTTPGetAction, LifecycleHandler, NodeSelectorRequirement,
    Pod, PodSpec, Probe, SeccompProfile, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::pod::{container_paths, is_restartable_init_container};
use super::quantity::Quantity;
use super::resources::{CPU, EPHEMERAL_STORAGE, MEMORY};

/// A field that makes the pod invalid, with a hint on how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.containers[0].name`.
    pub field: String,
    /// What is wrong, in the API server's words (`Invalid value: "Foo": ...`).
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A field minikubelet accepts but does not implement yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// Path of the field, e.g. `spec.volumes[0].hostPath`.
    pub field: String,
    /// What that means for the pod.
    pub reason: &'static str,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The kubelet's one-line form of a list of errors: `invalid pod: [a, b]`.
pub fn format_errors(errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("invalid pod: [{}]", list.join(", "))
}

/// Validates a decoded, defaulted static pod (`ValidatePodCreate` plus the static-pod API
/// reference ban). On success returns the fields that are set but not implemented yet.
pub fn validate(pod: &Pod) -> Result<Vec<Unsupported>, Vec<FieldError>> {
    let mut v = Validator::default();
    v.pod(pod);
    if let Some(reference) = api_object_reference(pod) {
        v.errors.push(FieldError {
            field: reference.field,
            message: format!("static pods may not reference {}", reference.resource),
            hint: "static pods start without the API server: put the data in a file on the \
                   node and read it from there"
                .into(),
        });
    }
    if v.errors.is_empty() {
        Ok(unsupported_fields(pod))
    } else {
        Err(v.errors)
    }
}

// ---------------------------------------------------------------------------------------------
// API object references (`HasAPIObjectReference`).

/// The first reference to an API object found in a pod, in the kubelet's search order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiObjectReference {
    /// Where the reference is.
    pub field: String,
    /// The plural resource the kubelet names, e.g. `secrets` or
    /// `persistentvolumeclaims (via ephemeral volumes)`.
    pub resource: &'static str,
}

/// Finds the first API object the pod references (`HasAPIObjectReference`): a service
/// account, then secrets, then config maps, resource claims, and API-backed volumes.
pub fn api_object_reference(pod: &Pod) -> Option<ApiObjectReference> {
    let spec = pod.spec.as_ref()?;
    let found = |field: String, resource| Some(ApiObjectReference { field, resource });
    // v1 `serviceAccount` is the deprecated alias of `serviceAccountName`.
    if nonempty(&spec.service_account_name) {
        return found("spec.serviceAccountName".into(), "serviceaccounts");
    }
    if nonempty(&spec.service_account) {
        return found("spec.serviceAccount".into(), "serviceaccounts");
    }
    if let Some(field) = first_secret_reference(spec) {
        return found(field, "secrets");
    }
    if let Some(field) = first_config_map_reference(spec) {
        return found(field, "configmaps");
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return found("spec.resourceClaims".into(), "resourceclaims");
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let path = |source: &str| format!("spec.volumes[{i}].{source}");
        if v.config_map.is_some() {
            return found(path("configMap"), "configmaps (via configmap volumes)");
        }
        if v.secret.is_some() {
            return found(path("secret"), "secrets (via secret volumes)");
        }
        if v.csi.is_some() {
            return found(path("csi"), "csidrivers (via CSI volumes)");
        }
        if v.glusterfs.is_some() {
            return found(path("glusterfs"), "endpoints (via glusterFS volumes)");
        }
        if v.persistent_volume_claim.is_some() {
            return found(path("persistentVolumeClaim"), "persistentvolumeclaims");
        }
        if v.ephemeral.is_some() {
            return found(
                path("ephemeral"),
                "persistentvolumeclaims (via ephemeral volumes)",
            );
        }
        if v.azure_file.is_some() {
            return found(path("azureFile"), "secrets (via azureFile volumes)");
        }
        for (j, s) in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .enumerate()
        {
            let source = |name: &str| format!("spec.volumes[{i}].projected.sources[{j}].{name}");
            if s.config_map.is_some() {
                return found(source("configMap"), "configmaps (via projected volumes)");
            }
            if s.secret.is_some() {
                return found(source("secret"), "secrets (via projected volumes)");
            }
            if s.service_account_token.is_some() {
                return found(
                    source("serviceAccountToken"),
                    "serviceaccounts (via projected volumes)",
                );
            }
            if s.cluster_trust_bundle.is_some() {
                return found(source("clusterTrustBundle"), "clustertrustbundles");
            }
            if s.pod_certificate.is_some() {
                return found(source("podCertificate"), "podcertificates");
            }
        }
    }
    None
}

/// `VisitPodSecretNames` (names that are empty are skipped).
fn first_secret_reference(spec: &PodSpec) -> Option<String> {
    for (i, r) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if !r.name.is_empty() {
            return Some(format!("spec.imagePullSecrets[{i}]"));
        }
    }
    let mut containers = container_paths(spec);
    let ephemeral = spec.ephemeral_containers.iter().flatten().enumerate();
    let mut ephemeral_refs = Vec::new();
    for (i, e) in ephemeral {
        let path = format!("spec.ephemeralContainers[{i}]");
        for (j, env) in e.env_from.iter().flatten().enumerate() {
            if env.secret_ref.as_ref().is_some_and(|r| !r.name.is_empty()) {
                ephemeral_refs.push(format!("{path}.envFrom[{j}].secretRef"));
            }
        }
        for (j, env) in e.env.iter().flatten().enumerate() {
            if secret_key_name(env).is_some_and(|n| !n.is_empty()) {
                ephemeral_refs.push(format!("{path}.env[{j}].valueFrom.secretKeyRef"));
            }
        }
    }
    for (path, c) in containers.drain(..) {
        for (j, env) in c.env_from.iter().flatten().enumerate() {
            if env.secret_ref.as_ref().is_some_and(|r| !r.name.is_empty()) {
                return Some(format!("{path}.envFrom[{j}].secretRef"));
            }
        }
        for (j, env) in c.env.iter().flatten().enumerate() {
            if secret_key_name(env).is_some_and(|n| !n.is_empty()) {
                return Some(format!("{path}.env[{j}].valueFrom.secretKeyRef"));
            }
        }
    }
    if let Some(first) = ephemeral_refs.into_iter().next() {
        return Some(first);
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let p = |s: &str| Some(format!("spec.volumes[{i}].{s}"));
        let named = |r: Option<&str>| r.is_some_and(|n| !n.is_empty());
        // The first volume source that is set decides, as in the Go switch.
        if let Some(s) = &v.azure_file {
            if named(Some(&s.secret_name)) {
                return p("azureFile.secretName");
            }
        } else if let Some(s) = &v.cephfs {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("cephfs.secretRef");
            }
        } else if let Some(s) = &v.cinder {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("cinder.secretRef");
            }
        } else if let Some(s) = &v.flex_volume {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("flexVolume.secretRef");
            }
        } else if let Some(s) = &v.projected {
            for (j, source) in s.sources.iter().flatten().enumerate() {
                if named(source.secret.as_ref().map(|r| r.name.as_str())) {
                    return p(&format!("projected.sources[{j}].secret"));
                }
            }
        } else if let Some(s) = &v.rbd {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("rbd.secretRef");
            }
        } else if let Some(s) = &v.secret {
            if named(s.secret_name.as_deref()) {
                return p("secret");
            }
        } else if let Some(s) = &v.scale_io {
            if named(Some(&s.secret_ref.name)) {
                return p("scaleIO.secretRef");
            }
        } else if let Some(s) = &v.iscsi {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("iscsi.secretRef");
            }
        } else if let Some(s) = &v.storageos {
            if named(s.secret_ref.as_ref().map(|r| r.name.as_str())) {
                return p("storageos.secretRef");
            }
        } else if let Some(s) = &v.csi
            && named(s.node_publish_secret_ref.as_ref().map(|r| r.name.as_str()))
        {
            return p("csi.nodePublishSecretRef");
        }
    }
    None
}

fn secret_key_name(env: &EnvVar) -> Option<&str> {
    let r = env.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some(&r.name)
}

fn config_map_key_name(env: &EnvVar) -> Option<&str> {
    let r = env.value_from.as_ref()?.config_map_key_ref.as_ref()?;
    Some(&r.name)
}

/// `VisitPodConfigmapNames` (names that are empty are skipped).
fn first_config_map_reference(spec: &PodSpec) -> Option<String> {
    let mut found = None;
    for (path, c) in container_paths(spec) {
        for (j, env) in c.env_from.iter().flatten().enumerate() {
            if env
                .config_map_ref
                .as_ref()
                .is_some_and(|r| !r.name.is_empty())
            {
                found.get_or_insert(format!("{path}.envFrom[{j}].configMapRef"));
            }
        }
        for (j, env) in c.env.iter().flatten().enumerate() {
            if config_map_key_name(env).is_some_and(|n| !n.is_empty()) {
                found.get_or_insert(format!("{path}.env[{j}].valueFrom.configMapKeyRef"));
            }
        }
    }
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        for (j, env) in e.env_from.iter().flatten().enumerate() {
            if env
                .config_map_ref
                .as_ref()
                .is_some_and(|r| !r.name.is_empty())
            {
                found.get_or_insert(format!("{path}.envFrom[{j}].configMapRef"));
            }
        }
        for (j, env) in e.env.iter().flatten().enumerate() {
            if config_map_key_name(env).is_some_and(|n| !n.is_empty()) {
                found.get_or_insert(format!("{path}.env[{j}].valueFrom.configMapKeyRef"));
            }
        }
    }
    if found.is_some() {
        return found;
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(p) = &v.projected {
            for (j, s) in p.sources.iter().flatten().enumerate() {
                if s.config_map.as_ref().is_some_and(|c| !c.name.is_empty()) {
                    return Some(format!(
                        "spec.volumes[{i}].projected.sources[{j}].configMap"
                    ));
                }
            }
        } else if v.config_map.as_ref().is_some_and(|c| !c.name.is_empty()) {
            return Some(format!("spec.volumes[{i}].configMap"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Field validation (`ValidatePodCreate`).

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const URI_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
/// `fieldRef.fieldPath` values an environment variable may use (`validEnvDownwardAPIFieldPathExpressions`).
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// `resourceFieldRef.resource` values (`validContainerResourceFieldPathExpressions`).
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];
const MEMORY_DIVISORS: &[&str] = &[
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];
/// The longest file name (one path component) of ext4, xfs, btrfs and tmpfs (`NAME_MAX`).
const MAX_PATH_COMPONENT: usize = 255;

/// The longest `metadata.uid` accepted: a UUID has 36 characters and minikubelet's static pod
/// hash 32; the bound leaves room for other generated forms while keeping every path built
/// from the UID (`pod<uid>` cgroups, `<root-dir>/pods/<uid>`, log directories) short.
const MAX_UID_LEN: usize = 64;

/// A `metadata.uid` the agent may put in paths: 1 to [`MAX_UID_LEN`] lowercase letters,
/// digits and '-', starting and ending with a letter or digit (a UUID, or the kubelet's hash
/// form). Anything else (`..`, `/`, an absolute path) could lead outside `--root-dir`.
pub fn pod_uid(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > MAX_UID_LEN {
        errs.push(max_len(MAX_UID_LEN));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = s.chars().all(|c| alnum(c) || c == '-') && s.starts_with(alnum) && s.ends_with(alnum);
    if !ok {
        errs.push(
            "a pod UID must consist of lowercase letters, digits and '-', and start and end with a letter or digit (regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'), since it names directories and cgroups; remove metadata.uid (one is derived from the file) or use a lowercase UUID".into(),
        );
    }
    errs
}

/// Total size of all annotation keys and values (`TotalAnnotationSizeLimitB`, 256 KiB).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 << 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn push(&mut self, field: impl Into<String>, message: String, hint: &str) {
        self.errors.push(FieldError {
            field: field.into(),
            message,
            hint: hint.to_string(),
        });
    }

    fn required(&mut self, field: impl Into<String>, detail: &str, hint: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push(field, message, hint);
    }

    fn invalid(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Debug,
        detail: &str,
        hint: &str,
    ) {
        self.push(field, format!("Invalid value: {value:?}: {detail}"), hint);
    }

    fn not_supported(&mut self, field: impl Into<String>, value: &str, valid: &[&str], hint: &str) {
        let valid: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
        self.push(
            field,
            format!(
                "Unsupported value: {value:?}: supported values: {}",
                valid.join(", ")
            ),
            hint,
        );
    }

    fn forbidden(&mut self, field: impl Into<String>, detail: &str, hint: &str) {
        self.push(field, format!("Forbidden: {detail}"), hint);
    }

    fn duplicate(&mut self, field: impl Into<String>, value: impl fmt::Debug, hint: &str) {
        self.push(field, format!("Duplicate value: {value:?}"), hint);
    }

    fn not_found(&mut self, field: impl Into<String>, value: impl fmt::Debug, hint: &str) {
        self.push(field, format!("Not found: {value:?}"), hint);
    }

    /// `validateSeccompProfileField` and `validateAppArmorProfileField`: each a `(type,
    /// localhostProfile)` of `at`'s security context. A seccomp `localhostProfile` is a path
    /// under the node's profile root, so it must be relative and without `..`.
    fn profiles(
        &mut self,
        at: &str,
        seccomp: Option<&SeccompProfile>,
        app_armor: Option<&AppArmorProfile>,
    ) {
        let types = ["Localhost", "RuntimeDefault", "Unconfined"];
        for (field, what, profile) in [
            (
                "seccompProfile",
                "seccomp",
                seccomp.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            ),
            (
                "appArmorProfile",
                "AppArmor",
                app_armor.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())),
            ),
        ] {
            let Some((kind, local)) = profile else {
                continue;
            };
            let f = format!("{at}.{field}");
            match kind {
                "" => self.required(
                    format!("{f}.type"),
                    &format!("type is required when {field} is set"),
                    "set type to RuntimeDefault, Localhost or Unconfined",
                ),
                k if !types.contains(&k) => self.not_supported(
                    format!("{f}.type"),
                    k,
                    &types,
                    "set type to RuntimeDefault, Localhost or Unconfined",
                ),
                _ => {}
            }
            match (kind, local) {
                ("Localhost", None) | ("Localhost", Some("")) => self.required(
                    format!("{f}.localhostProfile"),
                    &format!("must be set when {what} type is Localhost"),
                    "name the profile, e.g. profiles/audit.json",
                ),
                ("Localhost", Some(p)) if what == "seccomp" => {
                    if p.starts_with('/') {
                        self.invalid(
                            format!("{f}.localhostProfile"),
                            p,
                            "must be a relative path",
                            "name the profile relative to <root-dir>/seccomp, e.g. profiles/audit.json",
                        );
                    }
                    if p.split('/').any(|c| c == "..") {
                        self.invalid(
                            format!("{f}.localhostProfile"),
                            p,
                            "must not contain '..'",
                            "name the profile relative to <root-dir>/seccomp, without '..'",
                        );
                    }
                }
                ("Localhost", Some(_)) | (_, None) => {}
                (_, Some(_)) => self.invalid(
                    format!("{f}.localhostProfile"),
                    local.unwrap_or_default(),
                    &format!("can only be set when {what} type is Localhost"),
                    "remove localhostProfile or set type to Localhost",
                ),
            }
        }
    }

    /// Reports every message of a format check against one value.
    fn each(&mut self, field: &str, value: &str, msgs: Vec<String>, hint: &str) {
        for m in msgs {
            self.invalid(field, value, &m, hint);
        }
    }

    fn pod(&mut self, pod: &Pod) {
        self.metadata(pod);
        let Some(spec) = pod.spec.as_ref() else {
            self.required("spec", "", "add a spec with at least one container");
            return;
        };
        self.spec(spec);
    }

    fn metadata(&mut self, pod: &Pod) {
        let meta = &pod.metadata;
        match meta.name.as_deref() {
            None | Some("") => self.required(
                "metadata.name",
                "name is needed for the pod",
                "set metadata.name, e.g. `name: web`",
            ),
            Some(name) => self.each(
                "metadata.name",
                name,
                dns1123_subdomain(name),
                "use lowercase letters, digits, '-' and '.'; the node name is appended to it",
            ),
        }
        if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
            self.each(
                "metadata.namespace",
                ns,
                dns1123_label(ns),
                "use a namespace like `default` or `kube-system`",
            );
        }
        let uid_ok = match meta.uid.as_deref() {
            Some(uid) => {
                let msgs = pod_uid(uid);
                let ok = msgs.is_empty();
                self.each(
                    "metadata.uid",
                    uid,
                    msgs,
                    "remove metadata.uid (minikubelet derives one from the file), or use a lowercase UUID such as `3b5e6c1e-0d7a-4a0e-9a55-2f1c4c7c9d10`",
                );
                ok
            }
            None => true,
        };
        // The pod log directory `<namespace>_<name>_<uid>` is one path component: a name that
        // makes it longer than a file name may be would fail at start with ENAMETOOLONG.
        if let (Some(name), true) = (meta.name.as_deref().filter(|n| !n.is_empty()), uid_ok) {
            let ns = meta
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            let uid = meta.uid.as_deref().unwrap_or_default();
            let len = ns.len() + name.len() + uid.len() + 2;
            if len > MAX_PATH_COMPONENT {
                let max = MAX_PATH_COMPONENT.saturating_sub(ns.len() + uid.len() + 2);
                self.push(
                    "metadata.name",
                    format!(
                        "Too long: the pod log directory name `<namespace>_<name>_<uid>` would be {len} bytes, over the {MAX_PATH_COMPONENT} a file name may have; this name (the node name included) may have at most {max} bytes: shorten metadata.name (the node name is appended to it as `-<node>`)"
                    ),
                    "shorten metadata.name (the node name is appended to it as `-<node>`)",
                );
            }
        }
        for (k, v) in meta.labels.iter().flatten() {
            self.each(
                "metadata.labels",
                k,
                qualified_name(k),
                "label keys look like `app` or `example.com/tier`",
            );
            self.each(
                &format!("metadata.labels[{k}]"),
                v,
                label_value(v),
                "label values are at most 63 letters, digits, '-', '_' or '.'",
            );
        }
        let mut size = 0;
        for (k, v) in meta.annotations.iter().flatten() {
            self.each(
                "metadata.annotations",
                k,
                qualified_name(&k.to_lowercase()),
                "annotation keys look like `note` or `example.com/note`",
            );
            size += k.len() + v.len();
        }
        if size > TOTAL_ANNOTATION_SIZE_LIMIT {
            self.push(
                "metadata.annotations",
                format!("Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
                "move large data into a file on the node",
            );
        }
    }

    fn spec(&mut self, spec: &PodSpec) {
        let volumes = self.volumes(spec.volumes.as_deref().unwrap_or_default());
        if spec.containers.is_empty() {
            self.required(
                "spec.containers",
                "",
                "a pod needs at least one container in spec.containers",
            );
        }
        let grace = spec.termination_grace_period_seconds;
        let host_network = spec.host_network == Some(true);
        let mut names = HashSet::new();
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            let path = format!("spec.initContainers[{i}]");
            self.container(&path, c, &volumes, &mut names, grace, host_network);
            let sidecar = is_restartable_init_container(c);
            match c.restart_policy.as_deref() {
                None | Some("Always") => {}
                Some(other) => self.not_supported(
                    format!("{path}.restartPolicy"),
                    other,
                    &["Always"],
                    "only `restartPolicy: Always` (a sidecar) may be set on an init container",
                ),
            }
            if !sidecar {
                let set = [
                    ("lifecycle", c.lifecycle.is_some()),
                    ("livenessProbe", c.liveness_probe.is_some()),
                    ("readinessProbe", c.readiness_probe.is_some()),
                    ("startupProbe", c.startup_probe.is_some()),
                ];
                for (field, is_set) in set {
                    if is_set {
                        self.forbidden(
                            format!("{path}.{field}"),
                            "may not be set for init containers without restartPolicy=Always",
                            "remove it, or make the init container a sidecar with `restartPolicy: Always`",
                        );
                    }
                }
            }
        }
        for (i, c) in spec.containers.iter().enumerate() {
            let path = format!("spec.containers[{i}]");
            self.container(&path, c, &volumes, &mut names, grace, host_network);
            if c.restart_policy.is_some() {
                self.forbidden(
                    format!("{path}.restartPolicy"),
                    "may not be set for non-init containers",
                    "set the pod's spec.restartPolicy instead",
                );
            }
        }
        self.host_port_conflicts(spec);

        match spec.restart_policy.as_deref() {
            None | Some("") => self.required(
                "spec.restartPolicy",
                "",
                "set spec.restartPolicy to Always, OnFailure or Never",
            ),
            Some(p) if !RESTART_POLICIES.contains(&p) => self.not_supported(
                "spec.restartPolicy",
                p,
                RESTART_POLICIES,
                "restartPolicy is Always, OnFailure or Never (capitalized)",
            ),
            Some(_) => {}
        }
        if let Some(p) = spec.dns_policy.as_deref().filter(|p| !p.is_empty()) {
            if !DNS_POLICIES.contains(&p) {
                self.not_supported("spec.dnsPolicy", p, DNS_POLICIES, "remove spec.dnsPolicy");
            } else if p == "None" && spec.dns_config.is_none() {
                self.required(
                    "spec.dnsConfig",
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                    "add spec.dnsConfig or remove `dnsPolicy: None`",
                );
            }
        }
        if let Some(g) = grace
            && g < 0
        {
            self.invalid(
                "spec.terminationGracePeriodSeconds",
                g,
                "must be greater than or equal to 0",
                "use a number of seconds, e.g. 30",
            );
        }
        if let Some(d) = spec.active_deadline_seconds
            && !(1..=i64::from(i32::MAX)).contains(&d)
        {
            self.invalid(
                "spec.activeDeadlineSeconds",
                d,
                "must be between 1 and 2147483647, inclusive",
                "use a positive number of seconds",
            );
        }
        if let Some(sc) = spec.security_context.as_ref() {
            self.profiles(
                "spec.securityContext",
                sc.seccomp_profile.as_ref(),
                sc.app_armor_profile.as_ref(),
            );
            self.id("spec.securityContext.runAsUser", sc.run_as_user, "user");
            self.id("spec.securityContext.runAsGroup", sc.run_as_group, "group");
            self.id("spec.securityContext.fsGroup", sc.fs_group, "group");
            if let Some(p) = sc.supplemental_groups_policy.as_deref()
                && !["Merge", "Strict"].contains(&p)
            {
                self.not_supported(
                    "spec.securityContext.supplementalGroupsPolicy",
                    p,
                    &["Merge", "Strict"],
                    "use Merge (the default) or Strict",
                );
            }
            // `validateSysctls`: a valid name (`IsValidSysctlName`), each once.
            let mut sysctl_names = HashSet::new();
            for (i, s) in sc.sysctls.iter().flatten().enumerate() {
                let field = format!("spec.securityContext.sysctls[{i}].name");
                if s.name.is_empty() {
                    self.required(field, "", "name the sysctl, e.g. kernel.shm_rmid_forced");
                } else if !is_valid_sysctl_name(&s.name) {
                    self.invalid(
                        field,
                        &s.name,
                        "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                        "write the sysctl's name with dots or slashes, e.g. kernel.shm_rmid_forced",
                    );
                } else if !sysctl_names.insert(s.name.as_str()) {
                    self.duplicate(field, &s.name, "set each sysctl once");
                }
            }
            for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
                self.id(
                    &format!("spec.securityContext.supplementalGroups[{i}]"),
                    Some(*g),
                    "group",
                );
            }
        }
        for (k, v) in spec.node_selector.iter().flatten() {
            self.each(
                "spec.nodeSelector",
                k,
                qualified_name(k),
                "node selector keys are label keys, like `kubernetes.io/hostname`",
            );
            self.each(
                &format!("spec.nodeSelector[{k}]"),
                v,
                label_value(v),
                "node selector values are label values",
            );
        }
        if let Some(required) = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
        {
            let path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution";
            if required.node_selector_terms.is_empty() {
                self.required(
                    format!("{path}.nodeSelectorTerms"),
                    "must have at least one node selector term",
                    "add a term with matchExpressions, or remove the node affinity",
                );
            }
            for (j, term) in required.node_selector_terms.iter().enumerate() {
                let term_path = format!("{path}.nodeSelectorTerms[{j}]");
                for (k, r) in term.match_expressions.iter().flatten().enumerate() {
                    self.selector_requirement(&format!("{term_path}.matchExpressions[{k}]"), r);
                }
                for (k, r) in term.match_fields.iter().flatten().enumerate() {
                    self.field_selector_requirement(&format!("{term_path}.matchFields[{k}]"), r);
                }
            }
        }
        for (i, t) in spec.tolerations.iter().flatten().enumerate() {
            self.toleration(&format!("spec.tolerations[{i}]"), t);
        }
    }

    fn id(&mut self, field: &str, id: Option<i64>, what: &str) {
        if let Some(id) = id
            && !(0..=i64::from(i32::MAX)).contains(&id)
        {
            self.invalid(
                field,
                id,
                "must be between 0 and 2147483647, inclusive",
                &format!("use a numeric {what} ID from 0 to 2147483647"),
            );
        }
    }

    /// Checks the volumes and returns their names.
    fn volumes(&mut self, volumes: &[Volume]) -> HashSet<String> {
        let mut names = HashSet::new();
        for (i, v) in volumes.iter().enumerate() {
            let path = format!("spec.volumes[{i}]");
            if v.name.is_empty() {
                self.required(format!("{path}.name"), "", "give the volume a name");
            } else {
                self.each(
                    &format!("{path}.name"),
                    &v.name,
                    dns1123_label(&v.name),
                    "volume names are lowercase letters, digits and '-'",
                );
                if !names.insert(v.name.clone()) {
                    self.duplicate(
                        format!("{path}.name"),
                        &v.name,
                        "give each volume its own name",
                    );
                }
            }
            let sources: Vec<String> = match serde_json::to_value(v) {
                Ok(Value::Object(map)) => map.keys().filter(|k| *k != "name").cloned().collect(),
                _ => Vec::new(),
            };
            match sources.as_slice() {
                [] => self.required(
                    path.clone(),
                    "must specify a volume type",
                    "add a volume source such as `emptyDir: {}`",
                ),
                [_] => {}
                [_, second, ..] => self.forbidden(
                    format!("{path}.{second}"),
                    "may not specify more than 1 volume type",
                    "keep one volume source per volume",
                ),
            }
            if let Some(h) = v.host_path.as_ref() {
                // `validateHostPathVolumeSource`, `validatePathNoBacksteps`, the type enum.
                if h.path.is_empty() {
                    self.required(
                        format!("{path}.hostPath.path"),
                        "",
                        "give the node path to mount",
                    );
                } else if Path::new(&h.path)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                {
                    self.invalid(
                        format!("{path}.hostPath.path"),
                        &h.path,
                        "must not contain '..'",
                        "write the path without '..'",
                    );
                }
                if let Some(t) = h.type_.as_deref()
                    && !HOST_PATH_TYPES.contains(&t)
                {
                    self.not_supported(
                        format!("{path}.hostPath.type"),
                        t,
                        HOST_PATH_TYPES,
                        "leave type empty or use one of the listed types",
                    );
                }
            }
            // `validateDownwardAPIVolumeSource` / `validateProjectedVolumeSource`: the items'
            // paths, one source each, modes.
            let mut items: Vec<(String, &k8s_openapi::api::core::v1::DownwardAPIVolumeFile)> =
                Vec::new();
            if let Some(d) = v.downward_api.as_ref() {
                self.file_mode(&format!("{path}.downwardAPI.defaultMode"), d.default_mode);
                for (j, it) in d.items.iter().flatten().enumerate() {
                    items.push((format!("{path}.downwardAPI.items[{j}]"), it));
                }
            }
            if let Some(p) = v.projected.as_ref() {
                self.file_mode(&format!("{path}.projected.defaultMode"), p.default_mode);
                for (k, src) in p.sources.iter().flatten().enumerate() {
                    for (j, it) in src
                        .downward_api
                        .iter()
                        .flat_map(|d| d.items.iter().flatten())
                        .enumerate()
                    {
                        items.push((
                            format!("{path}.projected.sources[{k}].downwardAPI.items[{j}]"),
                            it,
                        ));
                    }
                }
            }
            for (ip, it) in items {
                let p = Path::new(&it.path);
                if it.path.is_empty() {
                    self.required(format!("{ip}.path"), "", "name the file");
                } else if p.is_absolute() {
                    self.invalid(
                        format!("{ip}.path"),
                        &it.path,
                        "must be a relative path",
                        "write the file's name without a leading '/'",
                    );
                } else if it.path.starts_with("..")
                    || p.components().any(|c| c == std::path::Component::ParentDir)
                {
                    self.invalid(
                        format!("{ip}.path"),
                        &it.path,
                        "must not contain '..'",
                        "write the file's name without '..'",
                    );
                }
                if it.field_ref.is_some() == it.resource_field_ref.is_some() {
                    self.required(
                        ip.clone(),
                        "one of fieldRef and resourceFieldRef",
                        "give each item exactly one source",
                    );
                }
                self.file_mode(&format!("{ip}.mode"), it.mode);
            }
            if let Some(e) = v.empty_dir.as_ref() {
                let medium = e.medium.as_deref().unwrap_or("");
                if !matches!(medium, "" | "Memory" | "HugePages")
                    && !medium.starts_with("HugePages-")
                {
                    self.not_supported(
                        format!("{path}.emptyDir.medium"),
                        medium,
                        &["", "Memory", "HugePages"],
                        "leave medium empty for a directory on the node's disk",
                    );
                }
                if let Some(limit) = e.size_limit.as_ref() {
                    self.quantity(&format!("{path}.emptyDir.sizeLimit"), limit);
                }
            }
        }
        names
    }

    /// A file mode, 0 to 0777 (the API's `validateFileMode` check).
    fn file_mode(&mut self, field: &str, mode: Option<i32>) {
        if let Some(m) = mode
            && !(0..=0o777).contains(&m)
        {
            self.invalid(
                field,
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
                "write the mode in decimal, e.g. 420 for 0644",
            );
        }
    }

    /// Parses a quantity and requires it to be non-negative; returns it if valid.
    fn quantity(
        &mut self,
        field: &str,
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Option<Quantity> {
        match Quantity::from_api(q) {
            Err(e) => {
                self.invalid(
                    field,
                    &q.0,
                    &e.to_string(),
                    "write it like 500m, 2 or 128Mi",
                );
                None
            }
            Ok(v) if v.sign().is_lt() => {
                self.invalid(
                    field,
                    &q.0,
                    "must be greater than or equal to 0",
                    "use a positive amount",
                );
                None
            }
            Ok(v) => Some(v),
        }
    }

    fn container(
        &mut self,
        path: &str,
        c: &Container,
        volumes: &HashSet<String>,
        names: &mut HashSet<String>,
        grace: Option<i64>,
        host_network: bool,
    ) {
        if c.name.is_empty() {
            self.required(format!("{path}.name"), "", "give the container a name");
        } else {
            self.each(
                &format!("{path}.name"),
                &c.name,
                dns1123_label(&c.name),
                "container names are lowercase letters, digits and '-', like `web`",
            );
            if !names.insert(c.name.clone()) {
                self.duplicate(
                    format!("{path}.name"),
                    &c.name,
                    "container names must be unique across initContainers and containers",
                );
            }
        }
        // `validateContainers` and `validateContainersOnlyForPod`: a pod's containers name
        // their image (the annotation minikubelet.io/host-filesystem keeps it required too).
        match c.image.as_deref() {
            None | Some("") => self.required(
                format!("{path}.image"),
                "",
                "name the container's image, e.g. `image: busybox:1.36`",
            ),
            Some(image) if image.trim() != image => self.invalid(
                format!("{path}.image"),
                image,
                "must not have leading or trailing whitespace",
                "remove the spaces around the image name",
            ),
            Some(_) => {}
        }
        if let Some(p) = c.image_pull_policy.as_deref()
            && !PULL_POLICIES.contains(&p)
        {
            self.not_supported(
                format!("{path}.imagePullPolicy"),
                p,
                PULL_POLICIES,
                "use Always, IfNotPresent or Never",
            );
        }
        if let Some(p) = c.termination_message_policy.as_deref()
            && !TERMINATION_MESSAGE_POLICIES.contains(&p)
        {
            self.not_supported(
                format!("{path}.terminationMessagePolicy"),
                p,
                TERMINATION_MESSAGE_POLICIES,
                "use File or FallbackToLogsOnError",
            );
        }
        let mut port_names = HashSet::new();
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let pp = format!("{path}.ports[{j}]");
            if let Some(m) = port_number(p.container_port) {
                self.invalid(
                    format!("{pp}.containerPort"),
                    p.container_port,
                    &m,
                    "use a port from 1 to 65535",
                );
            }
            if let Some(h) = p.host_port.filter(|h| *h != 0) {
                if let Some(m) = port_number(h) {
                    self.invalid(
                        format!("{pp}.hostPort"),
                        h,
                        &m,
                        "use a port from 1 to 65535, or 0 for none",
                    );
                } else if host_network && h != p.container_port {
                    self.invalid(
                        format!("{pp}.hostPort"),
                        h,
                        "must match `containerPort` when `hostNetwork` is true",
                        "with host networking the host port is the container port",
                    );
                }
            }
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                self.each(
                    &format!("{pp}.name"),
                    name,
                    iana_svc_name(name),
                    "port names are up to 15 lowercase letters, digits and '-', like `http`",
                );
                if !port_names.insert(name) {
                    self.duplicate(format!("{pp}.name"), name, "give each port its own name");
                }
            }
            match p.protocol.as_deref() {
                None | Some("") => self.required(
                    format!("{pp}.protocol"),
                    "",
                    "set protocol to TCP, UDP or SCTP",
                ),
                Some(proto) if !PROTOCOLS.contains(&proto) => self.not_supported(
                    format!("{pp}.protocol"),
                    proto,
                    PROTOCOLS,
                    "protocols are upper case: TCP, UDP or SCTP",
                ),
                Some(_) => {}
            }
            if let Some(ip) = p.host_ip.as_deref().filter(|i| !i.is_empty())
                && ip.parse::<std::net::IpAddr>().is_err()
            {
                self.invalid(
                    format!("{pp}.hostIP"),
                    ip,
                    "must be a valid IP address",
                    "use an address like 127.0.0.1",
                );
            }
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            self.env(&format!("{path}.env[{j}]"), e);
        }
        self.resources(path, c);
        let mut mount_paths = HashSet::new();
        for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
            let mp = format!("{path}.volumeMounts[{j}]");
            if m.name.is_empty() {
                self.required(format!("{mp}.name"), "", "name the volume to mount");
            } else if !volumes.contains(&m.name) {
                self.not_found(
                    format!("{mp}.name"),
                    &m.name,
                    "declare the volume in spec.volumes",
                );
            }
            if m.mount_path.is_empty() {
                self.required(
                    format!("{mp}.mountPath"),
                    "",
                    "say where to mount the volume",
                );
            } else if !mount_paths.insert(m.mount_path.as_str()) {
                self.invalid(
                    format!("{mp}.mountPath"),
                    &m.mount_path,
                    "must be unique",
                    "mount each path once",
                );
            }
            // `validateLocalDescendingPath` for subPath and subPathExpr; the two exclude each
            // other.
            let sub = m.sub_path.as_deref().filter(|v| !v.is_empty());
            let expr = m.sub_path_expr.as_deref().filter(|v| !v.is_empty());
            if sub.is_some() && expr.is_some() {
                self.invalid(
                    format!("{mp}.subPathExpr"),
                    expr.unwrap_or_default(),
                    "subPathExpr and subPath are mutually exclusive",
                    "keep one of the two",
                );
            }
            for (field, value) in [("subPath", sub), ("subPathExpr", expr)] {
                let Some(v) = value else { continue };
                if Path::new(v).is_absolute() {
                    self.invalid(
                        format!("{mp}.{field}"),
                        v,
                        "must be a relative path",
                        "write the path inside the volume without a leading '/'",
                    );
                } else if Path::new(v)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                {
                    self.invalid(
                        format!("{mp}.{field}"),
                        v,
                        "must not contain '..'",
                        "write the path inside the volume without '..'",
                    );
                }
            }
            // `validateMountPropagation`.
            match m.mount_propagation.as_deref() {
                None | Some("None") | Some("HostToContainer") => {}
                Some("Bidirectional") => {
                    let privileged = c
                        .security_context
                        .as_ref()
                        .and_then(|s| s.privileged)
                        .unwrap_or(false);
                    if !privileged {
                        self.forbidden(
                            format!("{mp}.mountPropagation"),
                            "Bidirectional mount propagation is available only to privileged containers",
                            "make the container privileged or use HostToContainer",
                        );
                    }
                }
                Some(other) => self.not_supported(
                    format!("{mp}.mountPropagation"),
                    other,
                    &["Bidirectional", "HostToContainer", "None"],
                    "use None, HostToContainer or Bidirectional",
                ),
            }
        }
        if let Some(sc) = c.security_context.as_ref() {
            self.profiles(
                &format!("{path}.securityContext"),
                sc.seccomp_profile.as_ref(),
                sc.app_armor_profile.as_ref(),
            );
            self.id(
                &format!("{path}.securityContext.runAsUser"),
                sc.run_as_user,
                "user",
            );
            self.id(
                &format!("{path}.securityContext.runAsGroup"),
                sc.run_as_group,
                "group",
            );
            // `ValidateSecurityContext`: no_new_privs cannot hold beside what grants privileges.
            if sc.allow_privilege_escalation == Some(false) {
                let ape = format!("{path}.securityContext");
                if sc.privileged == Some(true) {
                    self.invalid(
                        ape.clone(),
                        format_args!("core.SecurityContext{{...}}"),
                        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                        "drop one of the two",
                    );
                }
                let adds = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
                if adds.is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN")) {
                    self.invalid(
                        ape,
                        format_args!("core.SecurityContext{{...}}"),
                        "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                        "drop one of the two",
                    );
                }
            }
        }
        let probes = [
            (
                "livenessProbe",
                c.liveness_probe.as_ref(),
                ProbeKind::Liveness,
            ),
            (
                "readinessProbe",
                c.readiness_probe.as_ref(),
                ProbeKind::Readiness,
            ),
            ("startupProbe", c.startup_probe.as_ref(), ProbeKind::Startup),
        ];
        for (field, probe, kind) in probes {
            if let Some(probe) = probe {
                self.probe(&format!("{path}.{field}"), probe, kind);
            }
        }
        if let Some(l) = c.lifecycle.as_ref() {
            for (field, handler) in [
                ("postStart", l.post_start.as_ref()),
                ("preStop", l.pre_stop.as_ref()),
            ] {
                if let Some(h) = handler {
                    self.lifecycle_handler(&format!("{path}.lifecycle.{field}"), h, grace);
                }
            }
        }
    }

    fn env(&mut self, path: &str, e: &EnvVar) {
        if e.name.is_empty() {
            self.required(format!("{path}.name"), "", "name the environment variable");
        } else if !e.name.bytes().all(|b| (32..=126).contains(&b) && b != b'=') {
            self.invalid(
                format!("{path}.name"),
                &e.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
                "use a name like MY_VAR",
            );
        }
        let Some(from) = e.value_from.as_ref() else {
            return;
        };
        let vp = format!("{path}.valueFrom");
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            self.invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
                "keep either value or valueFrom",
            );
        }
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.file_key_ref.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => self.invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                "add fieldRef or resourceFieldRef",
            ),
            1 => {}
            _ => self.invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
                "keep one source per variable",
            ),
        }
        if let Some(f) = from.field_ref.as_ref() {
            let fp = format!("{vp}.fieldRef");
            if let Some(v) = f.api_version.as_deref().filter(|v| *v != "v1") {
                self.not_supported(format!("{fp}.apiVersion"), v, &["v1"], "use apiVersion v1");
            }
            let subscript = ["metadata.labels['", "metadata.annotations['"]
                .iter()
                .any(|p| f.field_path.starts_with(p) && f.field_path.ends_with("']"));
            if f.field_path.is_empty() {
                self.required(
                    format!("{fp}.fieldPath"),
                    "",
                    "name the pod field, e.g. metadata.name",
                );
            } else if !subscript && !ENV_FIELD_PATHS.contains(&f.field_path.as_str()) {
                let mut valid = ENV_FIELD_PATHS.to_vec();
                valid.extend(["metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"]);
                self.not_supported(
                    format!("{fp}.fieldPath"),
                    &f.field_path,
                    &valid,
                    "use one of the listed pod fields",
                );
            }
        }
        if let Some(r) = from.resource_field_ref.as_ref() {
            let rp = format!("{vp}.resourceFieldRef");
            if !RESOURCE_FIELD_PATHS.contains(&r.resource.as_str()) {
                self.not_supported(
                    format!("{rp}.resource"),
                    &r.resource,
                    RESOURCE_FIELD_PATHS,
                    "use e.g. limits.memory",
                );
            } else if let Some(d) = r.divisor.as_ref() {
                let is_cpu = r.resource.ends_with(".cpu");
                let ok = match Quantity::from_api(d) {
                    Ok(q) if is_cpu => {
                        q == Quantity::new_milli(1, super::quantity::Format::DecimalSI)
                            || q == Quantity::new(1, super::quantity::Format::DecimalSI)
                    }
                    Ok(q) => MEMORY_DIVISORS
                        .iter()
                        .any(|m| Quantity::parse(m).is_ok_and(|m| m == q)),
                    Err(_) => false,
                };
                if !ok {
                    let detail = if is_cpu {
                        "only divisor's values 1m and 1 are supported with the cpu resource"
                            .to_string()
                    } else {
                        format!(
                            "only divisor's values {} are supported with the memory resource",
                            MEMORY_DIVISORS.join(", ")
                        )
                    };
                    self.invalid(
                        format!("{rp}.divisor"),
                        &d.0,
                        &detail,
                        "use a divisor like 1m or 1Mi",
                    );
                }
            }
        }
    }

    fn resources(&mut self, path: &str, c: &Container) {
        let Some(res) = c.resources.as_ref() else {
            return;
        };
        let mut parsed: [Vec<(&str, Quantity)>; 2] = [Vec::new(), Vec::new()];
        for (slot, (kind, list)) in [("limits", &res.limits), ("requests", &res.requests)]
            .into_iter()
            .enumerate()
        {
            for (name, q) in list.iter().flatten() {
                let field = format!("{path}.resources.{kind}[{name}]");
                let standard = matches!(name.as_str(), CPU | MEMORY | EPHEMERAL_STORAGE)
                    || name.starts_with("hugepages-");
                if !standard {
                    let msgs = qualified_name(name);
                    if !msgs.is_empty() {
                        self.each(
                            &field,
                            name,
                            msgs,
                            "resource names are cpu, memory, ephemeral-storage or example.com/name",
                        );
                        continue;
                    }
                    if !name.contains('/') {
                        self.invalid(
                            &field,
                            name,
                            "must be a standard resource for containers",
                            "use cpu, memory or ephemeral-storage",
                        );
                        continue;
                    }
                }
                if let Some(v) = self.quantity(&field, q) {
                    parsed[slot].push((name.as_str(), v));
                }
            }
        }
        let [limits, requests] = parsed;
        for (name, req) in &requests {
            let limit = limits.iter().find(|(n, _)| n == name).map(|(_, l)| *l);
            let extended = name.contains('/');
            match limit {
                Some(lim) if extended && *req != lim => self.invalid(
                    format!("{path}.resources.requests[{name}]"),
                    req.to_string(),
                    &format!("must be equal to {name} limit of {lim}"),
                    "extended resources cannot be overcommitted: make request and limit equal",
                ),
                Some(lim) if *req > lim => self.invalid(
                    format!("{path}.resources.requests"),
                    req.to_string(),
                    &format!("must be less than or equal to {name} limit of {lim}"),
                    "raise the limit or lower the request",
                ),
                None if extended => self.forbidden(
                    format!("{path}.resources.limits"),
                    &format!("Limit must be set for non overcommitable resources: {name}"),
                    "give the extended resource a limit equal to its request",
                ),
                _ => {}
            }
        }
    }

    fn probe(&mut self, path: &str, p: &Probe, kind: ProbeKind) {
        let handlers = [
            p.exec.is_some(),
            p.http_get.is_some(),
            p.tcp_socket.is_some(),
            p.grpc.is_some(),
        ];
        self.handler_count(path, handlers.iter().filter(|h| **h).count());
        if let Some(e) = p.exec.as_ref()
            && e.command.as_ref().is_none_or(Vec::is_empty)
        {
            self.required(
                format!("{path}.exec.command"),
                "",
                "give the command to run, e.g. [cat, /tmp/healthy]",
            );
        }
        if let Some(h) = p.http_get.as_ref() {
            self.http_get(&format!("{path}.httpGet"), h);
        }
        if let Some(t) = p.tcp_socket.as_ref() {
            self.port_num_or_name(&format!("{path}.tcpSocket.port"), &t.port);
        }
        if let Some(g) = p.grpc.as_ref()
            && let Some(m) = port_number(g.port)
        {
            self.invalid(
                format!("{path}.grpc.port"),
                g.port,
                &m,
                "use a port from 1 to 65535",
            );
        }
        for (field, value) in [
            ("initialDelaySeconds", p.initial_delay_seconds),
            ("timeoutSeconds", p.timeout_seconds),
            ("periodSeconds", p.period_seconds),
            ("successThreshold", p.success_threshold),
            ("failureThreshold", p.failure_threshold),
        ] {
            if let Some(v) = value.filter(|v| *v < 0) {
                self.invalid(
                    format!("{path}.{field}"),
                    v,
                    "must be greater than or equal to 0",
                    "use a positive number",
                );
            }
        }
        if let Some(g) = p.termination_grace_period_seconds {
            if kind == ProbeKind::Readiness {
                self.invalid(
                    format!("{path}.terminationGracePeriodSeconds"),
                    g,
                    "must not be set for readinessProbes",
                    "readiness failures do not kill the container: remove it",
                );
            } else if g <= 0 {
                self.invalid(
                    format!("{path}.terminationGracePeriodSeconds"),
                    g,
                    "must be greater than 0",
                    "use a positive number of seconds",
                );
            }
        }
        if kind != ProbeKind::Readiness
            && let Some(s) = p.success_threshold.filter(|s| *s != 1)
        {
            self.invalid(
                format!("{path}.successThreshold"),
                s,
                "must be 1",
                "liveness and startup probes succeed on the first success: set successThreshold to 1",
            );
        }
    }

    fn handler_count(&mut self, path: &str, count: usize) {
        if count == 0 {
            self.required(
                path,
                "must specify a handler type",
                "add exec, httpGet or tcpSocket",
            );
        } else if count > 1 {
            self.forbidden(
                path,
                "may not specify more than 1 handler type",
                "keep one handler",
            );
        }
    }

    fn http_get(&mut self, path: &str, h: &HTTPGetAction) {
        self.port_num_or_name(&format!("{path}.port"), &h.port);
        if let Some(s) = h.scheme.as_deref()
            && !URI_SCHEMES.contains(&s)
        {
            self.not_supported(
                format!("{path}.scheme"),
                s,
                URI_SCHEMES,
                "use HTTP or HTTPS",
            );
        }
        for (i, header) in h.http_headers.iter().flatten().enumerate() {
            let ok = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                self.invalid(
                    format!("{path}.httpHeaders[{i}].name"),
                    &header.name,
                    "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
                    "use a header name like X-Probe",
                );
            }
        }
    }

    fn port_num_or_name(&mut self, field: &str, port: &IntOrString) {
        match port {
            IntOrString::Int(n) => {
                if let Some(m) = port_number(*n) {
                    self.invalid(field, n, &m, "use a port from 1 to 65535");
                }
            }
            IntOrString::String(name) => self.each(
                field,
                name,
                iana_svc_name(name),
                "use a port number, or the name of one of the container's ports",
            ),
        }
    }

    fn lifecycle_handler(&mut self, path: &str, h: &LifecycleHandler, grace: Option<i64>) {
        let handlers = [
            h.exec.is_some(),
            h.http_get.is_some(),
            h.tcp_socket.is_some(),
            h.sleep.is_some(),
        ];
        self.handler_count(path, handlers.iter().filter(|h| **h).count());
        if let Some(e) = h.exec.as_ref()
            && e.command.as_ref().is_none_or(Vec::is_empty)
        {
            self.required(
                format!("{path}.exec.command"),
                "",
                "give the command to run",
            );
        }
        if let Some(g) = h.http_get.as_ref() {
            self.http_get(&format!("{path}.httpGet"), g);
        }
        if let Some(t) = h.tcp_socket.as_ref() {
            self.port_num_or_name(&format!("{path}.tcpSocket.port"), &t.port);
        }
        if let Some(s) = h.sleep.as_ref()
            && let Some(g) = grace
            && (s.seconds < 0 || s.seconds > g)
        {
            self.invalid(
                format!("{path}.sleep.seconds"),
                s.seconds,
                &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                "sleep for less than the pod's grace period",
            );
        }
    }

    fn host_port_conflicts(&mut self, spec: &PodSpec) {
        let mut seen = BTreeSet::new();
        let sidecars = spec.init_containers.iter().flatten().enumerate();
        let sidecars = sidecars
            .filter(|(_, c)| is_restartable_init_container(c))
            .map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
        let main = spec.containers.iter().enumerate();
        let main = main.map(|(i, c)| (format!("spec.containers[{i}]"), c));
        for (path, c) in sidecars.chain(main) {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                let Some(port) = p.host_port.filter(|h| *h != 0) else {
                    continue;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let ip = p.host_ip.as_deref().unwrap_or("");
                if !seen.insert((port, proto, ip)) {
                    self.duplicate(
                        format!("{path}.ports[{j}].hostPort"),
                        format!("{port}/{proto}"),
                        "two containers of the pod cannot bind the same host port",
                    );
                }
            }
        }
    }

    fn selector_requirement(&mut self, path: &str, r: &NodeSelectorRequirement) {
        let values = r.values.as_deref().unwrap_or_default();
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    self.required(
                        format!("{path}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                        "list the label values to match",
                    );
                }
                for (i, v) in values.iter().enumerate() {
                    self.each(
                        &format!("{path}.values[{i}]"),
                        v,
                        label_value(v),
                        "values are label values",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    self.forbidden(
                        format!("{path}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                        "remove the values",
                    );
                }
            }
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    self.required(
                        format!("{path}.values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                        "give exactly one integer value",
                    );
                } else if values[0].parse::<i64>().is_err() {
                    self.invalid(
                        format!("{path}.values[0]"),
                        &values[0],
                        "must be an integer",
                        "give an integer value",
                    );
                }
            }
            other => self.invalid(
                format!("{path}.operator"),
                other,
                "not a valid selector operator",
                "use In, NotIn, Exists, DoesNotExist, Gt or Lt",
            ),
        }
        self.each(
            &format!("{path}.key"),
            &r.key,
            qualified_name(&r.key),
            "keys are label keys, like kubernetes.io/hostname",
        );
    }

    fn field_selector_requirement(&mut self, path: &str, r: &NodeSelectorRequirement) {
        if r.key != "metadata.name" {
            self.not_supported(
                format!("{path}.key"),
                &r.key,
                &["metadata.name"],
                "matchFields can only match metadata.name",
            );
        }
        if !matches!(r.operator.as_str(), "In" | "NotIn") {
            self.not_supported(
                format!("{path}.operator"),
                &r.operator,
                &["In", "NotIn"],
                "use In or NotIn",
            );
        }
        if r.values.as_ref().is_none_or(|v| v.len() != 1) {
            self.required(
                format!("{path}.values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                "give exactly one node name",
            );
        }
    }

    fn toleration(&mut self, path: &str, t: &Toleration) {
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            self.each(
                &format!("{path}.key"),
                key,
                qualified_name(key),
                "keys are taint keys, like example.com/dedicated",
            );
        } else if operator != "Exists" {
            self.invalid(
                format!("{path}.operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "set `operator: Exists` or give a key",
            );
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            self.invalid(
                format!("{path}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
                "set `effect: NoExecute` or remove tolerationSeconds",
            );
        }
        match operator {
            "" | "Equal" => self.each(
                &format!("{path}.operator"),
                value,
                label_value(value),
                "values are label values",
            ),
            "Exists" => {
                if !value.is_empty() {
                    self.invalid(
                        format!("{path}.operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                        "remove the value",
                    );
                }
            }
            other => self.not_supported(
                format!("{path}.operator"),
                other,
                TOLERATION_OPERATORS,
                "use Equal or Exists",
            ),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            self.not_supported(
                format!("{path}.effect"),
                effect,
                TAINT_EFFECTS,
                "use NoSchedule, PreferNoSchedule or NoExecute",
            );
        }
    }
}

fn nonempty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Name formats (apimachinery `pkg/util/validation`), returning its messages.

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// `IsDNS1123Label`.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !is_label_chars(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if !s.split('.').all(is_label_chars) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// `IsValidPortName` (IANA_SVC_NAME).
pub fn iana_svc_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len(15));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        || s.is_empty()
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsValidPortNum`.
fn port_number(n: i32) -> Option<String> {
    (!(1..=65535).contains(&n)).then(|| "must be between 1 and 65535, inclusive".to_string())
}

// ---------------------------------------------------------------------------------------------
// Fields accepted but not implemented yet.

/// Container fields minikubelet implements, relative to `spec.containers[]` and
/// `spec.initContainers[]`. Extend this table as features land.
const SUPPORTED_CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env[].name",
    "env[].value",
    "env[].valueFrom.fieldRef",
    "env[].valueFrom.resourceFieldRef",
    "resources.requests.cpu",
    "resources.requests.memory",
    "resources.requests.ephemeral-storage",
    "resources.limits.cpu",
    "resources.limits.memory",
    "resources.limits.ephemeral-storage",
    "volumeMounts[].name",
    "volumeMounts[].mountPath",
    "volumeMounts[].readOnly",
    "volumeMounts[].mountPropagation",
    // Refused at admission until implemented (`crate::volumes::admit`).
    "volumeMounts[].subPath",
    "volumeMounts[].subPathExpr",
    "ports[].containerPort",
    "ports[].hostPort",
    "ports[].protocol",
    "ports[].name",
    "lifecycle.postStart.exec",
    "lifecycle.postStart.httpGet",
    "lifecycle.postStart.sleep",
    "lifecycle.preStop.exec",
    "lifecycle.preStop.httpGet",
    "lifecycle.preStop.sleep",
    // Applied or, where not enforced yet, refused at admission
    // (`crate::security_context::admit`): never reported as ignored.
    "securityContext",
    "restartPolicy",
    "stdin",
    "stdinOnce",
    "tty",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
];

/// Probe fields implemented, for each of livenessProbe, readinessProbe and startupProbe.
const SUPPORTED_PROBE_FIELDS: &[&str] = &[
    "exec",
    "httpGet",
    "tcpSocket",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
];

/// Pod fields minikubelet implements (or sets itself). A listed path covers its whole subtree.
const SUPPORTED_POD_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.restartPolicy",
    "spec.terminationGracePeriodSeconds",
    "spec.nodeSelector",
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "spec.priority",
    "spec.priorityClassName",
    "spec.tolerations",
    "spec.nodeName",
    "spec.volumes[].name",
    // emptyDir and hostPath are set up; other types are refused at admission
    // (`crate::volumes::admit`), API objects before that.
    "spec.volumes",
    // Applied, or refused at admission (`crate::security_context::admit`).
    "spec.securityContext",
    // The pod sandbox (`crate::sandbox`, the runtime's isolation): its hostname and UTS
    // namespace, host namespaces, DNS and hosts file, the shared PID namespace.
    "spec.hostname",
    "spec.subdomain",
    "spec.setHostnameAsFQDN",
    "spec.hostNetwork",
    "spec.hostIPC",
    "spec.hostPID",
    "spec.shareProcessNamespace",
    "spec.dnsPolicy",
    "spec.dnsConfig",
    "spec.hostAliases",
    "status",
];

/// Fields accepted only at their default value (the defaults set them on every pod):
/// (path, default as JSON text).
const DEFAULT_ONLY_FIELDS: &[(&str, &str)] = &[
    ("spec.schedulerName", "\"default-scheduler\""),
    ("spec.enableServiceLinks", "true"),
];

/// `IsValidSysctlName`: at most 253 characters, segments of lower-case letters, digits, `-`
/// and `_` (beginning and ending with a letter or digit) separated by `.` or `/`.
fn is_valid_sysctl_name(name: &str) -> bool {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && edge(b[0])
            && edge(b[b.len() - 1])
            && b.iter().all(|c| edge(*c) || *c == b'-' || *c == b'_')
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment_ok)
}

/// `v1.HostPathType` values.
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// Fields whose `false` still asks for something we do not do.
const FALSE_IS_MEANINGFUL: &[&str] = &[];

/// Why a field is unsupported, by a fragment of its normalized path; first match wins.
const UNSUPPORTED_REASONS: &[(&str, &str)] = &[
    (
        "].volumeMounts",
        "this volume mount setting is not implemented yet: the field is ignored",
    ),
    ("].volumeDevices", "volume devices are not implemented yet"),
    (
        "].envFrom",
        "envFrom is not implemented yet: the variables are not set",
    ),
    (
        "].env[].valueFrom",
        "this environment variable source is not implemented yet: the variable is not set",
    ),
    (
        "resources.",
        "only cpu, memory and ephemeral-storage are managed: this resource is ignored",
    ),
    ("Probe.grpc", "gRPC probes are not implemented yet"),
    (
        "].lifecycle",
        "this lifecycle setting is not implemented yet",
    ),
    (
        "spec.ephemeralContainers",
        "ephemeral containers are not supported",
    ),
    (
        "spec.resources",
        "pod-level resources are not implemented yet",
    ),
];

const UNSUPPORTED_DEFAULT_REASON: &str = "not implemented by minikubelet yet: the field is ignored";

struct SupportTable {
    supported: HashSet<String>,
    /// Every proper prefix of a supported path (where the walk must descend).
    prefixes: HashSet<String>,
}

static SUPPORT_TABLE: LazyLock<SupportTable> = LazyLock::new(|| {
    let mut supported: HashSet<String> =
        SUPPORTED_POD_FIELDS.iter().map(|s| s.to_string()).collect();
    for containers in ["spec.containers[]", "spec.initContainers[]"] {
        for f in SUPPORTED_CONTAINER_FIELDS {
            supported.insert(format!("{containers}.{f}"));
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            for f in SUPPORTED_PROBE_FIELDS {
                supported.insert(format!("{containers}.{probe}.{f}"));
            }
        }
    }
    let mut prefixes = HashSet::new();
    for path in &supported {
        for (i, c) in path.char_indices() {
            if c == '.' || c == '[' {
                prefixes.insert(path[..i].to_string());
            }
        }
    }
    SupportTable {
        supported,
        prefixes,
    }
});

/// The fields of `pod` that are set but not implemented, each once with its path.
pub fn unsupported_fields(pod: &Pod) -> Vec<Unsupported> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(pod) {
        walk_unsupported(&value, &mut String::new(), &mut String::new(), &mut out);
    }
    out
}

fn is_unset(key: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !*b && !FALSE_IS_MEANINGFUL.contains(&key),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

fn walk_unsupported(v: &Value, real: &mut String, norm: &mut String, out: &mut Vec<Unsupported>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let seg = if k.contains(['.', '/']) {
                    format!("[{k}]")
                } else if real.is_empty() {
                    k.clone()
                } else {
                    format!(".{k}")
                };
                visit_unsupported(child, &seg, &seg, k, real, norm, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                visit_unsupported(child, &format!("[{i}]"), "[]", "", real, norm, out);
            }
        }
        _ => {}
    }
}

/// Classifies one child of the walk: supported, at its default, to descend into, or reported.
fn visit_unsupported(
    child: &Value,
    seg_real: &str,
    seg_norm: &str,
    key: &str,
    real: &mut String,
    norm: &mut String,
    out: &mut Vec<Unsupported>,
) {
    let table = &*SUPPORT_TABLE;
    let (real_len, norm_len) = (real.len(), norm.len());
    real.push_str(seg_real);
    norm.push_str(seg_norm);
    if !is_unset(key, child) && !table.supported.contains(norm.as_str()) {
        let at_default = DEFAULT_ONLY_FIELDS.iter().any(|(path, default)| {
            *path == norm.as_str()
                && serde_json::from_str::<Value>(default).is_ok_and(|d| d == *child)
        });
        if at_default {
            // Accepted: the defaults put it there.
        } else if table.prefixes.contains(norm.as_str()) {
            walk_unsupported(child, real, norm, out);
        } else {
            let reason = UNSUPPORTED_REASONS
                .iter()
                .find(|(fragment, _)| norm.contains(fragment))
                .map_or(UNSUPPORTED_DEFAULT_REASON, |(_, r)| r);
            out.push(Unsupported {
                field: real.clone(),
                reason,
            });
        }
    }
    real.truncate(real_len);
    norm.truncate(norm_len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::defaults::apply_defaults;
    use serde_json::json;

    /// Decodes a JSON pod and applies the defaults, as the source does before validating.
    fn pod(v: Value) -> Pod {
        let mut p: Pod = serde_json::from_value(v).unwrap();
        apply_defaults(&mut p);
        p
    }

    fn base() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-node-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "100"]}]}
        })
    }

    fn errors(v: Value) -> Vec<String> {
        match validate(&pod(v)) {
            Ok(u) => panic!("expected errors, got Ok({u:?})"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(errs: &[String], want: &str) -> bool {
        errs.iter().any(|e| e.contains(want))
    }

    #[test]
    fn uids_that_could_leave_the_root_dir_are_refused() {
        for bad in [
            "..",
            "/tmp/victim",
            "a/b",
            ".",
            "",
            "-a",
            "A1",
            "a".repeat(65).as_str(),
            "x\0",
        ] {
            let mut v = base();
            v["metadata"]["uid"] = json!(bad);
            let errs = errors(v);
            assert!(
                has(&errs, "metadata.uid: Invalid value"),
                "{bad:?}: {errs:?}"
            );
        }
        for good in [
            "3b5e6c1e-0d7a-4a0e-9a55-2f1c4c7c9d10",
            "0123456789abcdef0123456789abcdef",
            "fixed",
        ] {
            let mut v = base();
            v["metadata"]["uid"] = json!(good);
            assert!(validate(&pod(v)).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_name_too_long_for_the_log_directory_is_refused_with_the_limit() {
        let uid = "0123456789abcdef0123456789abcdef";
        // default_ + name + _ + 32: 255 - 8 - 1 - 32 = 214 bytes of name fit.
        let name = |n: usize| {
            let mut s = "a".repeat(n - 7);
            s.push_str("-node-1");
            s
        };
        let mut v = base();
        v["metadata"]["uid"] = json!(uid);
        v["metadata"]["name"] = json!(name(214));
        assert!(validate(&pod(v.clone())).is_ok());
        v["metadata"]["name"] = json!(name(215));
        let errs = errors(v);
        assert!(has(&errs, "metadata.name: Too long"), "{errs:?}");
        assert!(has(&errs, "at most 214 bytes"), "{errs:?}");
        assert!(has(&errs, "255"), "{errs:?}");
    }

    #[test]
    fn a_plain_pod_is_valid_with_nothing_unsupported() {
        assert_eq!(validate(&pod(base())), Ok(vec![]));
    }

    #[test]
    fn supported_fields_give_no_warning() {
        let v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "full", "labels": {"a": "b"}, "annotations": {"x": "y"}},
            "spec": {
                "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 10,
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "priority": 10, "priorityClassName": "high",
                "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [5]},
                "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "plain"}],
                "initContainers": [
                    {"name": "setup", "image": "busybox:1.36", "command": ["true"]},
                    {"name": "side", "image": "busybox:1.36", "restartPolicy": "Always", "command": ["sleep", "1e9"],
                     "readinessProbe": {"tcpSocket": {"port": 80}},
                     "startupProbe": {"exec": {"command": ["true"]}}}
                ],
                "containers": [{
                    "name": "c", "image": "example.com/server:1", "command": ["/bin/server"], "args": ["--port=8080"], "workingDir": "/tmp",
                    "env": [{"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
                                  "limits": {"cpu": "1", "memory": "128Mi"}},
                    "ports": [{"containerPort": 8080, "hostPort": 18080, "name": "http", "protocol": "TCP"}],
                    "livenessProbe": {"httpGet": {"port": "http", "path": "/healthz"}, "periodSeconds": 5,
                                      "terminationGracePeriodSeconds": 5},
                    "lifecycle": {"postStart": {"exec": {"command": ["true"]}}, "preStop": {"sleep": {"seconds": 5}}},
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "stdin": true, "tty": true, "terminationMessagePolicy": "FallbackToLogsOnError",
                    "imagePullPolicy": "Never", "terminationMessagePath": "/tmp/msg"
                }]
            }
        });
        assert_eq!(validate(&pod(v)), Ok(vec![]));
    }

    #[test]
    fn the_image_is_required_without_spaces() {
        let mut v = base();
        v["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        assert!(has(&errors(v), "spec.containers[0].image: Required value"));
        let mut v = base();
        v["spec"]["containers"][0]["image"] = json!(" busybox");
        assert!(
            has(
                &errors(v),
                "spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"
            ),
            "whitespace"
        );
    }

    #[test]
    fn sandbox_fields_are_supported() {
        let spec = serde_json::json!({
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
            "hostIPC": true, "hostPID": true, "shareProcessNamespace": true,
            "hostname": "h", "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.0.0.10"]},
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
        });
        for annotations in [
            serde_json::json!({}),
            serde_json::json!({"minikubelet.io/host-filesystem": "true"}),
        ] {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "annotations": annotations},
                "spec": spec.clone(),
            }))
            .unwrap();
            let fields: Vec<String> = unsupported_fields(&pod)
                .into_iter()
                .map(|u| u.field)
                .collect();
            assert!(fields.is_empty(), "{fields:?}");
        }
    }

    #[test]
    fn unsupported_fields_are_listed_once_with_a_reason() {
        let v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "u", "ownerReferences": []},
            "spec": {
                "hostNetwork": true, "hostPID": false, "dnsPolicy": "ClusterFirstWithHostNet",
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                "volumes": [{"name": "h", "hostPath": {"path": "/var/log"}},
                            {"name": "m", "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{"name": "i", "image": "busybox", "command": ["true"]}],
                "containers": [{
                    "name": "c", "image": "nginx:1.27",
                    "volumeMounts": [{"name": "h", "mountPath": "/logs", "subPath": "x"}],
                    "securityContext": {"privileged": true, "readOnlyRootFilesystem": true,
                                        "allowPrivilegeEscalation": true, "runAsNonRoot": false,
                                        "capabilities": {"add": ["NET_ADMIN"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "resources": {"limits": {"example.com/gpu": "1"}, "requests": {"example.com/gpu": "1"}},
                    "ports": [{"containerPort": 80, "hostIP": "127.0.0.1"}]
                }]
            }
        });
        let got = validate(&pod(v)).unwrap();
        let fields: Vec<&str> = got.iter().map(|u| u.field.as_str()).collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), fields.len(), "listed once: {fields:?}");
        for want in [
            "spec.containers[0].resources.limits[example.com/gpu]",
            "spec.containers[0].resources.requests[example.com/gpu]",
            "spec.containers[0].ports[0].hostIP",
        ] {
            assert!(fields.contains(&want), "missing {want} in {fields:?}");
        }
        // false / empty values ask for nothing: not listed.
        // Images, the sandbox's host namespaces, DNS and hosts file are implemented.
        for absent in [
            "spec.containers[0].image",
            "spec.initContainers[0].image",
            "spec.hostNetwork",
            "spec.dnsPolicy",
            "spec.hostAliases",
            "spec.hostPID",
            "spec.containers[0].securityContext.runAsNonRoot",
            // The security context is applied or refused at admission, never ignored.
            "spec.containers[0].securityContext.privileged",
            "spec.containers[0].securityContext.capabilities",
            "spec.containers[0].securityContext.seccompProfile",
            // Volumes are set up or refused at admission (`crate::volumes::admit`).
            "spec.volumes[0].hostPath",
            "spec.volumes[1].emptyDir.medium",
            "spec.containers[0].volumeMounts[0].subPath",
            "metadata.ownerReferences",
        ] {
            assert!(!fields.contains(&absent), "{absent} listed: {fields:?}");
        }
        let reason = |f: &str| got.iter().find(|u| u.field == f).unwrap().reason;
        assert!(reason("spec.containers[0].ports[0].hostIP").contains("ignored"));
    }

    #[test]
    fn host_path_and_mount_propagation_rules() {
        let mut v = base();
        v["spec"]["volumes"] = json!([
            {"name": "a", "hostPath": {"path": ""}},
            {"name": "b", "hostPath": {"path": "/var/../etc", "type": "Dir"}}
        ]);
        v["spec"]["containers"][0]["volumeMounts"] = json!([
            {"name": "a", "mountPath": "/a", "mountPropagation": "Bidirectional"},
            {"name": "b", "mountPath": "/b", "mountPropagation": "Both"},
            {"name": "b", "mountPath": "/c", "subPath": "/etc"},
            {"name": "b", "mountPath": "/d", "subPath": "a/../../x"},
            {"name": "b", "mountPath": "/e", "subPath": "a", "subPathExpr": "b"}
        ]);
        let errs = errors(v).join("\n");
        for want in [
            "spec.volumes[0].hostPath.path: Required value",
            "spec.volumes[1].hostPath.path: Invalid value: \"/var/../etc\": must not contain '..'",
            "spec.volumes[1].hostPath.type: Unsupported value: \"Dir\"",
            "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers",
            "spec.containers[0].volumeMounts[1].mountPropagation: Unsupported value: \"Both\"",
            "spec.containers[0].volumeMounts[2].subPath: Invalid value: \"/etc\": must be a relative path",
            "spec.containers[0].volumeMounts[3].subPath: Invalid value: \"a/../../x\": must not contain '..'",
            "spec.containers[0].volumeMounts[4].subPathExpr: Invalid value: \"b\": subPathExpr and subPath are mutually exclusive",
        ] {
            assert!(errs.contains(want), "{want}\n{errs}");
        }
    }

    #[test]
    fn sysctl_names() {
        assert!(is_valid_sysctl_name("kernel.shm_rmid_forced"));
        assert!(is_valid_sysctl_name("net/ipv4/conf/eth0.100/rp_filter"));
        for bad in [
            "kernel.msg.//.//x",
            "kernel..x",
            "Kernel.x",
            "kernel.x-",
            ".x",
            "x/",
        ] {
            assert!(!is_valid_sysctl_name(bad), "{bad}");
        }
        let mut v = base();
        v["spec"]["securityContext"] = json!({"sysctls": [
            {"name": "kernel.msg.//.//.//etc/passwd", "value": "x"},
            {"name": "kernel.shm_rmid_forced", "value": "1"},
            {"name": "kernel.shm_rmid_forced", "value": "0"}]});
        let errs = errors(v).join("\n");
        assert!(errs.contains("spec.securityContext.sysctls[0].name: Invalid value: \"kernel.msg.//.//.//etc/passwd\": must have at most 253 characters"), "{errs}");
        assert!(
            errs.contains(
                "spec.securityContext.sysctls[2].name: Duplicate value: \"kernel.shm_rmid_forced\""
            ),
            "{errs}"
        );
    }

    #[test]
    fn seccomp_and_app_armor_profiles() {
        let mut v = base();
        v["spec"]["securityContext"] = json!({
            "seccompProfile": {"type": "Localhost", "localhostProfile": "../../etc/x.json"},
            "appArmorProfile": {"type": "RuntimeDefault", "localhostProfile": "p"}});
        v["spec"]["containers"][0]["securityContext"] = json!({
            "seccompProfile": {"type": "Localhost"},
            "appArmorProfile": {"type": "Bogus"}});
        let errs = errors(v).join("\n");
        for want in [
            "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"../../etc/x.json\": must not contain '..'",
            "spec.securityContext.appArmorProfile.localhostProfile: Invalid value: \"p\": can only be set when AppArmor type is Localhost",
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
            "spec.containers[0].securityContext.appArmorProfile.type: Unsupported value: \"Bogus\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
        ] {
            assert!(errs.contains(want), "{want}\n{errs}");
        }
        let mut v = base();
        v["spec"]["securityContext"] =
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "/abs.json"}});
        let errs = errors(v).join("\n");
        assert!(errs.contains("must be a relative path"), "{errs}");
    }

    #[test]
    fn downward_api_items() {
        let mut v = base();
        v["spec"]["volumes"] = json!([
            {"name": "a", "downwardAPI": {"defaultMode": 4096, "items": [
                {"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "y"},
                {"path": "z", "fieldRef": {"fieldPath": "metadata.name"}, "mode": -1}]}},
            {"name": "b", "projected": {"sources": [{"downwardAPI": {"items": [
                {"path": "/abs", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}
        ]);
        let errs = errors(v).join("\n");
        for want in [
            "spec.volumes[0].downwardAPI.defaultMode: Invalid value: 4096: must be a number between 0 and 0777",
            "spec.volumes[0].downwardAPI.items[0].path: Invalid value: \"../x\": must not contain '..'",
            "spec.volumes[0].downwardAPI.items[1]: Required value: one of fieldRef and resourceFieldRef",
            "spec.volumes[0].downwardAPI.items[2].mode: Invalid value: -1",
            "spec.volumes[1].projected.sources[0].downwardAPI.items[0].path: Invalid value: \"/abs\": must be a relative path",
        ] {
            assert!(errs.contains(want), "{want}\n{errs}");
        }
    }

    #[test]
    fn no_new_privs_beside_privileges_is_invalid() {
        let mut v = base();
        v["spec"]["containers"][0]["securityContext"] = json!({
            "allowPrivilegeEscalation": false, "privileged": true,
            "capabilities": {"add": ["CAP_SYS_ADMIN"]}
        });
        let errs = errors(v).join("\n");
        assert!(
            errs.contains("spec.containers[0].securityContext: Invalid value: core.SecurityContext{...}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
            "{errs}"
        );
        assert!(
            errs.contains("cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"),
            "{errs}"
        );
    }

    #[test]
    fn name_rules() {
        let mut v = base();
        v["metadata"]["name"] = json!("");
        let errs = errors(v);
        assert!(
            has(
                &errs,
                "metadata.name: Required value: name is needed for the pod"
            ),
            "{errs:?}"
        );

        let mut v = base();
        v["metadata"]["name"] = json!("Web_1");
        let errs = errors(v);
        assert!(
            has(
                &errs,
                "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"
            ),
            "{errs:?}"
        );

        let mut v = base();
        v["spec"]["initContainers"] = json!([{"name": "c"}]);
        v["spec"]["containers"] = json!([{"name": "c"}, {"name": "Bad"}, {"name": ""}]);
        let errs = errors(v);
        assert!(
            has(&errs, "spec.containers[0].name: Duplicate value: \"c\""),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[1].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
            ),
            "{errs:?}"
        );
        assert!(
            has(&errs, "spec.containers[2].name: Required value"),
            "{errs:?}"
        );

        let mut v = base();
        v["spec"]["containers"] = json!([]);
        assert!(has(&errors(v), "spec.containers: Required value"));
    }

    #[test]
    fn resource_rules() {
        let mut v = base();
        v["spec"]["containers"][0]["resources"] = json!({
            "requests": {"cpu": "2", "memory": "lots"},
            "limits": {"cpu": "1", "memory": "-1Gi", "foo": "1"}
        });
        let errs = errors(v);
        assert!(
            has(
                &errs,
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": invalid quantity"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].resources.limits[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].resources.limits[foo]: Invalid value: \"foo\": must be a standard resource for containers"
            ),
            "{errs:?}"
        );

        // Requests defaulted from limits are equal, hence valid.
        let mut v = base();
        v["spec"]["containers"][0]["resources"] =
            json!({"limits": {"cpu": "500m", "memory": "1Gi"}});
        assert!(validate(&pod(v)).is_ok());
    }

    #[test]
    fn probe_rules() {
        let mut v = base();
        v["spec"]["containers"][0]["livenessProbe"] =
            json!({"exec": {"command": ["true"]}, "successThreshold": 2});
        v["spec"]["containers"][0]["startupProbe"] =
            json!({"tcpSocket": {"port": 80}, "successThreshold": 3});
        v["spec"]["containers"][0]["readinessProbe"] = json!({
            "httpGet": {"port": 0, "scheme": "FTP"}, "exec": {"command": ["x"]},
            "successThreshold": 2, "terminationGracePeriodSeconds": 5});
        let errs = errors(v);
        assert!(
            has(
                &errs,
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1"
            ),
            "{errs:?}"
        );
        assert!(!has(&errs, "readinessProbe.successThreshold"), "{errs:?}");
        assert!(
            has(
                &errs,
                "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\""
            ),
            "{errs:?}"
        );
        assert!(
            has(&errs, "must not be set for readinessProbes"),
            "{errs:?}"
        );

        let mut v = base();
        v["spec"]["containers"][0]["livenessProbe"] = json!({"periodSeconds": 5});
        assert!(has(
            &errors(v),
            "spec.containers[0].livenessProbe: Required value: must specify a handler type"
        ));
    }

    #[test]
    fn restart_policy_and_sidecar_rules() {
        let mut v = base();
        v["spec"]["restartPolicy"] = json!("always");
        v["spec"]["containers"][0]["restartPolicy"] = json!("Always");
        v["spec"]["initContainers"] = json!([
            {"name": "a", "restartPolicy": "Never"},
            {"name": "b", "livenessProbe": {"exec": {"command": ["true"]}}}
        ]);
        let errs = errors(v);
        assert!(
            has(
                &errs,
                "spec.restartPolicy: Unsupported value: \"always\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
            ),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.initContainers[1].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn port_env_mount_and_scheduling_rules() {
        let mut v = base();
        v["spec"]["containers"][0]["ports"] = json!([
            {"containerPort": 70000, "protocol": "tcp"},
            {"containerPort": 80, "hostPort": 8080, "name": "Web--"},
            {"containerPort": 81, "hostPort": 8080}
        ]);
        v["spec"]["containers"][0]["env"] = json!([
            {"name": "A=B", "value": "1"},
            {"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}
        ]);
        v["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "missing", "mountPath": "/m"}]);
        v["spec"]["tolerations"] = json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}]);
        v["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}});
        let errs = errors(v);
        for want in [
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].name: Invalid value: \"Web--\": must contain only alpha-numeric characters",
            "spec.containers[0].ports[1].name: Invalid value: \"Web--\": must not contain consecutive hyphens",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\"",
            "spec.containers[0].ports[2].hostPort: Duplicate value: \"8080/TCP\"",
            "spec.containers[0].env[0].name: Invalid value: \"A=B\"",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\"",
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
            "nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ] {
            assert!(has(&errs, want), "missing {want:?} in {errs:#?}");
        }
    }

    #[test]
    fn errors_carry_hints_and_format_like_the_kubelet() {
        let mut v = base();
        v["metadata"]["name"] = json!("");
        let errs = validate(&pod(v)).unwrap_err();
        assert!(errs.iter().all(|e| !e.hint.is_empty()));
        assert_eq!(
            format_errors(&errs[..1]),
            "invalid pod: [metadata.name: Required value: name is needed for the pod]"
        );
    }

    #[test]
    fn api_object_references_are_refused() {
        let table = [
            (
                json!({"serviceAccountName": "default"}),
                "spec.serviceAccountName",
                "serviceaccounts",
            ),
            (
                json!({"serviceAccount": "x"}),
                "spec.serviceAccount",
                "serviceaccounts",
            ),
            (
                json!({"imagePullSecrets": [{"name": "regcred"}]}),
                "spec.imagePullSecrets[0]",
                "secrets",
            ),
            (
                json!({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]}),
                "spec.volumes[0].secret",
                "secrets",
            ),
            (
                json!({"volumes": [{"name": "s", "secret": {}}]}),
                "spec.volumes[0].secret",
                "secrets (via secret volumes)",
            ),
            (
                json!({"volumes": [{"name": "c", "configMap": {"name": "x"}}]}),
                "spec.volumes[0].configMap",
                "configmaps",
            ),
            (
                json!({"volumes": [{"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "spec.volumes[0].projected.sources[0].serviceAccountToken",
                "serviceaccounts (via projected volumes)",
            ),
            (
                json!({"volumes": [{"name": "p", "projected": {"sources": [{"clusterTrustBundle": {"path": "t", "name": "b"}}]}}]}),
                "spec.volumes[0].projected.sources[0].clusterTrustBundle",
                "clustertrustbundles",
            ),
            (
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "x"}}]}),
                "spec.volumes[0].persistentVolumeClaim",
                "persistentvolumeclaims",
            ),
            (
                json!({"volumes": [{"name": "v", "ephemeral": {}}]}),
                "spec.volumes[0].ephemeral",
                "persistentvolumeclaims (via ephemeral volumes)",
            ),
            (
                json!({"resourceClaims": [{"name": "gpu"}]}),
                "spec.resourceClaims",
                "resourceclaims",
            ),
        ];
        for (extra, field, resource) in table {
            let mut v = base();
            for (k, val) in extra.as_object().unwrap() {
                v["spec"][k] = val.clone();
            }
            let p = pod(v);
            let r = api_object_reference(&p).unwrap_or_else(|| panic!("no reference in {extra}"));
            assert_eq!((r.field.as_str(), r.resource), (field, resource), "{extra}");
            let errs = validate(&p).unwrap_err();
            let want = format!("{field}: static pods may not reference {resource}");
            assert!(errs.iter().any(|e| e.to_string() == want), "{errs:?}");
        }
        // Env references, in init containers too.
        let mut v = base();
        v["spec"]["initContainers"] = json!([{"name": "i", "env": [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}]);
        v["spec"]["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "s"}}]);
        let r = api_object_reference(&pod(v)).unwrap();
        assert_eq!(
            (r.field.as_str(), r.resource),
            ("spec.containers[0].envFrom[0].secretRef", "secrets")
        );
        // Local volumes are fine.
        let mut v = base();
        v["spec"]["volumes"] = json!([{"name": "h", "hostPath": {"path": "/x"}}, {"name": "e", "emptyDir": {}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}]);
        assert_eq!(api_object_reference(&pod(v)), None);
    }

    #[test]
    fn name_format_helpers() {
        assert!(dns1123_label("my-name").is_empty());
        assert!(dns1123_label("123-abc").is_empty());
        assert_eq!(dns1123_label(&"a".repeat(64)), vec![max_len(63)]);
        assert!(!dns1123_label("-a").is_empty());
        assert!(dns1123_subdomain("example.com").is_empty());
        assert!(!dns1123_subdomain("example..com").is_empty());
        assert!(qualified_name("example.com/MyName").is_empty());
        assert!(qualified_name("my.name").is_empty());
        assert_eq!(
            qualified_name("/x"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("my_value").is_empty());
        assert!(!label_value("-x").is_empty());
        assert!(iana_svc_name("http").is_empty());
        assert_eq!(
            iana_svc_name("8080"),
            vec!["must contain at least one letter (a-z)".to_string()]
        );
    }
}
