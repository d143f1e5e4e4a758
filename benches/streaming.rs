//! The exec round trip of issue 5's benchmarks: `exec -- true` through a WebSocket (v5) client
//! against the kubelet's `/exec` path — kubelet handler, token, proxy, streaming server, a
//! process in the container's cgroup, its exit status and the Close — beside a bare fork/exec
//! of the same `true` measured in the same run. Prints medians and 95th percentiles; never
//! fails on a figure (shared, noisy machines: the numbers are for people).
//!
//! `cargo bench --bench streaming` (as root); `MKL_BENCH_QUICK=1` for fewer rounds.
//! The agent runs as the tests run it (`tests/common`): its own test cgroup, temporary
//! directories, a free port; everything is removed when the benchmark ends.
//!
//! Log throughput and `logs -f` latency, the other half of issue 5's benchmarks, are
//! `benches/logs.rs`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Agent;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Rounds per measurement (after a few warm-up rounds). Enough for a stable median on a
/// shared machine; QUICK trades precision for a run of a few seconds.
fn rounds() -> usize {
    if std::env::var_os("MKL_BENCH_QUICK").is_some() {
        50
    } else {
        300
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    println!(
        "{what:<44} median {:>8.3} ms   p95 {:>8.3} ms   ({} rounds)",
        median.as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples.len()
    );
    median
}

/// One `exec -- true` over WebSocket v5: connect, read to the Close, check the status.
async fn exec_true(url: &str) -> Duration {
    let start = Instant::now();
    let mut req = common::with_token(url.into_client_request().expect("request"));
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("exec upgrade");
    let mut status = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.expect("message") {
            Message::Binary(b) if b.first() == Some(&3) => status.extend_from_slice(&b[1..]),
            Message::Close(_) => break,
            _ => {}
        }
    }
    let elapsed = start.elapsed();
    let _ = ws.close(None).await;
    let _ = ws.flush().await;
    assert!(
        String::from_utf8_lossy(&status).contains("Success"),
        "exec failed: {}",
        String::from_utf8_lossy(&status)
    );
    elapsed
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the streaming benchmark needs root (it runs the agent and its cgroups)");
        return;
    }
    let n = rounds();
    let a = Agent::start(&[]);
    a.write_manifest(
        "bench.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bench}\nspec:\n  containers:\n  - {name: main, image: localhost/busybox:test, command: [sleep, '3600']}\n",
    );
    a.wait_running("bench", "main", Duration::from_secs(30));
    let pod = a.pod("bench").expect("pod")["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let url = format!(
        "ws://127.0.0.1:{}/exec/default/{pod}/main?command=true&stdout=1",
        a.port
    );

    // Baseline: fork/exec/wait of the same program, from this process.
    for _ in 0..5 {
        let _ = Command::new("true").status();
    }
    let bare: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new("true").status().expect("spawn true");
            assert!(st.success());
            t.elapsed()
        })
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let exec: Vec<Duration> = rt.block_on(async {
        for _ in 0..5 {
            exec_true(&url).await;
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(exec_true(&url).await);
        }
        v
    });

    println!("exec round trip (issue 5), {} rounds each", n);
    let b = report("bare fork/exec/wait of `true`", bare);
    let e = report("kubelet /exec `true` over WebSocket v5", exec);
    println!(
        "exec round trip / bare fork-exec: {:.1}x",
        e.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
}
