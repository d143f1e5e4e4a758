//! What makes a decoded manifest a static pod: its UID, name, namespace, node, config
//! annotations, the NoExecute toleration and the Pending phase; and the predicates the kubelet
//! asks of a pod (static? critical? node-critical?).
//!
//! Mirrors `pkg/kubelet/config/common.go` (`applyDefaults`, `generatePodName`),
//! `pkg/kubelet/config/config.go` (`config.source` / `config.seen` annotations) and
//! `pkg/kubelet/types/pod_update.go` (`IsStaticPod`, `IsCriticalPod`, `IsNodeCriticalPod`).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, Toleration};
use serde_json::Value;

use super::pod::{SYSTEM_CRITICAL_PRIORITY, is_static};

/// Annotation holding the pod's config hash, which is also its UID.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// Annotation naming the source the pod came from.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Annotation with the time the kubelet first saw the pod (RFC 3339, nanoseconds).
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// The source name of manifest files.
pub const FILE_SOURCE: &str = "file";
/// The source name of pods from the API server (the only non-static source).
pub const API_SOURCE: &str = "api";
/// The priority class of pods the node cannot run without.
pub const SYSTEM_NODE_CRITICAL: &str = "system-node-critical";
/// The namespace of pods that name none.
pub const NAMESPACE_DEFAULT: &str = "default";

/// Turns a decoded, defaulted manifest pod into the static pod the kubelet runs
/// (`applyDefaults` + the config annotations), for node `node_name` and file `source_path`.
///
/// The UID (kept if the manifest sets `metadata.uid`) is [`static_pod_uid`] of `raw`, the
/// manifest's decoded JSON value. A kept UID is not trusted yet: it names directories and
/// cgroups, so [`super::validation::validate`] (`pod_uid`) must pass before the pod is used. `seen` is when the source first saw this pod: pass the same
/// instant again for a pod already known, since the UID never depends on it.
pub fn make_static(
    pod: &mut Pod,
    raw: &Value,
    node_name: &str,
    source_path: &Path,
    seen: jiff::Timestamp,
) {
    let meta = &mut pod.metadata;
    let uid = match meta.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => static_pod_uid(raw, node_name, source_path),
    };
    meta.uid = Some(uid.clone());
    meta.name = Some(generate_pod_name(
        meta.name.as_deref().unwrap_or(""),
        node_name,
    ));
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(NAMESPACE_DEFAULT.to_string());
    }
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), uid);
    annotations.insert(
        CONFIG_SOURCE_ANNOTATION.to_string(),
        FILE_SOURCE.to_string(),
    );
    annotations.insert(CONFIG_SEEN_ANNOTATION.to_string(), rfc3339_nano(seen));

    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.node_name = Some(node_name.to_string());
    // So that static pods are not evicted for node problems (file source only).
    add_or_update_toleration(
        spec.tolerations.get_or_insert_with(Vec::new),
        Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        },
    );
    pod.status.get_or_insert_with(PodStatus::default).phase = Some("Pending".into());
}

/// The UID of a static pod: lowercase hex of FNV-128a over a canonical serialization of the
/// manifest (JSON, object keys sorted), then `host:<node name>` and `file:<path>`.
///
/// The kubelet hashes a Go dump of its decoded object instead, which cannot be reproduced
/// byte for byte; this keeps its properties: any semantic edit, renaming or moving the file,
/// or another node name gives a new UID, while whitespace, comments, key order and
/// YAML-versus-JSON spelling do not. Unlike the kubelet, spelling out a default value or adding
/// an unknown field also counts as an edit.
pub fn static_pod_uid(raw: &Value, node_name: &str, source_path: &Path) -> String {
    let mut hasher = Fnv128a::new();
    write_canonical_json(&mut hasher, raw);
    hasher.write(b"host:");
    hasher.write(node_name.as_bytes());
    hasher.write(b"file:");
    hasher.write(source_path.as_os_str().as_encoded_bytes());
    format!("{:032x}", hasher.finish())
}

/// `<name>-<lowercase node name>` (`generatePodName`).
pub fn generate_pod_name(name: &str, node_name: &str) -> String {
    format!("{name}-{}", node_name.to_lowercase())
}

/// True for pods the kubelet treats as critical: static pods and pods with a priority of at
/// least `SYSTEM_CRITICAL_PRIORITY` (`IsCriticalPod`; mirror pods cannot occur here).
pub fn is_critical_pod(pod: &Pod) -> bool {
    is_static(pod)
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// True for critical pods of priority class `system-node-critical` (`IsNodeCriticalPod`).
pub fn is_node_critical_pod(pod: &Pod) -> bool {
    is_critical_pod(pod)
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            == Some(SYSTEM_NODE_CRITICAL)
}

/// Go's `time.RFC3339Nano`: UTC, fractional seconds without trailing zeros.
fn rfc3339_nano(t: jiff::Timestamp) -> String {
    let secs = t.strftime("%Y-%m-%dT%H:%M:%S");
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        return format!("{secs}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{secs}.{}Z", frac.trim_end_matches('0'))
}

/// Appends `toleration`, or replaces an existing one with the same key, operator, value and
/// effect (`helper.AddOrUpdateTolerationInPod`).
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, toleration: Toleration) {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let same = |t: &Toleration| {
        s(&t.key) == s(&toleration.key)
            && s(&t.operator) == s(&toleration.operator)
            && s(&t.value) == s(&toleration.value)
            && s(&t.effect) == s(&toleration.effect)
    };
    match tolerations.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

/// Writes `v` as compact JSON with object keys in sorted order, whatever order the map keeps.
fn write_canonical_json(h: &mut Fnv128a, v: &Value) {
    match v {
        Value::Null => h.write(b"null"),
        Value::Bool(b) => h.write(if *b { b"true" } else { b"false" }),
        Value::Number(n) => h.write(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(h, s),
        Value::Array(items) => {
            h.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                write_canonical_json(h, item);
            }
            h.write(b"]");
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| k.as_str());
            h.write(b"{");
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                write_json_string(h, k);
                h.write(b":");
                write_canonical_json(h, item);
            }
            h.write(b"}");
        }
    }
}

fn write_json_string(h: &mut Fnv128a, s: &str) {
    // serde_json escapes a string the same way every time; writing into the hasher cannot fail.
    let _ = serde_json::to_writer(&mut *h, s);
}

/// The FNV-1a 128-bit hash (`hash/fnv.New128a`).
#[derive(Clone, Copy, Debug)]
pub struct Fnv128a(u128);

impl Fnv128a {
    const OFFSET_BASIS: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;

    /// A fresh hasher at the offset basis.
    pub fn new() -> Fnv128a {
        Fnv128a(Self::OFFSET_BASIS)
    }

    /// Feeds bytes: for each, xor then multiply by the prime.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u128 {
        self.0
    }
}

impl Default for Fnv128a {
    fn default() -> Self {
        Fnv128a::new()
    }
}

impl std::io::Write for Fnv128a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Fnv128a::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fnv(s: &str) -> String {
        let mut h = Fnv128a::new();
        h.write(s.as_bytes());
        format!("{:032x}", h.finish())
    }

    #[test]
    fn fnv128a_golden_vectors() {
        // Go's hash/fnv golden128a table.
        assert_eq!(fnv(""), "6c62272e07bb014262b821756295c58d");
        assert_eq!(fnv("a"), "d228cb696f1a8caf78912b704e4a8964");
        assert_eq!(fnv("ab"), "08809544bbab1be95aa0733055b69a62");
        assert_eq!(fnv("abc"), "a68d622cec8b5822836dbc7977af7f3b");
    }

    fn manifest() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "1000"]}]}
        })
    }

    fn uid(raw: &Value, node: &str, path: &str) -> String {
        static_pod_uid(raw, node, Path::new(path))
    }

    #[test]
    fn uid_properties() {
        let base = uid(&manifest(), "node-1", "/etc/kubernetes/manifests/web.yaml");
        assert_eq!(base.len(), 32);
        assert!(
            base.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Same content, same node, same path: same UID.
        assert_eq!(
            base,
            uid(&manifest(), "node-1", "/etc/kubernetes/manifests/web.yaml")
        );
        // Key order does not matter.
        let reordered: Value = serde_json::from_str(
            r#"{"spec":{"containers":[{"command":["sleep","1000"],"name":"c"}]},
                "metadata":{"labels":{"tier":"front","app":"web"},"name":"web"},
                "kind":"Pod","apiVersion":"v1"}"#,
        )
        .unwrap();
        assert_eq!(
            base,
            uid(&reordered, "node-1", "/etc/kubernetes/manifests/web.yaml")
        );
        // A semantic edit, a rename and another node each change it.
        let mut edited = manifest();
        edited["spec"]["containers"][0]["command"][1] = json!("2000");
        assert_ne!(
            base,
            uid(&edited, "node-1", "/etc/kubernetes/manifests/web.yaml")
        );
        assert_ne!(
            base,
            uid(&manifest(), "node-1", "/etc/kubernetes/manifests/web2.yaml")
        );
        assert_ne!(
            base,
            uid(&manifest(), "node-2", "/etc/kubernetes/manifests/web.yaml")
        );
        // The node name is hashed as given, so case counts even though the name is lowercased.
        assert_ne!(
            base,
            uid(&manifest(), "Node-1", "/etc/kubernetes/manifests/web.yaml")
        );
    }

    #[test]
    fn make_static_applies_the_kubelet_defaults() {
        let raw = manifest();
        let mut pod: Pod = serde_json::from_value(raw.clone()).unwrap();
        let seen: jiff::Timestamp = "2026-01-02T03:04:05.123400Z".parse().unwrap();
        make_static(
            &mut pod,
            &raw,
            "Node-1",
            Path::new("/etc/kubernetes/manifests/web.yaml"),
            seen,
        );
        let uid = static_pod_uid(
            &raw,
            "Node-1",
            Path::new("/etc/kubernetes/manifests/web.yaml"),
        );
        let meta = &pod.metadata;
        assert_eq!(meta.uid.as_deref(), Some(uid.as_str()));
        assert_eq!(meta.name.as_deref(), Some("web-node-1"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        let a = meta.annotations.as_ref().unwrap();
        assert_eq!(a[CONFIG_HASH_ANNOTATION], uid);
        assert_eq!(a[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(a[CONFIG_SEEN_ANNOTATION], "2026-01-02T03:04:05.1234Z");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        assert_eq!(
            spec.tolerations,
            Some(vec![Toleration {
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                ..Default::default()
            }])
        );
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        assert!(is_static(&pod));
        assert!(is_critical_pod(&pod));
        assert!(!is_node_critical_pod(&pod));
    }

    #[test]
    fn make_static_keeps_uid_namespace_and_existing_toleration() {
        let raw = json!({"metadata": {"name": "x", "uid": "fixed", "namespace": "kube-system"}});
        let mut pod: Pod = serde_json::from_value(raw.clone()).unwrap();
        pod.spec = Some(PodSpec {
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(30),
                ..Default::default()
            }]),
            ..Default::default()
        });
        make_static(
            &mut pod,
            &raw,
            "n",
            Path::new("/m/x.json"),
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(pod.metadata.uid.as_deref(), Some("fixed"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert_eq!(tolerations.len(), 1);
        assert_eq!(tolerations[0].toleration_seconds, None);
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()[CONFIG_SEEN_ANNOTATION],
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn static_and_critical_predicates() {
        let mut pod = Pod::default();
        assert!(!is_static(&pod));
        pod.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_SOURCE_ANNOTATION.to_string(),
            API_SOURCE.to_string(),
        )]));
        assert!(!is_static(&pod));
        assert!(!is_critical_pod(&pod));
        pod.spec = Some(PodSpec {
            priority: Some(SYSTEM_CRITICAL_PRIORITY),
            priority_class_name: Some(SYSTEM_NODE_CRITICAL.into()),
            ..Default::default()
        });
        assert!(is_critical_pod(&pod));
        assert!(is_node_critical_pod(&pod));
        pod.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_SOURCE_ANNOTATION.to_string(),
            FILE_SOURCE.to_string(),
        )]));
        pod.spec.as_mut().unwrap().priority = None;
        assert!(is_static(&pod));
        assert!(is_node_critical_pod(&pod));
    }
}
