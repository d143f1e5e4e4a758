//! Command-line flags, named as the kubelet names them (`cmd/kubelet/app/options/options.go`).
//!
//! Every field is an `Option` so that [`super::load`] can tell an explicit flag (which overrides
//! the `--config` file) from an absent one. Flag syntax is checked here; meaning (ranges, known
//! signals, label rules) is checked in [`super::load`] so file and flag values get the same
//! validation.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{DurationError, parse_duration};
use crate::eviction::thresholds::{
    ThresholdError, parse_grace_period_flag, parse_minimum_reclaim_flag, parse_threshold_flag,
};

/// The kubelet-style flags minikubelet understands.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct Flags {
    /// Load a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) from this YAML or JSON file;
    /// flags given on the command line override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory of static pod manifests to run (staticPodPath). Files starting with "." are ignored.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,

    /// How often to re-list the manifest directory besides watching it (fileCheckFrequency) [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
    pub file_check_frequency: Option<Duration>,

    /// Directory for minikubelet's state [default: /var/lib/minikubelet].
    #[arg(long, value_name = "DIR")]
    pub root_dir: Option<PathBuf>,

    /// Directory for container logs, one subdirectory per pod (podLogsDir) [default: /var/log/pods].
    #[arg(long, value_name = "DIR")]
    pub pod_logs_dir: Option<PathBuf>,

    /// Directory for the per-container log symlinks (like /var/log/containers) [default: /var/log/containers].
    #[arg(long, value_name = "DIR")]
    pub container_logs_dir: Option<PathBuf>,

    /// Use this name as the node name instead of the hostname.
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,

    /// DNS server IPs, comma-separated, for pods with dnsPolicy ClusterFirst (clusterDNS) [default: none].
    #[arg(long, value_name = "IP,...")]
    pub cluster_dns: Option<String>,

    /// The cluster's DNS domain, searched by pods and used in their hosts file (clusterDomain) [default: cluster.local].
    #[arg(long, value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,

    /// The node's resolver file that pods' DNS starts from (resolvConf); "" for none [default: /etc/resolv.conf].
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<String>,

    /// The node's pod network, an IPv4 CIDR: with no CNI config in --cni-conf-dir, the agent writes a bridge network for it there (podCIDR) [default: none: pods keep the node's network].
    #[arg(long, value_name = "CIDR")]
    pub pod_cidr: Option<String>,

    /// How a pod reaches itself through a service or hostPort on the default bridge network: hairpin-veth, promiscuous-bridge or none (hairpinMode) [default: promiscuous-bridge].
    #[arg(long, value_name = "MODE")]
    pub hairpin_mode: Option<String>,

    /// Where CNI network configs are read; the first file in lexical order is the pod network [default: /etc/cni/net.d].
    #[arg(long, value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,

    /// Comma-separated directories of CNI plugin binaries [default: /opt/cni/bin,/usr/lib/cni].
    #[arg(long, value_name = "DIR,...")]
    pub cni_bin_dir: Option<String>,

    /// Where CNI results are cached, so that a pod's network is torn down after a restart [default: /var/lib/cni].
    #[arg(long, value_name = "DIR")]
    pub cni_cache_dir: Option<PathBuf>,

    /// Labels for the node, key=value pairs separated by commas.
    #[arg(long, value_name = "K=V,...", value_parser = map_flag)]
    pub node_labels: Option<BTreeMap<String, String>>,

    /// Root cgroup for pods (cgroupRoot) [default: "" = "/" with --cgroups-per-qos].
    #[arg(long, value_name = "CGROUP")]
    pub cgroup_root: Option<String>,

    /// Create the QoS cgroup hierarchy (cgroupsPerQOS) [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub cgroups_per_qos: Option<bool>,

    /// Cgroup driver (cgroupDriver); only "cgroupfs" is implemented [default: cgroupfs].
    #[arg(long, value_name = "DRIVER")]
    pub cgroup_driver: Option<String>,

    /// Refuse to start when swap is on (failSwapOn) [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub fail_swap_on: Option<bool>,

    /// Give containers whose pod names no seccomp profile the runtime's default, RuntimeDefault, instead of Unconfined (seccompDefault) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub seccomp_default: Option<bool>,

    /// Maximum number of pods on this node (maxPods) [default: 110].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_pods: Option<i64>,

    /// Maximum number of processes per pod, -1 for no pod-level limit (podPidsLimit) [default: -1].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pod_max_pids: Option<i64>,

    /// Resources reserved for the OS (systemReserved), e.g. cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000.
    #[arg(long, value_name = "RESOURCE=QUANTITY,...", value_parser = map_flag)]
    pub system_reserved: Option<BTreeMap<String, String>>,

    /// Resources reserved for Kubernetes daemons (kubeReserved), same syntax as --system-reserved.
    #[arg(long, value_name = "RESOURCE=QUANTITY,...", value_parser = map_flag)]
    pub kube_reserved: Option<BTreeMap<String, String>>,

    /// Cgroup that enforces --system-reserved (systemReservedCgroup); needed for "system-reserved" enforcement.
    #[arg(long, value_name = "CGROUP")]
    pub system_reserved_cgroup: Option<String>,

    /// Cgroup that enforces --kube-reserved (kubeReservedCgroup); needed for "kube-reserved" enforcement.
    #[arg(long, value_name = "CGROUP")]
    pub kube_reserved_cgroup: Option<String>,

    /// Comma-separated node allocatable enforcement: pods, system-reserved, kube-reserved or none [default: pods].
    #[arg(long, value_name = "LIST")]
    pub enforce_node_allocatable: Option<String>,

    /// Rotate a container log when it reaches this size (containerLogMaxSize) [default: 10Mi].
    #[arg(long, value_name = "QUANTITY")]
    pub container_log_max_size: Option<String>,

    /// Keep at most this many log files per container, at least 2 (containerLogMaxFiles) [default: 5].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub container_log_max_files: Option<i64>,

    /// Comma-separated unsafe sysctls (or `prefix*` patterns) pods may set besides the safe set, IPC- or network-namespaced only (allowedUnsafeSysctls) [default: none].
    #[arg(long, value_name = "LIST")]
    pub allowed_unsafe_sysctls: Option<String>,

    /// Run image garbage collection when the image filesystem is this percent full, 100 to turn it off (imageGCHighThresholdPercent) [default: 85].
    #[arg(long, value_name = "PERCENT", allow_hyphen_values = true)]
    pub image_gc_high_threshold: Option<i64>,

    /// Image garbage collection frees space down to this percent (imageGCLowThresholdPercent) [default: 80].
    #[arg(long, value_name = "PERCENT", allow_hyphen_values = true)]
    pub image_gc_low_threshold: Option<i64>,

    /// An unused image is garbage collected only once it is this old (imageMinimumGCAge) [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
    pub minimum_image_ttl_duration: Option<Duration>,

    /// IP address to serve the kubelet API on (address) [default: 127.0.0.1, unlike the kubelet's 0.0.0.0].
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,

    /// Port to serve the kubelet API on (port) [default: 10250].
    #[arg(long, value_name = "PORT", allow_hyphen_values = true)]
    pub port: Option<i64>,

    /// Log verbosity 0..10 (logging.verbosity): 0-2 info, 3-4 debug, 5+ trace [default: 0].
    #[arg(short = 'v', long = "v", value_name = "LEVEL",
          value_parser = clap::value_parser!(u8).range(0..=10))]
    pub v: Option<u8>,

    /// Log format, "text" or "json" (logging.format) [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub logging_format: Option<String>,

    /// Hard eviction thresholds (evictionHard), e.g. memory.available<100Mi,nodefs.available<10%.
    #[arg(long, value_name = "SIGNAL<VALUE,...", value_parser = threshold_flag)]
    pub eviction_hard: Option<BTreeMap<String, String>>,

    /// Soft eviction thresholds (evictionSoft); each needs a grace period.
    #[arg(long, value_name = "SIGNAL<VALUE,...", value_parser = threshold_flag)]
    pub eviction_soft: Option<BTreeMap<String, String>>,

    /// Grace periods for soft thresholds (evictionSoftGracePeriod), e.g. memory.available=1m30s.
    #[arg(long, value_name = "SIGNAL=DURATION,...", value_parser = grace_flag)]
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,

    /// Minimum amounts to reclaim once a threshold fires (evictionMinimumReclaim), e.g. memory.available=500Mi.
    #[arg(long, value_name = "SIGNAL=VALUE,...", value_parser = reclaim_flag)]
    pub eviction_minimum_reclaim: Option<BTreeMap<String, String>>,

    /// Longest termination grace period, in seconds, for soft evictions (evictionMaxPodGracePeriod) [default: 0].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub eviction_max_pod_grace_period: Option<i64>,

    /// How long a pressure condition stays after the last threshold crossing (evictionPressureTransitionPeriod) [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
    pub eviction_pressure_transition_period: Option<Duration>,

    /// How often the eviction manager checks the signals (evictionMonitoringPeriod; not a kubelet flag) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
    pub eviction_monitoring_period: Option<Duration>,

    /// Use memcg eventfd notifications for memory thresholds (kernelMemcgNotification) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub kernel_memcg_notification: Option<bool>,

    /// Close idle exec/attach/port-forward streams after this long (streamingConnectionIdleTimeout) [default: 4h].
    #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
    pub streaming_connection_idle_timeout: Option<Duration>,

    /// Serving certificate for the kubelet API (tlsCertFile).
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key for --tls-cert-file (tlsPrivateKeyFile).
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    /// Minimum TLS version of the kubelet API: VersionTLS10, VersionTLS11, VersionTLS12 or
    /// VersionTLS13 (tlsMinVersion; rustls serves 1.2 and 1.3 for the first two).
    #[arg(long, value_name = "VERSION")]
    pub tls_min_version: Option<String>,

    /// Comma-separated TLS 1.2 cipher suites, Go's names (tlsCipherSuites) [default: rustls'
    /// ECDHE AES-GCM and CHACHA20 suites].
    #[arg(long, value_name = "SUITES")]
    pub tls_cipher_suites: Option<String>,

    /// CA bundle for client certificates (authentication.x509.clientCAFile).
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Bearer tokens, one `token,user,uid,"group1,group2"` line each (the kube-apiserver's
    /// --token-auth-file; the kubelet asks the API server instead, see docs/deviations.md).
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,

    /// Serve requests without credentials as system:anonymous (authentication.anonymous.enabled)
    /// [default: false, unlike the kubelet's true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub anonymous_auth: Option<bool>,

    /// How requests are authorized: RBAC (rules from --authorization-policy-path, evaluated as
    /// the API server's RBAC does) or AlwaysAllow (authorization.mode) [default: RBAC; the
    /// kubelet's Webhook needs an API server, see docs/authorization.md].
    #[arg(long, value_name = "MODE")]
    pub authorization_mode: Option<String>,

    /// File or directory of rbac.authorization.k8s.io/v1 Roles, ClusterRoles and bindings
    /// (*.yaml, *.yml, *.json), re-read when it changes (authorization.policyPath; not a kubelet flag).
    #[arg(long, value_name = "PATH")]
    pub authorization_policy_path: Option<PathBuf>,

    /// Run manifests from a directory that users other than root can write (not a kubelet flag) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub allow_insecure_manifest_path: Option<bool>,

    /// Feature gates, Key=bool pairs separated by commas (featureGates); known: ImageRootfs
    /// (containers run from their image; on by default, =false is deprecated; docs/images.md).
    #[arg(long, value_name = "KEY=BOOL,...", value_parser = super::features::parse_flag)]
    pub feature_gates: Option<BTreeMap<String, bool>>,
}

/// Go's `strconv.ParseBool`, which the kubelet's boolean flags use.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean {s:?}; accepted values: true, false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        )),
    }
}

fn duration_flag(s: &str) -> Result<Duration, DurationError> {
    parse_duration(s)
}

/// `k=v,k2=v2` (the kubelet's `MapStringString`): pairs trimmed, the last duplicate wins.
pub fn map_flag(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for pair in s.split(',') {
        let pair = pair.trim();
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("malformed pair {pair:?}, expect string=string"));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn threshold_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_threshold_flag(s)
}

fn grace_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_grace_period_flag(s)
}

fn reclaim_flag(s: &str) -> Result<BTreeMap<String, String>, ThresholdError> {
    parse_minimum_reclaim_flag(s)
}
