//! Parsers for the cgroup file formats: flat keyed (`memory.stat`, `memory.events`, `cpu.stat`,
//! v1 `memory.oom_control`, `pids.events`: `key value` per line), nested keyed (PSI files:
//! `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`) and single values (`max` or a number).

use std::collections::BTreeMap;

/// A malformed line, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        line: line + 1,
        reason: reason.into(),
    }
}

/// Parses a flat-keyed file of unsigned numbers; blank lines are skipped.
pub fn flat_keyed(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let value = words
            .next()
            .ok_or_else(|| err(i, format!("key {key:?} has no value")))?;
        if words.next().is_some() {
            return Err(err(i, format!("key {key:?} has more than one value")));
        }
        let value = value
            .parse()
            .map_err(|e| err(i, format!("key {key:?}: value {value:?}: {e}")))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// Parses a nested-keyed file: `name k=v k=v` per line, values kept as text.
pub fn nested_keyed(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let mut fields = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| err(i, format!("{name}: field {w:?} is not key=value")))?;
            fields.insert(k.to_string(), v.to_string());
        }
        out.insert(name.to_string(), fields);
    }
    Ok(out)
}

/// One PSI line: share of time stalled over 10/60/300 s (percent) and total stall time (µs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PsiLine {
    /// avg10, percent.
    pub avg10: f64,
    /// avg60, percent.
    pub avg60: f64,
    /// avg300, percent.
    pub avg300: f64,
    /// total stall time in microseconds.
    pub total_us: u64,
}

/// A PSI file (`memory.pressure`, `/proc/pressure/memory`): `some`, and `full` where the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Psi {
    /// Some task stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled (absent for cpu on old kernels).
    pub full: Option<PsiLine>,
}

/// Parses a PSI file.
pub fn psi(text: &str) -> Result<Psi, ParseError> {
    let nested = nested_keyed(text)?;
    let line = |name: &str| -> Result<Option<PsiLine>, ParseError> {
        let Some(f) = nested.get(name) else {
            return Ok(None);
        };
        let lineno = text
            .lines()
            .position(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or(0);
        let float = |k: &str| -> Result<f64, ParseError> {
            let v = f
                .get(k)
                .ok_or_else(|| err(lineno, format!("{name}: no {k}")))?;
            v.parse()
                .map_err(|e| err(lineno, format!("{name} {k}={v}: {e}")))
        };
        let total = f
            .get("total")
            .ok_or_else(|| err(lineno, format!("{name}: no total")))?;
        Ok(Some(PsiLine {
            avg10: float("avg10")?,
            avg60: float("avg60")?,
            avg300: float("avg300")?,
            total_us: total
                .parse()
                .map_err(|e| err(lineno, format!("{name} total={total}: {e}")))?,
        }))
    };
    let some = line("some")?.ok_or_else(|| err(0, "no \"some\" line"))?;
    Ok(Psi {
        some,
        full: line("full")?,
    })
}

/// Parses a single-value limit file: `max` → `None`, a number → `Some`.
pub fn max_or_u64(text: &str) -> Result<Option<u64>, ParseError> {
    match text.trim() {
        "max" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|e| err(0, format!("{v:?} is neither \"max\" nor a number: {e}"))),
    }
}

/// `major.minor` of a kernel release string such as `6.18.44-fc-v657`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
