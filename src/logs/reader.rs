//! Reading a container's CRI log back: the files in order, the records in them, and the
//! `kubectl logs` options (mirrors `pkg/kubelet/kuberuntime/logs/logs.go` `ReadLogs`).
//!
//! [`LogReader`] reads in steps of bounded size, so that a server can run each step as a short
//! blocking task and wait for its client in between, holding no thread. With `follow` it keeps
//! its place at the end of the live file and goes on across rotations as the kubelet's reader
//! does (at the end of the open file, if the path names another file, the rest of the old one is
//! read, then the new one is opened). `tailLines` is found by reading backwards from the end
//! ([`super::tail`], the kubelet's `FindTailLineStartIndex`), so memory does not grow with the
//! log: at most one line and one block are held.
//!
//! Deviation: the kubelet reads only the live file, so `--tail` and `--since` cannot reach past a
//! rotation (kubernetes #11046); this reader walks `N.log.<ts>.gz`, `N.log.<ts>`, then `N.log`.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::LogsError;
use super::cri::{CriLine, Stream, parse_cri_line};
use super::manager::{COMPRESS_SUFFIX, TMP_SUFFIX, rotated_logs};
use super::tail::{LogFile, TailStart, tail_start};
use super::timestamp::UnixTime;

/// Longest line taken as a record. The shim (as containerd) cuts output into records of at most
/// [`MAX_LINE_SIZE`](super::MAX_LINE_SIZE) (16 KiB) plus a prefix, so no line it writes comes
/// near; a longer line is skipped like any line that does not parse. This bounds what one line
/// can make a reader hold; larger would only admit lines no CRI logger writes.
pub const MAX_RECORD_LINE: usize = 1 << 20;
/// Bytes asked of a file per read: larger reads cost fewer system calls on a long log, and
/// each reader holds this much only while it reads (an idle follower keeps its unfinished line).
const READ_SIZE: usize = 64 * 1024;
/// Output gathered per write by [`read_logs`].
const WRITE_SIZE: usize = 32 * 1024;

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

fn is_compressed(path: &Path) -> bool {
    path.to_string_lossy().ends_with(COMPRESS_SUFFIX)
}

/// Complete lines of a byte source, in bounded memory: at most one unfinished line is held, and
/// a line longer than [`MAX_RECORD_LINE`] is dropped as it is read. At the end of the data for
/// now, the unfinished line is kept for the next call (a followed file grows); the reader of a
/// finished file drops it, as the kubelet does with a last line that has no newline.
pub(crate) struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    /// Inside a line longer than [`MAX_RECORD_LINE`]: its bytes are dropped up to its newline.
    overlong: bool,
}

impl<R: Read> Lines<R> {
    pub(crate) fn new(src: R) -> Self {
        Lines {
            src,
            buf: Vec::new(),
            start: 0,
            overlong: false,
        }
    }

    /// The next complete line, without its `\n`; `None` at the end of the data for now.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        loop {
            if let Some(pos) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let (from, to) = (self.start, self.start + pos);
                self.start = to + 1;
                if std::mem::take(&mut self.overlong) || to - from > MAX_RECORD_LINE {
                    continue;
                }
                return Ok(Some(&self.buf[from..to]));
            }
            self.buf.drain(..self.start);
            self.start = 0;
            if self.buf.len() > MAX_RECORD_LINE {
                self.buf.clear();
                self.overlong = true;
            }
            let held = self.buf.len();
            self.buf.resize(held + READ_SIZE, 0);
            let n = loop {
                match self.src.read(&mut self.buf[held..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            self.buf.truncate(held + *n.as_ref().unwrap_or(&0));
            if n? == 0 {
                // Keep only the unfinished line between reads.
                self.buf.shrink_to_fit();
                return Ok(None);
            }
        }
    }
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
/// (as the kubelet does) and an incomplete last line of each file (still being written).
pub struct CriRecords {
    files: VecDeque<PathBuf>,
    current: Option<(PathBuf, Lines<Box<dyn Read + Send>>)>,
}

impl CriRecords {
    /// Records of `log_path` and its rotated files, oldest first.
    pub fn open(log_path: &Path) -> Result<Self, LogsError> {
        Ok(CriRecords {
            files: log_files(log_path)?.into(),
            current: None,
        })
    }
}

impl Iterator for CriRecords {
    type Item = Result<CriRecord, LogsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((path, lines)) = self.current.as_mut() else {
                let path = self.files.pop_front()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path.clone(), Lines::new(decoder(&path, f)))),
                    // Pruned or compressed between listing and opening: its successor will be read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Some(Err(LogsError::io("open", &path, source))),
                }
                continue;
            };
            match lines.next_line() {
                Ok(Some(line)) => {
                    if let Ok(l) = parse_cri_line(line) {
                        return Some(Ok(CriRecord {
                            timestamp: l.timestamp,
                            stream: l.stream,
                            partial: l.partial,
                            content: l.content.to_vec(),
                        }));
                    }
                }
                Ok(None) => self.current = None,
                Err(source) => {
                    let e = LogsError::io("read", path, source);
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A file's bytes as records are read from them: decompressed for a `.gz`.
fn decoder<R: Read + Send + 'static>(path: &Path, f: R) -> Box<dyn Read + Send> {
    if is_compressed(path) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    }
}

/// The `PodLogOptions` the reader understands.
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
    let mut reader = LogReader::open(log_path, opts.clone(), false)?;
    let mut chunk = Vec::with_capacity(WRITE_SIZE);
    loop {
        chunk.clear();
        let step = reader.read_some(&mut chunk, WRITE_SIZE)?;
        out.write_all(&chunk)
            .map_err(|source| LogsError::io("write logs of", log_path, source))?;
        if step != ReadStep::More {
            return Ok(reader.written());
        }
    }
}

/// Where a [`LogReader::read_some`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStep {
    /// The budget is used up; more is there to read.
    More,
    /// Everything written so far was read (without `follow`: the log is done).
    CaughtUp,
    /// `limitBytes` were written: the log is done.
    LimitReached,
}

/// A file being read, from where reading starts in it.
struct Source {
    path: PathBuf,
    lines: Lines<Box<dyn Read + Send>>,
    /// Records to pass over first: where a tail starts inside a compressed file.
    skip: u64,
}

/// Identity of a file: device and inode.
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// `ReadLogs` in steps: the records of a container log (its rotated files, then the live one),
/// written as `kubectl logs` shows them, a bounded amount at a time.
pub struct LogReader {
    path: PathBuf,
    follow: bool,
    writer: RecordWriter,
    /// Rotated files still to read, oldest first.
    rotated: VecDeque<Source>,
    /// The live file, and its identity.
    live: Option<(Source, (u64, u64))>,
    /// The path was seen naming another file: the open one is read to its end once more (the
    /// last lines written before the rename), then the new one is opened.
    draining: bool,
    limit_reached: bool,
}

impl LogReader {
    /// Opens the files of `log_path` and finds where `tail_lines` starts. Without `follow` the
    /// log is read as it is now (files end at their size when opened).
    pub fn open(log_path: &Path, opts: LogOptions, follow: bool) -> Result<Self, LogsError> {
        // The live file first: if it rotates after this, the listing names the file this handle
        // reads, which is then skipped.
        let live = open_file(log_path)?;
        let live_id = live.as_ref().map(|f| file_id(&f.meta));
        let mut files = Vec::new();
        for path in log_files(log_path)? {
            if path == log_path {
                continue;
            }
            if let Some(f) = open_file(&path)?
                && Some(file_id(&f.meta)) != live_id
            {
                files.push(f.into_log_file(path));
            }
        }
        let live_index = live.map(|f| {
            files.push(f.into_log_file(log_path.to_path_buf()));
            files.len() - 1
        });
        let start = match opts.tail_lines {
            Some(n) => tail_start(&files, n)?,
            None => TailStart::default(),
        };
        let mut reader = LogReader {
            path: log_path.to_path_buf(),
            follow,
            writer: RecordWriter::new(opts),
            rotated: VecDeque::new(),
            live: None,
            draining: false,
            limit_reached: false,
        };
        for (i, f) in files.into_iter().enumerate().skip(start.file) {
            let (offset, skip) = if i == start.file {
                (start.offset, start.skip)
            } else {
                (0, 0)
            };
            let mut file = f.file;
            file.seek(SeekFrom::Start(offset))
                .map_err(|source| LogsError::io("seek", &f.path, source))?;
            let src: Box<dyn Read + Send> = if follow && Some(i) == live_index {
                Box::new(file)
            } else if f.compressed {
                decoder(&f.path, file)
            } else {
                Box::new(file.take(f.len.saturating_sub(offset)))
            };
            let source = Source {
                path: f.path,
                lines: Lines::new(src),
                skip,
            };
            match live_id.filter(|_| Some(i) == live_index) {
                Some(id) => reader.live = Some((source, id)),
                None => reader.rotated.push_back(source),
            }
        }
        Ok(reader)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.written
    }

    /// Appends to `out` the next records (at least `budget` bytes of them unless the log is
    /// caught up with or done).
    pub fn read_some(&mut self, out: &mut Vec<u8>, budget: usize) -> Result<ReadStep, LogsError> {
        loop {
            if self.limit_reached {
                return Ok(ReadStep::LimitReached);
            }
            if out.len() >= budget {
                return Ok(ReadStep::More);
            }
            if let Some(src) = self.rotated.front_mut() {
                let line = src
                    .lines
                    .next_line()
                    .map_err(|source| LogsError::io("read", &src.path, source))?;
                match line {
                    Some(line) => {
                        self.limit_reached = !self.writer.line(out, &mut src.skip, line);
                    }
                    // A finished file: an unfinished last line is dropped.
                    None => {
                        self.rotated.pop_front();
                    }
                }
                continue;
            }
            let Some((src, _)) = self.live.as_mut() else {
                if self.follow && self.reopen()? {
                    continue;
                }
                return Ok(ReadStep::CaughtUp);
            };
            let line = src
                .lines
                .next_line()
                .map_err(|source| LogsError::io("read", &src.path, source))?;
            if let Some(line) = line {
                self.limit_reached = !self.writer.line(out, &mut src.skip, line);
                continue;
            }
            if !self.follow {
                return Ok(ReadStep::CaughtUp);
            }
            if self.draining {
                self.draining = false;
                self.reopen()?;
            } else if self.moved() {
                self.draining = true;
            } else {
                return Ok(ReadStep::CaughtUp);
            }
        }
    }

    /// Whether the path now names another file than the one open (the shim rotated it).
    fn moved(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => self.live.as_ref().map(|(_, id)| *id) != Some(file_id(&m)),
            Err(_) => false,
        }
    }

    /// Opens the file the path names now; `false` if there is none (between a rotation's rename
    /// and its create).
    fn reopen(&mut self) -> Result<bool, LogsError> {
        self.live = open_file(&self.path)?.map(|f| {
            let id = file_id(&f.meta);
            let source = Source {
                path: self.path.clone(),
                lines: Lines::new(Box::new(f.file)),
                skip: 0,
            };
            (source, id)
        });
        Ok(self.live.is_some())
    }
}

/// A file opened, with what it was when opened.
struct Opened {
    file: File,
    meta: std::fs::Metadata,
}

impl Opened {
    fn into_log_file(self, path: PathBuf) -> LogFile {
        LogFile {
            compressed: is_compressed(&path),
            len: self.meta.len(),
            path,
            file: self.file,
        }
    }
}

/// `None` if the file is gone (pruned or compressed since it was listed: its successor is read).
fn open_file(path: &Path) -> Result<Option<Opened>, LogsError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogsError::io("open", path, source)),
    };
    let meta = file
        .metadata()
        .map_err(|source| LogsError::io("stat", path, source))?;
    Ok(Some(Opened { file, meta }))
}

/// Writes CRI records as `kubectl logs` shows them: the `sinceTime` and `stream` filters,
/// `timestamps`, and the `limitBytes` cut.
struct RecordWriter {
    opts: LogOptions,
    written: u64,
}

impl RecordWriter {
    fn new(opts: LogOptions) -> Self {
        RecordWriter { opts, written: 0 }
    }

    /// Takes one line of a file: a record, unless it does not parse (skipped, as the kubelet
    /// does) or is among the first `skip`. `false` once the byte limit is reached.
    fn line(&mut self, out: &mut Vec<u8>, skip: &mut u64, line: &[u8]) -> bool {
        let Ok(r) = parse_cri_line(line) else {
            return true;
        };
        if *skip > 0 {
            *skip -= 1;
            return true;
        }
        self.record(out, &r)
    }

    /// Writes one record if the filters keep it; `false` once the byte limit is reached.
    fn record(&mut self, out: &mut Vec<u8>, r: &CriLine<'_>) -> bool {
        if self
            .opts
            .since_time
            .is_some_and(|since| r.timestamp < since)
            || self.opts.stream.is_some_and(|s| s != r.stream)
        {
            return true;
        }
        if self.opts.timestamps {
            let ts = UnixTime::from_jiff(r.timestamp).rfc3339_fixed();
            if !self.put(out, ts.as_bytes()) || !self.put(out, b" ") {
                return false;
            }
        }
        self.put(out, r.content) && (r.partial || self.put(out, b"\n"))
    }

    fn put(&mut self, out: &mut Vec<u8>, b: &[u8]) -> bool {
        let limit = self.opts.limit_bytes;
        let room = limit.map_or(u64::MAX, |l| l.saturating_sub(self.written));
        let n = (b.len() as u64).min(room) as usize;
        out.extend_from_slice(&b[..n]);
        self.written += n as u64;
        n == b.len() && limit != Some(self.written)
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A test log's files: rotated ones (compressed or not), then maybe the live one.
    pub(crate) mod fixtures {
        use proptest::prelude::*;
        use std::io::Write;
        use std::path::Path;

        /// A line of any kind the reader meets: records, lines that do not parse, lines whose
        /// fields run past the prefix the tail search looks at.
        pub(crate) fn line() -> impl Strategy<Value = String> {
            let ts = (0u32..5, 0u32..3).prop_map(|(s, f)| match f {
                0 => format!("2024-01-01T00:00:0{s}Z"),
                1 => format!("2024-01-01T00:00:0{s}.5Z"),
                _ => format!("2024-01-01T00:00:0{s}.123456789+00:00"),
            });
            let stream = prop_oneof![Just("stdout"), Just("stderr")];
            let tag = prop_oneof![
                Just("F".to_string()),
                Just("P".to_string()),
                Just("F:x".to_string()),
                "[FP][a-z]{120,200}"
            ];
            prop_oneof![
                6 => (ts.clone(), stream, tag, "[a-z ]{0,150}")
                    .prop_map(|(t, s, g, c)| format!("{t} {s} {g} {c}")),
                1 => "[a-z]{0,300}",
                1 => (ts.clone(), "[a-z]{120,200}").prop_map(|(t, r)| format!("{t} stdout{r}")),
                1 => ts.prop_map(|t| format!("{t} stdboth F x")),
                1 => Just("garbage line".to_string()),
            ]
        }

        /// (compressed, lines, an unfinished last line)
        pub(crate) type FileSpec = (bool, Vec<String>, Option<String>);

        pub(crate) fn files() -> impl Strategy<Value = (Vec<FileSpec>, bool)> {
            let file = (
                any::<bool>(),
                prop::collection::vec(line(), 0..25),
                prop::option::of(line()),
            );
            (prop::collection::vec(file, 1..4), any::<bool>())
        }

        /// Writes the files into `dir`; the last one is the live `0.log` when `live`.
        pub(crate) fn write(dir: &Path, files: &[FileSpec], live: bool) {
            for (i, (gz, lines, rest)) in files.iter().enumerate() {
                let mut text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
                text.push_str(rest.as_deref().unwrap_or(""));
                let is_live = live && i + 1 == files.len();
                let name = if is_live {
                    "0.log".to_string()
                } else {
                    format!("0.log.20240101-0000{i:02}{}", if *gz { ".gz" } else { "" })
                };
                let path = dir.join(name);
                if *gz && !is_live {
                    let f = std::fs::File::create(path).unwrap();
                    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                    enc.write_all(text.as_bytes()).unwrap();
                    enc.finish().unwrap();
                } else {
                    std::fs::write(path, text).unwrap();
                }
            }
        }
    }

    /// What the reader gave before it searched tails backwards: every record, the last N kept.
    fn naive(log: &Path, opts: &LogOptions) -> Vec<u8> {
        let records: Vec<CriRecord> = CriRecords::open(log).unwrap().map(Result::unwrap).collect();
        let from = opts
            .tail_lines
            .map_or(0, |n| records.len().saturating_sub(n as usize));
        let mut w = RecordWriter::new(opts.clone());
        let mut out = Vec::new();
        for r in &records[from..] {
            let line = CriLine {
                timestamp: r.timestamp,
                stream: r.stream,
                partial: r.partial,
                content: &r.content,
            };
            if !w.record(&mut out, &line) {
                break;
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn tail_and_filters_match_the_naive_reader(
            (files, live) in fixtures::files(),
            tail in proptest::option::of(0u64..40),
            timestamps: bool,
            limit in proptest::option::of(1u64..400),
            stream in 0u8..3,
            since in proptest::option::of(0u32..5),
        ) {
            let dir = tempfile::tempdir().unwrap();
            fixtures::write(dir.path(), &files, live);
            let opts = LogOptions {
                tail_lines: tail,
                since_time: since.map(|s| format!("2024-01-01T00:00:0{s}Z").parse().unwrap()),
                timestamps,
                limit_bytes: limit,
                stream: [None, Some(Stream::Stdout), Some(Stream::Stderr)][stream as usize],
            };
            let log = dir.path().join("0.log");
            let mut got = Vec::new();
            read_logs(&log, &opts, &mut got).unwrap();
            let want = naive(&log, &opts);
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_next_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let long = format!(
            "2024-01-01T00:00:01Z stdout F {}\n",
            "x".repeat(MAX_RECORD_LINE + 10)
        );
        std::fs::write(&log, long + "2024-01-01T00:00:02Z stdout F after\n").unwrap();
        for tail in [None, Some(1), Some(2)] {
            let opts = LogOptions {
                tail_lines: tail,
                ..Default::default()
            };
            let mut out = Vec::new();
            read_logs(&log, &opts, &mut out).unwrap();
            assert_eq!(out, b"after\n", "{tail:?}");
        }
    }
}
