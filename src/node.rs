//! The node: its name, labels, address, capacity and allocatable resources.
//!
//! Mirrors `pkg/kubelet/kubelet_node_status.go` (labels, addresses, capacity) and
//! `pkg/kubelet/cm/node_container_manager_linux.go` (`GetNodeAllocatableAbsolute`):
//! allocatable = capacity − system-reserved − kube-reserved − the hard eviction threshold.
//! Capacity comes from the machine as cAdvisor reports it: online CPUs, `MemTotal`, the statfs
//! of the root dir's filesystem, and the pid limit.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::quantity::{Format, Quantity};

/// The version this agent reports as its kubelet's (`nodeInfo.kubeletVersion`, `/version`).
pub const KUBELET_VERSION: &str = "v1.32.0-minikubelet";
/// `nodeInfo.containerRuntimeVersion`: `<runtime name>://<version>`, as containerd reports
/// `containerd://1.7.x`; here the runtime is the agent's own shims.
pub const CONTAINER_RUNTIME_VERSION: &str = "minikubelet://0.1.0";

/// An amount of each resource the kubelet tracks for a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU in milli-cores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage (the root dir's filesystem) in bytes.
    pub ephemeral_storage: i64,
    /// Pod count.
    pub pods: i64,
    /// Process IDs.
    pub pids: i64,
}

/// What the agent knows about its node.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Node name (hostname or `--hostname-override`, lowercased).
    pub name: String,
    /// Labels: `--node-labels` plus the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// The node's IP (also every pod's IP until pods get a network).
    pub host_ip: String,
    /// What the machine has.
    pub capacity: Resources,
    /// What pods may use.
    pub allocatable: Resources,
}

/// Inputs for the allocatable computation.
#[derive(Clone, Debug, Default)]
pub struct Reservations {
    /// system-reserved + kube-reserved.
    pub reserved: Resources,
    /// Hard `memory.available` threshold in bytes.
    pub eviction_memory: i64,
    /// Hard `nodefs.available` threshold in bytes.
    pub eviction_nodefs: i64,
}

/// Measure the machine. `root_dir` is the agent's root dir (its filesystem is nodefs).
pub fn capacity(proc_root: &Path, root_dir: &Path, max_pods: i64) -> Resources {
    let milli_cpu = std::thread::available_parallelism().map_or(1, |n| n.get() as i64) * 1000;
    let memory = mem_total(proc_root).unwrap_or(0);
    let ephemeral_storage = nix::sys::statvfs::statvfs(root_dir)
        .map(|s| s.blocks() as i64 * s.fragment_size() as i64)
        .unwrap_or(0);
    let read_num = |f: &str| -> Option<i64> {
        std::fs::read_to_string(proc_root.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let pids = match (
        read_num("sys/kernel/pid_max"),
        read_num("sys/kernel/threads-max"),
    ) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        _ => 0,
    };
    Resources {
        milli_cpu,
        memory,
        ephemeral_storage,
        pods: max_pods,
        pids,
    }
}

/// `MemTotal` from meminfo, in bytes.
pub fn mem_total(proc_root: &Path) -> Option<i64> {
    meminfo_bytes(proc_root, "MemTotal:")
}

/// `SwapTotal` from meminfo, in bytes (cadvisor's `MachineInfo.SwapCapacity`).
pub fn swap_total(proc_root: &Path) -> Option<i64> {
    meminfo_bytes(proc_root, "SwapTotal:")
}

/// One `<key> <n> kB` line of meminfo, in bytes (`key` includes the colon).
pub fn meminfo_bytes(proc_root: &Path, key: &str) -> Option<i64> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// allocatable = capacity − reserved − hard eviction threshold, floored at zero.
pub fn allocatable(capacity: &Resources, r: &Reservations) -> Resources {
    let sub = |a: i64, b: i64| (a - b).max(0);
    Resources {
        milli_cpu: sub(capacity.milli_cpu, r.reserved.milli_cpu),
        memory: sub(capacity.memory, r.reserved.memory + r.eviction_memory),
        ephemeral_storage: sub(
            capacity.ephemeral_storage,
            r.reserved.ephemeral_storage + r.eviction_nodefs,
        ),
        pods: capacity.pods,
        pids: sub(capacity.pids, r.reserved.pids),
    }
}

/// The node's labels: the user's plus `kubernetes.io/hostname`, `kubernetes.io/os` and
/// `kubernetes.io/arch` (the user's cannot override these, as with the kubelet).
pub fn labels(name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = extra.clone();
    l.insert("kubernetes.io/hostname".into(), name.to_string());
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), go_arch().into());
    l.insert("beta.kubernetes.io/os".into(), "linux".into());
    l.insert("beta.kubernetes.io/arch".into(), go_arch().into());
    l
}

/// The architecture as Go names it (`GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The node IP: the first global IPv4 address of the interface that holds the default route
/// (what `kubelet --node-ip` defaults to), else 127.0.0.1.
pub fn host_ip(proc_root: &Path) -> String {
    let iface = std::fs::read_to_string(proc_root.join("net/route"))
        .ok()
        .and_then(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[1] == "00000000")
                .map(|f| f[0].to_string())
        });
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return "127.0.0.1".into();
    };
    let mut fallback = None;
    for a in addrs {
        let Some(ip) = a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())) else {
            continue;
        };
        if ip.is_loopback() {
            continue;
        }
        if Some(&a.interface_name) == iface.as_ref() {
            return ip.to_string();
        }
        fallback.get_or_insert(ip.to_string());
    }
    fallback.unwrap_or_else(|| "127.0.0.1".into())
}

/// The condition types the kubelet reports, in its order (`defaultNodeStatusFuncs`).
pub const NODE_CONDITION_TYPES: [&str; 4] =
    ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// The kubelet's reason and message for a condition type and status
/// (`pkg/kubelet/nodestatus/setters.go`); `None` for a type it does not set.
pub fn condition_text(type_: &str, status: bool) -> Option<(&'static str, &'static str)> {
    Some(match (type_, status) {
        ("MemoryPressure", false) => (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("MemoryPressure", true) => (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        ("DiskPressure", false) => ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("DiskPressure", true) => ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("PIDPressure", false) => (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ("PIDPressure", true) => (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        ("Ready", true) => ("KubeletReady", "kubelet is posting ready status"),
        ("Ready", false) => ("KubeletNotReady", "kubelet is not ready"),
        _ => return None,
    })
}

/// The conditions of a healthy node whose state changed at `since`: no pressure, Ready. The
/// eviction manager's report replaces them once it has measured the node.
pub fn default_node_conditions(since: jiff::Timestamp) -> Vec<NodeCondition> {
    NODE_CONDITION_TYPES
        .iter()
        .map(|t| {
            let status = *t == "Ready";
            let (reason, message) = condition_text(t, status).unwrap_or_default();
            NodeCondition {
                type_: (*t).to_string(),
                status: if status { "True" } else { "False" }.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(Time(since)),
                last_transition_time: Some(Time(since)),
            }
        })
        .collect()
}

/// Facts about the machine that the Node object's `nodeInfo` reports (cAdvisor's `MachineInfo`
/// and `VersionInfo` in the kubelet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SystemInfo {
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/sys/class/dmi/id/product_uuid` (empty if unreadable).
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os_image: String,
}

/// Read [`SystemInfo`] from `proc_root` (`/proc`), `etc_root` (`/etc`) and `sys_root` (`/sys`).
pub fn system_info(proc_root: &Path, etc_root: &Path, sys_root: &Path) -> SystemInfo {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    SystemInfo {
        machine_id: read(&etc_root.join("machine-id")),
        system_uuid: read(&sys_root.join("class/dmi/id/product_uuid")),
        boot_id: read(&proc_root.join("sys/kernel/random/boot_id")),
        kernel_version: read(&proc_root.join("sys/kernel/osrelease")),
        os_image: os_image(
            &std::fs::read_to_string(etc_root.join("os-release")).unwrap_or_default(),
        ),
    }
}

/// `PRETTY_NAME` of an os-release file, unquoted; "Linux" without one (cAdvisor's default).
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// `capacity`/`allocatable` as the API writes them: cpu, memory, ephemeral-storage, pods and
/// the (zero) huge page sizes the kubelet always lists.
fn resource_list(
    r: &Resources,
) -> BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    [
        ("cpu", Quantity::new_milli(r.milli_cpu, Format::DecimalSI)),
        (
            "ephemeral-storage",
            Quantity::new(r.ephemeral_storage, Format::BinarySI),
        ),
        ("hugepages-1Gi", Quantity::ZERO),
        ("hugepages-2Mi", Quantity::ZERO),
        ("memory", Quantity::new(r.memory, Format::BinarySI)),
        ("pods", Quantity::new(r.pods, Format::DecimalSI)),
    ]
    .into_iter()
    .map(|(k, q)| (k.to_string(), q.to_api()))
    .collect()
}

/// The UID the Node object gets: stable for a machine and node name (the API server would
/// assign a random one at registration; there is no registration here).
pub fn node_uid(name: &str, machine_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut parts = [0u64; 2];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (i, name, machine_id).hash(&mut h);
        *p = h.finish();
    }
    let hex = format!("{:016x}{:016x}", parts[0], parts[1]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl NodeFacts {
    /// The v1 Node object the kubelet would register and keep updated
    /// (`initialNode` + `setNodeStatus`): labels, capacity, allocatable, `conditions`,
    /// `nodeInfo`, addresses (InternalIP and Hostname) and the kubelet's endpoint.
    /// Heartbeat times are `now`: the status is built on every read, not posted every 10 s;
    /// a condition without a transition time gets `created`.
    pub fn to_node_object(
        &self,
        info: &SystemInfo,
        conditions: &[NodeCondition],
        created: jiff::Timestamp,
        kubelet_port: u16,
        now: jiff::Timestamp,
    ) -> Node {
        let conditions = conditions
            .iter()
            .cloned()
            .map(|mut c| {
                c.last_heartbeat_time = Some(Time(now));
                c.last_transition_time.get_or_insert(Time(created));
                c
            })
            .collect();
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                uid: Some(node_uid(&self.name, &info.machine_id)),
                labels: Some(self.labels.clone()),
                annotations: Some(BTreeMap::from([
                    ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
                    (
                        "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                        "true".to_string(),
                    ),
                ])),
                creation_timestamp: Some(Time(created)),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: self.host_ip.clone(),
                    },
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: self.name.clone(),
                    },
                ]),
                allocatable: Some(resource_list(&self.allocatable)),
                capacity: Some(resource_list(&self.capacity)),
                conditions: Some(conditions),
                daemon_endpoints: Some(NodeDaemonEndpoints {
                    kubelet_endpoint: Some(DaemonEndpoint {
                        port: i32::from(kubelet_port),
                    }),
                }),
                node_info: Some(NodeSystemInfo {
                    architecture: go_arch().to_string(),
                    boot_id: info.boot_id.clone(),
                    container_runtime_version: CONTAINER_RUNTIME_VERSION.to_string(),
                    kernel_version: info.kernel_version.clone(),
                    kube_proxy_version: String::new(),
                    kubelet_version: KUBELET_VERSION.to_string(),
                    machine_id: info.machine_id.clone(),
                    operating_system: "linux".to_string(),
                    os_image: info.os_image.clone(),
                    system_uuid: info.system_uuid.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_subtracts_reserved_and_hard_threshold() {
        let cap = Resources {
            milli_cpu: 2000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
            pods: 110,
            pids: 4_194_304,
        };
        let r = Reservations {
            reserved: Resources {
                milli_cpu: 500,
                memory: 1 << 30,
                pids: 1000,
                ..Default::default()
            },
            eviction_memory: 100 << 20,
            eviction_nodefs: 10 << 30,
        };
        let a = allocatable(&cap, &r);
        assert_eq!(a.milli_cpu, 1500);
        assert_eq!(a.memory, (8 << 30) - (1 << 30) - (100 << 20));
        assert_eq!(a.ephemeral_storage, 90 << 30);
        assert_eq!(a.pods, 110);
        assert_eq!(a.pids, 4_193_304);
    }

    #[test]
    fn mem_total_reads_meminfo() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("meminfo"),
            "MemTotal:       24568732 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        assert_eq!(mem_total(d.path()), Some(24568732 * 1024));
    }

    #[test]
    fn os_image_from_os_release() {
        let cases = [
            (
                "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                "Debian GNU/Linux 12 (bookworm)",
            ),
            ("PRETTY_NAME='Alpine Linux v3.20'\n", "Alpine Linux v3.20"),
            ("PRETTY_NAME=Plain\n", "Plain"),
            ("NAME=x\n", "Linux"),
            ("", "Linux"),
        ];
        for (text, want) in cases {
            assert_eq!(os_image(text), want, "{text:?}");
        }
    }

    #[test]
    fn default_conditions() {
        let t0: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let c = default_node_conditions(t0);
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, NODE_CONDITION_TYPES);
        assert_eq!(c[3].status, "True");
        assert_eq!(c[3].reason.as_deref(), Some("KubeletReady"));
        assert_eq!(c[0].status, "False");
        assert_eq!(c[0].reason.as_deref(), Some("KubeletHasSufficientMemory"));
        assert_eq!(
            condition_text("PIDPressure", true),
            Some((
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available"
            ))
        );
    }

    #[test]
    fn node_object_fields() {
        let facts = NodeFacts {
            name: "node1".into(),
            labels: labels("node1", &BTreeMap::new()),
            host_ip: "10.0.0.5".into(),
            capacity: Resources {
                milli_cpu: 2000,
                memory: 8 << 30,
                ephemeral_storage: 100 << 30,
                pods: 110,
                pids: 1000,
            },
            allocatable: Resources {
                milli_cpu: 1500,
                memory: (8 << 30) - (100 << 20),
                ephemeral_storage: 90 << 30,
                pods: 110,
                pids: 1000,
            },
        };
        let info = SystemInfo {
            kernel_version: "6.1.0".into(),
            os_image: "Debian".into(),
            machine_id: "abc".into(),
            ..Default::default()
        };
        let now: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut conds = default_node_conditions(now);
        conds[3].last_transition_time = None;
        let node = facts.to_node_object(&info, &conds, now, 10250, now);
        let v = serde_json::to_value(&node).unwrap();
        assert_eq!(v["kind"], "Node");
        assert_eq!(v["status"]["capacity"]["cpu"], "2");
        assert_eq!(v["status"]["capacity"]["memory"], "8Gi");
        assert_eq!(v["status"]["allocatable"]["cpu"], "1500m");
        assert_eq!(v["status"]["allocatable"]["memory"], "8092Mi");
        assert_eq!(v["status"]["allocatable"]["pods"], "110");
        assert_eq!(v["status"]["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        assert_eq!(
            v["status"]["nodeInfo"]["containerRuntimeVersion"],
            CONTAINER_RUNTIME_VERSION
        );
        assert_eq!(v["status"]["nodeInfo"]["osImage"], "Debian");
        assert_eq!(v["status"]["addresses"][0]["type"], "InternalIP");
        assert_eq!(v["status"]["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(v["status"]["addresses"][1]["type"], "Hostname");
        assert_eq!(
            v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        assert_eq!(v["status"]["conditions"][3]["type"], "Ready");
        assert_eq!(
            v["status"]["conditions"][3]["lastTransitionTime"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(node_uid("node1", "abc"), v["metadata"]["uid"]);
        assert_eq!(node_uid("node1", "abc").len(), 36);
    }
}
