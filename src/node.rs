//! The node: its name, labels, address, capacity and allocatable resources.
//!
//! Mirrors `pkg/kubelet/kubelet_node_status.go` (labels, addresses, capacity) and
//! `pkg/kubelet/cm/node_container_manager_linux.go` (`GetNodeAllocatableAbsolute`):
//! allocatable = capacity − system-reserved − kube-reserved − the hard eviction threshold.
//! Capacity comes from the machine as cAdvisor reports it: online CPUs, `MemTotal`, the statfs
//! of the root dir's filesystem, and the pid limit.

use std::collections::BTreeMap;
use std::path::Path;

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
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
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
}
