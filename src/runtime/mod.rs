//! The container runtime: running pods' processes the way a CRI runtime would.
//!
//! Mirrors `pkg/kubelet/kuberuntime` together with the CRI runtime underneath it.
pub mod exec;
