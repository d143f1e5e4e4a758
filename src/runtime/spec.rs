//! The container's OCI runtime spec, generated the way containerd's CRI plugin does before it
//! hands a bundle to runc.
//!
//! Mirrors containerd's `pkg/oci` defaults (`populateDefaultUnixSpec`: the default mounts, the
//! 14 default capabilities, the masked and read-only paths) and the CRI plugin's
//! `internal/cri/opts/spec_opts.go` (`WithPodNamespaces`, `WithoutDefaultSecuritySettings`'s
//! counterpart, `/dev/shm` per pod, the pod's hostname and `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf` bind mounts). The shim executes the result (`crate::shim::Isolation`);
//! `tests/oci_oracle.rs` runs the same `config.json` under runc to compare.
//!
//! # Where it plugs in
//! The pod worker (`crate::worker::container`), for a container that gets isolation, calls
//! [`container_spec`] with the container's process (the same values it puts into the shim's
//! config today), the pod sandbox's namespace paths (`crate::sandbox`, or [`SandboxPaths::host`]
//! for a pod that shares the node's) and the extra bind mounts, then sets
//! `ShimConfig::isolation = Some(Isolation { bundle: <state-dir>/bundle, rootfs, spec })`, where
//! `rootfs` is [`crate::shim::Rootfs::Overlay`] of the image's layers or
//! [`crate::shim::Rootfs::Host`] for a pod annotated [`HOST_FILESYSTEM_ANNOTATION`].
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::shim::oci;
use crate::shim::oci::{Capabilities, Linux, Mount, Namespace, Process, Root, Spec, User};

/// The pod annotation that runs a pod's containers from the node's filesystem instead of their
/// image (every other isolation unchanged).
pub const HOST_FILESYSTEM_ANNOTATION: &str = "minikubelet.io/host-filesystem";

/// Whether a pod's annotations ask for the node's filesystem ([`HOST_FILESYSTEM_ANNOTATION`]
/// set to `"true"`).
pub fn wants_host_filesystem(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(HOST_FILESYSTEM_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The isolation of a container of a pod annotated [`HOST_FILESYSTEM_ANNOTATION`] without a
/// pod sandbox: the node's filesystem as its root, the node's network, IPC and UTS namespaces,
/// its own mount and PID namespaces and containerd's defaults, running the process `cfg`
/// describes.
pub fn host_filesystem(cfg: &crate::shim::ShimConfig, bundle: PathBuf) -> crate::shim::Isolation {
    host_filesystem_with(cfg, bundle, &SandboxPaths::host(), &[])
}

/// The isolation of a container of a pod annotated [`HOST_FILESYSTEM_ANNOTATION`] in the pod's
/// sandbox (`crate::sandbox`): as [`host_filesystem`], but joining the pod's pinned IPC and UTS
/// namespaces (its hostname), the PID namespace of the pod's holder (`pid_holder`, for
/// `shareProcessNamespace`) or the node's (`hostPID`), with the pod's `/etc/hosts`,
/// `/etc/hostname` and `/etc/resolv.conf` bind-mounted over the node's inside the container's
/// mount namespace (containerd's `WithPodNamespaces` and sandbox file mounts).
pub fn host_filesystem_in_pod(
    cfg: &crate::shim::ShimConfig,
    bundle: PathBuf,
    pod: &crate::sandbox::SandboxPaths,
    pid_holder: Option<i32>,
) -> crate::shim::Isolation {
    let pid = if pod.host_pid {
        PidNamespace::Host
    } else if let Some(holder) = pid_holder {
        PidNamespace::Pod(PathBuf::from(format!("/proc/{holder}/ns/pid")))
    } else {
        PidNamespace::Container
    };
    let sandbox = SandboxPaths {
        net: pod.namespaces.net.clone(),
        ipc: pod.namespaces.ipc.clone(),
        uts: pod.namespaces.uts.clone(),
        pid,
        hostname: Some(pod.hostname.clone()),
        shm_size: None,
    };
    let bind = |host_path: &PathBuf, container_path: &str| BindMount {
        host_path: host_path.clone(),
        container_path: container_path.into(),
        read_only: false,
        propagation: MountPropagation::Private,
    };
    let mounts = [
        bind(&pod.hosts_file, "/etc/hosts"),
        bind(&pod.hostname_file, "/etc/hostname"),
        bind(&pod.resolv_conf, "/etc/resolv.conf"),
    ];
    host_filesystem_with(cfg, bundle, &sandbox, &mounts)
}

fn host_filesystem_with(
    cfg: &crate::shim::ShimConfig,
    bundle: PathBuf,
    sandbox: &SandboxPaths,
    mounts: &[BindMount],
) -> crate::shim::Isolation {
    let process = ContainerProcess {
        args: cfg.argv.clone(),
        env: cfg.env.clone(),
        cwd: cfg.working_dir.clone(),
        uid: cfg.uid,
        gid: cfg.gid,
        supplemental_groups: cfg.supplemental_groups.clone(),
        oom_score_adj: cfg.oom_score_adj,
        no_new_privileges: false,
    };
    crate::shim::Isolation {
        bundle,
        rootfs: crate::shim::Rootfs::Host,
        spec: container_spec(&process, sandbox, mounts),
    }
}

/// The size of `/dev/shm` when the pod asks for none: the kubelet's default (64 MiB, as Docker's
/// and containerd's). Larger lets shared-memory apps grow without an `emptyDir` of medium
/// Memory; smaller caps what a container can pin in tmpfs memory.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// containerd's default capabilities (`pkg/oci/spec.go` `defaultUnixCaps`), the ones every
/// unprivileged container gets.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// containerd's masked paths (`pkg/oci/spec.go`, `populateDefaultUnixSpec`).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The container's process, as the pod worker resolves it from the pod spec (and, later, the
/// image config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerProcess {
    /// Command and arguments.
    pub args: Vec<String>,
    /// The whole environment, in order.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container; `/` when unset.
    pub cwd: Option<PathBuf>,
    /// `runAsUser` (0 when unset, as with an image without `User`).
    pub uid: Option<u32>,
    /// `runAsGroup`.
    pub gid: Option<u32>,
    /// `supplementalGroups`, `fsGroup`.
    pub supplemental_groups: Vec<u32>,
    /// The container's `oom_score_adj` (by QoS class).
    pub oom_score_adj: Option<i32>,
    /// `allowPrivilegeEscalation: false` (the kubelet's `NoNewPrivs`).
    pub no_new_privileges: bool,
}

/// The pod's namespaces a container joins, and its hostname.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxPaths {
    /// The pod's network namespace file; `None`: the node's (`hostNetwork`, or until pod
    /// networking lands).
    pub net: Option<PathBuf>,
    /// The pod's IPC namespace file; `None`: the node's (`hostIPC`).
    pub ipc: Option<PathBuf>,
    /// The pod's UTS namespace file; `None`: the node's (then no hostname is set, as runc
    /// refuses one without a UTS namespace of the container's).
    pub uts: Option<PathBuf>,
    /// The PID namespace.
    pub pid: PidNamespace,
    /// The pod's hostname (`spec.hostname`, else the pod's name), set with a UTS namespace.
    pub hostname: Option<String>,
    /// `/dev/shm`'s size in bytes; [`DEFAULT_SHM_SIZE`] when `None`.
    pub shm_size: Option<u64>,
}

impl SandboxPaths {
    /// A pod on the node's network, IPC and UTS namespaces, each container with its own PID
    /// namespace.
    pub fn host() -> Self {
        SandboxPaths::default()
    }
}

/// Which PID namespace a container gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PidNamespace {
    /// Its own (the container's process is PID 1): the default.
    #[default]
    Container,
    /// The pod's (`shareProcessNamespace: true`): the file of the pod's PID-1 holder
    /// (`/proc/<holder>/ns/pid`).
    Pod(PathBuf),
    /// The node's (`hostPID: true`).
    Host,
}

/// A bind mount the caller adds (the pod's `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`,
/// volumes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// The node's file or directory.
    pub host_path: PathBuf,
    /// Where it appears in the container (absolute).
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// The CRI's `MountPropagation`.
    pub propagation: MountPropagation,
}

/// The CRI's `MountPropagation` of a mount (`mountPropagation` of a volume mount).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MountPropagation {
    /// `PROPAGATION_PRIVATE`: `rprivate`.
    #[default]
    Private,
    /// `PROPAGATION_HOST_TO_CONTAINER`: `rslave`.
    HostToContainer,
    /// `PROPAGATION_BIDIRECTIONAL`: `rshared`, and the container's root `rshared` too.
    Bidirectional,
}

/// The OCI `mounts[]` entry of a bind mount (`rbind`, the propagation, `ro` or `rw`, as
/// containerd's CRI plugin writes a volume's: `rprivate`, `rslave` or `rshared`).
pub fn oci_bind(m: &BindMount) -> Mount {
    let propagation = match m.propagation {
        MountPropagation::Private => "rprivate",
        MountPropagation::HostToContainer => "rslave",
        MountPropagation::Bidirectional => "rshared",
    };
    let mut options = vec!["rbind".to_string(), propagation.to_string()];
    options.push(if m.read_only { "ro" } else { "rw" }.to_string());
    Mount {
        destination: m.container_path.clone(),
        kind: "bind".into(),
        source: m.host_path.display().to_string(),
        options,
    }
}

/// The OCI spec for one container: containerd's defaults, the pod's namespaces, the process.
/// `root.path` is `rootfs` (relative to the bundle), where the shim mounts the root filesystem.
pub fn container_spec(
    process: &ContainerProcess,
    sandbox: &SandboxPaths,
    extra_mounts: &[BindMount],
) -> Spec {
    let caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    let mut namespaces = vec![Namespace {
        kind: "mount".into(),
        path: None,
    }];
    match &sandbox.pid {
        PidNamespace::Container => namespaces.push(Namespace {
            kind: "pid".into(),
            path: None,
        }),
        PidNamespace::Pod(path) => namespaces.push(Namespace {
            kind: "pid".into(),
            path: Some(path.clone()),
        }),
        PidNamespace::Host => {}
    }
    for (kind, path) in [
        ("ipc", &sandbox.ipc),
        ("uts", &sandbox.uts),
        ("network", &sandbox.net),
    ] {
        if let Some(path) = path {
            namespaces.push(Namespace {
                kind: kind.into(),
                path: Some(path.clone()),
            });
        }
    }
    let mut mounts = default_mounts(sandbox.shm_size.unwrap_or(DEFAULT_SHM_SIZE));
    mounts.extend(extra_mounts.iter().map(oci_bind));
    Spec {
        oci_version: oci::OCI_VERSION.into(),
        process: Process {
            terminal: false,
            user: User {
                uid: process.uid.unwrap_or(0),
                gid: process.gid.unwrap_or(0),
                additional_gids: process.supplemental_groups.clone(),
            },
            args: process.args.clone(),
            env: process
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cwd: process
                .cwd
                .as_ref()
                .map_or_else(|| "/".to_string(), |d| d.display().to_string()),
            capabilities: Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                inheritable: vec![],
                ambient: vec![],
            }),
            rlimits: vec![],
            no_new_privileges: process.no_new_privileges,
            oom_score_adj: process.oom_score_adj,
            apparmor_profile: None,
        },
        root: Root {
            path: "rootfs".into(),
            readonly: false,
        },
        hostname: sandbox
            .uts
            .as_ref()
            .and(sandbox.hostname.clone())
            .filter(|h| !h.is_empty()),
        mounts,
        linux: Linux {
            namespaces,
            masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
            readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
            rootfs_propagation: None,
            seccomp: None,
            devices: vec![],
            // containerd's default: every device denied (runc then allows its standard ones).
            resources: Some(oci::Resources {
                devices: vec![oci::DeviceRule {
                    allow: false,
                    access: "rwm".into(),
                }],
            }),
        },
        annotations: BTreeMap::new(),
    }
}

/// The container's Linux security settings as the kubelet hands them to the runtime: the CRI's
/// `LinuxContainerSecurityContext`, the fields minikubelet enforces (`crate::security_context`
/// derives them from the pod). [`apply_security`] writes them into the OCI spec the way
/// containerd's CRI plugin does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxContainerSecurityContext {
    /// `capabilities.add`, as the pod names them (`NET_ADMIN`, or `ALL`).
    pub add_capabilities: Vec<String>,
    /// `capabilities.drop`, as the pod names them.
    pub drop_capabilities: Vec<String>,
    /// `privileged`: every capability, no masked or read-only paths, `/sys` writable.
    pub privileged: bool,
    /// `allowPrivilegeEscalation: false` (the kubelet's `NoNewPrivs`).
    pub no_new_privs: bool,
    /// `readOnlyRootFilesystem`.
    pub readonly_rootfs: bool,
    /// `seccompProfile` (the CRI's `SecurityProfile`); privileged containers get none.
    pub seccomp: SeccompProfile,
    /// `appArmorProfile` (the CRI's `apparmor` `SecurityProfile`), resolved by
    /// [`choose_apparmor`].
    pub apparmor: AppArmorProfile,
}

/// The AppArmor profile a container asks for: the container's `appArmorProfile`, else the
/// pod's (the kubelet's `GetProfile`, which hands the CRI its type and, for `Localhost`, the
/// profile's name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AppArmorProfile {
    /// Neither the pod nor the container names one: the kubelet passes none, and containerd
    /// applies its default where the node has AppArmor (as for `RuntimeDefault`).
    #[default]
    Unset,
    /// `Unconfined`.
    Unconfined,
    /// `RuntimeDefault`: the runtime's default profile
    /// ([`crate::shim::apparmor::RUNTIME_DEFAULT_NAME`]).
    RuntimeDefault,
    /// `Localhost` with `localhostProfile`: a profile the node has loaded, by name.
    Localhost(String),
}

/// What a container runs under, as containerd's `GenerateApparmorSpecOpts` decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppArmorChoice {
    /// No profile: unconfined.
    Unconfined,
    /// This loaded profile (`process.apparmorProfile`).
    Profile(String),
    /// The default profile, which is not loaded yet and `apparmor_parser` is there to load.
    LoadDefault,
    /// A container that names no profile on a node where the default can neither be found
    /// nor loaded (no `apparmor_parser`): unconfined, as with containerd, which turns AppArmor
    /// off where the parser is missing (said once in the log).
    UnconfinedWithoutDefault,
}

/// What the node offers, for [`choose_apparmor`]: AppArmor on, the kernel's loaded profiles,
/// and whether `apparmor_parser` is there.
pub struct AppArmorNode<'a> {
    /// The kernel has AppArmor on ([`crate::shim::apparmor::enabled`]).
    pub enabled: bool,
    /// Whether a profile is loaded ([`crate::shim::apparmor::is_loaded`]).
    pub loaded: &'a dyn Fn(&str) -> Result<bool, crate::shim::apparmor::AppArmorError>,
    /// `apparmor_parser` can load the default profile.
    pub parser: bool,
}

impl AppArmorNode<'static> {
    /// This node. The crate's unit tests see a node without AppArmor, so that applying a
    /// security context in a test never loads a profile into the developer's kernel (nor
    /// fails as a non-root user, who may not read the profile list); the decisions are tested
    /// on fake nodes, the real kernel by `tests/security_context.rs` and the VM.
    pub fn current() -> Self {
        AppArmorNode {
            enabled: !cfg!(test) && crate::shim::apparmor::enabled(),
            loaded: &crate::shim::apparmor::is_loaded,
            parser: crate::shim::apparmor::parser().is_some(),
        }
    }
}

/// containerd's `GenerateApparmorSpecOpts`: on a node without AppArmor only `Unconfined` or
/// nothing may be asked for; with it, `Localhost` must name a loaded profile (privileged or
/// not, as with containerd), `RuntimeDefault` and nothing at all get the default profile
/// except in a privileged container, which gets none.
pub fn choose_apparmor(
    sc: &LinuxContainerSecurityContext,
    node: &AppArmorNode,
) -> Result<AppArmorChoice, SecurityError> {
    use crate::shim::apparmor::RUNTIME_DEFAULT_NAME;
    let err = |message: String| SecurityError::AppArmor { message };
    let loaded = |name: &str| (node.loaded)(name).map_err(|e| err(e.to_string()));
    match &sc.apparmor {
        AppArmorProfile::Unset | AppArmorProfile::Unconfined => {}
        // The kubelet's admit handler refuses these first; this is the runtime's own check,
        // in containerd's words (AppArmor turned off after the pod was admitted).
        _ if !node.enabled => return Err(err("apparmor is not supported".into())),
        _ => {}
    }
    let default = |unset: bool| {
        if loaded(RUNTIME_DEFAULT_NAME)? {
            Ok(AppArmorChoice::Profile(RUNTIME_DEFAULT_NAME.into()))
        } else if node.parser {
            Ok(AppArmorChoice::LoadDefault)
        } else if unset {
            Ok(AppArmorChoice::UnconfinedWithoutDefault)
        } else {
            Err(err(format!(
                "the runtime default profile {RUNTIME_DEFAULT_NAME} is not loaded and there is no apparmor_parser to load it: install AppArmor's parser (Debian's apparmor package) or load the profile"
            )))
        }
    };
    match &sc.apparmor {
        AppArmorProfile::Unconfined => Ok(AppArmorChoice::Unconfined),
        AppArmorProfile::Unset if !node.enabled => Ok(AppArmorChoice::Unconfined),
        AppArmorProfile::Unset | AppArmorProfile::RuntimeDefault if sc.privileged => {
            Ok(AppArmorChoice::Unconfined)
        }
        AppArmorProfile::Unset => default(true),
        AppArmorProfile::RuntimeDefault => default(false),
        AppArmorProfile::Localhost(name) => {
            if loaded(name)? {
                Ok(AppArmorChoice::Profile(name.clone()))
            } else {
                Err(err(format!("apparmor profile not found {name}")))
            }
        }
    }
}

/// The AppArmor check of container creation (the worker's, before it creates the container):
/// what [`choose_apparmor`] refuses is the container's `CreateContainerError`. Loads nothing.
pub fn check_apparmor(sc: &LinuxContainerSecurityContext) -> Result<(), SecurityError> {
    choose_apparmor(sc, &AppArmorNode::current()).map(|_| ())
}

/// The profile `spec.process.apparmorProfile` gets for `sc` on this node, loading the default
/// profile with `apparmor_parser` the first time it is needed (containerd's
/// `WithDefaultProfile`).
fn apparmor_profile(sc: &LinuxContainerSecurityContext) -> Result<Option<String>, SecurityError> {
    use crate::shim::apparmor;
    match choose_apparmor(sc, &AppArmorNode::current())? {
        AppArmorChoice::Unconfined => Ok(None),
        AppArmorChoice::Profile(name) => Ok(Some(name)),
        AppArmorChoice::LoadDefault => {
            let parser = apparmor::parser().ok_or_else(|| SecurityError::AppArmor {
                message: "apparmor_parser is gone".into(),
            })?;
            apparmor::load(
                &parser,
                apparmor::RUNTIME_DEFAULT_NAME,
                apparmor::RUNTIME_DEFAULT_PROFILE,
            )
            .map_err(|e| SecurityError::AppArmor {
                message: e.to_string(),
            })?;
            Ok(Some(apparmor::RUNTIME_DEFAULT_NAME.into()))
        }
        AppArmorChoice::UnconfinedWithoutDefault => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    profile = apparmor::RUNTIME_DEFAULT_NAME,
                    "the node has AppArmor but neither the default profile nor apparmor_parser to load it: containers that name no AppArmor profile run unconfined; RuntimeDefault is refused (docs/deviations.md)"
                );
            });
            Ok(None)
        }
    }
}

/// The seccomp profile of a container (the CRI's `SecurityProfile`: its type and, for
/// `Localhost`, the profile's path, which the kubelet makes of `<root-dir>/seccomp/` and the
/// pod's `localhostProfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// No filter (the kubelet's default without `seccompDefault`).
    #[default]
    Unconfined,
    /// The runtime's default profile ([`runtime_default_seccomp`]).
    RuntimeDefault,
    /// A profile file on the node, in runc's JSON format ([`load_seccomp_profile`]).
    Localhost(PathBuf),
}

/// The largest `Localhost` profile read (containerd reads any size): Docker's default profile,
/// the largest in common use, is 20 KiB; a file this big is a mistake, not a profile.
pub const MAX_SECCOMP_PROFILE_BYTES: u64 = 1 << 20;

/// Reads and checks the `Localhost` profile at `path` (containerd's `seccomp.WithProfile`, with
/// its messages), compiling it as the shim will, so that a profile that cannot run is the
/// container's `CreateContainerError` and not a failed start.
pub fn load_seccomp_profile(path: &Path) -> Result<oci::Seccomp, SecurityError> {
    use std::io::Read;
    let err = |message: String| SecurityError::SeccompProfile {
        path: path.to_path_buf(),
        message,
    };
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECCOMP_PROFILE_BYTES + 1).read_to_end(&mut data))
        .map_err(|e| err(format!("cannot load seccomp profile {path:?}: {e}")))?;
    if data.len() as u64 > MAX_SECCOMP_PROFILE_BYTES {
        return Err(err(format!(
            "cannot load seccomp profile {path:?}: larger than {MAX_SECCOMP_PROFILE_BYTES} bytes"
        )));
    }
    let profile: oci::Seccomp = serde_json::from_slice(&data)
        .map_err(|e| err(format!("decoding seccomp profile failed {path:?}: {e}")))?;
    let filter = crate::shim::seccomp::compile(&profile)
        .map_err(|e| err(format!("seccomp profile {path:?}: {e}")))?;
    if !filter.skipped.is_empty() {
        tracing::debug!(path = %path.display(), skipped = ?filter.skipped, "seccomp profile names syscalls this architecture does not have: skipped, as runc skips them");
    }
    Ok(profile)
}

/// The syscalls `RuntimeDefault` refuses (EPERM), each with the capability that lets a
/// container have it after all, if any: the significant ones Docker's and containerd's default
/// profile blocks, as Docker's documentation lists them (`ptrace` and `process_vm_*` are allowed
/// on kernels from 4.8 on, as there). Deviation: containerd's profile is an allowlist (a syscall
/// it does not name is refused too) with argument rules (`clone` with namespace flags,
/// `personality`); this is a denylist of names, so it does not refuse what it does not name.
const RUNTIME_DEFAULT_BLOCKED: &[(&str, Option<&str>)] = &[
    ("acct", Some("CAP_SYS_PACCT")),
    ("add_key", None),
    ("bpf", Some("CAP_SYS_ADMIN")),
    ("clock_adjtime", Some("CAP_SYS_TIME")),
    ("clock_settime", Some("CAP_SYS_TIME")),
    ("delete_module", Some("CAP_SYS_MODULE")),
    ("finit_module", Some("CAP_SYS_MODULE")),
    ("fsconfig", Some("CAP_SYS_ADMIN")),
    ("fsmount", Some("CAP_SYS_ADMIN")),
    ("fsopen", Some("CAP_SYS_ADMIN")),
    ("fspick", Some("CAP_SYS_ADMIN")),
    ("get_mempolicy", Some("CAP_SYS_NICE")),
    ("init_module", Some("CAP_SYS_MODULE")),
    ("ioperm", Some("CAP_SYS_RAWIO")),
    ("iopl", Some("CAP_SYS_RAWIO")),
    ("kcmp", Some("CAP_SYS_PTRACE")),
    ("kexec_file_load", Some("CAP_SYS_BOOT")),
    ("kexec_load", Some("CAP_SYS_BOOT")),
    ("keyctl", None),
    ("lookup_dcookie", Some("CAP_SYS_ADMIN")),
    ("mbind", Some("CAP_SYS_NICE")),
    ("mount", Some("CAP_SYS_ADMIN")),
    ("mount_setattr", Some("CAP_SYS_ADMIN")),
    ("move_mount", Some("CAP_SYS_ADMIN")),
    ("move_pages", Some("CAP_SYS_NICE")),
    ("name_to_handle_at", Some("CAP_SYS_ADMIN")),
    ("nfsservctl", None),
    ("open_by_handle_at", Some("CAP_DAC_READ_SEARCH")),
    ("open_tree", Some("CAP_SYS_ADMIN")),
    ("perf_event_open", Some("CAP_PERFMON")),
    ("pivot_root", Some("CAP_SYS_ADMIN")),
    ("quotactl", Some("CAP_SYS_ADMIN")),
    ("reboot", Some("CAP_SYS_BOOT")),
    ("request_key", None),
    ("set_mempolicy", Some("CAP_SYS_NICE")),
    ("setns", Some("CAP_SYS_ADMIN")),
    ("settimeofday", Some("CAP_SYS_TIME")),
    ("swapoff", Some("CAP_SYS_ADMIN")),
    ("swapon", Some("CAP_SYS_ADMIN")),
    ("sysfs", None),
    ("_sysctl", None),
    ("umount2", Some("CAP_SYS_ADMIN")),
    ("unshare", Some("CAP_SYS_ADMIN")),
    ("uselib", None),
    ("userfaultfd", None),
    ("ustat", None),
];

/// `RuntimeDefault` for a container with the bounding set `caps`: every call in
/// [`RUNTIME_DEFAULT_BLOCKED`] that its capabilities do not unlock answers EPERM (containerd's
/// `errnoRet` 1); everything else is allowed.
pub fn runtime_default_seccomp(caps: &[String]) -> oci::Seccomp {
    let names = RUNTIME_DEFAULT_BLOCKED
        .iter()
        .filter(|(_, cap)| cap.is_none_or(|c| !caps.iter().any(|x| x == c)))
        .map(|(n, _)| n.to_string())
        .collect();
    oci::Seccomp {
        default_action: "SCMP_ACT_ALLOW".into(),
        default_errno_ret: None,
        architectures: vec![],
        flags: vec![],
        listener_path: None,
        syscalls: vec![oci::SeccompSyscall {
            names,
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: Some(libc::EPERM as u32),
            args: vec![],
        }],
    }
}

/// Why a security context cannot be written into a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// A capability name the kernel's list does not have, once containerd has prefixed it.
    #[error(
        "capabilities.{list}: unknown capability {name:?} (as {prefixed}): name capabilities without the CAP_ prefix, e.g. NET_ADMIN"
    )]
    UnknownCapability {
        list: &'static str,
        name: String,
        prefixed: String,
    },
    /// A `Localhost` seccomp profile that cannot be read, parsed or compiled.
    #[error("failed to generate seccomp spec opts: {message}")]
    SeccompProfile { path: PathBuf, message: String },
    /// An AppArmor profile that is not loaded or cannot be (the message names it).
    #[error("failed to generate apparmor spec opts: {message}")]
    AppArmor { message: String },
}

/// The capability name containerd's CRI plugin makes of a pod's (`"CAP_" + upper`).
fn cri_capability(name: &str) -> String {
    format!("CAP_{}", name.to_ascii_uppercase())
}

/// The capabilities in `bounding` (a kernel mask), containerd's "all": its `cap.Current()`, the
/// runtime's own bounding set, so that a runtime without some capability never asks for it.
fn all_capabilities(bounding: u64) -> Vec<String> {
    oci::CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// This process's bounding set (`CapBnd` of `/proc/self/status`, read once: it does not change
/// while the agent runs); every capability the kernel has (`cap_last_cap`) when it cannot be
/// read.
pub fn current_bounding_set() -> u64 {
    static SET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SET.get_or_init(read_bounding_set)
}

fn read_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| {
            let last = crate::shim::isolate::last_cap().min(63);
            u64::MAX >> (63 - last)
        })
}

/// The capability names of `sc` that containerd would not recognise, as an error (the first).
pub fn check_capabilities(sc: &LinuxContainerSecurityContext) -> Result<(), SecurityError> {
    let lists = [
        ("add", &sc.add_capabilities),
        ("drop", &sc.drop_capabilities),
    ];
    for (list, names) in lists {
        for name in names.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
            let prefixed = cri_capability(name);
            if !oci::CAPABILITY_NAMES.contains(&prefixed.as_str()) {
                return Err(SecurityError::UnknownCapability {
                    list,
                    name: name.clone(),
                    prefixed,
                });
            }
        }
    }
    Ok(())
}

/// Adds the volume mounts to `spec` (containerd's `WithMounts`): a `Bidirectional` mount makes
/// the container's root `rshared` (else its mounts could not propagate back), a
/// `HostToContainer` one at least `rslave` (the default here, as runc's).
pub fn add_volume_mounts(spec: &mut Spec, mounts: &[BindMount]) {
    spec.mounts.extend(mounts.iter().map(oci_bind));
    if mounts
        .iter()
        .any(|m| m.propagation == MountPropagation::Bidirectional)
    {
        spec.linux.rootfs_propagation = Some("rshared".into());
    } else if mounts
        .iter()
        .any(|m| m.propagation == MountPropagation::HostToContainer)
        && spec.linux.rootfs_propagation.as_deref() != Some("rshared")
    {
        spec.linux.rootfs_propagation = Some("rslave".into());
    }
}

/// Writes `sc` into `spec`, as containerd's CRI plugin does (`internal/cri/server/
/// container_create_linux.go`, `opts/spec_opts.go` `WithCapabilities`, `oci.WithPrivileged`):
/// privileged gets every capability of the runtime's own bounding set (`bounding`), no masked or read-only paths
/// and a writable `/sys` and `/sys/fs/cgroup`, and ignores `add`/`drop`; otherwise `add: [ALL]`
/// takes every capability, `drop: [ALL]` none, then each named one is added, then each dropped.
/// Capabilities go to the bounding, effective and permitted sets (containerd's
/// `WithAddedCapabilities`), never inheritable or ambient; a non-root process loses its
/// effective and permitted ones at exec, as with runc. Unlike runc, which skips an unknown
/// capability with a warning, an unknown name is an error (docs/deviations.md).
/// A privileged container also gets the node's devices (containerd's `WithHostDevices`,
/// [`host_devices`]) and may use all of them (the device cgroup: `crate::cgroup::devices`).
/// The AppArmor profile is [`choose_apparmor`]'s, the default one loaded the first time it is
/// needed.
pub fn apply_security(
    spec: &mut Spec,
    sc: &LinuxContainerSecurityContext,
    bounding: u64,
) -> Result<(), SecurityError> {
    check_capabilities(sc)?;
    let all = all_capabilities(bounding);
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let caps = if sc.privileged {
        all
    } else {
        let mut caps: Vec<String> = match &spec.process.capabilities {
            Some(c) => c.bounding.clone(),
            None => DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        };
        if sc.add_capabilities.iter().any(is_all) {
            caps = all;
        }
        if sc.drop_capabilities.iter().any(is_all) {
            caps.clear();
        }
        for name in sc.add_capabilities.iter().filter(|c| !is_all(c)) {
            let c = cri_capability(name);
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        for name in sc.drop_capabilities.iter().filter(|c| !is_all(c)) {
            let c = cri_capability(name);
            caps.retain(|x| *x != c);
        }
        caps
    };
    spec.process.capabilities = Some(Capabilities {
        bounding: caps.clone(),
        effective: caps.clone(),
        permitted: caps,
        inheritable: vec![],
        ambient: vec![],
    });
    if sc.privileged {
        spec.linux.devices = host_devices(Path::new("/dev"));
        // containerd's `WithAllDevicesAllowed`.
        spec.linux.resources = Some(oci::Resources {
            devices: vec![oci::DeviceRule {
                allow: true,
                access: "rwm".into(),
            }],
        });
        spec.linux.masked_paths.clear();
        spec.linux.readonly_paths.clear();
        for m in spec
            .mounts
            .iter_mut()
            .filter(|m| m.destination == "/sys" || m.destination == "/sys/fs/cgroup")
        {
            for o in m.options.iter_mut().filter(|o| *o == "ro") {
                *o = "rw".into();
            }
        }
    }
    spec.process.no_new_privileges |= sc.no_new_privs;
    spec.root.readonly |= sc.readonly_rootfs;
    spec.process.apparmor_profile = apparmor_profile(sc)?;
    // containerd gives a privileged container no seccomp filter.
    if sc.privileged {
        return Ok(());
    }
    match &sc.seccomp {
        SeccompProfile::Unconfined => {}
        SeccompProfile::RuntimeDefault => {
            let caps = spec
                .process
                .capabilities
                .as_ref()
                .map(|c| c.bounding.clone())
                .unwrap_or_default();
            spec.linux.seccomp = Some(runtime_default_seccomp(&caps));
        }
        SeccompProfile::Localhost(path) => spec.linux.seccomp = Some(load_seccomp_profile(path)?),
    }
    Ok(())
}

/// The most device nodes given to a privileged container: a node has a few hundred; more is a
/// `/dev` that is not the kernel's (a bind mount of something else) and is not copied whole.
const MAX_HOST_DEVICES: usize = 4096;

/// The node's device nodes under `dev` (containerd's `HostDevices`, `getDevices`): character
/// and block devices, found through directories except `pts`, `shm`, `fd`, `mqueue` and
/// container runtimes' own (`.lxc`, `.lxd-mounts`, `.udev`), without `console`; symlinks and
/// other files are not devices. Each keeps its path, mode and owner.
pub fn host_devices(dev: &Path) -> Vec<oci::Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![(dev.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
                if depth < 8 && !skip.iter().any(|s| name == *s) {
                    dirs.push((e.path(), depth + 1));
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if depth == 0 && name == "console" {
                continue;
            }
            let Ok(rel) = e.path().strip_prefix(dev).map(Path::to_path_buf) else {
                continue;
            };
            let Some(rel) = rel.to_str() else {
                continue;
            };
            if out.len() == MAX_HOST_DEVICES {
                tracing::warn!(dev = %dev.display(), max = MAX_HOST_DEVICES, "too many device nodes: the privileged container gets the first ones only");
                return out;
            }
            out.push(oci::Device {
                path: format!("/dev/{rel}"),
                kind: kind.into(),
                major: libc::major(meta.rdev()),
                minor: libc::minor(meta.rdev()),
                file_mode: Some(meta.mode() & 0o7777),
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// containerd's default mounts (`pkg/oci/mounts.go` `defaultMounts`), with the CRI plugin's
/// per-container `/dev/shm` of the pod's size and `/sys/fs/cgroup` read-only.
fn default_mounts(shm_size: u64) -> Vec<Mount> {
    let m = |dest: &str, kind: &str, source: &str, opts: &[&str]| Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: opts.iter().map(|o| o.to_string()).collect(),
    };
    let shm = format!("size={}k", shm_size / 1024);
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_like_containerd() {
        let process = ContainerProcess {
            args: vec!["sh".into()],
            env: vec![("A".into(), "1".into())],
            uid: Some(1000),
            ..Default::default()
        };
        let spec = container_spec(&process, &SandboxPaths::host(), &[]);
        let caps = spec.process.capabilities.as_ref().unwrap();
        assert_eq!(caps.effective.len(), 14);
        assert!(caps.inheritable.is_empty() && caps.ambient.is_empty());
        assert_eq!(spec.process.env, ["A=1"]);
        assert_eq!(spec.process.cwd, "/");
        assert_eq!(spec.process.user.uid, 1000);
        assert_eq!(spec.hostname, None, "no UTS namespace: no hostname");
        let kinds: Vec<&str> = spec
            .linux
            .namespaces
            .iter()
            .map(|n| n.kind.as_str())
            .collect();
        assert_eq!(kinds, ["mount", "pid"]);
        let dests: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/shm"
            ]
        );
        let shm = spec.mounts.last().unwrap();
        assert!(shm.options.contains(&"size=65536k".to_string()));
        assert_eq!(spec.linux.masked_paths.len(), 11);
        assert_eq!(spec.linux.readonly_paths.len(), 5);
    }

    #[test]
    fn pod_namespaces_hostname_and_binds() {
        let sandbox = SandboxPaths {
            net: Some("/run/mkl/ns/net".into()),
            ipc: Some("/run/mkl/ns/ipc".into()),
            uts: Some("/run/mkl/ns/uts".into()),
            pid: PidNamespace::Pod("/proc/42/ns/pid".into()),
            hostname: Some("web-0".into()),
            shm_size: Some(1 << 20),
        };
        let binds = [BindMount {
            host_path: "/var/lib/mkl/pods/u/etc-hosts".into(),
            container_path: "/etc/hosts".into(),
            read_only: true,
            propagation: MountPropagation::Private,
        }];
        let spec = container_spec(&ContainerProcess::default(), &sandbox, &binds);
        assert_eq!(spec.hostname.as_deref(), Some("web-0"));
        let pid = spec.linux.namespace("pid").unwrap();
        assert_eq!(
            pid.path.as_deref(),
            Some(std::path::Path::new("/proc/42/ns/pid"))
        );
        assert!(spec.linux.namespace("network").unwrap().path.is_some());
        let hosts = spec.mounts.last().unwrap();
        assert_eq!(hosts.destination, "/etc/hosts");
        assert_eq!(hosts.kind, "bind");
        assert!(hosts.options.contains(&"ro".to_string()));
        assert!(spec.mounts[6].options.contains(&"size=1024k".to_string()));
        let host_pid = SandboxPaths {
            pid: PidNamespace::Host,
            ..Default::default()
        };
        let spec = container_spec(&ContainerProcess::default(), &host_pid, &[]);
        assert!(spec.linux.namespace("pid").is_none());
    }

    #[test]
    fn host_filesystem_annotation() {
        let mut a = BTreeMap::new();
        assert!(!wants_host_filesystem(&a));
        a.insert(HOST_FILESYSTEM_ANNOTATION.to_string(), "yes".to_string());
        assert!(!wants_host_filesystem(&a));
        a.insert(HOST_FILESYSTEM_ANNOTATION.to_string(), "true".to_string());
        assert!(wants_host_filesystem(&a));
    }

    fn caps_of(spec: &Spec) -> Vec<String> {
        let mut c = spec.process.capabilities.clone().unwrap().effective;
        c.sort();
        c
    }

    #[test]
    fn security_context_like_containerd() {
        let base = || container_spec(&ContainerProcess::default(), &SandboxPaths::host(), &[]);
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        // drop ALL, add one back: only that one.
        let mut spec = base();
        let sc = LinuxContainerSecurityContext {
            add_capabilities: s(&["net_bind_service"]),
            drop_capabilities: s(&["ALL"]),
            no_new_privs: true,
            readonly_rootfs: true,
            ..Default::default()
        };
        apply_security(&mut spec, &sc, (1 << 41) - 1).unwrap();
        assert_eq!(caps_of(&spec), s(&["CAP_NET_BIND_SERVICE"]));
        assert!(spec.process.no_new_privileges && spec.root.readonly);
        assert_eq!(spec.linux.masked_paths.len(), 11);
        // add ALL, drop one: everything the kernel has but that one.
        let mut spec = base();
        let sc = LinuxContainerSecurityContext {
            add_capabilities: s(&["ALL"]),
            drop_capabilities: s(&["CHOWN"]),
            ..Default::default()
        };
        apply_security(&mut spec, &sc, (1 << 41) - 1).unwrap();
        assert_eq!(caps_of(&spec).len(), 40);
        assert!(!caps_of(&spec).contains(&"CAP_CHOWN".to_string()));
        // defaults plus one, minus one
        let mut spec = base();
        let sc = LinuxContainerSecurityContext {
            add_capabilities: s(&["SYS_TIME"]),
            drop_capabilities: s(&["NET_RAW"]),
            ..Default::default()
        };
        apply_security(&mut spec, &sc, (1 << 41) - 1).unwrap();
        assert_eq!(caps_of(&spec).len(), 14);
        assert!(caps_of(&spec).contains(&"CAP_SYS_TIME".to_string()));
        // privileged: all caps the kernel has, no masks, writable /sys; add/drop ignored.
        let mut spec = base();
        let sc = LinuxContainerSecurityContext {
            privileged: true,
            drop_capabilities: s(&["ALL"]),
            ..Default::default()
        };
        apply_security(&mut spec, &sc, ((1 << 41) - 1) & !(1 << 24)).unwrap();
        assert_eq!(caps_of(&spec).len(), 40);
        assert!(!caps_of(&spec).contains(&"CAP_SYS_RESOURCE".to_string()));
        assert!(spec.linux.masked_paths.is_empty() && spec.linux.readonly_paths.is_empty());
        let sys = spec
            .mounts
            .iter()
            .find(|m| m.destination == "/sys")
            .unwrap();
        assert!(sys.options.contains(&"rw".to_string()), "{sys:?}");
        // A name with the prefix becomes CAP_CAP_...: refused, with the fix.
        let mut spec = base();
        let sc = LinuxContainerSecurityContext {
            add_capabilities: s(&["CAP_NET_ADMIN"]),
            ..Default::default()
        };
        let e = apply_security(&mut spec, &sc, (1 << 41) - 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CAP_CAP_NET_ADMIN") && e.contains("without the CAP_ prefix"),
            "{e}"
        );
    }

    /// containerd's `GenerateApparmorSpecOpts`, case by case, on a fake node.
    #[test]
    fn apparmor_decisions_like_containerd() {
        use crate::shim::apparmor::{AppArmorError, RUNTIME_DEFAULT_NAME, listed};
        let profiles = "mkl-test (enforce)\nother (complain)\n";
        let with_default = "mkl-test (enforce)\nminikubelet-default (enforce)\n";
        type Lookup<'a> = &'a dyn Fn(&str) -> Result<bool, AppArmorError>;
        let plain = |name: &str| Ok(listed(profiles, name));
        let defaulted = |name: &str| Ok(listed(with_default, name));
        let unreadable = |_: &str| {
            Err(AppArmorError::Profiles {
                path: crate::shim::apparmor::PROFILES.into(),
                source: std::io::Error::from_raw_os_error(libc::EACCES),
            })
        };
        let (plain, defaulted, unreadable): (Lookup, Lookup, Lookup) =
            (&plain, &defaulted, &unreadable);
        fn node(enabled: bool, loaded: Lookup<'_>, parser: bool) -> AppArmorNode<'_> {
            AppArmorNode {
                enabled,
                loaded,
                parser,
            }
        }
        let sc = |apparmor: AppArmorProfile, privileged: bool| LinuxContainerSecurityContext {
            apparmor,
            privileged,
            ..Default::default()
        };
        let local = |n: &str| AppArmorProfile::Localhost(n.into());
        use AppArmorChoice::*;
        use AppArmorProfile::{RuntimeDefault as Rd, Unconfined as Un, Unset};
        let ok = |c: AppArmorChoice| Ok::<_, String>(c);
        let err = |m: &str| {
            Err::<AppArmorChoice, String>(format!("failed to generate apparmor spec opts: {m}"))
        };
        let no_parser = "the runtime default profile minikubelet-default is not loaded and there is no apparmor_parser to load it: install AppArmor's parser (Debian's apparmor package) or load the profile";
        let cases = [
            // AppArmor off: nothing or Unconfined only.
            (sc(Unset, false), node(false, plain, true), ok(Unconfined)),
            (sc(Un, false), node(false, plain, true), ok(Unconfined)),
            (
                sc(Rd, false),
                node(false, plain, true),
                err("apparmor is not supported"),
            ),
            (
                sc(local("mkl-test"), false),
                node(false, plain, true),
                err("apparmor is not supported"),
            ),
            // Localhost: loaded (in any mode) or not; privileged too.
            (
                sc(local("mkl-test"), false),
                node(true, plain, false),
                ok(Profile("mkl-test".into())),
            ),
            (
                sc(local("other"), false),
                node(true, plain, false),
                ok(Profile("other".into())),
            ),
            (
                sc(local("mkl-test"), true),
                node(true, plain, false),
                ok(Profile("mkl-test".into())),
            ),
            (
                sc(local("mkl"), false),
                node(true, plain, true),
                err("apparmor profile not found mkl"),
            ),
            (
                sc(local("mkl-test"), false),
                node(true, unreadable, true),
                err("read /sys/kernel/security/apparmor/profiles: Permission denied (os error 13)"),
            ),
            // RuntimeDefault and nothing: the default profile, loaded or to load.
            (
                sc(Rd, false),
                node(true, defaulted, false),
                ok(Profile(RUNTIME_DEFAULT_NAME.into())),
            ),
            (
                sc(Unset, false),
                node(true, defaulted, false),
                ok(Profile(RUNTIME_DEFAULT_NAME.into())),
            ),
            (sc(Rd, false), node(true, plain, true), ok(LoadDefault)),
            (sc(Unset, false), node(true, plain, true), ok(LoadDefault)),
            (sc(Rd, false), node(true, plain, false), err(no_parser)),
            (
                sc(Unset, false),
                node(true, plain, false),
                ok(UnconfinedWithoutDefault),
            ),
            // Privileged: no default profile; Unconfined is unconfined.
            (sc(Rd, true), node(true, defaulted, true), ok(Unconfined)),
            (sc(Unset, true), node(true, defaulted, true), ok(Unconfined)),
            (sc(Un, false), node(true, defaulted, true), ok(Unconfined)),
        ];
        for (i, (sc, node, want)) in cases.into_iter().enumerate() {
            let got = choose_apparmor(&sc, &node).map_err(|e| e.to_string());
            assert_eq!(
                got, want,
                "case {i}: {:?} privileged={}",
                sc.apparmor, sc.privileged
            );
        }
    }
}
