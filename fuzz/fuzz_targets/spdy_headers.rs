//! SPDY header blocks: a compressed block from the client never panics the decoder, and header
//! lists the server encodes decode back to themselves (names lower-cased).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minikubelet::server::streaming::spdy::{HeaderDecoder, HeaderEncoder};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 0 {
        // Raw blocks, possibly several (one zlib stream across the session).
        let mut dec = HeaderDecoder::default();
        for block in rest.split(|&b| b == 0xff) {
            let _ = dec.decode(block);
        }
        return;
    }
    // A header list: "name\0value\0name\0value..." through the encoder and back.
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parts: Vec<&str> = text.split('\0').collect();
    let headers: Vec<(&str, &str)> = parts.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    // The decoder refuses blocks over 64 KiB decompressed (MAX_HEADER_BLOCK): ours stay below.
    let raw_len: usize = 4 + headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>();
    if raw_len > 60 * 1024 {
        return;
    }
    let mut enc = HeaderEncoder::new().expect("zlib compressor");
    let Ok(block) = enc.encode(&headers) else {
        return;
    };
    let mut dec = HeaderDecoder::default();
    let got = dec
        .decode(&block)
        .unwrap_or_else(|e| panic!("our own block does not decode: {e}"));
    let want: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let got: Vec<(String, String)> = got.into_iter().collect();
    assert_eq!(got, want);
});
