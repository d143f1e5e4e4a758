//! Decoding one manifest file into a Pod: size and text checks, YAML or JSON, first document
//! only, `kind: Pod` / `apiVersion: v1`, typed decoding with the path of the bad field, and a
//! list of the fields the typed Pod does not know.
//!
//! Mirrors `pkg/kubelet/config/common.go` (`tryDecodeSinglePod`): the file source reads at most
//! `maxConfigLength` bytes, converts YAML to JSON (`utilyaml.ToJSON`) and decodes exactly one
//! Pod. The YAML is parsed into a `serde_json::Value` first (kept for the static pod UID), then
//! into `k8s_openapi`'s `Pod` through `serde_path_to_error`.
//!
//! Deliberate choice: a file holding several YAML documents (or several JSON values) yields its
//! first one, with a [`DecodeWarning::ExtraDocuments`] warning. The kubelet's YAML-to-JSON step
//! also keeps only the first document, silently.

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// The largest manifest the file source reads, in bytes (`maxConfigLength`, 10 MiB).
pub const MAX_MANIFEST_BYTES: usize = 10 << 20;

/// A decoded manifest.
#[derive(Clone, Debug)]
pub struct DecodedPod {
    /// The typed pod, before any defaults.
    pub pod: Pod,
    /// The manifest's first document as JSON (input for the static pod UID).
    pub raw: Value,
    /// Things worth telling the user that do not stop the pod.
    pub warnings: Vec<DecodeWarning>,
}

/// A decode problem that does not stop the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeWarning {
    /// A field the Pod type does not have (probably a typo); it is ignored.
    UnknownField {
        /// Path of the field, e.g. `spec.containers[0].imagePullPolicyy`.
        field: String,
    },
    /// The file holds more documents after the first; they are ignored.
    ExtraDocuments {
        /// How many non-empty documents were ignored.
        count: usize,
    },
}

impl fmt::Display for DecodeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeWarning::UnknownField { field } => {
                write!(f, "unknown field {field:?} is ignored (check its spelling)")
            }
            DecodeWarning::ExtraDocuments { count } => write!(
                f,
                "{count} more document(s) after the first are ignored: one manifest file holds one pod"
            ),
        }
    }
}

/// Why a manifest could not be decoded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file is over [`MAX_MANIFEST_BYTES`].
    #[error("{path}: manifest is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit", path = .path.display())]
    TooLarge {
        /// The manifest file.
        path: PathBuf,
        /// Its size in bytes.
        size: usize,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: not a text file ({reason} at byte {offset}); a manifest is YAML or JSON", path = .path.display())]
    NotText {
        /// The manifest file.
        path: PathBuf,
        /// Offset of the first offending byte.
        offset: usize,
        /// What was found there.
        reason: &'static str,
    },
    /// YAML syntax error (message carries line and column).
    #[error("{path}: couldn't parse as YAML: {message}", path = .path.display())]
    Yaml {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// JSON syntax error.
    #[error("{path}: couldn't parse as JSON: {source}", path = .path.display())]
    Json {
        /// The manifest file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Nothing but whitespace, comments or empty documents.
    #[error("{path}: invalid pod: the file holds no document", path = .path.display())]
    Empty {
        /// The manifest file.
        path: PathBuf,
    },
    /// Not a Pod object (`invalid pod: ...`).
    #[error("{path}: invalid pod: {reason}", path = .path.display())]
    NotAPod {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong and what is wanted.
        reason: String,
    },
    /// A field has the wrong type or value for the Pod schema.
    #[error("{path}: invalid pod: {field}: {message}", path = .path.display())]
    Field {
        /// The manifest file.
        path: PathBuf,
        /// Path of the field, e.g. `spec.containers[0].env[0].value`.
        field: String,
        /// The decoder's message.
        message: String,
    },
}

/// Decodes the bytes of the manifest `path` into a Pod (`tryDecodeSinglePod`).
///
/// Callers should refuse files over [`MAX_MANIFEST_BYTES`] before reading them; this checks too.
pub fn decode_pod(bytes: &[u8], path: &Path) -> Result<DecodedPod, DecodeError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(DecodeError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotText {
        path: path.to_path_buf(),
        offset: e.valid_up_to(),
        reason: "invalid UTF-8",
    })?;
    if let Some(offset) = text.find('\0') {
        return Err(DecodeError::NotText {
            path: path.to_path_buf(),
            offset,
            reason: "a NUL byte",
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let (raw, extra) = parse_documents(text, path)?;
    let mut warnings = Vec::new();
    if extra > 0 {
        warnings.push(DecodeWarning::ExtraDocuments { count: extra });
    }
    check_kind(&raw, path)?;
    let pod: Pod = serde_path_to_error::deserialize(&raw).map_err(|e| DecodeError::Field {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(DecodeError::NotAPod {
            path: path.to_path_buf(),
            reason: "name is needed for the pod".into(),
        });
    }
    // Fields present in the input but gone after a round trip through Pod are unknown.
    if let Ok(typed) = serde_json::to_value(&pod) {
        let mut field = String::new();
        unknown_fields(&raw, &typed, &mut field, &mut warnings);
    }
    Ok(DecodedPod { pod, raw, warnings })
}

/// The first document as JSON, and how many non-empty documents follow it.
fn parse_documents(text: &str, path: &Path) -> Result<(Value, usize), DecodeError> {
    // Like utilyaml.ToJSON, input that starts with '{' is JSON. A YAML flow mapping also starts
    // with '{', so if JSON fails we try YAML before reporting the JSON error.
    if text.trim_start().starts_with('{') {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        match stream.next() {
            Some(Ok(first)) => {
                let mut rest = 0;
                for item in stream {
                    match item {
                        Ok(_) => rest += 1,
                        // Trailing garbage, or JSON documents separated by `---` (YAML).
                        Err(source) => {
                            return parse_yaml(text, path).map_err(|_| DecodeError::Json {
                                path: path.to_path_buf(),
                                source,
                            });
                        }
                    }
                }
                return Ok((first, rest));
            }
            Some(Err(source)) => {
                return parse_yaml(text, path).map_err(|_| DecodeError::Json {
                    path: path.to_path_buf(),
                    source,
                });
            }
            None => {}
        }
    }
    parse_yaml(text, path)
}

fn parse_yaml(text: &str, path: &Path) -> Result<(Value, usize), DecodeError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| DecodeError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut docs = docs.into_iter().filter(|d| !d.is_null());
    let first = docs.next().ok_or_else(|| DecodeError::Empty {
        path: path.to_path_buf(),
    })?;
    Ok((first, docs.count()))
}

/// Requires an object with `kind: Pod` and `apiVersion: v1`, as the core scheme does.
fn check_kind(raw: &Value, path: &Path) -> Result<(), DecodeError> {
    let not_a_pod = |reason: String| DecodeError::NotAPod {
        path: path.to_path_buf(),
        reason,
    };
    let Value::Object(obj) = raw else {
        return Err(not_a_pod(format!(
            "the document is {}, want an object with kind: Pod and apiVersion: v1",
            json_kind(raw)
        )));
    };
    match obj.get("kind") {
        Some(Value::String(kind)) if kind == "Pod" => {}
        Some(Value::String(kind)) => {
            return Err(not_a_pod(format!(
                "kind is {kind:?}, want \"Pod\": a manifest file holds exactly one Pod"
            )));
        }
        Some(other) => {
            return Err(not_a_pod(format!(
                "kind is {}, want the string \"Pod\"",
                json_kind(other)
            )));
        }
        None => return Err(not_a_pod("kind is missing: add `kind: Pod`".into())),
    }
    match obj.get("apiVersion") {
        Some(Value::String(v)) if v == "v1" => Ok(()),
        Some(Value::String(v)) => Err(not_a_pod(format!(
            "apiVersion is {v:?}, want \"v1\" for kind Pod"
        ))),
        Some(other) => Err(not_a_pod(format!(
            "apiVersion is {}, want the string \"v1\"",
            json_kind(other)
        ))),
        None => Err(not_a_pod(
            "apiVersion is missing: add `apiVersion: v1`".into(),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Walks `input` against `typed` (the same document after a round trip through Pod) and
/// records every input field with a non-null value that the round trip dropped.
fn unknown_fields(input: &Value, typed: &Value, path: &mut String, out: &mut Vec<DecodeWarning>) {
    match (input, typed) {
        (Value::Object(input), Value::Object(typed)) => {
            for (key, value) in input {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match typed.get(key) {
                    Some(t) => unknown_fields(value, t, path, out),
                    None if !value.is_null() => out.push(DecodeWarning::UnknownField {
                        field: path.clone(),
                    }),
                    None => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(input), Value::Array(typed)) => {
            for (i, (a, b)) in input.iter().zip(typed).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                unknown_fields(a, b, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<DecodedPod, DecodeError> {
        decode_pod(
            text.as_bytes(),
            Path::new("/etc/kubernetes/manifests/web.yaml"),
        )
    }

    fn err(text: &str) -> String {
        decode(text).expect_err("decode should fail").to_string()
    }

    const WEB: &str = "\
# a comment
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    command: [sleep, '1000']
    resources:
      limits: {cpu: 0.5, memory: 128974848}
";

    #[test]
    fn decodes_yaml() {
        let d = decode(WEB).unwrap();
        assert_eq!(d.pod.metadata.name.as_deref(), Some("web"));
        let c = &d.pod.spec.as_ref().unwrap().containers[0];
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["cpu"].0, "0.5");
        assert_eq!(limits["memory"].0, "128974848");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(d.raw["metadata"]["name"], "web");
    }

    #[test]
    fn decodes_json_and_yaml_flow_mappings() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
            "spec":{"containers":[{"name":"c"}]}}"#;
        assert_eq!(
            decode(json).unwrap().pod.metadata.name.as_deref(),
            Some("j")
        );
        let flow =
            "{apiVersion: v1, kind: Pod, metadata: {name: f}, spec: {containers: [{name: c}]}}";
        assert_eq!(
            decode(flow).unwrap().pod.metadata.name.as_deref(),
            Some("f")
        );
        let tabs = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"t\"}\n}";
        assert_eq!(
            decode(tabs).unwrap().pod.metadata.name.as_deref(),
            Some("t")
        );
        let e = err(r#"{"apiVersion": "v1", "kind": "Pod",, }"#);
        assert!(e.contains("couldn't parse as JSON"), "{e}");
        let e = err(&format!("{json} trailing"));
        assert!(e.contains("couldn't parse as JSON"), "{e}");
        let two = decode(&format!("{json}\n{json}")).unwrap();
        assert_eq!(
            two.warnings,
            vec![DecodeWarning::ExtraDocuments { count: 1 }]
        );
        let dashed = decode(&format!("{json}\n---\n{json}\n")).unwrap();
        assert_eq!(
            dashed.warnings,
            vec![DecodeWarning::ExtraDocuments { count: 1 }]
        );
    }

    #[test]
    fn same_object_as_yaml_or_json_has_the_same_raw_value() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"containers":[{"name":"c","command":["sleep","1000"],
            "resources":{"limits":{"cpu":0.5,"memory":128974848}}}]}}"#;
        assert_eq!(decode(json).unwrap().raw, decode(WEB).unwrap().raw);
    }

    #[test]
    fn first_document_only_with_a_warning() {
        let text =
            format!("---\n{WEB}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: two}}\n---\n");
        let d = decode(&text).unwrap();
        assert_eq!(d.pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(d.warnings, vec![DecodeWarning::ExtraDocuments { count: 1 }]);
    }

    #[test]
    fn unknown_fields_are_reported_with_paths() {
        let text = WEB.replace("    command:", "    imagePullPolicyy: Always\n    command:")
            + "  hostNetwrok: true\nstatus:\n  phase: Running\n  bogus: null\nextra: 1\n";
        let d = decode(&text).unwrap();
        let mut fields: Vec<String> = d.warnings.iter().map(ToString::to_string).collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                "unknown field \"extra\" is ignored (check its spelling)",
                "unknown field \"spec.containers[0].imagePullPolicyy\" is ignored (check its spelling)",
                "unknown field \"spec.hostNetwrok\" is ignored (check its spelling)",
            ]
        );
    }

    #[test]
    fn known_but_null_or_empty_fields_are_not_unknown() {
        let text = WEB.to_string()
            + "  volumes: []\n  nodeSelector: {}\n  securityContext: {}\nstatus: {}\n";
        let text = text.replace("  name: web\n", "  name: web\n  creationTimestamp: null\n");
        let d = decode(&text).unwrap();
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: c\n    env:\n    - name: A\n      value: true\n",
        );
        assert!(e.starts_with("/etc/kubernetes/manifests/web.yaml: invalid pod: spec.containers[0].env[0].value: invalid type: boolean"), "{e}");
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: http\n",
        );
        assert!(
            e.contains("spec.containers[0].ports[0].containerPort"),
            "{e}"
        );
    }

    #[test]
    fn kind_and_api_version_are_required() {
        for (text, want) in [
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
                "invalid pod: kind is \"Deployment\", want \"Pod\"",
            ),
            (
                "apiVersion: v1\nkind: PodList\nitems: []\n",
                "invalid pod: kind is \"PodList\"",
            ),
            (
                "apiVersion: v1\nmetadata: {name: x}\n",
                "invalid pod: kind is missing",
            ),
            (
                "kind: Pod\nmetadata: {name: x}\n",
                "invalid pod: apiVersion is missing",
            ),
            (
                "apiVersion: v2\nkind: Pod\nmetadata: {name: x}\n",
                "invalid pod: apiVersion is \"v2\", want \"v1\"",
            ),
            ("- a\n- b\n", "invalid pod: the document is a list"),
            ("just a string\n", "invalid pod: the document is a string"),
            (
                "apiVersion: v1\nkind: Pod\nspec: {}\n",
                "invalid pod: name is needed for the pod",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: ''}\n",
                "invalid pod: name is needed for the pod",
            ),
            (
                "# only a comment\n---\n",
                "invalid pod: the file holds no document",
            ),
            ("", "invalid pod: the file holds no document"),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("/etc/kubernetes/manifests/web.yaml: "), "{e}");
        }
    }

    #[test]
    fn binary_oversized_and_broken_yaml() {
        let e = decode_pod(&[0x7f, b'E', b'L', b'F', 0xff, 0x00], Path::new("/m/bin")).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a text file (invalid UTF-8 at byte 4)"),
            "{e}"
        );
        let e = decode_pod(b"kind: Pod\0\0", Path::new("/m/nul")).unwrap_err();
        assert!(e.to_string().contains("a NUL byte at byte 9"), "{e}");
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let e = decode_pod(&big, Path::new("/m/big")).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { size, .. } if size == MAX_MANIFEST_BYTES + 1));
        let e = err("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n\tbad: tab\n");
        assert!(e.contains("couldn't parse as YAML"), "{e}");
        let e = err("apiVersion: v1\nkind: Pod\nkind: Pod\n");
        assert!(e.contains("couldn't parse as YAML"), "{e}");
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let text = format!("\u{feff}{WEB}");
        assert!(decode(&text).is_ok());
    }
}
