//! The shim with real processes (as root): start, logs, rotation, exits, identity, cgroups,
//! detachment and memory. Every test kills what it started, also when it fails (Drop guards).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use minikubelet::logs::{CriRecords, LogManager, Stream, parse_cri_line};
use minikubelet::shim::{self, ExitStatus, ShimConfig, ShimError, ShimState};

mod common;
use common::{shim_binary as exe, speaks_shim};

/// A temp state dir and log dir for one container.
struct Fixture {
    _dir: tempfile::TempDir,
    state_dir: PathBuf,
    log_path: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let log_dir = dir.path().join("logs").join("default_pod_uid").join("c");
        std::fs::create_dir_all(&log_dir).unwrap();
        Fixture {
            state_dir,
            log_path: log_dir.join("0.log"),
            _dir: dir,
        }
    }

    fn config(&self, argv: &[&str]) -> ShimConfig {
        ShimConfig {
            container_id: "uid-c-0".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            working_dir: None,
            uid: None,
            gid: None,
            supplemental_groups: vec![],
            cgroup_procs: vec![],
            oom_score_adj: None,
            log_path: self.log_path.clone(),
            log_max_size: 10 << 20,
            log_max_files: 5,
            stdin: false,
            stdin_once: false,
            isolation: None,
        }
    }

    /// Writes the config and starts the shim; the guard kills the container on drop.
    fn start(&self, cfg: &ShimConfig) -> (Result<ShimState, ShimError>, Guard) {
        shim::write_config(&self.state_dir, cfg).unwrap();
        let res = shim::start(exe(), &self.state_dir);
        let mut guard = Guard::default();
        if let Ok(st) = &res {
            guard.containers.push((st.clone(), self.state_dir.clone()));
        }
        (res, guard)
    }

    fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            if let Some(e) = shim::read_exit(&self.state_dir).unwrap() {
                return e;
            }
            assert!(Instant::now() < until, "no exit.json within {timeout:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// (stream, partial, content) of every record in the live log.
    fn records(&self) -> Vec<(Stream, bool, String)> {
        let text = std::fs::read(&self.log_path).unwrap();
        text.split_inclusive(|&b| b == b'\n')
            .map(|l| {
                assert!(l.ends_with(b"\n"), "record without newline: {l:?}");
                let r = parse_cri_line(l).unwrap();
                (
                    r.stream,
                    r.partial,
                    String::from_utf8(r.content.to_vec()).unwrap(),
                )
            })
            .collect()
    }
}

/// Kills what a test started on drop, after checking each pid is still what it was (so a pid
/// reused by an unrelated process on this shared machine is never hit).
#[derive(Default)]
struct Guard {
    /// Containers, killed with their process group while their shim has not reported an exit.
    containers: Vec<(ShimState, PathBuf)>,
    /// Stray processes, with the cmdline they must still have.
    strays: Vec<(i32, Vec<u8>)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (st, state_dir) in &self.containers {
            let running = matches!(shim::read_exit(state_dir), Ok(None))
                && proc_field(st.pid, "status", "PPid:")
                    .is_some_and(|p| p == st.shim_pid.to_string());
            if running {
                // SAFETY: plain kill(2) of the container's group, which it leads.
                unsafe { libc::kill(-st.pid, libc::SIGKILL) };
            }
        }
        for (pid, cmdline) in &self.strays {
            if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| &c == cmdline) {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
        }
    }
}

fn proc_field(pid: i32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

fn ppid_of(pid: i32) -> i32 {
    proc_field(pid, "status", "PPid:").unwrap().parse().unwrap()
}

#[test]
fn runs_a_container_and_records_its_exit_and_logs() {
    let fx = Fixture::new();
    let t0 = Instant::now();
    let (res, _guard) = fx.start(&fx.config(&["sh", "-c", "echo out; echo err >&2; exit 3"]));
    let elapsed = t0.elapsed();
    let state = res.unwrap();
    println!("shim::start took {elapsed:?}");
    assert!(state.pid > 0 && state.shim_pid > 0 && state.pid != state.shim_pid);
    assert_eq!(
        shim::read_state(&fx.state_dir).unwrap(),
        Some(state.clone())
    );
    let exit = fx.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert_eq!(exit.start_error, None);
    assert_eq!(exit.started_at.as_deref(), Some(state.started_at.as_str()));
    let started: jiff::Timestamp = state.started_at.parse().unwrap();
    let finished: jiff::Timestamp = exit.finished_at.parse().unwrap();
    assert!(finished >= started);
    let mut recs = fx.records();
    recs.sort_by_key(|r| r.0.as_str());
    assert_eq!(
        recs,
        vec![
            (Stream::Stderr, false, "err".to_string()),
            (Stream::Stdout, false, "out".to_string())
        ]
    );
}

#[test]
fn long_lines_become_partial_records_and_a_missing_newline_at_eof_is_partial() {
    let fx = Fixture::new();
    let script = "head -c 40000 /dev/zero | tr '\\0' a; echo; printf end";
    let (res, _guard) = fx.start(&fx.config(&["sh", "-c", script]));
    res.unwrap();
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 0);
    let recs = fx.records();
    let shape: Vec<(bool, usize)> = recs.iter().map(|(_, p, c)| (*p, c.len())).collect();
    assert_eq!(
        shape,
        vec![
            (true, 16384),
            (true, 16384),
            (false, 40000 - 2 * 16384),
            (true, 3)
        ]
    );
    assert_eq!(recs[3].2, "end");
}

#[test]
fn rotation_keeps_every_line_in_order() {
    let fx = Fixture::new();
    let mut cfg = fx.config(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    cfg.log_max_size = 4096;
    let (res, _guard) = fx.start(&cfg);
    res.unwrap();
    assert_eq!(fx.wait_exit(Duration::from_secs(20)).exit_code, 0);
    let files = minikubelet::logs::log_files(&fx.log_path).unwrap();
    assert!(files.len() > 10, "expected many rotations, got {files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 4096, "{} has {len} bytes", f.display());
    }
    let lines: Vec<String> = CriRecords::open(&fx.log_path)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            assert!(!r.partial);
            String::from_utf8(r.content).unwrap()
        })
        .collect();
    let want: Vec<String> = (0..3000).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines, want);

    // The agent's housekeeping then compresses and prunes; what is left still reads in order.
    LogManager::new(5)
        .unwrap()
        .housekeep_log(&fx.log_path)
        .unwrap();
    let files = minikubelet::logs::log_files(&fx.log_path).unwrap();
    assert_eq!(files.len(), 5, "{files:?}");
    assert_eq!(
        files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".gz"))
            .count(),
        3
    );
    let rest: Vec<String> = CriRecords::open(&fx.log_path)
        .unwrap()
        .map(|r| String::from_utf8(r.unwrap().content).unwrap())
        .collect();
    assert_eq!(rest.last().map(String::as_str), Some("line-2999"));
    assert_eq!(rest[..], want[want.len() - rest.len()..]);
}

#[test]
fn shim_is_detached_survives_signals_and_reports_a_sigkill() {
    let fx = Fixture::new();
    let (res, _guard) = fx.start(&fx.config(&["sleep", "1000"]));
    let state = res.unwrap();
    let me = std::process::id() as i32;
    assert_ne!(
        ppid_of(state.shim_pid),
        me,
        "the shim must not be the agent's child"
    );
    assert_eq!(ppid_of(state.pid), state.shim_pid);
    // SAFETY: getsid(2) only queries.
    assert_eq!(
        unsafe { libc::getsid(state.pid) },
        state.pid,
        "container leads its own session"
    );
    assert_eq!(
        unsafe { libc::getsid(state.shim_pid) },
        state.shim_pid,
        "shim leads its own session"
    );
    assert!(shim::shim_alive(&state, &fx.state_dir));
    assert!(!shim::shim_alive(&state, Path::new("/some/other/dir")));
    assert_eq!(
        proc_field(state.shim_pid, "status", "Threads:").as_deref(),
        Some("1")
    );
    // The agent kills through the cgroup, never the shim: these must not take it down.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
        unsafe { libc::kill(state.shim_pid, sig) };
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(shim::shim_alive(&state, &fx.state_dir));
    assert_eq!(shim::read_exit(&fx.state_dir).unwrap(), None);

    unsafe { libc::kill(state.pid, libc::SIGKILL) };
    let exit = fx.wait_exit(Duration::from_secs(10));
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    let until = Instant::now() + Duration::from_secs(5);
    while shim::shim_alive(&state, &fx.state_dir) {
        assert!(
            Instant::now() < until,
            "shim still alive after its container exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn orphaned_descendants_are_reaped_by_the_shim() {
    let fx = Fixture::new();
    let script = "sh -c 'sleep 1000 & echo $!'; exec sleep 1000";
    let (res, mut guard) = fx.start(&fx.config(&["sh", "-c", script]));
    let state = res.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let orphan: i32 = loop {
        if let Some(r) = std::fs::read(&fx.log_path)
            .ok()
            .filter(|t| t.ends_with(b"\n"))
            .map(|_| fx.records())
        {
            break r[0].2.parse().unwrap();
        }
        assert!(Instant::now() < until, "no pid logged");
        std::thread::sleep(Duration::from_millis(5));
    };
    guard.strays.push((orphan, b"sleep\x001000\x00".to_vec()));
    // Its parent shell exited: the subreaper shim, not init, adopts it.
    while proc_field(orphan, "status", "PPid:") != Some(state.shim_pid.to_string()) {
        assert!(
            Instant::now() < until,
            "orphan {orphan} not adopted by the shim"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(state.pid, libc::SIGKILL) };
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 137);
    // It was in the container's process group, so it went with it.
    let until = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{orphan}")).exists() {
        assert!(
            Instant::now() < until,
            "orphan {orphan} outlived its container"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn exec_failures_are_start_errors() {
    use std::os::unix::fs::PermissionsExt;
    let files = tempfile::tempdir().unwrap();
    let not_executable = files.path().join("data");
    std::fs::write(&not_executable, "x").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let garbage = files.path().join("garbage");
    std::fs::write(&garbage, [0xffu8; 64]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ne, gb) = (not_executable.to_str().unwrap(), garbage.to_str().unwrap());
    let cases = [
        (
            vec!["/nonexistent/foo"],
            "exec \"/nonexistent/foo\": No such file or directory".to_string(),
        ),
        (
            vec!["no-such-command-xyz", "arg"],
            "exec \"no-such-command-xyz\": executable file not found in $PATH".to_string(),
        ),
        (vec![ne], format!("exec {ne:?}: Permission denied")),
        (vec![gb], format!("exec {gb:?}: Exec format error")),
    ];
    for (argv, want) in cases {
        let fx = Fixture::new();
        let (res, _guard) = fx.start(&fx.config(&argv));
        let Err(ShimError::StartFailed { status, .. }) = res else {
            panic!("{argv:?}: expected a start failure, got {res:?}");
        };
        assert_eq!(status.start_error.as_deref(), Some(want.as_str()));
        assert_eq!(status.exit_code, 128);
        assert_eq!(status.started_at, None);
        assert_eq!(shim::read_exit(&fx.state_dir).unwrap(), Some(*status));
        assert_eq!(shim::read_state(&fx.state_dir).unwrap(), None);
    }
    // A bad working dir is reported too.
    let fx = Fixture::new();
    let mut cfg = fx.config(&["true"]);
    cfg.working_dir = Some("/nonexistent-dir".into());
    let (res, _guard) = fx.start(&cfg);
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains(
            "chdir to cwd (\"/nonexistent-dir\") set in config: No such file or directory"
        ),
        "{err}"
    );
}

#[test]
fn start_reports_a_shim_that_cannot_run_or_does_not_answer() {
    let fx = Fixture::new();
    shim::write_config(&fx.state_dir, &fx.config(&["true"])).unwrap();
    let err = shim::start(Path::new("/nonexistent/minikubelet"), &fx.state_dir).unwrap_err();
    assert!(matches!(err, ShimError::Spawn { .. }), "{err}");
    let err = shim::start(Path::new("/bin/true"), &fx.state_dir).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("exited without reporting: no answer"),
        "{err}"
    );
    // No config: the shim itself reports why.
    let empty = tempfile::tempdir().unwrap();
    let err = shim::start(exe(), empty.path()).unwrap_err().to_string();
    assert!(
        err.contains("config.json: No such file or directory"),
        "{err}"
    );
}

#[test]
fn runs_as_the_given_user_and_groups() {
    let fx = Fixture::new();
    let mut cfg = fx.config(&["sh", "-c", "id -u; id -g; id -G; pwd"]);
    cfg.uid = Some(65534);
    cfg.gid = Some(65534);
    cfg.supplemental_groups = vec![1234];
    cfg.working_dir = Some("/tmp".into());
    let (res, _guard) = fx.start(&cfg);
    res.unwrap();
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 0);
    let out: Vec<String> = fx.records().into_iter().map(|r| r.2).collect();
    assert_eq!(out, ["65534", "65534", "65534 1234", "/tmp"]);
}

#[test]
fn stdin_is_a_kept_pipe_or_dev_null() {
    for (stdin, want) in [(true, "pipe"), (false, "null")] {
        let fx = Fixture::new();
        let mut cfg = fx.config(&[
            "sh",
            "-c",
            "if [ -p /dev/stdin ]; then echo pipe; else cat; echo null; fi",
        ]);
        cfg.stdin = stdin;
        let (res, _guard) = fx.start(&cfg);
        res.unwrap();
        assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 0);
        assert_eq!(fx.records().last().unwrap().2, want);
    }
}

#[test]
fn leftover_descendants_are_killed_or_bounded() {
    // In the container's process group: killed with it when the main process exits.
    let fx = Fixture::new();
    let (res, _guard) = fx.start(&fx.config(&["sh", "-c", "sleep 1000 & echo bye"]));
    res.unwrap();
    let t0 = Instant::now();
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );

    // Escaped into its own session while holding stdout: the drain is bounded.
    let fx = Fixture::new();
    let (res, mut guard) =
        fx.start(&fx.config(&["sh", "-c", "setsid sleep 1000 & echo $!; sleep 0.2"]));
    res.unwrap();
    let exit = fx.wait_exit(Duration::from_secs(10));
    let leftover: i32 = fx.records()[0].2.parse().unwrap();
    guard.strays.push((leftover, b"sleep\x001000\x00".to_vec()));
    assert_eq!(exit.exit_code, 0);
    assert!(Path::new(&format!("/proc/{leftover}")).exists());
}

/// A memory cgroup beneath this test's own, removed on drop (after the processes in it).
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn new(name: &str) -> Self {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let dir = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == "memory")
                    .then(|| format!("/sys/fs/cgroup/memory{path}"))
            })
            .or_else(|| {
                own.lines()
                    .find_map(|l| l.strip_prefix("0::").map(|p| format!("/sys/fs/cgroup{p}")))
            })
            .unwrap();
        let dir = Path::new(&dir).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup { dir }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let procs = self.dir.join("cgroup.procs");
        for _ in 0..200 {
            let pids = std::fs::read_to_string(&procs).unwrap_or_default();
            for p in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("could not remove test cgroup {}", self.dir.display());
    }
}

#[test]
fn container_starts_inside_its_cgroup_with_its_oom_score_adj() {
    let cg = TestCgroup::new("shim-test");
    let fx = Fixture::new();
    let mut cfg = fx.config(&["sleep", "1000"]);
    cfg.cgroup_procs = vec![cg.dir.join("cgroup.procs")];
    cfg.oom_score_adj = Some(873);
    let (res, _guard) = fx.start(&cfg);
    let state = res.unwrap();
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", state.pid)).unwrap();
    let rel = cg
        .dir
        .strip_prefix("/sys/fs/cgroup")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let rel = rel.strip_prefix("memory").unwrap_or(&rel).to_string();
    assert!(
        own.lines().any(|l| l.ends_with(&format!(":{rel}"))),
        "{own} lacks {rel}"
    );
    let procs = std::fs::read_to_string(cg.dir.join("cgroup.procs")).unwrap();
    assert_eq!(
        procs.trim(),
        state.pid.to_string(),
        "only the container, not the shim"
    );
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", state.pid)).unwrap();
    assert_eq!(adj.trim(), "873");
    unsafe { libc::kill(state.pid, libc::SIGKILL) };
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 137);

    // A cgroup that cannot be joined is a start error.
    let fx = Fixture::new();
    let mut cfg = fx.config(&["true"]);
    cfg.cgroup_procs = vec![cg.dir.join("nonexistent").join("cgroup.procs")];
    let (res, _guard) = fx.start(&cfg);
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains("join cgroup: write \"0\" to ") && err.ends_with("No such file or directory"),
        "{err}"
    );
}

/// A unique cgroup in every hierarchy the agent uses, made and removed through the agent's own
/// cgroup layer (relative root, as the agent with `--cgroup-root ""`).
struct AgentCgroup {
    fs: minikubelet::cgroup::CgroupFs,
    name: minikubelet::cgroup::CgroupName,
}

impl AgentCgroup {
    fn new(test: &str) -> Self {
        let fs = minikubelet::cgroup::CgroupFs::detect()
            .unwrap()
            .with_root("", "agent")
            .unwrap();
        let name =
            minikubelet::cgroup::CgroupName::new([format!("mkl-{test}-{}", std::process::id())])
                .unwrap();
        fs.create(&name).unwrap();
        AgentCgroup { fs, name }
    }
}

impl Drop for AgentCgroup {
    fn drop(&mut self) {
        let _ = self.fs.kill(&self.name);
        if let Err(e) = self.fs.remove(&self.name) {
            eprintln!("could not remove test cgroup {}: {e}", self.name);
        }
    }
}

/// The pids in `dir/cgroup.procs`, sorted.
fn procs_of(dir: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    let mut pids: Vec<i32> = text.lines().filter_map(|l| l.parse().ok()).collect();
    pids.sort();
    pids
}

#[test]
fn container_and_its_children_land_in_every_cgroup_through_the_join_files() {
    let cg = AgentCgroup::new("join-files");
    let files = cg.fs.join_files(&cg.name);
    // v1 (and hybrid) joins through `tasks`, which moves only the (single) calling thread;
    // v2 through clone3 into the cgroup, or `cgroup.procs` where the kernel lacks it.
    let want = if cg.fs.layout().is_v2() {
        "cgroup.procs"
    } else {
        "tasks"
    };
    assert!(!files.is_empty());
    assert!(files.iter().all(|f| f.ends_with(want)), "{files:?}");
    let fx = Fixture::new();
    let mut cfg = fx.config(&["sh", "-c", "sleep 1001 & exec sleep 1000"]);
    cfg.cgroup_procs = files.clone();
    let (res, _guard) = fx.start(&cfg);
    let pid = res.unwrap().pid;
    let dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    // The container forks its child before it execs `sleep 1000`; wait until it has.
    let until = Instant::now() + Duration::from_secs(20);
    while procs_of(dirs[0]).len() < 2 {
        assert!(Instant::now() < until, "no child of the container appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids = procs_of(dirs[0]);
    assert_eq!(pids.len(), 2, "the container and its child only: {pids:?}");
    assert!(pids.contains(&pid), "{pids:?} lacks the container {pid}");
    for d in &dirs {
        assert_eq!(procs_of(d), pids, "{}", d.display());
    }
    // Seen from each process: one line per hierarchy names the container's cgroup.
    let leaf = format!("/{}", cg.name.components().last().unwrap());
    for p in &pids {
        let own = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
        let inside = own.lines().filter(|l| l.ends_with(&leaf)).count();
        assert_eq!(inside, dirs.len(), "pid {p}: {own}");
        // Every thread too (each process here has one).
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .unwrap()
            .count();
        assert_eq!(tasks, 1, "pid {p}");
    }
    let log = std::fs::read_to_string(fx.state_dir.join(shim::SHIM_LOG_FILE)).unwrap_or_default();
    assert!(!log.contains("clone3"), "{log}");
}

/// The cgroup2 tree of this host (pure v2, or hybrid's `unified`), when it is mounted.
fn cgroup2_own_dir() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|m| {
            nix::sys::statfs::statfs(m)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        })
        .map(|m| m.join(path.trim_start_matches('/')))
}

#[test]
fn a_cgroup2_child_is_cloned_into_its_cgroup() {
    // On v1 hybrid the empty `unified` tree still takes clone3(CLONE_INTO_CGROUP), so the
    // path is tested on every host that has a cgroup2 mount.
    let Some(own) = cgroup2_own_dir() else {
        eprintln!("no cgroup2 mount: skipped");
        return;
    };
    let name = format!("mkl-clone3-{}", std::process::id());
    let cg = TestCgroup {
        dir: own.join(&name),
    };
    std::fs::create_dir(&cg.dir).unwrap();
    let fx = Fixture::new();
    let mut cfg = fx.config(&["sh", "-c", "sleep 1001 & exec sleep 1000"]);
    cfg.cgroup_procs = vec![cg.dir.join("cgroup.procs")];
    let (res, _guard) = fx.start(&cfg);
    let pid = res.unwrap().pid;
    let until = Instant::now() + Duration::from_secs(20);
    while procs_of(&cg.dir).len() < 2 {
        assert!(Instant::now() < until, "no child of the container appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids = procs_of(&cg.dir);
    assert!(pids.contains(&pid), "{pids:?} lacks the container {pid}");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        own.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&name)),
        "{own}"
    );
    // Where the kernel has clone3 the shim says nothing; where it lacks it, it says why once.
    let log = std::fs::read_to_string(fx.state_dir.join(shim::SHIM_LOG_FILE)).unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let (major, minor) = kernel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok())
        .take(2)
        .fold((0, 0), |(a, _), n| if a == 0 { (n, 0) } else { (a, n) });
    if (major, minor) >= (5, 7) {
        assert!(!log.contains("clone3"), "{log}");
    }
}

#[test]
fn shim_memory_and_start_latency() {
    const N: usize = 6;
    let mut fixtures = Vec::new();
    let mut guards = Vec::new();
    let mut states = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..N {
        let fx = Fixture::new();
        let t0 = Instant::now();
        let (res, guard) = fx.start(&fx.config(&["sh", "-c", "echo hello; exec sleep 1000"]));
        latencies.push(t0.elapsed());
        guards.push(guard);
        states.push(res.unwrap());
        fixtures.push(fx);
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut psses = Vec::new();
    for st in &states {
        let field = |k: &str| -> u64 {
            proc_field(st.shim_pid, "smaps_rollup", k)
                .unwrap()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .unwrap()
        };
        let (rss, pss, dirty) = (field("Rss:"), field("Pss:"), field("Private_Dirty:"));
        println!(
            "shim {} Rss {rss} kB, Pss {pss} kB, Private_Dirty {dirty} kB",
            st.shim_pid
        );
        psses.push(pss);
        // The per-container cost that no other shim shares. The 1 MiB PSS target is measured
        // on the release build by the benchmark (docs/benchmarks.md); this debug-build bound
        // only catches a regression such as an async runtime or a large buffer in the shim.
        assert!(
            dirty <= 4096,
            "shim private dirty memory {dirty} kB > 4 MiB: something heavy got into the shim"
        );
    }
    latencies.sort();
    println!(
        "shim::start latency over {N}: min {:?} median {:?} max {:?}",
        latencies[0],
        latencies[N / 2],
        latencies[N - 1]
    );
    println!("shim PSS with {N} shims running: {:?} kB", psses);
    for fx in &fixtures {
        assert_eq!(fx.records()[0].2, "hello");
    }
}

/// The `minikubelet-shim` binary, copied once into a private temp dir (as [`exe`], and for the
/// same reason).
fn small_exe() -> &'static Path {
    static EXE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = EXE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(shim::SHIM_BINARY);
        std::fs::copy(env!("CARGO_BIN_EXE_minikubelet-shim"), &copy).unwrap();
        (dir, copy)
    });
    path
}

#[test]
fn the_small_shim_binary_speaks_the_same_protocol() {
    let fx = Fixture::new();
    shim::write_config(&fx.state_dir, &fx.config(&["sleep", "1000"])).unwrap();
    let res = shim::start(small_exe(), &fx.state_dir);
    let mut guard = Guard::default();
    if let Ok(st) = &res {
        guard.containers.push((st.clone(), fx.state_dir.clone()));
    }
    let state = res.unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", state.shim_pid)).unwrap();
    assert_eq!(exe, small_exe(), "the shim runs the small binary");
    assert!(shim::shim_alive(&state, &fx.state_dir));
    assert!(!shim::shim_alive(&state, Path::new("/some/other/dir")));
    assert_eq!(ppid_of(state.pid), state.shim_pid);
    unsafe { libc::kill(state.pid, libc::SIGKILL) };
    assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 137);

    // Both argv forms answer; anything else is a usage error that touches nothing.
    assert!(speaks_shim(small_exe()));
    let empty = tempfile::tempdir().unwrap();
    let bare = std::process::Command::new(small_exe())
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(bare.stdout.starts_with(b"{\"Failed\""), "{bare:?}");
    for args in [
        &[][..],
        &["shim"][..],
        &["a", "b"][..],
        &["a", "b", "c"][..],
    ] {
        let out = std::process::Command::new(small_exe())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn without_the_small_binary_the_agent_itself_is_the_shim() {
    // `exe()` is a copy alone in its temp dir: the fallback, which every other test here runs.
    assert_eq!(shim::shim_exe(exe()), exe());
    let beside = exe().with_file_name(shim::SHIM_BINARY);
    assert!(!beside.exists());
    assert_eq!(
        shim::shim_exe(Path::new(env!("CARGO_BIN_EXE_minikubelet"))),
        Path::new(env!("CARGO_BIN_EXE_minikubelet-shim")),
        "cargo builds the small binary beside the agent"
    );
}

/// Pids of live processes whose cmdline names `state_dir` (a prestarted shim, before and after
/// its container starts).
fn shims_for(state_dir: &Path) -> Vec<i32> {
    let want = state_dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want))
        })
        .filter(|pid| proc_field(*pid, "status", "State:").is_some_and(|s| !s.starts_with('Z')))
        .collect()
}

#[test]
fn a_prestarted_shim_waits_then_runs_its_request_and_writes_the_state_dir() {
    for exe in [small_exe(), exe()] {
        let fx = Fixture::new();
        let p = shim::prestart(exe, &fx.state_dir).unwrap();
        let waiting = shims_for(&fx.state_dir);
        assert_eq!(waiting.len(), 1, "one shim waits: {waiting:?}");
        assert!(!fx.state_dir.exists(), "a waiting shim writes nothing");
        // Detached already: its own session, not the test's child.
        assert_ne!(
            proc_field(waiting[0], "status", "PPid:"),
            Some(std::process::id().to_string())
        );
        let cfg = fx.config(&["sh", "-c", "echo hello; exec sleep 1000"]);
        let request = shim::StartRequest {
            config: cfg.clone(),
            meta_json: "{\n  \"id\": \"the agent's record\"\n}".into(),
        };
        let res = p.start(&request);
        let mut guard = Guard::default();
        if let Ok(st) = &res {
            guard.containers.push((st.clone(), fx.state_dir.clone()));
        }
        let state = res.unwrap();
        assert_eq!(
            state.shim_pid, waiting[0],
            "the waiting shim runs the container"
        );
        assert_eq!(ppid_of(state.pid), state.shim_pid);
        assert!(shim::shim_alive(&state, &fx.state_dir));
        assert_eq!(shim::read_config(&fx.state_dir).unwrap(), cfg);
        assert_eq!(
            std::fs::read_to_string(fx.state_dir.join(shim::META_FILE)).unwrap(),
            request.meta_json
        );
        assert_eq!(
            shim::read_state(&fx.state_dir).unwrap(),
            Some(state.clone())
        );
        assert!(fx.state_dir.join(shim::SHIM_LOG_FILE).exists());
        let until = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&fx.log_path).is_ok_and(|t| t.contains("hello")) {
            assert!(Instant::now() < until, "no log line");
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: plain kill(2) of the container.
        unsafe { libc::kill(state.pid, libc::SIGKILL) };
        assert_eq!(fx.wait_exit(Duration::from_secs(10)).exit_code, 137);
    }
}

#[test]
fn a_prestarted_shim_that_is_not_used_exits_touching_nothing() {
    let fx = Fixture::new();
    let p = shim::prestart(small_exe(), &fx.state_dir).unwrap();
    let waiting = shims_for(&fx.state_dir);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    drop(p);
    let until = Instant::now() + Duration::from_secs(10);
    while !shims_for(&fx.state_dir).is_empty() {
        assert!(Instant::now() < until, "the unused shim did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!fx.state_dir.exists());
}

#[test]
fn a_prestarted_shim_records_start_failures_in_its_state_dir() {
    // A container that cannot exec: the same answer and exit.json as a direct start, and the
    // records beside them.
    let fx = Fixture::new();
    let p = shim::prestart(small_exe(), &fx.state_dir).unwrap();
    let request = shim::StartRequest {
        config: fx.config(&["/nonexistent/cmd"]),
        meta_json: "{}".into(),
    };
    let err = p.start(&request).unwrap_err();
    let ShimError::StartFailed { status, .. } = err else {
        panic!("{err}");
    };
    assert!(
        status
            .start_error
            .as_deref()
            .is_some_and(|e| e.contains("/nonexistent/cmd")),
        "{status:?}"
    );
    assert_eq!(shim::read_exit(&fx.state_dir).unwrap(), Some(*status));
    assert_eq!(shim::read_config(&fx.state_dir).unwrap(), request.config);
    assert!(fx.state_dir.join(shim::META_FILE).exists());

    // A request that is not one: reported, not run.
    let fx = Fixture::new();
    let mut child = std::process::Command::new(small_exe())
        .arg("shim")
        .arg(&fx.state_dir)
        .arg(shim::PRESTARTED_ARG)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"not json").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.starts_with(b"{\"Failed\""), "{out:?}");
    let exit = shim::read_exit(&fx.state_dir).unwrap().unwrap();
    assert!(
        exit.start_error
            .as_deref()
            .is_some_and(|e| e.starts_with("read the agent's start request")),
        "{exit:?}"
    );
}

#[test]
fn a_container_whose_log_cannot_be_opened_never_runs() {
    // The shim opens the log while the child joins its cgroups; the child execs only once the
    // log is open. Here the log's directory cannot be made (its parent is a file).
    let fx = Fixture::new();
    let marker = fx.state_dir.with_file_name("ran");
    let blocker = fx.state_dir.with_file_name("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let mut cfg = fx.config(&["touch", &marker.to_string_lossy()]);
    cfg.log_path = blocker.join("c").join("0.log");
    let (res, _guard) = fx.start(&cfg);
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains("create log directory") && err.contains("Not a directory"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the container ran without its log");
    let exit = shim::read_exit(&fx.state_dir).unwrap().unwrap();
    assert_eq!(exit.exit_code, 128);
}
