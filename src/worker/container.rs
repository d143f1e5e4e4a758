//! One container slot of a pod worker: starting an instance, recording its exit, building its
//! `ContainerStatus`, and stopping it. Mirrors `kuberuntime_container.go` (startContainer,
//! killContainer) and the container-status half of `kubelet_pods.go`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, LifecycleHandler, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

use super::{PodContext, PodWorker, WorkerMsg, backoff};
use crate::api::format_pod;
use crate::api::qos::qos_class;
use crate::cgroup::CgroupName;
use crate::events::{self, EventType};
use crate::prober::{self, ProbeType, ProbeWorkerHandle};
use crate::runtime::exec::ExecContext;
use crate::runtime::spec::MountPropagation;
use crate::runtime::{
    ContainerMeta, ContainerRecord, ContainerRootfs, ContainerSpec, Exit, ExitStatus, env,
};
use crate::status;

/// How soon a pod whose sandbox could not be created tries again. The kubelet retries at its
/// next pod sync (about 10 s, with back-off); 5 s, as for a missing image (`IMAGE_RETRY`), makes
/// a fixed node (a resolv.conf restored) start its pods sooner at one failed attempt per pod per
/// 5 s.
const SANDBOX_RETRY: Duration = Duration::from_secs(5);
/// How soon a container that could not be created (`CreateContainerConfigError`,
/// `CreateContainerError`) is tried again: the kubelet's `backOffPeriod`, after which its pod
/// worker syncs a pod whose last sync failed. Shorter would fix a node (a seccomp profile put in
/// place) sooner, at one more failed attempt and `Failed` event per container per period.
const CONFIG_ERROR_RETRY: Duration = Duration::from_secs(10);
/// How soon a pod whose volumes could not be set up is tried again. The kubelet's volume
/// reconciler backs off from 0.5 s to ~2 min; a fixed 5 s starts the pod soon after the node
/// is fixed (the directory made, the socket there) at one attempt and one event per 5 s.
const VOLUME_RETRY: Duration = Duration::from_secs(5);

/// The kubelet's name prefix for container IDs in status (`<runtime>://<id>`).
pub const CONTAINER_ID_SCHEME: &str = "minikubelet";

/// How long a postStart hook may run. The kubelet sets no bound of its own (the pod's sync
/// waits); a bound keeps a hung hook from wedging the pod forever, at the risk of failing a
/// legitimately slow hook.
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);

/// The kubelet's floor for the time between SIGTERM and SIGKILL (`minimumGracePeriodInSeconds`).
const MIN_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    Init,
    Sidecar,
    Regular,
}

pub(super) struct Instance {
    pub meta: ContainerMeta,
    /// When it exec'd (RFC 3339).
    pub started_at: String,
    pub cgroup: CgroupName,
    pub exec: ExecContext,
}

#[derive(Clone, Debug)]
pub(super) struct Finished {
    pub id: String,
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
}

pub(super) struct Slot {
    pub spec: Container,
    pub kind: Kind,
    /// Instances started so far; the current or last one has attempt `instances - 1`.
    pub instances: u32,
    pub current: Option<Instance>,
    pub last: Option<Finished>,
    pub previous: Option<Finished>,
    pub waiting: Option<(String, String)>,
    /// The container could not be created (its config, or the node, is wrong): tried again
    /// after `backoff_until` ([`CONFIG_ERROR_RETRY`]).
    pub config_error: bool,
    pub backoff_until: Option<tokio::time::Instant>,
    pub ready: bool,
    pub started: bool,
    pub probes: Vec<ProbeWorkerHandle>,
    pub started_tx: Option<watch::Sender<bool>>,
    /// Backoff event already recorded for this finished instance.
    pub backoff_reported: Option<String>,
    /// The image the current or last instance ran from: (`image`, `imageID`) of its status.
    pub image: Option<(String, String)>,
}

impl Slot {
    pub fn new(spec: Container, kind: Kind) -> Self {
        Slot {
            spec,
            kind,
            instances: 0,
            current: None,
            last: None,
            previous: None,
            waiting: None,
            config_error: false,
            backoff_until: None,
            ready: false,
            started: false,
            probes: Vec::new(),
            started_tx: None,
            backoff_reported: None,
            image: None,
        }
    }

    pub fn field_path(&self) -> String {
        match self.kind {
            Kind::Regular => format!("spec.containers{{{}}}", self.spec.name),
            _ => format!("spec.initContainers{{{}}}", self.spec.name),
        }
    }

    pub fn stop_probes(&mut self) {
        self.probes.clear();
        self.started_tx = None;
    }

    pub fn probe_grace(&self, p: ProbeType) -> Option<i64> {
        let probe = match p {
            ProbeType::Liveness => self.spec.liveness_probe.as_ref(),
            ProbeType::Startup => self.spec.startup_probe.as_ref(),
            ProbeType::Readiness => None,
        };
        probe.and_then(|p| p.termination_grace_period_seconds)
    }

    fn succeeded(&self) -> bool {
        self.current.is_none() && self.last.as_ref().is_some_and(|l| l.exit_code == 0)
    }

    fn status(&self, default_waiting: &ContainerStateWaiting) -> ContainerStatus {
        let terminated = |f: &Finished| ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(format!("{CONTAINER_ID_SCHEME}://{}", f.id)),
                exit_code: f.exit_code,
                // The kubelet never fills `signal` (CRI has no such field); a signal death shows
                // only as exit code 128 + n, as containerd reports it.
                signal: None,
                reason: Some(f.reason.clone()),
                message: f.message.clone(),
                started_at: f.started_at.as_deref().and_then(parse_time),
                finished_at: parse_time(&f.finished_at),
            }),
            ..Default::default()
        };
        let (state, last_state) = if let Some(c) = &self.current {
            (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: parse_time(&c.started_at),
                    }),
                    ..Default::default()
                },
                self.last.as_ref().map(terminated),
            )
        } else if let Some((reason, message)) = &self.waiting {
            (
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.clone()),
                        message: Some(message.clone()),
                    }),
                    ..Default::default()
                },
                self.last.as_ref().map(terminated),
            )
        } else if let Some(l) = &self.last {
            (terminated(l), self.previous.as_ref().map(terminated))
        } else {
            (
                ContainerState {
                    waiting: Some(default_waiting.clone()),
                    ..Default::default()
                },
                None,
            )
        };
        let id = self
            .current
            .as_ref()
            .map(|c| c.meta.id.clone())
            .or_else(|| self.last.as_ref().map(|l| l.id.clone()));
        let (image, image_id) = self
            .image
            .clone()
            .unwrap_or_else(|| (self.spec.image.clone().unwrap_or_default(), String::new()));
        ContainerStatus {
            name: self.spec.name.clone(),
            image,
            image_id,
            container_id: id.map(|i| format!("{CONTAINER_ID_SCHEME}://{i}")),
            restart_count: self.instances.saturating_sub(1) as i32,
            // An init container that is not a sidecar is ready once it completed
            // (prober `UpdatePodStatus`); the others while they run, start and pass readiness.
            ready: if self.kind == Kind::Init {
                self.succeeded()
            } else {
                self.current.is_some() && self.started && self.ready
            },
            started: Some(self.current.is_some() && self.started),
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            ..Default::default()
        }
    }
}

fn parse_time(s: &str) -> Option<Time> {
    s.parse::<jiff::Timestamp>().ok().map(Time)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn ts_ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|_| now_ms())
}

impl PodWorker {
    /// Start whatever should run now (`computePodActions`).
    pub(super) async fn sync(&mut self) {
        if self.failed {
            return;
        }
        let policy = self.restart_policy().to_string();
        let n = self.slots.len();
        // init containers, in order
        for i in 0..n {
            match self.slots[i].kind {
                Kind::Regular => continue,
                Kind::Sidecar => {
                    if self.slots[i].current.is_some() {
                        if !self.slots[i].started {
                            return;
                        }
                        continue;
                    }
                    if !self.try_start(i).await || !self.slots[i].started {
                        return;
                    }
                }
                Kind::Init => {
                    let s = &self.slots[i];
                    if s.current.is_some() {
                        return;
                    }
                    if s.succeeded() {
                        continue;
                    }
                    if s.last.is_some() && policy == "Never" {
                        // a failed init container under restartPolicy Never fails the pod
                        self.failed = true;
                        return;
                    }
                    self.try_start(i).await;
                    return;
                }
            }
        }
        for i in 0..n {
            if self.slots[i].kind != Kind::Regular || self.slots[i].current.is_some() {
                continue;
            }
            let restart = match &self.slots[i].last {
                None => self.slots[i].instances == 0 || self.slots[i].waiting.is_some(),
                Some(l) => match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => l.exit_code != 0,
                    _ => true,
                },
            };
            if restart {
                self.try_start(i).await;
            }
        }
    }

    /// Start slot `i` unless it is in crash-loop backoff. True if an instance is now running.
    async fn try_start(&mut self, i: usize) -> bool {
        if self.slots[i].config_error {
            if self.slots[i]
                .backoff_until
                .is_some_and(|t| t > tokio::time::Instant::now())
            {
                return false;
            }
            self.slots[i].config_error = false;
        }
        let key = self.backoff_key(i);
        if let Some(last) = self.slots[i].last.clone() {
            let finished = ts_ms(&last.finished_at);
            let now = now_ms();
            if self.ctx.backoff.is_in_backoff_since(&key, finished, now) {
                let delay = self.ctx.backoff.get(&key);
                let name = self.slots[i].spec.name.clone();
                let msg = format!(
                    "back-off {} restarting failed container={} pod={}",
                    backoff::go_duration(delay),
                    name,
                    format_pod(&self.pod)
                );
                let remaining = Duration::from_millis(
                    (finished + delay.as_millis() as i64 - now).max(0) as u64,
                );
                self.slots[i].backoff_until = Some(tokio::time::Instant::now() + remaining);
                self.slots[i].waiting =
                    Some((status::reasons::CRASH_LOOP_BACK_OFF.into(), msg.clone()));
                if self.slots[i].backoff_reported.as_deref() != Some(last.id.as_str()) {
                    self.slots[i].backoff_reported = Some(last.id.clone());
                    tracing::info!(pod = %self.pod_name(), container = %name, delay = %backoff::go_duration(delay), "Back-off restarting failed container");
                    self.event(
                        EventType::Warning,
                        events::BACK_OFF,
                        Some(&self.slots[i]),
                        format!(
                            "Back-off restarting failed container {name} in pod {}",
                            format_pod(&self.pod)
                        ),
                    );
                }
                return false;
            }
            self.ctx.backoff.next(&key, finished, now);
        }
        self.slots[i].backoff_until = None;
        self.start(i).await
    }

    fn backoff_key(&self, i: usize) -> String {
        let spec = serde_json::to_vec(&self.slots[i].spec).unwrap_or_default();
        format!(
            "{}_{}_{}_{}_{:x}",
            self.pod_name(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.uid.as_deref().unwrap_or_default(),
            self.slots[i].spec.name,
            fnv64(&spec)
        )
    }

    pub(super) fn config_error(&mut self, i: usize, reason: &str, message: String) {
        tracing::warn!(pod = %self.pod_name(), container = %self.slots[i].spec.name, reason, %message, "cannot start container");
        self.event(
            EventType::Warning,
            events::FAILED,
            Some(&self.slots[i]),
            format!("Error: {message}"),
        );
        let s = &mut self.slots[i];
        s.waiting = Some((reason.to_string(), message));
        if s.config_error {
            s.backoff_until = Some(tokio::time::Instant::now() + CONFIG_ERROR_RETRY);
        }
    }

    /// Slot `i` waits in `ContainerCreating` (its pod's sandbox or volumes are not ready) and
    /// is looked at again after `retry`, without counting as a failed start.
    fn wait_creating(&mut self, i: usize, retry: Duration) {
        let s = &mut self.slots[i];
        s.waiting = Some((
            status::reasons::CONTAINER_CREATING.to_string(),
            String::new(),
        ));
        s.backoff_until = Some(tokio::time::Instant::now() + retry);
    }

    /// `startContainer`: env, cgroup, log file, shim; then Created/Started events, the exit
    /// watch, probes, and the postStart hook.
    async fn start(&mut self, i: usize) -> bool {
        // `RunPodSandbox` again after a failure, as the kubelet's next sync does; without a
        // sandbox no container is created (the kubelet's `SyncPod` stops at a failed
        // `createPodSandbox`): it stays ContainerCreating, with FailedCreatePodSandBox events,
        // and is looked at again after SANDBOX_RETRY, without counting as a failed start.
        if self.sandbox_id.is_none() {
            self.ensure_sandbox(false);
            if self.sandbox_id.is_none() {
                self.wait_creating(i, SANDBOX_RETRY);
                return false;
            }
        }
        // Volumes not set up yet (a hostPath whose type check failed, a tmpfs that could not be
        // mounted): tried again every VOLUME_RETRY; the container waits in ContainerCreating.
        if !self.volumes_ready {
            self.set_up_volumes();
            if !self.volumes_ready {
                self.wait_creating(i, VOLUME_RETRY);
                return false;
            }
        }
        let ctx = self.ctx.clone();
        let pod = self.pod.clone();
        let spec = self.slots[i].spec.clone();
        let name = spec.name.clone();
        let images = self.images_for_pod();
        if images.is_none() && spec.command.as_ref().is_none_or(|c| c.is_empty()) {
            self.slots[i].config_error = true;
            let why = if ctx.images.is_some() {
                "the pod is annotated minikubelet.io/host-filesystem: \"true\", so its containers start from the node's filesystem and the image's entrypoint is not read"
            } else {
                "the agent runs with --feature-gates=ImageRootfs=false (containers as processes on the node; images are not read)"
            };
            self.config_error(
                i,
                status::reasons::CREATE_CONTAINER_CONFIG_ERROR,
                format!("container {name:?} has no command: {why}; set spec.containers[].command"),
            );
            return false;
        }
        let envs = match env::make_environment(&pod, &spec, &self.node_env()) {
            Ok(e) => e,
            Err(e) => {
                self.slots[i].config_error = true;
                self.config_error(
                    i,
                    status::reasons::CREATE_CONTAINER_CONFIG_ERROR,
                    e.to_string(),
                );
                return false;
            }
        };
        // Under the ImageRootfs gate: the image, then its config merged with the container.
        let image = match &images {
            Some(images) => match self.image_process(i, images, &envs).await {
                Some(img) => Some(img),
                None => return false,
            },
            None => None,
        };
        // `generateContainerConfig`'s security checks: runAsNonRoot against the image's user
        // (a pod on the node's filesystem runs as root unless runAsUser says otherwise), and
        // capability names containerd would not know.
        let security = crate::security_context::determine_effective(
            &pod,
            &spec,
            &crate::security_context::Options::new(&ctx.root_dir, ctx.seccomp_default),
        );
        let image_user = crate::security_context::ImageUser::parse(
            image.as_ref().map_or("", |img| img.user.as_str()),
        );
        let checked = crate::security_context::verify_run_as_non_root(&pod, &spec, &image_user)
            .and_then(|()| {
                crate::runtime::spec::check_capabilities(&security.linux)
                    .map_err(|e| format!("container {name:?}: securityContext.{e}"))
            });
        if let Err(message) = checked {
            self.slots[i].config_error = true;
            self.config_error(i, status::reasons::CREATE_CONTAINER_CONFIG_ERROR, message);
            return false;
        }
        // containerd reads a Localhost seccomp profile when it makes the container's spec: a
        // missing or bad file is the container's CreateContainerError, tried again later.
        if let crate::runtime::spec::SeccompProfile::Localhost(path) = &security.linux.seccomp
            && !security.linux.privileged
            && let Err(e) = crate::runtime::spec::load_seccomp_profile(path)
        {
            self.slots[i].config_error = true;
            self.config_error(i, status::reasons::CREATE_CONTAINER_ERROR, e.to_string());
            return false;
        }
        // containerd looks for an AppArmor profile when it makes the spec: a Localhost one the
        // kernel has not loaded (or a RuntimeDefault it cannot load) is the container's
        // CreateContainerError, tried again later, so it starts once the profile is loaded.
        if let Err(e) = crate::runtime::spec::check_apparmor(&security.linux) {
            self.slots[i].config_error = true;
            self.config_error(i, status::reasons::CREATE_CONTAINER_ERROR, e.to_string());
            return false;
        }
        // `makeMounts`: the volume mounts, a subPath prepared so that it cannot leave its
        // volume; a failure is the kubelet's CreateContainerConfigError.
        let mounts = match crate::volumes::container_mounts(&ctx.root_dir, &pod, &spec, &envs) {
            Ok(m) => m,
            Err(message) => {
                self.slots[i].config_error = true;
                self.config_error(i, status::reasons::CREATE_CONTAINER_CONFIG_ERROR, message);
                return false;
            }
        };
        let argv = match &image {
            Some(img) => img.process.argv.clone(),
            None => env::command_line(&spec, &envs),
        };
        let cgroup = match ctx.cm.create_container_cgroup(&pod, &spec) {
            Ok(c) => c,
            Err(e) => {
                self.config_error(i, status::reasons::CREATE_CONTAINER_ERROR, e.to_string());
                return false;
            }
        };
        let attempt = self.slots[i].instances;
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let log_path = crate::logs::container_log_path(
            &ctx.pod_logs_dir,
            &ns,
            self.pod_name(),
            &uid,
            &name,
            attempt,
        );
        // The log directory and file are made by the shim, while the container's process
        // joins its cgroups (`shim::child`): off the start path.
        let mut exec = exec_context(
            &pod,
            &spec,
            envs,
            ctx.cm.container_join_files(&cgroup),
            &ctx,
        );
        // HTTP and TCP probes and hooks reach a pod with its own network on its IP.
        exec.pod_ip = self.pod_ips.first().cloned();
        if let Some(img) = &image {
            exec.env = img.process.env.clone();
            exec.working_dir = Some(img.process.cwd.clone().into());
            (exec.uid, exec.gid) = (Some(img.process.uid), Some(img.process.gid));
            // The primary group and, unless the policy is Strict, the image's memberships of
            // the user, then the pod's supplementalGroups and fsGroup (containerd's
            // `WithAdditionalGIDs`, `WithSupplementalGroups`).
            let strict = (pod.spec.as_ref())
                .and_then(|s| s.security_context.as_ref())
                .and_then(|s| s.supplemental_groups_policy.as_deref())
                == Some("Strict");
            let mut groups = if strict {
                vec![img.process.gid]
            } else {
                img.process.additional_gids.clone()
            };
            for g in std::mem::take(&mut exec.supplemental_groups) {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            exec.supplemental_groups = groups;
        }
        let container = ContainerSpec {
            meta: ContainerMeta {
                // Both set by the runtime.
                id: String::new(),
                created_at: String::new(),
                pod_uid: uid.clone(),
                pod_name: self.pod_name().to_string(),
                pod_namespace: ns.clone(),
                container_name: name.clone(),
                attempt,
                spec_hash: self.backoff_key(i),
                cgroup: cgroup.components().to_vec(),
                log_path: log_path.clone(),
                sandbox_id: self.sandbox_id.clone().unwrap_or_default(),
                image: image.as_ref().map(|i| i.image.clone()).unwrap_or_default(),
                image_id: image
                    .as_ref()
                    .map(|i| i.image_id.clone())
                    .unwrap_or_default(),
            },
            argv,
            process: exec.clone(),
            log_max_size: ctx.log_max_size,
            log_max_files: ctx.log_max_files,
            stdin: spec.stdin.unwrap_or(false),
            stdin_once: spec.stdin_once.unwrap_or(false),
            // A pod annotated minikubelet.io/host-filesystem: "true" gets its own mount and PID
            // namespaces on the node's filesystem (docs/isolation.md); others run as before.
            rootfs: if let Some(img) = &image {
                ContainerRootfs::Image {
                    layers: img.layers.clone(),
                }
            } else if (pod.metadata.annotations.as_ref())
                .is_some_and(crate::runtime::spec::wants_host_filesystem)
            {
                ContainerRootfs::HostFilesystem
            } else {
                ContainerRootfs::Node
            },
            mounts: mounts
                .into_iter()
                .map(|m| crate::runtime::spec::BindMount {
                    host_path: m.host_path,
                    container_path: m.container_path,
                    read_only: m.read_only,
                    propagation: match m.propagation {
                        crate::volumes::Propagation::Private => MountPropagation::Private,
                        crate::volumes::Propagation::HostToContainer => {
                            MountPropagation::HostToContainer
                        }
                        crate::volumes::Propagation::Bidirectional => {
                            MountPropagation::Bidirectional
                        }
                    },
                })
                .collect(),
            security: security.linux,
        };
        let host_filesystem = container.rootfs == ContainerRootfs::HostFilesystem;
        let isolated = container.rootfs != ContainerRootfs::Node;
        self.slots[i].instances += 1;
        // Keep the most recent dead instance (for `lastState` and `logs --previous`) and remove
        // older ones, as the kubelet's container GC does with MaxPerPodContainer = 1.
        if let Some(prev) = self.slots[i].previous.take() {
            self.remove_instance(&prev.id);
        }
        let rt = ctx.runtime.clone();
        let started = tokio::task::spawn_blocking(move || rt.create_and_start(&container)).await;
        let id = match &started {
            Ok(Ok(s)) => s.meta.id.clone(),
            Ok(Err(e)) => e.id().to_string(),
            Err(_) => String::new(),
        };
        // The `/var/log/containers` link, once the start is done: it serves log collectors,
        // not the container, so it stays off the pod start path (the kubelet makes it between
        // CreateContainer and StartContainer).
        if !id.is_empty() {
            crate::logs::link_container_log(
                &ctx.container_logs_dir,
                self.pod_name(),
                &ns,
                &name,
                &id,
                &log_path,
            );
        }
        // The status names the image (and its imageID) once a container was created from it,
        // started or not (containerd keeps the image of a container whose start failed); one
        // never created (its sandbox failed) shows the spec's image and no imageID, as the
        // kubelet's status of a container the runtime does not have.
        if matches!(
            started,
            Ok(Ok(_)) | Ok(Err(crate::runtime::RuntimeError::StartFailed { .. }))
        ) && let Some(img) = image
        {
            self.slots[i].image = Some((img.image, img.image_id));
        }
        let started = match started {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.record_failed_start(i, &id, e.to_string());
                return false;
            }
            Err(e) => {
                self.record_failed_start(i, &id, e.to_string());
                return false;
            }
        };
        tracing::info!(pod = %self.pod_name(), container = %name, container_id = %id, pid = started.pid, attempt, "container started");
        if isolated {
            // Exec probes, hooks and `kubectl exec` enter the container (its namespaces and its
            // root): they are known now that its process runs.
            exec.isolation = ctx.runtime.exec_context(&id).ok().and_then(|c| c.isolation);
        }
        if host_filesystem {
            let image = spec.image.clone().unwrap_or_default();
            tracing::info!(pod = %self.pod_name(), container = %name, container_id = %id, image = %image,
                "container runs from the node's root filesystem in its own mount and PID namespaces (minikubelet.io/host-filesystem); its image is neither pulled nor used");
            self.event(
                EventType::Normal,
                events::HOST_FILESYSTEM,
                Some(&self.slots[i]),
                format!("Container {name} runs from the node's root filesystem in its own mount and PID namespaces; its image {image:?} is neither pulled nor used"),
            );
        }
        crate::metrics::kubelet().container_started(self.slots[i].kind != Kind::Regular);
        self.event(
            EventType::Normal,
            events::CREATED,
            Some(&self.slots[i]),
            format!("Created container: {name}"),
        );
        self.event(
            EventType::Normal,
            events::STARTED,
            Some(&self.slots[i]),
            format!("Started container {name}"),
        );
        let slot = &mut self.slots[i];
        slot.waiting = None;
        slot.ready = false;
        slot.started = spec.startup_probe.is_none();
        slot.current = Some(Instance {
            meta: started.meta,
            started_at: started.started_at,
            cgroup,
            exec,
        });
        self.watch_exit(i);
        self.start_probes(i);
        if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
            self.run_post_start(i, &hook).await;
        }
        self.slots[i].current.is_some()
    }

    fn record_failed_start(&mut self, i: usize, id: &str, message: String) {
        let now = jiff::Timestamp::now().to_string();
        let s = &mut self.slots[i];
        s.previous = s.last.take();
        s.last = Some(Finished {
            id: id.to_string(),
            exit_code: 128,
            reason: status::reasons::START_ERROR.into(),
            message: Some(message.clone()),
            started_at: None,
            finished_at: now,
        });
        self.config_error(i, status::reasons::RUN_CONTAINER_ERROR, message);
        // Look again at once: the next sync restarts it per the restart policy, through the
        // crash-loop backoff (RunContainerError now, CrashLoopBackOff from the second failure),
        // as the kubelet retries a failed StartContainer.
        self.slots[i].backoff_until = Some(tokio::time::Instant::now());
    }

    async fn run_post_start(&mut self, i: usize, hook: &LifecycleHandler) {
        let Some(inst) = self.slots[i].current.as_ref() else {
            return;
        };
        let exec = inst.exec.clone();
        let spec = self.slots[i].spec.clone();
        if let Err(e) = crate::lifecycle::handlers::run_handler(
            hook,
            &self.pod,
            &spec,
            &exec,
            POST_START_TIMEOUT,
        )
        .await
        {
            let msg = e.message();
            self.event(
                EventType::Warning,
                events::FAILED_POST_START_HOOK,
                Some(&self.slots[i]),
                msg.clone(),
            );
            let grace = self.grace_seconds();
            self.begin_stop(&spec.name, grace, format!("FailedPostStartHook: {msg}"));
            self.slots[i].waiting = Some((status::reasons::POST_START_HOOK_ERROR.into(), msg));
        }
    }

    fn watch_exit(&self, i: usize) {
        let Some(inst) = &self.slots[i].current else {
            return;
        };
        let tx = self.tx.clone();
        let rt = self.ctx.runtime.clone();
        let (name, id) = (self.slots[i].spec.name.clone(), inst.meta.id.clone());
        tokio::spawn(async move {
            let exit = rt.wait(&id).await;
            let _ = tx.send(WorkerMsg::ContainerExited { name, id, exit });
        });
    }

    fn start_probes(&mut self, i: usize) {
        let Some(inst) = &self.slots[i].current else {
            return;
        };
        let spec = self.slots[i].spec.clone();
        let started_at = tokio::time::Instant::now();
        let exec = inst.exec.clone();
        let attempt = inst.meta.attempt;
        let mut handles = Vec::new();
        let started_rx = if spec.startup_probe.is_some() {
            let (tx, rx) = watch::channel(false);
            self.slots[i].started_tx = Some(tx);
            Some(rx)
        } else {
            None
        };
        let (ptx, mut prx) = tokio::sync::mpsc::channel::<prober::ProbeUpdate>(16);
        for (kind, probe) in [
            (ProbeType::Startup, spec.startup_probe.clone()),
            (ProbeType::Liveness, spec.liveness_probe.clone()),
            (ProbeType::Readiness, spec.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            let gate = if kind == ProbeType::Startup {
                None
            } else {
                started_rx.clone()
            };
            let worker = prober::ProbeWorkerSpec {
                pod: format_pod(&self.pod),
                pod_ref: crate::stats::types::PodReference::of(&self.pod),
                kind,
                probe,
                container: spec.clone(),
                instance: attempt,
                exec: exec.clone(),
                started_at,
            };
            handles.push(prober::spawn_probe_worker(worker, ptx.clone(), gate));
        }
        if handles.is_empty() {
            self.slots[i].ready = spec.readiness_probe.is_none();
            return;
        }
        if spec.readiness_probe.is_none() {
            self.slots[i].ready = true;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(u) = prx.recv().await {
                if tx.send(WorkerMsg::Probe(u)).is_err() {
                    break;
                }
            }
        });
        self.slots[i].probes = handles;
    }

    /// The runtime reported that an instance exited (the PLEG's event): record how it ended.
    pub(super) fn on_exit(&mut self, name: &str, id: &str, exit: Exit) {
        let Some(i) = self.slots.iter().position(|s| s.spec.name == name) else {
            return;
        };
        if self.slots[i].current.as_ref().map(|c| c.meta.id.as_str()) != Some(id) {
            return;
        }
        let Some(inst) = self.slots[i].current.take() else {
            return;
        };
        let finished = self.finish(&inst.meta, &exit, Some(&inst.started_at));
        tracing::info!(pod = %self.pod_name(), container = %name, container_id = %id, exit_code = finished.exit_code, reason = %finished.reason, "container exited");
        let s = &mut self.slots[i];
        s.stop_probes();
        s.ready = false;
        s.started = false;
        s.previous = s.last.take();
        s.last = Some(finished);
        if let Err(e) = self.ctx.cm.destroy(&inst.cgroup) {
            tracing::warn!(pod = %self.pod_name(), cgroup = %inst.cgroup, error = %e, "remove container cgroup");
        }
    }

    fn finish(&self, meta: &ContainerMeta, exit: &Exit, started_at: Option<&String>) -> Finished {
        let oom = exit.oom_kill_count > 0;
        let exit: Option<&ExitStatus> = exit.status.as_ref();
        match exit {
            Some(e) => Finished {
                id: meta.id.clone(),
                exit_code: e.exit_code,
                reason: if e.start_error.is_some() {
                    status::reasons::START_ERROR.into()
                } else if oom {
                    status::reasons::OOM_KILLED.into()
                } else if e.exit_code == 0 {
                    status::reasons::COMPLETED.into()
                } else {
                    status::reasons::ERROR.into()
                },
                message: e.start_error.clone(),
                started_at: e.started_at.clone().or_else(|| started_at.cloned()),
                finished_at: e.finished_at.clone(),
            },
            None => Finished {
                id: meta.id.clone(),
                exit_code: 137,
                reason: status::reasons::CONTAINER_STATUS_UNKNOWN.into(),
                message: Some(
                    "The container could not be located when the pod was terminated".into(),
                ),
                started_at: started_at.cloned(),
                finished_at: jiff::Timestamp::now().to_string(),
            },
        }
    }

    pub(super) fn remove_instance(&self, id: &str) {
        if let Some(meta) = self.ctx.runtime.remove(id) {
            crate::logs::remove_container_links(&self.ctx.container_logs_dir, &meta.log_path);
        }
    }

    /// Take over the containers a previous agent left for this pod: running ones are watched
    /// again (same processes, same pids), exits that happened meanwhile are recorded.
    pub(super) async fn adopt(&mut self, mut records: Vec<ContainerRecord>) {
        records.sort_by_key(|r| r.meta.attempt);
        for rec in records {
            let Some(i) = self
                .slots
                .iter()
                .position(|s| s.spec.name == rec.meta.container_name)
            else {
                self.ctx.runtime.remove(&rec.meta.id);
                continue;
            };
            let Ok(cgroup) = CgroupName::new(rec.meta.cgroup.iter().map(String::as_str)) else {
                self.ctx.runtime.remove(&rec.meta.id);
                continue;
            };
            self.slots[i].instances = self.slots[i].instances.max(rec.meta.attempt + 1);
            // The image the instance runs from, as recorded at create: the status keeps
            // `image` and `imageID` across a restart of the agent.
            if !rec.meta.image_id.is_empty() {
                self.slots[i].image = Some((rec.meta.image.clone(), rec.meta.image_id.clone()));
            }
            if rec.is_running() {
                let Some(state) = rec.state.clone() else {
                    continue;
                };
                tracing::info!(pod = %self.pod_name(), container = %rec.meta.container_name, pid = state.pid, "re-adopted running container");
                let spec = self.slots[i].spec.clone();
                let envs =
                    env::make_environment(&self.pod, &spec, &self.node_env()).unwrap_or_default();
                let procs = self.ctx.cm.container_join_files(&cgroup);
                // An isolated container is entered by its running process's namespaces, with
                // the process it was started with (for an image container: the image's env,
                // working dir and user merged with the spec), as the runtime recorded it.
                let exec = match self.ctx.runtime.exec_context(&rec.meta.id) {
                    Ok(c) if c.isolation.is_some() => c,
                    _ => exec_context(&self.pod, &spec, envs, procs, &self.ctx),
                };
                self.slots[i].current = Some(Instance {
                    meta: rec.meta.clone(),
                    started_at: state.started_at,
                    cgroup,
                    exec,
                });
                self.slots[i].started = spec.startup_probe.is_none();
                self.watch_exit(i);
                self.start_probes(i);
            } else {
                // Exited already: the wait returns at once, with the exit record and OOM kills.
                let exit = self.ctx.runtime.wait(&rec.meta.id).await;
                let started_at = rec.state.as_ref().map(|s| &s.started_at);
                let f = self.finish(&rec.meta, &exit, started_at);
                tracing::info!(pod = %self.pod_name(), container = %rec.meta.container_name, exit_code = f.exit_code, reason = %f.reason, "recorded exit that happened while the agent was down");
                let _ = self.ctx.cm.destroy(&cgroup);
                let s = &mut self.slots[i];
                if let Some(old) = s.previous.take() {
                    self.remove_instance(&old.id);
                }
                let s = &mut self.slots[i];
                s.previous = s.last.take();
                s.last = Some(f);
            }
        }
    }

    /// The pod's status as the kubelet generates it (`generateAPIPodStatus`).
    pub(super) fn build_status(&self) -> PodStatus {
        let default_waiting = status::default_waiting_state(&self.pod);
        let mut init = Vec::new();
        let mut regular = Vec::new();
        for s in &self.slots {
            let st = s.status(&default_waiting);
            if s.kind == Kind::Regular {
                regular.push(st)
            } else {
                init.push(st)
            }
        }
        let terminal = self.terminating.is_some() && self.all_stopped();
        let mut phase = status::phase::get_phase(&self.pod, &init, &regular, terminal);
        if self.failed {
            phase = "Failed".into();
        }
        let (mut reason, mut message) = (None, None);
        if let Some((p, r, m)) = self
            .terminating
            .as_ref()
            .and_then(|t| t.final_status.clone())
        {
            phase = p;
            reason = Some(r);
            message = Some(m);
        }
        if let Some(old) = self.old_status.as_ref().and_then(|s| s.phase.clone()) {
            phase = status::phase::next_phase(&old, &phase);
        }
        let conditions = status::conditions::generate_conditions(
            &self.pod,
            &init,
            &regular,
            &phase,
            true,
            self.old_status.as_ref(),
            jiff::Timestamp::now(),
        );
        let mut conditions = conditions;
        let disruption = self
            .terminating
            .as_ref()
            .is_some_and(|t| t.disruption_target);
        if let Some(m) = message.as_ref().filter(|_| disruption) {
            // `evictPod`: the DisruptionTarget condition of a pod the kubelet terminates.
            conditions.retain(|c| c.type_ != "DisruptionTarget");
            let since = self
                .old_status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(jiff::Timestamp::now()));
            conditions.push(k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("TerminationByKubelet".into()),
                message: Some(m.clone()),
                last_transition_time: Some(since),
                ..Default::default()
            });
        }
        let host_ip = self.ctx.node.host_ip.clone();
        // The sandbox's IPs, else (the node's network) the node's.
        let pod_ips = if self.pod_ips.is_empty() {
            vec![host_ip.clone()]
        } else {
            self.pod_ips.clone()
        };
        PodStatus {
            phase: Some(phase),
            reason,
            message,
            conditions: Some(conditions),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
                ip: host_ip.clone(),
            }]),
            pod_ip: pod_ips.first().cloned(),
            pod_ips: Some(
                pod_ips
                    .into_iter()
                    .map(|ip| k8s_openapi::api::core::v1::PodIP { ip })
                    .collect(),
            ),
            start_time: Some(Time(self.start_time)),
            qos_class: Some(qos_class(&self.pod).as_str().to_string()),
            init_container_statuses: (!init.is_empty()).then_some(init),
            container_statuses: Some(regular),
            ..Default::default()
        }
    }
}

/// A stop of one container instance, run in its own task (`killContainer`).
pub(super) struct StopJob {
    pub pod: Arc<Pod>,
    pub ctx: Arc<PodContext>,
    pub spec: Container,
    pub field_path: String,
    /// The runtime's ID of the instance to stop.
    pub container_id: String,
    pub exec: ExecContext,
    pub grace: Duration,
    pub pre_stop: Option<LifecycleHandler>,
    /// Its place in the pod's termination order, when the pod has sidecars.
    pub order: Option<TerminationTurn>,
}

/// One container's place in a pod's termination order (`kuberuntime_termination_order.go`):
/// a sidecar waits, after its preStop and within its grace period, for every main container
/// and for the next sidecar declared after it; everyone says when it has terminated.
#[derive(Default)]
pub(super) struct TerminationTurn {
    /// Containers that must have terminated first (`true`, or the sender gone, means done).
    pub after: Vec<watch::Receiver<bool>>,
    /// Set to `true` once this container has terminated.
    pub done: Option<watch::Sender<bool>>,
}

impl TerminationTurn {
    /// The turns of the running containers `running` of a pod with init containers `init`
    /// (spec order) and main containers `main`; `None` when the pod has no sidecar, whose
    /// containers all stop at once.
    pub fn plan(
        init: &[(String, bool)],
        main: &[String],
        running: &[String],
    ) -> Option<HashMap<String, TerminationTurn>> {
        if !init.iter().any(|(_, sidecar)| *sidecar) {
            return None;
        }
        let mut turns: HashMap<String, TerminationTurn> = HashMap::new();
        let done = |name: &str, turns: &mut HashMap<String, TerminationTurn>| {
            // A container that is not running has terminated already: nothing to wait for.
            let (tx, rx) = watch::channel(!running.iter().any(|r| r == name));
            turns.entry(name.to_string()).or_default().done = Some(tx);
            rx
        };
        let mains: Vec<_> = main.iter().map(|m| done(m, &mut turns)).collect();
        let mut later_sidecar: Option<watch::Receiver<bool>> = None;
        for (name, sidecar) in init.iter().rev() {
            let rx = done(name, &mut turns);
            if *sidecar {
                let turn = turns.entry(name.clone()).or_default();
                turn.after.extend(mains.iter().cloned());
                turn.after.extend(later_sidecar.take());
                later_sidecar = Some(rx);
            }
        }
        Some(turns)
    }

    /// Wait until every container this one waits for has terminated, at most `limit`.
    async fn wait(&mut self, limit: Duration) {
        let all = async {
            for rx in &mut self.after {
                // Err: the sender is gone, which happens only once its stop job ended.
                let _ = rx.wait_for(|done| *done).await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }
}

impl StopJob {
    pub async fn run(mut self) {
        self.stop().await;
        if let Some(tx) = self.order.as_ref().and_then(|t| t.done.as_ref()) {
            tx.send_replace(true);
        }
    }

    async fn stop(&mut self) {
        let name = self.spec.name.clone();
        let pod_name = self.pod.metadata.name.clone().unwrap_or_default();
        let begin = tokio::time::Instant::now();
        if let Some(hook) = &self.pre_stop {
            // A preStop that overruns the grace period is abandoned, not killed (the kubelet's rule).
            let run = crate::lifecycle::handlers::run_handler(
                hook, &self.pod, &self.spec, &self.exec, self.grace,
            );
            match tokio::time::timeout(self.grace, run).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let mut obj = crate::events::ObjectRef::pod(&self.pod);
                    obj.field_path = Some(self.field_path.clone());
                    self.ctx.recorder.event(
                        obj,
                        EventType::Warning,
                        events::FAILED_PRE_STOP_HOOK,
                        e.message(),
                    );
                }
                Err(_) => {
                    tracing::info!(pod = %pod_name, container = %name, "preStop hook did not finish within the grace period")
                }
            }
        }
        if let Some(turn) = &mut self.order
            && !turn.after.is_empty()
        {
            let left = self.grace.saturating_sub(begin.elapsed());
            if !left.is_zero() {
                tracing::debug!(pod = %pod_name, container = %name, "waiting for the main containers and later sidecars to terminate");
                turn.wait(left).await;
            }
        }
        let remaining = self.grace.saturating_sub(begin.elapsed()).max(MIN_GRACE);
        tracing::debug!(pod = %pod_name, container = %name, container_id = %self.container_id, grace = ?remaining, "stopping container");
        self.ctx.runtime.stop(&self.container_id, remaining).await;
    }
}

/// The context a container's processes run in (its own, its exec probes', its hooks'): its
/// environment, working directory (`/` when unset, an image's default), user and groups, and
/// its cgroup and its `oom_score_adj`.
fn exec_context(
    pod: &Pod,
    spec: &Container,
    env: Vec<(String, String)>,
    cgroup_procs: Vec<std::path::PathBuf>,
    ctx: &PodContext,
) -> ExecContext {
    let (uid, gid, supplemental_groups) = security(pod, spec);
    let dir = spec.working_dir.clone().filter(|w| !w.is_empty());
    ExecContext {
        env,
        working_dir: Some(dir.unwrap_or_else(|| "/".into()).into()),
        uid,
        gid,
        supplemental_groups,
        cgroup_procs,
        oom_score_adj: Some(
            crate::cm::qos_policy::container_oom_score_adj(pod, spec, ctx.memory_capacity)
                .max(ctx.oom_score_adj_floor),
        ),
        isolation: None,
        pod_ip: None,
    }
}

/// The user, group and supplemental groups a container runs as: container securityContext
/// over pod securityContext, the pod's `supplementalGroups` then its `fsGroup`
/// (`crate::security_context::determine_effective`).
pub(super) fn security(pod: &Pod, c: &Container) -> (Option<u32>, Option<u32>, Vec<u32>) {
    let sc = crate::security_context::determine_effective(
        pod,
        c,
        &crate::security_context::Options::default(),
    );
    let groups = sc
        .supplemental_groups
        .into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect();
    (
        sc.run_as_user.and_then(|u| u32::try_from(u).ok()),
        sc.run_as_group.and_then(|g| u32::try_from(g).ok()),
        groups,
    )
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn sidecars_stop_after_the_main_containers_in_reverse_order() {
        let init = vec![
            ("setup".to_string(), false),
            ("log".to_string(), true),
            ("proxy".to_string(), true),
        ];
        let main = names(&["app", "web"]);
        assert!(TerminationTurn::plan(&[("setup".into(), false)], &main, &main).is_none());
        // `web` is not running: nobody waits for it.
        let mut t = TerminationTurn::plan(&init, &main, &names(&["log", "proxy", "app"])).unwrap();
        assert_eq!(t["app"].after.len(), 0);
        assert_eq!(t["proxy"].after.len(), 2, "the main containers");
        assert_eq!(t["log"].after.len(), 3, "the main containers and proxy");
        let short = Duration::from_millis(50);
        let mut log = t.remove("log").unwrap();
        let mut proxy = t.remove("proxy").unwrap();
        let app = t.remove("app").unwrap();
        let blocked = |turn: &mut TerminationTurn| {
            let mut rx = turn.after.clone();
            async move {
                tokio::time::timeout(short, async {
                    for r in &mut rx {
                        let _ = r.wait_for(|d| *d).await;
                    }
                })
                .await
                .is_err()
            }
        };
        assert!(blocked(&mut proxy).await && blocked(&mut log).await);
        app.done.as_ref().unwrap().send_replace(true);
        assert!(
            !blocked(&mut proxy).await,
            "proxy goes once the main containers are gone"
        );
        assert!(blocked(&mut log).await, "log still waits for proxy");
        drop(proxy); // a stop job that ended drops its sender: done
        assert!(!blocked(&mut log).await);
        // The wait is bounded by the grace period.
        let mut stuck = TerminationTurn::plan(&init, &main, &names(&["log", "app"])).unwrap();
        let t0 = tokio::time::Instant::now();
        stuck.get_mut("log").unwrap().wait(short).await;
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
