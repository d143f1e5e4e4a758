//! The pod sandbox: what the CRI's `RunPodSandbox`/`StopPodSandbox`/`RemovePodSandbox` make
//! for a pod before and after its containers, in CRI-O's way without a pause process
//! (`internal/config/nsmgr`: namespaces pinned by bind mounts, see [`namespaces`]), plus the
//! files the kubelet and the runtime write for every pod: `/etc/hosts` ([`hosts`],
//! `pkg/kubelet/kubelet_pods.go`), `/etc/hostname` (containerd's sandbox file) and
//! `/etc/resolv.conf` ([`dns`], `pkg/kubelet/network/dns`).
//!
//! Layout under `<root-dir>/pods/<uid>/` (directories 0700, files 0644, written atomically):
//! `etc-hosts` (the kubelet's path), `sandbox/hostname`, `sandbox/resolv.conf`,
//! `sandbox/ns/{ipc,uts,net}` and `sandbox/sandbox.json` (what [`SandboxManager::adopt`] needs
//! after a restart; written last, so a sandbox without it was never finished).
//!
//! The network namespace is made only when the node's pods get a network of their own
//! ([`SandboxOptions::pod_network`], set when the runtime has a CNI network); otherwise pods stay
//! on the node's network and [`SandboxPaths::namespaces`]`.net` is `None`.
//!
//! The runtime calls [`SandboxManager::run_pod_sandbox`] before a pod's first container,
//! [`SandboxManager::adopt`] for a pod found running at start, and
//! [`SandboxManager::remove`] when the pod is gone (before the pod directory is removed:
//! a mounted namespace file cannot be unlinked). The container side joins
//! [`SandboxPaths::namespaces`] and bind-mounts the three files.

pub mod dns;
pub mod hosts;
pub mod namespaces;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

pub use namespaces::{NsKind, PinnedNamespaces};

/// The most of `sandbox.json` that [`SandboxManager::adopt`] reads: the file is a few hundred
/// bytes; the bound keeps a corrupt or planted file from being read whole.
const MAX_STATE_BYTES: u64 = 64 * 1024;
/// The most of the node's `/etc/hosts` copied into a host-network pod's file: real ones are a
/// few KiB; a bound so that a huge file is refused rather than copied into every pod.
const MAX_NODE_HOSTS_BYTES: u64 = 1 << 20;

/// Errors of the pod sandbox, naming the pod or the file.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The pod's UID is not one file name.
    #[error("pod UID {0:?} is not a single file name; refusing to make a sandbox for it")]
    UnsafeUid(String),
    /// Hostname or host aliases.
    #[error(transparent)]
    Hosts(#[from] hosts::HostsError),
    /// DNS configuration.
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    /// Namespaces.
    #[error(transparent)]
    Ns(#[from] namespaces::NsError),
    /// A sandbox file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A sandbox found at start is not whole any more (it was removed).
    #[error("sandbox of pod {uid} is not ready: {reason}")]
    NotReady {
        /// The pod's UID.
        uid: String,
        /// What was wrong.
        reason: String,
    },
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How sandboxes are made on this node.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// `--root-dir`.
    pub root_dir: PathBuf,
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
    pub dns: dns::Configurer,
    /// The node's hosts file, copied for host-network pods (`/etc/hosts`).
    pub node_hosts_file: PathBuf,
    /// Give each pod that is not `hostNetwork` its own network namespace (the runtime's pod
    /// network, CNI, is on: `crate::runtime::network`). Off, pods keep the node's network.
    pub pod_network: bool,
}

impl SandboxOptions {
    /// The options for `root_dir` and `dns`: the node's `/etc/hosts`, pod networking off.
    pub fn new(root_dir: impl Into<PathBuf>, dns: dns::Configurer) -> Self {
        SandboxOptions {
            root_dir: root_dir.into(),
            dns,
            node_hosts_file: PathBuf::from("/etc/hosts"),
            pod_network: false,
        }
    }
}

/// What the container side consumes: the namespaces to join, the files to bind-mount.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxPaths {
    /// The pod's UID.
    pub uid: String,
    /// Namespace files to `setns` into; `None` for a kind means the node's.
    pub namespaces: PinnedNamespaces,
    /// The pod's hostname as its UTS namespace has it (the node's for `hostNetwork`).
    pub hostname: String,
    /// Bind-mount at `/etc/hosts`, read-write (the kubelet's `k8s-managed-etc-hosts` mount),
    /// unless the container mounts something there itself.
    pub hosts_file: PathBuf,
    /// Bind-mount at `/etc/hostname`; read-only only with `readOnlyRootFilesystem`
    /// (containerd's rule).
    pub hostname_file: PathBuf,
    /// Bind-mount at `/etc/resolv.conf`; read-only only with `readOnlyRootFilesystem`.
    pub resolv_conf: PathBuf,
    /// `shareProcessNamespace: true`: the pod's containers share one PID namespace, which
    /// needs a PID-1 holder that reaps (the shim's pause mode). The sandbox does not run it.
    pub pid_holder_needed: bool,
    /// `hostPID`: containers stay in the node's PID namespace.
    pub host_pid: bool,
    /// `hostNetwork`: the node's network and UTS namespaces.
    pub host_network: bool,
    /// `hostIPC`: the node's IPC namespace.
    pub host_ipc: bool,
}

/// What [`SandboxManager::run_pod_sandbox`] returns.
#[derive(Clone, Debug)]
pub struct SandboxRun {
    /// The sandbox.
    pub paths: SandboxPaths,
    /// Warning events the kubelet records while forming the pod's DNS (`MissingClusterDNS`,
    /// `DNSConfigForming`); the caller records them.
    pub events: Vec<dns::DnsEvent>,
}

/// Makes, finds and removes pod sandboxes.
#[derive(Clone, Debug)]
pub struct SandboxManager {
    opts: SandboxOptions,
}

/// Write `content` to `path` atomically (a temporary file beside it, then `rename`), mode 0644,
/// so that a reader (a container starting, `adopt`) never sees half a file.
fn write_atomic(path: &Path, content: &[u8]) -> Result<(), SandboxError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        // No fsync: these files only matter while the pinned namespaces exist, and those do
        // not survive a power loss; after one `adopt` finds the namespaces gone and the whole
        // sandbox is made again. An fsync per file cost ~1 ms each on a pod's start path.
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io_err("write", path))
}

/// Read `path` if it has at most `max` bytes: `Ok(None)` if it is longer (never read whole).
pub(crate) fn read_at_most(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// [`read_at_most`] with a longer file as an error.
fn read_bounded(path: &Path, max: u64) -> Result<String, SandboxError> {
    read_at_most(path, max)
        .and_then(|t| t.ok_or_else(|| std::io::Error::other(format!("longer than {max} bytes"))))
        .map_err(io_err("read", path))
}

fn remove_if_exists(path: &Path) -> Result<(), SandboxError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

impl SandboxManager {
    /// A manager with `opts`.
    pub fn new(opts: SandboxOptions) -> Self {
        SandboxManager { opts }
    }

    /// The options.
    pub fn options(&self) -> &SandboxOptions {
        &self.opts
    }

    fn pod_dir(&self, uid: &str) -> Result<PathBuf, SandboxError> {
        if !crate::pod_dirs::is_safe_uid(uid) {
            return Err(SandboxError::UnsafeUid(uid.to_string()));
        }
        Ok(crate::pod_dirs::pod_dir(&self.opts.root_dir, uid))
    }

    /// `<root-dir>/pods/<uid>/sandbox`.
    pub fn sandbox_dir(&self, uid: &str) -> Result<PathBuf, SandboxError> {
        Ok(self.pod_dir(uid)?.join("sandbox"))
    }

    /// `RunPodSandbox`: make the pod's namespaces and files. `pod_ips` are the pod's IPs for
    /// its hosts file (until pods get a network: the node's IP, as the status reports it).
    /// Idempotent: an existing whole sandbox of the pod keeps its namespaces and gets its
    /// files rewritten. On error nothing of the sandbox is left. Blocking (a thread is
    /// started and joined, files are written): call it from `spawn_blocking`. With no pod IP
    /// the kubelet does not mount `/etc/hosts` (`makeMounts`); the file is written anyway.
    pub fn run_pod_sandbox(
        &self,
        pod: &Pod,
        pod_ips: &[String],
    ) -> Result<SandboxRun, SandboxError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let pod_dir = self.pod_dir(uid)?;
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let host_ipc = spec.host_ipc.unwrap_or(false);
        let host_pid = spec.host_pid.unwrap_or(false);
        let aliases = spec.host_aliases.clone().unwrap_or_default();

        // Everything that can fail on the pod's spec, before anything is made.
        hosts::check_host_aliases(&aliases)?;
        let (short, domain) = hosts::pod_hostname_and_domain(pod, &self.opts.dns.cluster_domain)?;
        let kernel_name =
            hosts::nodename_for_kernel(&short, &domain, spec.set_hostname_as_fqdn == Some(true))?;
        let mut events = Vec::new();
        let dns = self.opts.dns.pod_dns(pod, &mut events)?;
        let hosts_content = if host_network {
            let node = read_bounded(&self.opts.node_hosts_file, MAX_NODE_HOSTS_BYTES)?;
            hosts::node_hosts_content(&node, &aliases)
        } else {
            hosts::managed_hosts_content(pod_ips, &short, &domain, &aliases)
        };
        let resolv = dns.resolv_conf();
        let resolv = if resolv.is_empty() {
            // containerd copies the node's file when the pod's DNS is empty.
            match &self.opts.dns.resolv_conf {
                Some(p) => read_bounded(p, MAX_NODE_HOSTS_BYTES)?,
                None => String::new(),
            }
        } else {
            resolv
        };
        let uts_name = if host_network {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            kernel_name
        };

        let mut kinds = Vec::new();
        if !host_ipc {
            kinds.push(NsKind::Ipc);
        }
        if !host_network {
            kinds.push(NsKind::Uts);
            if self.opts.pod_network {
                kinds.push(NsKind::Net);
            }
        }
        let reuse = match self.adopt(uid) {
            Ok(Some(p)) if p.namespaces.kinds() == kinds && p.hostname == uts_name => {
                Some(p.namespaces)
            }
            Ok(Some(_)) => {
                self.remove(uid)?;
                None
            }
            Ok(None) | Err(SandboxError::NotReady { .. }) => None,
            Err(e) => return Err(e),
        };

        let sb = pod_dir.join("sandbox");
        let paths = SandboxPaths {
            uid: uid.to_string(),
            namespaces: PinnedNamespaces::default(),
            hostname: uts_name.clone(),
            hosts_file: pod_dir.join("etc-hosts"),
            hostname_file: sb.join("hostname"),
            resolv_conf: sb.join("resolv.conf"),
            pid_holder_needed: spec.share_process_namespace == Some(true) && !host_pid,
            host_pid,
            host_network,
            host_ipc,
        };
        let made = (|| {
            namespaces::make_private_dir(&sb)?;
            write_atomic(&paths.hosts_file, hosts_content.as_bytes())?;
            write_atomic(
                &paths.hostname_file,
                hosts::hostname_content(&uts_name).as_bytes(),
            )?;
            write_atomic(&paths.resolv_conf, resolv.as_bytes())?;
            let ns = match reuse {
                Some(ns) => ns,
                None => namespaces::pin(
                    &sb.join("ns"),
                    &kinds,
                    Some(&uts_name),
                    &crate::sysctl::pod_sysctls(pod),
                )?,
            };
            let paths = SandboxPaths {
                namespaces: ns,
                ..paths
            };
            let state = serde_json::to_vec_pretty(&paths).map_err(|e| SandboxError::Io {
                op: "encode",
                path: sb.join("sandbox.json"),
                source: std::io::Error::other(e),
            })?;
            write_atomic(&sb.join("sandbox.json"), &state)?;
            Ok(paths)
        })();
        match made {
            Ok(paths) => {
                tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), podUID = %uid,
                    hostname = %paths.hostname, namespaces = ?paths.namespaces.kinds(),
                    pidHolderNeeded = paths.pid_holder_needed,
                    "pod sandbox ready (namespaces pinned without a pause process)");
                Ok(SandboxRun { paths, events })
            }
            Err(e) => {
                if let Err(e2) = self.remove(uid) {
                    tracing::warn!(podUID = %uid, error = %e2, "cleaning up a failed pod sandbox");
                }
                Err(e)
            }
        }
    }

    /// Rewrites the pod's hosts file with `pod_ips`, once its network has given it its own
    /// (the kubelet writes the file with the sandbox's IPs: `makeMounts`). A host-network pod's
    /// file is the node's and is left alone.
    pub fn write_hosts_file(&self, pod: &Pod, pod_ips: &[String]) -> Result<(), SandboxError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let pod_dir = self.pod_dir(uid)?;
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.host_network.unwrap_or(false) {
            return Ok(());
        }
        let aliases = spec.host_aliases.clone().unwrap_or_default();
        let (short, domain) = hosts::pod_hostname_and_domain(pod, &self.opts.dns.cluster_domain)?;
        let content = hosts::managed_hosts_content(pod_ips, &short, &domain, &aliases);
        write_atomic(&pod_dir.join("etc-hosts"), content.as_bytes())
    }

    /// Find the sandbox of `uid` after an agent restart. `Ok(None)`: there is none (left-overs
    /// of an unfinished one are removed). `Err(NotReady)`: one was there but a namespace
    /// file no longer holds its namespace (after a reboot, or someone unmounted it); it has
    /// been removed, and the pod needs a new sandbox (the kubelet then kills and recreates
    /// the pod's containers).
    pub fn adopt(&self, uid: &str) -> Result<Option<SandboxPaths>, SandboxError> {
        let sb = self.sandbox_dir(uid)?;
        if !sb.exists() {
            return Ok(None);
        }
        let state_path = sb.join("sandbox.json");
        let state = match read_bounded(&state_path, MAX_STATE_BYTES) {
            Ok(s) => s,
            Err(SandboxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::warn!(podUID = %uid, "removing an unfinished pod sandbox");
                self.remove(uid)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let not_ready = |reason: String| {
            let _ = self.remove(uid);
            SandboxError::NotReady {
                uid: uid.to_string(),
                reason,
            }
        };
        let paths: SandboxPaths = serde_json::from_str(&state)
            .map_err(|e| not_ready(format!("{}: {e}", state_path.display())))?;
        let ns_dir = sb.join("ns");
        let found = namespaces::adopt(&ns_dir)?;
        // Only the files this manager writes count: a planted sandbox.json naming other paths
        // is refused.
        let expected = |k: NsKind| ns_dir.join(k.as_str());
        for k in NsKind::ALL {
            let want = paths.namespaces.get(k);
            if want.is_some_and(|p| p != expected(k)) {
                return Err(not_ready(format!(
                    "unexpected {} namespace path",
                    k.as_str()
                )));
            }
            if want.is_some() != found.get(k).is_some() {
                return Err(not_ready(format!(
                    "the {} namespace file is missing or stale",
                    k.as_str()
                )));
            }
        }
        if paths.uid != uid {
            return Err(not_ready(format!("it belongs to pod {:?}", paths.uid)));
        }
        tracing::info!(podUID = %uid, namespaces = ?found.kinds(), "adopted pod sandbox");
        Ok(Some(paths))
    }

    /// `RemovePodSandbox`: unmount and unlink the namespaces, remove the files, and the pod
    /// directory if the sandbox made it and nothing else is in it. Missing parts are fine.
    pub fn remove(&self, uid: &str) -> Result<(), SandboxError> {
        let pod_dir = self.pod_dir(uid)?;
        let sb = pod_dir.join("sandbox");
        namespaces::unpin(&sb.join("ns"))?;
        for f in ["sandbox.json", "hostname", "resolv.conf"] {
            remove_if_exists(&sb.join(f))?;
            remove_if_exists(&sb.join(format!(".{f}.tmp")))?;
        }
        remove_if_exists(&pod_dir.join("etc-hosts"))?;
        remove_if_exists(&pod_dir.join(".etc-hosts.tmp"))?;
        for d in [&sb, &pod_dir] {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
                    ) => {}
                Err(e) => return Err(io_err("remove directory", d)(e)),
            }
        }
        Ok(())
    }

    /// The UIDs that have a sandbox directory (for the orphan cleanup at start).
    pub fn list(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.opts.root_dir.join("pods")) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .flatten()
            .filter(|e| e.path().join("sandbox").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// A pod for the unit tables of `dns` and `hosts`: `spec` extends one container.
#[cfg(test)]
pub(crate) fn test_pod(name: &str, spec: serde_json::Value) -> Pod {
    let mut s = serde_json::json!({"containers": [{"name": "c"}]});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "shop", "uid": "u1"},
        "spec": s,
    }))
    .unwrap()
}
