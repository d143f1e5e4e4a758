//! minikubelet: a static-pod kubelet for one Linux node.
//!
//! Each module mirrors one part of the real kubelet; `docs/architecture.md` maps them.
pub mod api;
pub mod cli;
pub mod cm;
