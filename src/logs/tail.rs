//! Where `tailLines` starts, found by reading backwards from the end of the log in blocks and
//! counting lines, as the kubelet's `FindTailLineStartIndex` (`pkg/util/tail/tail.go`, used by
//! `kuberuntime/logs/logs.go` `ReadLogs`): memory stays at one block, whatever the log's size.
//!
//! Two differences keep the output the reader gave before it searched backwards: what is counted
//! is records (lines that parse, as read forward; an unfinished last line does not count), and
//! the count goes on into rotated files when the live one holds fewer (see the reader's
//! deviation). A compressed rotated file cannot be read backwards: its records are counted
//! going forward, and the tail then starts by passing over the first ones.
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::LogsError;
use super::cri::parse_cri_line;
use super::reader::{Lines, MAX_RECORD_LINE};

/// Bytes read per step backwards. The kubelet reads 1 KiB blocks; a larger block costs fewer
/// reads on a long tail and holds more memory per request while it searches.
const BLOCK: usize = 64 * 1024;
/// Bytes of a line that tell whether it is a record: the timestamp, stream and tag fields are
/// about 45 bytes as the shim writes them. A line whose first three fields do not end within
/// this much is read whole (at most [`MAX_RECORD_LINE`]), so the answer is always exact.
const PREFIX: usize = 128;

/// A log file opened for reading, with its size when opened.
pub(super) struct LogFile {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) compressed: bool,
    pub(super) len: u64,
}

/// Where reading starts: in `files[file]`, at byte `offset` (a plain file) or after `skip`
/// records (a compressed one). The default is the start of the whole log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TailStart {
    pub(super) file: usize,
    pub(super) offset: u64,
    pub(super) skip: u64,
}

/// The start of the last `n` records of `files` (oldest first).
pub(super) fn tail_start(files: &[LogFile], n: u64) -> Result<TailStart, LogsError> {
    tail_start_in_blocks(files, n, BLOCK)
}

fn tail_start_in_blocks(files: &[LogFile], n: u64, block: usize) -> Result<TailStart, LogsError> {
    let mut need = n;
    for (i, f) in files.iter().enumerate().rev() {
        let err = |source| LogsError::io("read", &f.path, source);
        if f.compressed {
            let count = count_forward(&f.file).map_err(err)?;
            if count >= need {
                return Ok(TailStart {
                    file: i,
                    offset: 0,
                    skip: count - need,
                });
            }
            need -= count;
        } else {
            match count_back(&f.file, f.len, need, block).map_err(err)? {
                Back::Found(offset) => {
                    return Ok(TailStart {
                        file: i,
                        offset,
                        skip: 0,
                    });
                }
                Back::Counted(count) => need -= count,
            }
        }
    }
    Ok(TailStart::default())
}

enum Back {
    /// The wanted records start at this offset.
    Found(u64),
    /// The file holds only this many records (fewer than wanted).
    Counted(u64),
}

/// Searches `[0, len)` of a plain file backwards for the start of its last `need` records.
fn count_back(f: &File, len: u64, need: u64, block: usize) -> std::io::Result<Back> {
    let mut buf = vec![0u8; block.min(len as usize)];
    let mut hi = len;
    let mut lo = len;
    // The newline that ends the line being scanned into; bytes after the last one are an
    // unfinished line, which is no record.
    let mut line_end: Option<u64> = None;
    let mut count = 0;
    let mut n = 0;
    while hi > 0 {
        lo = hi.saturating_sub(block as u64);
        n = (hi - lo) as usize;
        f.read_exact_at(&mut buf[..n], lo)?;
        let data = &buf[..n];
        for i in (0..n).rev() {
            if data[i] != b'\n' {
                continue;
            }
            let nl = lo + i as u64;
            match line_end {
                Some(end) if is_record(f, data, lo, nl + 1, end)? => {
                    count += 1;
                    if count == need {
                        return Ok(Back::Found(nl + 1));
                    }
                }
                Some(_) => {}
                None if need == 0 => return Ok(Back::Found(nl + 1)),
                None => {}
            }
            line_end = Some(nl);
        }
        hi = lo;
    }
    match line_end {
        Some(end) if is_record(f, &buf[..n], lo, 0, end)? => {
            count += 1;
            if count == need {
                return Ok(Back::Found(0));
            }
        }
        Some(_) => {}
        // No complete line at all: the tail starts at the unfinished one.
        None if need == 0 => return Ok(Back::Found(0)),
        None => {}
    }
    Ok(Back::Counted(count))
}

/// Whether the line `[start, end)` (without its newline) is a record; `data` holds the file's
/// bytes from `data_at`, which usually contain the line's start.
fn is_record(f: &File, data: &[u8], data_at: u64, start: u64, end: u64) -> std::io::Result<bool> {
    let len = end - start;
    if len > MAX_RECORD_LINE as u64 {
        return Ok(false);
    }
    let want = len.min(PREFIX as u64) as usize;
    let mut copy = [0u8; PREFIX];
    let prefix: &[u8] = if start >= data_at && start + want as u64 <= data_at + data.len() as u64 {
        let s = (start - data_at) as usize;
        &data[s..s + want]
    } else {
        f.read_exact_at(&mut copy[..want], start)?;
        &copy[..want]
    };
    let parsed = parse_cri_line(prefix).is_ok();
    if parsed || want as u64 == len {
        return Ok(parsed);
    }
    // The prefix holds three spaces: the fields are whole and did not parse.
    if prefix.iter().filter(|&&b| b == b' ').count() >= 3 {
        return Ok(false);
    }
    let mut whole = vec![0u8; len as usize];
    f.read_exact_at(&mut whole, start)?;
    Ok(parse_cri_line(&whole).is_ok())
}

/// Records of a compressed file, counted going forward.
fn count_forward(f: &File) -> std::io::Result<u64> {
    let mut r = f;
    r.seek(SeekFrom::Start(0))?;
    let mut lines = Lines::new(flate2::read::MultiGzDecoder::new(r));
    let mut count = 0;
    while let Some(line) = lines.next_line()? {
        if parse_cri_line(line).is_ok() {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::reader::tests::fixtures;

    fn open(dir: &std::path::Path) -> Vec<LogFile> {
        let log = dir.join("0.log");
        crate::logs::log_files(&log)
            .unwrap()
            .into_iter()
            .map(|path| {
                let file = File::open(&path).unwrap();
                LogFile {
                    compressed: path.to_string_lossy().ends_with(".gz"),
                    len: file.metadata().unwrap().len(),
                    path,
                    file,
                }
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Lines crossing block boundaries (blocks of a few bytes) give the start that one
        /// block holding each whole file gives (which the reader's test checks against the
        /// naive tail).
        #[test]
        fn the_start_does_not_depend_on_the_block_size(
            (files, live) in fixtures::files(),
            n in 0u64..40,
            block in 1usize..48,
        ) {
            let dir = tempfile::tempdir().unwrap();
            fixtures::write(dir.path(), &files, live);
            let files = open(dir.path());
            proptest::prop_assert_eq!(
                tail_start_in_blocks(&files, n, block).unwrap(),
                tail_start_in_blocks(&files, n, 1 << 20).unwrap()
            );
        }
    }

    #[test]
    fn counts_records_back_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let text = "2024-01-01T00:00:01Z stdout F a\ngarbage\n2024-01-01T00:00:02Z stdout F b\n2024-01-01T00:00:03Z stdout F unfini";
        std::fs::write(dir.path().join("0.log"), text).unwrap();
        let files = open(dir.path());
        let at = |offset| TailStart {
            file: 0,
            offset,
            skip: 0,
        };
        // (n, start): the unfinished line does not count; "garbage" is no record.
        let b = text.find("2024-01-01T00:00:02Z").unwrap() as u64;
        let unfinished = text.find("2024-01-01T00:00:03Z").unwrap() as u64;
        for (n, want) in [(0, at(unfinished)), (1, at(b)), (2, at(0)), (9, at(0))] {
            for block in [1, 5, 64, BLOCK] {
                assert_eq!(
                    tail_start_in_blocks(&files, n, block).unwrap(),
                    want,
                    "n={n} block={block}"
                );
            }
        }
    }
}
