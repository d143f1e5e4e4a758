//! The agent: wires the parts together and runs them.
//!
//! Mirrors `cmd/kubelet/app/server.go` `run` and `pkg/kubelet/kubelet.go` `Run`: preflight
//! (swap, cgroups), the node's cgroup tree, the runtime (re-adopting what a previous agent left
//! running), the manifest source, the pod manager with its workers, log housekeeping and the
//! HTTP server. On SIGTERM the agent exits and leaves the pods running, as the kubelet does:
//! the next agent re-adopts them. Unlike the kubelet's `Kubelet` struct, there is no god object:
//! each part owns its state and gets only what it needs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::admission::NodeInfo;
use crate::cgroup::CgroupFs;
use crate::cm::manager::{CmConfig, ContainerManager};
use crate::config::{Config, NodeAllocatableEnforcement};
use crate::events::{self, EventRecorder, EventType, ObjectRef};
use crate::eviction::thresholds::Signal;
use crate::node::{self, NodeFacts, Reservations};
use crate::pod_workers::PodManager;
use crate::runtime::env::NodeEnv;
use crate::runtime::{ContainerRuntime, ShimRuntime};
use crate::source::{self, FileSourceConfig};
use crate::status_manager::StatusManager;
use crate::worker::PodContext;

/// The name of the leaf the agent moves itself into on cgroup v2 before it enables controllers
/// for its children (the no-internal-processes rule).
pub const AGENT_LEAF: &str = "agent";

/// The kubelet's `containerLogMonitorInterval`: how often rotated logs are compressed and
/// pruned. The shims rotate at once when a file is full; this only bounds how long an extra
/// uncompressed file may exist.
const LOG_HOUSEKEEPING: Duration = Duration::from_secs(10);

/// Preflight checks that stop the agent, with the fix in the message.
pub fn preflight_swap(config: &Config) -> anyhow::Result<()> {
    let proc_root = Path::new("/proc");
    let on = crate::config::swap::swap_on(proc_root).context("read /proc/swaps")?;
    if on {
        if config.fail_swap_on {
            anyhow::bail!(
                "failed to run Kubelet: {}",
                crate::config::swap::SWAP_ON_ERROR
            );
        }
        tracing::warn!(
            "swap is on and failSwapOn is false: running anyway, as the kubelet does with --fail-swap-on=false"
        );
    }
    Ok(())
}

/// The hard threshold of `signal` in bytes against `capacity` (0 if none): the part of capacity
/// that node allocatable keeps back for eviction.
fn hard_threshold(config: &Config, signal: Signal, capacity: i64) -> i64 {
    config
        .eviction
        .thresholds
        .iter()
        .filter(|t| t.signal == signal && t.is_hard())
        .map(|t| t.value.quantity_for(capacity))
        .max()
        .unwrap_or(0)
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    crate::prober::mark_manager_start();
    // First, before anything is touched: the API can exec into every container, so an unsafe
    // address/TLS/authentication combination stops the agent (`server::auth::check_serving`).
    let security = crate::server::auth::Security::from_config(&config)?;
    preflight_swap(&config)?;
    let node_name = config.node_name()?;
    let authz = crate::server::authz::Authorizer::start(&config, &node_name)?;
    if let Some(path) = &config.static_pod_path {
        source::preflight(path, config.allow_insecure_manifest_path)?;
    }
    for dir in [
        &config.root_dir,
        &config.pod_logs_dir,
        &config.container_logs_dir,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }

    let cgroups = CgroupFs::detect()
        .context("detect the cgroup hierarchy (is /sys/fs/cgroup mounted?)")?
        .with_root(&config.cgroup_root, AGENT_LEAF)
        .with_context(|| format!("set up --cgroup-root={:?}", config.cgroup_root))?;
    let cgroups = Arc::new(cgroups);
    tracing::info!(layout = ?cgroups.layout(), cgroup_root = %config.cgroup_root, "cgroup hierarchy ready");

    let proc_root = Path::new("/proc");
    let capacity = node::capacity(proc_root, &config.root_dir, i64::from(config.max_pods));
    let reserved = node::Resources {
        milli_cpu: config.system_reserved.milli_cpu + config.kube_reserved.milli_cpu,
        memory: config.system_reserved.memory + config.kube_reserved.memory,
        ephemeral_storage: config.system_reserved.ephemeral_storage
            + config.kube_reserved.ephemeral_storage,
        pods: 0,
        pids: config.system_reserved.pids + config.kube_reserved.pids,
    };
    let reservations = Reservations {
        reserved,
        eviction_memory: hard_threshold(&config, Signal::MemoryAvailable, capacity.memory),
        eviction_nodefs: hard_threshold(
            &config,
            Signal::NodeFsAvailable,
            capacity.ephemeral_storage,
        ),
    };
    let facts = Arc::new(NodeFacts {
        name: node_name.clone(),
        labels: node::labels(&node_name, &config.node_labels),
        host_ip: node::host_ip(proc_root),
        capacity,
        allocatable: node::allocatable(&capacity, &reservations),
    });
    tracing::info!(node = %facts.name, capacity = ?facts.capacity, allocatable = ?facts.allocatable, "node resources");

    let enforce_pods = config
        .enforce_node_allocatable
        .contains(&NodeAllocatableEnforcement::Pods);
    let cm = ContainerManager::new(
        cgroups.clone(),
        CmConfig {
            cgroups_per_qos: config.cgroups_per_qos,
            pod_pids_limit: config.pod_pids_limit,
            enforce_pods,
            capacity_milli_cpu: capacity.milli_cpu,
            capacity_memory: capacity.memory,
            reserved_memory: reserved.memory,
            reserved_milli_cpu: reserved.milli_cpu,
            allocatable_pids: (reserved.pids > 0).then_some(capacity.pids - reserved.pids),
            swap_behavior: config.swap_behavior,
            swap_total: node::swap_total(proc_root).unwrap_or(0),
        },
    );
    cm.setup_node().context("create the kubepods cgroups")?;

    let recorder = EventRecorder::new(&node_name);
    recorder.event(
        ObjectRef::node(&node_name),
        EventType::Normal,
        events::STARTING,
        "Starting kubelet.".into(),
    );
    if enforce_pods {
        recorder.event(
            ObjectRef::node(&node_name),
            EventType::Normal,
            events::NODE_ALLOCATABLE_ENFORCED,
            "Updated Node Allocatable limit across pods".into(),
        );
    }

    let oom_score_adj_floor = apply_own_oom_score_adj();

    let exe = std::env::current_exe().context("find the minikubelet binary (for the shims)")?;
    let shim_exe = crate::shim::shim_exe(&exe);
    tracing::debug!(shim = %shim_exe.display(), separate = shim_exe != exe, "shim binary");
    // Isolated pods' sandboxes: pinned namespaces and the pod's hosts, hostname and resolv.conf
    // files; with a CNI network (a config in --cni-conf-dir, or one written for --pod-cidr),
    // each pod's own network namespace and IP, else the node's network and IP.
    let sandboxes = crate::sandbox::SandboxManager::new(crate::sandbox::SandboxOptions::new(
        &config.root_dir,
        // `clusterDNS`, `clusterDomain`, `resolvConf` and the node's IP.
        crate::sandbox::dns::Configurer {
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            resolv_conf: config.resolv_conf.clone(),
            node_ips: facts.host_ip.parse().into_iter().collect(),
        },
    ));
    let pod_ips: Vec<String> = Some(facts.host_ip.clone())
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect();
    let mut runtime = ShimRuntime::new(&config.root_dir, shim_exe)?
        .with_cgroups(cm.cgroups().clone())
        .with_pod_sandboxes(
            sandboxes,
            pod_ips,
            Some(crate::runtime::network::PodNetwork::new(
                &crate::runtime::network::NetworkOptions {
                    conf_dir: config.cni_conf_dir.clone(),
                    bin_dirs: config.cni_bin_dirs.clone(),
                    cache_dir: config.cni_cache_dir.clone(),
                    pod_cidr: config.pod_cidr.clone(),
                    hairpin_mode: config.hairpin_mode,
                },
            )),
        );
    // Pods that are not hostNetwork have their own network namespace: `net.*` sysctls are theirs.
    let pod_network = crate::runtime::ContainerRuntime::node_network_reason(&runtime).is_none();
    // Sandboxes of pods that survived a restart are checked and kept; namespaces no record
    // names are removed (the pods gone are removed by the pod manager's orphan cleanup).
    runtime.adopt_pod_sandboxes();
    let mut adopted: HashMap<String, Vec<crate::runtime::ContainerRecord>> = HashMap::new();
    for rec in runtime.list() {
        adopted
            .entry(rec.meta.pod_uid.clone())
            .or_default()
            .push(rec);
    }
    if !adopted.is_empty() {
        tracing::info!(
            pods = adopted.len(),
            "found containers of a previous agent; re-adopting"
        );
    }

    // After the listing above: a spare's state dir appears only when a container gets it.
    runtime.prestart_shims();
    // From here on, everything talks to the runtime through the CRI-shaped seam.
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(runtime);
    let statuses = Arc::new(StatusManager::default());
    let server_runtime = runtime.clone();
    let server_cm = cm.clone();

    crate::metrics::kubelet().set_node_name(&node_name);
    // The runtime's streaming server (containerd's `stream_server_address`): loopback only.
    let streaming = crate::server::streaming::StreamingServer::start(
        crate::server::streaming::StreamingConfig::new(config.streaming_connection_idle_timeout),
        runtime.clone(),
    )
    .await?;
    let images = node_images(&config)?;
    let image_gc = images
        .as_ref()
        .map(|i| image_gc(&config, i.store.clone(), &recorder, &node_name));
    let stats = Arc::new(
        crate::stats::StatsProvider::new(
            cm.clone(),
            runtime.clone(),
            proc_root,
            &config.root_dir,
            &config.pod_logs_dir,
            &node_name,
        )
        .with_images(images.as_ref().map(|i| i.store.clone())),
    );
    let ctx = Arc::new(PodContext {
        runtime,
        cm,
        recorder: recorder.clone(),
        statuses: statuses.clone(),
        node: NodeEnv {
            host_ip: facts.host_ip.clone(),
            pod_ip: None,
            allocatable_milli_cpu: facts.allocatable.milli_cpu,
            allocatable_memory: facts.allocatable.memory,
            allocatable_ephemeral_storage: facts.allocatable.ephemeral_storage,
        },
        memory_capacity: capacity.memory,
        oom_score_adj_floor,
        root_dir: config.root_dir.clone(),
        seccomp_default: config.seccomp_default,
        pod_logs_dir: config.pod_logs_dir.clone(),
        container_logs_dir: config.container_logs_dir.clone(),
        log_max_size: u64::try_from(config.container_log_max_size).unwrap_or(u64::MAX),
        log_max_files: u32::try_from(config.container_log_max_files).unwrap_or(2),
        backoff: Arc::default(),
        images,
    });

    let pods_rx = match &config.static_pod_path {
        Some(path) => source::spawn(
            FileSourceConfig {
                path: path.clone(),
                check_frequency: config.file_check_frequency,
                node_name: node_name.clone(),
                allow_insecure: config.allow_insecure_manifest_path,
            },
            recorder.clone(),
        ),
        None => {
            tracing::warn!("no --pod-manifest-path (staticPodPath): the agent runs no pods");
            let (tx, rx) = tokio::sync::watch::channel(Arc::new(source::PodSet {
                pods: Vec::new(),
                seen: true,
            }));
            std::mem::forget(tx);
            rx
        }
    };
    let admission_node = NodeInfo {
        name: node_name.clone(),
        labels: facts.labels.clone(),
        allocatable: crate::admission::Resources {
            milli_cpu: facts.allocatable.milli_cpu,
            memory: facts.allocatable.memory,
            ephemeral_storage: facts.allocatable.ephemeral_storage,
            pods: facts.allocatable.pods,
        },
    };
    let server_sources = config.static_pod_path.as_ref().map(|_| pods_rx.clone());
    let (requests_tx, requests_rx) = tokio::sync::mpsc::unbounded_channel();
    if !config.eviction.local_storage_capacity_isolation {
        tracing::warn!(
            "localStorageCapacityIsolation is false: emptyDir sizeLimit and ephemeral-storage limits are not enforced; unlike the kubelet, ephemeral-storage stays in the node's capacity (docs/deviations.md)"
        );
    }
    let (eviction, eviction_view) = crate::eviction::manager::EvictionManager::new(
        crate::eviction::manager::ManagerConfig {
            node_name: node_name.clone(),
            thresholds: config.eviction.thresholds.clone(),
            monitoring_period: config.eviction.monitoring_period,
            pressure_transition_period: config.eviction.pressure_transition_period,
            max_pod_grace_period: i64::from(config.eviction.max_pod_grace_period),
            proc_root: proc_root.to_path_buf(),
            root_dir: config.root_dir.clone(),
            pod_logs_dir: config.pod_logs_dir.clone(),
            enforce_pods,
            local_storage_capacity_isolation: config.eviction.local_storage_capacity_isolation,
            kernel_memcg_notification: config.eviction.kernel_memcg_notification,
            // A debugging and benchmarking switch, not a kubelet setting (docs/configuration.md).
            fast_poll: std::env::var(crate::eviction::manager::FAST_POLL_ENV)
                .map(|v| v != "off")
                .unwrap_or(true),
        },
        ctx.cm.clone(),
        ctx.runtime.clone(),
        statuses.clone(),
        recorder.clone(),
        requests_tx,
    );
    let eviction = eviction.with_image_gc(image_gc);
    let (manager, done_rx) = PodManager::new(ctx.clone(), admission_node, adopted);
    // Validated with the configuration; the safe set alone if that ever failed here.
    let sysctls = crate::sysctl::Allowlist::new(&config.allowed_unsafe_sysctls)
        .unwrap_or_default()
        .with_pod_network(pod_network);
    let manager = manager
        .with_pressure(eviction_view.conditions.clone())
        .with_sysctls(sysctls);
    tokio::spawn(manager.run(pods_rx, done_rx, requests_rx));
    tokio::spawn(eviction.run());

    tokio::spawn(log_housekeeping(
        config.pod_logs_dir.clone(),
        u32::try_from(config.container_log_max_files).unwrap_or(2),
    ));

    let addr = std::net::SocketAddr::new(config.address, config.port);
    let listener = crate::server::bind(addr).await?;
    // The admin credential every local request needs (loopback included), handed to root in
    // the 0600 kubeconfig; made once, reused on restart (`server::admin`).
    let pki_dir = config.root_dir.join("pki");
    let admin = crate::server::admin::load_or_create(&pki_dir)
        .with_context(|| format!("admin token in {}", pki_dir.display()))?;
    let kubeconfig = config.root_dir.join("kubeconfig");
    let serving_cert = match (&security.tls, &config.tls_cert_file) {
        (Some(_), Some(cert)) => {
            crate::server::tls::ca_data_for_kubeconfig(cert, config.client_ca_file.as_deref()).ok()
        }
        _ => None,
    };
    let text = crate::server::apiserver::kubeconfig(
        config.address,
        config.port,
        serving_cert.as_deref(),
        &admin.token,
    );
    // Without it root's kubectl could not get in: the agent stops rather than serve a node
    // nobody may ask.
    crate::server::admin::write_private(&kubeconfig, text.as_bytes())
        .with_context(|| format!("write kubeconfig {}", kubeconfig.display()))?;
    tracing::info!(path = %kubeconfig.display(), user = crate::server::auth::ADMIN_USER, "kubectl can use this kubeconfig (mode 0600, root only) to talk to the agent");
    let security = security.with_admin(admin);
    security.announce(addr);
    tracing::info!(address = %addr, tls = security.tls.is_some(), startup = ?started.elapsed(), "serving the kubelet API");
    sd_notify_ready();
    let system = node::system_info(proc_root, Path::new("/etc"), Path::new("/sys"));
    let state = crate::server::ServerState {
        statuses,
        node: facts,
        recorder,
        eviction: eviction_view,
        streaming,
        runtime: server_runtime,
        cm: server_cm,
        api: Arc::new(crate::server::apiserver::ApiContext::new(
            config.port,
            config.static_pod_path.clone(),
            server_sources,
            system,
        )),
        configz: Arc::new(
            serde_json::json!({ "kubeletconfig": config.to_kubelet_configuration() }),
        ),
        stats,
        authz,
    };
    crate::server::serve(listener, state, security, shutdown_signal()).await?;
    tracing::info!("shutting down; pods keep running and the next agent re-adopts them");
    Ok(())
}

/// The node's image manager and store (`<root-dir>/images`); `None` when the `ImageRootfs`
/// feature gate is turned off (containers then run as processes on the node, the old mode).
fn node_images(config: &Config) -> anyhow::Result<Option<Arc<crate::worker::image::NodeImages>>> {
    use crate::images::manager::{ImageManager, StoreImageService};
    if !config.feature_gates.image_rootfs {
        tracing::warn!(
            "feature gate ImageRootfs=false (deprecated): containers run as processes on the node's filesystem, in the node's namespaces, and images are ignored; this mode goes away in a later release (docs/deviations.md)"
        );
        return Ok(None);
    }
    let store = crate::images::Store::open(&config.root_dir)?;
    tracing::info!(store = %store.root().display(), "containers run from their images, in their pod sandbox (pods annotated minikubelet.io/host-filesystem: \"true\" from the node's filesystem)");
    let service = StoreImageService {
        store: store.clone(),
        options: crate::images::registry::PullOptions {
            root_dir: config.root_dir.clone(),
            credential_file: None,
        },
    };
    // `serializeImagePulls` is not configurable here: the kubelet's default, one at a time.
    let manager = ImageManager::new(Arc::new(service), true);
    Ok(Some(Arc::new(crate::worker::image::NodeImages {
        manager,
        store,
    })))
}

/// The image GC (`imageGCHighThresholdPercent`, `imageGCLowThresholdPercent`,
/// `imageMinimumGCAge`), its loop started every `ImageGCPeriod`.
fn image_gc(
    config: &Config,
    store: crate::images::Store,
    recorder: &EventRecorder,
    node_name: &str,
) -> Arc<crate::images::gc::ImageGc> {
    use crate::images::gc::{GcPolicy, IMAGE_GC_PERIOD, IMAGE_GC_PERIOD_ENV, ImageGc};
    let percent = |p: i32| u8::try_from(p.clamp(0, 100)).unwrap_or(100);
    let policy = GcPolicy {
        high_threshold_percent: percent(config.image_gc_high_threshold_percent),
        low_threshold_percent: percent(config.image_gc_low_threshold_percent),
        min_age: config.image_minimum_gc_age,
    };
    let period = std::env::var(IMAGE_GC_PERIOD_ENV)
        .ok()
        .and_then(|v| crate::api::duration::parse_duration(&v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(IMAGE_GC_PERIOD);
    tracing::info!(highThreshold = policy.high_threshold_percent, lowThreshold = policy.low_threshold_percent, minAge = ?policy.min_age, period = ?period, "image garbage collection");
    let gc = Arc::new(ImageGc::new(
        store,
        &config.root_dir,
        policy,
        recorder.clone(),
        node_name,
    ));
    tokio::spawn(gc.clone().run(period));
    gc
}

/// The kubelet's own `oom_score_adj` (`--oom-score-adj`, default -999), so the OOM killer
/// picks containers before the agent. The shims inherit it. Returns the lowest value a container
/// may be given: -1000 when the agent could lower its score, else its current score. Without
/// `CAP_SYS_RESOURCE` (some sandboxes, user namespaces) nobody may lower a score; the kubelet only
/// warns then, and containerd's `restrict_oom_score_adj` clamps container values the same way.
fn apply_own_oom_score_adj() -> i32 {
    const KUBELET_OOM_SCORE_ADJ: i32 = -999;
    let path = "/proc/self/oom_score_adj";
    match std::fs::write(path, KUBELET_OOM_SCORE_ADJ.to_string()) {
        Ok(()) => -1000,
        Err(e) => {
            let current = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            tracing::warn!(
                error = %e,
                oom_score_adj = current,
                "cannot lower oom_score_adj (no CAP_SYS_RESOURCE): the agent keeps {current}, and containers whose QoS class asks for less (Guaranteed -997, Burstable below {current}) get {current} instead, as containerd's restrict_oom_score_adj does"
            );
            current
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}

async fn log_housekeeping(pod_logs_dir: PathBuf, max_files: u32) {
    let mut tick = tokio::time::interval(LOG_HOUSEKEEPING);
    loop {
        tick.tick().await;
        let dir = pod_logs_dir.clone();
        let _ = tokio::task::spawn_blocking(move || crate::logs::housekeeping_all(&dir, max_files))
            .await;
    }
}

/// Tell systemd we are ready (`Type=notify`), if it is listening.
fn sd_notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = PathBuf::from(path);
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "sd_notify: socket");
            return;
        }
    };
    let msg = b"READY=1\nSTATUS=serving the kubelet API";
    let res = if let Some(abs) = path.to_str().and_then(|p| p.strip_prefix('@')) {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes())
            .and_then(|a| sock.send_to_addr(msg, &a))
    } else {
        sock.send_to(msg, &path)
    };
    if let Err(e) = res {
        tracing::warn!(error = %e, socket = %path.display(), "sd_notify READY=1 failed");
    }
}
