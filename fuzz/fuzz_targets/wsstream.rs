//! WebSocket channel protocol messages (`*.channel.k8s.io`, exec/attach/port-forward over
//! WebSocket) and the resize channel's JSON payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minikubelet::fuzzing::websocket_message;
use minikubelet::server::streaming::wsstream::{RESIZE, parse_resizes};

fuzz_target!(|data: &[u8]| {
    let Some((&first, payload)) = data.split_first() else {
        return;
    };
    let protocol = usize::from(first >> 1);
    if let Some(Ok(Some((channel, bytes)))) = websocket_message(protocol, first & 1 == 1, payload)
        && channel == RESIZE
    {
        let _ = parse_resizes(&bytes);
    }
    let _ = parse_resizes(payload);
});
