//! A container's image (the default; not with the deprecated `ImageRootfs=false`): the kubelet's
//! `EnsureImageExists` step of `startContainer` (pull policy, `Pulling`/`Pulled` events,
//! `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`, `InvalidImageName`), then what
//! containerd's CRI plugin does at `CreateContainer`: the image config merged with the
//! container (`images::config::merge`) and the layers the overlay root is made of.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::PodWorker;
use crate::events::{self, EventType};
use crate::images::config::{Accounts, MergeError, Process};
use crate::images::manager::{EnsureError, ImageManager};
use crate::images::oci::ImageConfig;
use crate::images::{ImageRecord, ImageRef, Store};
use crate::status::reasons;

/// How soon a container whose image could not be had is looked at again. The kubelet
/// re-syncs a pod whose sync failed after 10 s (`backOffPeriod`, jittered); half the image
/// back-off's first step makes `ImagePullBackOff` visible between two pulls. Shorter retries
/// sooner after a transient failure but finds the back-off closed more often.
const IMAGE_RETRY: Duration = Duration::from_secs(5);

/// The node's images: one [`ImageManager`] (its back-off and serialized pulls are node-wide)
/// and the store it pulls into. Absent only with the deprecated `ImageRootfs=false`.
pub struct NodeImages {
    pub manager: ImageManager,
    pub store: Store,
}

/// What a container runs from its image.
pub(super) struct FromImage {
    /// Layer directories, topmost first.
    pub layers: Vec<PathBuf>,
    /// Argv, env, cwd and user by the kubelet's and containerd's rules.
    pub process: Process,
    /// The status's `image` (the normalized reference) and `imageID` (`<repo>@<digest>`).
    pub image: String,
    pub image_id: String,
    /// The image config's `User`, for `runAsNonRoot` (empty: root).
    pub user: String,
}

/// `imageID` as the kubelet shows it: the repository with the manifest digest.
fn image_id(record: &ImageRecord) -> String {
    match ImageRef::parse(&record.name) {
        Ok(r) => format!("{}@{}", r.repository(), record.manifest_digest),
        Err(_) => record.id.clone(),
    }
}

/// Whether `dir` of an unpacked layer is opaque (`trusted.overlay.opaque=y`: the lower layers'
/// contents of it are hidden).
fn is_opaque(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 1];
    // SAFETY: a valid C string and a one-byte buffer.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// The file `rel` (e.g. `etc/passwd`) of the image's merged root, as overlayfs shows it: from
/// the topmost layer that has it; empty if a higher layer whited it (or `etc`) out, as a `0:0`
/// character device, or made `etc` opaque.
fn merged_file(layers: &[PathBuf], rel: &str) -> String {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let whiteout = |m: &std::fs::Metadata| m.file_type().is_char_device() && m.rdev() == 0;
    for l in layers {
        if let Ok(m) = std::fs::symlink_metadata(l.join(rel)) {
            if whiteout(&m) || !m.is_file() {
                return String::new();
            }
            return std::fs::read_to_string(l.join(rel)).unwrap_or_default();
        }
        let parent = l.join(rel).parent().map(PathBuf::from).unwrap_or_default();
        if let Ok(m) = std::fs::symlink_metadata(&parent)
            && (whiteout(&m) || (m.is_dir() && is_opaque(&parent)))
        {
            return String::new();
        }
    }
    String::new()
}

/// The accounts of an image's root: `/etc/passwd` and `/etc/group` as the merged root shows
/// them (whiteouts and opaque directories of higher layers honoured).
fn accounts(layers: &[PathBuf]) -> Accounts {
    let top = |f: &str| merged_file(layers, f);
    Accounts {
        passwd: top("etc/passwd"),
        group: top("etc/group"),
    }
}

/// The layers, the config merged with `container`, and the image marked used now. Blocking.
fn resolve(
    store: &Store,
    record: &ImageRecord,
    pod: &Pod,
    container: &Container,
    env: &[(String, String)],
) -> Result<FromImage, String> {
    let layers = store.lower_dirs(record).map_err(|e| e.to_string())?;
    let config: ImageConfig = store
        .read_blob(&record.id)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("image {}: read its config {}: {e}", record.name, record.id))?;
    let (run_as_user, run_as_group, _) = super::container::security(pod, container);
    let image_config = config.config.unwrap_or_default();
    let user = image_config.user.clone().unwrap_or_default();
    let process = crate::images::config::merge(
        container,
        &image_config,
        env,
        run_as_user.map(i64::from),
        run_as_group.map(i64::from),
        &accounts(&layers),
    )
    .map_err(|e| match e {
        // containerd's words (`WithProcessArgs`), as the kubelet shows them.
        MergeError::NoCommand { .. } => {
            format!("failed to generate spec: no command specified: {e}")
        }
        e => e.to_string(),
    })?;
    if let Err(e) = store.touch(&record.name) {
        tracing::warn!(image = %record.name, error = %e, "mark image used");
    }
    Ok(FromImage {
        layers,
        process,
        image: record.name.clone(),
        image_id: image_id(record),
        user,
    })
}

impl PodWorker {
    /// Whether slot `i` runs from its image: the `ImageRootfs` gate is on and the pod does
    /// not ask for the node's filesystem.
    pub(super) fn images_for_pod(&self) -> Option<Arc<NodeImages>> {
        let host_fs = (self.pod.metadata.annotations.as_ref())
            .is_some_and(crate::runtime::spec::wants_host_filesystem);
        self.ctx.images.clone().filter(|_| !host_fs)
    }

    /// `EnsureImageExists` and the merge for slot `i`, with the kubelet's events; `None` when
    /// the container cannot start now (its waiting reason is set; it is looked at again).
    pub(super) async fn image_process(
        &mut self,
        i: usize,
        images: &NodeImages,
        env: &[(String, String)],
    ) -> Option<FromImage> {
        let spec = self.slots[i].spec.clone();
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let image = spec.image.clone().unwrap_or_default();
        let policy = spec.image_pull_policy.as_deref();
        // `Pulling` is recorded as the pull begins, the rest when it is done.
        let slot = &self.slots[i];
        let on_pulling = |e: crate::images::manager::ImageEvent| {
            self.event(EventType::Normal, e.reason, Some(slot), e.message);
        };
        let ensured = images
            .manager
            .ensure_image_exists_with(&uid, &image, policy, &on_pulling)
            .await;
        let record = match ensured {
            Ok(ok) => {
                for e in ok.events {
                    let t = if e.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    };
                    self.event(t, e.reason, Some(&self.slots[i]), e.message);
                }
                ok.record
            }
            Err(e) => {
                self.image_failed(i, &image, &e);
                return None;
            }
        };
        let store = images.store.clone();
        let (pod, env) = (self.pod.clone(), env.to_vec());
        let c = spec.clone();
        let resolved =
            tokio::task::spawn_blocking(move || resolve(&store, &record, &pod, &c, &env)).await;
        match resolved {
            Ok(Ok(r)) => Some(r),
            Ok(Err(message)) => {
                self.slots[i].config_error = true;
                self.config_error(i, reasons::CREATE_CONTAINER_ERROR, message);
                None
            }
            Err(e) => {
                self.config_error(i, reasons::CREATE_CONTAINER_ERROR, e.to_string());
                self.slots[i].backoff_until = Some(tokio::time::Instant::now() + IMAGE_RETRY);
                None
            }
        }
    }

    /// The kubelet's events and waiting state for an image that is not there
    /// (`image_manager.go` `EnsureImageExists`, `logIt`).
    fn image_failed(&mut self, i: usize, image: &str, e: &EnsureError) {
        let reason = e.reason();
        let message = e.to_string();
        tracing::warn!(pod = %self.pod_name(), container = %self.slots[i].spec.name, image, reason, %message, "image not available");
        let slot = Some(&self.slots[i]);
        match e {
            EnsureError::InvalidImageName { .. } => {
                self.event(EventType::Warning, "InspectFailed", slot, message.clone())
            }
            EnsureError::NeverPull { .. } => {
                self.event(EventType::Warning, reason, slot, message.clone())
            }
            EnsureError::Pull { .. } => {
                self.event(EventType::Warning, events::FAILED, slot, message.clone());
            }
            EnsureError::BackOff { .. } => {
                self.event(EventType::Normal, events::BACK_OFF, slot, message.clone())
            }
        }
        self.event(
            EventType::Warning,
            events::FAILED,
            Some(&self.slots[i]),
            format!("Error: {reason}"),
        );
        let s = &mut self.slots[i];
        s.waiting = Some((reason.to_string(), message));
        s.backoff_until = Some(tokio::time::Instant::now() + IMAGE_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_id_is_the_repository_at_the_manifest_digest() {
        let r = ImageRecord {
            name: "docker.io/library/busybox:1.36".into(),
            id: "sha256:c".into(),
            manifest_digest: "sha256:m".into(),
            layers: vec![],
            size: 0,
            pulled_at: 0,
            last_used: 0,
        };
        assert_eq!(image_id(&r), "docker.io/library/busybox@sha256:m");
    }

    #[test]
    fn accounts_come_from_the_topmost_layer_that_has_them() {
        let top = tempfile::tempdir().unwrap();
        let bottom = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(bottom.path().join("etc")).unwrap();
        std::fs::write(bottom.path().join("etc/passwd"), "old\n").unwrap();
        std::fs::write(bottom.path().join("etc/group"), "g\n").unwrap();
        std::fs::create_dir_all(top.path().join("etc")).unwrap();
        std::fs::write(top.path().join("etc/passwd"), "new\n").unwrap();
        let a = accounts(&[top.path().to_path_buf(), bottom.path().to_path_buf()]);
        assert_eq!((a.passwd.as_str(), a.group.as_str()), ("new\n", "g\n"));
        // A whiteout of /etc/group in the top layer hides the lower one; an opaque /etc too.
        let c = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let wh = c(&top.path().join("etc/group"));
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        let a = accounts(&[top.path().to_path_buf(), bottom.path().to_path_buf()]);
        assert_eq!((a.passwd.as_str(), a.group.as_str()), ("new\n", ""));
        let opaque = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(opaque.path().join("etc")).unwrap();
        let etc = c(&opaque.path().join("etc"));
        // SAFETY: valid C strings and a one-byte value.
        let r = unsafe {
            libc::setxattr(
                etc.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(r, 0);
        let a = accounts(&[opaque.path().to_path_buf(), bottom.path().to_path_buf()]);
        assert_eq!((a.passwd.as_str(), a.group.as_str()), ("", ""));
    }
}
