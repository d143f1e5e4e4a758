//! Reading a container's CRI log back: the files in order, the records in them, and the
//! `kubectl logs` options (mirrors `pkg/kubelet/kuberuntime/logs/logs.go` `ReadLogs`).
//!
//! Deviation: the kubelet reads only the live file, so `--tail` and `--since` cannot reach past a
//! rotation (kubernetes #11046); this reader walks `N.log.<ts>.gz`, `N.log.<ts>`, then `N.log`.
//! Following (`-f`) is `server::logs`'s, which writes through the same [`RecordWriter`].
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::LogsError;
use super::cri::{Stream, parse_cri_line};
use super::manager::{COMPRESS_SUFFIX, TMP_SUFFIX, rotated_logs};
use super::timestamp::UnixTime;

/// The files holding `log_path`'s records, oldest first: rotated ones (compressed or not), then
/// the live file if it exists. Leftovers of an interrupted compression are skipped.
pub fn log_files(log_path: &Path) -> Result<Vec<PathBuf>, LogsError> {
    let rotated = rotated_logs(log_path)?;
    let mut files: Vec<PathBuf> = rotated
        .iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            !n.ends_with(TMP_SUFFIX)
                && (n.ends_with(COMPRESS_SUFFIX)
                    || !rotated.contains(&PathBuf::from(format!("{n}{COMPRESS_SUFFIX}"))))
        })
        .cloned()
        .collect();
    if log_path.exists() {
        files.push(log_path.to_path_buf());
    }
    Ok(files)
}

/// One CRI record with its content owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriRecord {
    /// When the runtime read the output.
    pub timestamp: jiff::Timestamp,
    /// The stream it came from.
    pub stream: Stream,
    /// `true` for a `P` record (no line end after `content`).
    pub partial: bool,
    /// The text, without the record's trailing newline.
    pub content: Vec<u8>,
}

/// Iterates the records of a container log across its rotated files, skipping unparsable lines
/// (as the kubelet does) and an incomplete last line of the live file (still being written).
pub struct CriRecords {
    files: VecDeque<PathBuf>,
    current: Option<(PathBuf, Box<dyn BufRead>)>,
    line: Vec<u8>,
}

impl CriRecords {
    /// Records of `log_path` and its rotated files, oldest first.
    pub fn open(log_path: &Path) -> Result<Self, LogsError> {
        Ok(CriRecords {
            files: log_files(log_path)?.into(),
            current: None,
            line: Vec::new(),
        })
    }

    fn next_file(&mut self) -> Result<bool, LogsError> {
        let Some(path) = self.files.pop_front() else {
            return Ok(false);
        };
        let f = match File::open(&path) {
            Ok(f) => f,
            // Pruned or compressed between listing and opening: its successor will be read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(source) => return Err(LogsError::io("open", &path, source)),
        };
        let reader: Box<dyn Read> = if path.to_string_lossy().ends_with(COMPRESS_SUFFIX) {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        self.current = Some((path, Box::new(BufReader::new(reader))));
        Ok(true)
    }
}

impl Iterator for CriRecords {
    type Item = Result<CriRecord, LogsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((path, reader)) = self.current.as_mut() else {
                match self.next_file() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) if !self.line.ends_with(b"\n") => {
                    // Incomplete last line: a writer is mid-record (or it was cut); skip it.
                    self.current = None;
                    continue;
                }
                Ok(_) => {
                    if let Ok(l) = parse_cri_line(&self.line) {
                        return Some(Ok(CriRecord {
                            timestamp: l.timestamp,
                            stream: l.stream,
                            partial: l.partial,
                            content: l.content.to_vec(),
                        }));
                    }
                }
                Err(source) => {
                    let e = LogsError::io("read", path, source);
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The `PodLogOptions` a non-following read understands.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only the last N records (each `P` record counts as one, as in the kubelet).
    pub tail_lines: Option<u64>,
    /// Skip records stamped before this instant.
    pub since_time: Option<jiff::Timestamp>,
    /// Prefix every record with its timestamp in the fixed 9-digit layout and a space.
    pub timestamps: bool,
    /// Stop after this many bytes (timestamp prefixes included), cutting the last line.
    pub limit_bytes: Option<u64>,
    /// Only this stream (`PodLogsQuerySplitStreams`); `None` for both.
    pub stream: Option<Stream>,
}

/// Writes `log_path`'s records to `out` as `kubectl logs` shows them; returns the bytes written.
/// As in the kubelet, `tail_lines` picks the records first and the other filters apply to those.
pub fn read_logs(
    log_path: &Path,
    opts: &LogOptions,
    out: &mut dyn Write,
) -> Result<u64, LogsError> {
    let records = CriRecords::open(log_path)?;
    let mut w = RecordWriter::new(out, opts);
    let write_err = |source| LogsError::io("write logs of", log_path, source);
    match opts.tail_lines {
        Some(n) => {
            let mut last = VecDeque::new();
            for r in records {
                last.push_back(r?);
                if last.len() as u64 > n {
                    last.pop_front();
                }
            }
            for r in last {
                if !w.record(&r).map_err(write_err)? {
                    break;
                }
            }
        }
        None => {
            for r in records {
                if !w.record(&r?).map_err(write_err)? {
                    break;
                }
            }
        }
    }
    Ok(w.written())
}

/// Writes CRI records as `kubectl logs` shows them: the `sinceTime` and `stream` filters,
/// `timestamps`, and the `limitBytes` cut. Shared by [`read_logs`] and the follower of
/// `server::logs`.
pub struct RecordWriter<'a, W: Write + ?Sized> {
    out: &'a mut W,
    opts: &'a LogOptions,
    written: u64,
}

impl<'a, W: Write + ?Sized> RecordWriter<'a, W> {
    /// A writer to `out` with the options of one request.
    pub fn new(out: &'a mut W, opts: &'a LogOptions) -> Self {
        RecordWriter {
            out,
            opts,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Writes one record if the filters keep it; `false` once the byte limit is reached.
    pub fn record(&mut self, r: &CriRecord) -> std::io::Result<bool> {
        if self
            .opts
            .since_time
            .is_some_and(|since| r.timestamp < since)
            || self.opts.stream.is_some_and(|s| s != r.stream)
        {
            return Ok(true);
        }
        if self.opts.timestamps {
            let ts = UnixTime::from_jiff(r.timestamp).rfc3339_fixed();
            if !self.put(ts.as_bytes())? || !self.put(b" ")? {
                return Ok(false);
            }
        }
        if !self.put(&r.content)? {
            return Ok(false);
        }
        if !r.partial && !self.put(b"\n")? {
            return Ok(false);
        }
        Ok(true)
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<bool> {
        let limit = self.opts.limit_bytes;
        let room = limit.map_or(u64::MAX, |l| l.saturating_sub(self.written));
        let n = (b.len() as u64).min(room) as usize;
        self.out.write_all(&b[..n])?;
        self.written += n as u64;
        Ok(n == b.len() && limit != Some(self.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let gz = File::create(dir.path().join("0.log.20240101-000001.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(b"2024-01-01T00:00:01Z stdout F one\n2024-01-01T00:00:02Z stderr F two\n")
            .unwrap();
        enc.finish().unwrap();
        std::fs::write(
            dir.path().join("0.log.20240101-000003"),
            "2024-01-01T00:00:03Z stdout P thr\ngarbage line\n2024-01-01T00:00:03.5Z stdout F ee\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("0.log.20240101-000003.gz.tmp"),
            "leftover\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("0.log"),
            "2024-01-01T00:00:04Z stderr F four\n2024-01-01T00:00:05Z stdout F fi",
        )
        .unwrap();
        dir
    }

    fn read(opts: LogOptions) -> String {
        let dir = fixture();
        let mut out = Vec::new();
        read_logs(&dir.path().join("0.log"), &opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reads_across_rotated_files_in_order() {
        let dir = fixture();
        let files: Vec<String> = log_files(&dir.path().join("0.log"))
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["0.log.20240101-000001.gz", "0.log.20240101-000003", "0.log"]
        );
    }

    #[test]
    fn options_table() {
        let ts = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let cases: Vec<(LogOptions, &str)> = vec![
            (LogOptions::default(), "one\ntwo\nthree\nfour\n"),
            (
                LogOptions {
                    tail_lines: Some(2),
                    ..Default::default()
                },
                "ee\nfour\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                },
                "",
            ),
            (
                LogOptions {
                    tail_lines: Some(100),
                    ..Default::default()
                },
                "one\ntwo\nthree\nfour\n",
            ),
            (
                LogOptions {
                    since_time: Some(ts("2024-01-01T00:00:03Z")),
                    ..Default::default()
                },
                "three\nfour\n",
            ),
            (
                LogOptions {
                    stream: Some(Stream::Stderr),
                    ..Default::default()
                },
                "two\nfour\n",
            ),
            (
                LogOptions {
                    limit_bytes: Some(6),
                    ..Default::default()
                },
                "one\ntw",
            ),
            (
                LogOptions {
                    timestamps: true,
                    tail_lines: Some(1),
                    ..Default::default()
                },
                "2024-01-01T00:00:04.000000000Z four\n",
            ),
            (
                LogOptions {
                    timestamps: true,
                    limit_bytes: Some(10),
                    ..Default::default()
                },
                "2024-01-01",
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(read(opts.clone()), want, "{opts:?}");
        }
    }
}
