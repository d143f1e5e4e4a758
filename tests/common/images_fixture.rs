//! Image fixtures shared by `tests/images.rs` and `benches/images.rs`: Debian's
//! docker-registry on loopback (killed on drop), plain-HTTP monolithic pushes, and images built
//! from `/bin/busybox` with raw tar headers (so hostile names are possible).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange (Connection: close): (status, headers lowercased, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, hs, resp[end + 4..].to_vec())
}

/// Debian's docker-registry on loopback, killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("registry").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/v2/", &[], b"").0 == 200
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer /v2/"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha(data);
        let (st, h, _) = http(
            self.port,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(st, 202, "start upload");
        let loc = h["location"].clone();
        let loc = loc
            .strip_prefix(&format!("http://127.0.0.1:{}", self.port))
            .unwrap_or(&loc)
            .to_string();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let (st, _, b) = http(
            self.port,
            "PUT",
            &format!("{loc}{sep}digest={d}"),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        assert_eq!(st, 201, "upload: {}", String::from_utf8_lossy(&b));
        d
    }

    pub fn push_manifest(&self, repo: &str, tag: &str, media: &str, data: &[u8]) -> String {
        let (st, _, b) = http(
            self.port,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", media)],
            data,
        );
        assert_eq!(st, 201, "manifest: {}", String::from_utf8_lossy(&b));
        sha(data)
    }

    /// Push an image: layers (already compressed) and a config; returns the manifest digest.
    pub fn push(&self, repo: &str, tag: &str, img: &Image) -> String {
        for l in &img.layers {
            self.push_blob(repo, l);
        }
        self.push_blob(repo, &img.config);
        self.push_manifest(repo, tag, MANIFEST, &img.manifest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// An image built in the test: compressed layers, config, manifest.
pub struct Image {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut g = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    g.write_all(data).unwrap();
    g.finish().unwrap()
}

/// A tar written header by header, so that hostile names are possible.
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    pub fn header(&mut self, name: &str, kind: tar::EntryType, size: usize, link: &str, mode: u32) {
        let mut h = tar::Header::new_gnu();
        let n = name.as_bytes();
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        let l = link.as_bytes();
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        h.set_entry_type(kind);
        h.set_size(size as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
    }
    pub fn dir(mut self, name: &str) -> Self {
        self.header(name, tar::EntryType::Directory, 0, "", 0o755);
        self
    }
    pub fn file_mode(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        self.header(name, tar::EntryType::Regular, data.len(), "", mode);
        self.0.extend_from_slice(data);
        self.0
            .extend(std::iter::repeat_n(0, (512 - data.len() % 512) % 512));
        self
    }
    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_mode(name, data, 0o644)
    }
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.header(name, tar::EntryType::Symlink, 0, target, 0o777);
        self
    }
    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.header(name, tar::EntryType::Link, 0, target, 0o644);
        self
    }
    pub fn done(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0, 1024));
        self.0
    }
}

/// An image of `tars` (uncompressed; gzipped here) with a config for `arch`.
pub fn image(tars: &[Vec<u8>], arch: &str) -> Image {
    let process = serde_json::json!({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
        "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/etc", "User": "1000:1000"});
    image_with_config(tars, arch, process)
}

/// An image of `tars` whose config's `config` object (Entrypoint, Cmd, Env...) is `process`.
pub fn image_with_config(tars: &[Vec<u8>], arch: &str, process: serde_json::Value) -> Image {
    let diff_ids: Vec<String> = tars.iter().map(|t| sha(t)).collect();
    let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(l), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    Image {
        layers,
        config,
        manifest,
    }
}

/// The busybox image: layer 1 has busybox, /etc/{keep,gone}, /opq/old; layer 2 whites out
/// /etc/gone, makes /opq opaque with /opq/new, and adds a hard link.
pub fn busybox_image() -> Image {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian package busybox-static)");
    let l1 = Tar::default()
        .dir("bin/")
        .file_mode("bin/busybox", &bb, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/ls", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc/")
        .file("etc/keep", b"kept\n")
        .file("etc/gone", b"gone\n")
        .dir("opq/")
        .file("opq/old", b"old\n")
        .done();
    let l2 = Tar::default()
        .dir("etc/")
        .file("etc/.wh.gone", b"")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"new\n")
        .hardlink("etc/keep2", "opq/new")
        .done();
    image(&[l1, l2], goarch())
}
