//! Swap preflight and `memorySwap.swapBehavior`.
//!
//! Mirrors `pkg/kubelet/util/swap` `IsSwapOn` and the check in `pkg/kubelet/cm`
//! `NewContainerManager` that refuses to start with swap on unless `failSwapOn` is false, and the
//! `memorySwap.swapBehavior` validation in `pkg/kubelet/apis/config/validation`. The behaviour itself belongs to `cm`
//! ([`SwapBehavior`] is re-exported from there).
use std::io;
use std::path::{Path, PathBuf};

pub use crate::cm::swap::SwapBehavior;

/// The kubelet's exact refusal text when swap is on and `failSwapOn` is true.
pub const SWAP_ON_ERROR: &str = "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false";

/// Why the swap check failed.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// `/proc/swaps` exists but could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The io error.
        source: io::Error,
    },
    /// Swap is on and `failSwapOn` is set.
    #[error("{SWAP_ON_ERROR}")]
    SwapOn,
}

/// Whether swap is on according to `<proc_root>/swaps`: a missing file means off; otherwise on
/// iff the trimmed content has more than one line (the header plus at least one device).
pub fn swap_on(proc_root: &Path) -> Result<bool, SwapError> {
    let path = proc_root.join("swaps");
    let data = match std::fs::read_to_string(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "file does not exist, assuming that swap is disabled");
            return Ok(false);
        }
        Err(source) => return Err(SwapError::Read { path, source }),
    };
    let lines = data.trim().split('\n').count();
    let on = lines > 1;
    if on {
        tracing::debug!(path = %path.display(), contents = %data.trim(), "swap is on");
    }
    Ok(on)
}

/// The startup preflight: an error when swap is on and `fail_swap_on` is true.
pub fn check_swap(proc_root: &Path, fail_swap_on: bool) -> Result<(), SwapError> {
    if fail_swap_on && swap_on(proc_root)? {
        return Err(SwapError::SwapOn);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    #[test]
    fn swap_on_reads_proc_swaps() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("missing file", None, false),
            ("empty file", Some(""), false),
            ("header only", Some(HEADER), false),
            (
                "header with trailing blank lines",
                Some("Filename Type\n\n\n"),
                false,
            ),
            (
                "one device",
                Some("Filename Type Size Used Priority\n/dev/sda2 partition 1048572 0 -2\n"),
                true,
            ),
            (
                "two devices",
                Some("Filename\n/swapfile file 1 0 -2\n/dev/zram0 partition 1 0 100\n"),
                true,
            ),
        ];
        for (name, contents, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            if let Some(c) = contents {
                std::fs::write(dir.path().join("swaps"), c).unwrap();
            }
            assert_eq!(swap_on(dir.path()).unwrap(), *want, "{name}");
        }
    }

    #[test]
    fn check_swap_uses_kubelet_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("swaps"),
            format!("{HEADER}/dev/sda2 partition 1 0 -2\n"),
        )
        .unwrap();
        let err = check_swap(dir.path(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false"
        );
        assert!(check_swap(dir.path(), false).is_ok());
    }

    #[test]
    fn unreadable_swaps_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be makes the read fail with something other than
        // NotFound, even as root.
        std::fs::create_dir(dir.path().join("swaps")).unwrap();
        let err = swap_on(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("read "), "{err}");
    }
}
