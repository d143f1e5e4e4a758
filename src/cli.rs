//! Command-line entry: the agent (the default), `check` (the preflight as a report),
//! `explain-eviction` (the eviction manager's state as tables) and the
//! hidden `shim` subcommand that each container's supervisor runs as.
//! Mirrors `cmd/kubelet/app` (flags, config loading, logging set-up).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Flags;

/// minikubelet: a static-pod kubelet for one Linux node.
#[derive(Parser, Debug)]
#[command(name = "minikubelet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the preflight checks as a report (swap, cgroups, kernel features, manifest path),
    /// with the fix for each failure; exit 1 if any check fails.
    Check {
        #[command(flatten)]
        flags: Box<Flags>,
    },
    /// Explain the running agent's eviction manager: signals, thresholds, conditions, the
    /// ranking of pods and the last decisions (reads /debug/eviction on 127.0.0.1).
    ExplainEviction {
        /// The agent's --port.
        #[arg(long, default_value_t = 10250)]
        port: u16,
        /// The kubeconfig whose token authenticates (the one the agent writes, root only)
        /// [default: /var/lib/minikubelet/kubeconfig].
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// The node's images: pull, import, ls, rm, prune (the store under --root-dir).
    Image(crate::images::cli::ImageArgs),
    /// Supervise one container (started by the agent; not for people).
    #[command(hide = true)]
    Shim {
        /// The container's state directory.
        state_dir: PathBuf,
        /// Started ahead of the container: wait for the agent's go on stdin.
        #[arg(long)]
        prestarted: bool,
    },
}

/// Parse the command line and run.
pub fn main() -> ExitCode {
    // The shim must stay tiny: dispatch it before any runtime or logger exists.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "shim")
        && let Some(dir) = args.get(2)
    {
        let launch = if args
            .get(3)
            .is_some_and(|a| a == crate::shim::PRESTARTED_ARG)
        {
            crate::shim::Launch::Prestarted
        } else {
            crate::shim::Launch::Now
        };
        return crate::shim::main(std::path::Path::new(dir), launch);
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Shim {
            state_dir,
            prestarted,
        }) => crate::shim::main(
            &state_dir,
            if prestarted {
                crate::shim::Launch::Prestarted
            } else {
                crate::shim::Launch::Now
            },
        ),
        Some(Command::ExplainEviction { port, kubeconfig }) => {
            let kubeconfig = kubeconfig.unwrap_or_else(|| {
                std::path::Path::new(crate::config::DEFAULT_ROOT_DIR).join("kubeconfig")
            });
            let token = std::fs::read_to_string(&kubeconfig)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    crate::server::apiserver::kubeconfig_token(&text)
                        .ok_or_else(|| "no token: line".to_string())
                });
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    eprintln!(
                        "minikubelet explain-eviction: read the token of {}: {e} (run as root, or give --kubeconfig=<root-dir>/kubeconfig)",
                        kubeconfig.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            match crate::eviction::explain::fetch(port, &token) {
                Ok(report) => {
                    // A closed stdout (`explain-eviction | head`) is not an error worth a panic.
                    use std::io::Write;
                    let text = crate::eviction::explain::render(&report);
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("minikubelet explain-eviction: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Image(args)) => crate::images::cli::run(args),
        Some(Command::Check { flags }) => {
            let loaded = match crate::config::load(&flags) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("minikubelet: {e}");
                    return ExitCode::from(2);
                }
            };
            if crate::preflight::report(&loaded.config) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        None => run_agent(&cli.flags),
    }
}

fn run_agent(flags: &Flags) -> ExitCode {
    let loaded = match crate::config::load(flags) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("minikubelet: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(
        loaded.config.tracing_level(),
        loaded.config.logging.format == crate::config::LogFormat::Json,
    );
    for w in &loaded.warnings {
        tracing::warn!(warning = %w, "configuration");
    }
    limit_malloc_arenas();
    crate::server::conn::raise_nofile_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        // Two workers are plenty for one node's pods and keep the agent's footprint small.
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minikubelet: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::kubelet::run(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "minikubelet stopped");
            eprintln!("minikubelet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `-v` as the kubelet uses it (`Config::tracing_level`: 0–2 info, 3–4 debug with every
/// cgroup write, 5+ trace). `RUST_LOG` overrides it.
fn init_logging(level: tracing::Level, json: bool) {
    use tracing_subscriber::EnvFilter;
    let level = level.as_str().to_ascii_lowercase();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("minikubelet={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// glibc gives each thread that allocates its own malloc arena, up to 8 per CPU; memory freed
/// in one stays mapped there. The agent's blocking threads come and go with bursts of pod
/// starts and log requests, so its RSS grew with arenas it hardly uses (about 0.5 MiB at 100
/// pods, `docs/benchmarks.md`). Two arenas suit two tokio workers and a few blocking threads;
/// the price is some lock contention on malloc, which this agent does not feel.
/// `MALLOC_ARENA_MAX` in the environment still wins (glibc reads it first).
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter (glibc takes its own lock).
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}
