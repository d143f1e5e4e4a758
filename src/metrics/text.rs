//! A small writer for the Prometheus text exposition format (0.0.4), for the families the
//! `prometheus-client` registry cannot express: samples with timestamps (`/metrics/resource`),
//! values read at scrape time (`process_*`), and kubelet counters whose name has no `_total`
//! (`kubelet_evictions`; the crate always appends it).

use std::fmt::Write;

/// `# HELP` and `# TYPE` of one family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape(help, false));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample: `name{k="v",...} value [timestamp_ms]`.
pub fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
    ts_ms: Option<i64>,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v, true));
        }
        out.push('}');
    }
    let _ = write!(out, " {}", number(value));
    if let Some(ts) = ts_ms {
        let _ = write!(out, " {ts}");
    }
    out.push('\n');
}

/// A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` mostly writes it: integers without a
/// fraction, `+Inf`/`-Inf`/`NaN`, otherwise the shortest round-trip form.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e21 || (v != 0.0 && v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Backslash and newline (and `"` in label values) escaped, as the format requires.
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_samples() {
        let mut s = String::new();
        header(&mut s, "x_total", "Some help\nmore", "counter");
        sample(
            &mut s,
            "x_total",
            &[("pod", "a\"b"), ("namespace", "default")],
            1.5,
            Some(1700),
        );
        sample(&mut s, "y", &[], 3.0, None);
        assert_eq!(
            s,
            "# HELP x_total Some help\\nmore\n# TYPE x_total counter\n\
             x_total{pod=\"a\\\"b\",namespace=\"default\"} 1.5 1700\ny 3\n"
        );
        assert_eq!(number(1.7e9), "1700000000");
        assert_eq!(number(0.000_01), "1e-5");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
