//! The stats provider: CPU, memory, filesystem and process figures of the node, the pods and
//! their containers, read from cgroupfs, `/proc` and statvfs when asked for.
//!
//! Mirrors `pkg/kubelet/stats` (the summary provider `summary.go`, the cAdvisor/CRI providers
//! and `helper.go`'s conversions) with the figures cAdvisor would read itself:
//!
//! | figure | read from |
//! |---|---|
//! | cpu `usageCoreNanoSeconds` | v1 `cpuacct.usage`, v2 `cpu.stat usage_usec`; node: `/proc/stat` |
//! | cpu `usageNanoCores` | the cumulative figure against the previous scrape ([`cpu::UsageCache`]) |
//! | memory `usageBytes` / `workingSetBytes` | `memory.usage_in_bytes` / `memory.current`, minus inactive file |
//! | memory `rssBytes`, `pageFaults`, `majorPageFaults` | `memory.stat`: v1 `total_rss`, `total_pgfault`, `total_pgmajfault`; v2 `anon`, `pgfault`, `pgmajfault` |
//! | memory `availableBytes` | limit − working set (node: MemTotal − working set) |
//! | nodefs, imagefs, logs capacity | statvfs of `--root-dir` (the image store is on it) |
//! | imagefs used | the image store's blobs and unpacked layers (`crate::images::Store`) |
//! | container `rootfs` used | `du` of its writable layer (the runtime's `writable_layer_usage`) |
//! | logs / ephemeral-storage used | `du` of the log directories and emptyDir volumes, plus the containers' writable layers |
//! | `rlimit` | `kernel.pid_max`/`threads-max` and `/proc/loadavg` |
//!
//! There is no cAdvisor and no housekeeping loop: everything is read on request, which costs a
//! few file reads per container per scrape and nothing between scrapes. The eviction manager
//! builds its signals on this provider's readers ([`fs`]), as the kubelet's reads the summary. The HTTP side is `crate::server::stats`; `/metrics/resource` renders the same
//! summary (`crate::metrics::resource`).

pub mod cpu;
pub mod fs;
pub mod network;
pub mod types;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::cgroup::{CgroupName, Layout};
use crate::cm::manager::ContainerManager;
use crate::runtime::{ContainerRuntime, FilesystemUsage};
use types::*;

/// What the provider reads from; one per agent, shared by the server's handlers.
pub struct StatsProvider {
    cm: ContainerManager,
    runtime: std::sync::Arc<dyn ContainerRuntime>,
    /// The image store (`None` with the `ImageRootfs` gate off): imagefs's `usedBytes`.
    images: Option<crate::images::Store>,
    proc_root: PathBuf,
    root_dir: PathBuf,
    pod_logs_dir: PathBuf,
    node_name: String,
    cpu: cpu::UsageCache,
    started: Time,
}

/// One scrape's view of a filesystem (statvfs), shared by every figure placed on it.
#[derive(Clone, Copy, Debug)]
struct Fs {
    time: Time,
    available: u64,
    capacity: u64,
    used: u64,
    inodes: u64,
    inodes_free: u64,
}

impl Fs {
    fn read(path: &Path) -> Option<Fs> {
        let s = nix::sys::statvfs::statvfs(path).ok()?;
        let frsize = s.fragment_size();
        Some(Fs {
            time: Time::now(),
            available: s.blocks_available().saturating_mul(frsize),
            capacity: s.blocks().saturating_mul(frsize),
            // cAdvisor's filesystem usage: blocks − free (reserved blocks count as used).
            used: s
                .blocks()
                .saturating_sub(s.blocks_free())
                .saturating_mul(frsize),
            inodes: s.files(),
            inodes_free: s.files_free(),
        })
    }

    /// The filesystem's own figures, `used` of a consumer on it (or of the whole filesystem).
    fn stats(&self, used: Option<(u64, u64)>) -> FsStats {
        let (used_bytes, inodes_used) =
            used.unwrap_or((self.used, self.inodes.saturating_sub(self.inodes_free)));
        FsStats {
            time: self.time,
            available_bytes: Some(self.available),
            capacity_bytes: Some(self.capacity),
            used_bytes: Some(used_bytes),
            inodes_free: (self.inodes > 0).then_some(self.inodes_free),
            inodes: (self.inodes > 0).then_some(self.inodes),
            inodes_used: Some(inodes_used),
        }
    }
}

/// The parts of a memory reading that `memory.stat` names differently on v1 and v2.
fn memory_stat_keys(layout: Layout) -> [&'static str; 3] {
    if layout.is_v2() {
        ["anon", "pgfault", "pgmajfault"]
    } else {
        ["total_rss", "total_pgfault", "total_pgmajfault"]
    }
}

/// `memory` of a cgroup: the working-set reading shared with eviction and `kubectl top`
/// (`crate::cgroup::MemoryStats`) plus RSS and page faults from `memory.stat`.
fn memory(
    cg: &crate::cgroup::MemoryStats,
    stat: Option<&BTreeMap<String, u64>>,
    layout: Layout,
    capacity: Option<u64>,
) -> MemoryStats {
    let [rss, pf, majpf] = memory_stat_keys(layout);
    let get = |k: &str| stat.and_then(|s| s.get(k).copied());
    MemoryStats {
        time: Time::now(),
        available_bytes: cg
            .limit_bytes
            .or(capacity)
            .map(|l| l.saturating_sub(cg.working_set_bytes)),
        usage_bytes: Some(cg.usage_bytes),
        working_set_bytes: Some(cg.working_set_bytes),
        rss_bytes: get(rss),
        page_faults: get(pf),
        major_page_faults: get(majpf),
    }
}

/// The statuses of the pod's init and regular containers.
fn container_statuses(
    pod: &Pod,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.iter().flat_map(|st| {
        [&st.init_container_statuses, &st.container_statuses]
            .into_iter()
            .flatten()
            .flatten()
    })
}

/// `running.startedAt` of each running container of the pod (init and regular), by name.
pub(crate) fn running_containers(pod: &Pod) -> Vec<(String, Option<Time>)> {
    container_statuses(pod)
        .filter_map(|c| {
            let running = c.state.as_ref()?.running.as_ref()?;
            Some((
                c.name.clone(),
                running.started_at.as_ref().map(|t| Time(t.0)),
            ))
        })
        .collect()
}

/// The runtime ID of each container of the pod's status (init and regular, the current
/// instance), by name: `containerID` without its `<runtime>://` scheme.
pub fn container_ids(pod: &Pod) -> BTreeMap<String, String> {
    container_statuses(pod)
        .filter_map(|c| {
            let id = c.container_id.as_deref()?;
            let id = id.split_once("://").map_or(id, |(_, id)| id);
            Some((c.name.clone(), id.to_string()))
        })
        .collect()
}

/// The writable layer of each of the pod's containers that has one, by container name (the
/// CRI stats' `WritableLayer`, the summary's `rootfs`). Blocking: walks the layers.
pub fn writable_layers(
    pod: &Pod,
    runtime: &dyn ContainerRuntime,
) -> BTreeMap<String, FilesystemUsage> {
    container_ids(pod)
        .into_iter()
        .filter_map(|(name, id)| Some((name, runtime.writable_layer_usage(&id)?)))
        .collect()
}

/// Swap in use and free on the machine from `meminfo`.
fn node_swap(proc_root: &Path) -> Option<SwapStats> {
    let total = crate::node::swap_total(proc_root)?;
    let free = crate::node::meminfo_bytes(proc_root, "SwapFree:")?;
    Some(SwapStats {
        time: Time::now(),
        swap_available_bytes: Some(free.max(0) as u64),
        swap_usage_bytes: Some((total - free).max(0) as u64),
    })
}

/// The machine's boot time (`btime` of `/proc/stat`), the node's `startTime`.
fn boot_time(proc_root: &Path) -> Option<Time> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let secs: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    jiff::Timestamp::from_second(secs).ok().map(Time)
}

impl StatsProvider {
    /// A provider over the agent's cgroups and directories.
    pub fn new(
        cm: ContainerManager,
        runtime: std::sync::Arc<dyn ContainerRuntime>,
        proc_root: &Path,
        root_dir: &Path,
        pod_logs_dir: &Path,
        node_name: &str,
    ) -> Self {
        StatsProvider {
            cm,
            runtime,
            images: None,
            proc_root: proc_root.to_path_buf(),
            root_dir: root_dir.to_path_buf(),
            pod_logs_dir: pod_logs_dir.to_path_buf(),
            node_name: node_name.to_string(),
            cpu: cpu::UsageCache::default(),
            started: Time::now(),
        }
    }

    /// With the image store, whose blobs and layers are imagefs's `usedBytes`.
    pub fn with_images(mut self, store: Option<crate::images::Store>) -> Self {
        self.images = store;
        self
    }

    /// `/proc` as the provider reads it.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// CPU of a cgroup, its rate from the cache under `key`.
    fn cgroup_cpu(&self, cg: &CgroupName, seen: &mut HashSet<String>) -> Option<CpuStats> {
        let ns = self.cm.cgroups().cpu_usage_ns(cg).ok()?;
        let key = cg.to_string();
        let nano_cores = self.cpu.update(&key, ns);
        seen.insert(key);
        Some(CpuStats {
            time: Time::now(),
            usage_nano_cores: nano_cores,
            usage_core_nano_seconds: Some(ns),
        })
    }

    fn cgroup_memory(&self, cg: &CgroupName) -> Option<MemoryStats> {
        let cgroups = self.cm.cgroups();
        let m = cgroups.memory_stats(cg).ok()?;
        let stat = cgroups.memory_stat(cg).ok();
        Some(memory(&m, stat.as_ref(), cgroups.layout(), None))
    }

    fn cgroup_swap(&self, cg: &CgroupName) -> Option<SwapStats> {
        let used = self.cm.cgroups().swap_usage(cg).ok()??;
        Some(SwapStats {
            time: Time::now(),
            swap_available_bytes: None,
            swap_usage_bytes: Some(used),
        })
    }

    /// The whole machine: `/proc/stat` CPU, root memory cgroup, meminfo swap.
    fn node_cpu_memory(
        &self,
        seen: &mut HashSet<String>,
    ) -> (Option<CpuStats>, Option<MemoryStats>) {
        let cpu = cpu::node_cpu_ns(&self.proc_root).map(|ns| {
            seen.insert("node".into());
            CpuStats {
                time: Time::now(),
                usage_nano_cores: self.cpu.update("node", ns),
                usage_core_nano_seconds: Some(ns),
            }
        });
        let cgroups = self.cm.cgroups();
        let capacity = crate::node::mem_total(&self.proc_root).and_then(|t| u64::try_from(t).ok());
        let memory = cgroups.root_memory_stats().ok().map(|m| {
            let stat = cgroups.root_memory_stat().ok();
            memory(&m, stat.as_ref(), cgroups.layout(), capacity)
        });
        (cpu, memory)
    }

    /// The `kubelet` system container: the agent's own process (`/proc/self`), its CPU time and
    /// resident memory. (The kubelet reports its cgroup; the agent shares its cgroup with
    /// whatever started it, so the process is the honest unit.)
    fn kubelet_container(&self, seen: &mut HashSet<String>) -> Option<ContainerStats> {
        let me = procfs::process::Process::new_with_root(self.proc_root.join("self")).ok()?;
        let stat = me.stat().ok()?;
        let ns = (stat.utime + stat.stime) * (1_000_000_000 / cpu::clock_ticks());
        let rss = stat.rss * procfs::page_size();
        let start = boot_time(&self.proc_root).and_then(|b| {
            let ms = i64::try_from(stat.starttime * 1000 / cpu::clock_ticks()).ok()?;
            b.0.checked_add(jiff::SignedDuration::from_millis(ms)).ok()
        });
        seen.insert("kubelet".into());
        let now = Time::now();
        Some(ContainerStats {
            name: "kubelet".into(),
            start_time: start.map_or(self.started, Time),
            cpu: Some(CpuStats {
                time: now,
                usage_nano_cores: self.cpu.update("kubelet", ns),
                usage_core_nano_seconds: Some(ns),
            }),
            memory: Some(MemoryStats {
                time: now,
                usage_bytes: Some(rss),
                working_set_bytes: Some(rss),
                rss_bytes: Some(rss),
                page_faults: Some(stat.minflt),
                major_page_faults: Some(stat.majflt),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The Summary API (`GET /stats/summary`) for `pods` (the pods with live status): every pod
    /// with a running container. `only_cpu_and_memory` leaves out filesystems, volumes,
    /// processes and rlimit (`?only_cpu_and_memory=true`, what metrics-server asks for).
    /// Blocking: reads files and walks log directories; call it off the async workers.
    pub fn summary(&self, pods: &[std::sync::Arc<Pod>], only_cpu_and_memory: bool) -> Summary {
        let mut seen = HashSet::new();
        let nodefs = if only_cpu_and_memory {
            None
        } else {
            Fs::read(&self.root_dir)
        };
        let (cpu, memory) = self.node_cpu_memory(&mut seen);
        let kubepods = self.cm.kubepods();
        let mut system_containers = vec![ContainerStats {
            name: "pods".into(),
            start_time: self.started,
            cpu: self.cgroup_cpu(&kubepods, &mut seen),
            memory: self.cgroup_memory(&kubepods),
            swap: self.cgroup_swap(&kubepods),
            ..Default::default()
        }];
        system_containers.extend(self.kubelet_container(&mut seen));
        let mut node = NodeStats {
            node_name: self.node_name.clone(),
            system_containers,
            start_time: boot_time(&self.proc_root).unwrap_or(self.started),
            cpu,
            memory,
            swap: node_swap(&self.proc_root),
            network: if only_cpu_and_memory {
                None
            } else {
                network::read(&self.proc_root.join("self/net/dev"))
            },
            ..Default::default()
        };
        if let Some(fs) = nodefs {
            node.fs = Some(fs.stats(None));
            // The image store is under --root-dir: the image filesystem is nodefs, and the
            // images use what the store's records say (blobs and unpacked layers, as tracked
            // at unpack; no inode count).
            let used = self
                .images
                .as_ref()
                .and_then(|s| s.usage().ok())
                .unwrap_or(0);
            node.runtime = Some(RuntimeStats {
                image_fs: Some(fs.stats(Some((used, 0)))),
            });
            node.rlimit = fs::pids(&self.proc_root).ok().map(|p| RlimitStats {
                time: Time::now(),
                maxpid: Some(p.max),
                curproc: Some(p.running),
            });
        }
        let mut out = Vec::new();
        for pod in pods {
            if let Some(p) = self.pod(pod, nodefs.as_ref(), &mut seen) {
                out.push(p);
            }
        }
        out.sort_by(|a, b| {
            (&a.pod_ref.namespace, &a.pod_ref.name).cmp(&(&b.pod_ref.namespace, &b.pod_ref.name))
        });
        self.cpu.retain(&seen);
        Summary { node, pods: out }
    }

    fn pod(&self, pod: &Pod, nodefs: Option<&Fs>, seen: &mut HashSet<String>) -> Option<PodStats> {
        let running = running_containers(pod);
        if running.is_empty() {
            return None;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_cg = self.cm.pod_cgroup(pod).ok()?;
        let layers = nodefs
            .map(|_| writable_layers(pod, self.runtime.as_ref()))
            .unwrap_or_default();
        let mut containers = Vec::new();
        for (c, started) in running {
            let Ok(cg) = pod_cg.child(&c) else { continue };
            let logs = nodefs.map(|fs| {
                let dir =
                    crate::logs::container_log_dir(&self.pod_logs_dir, &namespace, &name, &uid, &c);
                let (bytes, inodes) = fs::dir_usage(&dir);
                fs.stats(Some((bytes.max(0) as u64, inodes.max(0) as u64)))
            });
            // The writable layer, on the image filesystem (here nodefs), as the kubelet's CRI
            // stats provider reports it.
            let rootfs = nodefs
                .zip(layers.get(&c))
                .map(|(fs, l)| fs.stats(Some((l.used_bytes, l.inodes_used))));
            containers.push(ContainerStats {
                name: c,
                start_time: started.unwrap_or_default(),
                cpu: self.cgroup_cpu(&cg, seen),
                memory: self.cgroup_memory(&cg),
                swap: self.cgroup_swap(&cg),
                rootfs,
                logs,
            });
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Time::default, |t| Time(t.0));
        let mut stats = PodStats {
            pod_ref: PodReference {
                name: name.clone(),
                namespace: namespace.clone(),
                uid: uid.clone(),
            },
            start_time,
            containers,
            cpu: self.cgroup_cpu(&pod_cg, seen),
            memory: self.cgroup_memory(&pod_cg),
            swap: self.cgroup_swap(&pod_cg),
            ..Default::default()
        };
        if let Some(fs) = nodefs {
            let log_dir = crate::logs::pod_log_dir(&self.pod_logs_dir, &namespace, &name, &uid);
            let ls = fs::pod_local_storage(&log_dir, &self.root_dir, &uid);
            // `calcEphemeralStorage`: logs and volumes plus every container's writable layer.
            let (layer_bytes, layer_inodes) = layers.values().fold((0u64, 0u64), |(b, i), l| {
                (
                    b.saturating_add(l.used_bytes),
                    i.saturating_add(l.inodes_used),
                )
            });
            stats.ephemeral_storage = Some(fs.stats(Some((
                (ls.bytes.max(0) as u64).saturating_add(layer_bytes),
                (ls.inodes.max(0) as u64).saturating_add(layer_inodes),
            ))));
            stats.volume_stats = self.empty_dirs(pod, &uid, fs);
            stats.network = self.pod_network(&pod_cg);
            stats.process_stats = self.cm.cgroups().pids(&pod_cg).ok().map(|p| ProcessStats {
                process_count: Some(p.len() as u64),
            });
        }
        Some(stats)
    }

    /// The pod's network, read through one of its processes in a network namespace other than
    /// the node's (the pod's own; none for a `hostNetwork` pod, or every pod on a node without
    /// CNI). The pod's cgroups may also hold processes of the node's namespace (a shim).
    fn pod_network(&self, pod_cg: &crate::cgroup::CgroupName) -> Option<NetworkStats> {
        use std::os::unix::fs::MetadataExt;
        let ns = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let own = ns(&self.proc_root.join("self/ns/net"))?;
        let pid = self
            .cm
            .cgroups()
            .pids(pod_cg)
            .ok()?
            .into_iter()
            .find(|pid| {
                ns(&self.proc_root.join(format!("{pid}/ns/net"))).is_some_and(|n| n != own)
            })?;
        network::read(&self.proc_root.join(format!("{pid}/net/dev")))
    }

    /// Usage of each of the pod's emptyDir volumes that exists on disk
    /// (`<root-dir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>`).
    fn empty_dirs(&self, pod: &Pod, uid: &str, fs: &Fs) -> Vec<VolumeStats> {
        crate::volumes::empty_dir_volumes(pod)
            .into_iter()
            .filter_map(|name| {
                let dir = crate::volumes::empty_dir_path(&self.root_dir, uid, &name);
                dir.is_dir().then(|| {
                    let (bytes, inodes) = fs::dir_usage(&dir);
                    VolumeStats {
                        fs: fs.stats(Some((bytes.max(0) as u64, inodes.max(0) as u64))),
                        name,
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_figures_and_keys() {
        let cg = crate::cgroup::MemoryStats {
            usage_bytes: 100,
            inactive_file_bytes: 30,
            working_set_bytes: 70,
            limit_bytes: Some(200),
        };
        let stat: BTreeMap<String, u64> = [("total_rss", 50), ("total_pgfault", 7), ("anon", 9)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let m = memory(&cg, Some(&stat), Layout::V1, None);
        assert_eq!(m.available_bytes, Some(130));
        assert_eq!(m.working_set_bytes, Some(70));
        assert_eq!(m.rss_bytes, Some(50));
        assert_eq!(m.page_faults, Some(7));
        assert_eq!(m.major_page_faults, None);
        let v2 = memory(&cg, Some(&stat), Layout::V2, None);
        assert_eq!(v2.rss_bytes, Some(9));
        // No limit: the node passes MemTotal; a container without one has no availableBytes.
        let unlimited = crate::cgroup::MemoryStats {
            limit_bytes: None,
            ..cg
        };
        assert_eq!(
            memory(&unlimited, None, Layout::V1, None).available_bytes,
            None
        );
        assert_eq!(
            memory(&unlimited, None, Layout::V1, Some(1000)).available_bytes,
            Some(930)
        );
    }

    #[test]
    fn container_ids_from_the_status() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {
                "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "containerID": "minikubelet://aa"}],
                "containerStatuses": [
                    {"name": "web", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                        "containerID": "minikubelet://bb"},
                    {"name": "waiting", "image": "i", "imageID": "", "ready": false, "restartCount": 0}
                ]
            }
        }))
        .unwrap();
        let ids = container_ids(&pod);
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert_eq!(ids["init"], "aa");
        assert_eq!(ids["web"], "bb");
    }

    #[test]
    fn swap_and_boot_time_from_fake_proc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("meminfo"),
            "MemTotal: 1000 kB\nSwapTotal: 100 kB\nSwapFree: 40 kB\n",
        )
        .unwrap();
        std::fs::write(d.path().join("stat"), "cpu  1 2 3 4\nbtime 1700000000\n").unwrap();
        let s = node_swap(d.path()).unwrap();
        assert_eq!(s.swap_usage_bytes, Some(60 * 1024));
        assert_eq!(s.swap_available_bytes, Some(40 * 1024));
        assert_eq!(
            boot_time(d.path()).unwrap().rfc3339(),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn summary_json_uses_the_kubelet_names() {
        let s = PodStats {
            ephemeral_storage: Some(FsStats::default()),
            process_stats: Some(ProcessStats {
                process_count: Some(2),
            }),
            volume_stats: vec![VolumeStats {
                fs: FsStats {
                    used_bytes: Some(1),
                    ..Default::default()
                },
                name: "scratch".into(),
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "podRef",
            "startTime",
            "containers",
            "ephemeral-storage",
            "process_stats",
            "volume",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["volume"][0]["usedBytes"], 1);
        assert_eq!(v["volume"][0]["name"], "scratch");
        assert_eq!(v["startTime"], "1970-01-01T00:00:00Z");
        assert!(v.get("cpu").is_none(), "unknown figures are omitted");
    }
}
