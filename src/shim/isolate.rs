//! The container's isolation, executed from its OCI spec ([`super::oci`]) between fork and
//! exec: namespaces, the root filesystem, the spec's mounts, `pivot_root`, masked and read-only
//! paths, hostname, rlimits and capabilities.
//!
//! Mirrors runc's `libcontainer`: `nsexec` (joining namespaces), `rootfs_linux.go`
//! (`prepareRoot`, `mountToRootfs`, `createDevices`, `pivotRoot`, `maskPath`, `readonlyPath`)
//! and `standard_init_linux.go` / `init_linux.go` (`finalizeNamespace`: bounding set, keep-caps
//! across setuid, then the capability sets). Everything is prepared before `fork` ([`Plan`]);
//! the child makes only raw, async-signal-safe syscalls on that memory.
//!
//! Hazards from runc's history that shape this file:
//! - CVE-2021-30465 (symlinked mount targets): every target is resolved inside the new root with
//!   `openat2(RESOLVE_IN_ROOT)` and mounted onto `/proc/self/fd/N`, never through a joined path.
//! - CVE-2024-21626 (a leaked directory fd): every fd opened here is close-on-exec, and the
//!   child marks everything above stdio close-on-exec before exec.
use std::ffi::{CStr, CString, c_char, c_int, c_ulong};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::oci::{self, Spec};
use super::{Isolation, Rootfs};

/// A failed isolation step: which one, an index into its list, and the errno.
pub(crate) type Failure = (IsoStep, usize, i32);

/// The isolation steps of the child, for its error report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum IsoStep {
    /// setns into a namespace file (index: [`Plan::join`]).
    Setns = 100,
    /// unshare(CLONE_NEWNS) or making `/` a slave.
    MountNs = 101,
    /// Mounting the root filesystem.
    Rootfs = 102,
    /// A spec mount (index: [`Spec::mounts`]).
    Mount = 103,
    /// Creating `/dev`'s nodes and links.
    Devices = 104,
    /// pivot_root and detaching the old root.
    PivotRoot = 105,
    /// sethostname.
    Hostname = 106,
    /// A read-only path (index: `linux.readonlyPaths`).
    Readonly = 107,
    /// A masked path (index: `linux.maskedPaths`).
    Masked = 108,
    /// An rlimit (index: `process.rlimits`).
    Rlimit = 109,
    /// Dropping from the bounding set, keep-caps, capset or an ambient capability.
    Capabilities = 110,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs = 111,
    /// Resolving a mount target inside the root.
    Resolve = 112,
    /// Making the root read-only.
    ReadonlyRoot = 113,
    /// Installing the seccomp filter.
    Seccomp = 114,
}

impl IsoStep {
    pub(crate) fn from_u32(v: u32) -> Option<IsoStep> {
        use IsoStep::*;
        [
            Setns,
            MountNs,
            Rootfs,
            Mount,
            Devices,
            PivotRoot,
            Hostname,
            Readonly,
            Masked,
            Rlimit,
            Capabilities,
            NoNewPrivs,
            Resolve,
            ReadonlyRoot,
            Seccomp,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    /// The message for a failed step, naming what the spec asked for.
    pub(crate) fn describe(self, iso: &Isolation, index: usize, err: &str) -> String {
        let spec = &iso.spec;
        let at = |v: &[String]| v.get(index).cloned().unwrap_or_default();
        match self {
            IsoStep::Setns => {
                let ns = spec
                    .linux
                    .namespaces
                    .iter()
                    .filter(|n| n.path.is_some() && n.kind != "pid")
                    .nth(index);
                let (kind, path) = ns.map_or((String::new(), String::new()), |n| {
                    let p = n.path.as_deref().unwrap_or(Path::new(""));
                    (n.kind.clone(), p.display().to_string())
                });
                format!("join {kind} namespace {path}: {err}")
            }
            IsoStep::MountNs => format!("new mount namespace: {err}"),
            IsoStep::Rootfs => match &iso.rootfs {
                Rootfs::Overlay { lower, .. } => {
                    format!("mount overlay rootfs ({} layers): {err}", lower.len())
                }
                Rootfs::Host => "rbind / as the rootfs: {err}".replace("{err}", err),
            },
            IsoStep::Mount | IsoStep::Resolve => {
                let m = spec.mounts.get(index);
                let (dest, kind) = m.map_or((String::new(), String::new()), |m| {
                    (m.destination.clone(), m.kind.clone())
                });
                let what = if self == IsoStep::Resolve {
                    "resolve mount target"
                } else {
                    "mount"
                };
                format!("{what} {dest:?} ({kind}) in the rootfs: {err}")
            }
            IsoStep::Devices => format!("create /dev nodes: {err}"),
            IsoStep::PivotRoot => format!("pivot_root: {err}"),
            IsoStep::Hostname => format!(
                "sethostname {:?}: {err}",
                spec.hostname.as_deref().unwrap_or_default()
            ),
            IsoStep::Readonly => {
                format!("make {:?} read-only: {err}", at(&spec.linux.readonly_paths))
            }
            IsoStep::Masked => format!("mask {:?}: {err}", at(&spec.linux.masked_paths)),
            IsoStep::Rlimit => {
                let kind = spec
                    .process
                    .rlimits
                    .get(index)
                    .map(|r| r.kind.clone())
                    .unwrap_or_default();
                format!("setrlimit {kind}: {err}")
            }
            IsoStep::Capabilities => format!("apply capabilities: {err}"),
            IsoStep::NoNewPrivs => format!("set no_new_privs: {err}"),
            IsoStep::Seccomp => format!("install the seccomp filter: {err}"),
            IsoStep::ReadonlyRoot => format!("make the rootfs read-only: {err}"),
        }
    }
}

/// One spec mount, ready for the child.
struct MountOp {
    /// The target relative to the new root, e.g. `dev/pts` (never empty).
    rel: CString,
    /// Each prefix of `rel` (`dev`, `dev/pts`), for creating missing components.
    prefixes: Vec<CString>,
    /// The last component of each prefix.
    names: Vec<CString>,
    source: CString,
    fstype: Option<CString>,
    flags: c_ulong,
    data: Option<CString>,
    /// A bind mount of a non-directory: the target is created as an empty file.
    file_target: bool,
    /// For a read-only bind: the remount's flags.
    remount: Option<c_ulong>,
    /// Propagation flags applied after the mount (`rprivate`...).
    propagation: c_ulong,
    /// Recursively read-only (the `cgroup` mount, an rbind of the node's).
    recursive_ro: bool,
}

/// Capability sets as masks, with the kernel's last capability.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CapPlan {
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: u64,
    last_cap: u32,
}

/// Everything the child needs to isolate the container, prepared before fork.
pub(crate) struct Plan {
    /// Namespace files to setns into, opened before fork (close-on-exec), with their flag.
    join: Vec<(OwnedFd, c_int)>,
    /// The rootfs mountpoint, `<bundle>/<root.path>`.
    rootfs_dir: CString,
    /// Overlay: `lowerdir=...,upperdir=...,workdir=...`; `None`: rbind of `/`.
    overlay: Option<CString>,
    root_propagation: c_ulong,
    readonly_root: bool,
    mounts: Vec<MountOp>,
    hostname: Option<CString>,
    readonly: Vec<CString>,
    masked: Vec<CString>,
    rlimits: Vec<(c_int, libc::rlimit)>,
    pub(crate) caps: Option<CapPlan>,
    pub(crate) no_new_privs: bool,
    /// `linux.seccomp`, compiled ([`super::seccomp`]).
    pub(crate) seccomp: Option<super::seccomp::Filter>,
    /// `linux.devices`: directories to make under `/dev` (parents first), then the nodes.
    device_dirs: Vec<CString>,
    devices: Vec<DevNode>,
}

/// A device node of `linux.devices`, relative to the container's `/dev`.
struct DevNode {
    path: CString,
    mode: libc::mode_t,
    dev: libc::dev_t,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// `linux.devices` as nodes under `/dev` and the directories they need. A path outside `/dev`
/// or with `..` is refused.
fn dev_nodes(devices: &[oci::Device]) -> Result<(Vec<CString>, Vec<DevNode>), String> {
    let mut dirs: Vec<String> = Vec::new();
    let mut nodes = Vec::new();
    for d in devices {
        let rel = d
            .path
            .strip_prefix("/dev/")
            .filter(|r| {
                !r.is_empty() && r.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            })
            .ok_or_else(|| format!("device {:?}: not a path under /dev", d.path))?;
        let kind = match d.kind.as_str() {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            other => return Err(format!("device {:?}: type {other:?} is not c or b", d.path)),
        };
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        nodes.push(DevNode {
            path: cstr("device path", rel)?,
            mode: kind | (d.file_mode.unwrap_or(0o666) & 0o7777),
            dev: libc::makedev(d.major, d.minor),
            uid: d.uid.unwrap_or(0),
            gid: d.gid.unwrap_or(0),
        });
    }
    let dirs = dirs
        .into_iter()
        .map(|d| cstr("device directory", d))
        .collect::<Result<_, _>>()?;
    Ok((dirs, nodes))
}

fn cstr(what: &str, s: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// The kernel's highest capability number (`/proc/sys/kernel/cap_last_cap`).
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(oci::CAPABILITY_NAMES.len() as u32 - 1)
}

impl CapPlan {
    /// The spec's capability sets as masks.
    pub(crate) fn new(caps: &oci::Capabilities) -> Result<CapPlan, String> {
        Ok(CapPlan {
            bounding: oci::capability_mask(&caps.bounding)?,
            effective: oci::capability_mask(&caps.effective)?,
            permitted: oci::capability_mask(&caps.permitted)?,
            inheritable: oci::capability_mask(&caps.inheritable)?,
            ambient: oci::capability_mask(&caps.ambient)?,
            last_cap: last_cap(),
        })
    }

    /// Drops every capability outside the bounding set (before setuid: it needs CAP_SETPCAP)
    /// and keeps the permitted set across the coming setuid (`PR_SET_KEEPCAPS`).
    ///
    /// # Safety
    /// Async-signal-safe.
    pub(crate) unsafe fn before_setuid(&self) -> Result<(), i32> {
        // SAFETY: prctl on integers.
        unsafe {
            for cap in 0..=self.last_cap {
                if self.bounding & (1 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) < 0
                {
                    return Err(errno());
                }
            }
            if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 {
                return Err(errno());
            }
        }
        Ok(())
    }

    /// After setuid: sets effective, permitted and inheritable (`capset`), then the ambient set.
    ///
    /// # Safety
    /// Async-signal-safe.
    pub(crate) unsafe fn after_setuid(&self) -> Result<(), i32> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        /// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
        const VERSION_3: u32 = 0x2008_0522;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let word = |m: u64, i: u32| (m >> (32 * i)) as u32;
        let data = [0, 1].map(|i| Data {
            effective: word(self.effective, i),
            permitted: word(self.permitted, i),
            inheritable: word(self.inheritable, i),
        });
        // SAFETY: capset reads the header and two data words we own; prctl on integers.
        unsafe {
            if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 {
                return Err(errno());
            }
            if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) < 0 {
                return Err(errno());
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(errno());
            }
            for cap in 0..=self.last_cap {
                if self.ambient & (1 << cap) != 0
                    && libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                        cap as c_ulong,
                        0,
                        0,
                    ) < 0
                {
                    return Err(errno());
                }
            }
        }
        Ok(())
    }
}

/// Mount flags and data of fstab-style options, as runc's `parseMountOptions`.
fn parse_options(options: &[String]) -> (c_ulong, c_ulong, Vec<&str>) {
    let mut flags: c_ulong = 0;
    let mut propagation: c_ulong = 0;
    let mut data = Vec::new();
    for o in options {
        let (clear, set, prop): (c_ulong, c_ulong, c_ulong) = match o.as_str() {
            "ro" => (0, libc::MS_RDONLY, 0),
            "rw" => (libc::MS_RDONLY, 0, 0),
            "nosuid" => (0, libc::MS_NOSUID, 0),
            "suid" => (libc::MS_NOSUID, 0, 0),
            "nodev" => (0, libc::MS_NODEV, 0),
            "dev" => (libc::MS_NODEV, 0, 0),
            "noexec" => (0, libc::MS_NOEXEC, 0),
            "exec" => (libc::MS_NOEXEC, 0, 0),
            "sync" => (0, libc::MS_SYNCHRONOUS, 0),
            "dirsync" => (0, libc::MS_DIRSYNC, 0),
            "noatime" => (0, libc::MS_NOATIME, 0),
            "nodiratime" => (0, libc::MS_NODIRATIME, 0),
            "relatime" => (0, libc::MS_RELATIME, 0),
            "strictatime" => (0, libc::MS_STRICTATIME, 0),
            "bind" => (0, libc::MS_BIND, 0),
            "rbind" => (0, libc::MS_BIND | libc::MS_REC, 0),
            "private" => (0, 0, libc::MS_PRIVATE),
            "rprivate" => (0, 0, libc::MS_PRIVATE | libc::MS_REC),
            "slave" => (0, 0, libc::MS_SLAVE),
            "rslave" => (0, 0, libc::MS_SLAVE | libc::MS_REC),
            "shared" => (0, 0, libc::MS_SHARED),
            "rshared" => (0, 0, libc::MS_SHARED | libc::MS_REC),
            "unbindable" => (0, 0, libc::MS_UNBINDABLE),
            "runbindable" => (0, 0, libc::MS_UNBINDABLE | libc::MS_REC),
            other => {
                data.push(other);
                continue;
            }
        };
        flags = (flags & !clear) | set;
        propagation |= prop;
    }
    (flags, propagation, data)
}

fn propagation_flags(name: &str) -> Result<c_ulong, String> {
    Ok(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        other => return Err(format!("unknown rootfsPropagation {other:?}")),
    })
}

impl MountOp {
    fn new(m: &oci::Mount) -> Result<MountOp, String> {
        if !m.destination.starts_with('/') {
            return Err(format!(
                "mount destination {:?} is not absolute",
                m.destination
            ));
        }
        let parts: Vec<&str> = m
            .destination
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.is_empty() {
            return Err("mount destination \"/\" is the root".to_string());
        }
        let mut prefixes = Vec::with_capacity(parts.len());
        let mut names = Vec::with_capacity(parts.len());
        for i in 0..parts.len() {
            prefixes.push(cstr("mount destination", parts[..=i].join("/"))?);
            names.push(cstr("mount destination", parts[i])?);
        }
        let rel = cstr("mount destination", parts.join("/"))?;
        let (mut flags, propagation, data) = parse_options(&m.options);
        let mut fstype = Some(cstr("mount type", m.kind.as_str())?);
        let mut source = m.source.clone();
        let mut recursive_ro = false;
        let bind = m.kind == "bind" || flags & libc::MS_BIND != 0;
        if m.kind == "cgroup" {
            // The node's cgroup tree, recursively read-only (see docs/isolation.md: runc shows
            // only the container's own cgroups there).
            source = "/sys/fs/cgroup".into();
            flags = libc::MS_BIND | libc::MS_REC;
            fstype = None;
            recursive_ro = true;
        } else if bind {
            fstype = None;
            flags |= libc::MS_BIND;
        }
        let file_target = bind && !m.kind.eq("cgroup") && !Path::new(&source).is_dir();
        let remount = (bind && !recursive_ro && flags & libc::MS_RDONLY != 0).then_some(
            libc::MS_BIND
                | libc::MS_REMOUNT
                | (flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT)),
        );
        let data = if data.is_empty() || bind {
            None
        } else {
            Some(cstr("mount options", data.join(","))?)
        };
        Ok(MountOp {
            rel,
            prefixes,
            names,
            source: cstr("mount source", source)?,
            fstype,
            flags,
            data,
            file_target,
            remount,
            propagation,
            recursive_ro,
        })
    }
}

/// The namespace flag of a spec namespace type.
fn ns_flag(kind: &str) -> Result<c_int, String> {
    Ok(match kind {
        "pid" => libc::CLONE_NEWPID,
        "network" => libc::CLONE_NEWNET,
        "mount" => libc::CLONE_NEWNS,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        other => return Err(format!("namespace type {other:?} is not supported")),
    })
}

impl Plan {
    /// Prepares the isolation of `iso` (opens the namespace files, builds every path).
    pub(crate) fn new(iso: &Isolation) -> Result<Plan, String> {
        let spec: &Spec = &iso.spec;
        match spec.linux.namespace("mount") {
            Some(n) if n.path.is_none() => {}
            _ => return Err("the spec must ask for a new mount namespace".to_string()),
        }
        let mut join = Vec::new();
        for ns in &spec.linux.namespaces {
            let flag = ns_flag(&ns.kind)?;
            // The PID namespace is entered by the shim itself, before fork ([`enter_pid_ns`]).
            let Some(path) = &ns.path else {
                if flag != libc::CLONE_NEWPID && flag != libc::CLONE_NEWNS {
                    return Err(format!(
                        "a new {} namespace per container is not supported (the pod sandbox holds it)",
                        ns.kind
                    ));
                }
                continue;
            };
            if flag == libc::CLONE_NEWPID {
                continue;
            }
            let file = std::fs::File::open(path)
                .map_err(|e| format!("open {} namespace {}: {e}", ns.kind, path.display()))?;
            join.push((OwnedFd::from(file), flag));
        }
        let root = iso.bundle.join(&spec.root.path);
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("create rootfs mountpoint {}: {e}", root.display()))?;
        let overlay = match &iso.rootfs {
            Rootfs::Host => None,
            Rootfs::Overlay { lower, upper, work } => {
                if lower.is_empty() {
                    return Err("an overlay rootfs needs at least one layer".to_string());
                }
                let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
                let data = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lowers.join(":"),
                    upper.display(),
                    work.display()
                );
                Some(cstr("overlay options", data)?)
            }
        };
        let root_propagation = match &spec.linux.rootfs_propagation {
            Some(p) => propagation_flags(p)?,
            None => libc::MS_SLAVE | libc::MS_REC,
        };
        let mounts = spec
            .mounts
            .iter()
            .map(MountOp::new)
            .collect::<Result<Vec<_>, _>>()?;
        let paths = |v: &[String]| {
            v.iter()
                .map(|p| cstr("path", p.as_str()))
                .collect::<Result<Vec<_>, _>>()
        };
        let rlimits = spec
            .process
            .rlimits
            .iter()
            .map(|r| {
                let res = oci::rlimit_resource(&r.kind)
                    .ok_or_else(|| format!("unknown rlimit {:?}", r.kind))?;
                Ok((
                    res as c_int,
                    libc::rlimit {
                        rlim_cur: r.soft,
                        rlim_max: r.hard,
                    },
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (device_dirs, devices) = dev_nodes(&spec.linux.devices)?;
        Ok(Plan {
            device_dirs,
            devices,
            join,
            rootfs_dir: cstr("rootfs path", root.as_os_str().as_encoded_bytes())?,
            overlay,
            root_propagation,
            readonly_root: spec.root.readonly,
            mounts,
            hostname: spec
                .hostname
                .as_deref()
                .map(|h| cstr("hostname", h))
                .transpose()?,
            readonly: paths(&spec.linux.readonly_paths)?,
            masked: paths(&spec.linux.masked_paths)?,
            rlimits,
            caps: spec
                .process
                .capabilities
                .as_ref()
                .map(CapPlan::new)
                .transpose()?,
            no_new_privs: spec.process.no_new_privileges,
            seccomp: spec
                .linux
                .seccomp
                .as_ref()
                .map(super::seccomp::compile)
                .transpose()?,
        })
    }
}

/// What the shim does before fork for the container's PID namespace: a new one (the next child
/// is its PID 1) or the pod's (joined by path). Returns whether the container has a PID
/// namespace of its own (then the kernel ends its other processes when it exits).
pub(crate) fn enter_pid_ns(spec: &Spec) -> Result<bool, String> {
    match spec.linux.namespace("pid") {
        None => Ok(false),
        Some(oci::Namespace { path: None, .. }) => {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("new pid namespace: {}", e.desc()))?;
            Ok(true)
        }
        Some(oci::Namespace {
            path: Some(path), ..
        }) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("open pid namespace {}: {e}", path.display()))?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("join pid namespace {}: {}", path.display(), e.desc()))?;
            Ok(false)
        }
    }
}

pub(crate) fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// `/proc/self/fd/<fd>` written into `buf`, NUL-terminated. Async-signal-safe.
fn fd_path(buf: &mut [u8; 32], fd: RawFd) -> *const c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 12];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

/// `openat2(dirfd, path, O_PATH|O_CLOEXEC, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`: `path`
/// resolved as if `dirfd` were `/` (symlinks and `..` cannot leave it). Async-signal-safe.
unsafe fn open_in_root(dirfd: RawFd, path: &CStr) -> Result<RawFd, i32> {
    /// `RESOLVE_NO_MAGICLINKS | RESOLVE_IN_ROOT` (`include/uapi/linux/openat2.h`).
    const RESOLVE: u64 = 0x02 | 0x10;
    /// `struct open_how` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE,
    };
    // SAFETY: openat2 reads `how` and the NUL-terminated `path`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as RawFd)
    }
}

/// Resolves a mount target inside the root, creating what is missing (directories, or an
/// empty file for a file bind mount) one component at a time, each under an fd resolved in
/// the root. Returns an `O_PATH` fd of the target. Async-signal-safe.
unsafe fn target_in_root(rootfd: RawFd, m: &MountOp) -> Result<RawFd, i32> {
    // SAFETY: raw syscalls on prepared C strings and fds we own.
    unsafe {
        let last = m.prefixes.len() - 1;
        for (i, prefix) in m.prefixes.iter().enumerate() {
            match open_in_root(rootfd, prefix) {
                Ok(fd) => {
                    libc::close(fd);
                    continue;
                }
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let parent = if i == 0 {
                libc::fcntl(rootfd, libc::F_DUPFD_CLOEXEC, 0)
            } else {
                open_in_root(rootfd, &m.prefixes[i - 1])?
            };
            if parent < 0 {
                return Err(errno());
            }
            let made = if i == last && m.file_target {
                let fd = libc::openat(
                    parent,
                    m.names[i].as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                    0
                } else {
                    -1
                }
            } else {
                libc::mkdirat(parent, m.names[i].as_ptr(), 0o755)
            };
            let e = errno();
            libc::close(parent);
            if made < 0 && e != libc::EEXIST {
                return Err(e);
            }
        }
        open_in_root(rootfd, &m.rel)
    }
}

fn check(ret: c_int) -> Result<(), i32> {
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

unsafe fn mount(
    src: *const c_char,
    target: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_char,
) -> Result<(), i32> {
    // SAFETY: mount(2) reads the given NUL-terminated strings (or NULL).
    check(unsafe { libc::mount(src, target, fstype, flags, data.cast()) })
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY)`: the mount at `fd`
/// and all below it read-only (Linux 5.12).
unsafe fn recursive_readonly(fd: RawFd) -> Result<(), i32> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    /// `MOUNT_ATTR_RDONLY`.
    const RDONLY: u64 = 1;
    /// `AT_RECURSIVE`.
    const RECURSIVE: c_int = 0x8000;
    let attr = MountAttr {
        attr_set: RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` and an empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | RECURSIVE,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// The container's devices under the new `/dev` (runc's defaults for an unprivileged container):
/// character devices by `mknod`, and the usual links into `/proc` and `pts`.
const DEVICES: [(&CStr, u32, u32); 6] = [
    (c"null", 1, 3),
    (c"zero", 1, 5),
    (c"full", 1, 7),
    (c"random", 1, 8),
    (c"urandom", 1, 9),
    (c"tty", 5, 0),
];
/// runc 1.1's links (it no longer makes `/dev/core`).
const DEV_LINKS: [(&CStr, &CStr); 5] = [
    (c"/proc/self/fd", c"fd"),
    (c"/proc/self/fd/0", c"stdin"),
    (c"/proc/self/fd/1", c"stdout"),
    (c"/proc/self/fd/2", c"stderr"),
    (c"pts/ptmx", c"ptmx"),
];

/// In the child: join namespaces, build the root and pivot into it, then hostname, read-only
/// and masked paths, and rlimits. Only async-signal-safe calls.
///
/// # Safety
/// Call between fork and exec, in a single-threaded child.
pub(crate) unsafe fn enter(p: &Plan) -> Result<(), Failure> {
    let null = std::ptr::null::<c_char>();
    let mut buf = [0u8; 32];
    // SAFETY: raw syscalls on memory prepared before fork.
    unsafe {
        for (i, (fd, flag)) in p.join.iter().enumerate() {
            if libc::setns(fd.as_raw_fd(), *flag) < 0 {
                return Err((IsoStep::Setns, i, errno()));
            }
        }
        let ns = |r: Result<(), i32>| r.map_err(|e| (IsoStep::MountNs, 0, e));
        ns(check(libc::unshare(libc::CLONE_NEWNS)))?;
        ns(mount(null, c"/".as_ptr(), null, p.root_propagation, null))?;
        let fail = |step: IsoStep| move |e: i32| (step, 0, e);
        match &p.overlay {
            Some(data) => mount(
                c"overlay".as_ptr(),
                p.rootfs_dir.as_ptr(),
                c"overlay".as_ptr(),
                0,
                data.as_ptr(),
            ),
            None => mount(
                c"/".as_ptr(),
                p.rootfs_dir.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                null,
            ),
        }
        .map_err(fail(IsoStep::Rootfs))?;
        let rootfd = libc::open(
            p.rootfs_dir.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if rootfd < 0 {
            return Err((IsoStep::Rootfs, 0, errno()));
        }
        for (i, m) in p.mounts.iter().enumerate() {
            let mut target = target_in_root(rootfd, m).map_err(|e| (IsoStep::Resolve, i, e))?;
            let mount_at = |buf: &mut [u8; 32], target| {
                mount(
                    m.source.as_ptr(),
                    fd_path(buf, target),
                    m.fstype.as_ref().map_or(null, |t| t.as_ptr()),
                    m.flags,
                    m.data.as_ref().map_or(null, |d| d.as_ptr()),
                )
            };
            let mut r = mount_at(&mut buf, target);
            if r == Err(libc::EBUSY) {
                // The node's filesystem as the rootfs already has this filesystem there
                // (the node's /sys: the same superblock cannot be stacked on itself):
                // detach the node's and mount the container's own.
                let detached = check(libc::umount2(fd_path(&mut buf, target), libc::MNT_DETACH));
                libc::close(target);
                detached.map_err(|e| (IsoStep::Mount, i, e))?;
                target = open_in_root(rootfd, &m.rel).map_err(|e| (IsoStep::Resolve, i, e))?;
                r = mount_at(&mut buf, target);
            }
            libc::close(target);
            r.map_err(|e| (IsoStep::Mount, i, e))?;
            if m.remount.is_some() || m.propagation != 0 || m.recursive_ro {
                // The target's fd names the directory under the new mount: reopen it.
                let top = open_in_root(rootfd, &m.rel).map_err(|e| (IsoStep::Resolve, i, e))?;
                let at = fd_path(&mut buf, top);
                let mut r = Ok(());
                if let Some(flags) = m.remount {
                    r = mount(null, at, null, flags, null);
                }
                if r.is_ok() && m.propagation != 0 {
                    r = mount(null, at, null, m.propagation, null);
                }
                if r.is_ok() && m.recursive_ro {
                    r = recursive_readonly(top);
                }
                libc::close(top);
                r.map_err(|e| (IsoStep::Mount, i, e))?;
            }
        }
        make_devices(rootfd, p).map_err(fail(IsoStep::Devices))?;
        pivot(rootfd).map_err(fail(IsoStep::PivotRoot))?;
        libc::close(rootfd);
        if let Some(h) = &p.hostname
            && libc::sethostname(h.as_ptr(), h.as_bytes().len()) < 0
        {
            return Err((IsoStep::Hostname, 0, errno()));
        }
        for (i, path) in p.readonly.iter().enumerate() {
            readonly_path(path).map_err(|e| (IsoStep::Readonly, i, e))?;
        }
        for (i, path) in p.masked.iter().enumerate() {
            mask_path(path).map_err(|e| (IsoStep::Masked, i, e))?;
        }
        if p.readonly_root {
            mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                null,
            )
            .map_err(fail(IsoStep::ReadonlyRoot))?;
        }
        for (i, (res, lim)) in p.rlimits.iter().enumerate() {
            if libc::setrlimit(*res as _, lim) < 0 {
                return Err((IsoStep::Rlimit, i, errno()));
            }
        }
    }
    Ok(())
}

/// `/dev`'s nodes and links, relative to the new root (its `dev` is the spec's tmpfs), then
/// the spec's own devices (a privileged container's host devices) with their owners.
unsafe fn make_devices(rootfd: RawFd, p: &Plan) -> Result<(), i32> {
    // SAFETY: raw syscalls on static strings and fds we own.
    unsafe {
        let dev = open_in_root(rootfd, c"dev")?;
        // O_PATH fds serve as dirfd of the *at calls.
        let old = libc::umask(0);
        let mut result = Ok(());
        for (name, major, minor) in DEVICES {
            let r = libc::mknodat(
                dev,
                name.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            );
            if r < 0 && errno() != libc::EEXIST {
                result = Err(errno());
                break;
            }
        }
        if result.is_ok() {
            for dir in &p.device_dirs {
                if libc::mkdirat(dev, dir.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                    result = Err(errno());
                    break;
                }
            }
        }
        if result.is_ok() {
            for d in &p.devices {
                let r = libc::mknodat(dev, d.path.as_ptr(), d.mode, d.dev);
                if r < 0 && errno() != libc::EEXIST {
                    result = Err(errno());
                    break;
                }
                if r == 0
                    && libc::fchownat(
                        dev,
                        d.path.as_ptr(),
                        d.uid,
                        d.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    ) < 0
                {
                    result = Err(errno());
                    break;
                }
            }
        }
        if result.is_ok() {
            for (target, name) in DEV_LINKS {
                if libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) < 0
                    && errno() != libc::EEXIST
                {
                    result = Err(errno());
                    break;
                }
            }
        }
        libc::umask(old);
        libc::close(dev);
        result
    }
}

/// runc's `pivotRoot`: `pivot_root(".", ".")` inside the new root, then the old root (now
/// stacked under it) is made a slave, so its unmount does not propagate, and detached.
unsafe fn pivot(rootfd: RawFd) -> Result<(), i32> {
    let null = std::ptr::null::<c_char>();
    // SAFETY: raw syscalls on static strings and fds we own.
    unsafe {
        let oldroot = libc::open(
            c"/".as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if oldroot < 0 {
            return Err(errno());
        }
        let r = (|| {
            check(libc::fchdir(rootfd))?;
            if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) < 0 {
                return Err(errno());
            }
            check(libc::fchdir(oldroot))?;
            mount(
                null,
                c".".as_ptr(),
                null,
                libc::MS_SLAVE | libc::MS_REC,
                null,
            )?;
            check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
            check(libc::chdir(c"/".as_ptr()))
        })();
        libc::close(oldroot);
        r
    }
}

/// runc's `readonlyPath`: bind the path onto itself, then remount it read-only keeping its
/// other flags. A missing path is skipped.
unsafe fn readonly_path(path: &CStr) -> Result<(), i32> {
    let null = std::ptr::null::<c_char>();
    // SAFETY: raw syscalls on prepared strings.
    unsafe {
        match mount(
            path.as_ptr(),
            path.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REC,
            null,
        ) {
            Err(libc::ENOENT) => return Ok(()),
            r => r?,
        }
        let mut st: libc::statvfs = std::mem::zeroed();
        check(libc::statvfs(path.as_ptr(), &mut st))?;
        // ST_NOSUID/NODEV/NOEXEC/NOATIME/NODIRATIME/RELATIME have the MS_* values.
        let keep = (st.f_flag as c_ulong)
            & (libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
                | libc::MS_NOATIME
                | libc::MS_NODIRATIME
                | libc::MS_RELATIME);
        mount(
            path.as_ptr(),
            path.as_ptr(),
            null,
            keep | libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
            null,
        )
    }
}

/// runc's `maskPath`: `/dev/null` over a file, a read-only empty tmpfs over a directory. A
/// missing path is skipped.
unsafe fn mask_path(path: &CStr) -> Result<(), i32> {
    let null = std::ptr::null::<c_char>();
    // SAFETY: raw syscalls on prepared strings.
    unsafe {
        match mount(
            c"/dev/null".as_ptr(),
            path.as_ptr(),
            null,
            libc::MS_BIND,
            null,
        ) {
            Ok(()) => Ok(()),
            Err(libc::ENOENT) => Ok(()),
            Err(libc::ENOTDIR) => mount(
                c"tmpfs".as_ptr(),
                path.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY,
                null,
            ),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths() {
        let mut buf = [0u8; 32];
        for (fd, want) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
        ] {
            let p = fd_path(&mut buf, fd);
            // SAFETY: fd_path NUL-terminates within buf.
            let got = unsafe { CStr::from_ptr(p) };
            assert_eq!(got.to_str().unwrap(), want);
        }
    }

    #[test]
    fn mount_options_like_runc() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let opts = s(&["nosuid", "ro", "mode=755", "rprivate", "size=1k"]);
        let (f, p, d) = parse_options(&opts);
        assert_eq!(f, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(p, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(d, ["mode=755", "size=1k"]);
        let (f, _, _) = parse_options(&s(&["ro", "rw", "rbind"]));
        assert_eq!(f, libc::MS_BIND | libc::MS_REC);
        let m = MountOp::new(&oci::Mount {
            destination: "/etc//hosts".into(),
            kind: "bind".into(),
            source: "/etc/hostname".into(),
            options: s(&["rbind", "ro"]),
        })
        .unwrap();
        assert_eq!(m.rel.to_str().unwrap(), "etc/hosts");
        assert_eq!(m.prefixes.len(), 2);
        assert!(m.file_target && m.fstype.is_none() && m.data.is_none());
        assert!(m.remount.is_some_and(|f| f & libc::MS_RDONLY != 0));
        assert!(
            MountOp::new(&oci::Mount {
                destination: "relative".into(),
                ..Default::default()
            })
            .is_err()
        );
    }
}
