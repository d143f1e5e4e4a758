//! What log requests cost the agent (security audit findings 9, 10 and 16), against the real
//! binary: `logs -f` followers share one inotify instance and hold no thread, so hundreds of
//! them leave the agent's threads and inotify instances flat and pod starts prompt; followers
//! are capped (429); `tailLines` on a ~20 MB log is read backwards in bounded memory and
//! gives exactly the right lines; a compressed rotated log keeps the live log's mode.
//!
//! The followers are raw HTTP/1.1 connections (the kubelet's `/containerLogs?follow=true`,
//! what the API server sends for `kubectl logs -f`). They carry no credentials: once the
//! loopback API requires a bearer token, `open` must send it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Agent, http_get};
use minikubelet::server::logs::MAX_LOG_FOLLOWERS;

const T: Duration = Duration::from_secs(60);
/// Followers that the old code could not have held without running out of inotify instances
/// (128 per user) and that would have taken 300 blocking threads.
const FOLLOWERS: usize = 300;

/// A container that prints a numbered line five times a second.
const TICKER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sh, -c, 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done']}\n";

/// Lines the big log holds, each `line-NNNNNNN-` and 64 x's: ~20 MB with the CRI prefixes.
const BIG_LINES: usize = 190_000;
/// (busybox's `seq` has no `-f`: `-w` pads to six digits, sed adds the seventh and the rest.)
const BIG: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sh, -c, 'seq -w 0 189999 | sed \"s/.*/line-0&-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/\"; echo done; sleep 100000']}\n";

fn status_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

fn inotify_instances(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fds")
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify")
        })
        .count()
}

/// Enough descriptors for the cap's worth of followers, on both ends (the agent inherits them).
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = 4 * MAX_LOG_FOLLOWERS as u64 + 1024;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want)).expect("raise RLIMIT_NOFILE");
    }
}

/// One raw log request, its response read as it comes.
struct Follower {
    sock: TcpStream,
    status: u16,
    body: Vec<u8>,
}

impl Follower {
    fn open(port: u16, path: &str) -> Follower {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let token = common::token_for(port).expect("the agent's admin token");
        write!(
            sock,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = sock.read(&mut byte).expect("response head");
            assert!(n == 1, "connection closed in the response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        sock.set_nonblocking(true).unwrap();
        Follower {
            sock,
            status,
            body: Vec::new(),
        }
    }

    /// Reads what has arrived.
    fn poll(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.body.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("follower read: {e}"),
            }
        }
    }

    /// The highest `tick-N` received.
    fn last_tick(&self) -> Option<u64> {
        String::from_utf8_lossy(&self.body)
            .split("tick-")
            .skip(1)
            .filter_map(|s| {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
    }
}

fn pod_name(a: &Agent, prefix: &str) -> String {
    a.pod(prefix).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn followers_cost_no_thread_nor_inotify_instance_and_are_capped() {
    raise_nofile();
    let a = Agent::start(&[]);
    a.write_manifest("ticker.yaml", TICKER);
    a.wait_running("ticker", "main", T);
    let pod = pod_name(&a, "ticker");
    let pid = a.pid().unwrap();
    let path = format!("/containerLogs/default/{pod}/main?follow=true");
    // Blocking threads of the start go idle (tokio keeps them 10 s); the baseline is taken
    // with the agent as it idles with a pod.
    std::thread::sleep(Duration::from_secs(11));
    let (threads0, inotify0) = (status_field(pid, "Threads"), inotify_instances(pid));

    let mut followers: Vec<Follower> = (0..FOLLOWERS)
        .map(|_| Follower::open(a.port, &path))
        .collect();
    assert!(followers.iter().all(|f| f.status == 200));
    // Everything they had to catch up with was read: only following is left.
    let deadline = Instant::now() + T;
    while followers.iter_mut().any(|f| {
        f.poll();
        f.last_tick().is_none()
    }) {
        assert!(Instant::now() < deadline, "a follower got no line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (threads1, inotify1) = (status_field(pid, "Threads"), inotify_instances(pid));
    eprintln!(
        "{FOLLOWERS} followers: threads {threads0} -> {threads1}, inotify instances {inotify0} -> {inotify1}"
    );
    assert!(
        inotify1 <= inotify0 + 1,
        "inotify instances {inotify0} -> {inotify1} with {FOLLOWERS} followers"
    );
    // Not a thread per follower: the catch-up reads run on tokio's blocking pool, which grows
    // with how many overlap (17 seen once on a loaded machine); 300 followers stay far above.
    assert!(
        threads1 <= threads0 + 32,
        "threads {threads0} -> {threads1} with {FOLLOWERS} followers"
    );

    // A pod still starts while they follow (container starts share the blocking pool).
    let started = Instant::now();
    a.write_manifest(
        "late.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: late}\nspec:\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sleep, '100000']}\n",
    );
    a.wait_running("late", "main", T);
    eprintln!(
        "a pod started in {:?} beside {FOLLOWERS} followers",
        started.elapsed()
    );

    // Every follower receives new lines.
    let seen: Vec<u64> = followers.iter().map(|f| f.last_tick().unwrap()).collect();
    let deadline = Instant::now() + T;
    loop {
        followers.iter_mut().for_each(Follower::poll);
        let behind = followers
            .iter()
            .zip(&seen)
            .filter(|(f, s)| f.last_tick().unwrap() < **s + 3)
            .count();
        if behind == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{behind} followers got no new lines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The cap: followers beyond it get 429 with a Status. It is MAX_LOG_FOLLOWERS, or half the
    // API's connection cap under a low open-file limit: the 429 says which.
    let (code, body) = loop {
        assert!(
            followers.len() <= MAX_LOG_FOLLOWERS,
            "{} followers and no 429",
            followers.len()
        );
        let f = Follower::open(a.port, &path);
        if f.status != 200 {
            break http_get(a.port, &path).expect("the request past the cap");
        }
        followers.push(f);
    };
    assert_eq!(code, 429, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    let cap = followers.len();
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("at most {cap} at once"))),
        "{status}"
    );
    // Not following is not capped.
    let (code, _) = http_get(
        a.port,
        &format!("/containerLogs/default/{pod}/main?tailLines=1"),
    )
    .expect("a plain log request");
    assert_eq!(code, 200);
    eprintln!(
        "{cap} followers: threads {}, inotify instances {}, VmRSS {} kB",
        status_field(pid, "Threads"),
        inotify_instances(pid),
        status_field(pid, "VmRSS")
    );
    // A follower that leaves gives its place back.
    followers.truncate(cap - 10);
    a.wait_for("a place among the followers", T, |a| {
        let f = Follower::open(a.port, &path);
        (f.status == 200).then_some(())
    });
    drop(followers);
}

#[test]
fn tail_of_a_big_log_is_read_backwards_in_bounded_memory() {
    let a = Agent::start(&["--container-log-max-size=100Mi"]);
    a.write_manifest("big.yaml", BIG);
    a.wait_running("big", "main", T);
    let pod = pod_name(&a, "big");
    let pid = a.pid().unwrap();
    let base = format!("/containerLogs/default/{pod}/main");
    a.wait_for("the whole log written", T, |a| {
        let (_, last) = http_get(a.port, &format!("{base}?tailLines=1"))?;
        (last == "done\n").then_some(())
    });
    let log = std::fs::read_dir(&a.logs_dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("_big-"))
        .unwrap()
        .path()
        .join("main/0.log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 18_000_000, "the log is only {size} bytes");

    // Peak RSS from here on (writing 5 to clear_refs resets VmHWM).
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let rss0 = status_field(pid, "VmRSS");
    let (code, body) = http_get(a.port, &format!("{base}?tailLines=100000000")).unwrap();
    let peak = status_field(pid, "VmHWM");
    eprintln!(
        "tailLines=100000000 on a {size}-byte log: VmRSS {rss0} kB, peak {peak} kB (+{} kB)",
        peak - rss0
    );
    assert_eq!(code, 200);
    let mut want = String::with_capacity(body.len());
    for i in 0..BIG_LINES {
        want.push_str(&format!("line-{i:07}-{}\n", "x".repeat(64)));
    }
    want.push_str("done\n");
    assert!(
        body == want,
        "the whole log, in order ({} bytes, want {})",
        body.len(),
        want.len()
    );
    assert!(
        peak - rss0 < 16 * 1024,
        "RSS grew by {} kB for one tail request",
        peak - rss0
    );
    // A short tail is the last lines exactly.
    let (_, three) = http_get(a.port, &format!("{base}?tailLines=3")).unwrap();
    assert_eq!(
        three,
        format!(
            "line-{:07}-{x}\nline-{:07}-{x}\ndone\n",
            BIG_LINES - 2,
            BIG_LINES - 1,
            x = "x".repeat(64)
        )
    );
}

#[test]
fn compressed_rotated_logs_keep_the_live_logs_mode() {
    let a = Agent::start(&[
        "--container-log-max-size=4Ki",
        "--container-log-max-files=3",
    ]);
    a.write_manifest("ticker.yaml", &TICKER.replace("sleep 0.2", "sleep 0.002"));
    a.wait_running("ticker", "main", T);
    let gz = a.wait_for("a compressed rotated log", T, |a| {
        let pod = std::fs::read_dir(&a.logs_dir)
            .ok()?
            .flatten()
            .next()?
            .path();
        std::fs::read_dir(pod.join("main"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".gz"))
    });
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let live = gz.parent().unwrap().join("0.log");
    assert_eq!(mode(&live), 0o640);
    assert_eq!(mode(&gz), 0o640, "{}", gz.display());
}
