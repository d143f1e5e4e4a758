//! The network the agent writes when the conf dir has none and `--pod-cidr` is set: one bridge
//! on the node, an address per pod from host-local, hostPorts through portmap. This is the
//! idea of containerd's CNI config template (`conf_template`, filled with the node's pod CIDR)
//! and of the kubelet's kubenet (gone with dockershim), whose template also set
//! `hairpinMode` from `--hairpin-mode`.
//!
//! | `--hairpin-mode` | bridge plugin | what it does |
//! |---|---|---|
//! | `hairpin-veth` | `"hairpinMode": true` | `hairpin_mode=1` on each host veth: a frame may leave the port it came in by, so a pod reaches itself through a DNAT (its hostPort, a service VIP) |
//! | `promiscuous-bridge` (the kubelet's default) | `"promiscMode": true` | the bridge is set promiscuous; with `bridge-nf-call-iptables=1` a pod does **not** reach itself through a DNAT this way (measured), and kubenet's ebtables dedup rules are not added |
//! | `none` | both false | neither |
//!
//! The bridge plugin refuses both at once ("cannot set hairpin mode and promiscuous mode at
//! the same time"), so exactly one mode is ever on.

use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::CniError;

/// The generated network's name (the result cache and host-local's state are keyed by it).
pub const DEFAULT_NETWORK_NAME: &str = "minikubelet";

/// The generated bridge (containerd's template uses `cni0`; this name says whose it is).
pub const DEFAULT_BRIDGE: &str = "mkl0";

/// The file written into the conf dir.
pub const DEFAULT_CONFLIST_FILE: &str = "10-minikubelet.conflist";

/// The kubelet's `--hairpin-mode` (`KubeletConfiguration.hairpinMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HairpinMode {
    /// `hairpin-veth`.
    HairpinVeth,
    /// `promiscuous-bridge`: the kubelet's default.
    #[default]
    PromiscuousBridge,
    /// `none`.
    None,
}

impl HairpinMode {
    /// The kubelet's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HairpinMode::HairpinVeth => "hairpin-veth",
            HairpinMode::PromiscuousBridge => "promiscuous-bridge",
            HairpinMode::None => "none",
        }
    }
}

impl std::str::FromStr for HairpinMode {
    type Err = String;

    fn from_str(s: &str) -> Result<HairpinMode, String> {
        match s {
            "hairpin-veth" => Ok(HairpinMode::HairpinVeth),
            "promiscuous-bridge" => Ok(HairpinMode::PromiscuousBridge),
            "none" => Ok(HairpinMode::None),
            _ => Err(format!(
                "invalid hairpin mode {s:?}: one of hairpin-veth, promiscuous-bridge, none"
            )),
        }
    }
}

impl std::fmt::Display for HairpinMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the generated network is made of.
#[derive(Clone, Debug)]
pub struct DefaultNetwork {
    /// `--pod-cidr`: an IPv4 network, `/8` to `/30`.
    pub pod_cidr: String,
    pub hairpin_mode: HairpinMode,
    /// The bridge's name ([`DEFAULT_BRIDGE`]).
    pub bridge_name: String,
    /// host-local's `dataDir` (its default is `/var/lib/cni/networks`).
    pub ipam_data_dir: Option<PathBuf>,
}

impl DefaultNetwork {
    /// The defaults for `pod_cidr` and `hairpin_mode`.
    pub fn new(pod_cidr: &str, hairpin_mode: HairpinMode) -> DefaultNetwork {
        DefaultNetwork {
            pod_cidr: pod_cidr.to_string(),
            hairpin_mode,
            bridge_name: DEFAULT_BRIDGE.to_string(),
            ipam_data_dir: None,
        }
    }
}

/// The `--hairpin-mode` a network's `bridge` plugin gives its pods (`None`: no bridge plugin
/// in the list), so the agent can warn when a user's config says otherwise than the flag, and
/// follow the config, as the kubelet did with any plugin but kubenet.
pub fn bridge_hairpin_mode(net: &super::NetworkConfigList) -> Option<HairpinMode> {
    let bridge = net.plugins.iter().find(|p| p.plugin_type == "bridge")?;
    let flag = |k: &str| bridge.raw.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(match (flag("hairpinMode"), flag("promiscMode")) {
        (true, _) => HairpinMode::HairpinVeth,
        (false, true) => HairpinMode::PromiscuousBridge,
        (false, false) => HairpinMode::None,
    })
}

/// The smallest pod CIDR: a /30 holds the gateway and one pod (host-local skips the network
/// and broadcast addresses). The largest: a /8, beyond which the range would swallow the
/// node's other networks.
const PREFIX_RANGE: std::ops::RangeInclusive<u8> = 8..=30;

/// `--pod-cidr` checked: an IPv4 network address with a prefix in 8..=30.
pub fn parse_pod_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), CniError> {
    let bad = |why: String| CniError::PodCidr {
        cidr: cidr.to_string(),
        why,
    };
    let Some((addr, prefix)) = cidr.split_once('/') else {
        return Err(bad("not an address/prefix such as 10.88.0.0/24".into()));
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        if addr.contains(':') {
            bad("IPv6 pod CIDRs are not generated yet: write a conflist by hand".into())
        } else {
            bad(format!("{addr:?} is not an IPv4 address"))
        }
    })?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| bad(format!("{prefix:?} is not a prefix length")))?;
    if !PREFIX_RANGE.contains(&prefix) {
        return Err(bad(format!(
            "prefix /{prefix} is outside /{} to /{}",
            PREFIX_RANGE.start(),
            PREFIX_RANGE.end()
        )));
    }
    let mask = u32::MAX << (32 - prefix);
    let net = Ipv4Addr::from(u32::from(addr) & mask);
    if net != addr {
        return Err(bad(format!(
            "{addr} has host bits set for /{prefix}: did you mean {net}/{prefix}?"
        )));
    }
    Ok((net, prefix))
}

/// The conflist for `net` (spec 1.0.0, what Debian's plugins 1.1.1 support at most).
pub fn default_conflist(net: &DefaultNetwork) -> Result<Value, CniError> {
    let (addr, prefix) = parse_pod_cidr(&net.pod_cidr)?;
    if net.bridge_name.is_empty()
        || net.bridge_name.len() > 15
        || net.bridge_name.contains(['/', ':', ' ', '\0'])
    {
        return Err(CniError::PodCidr {
            cidr: net.pod_cidr.clone(),
            why: format!(
                "bridge name {:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)",
                net.bridge_name
            ),
        });
    }
    let mut ipam = json!({
        "type": "host-local",
        "ranges": [[{"subnet": format!("{addr}/{prefix}")}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    });
    if let (Some(dir), Some(obj)) = (&net.ipam_data_dir, ipam.as_object_mut()) {
        obj.insert("dataDir".into(), Value::String(dir.display().to_string()));
    }
    Ok(json!({
        "cniVersion": "1.0.0",
        "name": DEFAULT_NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge_name,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": net.hairpin_mode == HairpinMode::HairpinVeth,
                "promiscMode": net.hairpin_mode == HairpinMode::PromiscuousBridge,
                "ipam": ipam,
            },
            {
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
            },
        ],
    }))
}

/// Write `conflist` as `<conf_dir>/10-minikubelet.conflist` (the dir made 0755 if missing; the
/// file 0644, written to a temporary name and renamed so that a reader never sees half of it)
/// and log it. Returns the file's path.
pub fn write_default_conflist(conf_dir: &Path, conflist: &Value) -> Result<PathBuf, CniError> {
    let path = conf_dir.join(DEFAULT_CONFLIST_FILE);
    let err = |source| CniError::WriteConfig {
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(conf_dir)
        .map_err(err)?;
    let mut bytes =
        serde_json::to_vec_pretty(conflist).map_err(|e| err(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    // The temporary name is no config extension: a concurrent load never picks it.
    super::write_file_atomically(&path, &bytes, 0o644).map_err(err)?;
    let bridge = &conflist["plugins"][0];
    tracing::info!(
        file = %path.display(),
        network = DEFAULT_NETWORK_NAME,
        subnet = %bridge["ipam"]["ranges"][0][0]["subnet"].as_str().unwrap_or(""),
        bridge = %bridge["bridge"].as_str().unwrap_or(""),
        hairpin_mode = %bridge["hairpinMode"],
        promisc_mode = %bridge["promiscMode"],
        "no CNI network config found: wrote a default bridge + host-local + portmap network for the pod CIDR"
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::NetworkConfigList;

    #[test]
    fn hairpin_modes_map_as_kubenet_did() {
        let cases = [
            ("hairpin-veth", true, false),
            ("promiscuous-bridge", false, true),
            ("none", false, false),
        ];
        for (mode, hairpin, promisc) in cases {
            let mode: HairpinMode = mode.parse().unwrap();
            let v = default_conflist(&DefaultNetwork::new("10.88.0.0/24", mode)).unwrap();
            let bridge = &v["plugins"][0];
            assert_eq!(bridge["hairpinMode"], hairpin, "{mode}");
            assert_eq!(bridge["promiscMode"], promisc, "{mode}");
            assert_eq!(mode.to_string().parse::<HairpinMode>().unwrap(), mode);
        }
        assert!("hairpin_veth".parse::<HairpinMode>().is_err());
        assert_eq!(HairpinMode::default(), HairpinMode::PromiscuousBridge);
    }

    #[test]
    fn the_hairpin_mode_of_a_users_bridge_config() {
        for mode in [
            HairpinMode::HairpinVeth,
            HairpinMode::PromiscuousBridge,
            HairpinMode::None,
        ] {
            let v = default_conflist(&DefaultNetwork::new("10.88.0.0/24", mode)).unwrap();
            let net = NetworkConfigList::from_value(&v, Path::new("x")).unwrap();
            assert_eq!(bridge_hairpin_mode(&net), Some(mode));
        }
        let ptp =
            serde_json::json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "ptp"}]});
        let net = NetworkConfigList::from_value(&ptp, Path::new("x")).unwrap();
        assert_eq!(bridge_hairpin_mode(&net), None);
    }

    #[test]
    fn the_default_network_is_bridge_host_local_portmap_at_1_0_0() {
        let mut net = DefaultNetwork::new("10.244.1.0/24", HairpinMode::HairpinVeth);
        net.ipam_data_dir = Some("/tmp/ipam".into());
        let v = default_conflist(&net).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], DEFAULT_NETWORK_NAME);
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "mkl0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(bridge["ipam"]["dataDir"], "/tmp/ipam");
        let portmap = &v["plugins"][1];
        assert_eq!(portmap["type"], "portmap");
        assert_eq!(portmap["capabilities"]["portMappings"], true);
        assert_eq!(portmap["snat"], true);
        // And it loads as any config does.
        let list = NetworkConfigList::from_value(&v, Path::new("<default>")).unwrap();
        assert_eq!(list.plugins[1].capabilities, ["portMappings"]);
        let without =
            default_conflist(&DefaultNetwork::new("10.0.0.0/8", HairpinMode::None)).unwrap();
        assert!(without["plugins"][0]["ipam"].get("dataDir").is_none());
    }

    #[test]
    fn pod_cidrs_are_checked() {
        assert!(parse_pod_cidr("10.88.0.0/24").is_ok());
        assert!(parse_pod_cidr("10.0.0.0/8").is_ok());
        assert!(parse_pod_cidr("192.168.5.4/30").is_ok());
        let cases = [
            ("10.88.0.0", "not an address/prefix"),
            ("10.88.0.1/24", "did you mean 10.88.0.0/24?"),
            ("10.88.0.0/31", "outside /8 to /30"),
            ("0.0.0.0/0", "outside /8 to /30"),
            ("fd00::/64", "IPv6"),
            ("ten/24", "not an IPv4 address"),
            ("10.0.0.0/x", "not a prefix length"),
        ];
        for (cidr, want) in cases {
            let err = parse_pod_cidr(cidr).unwrap_err().to_string();
            assert!(err.contains(want), "{cidr}: {err}");
            assert!(err.contains("--pod-cidr"), "{err}");
        }
        let mut net = DefaultNetwork::new("10.88.0.0/24", HairpinMode::None);
        net.bridge_name = "a-very-long-bridge-name".into();
        assert!(default_conflist(&net).is_err());
    }

    #[test]
    fn written_atomically_and_loaded_back_as_the_conf_dirs_network() {
        let d = tempfile::tempdir().unwrap();
        let conf_dir = d.path().join("net.d");
        let v = default_conflist(&DefaultNetwork::new(
            "10.88.0.0/24",
            HairpinMode::HairpinVeth,
        ))
        .unwrap();
        let path = write_default_conflist(&conf_dir, &v).unwrap();
        assert_eq!(path, conf_dir.join(DEFAULT_CONFLIST_FILE));
        let names: Vec<_> = std::fs::read_dir(&conf_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [DEFAULT_CONFLIST_FILE]);
        let net = NetworkConfigList::load(&conf_dir).unwrap().unwrap();
        assert_eq!(net.name, DEFAULT_NETWORK_NAME);
        assert_eq!(net.plugins.len(), 2);
    }
}
