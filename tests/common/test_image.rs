//! The image the tests' pods run from: `localhost/busybox:test`, built from Debian's
//! `busybox-static` by `scripts/busybox-image.sh` (`/bin/busybox` and a link for each of its
//! applets, `/etc/passwd`, `/etc/group`, `/tmp`), shaped like the public `busybox` image
//! (`Cmd ["sh"]`, the usual `PATH`). It is written once per test binary as a `docker save`
//! tarball, and each `Agent`
//! imports it into its own store (`<root-dir>/images`) before it starts, as a node is
//! provisioned offline (`minikubelet image import`): a tagged name defaults to
//! `imagePullPolicy: IfNotPresent`, so no test pulls, and nothing leaves the machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::Digest;

/// The reference test pods name (`image: localhost/busybox:test`).
pub const TEST_IMAGE: &str = "localhost/busybox:test";

/// A `docker save` tarball of [`TEST_IMAGE`] made by `scripts/busybox-image.sh` (the builder
/// the VM tests and `scripts/demo.sh` use too), once per test binary, under Cargo's target tmp
/// dir; its path.
pub fn test_image_archive() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // Keyed by the builder and the busybox it packages: built once, reused by every test
        // process (nextest runs each test in its own) until either changes.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/busybox-image.sh");
        let mut key = std::fs::read(&script).expect("scripts/busybox-image.sh");
        let bb = std::fs::metadata("/bin/busybox")
            .expect("/bin/busybox (Debian package busybox-static)");
        key.extend(format!("{}:{:?}", bb.len(), bb.modified().ok()).as_bytes());
        let hash = hex::encode(&sha2::Sha256::digest(&key)[..6]);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("busybox-test-{hash}.tar"));
        if path.exists() {
            return path;
        }
        let tmp = dir.join(format!(".busybox-test-{hash}-{}.tar", std::process::id()));
        let out = Command::new(&script)
            .arg(&tmp)
            .arg(TEST_IMAGE)
            .output()
            .expect("scripts/busybox-image.sh");
        assert!(
            out.status.success(),
            "{}: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &path).expect("rename the test image");
        path
    })
}

/// Imports [`TEST_IMAGE`] into the store of `root_dir`: the first time (per change of the
/// image) with `minikubelet image import` into a template store under Cargo's target tmp dir,
/// then as a hard-linked copy of that store (`cp -al`, a few ms instead of an import's
/// ~0.5 s of fsyncs per test agent). Nothing writes a store's files in place (blobs and
/// layers are content-addressed, written to a temporary name and renamed), so the links
/// are safe; the store's lock file is the one file each copy gets of its own.
pub fn import_test_image(root_dir: &Path) {
    let template = template_store();
    std::fs::create_dir_all(root_dir).expect("create the root dir");
    let store = root_dir.join("images");
    let out = Command::new("cp")
        .arg("-a")
        .arg("--link")
        .arg(template.join("images"))
        .arg(&store)
        .output()
        .expect("cp -al");
    if !out.status.success() {
        // Another filesystem (a tmpfs /tmp): no hard links; an import of its own.
        let _ = std::fs::remove_dir_all(&store);
        import(root_dir);
        return;
    }
    let lock = store.join("lock");
    if lock.exists() {
        std::fs::remove_file(&lock).expect("unlink the copied lock");
        std::fs::File::create(&lock).expect("a lock file of its own");
    }
}

/// A root dir whose store holds [`TEST_IMAGE`], made once per image archive.
fn template_store() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let archive = test_image_archive();
        let root = archive.with_extension("store");
        if root.join("images").exists() {
            return root;
        }
        let tmp = PathBuf::from(format!("{}.tmp-{}", root.display(), std::process::id()));
        import(&tmp);
        // Another test process may have won the race: then its template is used.
        if std::fs::rename(&tmp, &root).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        root
    })
}

/// `minikubelet image import` of the test image into `root_dir`'s store.
fn import(root_dir: &Path) {
    let archive = test_image_archive();
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .args(["image", "import"])
        .arg(archive)
        .arg("--root-dir")
        .arg(root_dir)
        .output()
        .expect("minikubelet image import");
    assert!(
        out.status.success(),
        "minikubelet image import {}: {}\n{}",
        archive.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
