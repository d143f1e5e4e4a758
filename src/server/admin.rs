//! The agent's administrator credential: a random bearer token in `<root-dir>/pki/admin.token`,
//! handed to root through `<root-dir>/kubeconfig`.
//!
//! Mirrors kubeadm's `admin.conf` (`kubeadm init phase kubeconfig admin`: user
//! `kubernetes-admin`, group `system:masters`, a root-only file), with a token instead of a
//! client certificate because plain-HTTP loopback has no TLS to carry one. The kubelet itself
//! makes no credential (a deviation, in `docs/deviations.md`): its clients authenticate to the
//! API server. Here the API, which can exec as root into every container, is on loopback where
//! every local user can connect, so only holders of this token (root) get in.
//!
//! The token is made once and reused by every later agent on the same root dir, so copies of
//! the kubeconfig keep working across restarts. A token file that others could read or write
//! (mode other than 0600/0400, another owner, a symlink, not a regular file) or that does not
//! hold a token is *replaced* by a new one with a warning: whatever it held may be known to
//! others, so it must stop working.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::auth::{AdminCredential, admin_user};

/// The token's random bytes: 256 bits, beyond any guessing (the kube-apiserver's bootstrap
/// tokens have 96; service-account JWTs are signed with 2048-bit keys). Hex-encoded: 64
/// characters, safe unquoted in YAML and in an `Authorization` header.
const TOKEN_BYTES: usize = 32;

/// The file beside the kubeconfig's other secrets, in `<root-dir>/pki` (mode 0700).
pub const TOKEN_FILE: &str = "admin.token";

/// Why the admin token could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// A file system step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The pki directory is not one only this user controls.
    #[error(
        "{path} is not a directory owned by uid {uid} (a symlink, a file, or another owner): refusing to keep the admin token there; remove it, and the agent makes it again (mode 0700)"
    )]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// This process's effective uid.
        uid: u32,
    },
    /// The kernel's random source failed.
    #[error("read random bytes for the admin token: {0}")]
    Random(String),
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> AdminTokenError + 'a {
    move |source| AdminTokenError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The admin credential of `pki_dir/admin.token`: the stored token when the file is safe,
/// else a new one, written there first.
pub fn load_or_create(pki_dir: &Path) -> Result<AdminCredential, AdminTokenError> {
    ensure_private_dir(pki_dir)?;
    let path = pki_dir.join(TOKEN_FILE);
    let token = match read_token(&path)? {
        Ok(token) => token,
        Err(why) => {
            if let Some(why) = why {
                tracing::warn!(path = %path.display(), reason = why, "replacing the admin token: copies of the old <root-dir>/kubeconfig stop working");
            } else {
                tracing::info!(path = %path.display(), "made a new admin token (user kubernetes-admin, group system:masters)");
            }
            let token = new_token()?;
            write_private(&path, format!("{token}\n").as_bytes())
                .map_err(io("write admin token", &path))?;
            token
        }
    };
    Ok(AdminCredential {
        token,
        user: admin_user(),
    })
}

/// `dir` exists, is a directory of this user, mode 0700 (tightened if it was looser).
fn ensure_private_dir(dir: &Path) -> Result<(), AdminTokenError> {
    let uid = nix::unistd::geteuid().as_raw();
    match std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The root dir itself is missing: make it (as the kubelet does), then pki.
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            return std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io("create", dir));
        }
        Err(e) => return Err(io("create", dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io("stat", dir))?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(AdminTokenError::UnsafeDir {
            path: dir.to_path_buf(),
            uid,
        });
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(path = %dir.display(), mode = format!("{:o}", meta.mode() & 0o7777), "the pki directory was open to others; setting mode 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", dir))?;
    }
    Ok(())
}

/// The token of `path`: `Ok(Ok(token))` when the file is safe and holds one,
/// `Ok(Err(None))` when there is no file, `Ok(Err(Some(why)))` when it must be replaced.
/// The file is opened once (no symlink followed) and judged by that open file's `fstat`.
fn read_token(path: &Path) -> Result<Result<String, Option<&'static str>>, AdminTokenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(None)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Err(Some("it is a symlink")));
        }
        Err(e) => return Err(io("open", path)(e)),
    };
    let meta = file.metadata().map_err(io("stat", path))?;
    if !meta.is_file() {
        return Ok(Err(Some("it is not a regular file")));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Ok(Err(Some(
            "it is owned by another user, who may know the token",
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Ok(Err(Some(
            "its mode lets other users read or write it (it must be 0600), so the token may be known",
        )));
    }
    let mut text = String::new();
    // One token line; anything longer is not ours.
    let read = (&mut file).take(1024).read_to_string(&mut text);
    let token = text.trim();
    if read.is_err() || !valid_token(token) {
        return Ok(Err(Some(
            "it does not hold a token (64 hexadecimal characters)",
        )));
    }
    Ok(Ok(token.to_string()))
}

fn valid_token(token: &str) -> bool {
    token.len() == 2 * TOKEN_BYTES && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new token: [`TOKEN_BYTES`] from the kernel's CSPRNG (`getrandom`), hex-encoded.
fn new_token() -> Result<String, AdminTokenError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AdminTokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to `path` so that no one else ever sees them: a new file (`O_EXCL`, mode
/// 0600 from its creation, owned by this user) beside `path`, synced, then renamed over it.
/// Readers see the old file or the new one, never a part, and never a world-readable one.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use rand::Rng;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::rng().random::<u64>()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask can only remove bits; set them anyway in case the file system adds some.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("root/pki");
        let a = load_or_create(&pki).unwrap();
        assert!(valid_token(&a.token), "{}", a.token);
        assert_eq!(a.user.name, "kubernetes-admin");
        assert_eq!(a.user.groups, ["system:masters"]);
        assert_eq!(mode(&pki), 0o700);
        assert_eq!(mode(&pki.join(TOKEN_FILE)), 0o600);
        let b = load_or_create(&pki).unwrap();
        assert_eq!(a.token, b.token, "reused");
        assert!(
            !format!("{a:?}").contains(&a.token),
            "never in a debug print"
        );
        let names: Vec<_> = std::fs::read_dir(&pki).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[test]
    fn unsafe_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let first = load_or_create(&pki).unwrap().token;
        let file = pki.join(TOKEN_FILE);

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let second = load_or_create(&pki).unwrap().token;
        assert_ne!(first, second, "a readable token is replaced");
        assert_eq!(mode(&file), 0o600);

        std::fs::write(&file, "short\n").unwrap();
        let third = load_or_create(&pki).unwrap().token;
        assert!(valid_token(&third) && third != second);

        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, format!("{}\n", "a".repeat(64))).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        let fourth = load_or_create(&pki).unwrap().token;
        assert_ne!(fourth, "a".repeat(64), "a symlink is not followed");
        assert!(std::fs::symlink_metadata(&file).unwrap().is_file());

        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        let fifth = load_or_create(&pki).unwrap().token;
        assert_ne!(fifth, fourth, "a token file of another user is replaced");
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);

        std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(load_or_create(&pki).unwrap().token, fifth);
        assert_eq!(mode(&pki), 0o700, "the directory is tightened");
    }

    #[test]
    fn private_write_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kubeconfig");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode(&p), 0o600);
    }
}
