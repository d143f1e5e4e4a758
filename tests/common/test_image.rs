//! The image the tests' pods run from: `localhost/busybox:test`, built here from Debian's
//! `busybox-static` (`/bin/busybox` and a link for each of its applets, `/etc/passwd`,
//! `/etc/group`, `/tmp`), shaped like the public `busybox` image (`Cmd ["sh"]`, the usual
//! `PATH`). It is written once per test binary as a `docker save` tarball, and each `Agent`
//! imports it into its own store (`<root-dir>/images`) before it starts, as a node is
//! provisioned offline (`minikubelet image import`): a tagged name defaults to
//! `imagePullPolicy: IfNotPresent`, so no test pulls, and nothing leaves the machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The reference test pods name (`image: localhost/busybox:test`).
pub const TEST_IMAGE: &str = "localhost/busybox:test";

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The root filesystem layer (an uncompressed tar).
fn layer() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian package busybox-static)");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).expect("link name");
        }
        t.append_data(&mut h, name, data).expect("tar entry");
    };
    for d in ["bin/", "etc/", "root/", "home/", "var/", "usr/"] {
        add(d, tar::EntryType::Directory, 0o755, b"", "");
    }
    add("tmp/", tar::EntryType::Directory, 0o1777, b"", "");
    add("bin/busybox", tar::EntryType::Regular, 0o755, &bb, "");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            add(
                &format!("bin/{applet}"),
                tar::EntryType::Symlink,
                0o777,
                b"",
                "busybox",
            );
        }
    }
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        "",
    );
    add(
        "etc/group",
        tar::EntryType::Regular,
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
        "",
    );
    t.into_inner().expect("tar")
}

/// A `docker save` tarball of [`TEST_IMAGE`], written once per test binary under Cargo's
/// target tmp dir; its path.
pub fn test_image_archive() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let layer = layer();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": goarch(), "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
            },
            "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
        }))
        .expect("config");
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": "config.json", "RepoTags": [TEST_IMAGE], "Layers": ["layer.tar"],
        }]))
        .expect("manifest");
        let mut t = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("manifest.json", &manifest),
            ("config.json", &config),
            ("layer.tar", &layer),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            t.append_data(&mut h, name, data.as_slice()).expect("tar");
        }
        let bytes = t.into_inner().expect("tar");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("busybox-test-{}.tar", &sha(&bytes)[7..19]));
        if !path.exists() {
            let tmp = dir.join(format!(".busybox-test-{}.tmp", std::process::id()));
            let mut f = std::fs::File::create(&tmp).expect("write test image");
            f.write_all(&bytes).expect("write test image");
            std::fs::rename(&tmp, &path).expect("rename test image");
        }
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
