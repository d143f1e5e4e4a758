//! Feature gates (`--feature-gates`, `featureGates`): the kubelet's
//! `k8s.io/component-base/featuregate` reduced to the gates minikubelet has. The flag takes the
//! kubelet's `Key=bool,Key=bool` form (Go's `strconv.ParseBool` values); the file a map of
//! booleans; flags override the file key by key. An unknown gate stops the agent, as it stops
//! the kubelet (`unrecognized feature gate: <name>`).
use std::collections::BTreeMap;

use super::flags::parse_go_bool;

/// Containers of pods without `minikubelet.io/host-filesystem: "true"` run from their image
/// (pulled, on an overlay root, with the image's entrypoint, env, working dir and user), in
/// their pod sandbox. On by default, like a beta gate of the kubelet; `ImageRootfs=false` brings
/// back the old mode (containers as processes on the node, sharing its namespaces), deprecated
/// and kept for one release for setups that relied on it (docs/deviations.md).
pub const IMAGE_ROOTFS: &str = "ImageRootfs";

/// Every gate this agent knows, with its default.
const KNOWN: &[(&str, bool)] = &[(IMAGE_ROOTFS, true)];

/// The gates in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureGates {
    /// [`IMAGE_ROOTFS`].
    pub image_rootfs: bool,
}

impl Default for FeatureGates {
    /// Each gate at its default ([`KNOWN`]).
    fn default() -> Self {
        let default_of = |name: &str| KNOWN.iter().any(|(n, on)| *n == name && *on);
        FeatureGates {
            image_rootfs: default_of(IMAGE_ROOTFS),
        }
    }
}

impl FeatureGates {
    /// The gates from `Key=bool` settings; an unknown key is an error naming it.
    pub fn from_map(map: &BTreeMap<String, bool>) -> Result<FeatureGates, String> {
        let mut g = FeatureGates::default();
        for (k, v) in map {
            match k.as_str() {
                IMAGE_ROOTFS => g.image_rootfs = *v,
                other => {
                    let known: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "invalid configuration: featureGates (--feature-gates): unrecognized feature gate: {other} (minikubelet knows: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(g)
    }
}

/// `--feature-gates=Key=bool,Key=bool` (pflag `mapStringBool`: pairs trimmed, the last
/// duplicate wins, values as Go's `strconv.ParseBool`).
pub fn parse_flag(s: &str) -> Result<BTreeMap<String, bool>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("missing bool value for {pair}"));
        };
        let b = parse_go_bool(v.trim()).map_err(|_| {
            format!(
                "invalid value of {}={}, err: strconv.ParseBool: parsing {:?}: invalid syntax",
                k.trim(),
                v.trim(),
                v.trim()
            )
        })?;
        out.insert(k.trim().to_string(), b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_syntax_and_unknown_gates() {
        assert!(FeatureGates::default().image_rootfs, "on by default");
        assert!(
            !FeatureGates::from_map(&parse_flag("ImageRootfs=false").unwrap())
                .unwrap()
                .image_rootfs
        );
        let m = parse_flag("ImageRootfs=true").unwrap();
        assert!(FeatureGates::from_map(&m).unwrap().image_rootfs);
        let m = parse_flag(" ImageRootfs=true , ImageRootfs=false ").unwrap();
        assert!(!FeatureGates::from_map(&m).unwrap().image_rootfs);
        assert_eq!(parse_flag("").unwrap(), BTreeMap::new());
        assert!(
            parse_flag("ImageRootfs")
                .unwrap_err()
                .contains("missing bool value")
        );
        assert!(
            parse_flag("ImageRootfs=yes")
                .unwrap_err()
                .contains("ParseBool")
        );
        let m = parse_flag("ImageRootfs=1,NoSuchGate=true").unwrap();
        let e = FeatureGates::from_map(&m).unwrap_err();
        assert!(e.contains("unrecognized feature gate: NoSuchGate"), "{e}");
    }
}
