//! Who is asking: authentication of requests to the kubelet API.
//!
//! Mirrors the kubelet's `BuildAuth` (`pkg/kubelet/server/auth.go`,
//! `cmd/kubelet/app/auth.go`) and the authenticators it unions: x509 client certificates
//! (`k8s.io/apiserver/pkg/authentication/request/x509`: user = the certificate's CN, groups =
//! its O values), bearer tokens (`request/bearertoken`) and anonymous requests
//! (`request/anonymous`: user `system:anonymous`, group `system:unauthenticated`).
//!
//! Two deviations, both in `docs/deviations.md`:
//! - The kubelet hands bearer tokens to the API server (`authentication.webhook`, a
//!   TokenReview). minikubelet has no API server, so tokens come from a static file in the
//!   kube-apiserver's `--token-auth-file` format (`token,user,uid,"group1,group2"`,
//!   `plugin/pkg/authenticator/token/tokenfile`).
//! - The kubelet then asks the API server whether the user may do what it asks
//!   (`authorization.mode: Webhook`, a SubjectAccessReview). minikubelet has nobody to ask: every
//!   authenticated user may do everything (the kubelet's `AlwaysAllow` mode). Therefore
//!   anonymous requests are refused (401) unless `authentication.anonymous.enabled` is set to
//!   true explicitly: the kubelet's default of true is only safe next to the Webhook authorizer,
//!   which denies `system:anonymous`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::status::ApiError;

/// The user every request without credentials becomes when anonymous requests are enabled.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group every authenticated user is also in (the API server's `AuthenticatedGroupAdder`).
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user (`user.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (a token file's second column, a certificate's CN).
    pub name: String,
    /// The UID (a token file's third column; empty for certificates).
    pub uid: String,
    /// The groups (a token file's fourth column, a certificate's O values).
    pub groups: Vec<String>,
}

/// Why a token file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read or is not CSV.
    #[error("read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The CSV (or io) error.
        source: csv::Error,
    },
    /// A line with fewer than three fields (the kube-apiserver's message).
    #[error(
        "token file '{path}' must have at least 3 columns (token, user name, user uid), found {found} (record {record})"
    )]
    Columns {
        /// The file.
        path: PathBuf,
        /// The 1-based record number.
        record: usize,
        /// How many fields it had.
        found: usize,
    },
}

/// The users of a `--token-auth-file`, by token.
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Reads `path` as the kube-apiserver's `tokenfile.NewCSV` does: CSV without a header,
    /// at least three fields (`token,user,uid`), an optional fourth with comma-separated
    /// groups. Empty tokens are skipped and a repeated token replaces the earlier one, each
    /// with a warning (the kube-apiserver's behaviour).
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let file = std::fs::File::open(path).map_err(|e| TokenFileError::Read {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Self::parse(path, file)
    }

    fn parse(path: &Path, input: impl std::io::Read) -> Result<TokenFile, TokenFileError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        let mut tokens = HashMap::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|source| TokenFileError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let n = i + 1;
            if record.len() < 3 {
                return Err(TokenFileError::Columns {
                    path: path.to_path_buf(),
                    record: n,
                    found: record.len(),
                });
            }
            let token = &record[0];
            if token.is_empty() {
                tracing::warn!(path = %path.display(), record = n, "empty token in the token file; skipping it");
                continue;
            }
            let groups = record
                .get(3)
                .filter(|g| !g.is_empty())
                .map(|g| g.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            let user = UserInfo {
                name: record[1].to_string(),
                uid: record[2].to_string(),
                groups,
            };
            if tokens.insert(token.to_string(), user).is_some() {
                tracing::warn!(path = %path.display(), record = n, "duplicate token in the token file; the later line wins");
            }
        }
        Ok(TokenFile { tokens })
    }

    /// How many tokens the file defines.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file defines no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn user(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

/// The identity a TLS connection proved with its client certificate, as axum hands it to
/// every request on the connection (`ConnectInfo`).
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// The user of the verified client certificate, if the client sent one.
    pub client_cert: Option<Arc<UserInfo>>,
}

/// The user a verified client certificate stands for: CN is the name, each O a group
/// (`x509.CommonNameUserConversion`). `None` if the certificate cannot be parsed or has no CN
/// (the x509 authenticator then fails the request).
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    use x509_cert::der::Decode;
    use x509_cert::der::oid::ObjectIdentifier;
    use x509_cert::ext::pkix::name::DirectoryString;
    // id-at-organizationName (RFC 4519).
    const ORGANIZATION_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let subject = cert.tbs_certificate().subject();
    let name = subject.common_name().ok()??.value().into_owned();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter()
        .filter(|a| a.oid == ORGANIZATION_NAME)
        .filter_map(|a| DirectoryString::try_from(&a.value).ok())
        .map(|o| o.value().into_owned())
        .collect();
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}

/// The request authenticator: which credentials count and what happens without any.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// `--token-auth-file`.
    pub tokens: Option<TokenFile>,
    /// Whether client certificates are verified (`--client-ca-file`); the TLS layer does the
    /// verifying, this only says a certificate is one way in.
    pub client_certificates: bool,
    /// `authentication.anonymous.enabled`.
    pub anonymous: bool,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// A bearer token was sent and is not in the token file (`bearertoken`'s `invalid bearer
    /// token`): refused even when anonymous requests are allowed, as the API server does.
    #[error("invalid bearer token")]
    InvalidToken,
    /// No credentials and anonymous requests are off.
    #[error(
        "no credentials (client certificate or bearer token) and anonymous requests are disabled"
    )]
    NoCredentials,
}

impl Authenticator {
    /// The user behind a request: its verified client certificate, else its bearer token, else
    /// anonymous if allowed (the kubelet's union of authenticators, in its order).
    pub fn authenticate(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
    ) -> Result<UserInfo, Unauthenticated> {
        if self.client_certificates
            && let Some(user) = peer.and_then(|p| p.client_cert.as_deref())
        {
            return Ok(with_authenticated_group(user.clone()));
        }
        if let (Some(tokens), Some(auth)) = (&self.tokens, authorization)
            && let Some(token) = bearer_token(auth)
        {
            return tokens
                .user(token)
                .cloned()
                .map(with_authenticated_group)
                .ok_or(Unauthenticated::InvalidToken);
        }
        if self.anonymous {
            return Ok(UserInfo {
                name: ANONYMOUS_USER.to_string(),
                uid: String::new(),
                groups: vec![UNAUTHENTICATED_GROUP.to_string()],
            });
        }
        Err(Unauthenticated::NoCredentials)
    }
}

fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        user.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    user
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, as in
/// `bearertoken.AuthenticateRequest`); `None` for other schemes or an empty token.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware in front of every route: authenticates the request or answers 401 with the
/// API server's `Unauthorized` Status (kubectl prints `You must be logged in to the server`).
pub async fn authenticate(
    State(authn): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<PeerIdentity>>()
        .map(|c| &c.0);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match authn.authenticate(peer, authorization) {
        Ok(user) => {
            tracing::debug!(user = %user.name, groups = ?user.groups, method = %req.method(), path = %req.uri().path(), "authenticated request");
            req.extensions_mut().insert(user.clone());
            next.run(req).await
        }
        Err(why) => {
            // A wrong token is worth a line (the API server logs "Unable to authenticate the
            // request"); a request without credentials is routine, and a flood of them should
            // not flood the log.
            match why {
                Unauthenticated::InvalidToken => {
                    tracing::info!(reason = %why, method = %req.method(), path = %req.uri().path(), "unauthorized request");
                }
                Unauthenticated::NoCredentials => {
                    tracing::debug!(reason = %why, method = %req.method(), path = %req.uri().path(), "unauthorized request");
                }
            }
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
        }
    }
}

/// How the kubelet API is served: over TLS or not, and whether requests must authenticate.
#[derive(Clone, Default)]
pub struct Security {
    /// The TLS configuration (`--tls-cert-file`), or plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The authenticator every request goes through, or none (plain loopback: anyone who
    /// can reach 127.0.0.1 is trusted, as before).
    pub authn: Option<Arc<Authenticator>>,
}

/// Why the agent refuses to serve.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The address and the flags do not make a safe server.
    #[error("{0}")]
    Refused(String),
    /// A TLS file is unusable.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The token file is unusable.
    #[error("--token-auth-file: {0}")]
    Tokens(#[from] TokenFileError),
}

/// What the settings allow, before any file is read: `Ok(true)` if requests must
/// authenticate, `Ok(false)` if the API may be served without (plain loopback), or the
/// refusal with the missing flags and the fix.
///
/// The rules: on loopback anything goes (no TLS, no authentication; TLS and authenticators
/// when given). On any other address (`0.0.0.0` included) the API, which can exec into every
/// container, needs TLS and a way to authenticate: a client CA, a token file, or an explicit
/// `authentication.anonymous.enabled: true` for those who really want an open node.
pub fn check_serving(
    address: std::net::IpAddr,
    tls: bool,
    client_ca: bool,
    token_file: bool,
    anonymous: bool,
) -> Result<bool, String> {
    let authenticators = client_ca || token_file;
    if address.is_loopback() {
        return Ok(authenticators);
    }
    if !tls {
        return Err(format!(
            "refusing to listen on {address} without TLS: on a non-loopback address the kubelet API (which can exec into every container) must be served over TLS with authentication; give --tls-cert-file and --tls-private-key-file (tlsCertFile, tlsPrivateKeyFile) and --client-ca-file (authentication.x509.clientCAFile) and/or --token-auth-file (docs/kubectl.md shows how to make them), or use --address=127.0.0.1 and reach it through an SSH tunnel (ssh -L 10250:127.0.0.1:10250 node)"
        ));
    }
    if !authenticators && !anonymous {
        return Err(format!(
            "refusing to listen on {address} without authentication: anyone who reaches it could exec into every container; give --client-ca-file (authentication.x509.clientCAFile) and/or --token-auth-file, or set --anonymous-auth=true (authentication.anonymous.enabled) to serve everyone on purpose"
        ));
    }
    Ok(true)
}

impl Security {
    /// Builds the serving security from the configuration: refuses unsafe combinations
    /// ([`check_serving`]), then loads the certificates and the token file.
    pub fn from_config(config: &crate::config::Config) -> Result<Security, SecurityError> {
        let enforce = check_serving(
            config.address,
            config.tls_cert_file.is_some(),
            config.client_ca_file.is_some(),
            config.token_auth_file.is_some(),
            config.anonymous_auth,
        )
        .map_err(SecurityError::Refused)?;
        let tls = match (&config.tls_cert_file, &config.tls_private_key_file) {
            (Some(cert), Some(key)) => Some(super::tls::server_config(
                cert,
                key,
                config.client_ca_file.as_deref(),
                &config.tls,
            )?),
            _ => {
                if config.client_ca_file.is_some() {
                    return Err(SecurityError::Refused(
                        "--client-ca-file (authentication.x509.clientCAFile) needs TLS: give --tls-cert-file and --tls-private-key-file too".to_string(),
                    ));
                }
                None
            }
        };
        let tokens = config
            .token_auth_file
            .as_deref()
            .map(TokenFile::load)
            .transpose()?;
        if let (Some(t), Some(path)) = (&tokens, &config.token_auth_file)
            && t.is_empty()
        {
            tracing::warn!(path = %path.display(), "the token file defines no token");
        }
        let authn = enforce.then(|| {
            Arc::new(Authenticator {
                tokens,
                client_certificates: config.client_ca_file.is_some(),
                anonymous: config.anonymous_auth,
            })
        });
        match &authn {
            Some(a) if a.anonymous && a.tokens.is_none() && !a.client_certificates => {
                tracing::warn!(address = %config.address, "authentication.anonymous.enabled with no client CA and no token file: every request is served as system:anonymous (the kubelet's AlwaysAllow; minikubelet has no authorizer)");
            }
            Some(a) => {
                tracing::info!(
                    client_certificates = a.client_certificates,
                    tokens = a.tokens.as_ref().map_or(0, TokenFile::len),
                    anonymous = a.anonymous,
                    "requests must authenticate; every authenticated user may do everything (no authorizer: see docs/deviations.md)"
                );
            }
            None => {}
        }
        Ok(Security { tls, authn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: uid.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn token_file_like_the_kube_apiserver() {
        let text = "t1,alice,1001,\"admins,devs\"\n\n,empty,3\nt2,bob,1002\nt1,carol,1003,ops\n";
        let f = TokenFile::parse(Path::new("tokens.csv"), text.as_bytes()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.user("t1"), Some(&user("carol", "1003", &["ops"])));
        assert_eq!(f.user("t2"), Some(&user("bob", "1002", &[])));
        assert_eq!(f.user(""), None);

        let err = TokenFile::parse(Path::new("tokens.csv"), "t1,alice\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token file 'tokens.csv' must have at least 3 columns (token, user name, user uid), found 2 (record 1)"
        );
        let err = TokenFile::load(Path::new("/nonexistent/tokens.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tokens.csv"), "{err}");
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn union_of_authenticators() {
        let tokens = TokenFile::parse(Path::new("t"), "good,alice,1,admins\n".as_bytes()).unwrap();
        let a = Authenticator {
            tokens: Some(tokens),
            client_certificates: true,
            anonymous: false,
        };
        let cert = PeerIdentity {
            client_cert: Some(Arc::new(user("bob", "", &["system:masters"]))),
        };
        assert_eq!(
            a.authenticate(Some(&cert), Some("Bearer good")),
            Ok(user("bob", "", &["system:masters", AUTHENTICATED_GROUP])),
            "the certificate comes first"
        );
        assert_eq!(
            a.authenticate(None, Some("Bearer good")),
            Ok(user("alice", "1", &["admins", AUTHENTICATED_GROUP]))
        );
        assert_eq!(
            a.authenticate(None, Some("Bearer bad")),
            Err(Unauthenticated::InvalidToken)
        );
        assert_eq!(
            a.authenticate(None, None),
            Err(Unauthenticated::NoCredentials)
        );
        assert_eq!(
            a.authenticate(Some(&PeerIdentity::default()), Some("Basic x")),
            Err(Unauthenticated::NoCredentials)
        );

        let anon = Authenticator {
            anonymous: true,
            ..a
        };
        assert_eq!(
            anon.authenticate(None, None).map(|u| u.name),
            Ok(ANONYMOUS_USER.to_string())
        );
        assert_eq!(
            anon.authenticate(None, Some("Bearer bad")),
            Err(Unauthenticated::InvalidToken),
            "a wrong token is refused even when anonymous requests are allowed"
        );
    }

    #[test]
    fn serving_rules() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let v6: std::net::IpAddr = "::".parse().unwrap();
        // (address, tls, ca, tokens, anonymous) -> enforce or the refusal's key words.
        assert_eq!(check_serving(lo, false, false, false, false), Ok(false));
        assert_eq!(check_serving(lo, true, false, false, false), Ok(false));
        assert_eq!(check_serving(lo, true, true, false, false), Ok(true));
        assert_eq!(check_serving(lo, false, false, true, false), Ok(true));
        assert_eq!(check_serving(any, true, true, false, false), Ok(true));
        assert_eq!(check_serving(any, true, false, true, false), Ok(true));
        assert_eq!(check_serving(any, true, false, false, true), Ok(true));
        for addr in [any, v6] {
            let e = check_serving(addr, false, true, true, false).unwrap_err();
            assert!(
                e.contains("without TLS") && e.contains("--tls-cert-file"),
                "{e}"
            );
            assert!(e.contains("--address=127.0.0.1"), "{e}");
            let e = check_serving(addr, true, false, false, false).unwrap_err();
            assert!(e.contains("without authentication"), "{e}");
            assert!(
                e.contains("--client-ca-file") && e.contains("--token-auth-file"),
                "{e}"
            );
            assert!(e.contains("--anonymous-auth=true"), "{e}");
        }
    }

    #[test]
    fn certificate_subject_to_user() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            user_from_certificate(cert.der()),
            Some(user("alice", "", &["system:masters"]))
        );
        assert_eq!(user_from_certificate(b"not a certificate"), None);
    }
}
