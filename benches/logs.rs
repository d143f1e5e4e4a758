//! Log throughput and `logs -f` latency, the log half of issue 5's benchmarks, each printed
//! beside a baseline measured in the same run. Never fails on a figure (shared, noisy
//! machines: the numbers are for people); it fails only when the set-up breaks.
//!
//! - **Throughput**: a container writes numbered 100-byte lines as fast as it can; a client
//!   follows `/containerLogs/...?follow=true` (what `kubectl logs -f` reaches through the API
//!   server) and counts MB/s from the first line to the last, and every sequence number
//!   missing, duplicated or out of order. Baseline: the same writer and the same bytes through
//!   a plain pipe into this process.
//! - **Latency**: a container writes a line every 10 ms carrying `CLOCK_MONOTONIC` at the
//!   moment of the write; the client reads its own clock when the line arrives. Baseline: the
//!   same writer through a pipe.
//!
//! `cargo bench --bench logs` (as root); `MKL_BENCH_QUICK=1` for a run of a few seconds. The
//! writer is this benchmark binary itself (`__write`), run as the container's command. The
//! agent runs as the tests run it (`tests/common`) at `-v=0`, as a user would.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Agent;

/// Bytes per throughput line, newline included: long enough that the per-line costs (CRI
/// timestamp prefix, chunk framing) do not dominate, short enough to be a typical log line.
const LINE: usize = 100;
/// Interval between latency lines: slow enough that each line travels alone (a latency, not a
/// queueing figure), fast enough for hundreds of samples in a few seconds.
const TICK: Duration = Duration::from_millis(10);

fn quick() -> bool {
    std::env::var_os("MKL_BENCH_QUICK").is_some()
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The container's (and the baseline's) writer: `__write throughput <lines> <trigger>` or
/// `__write latency <lines> <trigger>`. Waits for the trigger file so the reader is ready,
/// writes, then stays alive (a container that exits would be restarted).
fn writer(args: &[String]) {
    let mode = args.get(2).map(String::as_str).unwrap_or("");
    let n: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
    let trigger = args.get(4).map(String::as_str).unwrap_or("/nonexistent");
    while !Path::new(trigger).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if mode == "throughput" {
        let mut w = std::io::BufWriter::with_capacity(64 << 10, out);
        let pad = "x".repeat(LINE - 12);
        for seq in 0..n {
            let _ = writeln!(w, "{seq:010} {pad}");
        }
        let _ = w.flush();
    } else {
        for seq in 0..n {
            let _ = writeln!(out, "{seq} {}", mono_ns());
            let _ = out.flush();
            std::thread::sleep(TICK);
        }
    }
    if std::env::var_os("MKL_WRITER_EXIT").is_some() {
        return;
    }
    loop {
        std::thread::park();
    }
}

/// A line stream from a chunked `follow=true` response (or any reader).
struct Lines<R: Read> {
    r: BufReader<R>,
    chunked: bool,
    left: usize,
    partial: Vec<u8>,
    ready: std::collections::VecDeque<Vec<u8>>,
}

impl<R: Read> Lines<R> {
    fn new(r: R, chunked: bool) -> Self {
        Lines {
            r: BufReader::with_capacity(256 << 10, r),
            chunked,
            left: 0,
            partial: Vec::new(),
            ready: Default::default(),
        }
    }

    /// The next bytes of the body, `None` at its end.
    fn fill(&mut self) -> Option<()> {
        if self.chunked && self.left == 0 {
            let mut size = String::new();
            self.r.read_line(&mut size).ok()?;
            if size.trim().is_empty() {
                size.clear();
                self.r.read_line(&mut size).ok()?;
            }
            self.left = usize::from_str_radix(size.trim(), 16).ok()?;
            if self.left == 0 {
                return None;
            }
        }
        let buf = self.r.fill_buf().ok()?;
        if buf.is_empty() {
            return None;
        }
        let take = if self.chunked {
            buf.len().min(self.left)
        } else {
            buf.len()
        };
        for &b in &buf[..take] {
            if b == b'\n' {
                self.ready.push_back(std::mem::take(&mut self.partial));
            } else {
                self.partial.push(b);
            }
        }
        self.r.consume(take);
        if self.chunked {
            self.left -= take;
        }
        Some(())
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        while self.ready.is_empty() {
            self.fill()?;
        }
        self.ready.pop_front()
    }
}

/// Open `GET path` with follow and return the body's line stream. The status line and
/// headers are read a byte at a time so nothing of the body is buffered away from the stream.
fn follow(port: u16, path: &str) -> Lines<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let token = common::token_for(port).expect("the agent's admin token");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "follow {path}: {head}");
    let chunked = head.contains("transfer-encoding: chunked");
    Lines::new(s, chunked)
}

/// What a reader saw of the numbered lines.
#[derive(Default, Debug)]
struct Count {
    bytes: u64,
    lines: u64,
    lost: u64,
    duplicated: u64,
}

/// Read numbered lines until `last`; count bytes and gaps.
fn read_numbered<R: Read>(lines: &mut Lines<R>, last: u64) -> (Count, Duration, Instant) {
    let mut c = Count::default();
    let mut next = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        let Some(line) = lines.next_line() else {
            panic!("stream ended at line {next} of {}", last + 1)
        };
        first.get_or_insert_with(Instant::now);
        let seq: u64 = std::str::from_utf8(&line[..line.len().min(10)])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("not a numbered line: {:?}", String::from_utf8_lossy(&line)));
        c.bytes += line.len() as u64 + 1;
        c.lines += 1;
        if seq > next {
            c.lost += seq - next;
        } else if seq < next {
            c.duplicated += 1;
        }
        next = next.max(seq + 1);
        if seq >= last {
            break;
        }
    }
    let end = Instant::now();
    let start = first.unwrap_or(end);
    (c, end - start, start)
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Collect `n` latency lines: arrival clock − the writer's clock.
fn read_latency<R: Read>(lines: &mut Lines<R>, n: u64) -> Vec<u64> {
    let mut v = Vec::new();
    while (v.len() as u64) < n {
        let line = lines.next_line().expect("latency stream ended");
        let now = mono_ns();
        let text = String::from_utf8_lossy(&line);
        let mut f = text.split_whitespace();
        let (Some(_seq), Some(ts)) = (f.next(), f.next().and_then(|t| t.parse::<u64>().ok()))
        else {
            panic!("not a latency line: {text:?}")
        };
        v.push(now.saturating_sub(ts));
    }
    v.sort_unstable();
    v
}

fn print_latency(what: &str, v: &[u64]) {
    println!(
        "{what:<46} p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   ({} lines)",
        percentile(v, 0.5) as f64 / 1e6,
        percentile(v, 0.99) as f64 / 1e6,
        v.last().copied().unwrap_or(0) as f64 / 1e6,
        v.len()
    );
}

fn print_count(what: &str, c: &Count, d: Duration) {
    println!(
        "{what:<46} {:>8.1} MB/s   {:>9} lines in {:>6.3} s   lost {}   duplicated {}",
        mb_s(c.bytes, d),
        c.lines,
        d.as_secs_f64(),
        c.lost,
        c.duplicated
    );
}

/// The baseline: the same writer, its stdout a pipe read by this process.
fn pipe_writer(me: &Path, mode: &str, n: u64, trigger: &Path) -> std::process::Child {
    Command::new(me)
        .args(["__write", mode, &n.to_string()])
        .arg(trigger)
        .env("MKL_WRITER_EXIT", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the writer")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__write") {
        return writer(&args);
    }
    if !nix::unistd::geteuid().is_root() {
        println!("logs benchmark: skipped (needs root: it runs the agent and its cgroups)");
        return;
    }
    let me = std::env::current_exe().expect("current_exe");
    let lines: u64 = if quick() { 100_000 } else { 500_000 };
    let ticks: u64 = if quick() { 200 } else { 1000 };
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");

    let a = Agent::start(&["-v=0"]);
    let pod = |name: &str, mode: &str, n: u64| {
        let trigger = work.path().join(format!("{name}.go"));
        a.write_manifest(
            &format!("{name}.yaml"),
            &format!(
                // The writer is this benchmark's binary on the node's filesystem, so the pod
                // runs from it (isolated) instead of from an image.
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, annotations: {{minikubelet.io/host-filesystem: 'true'}}}}\nspec:\n  containers:\n  - name: w\n    image: localhost/busybox:test\n    command: [{:?}, __write, {mode}, '{n}', {:?}]\n",
                me.display().to_string(),
                trigger.display().to_string()
            ),
        );
        a.wait_running(name, "w", Duration::from_secs(30));
        let full = a.pod(name).expect("pod")["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        (full, trigger)
    };

    println!(
        "log benchmarks (issue 5): {lines} lines of {LINE} B for throughput, {ticks} lines every {} ms for latency",
        TICK.as_millis()
    );

    // Throughput through the agent.
    let (full, trigger) = pod("flood", "throughput", lines);
    let mut f = follow(
        a.port,
        &format!("/containerLogs/default/{full}/w?follow=true"),
    );
    std::fs::write(&trigger, b"").expect("trigger");
    let (agent_count, agent_time, _) = read_numbered(&mut f, lines - 1);
    drop(f);

    // The same through a pipe.
    let trigger = work.path().join("pipe-flood.go");
    let mut child = pipe_writer(&me, "throughput", lines, &trigger);
    let mut p = Lines::new(child.stdout.take().expect("stdout"), false);
    std::fs::write(&trigger, b"").expect("trigger");
    let (pipe_count, pipe_time, _) = read_numbered(&mut p, lines - 1);
    let _ = child.wait();

    // Latency through the agent.
    let (full, trigger) = pod("ticker", "latency", ticks);
    let mut f = follow(
        a.port,
        &format!("/containerLogs/default/{full}/w?follow=true"),
    );
    std::fs::write(&trigger, b"").expect("trigger");
    let agent_lat = read_latency(&mut f, ticks);
    drop(f);

    // The same through a pipe.
    let trigger = work.path().join("pipe-ticker.go");
    let mut child = pipe_writer(&me, "latency", ticks, &trigger);
    let mut p = Lines::new(child.stdout.take().expect("stdout"), false);
    std::fs::write(&trigger, b"").expect("trigger");
    let pipe_lat = read_latency(&mut p, ticks);
    let _ = child.wait();

    println!();
    print_count("baseline: writer → pipe → reader", &pipe_count, pipe_time);
    print_count(
        "container → shim → log file → logs -f client",
        &agent_count,
        agent_time,
    );
    println!(
        "logs -f throughput / pipe: {:.2}x",
        mb_s(agent_count.bytes, agent_time) / mb_s(pipe_count.bytes, pipe_time).max(1e-9)
    );
    println!();
    print_latency("baseline: write → pipe → reader", &pipe_lat);
    print_latency("write → logs -f client", &agent_lat);
}
