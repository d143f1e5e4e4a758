//! Network statistics: the byte and error counters of a network namespace's interfaces, from
//! `/proc/<pid>/net/dev` (what cAdvisor reads for the kubelet's `NetworkStats`, and containerd
//! for a sandbox's). The loopback is left out, as cAdvisor leaves it out; the pod's default
//! interface is `eth0` (the kubelet's `network.DefaultInterfaceName`).

use super::types::{InterfaceStats, NetworkStats, Time};

/// The kubelet's default interface name (`pkg/kubelet/network` `DefaultInterfaceName`).
pub const DEFAULT_INTERFACE: &str = "eth0";

/// The most of `net/dev` read: a line per interface of about 120 bytes; a namespace with
/// thousands of interfaces is a node's, not a pod's.
const MAX_NET_DEV_BYTES: u64 = 1 << 20;

/// The interfaces of a `net/dev` file, but `lo`: name, rx bytes (column 1), rx errors (3), tx
/// bytes (9), tx errors (11). A line that does not parse is skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.is_empty() {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() >= 16).then(|| InterfaceStats {
                name: name.to_string(),
                rx_bytes: Some(v[0]),
                rx_errors: Some(v[2]),
                tx_bytes: Some(v[8]),
                tx_errors: Some(v[10]),
            })
        })
        .collect()
}

/// The network of the namespace `net_dev` (a `/proc/<pid>/net/dev` path) belongs to: its
/// interfaces, and at the top level the default one's counters (`eth0`, else the first).
pub fn read(net_dev: &std::path::Path) -> Option<NetworkStats> {
    let text = crate::sandbox::read_at_most(net_dev, MAX_NET_DEV_BYTES).ok()??;
    let interfaces = parse_net_dev(&text);
    let default = interfaces
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .or_else(|| interfaces.first())?
        .clone();
    Some(NetworkStats {
        time: Time::now(),
        default,
        interfaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    5240      40    1    0    0     0          0         0     2310      25    2    0    0     0       0          0
";

    #[test]
    fn counters_per_interface_without_the_loopback() {
        let i = parse_net_dev(NET_DEV);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].name, "eth0");
        assert_eq!(
            (i[0].rx_bytes, i[0].rx_errors, i[0].tx_bytes, i[0].tx_errors),
            (Some(5240), Some(1), Some(2310), Some(2))
        );
        assert!(parse_net_dev("a\nb\n  x: 1 2\n").is_empty());
    }
}
