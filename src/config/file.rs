//! Reading a `KubeletConfiguration` file (`pkg/kubelet/kubeletconfig/configfiles`): YAML or JSON
//! into a `serde_json::Value`, type and version checks, relative paths resolved against the
//! file's directory, zero values treated as "unset" where the kubelet's defaulting does so, and
//! a warning for every field minikubelet does not use.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::duration::parse_duration;
use super::{ConfigError, Settings};

/// The only accepted `apiVersion`.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// The only accepted `kind`.
pub const KIND: &str = "KubeletConfiguration";

/// `KubeletConfiguration` fields of the real kubelet that minikubelet does not implement; they
/// are accepted with a warning so one file can serve both.
const KUBELET_FIELDS_NOT_IMPLEMENTED: &[&str] = &[
    "enableServer",
    "syncFrequency",
    "httpCheckFrequency",
    "staticPodURL",
    "staticPodURLHeader",
    "readOnlyPort",
    "rotateCertificates",
    "serverTLSBootstrap",
    "registryPullQPS",
    "registryBurst",
    "imagePullCredentialsVerificationPolicy",
    "preloadedImagesVerificationAllowlist",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "healthzPort",
    "healthzBindAddress",
    "oomScoreAdj",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMaximumGCAge",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "singleProcessOOMKill",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "runtimeRequestTimeout",
    "runOnce",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "volumePluginDir",
    "providerID",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "memoryThrottlingFactor",
    "memoryReservationPolicy",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "failCgroupV1",
    "userNamespaces",
    "podHousekeepingPeriod",
];

/// Reads and decodes `path`. Returns the settings it holds and the warnings to log.
pub(super) fn read(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Decodes the text of the file `path` (YAML or JSON). Returns the settings it holds and the
/// warnings to log.
pub(super) fn parse(path: &Path, text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("/"));
    decode(path, base, &value)
}

/// Decodes an already-parsed document; `base` is the directory relative paths resolve against.
pub(super) fn decode(
    path: &Path,
    base: &Path,
    value: &Value,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let Value::Object(obj) = value else {
        return Err(ConfigError::Decode {
            path: path.to_path_buf(),
            message: format!("expected a {KIND} object, found {}", type_name(value)),
        });
    };
    check_type_meta(path, obj, "apiVersion", API_VERSION)?;
    check_type_meta(path, obj, "kind", KIND)?;

    let mut d = Decoder {
        path,
        base,
        warnings: Vec::new(),
    };
    let mut s = Settings::default();
    for (key, v) in obj {
        if v.is_null() {
            // Go decodes null into the zero value, which defaulting then fills in.
            continue;
        }
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "staticPodPath" => s.static_pod_path = d.path_field(key, v)?,
            "fileCheckFrequency" => s.file_check_frequency = d.duration_or_default(key, v)?,
            "podLogsDir" => s.pod_logs_dir = d.path_field(key, v)?,
            "clusterDNS" => s.cluster_dns = Some(d.string_list(key, v)?),
            "clusterDomain" => s.cluster_domain = Some(d.string(key, v)?),
            "resolvConf" => s.resolv_conf = Some(d.string(key, v)?),
            "podCIDR" => s.pod_cidr = non_empty(d.string(key, v)?),
            "hairpinMode" => s.hairpin_mode = non_empty(d.string(key, v)?),
            "cgroupRoot" => s.cgroup_root = Some(d.string(key, v)?),
            "cgroupsPerQOS" => s.cgroups_per_qos = Some(d.bool(key, v)?),
            "cgroupDriver" => s.cgroup_driver = non_empty(d.string(key, v)?),
            "failSwapOn" => s.fail_swap_on = Some(d.bool(key, v)?),
            "seccompDefault" => s.seccomp_default = Some(d.bool(key, v)?),
            "maxPods" => s.max_pods = non_zero(d.int(key, v)?),
            "podPidsLimit" => s.pod_pids_limit = Some(d.int(key, v)?),
            "systemReserved" => s.system_reserved = Some(d.string_map(key, v)?),
            "kubeReserved" => s.kube_reserved = Some(d.string_map(key, v)?),
            "systemReservedCgroup" => s.system_reserved_cgroup = Some(d.string(key, v)?),
            "kubeReservedCgroup" => s.kube_reserved_cgroup = Some(d.string(key, v)?),
            "enforceNodeAllocatable" => {
                s.enforce_node_allocatable = Some(d.string_list(key, v)?);
            }
            "containerLogMaxSize" => s.container_log_max_size = non_empty(d.string(key, v)?),
            "containerLogMaxFiles" => s.container_log_max_files = Some(d.int(key, v)?),
            "imageGCHighThresholdPercent" => {
                s.image_gc_high_threshold_percent = Some(d.int(key, v)?);
            }
            "imageGCLowThresholdPercent" => {
                s.image_gc_low_threshold_percent = Some(d.int(key, v)?);
            }
            "imageMinimumGCAge" => s.image_minimum_gc_age = d.duration_or_default(key, v)?,
            "allowedUnsafeSysctls" => {
                s.allowed_unsafe_sysctls = Some(d.string_list(key, v)?);
            }
            "address" => s.address = non_empty(d.string(key, v)?),
            "port" => s.port = non_zero(d.int(key, v)?),
            "evictionHard" => s.eviction_hard = Some(d.string_map(key, v)?),
            "evictionSoft" => s.eviction_soft = Some(d.string_map(key, v)?),
            "evictionSoftGracePeriod" => s.eviction_soft_grace_period = Some(d.string_map(key, v)?),
            "evictionMinimumReclaim" => s.eviction_minimum_reclaim = Some(d.string_map(key, v)?),
            "evictionMaxPodGracePeriod" => s.eviction_max_pod_grace_period = Some(d.int(key, v)?),
            "evictionPressureTransitionPeriod" => {
                s.eviction_pressure_transition_period = d.duration_or_default(key, v)?;
            }
            "evictionMonitoringPeriod" => {
                s.eviction_monitoring_period = d.duration_or_default(key, v)?;
            }
            "mergeDefaultEvictionSettings" => {
                s.merge_default_eviction_settings = Some(d.bool(key, v)?);
            }
            "kernelMemcgNotification" => s.kernel_memcg_notification = Some(d.bool(key, v)?),
            "localStorageCapacityIsolation" => {
                s.local_storage_capacity_isolation = Some(d.bool(key, v)?);
            }
            "streamingConnectionIdleTimeout" => {
                s.streaming_connection_idle_timeout = d.duration_or_default(key, v)?;
            }
            "tlsCertFile" => s.tls_cert_file = d.path_field(key, v)?,
            "tlsPrivateKeyFile" => s.tls_private_key_file = d.path_field(key, v)?,
            "tlsMinVersion" => s.tls_min_version = Some(d.string(key, v)?),
            "tlsCipherSuites" => s.tls_cipher_suites = Some(d.string_list(key, v)?),
            "memorySwap" => {
                for (k, v) in d.object(key, v)? {
                    let field = format!("{key}.{k}");
                    match k.as_str() {
                        "swapBehavior" if !v.is_null() => {
                            s.swap_behavior = Some(d.string(&field, v)?);
                        }
                        "swapBehavior" => {}
                        _ => d.unknown(&field),
                    }
                }
            }
            "authentication" => {
                for (k, v) in d.object(key, v)? {
                    let field = format!("{key}.{k}");
                    match k.as_str() {
                        "x509" if !v.is_null() => {
                            for (k2, v2) in d.object(&field, v)? {
                                let field2 = format!("{field}.{k2}");
                                match k2.as_str() {
                                    "clientCAFile" => {
                                        s.client_ca_file = d.path_field(&field2, v2)?
                                    }
                                    _ => d.unknown(&field2),
                                }
                            }
                        }
                        "x509" => {}
                        "anonymous" if !v.is_null() => {
                            for (k2, v2) in d.object(&field, v)? {
                                let field2 = format!("{field}.{k2}");
                                match k2.as_str() {
                                    "enabled" if !v2.is_null() => {
                                        s.anonymous_auth = Some(d.bool(&field2, v2)?)
                                    }
                                    "enabled" => {}
                                    _ => d.unknown(&field2),
                                }
                            }
                        }
                        "anonymous" => {}
                        "webhook" => d.not_implemented(&field),
                        _ => d.unknown(&field),
                    }
                }
            }
            "authorization" => {
                for (k, v) in d.object(key, v)? {
                    let field = format!("{key}.{k}");
                    if v.is_null() {
                        continue;
                    }
                    match k.as_str() {
                        "mode" => s.authorization_mode = non_empty(d.string(&field, v)?),
                        "policyPath" => s.authorization_policy_path = d.path_field(&field, v)?,
                        "webhook" => d.not_implemented(&field),
                        _ => d.unknown(&field),
                    }
                }
            }
            "logging" => {
                for (k, v) in d.object(key, v)? {
                    let field = format!("{key}.{k}");
                    if v.is_null() {
                        continue;
                    }
                    match k.as_str() {
                        "format" => s.logging_format = non_empty(d.string(&field, v)?),
                        "verbosity" => s.logging_verbosity = Some(d.int(&field, v)?),
                        "flushFrequency" | "options" => d.not_implemented(&field),
                        _ => d.unknown(&field),
                    }
                }
            }
            "featureGates" => {
                let mut gates = BTreeMap::new();
                for (k, v) in d.object(key, v)? {
                    gates.insert(k.clone(), d.bool(&format!("{key}.{k}"), v)?);
                }
                s.feature_gates = Some(gates);
            }
            k if KUBELET_FIELDS_NOT_IMPLEMENTED.contains(&k) => d.not_implemented(k),
            k => d.unknown(k),
        }
    }
    Ok((s, d.warnings))
}

fn check_type_meta(
    path: &Path,
    obj: &Map<String, Value>,
    field: &'static str,
    expected: &'static str,
) -> Result<(), ConfigError> {
    match obj.get(field) {
        Some(Value::String(s)) if s == expected => Ok(()),
        found => Err(ConfigError::TypeMeta {
            path: path.to_path_buf(),
            field,
            found: found.map_or_else(|| "missing".to_string(), |v| v.to_string()),
            expected,
        }),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn non_zero(n: i64) -> Option<i64> {
    (n != 0).then_some(n)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

struct Decoder<'a> {
    path: &'a Path,
    base: &'a Path,
    warnings: Vec<String>,
}

impl Decoder<'_> {
    fn invalid(&self, field: &str, v: &Value, expected: &str) -> ConfigError {
        ConfigError::FileField {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            value: v.to_string(),
            expected: expected.to_string(),
        }
    }

    fn unknown(&mut self, field: &str) {
        self.warnings.push(format!(
            "{}: unknown field {field:?} ignored",
            self.path.display()
        ));
    }

    fn not_implemented(&mut self, field: &str) {
        self.warnings.push(format!(
            "{}: kubelet field {field:?} is not implemented by minikubelet; ignored",
            self.path.display()
        ));
    }

    fn string(&self, field: &str, v: &Value) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.invalid(field, v, "a string"))
    }

    fn bool(&self, field: &str, v: &Value) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.invalid(field, v, "true or false"))
    }

    fn int(&self, field: &str, v: &Value) -> Result<i64, ConfigError> {
        v.as_i64()
            .ok_or_else(|| self.invalid(field, v, "an integer"))
    }

    /// A Go duration string; `"0s"` counts as unset, as the kubelet's defaulting does.
    fn duration_or_default(&self, field: &str, v: &Value) -> Result<Option<Duration>, ConfigError> {
        let expected = "a duration such as \"20s\", \"1m30s\" or \"4h\"";
        let s = v.as_str().ok_or_else(|| self.invalid(field, v, expected))?;
        let d = parse_duration(s).map_err(|_| self.invalid(field, v, expected))?;
        Ok((!d.is_zero()).then_some(d))
    }

    /// A path; relative paths are taken relative to the config file's directory.
    fn path_field(&self, field: &str, v: &Value) -> Result<Option<PathBuf>, ConfigError> {
        let s = self.string(field, v)?;
        if s.is_empty() {
            return Ok(None);
        }
        let p = PathBuf::from(&s);
        Ok(Some(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }))
    }

    fn object<'v>(&self, field: &str, v: &'v Value) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object().ok_or_else(|| self.invalid(field, v, "a map"))
    }

    fn string_map(&self, field: &str, v: &Value) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (k, item) in self.object(field, v)? {
            let s = item.as_str().ok_or_else(|| {
                self.invalid(
                    &format!("{field}.{k}"),
                    item,
                    &format!("a string (quote it: \"{}\")", plain(item)),
                )
            })?;
            out.insert(k.clone(), s.to_string());
        }
        Ok(out)
    }

    fn string_list(&self, field: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
        let items = v
            .as_array()
            .ok_or_else(|| self.invalid(field, v, "a list of strings"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.invalid(field, v, "a list of strings"))
            })
            .collect()
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
