//! Command-line entry: subcommands and flag parsing (mirrors `cmd/kubelet/app`).
use std::process::ExitCode;

pub fn main() -> ExitCode {
    // Hidden subcommand `minikubelet shim <state-dir>`: the per-container supervisor. Dispatched
    // before anything else (no tokio runtime, no tracing threads), because it forks.
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(4).collect();
    if args.len() == 3 && args[1] == "shim" {
        return crate::shim::main(std::path::Path::new(&args[2]));
    }
    println!("minikubelet {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
