//! The spine's benchmark (issue 2, "Benchmarks"): prints pod start latency, burst start time,
//! memory and idle CPU of the release binary beside a baseline measured in the same run, with
//! PASS/MISS beside each target. It never fails on a missed target (these machines are shared
//! and noisy; the figures are for people, not for CI to gate on): it exits 0 unless the set-up
//! itself breaks.
//!
//! `cargo bench --bench spine` (as root); `MKL_BENCH_QUICK=1` for a short run (well under a minute).
//! `MKL_BENCH_V=<n>` runs the agent at that verbosity (default 0, as a user would) and
//! `MKL_BENCH_KEEP_LOG=1` keeps the agent log and a list of samples (rename time, latency) to
//! find each start in that log, for profiling; `MKL_BENCH_SAMPLES=<n>` changes the number of
//! one-at-a-time starts (more starts fill the agent's bounded event caches before the memory
//! figures are taken).
//!
//! The agent runs as the tests run it (`tests/common`): in a cgroup of its own beneath this
//! process's cgroup, a relative `--cgroup-root`, temporary directories, a free port; everything
//! is killed and removed when the benchmark ends, also on panic or Ctrl-C.
//!
//! Every container is a tiny static helper that writes its own start time (CLOCK_MONOTONIC, as
//! the first thing it does) into a file and then sleeps; the baseline starts the same helper
//! directly in a fresh cgroup, so the helper's own exec cost is on both sides of the ratio.

#[path = "../tests/common/mod.rs"]
mod common;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Agent, TestCgroup};

/// Set by SIGINT/SIGTERM: every wait loop panics so that the guards' Drop cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long any single wait may take before the benchmark gives up (a broken set-up, not a
/// slow start: starts take milliseconds).
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// How often the benchmark looks for a helper's stamp file. Only the stamp's content is
/// measured, so this sets how soon the next sample starts, not the figures.
const STAMP_POLL: Duration = Duration::from_micros(500);

/// The container: record CLOCK_MONOTONIC and the pid first, publish them atomically, then sleep
/// until killed. Static, so no dynamic loader runs between exec and the clock read.
const STAMP_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (argc < 2) return 2;
    char buf[64], tmp[4096];
    int n = snprintf(buf, sizeof buf, "%lld %d\n",
                     (long long)t.tv_sec * 1000000000LL + t.tv_nsec, (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, buf, n) != n) return 1;
    close(fd);
    if (rename(tmp, argv[1]) != 0) return 1;
    for (;;) pause();
}
"#;

struct Settings {
    quick: bool,
    /// Pods started one at a time (and as many baseline samples, interleaved).
    samples: usize,
    /// Samples of each kind run first and not counted (page cache, first cgroups).
    warmup: usize,
    /// Manifests dropped at once.
    burst: usize,
    /// Idle window for the CPU figure.
    idle: Duration,
    verbosity: String,
    keep_log: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("MKL_BENCH_QUICK").is_ok_and(|v| v == "1");
        Settings {
            quick,
            samples: std::env::var("MKL_BENCH_SAMPLES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if quick { 100 } else { 500 }),
            warmup: if quick { 5 } else { 10 },
            burst: 100,
            idle: Duration::from_secs(if quick { 5 } else { 10 }),
            verbosity: std::env::var("MKL_BENCH_V").unwrap_or_else(|_| "0".into()),
            keep_log: std::env::var("MKL_BENCH_KEEP_LOG").is_ok_and(|v| v == "1"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__stamp") {
        return stamp_fallback(&args);
    }
    if !nix::unistd::geteuid().is_root() {
        println!("spine benchmark: skipped (needs root: it creates cgroups and runs pods)");
        return;
    }
    install_interrupt_handler();
    let s = Settings::from_env();
    let work = tempfile::tempdir().expect("tempdir");
    let helper = build_helper(work.path());
    let stamps = work.path().join("stamps");
    std::fs::create_dir(&stamps).expect("mkdir stamps");

    print_machine(&s, &helper);

    let agent = Agent::start(&[
        &format!("-v={}", s.verbosity),
        // The kubelet's default relist period, so idle CPU is what a user gets (the test
        // harness's 2 s would add ten relists to the idle window).
        "--file-check-frequency=20s",
        // Only the memory threshold: a shared build machine's disk near the default 10-15 %
        // free would put the node under DiskPressure, and admission would refuse every pod.
        "--eviction-hard=memory.available<100Mi",
    ]);
    let agent_pid = agent.pid().expect("agent pid") as i32;
    println!("  agent pid {agent_pid}, log {}", agent.log.display());
    std::thread::sleep(Duration::from_millis(500));
    let rss_fresh = status_kib(agent_pid, "VmRSS");

    // ---- pod start latency vs baseline, interleaved one by one ----
    eprintln!("-- one-at-a-time starts");
    let base_cg = TestCgroup::new();
    let mut base = Vec::with_capacity(s.samples);
    let mut pods = Vec::with_capacity(s.samples);
    let mut trace = String::new();
    let mut rss_curve = vec![format!("0: {:.1}", rss_fresh as f64 / 1024.0)];
    for i in 0..s.warmup + s.samples {
        let b = baseline_sample(&base_cg, &helper, &stamps.join(format!("base-{i}")), i);
        let (p, wall) = pod_sample(&agent, &helper, &stamps, i);
        trace.push_str(&format!("seq-{i} {wall} {:.0} {b:.0}\n", p));
        if (i + 1) % (s.warmup + s.samples).div_ceil(8) == 0 {
            rss_curve.push(format!(
                "{}: {:.1}",
                i + 1,
                status_kib(agent_pid, "VmRSS") as f64 / 1024.0
            ));
        }
        if i >= s.warmup {
            base.push(b);
            pods.push(p);
        }
    }
    drop(base_cg);
    let rss_after_seq = status_kib(agent_pid, "VmRSS");

    // ---- burst ----
    eprintln!("-- burst");
    let burst = burst_start(&agent, &helper, &stamps, s.burst);
    std::thread::sleep(Duration::from_secs(1));
    let rss_100 = status_kib(agent_pid, "VmRSS");
    let hwm = status_kib(agent_pid, "VmHWM");
    let shims = shim_pids(&agent);
    let pss: Vec<f64> = shims
        .iter()
        .filter_map(|&p| rollup_kib(p, "Pss"))
        .map(|k| k as f64)
        .collect();
    let shim_rss: Vec<f64> = shims
        .iter()
        .filter_map(|&p| rollup_kib(p, "Rss"))
        .map(|k| k as f64)
        .collect();

    // ---- idle CPU with the burst's pods running ----
    eprintln!("-- idle window");
    let ticks = clk_tck();
    let cpu0 = cpu_ticks(agent_pid);
    let shim0: u64 = shims.iter().map(|&p| cpu_ticks(p)).sum();
    let t0 = Instant::now();
    sleep_checked(s.idle);
    let cpu1 = cpu_ticks(agent_pid);
    let shim1: u64 = shims.iter().map(|&p| cpu_ticks(p)).sum();
    let window = t0.elapsed().as_secs_f64();
    let agent_cpu_pct = (cpu1 - cpu0) as f64 / ticks / window * 100.0;
    let shims_cpu_pct = (shim1 - shim0) as f64 / ticks / window * 100.0;

    // ---- teardown of the burst (informative) ----
    eprintln!("-- teardown");
    let t = Instant::now();
    for i in 0..s.burst {
        agent.remove_manifest(&format!("burst-{i}.yaml"));
    }
    wait_until("all burst pods gone", &agent, |a| a.pods().is_empty());
    let teardown = t.elapsed();

    // ---- report ----
    println!();
    println!(
        "pod start latency: manifest renamed into the directory -> container's first instruction"
    );
    println!(
        "  {} samples each (after {} warm-up), one pod at a time, baseline and pod interleaved",
        s.samples, s.warmup
    );
    let (b50, b99) = (pct(&base, 50.0), pct(&base, 99.0));
    let (p50, p99) = (pct(&pods, 50.0), pct(&pods, 99.0));
    let row = |what: &str, v: &[f64]| {
        println!(
            "  {what:<44} {:>9} {:>9} {:>9} {:>9}",
            ms(pct(v, 50.0)),
            ms(pct(v, 99.0)),
            ms(pct(v, 0.0)),
            ms(pct(v, 100.0))
        )
    };
    println!(
        "  {:<44} {:>9} {:>9} {:>9} {:>9}",
        "", "p50", "p99", "min", "max"
    );
    row("baseline: mkdir cgroups + fork/exec in them", &base);
    row("minikubelet: manifest -> container running", &pods);
    target("p50 / baseline p50", p50 / b50, "x", 3.0);
    target("p99 / baseline p99", p99 / b99, "x", 2.0);
    target("p99 (target for a quiet machine)", p99 / 1e6, "ms", 15.0);
    println!();
    println!(
        "burst: {} manifests renamed into the directory at once",
        s.burst
    );
    target(
        "-> all containers running",
        burst.all_stamped / 1e9,
        "s",
        1.0,
    );
    info("-> first container running", burst.first / 1e9, "s");
    info("-> half of the containers running", burst.median / 1e9, "s");
    info(
        "-> all Running in /pods (polled, 10 ms)",
        burst.all_running / 1e9,
        "s",
    );
    info("all removed -> /pods empty", teardown.as_secs_f64(), "s");
    println!();
    println!("memory");
    info(
        "agent VmRSS, 0 pods, fresh",
        rss_fresh as f64 / 1024.0,
        "MiB",
    );
    info(
        &format!("agent VmRSS, 0 pods, after {} starts", s.warmup + s.samples),
        rss_after_seq as f64 / 1024.0,
        "MiB",
    );
    println!(
        "  agent VmRSS (MiB) after n one-at-a-time starts, 0 pods running: {}",
        rss_curve.join(", ")
    );
    target(
        &format!("agent VmRSS, {} pods", s.burst),
        rss_100 as f64 / 1024.0,
        "MiB",
        25.0,
    );
    info("agent VmHWM (peak RSS)", hwm as f64 / 1024.0, "MiB");
    target(
        &format!("shim PSS, mean of {}", pss.len()),
        mean(&pss) / 1024.0,
        "MiB",
        1.0,
    );
    target("shim PSS, max", max(&pss) / 1024.0, "MiB", 1.0);
    info(
        "shim RSS (shared pages in full), mean",
        mean(&shim_rss) / 1024.0,
        "MiB",
    );
    println!();
    println!(
        "idle CPU over {window:.1} s with {} pods running (utime+stime at {ticks} ticks/s)",
        s.burst
    );
    target("agent, % of one core", agent_cpu_pct, "%", 1.0);
    info(
        &format!("all {} shims together, % of one core", shims.len()),
        shims_cpu_pct,
        "%",
    );
    println!();
    println!("load average at the end: {}", loadavg());
    if s.keep_log {
        let keep = std::env::temp_dir().join(format!("mkl-bench-agent-{}.log", std::process::id()));
        let _ = std::fs::copy(&agent.log, &keep);
        println!("agent log kept: {}", keep.display());
        let samples = keep.with_extension("samples");
        let _ = std::fs::write(&samples, trace);
        println!(
            "samples (pod, rename time, latency ns, baseline ns): {}",
            samples.display()
        );
    }
}

/// Prints one figure without a target.
fn info(what: &str, value: f64, unit: &str) {
    println!("  {what:<44} {value:>9.3} {unit}");
}

/// Prints one figure with its target and PASS/MISS (smaller is better).
fn target(what: &str, value: f64, unit: &str, limit: f64) {
    let verdict = if value <= limit { "PASS" } else { "MISS" };
    println!("  {what:<44} {value:>9.3} {unit:<3}  target <= {limit} {unit}  {verdict}");
}

fn install_interrupt_handler() {
    extern "C" fn on_signal(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &act) }.expect("install signal handler");
    }
}

fn check_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted: cleaning up");
    }
}

fn sleep_checked(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupted();
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// Compiles the static stamp helper; falls back to this benchmark's own binary (`__stamp`),
/// which is dynamically linked and so a little slower to start, on both sides alike.
fn build_helper(dir: &Path) -> Vec<String> {
    let src = dir.join("stamp.c");
    let bin = dir.join("stamp");
    std::fs::write(&src, STAMP_C).expect("write stamp.c");
    let ok = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        vec![bin.display().to_string()]
    } else {
        let me = std::env::current_exe().expect("current_exe");
        vec![me.display().to_string(), "__stamp".into()]
    }
}

/// The helper's job when no C compiler is around.
fn stamp_fallback(args: &[String]) {
    let t = mono_ns();
    let Some(path) = args.get(2) else { return };
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, format!("{t} {}\n", std::process::id())).expect("write stamp");
    std::fs::rename(&tmp, path).expect("rename stamp");
    loop {
        std::thread::park();
    }
}

fn mono_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Waits for a helper's stamp file: (start time in CLOCK_MONOTONIC ns, pid).
fn wait_stamp(path: &Path, agent: Option<&Agent>) -> (f64, i32) {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let mut it = text.split_whitespace();
            if let (Some(Ok(t)), Some(Ok(pid))) = (
                it.next().map(str::parse::<f64>),
                it.next().map(str::parse::<i32>),
            ) {
                return (t, pid);
            }
        }
        check_interrupted();
        if Instant::now() > deadline {
            let log = agent.map(|a| common::tail(&a.agent_log(), 40));
            panic!(
                "no stamp at {} after {WAIT_LIMIT:?}\n{log:?}",
                path.display()
            );
        }
        std::thread::sleep(STAMP_POLL);
    }
}

fn wait_until(what: &str, agent: &Agent, mut f: impl FnMut(&Agent) -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !f(agent) {
        check_interrupted();
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n{}",
                common::tail(&agent.agent_log(), 40)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One baseline sample: mkdir a cgroup in each hierarchy, fork, write "0" to each cgroup.procs
/// in the child, exec the helper; the time from before the mkdir to the helper's stamp.
fn baseline_sample(parent: &TestCgroup, helper: &[String], stamp: &Path, i: usize) -> f64 {
    let dirs: Vec<PathBuf> = parent
        .dirs
        .iter()
        .map(|d| d.join(format!("b{i}")))
        .collect();
    let procs: Vec<CString> = dirs
        .iter()
        .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap())
        .collect();
    let mut cmd = Command::new(&helper[0]);
    cmd.args(&helper[1..])
        .arg(stamp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::join_cgroups_before_exec(&mut cmd, procs);
    let t0 = mono_ns();
    for d in &dirs {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let mut child = cmd.spawn().expect("spawn baseline helper");
    let (t, _) = wait_stamp(stamp, None);
    let _ = child.kill();
    let _ = child.wait();
    for d in &dirs {
        for _ in 0..100 {
            if std::fs::remove_dir(d).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    t - t0
}

fn manifest(name: &str, helper: &[String], stamp: &Path) -> String {
    let mut argv: Vec<String> = helper.to_vec();
    argv.push(stamp.display().to_string());
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: none\n    command: [{}]\n",
        argv.join(", ")
    )
}

/// One pod sample: rename a manifest into the directory, wait for the container's stamp, then
/// remove the manifest and wait until the pod is gone (so samples never overlap).
/// Returns the latency in ns and the wall-clock time of the rename (to find the sample in the
/// agent's log).
fn pod_sample(agent: &Agent, helper: &[String], stamps: &Path, i: usize) -> (f64, jiff::Timestamp) {
    let name = format!("seq-{i}");
    let stamp = stamps.join(&name);
    let file = format!("{name}.yaml");
    let tmp = agent.manifests.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, manifest(&name, helper, &stamp)).expect("write manifest");
    let wall = jiff::Timestamp::now();
    let t0 = mono_ns();
    std::fs::rename(&tmp, agent.manifests.join(&file)).expect("rename manifest");
    let (t, pid) = wait_stamp(&stamp, Some(agent));
    agent.remove_manifest(&file);
    wait_until(&format!("{name} gone"), agent, |a| {
        !common::alive(pid) && a.pods().is_empty()
    });
    (t - t0, wall)
}

struct Burst {
    all_stamped: f64,
    all_running: f64,
    first: f64,
    median: f64,
}

fn burst_start(agent: &Agent, helper: &[String], stamps: &Path, n: usize) -> Burst {
    let mut staged = Vec::new();
    for i in 0..n {
        let name = format!("burst-{i}");
        let tmp = agent.manifests.join(format!(".{name}.yaml.tmp"));
        std::fs::write(&tmp, manifest(&name, helper, &stamps.join(&name))).expect("write");
        staged.push((tmp, agent.manifests.join(format!("{name}.yaml"))));
    }
    let t0 = mono_ns();
    for (tmp, dst) in &staged {
        std::fs::rename(tmp, dst).expect("rename manifest");
    }
    let mut starts: Vec<f64> = (0..n)
        .map(|i| wait_stamp(&stamps.join(format!("burst-{i}")), Some(agent)).0 - t0)
        .collect();
    starts.sort_by(f64::total_cmp);
    wait_until("all burst pods Running", agent, |a| {
        let pods = a.pods();
        pods.len() == n && pods.iter().all(|p| p["status"]["phase"] == "Running")
    });
    let all_running = mono_ns() - t0;
    Burst {
        all_stamped: max(&starts),
        all_running,
        first: starts[0],
        median: pct(&starts, 50.0),
    }
}

/// Shim pids of every container, from the runtime's `state.json` files.
fn shim_pids(agent: &Agent) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(agent.root_dir.join("containers")) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("state.json")) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(p) = v["shim_pid"].as_i64()
        {
            out.push(p as i32);
        }
    }
    out
}

fn status_kib(pid: i32, key: &str) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), key).unwrap_or(0)
}

fn rollup_kib(pid: i32, key: &str) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), key)
}

fn kib_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12 here.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Nearest-rank percentile of samples in ns.
fn pct(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn ms(ns: f64) -> String {
    format!("{:.2} ms", ns / 1e6)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn print_machine(s: &Settings, helper: &[String]) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_default();
    let layout = if common::is_v2() {
        "v2 (unified)"
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        "v1 hybrid (v1 controllers + /sys/fs/cgroup/unified)"
    } else {
        "v1"
    };
    let bin = env!("CARGO_BIN_EXE_minikubelet");
    let size = std::fs::metadata(bin).map_or(0, |m| m.len());
    println!(
        "minikubelet spine benchmark ({} mode)",
        if s.quick { "quick" } else { "full" }
    );
    println!(
        "  machine: {nproc} CPUs ({cpu}), kernel {}, cgroup {layout}",
        kernel.trim()
    );
    println!("  load average at the start: {}", loadavg());
    println!(
        "  agent: {bin} ({:.1} MiB), -v={}, --file-check-frequency=20s, --eviction-hard=memory.available<100Mi",
        size as f64 / (1024.0 * 1024.0),
        s.verbosity
    );
    println!(
        "  container/baseline helper: {}",
        if helper.len() == 1 {
            "static C stamp (cc -static)"
        } else {
            "this benchmark binary (__stamp; no C compiler found)"
        }
    );
}
