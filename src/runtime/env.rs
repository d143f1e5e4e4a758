//! A container's environment and command line, as the kubelet builds them.
//!
//! Mirrors `kubelet_pods.go` `makeEnvironmentVariables` (values, `fieldRef`, `resourceFieldRef`)
//! and `third_party/forked/golang/expansion` (the `$(VAR)` syntax in env values, `command` and
//! `args`). There is no image yet, so there is no image environment: a `PATH` is supplied when the
//! pod does not set one, as containerd's default spec does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

use crate::api::quantity::Quantity;

/// containerd's default PATH for a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An env var that cannot be resolved; the kubelet reports these as `CreateContainerConfigError`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvError {
    #[error("env {name}: unsupported fieldRef fieldPath {path:?}")]
    FieldPath { name: String, path: String },
    #[error("env {name}: unsupported resourceFieldRef resource {resource:?}")]
    Resource { name: String, resource: String },
    #[error("env {name}: static pods may not reference {what}")]
    Forbidden { name: String, what: &'static str },
    #[error("env {name}: invalid divisor {divisor:?}")]
    Divisor { name: String, divisor: String },
}

/// Node facts an env var may refer to, and the pod's IP.
#[derive(Clone, Debug, Default)]
pub struct NodeEnv {
    /// `status.hostIP` (and `status.podIP` of a pod on the node's network).
    pub host_ip: String,
    /// `status.podIP` of a pod with a network of its own (its sandbox's first IP).
    pub pod_ip: Option<String>,
    /// Allocatable milli-CPU: the value of `limits.cpu` for a container without a CPU limit.
    pub allocatable_milli_cpu: i64,
    /// Allocatable memory in bytes: `limits.memory` for a container without a memory limit.
    pub allocatable_memory: i64,
    /// Allocatable ephemeral storage in bytes.
    pub allocatable_ephemeral_storage: i64,
}

/// The container's environment, in order, with `$(VAR)` references expanded.
pub fn make_environment(
    pod: &Pod,
    container: &Container,
    node: &NodeEnv,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = resolve(pod, container, node, var)?;
        let value = expand(&value, &|k| map.get(k).cloned());
        map.insert(var.name.clone(), value.clone());
        out.retain(|(k, _)| k != &var.name);
        out.push((var.name.clone(), value));
    }
    if !map.contains_key("PATH") {
        out.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(out)
}

/// `command` + `args` with `$(VAR)` expanded from the container's environment
/// (`kubecontainer.ExpandContainerCommandAndArgs`).
pub fn command_line(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |k: &str| map.get(k).map(|v| v.to_string());
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|s| expand(s, &lookup))
        .collect()
}

fn resolve(
    pod: &Pod,
    container: &Container,
    node: &NodeEnv,
    var: &EnvVar,
) -> Result<String, EnvError> {
    let Some(from) = &var.value_from else {
        return Ok(var.value.clone().unwrap_or_default());
    };
    let name = var.name.clone();
    if from.secret_key_ref.is_some() {
        return Err(EnvError::Forbidden {
            name,
            what: "secrets",
        });
    }
    if from.config_map_key_ref.is_some() {
        return Err(EnvError::Forbidden {
            name,
            what: "configmaps",
        });
    }
    if let Some(f) = &from.field_ref {
        return field_value(pod, node, &f.field_path).ok_or(EnvError::FieldPath {
            name,
            path: f.field_path.clone(),
        });
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match &r.container_name {
            Some(n) if !n.is_empty() => container_named(pod, n).unwrap_or(container),
            _ => container,
        };
        return resource_value(target, node, &r.resource, r.divisor.as_ref().map(|d| &d.0))
            .map_err(|e| match e {
                ResErr::Resource => EnvError::Resource {
                    name: name.clone(),
                    resource: r.resource.clone(),
                },
                ResErr::Divisor(d) => EnvError::Divisor {
                    name: name.clone(),
                    divisor: d,
                },
            });
    }
    Ok(String::new())
}

fn field_value(pod: &Pod, node: &NodeEnv, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let sub = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" | "status.podIPs" => node.pod_ip.clone().unwrap_or(node.host_ip.clone()),
        "metadata.labels" | "metadata.annotations" => {
            let map = if path == "metadata.labels" {
                m.labels.as_ref()
            } else {
                m.annotations.as_ref()
            };
            map.map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
        }
        _ => {
            if let Some(key) = sub("metadata.labels['") {
                m.labels.as_ref()?.get(&key).cloned().unwrap_or_default()
            } else if let Some(key) = sub("metadata.annotations['") {
                m.annotations
                    .as_ref()?
                    .get(&key)
                    .cloned()
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// A downward API volume file's `fieldRef` value (`fieldpath.ExtractFieldPathAsString`; labels
/// and annotations as sorted `key="value"` lines). `None` for a path volumes do not offer.
pub fn volume_field_value(pod: &Pod, path: &str) -> Option<String> {
    let allowed = matches!(
        path,
        "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "metadata.labels"
            | "metadata.annotations"
    ) || path.starts_with("metadata.labels['")
        || path.starts_with("metadata.annotations['");
    allowed
        .then(|| field_value(pod, &NodeEnv::default(), path))
        .flatten()
}

/// A downward API volume file's `resourceFieldRef` value: `resource` of the container named
/// `container` (limits fall back to the node's allocatable), divided by `divisor`, rounded up.
pub fn volume_resource_value(
    pod: &Pod,
    container: &str,
    node: &NodeEnv,
    resource: &str,
    divisor: Option<&String>,
) -> Result<String, String> {
    let c = container_named(pod, container)
        .ok_or_else(|| format!("resourceFieldRef: no container {container:?} in the pod"))?;
    resource_value(c, node, resource, divisor).map_err(|e| match e {
        ResErr::Resource => format!("resourceFieldRef: unsupported resource {resource:?}"),
        ResErr::Divisor(d) => format!("resourceFieldRef: invalid divisor {d:?}"),
    })
}

/// The container (regular or init) of `pod` named `name`.
fn container_named<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
}

enum ResErr {
    Resource,
    Divisor(String),
}

/// `resourceFieldRef`: the value divided by the divisor, rounded up; limits fall back to node
/// allocatable when unset (`kubelet_resources.go`).
fn resource_value(
    c: &Container,
    node: &NodeEnv,
    resource: &str,
    divisor: Option<&String>,
) -> Result<String, ResErr> {
    let get = |kind: &str, res: &str| -> Option<Quantity> {
        let r = c.resources.as_ref()?;
        let list = if kind == "limits" {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }?;
        Quantity::parse(&list.get(res)?.0).ok()
    };
    let (kind, res) = resource.split_once('.').ok_or(ResErr::Resource)?;
    if kind != "limits" && kind != "requests" {
        return Err(ResErr::Resource);
    }
    let divisor = match divisor {
        Some(d) if !d.is_empty() => {
            Some(Quantity::parse(d).map_err(|_| ResErr::Divisor(d.clone()))?)
        }
        _ => None,
    };
    let div_or = |default_milli: i64| {
        divisor
            .as_ref()
            .map(|d| d.milli_value())
            .filter(|m| *m > 0)
            .unwrap_or(default_milli)
    };
    let ceil = |a: i64, b: i64| (a + b - 1) / b;
    match res {
        "cpu" => {
            let milli = get(kind, "cpu")
                .map(|q| q.milli_value())
                .unwrap_or(if kind == "limits" {
                    node.allocatable_milli_cpu
                } else {
                    0
                });
            Ok(ceil(milli, div_or(1000)).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let fallback = if res == "memory" {
                node.allocatable_memory
            } else {
                node.allocatable_ephemeral_storage
            };
            let v = get(kind, res)
                .map(|q| q.value())
                .unwrap_or(if kind == "limits" { fallback } else { 0 });
            let d = div_or(1000) / 1000;
            Ok(ceil(v, d.max(1)).to_string())
        }
        _ => Err(ResErr::Resource),
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` escapes a `$`, and an
/// undefined reference stays as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&input[last..i]);
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(end) => {
                        let name = &input[i + 2..i + 2 + end];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                    }
                    None => {
                        out.push_str(&input[i..]);
                        i = bytes.len();
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
            last = i;
        } else {
            i += 1;
        }
    }
    if last < bytes.len() {
        out.push_str(&input[last..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(k: &str) -> Option<String> {
        match k {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        // Cases from third_party/forked/golang/expansion/expand_test.go.
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_A)bar", "foo\\Abar"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("$", "$"),
            ("", ""),
            ("ü$(VAR_A)ü", "üAü"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &look), want, "input {input:?}");
        }
    }
}
