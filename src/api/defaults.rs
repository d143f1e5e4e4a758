//! The v1 API defaults the decoder applies to every Pod it reads, static pods included.
//!
//! Mirrors `pkg/apis/core/v1/defaults.go` and the generated `SetObjectDefaults_Pod`
//! (`zz_generated.defaults.go`): `SetDefaults_Pod`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`, `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`,
//! `SetDefaults_Volume`, `SetDefaults_ObjectFieldSelector`, `SetDefaults_ResourceList` and the
//! declarative `+default` markers (container port protocol, gRPC probe service). Ephemeral
//! containers are not defaulted: validation refuses them for static pods anyway. Pod-level
//! `spec.resources` defaulting (gate PodLevelResources) is not implemented.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, HTTPGetAction, LifecycleHandler, ObjectFieldSelector, Pod,
    PodSecurityContext, PodSpec, Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::quantity::Quantity;

/// `terminationGracePeriodSeconds` default (`v1.DefaultTerminationGracePeriodSeconds`).
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `terminationMessagePath` default (`v1.TerminationMessagePathDefault`).
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// `schedulerName` default (`v1.DefaultSchedulerName`).
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// Volume file mode default for secret, configMap, downwardAPI and projected volumes (0644).
const VOLUME_DEFAULT_MODE: i32 = 0o644;
/// `serviceAccountToken.expirationSeconds` default: one hour.
const SERVICE_ACCOUNT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Applies the v1 defaults to a freshly decoded pod, in the decoder's order.
pub fn apply_defaults(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    set_defaults_pod(spec);
    set_defaults_pod_spec(spec);
    for volume in spec.volumes.iter_mut().flatten() {
        set_defaults_volume(volume);
    }
    let host_network = spec.host_network == Some(true);
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        set_defaults_container(c, host_network);
    }
    if let Some(overhead) = spec.overhead.as_mut() {
        set_defaults_resource_list(overhead);
    }
}

/// `SetDefaults_Pod`: requests default to limits for every resource only limited, and
/// `enableServiceLinks` defaults to true.
fn set_defaults_pod(spec: &mut PodSpec) {
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let Some(res) = c.resources.as_mut() else {
            continue;
        };
        let Some(limits) = res.limits.as_ref() else {
            continue;
        };
        let requests = res.requests.get_or_insert_with(BTreeMap::new);
        for (name, value) in limits {
            requests
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
    spec.enable_service_links.get_or_insert(true);
}

/// `SetDefaults_PodSpec`.
fn set_defaults_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.restart_policy, "Always");
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    default_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
}

/// `SetDefaults_Volume` plus the per-source defaults of the generated defaulter.
fn set_defaults_volume(volume: &mut Volume) {
    let no_source = Volume {
        name: volume.name.clone(),
        ..Default::default()
    };
    if *volume == no_source {
        volume.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(host_path) = volume.host_path.as_mut() {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(secret) = volume.secret.as_mut() {
        secret.default_mode.get_or_insert(VOLUME_DEFAULT_MODE);
    }
    if let Some(config_map) = volume.config_map.as_mut() {
        config_map.default_mode.get_or_insert(VOLUME_DEFAULT_MODE);
    }
    if let Some(downward) = volume.downward_api.as_mut() {
        downward.default_mode.get_or_insert(VOLUME_DEFAULT_MODE);
        for item in downward.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                set_defaults_object_field_selector(f);
            }
        }
    }
    if let Some(projected) = volume.projected.as_mut() {
        projected.default_mode.get_or_insert(VOLUME_DEFAULT_MODE);
        for source in projected.sources.iter_mut().flatten() {
            if let Some(downward) = source.downward_api.as_mut() {
                for item in downward.items.iter_mut().flatten() {
                    if let Some(f) = item.field_ref.as_mut() {
                        set_defaults_object_field_selector(f);
                    }
                }
            }
            if let Some(token) = source.service_account_token.as_mut() {
                token
                    .expiration_seconds
                    .get_or_insert(SERVICE_ACCOUNT_TOKEN_EXPIRATION_SECONDS);
            }
        }
    }
}

/// `SetDefaults_Container` and the container's nested defaults.
fn set_defaults_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        c.image_pull_policy =
            Some(default_image_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    default_str(
        &mut c.termination_message_path,
        TERMINATION_MESSAGE_PATH_DEFAULT,
    );
    default_str(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
        // With host networking every container port is also a host port (SetDefaults_Pod).
        if host_network && port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_defaults_object_field_selector(f);
        }
    }
    if let Some(res) = c.resources.as_mut() {
        for list in [res.limits.as_mut(), res.requests.as_mut()]
            .into_iter()
            .flatten()
        {
            set_defaults_resource_list(list);
        }
    }
    for probe in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        set_defaults_probe(probe);
    }
    if let Some(lifecycle) = c.lifecycle.as_mut() {
        for handler in [lifecycle.post_start.as_mut(), lifecycle.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            set_defaults_lifecycle_handler(handler);
        }
    }
}

/// `SetDefaults_Probe` (a zero counts as unset, as in Go) plus its handler defaults.
fn set_defaults_probe(p: &mut Probe) {
    default_int(&mut p.timeout_seconds, 1);
    default_int(&mut p.period_seconds, 10);
    default_int(&mut p.success_threshold, 1);
    default_int(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        set_defaults_http_get_action(h);
    }
    if let Some(g) = p.grpc.as_mut() {
        g.service.get_or_insert_with(String::new);
    }
}

fn set_defaults_lifecycle_handler(h: &mut LifecycleHandler) {
    if let Some(h) = h.http_get.as_mut() {
        set_defaults_http_get_action(h);
    }
}

/// `SetDefaults_HTTPGetAction`.
fn set_defaults_http_get_action(h: &mut HTTPGetAction) {
    default_str(&mut h.path, "/");
    default_str(&mut h.scheme, "HTTP");
}

/// `SetDefaults_ObjectFieldSelector`.
fn set_defaults_object_field_selector(f: &mut ObjectFieldSelector) {
    default_str(&mut f.api_version, "v1");
}

/// `SetDefaults_ResourceList`: every quantity is rounded up to milli precision. We also write
/// each one back in canonical form (`1.5` -> `1500m`), as the API server would serialize it.
/// Quantities that do not parse are left for validation to report.
fn set_defaults_resource_list(list: &mut BTreeMap<String, ApiQuantity>) {
    for value in list.values_mut() {
        if let Ok(q) = Quantity::from_api(value) {
            let (rounded, _exact) = q.round_up_milli();
            *value = rounded.to_api();
        }
    }
}

/// The image pull policy the API defaults to: `Always` for the `latest` tag or no tag at all,
/// `IfNotPresent` otherwise, including references with only a digest and references that do
/// not parse (`SetDefaults_Container` with `parsers.ParseImageName`).
pub fn default_image_pull_policy(image: &str) -> &'static str {
    match image_tag(image) {
        Some(ImageTag::Latest) => "Always",
        _ => "IfNotPresent",
    }
}

enum ImageTag {
    Latest,
    Other,
    DigestOnly,
}

/// The effective tag of an image reference, `None` when it does not parse.
fn image_tag(image: &str) -> Option<ImageTag> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' after the last '/' starts a tag; one before it belongs to a registry host:port.
    let last_component_start = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_component_start..].rfind(':') {
        Some(i) => {
            let split = last_component_start + i;
            (&name[..split], Some(&name[split + 1..]))
        }
        None => (name, None),
    };
    // The repository path must be lowercase (a registry host may use capitals).
    let path = match repo.split_once('/') {
        Some((host, path)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            path
        }
        _ => repo,
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    match (tag, digest) {
        (Some(""), _) | (None, Some("")) => None,
        (Some("latest"), _) => Some(ImageTag::Latest),
        (Some(_), _) => Some(ImageTag::Other),
        (None, Some(_)) => Some(ImageTag::DigestOnly),
        (None, None) => Some(ImageTag::Latest),
    }
}

fn default_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

fn default_int(field: &mut Option<i32>, value: i32) {
    if field.is_none_or(|v| v == 0) {
        *field = Some(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::test_support::{container, list, pod};
    use k8s_openapi::api::core::v1::{
        ContainerPort, EnvVar, EnvVarSource, ExecAction, GRPCAction, Lifecycle, SecretVolumeSource,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn pod_spec_defaults() {
        let mut p = pod(vec![], vec![container("a", "", "")]);
        apply_defaults(&mut p);
        let s = p.spec.as_ref().unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(s.security_context, Some(PodSecurityContext::default()));
        assert_eq!(s.enable_service_links, Some(true));
        let c = &s.containers[0];
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn explicit_values_are_kept() {
        let mut p = pod(vec![], vec![container("a", "", "")]);
        let s = p.spec.as_mut().unwrap();
        s.restart_policy = Some("Never".into());
        s.termination_grace_period_seconds = Some(0);
        s.enable_service_links = Some(false);
        s.containers[0].image_pull_policy = Some("Never".into());
        apply_defaults(&mut p);
        let s = p.spec.as_ref().unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.termination_grace_period_seconds, Some(0));
        assert_eq!(s.enable_service_links, Some(false));
        assert_eq!(s.containers[0].image_pull_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn image_pull_policy_table() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry.example.com:5000/team/app", "Always"),
            ("registry.example.com:5000/team/app:v2", "IfNotPresent"),
            ("localhost:5000/app:latest", "Always"),
            (
                "busybox@sha256:4be429a5fbb2e71ae7958bfa558bc637cf3a61baf40a708cb8fff532b39e52d0",
                "IfNotPresent",
            ),
            ("busybox:latest@sha256:4be4", "Always"),
            ("", "IfNotPresent"),
            ("Nginx", "IfNotPresent"),
            ("nginx:", "IfNotPresent"),
            ("not valid", "IfNotPresent"),
        ] {
            assert_eq!(default_image_pull_policy(image), want, "{image:?}");
        }
    }

    #[test]
    fn requests_default_to_limits_in_all_containers() {
        let mut p = pod(
            vec![container("init", "", "cpu=1,memory=1Gi")],
            vec![
                container("a", "cpu=500m", "cpu=1,memory=1Gi"),
                container("b", "memory=64Mi", ""),
            ],
        );
        apply_defaults(&mut p);
        let s = p.spec.as_ref().unwrap();
        let reqs = |c: &Container| c.resources.as_ref().unwrap().requests.clone();
        assert_eq!(
            reqs(&s.init_containers.as_ref().unwrap()[0]),
            list("cpu=1,memory=1Gi")
        );
        assert_eq!(reqs(&s.containers[0]), list("cpu=500m,memory=1Gi"));
        assert_eq!(reqs(&s.containers[1]), list("memory=64Mi"));
    }

    #[test]
    fn resource_lists_are_rounded_to_milli_and_canonical() {
        let mut p = pod(
            vec![],
            vec![container("a", "cpu=0.1m,memory=1.5Gi", "cpu=1.5")],
        );
        p.spec.as_mut().unwrap().containers[0]
            .resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert("example.com/x".into(), ApiQuantity("not a quantity".into()));
        apply_defaults(&mut p);
        let r = p.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap();
        assert_eq!(
            r.requests,
            list("cpu=1m,memory=1536Mi,example.com/x=not a quantity")
        );
        assert_eq!(r.limits, list("cpu=1500m"));
    }

    #[test]
    fn probe_port_env_lifecycle_and_volume_defaults() {
        let mut c = container("a", "", "");
        c.liveness_probe = Some(Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(0),
            ..Default::default()
        });
        c.readiness_probe = Some(Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
            }),
            ..Default::default()
        });
        c.ports = Some(vec![ContainerPort {
            container_port: 80,
            ..Default::default()
        }]);
        c.env = Some(vec![EnvVar {
            name: "POD".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        c.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::String("http".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec!["true".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut p = pod(vec![], vec![c]);
        p.spec.as_mut().unwrap().volumes = Some(vec![
            Volume {
                name: "scratch".into(),
                ..Default::default()
            },
            Volume {
                name: "s".into(),
                secret: Some(SecretVolumeSource::default()),
                ..Default::default()
            },
        ]);
        apply_defaults(&mut p);
        let s = p.spec.as_ref().unwrap();
        let c = &s.containers[0];
        let live = c.liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                live.timeout_seconds,
                live.period_seconds,
                live.success_threshold,
                live.failure_threshold
            ),
            (Some(1), Some(5), Some(1), Some(3))
        );
        let get = live.http_get.as_ref().unwrap();
        assert_eq!(
            (get.path.as_deref(), get.scheme.as_deref()),
            (Some("/"), Some("HTTP"))
        );
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(ready.grpc.as_ref().unwrap().service.as_deref(), Some(""));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        assert_eq!(c.ports.as_ref().unwrap()[0].host_port, None);
        let env_ref = c.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
        assert_eq!(
            env_ref.field_ref.as_ref().unwrap().api_version.as_deref(),
            Some("v1")
        );
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(
            pre_stop.http_get.as_ref().unwrap().path.as_deref(),
            Some("/")
        );
        let vols = s.volumes.as_ref().unwrap();
        assert_eq!(vols[0].empty_dir, Some(EmptyDirVolumeSource::default()));
        assert_eq!(vols[1].empty_dir, None);
        assert_eq!(vols[1].secret.as_ref().unwrap().default_mode, Some(0o644));
    }

    #[test]
    fn host_network_turns_container_ports_into_host_ports() {
        let mut c = container("a", "", "");
        c.ports = Some(vec![
            ContainerPort {
                container_port: 80,
                ..Default::default()
            },
            ContainerPort {
                container_port: 443,
                host_port: Some(8443),
                ..Default::default()
            },
        ]);
        let mut p = pod(vec![], vec![c]);
        p.spec.as_mut().unwrap().host_network = Some(true);
        apply_defaults(&mut p);
        let ports = p.spec.as_ref().unwrap().containers[0]
            .ports
            .clone()
            .unwrap();
        assert_eq!(ports[0].host_port, Some(80));
        assert_eq!(ports[1].host_port, Some(8443));
    }

    #[test]
    fn defaults_are_idempotent() {
        let mut p = pod(
            vec![container("i", "", "cpu=1")],
            vec![container("a", "cpu=1.5", "memory=1Gi")],
        );
        apply_defaults(&mut p);
        let once = p.clone();
        apply_defaults(&mut p);
        assert_eq!(p, once);
    }
}
