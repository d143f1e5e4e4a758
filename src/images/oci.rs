//! The OCI image-spec (and Docker schema 2) documents the store reads: manifest, index, image
//! config. Only the fields a kubelet needs; unknown fields are ignored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The image config's `config` object (the process defaults).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ProcessConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
}

/// This node's platform in Go's names (`GOARCH`), as registries label manifests.
pub fn node_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    let variant = (arch == "arm64").then(|| "v8".to_string());
    Platform {
        architecture: arch.to_string(),
        os: "linux".to_string(),
        variant,
    }
}

/// True if the document is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: Option<&str>, body: &[u8]) -> bool {
    match media_type {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        _ => serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("manifests").is_some()),
    }
}

/// Pick the entry for `want` from an index, as containerd's platform matcher does: os and
/// architecture must match; the variant too when both sides name one.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && match (&p.variant, &want.variant) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_this_nodes_platform() {
        let idx: Index = serde_json::from_value(serde_json::json!({"manifests":[
            {"digest":"sha256:a","platform":{"architecture":"s390x","os":"linux"}},
            {"digest":"sha256:b","platform":{"architecture":node_platform().architecture,"os":"linux"}},
            {"digest":"sha256:c","platform":{"architecture":node_platform().architecture,"os":"windows"}}
        ]}))
        .unwrap();
        assert_eq!(
            select_platform(&idx, &node_platform()).unwrap().digest,
            "sha256:b"
        );
        assert!(is_index(None, br#"{"manifests":[]}"#));
        assert!(!is_index(Some(OCI_MANIFEST), br#"{"manifests":[]}"#));
    }
}
