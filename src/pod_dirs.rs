//! The pod directory under `--root-dir` (`pkg/kubelet/kubelet_getters.go` `getPodDir`): where a
//! pod's volumes and its sandbox's pinned namespaces and files live. A leaf module, so that the
//! sandbox and the volumes can both name it without depending on each other.

use std::path::{Path, PathBuf};

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
