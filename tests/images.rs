//! Images end to end with the real binary (`minikubelet image ...`), no network beyond loopback:
//! Debian's `docker-registry` on 127.0.0.1 with a random port holds images built here from
//! `/bin/busybox`; a small registry written in this file plays the parts docker-registry cannot
//! (bearer tokens with credentials, a redirect to a second port, a lying or truncated blob).
//! Run as root (whiteouts are character devices, the opaque marker a `trusted.` xattr).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/images_fixture.rs"]
mod fixture;
use fixture::*;

const BIN: &str = env!("CARGO_BIN_EXE_minikubelet");

fn mkl(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("image")
        .args(args)
        .arg("--root-dir")
        .arg(root)
        .output()
        .unwrap();
    eprintln!(
        "minikubelet image {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "command failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn refused(out: &Output, why: &str) {
    assert!(!out.status.success(), "should have been refused ({why})");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "stderr should say {why:?}: {err}");
}

fn record(root: &Path, name: &str) -> serde_json::Value {
    let esc: String = name
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let p = root.join("images/refs").join(format!("{esc}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn layer_dirs(root: &Path, rec: &serde_json::Value) -> Vec<PathBuf> {
    rec["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let c = l["chainId"].as_str().unwrap().trim_start_matches("sha256:");
            root.join("images/layers").join(c).join("fs")
        })
        .collect()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |r| r.count())
}

#[test]
fn pull_multilayer_whiteouts_index_and_overlay_view() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let img = busybox_image();
    let digest = reg.push("mkl/bb", "1", &img);
    let name = format!("127.0.0.1:{}/mkl/bb:1", reg.port);
    let out = ok(&mkl(&root, &["pull", &name]));
    assert!(out.contains("Pulled"), "{out}");

    // Store layout: blobs by digest, one dir per chain ID, the record.
    for b in img.layers.iter().chain([&img.config, &img.manifest]) {
        let p = root
            .join("images/blobs/sha256")
            .join(sha(b).trim_start_matches("sha256:"));
        assert_eq!(std::fs::read(&p).unwrap(), *b, "{}", p.display());
    }
    let rec = record(&root, &name);
    assert_eq!(rec["manifestDigest"], digest);
    assert_eq!(rec["id"], sha(&img.config));
    let dirs = layer_dirs(&root, &rec);
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        std::fs::read(dirs[0].join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::read_link(dirs[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Whiteout → 0:0 char device, opaque → trusted.overlay.opaque=y.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = std::fs::symlink_metadata(dirs[1].join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 0, 0));
    assert_eq!(
        xattr(&dirs[1].join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dirs[1].join("opq/.wh..wh..opq").exists());
    let h1 = std::fs::metadata(dirs[1].join("etc/keep2")).unwrap();
    let h2 = std::fs::metadata(dirs[1].join("opq/new")).unwrap();
    assert_eq!(h1.ino(), h2.ino(), "hard link within the layer");
    assert_eq!(
        std::fs::metadata(dirs[0].join("bin/busybox"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );

    // The overlay of the layers shows the image's view; busybox runs from it. In a private
    // mount namespace so that nothing stays mounted whatever happens.
    let up = t.path().join("upper");
    let work = t.path().join("work");
    let merged = t.path().join("merged");
    for d in [&up, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:{},upperdir={},workdir={} {m} && \
         ls {m}/etc && echo -- && ls {m}/opq && echo -- && cat {m}/etc/keep2 && chroot {m} /bin/sh -c 'echo from-image'",
        dirs[1].display(),
        dirs[0].display(),
        up.display(),
        work.display(),
        m = merged.display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let view = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "overlay: {view} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let parts: Vec<&str> = view.split("--\n").collect();
    assert_eq!(
        parts[0].split_whitespace().collect::<Vec<_>>(),
        ["keep", "keep2"],
        "{view}"
    );
    assert_eq!(
        parts[1].split_whitespace().collect::<Vec<_>>(),
        ["new"],
        "{view}"
    );
    assert!(
        parts[2].contains("new") && parts[2].contains("from-image"),
        "{view}"
    );

    // ls shows it with a size; a second pull fetches nothing new and is idempotent.
    let ls = ok(&mkl(&root, &["ls"]));
    assert!(ls.contains(&name) && ls.contains("MB"), "{ls}");
    ok(&mkl(&root, &["pull", &name]));
    assert_eq!(count_files(&root.join("images/layers")), 2);
    assert_eq!(count_files(&root.join("images/tmp")), 0);

    // An index with two platforms resolves to this node's.
    let other = image(&[Tar::default().file("other", b"s390x").done()], "s390x");
    let other_d = reg.push("mkl/multi", "s390x", &other);
    let mine_d = reg.push("mkl/multi", "mine", &img);
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": other_d, "size": other.manifest.len(), "platform": {"architecture": "s390x", "os": "linux"}},
        {"mediaType": MANIFEST, "digest": mine_d, "size": img.manifest.len(), "platform": {"architecture": goarch(), "os": "linux"}},
    ]}))
    .unwrap();
    reg.push_manifest("mkl/multi", "2", INDEX, &index);
    let multi = format!("127.0.0.1:{}/mkl/multi:2", reg.port);
    ok(&mkl(&root, &["pull", &multi]));
    assert_eq!(record(&root, &multi)["manifestDigest"], mine_d);
    // Shared layers are not unpacked twice.
    assert_eq!(count_files(&root.join("images/layers")), 2);

    // rm: the layers stay while the other image uses them, go with the last.
    ok(&mkl(&root, &["rm", &name]));
    assert_eq!(count_files(&root.join("images/layers")), 2);
    ok(&mkl(&root, &["rm", &multi]));
    assert_eq!(count_files(&root.join("images/layers")), 0);
    assert!(!ok(&mkl(&root, &["ls", "-q"])).contains("mkl"));
}

#[test]
fn hostile_layers_are_refused_and_nothing_is_written_outside() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    let o = outside.display().to_string();
    let rel_out = format!("../../../../../../../../..{o}");
    let bomb = gzip(&Tar::default().file("zero", &vec![0u8; 8 << 20]).done());
    let cases: Vec<(&str, Vec<u8>, &str, &[&str])> = vec![
        (
            "traversal",
            Tar::default().file(&format!("{rel_out}/evil"), b"x").done(),
            "path traversal refused",
            &[],
        ),
        (
            "absolute",
            Tar::default().file(&format!("{o}/evil"), b"x").done(),
            "path traversal refused",
            &[],
        ),
        (
            "symlink",
            Tar::default()
                .symlink("esc", &o)
                .file("esc/evil", b"x")
                .done(),
            "escape refused",
            &[],
        ),
        (
            "symlinkrel",
            Tar::default()
                .symlink("esc", &rel_out)
                .file("esc/evil", b"x")
                .done(),
            "escape refused",
            &[],
        ),
        (
            "hardlink",
            Tar::default()
                .symlink("s", &o)
                .hardlink("h", "s/secret")
                .done(),
            "hard link",
            &[],
        ),
        (
            "hardlinkabs",
            Tar::default().hardlink("h", &format!("{o}/secret")).done(),
            "path traversal refused",
            &[],
        ),
    ];
    for (tag, tar, why, extra) in &cases {
        let img = image(std::slice::from_ref(tar), goarch());
        reg.push("mkl/bad", tag, &img);
        let mut args = vec![
            "pull".to_string(),
            format!("127.0.0.1:{}/mkl/bad:{tag}", reg.port),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        refused(&mkl(&root, &a), why);
    }
    // A decompression bomb (8 MiB of zeros in ~8 KiB) against a 1 MiB layer bound.
    let diff = {
        let mut d = flate2::read::GzDecoder::new(&bomb[..]);
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        sha(&v)
    };
    let mut img = image(&[Tar::default().done()], goarch());
    img.layers = vec![bomb.clone()];
    let cfg: serde_json::Value = serde_json::json!({"architecture": goarch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]}});
    img.config = serde_json::to_vec(&cfg).unwrap();
    img.manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&img.config), "size": img.config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&bomb), "size": bomb.len()}]})).unwrap();
    reg.push("mkl/bad", "bomb", &img);
    refused(
        &mkl(
            &root,
            &[
                "pull",
                &format!("127.0.0.1:{}/mkl/bad:bomb", reg.port),
                "--max-layer-size",
                "1048576",
            ],
        ),
        "decompression bomb",
    );
    // A config whose diff_id does not match the layer.
    let mut img = busybox_image();
    let mut cfg: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    cfg["rootfs"]["diff_ids"][1] = serde_json::Value::String(sha(b"not the layer"));
    img.config = serde_json::to_vec(&cfg).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    m["config"]["digest"] = sha(&img.config).into();
    m["config"]["size"] = img.config.len().into();
    img.manifest = serde_json::to_vec(&m).unwrap();
    reg.push("mkl/bad", "diffid", &img);
    refused(
        &mkl(
            &root,
            &["pull", &format!("127.0.0.1:{}/mkl/bad:diffid", reg.port)],
        ),
        "diff_id mismatch",
    );

    // Nothing outside, no image recorded, no half layer left.
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
    assert_eq!(count_files(&root.join("images/refs")), 0);
    let layers: Vec<_> = std::fs::read_dir(root.join("images/layers"))
        .unwrap()
        .collect();
    // Only the busybox image's first layer (valid, verified) may have been committed.
    assert!(layers.len() <= 1, "{layers:?}");
    assert_eq!(count_files(&root.join("images/tmp")), 0);
}

/// A registry in miniature for what docker-registry cannot do on demand: bearer tokens that
/// need credentials, a redirect of blob GETs to a second port, blobs that lie or stop short.
#[derive(Default)]
struct FakeState {
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    /// Serve this blob with half its body and close.
    truncate: Option<String>,
    /// Serve half of this blob, then hold the connection open (a pull to interrupt).
    stall: Option<String>,
    /// Basic credentials the token endpoint wants.
    creds: Option<String>,
    redirect_to: Option<u16>,
    token_port: u16,
}

const TOKEN: &str = "tok-123";

fn fake_registry(state: Arc<Mutex<FakeState>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let st = state.clone();
            std::thread::spawn(move || serve(s, &st, port));
        }
    });
    port
}

fn serve(mut s: TcpStream, st: &Mutex<FakeState>, port: u16) {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let first = head.lines().next().unwrap_or("").to_string();
    let path = first.split(' ').nth(1).unwrap_or("/").to_string();
    let method = first.split(' ').next().unwrap_or("GET").to_string();
    let auth = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ")
                .or_else(|| l.strip_prefix("Authorization: "))
        })
        .unwrap_or("")
        .to_string();
    let st = st.lock().unwrap();
    let send = |s: &mut TcpStream, code: &str, hdrs: &[(&str, String)], body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in hdrs {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        let _ = s.write_all(r.as_bytes());
        if method != "HEAD" {
            let _ = s.write_all(body);
        }
    };
    if path.starts_with("/token") {
        use base64::Engine;
        let want = st.creds.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        if want.is_some_and(|w| w != auth) {
            return send(
                &mut s,
                "401 Unauthorized",
                &[],
                b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
            );
        }
        return send(
            &mut s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            format!("{{\"token\":\"{TOKEN}\"}}").as_bytes(),
        );
    }
    if let Some(d) = path.strip_prefix("/direct/") {
        // The "CDN" behind a redirect: no auth.
        return match st.blobs.get(d) {
            Some(b) => send(&mut s, "200 OK", &[], b),
            None => send(&mut s, "404 Not Found", &[], b""),
        };
    }
    if st.creds.is_some() && auth != format!("Bearer {TOKEN}") {
        let h = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake\",scope=\"repository:mkl/x:pull\"",
            st.token_port
        );
        return send(
            &mut s,
            "401 Unauthorized",
            &[("WWW-Authenticate", h)],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
        );
    }
    if path == "/v2/" {
        return send(&mut s, "200 OK", &[], b"{}");
    }
    if let Some((_, rest)) = path.split_once("/manifests/") {
        return match st.manifests.get(rest) {
            Some((ct, b)) => send(
                &mut s,
                "200 OK",
                &[
                    ("Content-Type", ct.clone()),
                    ("Docker-Content-Digest", sha(b)),
                ],
                b,
            ),
            None => send(&mut s, "404 Not Found", &[], b""),
        };
    }
    if let Some((_, d)) = path.split_once("/blobs/") {
        let Some(b) = st.blobs.get(d) else {
            return send(&mut s, "404 Not Found", &[], b"");
        };
        if let Some(to) = st.redirect_to {
            return send(
                &mut s,
                "307 Temporary Redirect",
                &[("Location", format!("http://127.0.0.1:{to}/direct/{d}"))],
                b"",
            );
        }
        if st.stall.as_deref() == Some(d) {
            let b = b.clone();
            drop(st);
            let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len());
            let _ = s.write_all(r.as_bytes());
            let _ = s.write_all(&b[..b.len() / 2]);
            let _ = s.flush();
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        if st.truncate.as_deref() == Some(d) {
            let r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            );
            let _ = s.write_all(r.as_bytes());
            let _ = s.write_all(&b[..b.len() / 2]);
            return;
        }
        return send(&mut s, "200 OK", &[], b);
    }
    let _ = port;
    send(&mut s, "404 Not Found", &[], b"")
}

fn fake_with(img: &Image, tag: &str) -> (Arc<Mutex<FakeState>>, u16) {
    let mut st = FakeState::default();
    st.manifests
        .insert(tag.into(), (MANIFEST.into(), img.manifest.clone()));
    st.manifests
        .insert(sha(&img.manifest), (MANIFEST.into(), img.manifest.clone()));
    for b in img.layers.iter().chain([&img.config]) {
        st.blobs.insert(sha(b), b.clone());
    }
    let st = Arc::new(Mutex::new(st));
    let port = fake_registry(st.clone());
    st.lock().unwrap().token_port = port;
    (st, port)
}

#[test]
fn bearer_token_with_node_credentials_and_redirect() {
    let img = busybox_image();
    let (st, port) = fake_with(&img, "1");
    // The blob "CDN" is a second server on another port.
    let (_cdn_st, cdn) = fake_with(&img, "1");
    {
        let mut s = st.lock().unwrap();
        s.creds = Some("alice:s3cret".into());
        s.redirect_to = Some(cdn);
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let name = format!("127.0.0.1:{port}/mkl/x:1");
    // Without credentials the token endpoint says no.
    let out = mkl(&root, &["pull", &name]);
    assert!(!out.status.success());
    // With the node's config.json (base64 user:pass, as `docker login` writes it).
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        root.join("config.json"),
        format!("{{\"auths\":{{\"127.0.0.1:{port}\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    ok(&mkl(&root, &["pull", &name]));
    assert_eq!(record(&root, &name)["manifestDigest"], sha(&img.manifest));
    // Also through --image-credential-file, from a fresh store.
    let root2 = t.path().join("root2");
    let cred = t.path().join("creds.json");
    std::fs::copy(root.join("config.json"), &cred).unwrap();
    ok(&mkl(
        &root2,
        &[
            "pull",
            &name,
            "--image-credential-file",
            cred.to_str().unwrap(),
        ],
    ));
}

#[test]
fn lying_and_truncated_blobs_are_refused() {
    let img = busybox_image();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    // Digest mismatch: the registry serves other bytes under the layer's digest.
    let (st, port) = fake_with(&img, "1");
    let d0 = sha(&img.layers[1]);
    st.lock()
        .unwrap()
        .blobs
        .insert(d0.clone(), gzip(b"something else"));
    refused(
        &mkl(&root, &["pull", &format!("127.0.0.1:{port}/mkl/x:1")]),
        "Digest",
    );
    // Longer than the manifest says: stopped at the descriptor's size.
    let mut longer = img.layers[1].clone();
    longer.extend(std::iter::repeat_n(0u8, 1 << 20));
    st.lock().unwrap().blobs.insert(d0.clone(), longer);
    refused(
        &mkl(&root, &["pull", &format!("127.0.0.1:{port}/mkl/x:1")]),
        "larger than",
    );
    // Truncated: the connection closes half way through the layer (a fresh store: the first
    // attempt kept the verified layer 0).
    let root = t.path().join("root2");
    let (st, port) = fake_with(&img, "1");
    st.lock().unwrap().truncate = Some(sha(&img.layers[0]));
    let out = mkl(&root, &["pull", &format!("127.0.0.1:{port}/mkl/x:1")]);
    assert!(!out.status.success());
    assert_eq!(count_files(&root.join("images/refs")), 0);
    assert!(
        !root
            .join("images/blobs/sha256")
            .join(sha(&img.layers[0]).trim_start_matches("sha256:"))
            .exists()
    );
    // A manifest pinned by digest that the registry changes.
    let (st, port) = fake_with(&img, "1");
    let other = sha(b"other");
    st.lock()
        .unwrap()
        .manifests
        .insert(other.clone(), (MANIFEST.into(), img.manifest.clone()));
    refused(
        &mkl(&root, &["pull", &format!("127.0.0.1:{port}/mkl/x@{other}")]),
        "igest",
    );
    assert_eq!(count_files(&root.join("images/refs")), 0);
}

#[test]
fn import_docker_save_and_oci_archives_offline() {
    let t = tempfile::tempdir().unwrap();
    let img = busybox_image();
    // An OCI layout on disk, then skopeo makes a docker-archive and an oci-archive of it.
    let layout = t.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for b in img.layers.iter().chain([&img.config, &img.manifest]) {
        std::fs::write(
            layout
                .join("blobs/sha256")
                .join(sha(b).trim_start_matches("sha256:")),
            b,
        )
        .unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": MANIFEST, "digest": sha(&img.manifest), "size": img.manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": "bb"}}]}))
        .unwrap(),
    )
    .unwrap();
    let docker_tar = t.path().join("bb-docker.tar");
    let oci_tar = t.path().join("bb-oci.tar");
    for (dst, what) in [
        (
            format!("docker-archive:{}:mkl/bb:1", docker_tar.display()),
            "docker",
        ),
        (format!("oci-archive:{}:bb", oci_tar.display()), "oci"),
    ] {
        let o = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                &format!("oci:{}:bb", layout.display()),
                &dst,
            ])
            .output()
            .expect("skopeo (Debian package skopeo)");
        assert!(
            o.status.success(),
            "skopeo {what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let root = t.path().join("root");
    let out = ok(&mkl(&root, &["import", docker_tar.to_str().unwrap()]));
    assert!(out.contains("docker.io/mkl/bb:1"), "{out}");
    let rec = record(&root, "docker.io/mkl/bb:1");
    let dirs = layer_dirs(&root, &rec);
    assert!(std::fs::symlink_metadata(dirs[1].join("etc/gone")).is_ok());
    assert_eq!(std::fs::read(dirs[0].join("etc/keep")).unwrap(), b"kept\n");
    // The OCI archive names its image by a bare tag: --name gives the full reference.
    refused(
        &mkl(&root, &["import", oci_tar.to_str().unwrap()]),
        "--name",
    );
    ok(&mkl(
        &root,
        &[
            "import",
            oci_tar.to_str().unwrap(),
            "--name",
            "example.com/bb:oci",
        ],
    ));
    let rec2 = record(&root, "example.com/bb:oci");
    // Same layers, unpacked once.
    assert_eq!(rec2["layers"][0]["diffId"], rec["layers"][0]["diffId"]);
    assert_eq!(count_files(&root.join("images/layers")), 2);
    let ls = ok(&mkl(&root, &["ls"]));
    assert!(
        ls.contains("docker.io/mkl/bb:1") && ls.contains("example.com/bb:oci"),
        "{ls}"
    );
}

#[test]
fn interrupted_pull_leaves_nothing_used_and_the_next_pull_completes() {
    let img = busybox_image();
    let (st, port) = fake_with(&img, "1");
    let layer0 = sha(&img.layers[0]);
    st.lock().unwrap().stall = Some(layer0.clone());
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let name = format!("127.0.0.1:{port}/mkl/x:1");
    let mut child = Command::new(BIN)
        .args(["image", "pull", &name, "--root-dir"])
        .arg(&root)
        .spawn()
        .unwrap();
    // Wait for half a layer in tmp/, then kill -9 the pull.
    let tmp = root.join("images/tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let found = std::fs::read_dir(&tmp).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| e.metadata().is_ok_and(|m| m.len() > 0))
                .map(|e| e.path())
        });
        if let Some(p) = found {
            break p;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the pull never wrote a partial blob");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists());
    assert_eq!(count_files(&root.join("images/refs")), 0);
    let blob = root
        .join("images/blobs/sha256")
        .join(layer0.trim_start_matches("sha256:"));
    assert!(!blob.exists(), "a half blob must never be under its digest");
    assert_eq!(count_files(&root.join("images/layers")), 0);
    assert!(!ok(&mkl(&root, &["ls", "-q"])).contains("mkl/x"));
    // The next pull completes and clears the leftovers.
    st.lock().unwrap().stall = None;
    ok(&mkl(&root, &["pull", &name]));
    assert_eq!(record(&root, &name)["manifestDigest"], sha(&img.manifest));
    assert!(!partial.exists());
    assert_eq!(count_files(&tmp), 0);
}
