//! A `KubeletConfiguration` file (`--config`, YAML or JSON) through `config::load`: decoding,
//! the merge with (default) flags, defaults and validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = minikubelet::fuzzing::kubelet_configuration(text);
});
