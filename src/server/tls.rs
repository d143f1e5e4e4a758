//! Serving the kubelet API over TLS: the serving certificate and key
//! (`--tls-cert-file`, `--tls-private-key-file`), client certificates verified against
//! `--client-ca-file` (the handshake itself runs in `server::conn`, in each connection's
//! task, under [`HANDSHAKE_TIMEOUT`]).
//!
//! Mirrors the kubelet's `InitializeTLS` (`cmd/kubelet/app/server.go`) and the secure serving
//! of `k8s.io/apiserver` (`SecureServingInfo`): client certificates are *requested* but not
//! required (`tls.VerifyClientCertIfGiven`), so bearer tokens still work; a certificate that
//! is sent must chain to the client CA, or the handshake fails. Unlike the kubelet,
//! minikubelet does not make a self-signed certificate when none is given: without
//! `--tls-cert-file` it serves plain HTTP, which it allows on loopback only. The serving
//! certificate is re-read when its files change (`ReloadKubeletServerCertificateFile`); the
//! client CA is read once, as in the kubelet 1.32. `tlsMinVersion` and `tlsCipherSuites`
//! (validated in `config::tls`) restrict the protocol versions and the TLS 1.2 suites.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::config::tls::{TlsMinVersion, TlsSettings};

/// How long a client may take to finish the TLS handshake. Go's `http.Server` has no separate
/// handshake timeout (its `ReadTimeout`, 4 h in the kubelet, covers it); 10 s is what Go's
/// HTTP client allows (`Transport.TLSHandshakeTimeout`): long enough for a slow link, short
/// enough that a client which connects and says nothing holds a connection slot
/// (`server::conn`) only briefly. A handshaking connection counts as idle there, so a flood
/// of them is shed for newcomers before this runs out.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be built; each names the file and the flag.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file could not be read or parsed.
    #[error("{flag} {path}: {message}")]
    File {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificate/key pair or the CA.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(flag: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        flag,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// All PEM certificates of `path` (a serving chain or a CA bundle).
fn read_certificates(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(flag, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            flag,
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
        ));
    }
    Ok(certs)
}

/// The serving certificate and key from their files as one rustls `CertifiedKey`, with the
/// flag-named errors of start-up.
fn load_serving_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates("--tls-cert-file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        file_error(
            "--tls-private-key-file",
            key_file,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) could be read: {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {} do not make a usable certificate/key pair: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })
}

/// How often, at most, a new connection makes the server look at the certificate files again.
/// The kubelet's dynamic file content watches them with fsnotify and re-reads them every
/// minute; here a handshake checks their modification times (two `stat`s), at most once per
/// interval: shorter picks a renewed certificate up sooner, longer saves the `stat`s under a
/// flood of connections.
const CERT_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The serving certificate, re-read when its files change (the kubelet's
/// `ReloadKubeletServerCertificateFile`, beta and on by default since 1.31: a certificate
/// renewed on disk, by cert-manager or a cron job, is served without a restart). A pair that
/// does not load (a half-written file, a key that does not match) is logged and the previous
/// one stays in use, as `dynamiccertificates` does.
#[derive(Debug)]
struct ServingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    state: std::sync::Mutex<ServingState>,
}

#[derive(Debug)]
struct ServingState {
    current: Arc<CertifiedKey>,
    /// The files' modification times when last read (loaded or not).
    stamp: Option<(std::time::SystemTime, std::time::SystemTime)>,
    checked: std::time::Instant,
}

impl ServingCertificate {
    fn stamp(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((mtime(&self.cert_file)?, mtime(&self.key_file)?))
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().ok()?;
        if state.checked.elapsed() >= CERT_FILE_CHECK_INTERVAL {
            state.checked = std::time::Instant::now();
            let stamp = self.stamp();
            if stamp.is_some() && stamp != state.stamp {
                state.stamp = stamp;
                match load_serving_pair(&self.cert_file, &self.key_file, &self.provider) {
                    Ok(pair) => {
                        tracing::info!(cert_file = %self.cert_file.display(), key_file = %self.key_file.display(), "loaded a new serving certificate");
                        state.current = pair;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "serving certificate files changed but do not load; still serving the previous certificate");
                    }
                }
            }
        }
        Some(state.current.clone())
    }
}

/// `tlsMinVersion: VersionTLS13`.
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The rustls server configuration: the serving certificate chain and key (re-read when the
/// files change, see `ServingCertificate`), and when a client CA is given, a verifier that
/// checks client certificates against it if one is sent. `settings` restricts the protocol
/// versions (`tlsMinVersion`) and the TLS 1.2 cipher suites (`tlsCipherSuites`).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
    settings: &TlsSettings,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.cipher_suites.is_empty() {
        // Go's order: the TLS 1.3 suites (always on), then the listed TLS 1.2 ones.
        let (tls13, tls12): (Vec<_>, Vec<_>) = provider
            .cipher_suites
            .into_iter()
            .partition(|s| s.version() == &rustls::version::TLS13);
        let mut suites = tls13;
        for want in &settings.cipher_suites {
            suites.extend(tls12.iter().filter(|s| s.suite() == *want).copied());
        }
        provider.cipher_suites = suites;
    }
    let provider = Arc::new(provider);
    let serving = ServingCertificate {
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        provider: provider.clone(),
        state: std::sync::Mutex::new(ServingState {
            current: load_serving_pair(cert_file, key_file, &provider)?,
            stamp: None,
            checked: std::time::Instant::now(),
        }),
    };
    let stamp = serving.stamp();
    if let Ok(mut state) = serving.state.lock() {
        state.stamp = stamp;
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(match settings.min_version {
            TlsMinVersion::Tls12 => rustls::DEFAULT_VERSIONS,
            TlsMinVersion::Tls13 => TLS13_ONLY,
        })
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("--client-ca-file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("--client-ca-file", ca_file, e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_error("--client-ca-file", ca_file, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(serving));
    // The server speaks HTTP/1.1 only (exec/attach/port-forward upgrade an HTTP/1.1
    // connection); saying so in ALPN keeps clients from trying HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates a client should trust for this server, as the kubeconfig's
/// `certificate-authority-data`: the serving certificate file itself, then the client CA
/// bundle if there is one (in a lab one CA usually signs both).
///
/// Go (kubectl) and curl accept a server whose own certificate is among their trust anchors,
/// self-signed or not. Clients that need the chain to end in a self-signed root (OpenSSL
/// without partial-chain mode, as the Python client uses it) need the issuing CA in this set:
/// from the serving file (put the full chain there) or from the client CA.
pub fn ca_data_for_kubeconfig(
    cert_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Vec<u8>, TlsError> {
    let mut certs = read_certificates("--tls-cert-file", cert_file)?;
    if let Some(ca) = client_ca_file {
        for cert in read_certificates("--client-ca-file", ca)? {
            if !certs.contains(&cert) {
                certs.push(cert);
            }
        }
    }
    let mut pem = Vec::new();
    for cert in certs {
        pem.extend_from_slice(pem_encode(&cert).as_bytes());
    }
    Ok(pem)
}

fn pem_encode(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_files_are_named_with_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = write(dir.path(), "kubelet.crt", &cert.pem());
        let key_file = write(dir.path(), "kubelet.key", &key.serialize_pem());
        let empty = write(dir.path(), "empty.pem", "");

        assert!(server_config(&cert_file, &key_file, None, &TlsSettings::default()).is_ok());
        assert!(
            server_config(
                &cert_file,
                &key_file,
                Some(&cert_file),
                &TlsSettings::default()
            )
            .is_ok()
        );

        let e = server_config(&empty, &key_file, None, &TlsSettings::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--tls-cert-file ") && e.contains("empty.pem"),
            "{e}"
        );
        let e = server_config(&cert_file, &empty, None, &TlsSettings::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tls-private-key-file "), "{e}");
        let e = server_config(
            &cert_file,
            &key_file,
            Some(&dir.path().join("nope.crt")),
            &TlsSettings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--client-ca-file ") && e.contains("nope.crt"),
            "{e}"
        );

        let other = rcgen::KeyPair::generate().unwrap();
        let other_key = write(dir.path(), "other.key", &other.serialize_pem());
        let e = server_config(&cert_file, &other_key, None, &TlsSettings::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("do not make a usable certificate/key pair"),
            "{e}"
        );

        let pem = String::from_utf8(ca_data_for_kubeconfig(&cert_file, None).unwrap()).unwrap();
        let again: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(again, vec![cert.der().clone()]);

        // The client CA is added once; the serving certificate comes first.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
        let ca_file = write(dir.path(), "ca.crt", &format!("{}{}", ca.pem(), cert.pem()));
        let pem = ca_data_for_kubeconfig(&cert_file, Some(&ca_file)).unwrap();
        let again: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(again, vec![cert.der().clone(), ca.der().clone()]);
    }
}
