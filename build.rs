//! Build script: links `minikubelet-shim` as a non-PIE executable.
//!
//! A shim is exec'd for every container start, so its start-up is on the pod-start path
//! (docs/benchmarks.md, "Where a pod start's time goes"). A position-independent executable
//! spends most of that start-up in page faults on the pages its relocations write; linked
//! non-PIE it has far fewer (measured: 199 → 110 faults, 1.05 → 0.75 ms CPU per launch). The
//! shim is short-lived per container, holds no secrets and parses nothing from the network, so
//! giving up ASLR for its text is a small price; the agent itself stays PIE. A fully static
//! shim would halve that again, but needs `+crt-static` for the whole crate (a per-binary
//! `-static` link argument makes a broken binary with the default dynamic std).
//!
//! With `+crt-static` (the VM tests' build) rustc links a static-pie, which needs no dynamic
//! loader and is left alone: `-no-pie` on top of `-static-pie` would not make a working binary.
fn main() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let crt_static = features.split(',').any(|f| f == "crt-static");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && !crt_static {
        println!("cargo:rustc-link-arg-bin=minikubelet-shim=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
