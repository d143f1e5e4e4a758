//! A fake [`ContainerRuntime`] for unit tests: no processes, no root. It records every call,
//! keeps its containers in memory, exits a container when the test says so, and can be told to
//! fail the next start of a container.
//!
//! Mirrors the kubelet's `pkg/kubelet/container/testing` `FakeRuntime` (what its pod worker
//! tests run against).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::exec::ExecContext;
use super::{
    AttachTarget, BoxFuture, ContainerMeta, ContainerRecord, ContainerRuntime, ContainerSpec, Exit,
    ExitStatus, PodSandbox, PodSandboxConfig, RuntimeError, SandboxId, ShimState, Started,
};

/// Exit code of a container the fake stops (128 + SIGTERM, as a runtime reports it).
pub const STOPPED_EXIT_CODE: i32 = 143;

struct Container {
    meta: ContainerMeta,
    process: ExecContext,
    state: ShimState,
    exit: watch::Sender<Option<ExitStatus>>,
}

/// See the module header.
#[derive(Default)]
pub struct FakeRuntime {
    calls: Mutex<Vec<String>>,
    containers: Mutex<Vec<Container>>,
    sandboxes: Mutex<Vec<PodSandbox>>,
    fail_start: Mutex<HashMap<String, String>>,
    next_pid: Mutex<i32>,
    /// How long `stop` takes before the container exits (a container using its grace period).
    stop_delay: Mutex<Duration>,
}

impl FakeRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// Make every later `stop` take `d` (of paused test time) before the container exits.
    pub fn set_stop_delay(&self, d: Duration) {
        *self.stop_delay.lock().unwrap() = d;
    }

    /// Every call so far, e.g. `create web/app#0`, `stop web/app#0`, `run_pod_sandbox web`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls that start with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }

    /// The next start of container `name` fails with `message` (as a shim's start error).
    pub fn fail_next_start(&self, name: &str, message: &str) {
        self.fail_start
            .lock()
            .unwrap()
            .insert(name.to_string(), message.to_string());
    }

    /// The running instance of container `name` of pod `pod_name`, if any.
    pub fn running_id(&self, pod_name: &str, name: &str) -> Option<String> {
        self.containers
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|c| {
                c.meta.pod_name == pod_name
                    && c.meta.container_name == name
                    && c.exit.borrow().is_none()
            })
            .map(|c| c.meta.id.clone())
    }

    /// Make the running instance of `name` (in pod `pod_name`) exit with `code`; false if
    /// none runs.
    pub fn exit(&self, pod_name: &str, name: &str, code: i32) -> bool {
        let Some(id) = self.running_id(pod_name, name) else {
            return false;
        };
        self.exit_id(&id, code);
        true
    }

    fn exit_id(&self, id: &str, code: i32) {
        let containers = self.containers.lock().unwrap();
        if let Some(c) = containers.iter().find(|c| c.meta.id == id) {
            c.exit.send_if_modified(|e| {
                if e.is_some() {
                    return false;
                }
                *e = Some(ExitStatus {
                    exit_code: code,
                    signal: None,
                    started_at: Some(c.state.started_at.clone()),
                    finished_at: jiff::Timestamp::now().to_string(),
                    start_error: None,
                });
                true
            });
        }
    }

    /// Put a container into the runtime as a previous agent would have left it (for
    /// re-adoption tests): running when `exit_code` is `None`.
    pub fn seed(&self, meta: ContainerMeta, exit_code: Option<i32>) {
        let state = self.state();
        let (tx, _) = watch::channel(None);
        let id = meta.id.clone();
        self.containers.lock().unwrap().push(Container {
            meta,
            process: ExecContext::default(),
            state,
            exit: tx,
        });
        if let Some(code) = exit_code {
            self.exit_id(&id, code);
        }
    }

    fn state(&self) -> ShimState {
        let mut pid = self.next_pid.lock().unwrap();
        *pid += 1;
        ShimState {
            shim_pid: 100_000 + *pid,
            pid: 200_000 + *pid,
            started_at: jiff::Timestamp::now().to_string(),
        }
    }

    fn record_of(c: &Container) -> ContainerRecord {
        ContainerRecord {
            meta: c.meta.clone(),
            state: Some(c.state.clone()),
            exit: c.exit.borrow().clone(),
            dir: None,
        }
    }
}

fn label(meta: &ContainerMeta) -> String {
    format!("{}/{}#{}", meta.pod_name, meta.container_name, meta.attempt)
}

impl ContainerRuntime for FakeRuntime {
    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> Result<SandboxId, RuntimeError> {
        self.record(format!("run_pod_sandbox {}", config.pod_name));
        let id = format!("{:032x}", rand::random::<u128>());
        self.sandboxes.lock().unwrap().push(PodSandbox {
            id: id.clone(),
            config: config.clone(),
            ready: true,
            created_at: jiff::Timestamp::now().to_string(),
            paths: None,
            pid_holder: None,
            network: None,
        });
        Ok(id)
    }

    fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut sbs = self.sandboxes.lock().unwrap();
        if let Some(sb) = sbs.iter_mut().find(|s| s.id == id) {
            self.record(format!("stop_pod_sandbox {}", sb.config.pod_name));
            sb.ready = false;
        }
        Ok(())
    }

    fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut sbs = self.sandboxes.lock().unwrap();
        if let Some(i) = sbs.iter().position(|s| s.id == id) {
            self.record(format!("remove_pod_sandbox {}", sbs[i].config.pod_name));
            sbs.remove(i);
        }
        Ok(())
    }

    fn list_pod_sandboxes(&self) -> Vec<PodSandbox> {
        self.sandboxes.lock().unwrap().clone()
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> Result<Started, RuntimeError> {
        let mut meta = spec.meta.clone();
        meta.id = format!("{:032x}", rand::random::<u128>());
        meta.created_at = jiff::Timestamp::now().to_string();
        self.record(format!("create {}", label(&meta)));
        if let Some(message) = self.fail_start.lock().unwrap().remove(&meta.container_name) {
            return Err(RuntimeError::StartFailed {
                id: meta.id,
                message,
            });
        }
        let state = self.state();
        let (tx, _) = watch::channel(None);
        self.containers.lock().unwrap().push(Container {
            meta: meta.clone(),
            process: spec.process.clone(),
            state: state.clone(),
            exit: tx,
        });
        Ok(Started {
            meta,
            pid: state.pid,
            started_at: state.started_at,
        })
    }

    fn stop(&self, id: &str, _grace: Duration) -> BoxFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(async move {
            if let Some(rec) = self.status(&id) {
                self.record(format!("stop {}", label(&rec.meta)));
            }
            let delay = *self.stop_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.exit_id(&id, STOPPED_EXIT_CODE);
        })
    }

    fn wait(&self, id: &str) -> BoxFuture<'_, Exit> {
        let rx = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.meta.id == id)
            .map(|c| c.exit.subscribe());
        Box::pin(async move {
            let Some(mut rx) = rx else {
                return Exit::default();
            };
            let status = match rx.wait_for(|e| e.is_some()).await {
                Ok(e) => e.clone(),
                Err(_) => None,
            };
            Exit {
                status,
                oom_kill_count: 0,
            }
        })
    }

    fn status(&self, id: &str) -> Option<ContainerRecord> {
        let containers = self.containers.lock().unwrap();
        containers
            .iter()
            .find(|c| c.meta.id == id)
            .map(Self::record_of)
    }

    fn list(&self) -> Vec<ContainerRecord> {
        let containers = self.containers.lock().unwrap();
        containers.iter().map(Self::record_of).collect()
    }

    fn remove(&self, id: &str) -> Option<ContainerMeta> {
        let mut containers = self.containers.lock().unwrap();
        let i = containers.iter().position(|c| c.meta.id == id)?;
        let c = containers.remove(i);
        drop(containers);
        self.record(format!("remove {}", label(&c.meta)));
        Some(c.meta)
    }

    fn exec_context(&self, id: &str) -> Result<ExecContext, RuntimeError> {
        let containers = self.containers.lock().unwrap();
        containers
            .iter()
            .find(|c| c.meta.id == id)
            .map(|c| c.process.clone())
            .ok_or_else(|| RuntimeError::NotRunning { id: id.to_string() })
    }

    fn attach(&self, id: &str) -> Result<AttachTarget, RuntimeError> {
        Err(RuntimeError::NotRunning { id: id.to_string() })
    }
}
