//! `kubectl auth can-i` bodies sent as protobuf (the `k8s\0` magic, the `runtime.Unknown`
//! envelope, the review's spec): the facade's own reader never panics and reads only what the
//! body holds. The first byte picks the review kind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let _ = minikubelet::fuzzing::self_review_protobuf(kind % 2, body);
});
