//! Disk usage of a directory tree, as the kubelet's `pkg/volume/util/fs` `DiskUsage` (`du`)
//! measures emptyDir volumes and logs, and as a runtime measures a container's writable layer
//! for the CRI's `WritableLayer`. A leaf module: the stats provider and the runtime both use it
//! without depending on each other.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// On-disk usage of a directory tree like `du` (allocated blocks × 512) and its inode count;
/// (0, 0) when it does not exist. Symlinks are counted, not followed.
pub fn dir_usage(path: &Path) -> (i64, i64) {
    let mut bytes = 0i64;
    let mut inodes = 0i64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        bytes = bytes.saturating_add((md.blocks() as i64).saturating_mul(512));
        inodes += 1;
        if md.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    (bytes, inodes)
}
