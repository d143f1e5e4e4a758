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
pub mod cni;
pub mod config;
pub mod events;
pub mod eviction;
pub mod fs_usage;
pub mod images;
pub mod kubelet;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod pleg;
pub mod pod_dirs;
pub mod pod_workers;
pub mod preflight;
pub mod prober;
pub mod runtime;
pub mod sandbox;
pub mod security_context;
pub mod server;
pub mod shim;
pub mod source;
pub mod stats;
pub mod status;
pub mod status_manager;
pub mod sysctl;
pub mod volumes;
pub mod worker;

#[doc(hidden)]
pub mod fuzzing {
    //! Ways in for the `cargo fuzz` targets in `fuzz/` (`docs/fuzzing.md`) to parsers of
    //! outside bytes that the public API does not reach directly: the `KubeletConfiguration`
    //! file (read by `config::load` from a path), the WebSocket channel protocol (whose input
    //! is axum's `Message`), and the protobuf self access reviews (a private reader of the API
    //! facade). Not part of minikubelet's API.

    use bytes::Bytes;

    use crate::server::streaming::wsstream;

    /// `config::load` with `text` as the `--config` file `/etc/minikubelet/config.yaml` and no
    /// flags.
    pub fn kubelet_configuration(
        text: &str,
    ) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        let path = std::path::Path::new("/etc/minikubelet/config.yaml");
        crate::config::load_text(&crate::config::Flags::default(), path, text)
    }

    /// `wsstream::decode` of one data message of the protocol `protocol` (an index into
    /// `REMOTE_COMMAND_PROTOCOLS`, wrapped): a binary message, or a text message when `text`
    /// (then `payload` must be UTF-8, as a WebSocket text frame's is; `None` if not).
    pub fn websocket_message(
        protocol: usize,
        text: bool,
        payload: &[u8],
    ) -> Option<Result<Option<(u8, Bytes)>, wsstream::DecodeError>> {
        let protos = wsstream::REMOTE_COMMAND_PROTOCOLS;
        let proto = protos[protocol % protos.len()];
        let msg = if text {
            let s = std::str::from_utf8(payload).ok()?;
            axum::extract::ws::Message::Text(s.into())
        } else {
            axum::extract::ws::Message::Binary(Bytes::copy_from_slice(payload))
        };
        Some(wsstream::decode(proto, &msg))
    }

    /// A self access review (`kind` 0) or self rules review (any other) sent as protobuf, as
    /// the JSON object the facade reads from it (`None`: not a review it can read).
    pub fn self_review_protobuf(kind: u8, body: &[u8]) -> Option<serde_json::Value> {
        let kind = if kind == 0 {
            "SelfSubjectAccessReview"
        } else {
            "SelfSubjectRulesReview"
        };
        crate::server::apiserver::authorization::decode_protobuf(body, kind)
    }
}
