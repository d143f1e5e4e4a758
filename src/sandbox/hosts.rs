//! A pod's hostname and its `/etc/hosts` and `/etc/hostname`, by the kubelet's rules:
//! `GeneratePodHostNameAndDomain` and `truncatePodHostnameIfNeeded` (`pkg/kubelet/
//! kubelet_pods.go`), `GetNodenameForKernel` (`pkg/kubelet/util`, `setHostnameAsFQDN`),
//! `managedHostsFileContent`, `nodeHostsFileContent` and `hostsEntriesFromHostAliases` for the
//! hosts file (`<pod-dir>/etc-hosts`, mounted read-write as the kubelet's
//! `k8s-managed-etc-hosts`), and containerd's sandbox `hostname` file (the name and a newline).

use k8s_openapi::api::core::v1::{HostAlias, Pod};

/// The kernel's and the kubelet's hostname limit (`hostnameMaxLen`, 64 bytes with the NUL).
pub const HOSTNAME_MAX_LEN: usize = 63;
/// `GetNodenameForKernel`'s limit for a fully qualified name (the kernel's 64-byte field).
pub const FQDN_MAX_LEN: usize = 64;
/// At most this many `hostAliases` entries are written: far above real use (a handful), a
/// bound so that one manifest cannot make every container mount a huge file.
pub const MAX_HOST_ALIASES: usize = 256;
/// At most this many bytes of `hostAliases` lines (IPs and names with separators), for the
/// same reason.
pub const MAX_HOST_ALIASES_BYTES: usize = 64 * 1024;

/// `managedHostsHeader`.
const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// `managedHostsHeaderWithHostNetwork`.
const MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";

/// Errors naming the pod's hostname or its host aliases.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostsError {
    /// `spec.hostname` is not a DNS label.
    #[error("pod Hostname {0:?} is not a valid DNS label: {1}")]
    Hostname(String, String),
    /// `spec.subdomain` is not a DNS label.
    #[error("pod Subdomain {0:?} is not a valid DNS label: {1}")]
    Subdomain(String, String),
    /// Nothing left after truncation ("should never happen" in the kubelet).
    #[error("hostname for pod {0:?} was invalid: {1:?}")]
    Truncated(String, String),
    /// `setHostnameAsFQDN` with a name the kernel cannot hold.
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {0} is too long ({FQDN_MAX_LEN} characters is the max, {1} characters requested)"
    )]
    FqdnTooLong(String, usize),
    /// More host aliases than minikubelet writes.
    #[error(
        "spec.hostAliases: {0} entries or {1} bytes is more than minikubelet writes ({MAX_HOST_ALIASES} entries, {MAX_HOST_ALIASES_BYTES} bytes)"
    )]
    TooManyAliases(usize, usize),
    /// A host alias that would break the file's lines.
    #[error("spec.hostAliases: {0:?} contains whitespace or a comment sign")]
    BadAlias(String),
    /// A host alias whose `ip` is not an IP address (the API server's message).
    #[error("spec.hostAliases[{0}].ip: Invalid value: {1:?}: must be a valid IP address")]
    BadAliasIp(usize, String),
}

/// The pod's hostname and domain (`GeneratePodHostNameAndDomain`): `spec.hostname` else the
/// pod name, truncated to 63 characters without a trailing `-` or `.`; the domain is
/// `<subdomain>.<namespace>.svc.<cluster-domain>` when `spec.subdomain` is set, else empty.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), HostsError> {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut hostname = name.to_string();
    if let Some(h) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        let msgs = crate::api::validation::dns1123_label(h);
        if !msgs.is_empty() {
            return Err(HostsError::Hostname(h.to_string(), msgs.join(";")));
        }
        hostname = h.to_string();
    }
    let hostname = truncate_hostname(name, &hostname)?;
    let mut domain = String::new();
    if let Some(sub) = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        let msgs = crate::api::validation::dns1123_label(sub);
        if !msgs.is_empty() {
            return Err(HostsError::Subdomain(sub.to_string(), msgs.join(";")));
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        domain = format!("{sub}.{ns}.svc.{cluster_domain}");
    }
    Ok((hostname, domain))
}

/// `truncatePodHostnameIfNeeded`.
fn truncate_hostname(pod_name: &str, hostname: &str) -> Result<String, HostsError> {
    if hostname.len() <= HOSTNAME_MAX_LEN {
        return Ok(hostname.to_string());
    }
    // Validated names are ASCII; `get` keeps a non-ASCII one from panicking.
    let truncated = hostname.get(..HOSTNAME_MAX_LEN).unwrap_or(hostname);
    tracing::error!(podName = %pod_name, hostnameMaxLen = HOSTNAME_MAX_LEN, truncatedHostname = %truncated, "Hostname for pod was too long, truncated it");
    let truncated = truncated.trim_end_matches(['-', '.']);
    if truncated.is_empty() {
        return Err(HostsError::Truncated(
            pod_name.to_string(),
            hostname.to_string(),
        ));
    }
    Ok(truncated.to_string())
}

/// `GetNodenameForKernel`: the name the pod's UTS namespace gets: the hostname, or with
/// `setHostnameAsFQDN: true` and a domain, `hostname.domain` (at most 64 characters).
pub fn nodename_for_kernel(
    hostname: &str,
    domain: &str,
    set_hostname_as_fqdn: bool,
) -> Result<String, HostsError> {
    if !domain.is_empty() && set_hostname_as_fqdn {
        let fqdn = format!("{hostname}.{domain}");
        if fqdn.len() > FQDN_MAX_LEN {
            let n = fqdn.len();
            return Err(HostsError::FqdnTooLong(fqdn, n));
        }
        return Ok(fqdn);
    }
    Ok(hostname.to_string())
}

/// Refuse host aliases beyond the bounds, an `ip` that is not an IP address, or names with
/// characters that would add lines or fields.
pub fn check_host_aliases(aliases: &[HostAlias]) -> Result<(), HostsError> {
    let bytes: usize = aliases
        .iter()
        .map(|a| {
            a.ip.len()
                + a.hostnames
                    .iter()
                    .flatten()
                    .map(|h| h.len() + 1)
                    .sum::<usize>()
                + 1
        })
        .sum();
    if aliases.len() > MAX_HOST_ALIASES || bytes > MAX_HOST_ALIASES_BYTES {
        return Err(HostsError::TooManyAliases(aliases.len(), bytes));
    }
    for (i, a) in aliases.iter().enumerate() {
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            return Err(HostsError::BadAliasIp(i, a.ip.clone()));
        }
        let ip = std::iter::once(a.ip.as_str());
        for s in ip.chain(a.hostnames.iter().flatten().map(String::as_str)) {
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '#') {
                return Err(HostsError::BadAlias(s.to_string()));
            }
        }
    }
    Ok(())
}

/// `hostsEntriesFromHostAliases`.
fn host_alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names: Vec<&str> = a.hostnames.iter().flatten().map(String::as_str).collect();
        s += &format!("{}\t{}\n", a.ip, names.join("\t"));
    }
    s
}

/// `managedHostsFileContent`: the file of a pod on its own network.
pub fn managed_hosts_content(
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    aliases: &[HostAlias],
) -> String {
    let mut s = String::from(MANAGED_HOSTS_HEADER);
    s += "127.0.0.1\tlocalhost\n";
    s += "::1\tlocalhost ip6-localhost ip6-loopback\n";
    s += "fe00::0\tip6-localnet\n";
    s += "fe00::0\tip6-mcastprefix\n";
    s += "fe00::1\tip6-allnodes\n";
    s += "fe00::2\tip6-allrouters\n";
    for ip in pod_ips {
        if domain.is_empty() {
            s += &format!("{ip}\t{hostname}\n");
        } else {
            s += &format!("{ip}\t{hostname}.{domain}\t{hostname}\n");
        }
    }
    s += &host_alias_entries(aliases);
    s
}

/// `nodeHostsFileContent`: a host-network pod's file is the node's, under its own header,
/// with the host aliases appended.
pub fn node_hosts_content(node_hosts: &str, aliases: &[HostAlias]) -> String {
    let mut s = String::from(MANAGED_HOSTS_HEADER_WITH_HOST_NETWORK);
    s += node_hosts;
    s += &host_alias_entries(aliases);
    s
}

/// containerd's sandbox `hostname` file.
pub fn hostname_content(hostname: &str) -> String {
    format!("{hostname}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value, name: &str) -> Pod {
        crate::sandbox::test_pod(name, spec)
    }

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn hostname_and_domain_follow_the_kubelet() {
        let cases = [
            (serde_json::json!({}), "web", ("web", "")),
            (serde_json::json!({"hostname": "db-0"}), "web", ("db-0", "")),
            (
                serde_json::json!({"hostname": "db-0", "subdomain": "db"}),
                "web",
                ("db-0", "db.shop.svc.cluster.local"),
            ),
        ];
        for (spec, name, (h, d)) in cases {
            let got = pod_hostname_and_domain(&pod(spec, name), "cluster.local").unwrap();
            assert_eq!(got, (h.to_string(), d.to_string()));
        }
        // 70 characters: cut to 63, then the trailing '-' and '.' go.
        let long = format!("{}-.{}", "a".repeat(61), "b".repeat(7));
        let (h, _) = pod_hostname_and_domain(&pod(serde_json::json!({}), &long), "c").unwrap();
        assert_eq!(h, "a".repeat(61));
        let e = pod_hostname_and_domain(&pod(serde_json::json!({"hostname": "Db_0"}), "w"), "c")
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "pod Hostname \"Db_0\" is not a valid DNS label: a lowercase RFC 1123 label"
            ),
            "{e}"
        );
    }

    #[test]
    fn fqdn_as_hostname() {
        assert_eq!(nodename_for_kernel("a", "b.c", false).unwrap(), "a");
        assert_eq!(nodename_for_kernel("a", "b.c", true).unwrap(), "a.b.c");
        assert_eq!(nodename_for_kernel("a", "", true).unwrap(), "a");
        let d = "d".repeat(63);
        assert_eq!(
            nodename_for_kernel("a", &d, true).unwrap_err().to_string(),
            format!(
                "failed to construct FQDN from pod hostname and cluster domain, FQDN a.{d} is too long (64 characters is the max, 65 characters requested)"
            )
        );
    }

    #[test]
    fn managed_file_is_the_kubelets() {
        let got = managed_hosts_content(
            &["10.0.0.5".into()],
            "db-0",
            "db.shop.svc.cluster.local",
            &[
                alias("10.1.1.1", &["foo.local", "bar.local"]),
                alias("10.1.1.2", &["baz"]),
            ],
        );
        assert_eq!(
            got,
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.0.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n\
             \n\
             # Entries added by HostAliases.\n\
             10.1.1.1\tfoo.local\tbar.local\n\
             10.1.1.2\tbaz\n"
        );
        let plain = managed_hosts_content(&["10.0.0.5".into()], "web", "", &[]);
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.0.0.5\tweb\n"),
            "{plain}"
        );
    }

    #[test]
    fn host_network_file_is_the_nodes() {
        let got = node_hosts_content("127.0.0.1 localhost\n", &[alias("10.1.1.1", &["x"])]);
        assert_eq!(
            got,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n10.1.1.1\tx\n"
        );
    }

    #[test]
    fn aliases_are_bounded() {
        let many: Vec<HostAlias> = (0..=MAX_HOST_ALIASES)
            .map(|_| alias("1.1.1.1", &["a"]))
            .collect();
        assert!(matches!(
            check_host_aliases(&many),
            Err(HostsError::TooManyAliases(257, _))
        ));
        assert_eq!(
            check_host_aliases(&[alias("1.1.1.1", &["a\n2.2.2.2 evil"])]),
            Err(HostsError::BadAlias("a\n2.2.2.2 evil".into()))
        );
        assert!(check_host_aliases(&[alias("1.1.1.1", &["a"])]).is_ok());
        assert_eq!(
            check_host_aliases(&[alias("1.1.1.1", &["a"]), alias("foo", &["b"])])
                .unwrap_err()
                .to_string(),
            "spec.hostAliases[1].ip: Invalid value: \"foo\": must be a valid IP address"
        );
    }
}
