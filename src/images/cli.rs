//! `minikubelet image pull|import|ls|rm|prune`: the node's images from the command line, like
//! `crictl pull/images/rmi` and `ctr images import`. Works on the store of `--root-dir` with or
//! without a running agent: every write takes the store's lock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::reference::ImageRef;
use super::registry::{self, PullOptions};
use super::store::Store;

/// `--root-dir`'s default, the agent's (`config::DEFAULT_ROOT_DIR`; spelled here so that
/// `images` does not depend on `config`, which depends on `eviction`, which runs image GC).
const DEFAULT_ROOT_DIR: &str = "/var/lib/minikubelet";

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The kubelet's root directory; the store is `<root-dir>/images`.
    #[arg(long, global = true, default_value = DEFAULT_ROOT_DIR)]
    root_dir: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Pull an image from its registry (HTTPS; plain HTTP only to loopback or registries
    /// marked insecure in <root-dir>/registries.conf).
    Pull {
        image: String,
        /// A Docker config.json with registry credentials, read before <root-dir>/config.json.
        #[arg(long)]
        image_credential_file: Option<PathBuf>,
        /// Refuse a layer that expands past this many bytes (default 64 GiB).
        #[arg(long)]
        max_layer_size: Option<u64>,
    },
    /// Import an OCI archive (index.json) or a `docker save` tar, offline.
    Import {
        file: PathBuf,
        /// The name for an image the archive does not name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the node's images: name, digest, size (as `crictl images`).
    Ls {
        /// Print only the names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images by name or ID; their layers go unless another image shares them.
    Rm { images: Vec<String> },
    /// Run the image GC: when the store's filesystem is at least --high-threshold percent
    /// full, delete images least recently used first, older than 2 minutes, down to
    /// --low-threshold; then delete blobs and layers no image refers to. The CLI does not know
    /// which images a running agent's pods use: with an agent running, prefer its own GC.
    Prune {
        /// `imageGCHighThresholdPercent`.
        #[arg(long, default_value_t = 85)]
        high_threshold: u8,
        /// `imageGCLowThresholdPercent`.
        #[arg(long, default_value_t = 80)]
        low_threshold: u8,
        /// Delete every image, whatever the usage and age.
        #[arg(long)]
        all: bool,
    },
}

/// Human size as `crictl` prints it (`1.9MB`).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}{}", units[i]).replace(".000", "")
    }
}

pub fn run(args: ImageArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minikubelet image: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: ImageArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut store = Store::open(&args.root_dir)?;
    match args.command {
        ImageCommand::Pull {
            image,
            image_credential_file,
            max_layer_size,
        } => {
            let r = ImageRef::parse(&image)?;
            if let Some(m) = max_layer_size {
                store.limits.max_bytes = m;
            }
            let opts = PullOptions {
                root_dir: args.root_dir.clone(),
                credential_file: image_credential_file,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let p = rt.block_on(registry::pull(&store, &r, &opts))?;
            println!(
                "Pulled {} ({}) {} in {:.3}s",
                p.record.name,
                p.record.manifest_digest,
                human(p.record.size),
                p.duration.as_secs_f64()
            );
        }
        ImageCommand::Import { file, name } => {
            for r in super::archive::import(&store, &file, name.as_deref())? {
                println!(
                    "Imported {} ({}) {}",
                    r.name,
                    r.manifest_digest,
                    human(r.size)
                );
            }
        }
        ImageCommand::Ls { quiet } => {
            let recs = store.list()?;
            if quiet {
                for r in recs {
                    println!("{}", r.name);
                }
                return Ok(());
            }
            println!(
                "{:<60} {:<15} {:<15} {:>10}",
                "IMAGE", "IMAGE ID", "DIGEST", "SIZE"
            );
            for r in recs {
                let short = |d: &str| {
                    d.trim_start_matches("sha256:")
                        .chars()
                        .take(13)
                        .collect::<String>()
                };
                println!(
                    "{:<60} {:<15} {:<15} {:>10}",
                    r.name,
                    short(&r.id),
                    short(&r.manifest_digest),
                    human(r.size)
                );
            }
        }
        ImageCommand::Rm { images } => {
            let _lock = store.lock()?;
            for i in images {
                let key = ImageRef::parse(&i).map_or(i.clone(), |r| r.to_string());
                let r = store.remove(&key).or_else(|_| store.remove(&i))?;
                println!("Deleted: {}", r.name);
            }
            store.sweep()?;
        }
        ImageCommand::Prune {
            high_threshold,
            low_threshold,
            all,
        } => {
            let _lock = store.lock()?;
            let images = store.list()?;
            // The kubelet's GC never deletes an image a container uses: here, one whose layers
            // are the overlay of a container the node still has (running or not yet removed).
            let in_use = super::gc::images_in_use(&args.root_dir, &store, &images);
            let names: Vec<String> = if all {
                images
                    .iter()
                    .filter(|r| !in_use.contains(&r.name))
                    .map(|r| r.name.clone())
                    .collect()
            } else {
                let policy = super::gc::GcPolicy {
                    high_threshold_percent: high_threshold,
                    low_threshold_percent: low_threshold,
                    ..Default::default()
                };
                let usage = super::gc::fs_usage(store.root())?;
                super::gc::plan(&policy, usage, &images, &in_use, super::store::now()).0
            };
            for n in names {
                store.remove(&n)?;
                println!("Deleted: {n}");
            }
            let freed = store.sweep()?;
            println!("Freed {}", human(freed));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_root_dir_is_the_agents() {
        assert_eq!(super::DEFAULT_ROOT_DIR, crate::config::DEFAULT_ROOT_DIR);
    }
}
