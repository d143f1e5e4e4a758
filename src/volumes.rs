//! Pod volumes on the node: the pod directory under `--root-dir` and its `emptyDir` volumes.
//!
//! Mirrors the directory layout of `pkg/kubelet/kubelet_getters.go` (`getPodDir`,
//! `getPodVolumesDir`, `getPodVolumeDir`: `<root-dir>/pods/<uid>/volumes/<plugin>/<volume>`,
//! the plugin name escaped as `kubernetes.io~empty-dir`) and `pkg/volume/emptydir/empty_dir.go`
//! (`SetUp`: a directory with mode 0777 on the node's disk; `TearDown`: removed with its
//! contents). The volume manager's attach/mount loop is not modelled: a pod's emptyDir
//! directories are created by its worker before the first container starts and removed when
//! the pod has terminated (the kubelet unmounts and tears down the volumes of terminated pods,
//! and `cleanupOrphanedPodDirs` removes the pod directory).
//!
//! A container's `volumeMounts` of emptyDir volumes become bind mounts into its mount namespace
//! ([`container_mounts`], the kubelet's `makeMounts` in `pkg/kubelet/kubelet_pods.go`), at
//! `mountPath`, read-only with `readOnly: true`. What is written there counts as the pod's
//! local ephemeral storage for eviction, as in the kubelet. Not yet: `subPath` (such a mount is
//! left out, and validation says so), other volume types (issue 12), `medium: Memory`.
//! With the deprecated `ImageRootfs=false` containers have no mount namespace and nothing is
//! mounted; they reach the directory at its node path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// The escaped plugin directory name of `kubernetes.io/empty-dir`.
pub const EMPTY_DIR_PLUGIN_DIR: &str = "kubernetes.io~empty-dir";

/// Errors setting up a pod's volumes, naming the directory.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A directory could not be created or given its mode.
    #[error("set up emptyDir volume {volume:?} at {path}: {source}")]
    SetUp {
        /// The volume's name.
        volume: String,
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The pod's UID is not one plain file name, so the pod directory would not be under
    /// `<root-dir>/pods` (validation refuses such UIDs; this is the second line of defence).
    #[error("pod UID {uid:?} is not a single file name; refusing to set up volumes for it")]
    UnsafeUid {
        /// The UID.
        uid: String,
    },
}

/// True if `uid` is one normal path component (no `/`, not `.` or `..`, not empty), so that
/// `<root-dir>/pods/<uid>` stays under `<root-dir>/pods` (`Path::join` with an absolute path
/// would replace the base: the audit's finding 4).
pub fn is_safe_uid(uid: &str) -> bool {
    let mut c = Path::new(uid).components();
    !uid.contains('/')
        && matches!(c.next(), Some(std::path::Component::Normal(_)))
        && c.next().is_none()
}

/// `<root_dir>/pods/<uid>` (`getPodDir`). Only for a UID that passed validation: writers and
/// the teardown check [`is_safe_uid`] themselves.
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

/// `<root_dir>/pods/<uid>/volumes/kubernetes.io~empty-dir` (`getPodVolumesDir` + plugin).
pub fn empty_dirs_dir(root_dir: &Path, uid: &str) -> PathBuf {
    pod_dir(root_dir, uid)
        .join("volumes")
        .join(EMPTY_DIR_PLUGIN_DIR)
}

/// The directory of one emptyDir volume (`getPodVolumeDir`).
pub fn empty_dir_path(root_dir: &Path, uid: &str, volume: &str) -> PathBuf {
    empty_dirs_dir(root_dir, uid).join(volume)
}

/// One volume mount of a container: the volume's directory on the node and where the
/// container sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMount {
    /// The volume's directory on the node.
    pub host_path: PathBuf,
    /// `mountPath`, made absolute (a relative path is taken from `/`).
    pub container_path: String,
    /// `readOnly`.
    pub read_only: bool,
}

/// The mounts of `container`'s `volumeMounts` that name an emptyDir volume of `pod`, in spec
/// order (`makeMounts`). A mount with a `subPath` is left out (not implemented; validation
/// reports it), as are mounts of volume types minikubelet does not implement.
pub fn container_mounts(root_dir: &Path, pod: &Pod, container: &Container) -> Vec<ContainerMount> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let empty_dirs = empty_dir_volumes(pod);
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| empty_dirs.contains(&m.name))
        .filter(|m| m.sub_path.as_deref().unwrap_or_default().is_empty())
        .filter(|m| m.sub_path_expr.as_deref().unwrap_or_default().is_empty())
        .map(|m| ContainerMount {
            host_path: empty_dir_path(root_dir, uid, &m.name),
            container_path: if m.mount_path.starts_with('/') {
                m.mount_path.clone()
            } else {
                format!("/{}", m.mount_path)
            },
            read_only: m.read_only.unwrap_or(false),
        })
        .collect()
}

/// The names of the pod's emptyDir volumes, in spec order.
pub fn empty_dir_volumes(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.empty_dir.is_some())
        .map(|v| v.name.clone())
        .collect()
}

/// `emptyDir` `SetUp` for every emptyDir volume of the pod: the directory, mode 0777 (the
/// kubelet's default for a disk-backed emptyDir). Existing directories (an agent restart) keep
/// their contents, as the kubelet's do.
pub fn set_up_pod_volumes(root_dir: &Path, pod: &Pod) -> Result<Vec<PathBuf>, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if !is_safe_uid(uid) {
        return Err(VolumeError::UnsafeUid {
            uid: uid.to_string(),
        });
    }
    let mut out = Vec::new();
    for name in empty_dir_volumes(pod) {
        let path = empty_dir_path(root_dir, uid, &name);
        let err = |source| VolumeError::SetUp {
            volume: name.clone(),
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(err)?;
        if let Some(group) = fs_group(pod) {
            set_volume_ownership(&path, group).map_err(err)?;
        }
        out.push(path);
    }
    Ok(out)
}

/// The pod's `securityContext.fsGroup`, if it is a valid group id.
fn fs_group(pod: &Pod) -> Option<u32> {
    let sc = pod.spec.as_ref()?.security_context.as_ref()?;
    u32::try_from(sc.fs_group?).ok()
}

/// `SetVolumeOwnership` (`pkg/volume/volume_linux.go`) with `fsGroupChangePolicy: Always`:
/// everything in the volume gets group `group`, read-write for the group, and directories also
/// the setgid bit and group search, so that what the containers create inherits the group.
/// Symlinks get the group but no mode (they have none). Deviation: `OnRootMismatch` is not
/// told apart (an emptyDir is new, or small, when this runs).
fn set_volume_ownership(path: &Path, group: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, None, Some(group))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mode = meta.permissions().mode() | 0o660;
    if meta.is_dir() {
        mode |= 0o2000 | 0o110;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            set_volume_ownership(&entry?.path(), group)?;
        }
    }
    Ok(())
}

/// `TearDown` of every volume and removal of the pod directory, once the pod has terminated.
/// Failures are logged: a directory left behind only costs disk space.
pub fn tear_down_pod_dir(root_dir: &Path, uid: &str) {
    if uid.is_empty() {
        return;
    }
    if !is_safe_uid(uid) {
        tracing::error!(podUID = %uid, "pod UID is not a single file name; not removing anything for it");
        return;
    }
    let dir = pod_dir(root_dir, uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {
            tracing::info!(path = %dir.display(), "removed the pod directory and its emptyDir volumes")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "remove pod directory"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}},
                {"name": "host", "hostPath": {"path": "/tmp"}},
                {"name": "scratch", "emptyDir": {}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn container_mounts_of_empty_dirs() {
        let p = pod();
        let c: Container =
            serde_json::from_value(serde_json::json!({"name": "c", "volumeMounts": [
                {"name": "cache", "mountPath": "/cache"},
                {"name": "host", "mountPath": "/host"},
                {"name": "scratch", "mountPath": "scratch", "readOnly": true},
                {"name": "cache", "mountPath": "/sub", "subPath": "x"}
            ]}))
            .unwrap();
        let root = Path::new("/r");
        assert_eq!(
            container_mounts(root, &p, &c),
            vec![
                ContainerMount {
                    host_path: empty_dir_path(root, "u1", "cache"),
                    container_path: "/cache".into(),
                    read_only: false,
                },
                ContainerMount {
                    host_path: empty_dir_path(root, "u1", "scratch"),
                    container_path: "/scratch".into(),
                    read_only: true,
                },
            ]
        );
    }

    #[test]
    fn empty_dirs_are_set_up_and_torn_down() {
        let root = tempfile::tempdir().unwrap();
        let p = pod();
        assert_eq!(empty_dir_volumes(&p), vec!["cache", "scratch"]);
        let dirs = set_up_pod_volumes(root.path(), &p).unwrap();
        assert_eq!(
            dirs[0],
            root.path()
                .join("pods/u1/volumes/kubernetes.io~empty-dir/cache")
        );
        for d in &dirs {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o777);
        }
        std::fs::write(dirs[1].join("f"), b"x").unwrap();
        // Set up again (agent restart): contents stay.
        set_up_pod_volumes(root.path(), &p).unwrap();
        assert!(dirs[1].join("f").exists());
        tear_down_pod_dir(root.path(), "u1");
        assert!(!root.path().join("pods/u1").exists());
        assert!(root.path().join("pods").exists());
        tear_down_pod_dir(root.path(), "u1");
    }

    #[test]
    fn a_uid_that_is_not_one_file_name_touches_nothing() {
        let root = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        std::fs::write(victim.path().join("f"), b"x").unwrap();
        std::fs::create_dir_all(root.path().join("pods")).unwrap();
        std::fs::write(root.path().join("keep"), b"x").unwrap();
        let abs = victim.path().to_str().unwrap().to_string();
        for uid in [abs.as_str(), "..", ".", "a/b", "a/", "/"] {
            assert!(!is_safe_uid(uid), "{uid}");
            let mut p = pod();
            p.metadata.uid = Some(uid.to_string());
            assert!(matches!(
                set_up_pod_volumes(root.path(), &p),
                Err(VolumeError::UnsafeUid { .. })
            ));
            tear_down_pod_dir(root.path(), uid);
        }
        assert!(victim.path().join("f").exists());
        assert!(root.path().join("keep").exists());
        assert!(!victim.path().join("volumes").exists());
        assert!(is_safe_uid("3b5e6c1e-0d7a-4a0e-9a55-2f1c4c7c9d10"));
    }
}
