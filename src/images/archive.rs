//! Offline import of image archives, as `ctr images import` and k3s's air-gap images do:
//! an OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/`) or a `docker save` tar
//! (`manifest.json` listing `Config`, `RepoTags`, `Layers`). Every file is streamed into the
//! store as a blob named by its own digest (a `blobs/sha256/<hex>` whose content does not match
//! its name is refused); then each image's layers are verified and unpacked like a pull's.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::oci::{self, Descriptor, Index, Manifest};
use super::reference::ImageRef;
use super::store::{ImageRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("import {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("import {path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("import {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The annotation holding an image's full name in OCI archives made by containerd/nerdctl.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation holding a reference or just a tag.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Import every image of the archive at `path`; `name` names images the archive leaves
/// unnamed (or overrides a bare tag).
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, ImportError> {
    let invalid = |why: String| ImportError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let st = |source| ImportError::Store {
        path: path.to_path_buf(),
        source,
    };
    let _lock = store.lock().map_err(st)?;
    let f = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Archives are often compressed (`docker save | gzip`).
    let mut head = [0u8; 4];
    let reader: Box<dyn std::io::Read> = {
        use std::io::Read;
        let mut f2 = File::open(path).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let n = f2.read(&mut head).unwrap_or(0);
        match super::unpack::detect(&head[..n]) {
            super::unpack::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            super::unpack::Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(f).map_err(|source| ImportError::Io {
                    path: path.to_path_buf(),
                    source,
                })?,
            ),
            super::unpack::Compression::None => Box::new(f),
        }
    };
    let mut ar = tar::Archive::new(reader);
    let mut files: HashMap<String, String> = HashMap::new();
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    for e in ar.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let p = e
            .path()
            .map_err(io)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let (digest, _) = store.ingest_any(&mut e).map_err(st)?;
        if let Some(hex) = p.strip_prefix("blobs/sha256/")
            && digest.strip_prefix("sha256:") != Some(hex)
        {
            return Err(invalid(format!("{p}: content digest is {digest}, refused")));
        }
        files.insert(p, digest);
    }
    let read = |p: &str| -> Result<Vec<u8>, ImportError> {
        let d = files
            .get(p)
            .ok_or_else(|| invalid(format!("{p} missing from the archive")))?;
        store.read_blob(d).map_err(st)
    };
    let mut out = Vec::new();
    if files.contains_key("index.json") {
        let index: Index = serde_json::from_slice(&read("index.json")?)
            .map_err(|e| invalid(format!("index.json: {e}")))?;
        for d in &index.manifests {
            let ann = d.annotations.clone().unwrap_or_default();
            let full = ann
                .get(CONTAINERD_NAME)
                .cloned()
                .or_else(|| ann.get(OCI_REF_NAME).filter(|r| r.contains('/')).cloned());
            let image = match (name, full) {
                (Some(n), _) => n.to_string(),
                (None, Some(f)) => f,
                (None, None) => {
                    return Err(invalid(
                        "the archive does not name its image: give --name".into(),
                    ));
                }
            };
            let image = ImageRef::parse(&image)
                .map_err(|e| invalid(e.to_string()))?
                .to_string();
            let mbytes = resolve_manifest(store, d).map_err(&invalid)?;
            out.push(store.commit_image(&image, &mbytes).map_err(st)?);
        }
    } else if files.contains_key("manifest.json") {
        let entries: Vec<DockerEntry> = serde_json::from_slice(&read("manifest.json")?)
            .map_err(|e| invalid(format!("manifest.json: {e}")))?;
        for e in entries {
            let cfg_digest = files
                .get(&e.config)
                .ok_or_else(|| invalid(format!("{} missing", e.config)))?
                .clone();
            let cfg_size = store.read_blob(&cfg_digest).map_err(st)?.len();
            let mut layers = Vec::new();
            for l in &e.layers {
                let d = files
                    .get(l)
                    .ok_or_else(|| invalid(format!("{l} missing")))?;
                let size =
                    std::fs::metadata(store.blob_path(d).map_err(st)?).map_or(0, |m| m.len());
                layers.push(Descriptor {
                    media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
                    digest: d.clone(),
                    size: size as i64,
                    ..Default::default()
                });
            }
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": oci::DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "digest": cfg_digest, "size": cfg_size},
                "layers": layers,
            });
            let mbytes = serde_json::to_vec(&m).map_err(|e| invalid(e.to_string()))?;
            let mut names: Vec<String> = e.repo_tags.clone().unwrap_or_default();
            if let Some(n) = name {
                names = vec![n.to_string()];
            }
            if names.is_empty() {
                return Err(invalid(
                    "the archive does not name its image: give --name".into(),
                ));
            }
            for n in names {
                let n = ImageRef::parse(&n)
                    .map_err(|e| invalid(e.to_string()))?
                    .to_string();
                out.push(store.commit_image(&n, &mbytes).map_err(st)?);
            }
        }
    } else {
        return Err(invalid(
            "neither an OCI layout (index.json) nor a docker save archive (manifest.json)".into(),
        ));
    }
    store.sweep().map_err(st)?;
    Ok(out)
}

/// The manifest bytes for an index entry, descending into nested indexes by platform.
fn resolve_manifest(store: &Store, d: &Descriptor) -> Result<Vec<u8>, String> {
    let mut d = d.clone();
    for _ in 0..4 {
        let b = store.read_blob(&d.digest).map_err(|e| e.to_string())?;
        if !oci::is_index(Some(d.media_type.as_str()).filter(|m| !m.is_empty()), &b) {
            serde_json::from_slice::<Manifest>(&b).map_err(|e| format!("{}: {e}", d.digest))?;
            return Ok(b);
        }
        let idx: Index = serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", d.digest))?;
        let p = oci::node_platform();
        d = oci::select_platform(&idx, &p)
            .ok_or_else(|| format!("no manifest for {}/{}", p.os, p.architecture))?
            .clone();
    }
    Err("image indexes nested too deep".into())
}
