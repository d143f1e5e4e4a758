//! The operations on one named cgroup: create, remove, set values, processes, kill, freeze, stats.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{CgroupFs, CgroupName, Controller, Error, MemoryStats, ProcsJoin, V2_CONTROLLERS};
use super::{WeightMap, cpu_shares_to_weight, cpu_shares_to_weight_runtime, io, parse};

/// SIGKILLed tasks normally leave their cgroup within milliseconds; one with a large address
/// space to tear down, or stuck in uninterruptible I/O, can take seconds. 5 s bounds a pod's
/// teardown while tolerating that; the caller gets the survivors in [`Error::KillTimeout`].
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for a subtree to empty: a few small reads per round, and at most
/// 10 ms added to a teardown.
const KILL_POLL: Duration = Duration::from_millis(10);
/// Freezing settles in milliseconds unless a task sits in D state; after 1 s we give up (and
/// thaw) rather than stall a kill, which then proceeds without the freeze.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);
/// Poll interval for the freezer state: cheap reads, fine-grained because a kill waits on it.
const FREEZE_POLL: Duration = Duration::from_millis(2);
/// v1 reports an unlimited memory limit as PAGE_COUNTER_MAX pages (9223372036854771712 with
/// 4 KiB pages); like cadvisor, anything from 2^62 on counts as "no limit".
const V1_UNLIMITED: u64 = 1 << 62;

/// v2: `+cpu +memory +pids` (those in `cgroup.controllers` and not yet on) into `dir`'s
/// `cgroup.subtree_control`, in one write.
pub(super) fn v2_enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = io::read_words(&dir.join("cgroup.controllers"))?;
    let enabled = io::read_words(&dir.join("cgroup.subtree_control"))?;
    let missing: Vec<&str> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| !available.iter().any(|a| a == c))
        .collect();
    if !missing.is_empty() {
        tracing::debug!(cgroup = %dir.display(), ?missing, "controllers not delegated to this cgroup");
    }
    let want: Vec<String> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| available.iter().any(|a| a == c) && !enabled.iter().any(|e| e == c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    match io::write_value(&file, &want.join(" ")) {
        Err(Error::Write { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            let me = std::process::id() as i32;
            let pids = io::read_pids(&dir.join("cgroup.procs"))?;
            Err(Error::InternalProcesses {
                path: dir.to_path_buf(),
                pids: pids.into_iter().filter(|&p| p != me).collect(),
            })
        }
        other => other,
    }
}

/// v2: creates `base/comps...`, enabling the controllers in `base` and every new parent (not in
/// the last one, which may hold processes).
pub(super) fn v2_mkdir_chain(base: &Path, comps: &[String]) -> Result<(), Error> {
    let mut cur = base.to_path_buf();
    for c in comps {
        v2_enable_controllers(&cur)?;
        cur.push(c);
        io::mkdir(&cur)?;
    }
    Ok(())
}

impl CgroupFs {
    /// The directory of `name` in each hierarchy in use (one on v2).
    fn dirs(&self, name: &CgroupName) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| name.under(&h.root))
            .collect()
    }

    /// Creates `name` (and missing parents) in every hierarchy in use; on v2 enables the
    /// controllers in each parent's `cgroup.subtree_control`.
    pub fn create(&self, name: &CgroupName) -> Result<(), Error> {
        tracing::debug!(cgroup = %name, "cgroup create");
        for h in &self.hierarchies {
            if self.layout.is_v2() {
                v2_mkdir_chain(&h.root, name.components())?;
            } else {
                io::mkdir_all(&h.root, name.components())?;
            }
        }
        Ok(())
    }

    /// Removes `name` and every cgroup below it, leaf first, in every hierarchy; absent is fine.
    /// Fails (after short retries) while a process is still inside.
    pub fn remove(&self, name: &CgroupName) -> Result<(), Error> {
        refuse_root(name, "remove")?;
        tracing::debug!(cgroup = %name, "cgroup remove");
        for dir in self.dirs(name) {
            for d in io::walk_dirs(&dir)?.iter().rev() {
                io::rmdir(d)?;
            }
        }
        Ok(())
    }

    /// Names of the child cgroups of `name` (from the first hierarchy in use; the agent creates
    /// every cgroup in all of them). Absent `name`: no children.
    pub fn children(&self, name: &CgroupName) -> Result<Vec<String>, Error> {
        let Some(dir) = self.dirs(name).into_iter().next() else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Read { path: dir, source }),
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether `name` exists in every hierarchy in use.
    pub fn exists(&self, name: &CgroupName) -> bool {
        self.dirs(name).iter().all(|d| d.is_dir())
    }

    /// Memory limit: v1 `memory.limit_in_bytes` (`-1` = unlimited), v2 `memory.max` (`max`).
    pub fn set_memory_limit(&self, name: &CgroupName, bytes: Option<i64>) -> Result<(), Error> {
        let dir = self.dir(Controller::Memory, name)?;
        let bytes = bytes.filter(|b| *b >= 0);
        if self.layout.is_v2() {
            io::write_value(&dir.join("memory.max"), &max_or(bytes))
        } else {
            io::write_value(
                &dir.join("memory.limit_in_bytes"),
                &bytes.unwrap_or(-1).to_string(),
            )
        }
    }

    /// Swap limit (`MemorySwapLimitInBytes` / the `memory.swap.max` unified key a runtime gets
    /// over CRI). v2: `memory.swap.max` is swap alone (`0` = none). v1: the memsw controller
    /// counts memory + swap, so "no swap" is `memory.memsw.limit_in_bytes` = the memory limit
    /// (`-1` when the memory is unlimited, as runc writes it). Returns `Ok(false)` when the
    /// kernel has no swap accounting (v1 without `swapaccount=1`, v2 without the swap file),
    /// which is the kubelet's `swapControllerAvailable() == false`: nothing is written.
    pub fn set_memory_swap_limit(&self, name: &CgroupName, swap: SwapLimit) -> Result<bool, Error> {
        let dir = self.dir(Controller::Memory, name)?;
        if self.layout.is_v2() {
            let file = dir.join("memory.swap.max");
            if !file.exists() {
                return Ok(false);
            }
            let bytes = match swap {
                SwapLimit::None { .. } => 0,
                SwapLimit::Limited(b) => b.max(0),
            };
            io::write_value(&file, &bytes.to_string())?;
        } else {
            let file = dir.join("memory.memsw.limit_in_bytes");
            if !file.exists() {
                return Ok(false);
            }
            let total = match swap {
                SwapLimit::None { memory_limit } => memory_limit.filter(|b| *b >= 0),
                // LimitedSwap exists only on v2 (the kubelet falls back to NoSwap on v1); the
                // caller never asks for it here, but keep the arithmetic right if it does.
                SwapLimit::Limited(_) => None,
            };
            io::write_value(&file, &total.unwrap_or(-1).to_string())?;
        }
        Ok(true)
    }

    /// CPU shares: v1 `cpu.shares`; v2 `cpu.weight` via the kubelet's linear map
    /// ([`cpu_shares_to_weight`]). Shares are clamped to `[2, 262144]`.
    pub fn set_cpu_shares(&self, name: &CgroupName, shares: u64) -> Result<(), Error> {
        self.set_cpu_shares_with(name, shares, WeightMap::Kubelet)
    }

    /// CPU shares with the given v2 map: [`WeightMap::Runtime`] for container cgroups, which a
    /// runtime writes, [`WeightMap::Kubelet`] for the rest.
    pub fn set_cpu_shares_with(
        &self,
        name: &CgroupName,
        shares: u64,
        map: WeightMap,
    ) -> Result<(), Error> {
        let dir = self.dir(Controller::Cpu, name)?;
        let shares = shares.clamp(super::MIN_SHARES, super::MAX_SHARES);
        if self.layout.is_v2() {
            let weight = match map {
                WeightMap::Kubelet => cpu_shares_to_weight(shares),
                WeightMap::Runtime => cpu_shares_to_weight_runtime(shares),
            };
            io::write_value(&dir.join("cpu.weight"), &weight.to_string())
        } else {
            io::write_value(&dir.join("cpu.shares"), &shares.to_string())
        }
    }

    /// CFS quota: v1 `cpu.cfs_period_us` then `cpu.cfs_quota_us` (`-1` = none); v2 `cpu.max`
    /// `"<quota> <period>"` or `"max <period>"`. A negative quota means none.
    pub fn set_cpu_quota(
        &self,
        name: &CgroupName,
        quota_us: Option<i64>,
        period_us: u64,
    ) -> Result<(), Error> {
        let dir = self.dir(Controller::Cpu, name)?;
        let quota_us = quota_us.filter(|q| *q >= 0);
        if self.layout.is_v2() {
            return io::write_value(
                &dir.join("cpu.max"),
                &format!("{} {period_us}", max_or(quota_us)),
            );
        }
        // As libcontainer: a period smaller than the current one can be refused (EINVAL) while
        // old_quota/new_period exceeds the parent's limit; then set the quota first and retry.
        let period_file = dir.join("cpu.cfs_period_us");
        let period = period_us.to_string();
        let period_pending = match io::write_value(&period_file, &period) {
            Ok(()) => false,
            Err(Error::Write { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => true,
            Err(e) => return Err(e),
        };
        io::write_value(
            &dir.join("cpu.cfs_quota_us"),
            &quota_us.unwrap_or(-1).to_string(),
        )?;
        if period_pending {
            io::write_value(&period_file, &period)?;
        }
        Ok(())
    }

    /// `pids.max`: a number, or `max` for `None` / negative.
    pub fn set_pids_max(&self, name: &CgroupName, max: Option<i64>) -> Result<(), Error> {
        let dir = self.dir(Controller::Pids, name)?;
        io::write_value(&dir.join("pids.max"), &max_or(max.filter(|m| *m >= 0)))
    }

    /// v2 `memory.oom.group` (kill the whole cgroup on OOM); v1 has no such file: no-op.
    pub fn set_memory_oom_group(&self, name: &CgroupName, on: bool) -> Result<(), Error> {
        if !self.layout.is_v2() {
            tracing::debug!(cgroup = %name, "memory.oom.group does not exist on cgroup v1, skipped");
            return Ok(());
        }
        let dir = self.dir(Controller::Memory, name)?;
        io::write_value(&dir.join("memory.oom.group"), if on { "1" } else { "0" })
    }

    /// Lets the processes of `name` use only the devices of `rules` (runc's device cgroup:
    /// `devices.deny`/`devices.allow` on v1, an eBPF program on v2, [`super::devices`]).
    /// Without a v1 devices hierarchy there is nothing to write: false.
    pub fn set_devices(
        &self,
        name: &CgroupName,
        rules: &[super::devices::Rule],
    ) -> Result<bool, Error> {
        let Ok(dir) = self.dir(Controller::Devices, name) else {
            return Ok(false);
        };
        if self.layout.is_v2() {
            super::devices::attach_v2(&dir, rules)?;
        } else {
            super::devices::write_v1(&dir, rules)?;
        }
        tracing::debug!(cgroup = %name, rules = rules.len(), "device rules set");
        Ok(true)
    }

    /// The `cgroup.procs` file of `name` in each hierarchy in use: what moves a whole process
    /// (all its threads) given its pid. A child joining itself before exec uses
    /// [`Self::join_files`] instead.
    pub fn procs_files(&self, name: &CgroupName) -> Vec<PathBuf> {
        self.dirs(name)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// The file of `name` in each hierarchy in use that a freshly forked, single-threaded child
    /// writes "0" into to join: `tasks` on v1 (and hybrid), `cgroup.procs` on v2 (which has no
    /// `tasks`).
    ///
    /// Why not `cgroup.procs` on v1: a write there moves a whole thread group, so the kernel
    /// takes the global `cgroup_threadgroup_rwsem` for writing, and taking that per-cpu rwsem
    /// while it was idle waits for an RCU grace period (milliseconds: 11.5 ms measured for a
    /// pod's first join on an idle node, issue 14). Writing "0" to `tasks` moves only the
    /// calling thread, which the kernel does without that lock; for a child that has not
    /// started any thread yet that is the whole process, and whatever it forks or spawns
    /// later starts in the same cgroups. Callers moving *another* process, which may have
    /// threads, keep [`Self::procs_files`] (see [`Self::add_process`]). On v2 the fast path
    /// is `clone3(CLONE_INTO_CGROUP)` instead (see `shim::child`), and this file is its
    /// fallback.
    pub fn join_files(&self, name: &CgroupName) -> Vec<PathBuf> {
        let file = self.layout.join_file();
        self.dirs(name).into_iter().map(|d| d.join(file)).collect()
    }

    /// [`Self::join_files`] prepared for an async-signal-safe `pre_exec` hook.
    pub fn procs_join(&self, name: &CgroupName) -> Result<ProcsJoin, Error> {
        ProcsJoin::new(&self.join_files(name))
    }

    /// Moves process `pid` into `name` in every hierarchy in use.
    pub fn add_process(&self, name: &CgroupName, pid: i32) -> Result<(), Error> {
        for f in self.procs_files(name) {
            io::write_value(&f, &pid.to_string())?;
        }
        Ok(())
    }

    /// Every process in `name` and below, over all hierarchies, sorted; empty if absent.
    pub fn pids(&self, name: &CgroupName) -> Result<Vec<i32>, Error> {
        let mut all = BTreeSet::new();
        for dir in self.dirs(name) {
            for d in io::walk_dirs(&dir)? {
                all.extend(io::read_pids(&d.join("cgroup.procs"))?);
            }
        }
        Ok(all.into_iter().collect())
    }

    /// Kills every process in `name` and below so none escapes, then waits (bounded) until the
    /// subtree is empty. v2 with `cgroup.kill`: write `1`. Otherwise: freeze, SIGKILL every pid
    /// in the subtree, thaw, repeated until empty. An absent cgroup is fine.
    pub fn kill(&self, name: &CgroupName) -> Result<(), Error> {
        refuse_root(name, "kill")?;
        let kill_file = self
            .dir(Controller::Freezer, name)
            .ok()
            .map(|d| d.join("cgroup.kill"))
            .filter(|f| self.layout.is_v2() && f.exists());
        let can_freeze = self.hierarchy(Controller::Freezer).is_ok();
        tracing::debug!(cgroup = %name, cgroup_kill = kill_file.is_some(), "cgroup kill");
        let start = Instant::now();
        let mut signalled = BTreeSet::new();
        loop {
            let pids = self.pids(name)?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= KILL_TIMEOUT {
                return Err(Error::KillTimeout {
                    path: self.dirs(name).into_iter().next().unwrap_or_default(),
                    pids,
                    waited: start.elapsed(),
                });
            }
            if let Some(f) = &kill_file {
                // cgroup.kill also catches tasks that join or fork meanwhile; repeat it only for
                // processes that appeared after the last write.
                if pids.iter().any(|p| !signalled.contains(p)) {
                    io::write_value(f, "1")?;
                    signalled.extend(pids);
                }
            } else if pids.iter().any(|p| !signalled.contains(p)) {
                // Newcomers: freeze so nothing forks while we list and signal, then thaw so the
                // frozen tasks can act on SIGKILL (v1 frozen tasks do not die until thawed).
                let frozen = can_freeze && self.freeze_for_kill(name);
                let pids = self.pids(name)?;
                signal_all(&pids);
                signalled.extend(pids);
                if frozen {
                    self.freeze(name, false)?;
                }
            } else {
                // Everyone was signalled already and is still exiting: repeat the signal (cheap,
                // and covers a pid reused by a newcomer) without another freeze.
                signal_all(&pids);
            }
            std::thread::sleep(KILL_POLL);
        }
    }

    /// Freeze for a kill; a freezer that does not settle is logged and the kill goes on.
    fn freeze_for_kill(&self, name: &CgroupName) -> bool {
        match self.freeze(name, true) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cgroup = %name, error = %e, "freeze before kill failed, killing unfrozen");
                // freeze() thawed again on timeout; a failed write left nothing frozen.
                false
            }
        }
    }

    /// Freezes or thaws `name` and its subtree (v1 `freezer.state`, v2 `cgroup.freeze`) and
    /// waits (bounded) until the kernel reports the state; a freeze that does not settle is undone.
    pub fn freeze(&self, name: &CgroupName, frozen: bool) -> Result<(), Error> {
        let dir = self.dir(Controller::Freezer, name)?;
        let (file, value, state_file) = if self.layout.is_v2() {
            (
                "cgroup.freeze",
                if frozen { "1" } else { "0" },
                "cgroup.events",
            )
        } else {
            (
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
                "freezer.state",
            )
        };
        io::write_value(&dir.join(file), value)?;
        let start = Instant::now();
        loop {
            let state = self.freezer_state(&dir.join(state_file))?;
            let want = if frozen { "FROZEN" } else { "THAWED" };
            if state == want {
                return Ok(());
            }
            if start.elapsed() >= FREEZE_TIMEOUT {
                if frozen {
                    // Do not leave a half-frozen cgroup behind.
                    let undo = if self.layout.is_v2() { "0" } else { "THAWED" };
                    io::write_value(&dir.join(file), undo)?;
                }
                return Err(Error::FreezeTimeout {
                    path: dir,
                    state,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(FREEZE_POLL);
        }
    }

    /// The state as v1 names it: `FROZEN`, `FREEZING` or `THAWED` (v2: `frozen` in `cgroup.events`).
    fn freezer_state(&self, path: &Path) -> Result<String, Error> {
        let text = io::read_string(path)?;
        if !self.layout.is_v2() {
            return Ok(text.trim().to_string());
        }
        let events = parse_flat(path, &text)?;
        Ok(match events.get("frozen") {
            Some(1) => "FROZEN",
            Some(_) => "THAWED",
            None => "FREEZING",
        }
        .to_string())
    }

    /// OOM kills in `name` and below: v2 `memory.events` `oom_kill` (hierarchical); v1
    /// `memory.oom_control` `oom_kill` counts only the victim's own cgroup, so it is summed over
    /// the subtree to mean the same.
    pub fn oom_kill_count(&self, name: &CgroupName) -> Result<u64, Error> {
        let dir = self.dir(Controller::Memory, name)?;
        if self.layout.is_v2() {
            return flat_key(&dir.join("memory.events"), "oom_kill");
        }
        let mut total = 0;
        for d in io::walk_dirs(&dir)? {
            let path = d.join("memory.oom_control");
            if let Some(text) = io::read_string_opt(&path)? {
                total += parse_flat(&path, &text)?
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Usage, inactive file cache, working set and limit of `name`.
    pub fn memory_stats(&self, name: &CgroupName) -> Result<MemoryStats, Error> {
        let dir = self.dir(Controller::Memory, name)?;
        let stat = dir.join("memory.stat");
        if self.layout.is_v2() {
            let usage = io::read_u64(&dir.join("memory.current"))?;
            let inactive = flat_key(&stat, "inactive_file")?;
            let max_file = dir.join("memory.max");
            let limit =
                parse::max_or_u64(&io::read_string(&max_file)?).map_err(|e| Error::Parse {
                    path: max_file,
                    reason: e.to_string(),
                })?;
            Ok(MemoryStats::new(usage, inactive, limit))
        } else {
            let usage = io::read_u64(&dir.join("memory.usage_in_bytes"))?;
            let inactive = flat_key(&stat, "total_inactive_file")?;
            let limit = io::read_u64(&dir.join("memory.limit_in_bytes"))?;
            Ok(MemoryStats::new(
                usage,
                inactive,
                (limit < V1_UNLIMITED).then_some(limit),
            ))
        }
    }

    /// The host's root memory cgroup as the eviction manager reads it: v1 root
    /// `memory.usage_in_bytes` and `total_inactive_file`; v2 (no root `memory.current`)
    /// `anon + file` and `inactive_file` from the root `memory.stat`. The limit is `None`
    /// (the caller uses MemTotal).
    pub fn root_memory_stats(&self) -> Result<MemoryStats, Error> {
        let mount = &self.hierarchy(Controller::Memory)?.mount_point;
        let stat_file = mount.join("memory.stat");
        let text = io::read_string(&stat_file)?;
        let stat = parse_flat(&stat_file, &text)?;
        let get = |k: &str| {
            stat.get(k).copied().ok_or_else(|| Error::Parse {
                path: stat_file.clone(),
                reason: format!("no key {k:?}"),
            })
        };
        if self.layout.is_v2() {
            Ok(MemoryStats::new(
                get("anon")? + get("file")?,
                get("inactive_file")?,
                None,
            ))
        } else {
            let usage = io::read_u64(&mount.join("memory.usage_in_bytes"))?;
            Ok(MemoryStats::new(usage, get("total_inactive_file")?, None))
        }
    }

    /// Every counter of `name`'s `memory.stat`, as the kernel names them (v1 prefixes the
    /// hierarchical ones with `total_`; v2's are hierarchical already). The stats summary picks
    /// its RSS and page-fault figures from these.
    pub fn memory_stat(&self, name: &CgroupName) -> Result<BTreeMap<String, u64>, Error> {
        let path = self.dir(Controller::Memory, name)?.join("memory.stat");
        parse_flat(&path, &io::read_string(&path)?)
    }

    /// The host's root `memory.stat` (the whole machine), as [`Self::root_memory_stats`] reads it.
    pub fn root_memory_stat(&self) -> Result<BTreeMap<String, u64>, Error> {
        let path = self
            .hierarchy(Controller::Memory)?
            .mount_point
            .join("memory.stat");
        parse_flat(&path, &io::read_string(&path)?)
    }

    /// Swap used by `name` and below in bytes, where the kernel accounts it: v2
    /// `memory.swap.current`; v1 `memory.memsw.usage_in_bytes − memory.usage_in_bytes` (only
    /// with `swapaccount=1`). `None` when the file is absent.
    pub fn swap_usage(&self, name: &CgroupName) -> Result<Option<u64>, Error> {
        let dir = self.dir(Controller::Memory, name)?;
        if self.layout.is_v2() {
            return match io::read_string_opt(&dir.join("memory.swap.current"))? {
                Some(t) => Ok(t.trim().parse().ok()),
                None => Ok(None),
            };
        }
        let Some(memsw) = io::read_string_opt(&dir.join("memory.memsw.usage_in_bytes"))? else {
            return Ok(None);
        };
        let usage = io::read_u64(&dir.join("memory.usage_in_bytes"))?;
        Ok(memsw
            .trim()
            .parse::<u64>()
            .ok()
            .map(|m| m.saturating_sub(usage)))
    }

    /// CPU time used by `name` and below in ns: v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec` × 1000.
    pub fn cpu_usage_ns(&self, name: &CgroupName) -> Result<u64, Error> {
        if self.layout.is_v2() {
            let dir = self.dir(Controller::Cpu, name)?;
            return Ok(flat_key(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000));
        }
        io::read_u64(&self.dir(Controller::Cpuacct, name)?.join("cpuacct.usage"))
    }
}

/// `max` for `None`, else the number.
fn max_or<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "max".to_string(), |v| v.to_string())
}

fn refuse_root(name: &CgroupName, op: &'static str) -> Result<(), Error> {
    if name.is_root() {
        return Err(Error::InvalidName {
            name: format!("{name} ({op})"),
            reason: "refusing to act on the agent's cgroup root itself",
        });
    }
    Ok(())
}

fn signal_all(pids: &[i32]) {
    for &pid in pids {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pid, error = %e, "SIGKILL failed"),
        }
    }
}

fn parse_flat(path: &Path, text: &str) -> Result<std::collections::BTreeMap<String, u64>, Error> {
    parse::flat_keyed(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One key of a flat-keyed file; a missing key is a parse error.
fn flat_key(path: &Path, key: &str) -> Result<u64, Error> {
    let text = io::read_string(path)?;
    parse_flat(path, &text)?
        .get(key)
        .copied()
        .ok_or_else(|| Error::Parse {
            path: path.to_path_buf(),
            reason: format!("no key {key:?}"),
        })
}

/// What a container may swap (the kubelet's `swapConfigurationHelper`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapLimit {
    /// `NoSwap`: no swap beyond the memory limit (`None` = the memory is unlimited).
    None {
        /// The container's memory limit in bytes, needed for the v1 memsw arithmetic.
        memory_limit: Option<i64>,
    },
    /// `LimitedSwap`: this many bytes of swap (cgroup v2 only).
    Limited(i64),
}
