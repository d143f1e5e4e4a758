//! The pod lifecycle event generator: tells a pod's worker when one of its containers exited.
//!
//! Mirrors `pkg/kubelet/pleg`. The kubelet's generic PLEG re-lists the runtime every second and
//! diffs; its evented PLEG (KEP-3386) takes events from the runtime instead. minikubelet does
//! the latter: each pod worker awaits `ContainerRuntime::wait` for each running container, and
//! the shim runtime resolves it the instant the container's shim exits, after the shim has
//! recorded the exit (a pidfd, [`crate::runtime::process`]). No polling while containers run,
//! and no relist: nothing is left here but the names older code used.

pub use crate::runtime::process::{
    ProcState, pidfd_supported, process_alive, process_state, process_state_in, wait_pid_exit,
};
