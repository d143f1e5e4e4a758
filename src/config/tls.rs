//! `tlsMinVersion` (`--tls-min-version`) and `tlsCipherSuites` (`--tls-cipher-suites`): the
//! names the kubelet accepts, and what rustls makes of them.
//!
//! Mirrors `InitializeTLS` in `cmd/kubelet/app/server.go`, which parses both with
//! `k8s.io/component-base/cli/flag` (`TLSVersion`, `TLSCipherSuites`: Go's `crypto/tls` names)
//! and refuses cipher suites together with `VersionTLS13`. The agent serves TLS with rustls,
//! which differs from Go's `crypto/tls` in two ways, both said in a warning at start and in
//! docs/deviations.md:
//!
//! - rustls has no TLS 1.0 or 1.1: `VersionTLS10` and `VersionTLS11` serve TLS 1.2 and 1.3
//!   (Go's server default has been TLS 1.2 since Go 1.22, so most kubelets do the same);
//! - rustls has no CBC, RC4, 3DES or static-RSA suites: a listed suite of that kind (a name Go
//!   knows) is skipped with a warning; a list left with no suite at all is an error.
//!
//! As in Go, the list restricts TLS 1.2 only: the TLS 1.3 suites are always on, and naming one
//! is accepted and changes nothing.

use rustls::CipherSuite;

/// `tlsMinVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3 (also for `VersionTLS10`/`VersionTLS11`, see the module header).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// The TLS settings of the kubelet API, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tlsMinVersion`.
    pub min_version: TlsMinVersion,
    /// The TLS 1.2 suites to offer, in the order given; empty means rustls' defaults.
    pub cipher_suites: Vec<CipherSuite>,
}

impl TlsSettings {
    /// The effective minimum version, as the kubelet names it.
    pub fn min_version_name(&self) -> &'static str {
        match self.min_version {
            TlsMinVersion::Tls12 => "VersionTLS12",
            TlsMinVersion::Tls13 => "VersionTLS13",
        }
    }

    /// The TLS 1.2 suites served, by Go's (canonical) names; empty for rustls' defaults.
    pub fn cipher_suite_names(&self) -> Vec<&'static str> {
        self.cipher_suites
            .iter()
            .filter_map(|c| {
                GO_CIPHER_SUITES
                    .iter()
                    .find(|(_, s)| matches!(s, Suite::Tls12(x) if x == c))
                    .map(|(n, _)| *n)
            })
            .collect()
    }
}

/// What rustls makes of one of Go's suite names.
#[derive(Clone, Copy)]
enum Suite {
    /// A TLS 1.2 suite rustls serves.
    Tls12(CipherSuite),
    /// A TLS 1.3 suite: always on, as in Go.
    Tls13,
    /// Known to Go (and so to the kubelet), not served by rustls.
    NotInRustls,
}

/// Every name `cliflag.TLSCipherSuites` accepts (Go's `tls.CipherSuites()` and
/// `tls.InsecureCipherSuites()`, plus the two legacy CHACHA20 aliases).
const GO_CIPHER_SUITES: &[(&str, Suite)] = &[
    ("TLS_AES_128_GCM_SHA256", Suite::Tls13),
    ("TLS_AES_256_GCM_SHA384", Suite::Tls13),
    ("TLS_CHACHA20_POLY1305_SHA256", Suite::Tls13),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Suite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Suite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Suite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        Suite::Tls12(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Suite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Suite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Suite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        Suite::Tls12(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", Suite::NotInRustls),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", Suite::NotInRustls),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Suite::NotInRustls),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", Suite::NotInRustls),
    ("TLS_RSA_WITH_RC4_128_SHA", Suite::NotInRustls),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", Suite::NotInRustls),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", Suite::NotInRustls),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", Suite::NotInRustls),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", Suite::NotInRustls),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", Suite::NotInRustls),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", Suite::NotInRustls),
    ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", Suite::NotInRustls),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", Suite::NotInRustls),
    ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Suite::NotInRustls),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        Suite::NotInRustls,
    ),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", Suite::NotInRustls),
];

/// The names that rustls serves, for messages.
fn served_names() -> Vec<&'static str> {
    GO_CIPHER_SUITES
        .iter()
        .filter(|(_, s)| !matches!(s, Suite::NotInRustls))
        .map(|(n, _)| *n)
        .collect()
}

/// Validates `tlsMinVersion` and `tlsCipherSuites`. `Err` is the message that stops the agent
/// (naming the field and the accepted values); `warnings` receives what is accepted but served
/// differently from the kubelet.
pub fn parse(
    min_version: &str,
    cipher_suites: &[String],
    warnings: &mut Vec<String>,
) -> Result<TlsSettings, String> {
    let min = match min_version {
        "" | "VersionTLS12" => TlsMinVersion::Tls12,
        "VersionTLS13" => TlsMinVersion::Tls13,
        "VersionTLS10" | "VersionTLS11" => {
            warnings.push(format!(
                "tlsMinVersion (--tls-min-version) {min_version}: rustls does not speak TLS 1.0 or 1.1, so the kubelet API serves TLS 1.2 and 1.3 (a deviation from the kubelet, see docs/deviations.md)"
            ));
            TlsMinVersion::Tls12
        }
        other => {
            return Err(format!(
                "invalid configuration: tlsMinVersion (--tls-min-version) unknown tls version {other:?}; accepted: \"VersionTLS10\", \"VersionTLS11\", \"VersionTLS12\", \"VersionTLS13\""
            ));
        }
    };
    let names: Vec<&str> = cipher_suites
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(TlsSettings {
            min_version: min,
            cipher_suites: Vec::new(),
        });
    }
    if min == TlsMinVersion::Tls13 {
        return Err(
            "invalid configuration: tlsCipherSuites (--tls-cipher-suites): the cipher suites setting is not supported when the TLS min version is VersionTLS13; remove one of them"
                .to_string(),
        );
    }
    let mut suites = Vec::new();
    let mut skipped = Vec::new();
    let mut tls13 = false;
    for name in names {
        match GO_CIPHER_SUITES.iter().find(|(n, _)| *n == name) {
            Some((_, Suite::Tls12(s))) => {
                if !suites.contains(s) {
                    suites.push(*s);
                }
            }
            Some((_, Suite::Tls13)) => tls13 = true,
            Some((_, Suite::NotInRustls)) => skipped.push(name),
            None => {
                return Err(format!(
                    "invalid configuration: tlsCipherSuites (--tls-cipher-suites) Cipher suite {name} not supported or doesn't exist; accepted here: {}",
                    served_names().join(", ")
                ));
            }
        }
    }
    if !skipped.is_empty() {
        warnings.push(format!(
            "tlsCipherSuites (--tls-cipher-suites): {} not served: rustls has no CBC, RC4, 3DES or static-RSA suites (a deviation from the kubelet, see docs/deviations.md)",
            skipped.join(", ")
        ));
    }
    if suites.is_empty() && !tls13 {
        return Err(format!(
            "invalid configuration: tlsCipherSuites (--tls-cipher-suites) leaves no suite that can be served; add one of: {}",
            served_names().join(", ")
        ));
    }
    // Only TLS 1.3 names leave the list empty: Go then still offers its default TLS 1.2
    // suites, and so does rustls.
    Ok(TlsSettings {
        min_version: min,
        cipher_suites: suites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(min: &str, suites: &[&str]) -> (Result<TlsSettings, String>, Vec<String>) {
        let mut w = Vec::new();
        let owned: Vec<String> = suites.iter().map(|s| s.to_string()).collect();
        (parse(min, &owned, &mut w), w)
    }

    #[test]
    fn min_versions_as_the_kubelet_names_them() {
        for (name, want) in [
            ("", TlsMinVersion::Tls12),
            ("VersionTLS12", TlsMinVersion::Tls12),
            ("VersionTLS13", TlsMinVersion::Tls13),
        ] {
            let (r, w) = p(name, &[]);
            assert_eq!(r.unwrap().min_version, want, "{name}");
            assert!(w.is_empty(), "{name}: {w:?}");
        }
        for old in ["VersionTLS10", "VersionTLS11"] {
            let (r, w) = p(old, &[]);
            assert_eq!(r.unwrap().min_version, TlsMinVersion::Tls12);
            assert!(
                w[0].contains(old) && w[0].contains("TLS 1.2 and 1.3"),
                "{w:?}"
            );
        }
        let e = p("TLS1.2", &[]).0.unwrap_err();
        assert!(
            e.contains("tlsMinVersion (--tls-min-version)")
                && e.contains("\"TLS1.2\"")
                && e.contains("VersionTLS13"),
            "{e}"
        );
    }

    #[test]
    fn cipher_suites_map_to_rustls_with_aliases_and_order() {
        let (r, w) = p(
            "VersionTLS12",
            &[
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                " TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_AES_128_GCM_SHA256",
            ],
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            r.unwrap().cipher_suites,
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
    }

    #[test]
    fn suites_go_knows_but_rustls_lacks_are_skipped_with_a_warning() {
        let (r, w) = p(
            "",
            &[
                "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ],
        );
        assert_eq!(
            r.unwrap().cipher_suites,
            vec![CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        assert!(w[0].contains("TLS_RSA_WITH_AES_128_GCM_SHA256"), "{w:?}");
        let e = p("", &["TLS_RSA_WITH_RC4_128_SHA"]).0.unwrap_err();
        assert!(
            e.contains("leaves no suite") && e.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "{e}"
        );
    }

    #[test]
    fn unknown_suites_and_suites_with_tls13_stop_the_agent() {
        let e = p("", &["TLS_FOO"]).0.unwrap_err();
        assert!(
            e.contains("tlsCipherSuites (--tls-cipher-suites)")
                && e.contains("Cipher suite TLS_FOO not supported or doesn't exist"),
            "{e}"
        );
        let e = p("VersionTLS13", &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
            .0
            .unwrap_err();
        assert!(
            e.contains("not supported when the TLS min version is VersionTLS13"),
            "{e}"
        );
        // Only TLS 1.3 names: nothing restricted.
        assert_eq!(
            p("", &["TLS_AES_256_GCM_SHA384"]).0.unwrap(),
            TlsSettings::default()
        );
    }
}
