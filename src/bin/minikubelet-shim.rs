//! The `minikubelet-shim` binary: one container's supervisor, and nothing else.
//!
//! Mirrors `containerd-shim-runc-v2` / CRI-O's `conmon`: a small binary of its own, so starting
//! a container does not exec the whole agent (most of a pod start's cost was the page faults of
//! the big agent binary). It references only [`minikubelet::shim`], so the linker drops the rest.
//! Takes `<state-dir>`, or `shim <state-dir>` as the agent passes it (the same argv as the
//! agent's hidden `shim` subcommand, which stays as the fallback), and `--prestarted` after
//! the state dir for a shim started ahead of its container (`shim::prestart`).
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use minikubelet::shim::{Launch, PRESTARTED_ARG};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (dir, launch) = match args.as_slice() {
        [sub, dir] if sub == "shim" => (dir, Launch::Now),
        [sub, dir, flag] if sub == "shim" && flag == PRESTARTED_ARG => (dir, Launch::Prestarted),
        [dir] if dir != "shim" => (dir, Launch::Now),
        _ => {
            eprintln!(
                "usage: minikubelet-shim [shim] <state-dir> [{PRESTARTED_ARG}] (started by the minikubelet agent)"
            );
            return ExitCode::from(2);
        }
    };
    minikubelet::shim::main(Path::new(dir), launch)
}
