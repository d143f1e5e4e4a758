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
//! - Anonymous requests are refused (401) unless `authentication.anonymous.enabled` is set to
//!   true explicitly, on loopback too: the kubelet's default of true is only safe next to its
//!   Webhook authorizer. What an authenticated user may do is the authorizer's business
//!   (`server::authz`, RBAC by default), which runs after this layer and reads the
//!   [`UserInfo`] this layer puts in the request's extensions.

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
    /// (token, user), every one compared on each lookup ([`TokenFile::user`]).
    tokens: Vec<(String, UserInfo)>,
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
        Ok(TokenFile {
            tokens: tokens.into_iter().collect(),
        })
    }

    /// How many tokens the file defines.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file defines no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The user of `token`, comparing it with every token of the file in constant time (no
    /// early exit on the first difference or the first match), so response times tell nothing
    /// about how close a guess was. Token files are short: a linear scan is cheap.
    fn user(&self, token: &str) -> Option<&UserInfo> {
        let mut found = None;
        for (t, user) in &self.tokens {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(user);
            }
        }
        found
    }
}

/// Whether `a == b`, taking the same time wherever they differ (only their lengths may show).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
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

/// The agent's own administrator credential: the token of `<root-dir>/pki/admin.token`,
/// written into `<root-dir>/kubeconfig` (`server::admin`).
#[derive(Clone)]
pub struct AdminCredential {
    /// The bearer token.
    pub token: String,
    /// Who it stands for ([`admin_user`]).
    pub user: UserInfo,
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself, also not in a debug print.
        f.debug_struct("AdminCredential")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The user of the admin token: named like kubeadm's `admin.conf` user (`kubernetes-admin`), so
/// that logs read as they do on a kubeadm node, in `system:masters`, the group the API server's
/// RBAC lets do everything (what this token may do here).
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The admin token's group.
pub const MASTERS_GROUP: &str = "system:masters";

/// The [`UserInfo`] of the admin token.
pub fn admin_user() -> UserInfo {
    UserInfo {
        name: ADMIN_USER.to_string(),
        uid: String::new(),
        groups: vec![MASTERS_GROUP.to_string()],
    }
}

/// The request authenticator: which credentials count and what happens without any.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// The agent's admin token (always set when the agent serves; `None` only where no token
    /// was made, e.g. `minikubelet check`).
    pub admin: Option<AdminCredential>,
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
    /// A bearer token was sent and is neither the admin token nor in the token file
    /// (`bearertoken`'s `invalid bearer token`): refused even when anonymous requests are allowed, as the API server does.
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
        if let Some(token) = authorization.and_then(bearer_token) {
            let admin = self
                .admin
                .as_ref()
                .filter(|a| constant_time_eq(a.token.as_bytes(), token.as_bytes()))
                .map(|a| &a.user);
            let from_file = self.tokens.as_ref().and_then(|t| t.user(token));
            return admin
                .or(from_file)
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
            // Who asked, for the handlers and the authorizer after this layer.
            req.extensions_mut().insert(user);
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

/// The path prefix that carries a bearer token in a URL: `/auth/<token>/api/v1/pods` is
/// `/api/v1/pods` with `Authorization: Bearer <token>`. kubectl (client-go's `clientcmd`) sends
/// a kubeconfig's credentials only over TLS, so over plain-HTTP loopback the agent's kubeconfig
/// puts the admin token in its `server:` URL instead, which kubectl prefixes to every request
/// (exec and port-forward upgrades included). No kubelet counterpart (`docs/deviations.md`).
pub const TOKEN_PATH_PREFIX: &str = "/auth/";

/// The middleware before routing (and before every other check): strips a
/// [`TOKEN_PATH_PREFIX`] and its token from the path, and makes the token the request's bearer
/// token unless it has an `Authorization` header already. The token then goes through
/// [`authenticate`] like any other, and no log line or handler sees it in the path.
pub async fn path_token(mut req: Request, next: Next) -> Response {
    let Some(rest) = req.uri().path().strip_prefix(TOKEN_PATH_PREFIX) else {
        return next.run(req).await;
    };
    let (token, path) = match rest.split_once('/') {
        Some((t, p)) => (t.to_string(), format!("/{p}")),
        None => (rest.to_string(), "/".to_string()),
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    let rebuilt = axum::http::uri::PathAndQuery::try_from(path_and_query)
        .ok()
        .and_then(|pq| {
            parts.path_and_query = Some(pq);
            axum::http::Uri::from_parts(parts).ok()
        });
    let Some(uri) = rebuilt else {
        return ApiError::bad_request("invalid path after the token prefix").into_response();
    };
    *req.uri_mut() = uri;
    if !token.is_empty()
        && !req.headers().contains_key(header::AUTHORIZATION)
        && let Ok(v) = header::HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    next.run(req).await
}

/// How the kubelet API is served: over TLS or not, who may ask, and by which names.
#[derive(Clone)]
pub struct Security {
    /// The TLS configuration (`--tls-cert-file`), or plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The authenticator every request goes through, on every address (loopback included).
    pub authn: Authenticator,
    /// The `Host` values this node answers to and the `Origin` rule (`server::host_check`).
    pub hosts: super::host_check::AllowedHosts,
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

/// What the settings allow, before any file is read: `Ok(())`, or the refusal with the missing
/// flags and the fix.
///
/// The rules: every request authenticates, on every address (loopback too: any local user,
/// and any web page through the browser, can reach loopback); the agent's own admin token
/// (`<root-dir>/kubeconfig`) is always one way in. On loopback plain HTTP is allowed. On any
/// other address (`0.0.0.0` included) the API, which can exec into every container, needs TLS
/// and a way in for remote clients: a client CA, a token file, or an explicit
/// `authentication.anonymous.enabled: true` for those who really want an open node.
pub fn check_serving(
    address: std::net::IpAddr,
    tls: bool,
    client_ca: bool,
    token_file: bool,
    anonymous: bool,
) -> Result<(), String> {
    if address.is_loopback() {
        return Ok(());
    }
    if !tls {
        return Err(format!(
            "refusing to listen on {address} without TLS: on a non-loopback address the kubelet API (which can exec into every container) must be served over TLS with authentication; give --tls-cert-file and --tls-private-key-file (tlsCertFile, tlsPrivateKeyFile) and --client-ca-file (authentication.x509.clientCAFile) and/or --token-auth-file (docs/kubectl.md shows how to make them), or use --address=127.0.0.1 and reach it through an SSH tunnel (ssh -L 10250:127.0.0.1:10250 node)"
        ));
    }
    if !(client_ca || token_file || anonymous) {
        return Err(format!(
            "refusing to listen on {address} without authentication: anyone who reaches it could exec into every container; give --client-ca-file (authentication.x509.clientCAFile) and/or --token-auth-file, or set --anonymous-auth=true (authentication.anonymous.enabled) to serve everyone on purpose"
        ));
    }
    Ok(())
}

impl Security {
    /// Builds the serving security from the configuration: refuses unsafe combinations
    /// ([`check_serving`]), then loads the certificates and the token file. It touches no
    /// file: the admin token comes with [`Security::with_admin`].
    pub fn from_config(config: &crate::config::Config) -> Result<Security, SecurityError> {
        check_serving(
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
        let node_name = config
            .node_name()
            .map_err(|e| SecurityError::Refused(e.to_string()))?;
        let mut hosts =
            super::host_check::AllowedHosts::new(&node_name, config.address, tls.is_some());
        if let (Some(_), Some(cert)) = (&tls, &config.tls_cert_file) {
            hosts = hosts.with_certificate_names(cert);
        }
        Ok(Security {
            hosts,
            tls,
            authn: Authenticator {
                admin: None,
                tokens,
                client_certificates: config.client_ca_file.is_some(),
                anonymous: config.anonymous_auth,
            },
        })
    }

    /// The same, with the agent's admin token accepted too.
    pub fn with_admin(mut self, admin: AdminCredential) -> Security {
        self.authn.admin = Some(admin);
        self
    }

    /// One line at start-up on who may ask; a warning when anyone may.
    pub fn announce(&self, addr: std::net::SocketAddr) {
        let a = &self.authn;
        if a.anonymous {
            tracing::warn!(
                address = %addr,
                "authentication.anonymous.enabled (--anonymous-auth=true): requests without credentials are served as system:anonymous (group system:unauthenticated) and get what the authorizer grants those names; under --authorization-mode=AlwaysAllow, or with a policy binding them to nodes/proxy or pods/exec, anyone who can connect to {addr} (on loopback: every local user) can read every pod's logs and exec as root into every container"
            );
        }
        tracing::info!(
            address = %addr,
            admin_token = a.admin.is_some(),
            client_certificates = a.client_certificates,
            tokens = a.tokens.as_ref().map_or(0, TokenFile::len),
            anonymous = a.anonymous,
            "requests must authenticate, loopback too; what each user may do is the authorizer's (its own start-up line)"
        );
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
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
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
            admin: Some(AdminCredential {
                token: "admintoken".into(),
                user: admin_user(),
            }),
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
            a.authenticate(None, Some("Bearer admintoken")),
            Ok(user(
                "kubernetes-admin",
                "",
                &["system:masters", AUTHENTICATED_GROUP]
            )),
            "the admin token beside the token file"
        );
        for wrong in [
            "Bearer bad",
            "Bearer admintoke",
            "Bearer admintokenx",
            "Bearer goo",
        ] {
            assert_eq!(
                a.authenticate(None, Some(wrong)),
                Err(Unauthenticated::InvalidToken),
                "{wrong}"
            );
        }
        let admin_only = Authenticator {
            tokens: None,
            ..a.clone()
        };
        assert_eq!(
            admin_only
                .authenticate(None, Some("Bearer admintoken"))
                .map(|u| u.name),
            Ok(ADMIN_USER.to_string())
        );
        assert_eq!(
            admin_only.authenticate(None, Some("Bearer good")),
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
        // (address, tls, ca, tokens, anonymous) -> Ok or the refusal's key words.
        // Loopback: plain HTTP is fine; requests authenticate all the same (the admin token).
        assert_eq!(check_serving(lo, false, false, false, false), Ok(()));
        assert_eq!(check_serving(lo, true, false, false, false), Ok(()));
        assert_eq!(check_serving(lo, true, true, false, false), Ok(()));
        assert_eq!(check_serving(lo, false, false, true, false), Ok(()));
        assert_eq!(check_serving(lo, false, false, false, true), Ok(()));
        assert_eq!(check_serving(any, true, true, false, false), Ok(()));
        assert_eq!(check_serving(any, true, false, true, false), Ok(()));
        assert_eq!(check_serving(any, true, false, false, true), Ok(()));
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
