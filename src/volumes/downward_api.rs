//! `downwardAPI` volumes, and `projected` volumes of `downwardAPI` sources: the pod's own
//! metadata and its containers' resources as files.
//!
//! Mirrors `pkg/volume/downwardapi/downwardapi.go` (`CollectData`: each item's `fieldRef` or
//! `resourceFieldRef` value, its `mode` or the volume's `defaultMode`, 0644 when unset) and
//! `pkg/volume/projected/projected.go` (the same for each `downwardAPI` source, in order; a
//! later source's file replaces an earlier one's). As in the kubelet the volume is a small
//! tmpfs (the plugins wrap a memory-backed emptyDir) under
//! `<pod>/volumes/kubernetes.io~downward-api/<name>` (or `kubernetes.io~projected`), written by
//! the atomic writer, and mounted read-only in the containers. Other projected sources
//! (service account tokens, config maps, secrets) reference API objects and are refused when
//! the manifest is read.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, Volume};

use super::atomic_writer::FileProjection;
use crate::runtime::env::NodeEnv;

/// The escaped plugin directory of `kubernetes.io/downward-api`.
pub const DOWNWARD_API_PLUGIN_DIR: &str = "kubernetes.io~downward-api";
/// The escaped plugin directory of `kubernetes.io/projected`.
pub const PROJECTED_PLUGIN_DIR: &str = "kubernetes.io~projected";
/// The mode of a file whose item and volume set none (`DownwardAPIVolumeSourceDefaultMode`).
pub const DEFAULT_MODE: i32 = 0o644;

/// The plugin directory of `v`, if it is a downward API or projected volume.
pub fn plugin_dir(v: &Volume) -> Option<&'static str> {
    if v.downward_api.is_some() {
        Some(DOWNWARD_API_PLUGIN_DIR)
    } else if v.projected.is_some() {
        Some(PROJECTED_PLUGIN_DIR)
    } else {
        None
    }
}

/// The files of one list of items (`CollectData`).
fn collect(
    pod: &Pod,
    node: &NodeEnv,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    out: &mut BTreeMap<String, FileProjection>,
) -> Result<(), String> {
    for item in items {
        super::atomic_writer::validate_path(&item.path)?;
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => super::super::runtime::env::volume_field_value(pod, &f.field_path)
                .ok_or_else(|| {
                    format!(
                        "{}: fieldRef {:?} is not one a volume offers (metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations)",
                        item.path, f.field_path
                    )
                })?,
            (None, Some(r)) => crate::runtime::env::volume_resource_value(
                pod,
                r.container_name.as_deref().unwrap_or_default(),
                node,
                &r.resource,
                r.divisor.as_ref().map(|d| &d.0),
            )
            .map_err(|e| format!("{}: {e}", item.path))?,
            _ => {
                return Err(format!(
                    "{}: exactly one of fieldRef and resourceFieldRef is needed",
                    item.path
                ));
            }
        };
        let mode = item.mode.unwrap_or(default_mode);
        out.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: (mode & 0o777) as u32,
            },
        );
    }
    Ok(())
}

/// The payload of a downward API or projected volume; `None` for other volume types.
pub fn payload(
    pod: &Pod,
    node: &NodeEnv,
    v: &Volume,
) -> Option<Result<BTreeMap<String, FileProjection>, String>> {
    let mut out = BTreeMap::new();
    if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
        let items = d.items.as_deref().unwrap_or_default();
        return Some(collect(pod, node, items, mode, &mut out).map(|()| out));
    }
    let p = v.projected.as_ref()?;
    let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
    for s in p.sources.iter().flatten() {
        if let Some(d) = &s.downward_api {
            let items = d.items.as_deref().unwrap_or_default();
            if let Err(e) = collect(pod, node, items, mode, &mut out) {
                return Some(Err(e));
            }
        }
    }
    Some(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "default", "uid": "u1",
                         "labels": {"tier": "front", "app": "web"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}],
                     "volumes": [{"name": "info", "downwardAPI": {"defaultMode": 288, "items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "meta/labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 256},
                        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
                        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "requests.cpu", "divisor": "1m"}}
                     ]}}]}
        }))
        .unwrap()
    }

    #[test]
    fn items_like_collect_data() {
        let p = pod();
        let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let out = payload(&p, &NodeEnv::default(), v).unwrap().unwrap();
        let text = |k: &str| String::from_utf8(out[k].data.clone()).unwrap();
        assert_eq!(text("name"), "web-0");
        assert_eq!(text("meta/labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(text("mem"), "64");
        assert_eq!(text("cpu"), "250");
        assert_eq!(out["name"].mode, 0o440);
        assert_eq!(out["meta/labels"].mode, 0o400);
    }

    #[test]
    fn what_a_volume_cannot_show_is_an_error() {
        let mut p = pod();
        let v: Volume =
            serde_json::from_value(serde_json::json!({"name": "x", "downwardAPI": {"items": [
            {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}))
            .unwrap();
        let e = payload(&p, &NodeEnv::default(), &v).unwrap().unwrap_err();
        assert!(
            e.starts_with("node: fieldRef \"spec.nodeName\" is not one a volume offers"),
            "{e}"
        );
        let v: Volume =
            serde_json::from_value(serde_json::json!({"name": "x", "downwardAPI": {"items": [
            {"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]}}))
            .unwrap();
        assert!(payload(&p, &NodeEnv::default(), &v).unwrap().is_err());
        p.metadata.labels = None;
        let v: Volume = serde_json::from_value(serde_json::json!({"name": "x", "projected": {"sources": [
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}))
        .unwrap();
        let out = payload(&p, &NodeEnv::default(), &v).unwrap().unwrap();
        assert_eq!(out["labels"].data, b"");
        assert_eq!(out["labels"].mode, 0o644);
    }
}
