//! A static pod manifest file (YAML or JSON) through the file source's whole pipeline:
//! `decode_pod`, the API defaults, `make_static` and validation (`source::read_file`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minikubelet::api::{decode, defaults, static_pod, validation};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/etc/kubernetes/manifests/fuzz.yaml");
    let Ok(decoded) = decode::decode_pod(data, path) else {
        return;
    };
    let mut pod = decoded.pod;
    defaults::apply_defaults(&mut pod);
    static_pod::make_static(&mut pod, &decoded.raw, "node", path, jiff::Timestamp::UNIX_EPOCH);
    let _ = validation::validate(&pod);
});
