//! Images: the kubelet's image manager (`pkg/kubelet/images`: pull policy, back-off, serialized
//! pulls, image GC) and, below the CRI line, what containerd does for it: the content store
//! (blobs by digest), the overlayfs snapshotter's unpack (one directory per layer, whiteouts in
//! overlayfs form) and the registry client. `docs/images.md` describes the store and the trust
//! rules.
//!
//! Dependencies go one way: `reference`, `oci` ← `unpack` ← `store` ← `registry`, `archive`,
//! `gc` ← `manager` ← `cli`; `config` (the image config merged with the container) uses
//! `oci` and `runtime::env` only.

pub mod archive;
pub mod cli;
pub mod config;
pub mod gc;
pub mod manager;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use reference::{ImageRef, InvalidImageName};
pub use store::{ImageRecord, Store};
