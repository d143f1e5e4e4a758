//! Test harness: runs the real `minikubelet` binary as root with a temporary manifest
//! directory, root dir and logs dir, inside a cgroup of its own created beneath the cgroup this
//! test process runs in (per hierarchy on cgroup v1). The agent gets a relative
//! `--cgroup-root`, so every pod cgroup lands inside that test cgroup. Dropping the `Agent`
//! kills everything in the test cgroup (agent, shims, containers) and removes it, also when
//! the test failed.
#![allow(dead_code)]

pub mod isolated;
pub mod test_image;

#[allow(unused_imports)]
pub use test_image::TEST_IMAGE;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Controllers whose hierarchies get a test cgroup on v1 (the ones the agent uses).
const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"];

/// A cgroup created for one test, in every hierarchy the agent uses.
pub struct TestCgroup {
    /// Absolute directories, one per hierarchy.
    pub dirs: Vec<PathBuf>,
    /// The name relative to this process's own cgroup.
    pub name: String,
}

fn mount_point(controller: &str) -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mi.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let fstype = r.next()?;
        let _src = r.next();
        let opts = r.next().unwrap_or("");
        let mount = left.split_whitespace().nth(4)?;
        if controller.is_empty() && fstype == "cgroup2" && !mount.ends_with("/unified") {
            return Some(PathBuf::from(mount));
        }
        if fstype == "cgroup" && opts.split(',').any(|o| o == controller) {
            return Some(PathBuf::from(mount));
        }
    }
    None
}

/// True on a pure cgroup v2 host.
pub fn is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

impl TestCgroup {
    /// Create `mkl-test-<pid>-<n>` beneath this process's cgroup in each hierarchy.
    pub fn new() -> TestCgroup {
        let name = format!(
            "mkl-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
        let mut dirs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_id, ctrls, path) = (
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("/"),
            );
            let dir = if is_v2() {
                if !ctrls.is_empty() {
                    continue;
                }
                mount_point("").map(|m| m.join(path.trim_start_matches('/')))
            } else {
                let Some(c) = ctrls.split(',').find(|c| V1_CONTROLLERS.contains(c)) else {
                    continue;
                };
                mount_point(c).map(|m| m.join(path.trim_start_matches('/')))
            };
            if let Some(d) = dir
                && seen.insert(d.clone())
            {
                let t = d.join(&name);
                std::fs::create_dir_all(&t)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", t.display()));
                dirs.push(t);
            }
        }
        assert!(!dirs.is_empty(), "no cgroup hierarchy found for the test");
        TestCgroup { dirs, name }
    }

    /// The `cgroup.procs` files a child writes itself into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Every process in the subtree.
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for d in &self.dirs {
            for entry in walk(d) {
                if let Ok(t) = std::fs::read_to_string(entry.join("cgroup.procs")) {
                    out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Kill every process in the subtree and remove all its cgroups.
    pub fn destroy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for d in &self.dirs {
            let mut all = walk(d);
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for dir in all {
                for _ in 0..50 {
                    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// A path below the test cgroup in the hierarchy that holds `file` (e.g. "memory.limit_in_bytes").
    pub fn find(&self, rel: &str, file: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(rel).join(file))
            .find(|p| p.exists())
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
        out.push(p);
    }
    out
}

/// A running agent with its own directories and cgroup.
pub struct Agent {
    child: Option<Child>,
    pub tmp: tempfile::TempDir,
    pub manifests: PathBuf,
    pub root_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub containers_log_dir: PathBuf,
    pub port: u16,
    pub cgroup: TestCgroup,
    pub extra: Vec<String>,
    pub log: PathBuf,
    /// A command the agent is started through (e.g. `unshare -m sh -c ...`), if any.
    pub wrapper: Vec<String>,
    /// Whether [`TEST_IMAGE`] is imported into the store before the agent first starts
    /// (default; a test of an empty store turns it off before `spawn`).
    pub with_test_image: bool,
    test_image_imported: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Agent {
    /// Start an agent with the given extra flags and wait until it serves.
    pub fn start(extra: &[&str]) -> Agent {
        let mut a = Agent::start_unspawned(extra);
        a.spawn();
        a
    }

    /// Like `start`, through a wrapper: the agent's argv is appended to `wrapper`.
    pub fn start_wrapped(wrapper: &[&str], extra: &[&str]) -> Agent {
        let mut a = Agent::start_unspawned(extra);
        a.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        a.spawn();
        a
    }

    /// Everything but the process: directories, cgroup, port.
    pub fn start_unspawned(extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let manifests = tmp.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        std::fs::set_permissions(&manifests, std::fs::Permissions::from_mode(0o755)).unwrap();
        Agent {
            child: None,
            root_dir: tmp.path().join("root"),
            logs_dir: tmp.path().join("pods-logs"),
            containers_log_dir: tmp.path().join("containers-logs"),
            log: tmp.path().join("agent.log"),
            manifests,
            tmp,
            port: free_port(),
            cgroup: TestCgroup::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: Vec::new(),
            with_test_image: true,
            test_image_imported: false,
        }
    }

    /// The agent's full command line (without any wrapper).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            env!("CARGO_BIN_EXE_minikubelet").to_string(),
            format!("--pod-manifest-path={}", self.manifests.display()),
            format!("--root-dir={}", self.root_dir.display()),
            format!("--pod-logs-dir={}", self.logs_dir.display()),
            format!("--container-logs-dir={}", self.containers_log_dir.display()),
            "--cgroup-root=pods".to_string(),
            format!("--port={}", self.port),
        ];
        // Defaults the caller may override (clap refuses a flag given twice). The kubelet's
        // default disk thresholds (nodefs.available<10%, imagefs.available<15%) would make
        // every test depend on how full this machine's shared disk happens to be (it sits
        // near 15%): tests that are not about eviction keep only the memory threshold.
        let with_config = self.has_flag("--config");
        for (flag, arg) in [
            ("--file-check-frequency", "--file-check-frequency=2s"),
            ("-v", "-v=4"),
            ("--eviction-hard", "--eviction-hard=memory.available<100Mi"),
        ] {
            if flag == "--eviction-hard" && with_config {
                continue;
            }
            if !self.has_flag(flag) {
                v.push(arg.to_string());
            }
        }
        // The CNI files stay in the test's own directory: an agent given a pod CIDR (or finding
        // a config) must never write /etc/cni/net.d nor set up a bridge from the machine's
        // config; network tests run their agent in a namespace of their own
        // (tests/pod_network.rs).
        let tmp = self.tmp.path();
        for (flag, dir) in [("--cni-conf-dir", "net.d"), ("--cni-cache-dir", "cni")] {
            if !self.has_flag(flag) {
                v.push(format!("{flag}={}", tmp.join(dir).display()));
            }
        }
        v.extend(self.extra.iter().cloned());
        v
    }

    /// Start (again) the agent process and wait for /healthz. The port was free when it was
    /// picked, but another process may bind it before the agent does (parallel tests, an
    /// ephemeral port of a client): then the agent is started again on a new port, twice at
    /// most.
    pub fn spawn(&mut self) {
        if self.with_test_image && !self.test_image_imported {
            test_image::import_test_image(&self.root_dir);
            self.test_image_imported = true;
        }
        let mut retries = 2;
        loop {
            let from = self.agent_log().len();
            let Err(status) = self.spawn_once() else {
                return;
            };
            let taken = self.agent_log()[from..].contains("Address already in use")
                && !self.extra.iter().any(|f| f.starts_with("--port"));
            if !taken || retries == 0 {
                panic!("minikubelet exited early ({status}):\n{}", self.agent_log());
            }
            retries -= 1;
            eprintln!(
                "port {} taken before the agent bound it ({status}): trying another",
                self.port
            );
            self.port = free_port();
        }
    }

    /// One start: `Err` with the exit status when the agent exited before serving.
    fn spawn_once(&mut self) -> Result<(), std::process::ExitStatus> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut argv = self.wrapper.clone();
        argv.extend(self.argv());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let procs: Vec<std::ffi::CString> = self
            .cgroup
            .procs_files()
            .iter()
            .map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap())
            .collect();
        join_cgroups_before_exec(&mut cmd, procs);
        self.child = Some(cmd.spawn().expect("spawn minikubelet"));
        // Over TLS, or with tokens required, the plain /healthz probe cannot work: wait for
        // the log line instead.
        let tls = self.has_flag("--tls-cert-file") || self.has_flag("--token-auth-file");
        let serving_lines = self.agent_log().matches("serving the kubelet API").count();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(status);
            }
            if tls && self.agent_log().matches("serving the kubelet API").count() > serving_lines {
                return Ok(());
            }
            // The admin token of the kubeconfig the agent writes before it serves: `http_get`
            // and friends send it from now on.
            if let Some(token) = self.read_token() {
                register_token(self.port, &token);
            }
            if !tls && self.get("/healthz").map(|b| b == "ok").unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "minikubelet did not serve within 30s:\n{}",
            self.agent_log()
        );
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL the agent (its shims and containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the agent and wait for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        c.wait().ok()
    }

    /// Write a manifest atomically (tmp file + rename), mode 0644, owned by root.
    pub fn write_manifest(&self, name: &str, text: &str) {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, self.manifests.join(name)).unwrap();
    }

    /// Remove a manifest.
    pub fn remove_manifest(&self, name: &str) {
        std::fs::remove_file(self.manifests.join(name)).unwrap();
    }

    /// A plain HTTP GET against the agent with its admin token; the body.
    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.port, path).map(|(_, b)| b)
    }

    /// `<root-dir>/kubeconfig` as this process can open it: through `/proc/<agent>/root` when
    /// the root dir is on a mount only the agent sees (`start_in_tmpfs`).
    pub fn kubeconfig(&self) -> PathBuf {
        let direct = self.root_dir.join("kubeconfig");
        match self.pid() {
            Some(pid) if !direct.exists() => {
                let rel = direct.strip_prefix("/").unwrap_or(&direct);
                PathBuf::from(format!("/proc/{pid}/root")).join(rel)
            }
            _ => direct,
        }
    }

    /// The admin token of the agent's kubeconfig (the `token:` line); panics without one.
    pub fn token(&self) -> String {
        self.read_token().unwrap_or_else(|| {
            panic!(
                "no token in {}:
{}",
                self.kubeconfig().display(),
                self.agent_log()
            )
        })
    }

    fn read_token(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.kubeconfig()).ok()?;
        minikubelet::server::apiserver::kubeconfig_token(&text)
    }

    /// `Authorization: Bearer <admin token>`, for clients that take headers.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    /// `/pods` items.
    pub fn pods(&self) -> Vec<Value> {
        let body = self.get("/pods").unwrap_or_default();
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The events of the static pod `name` (`<name>-<node>`), from the API server surface.
    pub fn pod_events(&self, name: &str) -> Vec<Value> {
        let list: Value = serde_json::from_str(&self.get("/api/v1/events").unwrap_or_default())
            .unwrap_or(Value::Null);
        let prefix = format!("{name}-");
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e["involvedObject"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    }

    /// The pod whose name starts with `name-` (static pods are `<name>-<node>`).
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.pods().into_iter().find(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
        })
    }

    /// Wait until `f` returns Some, polling every 50 ms; panics with the agent log on timeout.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Agent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n/pods: {}\nagent log:\n{}",
                    self.get("/pods").unwrap_or_default(),
                    tail(&self.agent_log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for a container of a pod to be running; returns its container status.
    pub fn wait_running(&self, pod: &str, container: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("{pod}/{container} running"), timeout, |a| {
            let p = a.pod(pod)?;
            container_status(&p, container).filter(|c| !c["state"]["running"].is_null())
        })
    }

    /// Events from the agent's log lines (reason=...)? No: events are in /pods only later;
    /// this reads the agent log for a substring.
    pub fn log_contains(&self, s: &str) -> bool {
        self.agent_log().contains(s)
    }

    /// Directory of a pod's cgroup below the test cgroup for the given file, searching QoS dirs.
    pub fn pod_cgroup_file(
        &self,
        uid: &str,
        container: Option<&str>,
        file: &str,
    ) -> Option<PathBuf> {
        for qos in [
            "pods/kubepods",
            "pods/kubepods/burstable",
            "pods/kubepods/besteffort",
        ] {
            let mut rel = format!("{qos}/pod{uid}");
            if let Some(c) = container {
                rel.push('/');
                rel.push_str(c);
            }
            if let Some(p) = self.cgroup.find(&rel, file) {
                return Some(p);
            }
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- agent log (tail) ----\n{}",
                tail(&self.agent_log(), 80)
            );
        }
        self.cgroup.destroy();
        // Pinned pod namespaces (bind mounts under `<root-dir>/pods/`) outlive a killed agent.
        unmount_under(self.tmp.path());
    }
}

/// Lazily unmounts every mount point of this mount namespace at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The last `n` lines of a text.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The kernel's last OOM-killer lines (`dmesg`), for failure messages: which process the kernel
/// killed, and in which memory cgroup, tells a test's own OOM from the machine's. Empty when
/// the kernel log cannot be read.
pub fn kernel_oom_lines(n: usize) -> String {
    let out = std::process::Command::new("dmesg").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let oom: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Killed process") || l.contains("oom-kill:"))
        .collect();
    oom[oom.len().saturating_sub(n)..].join("\n")
}

/// A container's status in a pod object, from containerStatuses or initContainerStatuses.
pub fn container_status(pod: &Value, name: &str) -> Option<Value> {
    for key in ["containerStatuses", "initContainerStatuses"] {
        if let Some(list) = pod["status"][key].as_array()
            && let Some(c) = list.iter().find(|c| c["name"] == name)
        {
            return Some(c.clone());
        }
    }
    None
}

/// The admin token of the agent on each port, as `Agent::spawn` found it.
static TOKENS: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

fn register_token(port: u16, token: &str) {
    let mut t = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.retain(|(p, _)| *p != port);
    t.push((port, token.to_string()));
}

/// The admin token of the agent on `port`, once it served.
pub fn token_for(port: u16) -> Option<String> {
    let t = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.iter().find(|(p, _)| *p == port).map(|(_, t)| t.clone())
}

/// Minimal HTTP/1.1 GET on 127.0.0.1 (no client crate needed), with the admin token of the
/// agent on `port`: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, token_for(port).as_deref(), &[])
}

/// One HTTP/1.1 request with an empty body on 127.0.0.1: `token` as a bearer token (none:
/// no `Authorization`), `Host: 127.0.0.1` unless `headers` has one; (status, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str("Host: 127.0.0.1\r\n");
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    http_raw(port, &head)
}

/// Sends `request` as is to 127.0.0.1:`port` and reads the answer: (status, body).
pub fn http_raw(port: u16, request: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    // Up to the end, or what came before the timeout (an answer on a kept-alive connection).
    let mut buf = Vec::new();
    if s.read_to_end(&mut buf).is_err() && buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Is this process alive (not a zombie)?
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|c| c != 'Z' && c != 'X')
}

/// Whether this process holds CAP_SYS_RESOURCE (needed to lower an oom_score_adj).
pub fn can_lower_oom_score_adj() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

impl Agent {
    /// The agent's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the extra flags already set `flag` (as `flag=value`; `-v` also as `--v=`).
    fn has_flag(&self, flag: &str) -> bool {
        let long = format!("-{flag}");
        self.extra.iter().any(|a| {
            [flag, long.as_str()]
                .iter()
                .any(|f| a == f || a.starts_with(&format!("{f}=")))
        })
    }

    /// Start an agent whose root dir and logs dirs are on a tmpfs of `size` (e.g. "64m"),
    /// mounted in a private mount namespace (`unshare -m`) that only the agent and its shims
    /// see; the mount goes away with them.
    pub fn start_in_tmpfs(size: &str, extra: &[&str]) -> Agent {
        let mut a = Agent::start_unspawned(extra);
        let disk = a.tmp.path().join("disk");
        std::fs::create_dir(&disk).unwrap();
        a.root_dir = disk.join("root");
        a.logs_dir = disk.join("pods-logs");
        a.containers_log_dir = disk.join("containers-logs");
        a.wrapper = vec![
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            // The store is on the tmpfs too: the test image is imported after the mount.
            format!(
                "mount -t tmpfs -o size={size} tmpfs \"$0\" && {} image import {} --root-dir \"$0/root\" >/dev/null && exec \"$@\"",
                env!("CARGO_BIN_EXE_minikubelet"),
                test_image::test_image_archive().display()
            ),
            disk.display().to_string(),
        ];
        a.test_image_imported = true;
        a.spawn();
        a
    }
}

/// The kubectl 1.32 binary the tests run (`scripts/deps.sh` finds or fetches it): `$MKL_KUBECTL`,
/// the versioned binary beside the Cloud SDK's dispatcher, the one deps.sh fetched, or `kubectl`
/// on PATH when it reports minor 32. Panics with the fix when there is none.
pub fn kubectl() -> String {
    static FOUND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let env = std::env::var("MKL_KUBECTL").ok();
        let candidates = env.into_iter().chain(
            [
                "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
                "/usr/local/lib/minikubelet-test/kubectl",
                "kubectl",
            ]
            .map(String::from),
        );
        candidates.into_iter().find(|k| {
            Command::new(k)
                .args(["version", "--client", "-o", "json"])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .is_some_and(|v| v["clientVersion"]["minor"] == "32")
        })
    });
    match found {
        Some(k) => k.clone(),
        None => panic!(
            "kubectl 1.32 not found: run scripts/deps.sh, or put one at \
             /usr/local/lib/minikubelet-test/kubectl, or set MKL_KUBECTL"
        ),
    }
}

/// The machine's `MemTotal` in bytes (the node's memory capacity).
pub fn mem_total() -> i64 {
    minikubelet::node::mem_total(Path::new("/proc")).expect("MemTotal in /proc/meminfo")
}

/// What a client (kubectl, curl, python) printed and how it ended.
#[derive(Debug)]
pub struct ClientRun {
    /// The exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// It was still running at the timeout and was killed.
    pub timed_out: bool,
}

/// Runs `cmd` with `stdin` written to it (then closed), killed after `timeout`.
pub fn run_client(mut cmd: Command, stdin: &[u8], timeout: Duration) -> ClientRun {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().expect("wait for client") {
            break (st, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().expect("wait for client"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ClientRun {
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        timed_out,
    }
}

/// The container of the attach tests: reads stdin (once), answers each line, then exits.
pub const TALKER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "while read l; do echo \"got $l\"; echo \"err $l\" >&2; done; echo bye"]
    stdin: true
    stdinOnce: true
"#;

/// Fills its log directory: 60 MB of log lines (pod `chatty`), for the disk-pressure tests on
/// a 64 MiB tmpfs. dd writes them in 64 KiB blocks: busybox `yes` writes a line per write,
/// and the log pipeline then reads a line at a time, which fills the disk much more slowly.
/// The shell (PID 1) stops at SIGTERM, so an eviction does not wait out the grace period.
pub const LOGGER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  containers:
  - name: talk
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; (sleep 1; yes 'a line of log output that fills the disk quickly' | dd bs=64k count=60000000 iflag=fullblock,count_bytes 2>/dev/null; sleep 3600) & wait"]
"#;

/// Makes the child of `cmd` write "0" to each file in `procs` (`cgroup.procs`, or on v1 `tasks`,
/// which moves the single-threaded child without the threadgroup lock) between fork and exec,
/// so that it runs in those cgroups from its first instruction.
pub fn join_cgroups_before_exec(cmd: &mut Command, procs: Vec<std::ffi::CString>) {
    // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Adds `Authorization: Bearer <admin token>` of the agent on the request's port to a
/// WebSocket client request (no token known for that port: unchanged).
pub fn with_token(
    mut req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    if let Some(token) = req.uri().port_u16().and_then(token_for) {
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
    }
    req
}

/// Runs kubectl 1.32 with the agent's kubeconfig and `args`; its stdout (it must succeed).
pub fn kubectl_stdout(a: &Agent, args: &[&str], timeout: Duration) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut c = kubectl_with_kubeconfig(a, home.path());
    c.args(args);
    let run = run_client(c, b"", timeout);
    assert_eq!(run.code, 0, "kubectl {args:?}: {run:?}");
    run.stdout
}

/// kubectl 1.32 with the agent's own kubeconfig, a fresh `HOME` and a bare `PATH` (no user
/// configuration leaks in); the caller adds credentials and arguments.
pub fn kubectl_with_kubeconfig(a: &Agent, home: &std::path::Path) -> Command {
    let mut c = Command::new(kubectl());
    c.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .arg(format!(
            "--kubeconfig={}",
            a.root_dir.join("kubeconfig").display()
        ));
    c
}

/// The minikubelet binary for tests that run the shim directly, copied once into a private
/// temp dir.
///
/// `target/debug/minikubelet` is shared by every worktree building into the same target dir,
/// so another branch's build can replace it under a running test. The copy is taken from the
/// first candidate that answers the shim protocol: cargo's `CARGO_BIN_EXE_minikubelet`, else the
/// newest `deps/minikubelet-*` build next to this test binary.
pub fn shim_binary() -> &'static Path {
    static EXE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = EXE.get_or_init(|| {
        let mut candidates = vec![PathBuf::from(env!("CARGO_BIN_EXE_minikubelet"))];
        let deps = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let mut builds: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("minikubelet-") && !n.contains('.')
            })
            .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
            .collect();
        builds.sort();
        candidates.extend(builds.into_iter().rev().map(|(_, p)| p));
        let dir = tempfile::tempdir().unwrap();
        for c in candidates {
            let copy = dir.path().join("minikubelet");
            if std::fs::copy(&c, &copy).is_ok() && speaks_shim(&copy) {
                return (dir, copy);
            }
        }
        panic!("no minikubelet binary with the shim subcommand found");
    });
    path
}

/// Does this binary answer `shim <dir without config>` with a start failure?
pub fn speaks_shim(exe: &Path) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(exe)
        .arg("shim")
        .arg(dir.path())
        .output();
    out.is_ok_and(|o| o.stdout.starts_with(b"{\"Failed\""))
}
