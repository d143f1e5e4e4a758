//! Configuration: command-line flags plus an optional `KubeletConfiguration` file, merged into
//! one validated [`Config`] (flags override the file, the file overrides the defaults).
//!
//! Mirrors `cmd/kubelet/app/options` (flags and their validation), the v1beta1 defaults in
//! `pkg/kubelet/apis/config/v1beta1/defaults.go`, the checks in
//! `pkg/kubelet/apis/config/validation` and the config-file loader in
//! `pkg/kubelet/kubeletconfig/configfiles`. Error texts are the kubelet's where it has one.
pub mod features;
mod file;
mod flags;
mod labels;
pub mod swap;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

pub use crate::api::duration;
pub use features::FeatureGates;
pub use file::{API_VERSION, KIND};
pub use flags::{Flags, map_flag, parse_go_bool};
pub use swap::SwapBehavior;

use crate::api::quantity::{Format, Quantity};
use crate::eviction::thresholds::{
    Threshold, ThresholdError, effective_eviction_hard, parse_thresholds,
    update_container_fs_thresholds,
};
use duration::format_go_duration;

/// Default state directory (the kubelet uses /var/lib/kubelet; we keep out of its way).
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/minikubelet";
/// Default `clusterDomain`. Deviation: the kubelet's default is empty; kubeadm and kind set
/// `cluster.local`, and a pod's `subdomain` hosts entry needs a domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Default `resolvConf` (the kubelet's).
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Default directory for container logs (the kubelet's `podLogsDir` default).
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";
/// Default directory for the per-container log symlinks.
pub const DEFAULT_CONTAINER_LOGS_DIR: &str = "/var/log/containers";
/// Default API port (`ports.KubeletPort`).
pub const DEFAULT_PORT: u16 = 10250;
/// Default `maxPods`.
pub const DEFAULT_MAX_PODS: i32 = 110;
/// Default `containerLogMaxSize`, 10Mi.
pub const DEFAULT_CONTAINER_LOG_MAX_SIZE: i64 = 10 << 20;
/// Default `containerLogMaxFiles`.
pub const DEFAULT_CONTAINER_LOG_MAX_FILES: i32 = 5;
/// Default `imageGCHighThresholdPercent` (the kubelet's).
pub const DEFAULT_IMAGE_GC_HIGH_THRESHOLD_PERCENT: i32 = 85;
/// Default `imageGCLowThresholdPercent` (the kubelet's).
pub const DEFAULT_IMAGE_GC_LOW_THRESHOLD_PERCENT: i32 = 80;
/// Default `imageMinimumGCAge` (the kubelet's): an image just pulled is not collected before
/// its pod starts; longer keeps more unused images around under pressure.
pub const DEFAULT_IMAGE_MINIMUM_GC_AGE: Duration = Duration::from_secs(120);
/// Manifest directory relist period (kubelet default): shorter notices missed inotify events
/// sooner, at the cost of re-reading every manifest more often.
pub const DEFAULT_FILE_CHECK_FREQUENCY: Duration = Duration::from_secs(20);
/// Eviction loop period (the kubelet's `evictionMonitoringPeriod` constant): shorter reacts to
/// pressure sooner but reads cgroup and filesystem stats more often.
pub const DEFAULT_EVICTION_MONITORING_PERIOD: Duration = Duration::from_secs(10);
/// How long a pressure condition lingers after the last crossing (kubelet default): longer
/// avoids flapping conditions, shorter reports recovery sooner.
pub const DEFAULT_EVICTION_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(5 * 60);
/// Idle timeout of streaming connections (kubelet default): long enough for an interactive
/// shell left alone, short enough that abandoned streams are eventually reclaimed.
pub const DEFAULT_STREAMING_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("failed to load Kubelet config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The io error.
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON or not a map.
    #[error("failed to decode Kubelet config file {path}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Wrong or missing `apiVersion` / `kind`.
    #[error(
        "failed to decode Kubelet config file {path}: {field} {found} is not supported, expected {expected:?}"
    )]
    TypeMeta {
        /// The file.
        path: PathBuf,
        /// `apiVersion` or `kind`.
        field: &'static str,
        /// What the file has, or `missing`.
        found: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A file field of the wrong type.
    #[error("{path}: invalid value {value} for {field}: expected {expected}")]
    FileField {
        /// The file.
        path: PathBuf,
        /// The field, dotted for nested ones.
        field: String,
        /// The value as JSON.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// One or more values that fail validation; each message names field, value and what is accepted.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The eviction settings are invalid.
    #[error(transparent)]
    Eviction(#[from] ThresholdError),
    /// The hostname could not be read.
    #[error("get hostname: {0}")]
    Hostname(String),
    /// The node name came out empty.
    #[error("empty hostname is invalid")]
    EmptyHostname,
}

/// The result of [`load`]: the configuration and the warnings the caller should log.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Ignored or suspicious settings, one sentence each.
    pub warnings: Vec<String>,
}

/// Resources held back from pods (`systemReserved` / `kubeReserved`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Process ids.
    pub pids: i64,
}

/// A level of node allocatable enforcement (`enforceNodeAllocatable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeAllocatableEnforcement {
    /// Limit the `kubepods` cgroup to node allocatable.
    Pods,
    /// Limit `systemReservedCgroup` to `systemReserved`.
    SystemReserved,
    /// Limit `kubeReservedCgroup` to `kubeReserved`.
    KubeReserved,
}

impl NodeAllocatableEnforcement {
    /// The config text.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeAllocatableEnforcement::Pods => "pods",
            NodeAllocatableEnforcement::SystemReserved => "system-reserved",
            NodeAllocatableEnforcement::KubeReserved => "kube-reserved",
        }
    }
}

/// The only implemented cgroup driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// Write cgroupfs directly.
    #[default]
    Cgroupfs,
}

/// Log output format (`logging.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The config text.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logging settings (`logging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Logging {
    /// Output format.
    pub format: LogFormat,
    /// klog-style verbosity, 0..=10.
    pub verbosity: u8,
}

/// Eviction settings: the effective maps as configured, and the parsed thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Eviction {
    /// `evictionHard` with defaults applied (see `mergeDefaultEvictionSettings`).
    pub hard: BTreeMap<String, String>,
    /// `evictionSoft`.
    pub soft: BTreeMap<String, String>,
    /// `evictionSoftGracePeriod`.
    pub soft_grace_period: BTreeMap<String, String>,
    /// `evictionMinimumReclaim`.
    pub minimum_reclaim: BTreeMap<String, String>,
    /// `evictionMaxPodGracePeriod`, seconds.
    pub max_pod_grace_period: i32,
    /// `evictionPressureTransitionPeriod`.
    pub pressure_transition_period: Duration,
    /// How often the eviction manager runs (not configurable in the kubelet).
    pub monitoring_period: Duration,
    /// `mergeDefaultEvictionSettings`.
    pub merge_default_eviction_settings: bool,
    /// `kernelMemcgNotification`.
    pub kernel_memcg_notification: bool,
    /// Parsed thresholds: hard, soft, allocatable copies, containerfs copies (single filesystem).
    pub thresholds: Vec<Threshold>,
    /// `localStorageCapacityIsolation` (default true): emptyDir `sizeLimit` and
    /// `ephemeral-storage` limits are enforced by eviction.
    pub local_storage_capacity_isolation: bool,
}

/// The validated configuration of one minikubelet.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `--config` file this came from, if any.
    pub config_file: Option<PathBuf>,
    /// `staticPodPath`; `None` runs no static pods.
    pub static_pod_path: Option<PathBuf>,
    /// `fileCheckFrequency`.
    pub file_check_frequency: Duration,
    /// `--root-dir`.
    pub root_dir: PathBuf,
    /// `podLogsDir`.
    pub pod_logs_dir: PathBuf,
    /// `--container-logs-dir` (ours).
    pub container_logs_dir: PathBuf,
    /// `--hostname-override`.
    pub hostname_override: Option<String>,
    /// `clusterDNS`: nameservers of `ClusterFirst` pods; empty for none.
    pub cluster_dns: Vec<IpAddr>,
    /// `clusterDomain`; empty for none.
    pub cluster_domain: String,
    /// `resolvConf`; `None` for the empty string (pods get no node resolver).
    pub resolv_conf: Option<PathBuf>,
    /// `podCIDR`: the default bridge network's range, when no CNI config exists.
    pub pod_cidr: Option<String>,
    /// `hairpinMode`, for the default bridge network.
    pub hairpin_mode: crate::cni::HairpinMode,
    /// `--cni-conf-dir`.
    pub cni_conf_dir: PathBuf,
    /// `--cni-bin-dir`.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// `--cni-cache-dir`.
    pub cni_cache_dir: PathBuf,
    /// `--node-labels`.
    pub node_labels: BTreeMap<String, String>,
    /// `cgroupRoot` (`/` when empty and `cgroupsPerQOS`).
    pub cgroup_root: String,
    /// `cgroupsPerQOS`.
    pub cgroups_per_qos: bool,
    /// `cgroupDriver`.
    pub cgroup_driver: CgroupDriver,
    /// `failSwapOn`.
    pub fail_swap_on: bool,
    /// `seccompDefault`: `RuntimeDefault` for containers whose pod names no seccomp profile.
    pub seccomp_default: bool,
    /// `memorySwap.swapBehavior`.
    pub swap_behavior: SwapBehavior,
    /// `maxPods`.
    pub max_pods: i32,
    /// `podPidsLimit`; -1 for none.
    pub pod_pids_limit: i64,
    /// `systemReserved`.
    pub system_reserved: Reserved,
    /// `kubeReserved`.
    pub kube_reserved: Reserved,
    /// `systemReservedCgroup`.
    pub system_reserved_cgroup: String,
    /// `kubeReservedCgroup`.
    pub kube_reserved_cgroup: String,
    /// `enforceNodeAllocatable`; empty for `none`.
    pub enforce_node_allocatable: Vec<NodeAllocatableEnforcement>,
    /// `containerLogMaxSize` in bytes.
    pub container_log_max_size: i64,
    /// `containerLogMaxFiles`.
    pub container_log_max_files: i32,
    /// `imageGCHighThresholdPercent`, 0..=100 (100: no image GC by usage).
    pub image_gc_high_threshold_percent: i32,
    /// `imageGCLowThresholdPercent`, below the high threshold.
    pub image_gc_low_threshold_percent: i32,
    /// `imageMinimumGCAge`.
    pub image_minimum_gc_age: Duration,
    /// `allowedUnsafeSysctls`: names or `prefix*` patterns pods may set besides the safe set.
    pub allowed_unsafe_sysctls: Vec<String>,
    /// `address`.
    pub address: IpAddr,
    /// `port`.
    pub port: u16,
    /// `logging`.
    pub logging: Logging,
    /// Eviction settings.
    pub eviction: Eviction,
    /// `streamingConnectionIdleTimeout`.
    pub streaming_connection_idle_timeout: Duration,
    /// `tlsCertFile`.
    pub tls_cert_file: Option<PathBuf>,
    /// `tlsPrivateKeyFile`.
    pub tls_private_key_file: Option<PathBuf>,
    /// `tlsMinVersion` and `tlsCipherSuites`.
    pub tls: tls::TlsSettings,
    /// `authentication.x509.clientCAFile`.
    pub client_ca_file: Option<PathBuf>,
    /// `--token-auth-file` (the kube-apiserver's flag; ours).
    pub token_auth_file: Option<PathBuf>,
    /// `authentication.anonymous.enabled`.
    pub anonymous_auth: bool,
    /// `authorization.mode`.
    pub authorization_mode: AuthorizationMode,
    /// `authorization.policyPath` (ours): the RBAC objects.
    pub authorization_policy_path: Option<PathBuf>,
    /// `--allow-insecure-manifest-path` (ours).
    pub allow_insecure_manifest_path: bool,
    /// `featureGates` (`--feature-gates`).
    pub feature_gates: FeatureGates,
}

/// `authorization.mode` (`--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Every authenticated user may do everything.
    AlwaysAllow,
    /// The API server's RBAC, evaluated here from `authorization.policyPath`.
    Rbac,
}

impl AuthorizationMode {
    /// The name as written in flags and files.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationMode::AlwaysAllow => "AlwaysAllow",
            AuthorizationMode::Rbac => "RBAC",
        }
    }

    /// Parses a mode; `Webhook` (the kubelet's default) is refused with the fix, since there
    /// is no API server to send SubjectAccessReviews to.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "AlwaysAllow" => Ok(AuthorizationMode::AlwaysAllow),
            "RBAC" => Ok(AuthorizationMode::Rbac),
            "Webhook" => Err(
                "invalid configuration: authorization.mode (--authorization-mode) \"Webhook\" asks the API server (a SubjectAccessReview per request) and minikubelet has no API server: use RBAC, with the Roles and bindings you would give the API server in --authorization-policy-path (authorization.policyPath; docs/authorization.md), or AlwaysAllow".to_string(),
            ),
            other => Err(format!(
                "invalid configuration: authorization.mode (--authorization-mode) {other:?} is not supported: use \"RBAC\" (rules from --authorization-policy-path) or \"AlwaysAllow\""
            )),
        }
    }
}

impl std::fmt::Display for AuthorizationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings as read from one source (file or flags), before defaults and validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    static_pod_path: Option<PathBuf>,
    file_check_frequency: Option<Duration>,
    pod_logs_dir: Option<PathBuf>,
    cgroup_root: Option<String>,
    cgroups_per_qos: Option<bool>,
    cgroup_driver: Option<String>,
    fail_swap_on: Option<bool>,
    seccomp_default: Option<bool>,
    swap_behavior: Option<String>,
    max_pods: Option<i64>,
    pod_pids_limit: Option<i64>,
    system_reserved: Option<BTreeMap<String, String>>,
    kube_reserved: Option<BTreeMap<String, String>>,
    system_reserved_cgroup: Option<String>,
    kube_reserved_cgroup: Option<String>,
    enforce_node_allocatable: Option<Vec<String>>,
    container_log_max_size: Option<String>,
    container_log_max_files: Option<i64>,
    image_gc_high_threshold_percent: Option<i64>,
    image_gc_low_threshold_percent: Option<i64>,
    image_minimum_gc_age: Option<Duration>,
    allowed_unsafe_sysctls: Option<Vec<String>>,
    address: Option<String>,
    port: Option<i64>,
    eviction_hard: Option<BTreeMap<String, String>>,
    eviction_soft: Option<BTreeMap<String, String>>,
    eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    eviction_minimum_reclaim: Option<BTreeMap<String, String>>,
    eviction_max_pod_grace_period: Option<i64>,
    eviction_pressure_transition_period: Option<Duration>,
    eviction_monitoring_period: Option<Duration>,
    merge_default_eviction_settings: Option<bool>,
    kernel_memcg_notification: Option<bool>,
    streaming_connection_idle_timeout: Option<Duration>,
    tls_cert_file: Option<PathBuf>,
    tls_private_key_file: Option<PathBuf>,
    tls_min_version: Option<String>,
    tls_cipher_suites: Option<Vec<String>>,
    client_ca_file: Option<PathBuf>,
    token_auth_file: Option<PathBuf>,
    anonymous_auth: Option<bool>,
    authorization_mode: Option<String>,
    authorization_policy_path: Option<PathBuf>,
    logging_format: Option<String>,
    logging_verbosity: Option<i64>,
    /// Config file only, as in the kubelet (no flag).
    local_storage_capacity_isolation: Option<bool>,
    cluster_dns: Option<Vec<String>>,
    cluster_domain: Option<String>,
    resolv_conf: Option<String>,
    pod_cidr: Option<String>,
    hairpin_mode: Option<String>,
    feature_gates: Option<BTreeMap<String, bool>>,
}

impl Settings {
    fn from_flags(f: &Flags) -> Self {
        Settings {
            static_pod_path: f.pod_manifest_path.clone(),
            file_check_frequency: f.file_check_frequency,
            pod_logs_dir: f.pod_logs_dir.clone(),
            cgroup_root: f.cgroup_root.clone(),
            cgroups_per_qos: f.cgroups_per_qos,
            cgroup_driver: f.cgroup_driver.clone(),
            fail_swap_on: f.fail_swap_on,
            seccomp_default: f.seccomp_default,
            swap_behavior: None,
            max_pods: f.max_pods,
            pod_pids_limit: f.pod_max_pids,
            system_reserved: f.system_reserved.clone(),
            kube_reserved: f.kube_reserved.clone(),
            system_reserved_cgroup: f.system_reserved_cgroup.clone(),
            kube_reserved_cgroup: f.kube_reserved_cgroup.clone(),
            enforce_node_allocatable: f.enforce_node_allocatable.as_deref().map(split_list),
            container_log_max_size: f.container_log_max_size.clone(),
            container_log_max_files: f.container_log_max_files,
            image_gc_high_threshold_percent: f.image_gc_high_threshold,
            image_gc_low_threshold_percent: f.image_gc_low_threshold,
            image_minimum_gc_age: f.minimum_image_ttl_duration,
            allowed_unsafe_sysctls: f.allowed_unsafe_sysctls.as_deref().map(split_list),
            address: f.address.map(|a| a.to_string()),
            port: f.port,
            eviction_hard: f.eviction_hard.clone(),
            eviction_soft: f.eviction_soft.clone(),
            eviction_soft_grace_period: f.eviction_soft_grace_period.clone(),
            eviction_minimum_reclaim: f.eviction_minimum_reclaim.clone(),
            eviction_max_pod_grace_period: f.eviction_max_pod_grace_period,
            eviction_pressure_transition_period: f.eviction_pressure_transition_period,
            eviction_monitoring_period: f.eviction_monitoring_period,
            merge_default_eviction_settings: None,
            kernel_memcg_notification: f.kernel_memcg_notification,
            streaming_connection_idle_timeout: f.streaming_connection_idle_timeout,
            tls_cert_file: f.tls_cert_file.clone(),
            tls_private_key_file: f.tls_private_key_file.clone(),
            tls_min_version: f.tls_min_version.clone(),
            tls_cipher_suites: f.tls_cipher_suites.as_deref().map(split_list),
            client_ca_file: f.client_ca_file.clone(),
            token_auth_file: f.token_auth_file.clone(),
            anonymous_auth: f.anonymous_auth,
            authorization_mode: f.authorization_mode.clone(),
            authorization_policy_path: f.authorization_policy_path.clone(),
            logging_format: f.logging_format.clone(),
            logging_verbosity: f.v.map(i64::from),
            local_storage_capacity_isolation: None,
            cluster_dns: f.cluster_dns.as_deref().map(split_list),
            cluster_domain: f.cluster_domain.clone(),
            resolv_conf: f.resolv_conf.clone(),
            pod_cidr: f.pod_cidr.clone(),
            hairpin_mode: f.hairpin_mode.clone(),
            feature_gates: f.feature_gates.clone(),
        }
    }

    /// `self` (the flags) over `file`: every field set in `self` wins.
    fn over(self, file: Settings) -> Settings {
        Settings {
            static_pod_path: self.static_pod_path.or(file.static_pod_path),
            file_check_frequency: self.file_check_frequency.or(file.file_check_frequency),
            pod_logs_dir: self.pod_logs_dir.or(file.pod_logs_dir),
            cgroup_root: self.cgroup_root.or(file.cgroup_root),
            cgroups_per_qos: self.cgroups_per_qos.or(file.cgroups_per_qos),
            cgroup_driver: self.cgroup_driver.or(file.cgroup_driver),
            fail_swap_on: self.fail_swap_on.or(file.fail_swap_on),
            seccomp_default: self.seccomp_default.or(file.seccomp_default),
            swap_behavior: self.swap_behavior.or(file.swap_behavior),
            max_pods: self.max_pods.or(file.max_pods),
            pod_pids_limit: self.pod_pids_limit.or(file.pod_pids_limit),
            system_reserved: self.system_reserved.or(file.system_reserved),
            kube_reserved: self.kube_reserved.or(file.kube_reserved),
            system_reserved_cgroup: self.system_reserved_cgroup.or(file.system_reserved_cgroup),
            kube_reserved_cgroup: self.kube_reserved_cgroup.or(file.kube_reserved_cgroup),
            enforce_node_allocatable: self
                .enforce_node_allocatable
                .or(file.enforce_node_allocatable),
            container_log_max_size: self.container_log_max_size.or(file.container_log_max_size),
            container_log_max_files: self
                .container_log_max_files
                .or(file.container_log_max_files),
            image_gc_high_threshold_percent: self
                .image_gc_high_threshold_percent
                .or(file.image_gc_high_threshold_percent),
            image_gc_low_threshold_percent: self
                .image_gc_low_threshold_percent
                .or(file.image_gc_low_threshold_percent),
            image_minimum_gc_age: self.image_minimum_gc_age.or(file.image_minimum_gc_age),
            allowed_unsafe_sysctls: self.allowed_unsafe_sysctls.or(file.allowed_unsafe_sysctls),
            address: self.address.or(file.address),
            port: self.port.or(file.port),
            eviction_hard: self.eviction_hard.or(file.eviction_hard),
            eviction_soft: self.eviction_soft.or(file.eviction_soft),
            eviction_soft_grace_period: self
                .eviction_soft_grace_period
                .or(file.eviction_soft_grace_period),
            eviction_minimum_reclaim: self
                .eviction_minimum_reclaim
                .or(file.eviction_minimum_reclaim),
            eviction_max_pod_grace_period: self
                .eviction_max_pod_grace_period
                .or(file.eviction_max_pod_grace_period),
            eviction_pressure_transition_period: self
                .eviction_pressure_transition_period
                .or(file.eviction_pressure_transition_period),
            eviction_monitoring_period: self
                .eviction_monitoring_period
                .or(file.eviction_monitoring_period),
            merge_default_eviction_settings: self
                .merge_default_eviction_settings
                .or(file.merge_default_eviction_settings),
            kernel_memcg_notification: self
                .kernel_memcg_notification
                .or(file.kernel_memcg_notification),
            streaming_connection_idle_timeout: self
                .streaming_connection_idle_timeout
                .or(file.streaming_connection_idle_timeout),
            tls_cert_file: self.tls_cert_file.or(file.tls_cert_file),
            tls_private_key_file: self.tls_private_key_file.or(file.tls_private_key_file),
            tls_min_version: self.tls_min_version.or(file.tls_min_version),
            tls_cipher_suites: self.tls_cipher_suites.or(file.tls_cipher_suites),
            client_ca_file: self.client_ca_file.or(file.client_ca_file),
            token_auth_file: self.token_auth_file.or(file.token_auth_file),
            anonymous_auth: self.anonymous_auth.or(file.anonymous_auth),
            authorization_mode: self.authorization_mode.or(file.authorization_mode),
            authorization_policy_path: self
                .authorization_policy_path
                .or(file.authorization_policy_path),
            logging_format: self.logging_format.or(file.logging_format),
            logging_verbosity: self.logging_verbosity.or(file.logging_verbosity),
            local_storage_capacity_isolation: self
                .local_storage_capacity_isolation
                .or(file.local_storage_capacity_isolation),
            cluster_dns: self.cluster_dns.or(file.cluster_dns),
            cluster_domain: self.cluster_domain.or(file.cluster_domain),
            resolv_conf: self.resolv_conf.or(file.resolv_conf),
            pod_cidr: self.pod_cidr.or(file.pod_cidr),
            hairpin_mode: self.hairpin_mode.or(file.hairpin_mode),
            // Key by key, as the kubelet merges `--feature-gates` over `featureGates`.
            feature_gates: match (file.feature_gates, self.feature_gates) {
                (Some(mut f), Some(flags)) => {
                    f.extend(flags);
                    Some(f)
                }
                (f, flags) => flags.or(f),
            },
        }
    }
}

/// `a, b ,c` -> ["a","b","c"]; an empty string is an empty list (pflag `StringSlice`).
fn split_list(s: &str) -> Vec<String> {
    if s.trim().is_empty() {
        return Vec::new();
    }
    s.split(',').map(|p| p.trim().to_string()).collect()
}

/// Loads the configuration: defaults, then the `--config` file if given, then the flags; then
/// validates everything and parses the eviction thresholds. Reads no system state besides the
/// config file, so it is safe in unit tests.
pub fn load(flags: &Flags) -> Result<Loaded, ConfigError> {
    let file = flags.config.as_deref().map(file::read).transpose()?;
    load_with_file(flags, file)
}

/// [`load`] with the text of a `--config` file that was not read from disk (the fuzz target's
/// way in: `crate::fuzzing`); `path` names it in errors and anchors its relative paths.
pub(crate) fn load_text(flags: &Flags, path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let file = file::parse(path, text)?;
    load_with_file(flags, Some(file))
}

/// The rest of [`load`]: the file's settings and warnings (if any), then the flags.
fn load_with_file(
    flags: &Flags,
    file: Option<(Settings, Vec<String>)>,
) -> Result<Loaded, ConfigError> {
    let (file_settings, mut warnings) = file.unwrap_or_default();
    let s = Settings::from_flags(flags).over(file_settings);
    let mut v = Validator::default();
    let config = build(flags, s, &mut v, &mut warnings)?;
    if !v.errors.is_empty() {
        return Err(ConfigError::Invalid(v.errors));
    }
    Ok(Loaded { config, warnings })
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
}

impl Validator {
    fn err(&mut self, msg: String) {
        self.errors.push(msg);
    }
}

/// Applies defaults and validation to the merged settings.
fn build(
    flags: &Flags,
    s: Settings,
    v: &mut Validator,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    // Paths.
    let root_dir = flags
        .root_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT_DIR));
    check_dir(v, "--root-dir", &root_dir);
    let pod_logs_dir = s
        .pod_logs_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POD_LOGS_DIR));
    check_pod_logs_dir(v, &pod_logs_dir);
    let container_logs_dir = flags
        .container_logs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTAINER_LOGS_DIR));
    check_dir(v, "--container-logs-dir", &container_logs_dir);
    let static_pod_path = s.static_pod_path.filter(|p| !p.as_os_str().is_empty());

    // Node identity.
    let hostname_override = flags.hostname_override.clone().filter(|h| !h.is_empty());
    let node_labels = flags.node_labels.clone().unwrap_or_default();
    if let Err(e) = labels::validate_node_labels(&node_labels) {
        v.err(e);
    }

    // Pod DNS (`pkg/kubelet/network/dns`).
    let mut cluster_dns = Vec::new();
    for ip in s.cluster_dns.iter().flatten() {
        match ip.parse::<IpAddr>() {
            Ok(a) => cluster_dns.push(a),
            Err(_) => v.err(format!(
                "invalid configuration: clusterDNS (--cluster-dns) {ip} must be a valid IP address"
            )),
        }
    }
    let cluster_domain = s
        .cluster_domain
        .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string());
    let resolv_conf = match s.resolv_conf {
        None => Some(PathBuf::from(DEFAULT_RESOLV_CONF)),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
    };

    // Pod network.
    let pod_cidr = s.pod_cidr.clone();
    if let Some(c) = &pod_cidr
        && let Err(e) = crate::cni::default_net::parse_pod_cidr(c)
    {
        v.err(format!(
            "invalid configuration: podCIDR (--pod-cidr) {c:?}: {e}"
        ));
    }
    let hairpin_mode = match s.hairpin_mode.as_deref() {
        None => crate::cni::HairpinMode::PromiscuousBridge,
        Some(m) => m.parse().unwrap_or_else(|_| {
            v.err(format!(
                "invalid configuration: hairpinMode (--hairpin-mode) {m:?}: use hairpin-veth, promiscuous-bridge or none"
            ));
            crate::cni::HairpinMode::PromiscuousBridge
        }),
    };
    let cni_conf_dir = flags
        .cni_conf_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::cni::DEFAULT_CONF_DIR));
    let cni_bin_dirs = match flags.cni_bin_dir.as_deref() {
        None | Some("") => crate::cni::DEFAULT_BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect(),
    };
    let cni_cache_dir = flags
        .cni_cache_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::cni::DEFAULT_CACHE_DIR));

    // Periods.
    let file_check_frequency = s
        .file_check_frequency
        .unwrap_or(DEFAULT_FILE_CHECK_FREQUENCY);
    if file_check_frequency.is_zero() {
        v.err(
            "invalid configuration: fileCheckFrequency (--file-check-frequency) 0s must be greater than 0"
                .to_string(),
        );
    }
    let monitoring_period = s
        .eviction_monitoring_period
        .unwrap_or(DEFAULT_EVICTION_MONITORING_PERIOD);
    if monitoring_period.is_zero() {
        v.err(
            "invalid configuration: evictionMonitoringPeriod (--eviction-monitoring-period) 0s must be greater than 0"
                .to_string(),
        );
    }

    // Cgroups.
    let cgroups_per_qos = s.cgroups_per_qos.unwrap_or(true);
    let cgroup_root = match s.cgroup_root.unwrap_or_default() {
        r if r.is_empty() && cgroups_per_qos => "/".to_string(),
        r => r,
    };
    let cgroup_driver = match s.cgroup_driver.as_deref().unwrap_or("cgroupfs") {
        "cgroupfs" => CgroupDriver::Cgroupfs,
        "systemd" => {
            v.err(
                "invalid configuration: cgroupDriver (--cgroup-driver) \"systemd\" is not implemented by minikubelet; use \"cgroupfs\""
                    .to_string(),
            );
            CgroupDriver::Cgroupfs
        }
        other => {
            v.err(format!(
                "invalid configuration: cgroupDriver (--cgroup-driver) {other:?} must be one of: \"cgroupfs\" (\"systemd\" is not implemented)"
            ));
            CgroupDriver::Cgroupfs
        }
    };

    // Swap.
    let fail_swap_on = s.fail_swap_on.unwrap_or(true);
    let seccomp_default = s.seccomp_default.unwrap_or(false);
    let swap_behavior = match SwapBehavior::parse(s.swap_behavior.as_deref().unwrap_or("")) {
        Ok(b) => b,
        Err(e) => {
            v.err(e);
            SwapBehavior::Unset
        }
    };

    // Pods.
    let max_pods = s.max_pods.unwrap_or(i64::from(DEFAULT_MAX_PODS));
    let max_pods = match i32::try_from(max_pods) {
        Ok(n) if n >= 0 => n,
        _ => {
            v.err(format!(
                "invalid configuration: maxPods (--max-pods) {max_pods} must not be a negative number"
            ));
            0
        }
    };
    // The kubelet defaults nil or negative to -1 (no pod-level limit).
    let pod_pids_limit = s.pod_pids_limit.filter(|n| *n >= 0).unwrap_or(-1);

    // Node allocatable.
    let system_reserved =
        parse_reserved(v, "systemReserved (--system-reserved)", s.system_reserved);
    let kube_reserved = parse_reserved(v, "kubeReserved (--kube-reserved)", s.kube_reserved);
    let system_reserved_cgroup = s.system_reserved_cgroup.unwrap_or_default();
    let kube_reserved_cgroup = s.kube_reserved_cgroup.unwrap_or_default();
    let enforce_raw = s
        .enforce_node_allocatable
        .unwrap_or_else(|| vec!["pods".to_string()]);
    let enforce_node_allocatable = parse_enforcement(
        v,
        &enforce_raw,
        cgroups_per_qos,
        &system_reserved_cgroup,
        &kube_reserved_cgroup,
    );

    // Sysctls: only namespaced ones may be allowed (`NewAllowlist`).
    let allowed_unsafe_sysctls = s.allowed_unsafe_sysctls.unwrap_or_default();
    if let Err(e) = crate::sysctl::Allowlist::new(&allowed_unsafe_sysctls) {
        v.err(format!(
            "invalid configuration: allowedUnsafeSysctls (--allowed-unsafe-sysctls): {e}"
        ));
    }

    // Logs.
    let container_log_max_size = match s.container_log_max_size {
        None => DEFAULT_CONTAINER_LOG_MAX_SIZE,
        Some(q) => match Quantity::parse(&q).map(|x| x.value()) {
            Ok(n) if n > 0 => n,
            _ => {
                v.err(format!(
                    "invalid configuration: containerLogMaxSize (--container-log-max-size) {q:?} must be a positive quantity such as \"10Mi\""
                ));
                DEFAULT_CONTAINER_LOG_MAX_SIZE
            }
        },
    };
    let files = s
        .container_log_max_files
        .unwrap_or(i64::from(DEFAULT_CONTAINER_LOG_MAX_FILES));
    let container_log_max_files = match i32::try_from(files) {
        Ok(n) if n > 1 => n,
        _ => {
            v.err(format!(
                "invalid configuration: containerLogMaxFiles (--container-log-max-files) {files} must be greater than 1"
            ));
            DEFAULT_CONTAINER_LOG_MAX_FILES
        }
    };
    // Image GC (`ValidateKubeletConfiguration`'s checks and messages).
    let percent = |v: &mut Validator, value: Option<i64>, default: i32, field: &str, flag: &str| {
        let n = value.unwrap_or(i64::from(default));
        match i32::try_from(n) {
            Ok(p) if (0..=100).contains(&p) => p,
            _ => {
                v.err(format!(
                    "invalid configuration: {field} ({flag}) {n} must be between 0 and 100, inclusive"
                ));
                default
            }
        }
    };
    let image_gc_high_threshold_percent = percent(
        v,
        s.image_gc_high_threshold_percent,
        DEFAULT_IMAGE_GC_HIGH_THRESHOLD_PERCENT,
        "imageGCHighThresholdPercent",
        "--image-gc-high-threshold",
    );
    let image_gc_low_threshold_percent = percent(
        v,
        s.image_gc_low_threshold_percent,
        DEFAULT_IMAGE_GC_LOW_THRESHOLD_PERCENT,
        "imageGCLowThresholdPercent",
        "--image-gc-low-threshold",
    );
    if image_gc_low_threshold_percent >= image_gc_high_threshold_percent {
        v.err(format!(
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {image_gc_low_threshold_percent} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {image_gc_high_threshold_percent}"
        ));
    }
    let image_minimum_gc_age = s
        .image_minimum_gc_age
        .unwrap_or(DEFAULT_IMAGE_MINIMUM_GC_AGE);
    let logging = parse_logging(v, s.logging_format, s.logging_verbosity);

    // Serving.
    let address = match s.address {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(a) => a.parse().unwrap_or_else(|_| {
            v.err(format!(
                "invalid configuration: address (--address) {a:?} must be an IPv4 or IPv6 address"
            ));
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
    };
    let port_raw = s.port.unwrap_or(i64::from(DEFAULT_PORT));
    let port = match u16::try_from(port_raw) {
        Ok(p) if p > 0 => p,
        _ => {
            v.err(format!(
                "invalid configuration: port (--port) {port_raw} must be between 1 and 65535, inclusive"
            ));
            DEFAULT_PORT
        }
    };
    let streaming_connection_idle_timeout = s
        .streaming_connection_idle_timeout
        .unwrap_or(DEFAULT_STREAMING_CONNECTION_IDLE_TIMEOUT);
    let tls_cert_file = s.tls_cert_file.filter(|p| !p.as_os_str().is_empty());
    let tls_private_key_file = s.tls_private_key_file.filter(|p| !p.as_os_str().is_empty());
    if tls_cert_file.is_some() != tls_private_key_file.is_some() {
        v.err(
            "invalid configuration: tlsCertFile (--tls-cert-file) and tlsPrivateKeyFile (--tls-private-key-file) must be set together"
                .to_string(),
        );
    }
    let tls = tls::parse(
        s.tls_min_version.as_deref().unwrap_or(""),
        s.tls_cipher_suites.as_deref().unwrap_or(&[]),
        warnings,
    )
    .unwrap_or_else(|e| {
        v.err(e);
        tls::TlsSettings::default()
    });
    let client_ca_file = s.client_ca_file.filter(|p| !p.as_os_str().is_empty());
    let token_auth_file = s.token_auth_file.filter(|p| !p.as_os_str().is_empty());
    let authorization_mode = match s.authorization_mode.as_deref() {
        None | Some("") => AuthorizationMode::Rbac,
        Some(m) => AuthorizationMode::parse(m).unwrap_or_else(|e| {
            v.err(e);
            AuthorizationMode::Rbac
        }),
    };
    let authorization_policy_path = s
        .authorization_policy_path
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = &authorization_policy_path
        && authorization_mode == AuthorizationMode::AlwaysAllow
    {
        warnings.push(format!(
            "authorization.policyPath (--authorization-policy-path) {} is ignored: authorization.mode (--authorization-mode) is AlwaysAllow",
            p.display()
        ));
    }

    let feature_gates = FeatureGates::from_map(&s.feature_gates.unwrap_or_default())
        .unwrap_or_else(|e| {
            v.err(e);
            FeatureGates::default()
        });

    // Eviction.
    let max_pod_grace = s.eviction_max_pod_grace_period.unwrap_or(0);
    let max_pod_grace_period = match i32::try_from(max_pod_grace) {
        Ok(n) if n >= 0 => n,
        _ => {
            v.err(format!(
                "invalid configuration: evictionMaxPodGracePeriod (--eviction-max-pod-grace-period) {max_pod_grace} must be between 0 and 2147483647 seconds"
            ));
            0
        }
    };
    let merge = s.merge_default_eviction_settings.unwrap_or(false);
    let soft = s.eviction_soft.unwrap_or_default();
    let soft_grace_period = s.eviction_soft_grace_period.unwrap_or_default();
    let minimum_reclaim = s.eviction_minimum_reclaim.unwrap_or_default();
    let enforce_keys: Vec<&str> = enforce_node_allocatable
        .iter()
        .map(|e| e.as_str())
        .collect();
    let thresholds = parse_thresholds(
        s.eviction_hard.as_ref(),
        &soft,
        &soft_grace_period,
        &minimum_reclaim,
        &enforce_keys,
        merge,
    )?;
    // minikubelet always runs on one filesystem: containerfs follows nodefs.
    let (thresholds, fs_warnings) = update_container_fs_thresholds(thresholds, false, false);
    warnings.extend(fs_warnings);
    let eviction = Eviction {
        hard: effective_eviction_hard(s.eviction_hard.as_ref(), merge),
        soft,
        soft_grace_period,
        minimum_reclaim,
        max_pod_grace_period,
        pressure_transition_period: s
            .eviction_pressure_transition_period
            .unwrap_or(DEFAULT_EVICTION_PRESSURE_TRANSITION_PERIOD),
        monitoring_period,
        merge_default_eviction_settings: merge,
        kernel_memcg_notification: s.kernel_memcg_notification.unwrap_or(false),
        thresholds,
        local_storage_capacity_isolation: s.local_storage_capacity_isolation.unwrap_or(true),
    };

    Ok(Config {
        config_file: flags.config.clone(),
        static_pod_path,
        file_check_frequency,
        root_dir,
        pod_logs_dir,
        container_logs_dir,
        hostname_override,
        cluster_dns,
        cluster_domain,
        resolv_conf,
        pod_cidr,
        hairpin_mode,
        cni_conf_dir,
        cni_bin_dirs,
        cni_cache_dir,
        node_labels,
        cgroup_root,
        cgroups_per_qos,
        cgroup_driver,
        fail_swap_on,
        seccomp_default,
        swap_behavior,
        max_pods,
        pod_pids_limit,
        system_reserved,
        kube_reserved,
        system_reserved_cgroup,
        kube_reserved_cgroup,
        enforce_node_allocatable,
        container_log_max_size,
        container_log_max_files,
        image_gc_high_threshold_percent,
        image_gc_low_threshold_percent,
        image_minimum_gc_age,
        allowed_unsafe_sysctls,
        address,
        port,
        logging,
        eviction,
        streaming_connection_idle_timeout,
        tls_cert_file,
        tls_private_key_file,
        tls,
        client_ca_file,
        token_auth_file,
        anonymous_auth: s.anonymous_auth.unwrap_or(false),
        authorization_mode,
        authorization_policy_path,
        allow_insecure_manifest_path: flags.allow_insecure_manifest_path.unwrap_or(false),
        feature_gates,
    })
}

/// Go's `filepath.Clean(p) == p` for absolute paths.
fn is_path_clean(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    !p.ends_with('/')
        && p.split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn check_dir(v: &mut Validator, flag: &str, p: &Path) {
    if !p.is_absolute() {
        v.err(format!(
            "invalid configuration: {flag} {:?} must be an absolute path",
            p.display().to_string()
        ));
    }
}

/// The kubelet's `podLogsDir` checks.
fn check_pod_logs_dir(v: &mut Validator, p: &Path) {
    let s = p.to_string_lossy();
    if !p.is_absolute() {
        v.err(format!(
            "invalid configuration: pod logs path {s:?} must be absolute path"
        ));
    } else if !is_path_clean(&s) {
        v.err(format!(
            "invalid configuration: pod logs path {s:?} must be normalized"
        ));
    }
    if !s.is_ascii() {
        // (sic) the kubelet's text.
        v.err(format!(
            "invalid configuration: pod logs path {s:?} mut contains ASCII characters only"
        ));
    }
}

/// The kubelet's `parseResourceList` for reserved resources.
fn parse_reserved(
    v: &mut Validator,
    field: &str,
    map: Option<BTreeMap<String, String>>,
) -> Reserved {
    let mut r = Reserved::default();
    for (k, val) in map.unwrap_or_default() {
        let q = match Quantity::parse(&val) {
            Ok(q) => q,
            Err(e) => {
                v.err(format!(
                    "invalid configuration: {field}: failed to parse quantity {val:?} for {k:?} resource: {e}"
                ));
                continue;
            }
        };
        if q.is_negative() {
            v.err(format!(
                "invalid configuration: {field}: resource quantity for {k:?} cannot be negative: {val}"
            ));
            continue;
        }
        let slot = match k.as_str() {
            "cpu" => (&mut r.milli_cpu, q.milli_value()),
            "memory" => (&mut r.memory, q.value()),
            "ephemeral-storage" => (&mut r.ephemeral_storage, q.value()),
            "pid" => (&mut r.pids, q.value()),
            _ => {
                v.err(format!(
                    "invalid configuration: {field}: cannot reserve {k:?} resource; accepted resources: cpu, memory, ephemeral-storage, pid"
                ));
                continue;
            }
        };
        *slot.0 = slot.1;
    }
    r
}

/// The kubelet's `enforceNodeAllocatable` validation (without the `-compressible` variants).
fn parse_enforcement(
    v: &mut Validator,
    raw: &[String],
    cgroups_per_qos: bool,
    system_reserved_cgroup: &str,
    kube_reserved_cgroup: &str,
) -> Vec<NodeAllocatableEnforcement> {
    let mut out: Vec<NodeAllocatableEnforcement> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for val in raw {
        if seen.contains(&val.as_str()) {
            v.err(format!(
                "invalid configuration: duplicated enforcements {val:?} in enforceNodeAllocatable (--enforce-node-allocatable)"
            ));
            continue;
        }
        seen.push(val);
        let e = match val.as_str() {
            "pods" => NodeAllocatableEnforcement::Pods,
            "system-reserved" => {
                if system_reserved_cgroup.is_empty() {
                    v.err("invalid configuration: systemReservedCgroup (--system-reserved-cgroup) must be specified when \"system-reserved\" included in enforceNodeAllocatable (--enforce-node-allocatable)".to_string());
                }
                NodeAllocatableEnforcement::SystemReserved
            }
            "kube-reserved" => {
                if kube_reserved_cgroup.is_empty() {
                    v.err("invalid configuration: kubeReservedCgroup (--kube-reserved-cgroup) must be specified when \"kube-reserved\" included in enforceNodeAllocatable (--enforce-node-allocatable)".to_string());
                }
                NodeAllocatableEnforcement::KubeReserved
            }
            "none" => {
                if raw.len() > 1 {
                    v.err("invalid configuration: enforceNodeAllocatable (--enforce-node-allocatable) may not contain additional enforcements when \"none\" is specified".to_string());
                }
                continue;
            }
            other => {
                v.err(format!(
                    "invalid configuration: option {other:?} specified for enforceNodeAllocatable (--enforce-node-allocatable). Valid options are \"pods\", \"system-reserved\", \"kube-reserved\" or \"none\""
                ));
                continue;
            }
        };
        if !cgroups_per_qos {
            v.err(format!(
                "invalid configuration: cgroupsPerQOS (--cgroups-per-qos) must be set to true when {val:?} contained in enforceNodeAllocatable (--enforce-node-allocatable)"
            ));
        }
        out.push(e);
    }
    out
}

fn parse_logging(v: &mut Validator, format: Option<String>, verbosity: Option<i64>) -> Logging {
    let format = match format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            // component-base's field.NotSupported text.
            v.err(format!(
                "logging.format: Unsupported value: {other:?}: supported values: \"json\", \"text\""
            ));
            LogFormat::Text
        }
    };
    let raw = verbosity.unwrap_or(0);
    let verbosity = match u8::try_from(raw) {
        Ok(n) if n <= 10 => n,
        _ => {
            v.err(format!(
                "invalid configuration: logging.verbosity (-v) {raw} must be between 0 and 10, inclusive"
            ));
            0
        }
    };
    Logging { format, verbosity }
}

impl Config {
    /// The node name: `--hostname-override` if given, else the hostname; trimmed and lowercased
    /// like the kubelet's `nodeutil.GetHostname`.
    pub fn node_name(&self) -> Result<String, ConfigError> {
        let raw = match &self.hostname_override {
            Some(h) => h.clone(),
            None => nix::unistd::gethostname()
                .map_err(|e| ConfigError::Hostname(e.to_string()))?
                .into_string()
                .map_err(|h| ConfigError::Hostname(format!("hostname {h:?} is not UTF-8")))?,
        };
        let name = raw.trim().to_lowercase();
        if name.is_empty() {
            return Err(ConfigError::EmptyHostname);
        }
        Ok(name)
    }

    /// The `tracing` level for the configured verbosity: 0-2 info, 3-4 debug, 5+ trace
    /// (klog: V(2) is steady-state detail, V(4) debug, V(5)+ trace).
    pub fn tracing_level(&self) -> tracing::Level {
        match self.logging.verbosity {
            0..=2 => tracing::Level::INFO,
            3..=4 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        }
    }

    /// The configuration as `KubeletConfiguration`-shaped JSON (for `/configz`), including our
    /// own `evictionMonitoringPeriod`. Flag-only settings (root dir, node labels...) are absent,
    /// as in the kubelet.
    pub fn to_kubelet_configuration(&self) -> Value {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut obj = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "staticPodPath": path(&self.static_pod_path),
            "fileCheckFrequency": format_go_duration(self.file_check_frequency),
            "podLogsDir": self.pod_logs_dir.display().to_string(),
            "address": self.address.to_string(),
            "port": self.port,
            "tlsCertFile": path(&self.tls_cert_file),
            "tlsPrivateKeyFile": path(&self.tls_private_key_file),
            "tlsMinVersion": self.tls.min_version_name(),
            "tlsCipherSuites": self.tls.cipher_suite_names(),
            "authentication": {
                "x509": { "clientCAFile": path(&self.client_ca_file) },
                "anonymous": { "enabled": self.anonymous_auth },
            },
            "authorization": {
                "mode": self.authorization_mode.as_str(),
                "policyPath": path(&self.authorization_policy_path),
            },
            "streamingConnectionIdleTimeout": format_go_duration(self.streaming_connection_idle_timeout),
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": self.cgroups_per_qos,
            "cgroupDriver": "cgroupfs",
            "failSwapOn": self.fail_swap_on,
            "memorySwap": { "swapBehavior": self.swap_behavior.as_str() },
            "maxPods": self.max_pods,
            "podPidsLimit": self.pod_pids_limit,
            "systemReserved": reserved_map(&self.system_reserved),
            "kubeReserved": reserved_map(&self.kube_reserved),
            "systemReservedCgroup": self.system_reserved_cgroup,
            "kubeReservedCgroup": self.kube_reserved_cgroup,
            "enforceNodeAllocatable": self
                .enforce_node_allocatable
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            "containerLogMaxSize": format_binary(self.container_log_max_size),
            "containerLogMaxFiles": self.container_log_max_files,
            "evictionHard": self.eviction.hard,
            "evictionSoft": self.eviction.soft,
            "evictionSoftGracePeriod": self.eviction.soft_grace_period,
            "evictionMinimumReclaim": self.eviction.minimum_reclaim,
            "evictionMaxPodGracePeriod": self.eviction.max_pod_grace_period,
            "evictionPressureTransitionPeriod": format_go_duration(self.eviction.pressure_transition_period),
            "evictionMonitoringPeriod": format_go_duration(self.eviction.monitoring_period),
            "mergeDefaultEvictionSettings": self.eviction.merge_default_eviction_settings,
            "kernelMemcgNotification": self.eviction.kernel_memcg_notification,
            "localStorageCapacityIsolation": self.eviction.local_storage_capacity_isolation,
            "logging": {
                "format": self.logging.format.as_str(),
                "verbosity": self.logging.verbosity,
            },
        });
        // Drop empty optional paths, as Go's omitempty does.
        if let Some(map) = obj.as_object_mut() {
            // Pod DNS (outside the `json!` above, which is at its macro recursion limit).
            let dns: Vec<String> = self.cluster_dns.iter().map(|ip| ip.to_string()).collect();
            map.insert("clusterDNS".into(), json!(dns));
            map.insert("clusterDomain".into(), json!(self.cluster_domain));
            let resolv = self.resolv_conf.as_ref().map(|p| p.display().to_string());
            map.insert("resolvConf".into(), json!(resolv.unwrap_or_default()));
            if let Some(cidr) = &self.pod_cidr {
                map.insert("podCIDR".into(), json!(cidr));
            }
            map.insert("hairpinMode".into(), json!(self.hairpin_mode.as_str()));
            map.insert(
                "imageGCHighThresholdPercent".into(),
                json!(self.image_gc_high_threshold_percent),
            );
            map.insert(
                "imageGCLowThresholdPercent".into(),
                json!(self.image_gc_low_threshold_percent),
            );
            map.insert(
                "imageMinimumGCAge".into(),
                json!(format_go_duration(self.image_minimum_gc_age)),
            );
            map.insert("seccompDefault".into(), json!(self.seccomp_default));
            if !self.allowed_unsafe_sysctls.is_empty() {
                map.insert(
                    "allowedUnsafeSysctls".into(),
                    json!(self.allowed_unsafe_sysctls),
                );
            }
            for key in ["staticPodPath", "tlsCertFile", "tlsPrivateKeyFile"] {
                if map.get(key).and_then(Value::as_str) == Some("") {
                    map.remove(key);
                }
            }
            if self.authorization_policy_path.is_none()
                && let Some(authz) = map.get_mut("authorization").and_then(Value::as_object_mut)
            {
                authz.remove("policyPath");
            }
            if self.client_ca_file.is_none()
                && let Some(authn) = map.get_mut("authentication").and_then(Value::as_object_mut)
            {
                authn.remove("x509");
            }
        }
        obj
    }
}

fn reserved_map(r: &Reserved) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    if r.milli_cpu != 0 {
        m.insert("cpu", format_milli(r.milli_cpu));
    }
    if r.memory != 0 {
        m.insert("memory", format_binary(r.memory));
    }
    if r.ephemeral_storage != 0 {
        m.insert("ephemeral-storage", format_binary(r.ephemeral_storage));
    }
    if r.pids != 0 {
        m.insert("pid", r.pids.to_string());
    }
    m
}

impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_kubelet_configuration().serialize(serializer)
    }
}

#[cfg(test)]
mod tests;

/// A byte count in the canonical form Kubernetes prints (`10Mi`).
fn format_binary(v: i64) -> String {
    Quantity::new(v, Format::BinarySI).to_string()
}

/// A CPU amount in the canonical form Kubernetes prints (`250m`, `2`).
fn format_milli(m: i64) -> String {
    Quantity::new_milli(m, Format::DecimalSI).to_string()
}
