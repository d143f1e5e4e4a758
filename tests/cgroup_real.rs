//! The cgroup layer against the real cgroupfs (needs root). Every cgroup is created beneath the
//! cgroup this test process runs in (relative `--cgroup-root` "", per hierarchy on v1) under a
//! unique `mkl-test-<pid>-<n>-<test>` name, and a Drop guard kills everything in it and removes
//! it, also when a test fails. Tests run concurrently with each other.
//!
//! On cgroup v2 a relative root moves the test process into a leaf `agent`, which needs a cgroup
//! of its own (e.g. `systemd-run --scope -p Delegate=yes cargo test ...`).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use minikubelet::cgroup::{CgroupFs, CgroupName, Controller, Layout};

static COUNTER: AtomicU32 = AtomicU32::new(0);
const MIB: i64 = 1024 * 1024;

/// A unique top cgroup for one test; dropped = everything in it killed and removed.
struct Scratch {
    fs: CgroupFs,
    top: CgroupName,
    done: bool,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let fs = CgroupFs::detect()
            .expect("detect cgroups")
            .with_root("", "agent")
            .expect("relative cgroup root");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let top = CgroupName::new([format!("mkl-test-{}-{n}-{test}", std::process::id())]).unwrap();
        fs.create(&top).unwrap();
        Scratch {
            fs,
            top,
            done: false,
        }
    }

    fn name(&self, comps: &[&str]) -> CgroupName {
        let mut n = self.top.clone();
        for c in comps {
            n = n.child(c).unwrap();
        }
        n
    }

    /// Starts `argv` inside `name`: the child joins from `pre_exec`, before exec.
    fn spawn(&self, name: &CgroupName, argv: &[&str]) -> Child {
        let join = self.fs.procs_join(name).unwrap();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: join_current only calls open/write/close on prepared paths.
        unsafe {
            cmd.pre_exec(move || join.join_current());
        }
        cmd.spawn().unwrap()
    }

    fn sh(&self, name: &CgroupName, script: &str) -> Child {
        self.spawn(name, &["/bin/sh", "-c", script])
    }

    /// Every directory of the top cgroup, in all hierarchies.
    fn top_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Controller::ALL
            .iter()
            .filter_map(|c| self.fs.path(*c, &self.top))
            .collect();
        dirs.dedup();
        dirs
    }

    /// Kills and removes the top cgroup, asserting nothing is left.
    fn finish(mut self) {
        let dirs = self.top_dirs();
        self.fs.kill(&self.top).unwrap();
        self.fs.remove(&self.top).unwrap();
        for d in dirs {
            assert!(!d.exists(), "{} left behind", d.display());
        }
        assert!(!self.fs.exists(&self.top));
        self.done = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.fs.kill(&self.top) {
            eprintln!("cleanup: kill {}: {e}", self.top);
        }
        if let Err(e) = self.fs.remove(&self.top) {
            eprintln!("cleanup: remove {}: {e}", self.top);
        }
    }
}

fn read(fs: &CgroupFs, c: Controller, n: &CgroupName, file: &str) -> String {
    let p = fs.path(c, n).unwrap().join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Polls `f` every 10 ms until it is true, for at most `secs`.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn killed(status: ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL)
}

#[test]
fn limits_are_written_and_read_back() {
    let s = Scratch::new("limits");
    let fs = &s.fs;
    let n = s.name(&["pod", "c"]);
    fs.create(&n).unwrap();
    assert!(fs.exists(&n));
    fs.set_memory_limit(&n, Some(50 * MIB)).unwrap();
    fs.set_cpu_shares(&n, 512).unwrap();
    fs.set_cpu_quota(&n, Some(50_000), 100_000).unwrap();
    fs.set_pids_max(&n, Some(20)).unwrap();
    fs.set_memory_oom_group(&n, true).unwrap();
    if fs.layout().is_v2() {
        assert_eq!(read(fs, Controller::Memory, &n, "memory.max"), "52428800");
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.weight"), "20");
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.max"), "50000 100000");
        assert_eq!(read(fs, Controller::Memory, &n, "memory.oom.group"), "1");
    } else {
        assert_eq!(
            read(fs, Controller::Memory, &n, "memory.limit_in_bytes"),
            "52428800"
        );
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.shares"), "512");
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(read(fs, Controller::Pids, &n, "pids.max"), "20");
    assert_eq!(fs.memory_stats(&n).unwrap().limit_bytes, Some(52_428_800));

    // And back to unlimited.
    fs.set_memory_limit(&n, None).unwrap();
    fs.set_cpu_quota(&n, None, 100_000).unwrap();
    fs.set_pids_max(&n, None).unwrap();
    assert_eq!(fs.memory_stats(&n).unwrap().limit_bytes, None);
    assert_eq!(read(fs, Controller::Pids, &n, "pids.max"), "max");
    if !fs.layout().is_v2() {
        assert_eq!(read(fs, Controller::Cpu, &n, "cpu.cfs_quota_us"), "-1");
        // Only the hierarchies we use: nothing appears in e.g. blkio.
        let blkio = PathBuf::from("/sys/fs/cgroup/blkio").join(s.top.components()[0].as_str());
        assert!(!blkio.exists());
    }
    s.finish();
}

#[test]
fn child_joins_before_exec_and_kill_empties_the_subtree() {
    let s = Scratch::new("kill");
    let fs = &s.fs;
    let pod = s.name(&["pod"]);
    let (c1, c2) = (pod.child("c1").unwrap(), pod.child("c2").unwrap());
    fs.create(&c1).unwrap();
    fs.create(&c2).unwrap();
    let mut sleeper = s.spawn(&c1, &["sleep", "60"]);
    let pid = sleeper.id() as i32;
    // Joined before exec: in the cgroup as soon as spawn returns, in every hierarchy.
    assert_eq!(fs.pids(&c1).unwrap(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem_dir = fs.path(Controller::Memory, &c1).unwrap();
    let mem_line = own
        .lines()
        .find(|l| {
            if fs.layout().is_v2() {
                l.starts_with("0::")
            } else {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == "memory"))
            }
        })
        .unwrap();
    let cg_path = mem_line.splitn(3, ':').nth(2).unwrap();
    assert!(
        mem_dir.ends_with(cg_path.trim_start_matches('/')),
        "{mem_line} vs {}",
        mem_dir.display()
    );

    // A shell that forks children, and keeps forking: kill must leave nothing behind.
    let mut forker = s.sh(
        &c2,
        "sleep 60 & sleep 60 & while true; do sleep 60 & sleep 0.05; done",
    );
    wait_for(10, "forker's children", || fs.pids(&c2).unwrap().len() >= 4);
    assert!(fs.pids(&pod).unwrap().contains(&pid));

    fs.kill(&pod).unwrap();
    assert_eq!(fs.pids(&pod).unwrap(), Vec::<i32>::new());
    assert!(killed(sleeper.wait().unwrap()));
    assert!(killed(forker.wait().unwrap()));
    if !fs.layout().is_v2() {
        assert_eq!(
            read(fs, Controller::Freezer, &pod, "freezer.state"),
            "THAWED"
        );
    }
    fs.remove(&pod).unwrap();
    assert!(!fs.exists(&pod));
    assert!(!fs.path(Controller::Memory, &c1).unwrap().exists());
    s.finish();
}

#[test]
fn allocating_past_the_memory_limit_is_oom_killed_and_counted() {
    let s = Scratch::new("oom");
    let fs = &s.fs;
    let n = s.name(&["c"]);
    fs.create(&n).unwrap();
    fs.set_memory_limit(&n, Some(50 * MIB)).unwrap();
    assert_eq!(fs.oom_kill_count(&n).unwrap(), 0);

    // 20 MiB fits.
    let mut small = s.spawn(&n, &["perl", "-e", "my $x = 'a' x (20*1024*1024); exit 0"]);
    assert_eq!(small.wait().unwrap().code(), Some(0));
    assert_eq!(fs.oom_kill_count(&n).unwrap(), 0);

    // 200 MiB does not.
    let mut big = s.spawn(
        &n,
        &["perl", "-e", "my $x = 'a' x (200*1024*1024); sleep 5"],
    );
    assert!(killed(big.wait().unwrap()));
    assert!(fs.oom_kill_count(&n).unwrap() >= 1);
    // The parent counts the child's OOM kills (hierarchical on v2, summed on v1).
    assert!(fs.oom_kill_count(&s.top).unwrap() >= 1);
    s.finish();
}

#[test]
fn pids_max_stops_a_fork_loop() {
    let s = Scratch::new("pids");
    let fs = &s.fs;
    let n = s.name(&["c"]);
    fs.create(&n).unwrap();
    fs.set_pids_max(&n, Some(10)).unwrap();
    let mut bomb = s.sh(
        &n,
        "i=0; while [ $i -lt 50 ]; do sleep 60 & i=$((i+1)); done; wait",
    );
    let events = fs.path(Controller::Pids, &n).unwrap().join("pids.events");
    // pids.events is "max <n>" on v1 and v2: how often a fork hit pids.max.
    wait_for(10, "pids.events max > 0", || {
        let text = std::fs::read_to_string(&events).unwrap();
        let map = minikubelet::cgroup::parse::flat_keyed(&text).unwrap();
        map.get("max").copied().unwrap_or(0) > 0
    });
    let pids = fs.pids(&n).unwrap();
    assert!(!pids.is_empty() && pids.len() <= 10, "{pids:?}");
    fs.kill(&n).unwrap();
    assert!(fs.pids(&n).unwrap().is_empty());
    bomb.wait().unwrap();
    s.finish();
}

#[test]
fn remove_fails_while_busy_and_succeeds_after_kill() {
    let s = Scratch::new("busy");
    let fs = &s.fs;
    let n = s.name(&["c"]);
    fs.create(&n).unwrap();
    let mut child = s.spawn(&n, &["sleep", "60"]);
    let err = fs.remove(&n).unwrap_err();
    assert!(err.to_string().starts_with("rmdir "), "{err}");
    assert!(fs.exists(&n));
    fs.kill(&n).unwrap();
    assert!(killed(child.wait().unwrap()));
    fs.remove(&n).unwrap();
    assert!(!fs.exists(&n));
    // Removing again is fine.
    fs.remove(&n).unwrap();
    s.finish();
}

#[test]
fn freeze_stops_and_thaw_resumes() {
    let s = Scratch::new("freeze");
    let fs = &s.fs;
    let n = s.name(&["c"]);
    fs.create(&n).unwrap();
    let mut child = s.spawn(&n, &["sleep", "60"]);
    fs.freeze(&n, true).unwrap();
    if fs.layout().is_v2() {
        assert!(read(fs, Controller::Freezer, &n, "cgroup.events").contains("frozen 1"));
    } else {
        assert_eq!(read(fs, Controller::Freezer, &n, "freezer.state"), "FROZEN");
    }
    fs.freeze(&n, false).unwrap();
    fs.kill(&n).unwrap();
    assert!(killed(child.wait().unwrap()));
    s.finish();
}

#[test]
fn stats_are_read() {
    let s = Scratch::new("stats");
    let fs = &s.fs;
    let n = s.name(&["c"]);
    fs.create(&n).unwrap();
    let mut child = s.spawn(
        &n,
        &[
            "perl",
            "-e",
            "my $x = 'a' x (30*1024*1024); my $i = 0; $i++ while $i < 3_000_000; sleep 60",
        ],
    );
    // Wait for the working set itself: usage also counts perl's file pages (page cache, a few
    // MiB), so it can pass 30 MiB while the string is still being filled.
    wait_for(20, "30 MiB charged", || {
        fs.memory_stats(&n).unwrap().working_set_bytes >= 30 * 1024 * 1024
    });
    let m = fs.memory_stats(&n).unwrap();
    assert!(m.working_set_bytes <= m.usage_bytes);
    assert!(m.working_set_bytes >= 30 * 1024 * 1024, "{m:?}");
    wait_for(20, "cpu time", || fs.cpu_usage_ns(&n).unwrap() > 0);
    let root = fs.root_memory_stats().unwrap();
    assert!(
        root.usage_bytes >= m.usage_bytes && root.working_set_bytes <= root.usage_bytes,
        "{root:?}"
    );
    fs.kill(&n).unwrap();
    assert!(killed(child.wait().unwrap()));
    s.finish();
}

#[test]
fn guard_cleans_up_after_a_panic() {
    let mut dirs = Vec::new();
    let mut pid = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let s = Scratch::new("panic");
        let n = s.name(&["pod", "c"]);
        s.fs.create(&n).unwrap();
        s.fs.set_memory_limit(&n, Some(50 * MIB)).unwrap();
        pid = s.spawn(&n, &["sleep", "60"]).id();
        dirs = s.top_dirs();
        panic!("test failure inside a scratch cgroup");
    }));
    assert!(result.is_err());
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    // The child was killed: at most a zombie of ours is left (reap it).
    let mut status = 0;
    // SAFETY: waits for our own child by pid.
    let r = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    assert_eq!(r, pid as i32);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
}

#[test]
fn features_describe_this_machine() {
    let fs = CgroupFs::detect().unwrap();
    let f = fs.features();
    for c in [Controller::Cpu, Controller::Memory, Controller::Pids] {
        assert!(!f.missing_controllers.contains(&c), "{c} missing: {f:?}");
    }
    assert!(f.hierarchies.iter().all(|h| h.writable), "{f:?}");
    match f.layout {
        Layout::Hybrid => assert!(f.unified_mount.is_some()),
        Layout::V1 => assert!(f.unified_mount.is_none()),
        Layout::V2 => assert_eq!(f.hierarchies.len(), 1),
    }
    if !f.layout.is_v2() {
        assert!(!f.has_cgroup_kill);
    }
    serde_json::to_string(&f).unwrap();
}

/// Removes a cgroup2 directory once its processes are gone (also when the test fails).
struct Cgroup2Dir(PathBuf);

impl Drop for Cgroup2Dir {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.0.join("cgroup.procs")) {
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) on a pid of the test's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The v2 device filter (runc's eBPF program, `cgroup::devices`) on this machine's cgroup2
/// tree: a process in a cgroup with runc's default rules opens `/dev/null` but not `/dev/kmsg`;
/// with the privileged rule, both. On a hybrid host the cgroup2 tree at `unified` serves eBPF
/// device filters as a pure v2 host's does. Skipped where there is no cgroup2 mount.
#[test]
fn the_v2_device_filter_allows_only_its_rules() {
    let Some(unified) = CgroupFs::detect().ok().and_then(|fs| match fs.layout() {
        Layout::V2 => fs.root_path(Controller::Devices),
        _ => fs.features().unified_mount,
    }) else {
        eprintln!("SKIPPED: no cgroup2 mount");
        return;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("0::")
                .map(|p| p.trim_start_matches('/').to_string())
        })
        .unwrap_or_default();
    let probe = "true < /dev/null && echo null=ok; if true < /dev/kmsg 2>/dev/null; then echo kmsg=ok; else echo kmsg=refused; fi";
    for (privileged, want) in [
        (false, "null=ok\nkmsg=refused\n"),
        (true, "null=ok\nkmsg=ok\n"),
    ] {
        let dir = unified.join(&own).join(format!(
            "mkl-test-{}-{}-devices",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).unwrap();
        let guard = Cgroup2Dir(dir.clone());
        minikubelet::cgroup::devices::attach_v2(
            &dir,
            &minikubelet::cgroup::devices::container_rules(privileged),
        )
        .unwrap();
        let procs = std::ffi::CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", probe]).stdout(Stdio::piped());
        // SAFETY: open/write/close on memory prepared before fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "privileged: {privileged}"
        );
        drop(guard);
    }
}
