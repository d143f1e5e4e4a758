//! Our own small cgroupfs layer: paths, reads, writes, kill and freeze for cgroup v1, hybrid and v2.
//!
//! Mirrors the kubelet's `pkg/kubelet/cm/cgroup_manager_linux.go` with its v1/v2 managers
//! (and the libcontainer `fs`/`fs2` writers underneath them). It knows files and numbers, not
//! pods: `cm` decides *which* cgroup gets *which* value, this module puts it into the kernel.
//! Every write goes through one function that logs `path` and `value` at debug level
//! (`"cgroup write"`), so `RUST_LOG=minikubelet::cgroup=debug` shows exactly what a kubelet does
//! to a cgroup. All calls block (small file I/O, short bounded sleeps in `remove`, `freeze` and
//! `kill`); async callers use `spawn_blocking`.
//!
//! # Layouts
//! - **v2** (`/sys/fs/cgroup` is `cgroup2`, statfs `CGROUP2_SUPER_MAGIC`): one tree; controllers
//!   are switched on for a cgroup's children by writing `+cpu +memory +pids` into its
//!   `cgroup.subtree_control`. A cgroup that has controllers enabled for its children may not
//!   hold processes itself (the "no internal processes" rule), so for a relative `--cgroup-root`
//!   the agent first moves itself into a leaf `<own>/<agent_leaf>`.
//! - **v1** (`/sys/fs/cgroup` is a tmpfs with one `cgroup` mount per controller, e.g. `cpu`,
//!   `cpuacct` (or both co-mounted as `cpu,cpuacct`), `memory`, `pids`, `freezer`): every
//!   hierarchy is a separate tree, a process may sit at a different path in each (here memory
//!   says `/process_api/<id>` while cpu says `/`), so a cgroup name is created once per hierarchy
//!   beneath that hierarchy's root.
//! - **hybrid**: v1 as above plus an empty `cgroup2` at `/sys/fs/cgroup/unified` (systemd's
//!   process tracking). No resource controller lives there, so hybrid is treated as v1.
//!
//! Mount points come from `<proc>/self/mountinfo` (a mount whose root is not `/`, as in a
//! container, is handled: the own path from `<proc>/self/cgroup` is taken relative to it).
//!
//! # What each operation writes
//! | operation | v1 (and hybrid) | v2 |
//! |---|---|---|
//! | [`CgroupFs::create`] | `mkdir` in each hierarchy | `mkdir`, and `+cpu +memory +pids` into each new parent's `cgroup.subtree_control` |
//! | [`CgroupFs::set_memory_limit`] | `memory.limit_in_bytes` (bytes or `-1`) | `memory.max` (bytes or `max`) |
//! | [`CgroupFs::set_memory_swap_limit`] | `memory.memsw.limit_in_bytes` = the memory limit (NoSwap; skipped without swap accounting) | `memory.swap.max` (`0` or the LimitedSwap bytes; skipped without the file) |
//! | [`CgroupFs::set_cpu_shares`] | `cpu.shares` | `cpu.weight` = `1 + ((shares-2)*9999)/262142` (kubepods, QoS, pod) |
//! | [`CgroupFs::set_cpu_shares_with`] `Runtime` | `cpu.shares` | container `cpu.weight` = `ceil(10^((l²+125l)/612 − 7/34))`, `l = log2(shares)` (runc ≥ 1.3.2 / crun ≥ 1.23) |
//! | [`CgroupFs::set_cpu_quota`] | `cpu.cfs_period_us`, `cpu.cfs_quota_us` (`-1`) | `cpu.max` (`<quota> <period>` / `max <period>`) |
//! | [`CgroupFs::set_pids_max`] | `pids.max` | `pids.max` |
//! | [`CgroupFs::set_memory_oom_group`] | nothing (no such file) | `memory.oom.group` |
//! | [`CgroupFs::add_process`] | `cgroup.procs` in every hierarchy | `cgroup.procs` |
//! | [`CgroupFs::join_files`] (a new child joins itself) | `tasks` in every hierarchy | `cgroup.procs` (the shim uses `clone3(CLONE_INTO_CGROUP)` first) |
//! | [`CgroupFs::freeze`] | `freezer.state` `FROZEN` / `THAWED` | `cgroup.freeze` `1` / `0` |
//! | [`CgroupFs::kill`] | freeze, SIGKILL each pid in the subtree's `cgroup.procs`, thaw, until empty | `cgroup.kill` `1` (kernel >= 5.14), else as v1 with `cgroup.freeze` |
//!
//! Reads: `memory.usage_in_bytes` + `memory.stat` `total_inactive_file` (v1) or
//! `memory.current` + `memory.stat` `inactive_file` (v2) for the working set;
//! `memory.oom_control` (v1) or `memory.events` (v2) for `oom_kill`; `cpuacct.usage` (v1) or
//! `cpu.stat` `usage_usec` (v2).

mod detect;
pub mod devices;
mod io;
mod join;
mod ops;
pub mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use detect::RootFs;
#[cfg(test)]
pub(crate) use io::FAKE_KERNEL_DIR;
pub use join::ProcsJoin;
pub use ops::SwapLimit;

/// The kubelet's minimum `cpu.shares` (`MinShares`).
pub const MIN_SHARES: u64 = 2;
/// The kubelet's maximum `cpu.shares` (`MaxShares`).
pub const MAX_SHARES: u64 = 262_144;
/// The v2 controllers the agent enables for its children.
const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// Errors of the cgroup layer; each carries the file or cgroup it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// statfs of the cgroup mount failed.
    #[error("statfs {path}: {source}")]
    Statfs {
        /// The path given to statfs.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    /// Reading a proc or cgroup file failed.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a value into a cgroup file failed.
    #[error("write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Creating a cgroup directory failed.
    #[error("mkdir {path}: {source}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Removing a cgroup directory failed (after retries on EBUSY).
    #[error("rmdir {path}: {source}")]
    Rmdir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content was not what the kernel documents.
    #[error("parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// No usable cgroup hierarchy was found.
    #[error("no cgroup hierarchy found in {mountinfo}: {reason}")]
    NoHierarchy {
        /// The mountinfo file read.
        mountinfo: PathBuf,
        /// What was missing.
        reason: String,
    },
    /// The own cgroup of this process lies outside the mounted part of its hierarchy.
    #[error(
        "own cgroup {own:?} of {mount_point} is not below the mount's root {mount_root:?} (from {cgroup_file})"
    )]
    OwnOutsideMount {
        /// The mount point.
        mount_point: PathBuf,
        /// The mount's root inside the hierarchy.
        mount_root: String,
        /// The own cgroup path.
        own: String,
        /// The /proc/self/cgroup file read.
        cgroup_file: PathBuf,
    },
    /// The controller is not mounted (v1) or not part of the layout.
    #[error("cgroup controller {0} is not available")]
    ControllerMissing(Controller),
    /// A cgroup name component or root is not a plain directory name.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName {
        /// The offending name or component.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// On v2 the cgroup whose children get controllers still holds other processes.
    #[error(
        "cgroup {path} holds processes {pids:?} besides this agent, and cgroup v2 forbids processes in a cgroup that delegates controllers to children: run minikubelet in a cgroup of its own (a systemd service with Delegate=yes, or `systemd-run --scope -p Delegate=yes minikubelet ...`), move those processes out, or pass an absolute --cgroup-root"
    )]
    InternalProcesses {
        /// The cgroup directory.
        path: PathBuf,
        /// The other processes in it.
        pids: Vec<i32>,
    },
    /// Processes survived `kill` for the whole wait.
    #[error("kill {path}: processes {pids:?} still present after {waited:?}")]
    KillTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The survivors.
        pids: Vec<i32>,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// The freezer did not reach the requested state in time.
    #[error("freeze {path}: state {state:?} after {waited:?}")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The last state read.
        state: String,
        /// How long we waited.
        waited: std::time::Duration,
    },
}

/// How the cgroup hierarchies are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One `cgroup` mount per controller (legacy).
    V1,
    /// v1 controllers plus an empty cgroup2 at `unified`; handled as v1.
    Hybrid,
    /// One unified cgroup2 tree.
    V2,
}

impl Layout {
    /// Whether resource controllers live in the unified (v2) tree.
    pub fn is_v2(self) -> bool {
        self == Layout::V2
    }

    /// The file a single-threaded process writes "0" into to join a cgroup: `tasks` on v1 and
    /// hybrid (no threadgroup lock, see [`CgroupFs::join_files`]), `cgroup.procs` on v2.
    pub fn join_file(self) -> &'static str {
        if self.is_v2() {
            "cgroup.procs"
        } else {
            "tasks"
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::V1 => "v1",
            Layout::Hybrid => "hybrid",
            Layout::V2 => "v2",
        })
    }
}

/// The controllers the agent uses; on v2 all of them share the unified tree (freezer = `cgroup.freeze`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    /// `cpu`: shares/weight and CFS quota.
    Cpu,
    /// `cpuacct` (v1): CPU usage; co-mounted with cpu or separate. On v2 this is `cpu.stat`.
    Cpuacct,
    /// `memory`: limit, usage, OOM events.
    Memory,
    /// `pids`: process count limit.
    Pids,
    /// `freezer` (v1): freeze/thaw, used by kill. On v2 this is `cgroup.freeze`.
    Freezer,
    /// `devices` (v1): which device nodes the processes may use. On v2 this is an eBPF program
    /// attached to the cgroup ([`devices`]).
    Devices,
}

impl Controller {
    /// All controllers the agent uses, in the order hierarchies are listed.
    pub const ALL: [Controller; 6] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Pids,
        Controller::Freezer,
        Controller::Devices,
    ];

    /// The kernel's name for the controller (the v1 mount option).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
            Controller::Devices => "devices",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cgroup named relative to the agent's cgroup root, driver-neutral like the kubelet's
/// `CgroupName`, e.g. `["kubepods", "burstable", "pod<uid>", "web"]`; empty = the root itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CgroupName(Vec<String>);

impl CgroupName {
    /// The agent's cgroup root itself.
    pub fn root() -> Self {
        CgroupName(Vec::new())
    }

    /// A name from components; each must be a plain directory name.
    pub fn new<I, S>(components: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Vec::new();
        for c in components {
            let c = c.into();
            validate_component(&c)?;
            out.push(c);
        }
        Ok(CgroupName(out))
    }

    /// Parses the cgroupfs form `/a/b` (the kubelet's `ParseCgroupfsToCgroupName`); `/` is the root.
    pub fn from_cgroupfs(path: &str) -> Result<Self, Error> {
        CgroupName::new(path.split('/').filter(|c| !c.is_empty()))
    }

    /// This name with one more component.
    pub fn child(&self, component: &str) -> Result<Self, Error> {
        validate_component(component)?;
        let mut v = self.0.clone();
        v.push(component.to_string());
        Ok(CgroupName(v))
    }

    /// The parent name, `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(CgroupName(rest.to_vec()))
    }

    /// The components.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// Whether this is the agent's cgroup root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The cgroupfs form `/a/b` (the kubelet's `ToCgroupfs`); `/` for the root.
    pub fn to_cgroupfs(&self) -> String {
        format!("/{}", self.0.join("/"))
    }

    /// `base` joined with the components.
    fn under(&self, base: &Path) -> PathBuf {
        let mut p = base.to_path_buf();
        for c in &self.0 {
            p.push(c);
        }
        p
    }
}

impl fmt::Display for CgroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_cgroupfs())
    }
}

fn validate_component(c: &str) -> Result<(), Error> {
    let reason = if c.is_empty() {
        "empty component"
    } else if c == "." || c == ".." {
        "relative component"
    } else if c.contains('/') {
        "component contains '/'"
    } else if c.contains('\0') {
        "component contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: c.to_string(),
        reason,
    })
}

/// Memory figures of one cgroup, as the kubelet's stats and eviction code read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryStats {
    /// v1 `memory.usage_in_bytes`, v2 `memory.current` (root on v2: `anon + file`).
    pub usage_bytes: u64,
    /// v1 `total_inactive_file`, v2 `inactive_file` from `memory.stat`.
    pub inactive_file_bytes: u64,
    /// `usage - inactive_file`, clamped at 0 (the kubelet's working set).
    pub working_set_bytes: u64,
    /// The limit; `None` when unlimited (v2 `max`, v1 >= 2^62).
    pub limit_bytes: Option<u64>,
}

impl MemoryStats {
    fn new(usage: u64, inactive: u64, limit: Option<u64>) -> Self {
        MemoryStats {
            usage_bytes: usage,
            inactive_file_bytes: inactive,
            working_set_bytes: usage.saturating_sub(inactive),
            limit_bytes: limit,
        }
    }
}

/// One mounted hierarchy the agent uses (v2: the only one).
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    /// The controllers of [`Controller::ALL`] this hierarchy serves.
    controllers: Vec<Controller>,
    /// Where it is mounted.
    mount_point: PathBuf,
    /// The mount's root inside the hierarchy (mountinfo field 4).
    mount_root: String,
    /// The directory of the cgroup this process runs in.
    own: PathBuf,
    /// The directory of the agent's cgroup root (`--cgroup-root` resolved).
    root: PathBuf,
}

/// The detected cgroup hierarchies and the agent's resolved cgroup root in each.
#[derive(Clone, Debug)]
pub struct CgroupFs {
    layout: Layout,
    proc_root: PathBuf,
    hierarchies: Vec<Hierarchy>,
    unified_mount: Option<PathBuf>,
    /// The `--cgroup-root` as given (for reports).
    root_spec: String,
}

/// What the preflight report shows about the cgroup setup.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Features {
    /// The detected layout.
    pub layout: Layout,
    /// The cgroup2 mount of a hybrid layout (unused for resources).
    pub unified_mount: Option<PathBuf>,
    /// The `--cgroup-root` as given.
    pub cgroup_root: String,
    /// One entry per hierarchy in use.
    pub hierarchies: Vec<HierarchyFeatures>,
    /// Controllers the agent would use that are not mounted.
    pub missing_controllers: Vec<Controller>,
    /// Whether v2 `cgroup.kill` is available (kernel >= 5.14); always false on v1.
    pub has_cgroup_kill: bool,
}

/// One hierarchy in the preflight report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HierarchyFeatures {
    /// The controllers of the agent served here.
    pub controllers: Vec<Controller>,
    /// Mount point.
    pub mount_point: PathBuf,
    /// The mount's root inside the hierarchy (not `/` in a container without a cgroup namespace).
    pub mount_root: String,
    /// The directory of the cgroup this process runs in.
    pub own: PathBuf,
    /// The directory of the agent's cgroup root.
    pub root: PathBuf,
    /// v2: `cgroup.controllers` of the root; v1: the controllers served.
    pub available: Vec<String>,
    /// v2: `cgroup.subtree_control` of the root; v1: the controllers served.
    pub enabled: Vec<String>,
    /// Whether the root directory is writable by this process.
    pub writable: bool,
}

impl CgroupFs {
    /// Detects the hierarchies from the real `/proc` and `/sys`.
    pub fn detect() -> Result<Self, Error> {
        Self::detect_with_root(Path::new("/proc"), Path::new("/sys"))
    }

    /// Detects from the given roots: statfs of `<sys>/fs/cgroup`, then [`Self::detect_with_hint`].
    pub fn detect_with_root(proc_root: &Path, sys_root: &Path) -> Result<Self, Error> {
        let kind = detect::root_fs_kind(&sys_root.join("fs/cgroup"))?;
        Self::detect_with_hint(proc_root, sys_root, kind)
    }

    /// Detects from `<proc>/self/mountinfo` and `<proc>/self/cgroup`, given what statfs says
    /// `<sys>/fs/cgroup` is (kept apart because a fake tree cannot fake the magic).
    pub fn detect_with_hint(
        proc_root: &Path,
        sys_root: &Path,
        root_fs: RootFs,
    ) -> Result<Self, Error> {
        let d = detect::detect(proc_root, &sys_root.join("fs/cgroup"), root_fs)?;
        tracing::debug!(
            layout = %d.layout,
            hierarchies = d.hierarchies.len(),
            "cgroup layout detected"
        );
        Ok(CgroupFs {
            layout: d.layout,
            proc_root: proc_root.to_path_buf(),
            hierarchies: d.hierarchies,
            unified_mount: d.unified,
            root_spec: "/".to_string(),
        })
    }

    /// The detected layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The directory of `name` in the hierarchy serving `controller`, if that controller is mounted.
    pub fn path(&self, controller: Controller, name: &CgroupName) -> Option<PathBuf> {
        self.hierarchy(controller).ok().map(|h| name.under(&h.root))
    }

    /// The directory of the agent's cgroup root for `controller`.
    pub fn root_path(&self, controller: Controller) -> Option<PathBuf> {
        self.path(controller, &CgroupName::root())
    }

    /// The directory of the cgroup this process runs in, for `controller`.
    pub fn own_path(&self, controller: Controller) -> Option<PathBuf> {
        self.hierarchy(controller).ok().map(|h| h.own.clone())
    }

    fn hierarchy(&self, controller: Controller) -> Result<&Hierarchy, Error> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.contains(&controller))
            .ok_or(Error::ControllerMissing(controller))
    }

    fn dir(&self, controller: Controller, name: &CgroupName) -> Result<PathBuf, Error> {
        Ok(name.under(&self.hierarchy(controller)?.root))
    }

    /// Resolves `--cgroup-root`. Absolute (`/foo`): relative to each hierarchy's mount, as the
    /// kubelet does, and it must exist. Relative (`foo`, `""`, `.`): beneath the cgroup this
    /// process runs in (per hierarchy on v1), created if missing; on v2 the process first moves
    /// itself into `<own>/<agent_leaf>` and enables `+cpu +memory +pids` in
    /// `<own>/cgroup.subtree_control`, failing with [`Error::InternalProcesses`] when other
    /// processes share `<own>`.
    pub fn with_root(mut self, cgroup_root: &str, agent_leaf: &str) -> Result<Self, Error> {
        let comps = root_components(cgroup_root)?;
        if cgroup_root.starts_with('/') {
            // The kubelet refuses a cgroup root that does not exist; minikubelet creates it
            // (and, on v2, enables the controllers on the way down), so that a systemd unit with
            // `cgroupRoot: /minikubelet` needs no ExecStartPre. A deliberate, logged deviation.
            for h in &mut self.hierarchies {
                let root = comps.under(&h.mount_point);
                if !root.is_dir() {
                    tracing::info!(path = %root.display(), "creating the absolute cgroup root (the kubelet would require it to exist)");
                    if self.layout.is_v2() {
                        ops::v2_mkdir_chain(&h.mount_point, comps.components())?;
                    } else {
                        io::mkdir_all(&h.mount_point, comps.components())?;
                    }
                }
                h.root = root;
            }
        } else if self.layout.is_v2() {
            validate_component(agent_leaf)?;
            let own = self.delegate_v2(agent_leaf)?;
            let root = comps.under(&own);
            ops::v2_mkdir_chain(&own, comps.components())?;
            for h in &mut self.hierarchies {
                h.root = root.clone();
            }
        } else {
            for h in &mut self.hierarchies {
                io::mkdir_all(&h.own, comps.components())?;
                h.root = comps.under(&h.own);
            }
        }
        self.root_spec = cgroup_root.to_string();
        for h in &self.hierarchies {
            tracing::info!(
                cgroup_root,
                controllers = ?h.controllers,
                root = %h.root.display(),
                "cgroup root resolved"
            );
        }
        Ok(self)
    }

    /// v2, relative root: make `<own>` a delegating parent by moving this process into
    /// `<own>/<agent_leaf>`. Returns `<own>`.
    fn delegate_v2(&mut self, agent_leaf: &str) -> Result<PathBuf, Error> {
        let h = self
            .hierarchies
            .first_mut()
            .ok_or(Error::ControllerMissing(Controller::Cpu))?;
        let mut own = h.own.clone();
        // Idempotent: if an earlier call already moved us into the leaf, its parent is `<own>`.
        if own != h.mount_point
            && own.file_name().is_some_and(|n| n == agent_leaf)
            && let Some(parent) = own.parent()
        {
            own = parent.to_path_buf();
        }
        let me = std::process::id() as i32;
        let procs = io::read_pids(&own.join("cgroup.procs"))?;
        let others: Vec<i32> = procs.iter().copied().filter(|&p| p != me).collect();
        if !others.is_empty() {
            return Err(Error::InternalProcesses {
                path: own,
                pids: others,
            });
        }
        let leaf = own.join(agent_leaf);
        io::mkdir(&leaf)?;
        if procs.contains(&me) {
            tracing::info!(
                cgroup = %leaf.display(),
                pid = me,
                "moving the agent into its leaf cgroup (cgroup v2 no-internal-processes rule)"
            );
            io::write_value(&leaf.join("cgroup.procs"), &me.to_string())?;
        }
        ops::v2_enable_controllers(&own)?;
        h.own = leaf;
        Ok(own)
    }

    /// The setup as the preflight report shows it.
    pub fn features(&self) -> Features {
        let hierarchies = self
            .hierarchies
            .iter()
            .map(|h| {
                let served: Vec<String> =
                    h.controllers.iter().map(|c| c.name().to_string()).collect();
                let (available, enabled) = if self.layout.is_v2() {
                    (
                        io::read_words(&h.root.join("cgroup.controllers")).unwrap_or_default(),
                        io::read_words(&h.root.join("cgroup.subtree_control")).unwrap_or_default(),
                    )
                } else {
                    (served.clone(), served)
                };
                HierarchyFeatures {
                    controllers: h.controllers.clone(),
                    mount_point: h.mount_point.clone(),
                    mount_root: h.mount_root.clone(),
                    own: h.own.clone(),
                    root: h.root.clone(),
                    available,
                    enabled,
                    writable: nix::unistd::access(&h.root, nix::unistd::AccessFlags::W_OK).is_ok(),
                }
            })
            .collect();
        let missing_controllers = Controller::ALL
            .into_iter()
            .filter(|c| self.hierarchy(*c).is_err())
            .collect();
        Features {
            layout: self.layout,
            unified_mount: self.unified_mount.clone(),
            cgroup_root: self.root_spec.clone(),
            hierarchies,
            missing_controllers,
            has_cgroup_kill: self.has_cgroup_kill(),
        }
    }

    /// v2 `cgroup.kill` exists in non-root cgroups from kernel 5.14 on.
    fn has_cgroup_kill(&self) -> bool {
        let Some(h) = self.hierarchies.first().filter(|_| self.layout.is_v2()) else {
            return false;
        };
        if h.root.join("cgroup.kill").exists() || h.own.join("cgroup.kill").exists() {
            return true;
        }
        std::fs::read_to_string(self.proc_root.join("sys/kernel/osrelease"))
            .ok()
            .and_then(|r| parse::kernel_version(&r))
            .is_some_and(|v| v >= (5, 14))
    }
}

/// The components of a `--cgroup-root`: `/`, `""` and `.` are empty; `..` is refused.
fn root_components(root: &str) -> Result<CgroupName, Error> {
    let comps = root.split('/').filter(|c| !c.is_empty() && *c != ".");
    CgroupName::new(comps).map_err(|_| Error::InvalidName {
        name: root.to_string(),
        reason: "cgroup root must not contain '..'",
    })
}

/// The kubelet's linear map from `cpu.shares` to v2 `cpu.weight` (`getCPUWeight`), with shares
/// clamped to `[MIN_SHARES, MAX_SHARES]` first (Go would underflow below 2).
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    if shares >= MAX_SHARES {
        return 10_000;
    }
    1 + ((shares - 2) * 9_999) / 262_142
}

/// The map from `cpu.shares` to v2 `cpu.weight` that the runtimes of 2026 apply to container
/// cgroups (runc >= 1.3.2, crun >= 1.23, `opencontainers/cgroups`
/// `ConvertCPUSharesToCgroupV2Value`; kubernetes issue 131216): 0 -> 0, up to 2 -> 1,
/// 262144 and more -> 10000, else `ceil(10^((l^2 + 125 l) / 612 - 7/34))` with `l = log2(shares)`.
/// It maps the v1 default 1024 to the v2 default 100 (the linear map gives 39). The kubelet's
/// own kubepods, QoS and pod cgroups keep [`cpu_shares_to_weight`].
pub fn cpu_shares_to_weight_runtime(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=MIN_SHARES => 1,
        s if s >= MAX_SHARES => 10_000,
        s => {
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// Which `cpu.shares` → `cpu.weight` map a v2 write uses (v1 writes shares as they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMap {
    /// The kubelet's linear map, for the cgroups the kubelet writes (kubepods, QoS, pod).
    Kubelet,
    /// The container runtime's map, for container cgroups (see [`cpu_shares_to_weight_runtime`]).
    Runtime,
}
