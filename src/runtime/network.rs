//! The pod's network, as containerd's CRI plugin sets it up around a sandbox
//! (`internal/cri/server/sandbox_run.go` `setupPodNetwork`, `sandbox_stop.go`
//! `teardownPodNetwork`): the pod's pinned network namespace gets its loopback and the node's
//! CNI network (`crate::cni`), and the IPs on its `eth0` are the pod's.
//!
//! Which network, decided once at start ([`PodNetwork::new`]), as containerd and the kubelet
//! would have it: the first config in `--cni-conf-dir`; with none, the bridge network the agent
//! writes there for `--pod-cidr` (containerd's config template); with neither, pods keep the
//! node's network and each says why in an event ([`PodNetwork::node_network_reason`]), never a
//! pod with no network at all. The config is read again for every sandbox (a few hundred bytes),
//! so a config put in place later is used by the next pod, as go-cni's watcher would.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cni::{self, Cni, CniOptions, NetworkConfigList, RuntimeConf};

/// A pod's port with a `hostPort`, as the CRI's `PortMapping` carries it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// `hostPort`.
    pub host_port: u16,
    /// `containerPort`.
    pub container_port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// `hostIP`; empty: every address of the node.
    #[serde(default)]
    pub host_ip: String,
}

/// What the sandbox record keeps of its network, for the status and for teardown after a
/// restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxNetwork {
    /// The CNI network's name (the key of its cached result).
    pub name: String,
    /// The pod's IPs, `podIPs` order.
    pub ips: Vec<String>,
}

/// How pods get their network on this node.
#[derive(Debug)]
pub struct PodNetwork {
    cni: Cni,
    conf_dir: PathBuf,
    /// Why pods keep the node's network; `None`: they get their own through CNI.
    node_network: Option<String>,
}

/// Settings of [`PodNetwork::new`] (the agent's configuration).
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// `--cni-conf-dir`.
    pub conf_dir: PathBuf,
    /// `--cni-bin-dir`.
    pub bin_dirs: Vec<PathBuf>,
    /// `--cni-cache-dir`.
    pub cache_dir: PathBuf,
    /// `--pod-cidr`.
    pub pod_cidr: Option<String>,
    /// `--hairpin-mode`.
    pub hairpin_mode: cni::HairpinMode,
}

impl PodNetwork {
    /// Decides the node's pod network (see the module's header), writing the default bridge
    /// network for `pod_cidr` when the config dir has none. Never fails: a config that cannot be
    /// read or written leaves pods on the node's network, with the reason.
    pub fn new(opts: &NetworkOptions) -> PodNetwork {
        let cni = Cni::new(CniOptions {
            bin_dirs: opts.bin_dirs.clone(),
            cache_dir: opts.cache_dir.clone(),
            timeout: cni::DEFAULT_TIMEOUT,
        });
        let node_network = match NetworkConfigList::load(&opts.conf_dir) {
            Ok(Some(net)) => {
                if let Some(mode) = cni::bridge_hairpin_mode(&net)
                    && mode != opts.hairpin_mode
                {
                    tracing::warn!(network = %net.name, config = %mode, flag = %opts.hairpin_mode,
                        "the CNI config's bridge hairpin setting differs from --hairpin-mode: the config wins, as with the kubelet");
                }
                tracing::info!(network = %net.name, conf_dir = %opts.conf_dir.display(), "pods get their network from CNI");
                None
            }
            Ok(None) => match &opts.pod_cidr {
                Some(cidr) => {
                    let mut def = cni::DefaultNetwork::new(cidr, opts.hairpin_mode);
                    def.ipam_data_dir = Some(opts.cache_dir.join("networks"));
                    match cni::default_conflist(&def)
                        .and_then(|v| cni::write_default_conflist(&opts.conf_dir, &v))
                    {
                        Ok(path) => {
                            tracing::info!(path = %path.display(), pod_cidr = %cidr, hairpin_mode = %opts.hairpin_mode,
                                "no CNI config: wrote a bridge network for --pod-cidr, as containerd's config template does");
                            None
                        }
                        Err(e) => Some(format!(
                            "the default bridge network for --pod-cidr={cidr} could not be written: {e}"
                        )),
                    }
                }
                None => Some(format!(
                    "no CNI network config in {} and no --pod-cidr",
                    opts.conf_dir.display()
                )),
            },
            Err(e) => Some(format!("the CNI network config cannot be used: {e}")),
        };
        if let Some(why) = &node_network {
            tracing::warn!(reason = %why, "pods keep the node's network (docs/networking.md)");
        }
        PodNetwork {
            cni,
            conf_dir: opts.conf_dir.clone(),
            node_network,
        }
    }

    /// Why pods keep the node's network, or `None` when they get their own.
    pub fn node_network_reason(&self) -> Option<&str> {
        self.node_network.as_deref()
    }

    /// `setupPodNetwork`: the loopback, then the node's network, in the namespace at `netns`.
    /// On failure, what was added is deleted again and the error is containerd's message
    /// (`failed to setup network for sandbox "<id>": ...`).
    pub fn setup(
        &self,
        sandbox_id: &str,
        netns: &Path,
        pod: (&str, &str, &str),
        ports: &[PortMapping],
    ) -> Result<SandboxNetwork, String> {
        let (namespace, name, uid) = pod;
        let net = match NetworkConfigList::load(&self.conf_dir) {
            Ok(Some(net)) => net,
            Ok(None) => {
                return Err(format!(
                    "failed to setup network for sandbox {sandbox_id:?}: cni config uninitialized: no network config in {}",
                    self.conf_dir.display()
                ));
            }
            Err(e) => return Err(cni::setup_error_message(sandbox_id, &e)),
        };
        let mappings: Vec<cni::PortMapping> = ports
            .iter()
            .map(|p| cni::PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol.to_ascii_lowercase(),
                host_ip: p.host_ip.clone(),
            })
            .collect();
        let rt = RuntimeConf::for_pod(sandbox_id, netns, namespace, name, uid);
        let lo = NetworkConfigList::loopback();
        let lo_rt = RuntimeConf {
            ifname: "lo".into(),
            ..rt.clone()
        };
        if let Err(e) = self.cni.add(&lo, &lo_rt) {
            let _ = self.cni.del(&lo, &lo_rt);
            return Err(cni::setup_error_message(sandbox_id, &e));
        }
        let rt = rt.with_port_mappings(&mappings);
        match self.cni.add(&net, &rt) {
            Ok(res) if !res.pod_ips.is_empty() => Ok(SandboxNetwork {
                name: net.name.clone(),
                ips: order_ips(&res.pod_ips),
            }),
            Ok(_) => {
                self.delete(&net, &rt, &lo, &lo_rt);
                Err(format!(
                    "failed to find network info for sandbox {sandbox_id:?}: network {:?} put no address on {}",
                    net.name,
                    cni::DEFAULT_IFNAME
                ))
            }
            Err(e) => {
                self.delete(&net, &rt, &lo, &lo_rt);
                Err(cni::setup_error_message(sandbox_id, &e))
            }
        }
    }

    fn delete(
        &self,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
        lo: &NetworkConfigList,
        lo_rt: &RuntimeConf,
    ) {
        if let Err(e) = self.cni.del(net, rt) {
            tracing::warn!(container_id = %rt.container_id, network = %net.name, error = %e, "CNI DEL after a failed ADD");
        }
        let _ = self.cni.del(lo, lo_rt);
    }

    /// `teardownPodNetwork`: DEL of the network the sandbox was given (its config as cached at
    /// ADD, else today's), then of the loopback; before the namespace goes (a DEL without it
    /// cannot reach the pod's end of the veth). A network that was never set up: nothing.
    pub fn teardown(
        &self,
        sandbox_id: &str,
        netns: &Path,
        network: &SandboxNetwork,
    ) -> Result<(), String> {
        let rt = RuntimeConf::for_pod(sandbox_id, netns, "", "", "");
        let net = match self
            .cni
            .cached(&network.name, sandbox_id, cni::DEFAULT_IFNAME)
        {
            Ok(Some(entry)) => NetworkConfigList::from_value(
                &serde_json::from_slice(&entry.config).unwrap_or_default(),
                Path::new("cache"),
            )
            .ok(),
            _ => None,
        };
        let net = match net {
            Some(n) => n,
            None => match NetworkConfigList::load(&self.conf_dir) {
                Ok(Some(n)) if n.name == network.name => n,
                _ => {
                    return Err(format!(
                        "no config of network {:?} to tear sandbox {sandbox_id} down with",
                        network.name
                    ));
                }
            },
        };
        let res = self
            .cni
            .del(&net, &rt)
            .map_err(|e| format!("failed to destroy network for sandbox {sandbox_id:?}: {e}"));
        let lo_rt = RuntimeConf {
            ifname: "lo".into(),
            ..rt
        };
        let _ = self.cni.del(&NetworkConfigList::loopback(), &lo_rt);
        res
    }
}

/// Writes the pod's network sysctls in its namespace at `netns`, once its network is set up
/// (containerd's runc writes them when the sandbox starts, after CNI, so that `eth0` exists),
/// from a short-lived thread that enters the namespace: no thread of the agent stays there.
pub fn write_sysctls(netns: &Path, sysctls: &[(String, String)]) -> Result<(), String> {
    let net: Vec<(String, String)> = sysctls
        .iter()
        .filter(|(n, _)| crate::sysctl::namespaced_by(n) == crate::sysctl::Namespace::Net)
        .cloned()
        .collect();
    if net.is_empty() {
        return Ok(());
    }
    let netns = netns.to_path_buf();
    std::thread::Builder::new()
        .name("mkl-net-sysctls".into())
        .spawn(move || -> Result<(), String> {
            let f = std::fs::File::open(&netns)
                .map_err(|e| format!("open {}: {e}", netns.display()))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("enter {}: {e}", netns.display()))?;
            for (name, value) in &net {
                let path = crate::sysctl::proc_sys_path(name)
                    .ok_or_else(|| format!("sysctl {name}: not a plain name"))?;
                std::fs::write(&path, value.as_bytes())
                    .map_err(|e| format!("sysctl {name}={value}: {e}"))?;
            }
            Ok(())
        })
        .map_err(|e| format!("start a thread for the pod's sysctls: {e}"))?
        .join()
        .map_err(|_| "the sysctl thread panicked".to_string())?
}

/// IPv4 first, then IPv6 (the kubelet's `podIPs` order), as strings.
fn order_ips(ips: &[IpAddr]) -> Vec<String> {
    let mut v: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv4()).collect();
    v.extend(ips.iter().filter(|ip| ip.is_ipv6()));
    v.into_iter().map(|ip| ip.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, pod_cidr: Option<&str>) -> NetworkOptions {
        NetworkOptions {
            conf_dir: dir.join("net.d"),
            bin_dirs: vec![dir.join("bin")],
            cache_dir: dir.join("cache"),
            pod_cidr: pod_cidr.map(str::to_string),
            hairpin_mode: cni::HairpinMode::HairpinVeth,
        }
    }

    #[test]
    fn the_node_network_without_config_or_pod_cidr() {
        let tmp = tempfile::tempdir().unwrap();
        let n = PodNetwork::new(&opts(tmp.path(), None));
        assert!(
            n.node_network_reason()
                .unwrap()
                .contains("no CNI network config in"),
        );
    }

    #[test]
    fn a_pod_cidr_writes_the_default_bridge_network() {
        let tmp = tempfile::tempdir().unwrap();
        let n = PodNetwork::new(&opts(tmp.path(), Some("10.77.0.0/24")));
        assert_eq!(n.node_network_reason(), None);
        let net = NetworkConfigList::load(&tmp.path().join("net.d"))
            .unwrap()
            .unwrap();
        assert_eq!(
            cni::bridge_hairpin_mode(&net),
            Some(cni::HairpinMode::HairpinVeth)
        );
        // Once written, the config is the node's: a second start reads it.
        let again = PodNetwork::new(&opts(tmp.path(), None));
        assert_eq!(again.node_network_reason(), None);
    }

    #[test]
    fn ipv4_first() {
        let ips: Vec<IpAddr> = vec!["fd00::2".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(order_ips(&ips), ["10.0.0.2", "fd00::2"]);
    }
}
