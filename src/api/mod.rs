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
pub mod qos;
pub mod quantity;
pub mod resources;
pub mod static_pod;
pub mod validation;

pub use decode::{DecodeError, DecodeWarning, DecodedPod, decode_pod};
pub use defaults::apply_defaults;
pub use qos::{QosClass, qos_class};
pub use quantity::{Format, Quantity, QuantityError};
pub use resources::{ResourceAmounts, host_ports, pod_limits, pod_requests};
pub use static_pod::{is_static, make_static};
pub use validation::{FieldError, Unsupported, validate};
