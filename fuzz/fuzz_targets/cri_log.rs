//! Container output and CRI log files: the shim's line splitter over container output cut at
//! arbitrary points, and the CRI log line parser (`kubectl logs`, the `/containerLogs` API).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minikubelet::logs::{LineSplitter, Tag, parse_cri_line};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_cri_line(line);
    }
    // The splitter: a small maximum so lines get cut; chunks cut where the input says.
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max % 64) + 1;
    let mut splitter = LineSplitter::new(max);
    let mut out = 0usize;
    let mut emit = |_: Tag, pieces: &[&[u8]]| {
        let n: usize = pieces.iter().map(|p| p.len()).sum();
        assert!(n <= max, "a record of {n} bytes with max {max}");
        out += n;
    };
    for chunk in rest.chunks(7) {
        splitter.push(chunk, &mut emit);
        assert!(splitter.pending() <= max);
    }
    splitter.finish(&mut emit);
    assert!(out <= rest.len());
});
