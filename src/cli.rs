//! Command-line entry: subcommands and flag parsing (mirrors `cmd/kubelet/app`).
use std::process::ExitCode;

pub fn main() -> ExitCode {
    println!("minikubelet {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
