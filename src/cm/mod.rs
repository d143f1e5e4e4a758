//! Container manager: the numbers the kubelet writes into pod and container cgroups.
//!
//! Mirrors `pkg/kubelet/cm` and `pkg/kubelet/qos`.

pub mod helpers;
pub mod manager;
pub mod qos_policy;
pub mod swap;
