//! Unit tests for flag parsing, file loading, override order and validation messages.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::eviction::thresholds::{Operator, Signal, ThresholdValue};

#[derive(Parser, Debug)]
#[command(name = "minikubelet")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
}

fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
    let mut argv = vec!["minikubelet"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|c| c.flags)
}

fn flags(args: &[&str]) -> Flags {
    parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn load_args(args: &[&str]) -> Result<Loaded, ConfigError> {
    load(&flags(args))
}

fn err_of(args: &[&str]) -> String {
    load_args(args).expect_err("expected an error").to_string()
}

/// A config file in a temp dir; the dir lives as long as the returned guard.
fn write_config(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

const HEADER: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

fn load_file(body: &str, extra_args: &[&str]) -> Result<Loaded, ConfigError> {
    let (_dir, path) = write_config(&format!("{HEADER}{body}"));
    let mut args = vec!["--config".to_string(), path.display().to_string()];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    load(&flags(&argv))
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_without_flags_or_file() {
    let Loaded {
        config: c,
        warnings,
    } = load(&Flags::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.static_pod_path, None);
    assert_eq!(c.file_check_frequency, Duration::from_secs(20));
    assert_eq!(c.root_dir, PathBuf::from("/var/lib/minikubelet"));
    assert_eq!(c.pod_logs_dir, PathBuf::from("/var/log/pods"));
    assert_eq!(c.container_logs_dir, PathBuf::from("/var/log/containers"));
    assert_eq!(c.cgroup_root, "/");
    assert!(c.cgroups_per_qos);
    assert_eq!(c.cgroup_driver, CgroupDriver::Cgroupfs);
    assert!(c.fail_swap_on);
    assert_eq!(c.swap_behavior, SwapBehavior::Unset);
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.pod_pids_limit, -1);
    assert_eq!(c.system_reserved, Reserved::default());
    assert_eq!(
        c.enforce_node_allocatable,
        vec![NodeAllocatableEnforcement::Pods]
    );
    assert_eq!(c.container_log_max_size, 10 << 20);
    assert_eq!(c.container_log_max_files, 5);
    assert_eq!(c.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.port, 10250);
    assert_eq!(c.logging, Logging::default());
    assert_eq!(c.tracing_level(), tracing::Level::INFO);
    assert_eq!(
        c.streaming_connection_idle_timeout,
        Duration::from_secs(4 * 3600)
    );
    assert_eq!(c.eviction.monitoring_period, Duration::from_secs(10));
    assert_eq!(
        c.eviction.pressure_transition_period,
        Duration::from_secs(300)
    );
    assert_eq!(c.eviction.max_pod_grace_period, 0);
    assert!(!c.eviction.kernel_memcg_notification);
    assert!(c.eviction.local_storage_capacity_isolation);
    assert!(!c.allow_insecure_manifest_path);
    assert_eq!(
        c.eviction.hard,
        map(&[
            ("imagefs.available", "15%"),
            ("imagefs.inodesFree", "5%"),
            ("memory.available", "100Mi"),
            ("nodefs.available", "10%"),
            ("nodefs.inodesFree", "5%"),
        ])
    );
    let signals: Vec<Signal> = c.eviction.thresholds.iter().map(|t| t.signal).collect();
    assert_eq!(
        signals,
        vec![
            Signal::ImageFsAvailable,
            Signal::ImageFsInodesFree,
            Signal::MemoryAvailable,
            Signal::NodeFsAvailable,
            Signal::NodeFsInodesFree,
            // enforceNodeAllocatable defaults to [pods].
            Signal::AllocatableMemoryAvailable,
            // containerfs follows nodefs on one filesystem.
            Signal::ContainerFsAvailable,
            Signal::ContainerFsInodesFree,
        ]
    );
}

#[test]
fn flags_parse_with_kubelet_syntax() {
    let f = flags(&[
        "--pod-manifest-path=/etc/kubernetes/manifests",
        "--file-check-frequency",
        "1m30s",
        "--node-labels=role=edge, example.com/tier=gold",
        "--fail-swap-on=false",
        "--cgroups-per-qos",
        "--kernel-memcg-notification=T",
        "--max-pods=20",
        "--pod-max-pids",
        "-1",
        "--system-reserved=cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000",
        "--eviction-hard=memory.available<200Mi,nodefs.available<5%",
        "--eviction-soft=memory.available<300Mi",
        "--eviction-soft-grace-period=memory.available=1m30s",
        "--eviction-minimum-reclaim=memory.available=50Mi",
        "-v",
        "4",
        "--address=::1",
        "--port=10255",
    ]);
    assert_eq!(
        f.pod_manifest_path,
        Some(PathBuf::from("/etc/kubernetes/manifests"))
    );
    assert_eq!(f.file_check_frequency, Some(Duration::from_secs(90)));
    assert_eq!(
        f.node_labels,
        Some(map(&[("role", "edge"), ("example.com/tier", "gold")]))
    );
    assert_eq!(f.fail_swap_on, Some(false));
    assert_eq!(f.cgroups_per_qos, Some(true));
    assert_eq!(f.kernel_memcg_notification, Some(true));
    assert_eq!(f.max_pods, Some(20));
    assert_eq!(f.pod_max_pids, Some(-1));
    assert_eq!(f.v, Some(4));
    assert_eq!(f.address, Some("::1".parse().unwrap()));
    assert_eq!(
        f.eviction_hard,
        Some(map(&[
            ("memory.available", "200Mi"),
            ("nodefs.available", "5%")
        ]))
    );
    // Unset flags stay None so the file can supply them.
    assert_eq!(f.cgroup_driver, None);
    assert_eq!(f.config, None);

    let c = load(&f).unwrap().config;
    assert_eq!(
        c.system_reserved,
        Reserved {
            milli_cpu: 100,
            memory: 256 << 20,
            ephemeral_storage: 1 << 30,
            pids: 1000
        }
    );
    assert_eq!(c.logging.verbosity, 4);
    assert_eq!(c.tracing_level(), tracing::Level::DEBUG);
    assert_eq!(c.port, 10255);
    let mem: Vec<_> = c
        .eviction
        .thresholds
        .iter()
        .filter(|t| t.signal == Signal::MemoryAvailable)
        .collect();
    assert_eq!(mem.len(), 2);
    assert_eq!(mem[1].grace_period, Duration::from_secs(90));
    assert_eq!(mem[1].min_reclaim, Some(ThresholdValue::Quantity(50 << 20)));
    assert_eq!(mem[0].operator, Operator::LessThan);
}

#[test]
fn verbosity_short_and_long_forms() {
    for args in [&["-v", "5"][..], &["-v5"], &["--v=5"], &["--v", "5"]] {
        assert_eq!(flags(args).v, Some(5), "{args:?}");
    }
    assert!(parse(&["--v=11"]).is_err());
}

#[test]
fn flag_syntax_errors_come_from_clap() {
    let cases: &[(&[&str], &str)] = &[
        (&["--fail-swap-on=maybe"], "invalid boolean \"maybe\""),
        (&["--file-check-frequency=20"], "missing unit"),
        (&["--file-check-frequency=-5s"], "must not be negative"),
        (
            &["--node-labels=novalue"],
            "malformed pair \"novalue\", expect string=string",
        ),
        (
            &["--eviction-hard=memory.available<1Gi,memory.available<2Gi"],
            "found duplicate eviction threshold for signal memory.available",
        ),
        (
            &["--eviction-hard=memory.available=1Gi"],
            "invalid eviction threshold syntax",
        ),
        (&["--address=localhost"], "invalid IP address syntax"),
        (&["--max-pods=many"], "invalid digit"),
        (&["--no-such-flag"], "unexpected argument"),
    ];
    for (args, want) in cases {
        let err = parse(args).expect_err("should fail").to_string();
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn go_bools() {
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_go_bool(t), Ok(true));
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_go_bool(f), Ok(false));
    }
    assert!(parse_go_bool("yes").is_err());
}

#[test]
fn file_values_are_read_and_flags_override_them() {
    let body = r#"
staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 10s
podLogsDir: /srv/logs/pods
cgroupRoot: /minikubelet
cgroupsPerQOS: true
cgroupDriver: cgroupfs
failSwapOn: false
maxPods: 30
podPidsLimit: 512
systemReserved:
  cpu: "1"
  memory: 512Mi
kubeReserved:
  memory: 128Mi
enforceNodeAllocatable: [pods]
containerLogMaxSize: 5Mi
containerLogMaxFiles: 3
address: 0.0.0.0
port: 11250
evictionHard:
  memory.available: 300Mi
evictionSoft:
  memory.available: 500Mi
evictionSoftGracePeriod:
  memory.available: 2m
evictionMinimumReclaim:
  memory.available: 100Mi
evictionMaxPodGracePeriod: 30
evictionPressureTransitionPeriod: 1m
evictionMonitoringPeriod: 5s
kernelMemcgNotification: true
localStorageCapacityIsolation: false
memorySwap:
  swapBehavior: LimitedSwap
streamingConnectionIdleTimeout: 30m
logging:
  format: json
  verbosity: 3
"#;
    let Loaded {
        config: c,
        warnings,
    } = load_file(body, &[]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        c.static_pod_path,
        Some(PathBuf::from("/etc/kubernetes/manifests"))
    );
    assert_eq!(c.file_check_frequency, Duration::from_secs(10));
    assert_eq!(c.pod_logs_dir, PathBuf::from("/srv/logs/pods"));
    assert_eq!(c.cgroup_root, "/minikubelet");
    assert!(!c.fail_swap_on);
    assert_eq!(c.max_pods, 30);
    assert_eq!(c.pod_pids_limit, 512);
    assert_eq!(c.system_reserved.milli_cpu, 1000);
    assert_eq!(c.system_reserved.memory, 512 << 20);
    assert_eq!(c.kube_reserved.memory, 128 << 20);
    assert_eq!(c.container_log_max_size, 5 << 20);
    assert_eq!(c.container_log_max_files, 3);
    assert_eq!(c.address, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(c.port, 11250);
    assert_eq!(c.eviction.hard, map(&[("memory.available", "300Mi")]));
    assert_eq!(c.eviction.max_pod_grace_period, 30);
    assert_eq!(
        c.eviction.pressure_transition_period,
        Duration::from_secs(60)
    );
    assert_eq!(c.eviction.monitoring_period, Duration::from_secs(5));
    assert!(c.eviction.kernel_memcg_notification);
    assert!(!c.eviction.local_storage_capacity_isolation);
    assert_eq!(c.swap_behavior, SwapBehavior::LimitedSwap);
    assert_eq!(
        c.streaming_connection_idle_timeout,
        Duration::from_secs(1800)
    );
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(c.logging.verbosity, 3);
    // hard memory, soft memory, allocatable copy of the hard one.
    assert_eq!(c.eviction.thresholds.len(), 3);

    // Flags win over the file, field by field; the rest of the file stays.
    let c = load_file(
        body,
        &[
            "--max-pods=7",
            "--fail-swap-on",
            "--eviction-hard=memory.available<1Gi",
            "--logging-format=text",
            "--v=0",
            "--port=12000",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.max_pods, 7);
    assert!(c.fail_swap_on);
    assert_eq!(c.eviction.hard, map(&[("memory.available", "1Gi")]));
    assert_eq!(c.logging, Logging::default());
    assert_eq!(c.port, 12000);
    assert_eq!(c.pod_pids_limit, 512);
    assert_eq!(c.file_check_frequency, Duration::from_secs(10));
}

#[test]
fn json_files_are_accepted() {
    let (_dir, path) = write_config(
        r#"{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "maxPods": 12, "evictionHard": {"memory.available": "64Mi"}}"#,
    );
    let c = load(&Flags {
        config: Some(path),
        ..Flags::default()
    })
    .unwrap()
    .config;
    assert_eq!(c.max_pods, 12);
    assert_eq!(c.eviction.hard, map(&[("memory.available", "64Mi")]));
}

#[test]
fn zero_values_in_the_file_mean_default_like_kubelet_defaulting() {
    let c = load_file(
        "maxPods: 0\nport: 0\nfileCheckFrequency: 0s\naddress: \"\"\ncontainerLogMaxSize: \"\"\ncgroupDriver: \"\"\npodPidsLimit: -7\nstaticPodPath: \"\"\n",
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.port, 10250);
    assert_eq!(c.file_check_frequency, Duration::from_secs(20));
    assert_eq!(c.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.container_log_max_size, 10 << 20);
    assert_eq!(c.pod_pids_limit, -1);
    assert_eq!(c.static_pod_path, None);
    // But a flag of 0 is taken literally, as in the kubelet.
    assert_eq!(
        load_file("maxPods: 50\n", &["--max-pods=0"])
            .unwrap()
            .config
            .max_pods,
        0
    );
}

#[test]
fn relative_paths_in_the_file_resolve_against_its_directory() {
    let (dir, path) = write_config(&format!(
        "{HEADER}staticPodPath: manifests\ntlsCertFile: pki/kubelet.crt\ntlsPrivateKeyFile: /abs/kubelet.key\nauthentication:\n  x509:\n    clientCAFile: ca.crt\n"
    ));
    let c = load(&Flags {
        config: Some(path.clone()),
        ..Flags::default()
    })
    .unwrap()
    .config;
    assert_eq!(c.static_pod_path, Some(dir.path().join("manifests")));
    assert_eq!(c.tls_cert_file, Some(dir.path().join("pki/kubelet.crt")));
    assert_eq!(
        c.tls_private_key_file,
        Some(PathBuf::from("/abs/kubelet.key"))
    );
    assert_eq!(c.client_ca_file, Some(dir.path().join("ca.crt")));
    assert_eq!(c.config_file, Some(path));
}

#[test]
fn authentication_settings_from_file_and_flags() {
    let c = load_file("authentication:\n  anonymous:\n    enabled: true\n", &[])
        .unwrap()
        .config;
    assert!(c.anonymous_auth);
    assert_eq!(c.token_auth_file, None);
    let c = load_file(
        "authentication:\n  anonymous:\n    enabled: true\n",
        &[
            "--anonymous-auth=false",
            "--token-auth-file=/etc/tokens.csv",
        ],
    )
    .unwrap()
    .config;
    assert!(!c.anonymous_auth, "the flag wins over the file");
    assert_eq!(c.token_auth_file, Some(PathBuf::from("/etc/tokens.csv")));
    assert!(
        !load_args(&[]).unwrap().config.anonymous_auth,
        "off by default"
    );
}

#[test]
fn authorization_settings_from_file_and_flags() {
    let c = load_args(&[]).unwrap().config;
    assert_eq!(
        c.authorization_mode,
        AuthorizationMode::Rbac,
        "RBAC by default"
    );
    assert_eq!(c.authorization_policy_path, None);
    let Loaded { config: c, warnings } = load_file(
        "authorization:\n  mode: AlwaysAllow\n  policyPath: rbac\n  webhook:\n    cacheAuthorizedTTL: 5m\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.authorization_mode, AuthorizationMode::AlwaysAllow);
    let p = c.authorization_policy_path.unwrap();
    assert!(
        p.is_absolute() && p.ends_with("rbac"),
        "relative to the file: {p:?}"
    );
    let joined = warnings.join("\n");
    assert!(
        joined.contains("\"authorization.webhook\" is not implemented"),
        "{joined}"
    );
    assert!(
        joined.contains("is ignored: authorization.mode (--authorization-mode) is AlwaysAllow"),
        "{joined}"
    );
    let c = load_file(
        "authorization:\n  mode: AlwaysAllow\n",
        &[
            "--authorization-mode=RBAC",
            "--authorization-policy-path=/etc/rbac",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(
        c.authorization_mode,
        AuthorizationMode::Rbac,
        "the flag wins"
    );
    assert_eq!(
        c.authorization_policy_path,
        Some(PathBuf::from("/etc/rbac"))
    );
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v["authorization"],
        serde_json::json!({"mode": "RBAC", "policyPath": "/etc/rbac"})
    );

    let e = err_of(&["--authorization-mode=Webhook"]);
    assert!(
        e.contains("authorization.mode (--authorization-mode) \"Webhook\"")
            && e.contains("no API server")
            && e.contains("--authorization-policy-path"),
        "{e}"
    );
    let e = err_of(&["--authorization-mode=Node"]);
    assert!(
        e.contains("\"Node\" is not supported") && e.contains("\"RBAC\""),
        "{e}"
    );
    let e = load_file("authorization:\n  mode: 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("authorization.mode"), "{e}");
}

#[test]
fn unknown_and_unimplemented_fields_are_warnings() {
    let Loaded { warnings, .. } = load_file(
        "runOnce: true\nmaxOpenFiles: 5\nfooBar: 1\nmemorySwap:\n  bogus: x\nauthentication:\n  webhook:\n    enabled: true\nlogging:\n  flushFrequency: 5s\n  colour: true\nnodeLabels:\n  a: b\nrootDir: /x\n",
        &[],
    )
    .unwrap();
    let joined = warnings.join("\n");
    for want in [
        "kubelet field \"runOnce\" is not implemented by minikubelet; ignored",
        "kubelet field \"maxOpenFiles\" is not implemented by minikubelet; ignored",
        "unknown field \"fooBar\" ignored",
        "unknown field \"memorySwap.bogus\" ignored",
        "kubelet field \"authentication.webhook\" is not implemented",
        "kubelet field \"logging.flushFrequency\" is not implemented",
        "unknown field \"logging.colour\" ignored",
        // Flag-only settings in the kubelet too.
        "unknown field \"nodeLabels\" ignored",
        "unknown field \"rootDir\" ignored",
    ] {
        assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
    }
    assert_eq!(warnings.len(), 9, "{joined}");
    assert!(warnings[0].contains("config.yaml: "), "{}", warnings[0]);
}

#[test]
fn type_meta_is_checked() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n",
            "apiVersion \"kubelet.config.k8s.io/v1alpha1\" is not supported, expected \"kubelet.config.k8s.io/v1beta1\"",
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n",
            "kind \"Pod\" is not supported, expected \"KubeletConfiguration\"",
        ),
        (
            "kind: KubeletConfiguration\n",
            "apiVersion missing is not supported",
        ),
        (
            "- a\n- b\n",
            "expected a KubeletConfiguration object, found a list",
        ),
        ("", "expected a KubeletConfiguration object, found null"),
        ("a: [\n", "failed to decode Kubelet config file"),
    ];
    for (text, want) in cases {
        let (_dir, path) = write_config(text);
        let err = load(&Flags {
            config: Some(path),
            ..Flags::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(
            err.starts_with("failed to decode Kubelet config file "),
            "{err}"
        );
    }
    let err = load(&Flags {
        config: Some(PathBuf::from("/nonexistent/config.yaml")),
        ..Flags::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("failed to load Kubelet config file /nonexistent/config.yaml: "),
        "{err}"
    );
}

#[test]
fn file_type_errors_name_field_value_and_expectation() {
    let cases: &[(&str, &str)] = &[
        (
            "maxPods: lots\n",
            "invalid value \"lots\" for maxPods: expected an integer",
        ),
        (
            "failSwapOn: \"no\"\n",
            "invalid value \"no\" for failSwapOn: expected true or false",
        ),
        (
            "fileCheckFrequency: 20\n",
            "invalid value 20 for fileCheckFrequency: expected a duration such as",
        ),
        (
            "fileCheckFrequency: 1d\n",
            "invalid value \"1d\" for fileCheckFrequency: expected a duration",
        ),
        (
            "systemReserved:\n  pid: 1000\n",
            "invalid value 1000 for systemReserved.pid: expected a string (quote it: \"1000\")",
        ),
        (
            "enforceNodeAllocatable: pods\n",
            "invalid value \"pods\" for enforceNodeAllocatable: expected a list of strings",
        ),
        (
            "evictionHard: 100Mi\n",
            "invalid value \"100Mi\" for evictionHard: expected a map",
        ),
        (
            "authentication:\n  x509:\n    clientCAFile: 3\n",
            "invalid value 3 for authentication.x509.clientCAFile: expected a string",
        ),
    ];
    for (body, want) in cases {
        let err = load_file(body, &[]).unwrap_err().to_string();
        assert!(err.contains(want), "{body:?}: {err}");
    }
}

#[test]
fn validation_messages() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cgroup-driver=systemd"],
            "invalid configuration: cgroupDriver (--cgroup-driver) \"systemd\" is not implemented by minikubelet; use \"cgroupfs\"",
        ),
        (
            &["--cgroup-driver=cgroupv2"],
            "invalid configuration: cgroupDriver (--cgroup-driver) \"cgroupv2\" must be one of: \"cgroupfs\" (\"systemd\" is not implemented)",
        ),
        (
            &["--max-pods=-1"],
            "invalid configuration: maxPods (--max-pods) -1 must not be a negative number",
        ),
        (
            &["--port=0"],
            "invalid configuration: port (--port) 0 must be between 1 and 65535, inclusive",
        ),
        (
            &["--port=70000"],
            "invalid configuration: port (--port) 70000 must be between 1 and 65535, inclusive",
        ),
        (
            &["--container-log-max-files=1"],
            "invalid configuration: containerLogMaxFiles (--container-log-max-files) 1 must be greater than 1",
        ),
        (
            &["--container-log-max-size=0"],
            "invalid configuration: containerLogMaxSize (--container-log-max-size) \"0\" must be a positive quantity such as \"10Mi\"",
        ),
        (
            &["--container-log-max-size=big"],
            "invalid configuration: containerLogMaxSize (--container-log-max-size) \"big\" must be a positive quantity such as \"10Mi\"",
        ),
        (
            &["--logging-format=xml"],
            "logging.format: Unsupported value: \"xml\": supported values: \"json\", \"text\"",
        ),
        (
            &["--file-check-frequency=0s"],
            "invalid configuration: fileCheckFrequency (--file-check-frequency) 0s must be greater than 0",
        ),
        (
            &["--eviction-monitoring-period=0s"],
            "invalid configuration: evictionMonitoringPeriod (--eviction-monitoring-period) 0s must be greater than 0",
        ),
        (
            &["--eviction-max-pod-grace-period=-1"],
            "invalid configuration: evictionMaxPodGracePeriod (--eviction-max-pod-grace-period) -1 must be between 0 and 2147483647 seconds",
        ),
        (
            &["--system-reserved=gpu=1"],
            "invalid configuration: systemReserved (--system-reserved): cannot reserve \"gpu\" resource; accepted resources: cpu, memory, ephemeral-storage, pid",
        ),
        (
            &["--kube-reserved=memory=-1Gi"],
            "invalid configuration: kubeReserved (--kube-reserved): resource quantity for \"memory\" cannot be negative: -1Gi",
        ),
        (
            &["--kube-reserved=memory=1GB"],
            "invalid configuration: kubeReserved (--kube-reserved): failed to parse quantity \"1GB\" for \"memory\" resource: invalid quantity \"1GB\"",
        ),
        (
            &["--enforce-node-allocatable=pods,bogus"],
            "invalid configuration: option \"bogus\" specified for enforceNodeAllocatable (--enforce-node-allocatable). Valid options are \"pods\", \"system-reserved\", \"kube-reserved\" or \"none\"",
        ),
        (
            &["--enforce-node-allocatable=pods,pods"],
            "invalid configuration: duplicated enforcements \"pods\" in enforceNodeAllocatable (--enforce-node-allocatable)",
        ),
        (
            &["--enforce-node-allocatable=none,pods"],
            "invalid configuration: enforceNodeAllocatable (--enforce-node-allocatable) may not contain additional enforcements when \"none\" is specified",
        ),
        (
            &["--enforce-node-allocatable=pods,system-reserved"],
            "invalid configuration: systemReservedCgroup (--system-reserved-cgroup) must be specified when \"system-reserved\" included in enforceNodeAllocatable (--enforce-node-allocatable)",
        ),
        (
            &["--enforce-node-allocatable=kube-reserved"],
            "invalid configuration: kubeReservedCgroup (--kube-reserved-cgroup) must be specified when \"kube-reserved\" included in enforceNodeAllocatable (--enforce-node-allocatable)",
        ),
        (
            // The kubelet's own trap: the default enforcement needs the QoS hierarchy.
            &["--cgroups-per-qos=false"],
            "invalid configuration: cgroupsPerQOS (--cgroups-per-qos) must be set to true when \"pods\" contained in enforceNodeAllocatable (--enforce-node-allocatable)",
        ),
        (
            &["--pod-logs-dir=logs"],
            "invalid configuration: pod logs path \"logs\" must be absolute path",
        ),
        (
            &["--pod-logs-dir=/var/log//pods/"],
            "invalid configuration: pod logs path \"/var/log//pods/\" must be normalized",
        ),
        (
            &["--root-dir=state"],
            "invalid configuration: --root-dir \"state\" must be an absolute path",
        ),
        (
            &["--tls-cert-file=/etc/k.crt"],
            "invalid configuration: tlsCertFile (--tls-cert-file) and tlsPrivateKeyFile (--tls-private-key-file) must be set together",
        ),
        (
            &["--tls-min-version=VersionTLS14"],
            "invalid configuration: tlsMinVersion (--tls-min-version) unknown tls version \"VersionTLS14\"",
        ),
        (
            &["--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOPE"],
            "invalid configuration: tlsCipherSuites (--tls-cipher-suites) Cipher suite TLS_NOPE not supported or doesn't exist",
        ),
        (
            &["--node-labels=node-role.kubernetes.io/worker="],
            "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [node-role.kubernetes.io/worker]",
        ),
        (
            &["--node-labels=a=b c"],
            "invalid node labels: 'b c' - a valid label must be",
        ),
        (
            &["--eviction-hard=memory.available<0"],
            "eviction threshold memory.available must be positive: 0",
        ),
        (
            &["--eviction-soft=memory.available<1Gi"],
            "grace period must be specified for the soft eviction threshold memory.available",
        ),
        (
            &["--eviction-hard=swap.available<1Gi"],
            "unsupported eviction signal swap.available",
        ),
    ];
    for (args, want) in cases {
        let err = err_of(args);
        assert!(
            err.starts_with(want),
            "{args:?}:\n got: {err}\nwant: {want}"
        );
    }
}

#[test]
fn file_validation_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "memorySwap:\n  swapBehavior: UnlimitedSwap\n",
            "invalid configuration: memorySwap.swapBehavior \"UnlimitedSwap\" must be one of: \"\", \"LimitedSwap\" or \"NoSwap\"",
        ),
        (
            "logging:\n  verbosity: 11\n",
            "invalid configuration: logging.verbosity (-v) 11 must be between 0 and 10, inclusive",
        ),
        (
            "containerLogMaxFiles: 0\n",
            "invalid configuration: containerLogMaxFiles (--container-log-max-files) 0 must be greater than 1",
        ),
        (
            "address: not-an-ip\n",
            "invalid configuration: address (--address) \"not-an-ip\" must be an IPv4 or IPv6 address",
        ),
        (
            "evictionHard:\n  memory.available: \"-1Gi\"\n",
            "eviction threshold memory.available must be positive: -1Gi",
        ),
    ];
    for (body, want) in cases {
        let err = load_file(body, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with(want),
            "{body:?}:\n got: {err}\nwant: {want}"
        );
    }
}

#[test]
fn several_validation_errors_are_reported_together() {
    let err = err_of(&["--max-pods=-1", "--port=0"]);
    assert_eq!(
        err,
        "invalid configuration: maxPods (--max-pods) -1 must not be a negative number; invalid configuration: port (--port) 0 must be between 1 and 65535, inclusive"
    );
}

#[test]
fn enforcement_none_and_empty_disable_allocatable_thresholds() {
    for arg in [
        "--enforce-node-allocatable=none",
        "--enforce-node-allocatable=",
    ] {
        let c = load_args(&[arg, "--cgroups-per-qos=false"]).unwrap().config;
        assert!(c.enforce_node_allocatable.is_empty(), "{arg}");
        assert_eq!(c.cgroup_root, "", "{arg}");
        assert!(
            !c.eviction
                .thresholds
                .iter()
                .any(|t| t.signal == Signal::AllocatableMemoryAvailable),
            "{arg}"
        );
    }
    let c = load_args(&[
        "--enforce-node-allocatable=pods,system-reserved",
        "--system-reserved-cgroup=/system.slice",
    ])
    .unwrap()
    .config;
    assert_eq!(
        c.enforce_node_allocatable,
        vec![
            NodeAllocatableEnforcement::Pods,
            NodeAllocatableEnforcement::SystemReserved
        ]
    );
}

#[test]
fn eviction_hard_defaults_replace_and_merge() {
    // One key in the file drops the other defaults...
    let c = load_file("evictionHard:\n  memory.available: 200Mi\n", &[])
        .unwrap()
        .config;
    assert_eq!(c.eviction.hard, map(&[("memory.available", "200Mi")]));
    // ...unless mergeDefaultEvictionSettings.
    let c = load_file(
        "mergeDefaultEvictionSettings: true\nevictionHard:\n  memory.available: 200Mi\n",
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(c.eviction.hard.len(), 5);
    assert_eq!(c.eviction.hard["memory.available"], "200Mi");
    assert_eq!(c.eviction.hard["nodefs.available"], "10%");
    // An explicit empty flag means no hard thresholds at all.
    let c = load_args(&["--eviction-hard="]).unwrap().config;
    assert!(c.eviction.hard.is_empty());
    assert!(c.eviction.thresholds.is_empty());
}

#[test]
fn containerfs_values_are_replaced_with_a_warning() {
    let Loaded { config, warnings } =
        load_args(&["--eviction-hard=nodefs.available<7%,containerfs.available<1Gi"]).unwrap();
    assert_eq!(
        warnings,
        vec!["found containerfs.available for hard eviction. ignoring".to_string()]
    );
    let cfs: Vec<_> = config
        .eviction
        .thresholds
        .iter()
        .filter(|t| t.signal == Signal::ContainerFsAvailable)
        .collect();
    assert_eq!(cfs.len(), 1);
    assert_eq!(cfs[0].value, ThresholdValue::Percentage(0.07));
}

#[test]
fn node_name_uses_override_or_hostname_lowercased() {
    let mut c = load(&Flags::default()).unwrap().config;
    c.hostname_override = Some("  My-Node ".to_string());
    assert_eq!(c.node_name().unwrap(), "my-node");
    c.hostname_override = Some("   ".to_string());
    assert_eq!(
        c.node_name().unwrap_err().to_string(),
        "empty hostname is invalid"
    );
    c.hostname_override = None;
    let host = nix::unistd::gethostname()
        .unwrap()
        .into_string()
        .unwrap()
        .trim()
        .to_lowercase();
    assert_eq!(c.node_name().unwrap(), host);
    // An empty --hostname-override is the same as none.
    let c = load_args(&["--hostname-override="]).unwrap().config;
    assert_eq!(c.hostname_override, None);
}

#[test]
fn tracing_levels() {
    let mut c = load(&Flags::default()).unwrap().config;
    for (v, want) in [
        (0, tracing::Level::INFO),
        (2, tracing::Level::INFO),
        (3, tracing::Level::DEBUG),
        (4, tracing::Level::DEBUG),
        (5, tracing::Level::TRACE),
        (10, tracing::Level::TRACE),
    ] {
        c.logging.verbosity = v;
        assert_eq!(c.tracing_level(), want, "v={v}");
    }
}

#[test]
fn serializes_as_kubelet_configuration_and_reloads_identically() {
    let c = load_args(&[
        "--pod-manifest-path=/etc/kubernetes/manifests",
        "--system-reserved=cpu=250m,memory=1Gi,pid=100",
        "--eviction-hard=memory.available<300Mi",
        "--eviction-soft=nodefs.available<20%",
        "--eviction-soft-grace-period=nodefs.available=1m30s",
        "--streaming-connection-idle-timeout=1h",
        "--logging-format=json",
        "--v=2",
        "--tls-cert-file=/pki/k.crt",
        "--tls-private-key-file=/pki/k.key",
        "--client-ca-file=/pki/ca.crt",
    ])
    .unwrap()
    .config;
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["apiVersion"], "kubelet.config.k8s.io/v1beta1");
    assert_eq!(v["kind"], "KubeletConfiguration");
    assert_eq!(v["staticPodPath"], "/etc/kubernetes/manifests");
    assert_eq!(v["fileCheckFrequency"], "20s");
    assert_eq!(v["streamingConnectionIdleTimeout"], "1h0m0s");
    assert_eq!(v["evictionPressureTransitionPeriod"], "5m0s");
    assert_eq!(v["systemReserved"]["cpu"], "250m");
    assert_eq!(v["systemReserved"]["memory"], "1Gi");
    assert_eq!(v["systemReserved"]["pid"], "100");
    assert_eq!(v["containerLogMaxSize"], "10Mi");
    assert_eq!(v["evictionSoftGracePeriod"]["nodefs.available"], "1m30s");
    assert_eq!(v["authentication"]["x509"]["clientCAFile"], "/pki/ca.crt");
    assert_eq!(v["address"], "127.0.0.1");
    assert_eq!(v["port"], 10250);
    assert_eq!(v["logging"]["verbosity"], 2);
    assert_eq!(v["enforceNodeAllocatable"], serde_json::json!(["pods"]));
    assert!(v.get("nodeLabels").is_none());

    // The JSON is a valid config file that yields the same configuration.
    let (_dir, path) = write_config(&serde_json::to_string_pretty(&v).unwrap());
    let Loaded {
        config: mut again,
        warnings,
    } = load(&Flags {
        config: Some(path),
        ..Flags::default()
    })
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    again.config_file = None;
    assert_eq!(again, c);
}

#[test]
fn defaults_serialize_without_empty_paths() {
    let v = serde_json::to_value(load(&Flags::default()).unwrap().config).unwrap();
    for key in ["staticPodPath", "tlsCertFile", "tlsPrivateKeyFile"] {
        assert!(v.get(key).is_none(), "{key}");
    }
    assert!(v["authentication"].get("x509").is_none());
    assert_eq!(v["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(v["cgroupRoot"], "/");
    assert_eq!(v["memorySwap"]["swapBehavior"], "");
    assert_eq!(v["evictionHard"]["memory.available"], "100Mi");
}

#[test]
fn path_cleanliness_matches_go() {
    for (p, clean) in [
        ("/", true),
        ("/var/log/pods", true),
        ("/var/log/pods/", false),
        ("/var//log", false),
        ("/var/./log", false),
        ("/var/../log", false),
        ("/var/log/.", false),
    ] {
        assert_eq!(is_path_clean(p), clean, "{p}");
    }
}

#[test]
fn tls_min_version_and_cipher_suites_from_the_file_and_flags() {
    use crate::config::tls::TlsMinVersion;
    let l = load_file(
        "tlsMinVersion: VersionTLS12\ntlsCipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_RSA_WITH_AES_128_CBC_SHA]\n",
        &[],
    )
    .unwrap();
    assert_eq!(l.config.tls.min_version, TlsMinVersion::Tls12);
    assert_eq!(
        l.config.tls.cipher_suite_names(),
        ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("TLS_RSA_WITH_AES_128_CBC_SHA not served")),
        "{:?}",
        l.warnings
    );
    assert!(
        !l.warnings.iter().any(|w| w.contains("not implemented")),
        "{:?}",
        l.warnings
    );
    // Flags override the file; VersionTLS13 with suites is refused, as the kubelet does.
    let l = load_file(
        "tlsMinVersion: VersionTLS12\n",
        &["--tls-min-version=VersionTLS13"],
    )
    .unwrap();
    assert_eq!(l.config.tls.min_version, TlsMinVersion::Tls13);
    let e = load_file(
        "tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
        &["--tls-min-version=VersionTLS13"],
    )
    .expect_err("suites with TLS 1.3 only")
    .to_string();
    assert!(
        e.contains("not supported when the TLS min version is VersionTLS13"),
        "{e}"
    );
}

#[test]
fn pod_dns_settings_from_flags_and_file() {
    let c = load(&Flags::default()).unwrap().config;
    assert!(c.cluster_dns.is_empty());
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));

    let c = load_args(&[
        "--cluster-dns=10.96.0.10,fd00::a",
        "--cluster-domain=k8s.test",
        "--resolv-conf=",
    ])
    .unwrap()
    .config;
    let want: Vec<IpAddr> = vec!["10.96.0.10".parse().unwrap(), "fd00::a".parse().unwrap()];
    assert_eq!(c.cluster_dns, want);
    assert_eq!(c.cluster_domain, "k8s.test");
    assert_eq!(c.resolv_conf, None);
    let k = c.to_kubelet_configuration();
    assert_eq!(
        k["clusterDNS"],
        serde_json::json!(["10.96.0.10", "fd00::a"])
    );
    assert_eq!(k["resolvConf"], "");

    let c = load_file(
        "clusterDNS: [10.0.0.10]\nclusterDomain: corp.test\nresolvConf: /run/systemd/resolve/resolv.conf\n",
        &["--cluster-domain=flag.test"],
    )
    .unwrap()
    .config;
    assert_eq!(c.cluster_dns, vec!["10.0.0.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.cluster_domain, "flag.test");
    assert_eq!(
        c.resolv_conf,
        Some(PathBuf::from("/run/systemd/resolve/resolv.conf"))
    );

    assert!(err_of(&["--cluster-dns=10.0.0.300"]).contains(
        "invalid configuration: clusterDNS (--cluster-dns) 10.0.0.300 must be a valid IP address"
    ));
}

#[test]
fn feature_gates_from_file_and_flags() {
    assert!(load_args(&[]).unwrap().config.feature_gates.image_rootfs);
    let c = load_args(&["--feature-gates=ImageRootfs=false"])
        .unwrap()
        .config;
    assert!(!c.feature_gates.image_rootfs);
    let c = load_file("featureGates: {ImageRootfs: true}\n", &[])
        .unwrap()
        .config;
    assert!(c.feature_gates.image_rootfs);
    // The flag overrides the file key by key.
    let c = load_file(
        "featureGates: {ImageRootfs: true}\n",
        &["--feature-gates=ImageRootfs=false"],
    )
    .unwrap()
    .config;
    assert!(!c.feature_gates.image_rootfs);
    let e = load_file("featureGates: {Nope: true}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unrecognized feature gate: Nope"), "{e}");
    assert!(err_of(&["--feature-gates=Nope=true"]).contains("unrecognized feature gate: Nope"));
    assert!(
        parse(&["--feature-gates=ImageRootfs"])
            .unwrap_err()
            .to_string()
            .contains("missing bool value")
    );
}

#[test]
fn image_gc_settings_defaults_file_flags_and_validation() {
    let c = load_args(&[]).unwrap().config;
    assert_eq!(c.image_gc_high_threshold_percent, 85);
    assert_eq!(c.image_gc_low_threshold_percent, 80);
    assert_eq!(c.image_minimum_gc_age, Duration::from_secs(120));
    let c = load_file(
        "imageGCHighThresholdPercent: 70\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 0s\n",
        &[],
    )
    .unwrap()
    .config;
    // 0 is a percentage like any other; a zero age means the default, as in the kubelet.
    assert_eq!(
        (
            c.image_gc_high_threshold_percent,
            c.image_gc_low_threshold_percent
        ),
        (70, 0)
    );
    assert_eq!(c.image_minimum_gc_age, Duration::from_secs(120));
    let c = load_file(
        "imageGCHighThresholdPercent: 70\nimageMinimumGCAge: 5m\n",
        &[
            "--image-gc-high-threshold=90",
            "--minimum-image-ttl-duration=0s",
        ],
    )
    .unwrap()
    .config;
    assert_eq!(c.image_gc_high_threshold_percent, 90);
    assert_eq!(c.image_minimum_gc_age, Duration::ZERO);
    let kc = c.to_kubelet_configuration();
    assert_eq!(kc["imageGCHighThresholdPercent"], 90);
    assert_eq!(kc["imageGCLowThresholdPercent"], 80);
    assert_eq!(kc["imageMinimumGCAge"], "0s");
    for (args, want) in [
        (
            &["--image-gc-high-threshold=101"][..],
            "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive",
        ),
        (
            &["--image-gc-low-threshold=-1"][..],
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between 0 and 100, inclusive",
        ),
        (
            &[
                "--image-gc-high-threshold=50",
                "--image-gc-low-threshold=50",
            ][..],
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 50 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 50",
        ),
    ] {
        let e = err_of(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn allowed_unsafe_sysctls_from_the_file_or_the_flag_namespaced_only() {
    let c = load_args(&[]).unwrap().config;
    assert!(c.allowed_unsafe_sysctls.is_empty());
    let c = load_file(
        "allowedUnsafeSysctls: [\"kernel.msg*\", net.core.somaxconn]\n",
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(
        c.allowed_unsafe_sysctls,
        ["kernel.msg*", "net.core.somaxconn"]
    );
    assert_eq!(
        c.to_kubelet_configuration()["allowedUnsafeSysctls"],
        serde_json::json!(["kernel.msg*", "net.core.somaxconn"])
    );
    let c = load_args(&["--allowed-unsafe-sysctls=kernel.sem,fs.mqueue.*"])
        .unwrap()
        .config;
    assert_eq!(c.allowed_unsafe_sysctls, ["kernel.sem", "fs.mqueue.*"]);
    let e = err_of(&["--allowed-unsafe-sysctls=vm.swappiness"]);
    assert!(
        e.contains("invalid configuration: allowedUnsafeSysctls (--allowed-unsafe-sysctls): the sysctls [vm.swappiness] are not known to be namespaced"),
        "{e}"
    );
}

#[test]
fn seccomp_default_from_the_file_or_the_flag() {
    assert!(!load_args(&[]).unwrap().config.seccomp_default);
    assert!(
        load_args(&["--seccomp-default"])
            .unwrap()
            .config
            .seccomp_default
    );
    let c = load_file("seccompDefault: true\n", &[]).unwrap().config;
    assert!(c.seccomp_default);
    // The flag wins over the file.
    let c = load_file("seccompDefault: true\n", &["--seccomp-default=false"])
        .unwrap()
        .config;
    assert!(!c.seccomp_default);
}

#[test]
fn pod_network_settings_from_the_file_or_the_flags() {
    let c = load_args(&[]).unwrap().config;
    assert_eq!(c.pod_cidr, None);
    assert_eq!(c.hairpin_mode, crate::cni::HairpinMode::PromiscuousBridge);
    assert_eq!(c.cni_conf_dir, PathBuf::from("/etc/cni/net.d"));
    assert_eq!(
        c.cni_bin_dirs,
        [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
    let c = load_file("podCIDR: 10.244.0.0/24\nhairpinMode: hairpin-veth\n", &[])
        .unwrap()
        .config;
    assert_eq!(c.pod_cidr.as_deref(), Some("10.244.0.0/24"));
    assert_eq!(c.hairpin_mode, crate::cni::HairpinMode::HairpinVeth);
    let c = load_args(&[
        "--cni-bin-dir=/a,/b",
        "--cni-conf-dir=/c",
        "--hairpin-mode=none",
    ])
    .unwrap()
    .config;
    assert_eq!(c.cni_bin_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(c.cni_conf_dir, PathBuf::from("/c"));
    assert_eq!(c.hairpin_mode, crate::cni::HairpinMode::None);
    let e = err_of(&["--pod-cidr=10.0.0.1/24"]);
    assert!(e.contains("podCIDR (--pod-cidr)"), "{e}");
    let e = err_of(&["--hairpin-mode=sideways"]);
    assert!(
        e.contains("use hairpin-veth, promiscuous-bridge or none"),
        "{e}"
    );
}
