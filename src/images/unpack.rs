//! Applying one layer tar into its own directory, the way containerd's overlayfs snapshotter
//! unpacks (`pkg/archive/tar.go` `applyNaive` with `tar_opts_linux.go` `OverlayConvertWhiteout`):
//! `.wh.<name>` becomes a `0:0` character device, `.wh..wh..opq` the `trusted.overlay.opaque=y`
//! xattr on its directory, so the layer directories stack as overlayfs lower dirs.
//!
//! Every write is made relative to a directory fd opened with `openat2(RESOLVE_BENEATH)`: a tar
//! entry with `..` or an absolute name, a symlinked parent pointing out, or a hard link to a file
//! outside is refused with its reason, never followed. Hard links are made last, directory
//! mtimes after their contents; owners are numeric. The compressed blob's digest and the
//! uncompressed stream's `diff_id` are verified, and the stream is bounded (bytes and entries)
//! so that a decompression bomb stops with a clear error.

use std::cell::Cell;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// Bounds on what one layer may expand to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Uncompressed bytes of the tar stream. 64 GiB: larger than any real image layer (the
    /// biggest public CUDA layers are ~10 GiB), small enough that a bomb stops before it fills a
    /// node's disk; `--max-layer-size` lowers it.
    pub max_bytes: u64,
    /// Tar entries. 4 M: a full distribution layer has ~100 k files; each entry costs an inode.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4 << 20,
        }
    }
}

/// What an unpacked layer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of regular file contents written (the layer's recorded size).
    pub size: u64,
    /// Tar entries applied.
    pub entries: u64,
}

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {blob}: {source}")]
    Io {
        blob: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {entry:?}: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {entry:?}: path traversal refused ({why})")]
    Traversal { entry: String, why: &'static str },
    #[error("layer entry {entry:?}: resolves outside the layer through a symlink (escape refused)")]
    Escape { entry: String },
    #[error("hard link {entry:?} → {target:?}: target outside the layer or missing (refused)")]
    HardLink { entry: String, target: String },
    #[error("layer expands past {limit} bytes (decompression bomb?), refused")]
    TooLarge { limit: u64 },
    #[error("layer has more than {limit} entries, refused")]
    TooManyEntries { limit: u64 },
    #[error("layer blob digest mismatch: expected {expected}, got {actual}")]
    BlobDigest { expected: String, actual: String },
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffId { expected: String, actual: String },
    #[error("layer tar stream is corrupt or truncated: {source}")]
    Corrupt {
        #[source]
        source: io::Error,
    },
}

/// A reader that hashes and counts what passes, failing past `limit`.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    count: u64,
    limit: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.over.set(true);
            return Err(io::Error::other("size limit"));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn hex_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Compression detected from the first bytes, as containerd's `DetectCompression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Apply the layer blob at `blob` into the empty directory `dest`.
pub fn unpack_layer(
    blob: &Path,
    dest: &Path,
    blob_digest: Option<&str>,
    diff_id: Option<&str>,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    let io_err = |source| UnpackError::Io {
        blob: blob.to_path_buf(),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 16, File::open(blob).map_err(io_err)?);
    let head = {
        use std::io::BufRead;
        file.fill_buf().map_err(io_err)?.to_vec()
    };
    let never = Rc::new(Cell::new(false));
    let mut compressed = Hashing {
        inner: file,
        hash: Sha256::new(),
        count: 0,
        limit: u64::MAX,
        over: never,
    };
    let over = Rc::new(Cell::new(false));
    let root = open_dir(dest).map_err(io_err)?;
    let result = {
        let decoded: Box<dyn Read + '_> = match detect(&head) {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(&mut compressed).map_err(io_err)?)
            }
            Compression::None => Box::new(&mut compressed),
        };
        let mut plain = Hashing {
            inner: decoded,
            hash: Sha256::new(),
            count: 0,
            limit: limits.max_bytes,
            over: over.clone(),
        };
        let applied = apply(&root, &mut plain, limits);
        match applied {
            Ok(u) => {
                // The tar end blocks and padding are part of the diff_id.
                match io::copy(&mut plain, &mut io::sink()) {
                    Ok(_) => Ok((u, hex_digest(plain.hash))),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        }
    };
    let (mut unpacked, actual_diff) = result.map_err(|e| match e {
        _ if over.get() => UnpackError::TooLarge {
            limit: limits.max_bytes,
        },
        ApplyError::Unpack(u) => u,
        ApplyError::Stream(source) => UnpackError::Corrupt { source },
    })?;
    // Whatever follows the compressed stream still belongs to the blob.
    io::copy(&mut compressed, &mut io::sink()).map_err(io_err)?;
    let actual_blob = hex_digest(compressed.hash);
    if let Some(expected) = blob_digest
        && expected != actual_blob
    {
        return Err(UnpackError::BlobDigest {
            expected: expected.to_string(),
            actual: actual_blob,
        });
    }
    if let Some(expected) = diff_id
        && expected != actual_diff
    {
        return Err(UnpackError::DiffId {
            expected: expected.to_string(),
            actual: actual_diff,
        });
    }
    unpacked.diff_id = actual_diff;
    Ok(unpacked)
}

enum ApplyError {
    Unpack(UnpackError),
    Stream(io::Error),
}

impl From<io::Error> for ApplyError {
    fn from(e: io::Error) -> Self {
        ApplyError::Stream(e)
    }
}

impl From<UnpackError> for ApplyError {
    fn from(e: UnpackError) -> Self {
        ApplyError::Unpack(e)
    }
}

struct Deferred {
    links: Vec<(Vec<CString>, Vec<CString>, String, String)>,
    dirs: Vec<(Vec<CString>, i64)>,
}

fn apply(root: &OwnedFd, r: &mut dyn Read, limits: &Limits) -> Result<Unpacked, ApplyError> {
    let mut ar = tar::Archive::new(r);
    let mut out = Unpacked {
        diff_id: String::new(),
        size: 0,
        entries: 0,
    };
    let mut later = Deferred {
        links: Vec::new(),
        dirs: Vec::new(),
    };
    for entry in ar.entries()? {
        let mut entry = entry?;
        out.entries += 1;
        if out.entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            }
            .into());
        }
        let raw = entry.path()?.into_owned();
        let shown = raw.display().to_string();
        let comps = clean(&raw, &shown)?;
        let Some((name, parent)) = comps.split_last() else {
            continue; // "./": the layer root itself
        };
        let kind = entry.header().entry_type();
        let hdr = entry.header();
        let mode = hdr.mode().unwrap_or(0o644) & 0o7777;
        let uid = hdr.uid().unwrap_or(0) as libc::uid_t;
        let gid = hdr.gid().unwrap_or(0) as libc::gid_t;
        let mtime = hdr.mtime().unwrap_or(0) as i64;
        let e = |op, source| UnpackError::Entry {
            entry: shown.clone(),
            op,
            source,
        };
        let pfd = mkdir_all(root, parent, &shown)?;
        let nb = name.as_bytes();
        if let Some(hidden) = nb.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                let dir = open_beneath(root, parent, libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(|s| resolve_err(&shown, s))?;
                let r = unsafe {
                    libc::fsetxattr(
                        dir.as_raw_fd(),
                        c"trusted.overlay.opaque".as_ptr(),
                        b"y".as_ptr().cast(),
                        1,
                        0,
                    )
                };
                cvt(r).map_err(|s| e("set trusted.overlay.opaque", s))?;
            } else {
                let target = CString::new(hidden).map_err(|_| UnpackError::Traversal {
                    entry: shown.clone(),
                    why: "NUL in name",
                })?;
                if target.as_bytes().is_empty() || target.as_bytes() == b".." {
                    return Err(UnpackError::Traversal {
                        entry: shown.clone(),
                        why: "whiteout of .. or nothing",
                    }
                    .into());
                }
                remove(&pfd, &target).map_err(|s| e("remove", s))?;
                cvt(unsafe { libc::mknodat(pfd.as_raw_fd(), target.as_ptr(), libc::S_IFCHR, 0) })
                    .map_err(|s| e("whiteout mknod", s))?;
                chown(&pfd, &target, 0, 0).map_err(|s| e("chown", s))?;
            }
            continue;
        }
        match kind {
            tar::EntryType::Directory => {
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                let exists = unsafe {
                    libc::fstatat(
                        pfd.as_raw_fd(),
                        name.as_ptr(),
                        &mut st,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                } == 0;
                if exists && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    remove(&pfd, name).map_err(|s| e("remove", s))?;
                }
                if !exists || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    cvt(unsafe { libc::mkdirat(pfd.as_raw_fd(), name.as_ptr(), 0o700) })
                        .map_err(|s| e("mkdir", s))?;
                }
                meta(&pfd, name, uid, gid, Some(mode)).map_err(|s| e("chown/chmod", s))?;
                later.dirs.push((comps.clone(), mtime));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove(&pfd, name).map_err(|s| e("remove", s))?;
                let fd = unsafe {
                    libc::openat(
                        pfd.as_raw_fd(),
                        name.as_ptr(),
                        libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_WRONLY
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                let fd = cvt(fd).map_err(|s| e("create", s))?;
                let mut f = unsafe { File::from_raw_fd(fd) };
                let xattrs = pax_xattrs(&mut entry);
                out.size += io::copy(&mut entry, &mut f)?;
                // Owner, then mode, then xattrs: chown clears `security.capability`.
                meta(&pfd, name, uid, gid, Some(mode)).map_err(|s| e("chown/chmod", s))?;
                for (k, v) in xattrs {
                    let r = unsafe {
                        libc::fsetxattr(f.as_raw_fd(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0)
                    };
                    cvt(r).map_err(|s| e("set xattr", s))?;
                }
                set_mtime(&pfd, name, mtime).map_err(|s| e("utimes", s))?;
                continue;
            }
            tar::EntryType::Symlink => {
                let target = link_name(&entry, &shown)?;
                let t = CString::new(target.as_os_str().as_bytes()).map_err(|_| {
                    UnpackError::Traversal {
                        entry: shown.clone(),
                        why: "NUL in link",
                    }
                })?;
                remove(&pfd, name).map_err(|s| e("remove", s))?;
                cvt(unsafe { libc::symlinkat(t.as_ptr(), pfd.as_raw_fd(), name.as_ptr()) })
                    .map_err(|s| e("symlink", s))?;
                chown(&pfd, name, uid, gid).map_err(|s| e("chown", s))?;
                set_mtime(&pfd, name, mtime).map_err(|s| e("utimes", s))?;
                continue;
            }
            tar::EntryType::Link => {
                let target = link_name(&entry, &shown)?;
                let tshown = target.display().to_string();
                let tcomps = clean(&target, &shown)?;
                later
                    .links
                    .push((comps.clone(), tcomps, shown.clone(), tshown));
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    hdr.device_major().ok().flatten().unwrap_or(0),
                    hdr.device_minor().ok().flatten().unwrap_or(0),
                );
                remove(&pfd, name).map_err(|s| e("remove", s))?;
                cvt(unsafe { libc::mknodat(pfd.as_raw_fd(), name.as_ptr(), fmt | mode, dev) })
                    .map_err(|s| e("mknod", s))?;
            }
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "layer entry type skipped");
                continue;
            }
        }
        meta(&pfd, name, uid, gid, Some(mode)).map_err(|s| e("chown/chmod", s))?;
        set_mtime(&pfd, name, mtime).map_err(|s| e("utimes", s))?;
    }
    for (comps, tcomps, shown, tshown) in later.links {
        let hl = || UnpackError::HardLink {
            entry: shown.clone(),
            target: tshown.clone(),
        };
        let (tname, tparent) = tcomps.split_last().ok_or_else(hl)?;
        let tfd =
            open_beneath(root, tparent, libc::O_PATH | libc::O_DIRECTORY).map_err(|_| hl())?;
        let (name, parent) = comps.split_last().ok_or_else(hl)?;
        let pfd = mkdir_all(root, parent, &shown)?;
        remove(&pfd, name).map_err(|source| UnpackError::Entry {
            entry: shown.clone(),
            op: "remove",
            source,
        })?;
        let r = unsafe {
            libc::linkat(
                tfd.as_raw_fd(),
                tname.as_ptr(),
                pfd.as_raw_fd(),
                name.as_ptr(),
                0,
            )
        };
        cvt(r).map_err(|_| hl())?;
    }
    // Deepest first, so that setting a child's time does not touch its parent's afterwards.
    later.dirs.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    for (comps, mtime) in later.dirs {
        if let Some((name, parent)) = comps.split_last()
            && let Ok(pfd) = open_beneath(root, parent, libc::O_PATH | libc::O_DIRECTORY)
        {
            let _ = set_mtime(&pfd, name, mtime);
        }
    }
    Ok(out)
}

/// The PAX `SCHILY.xattr.*` records of a regular file that a layer may carry: file
/// capabilities and `user.*`. Others (`trusted.*`, `security.selinux`...) are skipped: the
/// overlay markers are ours to write, and labels are the runtime's.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(CString, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
                continue;
            };
            if (name == "security.capability" || name.starts_with("user."))
                && let Ok(c) = CString::new(name)
            {
                out.push((c, ext.value_bytes().to_vec()));
            } else {
                tracing::debug!(xattr = name, "layer xattr skipped");
            }
        }
    }
    out
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, shown: &str) -> Result<PathBuf, UnpackError> {
    match entry.link_name() {
        Ok(Some(l)) => Ok(l.into_owned()),
        _ => Err(UnpackError::Traversal {
            entry: shown.to_string(),
            why: "link without a target",
        }),
    }
}

/// The entry's components: refuses `..` and absolute names; drops `.`.
fn clean(p: &Path, shown: &str) -> Result<Vec<CString>, UnpackError> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                out.push(
                    CString::new(n.as_bytes()).map_err(|_| UnpackError::Traversal {
                        entry: shown.to_string(),
                        why: "NUL in name",
                    })?,
                )
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(UnpackError::Traversal {
                    entry: shown.to_string(),
                    why: "'..' component",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Traversal {
                    entry: shown.to_string(),
                    why: "absolute name",
                });
            }
        }
    }
    Ok(out)
}

fn join(comps: &[CString]) -> CString {
    if comps.is_empty() {
        return c".".to_owned();
    }
    let v: Vec<&[u8]> = comps.iter().map(|c| c.as_bytes()).collect();
    // Components hold no NUL (checked in `clean`).
    CString::new(v.join(&b'/')).unwrap_or_else(|_| c".".to_owned())
}

fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(root, comps, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn open_beneath(root: &OwnedFd, comps: &[CString], flags: i32) -> io::Result<OwnedFd> {
    let path = join(comps);
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = cvt(r as i32)?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn resolve_err(shown: &str, e: io::Error) -> UnpackError {
    if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) {
        UnpackError::Escape {
            entry: shown.to_string(),
        }
    } else {
        UnpackError::Entry {
            entry: shown.to_string(),
            op: "open parent",
            source: e,
        }
    }
}

/// The parent directory of an entry, created (0755, root) where the tar left it out.
fn mkdir_all(root: &OwnedFd, parent: &[CString], shown: &str) -> Result<OwnedFd, UnpackError> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match open_beneath(root, parent, flags) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(resolve_err(shown, e)),
    }
    let mut cur = open_beneath(root, &[], flags).map_err(|e| resolve_err(shown, e))?;
    for i in 0..parent.len() {
        match open_beneath(root, &parent[..=i], flags) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let r = unsafe { libc::mkdirat(cur.as_raw_fd(), parent[i].as_ptr(), 0o755) };
                cvt(r).map_err(|source| UnpackError::Entry {
                    entry: shown.to_string(),
                    op: "mkdir parent",
                    source,
                })?;
                cur =
                    open_beneath(root, &parent[..=i], flags).map_err(|e| resolve_err(shown, e))?;
            }
            Err(e) => return Err(resolve_err(shown, e)),
        }
    }
    Ok(cur)
}

/// Remove what a later entry replaces (an empty directory too; a full one is an error).
fn remove(dir: &OwnedFd, name: &CString) -> io::Result<()> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Ok(());
    }
    let flag = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        libc::AT_REMOVEDIR
    } else {
        0
    };
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flag) }).map(drop)
}

fn chown(dir: &OwnedFd, name: &CString, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Owner first, then mode: chown clears set-id bits.
fn meta(
    dir: &OwnedFd,
    name: &CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    mode: Option<u32>,
) -> io::Result<()> {
    chown(dir, name, uid, gid)?;
    if let Some(m) = mode {
        cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), m, 0) })?;
    }
    Ok(())
}

fn set_mtime(dir: &OwnedFd, name: &CString, mtime: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let ts = [t, t];
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

fn cvt(r: i32) -> io::Result<RawFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A tar built entry by entry (raw headers, so hostile names are possible).
    pub struct TarBuilder(pub Vec<u8>);

    impl TarBuilder {
        pub fn new() -> Self {
            TarBuilder(Vec::new())
        }
        fn header(&mut self, name: &str, kind: tar::EntryType, size: u64, link: &str, mode: u32) {
            let mut h = tar::Header::new_ustar();
            // set_path refuses `..`; write the raw bytes as a hostile tar would.
            let n = name.as_bytes();
            h.as_old_mut().name[..n.len()].copy_from_slice(n);
            let l = link.as_bytes();
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_000_000);
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
        }
        pub fn dir(mut self, name: &str) -> Self {
            self.header(name, tar::EntryType::Directory, 0, "", 0o755);
            self
        }
        pub fn file(mut self, name: &str, data: &[u8]) -> Self {
            self.header(name, tar::EntryType::Regular, data.len() as u64, "", 0o644);
            self.0.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            self.0.extend(std::iter::repeat_n(0, pad));
            self
        }
        pub fn symlink(mut self, name: &str, target: &str) -> Self {
            self.header(name, tar::EntryType::Symlink, 0, target, 0o777);
            self
        }
        pub fn hardlink(mut self, name: &str, target: &str) -> Self {
            self.header(name, tar::EntryType::Link, 0, target, 0o644);
            self
        }
        pub fn finish(mut self) -> Vec<u8> {
            self.0.extend(std::iter::repeat_n(0, 1024));
            self.0
        }
    }

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(data).unwrap();
        g.finish().unwrap()
    }

    pub fn sha(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    fn run(blob: &[u8], limits: Limits) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("blob");
        std::fs::write(&b, blob).unwrap();
        let d = t.path().join("fs");
        std::fs::create_dir(&d).unwrap();
        let r = unpack_layer(&b, &d, Some(&sha(blob)), None, &limits);
        (t, r)
    }

    #[test]
    fn plain_gzip_and_zstd_with_whiteouts() {
        let tar = TarBuilder::new()
            .dir("etc/")
            .file("etc/a", b"hello")
            .file("./bin/x", b"x")
            .symlink("bin/sh", "/bin/busybox")
            .hardlink("etc/b", "etc/a")
            .file("etc/.wh.gone", b"")
            .file("opq/.wh..wh..opq", b"")
            .finish();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for blob in [tar.clone(), gzip(&tar), zst] {
            let (t, r) = run(&blob, Limits::default());
            let u = r.unwrap();
            assert_eq!(u.diff_id, sha(&tar));
            assert_eq!(u.size, 6);
            let fs = t.path().join("fs");
            assert_eq!(std::fs::read(fs.join("etc/a")).unwrap(), b"hello");
            assert_eq!(std::fs::read(fs.join("etc/b")).unwrap(), b"hello");
            assert_eq!(
                std::fs::read_link(fs.join("bin/sh")).unwrap(),
                Path::new("/bin/busybox")
            );
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let m = std::fs::symlink_metadata(fs.join("etc/gone")).unwrap();
            assert!(m.file_type().is_char_device());
            assert_eq!(m.rdev(), 0);
            assert!(!fs.join("etc/.wh.gone").exists());
            assert!(!fs.join("opq/.wh..wh..opq").exists());
        }
    }

    #[test]
    fn refuses_hostile_entries() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                TarBuilder::new().file("../evil", b"x").finish(),
                "traversal",
            ),
            (TarBuilder::new().file("/evil", b"x").finish(), "traversal"),
            (
                TarBuilder::new()
                    .symlink("esc", "../../../../../../tmp")
                    .file("esc/evil", b"x")
                    .finish(),
                "escape",
            ),
            (
                TarBuilder::new()
                    .symlink("abs", "/tmp")
                    .file("abs/evil", b"x")
                    .finish(),
                "escape",
            ),
            (
                TarBuilder::new().hardlink("h", "/etc/passwd").finish(),
                "traversal",
            ),
            (
                TarBuilder::new()
                    .symlink("s", "/etc")
                    .hardlink("h", "s/passwd")
                    .finish(),
                "hard link",
            ),
        ];
        for (blob, want) in cases {
            let (t, r) = run(&blob, Limits::default());
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(want), "{msg:?} should say {want}");
            assert!(!t.path().join("evil").exists());
        }
    }

    #[test]
    fn user_xattrs_from_pax_records() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("SCHILY.xattr.user.k", &b"v"[..]),
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let (t, r) = run(&tar, Limits::default());
        r.unwrap();
        let p = std::ffi::CString::new(t.path().join("fs/f").as_os_str().as_bytes()).unwrap();
        let mut buf = [0u8; 8];
        let n =
            unsafe { libc::lgetxattr(p.as_ptr(), c"user.k".as_ptr(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(&buf[..n as usize], b"v");
        let n = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                8,
            )
        };
        assert!(n < 0, "trusted.* from a layer is not applied");
    }

    #[test]
    fn bounded_and_verified() {
        let big = vec![0u8; 1 << 20];
        let blob = gzip(&TarBuilder::new().file("z", &big).finish());
        let (_t, r) = run(
            &blob,
            Limits {
                max_bytes: 1 << 16,
                max_entries: 10,
            },
        );
        assert!(matches!(r, Err(UnpackError::TooLarge { .. })), "{r:?}");
        let many = (0..20).fold(TarBuilder::new(), |b, i| b.file(&format!("f{i}"), b""));
        let (_t, r) = run(
            &many.finish(),
            Limits {
                max_bytes: 1 << 20,
                max_entries: 10,
            },
        );
        assert!(
            matches!(r, Err(UnpackError::TooManyEntries { .. })),
            "{r:?}"
        );
        // Truncated gzip.
        let blob = gzip(&TarBuilder::new().file("a", &[7u8; 5000]).finish());
        let (_t, r) = run(&blob[..blob.len() / 2], Limits::default());
        assert!(r.is_err());
        // diff_id mismatch.
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("b");
        let tar = TarBuilder::new().file("a", b"1").finish();
        std::fs::write(&b, &tar).unwrap();
        std::fs::create_dir(t.path().join("fs")).unwrap();
        let r = unpack_layer(
            &b,
            &t.path().join("fs"),
            None,
            Some("sha256:00"),
            &Limits::default(),
        );
        assert!(matches!(r, Err(UnpackError::DiffId { .. })));
        std::fs::create_dir(t.path().join("fs2")).unwrap();
        let r = unpack_layer(
            &b,
            &t.path().join("fs2"),
            Some("sha256:00"),
            None,
            &Limits::default(),
        );
        assert!(matches!(r, Err(UnpackError::BlobDigest { .. })));
    }
}
