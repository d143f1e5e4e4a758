//! `subPath` and `subPathExpr`: a part of a volume mounted in place of the whole, prepared so
//! that a symbolic link planted inside the volume cannot make the mount land outside it.
//!
//! Mirrors `pkg/volume/util/subpath/subpath_linux.go`: the path is resolved (`EvalSymlinks`)
//! and must stay within the volume (`subpath ... not within volume path ...`, the
//! CVE-2017-1002101 fix); a missing path is made a directory (`doSafeMakeDir`, with the
//! volume's mode); then the
//! resolved path is opened again one component at a time with `O_PATH|O_NOFOLLOW`
//! (`doSafeOpen`), so a link swapped in between is refused rather than followed, and that open
//! file, not the path, is bind-mounted (`/proc/self/fd/N`) onto a staging file or directory
//! under the pod directory, `<pod>/volume-subpaths/<volume>/<container>/<index>` (the
//! kubelet's layout). The container's mount then binds the staging path, which only root can
//! change. The staging mounts go when the pod's directory is torn down (`CleanSubPaths`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The pod directory's subdirectory of subPath staging mounts (`volume-subpaths`).
pub const VOLUME_SUBPATHS_DIR: &str = "volume-subpaths";

/// Why a subPath could not be prepared (the message goes into `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    /// The subPath resolves outside its volume (a symlink pointing out).
    #[error("subpath {path:?} not within volume path {volume:?}")]
    Outside { path: PathBuf, volume: PathBuf },
    /// A component was a symbolic link when opened safely (it changed after it was resolved).
    #[error(
        "subpath {path:?}: {component:?} is a symbolic link (changed while the subpath was prepared)"
    )]
    Symlink { path: PathBuf, component: PathBuf },
    /// `subPathExpr` referred to a variable the container does not have, or is not relative.
    #[error("subPathExpr {expr:?}: {why}")]
    Expr { expr: String, why: String },
    /// A system call failed.
    #[error("subpath {path:?}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> SubPathError {
    let path = path.to_path_buf();
    move |source| SubPathError::Io {
        path,
        action,
        source,
    }
}

fn cstr(s: &std::ffi::OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| std::io::Error::other("path contains a NUL byte"))
}

/// `openat(dir, name, O_PATH|O_NOFOLLOW|O_CLOEXEC)`.
fn open_path_at(dir: Option<&OwnedFd>, name: &std::ffi::OsStr) -> std::io::Result<OwnedFd> {
    let c = cstr(name)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a valid C string and a directory fd we own (or AT_FDCWD).
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The file type bits of an fd (`fstat`).
fn file_type(fd: &OwnedFd) -> std::io::Result<libc::mode_t> {
    // SAFETY: fstat into a zeroed struct on an fd we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

/// `doSafeOpen`: opens `rel` below the directory `base` one component at a time, never
/// following a symbolic link; `base` itself must not be one.
fn safe_open(base: &Path, rel: &Path) -> Result<OwnedFd, SubPathError> {
    let mut fd = open_path_at(None, base.as_os_str()).map_err(io(base, "open the volume"))?;
    if file_type(&fd).map_err(io(base, "stat the volume"))? == libc::S_IFLNK {
        return Err(SubPathError::Symlink {
            path: rel.to_path_buf(),
            component: base.to_path_buf(),
        });
    }
    let mut at = base.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(SubPathError::Outside {
                path: base.join(rel),
                volume: base.to_path_buf(),
            });
        };
        at.push(name);
        let next = open_path_at(Some(&fd), name).map_err(io(&at, "open"))?;
        if file_type(&next).map_err(io(&at, "stat"))? == libc::S_IFLNK {
            return Err(SubPathError::Symlink {
                path: base.join(rel),
                component: at,
            });
        }
        fd = next;
    }
    Ok(fd)
}

/// `subPathExpr`: `$(VAR)` from the container's environment; a reference left unexpanded, an
/// absolute result or one with `..` is an error.
pub fn expand_sub_path_expr(expr: &str, env: &[(String, String)]) -> Result<String, SubPathError> {
    let lookup = |k: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let out = crate::runtime::env::expand(expr, &lookup);
    let bad = |why: &str| {
        Err(SubPathError::Expr {
            expr: expr.to_string(),
            why: why.to_string(),
        })
    };
    if out.contains("$(") {
        return bad("refers to a variable the container does not have");
    }
    let p = Path::new(&out);
    if p.is_absolute() {
        return bad("expands to an absolute path");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return bad("expands to a path with '..'");
    }
    Ok(out)
}

/// The resolved form of `volume/sub` (every symbolic link followed), made a directory first
/// if it does not exist (`doSafeMakeDir`, only below the part that exists and only if that
/// part is within the volume), with the volume's own mode, as the kubelet's `makeMounts` asks
/// (so that, say, an emptyDir's 0777 or an `fsGroup`'s group write carries over to the
/// subdirectory a non-root container mounts). Errors if it resolves outside the volume.
fn resolve_within(volume: &Path, sub: &Path) -> Result<PathBuf, SubPathError> {
    let base = volume
        .canonicalize()
        .map_err(io(volume, "resolve the volume"))?;
    let full = volume.join(sub);
    let mut existing = full.clone();
    let mut missing = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) if existing != *volume => {
                missing.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let real = existing.canonicalize().map_err(io(&existing, "resolve"))?;
    if !real.starts_with(&base) {
        return Err(SubPathError::Outside {
            path: full,
            volume: volume.to_path_buf(),
        });
    }
    if missing.is_empty() {
        return Ok(real);
    }
    let perm = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&base)
            .map_err(io(&base, "stat the volume"))?
            .permissions()
            .mode()
            & 0o7777
    };
    let rel = real.strip_prefix(&base).unwrap_or(Path::new(""));
    let mut dir = safe_open(&base, rel)?;
    let mut at = real.clone();
    for name in missing.iter().rev() {
        at.push(name);
        let c = cstr(name).map_err(io(&at, "mkdir"))?;
        // SAFETY: mkdirat/openat/fchmod on directory fds we own and a valid C string.
        let r = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o700) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(io(&at, "mkdir")(e));
            }
        }
        // Opened as a directory without following a link (a link swapped in fails here),
        // then given the volume's mode (mkdir's is cut by the umask).
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ELOOP) {
                SubPathError::Symlink {
                    path: full.clone(),
                    component: at.clone(),
                }
            } else {
                io(&at, "open")(e)
            });
        }
        // SAFETY: a fresh fd owned by nobody else.
        let next = unsafe { OwnedFd::from_raw_fd(fd) };
        if r >= 0 && unsafe { libc::fchmod(next.as_raw_fd(), perm) } < 0 {
            return Err(io(&at, "chmod")(std::io::Error::last_os_error()));
        }
        dir = next;
    }
    Ok(at)
}

/// Prepares `sub` of the volume at `volume` for mount `index` of `container`: returns the
/// staging path, a bind mount of the resolved file or directory, under
/// `<pod_dir>/volume-subpaths/<volume_name>/<container>/<index>`.
pub fn prepare(
    pod_dir: &Path,
    volume_name: &str,
    container: &str,
    index: usize,
    volume: &Path,
    sub: &Path,
) -> Result<PathBuf, SubPathError> {
    let resolved = resolve_within(volume, sub)?;
    let base = volume
        .canonicalize()
        .map_err(io(volume, "resolve the volume"))?;
    let rel = resolved.strip_prefix(&base).unwrap_or(Path::new(""));
    let fd = safe_open(&base, rel)?;
    let is_dir = file_type(&fd).map_err(io(&resolved, "stat"))? == libc::S_IFDIR;
    let staging = pod_dir
        .join(VOLUME_SUBPATHS_DIR)
        .join(volume_name)
        .join(container)
        .join(index.to_string());
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent, "create the staging directory"))?;
    }
    // A previous instance's staging mount: replaced (the running instance keeps its own copy
    // in its mount namespace).
    let _ = nix::mount::umount2(&staging, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&staging).or_else(|_| std::fs::remove_file(&staging));
    if is_dir {
        std::fs::create_dir(&staging).map_err(io(&staging, "create the staging directory"))?;
    } else {
        std::fs::File::create(&staging).map_err(io(&staging, "create the staging file"))?;
    }
    let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    nix::mount::mount(
        Some(&source),
        &staging,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| io(&staging, "bind-mount the subpath")(std::io::Error::from(e)))?;
    Ok(staging)
}

/// Unmounts every staging mount under `<pod_dir>/volume-subpaths` (`CleanSubPaths`), so that
/// the pod directory can be removed.
pub fn clean(pod_dir: &Path) {
    super::unmount_under(&pod_dir.join(VOLUME_SUBPATHS_DIR));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_exprs() {
        let env = vec![("POD_NAME".to_string(), "web-0".to_string())];
        assert_eq!(
            expand_sub_path_expr("logs/$(POD_NAME)", &env).unwrap(),
            "logs/web-0"
        );
        assert!(expand_sub_path_expr("$(NOPE)", &env).is_err());
        let env = vec![("X".to_string(), "/etc".to_string())];
        assert!(expand_sub_path_expr("$(X)", &env).is_err());
        let env = vec![("X".to_string(), "..".to_string())];
        assert!(expand_sub_path_expr("a/$(X)/b", &env).is_err());
    }

    #[test]
    fn resolution_stays_within_the_volume() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir_all(vol.join("data/inner")).unwrap();
        std::os::unix::fs::symlink("/", vol.join("root")).unwrap();
        std::os::unix::fs::symlink("../..", vol.join("data/up")).unwrap();
        std::os::unix::fs::symlink("inner", vol.join("data/in")).unwrap();
        let r = |s: &str| resolve_within(&vol, Path::new(s));
        let canon = vol.canonicalize().unwrap();
        assert_eq!(r("data/in").unwrap(), canon.join("data/inner"));
        assert!(matches!(r("root"), Err(SubPathError::Outside { .. })));
        assert!(matches!(
            r("root/etc/new"),
            Err(SubPathError::Outside { .. })
        ));
        assert!(matches!(r("data/up"), Err(SubPathError::Outside { .. })));
        // Missing: made below the volume, with the volume's mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(r("made/deep").unwrap(), canon.join("made/deep"));
        let mode = std::fs::metadata(vol.join("made/deep"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o777);
        // The safe open refuses a link where the resolved path had none.
        assert!(matches!(
            safe_open(&canon, Path::new("data/in")),
            Err(SubPathError::Symlink { .. })
        ));
        assert!(safe_open(&canon, Path::new("data/inner")).is_ok());
    }
}
