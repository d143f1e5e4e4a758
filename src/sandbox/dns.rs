//! A pod's `/etc/resolv.conf`, by the kubelet's rules (`pkg/kubelet/network/dns/dns.go`,
//! `Configurer.GetPodDNS`): the DNS type from `dnsPolicy` (`ClusterFirst` falls back to
//! `Default` on the host network and, with a warning event, when no `--cluster-dns` is set),
//! the node's resolv.conf (`--resolv-conf`) as the base, `dnsConfig` merged on top, and the
//! API's limits (3 nameservers, 32 search domains, 2048 characters) applied with the kubelet's
//! `DNSConfigForming` events. The file is written in containerd's format (`parseDNSOptions`:
//! `search`, then `nameserver` lines, then `options`).
//!
//! Deviation: the kubelet's options come out of a Go map, in random order; here they keep
//! the order in which they first appear (node file, then `dnsConfig`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// `MaxDNSNameservers` (`pkg/apis/core/validation`): glibc reads at most 3.
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// `MaxDNSSearchPaths` (the `ExpandedDNSConfig` limit, GA since 1.28).
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// `MaxDNSSearchListChars` (the `ExpandedDNSConfig` limit).
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
/// `DNS1123SubdomainMaxLength`: longer search paths make some resolvers (glibc 2.28) abort.
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// `maxResolveConfLength` (10 MiB): the most of the node's resolv.conf the kubelet reads; a
/// bound against a huge or endless file, far above any real one.
const MAX_RESOLV_CONF_LENGTH: u64 = 10 << 20;
/// `defaultDNSOptions`.
const DEFAULT_DNS_OPTIONS: [&str; 1] = ["ndots:5"];

/// Event reason: a limit cut the pod's DNS configuration (warning on the pod).
pub const REASON_DNS_CONFIG_FORMING: &str = "DNSConfigForming";
/// Event reason: `ClusterFirst` without `--cluster-dns` (warning on the node and the pod).
pub const REASON_MISSING_CLUSTER_DNS: &str = "MissingClusterDNS";
/// Event reason: the node's resolv.conf exceeds a limit (warning on the node).
pub const REASON_CHECK_LIMITS_FOR_RESOLV_CONF: &str = "CheckLimitsForResolvConf";

/// Errors forming a pod's DNS configuration.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The node's resolv.conf could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file (`--resolv-conf`).
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The node's resolv.conf is larger than the kubelet reads (`utilio.ReadAtMost`).
    #[error("{path}: the read limit is reached")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A `nameserver` line without an address (the kubelet's message, trailing space included).
    #[error("nameserver list is empty ")]
    EmptyNameserver,
}

/// What the runtime gets for a pod (CRI `DNSConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

impl DnsConfig {
    /// The resolv.conf text, as containerd writes it (`parseDNSOptions`). Empty if all three
    /// lists are empty: then containerd copies the node's file instead.
    pub fn resolv_conf(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s += &format!("search {}\n", self.searches.join(" "));
        }
        for ns in &self.servers {
            s += &format!("nameserver {ns}\n");
        }
        if !self.options.is_empty() {
            s += &format!("options {}\n", self.options.join(" "));
        }
        s
    }
}

/// Where a DNS event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventTarget {
    /// The node object.
    Node,
    /// The pod.
    Pod,
}

/// A warning event the kubelet would record while forming a pod's DNS; the caller records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsEvent {
    /// Node or pod.
    pub target: EventTarget,
    /// The reason (`REASON_*`).
    pub reason: &'static str,
    /// The kubelet's message.
    pub message: String,
}

impl DnsEvent {
    /// Record this warning on `pod` or on the node `node_name`, as the kubelet does.
    pub fn record(&self, recorder: &crate::events::EventRecorder, pod: &Pod, node_name: &str) {
        let object = match self.target {
            EventTarget::Node => crate::events::ObjectRef::node(node_name),
            EventTarget::Pod => crate::events::ObjectRef::pod(pod),
        };
        recorder.event(
            object,
            crate::events::EventType::Warning,
            self.reason,
            self.message.clone(),
        );
    }
}

/// The kubelet's DNS configurer: `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
#[derive(Clone, Debug, Default)]
pub struct Configurer {
    /// `--cluster-dns`: empty means none.
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain`: empty means none (no cluster search domains).
    pub cluster_domain: String,
    /// `--resolv-conf`: `None` for the empty string (no node file: 127.0.0.1, search `.`).
    pub resolv_conf: Option<PathBuf>,
    /// The node's IPs (for the empty `--resolv-conf` case: `::1` for IPv6 ones).
    pub node_ips: Vec<IpAddr>,
}

/// The parsed node resolv.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines accumulate.
    pub nameservers: Vec<String>,
    /// The last `search` line wins (trailing dots trimmed, `.` dropped).
    pub searches: Vec<String>,
    /// `options` lines accumulate, a later option replacing an earlier one of the same name.
    pub options: Vec<String>,
}

/// `parseResolvConf`.
pub fn parse_resolv_conf(text: &str) -> Result<ResolvConf, DnsError> {
    let mut out = ResolvConf::default();
    let mut empty_nameserver = false;
    for line in text.split('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        match fields.first() {
            Some(&"nameserver") => match fields.get(1) {
                Some(ns) => out.nameservers.push(ns.to_string()),
                None => empty_nameserver = true,
            },
            Some(&"search") => {
                out.searches = fields[1..]
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                    .collect();
            }
            Some(&"options") => {
                for o in &fields[1..] {
                    merge_option(&mut out.options, o.to_string());
                }
            }
            _ => {}
        }
    }
    if empty_nameserver {
        return Err(DnsError::EmptyNameserver);
    }
    Ok(out)
}

fn option_name(o: &str) -> &str {
    o.split(':').next().unwrap_or(o)
}

/// Put `opt` into `options`, replacing one of the same name in place.
fn merge_option(options: &mut Vec<String>, opt: String) {
    match options
        .iter_mut()
        .find(|o| option_name(o) == option_name(&opt))
    {
        Some(o) => *o = opt,
        None => options.push(opt),
    }
}

fn omit_duplicates(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// Read at most `MAX_RESOLV_CONF_LENGTH` of `path` (`utilio.ReadAtMost`).
fn read_bounded(path: &Path) -> Result<String, DnsError> {
    super::read_at_most(path, MAX_RESOLV_CONF_LENGTH)
        .map_err(|source| DnsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| DnsError::TooLarge {
            path: path.to_path_buf(),
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PodDnsType {
    Cluster,
    Host,
    None,
}

fn pod_dns_type(pod: &Pod) -> PodDnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => PodDnsType::None,
        Some("ClusterFirstWithHostNet") => PodDnsType::Cluster,
        Some("Default") => PodDnsType::Host,
        Some("ClusterFirst") | None | Some("") if host_network => PodDnsType::Host,
        // ClusterFirst, and (as the kubelet, after logging) anything validation let through.
        _ => PodDnsType::Cluster,
    }
}

/// `format.Pod`: `name_namespace(uid)`.
fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

impl Configurer {
    fn host_dns_config(&self) -> Result<DnsConfig, DnsError> {
        let Some(path) = &self.resolv_conf else {
            return Ok(DnsConfig::default());
        };
        let r = parse_resolv_conf(&read_bounded(path)?)?;
        Ok(DnsConfig {
            servers: r.nameservers,
            searches: r.searches,
            options: r.options,
        })
    }

    fn cluster_searches(&self, host_search: Vec<String>, namespace: &str) -> Vec<String> {
        if self.cluster_domain.is_empty() {
            return host_search;
        }
        let d = &self.cluster_domain;
        let mut v = vec![
            format!("{namespace}.svc.{d}"),
            format!("svc.{d}"),
            d.clone(),
        ];
        v.extend(host_search);
        omit_duplicates(v)
    }

    /// `GetPodDNS`: the pod's DNS configuration; warnings the kubelet would record are pushed
    /// to `events`.
    pub fn pod_dns(&self, pod: &Pod, events: &mut Vec<DnsEvent>) -> Result<DnsConfig, DnsError> {
        let mut cfg = self.host_dns_config()?;
        let mut ty = pod_dns_type(pod);
        if ty == PodDnsType::Cluster {
            if self.cluster_dns.is_empty() {
                let node_msg = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
                events.push(DnsEvent {
                    target: EventTarget::Node,
                    reason: REASON_MISSING_CLUSTER_DNS,
                    message: node_msg.to_string(),
                });
                events.push(DnsEvent {
                    target: EventTarget::Pod,
                    reason: REASON_MISSING_CLUSTER_DNS,
                    message: format!("pod: {:?}. {node_msg}", format_pod(pod)),
                });
                ty = PodDnsType::Host;
            } else {
                cfg.servers = self.cluster_dns.iter().map(|ip| ip.to_string()).collect();
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                cfg.searches = self.cluster_searches(std::mem::take(&mut cfg.searches), ns);
                cfg.options = DEFAULT_DNS_OPTIONS.iter().map(|s| s.to_string()).collect();
            }
        }
        match ty {
            PodDnsType::None => cfg = DnsConfig::default(),
            PodDnsType::Host if self.resolv_conf.is_none() => {
                // No node file: "the nameserver on the local machine", and no search.
                for ip in &self.node_ips {
                    cfg.servers
                        .push(if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.into());
                }
                if cfg.servers.is_empty() {
                    cfg.servers.push("127.0.0.1".into());
                }
                cfg.searches = vec![".".into()];
            }
            _ => {}
        }
        if let Some(dc) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
            cfg.servers.extend(dc.nameservers.iter().flatten().cloned());
            cfg.servers = omit_duplicates(cfg.servers);
            cfg.searches.extend(dc.searches.iter().flatten().cloned());
            cfg.searches = omit_duplicates(cfg.searches);
            for o in dc.options.iter().flatten() {
                let name = o.name.clone().unwrap_or_default();
                let opt = match o.value.as_deref() {
                    Some(v) if !v.is_empty() => format!("{name}:{v}"),
                    _ => name,
                };
                merge_option(&mut cfg.options, opt);
            }
        }
        Ok(fit_limits(cfg, events))
    }

    /// `CheckLimitsForResolvConf`: a warning for the node when its resolv.conf has more search
    /// domains or characters than a pod can take.
    pub fn check_limits_for_resolv_conf(&self) -> Option<DnsEvent> {
        let path = self.resolv_conf.as_ref()?;
        let ev = |message: String| {
            Some(DnsEvent {
                target: EventTarget::Node,
                reason: REASON_CHECK_LIMITS_FOR_RESOLV_CONF,
                message,
            })
        };
        let r = match read_bounded(path).and_then(|t| parse_resolv_conf(&t)) {
            Ok(r) => r,
            Err(e) => return ev(e.to_string()),
        };
        let mut limit = MAX_DNS_SEARCH_PATHS;
        if !self.cluster_domain.is_empty() {
            limit -= 3;
        }
        let p = path.display();
        if r.searches.len() > limit {
            return ev(format!(
                "Resolv.conf file '{p}' contains search line consisting of more than {limit} domains!"
            ));
        }
        if r.searches
            .iter()
            .any(|s| s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH)
        {
            return ev(format!(
                "Resolv.conf file {:?} contains a search path which length is more than allowed {DNS1123_SUBDOMAIN_MAX_LENGTH} chars!",
                p.to_string()
            ));
        }
        if r.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
            return ev(format!(
                "Resolv.conf file '{p}' contains search line which length is more than allowed {MAX_DNS_SEARCH_LIST_CHARS} chars!"
            ));
        }
        None
    }
}

/// `formDNSConfigFitsLimits`.
fn fit_limits(mut cfg: DnsConfig, events: &mut Vec<DnsEvent>) -> DnsConfig {
    if cfg.servers.len() > MAX_DNS_NAMESERVERS {
        cfg.servers.truncate(MAX_DNS_NAMESERVERS);
        events.push(DnsEvent {
            target: EventTarget::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                cfg.servers.join(" ")
            ),
        });
    }
    let mut exceeded = false;
    if cfg.searches.len() > MAX_DNS_SEARCH_PATHS {
        cfg.searches.truncate(MAX_DNS_SEARCH_PATHS);
        exceeded = true;
    }
    let before = cfg.searches.len();
    cfg.searches
        .retain(|s| s.len() <= DNS1123_SUBDOMAIN_MAX_LENGTH);
    exceeded |= cfg.searches.len() != before;
    let mut line_len = cfg.searches.join(" ").len();
    if line_len > MAX_DNS_SEARCH_LIST_CHARS {
        // Drop domains from the end until the line fits (the kubelet counts one separator
        // per dropped domain).
        while line_len > MAX_DNS_SEARCH_LIST_CHARS {
            match cfg.searches.pop() {
                Some(s) => line_len = line_len.saturating_sub(s.len() + 1),
                None => break,
            }
        }
        exceeded = true;
    }
    if exceeded {
        events.push(DnsEvent {
            target: EventTarget::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                cfg.searches.join(" ")
            ),
        });
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        crate::sandbox::test_pod("web", spec)
    }

    const NODE: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example. lab.example .\noptions timeout:2 ndots:1\noptions timeout:3\n";

    fn configurer(dir: &Path, cluster_dns: &[&str]) -> Configurer {
        let path = dir.join("resolv.conf");
        std::fs::write(&path, NODE).unwrap();
        Configurer {
            cluster_dns: cluster_dns.iter().map(|s| s.parse().unwrap()).collect(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: Some(path),
            node_ips: vec!["10.0.0.5".parse().unwrap()],
        }
    }

    #[test]
    fn parse_follows_the_kubelet() {
        let r = parse_resolv_conf(NODE).unwrap();
        assert_eq!(r.nameservers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(r.searches, ["corp.example", "lab.example"]);
        assert_eq!(r.options, ["timeout:3", "ndots:1"]);
        let e = parse_resolv_conf("nameserver\n").unwrap_err();
        assert_eq!(e.to_string(), "nameserver list is empty ");
    }

    #[test]
    fn policies_give_the_kubelets_files() {
        let d = tempfile::tempdir().unwrap();
        let with_dns = configurer(d.path(), &["10.96.0.10"]);
        let without = configurer(d.path(), &[]);
        let cases: Vec<(&str, &Configurer, serde_json::Value, &str, usize)> = vec![
            (
                "ClusterFirst",
                &with_dns,
                serde_json::json!({"dnsPolicy": "ClusterFirst"}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
                0,
            ),
            (
                "ClusterFirst on the host network is Default",
                &with_dns,
                serde_json::json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
                "search corp.example lab.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:3 ndots:1\n",
                0,
            ),
            (
                "ClusterFirstWithHostNet",
                &with_dns,
                serde_json::json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
                0,
            ),
            (
                "ClusterFirst without cluster DNS falls back",
                &without,
                serde_json::json!({}),
                "search corp.example lab.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:3 ndots:1\n",
                2,
            ),
            (
                "None with dnsConfig",
                &with_dns,
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
                    "nameservers": ["1.1.1.1"], "searches": ["a.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
                "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n",
                0,
            ),
            (
                "dnsConfig merges, options by name",
                &with_dns,
                serde_json::json!({"dnsConfig": {
                    "nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["cluster.local", "x.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example x.example\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:1 single-request\n",
                0,
            ),
        ];
        for (name, c, spec, want, n_events) in cases {
            let mut ev = Vec::new();
            let got = c.pod_dns(&pod(spec), &mut ev).unwrap().resolv_conf();
            assert_eq!(got, want, "{name}");
            assert_eq!(ev.len(), n_events, "{name}: {ev:?}");
        }
    }

    #[test]
    fn missing_cluster_dns_events_carry_the_kubelets_text() {
        let d = tempfile::tempdir().unwrap();
        let mut ev = Vec::new();
        configurer(d.path(), &[])
            .pod_dns(&pod(serde_json::json!({})), &mut ev)
            .unwrap();
        let node = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
        assert_eq!(ev[0].target, EventTarget::Node);
        assert_eq!(ev[0].message, node);
        assert_eq!(ev[1].reason, "MissingClusterDNS");
        assert_eq!(ev[1].message, format!("pod: \"web_shop(u1)\". {node}"));
        let rec = crate::events::EventRecorder::new("node1");
        let p = pod(serde_json::json!({}));
        for e in &ev {
            e.record(&rec, &p, "node1");
        }
        let kinds: Vec<_> = rec
            .list()
            .into_iter()
            .map(|e| {
                (
                    e.involved_object.kind.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("Node".into(), "MissingClusterDNS".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("Pod".into(), "MissingClusterDNS".into())),
            "{kinds:?}"
        );
    }

    #[test]
    fn an_empty_resolv_conf_flag_means_localhost() {
        let c = Configurer {
            node_ips: vec!["fd00::5".parse().unwrap()],
            ..Default::default()
        };
        let mut ev = Vec::new();
        let got = c
            .pod_dns(&pod(serde_json::json!({"dnsPolicy": "Default"})), &mut ev)
            .unwrap();
        assert_eq!(got.resolv_conf(), "search .\nnameserver ::1\n");
    }

    #[test]
    fn limits_cut_with_the_kubelets_messages() {
        let mut ev = Vec::new();
        let cfg = DnsConfig {
            servers: vec![
                "1.1.1.1".into(),
                "2.2.2.2".into(),
                "3.3.3.3".into(),
                "4.4.4.4".into(),
            ],
            searches: (0..40).map(|i| format!("d{i}.example")).collect(),
            options: vec![],
        };
        let out = fit_limits(cfg, &mut ev);
        assert_eq!(out.servers.len(), 3);
        assert_eq!(out.searches.len(), 32);
        assert_eq!(
            ev[0].message,
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 1.1.1.1 2.2.2.2 3.3.3.3"
        );
        assert!(ev[1].message.starts_with("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: d0.example d1.example"));
        // Characters: 10 domains of 250 characters are 2509 with spaces; 8 fit (2007).
        let mut ev = Vec::new();
        let long: Vec<String> = (0..10).map(|i| format!("{i}{}", "a".repeat(249))).collect();
        let out = fit_limits(
            DnsConfig {
                searches: long,
                ..Default::default()
            },
            &mut ev,
        );
        assert_eq!(out.searches.len(), 8);
        assert_eq!(ev.len(), 1);
        // A search path over 253 characters is dropped.
        let mut ev = Vec::new();
        let out = fit_limits(
            DnsConfig {
                searches: vec!["a".repeat(254), "ok.example".into()],
                ..Default::default()
            },
            &mut ev,
        );
        assert_eq!(out.searches, ["ok.example"]);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn node_file_limits_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("resolv.conf");
        let search: Vec<String> = (0..30).map(|i| format!("d{i}.example")).collect();
        std::fs::write(&path, format!("search {}\n", search.join(" "))).unwrap();
        let c = Configurer {
            cluster_domain: "cluster.local".into(),
            resolv_conf: Some(path.clone()),
            ..Default::default()
        };
        let e = c.check_limits_for_resolv_conf().unwrap();
        assert_eq!(
            e.message,
            format!(
                "Resolv.conf file '{}' contains search line consisting of more than 29 domains!",
                path.display()
            )
        );
        std::fs::write(&path, "search a.example\n").unwrap();
        assert_eq!(c.check_limits_for_resolv_conf(), None);
    }
}
