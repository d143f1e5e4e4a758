//! A SPDY/3.1 byte stream as a client sends it (exec, attach, port-forward): frames taken off
//! the front of the buffer one by one with one zlib header context, as the session does.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use minikubelet::server::streaming::spdy::{HeaderDecoder, parse_frame};

fuzz_target!(|data: &[u8]| {
    let mut dec = HeaderDecoder::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_frame)) = parse_frame(&mut buf, &mut dec) {}
});
