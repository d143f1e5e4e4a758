//! Pod sysctls: which a pod may set (the safe set, plus `--allowed-unsafe-sysctls`), in which
//! namespace each one lives, and the admit check.
//!
//! Mirrors `pkg/kubelet/sysctl` (`SafeSysctlAllowlist`, `NamespacedBy`, `patternAllowlist`,
//! reason `SysctlForbidden` with `forbidden sysctl: ...`) and
//! `component-helpers/node/util/sysctl` (`NormalizeName`). The sandbox writes the allowed
//! ones into the pod's own namespaces when it makes them (`crate::sandbox`, as CRI-O's pinns
//! does). Pods share the node's network namespace until pod networking lands, so every `net.*`
//! sysctl is refused as the kubelet refuses it for a `hostNetwork` pod.

/// The kubelet's admission reason.
pub const SYSCTL_FORBIDDEN: &str = "SysctlForbidden";

/// The kubelet's safe sysctls (1.32, kernels this agent supports): namespaced, and harmless to
/// the node and its other pods.
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// The namespace a sysctl belongs to (`NamespacedBy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`.
    Ipc,
    /// `net.*`.
    Net,
    /// Not namespaced: it would change the node.
    Unknown,
}

/// `NormalizeName`: `/` separators become `.` (a `.` inside a `/`-form component becomes `/`).
pub fn normalize_name(name: &str) -> String {
    let first_sep = name.find(['.', '/']);
    match first_sep {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// `NamespacedBy` of a normalized name (a pattern's prefix works too).
pub fn namespaced_by(name: &str) -> Namespace {
    if name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name == "kernel.sem"
        || name.starts_with("fs.mqueue.")
    {
        Namespace::Ipc
    } else if name.starts_with("net.") {
        Namespace::Net
    } else {
        Namespace::Unknown
    }
}

/// The sysctls pods may set: exact names and `prefix*` patterns, with their namespaces.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    exact: Vec<(String, Namespace)>,
    prefixes: Vec<(String, Namespace)>,
    /// Pods that are not `hostNetwork` get a network namespace of their own (the node has a
    /// CNI network); otherwise every pod is on the node's network.
    pod_network: bool,
}

impl Allowlist {
    /// The safe set plus `unsafe_patterns` (`--allowed-unsafe-sysctls`: names or `prefix*`).
    /// A pattern outside the IPC and network namespaces is an error (`NewAllowlist`).
    pub fn new(unsafe_patterns: &[String]) -> Result<Allowlist, String> {
        let mut a = Allowlist::default();
        for s in SAFE_SYSCTLS {
            a.exact.push((s.to_string(), namespaced_by(s)));
        }
        for p in unsafe_patterns {
            let p = normalize_name(p);
            let ns = namespaced_by(p.trim_end_matches('*'));
            if ns == Namespace::Unknown {
                return Err(format!("the sysctls [{p}] are not known to be namespaced"));
            }
            match p.strip_suffix('*') {
                Some(prefix) => a.prefixes.push((prefix.to_string(), ns)),
                None => a.exact.push((p.clone(), ns)),
            }
        }
        Ok(a)
    }

    /// The same list on a node whose pods get their own network namespace (`pod_network`), or
    /// not: then `net.*` sysctls are refused for every pod, as for a `hostNetwork` one.
    pub fn with_pod_network(mut self, pod_network: bool) -> Allowlist {
        self.pod_network = pod_network;
        self
    }

    /// `validateSysctl`: allowed, and not in a namespace the pod shares with the node.
    fn validate(&self, name: &str, host_net: bool, host_ipc: bool) -> Result<(), String> {
        let name = normalize_name(name);
        let ns = self
            .exact
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(p, _)| name.starts_with(p.as_str()))
            })
            .map(|(_, ns)| *ns)
            .ok_or_else(|| format!("{name:?} not allowlisted"))?;
        match ns {
            Namespace::Ipc if host_ipc => {
                Err(format!("{name:?} not allowed with host ipc enabled"))
            }
            Namespace::Net if host_net && !self.pod_network => Err(format!(
                "{name:?} not allowed with host net enabled (this node's pods share its network: it has no CNI network)"
            )),
            Namespace::Net if host_net => {
                Err(format!("{name:?} not allowed with host net enabled"))
            }
            _ => Ok(()),
        }
    }

    /// The admit check: the first forbidden sysctl of `pod`, as the kubelet's message
    /// (`forbidden sysctl: ...`). A pod is on the node's network with `hostNetwork`, or when
    /// the node gives pods no network of their own.
    pub fn admit(&self, pod: &k8s_openapi::api::core::v1::Pod) -> Result<(), String> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(());
        };
        let host_ipc = spec.host_ipc.unwrap_or(false);
        let host_net = spec.host_network.unwrap_or(false) || !self.pod_network;
        for s in pod_sysctls(pod) {
            self.validate(&s.0, host_net, host_ipc)
                .map_err(|e| format!("forbidden sysctl: {e}"))?;
        }
        Ok(())
    }
}

/// The file of sysctl `name` (dotted or slashed) under `/proc/sys`, as runc writes it: dots are
/// directories, slashes dots. `None` for a name that is not plain segments (it could leave
/// `/proc/sys`); validation refuses those before, this is the last guard.
pub fn proc_sys_path(name: &str) -> Option<String> {
    let path: String = name
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    std::path::Path::new(&path)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| format!("/proc/sys/{path}"))
}

/// The pod's `securityContext.sysctls`, names normalized, in order.
pub fn pod_sysctls(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .map(|l| {
            l.iter()
                .map(|s| (normalize_name(&s.name), s.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(sysctls: serde_json::Value, host_ipc: bool) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"hostIPC": host_ipc, "securityContext": {"sysctls": sysctls},
                     "containers": [{"name": "c"}]}
        }))
        .unwrap()
    }

    #[test]
    fn names_and_namespaces() {
        assert_eq!(
            normalize_name("kernel/shm_rmid_forced"),
            "kernel.shm_rmid_forced"
        );
        assert_eq!(
            normalize_name("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(
            normalize_name("net.ipv4.ip_local_port_range"),
            "net.ipv4.ip_local_port_range"
        );
        assert_eq!(namespaced_by("kernel.msgmax"), Namespace::Ipc);
        assert_eq!(namespaced_by("fs.mqueue.msg_max"), Namespace::Ipc);
        assert_eq!(namespaced_by("net.core.somaxconn"), Namespace::Net);
        assert_eq!(namespaced_by("vm.swappiness"), Namespace::Unknown);
    }

    #[test]
    fn the_kubelets_admit_rules() {
        let safe = Allowlist::new(&[]).unwrap();
        let one = |name: &str| serde_json::json!([{"name": name, "value": "1"}]);
        assert_eq!(
            safe.admit(&pod(one("kernel.shm_rmid_forced"), false)),
            Ok(())
        );
        assert_eq!(
            safe.admit(&pod(one("kernel.shm_rmid_forced"), true))
                .unwrap_err(),
            "forbidden sysctl: \"kernel.shm_rmid_forced\" not allowed with host ipc enabled"
        );
        assert_eq!(
            safe.admit(&pod(one("kernel.msgmax"), false)).unwrap_err(),
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        assert!(
            safe.admit(&pod(one("net.ipv4.tcp_syncookies"), false))
                .unwrap_err()
                .contains("not allowed with host net enabled")
        );
        // With pod networking, a pod's net.* sysctls are its own; a hostNetwork pod's are not.
        let net = Allowlist::new(&[]).unwrap().with_pod_network(true);
        assert_eq!(
            net.admit(&pod(one("net.ipv4.tcp_syncookies"), false)),
            Ok(())
        );
        let mut host = pod(one("net.ipv4.tcp_syncookies"), false);
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(
            net.admit(&host).unwrap_err(),
            "forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
        );
        let with = Allowlist::new(&["kernel.msg*".into(), "kernel/sem".into()]).unwrap();
        assert_eq!(with.admit(&pod(one("kernel.msgmax"), false)), Ok(()));
        assert_eq!(with.admit(&pod(one("kernel/sem"), false)), Ok(()));
        assert_eq!(
            Allowlist::new(&["vm.swappiness".into()]).unwrap_err(),
            "the sysctls [vm.swappiness] are not known to be namespaced"
        );
    }
}
