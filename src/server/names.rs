//! The one check for names that arrive in request paths (`/containerLogs/{ns}/{pod}/{ctr}`,
//! `/exec/...`, `/api/v1/namespaces/{ns}/pods/{name}/...`) before they reach a lookup or a
//! file path under the logs directory.
//!
//! The kubelet relies on the API server's validation of object names; these paths come
//! straight from clients, so minikubelet checks them itself with apimachinery's
//! `IsDNS1123Subdomain` (`crate::api::validation`): lower-case alphanumerics, `-` and `.`, each
//! dot-separated part starting and ending alphanumeric, at most 253 characters. That rules out
//! `/`, `..`, empty names and anything percent-decoded into them, so no request can reach
//! outside the logs directory or into another pod's files.

use crate::api::validation::dns1123_subdomain;

use super::status::ApiError;

/// Whether `s` can be a namespace, pod or container name in a path.
pub fn is_object_name(s: &str) -> bool {
    dns1123_subdomain(s).is_empty()
}

/// Checks `(what, name)` pairs in order: the first bad one is a 400 naming it
/// (`invalid pod name "../x": must be a lower-case RFC 1123 name`).
pub fn check_names(names: &[(&str, &str)]) -> Result<(), ApiError> {
    for (what, name) in names {
        if !is_object_name(name) {
            return Err(ApiError::bad_request(format!(
                "invalid {what} name {name:?}: must be a lower-case RFC 1123 name"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        let cases = [
            ("web-node1", true),
            ("a.b", true),
            ("a.b-c", true),
            ("kube-system", true),
            ("x", true),
            ("..", false),
            ("a..b", false),
            ("a.-b", false),
            ("../etc", false),
            ("a/b", false),
            ("a%2fb", false),
            ("a b", false),
            ("Web", false),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("a_b", false),
        ];
        for (n, want) in cases {
            assert_eq!(is_object_name(n), want, "{n}");
        }
        assert!(is_object_name(&"a".repeat(253)));
        assert!(!is_object_name(&"a".repeat(254)));
    }

    #[test]
    fn first_bad_name_is_named() {
        assert_eq!(
            check_names(&[("namespace", "default"), ("pod", "web")]),
            Ok(())
        );
        let e = check_names(&[
            ("namespace", "default"),
            ("pod", "../x"),
            ("container", ".."),
        ])
        .unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "invalid pod name \"../x\": must be a lower-case RFC 1123 name"
        );
    }
}
