//! The pod model: decoding manifests into `k8s_openapi` Pods, the v1 API defaults, the
//! static-pod treatment (UID, name, annotations), validation, QoS class, resource totals and
//! exact resource quantities.
//!
//! Mirrors the parts of the Kubernetes API machinery the kubelet's file source depends on:
//! apimachinery `pkg/api/resource`, `pkg/apis/core/v1` (defaults, `helper/qos`),
//! `pkg/apis/core/validation` (`ValidatePodCreate`), `pkg/kubelet/config/common.go` and
//! `k8s.io/component-helpers/resource`. The expected order for one manifest is
//! [`decode::decode_pod`] -> [`defaults::apply_defaults`] -> [`static_pod::make_static`] ->
//! [`validation::validate`].

pub mod decode;
pub mod defaults;
pub mod duration;
pub mod pod;
pub mod qos;
pub mod quantity;
pub mod resources;
pub mod static_pod;
pub mod validation;

pub use decode::{DecodeError, DecodeWarning, DecodedPod, decode_pod};
pub use defaults::apply_defaults;
pub use pod::{full_name, is_static};
pub use qos::{QosClass, qos_class};
pub use quantity::{Format, Quantity, QuantityError};
pub use resources::{ResourceAmounts, host_ports, pod_limits, pod_requests};
pub use static_pod::make_static;
pub use validation::{FieldError, Unsupported, validate};

/// How the kubelet names a pod in messages and logs: `name_namespace(uid)`
/// (`pkg/kubelet/util/format.Pod`).
pub fn format_pod(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    //! The whole path one manifest takes, as the file source will drive it.
    use super::*;
    use std::path::Path;

    const ETCD: &str = r#"
# A control-plane style static pod.
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
  labels: {component: etcd, tier: control-plane}
spec:
  priorityClassName: system-node-critical
  hostNetwork: true
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.21-0
    command: [etcd, --data-dir=/var/lib/etcd]
    resources:
      requests: {cpu: 100m, memory: 100Mi}
    livenessProbe:
      httpGet: {host: 127.0.0.1, path: /livez, port: 2381}
      failureThreshold: 8
    volumeMounts:
    - {name: data, mountPath: /var/lib/etcd}
  volumes:
  - name: data
    hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}
"#;

    fn run(text: &str, path: &str) -> (k8s_openapi::api::core::v1::Pod, Vec<Unsupported>) {
        let decoded = decode_pod(text.as_bytes(), Path::new(path)).unwrap();
        assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        let mut pod = decoded.pod;
        apply_defaults(&mut pod);
        let seen = jiff::Timestamp::UNIX_EPOCH;
        make_static(&mut pod, &decoded.raw, "Node-A", Path::new(path), seen);
        let unsupported = validate(&pod).unwrap();
        (pod, unsupported)
    }

    #[test]
    fn manifest_to_validated_static_pod() {
        let (pod, unsupported) = run(ETCD, "/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(pod.metadata.name.as_deref(), Some("etcd-node-a"));
        assert_eq!(qos_class(&pod), QosClass::Burstable);
        assert!(is_static(&pod));
        assert_eq!(pod_requests(&pod).milli_cpu, 100);
        assert_eq!(host_ports(&pod).len(), 0);
        let fields: Vec<&str> = unsupported.iter().map(|u| u.field.as_str()).collect();
        // hostPath volumes are implemented: nothing in etcd's manifest is ignored.
        assert!(fields.is_empty(), "{fields:?}");
        let oom = crate::cm::qos_policy::container_oom_score_adj(
            &pod,
            &pod.spec.as_ref().unwrap().containers[0],
            64 << 30,
        );
        assert_eq!(
            oom, -997,
            "a static system-node-critical pod is node-critical"
        );
    }

    #[test]
    fn uid_survives_formatting_but_not_edits() {
        let path = "/etc/kubernetes/manifests/etcd.yaml";
        let (base, _) = run(ETCD, path);
        let reformatted = ETCD
            .replace("# A control-plane", "# Another comment on a")
            .replace(
                "labels: {component: etcd, tier: control-plane}",
                "labels:\n    tier: control-plane\n    component: etcd",
            );
        let (same, _) = run(&reformatted, path);
        assert_eq!(base.metadata.uid, same.metadata.uid);
        let (edited, _) = run(&ETCD.replace("100Mi", "200Mi"), path);
        assert_ne!(base.metadata.uid, edited.metadata.uid);
        let (moved, _) = run(ETCD, "/etc/kubernetes/manifests/etcd-2.yaml");
        assert_ne!(base.metadata.uid, moved.metadata.uid);
    }
}
