//! The kubelet's stats and metrics endpoints against the real agent with real pods:
//! `/stats/summary` (the Summary API), `/metrics/resource` (what metrics-server scrapes),
//! `/metrics` (the agent's own kubelet-named metrics) and `/metrics/probes` (the prober's),
//! directly and through the API server's node proxy path as `kubectl get --raw` sends it.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, container_status, http_get};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// Spins on a fifth of a core (its CFS quota) and writes a few log lines.
const BUSY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: busy, namespace: default}
spec:
  containers:
  - name: spin
    image: localhost/busybox:test
    command: ["sh", "-c", "echo spinning; while :; do :; done"]
    resources:
      limits: {cpu: 200m, memory: 64Mi}
"#;

/// Holds ~16 MiB in a shell variable; has an emptyDir volume. busybox sh would exec a last
/// `sleep` in its own place (freeing the variable): the shell waits for it instead. Deleted by
/// the test: the shell is PID 1 of its PID namespace, so it stops on TERM by a handler.
const HOLDER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: holder, namespace: default}
spec:
  containers:
  - name: hold
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; a=$(head -c 16000000 /dev/zero | tr '\\0' x); echo holding; sleep 3600 & wait"]
  volumes:
  - name: scratch
    emptyDir: {}
"#;

/// One Prometheus text sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp: Option<i64>,
}

/// A strict-enough parser of the text exposition format: every non-comment line must be
/// `name{labels} value [timestamp]`, and every family must be declared by `# TYPE` first.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut typed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().expect("TYPE name").to_string();
            let kind = it.next().expect("TYPE kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.push(name);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name_labels, rest) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').unwrap_or_else(|| panic!("no }} in {line}"));
                (&line[..close + 1], line[close + 1..].trim())
            }
            None => line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no value in {line}")),
        };
        let (name, labels) = match name_labels.find('{') {
            Some(i) => (
                &name_labels[..i],
                parse_labels(&name_labels[i + 1..name_labels.len() - 1]),
            ),
            None => (name_labels, BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut fields = rest.split_whitespace();
        let value = match fields
            .next()
            .unwrap_or_else(|| panic!("no value in {line}"))
        {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value {v:?} in {line}")),
        };
        let timestamp = fields.next().map(|t| {
            t.parse()
                .unwrap_or_else(|_| panic!("timestamp {t:?} in {line}"))
        });
        assert!(fields.next().is_none(), "trailing fields in {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.iter().any(|t| t == f))
            .unwrap_or(name);
        assert!(typed.iter().any(|t| t == family), "{name} has no # TYPE");
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(
            chars.next(),
            Some('"'),
            "label {key} value must be quoted in {s}"
        );
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {s}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

fn get_ok(a: &Agent, path: &str) -> String {
    let (code, body) = http_get(a.port, path).unwrap_or_else(|| panic!("GET {path}"));
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn summary(a: &Agent, query: &str) -> Value {
    serde_json::from_str(&get_ok(a, &format!("/stats/summary{query}"))).expect("summary JSON")
}

fn pod_stats<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["pods"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["podRef"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{name}-")))
            })
        })
        .unwrap_or_else(|| panic!("pod {name} in summary {s:#}"))
}

fn container_stats<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("container {name} in {pod:#}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn fs_sane(fs: &Value, what: &str) {
    let cap = u(&fs["capacityBytes"]);
    let avail = u(&fs["availableBytes"]);
    assert!(cap > 0 && avail <= cap, "{what}: {fs}");
    assert!(fs["usedBytes"].is_u64(), "{what}: {fs}");
    assert!(fs["time"].is_string(), "{what}: {fs}");
}

#[test]
fn summary_resource_metrics_and_kubelet_metrics() {
    let a = Agent::start(&[]);
    a.write_manifest("busy.yaml", BUSY);
    a.write_manifest("holder.yaml", HOLDER);
    a.wait_running("busy", "spin", T);
    a.wait_running("holder", "hold", T);
    // The holder has filled its variable once it says so in its log.
    a.wait_for("holder holding", T, |a| {
        let p = a.pod("holder")?;
        let name = p["metadata"]["name"].as_str()?.to_string();
        let (_, body) = http_get(a.port, &format!("/containerLogs/default/{name}/hold"))?;
        body.contains("holding").then_some(())
    });

    // First scrape: cumulative figures, no rate yet for a cgroup seen for the first time.
    let s1 = summary(&a, "");
    std::thread::sleep(Duration::from_millis(1500));
    let s = summary(&a, "");

    let node = &s["node"];
    assert!(
        node["nodeName"].as_str().is_some_and(|n| !n.is_empty()),
        "{node}"
    );
    assert!(node["startTime"].is_string());
    assert!(u(&node["cpu"]["usageCoreNanoSeconds"]) > 0);
    assert!(
        node["cpu"]["usageNanoCores"].is_u64(),
        "rate on the 2nd scrape: {node}"
    );
    assert!(u(&node["memory"]["workingSetBytes"]) > 0);
    assert!(u(&node["memory"]["availableBytes"]) > 0);
    fs_sane(&node["fs"], "nodefs");
    fs_sane(&node["runtime"]["imageFs"], "imagefs");
    assert!(u(&node["rlimit"]["maxpid"]) >= u(&node["rlimit"]["curproc"]));
    let system: Vec<&str> = node["systemContainers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(system, ["pods", "kubelet"], "{node}");

    let busy = pod_stats(&s, "busy");
    let spin = container_stats(busy, "spin");
    assert_eq!(busy["podRef"]["namespace"], "default");
    assert!(
        busy["podRef"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(busy["startTime"].is_string() && spin["startTime"].is_string());
    // Spinning under a 200m quota: clearly above zero, at most about a fifth of a core
    // (generous bounds: this is not a timing assertion, only "the rate is a rate").
    let first_cpu =
        u(&container_stats(pod_stats(&s1, "busy"), "spin")["cpu"]["usageCoreNanoSeconds"]);
    assert!(
        u(&spin["cpu"]["usageCoreNanoSeconds"]) > first_cpu,
        "{spin}"
    );
    let nano_cores = u(&spin["cpu"]["usageNanoCores"]);
    assert!(
        nano_cores > 10_000_000 && nano_cores < 600_000_000,
        "{spin}"
    );
    assert!(u(&busy["cpu"]["usageNanoCores"]) >= 10_000_000, "{busy}");
    assert!(u(&spin["memory"]["workingSetBytes"]) > 0);
    // A limit: available = limit − working set.
    assert_eq!(
        u(&spin["memory"]["availableBytes"]) + u(&spin["memory"]["workingSetBytes"]),
        64 << 20,
        "{spin}"
    );
    // The container's writable layer (its overlay's upper dir) is its `rootfs`, on the node's
    // filesystem: at least the upper dir itself, well under a megabyte for a container that
    // writes nothing.
    fs_sane(&spin["rootfs"], "rootfs");
    assert!(u(&spin["rootfs"]["inodesUsed"]) >= 1, "{spin}");
    assert!(u(&spin["rootfs"]["usedBytes"]) < 1 << 20, "{spin}");
    fs_sane(&spin["logs"], "logs");
    assert!(
        u(&spin["logs"]["usedBytes"]) > 0,
        "the container logged a line: {spin}"
    );
    fs_sane(&busy["ephemeral-storage"], "ephemeral-storage");
    assert!(u(&busy["process_stats"]["process_count"]) >= 1, "{busy}");

    let holder = pod_stats(&s, "holder");
    let hold = container_stats(holder, "hold");
    assert!(u(&hold["memory"]["workingSetBytes"]) > 15_000_000, "{hold}");
    assert!(u(&hold["memory"]["rssBytes"]) > 15_000_000, "{hold}");
    assert!(
        hold["memory"]["availableBytes"].is_null(),
        "no limit, no availableBytes: {hold}"
    );
    assert!(u(&holder["memory"]["workingSetBytes"]) >= u(&hold["memory"]["workingSetBytes"]));
    // Its emptyDir volume, as `volume[]`.
    assert_eq!(holder["volume"][0]["name"], "scratch", "{holder}");
    fs_sane(&holder["volume"][0], "emptyDir");

    // only_cpu_and_memory: no filesystems, processes or rlimit.
    let s = summary(&a, "?only_cpu_and_memory=true");
    assert!(
        s["node"]["fs"].is_null() && s["node"]["rlimit"].is_null(),
        "{}",
        s["node"]
    );
    let busy = pod_stats(&s, "busy");
    assert!(busy["ephemeral-storage"].is_null() && busy["process_stats"].is_null());
    assert!(container_stats(busy, "spin")["cpu"]["usageCoreNanoSeconds"].is_u64());
    let (code, _) = http_get(a.port, "/stats/summary?only_cpu_and_memory=maybe").unwrap();
    assert_eq!(code, 500, "a bad bool is refused as the kubelet does");

    // /metrics/resource: parses, has the node, pods and containers, with timestamps.
    let text = get_ok(&a, "/metrics/resource");
    let samples = parse_prometheus(&text);
    let busy_name = pod_stats(&s, "busy")["podRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let holder_name = pod_stats(&s, "holder")["podRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let node_cpu = find(&samples, "node_cpu_usage_seconds_total", &[]).expect("node cpu");
    assert!(node_cpu.value > 0.0 && node_cpu.timestamp.is_some());
    assert!(find(&samples, "node_memory_working_set_bytes", &[]).is_some_and(|s| s.value > 0.0));
    for (pod, c) in [(&busy_name, "spin"), (&holder_name, "hold")] {
        let l = [
            ("container", c),
            ("pod", pod.as_str()),
            ("namespace", "default"),
        ];
        let cpu = find(&samples, "container_cpu_usage_seconds_total", &l).expect("container cpu");
        assert!(
            cpu.timestamp.is_some_and(|t| t > 1_600_000_000_000),
            "{cpu:?}"
        );
        assert!(
            find(&samples, "container_memory_working_set_bytes", &l).is_some_and(|s| s.value > 0.0)
        );
        let start = find(&samples, "container_start_time_seconds", &l).expect("start time");
        assert!(
            start.value > 1_600_000_000.0 && start.timestamp.is_none(),
            "{start:?}"
        );
        let pl = [("pod", pod.as_str()), ("namespace", "default")];
        assert!(find(&samples, "pod_cpu_usage_seconds_total", &pl).is_some());
        assert!(find(&samples, "pod_memory_working_set_bytes", &pl).is_some());
    }
    assert_eq!(
        find(&samples, "resource_scrape_error", &[]).map(|s| s.value),
        Some(0.0)
    );

    // /metrics: the agent's own, kubelet-named.
    let samples = parse_prometheus(&get_ok(&a, "/metrics"));
    let node_name = s["node"]["nodeName"].as_str().unwrap();
    assert!(
        find(&samples, "kubelet_node_name", &[("node", node_name)]).is_some_and(|s| s.value == 1.0)
    );
    assert_eq!(
        find(&samples, "kubelet_running_pods", &[]).map(|s| s.value),
        Some(2.0)
    );
    assert_eq!(
        find(
            &samples,
            "kubelet_running_containers",
            &[("container_state", "running")]
        )
        .map(|s| s.value),
        Some(2.0)
    );
    assert_eq!(
        find(
            &samples,
            "kubelet_started_containers_total",
            &[("container_type", "container")]
        )
        .map(|s| s.value),
        Some(2.0)
    );
    assert_eq!(
        find(&samples, "kubelet_started_pods_total", &[]).map(|s| s.value),
        Some(2.0)
    );
    assert_eq!(
        find(&samples, "kubelet_pod_start_duration_seconds_count", &[]).map(|s| s.value),
        Some(2.0)
    );
    assert!(
        find(
            &samples,
            "kubelet_pod_worker_duration_seconds_count",
            &[("operation_type", "create")]
        )
        .is_some_and(|s| s.value == 2.0)
    );
    assert!(text_has_family(
        &get_ok(&a, "/metrics"),
        "kubelet_evictions",
        "counter"
    ));
    assert!(
        find(
            &samples,
            "kubelet_http_requests_total",
            &[("path", "stats"), ("method", "GET")]
        )
        .is_some_and(|s| s.value >= 3.0)
    );
    assert!(find(&samples, "process_cpu_seconds_total", &[]).is_some());
    assert!(find(&samples, "process_resident_memory_bytes", &[]).is_some_and(|s| s.value > 0.0));

    // The API server's node proxy, as kubectl sends it. `get --raw` drops the path of the
    // kubeconfig's server URL, where the admin token is over plain HTTP: it is given here.
    let home = tempfile::tempdir().unwrap();
    let token = a.token();
    let raw = |path: &str| {
        let path = format!("/auth/{token}{path}");
        let out = Command::new(common::kubectl())
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("--kubeconfig={}", a.kubeconfig().display()))
            .args(["get", "--raw", &path])
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = raw(&format!("/api/v1/nodes/{node_name}/proxy/stats/summary"));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("summary through the proxy");
    assert_eq!(v["node"]["nodeName"], node_name);
    let (code, out, err) = raw(&format!("/api/v1/nodes/{node_name}/proxy/metrics/resource"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        parse_prometheus(&out)
            .iter()
            .any(|s| s.name == "pod_cpu_usage_seconds_total")
    );
    let (code, _, err) = raw("/api/v1/nodes/no-such-node/proxy/stats/summary");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // The official Python client's node proxy call (it sends the path as `stats%2Fsummary`).
    let script = r#"
import json, sys
from kubernetes import client
from kubernetes import config
cfg = client.Configuration()
config.load_kube_config(config_file=sys.argv[1], client_configuration=cfg)
api = client.CoreV1Api(client.ApiClient(cfg))
r = api.connect_get_node_proxy_with_path(sys.argv[2], "stats/summary", _preload_content=False)
s = json.loads(r.data)
print("node=%s pods=%d" % (s["node"]["nodeName"], len(s["pods"])))
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &a.kubeconfig().display().to_string(),
            node_name,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python client failed (is `kubernetes` installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("node={node_name} pods=2\n")
    );

    // A static pod whose manifest goes and comes back keeps its UID: a restarted pod.
    a.remove_manifest("holder.yaml");
    a.wait_for("holder gone", T, |a| {
        a.pod("holder").is_none().then_some(())
    });
    a.write_manifest("holder.yaml", HOLDER);
    a.wait_running("holder", "hold", T);
    let deadline = Instant::now() + T;
    loop {
        let samples = parse_prometheus(&get_ok(&a, "/metrics"));
        if find(
            &samples,
            "kubelet_restarted_pods_total",
            &[("static", "true")],
        )
        .is_some_and(|s| s.value == 1.0)
        {
            assert_eq!(
                find(
                    &samples,
                    "kubelet_started_containers_total",
                    &[("container_type", "container")]
                )
                .map(|s| s.value),
                Some(3.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "no restarted pod counted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn text_has_family(text: &str, name: &str, kind: &str) -> bool {
    text.lines().any(|l| l == format!("# TYPE {name} {kind}"))
}

#[test]
fn prometheus_parser_rejects_garbage() {
    let ok = parse_prometheus("# TYPE a gauge\na{x=\"1\\\"2\",y=\"z\"} 3 1700\n");
    assert_eq!(ok[0].labels["x"], "1\"2");
    assert_eq!(ok[0].timestamp, Some(1700));
    assert!(std::panic::catch_unwind(|| parse_prometheus("a 1\n")).is_err());
    assert!(std::panic::catch_unwind(|| parse_prometheus("# TYPE a gauge\na x\n")).is_err());
}

#[test]
fn an_eviction_is_counted_by_its_signal() {
    let a = Agent::start_in_tmpfs(
        "64m",
        &[
            "--eviction-hard=nodefs.available<40%",
            "--eviction-pressure-transition-period=5s",
            "--container-log-max-size=100Mi",
        ],
    );
    a.write_manifest("chatty.yaml", common::LOGGER);
    a.wait_running("chatty", "talk", T);
    // While it writes, the summary sees its logs grow on the node's filesystem.
    a.wait_for("chatty's logs in the summary", T, |a| {
        let s = summary(a, "");
        let pods = s["pods"].as_array()?;
        let p = pods.iter().find(|p| {
            p["podRef"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("chatty-"))
        })?;
        let logs = &p["containers"][0]["logs"];
        (logs["usedBytes"].as_u64()? > 1_000_000
            && p["ephemeral-storage"]["usedBytes"].as_u64()? >= logs["usedBytes"].as_u64()?
            && logs["capacityBytes"].as_u64()? <= 64 << 20)
            .then_some(())
    });
    a.wait_for("chatty evicted", T, |a| {
        a.pod("chatty")
            .filter(|p| p["status"]["reason"] == "Evicted")
    });
    let samples = parse_prometheus(&get_ok(&a, "/metrics"));
    assert_eq!(
        find(
            &samples,
            "kubelet_evictions",
            &[("eviction_signal", "nodefs.available")]
        )
        .map(|s| s.value),
        Some(1.0),
        "{samples:?}"
    );
}

/// A container whose startup and readiness probes pass, and one whose liveness probe fails
/// (twice in a row, so it is restarted), every second. Each shell is PID 1 of its PID namespace:
/// it stops on TERM by a handler, so neither the liveness kill nor the deletion waits out the
/// grace period.
const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: probed, namespace: default}
spec:
  containers:
  - name: ready
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    startupProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
  - name: sick
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 2
"#;

#[test]
fn probe_metrics_count_each_run_and_go_with_their_pod() {
    let a = Agent::start(&[]);
    a.write_manifest("probed.yaml", PROBED);
    a.wait_running("probed", "ready", T);
    let pod = a.pod("probed").expect("probed pod");
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let series = |container: &'static str, probe: &'static str, result: &'static str| {
        [
            ("container", container),
            ("namespace", "default"),
            ("pod", name.as_str()),
            ("pod_uid", uid.as_str()),
            ("probe_type", probe),
            ("result", result),
        ]
    };
    let value = |samples: &[Sample], labels: &[(&str, &str)]| {
        find(samples, "prober_probe_total", labels).map(|s| s.value)
    };

    // The sick container fails its liveness probe twice, is restarted, and its next instance
    // fails again: the counter goes on past the threshold across the restart, as the kubelet's
    // worker (one per container, not per instance) keeps it.
    let text = a.wait_for("liveness failures counted across a restart", T, |a| {
        let restarted = container_status(&a.pod("probed")?, "sick")?["restartCount"].as_i64()? >= 1;
        let text = get_ok(a, "/metrics/probes");
        let failed = value(
            &parse_prometheus(&text),
            &series("sick", "Liveness", "failed"),
        )?;
        (restarted && failed > 2.0).then_some(text)
    });
    let samples = parse_prometheus(&text);
    for (help, kind) in [
        (
            "# HELP prober_probe_total [ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.",
            "# TYPE prober_probe_total counter",
        ),
        (
            "# HELP prober_probe_duration_seconds [ALPHA] Duration in seconds for a probe response.",
            "# TYPE prober_probe_duration_seconds histogram",
        ),
    ] {
        assert!(text.lines().any(|l| l == help), "{help} in\n{text}");
        assert!(text.lines().any(|l| l == kind), "{kind} in\n{text}");
    }
    assert!(
        find(&samples, "process_start_time_seconds", &[]).is_some_and(|s| s.value > 1.6e9),
        "{text}"
    );
    // The startup probe passed once; its worker is done, its count stays.
    assert_eq!(
        value(&samples, &series("ready", "Startup", "successful")),
        Some(1.0),
        "{text}"
    );
    let ready_ok = value(&samples, &series("ready", "Readiness", "successful"))
        .unwrap_or_else(|| panic!("readiness successes in\n{text}"));
    assert!(ready_ok >= 1.0);
    // A result that never happened has no series.
    assert_eq!(
        value(&samples, &series("sick", "Liveness", "successful")),
        None,
        "{text}"
    );
    // Durations: observed for successes only, without pod_uid.
    let duration = |container: &'static str, probe: &'static str| {
        [
            ("container", container),
            ("namespace", "default"),
            ("pod", name.as_str()),
            ("probe_type", probe),
        ]
    };
    let ready_durations = find(
        &samples,
        "prober_probe_duration_seconds_count",
        &duration("ready", "Readiness"),
    )
    .unwrap_or_else(|| panic!("readiness durations in\n{text}"));
    assert!(ready_durations.value >= 1.0 && !ready_durations.labels.contains_key("pod_uid"));
    assert!(
        find(
            &samples,
            "prober_probe_duration_seconds_bucket",
            &[&duration("ready", "Readiness")[..], &[("le", "+Inf")]].concat()
        )
        .is_some()
    );
    assert!(
        find(
            &samples,
            "prober_probe_duration_seconds_count",
            &duration("sick", "Liveness")
        )
        .is_none(),
        "failed runs are not timed:\n{text}"
    );

    // The readiness counter grows with each run.
    a.wait_for("more readiness successes", T, |a| {
        let samples = parse_prometheus(&get_ok(a, "/metrics/probes"));
        (value(&samples, &series("ready", "Readiness", "successful"))? > ready_ok).then_some(())
    });

    // The same through the API server's node proxy path, and counted as its own HTTP path.
    let node = summary(&a, "")["node"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let proxied = get_ok(&a, &format!("/api/v1/nodes/{node}/proxy/metrics/probes"));
    assert!(
        value(
            &parse_prometheus(&proxied),
            &series("ready", "Readiness", "successful")
        )
        .is_some(),
        "{proxied}"
    );
    assert!(
        find(
            &parse_prometheus(&get_ok(&a, "/metrics")),
            "kubelet_http_requests_total",
            &[("path", "metrics/probes"), ("method", "GET")]
        )
        .is_some_and(|s| s.value >= 2.0)
    );

    // The pod is deleted: once it is gone, so are all its series.
    a.remove_manifest("probed.yaml");
    a.wait_for("probed gone", T, |a| {
        a.pod("probed").is_none().then_some(())
    });
    let text = a.wait_for("probe series of the deleted pod gone", T, |a| {
        let text = get_ok(a, "/metrics/probes");
        (!text.contains(&uid) && !text.contains(&name)).then_some(text)
    });
    // No pod probes any more: as from the kubelet, families without series are left out, the
    // process' start time stays.
    let samples = parse_prometheus(&text);
    assert!(
        samples.iter().all(|s| !s.name.starts_with("prober_")),
        "{text}"
    );
    assert!(
        find(&samples, "process_start_time_seconds", &[]).is_some(),
        "{text}"
    );
}
