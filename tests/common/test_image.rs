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

/// Imports [`TEST_IMAGE`] into the store of `root_dir` with `minikubelet image import`.
pub fn import_test_image(root_dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .args(["image", "import"])
        .arg(test_image_archive())
        .arg("--root-dir")
        .arg(root_dir)
        .output()
        .expect("minikubelet image import");
    assert!(
        out.status.success(),
        "minikubelet image import {}: {}\n{}",
        test_image_archive().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
