//! `resource.Quantity` strings (requests, limits, eviction thresholds, reserved resources):
//! parsing never panics, and a parsed quantity's canonical form parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minikubelet::api::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Quantity::parse(s) else {
        return;
    };
    let canonical = q.to_string();
    let again = Quantity::parse(&canonical)
        .unwrap_or_else(|e| panic!("{s:?} -> {canonical:?} does not parse: {e}"));
    assert_eq!(again, q, "{s:?} -> {canonical:?}");
    assert_eq!(again.to_string(), canonical, "{s:?}: canonical form not stable");
    let _ = (q.value(), q.milli_value(), q.round_up_milli());
});
