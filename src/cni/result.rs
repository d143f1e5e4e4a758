//! A plugin's ADD result, parsed and checked, and the pod IPs containerd reads from it.
//!
//! The result shapes of spec 0.3.0, 0.3.1, 0.4.0 and 1.0.0 (`pkg/types/040`, `pkg/types/100`)
//! are one shape here: 1.0.0 dropped the per-IP `version` field ("4"/"6"), which is checked
//! against the address when present. 1.1.0 results are the 1.0.0 shape. The 0.1.0/0.2.0
//! shape (`ip4`/`ip6`) is refused: no plugin of the last years writes it.
//!
//! The pod IPs follow containerd (`sandbox_run.go` `setupPodNetwork` + `selectPodIPs`, go-cni
//! `createResult`): the IPs on the interface called like the pod's (`eth0`), where an IP with
//! no `interface` index counts as on it; the first IPv4 one is the pod IP, the others follow in
//! order, as the kubelet orders `podIPs`.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// Bounds on what a result may list: real ones have a handful of each.
const MAX_INTERFACES: usize = 64;
const MAX_IPS: usize = 64;
const MAX_ROUTES: usize = 1024;
const MAX_DNS_ENTRIES: usize = 64;

/// What is wrong with a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResultError {
    #[error("result is not JSON: {0}")]
    Json(String),
    #[error(
        "result cniVersion {0:?} is not one this agent reads (0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
    )]
    Version(String),
    #[error("result {field}: {why}")]
    Invalid { field: String, why: String },
}

/// An address with its prefix length (`10.88.0.5/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IpNet {
    /// `a.b.c.d/n` or `x::y/n`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix_len: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(IpNet { addr, prefix_len })
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An interface the plugins made or know of (`interfaces[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// The netns path for an interface inside the pod; `None` for one on the node (the bridge,
    /// the host end of the veth).
    pub sandbox: Option<String>,
}

/// An address given to an interface (`ips[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
}

/// A route (`routes[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

/// DNS settings a plugin suggests (`dns`); the kubelet's own resolv.conf rules come first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// A checked result, with the JSON it came from (passed on as the next plugin's `prevResult`
/// and kept in the result cache).
#[derive(Clone, Debug, PartialEq)]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
    raw: Value,
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default)]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    ips: Vec<RawIp>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    dns: Dns,
    // 0.1.0/0.2.0's shape, to name it in the error.
    ip4: Option<Value>,
    ip6: Option<Value>,
}

#[derive(Deserialize)]
struct RawInterface {
    name: String,
    mac: Option<String>,
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct RawIp {
    /// 0.3.x/0.4.0 only: "4" or "6".
    version: Option<String>,
    address: String,
    gateway: Option<String>,
    interface: Option<i64>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    gw: Option<String>,
}

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl CniResult {
    /// Parse a plugin's stdout. A result without `cniVersion` has the config's
    /// (`config_version`), as libcni's `fixupResultVersion` decides.
    pub fn parse(bytes: &[u8], config_version: &str) -> Result<CniResult, ResultError> {
        let raw: Value =
            serde_json::from_slice(bytes).map_err(|e| ResultError::Json(e.to_string()))?;
        CniResult::from_value(raw, config_version)
    }

    /// [`CniResult::parse`] of JSON already read (the cache's `result`).
    pub fn from_value(mut raw: Value, config_version: &str) -> Result<CniResult, ResultError> {
        let r: RawResult =
            serde_json::from_value(raw.clone()).map_err(|e| ResultError::Json(e.to_string()))?;
        let invalid = |field: String, why: String| ResultError::Invalid { field, why };
        let cni_version = r.cni_version.unwrap_or_else(|| config_version.to_string());
        if !VERSIONS.contains(&cni_version.as_str()) {
            let shape = if r.ip4.is_some() || r.ip6.is_some() {
                format!("{cni_version} (the ip4/ip6 shape of spec 0.2.0)")
            } else {
                cni_version
            };
            return Err(ResultError::Version(shape));
        }
        if let Value::Object(m) = &mut raw {
            m.insert("cniVersion".into(), Value::String(cni_version.clone()));
        }
        if r.interfaces.len() > MAX_INTERFACES
            || r.ips.len() > MAX_IPS
            || r.routes.len() > MAX_ROUTES
        {
            return Err(invalid(
                "".into(),
                format!(
                    "{} interfaces, {} ips, {} routes: more than {MAX_INTERFACES}/{MAX_IPS}/{MAX_ROUTES}",
                    r.interfaces.len(),
                    r.ips.len(),
                    r.routes.len()
                ),
            ));
        }
        let dns_len = r.dns.nameservers.len() + r.dns.search.len() + r.dns.options.len();
        if dns_len > MAX_DNS_ENTRIES {
            return Err(invalid("dns".into(), format!("{dns_len} entries")));
        }
        let interfaces: Vec<Interface> = r
            .interfaces
            .into_iter()
            .enumerate()
            .map(|(i, itf)| {
                if itf.name.is_empty() {
                    return Err(invalid(format!("interfaces[{i}].name"), "is empty".into()));
                }
                Ok(Interface {
                    name: itf.name,
                    mac: itf.mac.filter(|m| !m.is_empty()),
                    sandbox: itf.sandbox.filter(|s| !s.is_empty()),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut ips = Vec::with_capacity(r.ips.len());
        for (i, ip) in r.ips.into_iter().enumerate() {
            let address = IpNet::parse(&ip.address).ok_or_else(|| {
                invalid(
                    format!("ips[{i}].address"),
                    format!("{:?} is not an address/prefix", ip.address),
                )
            })?;
            if let Some(v) = &ip.version {
                let want = if address.addr.is_ipv4() { "4" } else { "6" };
                if v != want {
                    return Err(invalid(
                        format!("ips[{i}].version"),
                        format!("{v:?} but the address is IPv{want}"),
                    ));
                }
            }
            let gateway = match ip.gateway.as_deref() {
                None | Some("") => None,
                Some(g) => {
                    let g: IpAddr = g.parse().map_err(|_| {
                        invalid(
                            format!("ips[{i}].gateway"),
                            format!("{g:?} is not an address"),
                        )
                    })?;
                    if g.is_ipv4() != address.addr.is_ipv4() {
                        return Err(invalid(
                            format!("ips[{i}].gateway"),
                            format!("{g} is not of the address's family"),
                        ));
                    }
                    Some(g)
                }
            };
            let interface = match ip.interface {
                None => None,
                Some(n) if n >= 0 && (n as usize) < interfaces.len() => Some(n as usize),
                Some(n) => {
                    return Err(invalid(
                        format!("ips[{i}].interface"),
                        format!(
                            "{n} is not an index into the {} interfaces",
                            interfaces.len()
                        ),
                    ));
                }
            };
            ips.push(IpConfig {
                address,
                gateway,
                interface,
            });
        }
        let mut routes = Vec::with_capacity(r.routes.len());
        for (i, rt) in r.routes.into_iter().enumerate() {
            let dst = IpNet::parse(&rt.dst).ok_or_else(|| {
                invalid(
                    format!("routes[{i}].dst"),
                    format!("{:?} is not an address/prefix", rt.dst),
                )
            })?;
            let gw = match rt.gw.as_deref() {
                None | Some("") => None,
                Some(g) => Some(g.parse().map_err(|_| {
                    invalid(
                        format!("routes[{i}].gw"),
                        format!("{g:?} is not an address"),
                    )
                })?),
            };
            routes.push(Route { dst, gw });
        }
        Ok(CniResult {
            cni_version,
            interfaces,
            ips,
            routes,
            dns: r.dns,
            raw,
        })
    }

    /// The result as JSON, `cniVersion` filled in.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The pod's IPs as containerd picks them: the addresses on the interface `ifname`
    /// (an IP with no interface index counts as on it, as go-cni's `getInterfaceName` says),
    /// the first IPv4 one first, then the rest in the plugin's order (`selectPodIPs` with the
    /// default `ip_pref` "ipv4").
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpAddr> {
        let on_ifname: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => self.interfaces.get(i).is_some_and(|itf| itf.name == ifname),
            })
            .map(|ip| ip.address.addr)
            .collect();
        match on_ifname.iter().position(IpAddr::is_ipv4) {
            Some(i) => {
                let mut out = vec![on_ifname[i]];
                out.extend(on_ifname[..i].iter().chain(&on_ifname[i + 1..]));
                out
            }
            None => on_ifname,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's bridge plugin 1.1.1 prints for a 1.0.0 config (captured in tests/cni.rs).
    const BRIDGE_100: &str = r#"{"cniVersion":"1.0.0",
        "interfaces":[{"name":"mkl0","mac":"aa:bb:cc:00:00:01"},
                      {"name":"veth1234","mac":"aa:bb:cc:00:00:02"},
                      {"name":"eth0","mac":"aa:bb:cc:00:00:03","sandbox":"/run/netns/p"}],
        "ips":[{"interface":2,"address":"10.88.0.2/24","gateway":"10.88.0.1"}],
        "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;

    #[test]
    fn a_1_0_0_bridge_result() {
        let r = CniResult::parse(BRIDGE_100.as_bytes(), "1.0.0").unwrap();
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.interfaces[2].sandbox.as_deref(), Some("/run/netns/p"));
        assert_eq!(r.interfaces[0].sandbox, None);
        assert_eq!(r.ips[0].address.to_string(), "10.88.0.2/24");
        assert_eq!(r.ips[0].gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(
            r.pod_ips("eth0"),
            vec!["10.88.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.pod_ips("net1"), Vec::<IpAddr>::new());
    }

    #[test]
    fn a_0_3_1_and_0_4_0_result_with_ip_versions() {
        // What the loopback plugin prints for go-cni's 0.3.1 network.
        let lo = r#"{"cniVersion":"0.3.1","interfaces":[{"name":"lo","mac":"00:00:00:00:00:00","sandbox":"/run/netns/p"}],
            "ips":[{"version":"4","interface":0,"address":"127.0.0.1/8"},{"version":"6","interface":0,"address":"::1/128"}],"dns":{}}"#;
        let r = CniResult::parse(lo.as_bytes(), "0.3.1").unwrap();
        assert_eq!(r.cni_version, "0.3.1");
        assert_eq!(r.pod_ips("lo").len(), 2);
        let bad = lo.replace(r#""version":"6""#, r#""version":"4""#);
        let err = CniResult::parse(bad.as_bytes(), "0.3.1").unwrap_err();
        assert!(err.to_string().contains("ips[1].version"), "{err}");
        let v040 = lo.replace("0.3.1", "0.4.0");
        assert_eq!(
            CniResult::parse(v040.as_bytes(), "0.4.0")
                .unwrap()
                .cni_version,
            "0.4.0"
        );
    }

    #[test]
    fn ipv4_first_then_the_rest_in_order() {
        let dual = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"x"},{"name":"veth0"}],
            "ips":[{"interface":0,"address":"fd00::5/64"},{"interface":1,"address":"192.168.9.9/32"},
                   {"address":"10.1.0.5/24"},{"interface":0,"address":"fd00::6/64"}]}"#;
        let r = CniResult::parse(dual.as_bytes(), "1.0.0").unwrap();
        let ips: Vec<String> = r.pod_ips("eth0").iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.1.0.5", "fd00::5", "fd00::6"]);
    }

    #[test]
    fn a_result_without_version_takes_the_configs() {
        let r = CniResult::parse(br#"{"ips":[{"address":"10.0.0.2/8"}]}"#, "1.0.0").unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.raw()["cniVersion"], "1.0.0");
    }

    #[test]
    fn bad_results_are_refused_with_the_field() {
        let cases = [
            ("not json", "not JSON"),
            (
                r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/8"}}"#,
                "ip4/ip6 shape",
            ),
            (r#"{"cniVersion":"9.9.9"}"#, "\"9.9.9\""),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2"}]}"#,
                "ips[0].address",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/33"}]}"#,
                "ips[0].address",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8","interface":0}]}"#,
                "ips[0].interface",
            ),
            (
                r#"{"cniVersion":"1.0.0","interfaces":[{"name":"a"}],"ips":[{"address":"10.0.0.2/8","interface":-1}]}"#,
                "ips[0].interface",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8","gateway":"fd00::1"}]}"#,
                "ips[0].gateway",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8","gateway":"x"}]}"#,
                "ips[0].gateway",
            ),
            (
                r#"{"cniVersion":"1.0.0","routes":[{"dst":"default"}]}"#,
                "routes[0].dst",
            ),
            (
                r#"{"cniVersion":"1.0.0","interfaces":[{"name":""}]}"#,
                "interfaces[0].name",
            ),
            (r#"{"cniVersion":"1.0.0","ips":{}}"#, "not JSON"),
        ];
        for (text, want) in cases {
            let err = CniResult::parse(text.as_bytes(), "1.0.0")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let many = format!(
            r#"{{"cniVersion":"1.0.0","routes":[{}]}}"#,
            vec![r#"{"dst":"10.0.0.0/8"}"#; MAX_ROUTES + 1].join(",")
        );
        assert!(CniResult::parse(many.as_bytes(), "1.0.0").is_err());
    }
}
