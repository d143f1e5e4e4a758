//! Pod and container lifecycle around the runtime: hook handlers (and, later, admission).
//!
//! Mirrors `pkg/kubelet/lifecycle`.
pub mod handlers;
