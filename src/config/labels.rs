//! `--node-labels` validation: label key/value syntax (apimachinery `IsQualifiedName`,
//! `IsValidLabelValue`) and the kubelet's rule that only a few `kubernetes.io`/`k8s.io` labels
//! may be self-assigned (`cmd/kubelet/app/options` `ValidateKubeletFlags`,
//! `pkg/kubelet/apis/well_known_labels.go`).
use std::collections::BTreeMap;

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

const QUALIFIED_NAME_FMT_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_FMT_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const DNS1123_SUBDOMAIN_FMT_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Label namespaces a kubelet may set on its own node (`kubeletLabelNamespaces`).
pub const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Individual `kubernetes.io` labels a kubelet may set (`kubeletLabels`).
pub const KUBELET_LABELS: [&str; 11] = [
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Checks node labels the way `ValidateKubeletFlags` does; the error text is the kubelet's.
pub fn validate_node_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    let unknown: Vec<&str> = labels
        .keys()
        .filter(|k| is_kubernetes_label(k) && !is_kubelet_label(k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [{}]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix ({}) or be in the specifically allowed set ({})",
            unknown.join(" "),
            KUBELET_LABEL_NAMESPACES.join(", "),
            KUBELET_LABELS.join(", ")
        ));
    }
    let mut errs = Vec::new();
    for (k, v) in labels {
        let key_errs = qualified_name_errors(k);
        if !key_errs.is_empty() {
            errs.push(format!("'{k}' - {}", key_errs.join(", ")));
        }
        let value_errs = label_value_errors(v);
        if !value_errs.is_empty() {
            errs.push(format!("'{v}' - {}", value_errs.join(", ")));
        }
    }
    if !errs.is_empty() {
        return Err(format!("invalid node labels: {}", errs.join("; ")));
    }
    Ok(())
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_domain(namespace: &str, domain: &str) -> bool {
    namespace == domain || namespace.ends_with(&format!(".{domain}"))
}

fn is_kubernetes_label(key: &str) -> bool {
    let ns = label_namespace(key);
    in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io")
}

fn is_kubelet_label(key: &str) -> bool {
    if KUBELET_LABELS.contains(&key) {
        return true;
    }
    let ns = label_namespace(key);
    KUBELET_LABEL_NAMESPACES.iter().any(|d| in_domain(ns, d))
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

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_SUBDOMAIN_MAX
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// apimachinery `IsQualifiedName`.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !is_dns1123_subdomain(prefix) {
                errs.push(format!("prefix part {DNS1123_SUBDOMAIN_FMT_ERR}"));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !name.is_empty() && !is_qualified_name_part(name) {
        errs.push(QUALIFIED_NAME_FMT_ERR.to_string());
    }
    errs
}

/// apimachinery `IsValidLabelValue`.
fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !v.is_empty() && !is_qualified_name_part(v) {
        errs.push(LABEL_VALUE_FMT_ERR.to_string());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_valid_labels() {
        let ok = [
            ("role", "edge"),
            ("example.com/tier", "gold"),
            ("node.kubernetes.io/instance-type", "small"),
            ("kubelet.kubernetes.io/foo", ""),
            ("sub.node.kubernetes.io/x", "y"),
            ("kubernetes.io/hostname", "n1"),
            ("topology.kubernetes.io/zone", "a"),
            ("app.example.org/name", "A_b-c.9"),
        ];
        for (k, v) in ok {
            assert_eq!(validate_node_labels(&labels(&[(k, v)])), Ok(()), "{k}={v}");
        }
    }

    #[test]
    fn refuses_reserved_namespaces_with_kubelet_message() {
        let err = validate_node_labels(&labels(&[
            ("node-role.kubernetes.io/worker", ""),
            ("app.k8s.io/x", "y"),
        ]))
        .unwrap_err();
        assert!(
            err.starts_with(
                "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [app.k8s.io/x node-role.kubernetes.io/worker]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io)"
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_bad_syntax() {
        let cases: &[(&str, &str, &str)] = &[
            ("-bad", "v", "'-bad' - name part must consist"),
            ("a/b/c", "v", "'a/b/c' - a qualified name must consist"),
            (
                "Example.com/x",
                "v",
                "'Example.com/x' - prefix part a lowercase RFC 1123",
            ),
            ("/x", "v", "'/x' - prefix part must be non-empty"),
            (
                "ok",
                "bad value",
                "'bad value' - a valid label must be an empty string",
            ),
            ("ok", &"v".repeat(64), "must be no more than 63 characters"),
            (
                &"k".repeat(64),
                "v",
                "name part must be no more than 63 characters",
            ),
        ];
        for (k, v, want) in cases {
            let err = validate_node_labels(&labels(&[(k, v)])).unwrap_err();
            assert!(err.starts_with("invalid node labels: "), "{err}");
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }
}
