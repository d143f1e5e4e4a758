//! The container runtime seam: the [`ContainerRuntime`] trait the pod workers and the streaming
//! server talk to, and the types that cross it.
//!
//! Mirrors the kubelet's `kuberuntime` boundary: the CRI `RuntimeService` (`RunPodSandbox`,
//! `StopPodSandbox`, `RemovePodSandbox`, `CreateContainer` + `StartContainer`, `StopContainer`,
//! `ContainerStatus`, `ListContainers`, `RemoveContainer`, `Exec`, `Attach`), cut down to what
//! this agent uses and in Rust, in-process instead of over gRPC. Above the line: what to run
//! ([`PodSandboxConfig`], [`ContainerSpec`]); below it: how ([`ShimRuntime`], today's only
//! implementation, where each container is supervised by its own shim process, and
//! `fake::FakeRuntime` in unit tests).
//!
//! The shim's state directory (`<root-dir>/containers/<id>/`, see [`shim_runtime`]) is private
//! to this module and `crate::shim`: nothing above the trait opens it.

pub mod env;
pub mod exec;
#[cfg(test)]
pub mod fake;
pub mod network;
pub mod process;
pub mod shim_runtime;
pub mod spec;

/// The OCI runtime spec types (they live beside the shim, which executes them).
pub use crate::shim::oci;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig};
use serde::{Deserialize, Serialize};

pub use crate::shim::{ExitStatus, ShimState};
pub use shim_runtime::{SHIM_PRESTART_ENV, ShimRuntime};

use exec::ExecContext;

/// Errors of the runtime, each naming the container (or sandbox) and file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id}: {action} {path}: {source}")]
    Io {
        id: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {id}: encode {what}: {source}")]
    Encode {
        id: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("container {id}: start shim: {source}")]
    Shim {
        id: String,
        source: crate::shim::ShimError,
    },
    /// The shim ran but could not start the process; the message is the shim's, verbatim (it
    /// becomes the container's `RunContainerError` message).
    #[error("{message}")]
    StartFailed { id: String, message: String },
    /// No such container, or it is not running.
    #[error("container {id:?} is not running")]
    NotRunning { id: String },
    /// The runtime's record of a container could not be read.
    #[error("container {id}: read its config: {source}")]
    Config {
        id: String,
        source: crate::shim::ShimError,
    },
    #[error("pod sandbox {id}: {action} {path}: {source}")]
    Sandbox {
        id: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The pod's namespaces, files or PID holder (`crate::sandbox`).
    #[error("pod sandbox {id}: {message}")]
    PodSandbox { id: String, message: String },
    /// The container's security context cannot be applied.
    #[error("container {id}: securityContext: {message}")]
    Security { id: String, message: String },
}

impl RuntimeError {
    /// The container (or sandbox) the error is about; empty when none was assigned yet.
    pub fn id(&self) -> &str {
        match self {
            RuntimeError::Io { id, .. }
            | RuntimeError::Encode { id, .. }
            | RuntimeError::Shim { id, .. }
            | RuntimeError::StartFailed { id, .. }
            | RuntimeError::NotRunning { id }
            | RuntimeError::Config { id, .. }
            | RuntimeError::Sandbox { id, .. }
            | RuntimeError::Security { id, .. }
            | RuntimeError::PodSandbox { id, .. } => id,
        }
    }
}

/// What the runtime records about a container besides what it runs: the kubelet keeps this
/// as CRI labels and annotations on the container.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerMeta {
    /// Runtime container ID (32 hex characters); chosen by the runtime at create.
    pub id: String,
    /// UID of the pod the container belongs to.
    pub pod_uid: String,
    /// Pod name (already `<name>-<node>`).
    pub pod_name: String,
    /// Pod namespace.
    pub pod_namespace: String,
    /// Container name from the spec.
    pub container_name: String,
    /// Attempt number: the kubelet's restartCount for this instance.
    pub attempt: u32,
    /// Hash of the container spec this instance was started from.
    pub spec_hash: String,
    /// The container's cgroup, as components below the cgroup root.
    pub cgroup: Vec<String>,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// When the runtime created it (RFC 3339); set by the runtime at create.
    pub created_at: String,
    /// The pod sandbox it runs in (`PodSandboxId` of `CreateContainerRequest`); empty for
    /// containers created before sandboxes existed.
    #[serde(default)]
    pub sandbox_id: String,
    /// The image it runs from, as the status shows it (`image`; containerd keeps the image
    /// with the container's metadata); empty for a container run from the node's filesystem.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The status's `imageID` (`<repository>@<manifest digest>`); empty as `image` is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
}

/// One container as the runtime knows it (`ContainerStatus` of the CRI).
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    /// What it is.
    pub meta: ContainerMeta,
    /// Set once its process started.
    pub state: Option<ShimState>,
    /// Set once the process is gone and its output drained.
    pub exit: Option<ExitStatus>,
    /// Its shim's state directory (private to the runtime and the shim); `None` for a runtime
    /// without shims (the unit tests' fake), where no exit record means running.
    pub(crate) dir: Option<PathBuf>,
}

impl ContainerRecord {
    /// Running: started, not exited, and its shim is still alive.
    pub fn is_running(&self) -> bool {
        self.exit.is_none()
            && self.state.as_ref().is_some_and(|s| match &self.dir {
                Some(dir) => crate::shim::shim_alive(s, dir),
                None => true,
            })
    }
}

/// The ID of a pod sandbox (32 hex characters).
pub type SandboxId = String;

/// What a pod's sandbox is made from: the fields of the CRI `PodSandboxConfig` this agent knows.
/// Today's [`ShimRuntime`] only records it; a sandbox with its own namespaces (`crate::sandbox`)
/// reads the hostname, DNS and host-namespace fields from here.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PodSandboxConfig {
    /// `metadata.uid`.
    pub pod_uid: String,
    /// `metadata.name`.
    pub pod_name: String,
    /// `metadata.namespace`.
    pub pod_namespace: String,
    /// The pod's hostname (`spec.hostname`, else the pod name), as the kubelet's
    /// `GeneratePodHostNameAndDomain` computes it.
    pub hostname: String,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `spec.hostIPC`.
    pub host_ipc: bool,
    /// `spec.hostPID`.
    pub host_pid: bool,
    /// `spec.shareProcessNamespace`.
    pub share_process_namespace: bool,
    /// `spec.dnsPolicy`.
    pub dns_policy: Option<String>,
    /// `spec.dnsConfig`.
    pub dns_config: Option<PodDNSConfig>,
    /// `spec.hostAliases`.
    pub host_aliases: Vec<HostAlias>,
    /// The pod's log directory (`<pod-logs-dir>/<ns>_<name>_<uid>`).
    pub log_directory: PathBuf,
    /// `metadata.annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `spec.setHostnameAsFQDN`.
    #[serde(default)]
    pub set_hostname_as_fqdn: bool,
    /// The pod's containers run isolated (today: pods annotated
    /// `minikubelet.io/host-filesystem: "true"`; later image-based pods). Their sandbox is a
    /// real one (`crate::sandbox`: pinned IPC and UTS namespaces, the pod's hosts, hostname and
    /// resolv.conf files, a PID holder for `shareProcessNamespace`); otherwise it is a record
    /// only and the containers are processes in the node's namespaces.
    #[serde(default)]
    pub isolated: bool,
    /// `spec.securityContext.sysctls`, admitted (`LinuxPodSandboxConfig.sysctls`): written in
    /// the pod's namespaces when the sandbox makes them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// The containers' ports with a `hostPort` (`PortMappings` of the CRI's config): the
    /// portmap plugin forwards them to the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<network::PortMapping>,
}

impl PodSandboxConfig {
    /// The pod as far as this config describes it, for `crate::sandbox` (which reads the
    /// kubelet's fields): identity, annotations, hostname, host namespaces, DNS, host aliases.
    pub fn as_pod(&self) -> k8s_openapi::api::core::v1::Pod {
        use k8s_openapi::api::core::v1::{Pod, PodSecurityContext, PodSpec, Sysctl};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        Pod {
            metadata: ObjectMeta {
                name: Some(self.pod_name.clone()),
                namespace: Some(self.pod_namespace.clone()),
                uid: Some(self.pod_uid.clone()),
                annotations: Some(self.annotations.clone()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                hostname: Some(self.hostname.clone()),
                subdomain: self.subdomain.clone(),
                host_network: Some(self.host_network),
                host_ipc: Some(self.host_ipc),
                host_pid: Some(self.host_pid),
                share_process_namespace: Some(self.share_process_namespace),
                set_hostname_as_fqdn: Some(self.set_hostname_as_fqdn),
                dns_policy: self.dns_policy.clone(),
                dns_config: self.dns_config.clone(),
                host_aliases: Some(self.host_aliases.clone()),
                security_context: (!self.sysctls.is_empty()).then(|| PodSecurityContext {
                    sysctls: Some(
                        self.sysctls
                            .iter()
                            .map(|(name, value)| Sysctl {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// A pod sandbox as the runtime lists it (`PodSandbox` of `ListPodSandbox`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodSandbox {
    /// Its ID.
    pub id: SandboxId,
    /// What it was made from.
    pub config: PodSandboxConfig,
    /// `SANDBOX_READY` until stopped.
    pub ready: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// What the containers of an isolated sandbox join and bind-mount; `None` for a record-only
    /// sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<crate::sandbox::SandboxPaths>,
    /// The pod's PID-1 holder (`shareProcessNamespace: true` of an isolated pod), by its pid on
    /// the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_holder: Option<i32>,
    /// The pod's own network (CNI), if it has one: the network's name and the pod's IPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<network::SandboxNetwork>,
}

/// What to run: one container of a pod (the CRI `ContainerConfig` of this agent). The
/// process fields are the ones exec'd commands share with the container ([`ExecContext`]).
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Identity and records; `id` and `created_at` are set by the runtime.
    pub meta: ContainerMeta,
    /// Command and args; `argv[0]` without a '/' is looked up in `PATH` from the environment.
    pub argv: Vec<String>,
    /// Environment, working directory, user, groups, cgroup and `oom_score_adj`.
    pub process: ExecContext,
    /// `containerLogMaxSize` in bytes (0: never rotate).
    pub log_max_size: u64,
    /// `containerLogMaxFiles`.
    pub log_max_files: u32,
    /// Keep a pipe to the container's stdin for a later attach.
    pub stdin: bool,
    /// `stdinOnce`.
    pub stdin_once: bool,
    /// What the container's root filesystem is, and whether it is isolated at all.
    pub rootfs: ContainerRootfs,
    /// The container's volume mounts (bind mounts into its mount namespace, after the
    /// sandbox's files); ignored for [`ContainerRootfs::Node`], which has no mount namespace.
    pub mounts: Vec<spec::BindMount>,
    /// Capabilities, privileged, `no_new_privs`, read-only root: written into the container's
    /// OCI spec ([`spec::apply_security`]). A [`ContainerRootfs::Node`] container has no spec:
    /// anything but the default is refused there (`RuntimeError::Security`).
    pub security: spec::LinuxContainerSecurityContext,
}

/// Where a container's root filesystem comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ContainerRootfs {
    /// No isolation: a process on the node in the node's namespaces (the deprecated
    /// `ImageRootfs=false`).
    #[default]
    Node,
    /// The node's filesystem inside the container's own mount and PID namespaces, with
    /// containerd's defaults (`minikubelet.io/host-filesystem: "true"`).
    HostFilesystem,
    /// An overlayfs of the image's unpacked layers (topmost first, overlayfs `lowerdir` order)
    /// with the container's own upper layer, in its own mount and PID namespaces with
    /// containerd's defaults, on the node's network (until pod networking lands): the
    /// default for every pod.
    Image {
        /// The image's layer directories, topmost first.
        layers: Vec<PathBuf>,
    },
}

/// A container that runs.
#[derive(Clone, Debug)]
pub struct Started {
    /// What the runtime recorded (its ID included).
    pub meta: ContainerMeta,
    /// The container's main process.
    pub pid: i32,
    /// When it exec'd (RFC 3339).
    pub started_at: String,
}

/// How a container ended, as [`ContainerRuntime::wait`] reports it.
#[derive(Clone, Debug, Default)]
pub struct Exit {
    /// The runtime's exit record; `None` when the container died without one (its supervisor
    /// was killed): the kubelet reports `ContainerStatusUnknown`.
    pub status: Option<ExitStatus>,
    /// OOM kills in the container's cgroup (`memory.events` `oom_kill`): > 0 means `OOMKilled`.
    pub oom_kill_count: u64,
}

/// Where an attach connects: the container's stdio multiplexer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachTarget {
    /// The shim's attach socket.
    pub socket: PathBuf,
}

/// A boxed future, so that the trait stays object safe (`Arc<dyn ContainerRuntime>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A container runtime as the pod worker and the streaming server see it: the kubelet's
/// `kubecontainer.Runtime` plus `streaming.Runtime`, in the shape of the CRI `RuntimeService`.
/// Image calls (the CRI `ImageService`) are not here yet.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// `RunPodSandbox`: make the pod's sandbox, before its first container.
    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> Result<SandboxId, RuntimeError>;
    /// `StopPodSandbox`: the pod terminated; its containers are gone.
    fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    /// `RemovePodSandbox`: the pod is removed.
    fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    /// `ListPodSandbox`: every sandbox, ready or not (how a restarted agent finds them again).
    fn list_pod_sandboxes(&self) -> Vec<PodSandbox>;
    /// `PodSandboxStatus`: one sandbox (its network's IPs among the rest).
    fn pod_sandbox_status(&self, id: &str) -> Option<PodSandbox> {
        self.list_pod_sandboxes().into_iter().find(|s| s.id == id)
    }
    /// Why pods on this node keep the node's network (no CNI network), if they do.
    fn node_network_reason(&self) -> Option<String> {
        None
    }

    /// `CreateContainer` + `StartContainer`: returns once the process runs. Blocking (a few
    /// milliseconds): call it from `spawn_blocking`. The error names the container ID the
    /// runtime gave it, if any.
    fn create_and_start(&self, spec: &ContainerSpec) -> Result<Started, RuntimeError>;
    /// `StopContainer`: SIGTERM, wait up to `grace`, then kill everything in the container's
    /// cgroup, again until the container is gone. Resolves once it exited.
    fn stop(&self, id: &str, grace: Duration) -> BoxFuture<'_, ()>;
    /// Resolves when the container exited, with how (the PLEG's event for this container).
    fn wait(&self, id: &str) -> BoxFuture<'_, Exit>;
    /// `ContainerStatus`: the container's record, if it exists.
    fn status(&self, id: &str) -> Option<ContainerRecord>;
    /// `ListContainers`: every container, oldest first.
    fn list(&self) -> Vec<ContainerRecord>;
    /// `RemoveContainer`: its records and log file; returns what was removed.
    fn remove(&self, id: &str) -> Option<ContainerMeta>;
    /// The context commands run in inside the container (`Exec`, exec probes, hooks).
    fn exec_context(&self, id: &str) -> Result<ExecContext, RuntimeError>;
    /// `Attach`: where to connect to a running container's stdio.
    fn attach(&self, id: &str) -> Result<AttachTarget, RuntimeError>;
    /// The container's writable layer (`ContainerStats.WritableLayer` of the CRI): what it
    /// wrote into its own root filesystem. `None` for a container without one (run from the
    /// node's filesystem) or unknown. Blocking: walks the layer's tree.
    fn writable_layer_usage(&self, _id: &str) -> Option<FilesystemUsage> {
        None
    }
}

/// Bytes and inodes a container uses on a filesystem (the CRI's `FilesystemUsage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilesystemUsage {
    /// Allocated bytes, as `du` counts them.
    pub used_bytes: u64,
    /// Inodes.
    pub inodes_used: u64,
}

/// How long `stop` waits after the SIGKILL of a container's cgroup for its supervisor to record
/// the exit. The kill itself is immediate; this only bounds a stuck shim.
pub const KILL_SETTLE: Duration = Duration::from_secs(10);
