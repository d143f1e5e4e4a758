//! `mkl-standin`: a std-only stand-in for minikubelet's cgroup v2 behaviour (VM harness only).
//!
//! It does what the agent's interface promises, in the smallest possible way, so the VM harness can
//! prove the cgroup v2 mechanics and the systemd unit's restart semantics before (and independently
//! of) the real agent:
//! - finds its own cgroup, moves itself into the leaf `<own>/agent`;
//! - resolves `--cgroup-root` (or `cgroupRoot:` from `--config`): relative means beneath `<own>`
//!   (and then enables `+cpu +memory +pids` in `<own>`), absolute means from the hierarchy's root,
//!   in which case `<own>` is left without controllers;
//! - creates `<root>/kubepods/besteffort/podstandin/c1` with `pids.max = 64` on the pod;
//! - starts one "shim" (this binary, `--shim`) that stays in the agent's leaf and supervises one
//!   container process (`sleep`) placed in `c1`; a running container found there is adopted;
//! - sends `READY=1` to `$NOTIFY_SOCKET`, then holds until killed.
//!
//! `--check` runs the same steps with a relative root, verifies them, prints `PASS`/`FAIL` lines and
//! removes what it made. `--http-get URL` is the guests' HTTP client (busybox-static's wget
//! crashes): prints the body of a 2xx answer, exits 1 otherwise.
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::Duration;

const CGROUP_FS: &str = "/sys/fs/cgroup";
const CONTROLLERS: &str = "+cpu +memory +pids";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--shim") => shim(args.get(1).map(String::as_str).unwrap_or_default()),
        Some("--check") => check(),
        Some("--http-get") => http_get(args.get(1).map(String::as_str).unwrap_or_default()),
        _ => agent(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("standin: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The cgroup v2 path of this process ("/system.slice/x.service"), from /proc/self/cgroup.
fn own_cgroup() -> io::Result<String> {
    let s = fs::read_to_string("/proc/self/cgroup")?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
        .ok_or_else(|| err(format!("no cgroup v2 line in /proc/self/cgroup: {s:?}")))
}

fn fs_path(cg: &str) -> PathBuf {
    Path::new(CGROUP_FS).join(cg.trim_start_matches('/'))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| err(format!("write {value:?} to {}: {e}", path.display())))
}

fn enable_controllers(cg: &str) -> io::Result<()> {
    write(&fs_path(cg).join("cgroup.subtree_control"), CONTROLLERS)
}

fn join(a: &str, b: &str) -> String {
    let b = b.trim_matches('/');
    if b.is_empty() || b == "." {
        a.to_string()
    } else if a == "/" {
        format!("/{b}")
    } else {
        format!("{a}/{b}")
    }
}

struct Layout {
    own: String,
    root: String,
    pod: String,
    container: String,
}

/// Moves into `<own>/agent`, resolves the root, creates the pod and container cgroups.
fn setup(cgroup_root: &str) -> io::Result<Layout> {
    let mut own = own_cgroup()?;
    if own.ends_with("/agent") {
        // already in our leaf (a second run under the same parent): <own> is its parent
        own.truncate(own.len() - "/agent".len());
        if own.is_empty() {
            own.push('/');
        }
    } else {
        let leaf = join(&own, "agent");
        fs::create_dir_all(fs_path(&leaf))?;
        write(&fs_path(&leaf).join("cgroup.procs"), "0")?;
    }
    let (root, chain_from) = if cgroup_root.starts_with('/') {
        (cgroup_root.to_string(), "/".to_string())
    } else {
        (join(&own, cgroup_root), own.clone())
    };
    // enable the controllers on every cgroup from chain_from down to the pod, never in <own>'s
    // parent chain above chain_from (that is the service manager's business)
    enable_controllers(&chain_from)?;
    let pod = join(&root, "kubepods/besteffort/podstandin");
    let container = join(&pod, "c1");
    let mut cur = chain_from.clone();
    for part in container[chain_from.len()..]
        .split('/')
        .filter(|p| !p.is_empty())
    {
        cur = join(&cur, part);
        fs::create_dir_all(fs_path(&cur))?;
        if cur != container {
            enable_controllers(&cur)?;
        }
    }
    write(&fs_path(&pod).join("pids.max"), "64")?;
    Ok(Layout {
        own,
        root,
        pod,
        container,
    })
}

fn procs(cg: &str) -> Vec<u32> {
    fs::read_to_string(fs_path(cg).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Starts the shim for the container unless a container process is already there (adoption).
fn ensure_container(l: &Layout) -> io::Result<(bool, Vec<u32>)> {
    let existing = procs(&l.container);
    if !existing.is_empty() {
        return Ok((true, existing));
    }
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("--shim")
        .arg(&l.container)
        .process_group(0)
        .spawn()?;
    drop(child); // the shim outlives us; init reaps it
    // The container process moves itself into its cgroup; wait for it (trade-off: 10 s is ample
    // under TCG, where a fork+exec takes tens of milliseconds, and bounds a broken setup).
    for _ in 0..100 {
        let p = procs(&l.container);
        if !p.is_empty() {
            return Ok((false, p));
        }
        sleep(Duration::from_millis(100));
    }
    Err(err(format!(
        "no container process appeared in {}",
        l.container
    )))
}

fn shim(container_cg: &str) -> io::Result<ExitCode> {
    let procs_file = fs_path(container_cg).join("cgroup.procs");
    let script = format!("echo $$ > {} && exec sleep 1000000", procs_file.display());
    let status = Command::new("/bin/sh").arg("-c").arg(script).status()?;
    eprintln!("standin shim: container in {container_cg} exited: {status}");
    Ok(ExitCode::SUCCESS)
}

fn notify_ready() -> io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(b"READY=1", &addr)?;
    } else {
        sock.send_to(b"READY=1", &path)?;
    }
    Ok(())
}

/// `cgroupRoot:` from a KubeletConfiguration file, by line (enough for a stand-in).
fn config_cgroup_root(file: &str) -> io::Result<Option<String>> {
    let text = fs::read_to_string(file).map_err(|e| err(format!("read {file}: {e}")))?;
    Ok(text.lines().find_map(|l| {
        l.strip_prefix("cgroupRoot:")
            .map(|v| v.trim().trim_matches('"').to_string())
    }))
}

fn agent(args: &[String]) -> io::Result<ExitCode> {
    let mut cgroup_root = String::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--config=") {
            cgroup_root = config_cgroup_root(v)?.unwrap_or(cgroup_root);
        } else if a == "--config" {
            i += 1;
            let v = args
                .get(i)
                .ok_or_else(|| err("--config needs a value".into()))?;
            cgroup_root = config_cgroup_root(v)?.unwrap_or(cgroup_root);
        } else if let Some(v) = a.strip_prefix("--cgroup-root=") {
            cgroup_root = v.to_string();
        }
        i += 1;
    }
    let l = setup(&cgroup_root)?;
    let (adopted, pids) = ensure_container(&l)?;
    println!(
        "standin: ready own={} root={} pod={} container_pids={:?} adopted={adopted}",
        l.own, l.root, l.pod, pids
    );
    notify_ready()?;
    loop {
        sleep(Duration::from_secs(3600));
    }
}

fn check() -> io::Result<ExitCode> {
    let mut failed = false;
    let mut report = |name: &str, ok: bool, detail: String| {
        println!(
            "{} standin_{name} {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        failed |= !ok;
    };
    let l = setup(".")?;
    let me = std::process::id();
    report(
        "moved_to_leaf",
        procs(&join(&l.own, "agent")).contains(&me),
        format!("({}/agent)", l.own),
    );
    let subtree = fs::read_to_string(fs_path(&l.own).join("cgroup.subtree_control"))?;
    report(
        "own_subtree_control",
        ["cpu", "memory", "pids"]
            .iter()
            .all(|c| subtree.split_whitespace().any(|w| w == *c)),
        format!("[{}]", subtree.trim()),
    );
    let (adopted, pids) = ensure_container(&l)?;
    let in_cg = pids
        .first()
        .map(|p| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default());
    report(
        "container_in_cgroup",
        !adopted && in_cg.as_deref() == Some(format!("0::{}\n", l.container).as_str()),
        format!("{in_cg:?}"),
    );
    let pids_max = fs::read_to_string(fs_path(&l.pod).join("pids.max"))?;
    report(
        "pod_pids_max",
        pids_max.trim() == "64",
        pids_max.trim().to_string(),
    );
    let controllers = fs::read_to_string(fs_path(&l.container).join("cgroup.controllers"))?;
    report(
        "container_controllers",
        ["cpu", "memory", "pids"]
            .iter()
            .all(|c| controllers.split_whitespace().any(|w| w == *c)),
        format!("[{}]", controllers.trim()),
    );
    // tear down: kill the pod's processes, wait for it to empty, remove bottom-up
    write(&fs_path(&l.pod).join("cgroup.kill"), "1")?;
    for _ in 0..50 {
        if procs(&l.container).is_empty() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    let mut cur = l.container.clone();
    let mut removed = true;
    while cur.len() > l.root.len() {
        // the shim exits once its container is gone; rmdir may see EBUSY briefly
        let mut ok = false;
        for _ in 0..50 {
            if fs::remove_dir(fs_path(&cur)).is_ok() {
                ok = true;
                break;
            }
            sleep(Duration::from_millis(100));
        }
        removed &= ok;
        cur = cur[..cur.rfind('/').unwrap_or(0)].to_string();
    }
    report("teardown", removed, String::new());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// GET over HTTP/1.0 (the server closes the connection after the body: no chunking, no keep-alive),
/// with `Authorization: Bearer $MKL_TOKEN` when that is set (the agent's admin token).
fn http_get(url: &str) -> io::Result<ExitCode> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| err(format!("not an http:// url: {url:?}")))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| err(format!("no address for {hostport}")))?;
    // 5 s: a healthy agent answers in milliseconds even under TCG; callers poll on failure
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let auth = match std::env::var("MKL_TOKEN") {
        Ok(t) if !t.is_empty() => format!("Authorization: Bearer {t}\r\n"),
        _ => String::new(),
    };
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n{auth}\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    io::stdout().write_all(body.as_bytes())?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
