//! The node's image store under `<root-dir>/images/`: containerd's content store (blobs by
//! digest) and its overlayfs snapshotter's committed layers (one directory per chain ID) and
//! image records (name → manifest digest, with `lastUsed` for the image GC manager).
//!
//! ```text
//! images/lock                       flock: one writer (agent, CLI, concurrent pulls) at a time
//! images/blobs/sha256/<hex>         manifests, configs, compressed layers
//! images/layers/<chainID hex>/fs    the unpacked layer (an overlayfs lower dir)
//! images/layers/<chainID hex>/layer.json  diff_id, unpacked size, entries
//! images/refs/<name, escaped>.json  the image record
//! images/tmp/                       in-flight writes; emptied at every open under the lock
//! ```
//! Every write goes to `tmp/` first, is fsynced and renamed into place, so an interrupted pull
//! leaves only `tmp/` garbage that nothing reads.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::oci::{ImageConfig, Manifest};
use super::unpack::{self, Limits, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    Digest { expected: String, actual: String },
    #[error("blob {digest}: not a sha256 digest")]
    BadDigest { digest: String },
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("image {0:?} not found")]
    NotFound(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One layer of an image record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub chain_id: String,
    /// Compressed size (the blob).
    pub size: u64,
    /// Bytes of file contents once unpacked.
    pub unpacked_size: u64,
}

/// An image the node has (`refs/`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The normalized reference (`docker.io/library/nginx:1.27`).
    pub name: String,
    /// The image ID: the config's digest (as containerd's CRI reports it).
    pub id: String,
    pub manifest_digest: String,
    /// Bottom layer first.
    pub layers: Vec<LayerRecord>,
    /// Manifest + config + compressed layers: what `crictl images` shows.
    pub size: u64,
    /// Seconds since the epoch.
    pub pulled_at: u64,
    pub last_used: u64,
}

impl ImageRecord {
    /// Unpacked bytes, for imagefs accounting.
    pub fn unpacked_size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerMeta {
    diff_id: String,
    size: u64,
    entries: u64,
}

/// The store at `<root-dir>/images`.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    pub limits: Limits,
}

/// The exclusive store lock; released on drop.
pub struct StoreLock {
    _file: File,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn hex_of(digest: &str) -> Result<&str, StoreError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => Err(StoreError::BadDigest {
            digest: digest.to_string(),
        }),
    }
}

/// The chain ID of a layer over its parent chain (OCI image spec, `ChainID`).
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => digest_of(format!("{p} {diff_id}").as_bytes()),
    }
}

fn escape_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Open (creating) the store under `<root_dir>/images`.
    pub fn open(root_dir: &Path) -> Result<Self, StoreError> {
        let root = root_dir.join("images");
        for d in ["blobs/sha256", "layers", "refs", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        Ok(Store {
            root,
            limits: Limits::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the store's lock (blocking), and clear what an interrupted writer left in `tmp/`.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let p = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_at(&p))?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StoreError::Io {
                path: p,
                source: io::Error::last_os_error(),
            });
        }
        let tmp = self.root.join("tmp");
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
            }
        }
        Ok(StoreLock { _file: f })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// A fresh path in `tmp/`.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{:016x}", rand::random::<u64>()))
    }

    /// Move a fully written temp file into `blobs/` after checking its digest.
    pub fn commit_blob(&self, tmp: &Path, digest: &str) -> Result<PathBuf, StoreError> {
        let dst = self.blob_path(digest)?;
        let mut f = File::open(tmp).map_err(io_at(tmp))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(io_at(tmp))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let actual = format!("sha256:{}", hex::encode(h.finalize()));
        if actual != digest {
            let _ = fs::remove_file(tmp);
            return Err(StoreError::Digest {
                expected: digest.to_string(),
                actual,
            });
        }
        f.sync_all().map_err(io_at(tmp))?;
        fs::rename(tmp, &dst).map_err(io_at(&dst))?;
        fsync_dir(dst.parent().unwrap_or(&self.root)).map_err(io_at(&dst))?;
        Ok(dst)
    }

    /// Write `data` as the blob `digest` (verified).
    pub fn put_blob(&self, digest: &str, data: &[u8]) -> Result<PathBuf, StoreError> {
        if self.has_blob(digest) {
            return self.blob_path(digest);
        }
        let tmp = self.temp_path("blob");
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(data).map_err(io_at(&tmp))?;
        drop(f);
        self.commit_blob(&tmp, digest)
    }

    /// Copy `r` into a blob named by its own digest; returns (digest, size).
    pub fn ingest_any(&self, r: &mut dyn Read) -> Result<(String, u64), StoreError> {
        let tmp = self.temp_path("blob");
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf).map_err(io_at(&tmp))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            f.write_all(&buf[..k]).map_err(io_at(&tmp))?;
            n += k as u64;
        }
        f.sync_all().map_err(io_at(&tmp))?;
        drop(f);
        let digest = format!("sha256:{}", hex::encode(h.finalize()));
        let dst = self.blob_path(&digest)?;
        fs::rename(&tmp, &dst).map_err(io_at(&dst))?;
        Ok((digest, n))
    }

    /// Move a temp file whose digest the caller has verified while writing it into `blobs/`.
    pub fn commit_verified(&self, tmp: &Path, digest: &str) -> Result<PathBuf, StoreError> {
        let dst = self.blob_path(digest)?;
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_at(tmp))?;
        fs::rename(tmp, &dst).map_err(io_at(&dst))?;
        Ok(dst)
    }

    /// Copy `r` into the blob `digest` (verified), returning its size.
    pub fn ingest(&self, digest: &str, r: &mut dyn Read) -> Result<u64, StoreError> {
        hex_of(digest)?;
        let tmp = self.temp_path("blob");
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        let n = io::copy(r, &mut f).map_err(io_at(&tmp))?;
        drop(f);
        self.commit_blob(&tmp, digest)?;
        Ok(n)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(io_at(&p))
    }

    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(hex_of(chain_id)?))
    }

    /// The unpacked layer directories of an image, topmost first (overlayfs `lowerdir` order).
    pub fn lower_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
        rec.layers
            .iter()
            .rev()
            .map(|l| Ok(self.layer_dir(&l.chain_id)?.join("fs")))
            .collect()
    }

    /// Unpack the blob `digest` as the layer `chain` unless it is there already; returns its
    /// unpacked size.
    pub fn ensure_layer(
        &self,
        digest: &str,
        diff_id: &str,
        chain: &str,
    ) -> Result<u64, StoreError> {
        let dir = self.layer_dir(chain)?;
        let meta_path = dir.join("layer.json");
        if let Ok(b) = fs::read(&meta_path)
            && let Ok(m) = serde_json::from_slice::<LayerMeta>(&b)
        {
            return Ok(m.size);
        }
        let blob = self.blob_path(digest)?;
        let tmp = self.temp_path("layer");
        let fs_dir = tmp.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_at(&fs_dir))?;
        let u = unpack::unpack_layer(&blob, &fs_dir, Some(digest), Some(diff_id), &self.limits)
            .map_err(|source| {
                let _ = fs::remove_dir_all(&tmp);
                StoreError::Unpack {
                    digest: digest.to_string(),
                    source,
                }
            })?;
        let meta = LayerMeta {
            diff_id: u.diff_id,
            size: u.size,
            entries: u.entries,
        };
        let m = tmp.join("layer.json");
        fs::write(&m, serde_json::to_vec(&meta).unwrap_or_default()).map_err(io_at(&m))?;
        // syncfs: the layer's files reach the disk before its name appears.
        let d = File::open(&tmp).map_err(io_at(&tmp))?;
        unsafe { libc::syncfs(d.as_raw_fd()) };
        if dir.exists() {
            let _ = fs::remove_dir_all(&dir);
        }
        fs::rename(&tmp, &dir).map_err(io_at(&dir))?;
        Ok(meta.size)
    }

    /// Record an image whose manifest, config and layer blobs are all in the store: verify
    /// and unpack each layer, then write its record.
    pub fn commit_image(
        &self,
        name: &str,
        manifest_bytes: &[u8],
    ) -> Result<ImageRecord, StoreError> {
        let manifest_digest = digest_of(manifest_bytes);
        let manifest: Manifest =
            serde_json::from_slice(manifest_bytes).map_err(|source| StoreError::Json {
                what: format!("manifest {manifest_digest}"),
                source,
            })?;
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| StoreError::Json {
                what: format!("image config {}", manifest.config.digest),
                source,
            })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(StoreError::Invalid {
                what: format!("image {name}"),
                why: format!(
                    "{} layers but {} diff_ids in the config",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        self.put_blob(&manifest_digest, manifest_bytes)?;
        let mut layers = Vec::new();
        let mut parent: Option<String> = None;
        for (l, diff) in manifest.layers.iter().zip(diff_ids) {
            let chain = chain_id(parent.as_deref(), diff);
            let unpacked = self.ensure_layer(&l.digest, diff, &chain)?;
            layers.push(LayerRecord {
                digest: l.digest.clone(),
                diff_id: diff.clone(),
                chain_id: chain.clone(),
                size: l.size.max(0) as u64,
                unpacked_size: unpacked,
            });
            parent = Some(chain);
        }
        let size = manifest_bytes.len() as u64
            + config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        let t = now();
        let rec = ImageRecord {
            name: name.to_string(),
            id: manifest.config.digest.clone(),
            manifest_digest,
            layers,
            size,
            pulled_at: t,
            last_used: t,
        };
        self.write_record(&rec)?;
        Ok(rec)
    }

    fn ref_path(&self, name: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(format!("{}.json", escape_name(name)))
    }

    pub fn write_record(&self, rec: &ImageRecord) -> Result<(), StoreError> {
        let dst = self.ref_path(&rec.name);
        let tmp = self.temp_path("ref");
        let data = serde_json::to_vec_pretty(rec).map_err(|source| StoreError::Json {
            what: rec.name.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(&data).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &dst).map_err(io_at(&dst))?;
        Ok(())
    }

    /// The record for a normalized name, or for an image ID / manifest digest (or a unique
    /// prefix of the ID's hex, as `crictl` accepts).
    pub fn get(&self, name: &str) -> Result<ImageRecord, StoreError> {
        if let Ok(b) = fs::read(self.ref_path(name)) {
            return serde_json::from_slice(&b).map_err(|source| StoreError::Json {
                what: name.to_string(),
                source,
            });
        }
        let found: Vec<ImageRecord> = self
            .list()?
            .into_iter()
            .filter(|r| {
                r.id == name
                    || r.manifest_digest == name
                    || (name.len() >= 6 && r.id.trim_start_matches("sha256:").starts_with(name))
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(StoreError::NotFound(name.to_string())),
        }
    }

    /// Every image record, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("refs");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_at(&dir))?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(b) = fs::read(&p)
                && let Ok(r) = serde_json::from_slice::<ImageRecord>(&b)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Mark an image used now (for LRU).
    pub fn touch(&self, name: &str) -> Result<(), StoreError> {
        let mut r = self.get(name)?;
        r.last_used = now();
        self.write_record(&r)
    }

    /// Remove an image's record; its blobs and layers go at the next [`Store::sweep`].
    pub fn remove(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let r = self.get(name)?;
        let p = self.ref_path(&r.name);
        fs::remove_file(&p).map_err(io_at(&p))?;
        Ok(r)
    }

    /// Delete blobs and layers no image record refers to (layers shared by a surviving image
    /// stay); returns the bytes freed.
    pub fn sweep(&self) -> Result<u64, StoreError> {
        let recs = self.list()?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for r in &recs {
            keep_blobs.insert(hex_of(&r.manifest_digest)?.to_string());
            keep_blobs.insert(hex_of(&r.id)?.to_string());
            for l in &r.layers {
                keep_blobs.insert(hex_of(&l.digest)?.to_string());
                keep_layers.insert(hex_of(&l.chain_id)?.to_string());
            }
        }
        let mut freed = 0;
        let blobs = self.root.join("blobs/sha256");
        for e in fs::read_dir(&blobs).map_err(io_at(&blobs))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&name) {
                freed += e.metadata().map_or(0, |m| m.len());
                let _ = fs::remove_file(e.path());
            }
        }
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers).map_err(io_at(&layers))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_layers.contains(&name) {
                let m = e.path().join("layer.json");
                freed += fs::read(&m)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok())
                    .map_or(0, |m| m.size);
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(freed)
    }

    /// Bytes the store holds by its own records (blobs + unpacked layers), not by `du`.
    pub fn usage(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        let blobs = self.root.join("blobs/sha256");
        for e in fs::read_dir(&blobs).map_err(io_at(&blobs))?.flatten() {
            total += e.metadata().map_or(0, |m| m.len());
        }
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers).map_err(io_at(&layers))?.flatten() {
            total += fs::read(e.path().join("layer.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok())
                .map_or(0, |m| m.size);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::unpack::tests::{TarBuilder, gzip, sha};

    /// Put a one-layer image into `store` as `name`; returns the manifest bytes.
    pub fn put_test_image(store: &Store, name: &str, file: &str) -> Vec<u8> {
        let tar = TarBuilder::new().file(file, b"data").finish();
        let blob = gzip(&tar);
        store.put_blob(&sha(&blob), &blob).unwrap();
        let config = serde_json::json!({"architecture":"amd64","os":"linux",
            "rootfs":{"type":"layers","diff_ids":[sha(&tar)]},"config":{}});
        let cb = serde_json::to_vec(&config).unwrap();
        store.put_blob(&sha(&cb), &cb).unwrap();
        let m = serde_json::json!({"schemaVersion":2,
            "mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":sha(&cb),"size":cb.len()},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":sha(&blob),"size":blob.len()}]});
        let mb = serde_json::to_vec(&m).unwrap();
        store.commit_image(name, &mb).unwrap();
        mb
    }

    #[test]
    fn commit_list_remove_sweep() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let _l = s.lock().unwrap();
        put_test_image(&s, "docker.io/library/a:1", "a");
        put_test_image(&s, "docker.io/library/b:1", "a"); // same layer: shared
        put_test_image(&s, "docker.io/library/c:1", "c");
        let recs = s.list().unwrap();
        assert_eq!(recs.len(), 3);
        let a = s.get("docker.io/library/a:1").unwrap();
        assert_eq!(a.layers[0].chain_id, a.layers[0].diff_id);
        let lower = s.lower_dirs(&a).unwrap();
        assert_eq!(fs::read(lower[0].join("a")).unwrap(), b"data");
        assert!(
            s.get(&a.id).is_ok() || s.list().unwrap().iter().filter(|r| r.id == a.id).count() > 1
        );
        s.remove("docker.io/library/a:1").unwrap();
        s.sweep().unwrap();
        // b still uses the shared layer.
        assert!(lower[0].join("a").exists());
        s.remove("docker.io/library/b:1").unwrap();
        s.sweep().unwrap();
        assert!(!lower[0].exists());
        assert!(s.get("docker.io/library/c:1").is_ok());
        assert!(s.usage().unwrap() > 0);
    }

    #[test]
    fn lock_excludes_a_second_writer() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let held = s.lock().unwrap();
        let s2 = s.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _l = s2.lock().unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn temp_leftovers_are_cleared_and_bad_digest_refused() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let p = s.temp_path("blob");
        fs::write(&p, b"half").unwrap();
        drop(s.lock().unwrap());
        assert!(!p.exists());
        let e = s.put_blob(&sha(b"x"), b"y").unwrap_err();
        assert!(matches!(e, StoreError::Digest { .. }));
        assert!(!s.has_blob(&sha(b"x")));
    }
}
