//! The shim runtime: each container supervised by its own shim process, which outlives the
//! agent, so that a restarted agent re-adopts every container, running or exited.
//!
//! Mirrors what containerd plus its shims do below the CRI line. A container is a process on
//! the node's filesystem inside its own cgroup, or (`ContainerRootfs::HostFilesystem`,
//! `ContainerRootfs::Image`) isolated, on the node's root or an overlay of its image. Everything
//! about a container lives in its state directory `<root-dir>/containers/<id>/`, private to this
//! file and `crate::shim`:
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `meta.json` | runtime | which pod and container this is, attempt, cgroup (the CRI labels) |
//! | `config.json` | runtime | what the shim runs: argv, env, user, cgroup, log file |
//! | `state.json` | shim | shim pid, container pid, start time |
//! | `exit.json` | shim | exit code, signal, finish time |
//! | `upper/`, `work/` | runtime, then the container | an image container's writable layer (overlayfs upper and work dirs), counted as its ephemeral storage ([`ContainerRuntime::writable_layer_usage`]) |
//!
//! Pod sandboxes are records (`<root-dir>/sandboxes/<id>.json`). The sandbox of a pod whose
//! containers run isolated ([`PodSandboxConfig::isolated`]) is also a real one, made by
//! `crate::sandbox` ([`ShimRuntime::with_pod_sandboxes`]): pinned IPC and UTS namespaces and the
//! pod's hosts, hostname and resolv.conf files under `<root-dir>/pods/<uid>/`, plus a PID-1
//! holder for `shareProcessNamespace`; its containers join them. Other pods' containers share
//! the node's namespaces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::exec::ExecContext;
use super::process::{ProcState, process_state, wait_pid_exit};
use super::{
    AttachTarget, BoxFuture, ContainerMeta, ContainerRecord, ContainerRootfs, ContainerRuntime,
    ContainerSpec, Exit, ExitStatus, KILL_SETTLE, PodSandbox, PodSandboxConfig, RuntimeError,
    SandboxId, ShimState, Started,
};
use crate::cgroup::{CgroupFs, CgroupName};
use crate::sandbox::NsKind;
use crate::shim::{self, ShimConfig};

/// After a cgroup kill that did not end the shim within `KILL_SETTLE`, the kill is repeated
/// after this long, doubling up to `KILL_RETRY_MAX`: shorter recovers sooner from a transient
/// failure (EMFILE), longer costs fewer futile attempts on a shim that is stuck for good.
const KILL_RETRY_FIRST: Duration = Duration::from_secs(1);
const KILL_RETRY_MAX: Duration = Duration::from_secs(30);
/// The writable layer of an image container, in its state dir.
const UPPER_DIR: &str = "upper";

/// The runtime: a directory of container state plus the binary that serves as shim.
#[derive(Clone, Debug)]
pub struct ShimRuntime {
    containers_dir: PathBuf,
    sandboxes_dir: PathBuf,
    shim_exe: PathBuf,
    /// The spare shim, when [`ShimRuntime::prestart_shims`] turned it on.
    spare: Option<Arc<SpareShim>>,
    /// The cgroup filesystem: kills a container's cgroup at the end of a stop, reads its OOM
    /// kills. Unset only in tests that never stop a container.
    cgroups: Option<Arc<CgroupFs>>,
    /// The processes of the containers this runtime started or listed, so that a stop needs no
    /// file read (a stop must work when the agent is out of file descriptors).
    procs: Arc<Mutex<HashMap<String, Proc>>>,
    /// Makes the namespaces and files of isolated pods' sandboxes; unset, an isolated pod's
    /// sandbox cannot be made (unit tests).
    pod_sandboxes: Option<Arc<PodSandboxes>>,
}

/// The sandbox manager, the pods' network, and the IPs of pods on the node's network.
#[derive(Debug)]
struct PodSandboxes {
    manager: crate::sandbox::SandboxManager,
    /// The IPs the hosts file of a pod on the node's network names: the node's.
    pod_ips: Vec<String>,
    /// The pods' own network (CNI); `None`: pods keep the node's network.
    network: Option<Arc<super::network::PodNetwork>>,
}

/// What a stop needs of a container: its process, its shim, its cgroup.
#[derive(Clone, Debug)]
struct Proc {
    pid: i32,
    shim_pid: i32,
    cgroup: Vec<String>,
}

/// One shim kept started ahead of the next container ([`shim::prestart`]), so that a pod start
/// does not wait for the exec of the shim binary, the dynamic loader and the launcher's fork
/// (about a millisecond of the ~3 ms a start takes; see docs/benchmarks.md). Nothing like it
/// exists in the kubelet or containerd, which start a shim per container on demand; it is a
/// latency optimisation of this runtime only, and changes no behaviour a user sees except one
/// idle `minikubelet-shim ... --prestarted` process beside the agent.
///
/// A background thread refills the slot after each take. The spare's container ID (and so its
/// state dir) is chosen when it is started; `ShimRuntime::next_container` hands out that ID.
#[derive(Debug)]
struct SpareShim {
    slot: Mutex<Option<(String, shim::Prestarted)>>,
    refill: Mutex<std::sync::mpsc::Sender<()>>,
}

/// The environment variable that turns the spare shim off (`MINIKUBELET_SHIM_PRESTART=off`):
/// for measuring what it saves (run `cargo bench --bench spine` with and without it), or when
/// an idle extra process is unwelcome.
pub const SHIM_PRESTART_ENV: &str = "MINIKUBELET_SHIM_PRESTART";

impl ShimRuntime {
    /// A runtime keeping its state under `<root_dir>/containers`, starting shims from `shim_exe`.
    /// Removes state directories without a readable `meta.json` (a create that a crash
    /// interrupted); call it once at start-up, before any container is created.
    pub fn new(root_dir: &Path, shim_exe: PathBuf) -> Result<Self, RuntimeError> {
        let containers_dir = root_dir.join("containers");
        shim::create_private_dir_all(&containers_dir).map_err(|source| RuntimeError::Io {
            id: String::new(),
            action: "create",
            path: containers_dir.clone(),
            source,
        })?;
        let sandboxes_dir = root_dir.join("sandboxes");
        shim::create_private_dir_all(&sandboxes_dir).map_err(|source| RuntimeError::Io {
            id: String::new(),
            action: "create",
            path: sandboxes_dir.clone(),
            source,
        })?;
        let rt = ShimRuntime {
            containers_dir,
            sandboxes_dir,
            shim_exe,
            spare: None,
            cgroups: None,
            procs: Arc::default(),
            pod_sandboxes: None,
        };
        rt.remove_incomplete();
        Ok(rt)
    }

    /// The cgroup filesystem the containers' cgroups live in (for stop and OOM kills).
    pub fn with_cgroups(mut self, cgroups: Arc<CgroupFs>) -> Self {
        self.cgroups = Some(cgroups);
        self
    }

    /// Makes real sandboxes for isolated pods with `manager`; `pod_ips` go into the hosts files
    /// of pods on the node's network. With a `network` that has a CNI network, pods that are
    /// not `hostNetwork` get their own: the manager pins a network namespace for each, and the
    /// sandbox is set up in it through CNI.
    pub fn with_pod_sandboxes(
        mut self,
        manager: crate::sandbox::SandboxManager,
        pod_ips: Vec<String>,
        network: Option<super::network::PodNetwork>,
    ) -> Self {
        let manager = match &network {
            Some(n) => {
                let mut opts = manager.options().clone();
                opts.pod_network = n.node_network_reason().is_none();
                crate::sandbox::SandboxManager::new(opts)
            }
            None => manager,
        };
        self.pod_sandboxes = Some(Arc::new(PodSandboxes {
            manager,
            pod_ips,
            network: network.map(Arc::new),
        }));
        self
    }

    /// At start, before any pod worker: removes the namespaces and files of pod sandboxes that
    /// no sandbox record names (a crash between making them and writing the record), and
    /// checks the recorded ones (`SandboxManager::adopt`; one whose namespaces are gone is
    /// removed and marked not ready, so that its pod gets a new one).
    pub fn adopt_pod_sandboxes(&self) {
        let Some(ps) = &self.pod_sandboxes else {
            return;
        };
        let mut records = self.list_pod_sandboxes();
        for sb in &mut records {
            if sb.paths.is_none() || !sb.ready {
                continue;
            }
            match ps.manager.adopt(&sb.config.pod_uid) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    tracing::warn!(podUID = %sb.config.pod_uid, sandbox = %sb.id, "the pod sandbox's namespaces are gone; its pod gets a new sandbox");
                    let _ = self.stop_pod_sandbox(&sb.id);
                    sb.ready = false;
                }
            }
        }
        for uid in ps.manager.list() {
            let recorded = records
                .iter()
                .any(|sb| sb.ready && sb.paths.is_some() && sb.config.pod_uid == uid);
            if !recorded {
                tracing::info!(podUID = %uid, "removing a pod sandbox no record names");
                if let Err(e) = ps.manager.remove(&uid) {
                    tracing::warn!(podUID = %uid, error = %e, "remove orphaned pod sandbox");
                }
            }
        }
    }

    /// Keeps one shim started ahead of the next container (`SpareShim`), unless
    /// [`SHIM_PRESTART_ENV`] is `off`. Starts the refill thread and the first spare.
    pub fn prestart_shims(&mut self) {
        if std::env::var(SHIM_PRESTART_ENV).is_ok_and(|v| v == "off") {
            tracing::info!(
                env = SHIM_PRESTART_ENV,
                "spare shim off: every container start execs its shim"
            );
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let spare = Arc::new(SpareShim {
            slot: Mutex::new(None),
            refill: Mutex::new(tx),
        });
        let weak = Arc::downgrade(&spare);
        let (exe, dir) = (self.shim_exe.clone(), self.containers_dir.clone());
        let spawned = std::thread::Builder::new()
            .name("shim-prestart".into())
            .spawn(move || refill_spares(&exe, &dir, &weak, &rx));
        match spawned {
            Ok(_) => {
                tracing::info!(
                    env = SHIM_PRESTART_ENV,
                    "spare shim on: one shim waits, started ahead of the next container (not a kubelet or containerd behaviour; {}=off turns it off)",
                    SHIM_PRESTART_ENV
                );
                spare.request_refill();
                self.spare = Some(spare);
            }
            Err(e) => {
                tracing::warn!(error = %e, "spare shim thread could not start; shims start on demand");
            }
        }
    }

    /// The ID for the next container and, when one is ready, the shim prestarted for it.
    /// Dropping the shim unused makes it exit.
    fn next_container(&self) -> (String, Option<shim::Prestarted>) {
        let Some(spare) = &self.spare else {
            return (Self::new_id(), None);
        };
        match spare.slot.lock().ok().and_then(|mut s| s.take()) {
            // Refilled once this start is done (`create_and_start`): starting the next spare
            // now would compete with this start for the CPUs.
            Some((id, p)) => (id, Some(p)),
            None => {
                spare.request_refill();
                (Self::new_id(), None)
            }
        }
    }

    /// Removes state directories without a readable `meta.json`. Only safe while nothing
    /// creates containers: `create_and_start` (or the prestarted shim it hands a container to)
    /// makes the directory before it writes `meta.json`.
    fn remove_incomplete(&self) {
        let Ok(entries) = std::fs::read_dir(&self.containers_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if self.load(&dir).is_none() {
                tracing::warn!(dir = %dir.display(), "container state without a readable meta.json; removing it");
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// A fresh container ID.
    pub fn new_id() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// The state directory of a container.
    fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id)
    }

    /// Write the records, start the shim, return once the process runs (or the shim reported
    /// that it could not start it).
    fn start_shim(
        &self,
        meta: &ContainerMeta,
        cfg: &ShimConfig,
        prestarted: Option<shim::Prestarted>,
    ) -> Result<ShimState, RuntimeError> {
        let dir = self.dir(&meta.id);
        let encode = |what, source| RuntimeError::Encode {
            id: meta.id.clone(),
            what,
            source,
        };
        let meta_json = serde_json::to_string_pretty(meta).map_err(|e| encode("meta", e))?;
        let shim_error = |source| RuntimeError::Shim {
            id: meta.id.clone(),
            source,
        };
        match prestarted {
            // A spare started for this very ID (see `next_container`): the request goes down
            // its pipe, and the shim writes the state dir once the container runs.
            Some(p) if p.state_dir() == shim::absolute(&dir) => {
                tracing::debug!(container_id = %meta.id, container = %meta.container_name, pod = %meta.pod_name, "starting prestarted shim");
                let request = shim::StartRequest {
                    config: cfg.clone(),
                    meta_json,
                };
                let started = p.start(&request).map_err(shim_error);
                if let Some(spare) = &self.spare {
                    spare.request_refill();
                }
                started
            }
            _ => {
                let io = |action, path: &Path, source| RuntimeError::Io {
                    id: meta.id.clone(),
                    action,
                    path: path.to_path_buf(),
                    source,
                };
                shim::create_private_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
                let config = serde_json::to_vec_pretty(cfg).map_err(|e| encode("config", e))?;
                for (name, bytes) in [
                    (shim::META_FILE, meta_json.as_bytes()),
                    (shim::CONFIG_FILE, &config[..]),
                ] {
                    let path = dir.join(name);
                    shim::write_private(&path, bytes).map_err(|e| io("write", &path, e))?;
                }
                tracing::debug!(container_id = %meta.id, container = %meta.container_name, pod = %meta.pod_name, "starting shim");
                shim::start(&self.shim_exe, &dir).map_err(shim_error)
            }
        }
    }

    /// Every container with a readable `meta.json`. Read-only: a directory without one may be
    /// a container that another pod worker is creating right now (found by the spine
    /// benchmark: a worker's clean-up used to delete it under the creator's feet).
    fn list_records(&self) -> Vec<ContainerRecord> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.containers_dir) else {
            return out;
        };
        for entry in entries.flatten() {
            if let Some(rec) = self.load(&entry.path()) {
                // What a restarted agent re-adopts: known from now on without a file read.
                if let Some(st) = rec.state.as_ref().filter(|_| rec.is_running()) {
                    self.remember(&rec.meta, st);
                }
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.meta.created_at.cmp(&b.meta.created_at));
        out
    }

    fn load(&self, dir: &Path) -> Option<ContainerRecord> {
        let meta: ContainerMeta =
            serde_json::from_slice(&std::fs::read(dir.join(shim::META_FILE)).ok()?).ok()?;
        let rec = ContainerRecord {
            dir: Some(dir.to_path_buf()),
            meta,
            state: shim::read_state(dir).ok().flatten(),
            exit: shim::read_exit(dir).ok().flatten(),
        };
        Some(rec)
    }

    fn remember(&self, meta: &ContainerMeta, state: &ShimState) {
        if let Ok(mut procs) = self.procs.lock() {
            procs.insert(
                meta.id.clone(),
                Proc {
                    pid: state.pid,
                    shim_pid: state.shim_pid,
                    cgroup: meta.cgroup.clone(),
                },
            );
        }
    }

    fn proc_of(&self, id: &str) -> Option<Proc> {
        let known = self.procs.lock().ok().and_then(|p| p.get(id).cloned());
        known.or_else(|| {
            let rec = self.get(id)?;
            let st = rec.state?;
            Some(Proc {
                pid: st.pid,
                shim_pid: st.shim_pid,
                cgroup: rec.meta.cgroup,
            })
        })
    }

    /// One container's record by ID, if it exists.
    fn get(&self, id: &str) -> Option<ContainerRecord> {
        if id.is_empty() || id.contains(['/', '.']) {
            return None;
        }
        self.load(&self.dir(id))
    }

    /// Re-read one container's exit record.
    fn read_exit(&self, id: &str) -> Option<ExitStatus> {
        shim::read_exit(&self.dir(id)).ok().flatten()
    }

    /// OOM kills in a container's cgroup (0 when unknown).
    fn oom_kill_count(&self, cgroup: &[String]) -> u64 {
        let (Some(fs), Ok(name)) = (
            &self.cgroups,
            CgroupName::new(cgroup.iter().map(String::as_str)),
        ) else {
            return 0;
        };
        fs.oom_kill_count(&name).unwrap_or(0)
    }

    /// Delete a container's state directory and its log file.
    fn remove_meta(&self, meta: &ContainerMeta) {
        if let Ok(mut procs) = self.procs.lock() {
            procs.remove(&meta.id);
        }
        let dir = self.dir(&meta.id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(container_id = %meta.id, path = %dir.display(), error = %e, "remove container state");
        }
        crate::logs::remove_container_logs(&meta.log_path);
    }

    /// The isolation of a container of a host-filesystem pod: its pod's sandbox (pinned IPC and
    /// UTS namespaces, hosts and resolv.conf files, the PID holder), never the node's in its place.
    fn host_filesystem_isolation(
        &self,
        id: &str,
        meta: &ContainerMeta,
        cfg: &ShimConfig,
    ) -> Result<shim::Isolation, RuntimeError> {
        let bundle = self.dir(id).join(shim::BUNDLE_DIR);
        let sandbox = self.read_sandbox(&meta.sandbox_id);
        Ok(match sandbox.as_ref().filter(|sb| sb.ready) {
            Some(PodSandbox {
                paths: Some(paths),
                pid_holder,
                ..
            }) => {
                if paths.pid_holder_needed && !pid_holder.is_some_and(pid_holder_alive) {
                    return Err(RuntimeError::PodSandbox {
                        id: meta.sandbox_id.clone(),
                        message: "the pod's PID namespace holder is gone".into(),
                    });
                }
                super::spec::host_filesystem_in_pod(cfg, bundle, paths, *pid_holder)
            }
            // Never the node's IPC and UTS namespaces in place of the pod's.
            _ => {
                return Err(RuntimeError::PodSandbox {
                    id: meta.sandbox_id.clone(),
                    message: "not ready: an isolated container runs only in its pod's sandbox"
                        .into(),
                });
            }
        })
    }
}

impl ShimRuntime {
    /// The isolation of a container run from its image: the same spec as a host-filesystem
    /// container (own mount and PID namespaces, its pod's sandbox, containerd's defaults) on
    /// an overlay of `layers` with the container's writable layer, `upper/` and `work/` in its
    /// state dir (removed with it). The overlay is mounted inside the container's mount
    /// namespace only, so it goes away with the container's last process.
    fn image_isolation(
        &self,
        id: &str,
        meta: &ContainerMeta,
        cfg: &ShimConfig,
        layers: &[PathBuf],
    ) -> Result<shim::Isolation, RuntimeError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.dir(id);
        let (upper, work) = (dir.join(UPPER_DIR), dir.join("work"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io {
                id: id.to_string(),
                action: "create",
                path,
                source,
            }
        };
        // The state dir stays private; `upper/` is the container's `/`, which its users must
        // be able to search (overlayfs takes the root's mode from the upper dir).
        shim::create_private_dir_all(&work).map_err(io(&work))?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&upper)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(io(&upper))?;
        let mut iso = self.host_filesystem_isolation(id, meta, cfg)?;
        iso.rootfs = shim::Rootfs::Overlay {
            lower: layers.to_vec(),
            upper,
            work,
        };
        Ok(iso)
    }
}

impl SpareShim {
    fn request_refill(&self) {
        if let Ok(tx) = self.refill.lock() {
            let _ = tx.send(());
        }
    }
}

/// The `shim-prestart` thread: on each request, start a spare shim if the slot is empty. Ends
/// when the runtime (every clone of it) is gone.
fn refill_spares(
    exe: &Path,
    containers_dir: &Path,
    spare: &std::sync::Weak<SpareShim>,
    requests: &std::sync::mpsc::Receiver<()>,
) {
    let mut warned = false;
    while requests.recv().is_ok() {
        // Requests that piled up during a burst of starts need one spare, not one each.
        while requests.try_recv().is_ok() {}
        let Some(spare) = spare.upgrade() else { return };
        if spare.slot.lock().is_ok_and(|s| s.is_some()) {
            continue;
        }
        let id = ShimRuntime::new_id();
        match shim::prestart(exe, &containers_dir.join(&id)) {
            Ok(p) => {
                if let Ok(mut slot) = spare.slot.lock() {
                    *slot = Some((id, p));
                }
            }
            // Containers still start (each execs its shim); say so once, not per start.
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "could not prestart a spare shim; shims start on demand");
            }
            Err(e) => tracing::debug!(error = %e, "could not prestart a spare shim"),
        }
    }
}

impl ContainerRuntime for ShimRuntime {
    /// A record, plus, for an isolated pod, its namespaces, files and PID holder
    /// (`crate::sandbox`). The record lets a restarted agent find the sandbox again
    /// ([`ContainerRuntime::list_pod_sandboxes`]).
    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> Result<SandboxId, RuntimeError> {
        let mut sandbox = PodSandbox {
            id: ShimRuntime::new_id(),
            config: config.clone(),
            ready: true,
            created_at: jiff::Timestamp::now().to_string(),
            paths: None,
            pid_holder: None,
            network: None,
        };
        if config.isolated {
            let err = |message: String| RuntimeError::PodSandbox {
                id: sandbox.id.clone(),
                message,
            };
            let Some(ps) = &self.pod_sandboxes else {
                return Err(err("this runtime makes no pod namespaces".into()));
            };
            let run = ps
                .manager
                .run_pod_sandbox(&config.as_pod(), &ps.pod_ips)
                .map_err(|e| err(e.to_string()))?;
            for ev in &run.events {
                tracing::warn!(pod = %config.pod_name, podUID = %config.pod_uid, reason = ev.reason, "{}", ev.message);
            }
            // `setupPodNetwork`, in the namespace just pinned; a failure removes the sandbox
            // again (the pod worker tries once more later).
            if let (Some(net), Some(netns)) = (&ps.network, run.paths.namespaces.get(NsKind::Net)) {
                let pod = config.as_pod();
                let set_up = net.setup(
                    &sandbox.id,
                    netns,
                    (&config.pod_namespace, &config.pod_name, &config.pod_uid),
                    &config.port_mappings,
                );
                let sysctls: Vec<(String, String)> = config
                    .sysctls
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let n = match set_up {
                    Ok(n) => n,
                    Err(message) => {
                        let _ = ps.manager.remove(&config.pod_uid);
                        return Err(err(message));
                    }
                };
                // The network is there: what fails now tears it down before the namespace goes.
                let finished = super::network::write_sysctls(netns, &sysctls).and_then(|()| {
                    ps.manager
                        .write_hosts_file(&pod, &n.ips)
                        .map_err(|e| e.to_string())
                });
                if let Err(message) = finished {
                    if let Err(e) = net.teardown(&sandbox.id, netns, &n) {
                        tracing::warn!(podUID = %config.pod_uid, sandbox = %sandbox.id, error = %e, "tear down the pod's network");
                    }
                    let _ = ps.manager.remove(&config.pod_uid);
                    return Err(err(message));
                }
                tracing::info!(pod = %config.pod_name, podUID = %config.pod_uid, sandbox = %sandbox.id,
                    network = %n.name, pod_ips = ?n.ips, "pod network set up");
                sandbox.network = Some(n);
            }
            if run.paths.pid_holder_needed {
                match shim::start_pid_holder(&self.shim_exe) {
                    Ok(pid) => sandbox.pid_holder = Some(pid),
                    Err(e) => {
                        sandbox.paths = Some(run.paths);
                        self.release_pod_sandbox(&sandbox);
                        return Err(err(format!("start the pod's PID namespace holder: {e}")));
                    }
                }
            }
            sandbox.paths = Some(run.paths);
        } else if !config.sysctls.is_empty() {
            // A record-only sandbox has no namespaces of its own: writing the sysctls would
            // change the node's.
            return Err(RuntimeError::PodSandbox {
                id: sandbox.id.clone(),
                message: "sysctls need the pod's own IPC namespace, which --feature-gates=ImageRootfs=false turns off".into(),
            });
        }
        if let Err(e) = self.write_sandbox(&sandbox) {
            self.release_pod_sandbox(&sandbox);
            return Err(e);
        }
        Ok(sandbox.id)
    }

    /// The pod's containers are gone: its PID holder ends and its namespaces and files are
    /// removed (they hold nothing any more); the record stays, not ready.
    fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        match self.read_sandbox(id) {
            Some(mut sb) if sb.ready => {
                self.release_pod_sandbox(&sb);
                sb.ready = false;
                self.write_sandbox(&sb)
            }
            _ => Ok(()),
        }
    }

    fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(sb) = self.read_sandbox(id) {
            self.release_pod_sandbox(&sb);
        }
        let path = self.sandbox_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RuntimeError::Sandbox {
                id: id.to_string(),
                action: "remove",
                path,
                source,
            }),
        }
    }

    fn pod_sandbox_status(&self, id: &str) -> Option<PodSandbox> {
        self.read_sandbox(id)
    }

    fn node_network_reason(&self) -> Option<String> {
        match self
            .pod_sandboxes
            .as_ref()
            .and_then(|ps| ps.network.as_ref())
        {
            Some(n) => n.node_network_reason().map(str::to_string),
            None => Some("this runtime has no pod network".into()),
        }
    }

    fn list_pod_sandboxes(&self) -> Vec<PodSandbox> {
        let Ok(entries) = std::fs::read_dir(&self.sandboxes_dir) else {
            return Vec::new();
        };
        let mut out: Vec<PodSandbox> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let id = name.to_str()?.strip_suffix(".json")?;
                self.read_sandbox(id)
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> Result<Started, RuntimeError> {
        let (id, prestarted) = self.next_container();
        let mut meta = spec.meta.clone();
        meta.id = id.clone();
        meta.created_at = jiff::Timestamp::now().to_string();
        let p = &spec.process;
        let cfg = ShimConfig {
            container_id: id.clone(),
            argv: spec.argv.clone(),
            env: p.env.clone(),
            working_dir: p.working_dir.clone(),
            uid: p.uid,
            gid: p.gid,
            supplemental_groups: p.supplemental_groups.clone(),
            cgroup_procs: p.cgroup_procs.clone(),
            oom_score_adj: p.oom_score_adj,
            log_path: meta.log_path.clone(),
            log_max_size: spec.log_max_size,
            log_max_files: spec.log_max_files,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            isolation: None,
        };
        let mut cfg = cfg;
        match &spec.rootfs {
            ContainerRootfs::Node => {}
            ContainerRootfs::HostFilesystem => {
                cfg.isolation = Some(self.host_filesystem_isolation(&id, &meta, &cfg)?);
            }
            ContainerRootfs::Image { layers } => {
                cfg.isolation = Some(self.image_isolation(&id, &meta, &cfg, layers)?);
            }
        }
        match cfg.isolation.as_mut() {
            Some(iso) => {
                // containerd makes a missing bind source (a hostPath of the empty type) a
                // directory, 0755, before it creates the container.
                use std::os::unix::fs::DirBuilderExt;
                for m in &spec.mounts {
                    if std::fs::symlink_metadata(&m.host_path).is_err() {
                        tracing::info!(container_id = %id, path = %m.host_path.display(), "creating the missing host path of a volume mount");
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o755)
                            .create(&m.host_path)
                            .map_err(|source| RuntimeError::Io {
                                id: id.clone(),
                                action: "create the host path",
                                path: m.host_path.clone(),
                                source,
                            })?;
                    }
                }
                super::spec::add_volume_mounts(&mut iso.spec, &spec.mounts);
                super::spec::apply_security(
                    &mut iso.spec,
                    &spec.security,
                    super::spec::current_bounding_set(),
                )
                .map_err(|e| RuntimeError::Security {
                    id: id.clone(),
                    message: e.to_string(),
                })?;
                // The deviation of the security context, said where the user looks.
                if spec.security.privileged {
                    tracing::info!(container_id = %id, pod = %meta.pod_name, container = %meta.container_name,
                        devices = iso.spec.linux.devices.len(),
                        "privileged container: every capability, every host device, no masked paths, /sys writable");
                } else if spec.security.seccomp == super::spec::SeccompProfile::RuntimeDefault {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        tracing::info!("seccomp RuntimeDefault is minikubelet's denylist of the syscalls containerd's default profile blocks, not containerd's allowlist: a syscall it does not name is allowed (docs/deviations.md)");
                    });
                }
            }
            None if spec.security != Default::default() => {
                return Err(RuntimeError::Security {
                    id,
                    message: "capabilities, privileged, allowPrivilegeEscalation and readOnlyRootFilesystem need the container's own namespaces, which --feature-gates=ImageRootfs=false turns off".into(),
                });
            }
            None => {}
        }
        let state = self.start_shim(&meta, &cfg, prestarted)?;
        if let Some(err) = self.read_exit(&id).and_then(|e| e.start_error) {
            return Err(RuntimeError::StartFailed { id, message: err });
        }
        self.remember(&meta, &state);
        Ok(Started {
            meta,
            pid: state.pid,
            started_at: state.started_at,
        })
    }

    fn stop(&self, id: &str, grace: Duration) -> BoxFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(async move {
            let Some(proc) = self.proc_of(&id) else {
                tracing::debug!(container_id = %id, "stop: no such container");
                return;
            };
            // Signalled unless the process is known to be gone: a state that cannot be read
            // (the audit's EMFILE) is not an exit. A pid reused since is the lesser risk; the
            // cgroup kill below is what really ends the container.
            if process_state(proc.pid) != ProcState::Gone {
                tracing::debug!(container_id = %id, pid = proc.pid, grace = ?grace, "sending SIGTERM");
                if let Err(e) = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(proc.pid),
                    nix::sys::signal::Signal::SIGTERM,
                ) && e != nix::errno::Errno::ESRCH
                {
                    tracing::warn!(container_id = %id, pid = proc.pid, error = %e, "send SIGTERM");
                }
            }
            if tokio::time::timeout(grace, wait_pid_exit(proc.shim_pid))
                .await
                .is_ok()
            {
                return;
            }
            tracing::info!(container_id = %id, "grace period over; killing the container's cgroup");
            let cgroup = CgroupName::new(proc.cgroup.iter().map(String::as_str));
            let mut settle = KILL_SETTLE;
            let mut retry = KILL_RETRY_FIRST;
            loop {
                match (&self.cgroups, &cgroup) {
                    (Some(fs), Ok(cg)) => {
                        if let Err(e) = fs.kill(cg) {
                            tracing::warn!(container_id = %id, error = %e, "kill container cgroup");
                        }
                    }
                    (_, Err(e)) => {
                        tracing::warn!(container_id = %id, error = %e, "container cgroup name")
                    }
                    (None, _) => {
                        tracing::warn!(container_id = %id, "no cgroup filesystem to kill the container through")
                    }
                }
                if tokio::time::timeout(settle, wait_pid_exit(proc.shim_pid))
                    .await
                    .is_ok()
                {
                    return;
                }
                // The kubelet retries a failed kill on every pod sync; the container must not
                // outlive its pod because one kill attempt met EMFILE.
                tracing::warn!(container_id = %id, shim_pid = proc.shim_pid, retry_in = ?retry, "the container's shim has not exited after the cgroup kill; killing again");
                settle = retry;
                retry = (retry * 2).min(KILL_RETRY_MAX);
            }
        })
    }

    /// The shim renames `exit.json` into place before it exits, so once its pidfd is readable
    /// the record is final; a missing record means it died without writing one (killed).
    fn wait(&self, id: &str) -> BoxFuture<'_, Exit> {
        let id = id.to_string();
        Box::pin(async move {
            // A container this runtime started or listed running is waited on by its shim's
            // pid alone (no file read); another only while its shim is alive (checked against
            // its state dir, so a reused pid is never waited on).
            let known = self.procs.lock().ok().and_then(|p| p.get(&id).cloned());
            let shim_pid = known.map(|p| p.shim_pid).or_else(|| {
                let rec = self.get(&id).filter(|r| r.is_running())?;
                rec.state.map(|s| s.shim_pid)
            });
            if let Some(pid) = shim_pid {
                wait_pid_exit(pid).await;
            }
            let status = self.read_exit(&id);
            let cgroup = self
                .procs
                .lock()
                .ok()
                .and_then(|p| p.get(&id).map(|p| p.cgroup.clone()))
                .or_else(|| self.get(&id).map(|r| r.meta.cgroup));
            Exit {
                status,
                oom_kill_count: cgroup.map_or(0, |c| self.oom_kill_count(&c)),
            }
        })
    }

    fn status(&self, id: &str) -> Option<ContainerRecord> {
        self.get(id)
    }

    fn list(&self) -> Vec<ContainerRecord> {
        self.list_records()
    }

    fn remove(&self, id: &str) -> Option<ContainerMeta> {
        let rec = self.get(id)?;
        self.remove_meta(&rec.meta);
        Some(rec.meta)
    }

    /// From the spec the shim was started with (`config.json`): the same env, working dir,
    /// user, groups and cgroup. This is how a CRI runtime answers Exec: by container ID, from
    /// its own record of the container.
    fn exec_context(&self, id: &str) -> Result<ExecContext, RuntimeError> {
        if !valid_id(id) {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        super::exec::container_exec_context(&self.dir(id)).map_err(|source| RuntimeError::Config {
            id: id.to_string(),
            source,
        })
    }

    fn attach(&self, id: &str) -> Result<AttachTarget, RuntimeError> {
        match self.status(id) {
            Some(rec) if rec.is_running() => Ok(AttachTarget {
                socket: shim::attach::socket_path(&self.dir(&rec.meta.id)),
            }),
            _ => Err(RuntimeError::NotRunning { id: id.to_string() }),
        }
    }

    /// `du` of the overlay's `upper/` in the container's state dir: what containerd's
    /// overlayfs snapshotter reports for the active snapshot (its upper dir).
    fn writable_layer_usage(&self, id: &str) -> Option<super::FilesystemUsage> {
        if !valid_id(id) {
            return None;
        }
        let upper = self.dir(id).join(UPPER_DIR);
        if !upper.is_dir() {
            return None;
        }
        let (bytes, inodes) = crate::fs_usage::dir_usage(&upper);
        Some(super::FilesystemUsage {
            used_bytes: bytes.max(0) as u64,
            inodes_used: inodes.max(0) as u64,
        })
    }
}

impl ShimRuntime {
    /// Ends an isolated sandbox's PID holder and removes its namespaces and files (idempotent).
    fn release_pod_sandbox(&self, sb: &PodSandbox) {
        if let Some(pid) = sb.pid_holder.filter(|p| pid_holder_alive(*p)) {
            // Its death ends whatever is left in the pod's PID namespace.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // `teardownPodNetwork` first: DEL needs the namespace to reach the pod's end of its veth.
        if let (Some(paths), Some(ps), Some(n)) = (&sb.paths, &self.pod_sandboxes, &sb.network)
            && let (Some(net), Some(netns)) = (&ps.network, paths.namespaces.get(NsKind::Net))
            && let Err(e) = net.teardown(&sb.id, netns, n)
        {
            tracing::warn!(podUID = %sb.config.pod_uid, sandbox = %sb.id, error = %e, "tear down the pod's network");
        }
        if let (Some(_), Some(ps)) = (&sb.paths, &self.pod_sandboxes)
            && let Err(e) = ps.manager.remove(&sb.config.pod_uid)
        {
            tracing::warn!(podUID = %sb.config.pod_uid, sandbox = %sb.id, error = %e, "remove the pod sandbox's namespaces and files");
        }
    }

    fn sandbox_path(&self, id: &str) -> PathBuf {
        self.sandboxes_dir.join(format!("{id}.json"))
    }

    fn read_sandbox(&self, id: &str) -> Option<PodSandbox> {
        if !valid_id(id) {
            return None;
        }
        serde_json::from_slice(&std::fs::read(self.sandbox_path(id)).ok()?).ok()
    }

    fn write_sandbox(&self, sb: &PodSandbox) -> Result<(), RuntimeError> {
        let path = self.sandbox_path(&sb.id);
        let err = |action, source| RuntimeError::Sandbox {
            id: sb.id.clone(),
            action,
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(sb).map_err(|e| err("encode", e.into()))?;
        let tmp = path.with_extension("json.tmp");
        shim::write_private(&tmp, &bytes).map_err(|e| err("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| err("rename", e))
    }
}

/// Whether `pid` is still a pod's PID holder (`<exe> shim --pause`), not a reused pid.
fn pid_holder_alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .any(|a| a == shim::PAUSE_ARG.as_bytes())
    })
}

/// A container or sandbox ID as this runtime makes them: 32 hex characters (and so never a
/// path).
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_leaves_incomplete_state_to_start_up() {
        let root = tempfile::tempdir().unwrap();
        let rt = ShimRuntime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        // A container another worker is creating: directory made, meta.json not written yet.
        let creating = rt.dir(&ShimRuntime::new_id());
        std::fs::create_dir_all(&creating).unwrap();
        assert!(rt.list_records().is_empty());
        assert!(
            creating.exists(),
            "list() must not remove a container being created"
        );
        // At start-up nothing is being created: the leftover goes.
        let _rt = ShimRuntime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        assert!(!creating.exists());
    }

    #[test]
    fn sandbox_records_survive_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let rt = ShimRuntime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        let cfg = PodSandboxConfig {
            pod_uid: "u1".into(),
            pod_name: "web".into(),
            hostname: "web".into(),
            ..Default::default()
        };
        let id = rt.run_pod_sandbox(&cfg).unwrap();
        let again = ShimRuntime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        let found = again.list_pod_sandboxes();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id.as_str(), found[0].ready), (id.as_str(), true));
        assert_eq!(found[0].config, cfg);
        again.stop_pod_sandbox(&id).unwrap();
        assert!(!again.list_pod_sandboxes()[0].ready);
        again.remove_pod_sandbox(&id).unwrap();
        assert!(again.list_pod_sandboxes().is_empty());
        again.remove_pod_sandbox(&id).unwrap();
        assert!(again.exec_context("../x").is_err());
    }
}
