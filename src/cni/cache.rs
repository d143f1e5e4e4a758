//! The result cache: what ADD returned, kept on disk so that DEL and CHECK after an agent
//! restart hand the plugins the same `prevResult` (libcni's `cacheAdd`/`getCachedResult`/
//! `cacheDel`, file format `cniCacheV1`).
//!
//! ```text
//! <cache-dir>/results/<network>-<containerID>-<ifname>    0600, in a 0700 dir
//! {"kind":"cniCacheV1","containerId":..,"config":<the list's JSON, base64>,"ifName":..,
//!  "networkName":..,"netns":..,"cniArgs":[[k,v],..],"capabilityArgs":{..},"result":{..}}
//! ```
//! `config` is base64 because libcni's field is a Go `[]byte`, which `encoding/json` writes
//! that way; keeping the format means `cnitool` and libcni-based runtimes read these files
//! and ours read theirs. Unlike libcni (`os.WriteFile`), the file is written to a temporary
//! name and renamed, so a crash mid-write never leaves half a file for DEL to trip on.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniError;

/// libcni's `CacheDir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// The cache file's `kind`.
const KIND: &str = "cniCacheV1";

/// Largest cache file read back: a config (≤ 1 MiB, a third more in base64) and a result
/// (≤ 1 MiB), with room to spare.
const MAX_CACHE_BYTES: u64 = 4 << 20;

/// One cached attachment: a network's ADD for one container and interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    pub kind: String,
    pub container_id: String,
    /// The network's config list as JSON (base64 in the file).
    #[serde(with = "b64")]
    pub config: Vec<u8>,
    pub if_name: String,
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// `<cache_dir>/results/<network>-<container_id>-<ifname>` (libcni's `getCacheFilePath`). The
/// three parts are checked by the caller: no `/`, no `..`.
pub fn cache_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

impl CachedAttachment {
    /// Write atomically: a temporary file in the same dir, mode 0600, then `rename`.
    pub(crate) fn write(&self, cache_dir: &Path) -> Result<PathBuf, CniError> {
        let path = cache_path(
            cache_dir,
            &self.network_name,
            &self.container_id,
            &self.if_name,
        );
        let err = |source| CniError::Cache {
            network: self.network_name.clone(),
            path: path.clone(),
            source,
        };
        let dir = cache_dir.join("results");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(err)?;
        let bytes = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        // The DEL after a power loss needs this file: synced, once per pod start (about a
        // millisecond).
        super::write_file_atomically(&path, &bytes, 0o600).map_err(err)?;
        Ok(path)
    }

    /// Read one back. `Ok(None)` if there is none (libcni ignores read errors the same way).
    pub(crate) fn read(
        cache_dir: &Path,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let path = cache_path(cache_dir, network, container_id, ifname);
        let err = |source| CniError::Cache {
            network: network.to_string(),
            path: path.clone(),
            source,
        };
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let mut bytes = Vec::new();
        f.take(MAX_CACHE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        if bytes.len() as u64 > MAX_CACHE_BYTES {
            return Err(err(std::io::Error::other(format!(
                "larger than {MAX_CACHE_BYTES} bytes"
            ))));
        }
        let c: CachedAttachment = serde_json::from_slice(&bytes)
            .map_err(|e| err(std::io::Error::other(format!("not a cache entry: {e}"))))?;
        if c.kind != KIND {
            return Err(err(std::io::Error::other(format!(
                "kind {:?}, not {KIND:?}",
                c.kind
            ))));
        }
        Ok(Some(c))
    }

    /// Remove it (after a successful DEL); a missing file is not an error.
    pub(crate) fn remove(
        cache_dir: &Path,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), CniError> {
        let path = cache_path(cache_dir, network, container_id, ifname);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CniError::Cache {
                network: network.to_string(),
                path,
                source,
            }),
        }
    }

    /// A new entry of kind `cniCacheV1`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        container_id: &str,
        config: &[u8],
        if_name: &str,
        network_name: &str,
        netns: &Path,
        cni_args: &[(String, String)],
        capability_args: &Map<String, Value>,
        result: &Value,
    ) -> CachedAttachment {
        CachedAttachment {
            kind: KIND.to_string(),
            container_id: container_id.to_string(),
            config: config.to_vec(),
            if_name: if_name.to_string(),
            network_name: network_name.to_string(),
            netns: netns.display().to_string(),
            cni_args: cni_args
                .iter()
                .map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
            capability_args: capability_args.clone(),
            result: result.clone(),
        }
    }
}

/// The base64 of `bytes`, as the cache file holds `config` (for tests and tools).
pub fn encode_config(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry() -> CachedAttachment {
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            serde_json::json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        );
        CachedAttachment::new(
            "sandbox1",
            br#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#,
            "eth0",
            "pods",
            Path::new("/run/netns/x"),
            &[("K8S_POD_NAME".into(), "web".into())],
            &caps,
            &serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": "10.88.0.2/24"}]}),
        )
    }

    #[test]
    fn round_trip_in_libcnis_format() {
        let d = tempfile::tempdir().unwrap();
        let e = entry();
        let path = e.write(d.path()).unwrap();
        assert_eq!(path, d.path().join("results/pods-sandbox1-eth0"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(d.path().join("results"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let text: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(text["kind"], "cniCacheV1");
        assert_eq!(text["containerId"], "sandbox1");
        assert_eq!(text["ifName"], "eth0");
        assert_eq!(text["networkName"], "pods");
        assert_eq!(text["netns"], "/run/netns/x");
        assert_eq!(
            text["cniArgs"],
            serde_json::json!([["K8S_POD_NAME", "web"]])
        );
        assert_eq!(text["capabilityArgs"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(text["config"], encode_config(&e.config));
        assert_eq!(text["result"]["ips"][0]["address"], "10.88.0.2/24");
        let back = CachedAttachment::read(d.path(), "pods", "sandbox1", "eth0").unwrap();
        assert_eq!(back, Some(e));
        // No temporary file left beside it.
        assert_eq!(
            std::fs::read_dir(d.path().join("results")).unwrap().count(),
            1
        );
        CachedAttachment::remove(d.path(), "pods", "sandbox1", "eth0").unwrap();
        CachedAttachment::remove(d.path(), "pods", "sandbox1", "eth0").unwrap();
        assert_eq!(
            CachedAttachment::read(d.path(), "pods", "sandbox1", "eth0").unwrap(),
            None
        );
    }

    #[test]
    fn a_libcni_written_entry_reads() {
        // As libcni writes it: Go's field order, empty fields left out.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("results")).unwrap();
        let config = br#"{"name":"n","cniVersion":"0.4.0","plugins":[{"type":"ptp"}]}"#;
        let text = format!(
            r#"{{"kind":"cniCacheV1","containerId":"c","config":"{}","ifName":"eth0","networkName":"n","result":{{"cniVersion":"0.4.0"}}}}"#,
            encode_config(config)
        );
        std::fs::write(d.path().join("results/n-c-eth0"), text).unwrap();
        let e = CachedAttachment::read(d.path(), "n", "c", "eth0")
            .unwrap()
            .unwrap();
        assert_eq!(e.config, config);
        assert!(e.cni_args.is_empty() && e.capability_args.is_empty() && e.netns.is_empty());
    }

    #[test]
    fn a_wrong_kind_or_garbage_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("results")).unwrap();
        for text in [
            "{",
            r#"{"kind":"other","containerId":"c","config":"","ifName":"eth0","networkName":"n"}"#,
        ] {
            std::fs::write(d.path().join("results/n-c-eth0"), text).unwrap();
            let err = CachedAttachment::read(d.path(), "n", "c", "eth0")
                .unwrap_err()
                .to_string();
            assert!(err.contains("results/n-c-eth0"), "{err}");
        }
    }
}
