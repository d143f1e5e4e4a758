//! Pulls over the OCI Distribution protocol through the `oci-client` crate (manifests, bearer
//! tokens from `WWW-Authenticate`, blobs streamed to a file with their digest verified), the
//! part of containerd's `remotes/docker` resolver and fetcher a kubelet node needs.
//!
//! Trust rules: HTTPS always, except to a loopback registry (`localhost`, `127.0.0.0/8`, `::1`:
//! Docker and containerd allow it too) or one listed as insecure in `<root-dir>/registries.conf`.
//! Node credentials come from a Docker-style `<root-dir>/config.json` (the kubelet's
//! `--root-dir` keyring path) or `--image-credential-file`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::oci::{self, Index, Manifest};
use super::reference::ImageRef;
use super::store::{ImageRecord, Store, StoreError, digest_of};

/// `<root-dir>/registries.conf` (YAML): `insecure: ["registry.lan:5000"]` lists registries
/// reached over plain HTTP. Nothing else is read.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistriesConf {
    #[serde(default)]
    pub insecure: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{path}: {why}")]
    Config { path: PathBuf, why: String },
    #[error("pull {image}: {source}")]
    Registry {
        image: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    #[error("pull {image}: manifest digest mismatch: expected {expected}, got {actual}")]
    ManifestDigest {
        image: String,
        expected: String,
        actual: String,
    },
    #[error("pull {image}: no manifest for platform {platform}")]
    NoPlatform { image: String, platform: String },
    #[error("pull {image}: {why}")]
    Invalid { image: String, why: String },
    #[error("pull {image}: {source}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
}

/// Where a pull looks for its settings.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// `<root-dir>`: `config.json` and `registries.conf` are read from here.
    pub root_dir: PathBuf,
    /// `--image-credential-file`: a Docker `config.json` read before `<root-dir>/config.json`.
    pub credential_file: Option<PathBuf>,
}

/// What a `Pulled` event needs.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub record: ImageRecord,
    /// Bytes fetched from the registry (blobs the store already had are not fetched).
    pub fetched: u64,
    pub duration: std::time::Duration,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn host_is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Plain HTTP only to a loopback registry or one `registries.conf` marks insecure.
pub fn plain_http(image: &ImageRef, conf: &RegistriesConf) -> bool {
    host_is_loopback(image.host()) || conf.insecure.iter().any(|r| r == &image.domain)
}

/// Credentials for `domain` from a Docker `config.json`, matching keys the way Docker does
/// (`host`, `https://host`, `http://host/...`; Docker Hub's `https://index.docker.io/v1/`).
pub fn credentials(path: &Path, domain: &str) -> Result<Option<RegistryAuth>, PullError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PullError::Config {
                path: path.to_path_buf(),
                why: e.to_string(),
            });
        }
    };
    let cfg: DockerConfig = serde_json::from_slice(&text).map_err(|e| PullError::Config {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let wanted = if domain == "docker.io" {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![domain]
    };
    for (key, a) in &cfg.auths {
        let k = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let k = k.split('/').next().unwrap_or(k);
        if !wanted.contains(&k) {
            continue;
        }
        if let (Some(u), Some(p)) = (&a.username, &a.password) {
            return Ok(Some(RegistryAuth::Basic(u.clone(), p.clone())));
        }
        if let Some(enc) = &a.auth {
            let dec = base64::engine::general_purpose::STANDARD
                .decode(enc.trim())
                .map_err(|e| PullError::Config {
                    path: path.to_path_buf(),
                    why: format!("auths[{key}].auth: {e}"),
                })?;
            let s = String::from_utf8_lossy(&dec);
            if let Some((u, p)) = s.split_once(':') {
                return Ok(Some(RegistryAuth::Basic(u.to_string(), p.to_string())));
            }
        }
    }
    Ok(None)
}

fn registries_conf(root_dir: &Path) -> Result<RegistriesConf, PullError> {
    let path = root_dir.join("registries.conf");
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_saphyr::from_str(&t).map_err(|e| PullError::Config {
            path,
            why: e.to_string(),
        }),
        Err(_) => Ok(RegistriesConf::default()),
    }
}

const ACCEPT: &[&str] = &[
    oci::OCI_MANIFEST,
    oci::DOCKER_MANIFEST,
    oci::OCI_INDEX,
    oci::DOCKER_LIST,
];

/// Pull `image` into `store`: manifest (resolving an index to this node's platform), config
/// and layers, each verified, then unpack. Holds the store lock throughout.
pub async fn pull(
    store: &Store,
    image: &ImageRef,
    opts: &PullOptions,
) -> Result<Pulled, PullError> {
    let start = Instant::now();
    let name = image.to_string();
    let reg_err = |source| PullError::Registry {
        image: name.clone(),
        source,
    };
    let st_err = |source| PullError::Store {
        image: name.clone(),
        source,
    };
    // The ring provider (the kubelet API's TLS uses it too); installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let conf = registries_conf(&opts.root_dir)?;
    let plain = plain_http(image, &conf);
    let protocol = if plain {
        ClientProtocol::HttpsExcept(vec![image.domain.clone()])
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        platform_resolver: None,
        ..Default::default()
    });
    let mut auth = None;
    if let Some(f) = &opts.credential_file {
        auth = credentials(f, &image.domain)?;
    }
    if auth.is_none() {
        auth = credentials(&opts.root_dir.join("config.json"), &image.domain)?;
    }
    let auth = auth.unwrap_or(RegistryAuth::Anonymous);
    let oref = image.to_oci();
    let join_err = |e: tokio::task::JoinError| PullError::Invalid {
        image: name.clone(),
        why: e.to_string(),
    };
    let store2 = store.clone();
    let lock = tokio::task::spawn_blocking(move || store2.lock())
        .await
        .map_err(join_err)?
        .map_err(st_err)?;
    let (mut body, _) = client
        .pull_manifest_raw(&oref, &auth, ACCEPT)
        .await
        .map_err(reg_err)?;
    let mut digest = digest_of(&body);
    if let Some(want) = &image.digest
        && want != &digest
    {
        return Err(PullError::ManifestDigest {
            image: name.clone(),
            expected: want.clone(),
            actual: digest,
        });
    }
    if oci::is_index(None, &body) {
        let index: Index = serde_json::from_slice(&body).map_err(|e| PullError::Invalid {
            image: name.clone(),
            why: format!("image index: {e}"),
        })?;
        let want = oci::node_platform();
        let d = oci::select_platform(&index, &want).ok_or_else(|| PullError::NoPlatform {
            image: name.clone(),
            platform: format!("{}/{}", want.os, want.architecture),
        })?;
        let by_digest = oci_client::Reference::with_digest(
            oref.registry().to_string(),
            oref.repository().to_string(),
            d.digest.clone(),
        );
        let (b, _) = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPT)
            .await
            .map_err(reg_err)?;
        digest = digest_of(&b);
        if digest != d.digest {
            return Err(PullError::ManifestDigest {
                image: name.clone(),
                expected: d.digest.clone(),
                actual: digest,
            });
        }
        body = b;
    }
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| PullError::Invalid {
        image: name.clone(),
        why: format!("manifest {digest}: {e}"),
    })?;
    let mut fetched = 0u64;
    for d in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        if store.has_blob(&d.digest) {
            continue;
        }
        let tmp = store.temp_path("pull");
        let file = tokio::fs::File::create(&tmp).await.map_err(|source| {
            st_err(StoreError::Io {
                path: tmp.clone(),
                source,
            })
        })?;
        let desc = OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            ..Default::default()
        };
        tracing::debug!(image = %name, blob = %d.digest, size = d.size, "fetching blob");
        // pull_blob streams to the file and verifies the digest (oci-client `Digester`); the
        // cap stops a registry that sends more than the manifest said.
        let capped = Capped {
            inner: file,
            left: if d.size > 0 { d.size as u64 } else { u64::MAX },
        };
        if let Err(e) = client.pull_blob(&oref, &desc, capped).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(reg_err(e));
        }
        fetched += std::fs::metadata(&tmp).map_or(0, |m| m.len());
        store.commit_verified(&tmp, &d.digest).map_err(st_err)?;
    }
    let store2 = store.clone();
    let n2 = name.clone();
    let record = tokio::task::spawn_blocking(move || {
        let r = store2.commit_image(&n2, &body);
        drop(lock);
        r
    })
    .await
    .map_err(join_err)?
    .map_err(st_err)?;
    Ok(Pulled {
        record,
        fetched,
        duration: start.elapsed(),
    })
}

/// A writer that refuses bytes past the descriptor's size.
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "blob larger than the size its descriptor gives, refused",
            )));
        }
        let p = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = p {
            self.left -= n as u64;
        }
        p
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_keys() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
            "127.0.0.1:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        assert!(matches!(credentials(&p, "docker.io").unwrap(),
            Some(RegistryAuth::Basic(u, p)) if u == "u" && p == "p"));
        assert!(matches!(credentials(&p, "127.0.0.1:5000").unwrap(),
            Some(RegistryAuth::Basic(u, _)) if u == "a"));
        assert!(credentials(&p, "quay.io").unwrap().is_none());
        assert!(
            credentials(&t.path().join("none"), "quay.io")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn plain_http_only_to_loopback_or_listed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("registries.conf"),
            "insecure: [\"registry.lan:5000\"]\n",
        )
        .unwrap();
        let conf = registries_conf(t.path()).unwrap();
        let p = |s: &str| plain_http(&ImageRef::parse(s).unwrap(), &conf);
        assert!(p("registry.lan:5000/a"));
        assert!(!p("registry.lan/a"));
        assert!(!p("registry.lan:5001/a"));
        assert!(p("localhost:5000/a"));
        assert!(p("127.0.0.1:5000/a"));
        assert!(p("[::1]:5000/a"));
        assert!(!p("nginx"));
        assert!(!plain_http(
            &ImageRef::parse("registry.lan:5000/a").unwrap(),
            &RegistriesConf::default()
        ));
        std::fs::write(t.path().join("registries.conf"), "insecure: 5").unwrap();
        assert!(registries_conf(t.path()).is_err());
    }

    #[test]
    fn loopback_only() {
        assert!(host_is_loopback("127.0.0.1"));
        assert!(host_is_loopback("::1"));
        assert!(host_is_loopback("localhost"));
        assert!(!host_is_loopback("10.0.0.1"));
        assert!(!host_is_loopback("registry.lan"));
    }
}
