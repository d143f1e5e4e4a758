//! Pod volumes on the node: the pod directory under `--root-dir`, its `emptyDir` volumes (on
//! disk, or a tmpfs for `medium: Memory`) and `hostPath` volumes.
//!
//! Mirrors the directory layout of `pkg/kubelet/kubelet_getters.go` (`getPodDir`,
//! `getPodVolumesDir`, `getPodVolumeDir`: `<root-dir>/pods/<uid>/volumes/<plugin>/<volume>`,
//! the plugin name escaped as `kubernetes.io~empty-dir`), `pkg/volume/emptydir/empty_dir.go`
//! (`SetUp`: a directory with mode 0777 on the node's disk, or a tmpfs sized by
//! `calculateEmptyDirMemorySize`; `TearDown`: unmounted and removed with its contents) and
//! `pkg/volume/hostpath/host_path.go` (`checkType`: the `type` checks, with the kubelet's
//! messages; `DirectoryOrCreate` and `FileOrCreate` create what is missing). The volume
//! manager's attach/mount loop is not modelled: a pod's volumes are set up by its worker before
//! the first container starts (a failure is a `FailedMount` event, and the containers wait in
//! `ContainerCreating` until a later attempt succeeds) and torn down when the pod has
//! terminated (`cleanupOrphanedPodDirs`).
//!
//! A container's `volumeMounts` become bind mounts into its mount namespace
//! ([`container_mounts`], the kubelet's `makeMounts` in `pkg/kubelet/kubelet_pods.go`), at
//! `mountPath`, read-only with `readOnly: true`, with `mountPropagation` as containerd maps it.
//! What is written to a disk emptyDir counts as the pod's local ephemeral storage; a memory
//! emptyDir counts as the writer's memory, as in the kubelet. A `subPath` is prepared by
//! [`subpath`] so that it cannot leave its volume. [`admit`] refuses what is not implemented
//! yet (other volume types), rather than run the pod without it.
//! With the deprecated `ImageRootfs=false` containers have no mount namespace and nothing is
//! mounted; they reach the directory at its node path.

pub mod atomic_writer;
pub mod downward_api;
pub mod subpath;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// The escaped plugin directory name of `kubernetes.io/empty-dir`.
pub const EMPTY_DIR_PLUGIN_DIR: &str = "kubernetes.io~empty-dir";

/// The admission reason of a pod whose volumes minikubelet cannot set up as asked.
pub const VOLUME_NOT_SUPPORTED: &str = "VolumeNotSupported";

/// Errors setting up a pod's volumes, naming the directory.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A directory could not be created or given its mode.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {path}: {source}")]
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
    /// A hostPath's `type` check failed (the kubelet's message).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    HostPath {
        /// The volume's name.
        volume: String,
        /// e.g. `hostPath type check failed: /x is not a directory`.
        message: String,
    },
    /// A downward API item could not be resolved (the kubelet's `CollectData` error).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Payload {
        /// The volume's name.
        volume: String,
        /// The item and why.
        message: String,
    },
    /// A memory-backed emptyDir's tmpfs could not be mounted.
    #[error("MountVolume.SetUp failed for volume {volume:?} : mount tmpfs at {path}: {source}")]
    Tmpfs {
        /// The volume's name.
        volume: String,
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Why a pod's volumes are refused at admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// [`VOLUME_NOT_SUPPORTED`].
    pub reason: &'static str,
    /// The field and the fix.
    pub message: String,
}

pub use crate::pod_dirs::{is_safe_uid, pod_dir};

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

/// `mountPropagation` (`MountPropagationMode`), as containerd maps it onto the bind mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// `None` (the default): `rprivate`.
    #[default]
    Private,
    /// `HostToContainer`: `rslave`, mounts made on the node later appear in the container.
    HostToContainer,
    /// `Bidirectional` (privileged containers only): `rshared`, both ways.
    Bidirectional,
}

/// One volume mount of a container: the volume's directory on the node and where the
/// container sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMount {
    /// The volume's directory (or file) on the node.
    pub host_path: PathBuf,
    /// `mountPath`, made absolute (a relative path is taken from `/`).
    pub container_path: String,
    /// `readOnly`.
    pub read_only: bool,
    /// `mountPropagation`.
    pub propagation: Propagation,
}

/// The node path of volume `name` of `pod`, for the volume types minikubelet sets up, and
/// whether its mounts must be read-only (downward API and projected volumes, the kubelet's
/// `mustMountRO`).
fn volume_host_path(root_dir: &Path, pod: &Pod, name: &str) -> Option<(PathBuf, bool)> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let v = pod
        .spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)?;
    if v.empty_dir.is_some() {
        Some((empty_dir_path(root_dir, uid, name), false))
    } else if let Some(plugin) = downward_api::plugin_dir(v) {
        Some((plugin_volume_path(root_dir, uid, plugin, name), true))
    } else {
        v.host_path
            .as_ref()
            .map(|h| (PathBuf::from(&h.path), false))
    }
}

/// `<root_dir>/pods/<uid>/volumes/<plugin>/<name>`.
fn plugin_volume_path(root_dir: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pod_dir(root_dir, uid)
        .join("volumes")
        .join(plugin)
        .join(name)
}

/// The mounts of `container`'s `volumeMounts`, in spec order (`makeMounts`). A `subPath` (or
/// a `subPathExpr`, expanded from the container's environment `env`) is prepared by
/// [`subpath::prepare`] and its staging mount is what the container binds. A mount of an
/// unknown volume is left out (validation refuses it). The error is the container's
/// `CreateContainerConfigError` message.
pub fn container_mounts(
    root_dir: &Path,
    pod: &Pod,
    container: &Container,
    env: &[(String, String)],
) -> Result<Vec<ContainerMount>, String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (j, m) in container.volume_mounts.iter().flatten().enumerate() {
        let Some((volume, must_read_only)) = volume_host_path(root_dir, pod, &m.name) else {
            continue;
        };
        let fail = |e: subpath::SubPathError| {
            format!(
                "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                m.name, container.name
            )
        };
        let sub = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(s), _) if !s.is_empty() => Some(s.to_string()),
            (_, Some(e)) if !e.is_empty() => {
                Some(subpath::expand_sub_path_expr(e, env).map_err(fail)?)
            }
            _ => None,
        };
        let host_path = match sub {
            Some(sub) if !is_safe_uid(uid) => {
                return Err(format!("pod UID {uid:?} is not a single file name ({sub})"));
            }
            Some(sub) => subpath::prepare(
                &pod_dir(root_dir, uid),
                &m.name,
                &container.name,
                j,
                &volume,
                Path::new(&sub),
            )
            .map_err(fail)?,
            None => volume,
        };
        out.push(ContainerMount {
            host_path,
            container_path: if m.mount_path.starts_with('/') {
                m.mount_path.clone()
            } else {
                format!("/{}", m.mount_path)
            },
            read_only: m.read_only.unwrap_or(false) || must_read_only,
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") => Propagation::Bidirectional,
                _ => Propagation::Private,
            },
        });
    }
    Ok(out)
}

/// Refuses a pod whose volumes minikubelet would not set up as asked: a volume type other than
/// `emptyDir`, `hostPath`, `downwardAPI` and `projected` of `downwardAPI` sources (API-object
/// volumes are refused before, as for a mirror pod),
/// `medium: HugePages`, or a `hostPath` of `/` mounted by a container that is not privileged (the node's whole filesystem; a minikubelet rule, the
/// kubelet allows it). The first such field, with the fix.
pub fn admit(pod: &Pod) -> Result<(), Refusal> {
    let refuse = |message: String| {
        Err(Refusal {
            reason: VOLUME_NOT_SUPPORTED,
            message,
        })
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let mut host_roots = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if let Some(e) = v.empty_dir.as_ref() {
            let medium = e.medium.as_deref().unwrap_or_default();
            if medium.starts_with("HugePages") {
                return refuse(format!(
                    "{path}.emptyDir.medium: {medium} is not implemented by minikubelet; use medium Memory or leave it empty"
                ));
            }
            continue;
        }
        if v.downward_api.is_some() {
            continue;
        }
        if let Some(p) = v.projected.as_ref() {
            for (j, src) in p.sources.iter().flatten().enumerate() {
                if src.downward_api.is_none() {
                    return refuse(format!(
                        "{path}.projected.sources[{j}]: only downwardAPI sources are implemented by minikubelet in projected volumes; remove the source"
                    ));
                }
            }
            continue;
        }
        if let Some(h) = v.host_path.as_ref() {
            if Path::new(&h.path)
                .components()
                .all(|c| c == std::path::Component::RootDir)
            {
                host_roots.push(v.name.clone());
            }
            continue;
        }
        let kind = match serde_json::to_value(v) {
            Ok(serde_json::Value::Object(map)) => map
                .keys()
                .find(|k| *k != "name")
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        return refuse(format!(
            "{path}.{kind}: this volume type is not implemented by minikubelet (emptyDir, hostPath, downwardAPI and projected downwardAPI are); remove the volume and its mounts"
        ));
    }
    for (cpath, c) in crate::api::pod::container_paths(spec) {
        let privileged = c
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
            let mpath = format!("{cpath}.volumeMounts[{j}]");
            if host_roots.contains(&m.name) && !privileged {
                return refuse(format!(
                    "{mpath}: volume {:?} is hostPath /, the node's whole filesystem: only a privileged container may mount it (a minikubelet rule); mount the directory it needs",
                    m.name
                ));
            }
        }
    }
    Ok(())
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

/// `SetUp` of every volume of the pod, in spec order. An emptyDir is a directory with mode 0777
/// (the kubelet's default for a disk-backed emptyDir); with `medium: Memory` a tmpfs is mounted
/// on it, sized [`memory_empty_dir_size`] (`memory_limit`: the pod cgroup's memory limit, if
/// any; `node_memory`: the node's allocatable memory). Existing directories and tmpfs mounts
/// (an agent restart) keep their contents, as the kubelet's do. A hostPath gets its `type`
/// check. `fsGroup` gives emptyDirs their group (`SetVolumeOwnership`; hostPaths keep theirs,
/// as in the kubelet). Returns the emptyDir directories.
pub fn set_up_pod_volumes(
    root_dir: &Path,
    pod: &Pod,
    memory_limit: Option<i64>,
    node: &crate::runtime::env::NodeEnv,
) -> Result<Vec<PathBuf>, VolumeError> {
    let node_memory = node.allocatable_memory;
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if !is_safe_uid(uid) {
        return Err(VolumeError::UnsafeUid {
            uid: uid.to_string(),
        });
    }
    let mut out = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let name = &v.name;
        if let (Some(plugin), Some(files)) = (
            downward_api::plugin_dir(v),
            downward_api::payload(pod, node, v),
        ) {
            let path = plugin_volume_path(root_dir, uid, plugin, name);
            let err = |source| VolumeError::SetUp {
                volume: name.clone(),
                path: path.clone(),
                source,
            };
            let files = files.map_err(|message| VolumeError::Payload {
                volume: name.clone(),
                message,
            })?;
            std::fs::create_dir_all(&path).map_err(err)?;
            // The kubelet's plugins wrap a memory-backed emptyDir.
            if !is_mount_point(&path).map_err(err)? {
                let size = memory_empty_dir_size(&Default::default(), memory_limit, node_memory);
                mount_tmpfs(&path, size).map_err(|source| VolumeError::Tmpfs {
                    volume: name.clone(),
                    path: path.clone(),
                    source,
                })?;
            }
            atomic_writer::write(&path, &files).map_err(err)?;
            if let Some(group) = fs_group(pod) {
                set_volume_ownership(&path, group, true).map_err(err)?;
            }
            continue;
        }
        if let Some(h) = v.host_path.as_ref() {
            check_host_path_type(Path::new(&h.path), h.type_.as_deref().unwrap_or_default())
                .map_err(|message| VolumeError::HostPath {
                    volume: name.clone(),
                    message,
                })?;
            continue;
        }
        let Some(e) = v.empty_dir.as_ref() else {
            continue;
        };
        let path = empty_dir_path(root_dir, uid, name);
        let err = |source| VolumeError::SetUp {
            volume: name.clone(),
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(err)?;
        if e.medium.as_deref() == Some("Memory") {
            if !is_mount_point(&path).map_err(err)? {
                let size = memory_empty_dir_size(e, memory_limit, node_memory);
                mount_tmpfs(&path, size).map_err(|source| VolumeError::Tmpfs {
                    volume: name.clone(),
                    path: path.clone(),
                    source,
                })?;
            }
        } else {
            // `setupDir`: only the permission bits, and only when they differ (a setgid bit
            // that fsGroup set stays).
            let mode = std::fs::metadata(&path).map_err(err)?.permissions().mode();
            if mode & 0o777 != 0o777 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                    .map_err(err)?;
            }
        }
        if let Some(group) = fs_group(pod)
            && !ownership_is_current(pod, &path, group, false)
        {
            set_volume_ownership(&path, group, false).map_err(err)?;
        }
        out.push(path);
    }
    Ok(out)
}

/// `calculateEmptyDirMemorySize`: the node's allocatable memory, lowered to the pod's memory
/// limit if it has one, lowered to the volume's `sizeLimit` if that is positive and smaller.
pub fn memory_empty_dir_size(
    e: &k8s_openapi::api::core::v1::EmptyDirVolumeSource,
    memory_limit: Option<i64>,
    node_memory: i64,
) -> i64 {
    // An unknown node size (0) puts no node bound; a tmpfs of size 0 is unbounded.
    let mut size = if node_memory > 0 {
        node_memory
    } else {
        i64::MAX
    };
    if let Some(l) = memory_limit.filter(|l| *l > 0 && *l <= size) {
        size = l;
    }
    let limit = e
        .size_limit
        .as_ref()
        .and_then(|q| crate::api::quantity::Quantity::from_api(q).ok())
        .map(|q| q.value());
    if let Some(l) = limit.filter(|l| *l > 0 && *l <= size) {
        size = l;
    }
    if size == i64::MAX { 0 } else { size }
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(path)?;
    let parent = std::fs::metadata(path.join(".."))?;
    Ok(me.dev() != parent.dev())
}

/// The kubelet's `setupTmpfs`: `mount -t tmpfs -o size=<bytes>` (nosuid, nodev, as the
/// mount utility's defaults for a user mount are not used by the kubelet either; the root of a
/// tmpfs has mode 1777).
fn mount_tmpfs(path: &Path, size: i64) -> std::io::Result<()> {
    let data = format!("size={size}");
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(std::io::Error::from)
}

/// `checkType` of `pkg/volume/hostpath/host_path.go`, with its messages. `DirectoryOrCreate`
/// makes a missing directory (0755, with its parents), `FileOrCreate` a missing empty file
/// (0644; its directory must exist). The empty type checks nothing: a missing path is made a
/// directory later, when the container is created, as containerd does.
pub fn check_host_path_type(path: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
    let p = path.display();
    let meta = std::fs::metadata(path);
    let exists = meta.is_ok();
    let ft = meta.as_ref().map(|m| m.file_type()).ok();
    let is = |f: fn(&std::fs::FileType) -> bool| ft.as_ref().is_some_and(f);
    let fail = |what: &str| Err(format!("hostPath type check failed: {p} is not {what}"));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if !exists => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| format!("hostPath type check failed: create directory {p}: {e}")),
        "DirectoryOrCreate" | "Directory" if !is(|f| f.is_dir()) => fail("a directory"),
        "FileOrCreate" if !exists => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|e| format!("hostPath type check failed: create file {p}: {e}")),
        "FileOrCreate" | "File" if !is(|f| f.is_file()) => fail("a file"),
        "Socket" if !is(|f| f.is_socket()) => fail("a socket file"),
        "CharDevice" if !is(|f| f.is_char_device()) => fail("a character device"),
        "BlockDevice" if !is(|f| f.is_block_device()) => fail("a block device"),
        "DirectoryOrCreate" | "Directory" | "FileOrCreate" | "File" | "Socket" | "CharDevice"
        | "BlockDevice" => Ok(()),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// The pod's `securityContext.fsGroup`, if it is a valid group id.
fn fs_group(pod: &Pod) -> Option<u32> {
    let sc = pod.spec.as_ref()?.security_context.as_ref()?;
    u32::try_from(sc.fs_group?).ok()
}

/// `fsGroupChangePolicy: OnRootMismatch` and the volume's root already as `SetVolumeOwnership`
/// leaves it (the group, group access, setgid): nothing to change (`skipPermissionChange`).
fn ownership_is_current(pod: &Pod, path: &Path, group: u32, read_only: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let on_mismatch = (pod.spec.as_ref())
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group_change_policy.as_deref())
        == Some("OnRootMismatch");
    let want = if read_only { 0o440 } else { 0o660 } | 0o2000 | 0o110;
    on_mismatch
        && std::fs::metadata(path).is_ok_and(|m| m.gid() == group && m.mode() & want == want)
}

/// `SetVolumeOwnership` (`pkg/volume/volume_linux.go`) with `fsGroupChangePolicy: Always`:
/// everything in the volume gets group `group`, read-write for the group (read-only, 0440, for
/// a read-only volume such as the downward API's), and directories also the setgid bit and
/// group search, so that what the containers create inherits the group. Symlinks get the group
/// but no mode (they have none). With `fsGroupChangePolicy: OnRootMismatch` an emptyDir whose
/// root is already right is left as it is ([`ownership_is_current`]).
fn set_volume_ownership(path: &Path, group: u32, read_only: bool) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, None, Some(group))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mode = meta.permissions().mode() | if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() {
        mode |= 0o2000 | 0o110;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            set_volume_ownership(&entry?.path(), group, read_only)?;
        }
    }
    Ok(())
}

/// Unmounts (lazily) every mount point at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %p.display(), error = %e, "unmount volume");
        }
    }
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
    subpath::clean(&dir);
    // Memory-backed emptyDirs, downward API and projected volumes are tmpfs mounts: unmounted
    // first (their memory is freed), or the removal would stop at the busy mount point.
    unmount_under(&dir.join("volumes"));
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

    fn node1g() -> crate::runtime::env::NodeEnv {
        crate::runtime::env::NodeEnv {
            allocatable_memory: 1 << 30,
            ..Default::default()
        }
    }

    #[test]
    fn container_mounts_of_empty_dirs_and_host_paths() {
        let p = pod();
        let c: Container =
            serde_json::from_value(serde_json::json!({"name": "c", "volumeMounts": [
                {"name": "cache", "mountPath": "/cache"},
                {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
                {"name": "scratch", "mountPath": "scratch", "readOnly": true},
                {"name": "missing", "mountPath": "/m"}
            ]}))
            .unwrap();
        let root = Path::new("/r");
        let m = |host_path: PathBuf, container_path: &str, read_only, propagation| ContainerMount {
            host_path,
            container_path: container_path.into(),
            read_only,
            propagation,
        };
        assert_eq!(
            container_mounts(root, &p, &c, &[]).unwrap(),
            vec![
                m(
                    empty_dir_path(root, "u1", "cache"),
                    "/cache",
                    false,
                    Propagation::Private
                ),
                m("/tmp".into(), "/host", false, Propagation::HostToContainer),
                m(
                    empty_dir_path(root, "u1", "scratch"),
                    "/scratch",
                    true,
                    Propagation::Private
                ),
            ]
        );
    }

    #[test]
    fn fs_group_on_root_mismatch_skips_a_volume_already_owned() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let mut p = pod();
        p.spec.as_mut().unwrap().security_context = Some(
            serde_json::from_value(serde_json::json!(
            {"fsGroup": 4242, "fsGroupChangePolicy": "OnRootMismatch"}))
            .unwrap(),
        );
        let dirs = set_up_pod_volumes(root.path(), &p, None, &node1g()).unwrap();
        let f = dirs[0].join("f");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::lchown(&f, None, Some(0)).unwrap();
        // The root is right: the file keeps its group (Always would change it).
        set_up_pod_volumes(root.path(), &p, None, &node1g()).unwrap();
        assert_eq!(std::fs::metadata(&dirs[0]).unwrap().gid(), 4242);
        assert_eq!(std::fs::metadata(&f).unwrap().gid(), 0);
        p.spec.as_mut().unwrap().security_context = Some(
            serde_json::from_value(serde_json::json!(
            {"fsGroup": 4242}))
            .unwrap(),
        );
        set_up_pod_volumes(root.path(), &p, None, &node1g()).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().gid(), 4242);
    }

    #[test]
    fn host_path_types_as_the_kubelet_checks_them() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("file"), b"x").unwrap();
        let sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let ok = |p: &Path, k: &str| check_host_path_type(p, k);
        assert_eq!(ok(&d.join("nothing"), ""), Ok(()));
        assert_eq!(ok(d, "Directory"), Ok(()));
        assert_eq!(
            ok(&d.join("file"), "Directory"),
            Err(format!(
                "hostPath type check failed: {}/file is not a directory",
                d.display()
            ))
        );
        assert_eq!(
            ok(&d.join("nothing"), "Directory"),
            Err(format!(
                "hostPath type check failed: {}/nothing is not a directory",
                d.display()
            ))
        );
        assert_eq!(ok(&d.join("made/deep"), "DirectoryOrCreate"), Ok(()));
        assert!(d.join("made/deep").is_dir());
        assert_eq!(ok(&d.join("new-file"), "FileOrCreate"), Ok(()));
        assert!(d.join("new-file").is_file());
        assert!(ok(d, "File").unwrap_err().ends_with("is not a file"));
        assert!(ok(&d.join("file"), "FileOrCreate").is_ok());
        assert_eq!(ok(&d.join("sock"), "Socket"), Ok(()));
        assert!(
            ok(&d.join("file"), "Socket")
                .unwrap_err()
                .ends_with("is not a socket file")
        );
        assert_eq!(ok(Path::new("/dev/null"), "CharDevice"), Ok(()));
        assert!(
            ok(&d.join("file"), "CharDevice")
                .unwrap_err()
                .ends_with("is not a character device")
        );
        assert!(
            ok(Path::new("/dev/null"), "BlockDevice")
                .unwrap_err()
                .ends_with("is not a block device")
        );
        assert_eq!(ok(d, "Nope"), Err("Nope is an invalid volume type".into()));
        drop(sock);
    }

    #[test]
    fn memory_empty_dir_size_like_the_kubelet() {
        let e = |limit: Option<&str>| k8s_openapi::api::core::v1::EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: limit
                .map(|l| k8s_openapi::apimachinery::pkg::api::resource::Quantity(l.into())),
        };
        let gi = 1i64 << 30;
        assert_eq!(memory_empty_dir_size(&e(None), None, 8 * gi), 8 * gi);
        assert_eq!(memory_empty_dir_size(&e(None), Some(gi), 8 * gi), gi);
        assert_eq!(
            memory_empty_dir_size(&e(Some("64Mi")), Some(gi), 8 * gi),
            64 << 20
        );
        // A sizeLimit above what the pod may use is lowered to that.
        assert_eq!(memory_empty_dir_size(&e(Some("2Gi")), Some(gi), 8 * gi), gi);
        assert_eq!(memory_empty_dir_size(&e(Some("0")), None, 8 * gi), 8 * gi);
    }

    #[test]
    fn volumes_not_set_up_as_asked_refuse_the_pod() {
        let refused = |volumes: serde_json::Value, mounts: serde_json::Value, privileged: bool| {
            let p: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "uid": "u1"},
                "spec": {"volumes": volumes, "containers": [{"name": "c", "volumeMounts": mounts,
                    "securityContext": {"privileged": privileged}}]}
            }))
            .unwrap();
            admit(&p).err().map(|r| r.message)
        };
        let none = serde_json::json!([]);
        assert_eq!(
            refused(
                serde_json::json!([{"name": "e", "emptyDir": {"medium": "Memory"}},
                {"name": "h", "hostPath": {"path": "/var/log", "type": "Directory"}}]),
                none.clone(),
                false
            ),
            None
        );
        let m = refused(
            serde_json::json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}]),
            none.clone(),
            false,
        )
        .unwrap();
        assert!(
            m.starts_with("spec.volumes[0].nfs: this volume type is not implemented"),
            "{m}"
        );
        assert_eq!(
            refused(
                serde_json::json!([{"name": "e", "emptyDir": {}}]),
                serde_json::json!([{"name": "e", "mountPath": "/e", "subPath": "x"}]),
                false,
            ),
            None
        );
        let root = serde_json::json!([{"name": "r", "hostPath": {"path": "/"}}]);
        let mount = serde_json::json!([{"name": "r", "mountPath": "/host"}]);
        let m = refused(root.clone(), mount.clone(), false).unwrap();
        assert!(
            m.contains("only a privileged container may mount it"),
            "{m}"
        );
        assert_eq!(refused(root, mount, true), None);
        let m = refused(
            serde_json::json!([{"name": "h", "emptyDir": {"medium": "HugePages"}}]),
            none,
            false,
        )
        .unwrap();
        assert!(
            m.starts_with("spec.volumes[0].emptyDir.medium: HugePages"),
            "{m}"
        );
    }

    #[test]
    fn empty_dirs_are_set_up_and_torn_down() {
        let root = tempfile::tempdir().unwrap();
        let p = pod();
        assert_eq!(empty_dir_volumes(&p), vec!["cache", "scratch"]);
        let dirs = set_up_pod_volumes(root.path(), &p, None, &node1g()).unwrap();
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
        set_up_pod_volumes(root.path(), &p, None, &node1g()).unwrap();
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
                set_up_pod_volumes(root.path(), &p, None, &node1g()),
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
