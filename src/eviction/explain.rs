//! `minikubelet explain-eviction`: fetches `/debug/eviction` from the running agent on
//! 127.0.0.1 (with the admin token of its kubeconfig, which `cli` reads) and prints it as tables a person can read: each signal with its observed value,
//! capacity and thresholds (met, since when, acted on), the node conditions, the current
//! ranking of pods, and the last decisions with their reasons, plus where the real kubelet
//! would decide differently. No kubelet counterpart (the kubelet only logs its decisions).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// Errors fetching the report.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The agent could not be reached.
    #[error("connect to 127.0.0.1:{port}: {source} (is the agent running with --port={port}?)")]
    Connect {
        /// The port.
        port: u16,
        /// The error.
        source: std::io::Error,
    },
    /// The answer was not an HTTP 200 with JSON.
    #[error("GET /debug/eviction on 127.0.0.1:{port}: {reason}")]
    Response {
        /// The port.
        port: u16,
        /// What was wrong.
        reason: String,
    },
}

/// How long to wait for the agent: it answers from memory, so a few seconds means it is stuck.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// GET `/debug/eviction` from the agent on 127.0.0.1:`port` with the bearer `token`.
pub fn fetch(port: u16, token: &str) -> Result<Value, ExplainError> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|source| ExplainError::Connect { port, source })?;
    let io = |e: std::io::Error| ExplainError::Response {
        port,
        reason: e.to_string(),
    };
    s.set_read_timeout(Some(FETCH_TIMEOUT)).map_err(io)?;
    write!(
        s,
        "GET /debug/eviction HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(io)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(ExplainError::Response {
        port,
        reason: "no HTTP header".into(),
    })?;
    if head.split_whitespace().nth(1) != Some("200") {
        return Err(ExplainError::Response {
            port,
            reason: head.lines().next().unwrap_or_default().to_string(),
        });
    }
    serde_json::from_str(body).map_err(|e| ExplainError::Response {
        port,
        reason: format!("not JSON: {e}"),
    })
}

fn human_bytes(v: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut i = 0;
    while x.abs() >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", UNITS[i])
    }
}

fn amount(resource: &str, v: Option<i64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if resource == "memory" || resource == "ephemeral-storage" => human_bytes(v),
        Some(v) => v.to_string(),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lay out rows as left-aligned columns.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    );
    for r in rows {
        let _ = writeln!(out, "{}", line(r.clone()));
    }
}

/// Render a `/debug/eviction` report.
pub fn render(r: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Eviction manager (observed {}; cycle every {}, signals polled every {}, pressure transition period {})\n",
        s(&r["observedAt"]),
        s(&r["monitoringPeriod"]),
        s(&r["fastPoll"]),
        s(&r["pressureTransitionPeriod"])
    );
    let mut rows = Vec::new();
    for sig in r["signals"].as_array().into_iter().flatten() {
        let res = sig["resource"].as_str().unwrap_or("");
        let avail = amount(res, sig["available"].as_i64());
        let cap = amount(res, sig["capacity"].as_i64());
        let ths = sig["thresholds"].as_array().cloned().unwrap_or_default();
        if ths.is_empty() {
            rows.push(vec![
                s(&sig["signal"]),
                avail.clone(),
                cap.clone(),
                "(none)".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for t in ths {
            let kind = if t["hard"] == true {
                "hard".to_string()
            } else {
                format!("soft, grace {}", s(&t["gracePeriod"]))
            };
            let mut th = format!(
                "< {} = {} ({kind})",
                s(&t["value"]),
                amount(res, t["quantity"].as_i64())
            );
            if !t["minReclaim"].is_null() {
                th += &format!(", min reclaim {}", s(&t["minReclaim"]));
            }
            let met = match (t["met"] == true, t["actedOn"] == true) {
                (true, true) => "MET, acting".to_string(),
                (true, false) => "met, in grace".to_string(),
                _ => "no".to_string(),
            };
            rows.push(vec![
                s(&sig["signal"]),
                avail.clone(),
                cap.clone(),
                th,
                met,
                s(&t["metSince"]),
            ]);
        }
    }
    let _ = writeln!(out, "SIGNALS");
    table(
        &mut out,
        &[
            "SIGNAL",
            "AVAILABLE",
            "CAPACITY",
            "THRESHOLD",
            "MET",
            "SINCE",
        ],
        &rows,
    );
    let _ = writeln!(out, "\nNODE CONDITIONS");
    let rows: Vec<Vec<String>> = r["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                s(&c["type"]),
                s(&c["status"]),
                s(&c["reason"]),
                s(&c["lastTransitionTime"]),
            ]
        })
        .collect();
    table(&mut out, &["TYPE", "STATUS", "REASON", "SINCE"], &rows);
    let rank = &r["ranking"];
    let res = rank["resource"].as_str().unwrap_or("memory");
    let _ = writeln!(out, "\nRANKING for {res} (first is evicted first)");
    let rows: Vec<Vec<String>> = rank["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| {
            vec![
                (i + 1).to_string(),
                s(&p["pod"]),
                s(&p["qosClass"]),
                s(&p["priority"]),
                amount(res, p["usage"].as_i64()),
                amount(res, p["request"].as_i64()),
                if p["exceedsRequest"] == true {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                if p["critical"] == true {
                    "never (critical)"
                } else {
                    "yes (static pod: the kubelet would not)"
                }
                .into(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "#",
            "POD",
            "QOS",
            "PRIORITY",
            "USAGE",
            "REQUEST",
            "OVER",
            "EVICTABLE",
        ],
        &rows,
    );
    let _ = writeln!(out, "\nLAST DECISIONS");
    let decisions = r["decisions"].as_array().cloned().unwrap_or_default();
    if decisions.is_empty() {
        let _ = writeln!(out, "(none yet)");
    }
    for d in decisions {
        let _ = writeln!(
            out,
            "{}  {} {} on {}{}{}\n    {}",
            s(&d["time"]),
            s(&d["action"]),
            s(&d["pod"]),
            s(&d["signal"]),
            d["gracePeriodSeconds"]
                .as_i64()
                .map(|g| format!(", grace {g}s"))
                .unwrap_or_default(),
            d["reactionMs"]
                .as_u64()
                .map(|m| format!(", {m} ms after the crossing was seen"))
                .unwrap_or_default(),
            s(&d["message"]),
        );
        if let Some(k) = d["kubeletWould"].as_str() {
            let _ = writeln!(out, "    the kubelet would {k}");
        }
    }
    let _ = writeln!(out, "\nWHERE THE KUBELET DECIDES DIFFERENTLY");
    for d in r["deviations"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "- {}", s(d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_report() {
        let r = serde_json::json!({
            "observedAt": "2025-01-01T00:00:00Z",
            "monitoringPeriod": "10s", "fastPoll": "100ms", "pressureTransitionPeriod": "5s",
            "signals": [{
                "signal": "allocatableMemory.available", "resource": "memory",
                "available": 300 << 20, "capacity": 640 << 20,
                "thresholds": [{"value": "400Mi", "quantity": 400 << 20, "hard": true,
                    "gracePeriod": "0ns", "minReclaim": null, "met": true,
                    "metSince": "2025-01-01T00:00:00Z", "actedOn": true}]
            }, {"signal": "pid.available", "resource": "pids", "available": 29000,
                "capacity": 32768, "thresholds": []}],
            "conditions": [{"type": "MemoryPressure", "status": "True",
                "reason": "KubeletHasInsufficientMemory", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
            "ranking": {"resource": "memory", "pods": [{"pod": "default/hog-n", "qosClass": "BestEffort",
                "priority": 0, "usage": 310 << 20, "request": 0, "exceedsRequest": true, "critical": false}]},
            "decisions": [{"time": "t", "action": "evicted", "pod": "default/hog-n",
                "signal": "allocatableMemory.available", "gracePeriodSeconds": 1, "reactionMs": 12,
                "message": "The node was low on resource: memory. ",
                "kubeletWould": "not evict this pod: the kubelet never evicts static pods"}],
            "deviations": ["static pods are evicted"]
        });
        let text = render(&r);
        for want in [
            "allocatableMemory.available  300.0 MiB  640.0 MiB  < 400Mi = 400.0 MiB (hard)  MET, acting",
            "pid.available",
            "MemoryPressure  True",
            "1  default/hog-n  BestEffort  0         310.0 MiB  0 B",
            "evicted default/hog-n on allocatableMemory.available, grace 1s, 12 ms after",
            "the kubelet would not evict this pod",
            "- static pods are evicted",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn fetch_reports_an_unreachable_agent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let err = fetch(port, "t").unwrap_err().to_string();
        assert!(err.contains("is the agent running"), "{err}");
    }
}
