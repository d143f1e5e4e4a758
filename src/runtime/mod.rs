//! The container runtime: creates, starts, stops, lists and removes containers, each supervised
//! by its own shim process, and re-adopts them after the agent restarts.
//!
//! Mirrors the kubelet's `kuberuntime` (what it asks of a CRI runtime) and, below that line, what
//! containerd plus its shims do. There are no images yet: a container is a process on the node's
//! filesystem, started inside its own cgroup. Everything about a container lives in its state
//! directory `<root-dir>/containers/<id>/`:
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `meta.json` | runtime | which pod and container this is, attempt, cgroup (the CRI labels) |
//! | `config.json` | runtime | what the shim runs: argv, env, user, cgroup, log file |
//! | `state.json` | shim | shim pid, container pid, start time |
//! | `exit.json` | shim | exit code, signal, finish time |
//!
//! Because the shim, not the agent, is the container's parent and log writer, the agent can die
//! (`kill -9`) and come back: `list()` finds every container again, running or exited.

pub mod env;
pub mod exec;
pub mod spec;

/// The OCI runtime spec types (they live beside the shim, which executes them).
pub use crate::shim::oci;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::shim::{self, ExitStatus, ShimConfig, ShimState};

/// Errors of the runtime, each naming the container or file it concerns.
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
    Shim { id: String, source: shim::ShimError },
}

/// What the runtime records about a container besides what the shim runs: the kubelet keeps this
/// as CRI labels and annotations on the container.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerMeta {
    /// Runtime container ID (32 hex characters).
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
    /// When the runtime created it (RFC 3339).
    pub created_at: String,
}

/// One container as found on disk.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    /// Its state directory.
    pub dir: PathBuf,
    /// What it is.
    pub meta: ContainerMeta,
    /// Set once the shim started the process.
    pub state: Option<ShimState>,
    /// Set once the process is gone and its output drained.
    pub exit: Option<ExitStatus>,
}

impl ContainerRecord {
    /// Running: started, not exited, and its shim is still alive.
    pub fn is_running(&self) -> bool {
        self.exit.is_none()
            && self
                .state
                .as_ref()
                .is_some_and(|s| shim::shim_alive(s, &self.dir))
    }
}

/// The runtime: a directory of container state plus the binary that serves as shim.
#[derive(Clone, Debug)]
pub struct Runtime {
    containers_dir: PathBuf,
    shim_exe: PathBuf,
    /// The spare shim, when [`Runtime::prestart_shims`] turned it on.
    spare: Option<Arc<SpareShim>>,
}

/// One shim kept started ahead of the next container ([`shim::prestart`]), so that a pod start
/// does not wait for the exec of the shim binary, the dynamic loader and the launcher's fork
/// (about a millisecond of the ~3 ms a start takes; see docs/benchmarks.md). Nothing like it
/// exists in the kubelet or containerd, which start a shim per container on demand; it is a
/// latency optimisation of this runtime only, and changes no behaviour a user sees except one
/// idle `minikubelet-shim ... --prestarted` process beside the agent.
///
/// A background thread refills the slot after each take. The spare's container ID (and so its
/// state dir) is chosen when it is started; [`Runtime::next_container`] hands out that ID.
#[derive(Debug)]
struct SpareShim {
    slot: Mutex<Option<(String, shim::Prestarted)>>,
    refill: Mutex<std::sync::mpsc::Sender<()>>,
}

/// The environment variable that turns the spare shim off (`MINIKUBELET_SHIM_PRESTART=off`):
/// for measuring what it saves (run `cargo bench --bench spine` with and without it), or when
/// an idle extra process is unwelcome.
pub const SHIM_PRESTART_ENV: &str = "MINIKUBELET_SHIM_PRESTART";

impl Runtime {
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
        let rt = Runtime {
            containers_dir,
            shim_exe,
            spare: None,
        };
        rt.remove_incomplete();
        Ok(rt)
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

    /// The ID for the next container and, when one is ready, the shim prestarted for it (pass
    /// it to [`Runtime::create_and_start`]). Dropping the shim unused makes it exit.
    pub fn next_container(&self) -> (String, Option<shim::Prestarted>) {
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
    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id)
    }

    /// CRI CreateContainer + StartContainer: write the records, start the shim, return once the
    /// process runs (or the shim reported that it could not start it).
    pub fn create_and_start(
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

    /// CRI ListContainers: every container with a readable `meta.json`. Read-only: a directory
    /// without one may be a container that another pod worker is creating right now (found by
    /// the spine benchmark: a worker's clean-up used to delete it under the creator's feet).
    pub fn list(&self) -> Vec<ContainerRecord> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.containers_dir) else {
            return out;
        };
        for entry in entries.flatten() {
            if let Some(rec) = self.load(&entry.path()) {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.meta.created_at.cmp(&b.meta.created_at));
        out
    }

    fn load(&self, dir: &Path) -> Option<ContainerRecord> {
        let meta: ContainerMeta =
            serde_json::from_slice(&std::fs::read(dir.join(shim::META_FILE)).ok()?).ok()?;
        Some(ContainerRecord {
            dir: dir.to_path_buf(),
            meta,
            state: shim::read_state(dir).ok().flatten(),
            exit: shim::read_exit(dir).ok().flatten(),
        })
    }

    /// CRI ContainerStatus: one container's record by ID, if it exists.
    pub fn get(&self, id: &str) -> Option<ContainerRecord> {
        if id.is_empty() || id.contains(['/', '.']) {
            return None;
        }
        self.load(&self.dir(id))
    }

    /// Re-read one container's exit record.
    pub fn read_exit(&self, id: &str) -> Option<ExitStatus> {
        shim::read_exit(&self.dir(id)).ok().flatten()
    }

    /// CRI RemoveContainer: delete the state directory and the log file.
    pub fn remove(&self, meta: &ContainerMeta) {
        let dir = self.dir(&meta.id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(container_id = %meta.id, path = %dir.display(), error = %e, "remove container state");
        }
        crate::logs::remove_container_logs(&meta.log_path);
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
        let id = Runtime::new_id();
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

/// Wait until a container's shim has exited (it writes `exit.json` first), then return the exit
/// record. This is the PLEG's event source: a pidfd becomes readable when the shim exits, so
/// nothing polls while containers run. Without pidfd (kernel < 5.3) it polls `/proc`.
pub async fn wait_exit(dir: PathBuf, shim_pid: i32) -> Option<ExitStatus> {
    crate::pleg::wait_pid_exit(shim_pid).await;
    // The shim renames exit.json into place before it exits; a missing file means it died
    // without recording anything (killed): the caller reports ContainerStatusUnknown.
    shim::read_exit(&dir).ok().flatten()
}

/// How long `stop` waits after the SIGKILL of a container's cgroup for the shim to record the
/// exit. The kill itself is immediate; this only bounds a stuck shim.
pub const KILL_SETTLE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_leaves_incomplete_state_to_start_up() {
        let root = tempfile::tempdir().unwrap();
        let rt = Runtime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        // A container another worker is creating: directory made, meta.json not written yet.
        let creating = rt.dir(&Runtime::new_id());
        std::fs::create_dir_all(&creating).unwrap();
        assert!(rt.list().is_empty());
        assert!(
            creating.exists(),
            "list() must not remove a container being created"
        );
        // At start-up nothing is being created: the leftover goes.
        let _rt = Runtime::new(root.path(), PathBuf::from("/nonexistent")).unwrap();
        assert!(!creating.exists());
    }
}
