//! The OCI runtime spec (`config.json` of a bundle, runtime-spec 1.x): the subset minikubelet
//! writes and its shim executes.
//!
//! Mirrors `opencontainers/runtime-spec` `specs-go/config.go`, the types containerd fills in
//! (`pkg/oci`, the CRI plugin's `spec_opts`) and hands to runc. Field names and JSON shapes are
//! the spec's, so the same file runs under `runc run` (the test oracle, `tests/oci_oracle.rs`).
//!
//! Our own small serde types rather than the `oci-spec` crate: that crate brings about 20 more
//! crates (`derive_builder`, `getset`, `strum`...) for the few dozen fields used here, into the
//! shim binary whose size and start cost we keep small. Unknown fields are ignored on reading.
//!
//! These types live beside the shim (which executes them) and are re-exported as
//! `crate::runtime::oci`, so that the shim depends on nothing of the runtime's.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The runtime-spec version written into `ociVersion` (what runc 1.1 and containerd 1.7 use).
pub const OCI_VERSION: &str = "1.1.0";

/// A bundle's `config.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The runtime-spec version.
    pub oci_version: String,
    /// The container's process.
    pub process: Process,
    /// The root filesystem.
    pub root: Root,
    /// The UTS namespace's hostname (only with a UTS namespace of the container's or pod's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Mounts, in order, on top of the root filesystem.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Linux-specific settings.
    #[serde(default)]
    pub linux: Linux,
    /// Free-form annotations (containerd's CRI puts the sandbox's identity here).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// `process`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Whether a terminal is attached (minikubelet's shim never allocates one: always false).
    #[serde(default)]
    pub terminal: bool,
    /// User and groups.
    pub user: User,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: String,
    /// Capability sets; `None`: the runtime's caller's (root's) are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Resource limits set before exec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    /// `PR_SET_NO_NEW_PRIVS` before exec.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Written to `/proc/self/oom_score_adj`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The AppArmor profile the process execs under (a profile loaded in the kernel, by
    /// name); none: the caller's (unconfined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
}

/// `process.user`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// `process.capabilities`: names such as `CAP_CHOWN`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The bounding set.
    #[serde(default)]
    pub bounding: Vec<String>,
    /// The effective set.
    #[serde(default)]
    pub effective: Vec<String>,
    /// The permitted set.
    #[serde(default)]
    pub permitted: Vec<String>,
    /// The inheritable set (containerd leaves it empty since CVE-2022-24769).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    /// The ambient set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

/// `process.rlimits[]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// e.g. `RLIMIT_NOFILE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Hard limit.
    pub hard: u64,
    /// Soft limit.
    pub soft: u64,
}

/// `root`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Root {
    /// The root filesystem's directory, relative to the bundle (`rootfs`) or absolute.
    pub path: PathBuf,
    /// Mount the root read-only (`readOnlyRootFilesystem`).
    #[serde(default)]
    pub readonly: bool,
}

/// `mounts[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Filesystem type (`proc`, `tmpfs`, `bind`...).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Device, filesystem name, or the host path of a bind mount.
    #[serde(default)]
    pub source: String,
    /// fstab-style options (`nosuid`, `ro`, `rbind`, `mode=755`...).
    #[serde(default)]
    pub options: Vec<String>,
}

/// `linux`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// Namespaces to create (no `path`) or join (`path`); a type absent here is the host's.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Paths hidden from the container (a read-only tmpfs on directories, `/dev/null` on files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    /// Propagation of the container's `/` (`rslave` by default, as runc does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    /// The seccomp filter (`linux.seccomp`); none: unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// Device nodes made in the container's `/dev` besides the standard ones (a privileged
    /// container's host devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `linux.resources`: only its device rules are written here (what runc would put into the
    /// device cgroup; the agent's `cm` does that for minikubelet's containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// `linux.resources` (the device rules only).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `linux.resources.devices[]`, in order, the later winning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
}

/// `linux.resources.devices[]`: allow or deny `access` (`rwm`) to all devices (no `type`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow, or deny.
    pub allow: bool,
    /// `r`, `w`, `m` combined.
    pub access: String,
}

/// `linux.devices[]`: a node to make in the container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The node's path in the container, under `/dev`.
    pub path: String,
    /// `c` or `b`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// `linux.seccomp`: runc's profile format (what containerd reads from a `Localhost` profile
/// file). Fields of Docker's profile format that the OCI spec lacks (`archMap`, `includes`,
/// ...) are ignored, as containerd ignores them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    /// The action of a syscall no rule matches: `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, ...
    pub default_action: String,
    /// The errno of `SCMP_ACT_ERRNO` as the default action (EPERM when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_X86_64`, `SCMP_ARCH_AARCH64`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_LOG`, `SECCOMP_FILTER_FLAG_SPEC_ALLOW`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The socket a `SCMP_ACT_NOTIFY` listener waits on (refused: no notify support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<SeccompSyscall>,
}

/// `linux.seccomp.syscalls[]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompSyscall {
    /// Syscall names.
    pub names: Vec<String>,
    /// `SCMP_ACT_ERRNO`, `SCMP_ACT_ALLOW`, `SCMP_ACT_KILL_PROCESS`, ...
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO` (EPERM when unset), or the message of `SCMP_ACT_TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments, all of which must hold (runc: one per argument index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
}

/// `linux.seccomp.syscalls[].args[]`: argument `index` compared by `op` with `value`
/// (`SCMP_CMP_MASKED_EQ`: `arg & value == value_two`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    /// The argument, 0 to 5.
    pub index: u32,
    /// The value compared with (the mask, for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value: u64,
    /// The second value (what the masked argument must equal).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_NE`, `SCMP_CMP_LT`, `SCMP_CMP_LE`, `SCMP_CMP_GT`,
    /// `SCMP_CMP_GE` or `SCMP_CMP_MASKED_EQ`.
    pub op: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `linux.namespaces[]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// `pid`, `network`, `mount`, `ipc`, `uts` (`user`, `cgroup`, `time` are not supported).
    #[serde(rename = "type")]
    pub kind: String,
    /// A namespace file to join (`/proc/<pid>/ns/net`, a pinned bind mount); none: a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Linux {
    /// The entry for a namespace type, if the spec has one.
    pub fn namespace(&self, kind: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.kind == kind)
    }
}

/// Capability names in kernel order (`include/uapi/linux/capability.h`): the index is the
/// capability's number.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A set of capability names as the kernel's 64-bit mask; the first unknown name is the error.
pub fn capability_mask(names: &[String]) -> Result<u64, String> {
    let mut mask = 0u64;
    for name in names {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        match CAPABILITY_NAMES.iter().position(|c| *c == full) {
            Some(i) => mask |= 1 << i,
            None => return Err(format!("unknown capability {name:?}")),
        }
    }
    Ok(mask)
}

/// The `RLIMIT_*` resource number for an rlimit type name.
pub fn rlimit_resource(kind: &str) -> Option<u32> {
    let r = match kind {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    };
    // The constants are u32 on glibc and c_int on musl.
    #[allow(clippy::unnecessary_cast)]
    Some(r as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(capability_mask(&s(&["CAP_CHOWN"])), Ok(1));
        assert_eq!(
            capability_mask(&s(&["kill", "CAP_SYS_ADMIN"])),
            Ok((1 << 5) | (1 << 21))
        );
        assert!(capability_mask(&s(&["CAP_NOPE"])).is_err());
        assert_eq!(CAPABILITY_NAMES[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn spec_json_uses_the_runtime_spec_names() {
        let spec = Spec {
            oci_version: OCI_VERSION.into(),
            process: Process {
                args: vec!["sh".into()],
                cwd: "/".into(),
                no_new_privileges: true,
                apparmor_profile: Some("mkl-test".into()),
                ..Default::default()
            },
            root: Root {
                path: "rootfs".into(),
                readonly: false,
            },
            mounts: vec![Mount {
                destination: "/proc".into(),
                kind: "proc".into(),
                source: "proc".into(),
                options: vec![],
            }],
            linux: Linux {
                namespaces: vec![Namespace {
                    kind: "pid".into(),
                    path: None,
                }],
                masked_paths: vec!["/proc/kcore".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        for want in [
            r#""ociVersion":"1.1.0""#,
            r#""noNewPrivileges":true"#,
            r#""apparmorProfile":"mkl-test""#,
            r#""maskedPaths":["/proc/kcore"]"#,
            r#""namespaces":[{"type":"pid"}]"#,
            r#""type":"proc""#,
        ] {
            assert!(json.contains(want), "{want} in {json}");
        }
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }
}
