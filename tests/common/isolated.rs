//! Helpers of the isolation tests (`tests/isolation.rs`, `tests/oci_oracle.rs`): a busybox
//! rootfs in two layers, pod-namespace holders, containers started through the real shim.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minikubelet::logs::parse_cri_line;
use minikubelet::runtime::spec::{self, ContainerProcess};
use minikubelet::shim::{self, ExitStatus, Isolation, Rootfs, ShimConfig, ShimState};

use super::shim_binary;

/// A busybox root filesystem in two layers (topmost first) plus a writable layer.
pub struct Layers {
    pub dir: tempfile::TempDir,
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Layers {
    pub fn new() -> Layers {
        let dir = tempfile::tempdir().unwrap();
        let bottom = dir.path().join("layer-busybox");
        let top = dir.path().join("layer-top");
        let bin = bottom.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static (/bin/busybox)");
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(bottom.join(d)).unwrap();
        }
        std::fs::write(bottom.join("etc/layer"), "bottom\n").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/layer"), "top\n").unwrap();
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        Layers {
            lower: vec![top, bottom],
            upper,
            work,
            dir,
        }
    }

    pub fn rootfs(&self) -> Rootfs {
        Rootfs::Overlay {
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            work: self.work.clone(),
        }
    }
}

/// Pinned-by-a-process UTS and IPC namespaces standing in for a pod sandbox: `unshare -ui`
/// running busybox sleep; killed on drop.
pub struct Holder {
    pub pid: i32,
    child: std::process::Child,
}

impl Holder {
    pub fn new() -> Holder {
        let child = std::process::Command::new("unshare")
            .args(["--uts", "--ipc", "/bin/busybox", "sleep", "600"])
            .spawn()
            .expect("unshare(1)");
        let pid = child.id() as i32;
        // unshare execs the sleep once it is in its namespaces.
        let until = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|e| !e.to_string_lossy().contains("busybox"))
        {
            assert!(Instant::now() < until, "unshare did not exec");
            std::thread::sleep(Duration::from_millis(5));
        }
        Holder { pid, child }
    }

    pub fn ns(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.pid))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One container's state dir and log, and a guard that kills it.
pub struct Container {
    _dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub state: Option<ShimState>,
}

impl Container {
    /// Starts `iso` (its bundle in the state dir) through the real shim.
    pub fn start(mut iso: Isolation) -> (Container, Result<ShimState, shim::ShimError>) {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let log_path = dir.path().join("logs/0.log");
        std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
        iso.bundle = state_dir.join(shim::BUNDLE_DIR);
        let cfg = ShimConfig {
            container_id: "uid-c-0".into(),
            argv: vec![],
            env: vec![],
            working_dir: None,
            uid: None,
            gid: None,
            supplemental_groups: vec![],
            cgroup_procs: vec![],
            oom_score_adj: None,
            log_path: log_path.clone(),
            log_max_size: 0,
            log_max_files: 5,
            stdin: false,
            stdin_once: false,
            isolation: Some(iso),
        };
        shim::write_config(&state_dir, &cfg).unwrap();
        let res = shim::start(shim_binary(), &state_dir);
        let c = Container {
            _dir: dir,
            state_dir,
            log_path,
            state: res.as_ref().ok().cloned(),
        };
        (c, res)
    }

    pub fn wait_exit(&self) -> ExitStatus {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = shim::read_exit(&self.state_dir).unwrap() {
                return e;
            }
            assert!(Instant::now() < until, "no exit.json");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The container's stdout and stderr, in order.
    pub fn output(&self) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        text.split_inclusive(|&b| b == b'\n')
            .map(|l| {
                let r = parse_cri_line(l).unwrap();
                format!("{}\n", String::from_utf8_lossy(r.content))
            })
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(st) = &self.state
            && matches!(shim::read_exit(&self.state_dir), Ok(None))
            && std::fs::read_to_string(format!("/proc/{}/status", st.pid))
                .is_ok_and(|s| s.contains(&format!("PPid:\t{}\n", st.shim_pid)))
        {
            // SAFETY: kill(2) of the container's PID 1: the kernel ends its namespace.
            unsafe { libc::kill(st.pid, libc::SIGKILL) };
            let _ = self.wait_exit();
        }
    }
}

pub fn process(script: &str) -> ContainerProcess {
    ContainerProcess {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), "/bin".into())],
        ..Default::default()
    }
}

pub fn isolation(spec: minikubelet::runtime::oci::Spec, rootfs: Rootfs) -> Isolation {
    Isolation {
        bundle: PathBuf::new(),
        rootfs,
        spec,
    }
}

/// Runs a script to its end in a container; returns its output (exit code 0 required).
pub fn run(iso: Isolation) -> String {
    let (c, res) = Container::start(iso);
    res.unwrap();
    let exit = c.wait_exit();
    let out = c.output();
    assert_eq!(exit.exit_code, 0, "{exit:?}\n{out}");
    out
}

pub fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
        .trim()
}

pub fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// The mask of containerd's 14 default capabilities.
pub fn default_caps_mask() -> String {
    let names: Vec<String> = spec::DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    format!(
        "{:016x}",
        minikubelet::runtime::oci::capability_mask(&names).unwrap()
    )
}

pub const FACTS: &str = r#"
echo pid=$$
echo mnt=$(readlink /proc/self/ns/mnt)
echo pidns=$(readlink /proc/self/ns/pid)
echo net=$(readlink /proc/self/ns/net)
echo uts=$(readlink /proc/self/ns/uts)
echo ipc=$(readlink /proc/self/ns/ipc)
echo hostname=$(hostname)
echo layer=$(cat /etc/layer)
grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Uid|Gid|Groups):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo kcore=$(cat /proc/kcore | wc -c)
echo firmware=$(ls /sys/firmware | wc -l)
touch /sys/kernel/x 2>/dev/null && echo sys=rw || echo sys=ro
echo sysrq=$(echo h 2>/dev/null > /proc/sysrq-trigger && echo rw || echo ro)
[ -c /dev/null ] && [ -c /dev/urandom ] && [ -L /dev/fd ] && echo devices=ok
set -- /proc/[0-9]*; echo procs=$#
cat /proc/self/mountinfo | sed 's/^/mnt: /'
"#;
