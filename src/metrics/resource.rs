//! `/metrics/resource`: the summary's CPU and memory as Prometheus series, the names and labels
//! metrics-server scrapes. Mirrors `pkg/kubelet/metrics/collectors/resource_metrics.go`: the same
//! families, the same help texts, a millisecond timestamp on each usage sample (the time the
//! figure was read, not the scrape), none on `container_start_time_seconds` and
//! `resource_scrape_error`. A series whose figure is unknown is left out, as there.

use std::collections::BTreeMap;

use super::text;
use crate::stats::types::{CpuStats, MemoryStats, Summary, SwapStats, Time};

/// A sample's labels, in the kubelet's order.
type Labels = Vec<(&'static str, String)>;

/// One family: help, type, samples `(labels, value, timestamp)`.
struct Family {
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Labels, f64, Option<i64>)>,
}

fn cpu_seconds(c: Option<&CpuStats>) -> Option<(f64, i64)> {
    let c = c?;
    Some((
        c.usage_core_nano_seconds? as f64 / 1e9,
        c.time.unix_millis(),
    ))
}

fn working_set(m: Option<&MemoryStats>) -> Option<(f64, i64)> {
    let m = m?;
    Some((m.working_set_bytes? as f64, m.time.unix_millis()))
}

fn swap(s: Option<&SwapStats>) -> Option<(f64, i64)> {
    let s = s?;
    Some((s.swap_usage_bytes? as f64, s.time.unix_millis()))
}

/// The text body for `summary` (`None`: the summary could not be made, only the error gauge).
pub fn render(summary: Option<&Summary>) -> String {
    let mut families: BTreeMap<&'static str, Family> = BTreeMap::new();
    let mut add = |name: &'static str,
                   help: &'static str,
                   kind: &'static str,
                   labels: Labels,
                   value: Option<(f64, Option<i64>)>| {
        let f = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            samples: Vec::new(),
        });
        if let Some((v, ts)) = value {
            f.samples.push((labels, v, ts));
        }
    };
    const NODE_CPU: &str = "[STABLE] Cumulative cpu time consumed by the node in core-seconds";
    const NODE_MEM: &str = "[STABLE] Current working set of the node in bytes";
    const NODE_SWAP: &str =
        "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems";
    const C_CPU: &str = "[STABLE] Cumulative cpu time consumed by the container in core-seconds";
    const C_MEM: &str = "[STABLE] Current working set of the container in bytes";
    const C_SWAP: &str = "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems";
    const C_START: &str = "[STABLE] Start time of the container since unix epoch in seconds";
    const P_CPU: &str = "[STABLE] Cumulative cpu time consumed by the pod in core-seconds";
    const P_MEM: &str = "[STABLE] Current working set of the pod in bytes";
    const P_SWAP: &str = "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems";
    const ERR: &str =
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise";
    let ts = |v: Option<(f64, i64)>| v.map(|(v, t)| (v, Some(t)));
    // Every family is described even when it has no series, as the kubelet's collector does.
    add(
        "node_cpu_usage_seconds_total",
        NODE_CPU,
        "counter",
        vec![],
        None,
    );
    add(
        "node_memory_working_set_bytes",
        NODE_MEM,
        "gauge",
        vec![],
        None,
    );
    add("node_swap_usage_bytes", NODE_SWAP, "gauge", vec![], None);
    add(
        "container_cpu_usage_seconds_total",
        C_CPU,
        "counter",
        vec![],
        None,
    );
    add(
        "container_memory_working_set_bytes",
        C_MEM,
        "gauge",
        vec![],
        None,
    );
    add("container_swap_usage_bytes", C_SWAP, "gauge", vec![], None);
    add(
        "container_start_time_seconds",
        C_START,
        "gauge",
        vec![],
        None,
    );
    add(
        "pod_cpu_usage_seconds_total",
        P_CPU,
        "counter",
        vec![],
        None,
    );
    add("pod_memory_working_set_bytes", P_MEM, "gauge", vec![], None);
    add("pod_swap_usage_bytes", P_SWAP, "gauge", vec![], None);
    add(
        "resource_scrape_error",
        ERR,
        "gauge",
        vec![],
        Some((if summary.is_some() { 0.0 } else { 1.0 }, None)),
    );
    if let Some(s) = summary {
        let n = &s.node;
        add(
            "node_cpu_usage_seconds_total",
            NODE_CPU,
            "counter",
            vec![],
            ts(cpu_seconds(n.cpu.as_ref())),
        );
        add(
            "node_memory_working_set_bytes",
            NODE_MEM,
            "gauge",
            vec![],
            ts(working_set(n.memory.as_ref())),
        );
        // The kubelet stamps the node's swap sample with the memory reading's time.
        let swap_ts = n
            .memory
            .as_ref()
            .map_or_else(Time::now, |m| m.time)
            .unix_millis();
        add(
            "node_swap_usage_bytes",
            NODE_SWAP,
            "gauge",
            vec![],
            swap(n.swap.as_ref()).map(|(v, _)| (v, Some(swap_ts))),
        );
        for p in &s.pods {
            let pod = p.pod_ref.name.clone();
            let ns = p.pod_ref.namespace.clone();
            for c in &p.containers {
                let l = vec![
                    ("container", c.name.clone()),
                    ("pod", pod.clone()),
                    ("namespace", ns.clone()),
                ];
                let start = c.start_time.0.as_nanosecond() as f64 / 1e9;
                add(
                    "container_start_time_seconds",
                    C_START,
                    "gauge",
                    l.clone(),
                    (start > 0.0).then_some((start, None)),
                );
                add(
                    "container_cpu_usage_seconds_total",
                    C_CPU,
                    "counter",
                    l.clone(),
                    ts(cpu_seconds(c.cpu.as_ref())),
                );
                add(
                    "container_memory_working_set_bytes",
                    C_MEM,
                    "gauge",
                    l.clone(),
                    ts(working_set(c.memory.as_ref())),
                );
                add(
                    "container_swap_usage_bytes",
                    C_SWAP,
                    "gauge",
                    l,
                    ts(swap(c.swap.as_ref())),
                );
            }
            let l = vec![("pod", pod), ("namespace", ns)];
            add(
                "pod_cpu_usage_seconds_total",
                P_CPU,
                "counter",
                l.clone(),
                ts(cpu_seconds(p.cpu.as_ref())),
            );
            add(
                "pod_memory_working_set_bytes",
                P_MEM,
                "gauge",
                l.clone(),
                ts(working_set(p.memory.as_ref())),
            );
            add(
                "pod_swap_usage_bytes",
                P_SWAP,
                "gauge",
                l,
                ts(swap(p.swap.as_ref())),
            );
        }
    }
    let mut out = String::new();
    for (name, f) in &families {
        text::header(&mut out, name, f.help, f.kind);
        for (labels, v, ts) in &f.samples {
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            text::sample(&mut out, name, &l, *v, *ts);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::types::*;

    #[test]
    fn series_names_labels_and_timestamps() {
        let t = Time(jiff::Timestamp::from_millisecond(1_700_000_000_123).unwrap());
        let cpu = Some(CpuStats {
            time: t,
            usage_nano_cores: None,
            usage_core_nano_seconds: Some(2_500_000_000),
        });
        let memory = Some(MemoryStats {
            time: t,
            working_set_bytes: Some(4096),
            ..Default::default()
        });
        let s = Summary {
            node: NodeStats {
                cpu: cpu.clone(),
                memory: memory.clone(),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                containers: vec![ContainerStats {
                    name: "app".into(),
                    start_time: Time(jiff::Timestamp::from_second(1_600_000_000).unwrap()),
                    cpu: cpu.clone(),
                    memory: memory.clone(),
                    ..Default::default()
                }],
                cpu,
                memory,
                ..Default::default()
            }],
        };
        let text = render(Some(&s));
        for line in [
            "node_cpu_usage_seconds_total 2.5 1700000000123",
            "node_memory_working_set_bytes 4096 1700000000123",
            "container_cpu_usage_seconds_total{container=\"app\",pod=\"web\",namespace=\"default\"} 2.5 1700000000123",
            "container_memory_working_set_bytes{container=\"app\",pod=\"web\",namespace=\"default\"} 4096 1700000000123",
            "container_start_time_seconds{container=\"app\",pod=\"web\",namespace=\"default\"} 1600000000",
            "pod_cpu_usage_seconds_total{pod=\"web\",namespace=\"default\"} 2.5 1700000000123",
            "pod_memory_working_set_bytes{pod=\"web\",namespace=\"default\"} 4096 1700000000123",
            "resource_scrape_error 0",
            "# TYPE container_swap_usage_bytes gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(render(None).lines().any(|l| l == "resource_scrape_error 1"));
    }
}
