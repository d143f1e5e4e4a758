//! `memorySwap.swapBehavior`: how much swap the container manager lets containers use.
//!
//! Mirrors `pkg/kubelet/types` (`kubetypes.SwapBehavior`); the config parser re-exports it, and
//! `cm` reads it when it sizes `memory.swap.max`.

use serde::Serialize;

/// `memorySwap.swapBehavior` (`kubetypes.SwapBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SwapBehavior {
    /// `""`: not set; behaves as `NoSwap`.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// Containers may not use swap.
    NoSwap,
    /// Burstable containers get swap in proportion to their memory request (cgroup v2 only).
    LimitedSwap,
}

impl SwapBehavior {
    /// Parses the config value with the kubelet's validation message.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" => Ok(SwapBehavior::Unset),
            "NoSwap" => Ok(SwapBehavior::NoSwap),
            "LimitedSwap" => Ok(SwapBehavior::LimitedSwap),
            other => Err(format!(
                "invalid configuration: memorySwap.swapBehavior {other:?} must be one of: \"\", \"LimitedSwap\" or \"NoSwap\""
            )),
        }
    }

    /// The config text.
    pub fn as_str(&self) -> &'static str {
        match self {
            SwapBehavior::Unset => "",
            SwapBehavior::NoSwap => "NoSwap",
            SwapBehavior::LimitedSwap => "LimitedSwap",
        }
    }

    /// True when containers may use some swap.
    pub fn allows_swap(&self) -> bool {
        matches!(self, SwapBehavior::LimitedSwap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_behavior_validation() {
        assert_eq!(SwapBehavior::parse(""), Ok(SwapBehavior::Unset));
        assert_eq!(SwapBehavior::parse("NoSwap"), Ok(SwapBehavior::NoSwap));
        assert_eq!(
            SwapBehavior::parse("LimitedSwap"),
            Ok(SwapBehavior::LimitedSwap)
        );
        assert_eq!(
            SwapBehavior::parse("UnlimitedSwap").unwrap_err(),
            "invalid configuration: memorySwap.swapBehavior \"UnlimitedSwap\" must be one of: \"\", \"LimitedSwap\" or \"NoSwap\""
        );
    }
}
