//! Which names this node answers to: the `Host` and `Origin` checks in front of the kubelet API.
//!
//! No kubelet counterpart (a deviation, in `docs/deviations.md`): the kubelet serves any `Host`
//! and ignores `Origin`. minikubelet listens on loopback by default, and every web page the
//! node's user opens can reach loopback through the browser. Two browser attacks are refused
//! here, before authentication, so that not even `--anonymous-auth=true` hands root to a page:
//! - DNS rebinding: a page's own name is re-pointed at 127.0.0.1, so its requests reach the
//!   agent as same-origin, with `Host: <that name>`. Only names and addresses of this node are
//!   served: loopback addresses, `localhost`, the node name, the hostname, the bound address,
//!   the addresses of the node's interfaces and the serving certificate's names and addresses
//!   (with or without a port).
//! - Cross-site requests: a page of another site sends `Origin: <its site>`. Any request with
//!   an `Origin` that is not the origin of its own `Host` is refused, whatever its method:
//!   exec, attach and port-forward are GET upgrades (WebSocket, SPDY). Clients that are not
//!   browsers send no `Origin`, or their own server's (Python's websocket-client does).
//!
//! A request without any `Host` (HTTP/1.0, or a raw client) is served: browsers always send
//! one, so such a request is not a web page's, and it must still authenticate.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::status::ApiError;

/// The names and addresses this node answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lower-case names: `localhost`, the node name, the hostname, the serving certificate's
    /// DNS names.
    names: Vec<String>,
    /// The bound address, when it is one address (not `0.0.0.0`/`::`).
    bound: Option<IpAddr>,
    /// The serving certificate's IP addresses (a public address behind NAT is on no interface,
    /// but a client that verifies the certificate connects by one of these).
    certificate_ips: Vec<IpAddr>,
    /// The port a `Host` without one means (443 over TLS, else 80).
    default_port: u16,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// More than one `Host` header: which one counts would be ambiguous.
    #[error("more than one Host header")]
    ManyHosts,
    /// A `Host` that is not this node's (DNS rebinding).
    #[error(
        "host {0:?} is not a name or address of this node (loopback, localhost, the node name or hostname, the node's addresses): refused to prevent DNS rebinding; connect by one of those, as <root-dir>/kubeconfig does"
    )]
    Host(String),
    /// An `Origin` of another site (a web page's cross-site request).
    #[error(
        "cross-origin request refused: Origin {origin:?} is not this server's origin (Host {host:?}); the kubelet API serves no web page, and requests from other sites could exec into containers"
    )]
    Origin {
        /// The `Origin` header.
        origin: String,
        /// The `Host` it was compared with (empty when there was none).
        host: String,
    },
}

impl AllowedHosts {
    /// The names of this node: `node_name`, the hostname, `localhost`, and `address` when it
    /// is not a wildcard; `tls` picks the default port of a `Host` without one.
    pub fn new(node_name: &str, address: IpAddr, tls: bool) -> AllowedHosts {
        let mut names = vec!["localhost".to_string(), normalize_name(node_name)];
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
        {
            names.push(normalize_name(h));
        }
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        AllowedHosts {
            names,
            bound: (!address.is_unspecified()).then_some(address.to_canonical()),
            certificate_ips: Vec::new(),
            default_port: if tls { 443 } else { 80 },
        }
    }

    /// The same, also answering to the subject alternative names (DNS names and IP addresses)
    /// of the serving certificate in `cert_file` (its first PEM certificate): over TLS a client
    /// that verifies the server connects by one of those. Read once at start; a renewed
    /// certificate with new names needs a restart for them to pass this check. An unreadable
    /// file adds nothing (the TLS set-up reports it).
    pub fn with_certificate_names(mut self, cert_file: &std::path::Path) -> AllowedHosts {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        use x509_cert::der::Decode;
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;
        let Some(Ok(der)) = CertificateDer::pem_file_iter(cert_file)
            .ok()
            .and_then(|mut it| it.next())
        else {
            return self;
        };
        let Ok(cert) = x509_cert::Certificate::from_der(&der) else {
            return self;
        };
        let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() else {
            return self;
        };
        for name in san.0 {
            match name {
                GeneralName::DnsName(n) => self.names.push(normalize_name(n.as_str())),
                GeneralName::IpAddress(octets) => {
                    let b = octets.as_bytes();
                    let ip = <[u8; 4]>::try_from(b)
                        .map(IpAddr::from)
                        .or_else(|_| <[u8; 16]>::try_from(b).map(IpAddr::from));
                    if let Ok(ip) = ip {
                        self.certificate_ips.push(ip.to_canonical());
                    }
                }
                _ => {}
            }
        }
        self.names.sort();
        self.names.dedup();
        self
    }

    /// Whether `host` (a `Host` value: name or address, optional port) is this node.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some((name, _port)) = split_host_port(host) else {
            return false;
        };
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                ip.is_loopback()
                    || Some(ip) == self.bound
                    || self.certificate_ips.contains(&ip)
                    || interface_addresses().contains(&ip)
            }
            Err(_) => self.names.contains(&normalize_name(name)),
        }
    }

    /// Whether `origin` (an `Origin` value) is the origin of `host`: same name or address and
    /// same port, each default port filled in from its scheme (the Origin's) or from how this
    /// server is served (the Host's). The scheme itself is not compared: there is one server
    /// per port. `null` (sandboxed pages, files) is no origin.
    pub fn same_origin(&self, origin: &str, host: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let origin_default = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return false,
        };
        let (Some((oname, oport)), Some((hname, hport))) =
            (split_host_port(authority), split_host_port(host))
        else {
            return false;
        };
        normalize_name(oname) == normalize_name(hname)
            && oport.unwrap_or(origin_default) == hport.unwrap_or(self.default_port)
    }

    /// The check of one request's headers (`uri_host`: the authority of an absolute-form
    /// request target, which then counts as the Host).
    pub fn check(&self, headers: &HeaderMap, uri_host: Option<&str>) -> Result<(), Refused> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(Refused::ManyHosts);
        }
        let host_header = match host_header.map(|h| h.to_str()) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => {
                return Err(Refused::Host(
                    String::from_utf8_lossy(host_header.map_or(&[][..], |h| h.as_bytes()))
                        .into_owned(),
                ));
            }
        };
        for h in uri_host.into_iter().chain(host_header) {
            if !self.host_allowed(h) {
                return Err(Refused::Host(h.to_string()));
            }
        }
        let host = uri_host.or(host_header);
        for origin in headers.get_all(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !host.is_some_and(|h| self.same_origin(&origin, h)) {
                return Err(Refused::Origin {
                    origin: origin.into_owned(),
                    host: host.unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `name` lower-cased without a trailing dot (`Node.` and `node` are one name).
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `host[:port]` or `[v6][:port]` split into the name and the port; `None` if malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        match after {
            "" => (name, None),
            p => (name, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            // A bare IPv6 address (not valid in a Host, but unambiguous).
            Some(_) if s.matches(':').count() > 1 => (s, None),
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((name, port))
}

/// The addresses of the node's interfaces, read when a `Host` names an address that is
/// neither loopback nor the bound one (interfaces come and go, so no cache).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

/// The middleware in front of every route (before authentication): answers 403 with a
/// `Forbidden` Status naming the host or origin when [`AllowedHosts::check`] refuses.
pub async fn guard(State(hosts): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    let uri_host = req.uri().authority().map(|a| a.as_str().to_string());
    match hosts.check(req.headers(), uri_host.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            // Worth a line: a browser was made to ask, or a client uses a name the node does
            // not know.
            tracing::info!(reason = %why, method = %req.method(), path = %req.uri().path(), "refused request");
            let code = match why {
                Refused::ManyHosts => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            ApiError::new(code, why.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn hosts(tls: bool) -> AllowedHosts {
        AllowedHosts::new("Node-1", "127.0.0.1".parse().unwrap(), tls)
    }

    #[test]
    fn host_forms() {
        assert_eq!(split_host_port("a:80"), Some(("a", Some(80))));
        assert_eq!(split_host_port("a"), Some(("a", None)));
        assert_eq!(split_host_port("[::1]:8"), Some(("::1", Some(8))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("a:x"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }

    #[test]
    fn node_names_and_addresses_only() {
        let h = hosts(false);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:10250",
            "127.1.2.3:1",
            "[::1]:10250",
            "[::ffff:127.0.0.1]:1",
            "localhost:10250",
            "LOCALHOST",
            "node-1",
            "node-1.:10250",
        ] {
            assert!(h.host_allowed(ok), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "rebind.evil.example:10250",
            "localhost.evil.example",
            "node-1.evil.example",
            "8.8.8.8",
            "",
            "127.0.0.1:port",
        ] {
            assert!(!h.host_allowed(bad), "{bad}");
        }
        let bound = AllowedHosts::new("n", "192.0.2.7".parse().unwrap(), true);
        assert!(bound.host_allowed("192.0.2.7:10250"));
        assert!(!bound.host_allowed("192.0.2.8:10250"));
    }

    #[test]
    fn serving_certificate_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![
            "Node1.Example.com".to_string(),
            "203.0.113.9".to_string(),
        ])
        .unwrap()
        .self_signed(&key)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubelet.crt");
        std::fs::write(&file, cert.pem()).unwrap();
        let h =
            AllowedHosts::new("n", "0.0.0.0".parse().unwrap(), true).with_certificate_names(&file);
        assert!(h.host_allowed("node1.example.com:10250"));
        assert!(h.host_allowed("203.0.113.9:10250"));
        assert!(!h.host_allowed("203.0.113.10:10250"));
        assert!(!h.host_allowed("evil.example.com"));
        let none = AllowedHosts::new("n", "0.0.0.0".parse().unwrap(), true)
            .with_certificate_names(&dir.path().join("missing.crt"));
        assert!(!none.host_allowed("node1.example.com"));
    }

    #[test]
    fn origin_must_be_the_hosts() {
        let h = hosts(false);
        assert!(h.same_origin("http://127.0.0.1:10250", "127.0.0.1:10250"));
        assert!(h.same_origin("HTTP://LocalHost:10250", "localhost:10250"));
        assert!(h.same_origin("http://127.0.0.1", "127.0.0.1:80"));
        assert!(h.same_origin("https://[::1]:10250", "[::1]:10250"));
        assert!(!h.same_origin("http://evil.example", "127.0.0.1:10250"));
        assert!(!h.same_origin("http://127.0.0.1:8080", "127.0.0.1:10250"));
        assert!(!h.same_origin("https://127.0.0.1", "127.0.0.1"));
        assert!(!h.same_origin("null", "127.0.0.1:10250"));
        assert!(!h.same_origin("file://", "127.0.0.1:10250"));
        assert!(hosts(true).same_origin("https://127.0.0.1", "127.0.0.1"));
    }

    #[test]
    fn check_headers() {
        let h = hosts(false);
        let with = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(k.clone(), HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(h.check(&HeaderMap::new(), None), Ok(()), "no Host: served");
        assert_eq!(
            h.check(&with(&[(header::HOST, "127.0.0.1:1")]), None),
            Ok(())
        );
        assert_eq!(
            h.check(
                &with(&[
                    (header::HOST, "127.0.0.1:1"),
                    (header::ORIGIN, "http://127.0.0.1:1")
                ]),
                None
            ),
            Ok(())
        );
        let e = h
            .check(&with(&[(header::HOST, "rebind.evil.example:1")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("\"rebind.evil.example:1\""), "{e}");
        assert!(e.to_string().contains("DNS rebinding"), "{e}");
        assert!(matches!(
            h.check(
                &with(&[(header::HOST, "127.0.0.1:1")]),
                Some("evil.example")
            ),
            Err(Refused::Host(_))
        ));
        assert_eq!(
            h.check(
                &with(&[(header::HOST, "127.0.0.1"), (header::HOST, "localhost")]),
                None
            ),
            Err(Refused::ManyHosts)
        );
        let e = h
            .check(
                &with(&[
                    (header::HOST, "127.0.0.1:1"),
                    (header::ORIGIN, "http://evil.example"),
                ]),
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("\"http://evil.example\""), "{e}");
        assert!(matches!(
            h.check(&with(&[(header::ORIGIN, "http://127.0.0.1:1")]), None),
            Err(Refused::Origin { .. })
        ));
    }
}
