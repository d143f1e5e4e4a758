//! minikubelet: a static-pod kubelet for one Linux node.
//!
//! Each module mirrors one part of the real kubelet; `docs/architecture.md` maps them.
//! One pod's way through the agent: `source` (manifest files) → `pod_workers` (the pod manager:
//! diff by UID, `admission`) → `worker` (one task per pod: lifecycle, restart policy, backoff)
//! → `cm` + `cgroup` (the pod's cgroups) and `runtime` + `shim` (its processes and logs);
//! `pleg` reports exits, `prober` probe results, `status_manager` holds the status that
//! `server` serves.

pub mod admission;
pub mod api;
pub mod cgroup;
pub mod cli;
pub mod cm;
pub mod config;
pub mod events;
pub mod eviction;
pub mod kubelet;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod pleg;
pub mod pod_workers;
pub mod preflight;
pub mod prober;
pub mod runtime;
pub mod server;
pub mod shim;
pub mod source;
pub mod stats;
pub mod status;
pub mod status_manager;
pub mod volumes;
pub mod worker;
