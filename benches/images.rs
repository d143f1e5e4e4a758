//! `cargo bench --bench images` (as root, Debian's docker-registry, skopeo and umoci installed):
//! pull + unpack of a multi-layer image from a loopback registry by `minikubelet image pull`,
//! beside the same image by `skopeo copy` (registry → OCI layout) followed by `umoci unpack`,
//! measured in the same run. Each round starts from an empty store / layout so nothing is
//! cached. The image: busybox plus three layers of 4 MiB of pseudo-random files (gzip, so the
//! decompression and digest work is real).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/common/images_fixture.rs"]
mod fixture;
use fixture::*;

/// Rounds per tool: enough for a stable median on a quiet machine, short enough to run often.
const ROUNDS: usize = 15;

fn bin() -> std::path::PathBuf {
    // The bench binary sits in target/<profile>/deps; the agent binary in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("minikubelet")
}

fn random_layer(seed: u64, files: usize, size: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut t = Tar::default().dir("data/");
    for i in 0..files {
        let mut buf = Vec::with_capacity(size);
        while buf.len() < size {
            // xorshift64: incompressible enough that gzip does real work.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        t = t.file(&format!("data/f{seed}-{i}"), &buf);
    }
    t.done()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let base = Tar::default()
        .dir("bin/")
        .file_mode("bin/busybox", &bb, 0o755)
        .symlink("bin/sh", "busybox")
        .done();
    let layers = vec![
        base,
        random_layer(1, 64, 64 << 10),
        random_layer(2, 64, 64 << 10),
        random_layer(3, 64, 64 << 10),
    ];
    let img = image(&layers, goarch());
    let reg = Registry::start();
    reg.push("bench/img", "1", &img);
    let name = format!("127.0.0.1:{}/bench/img:1", reg.port);
    let mkl = bin();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..ROUNDS {
        let t = tempfile::tempdir().expect("tempdir");
        let start = Instant::now();
        run(Command::new(&mkl)
            .args(["image", "pull", &name, "--root-dir"])
            .arg(t.path()));
        ours.push(start.elapsed());

        let t = tempfile::tempdir().expect("tempdir");
        let layout = t.path().join("layout");
        let start = Instant::now();
        run(Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:1", layout.display()),
        ]));
        run(Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:1", layout.display())])
            .arg(t.path().join("bundle")));
        theirs.push(start.elapsed());
    }
    let (o, s) = (median(ours), median(theirs));
    println!(
        "pull+unpack, {} layers, {} bytes compressed: minikubelet p50 {:.1} ms; skopeo copy + umoci unpack p50 {:.1} ms ({:.2}x)",
        img.layers.len(),
        img.layers.iter().map(|l| l.len()).sum::<usize>(),
        o.as_secs_f64() * 1e3,
        s.as_secs_f64() * 1e3,
        s.as_secs_f64() / o.as_secs_f64()
    );
}
