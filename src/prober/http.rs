//! The HTTP GET probe handler, and the small HTTP/1.1 client it shares with the lifecycle hooks.
//!
//! Mirrors `pkg/probe/http` (`http.go`, `request.go`): a GET with `User-Agent: kube-probe/1.34`
//! and `Accept: */*` unless the probe's `httpHeaders` set them; 200 <= status < 400 is success;
//! redirects are followed only while they stay on the same host name (at most 10 requests), a
//! redirect elsewhere ends the probe as a success with a warning
//! (`Probe terminated redirects, Response body: ...`); at most 10 KiB of body is read; one
//! timeout bounds the whole exchange, redirects included (Go's `http.Client.Timeout`).
//! Transport errors are failures, and their text follows Go's so event messages read like the
//! kubelet's (`Get "http://127.0.0.1:8080/": dial tcp 127.0.0.1:8080: connect: connection refused`).
//!
//! Written by hand on a tokio `TcpStream` (one request per connection, `Connection: close`),
//! because the probe needs so little of HTTP. Deviation: scheme `HTTPS` cannot be probed — the
//! kubelet would use TLS without verifying the certificate, and minikubelet carries no TLS
//! client — so such a probe fails with a message saying so.
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{HandlerResult, KUBE_VERSION};

/// At most this much of a response body is read (`maxRespBodyLength`, 10 KiB).
pub const MAX_RESP_BODY: usize = 10 * 1024;

/// A response head larger than this is refused as malformed.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// How many requests one GET may make, redirects included (Go's client stops after 10).
const MAX_REQUESTS: usize = 10;

/// An `http://host:port/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Lowercase scheme: "http" (or "https", which cannot be fetched).
    pub scheme: String,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Request target: path and optional query, starting with '/'.
    pub path: String,
}

impl HttpUrl {
    /// `host:port`, with brackets around an IPv6 address (Go's `net.JoinHostPort`).
    pub fn host_port(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Resolves a `Location` header against this URL (Go's `URL.ResolveReference`, reduced to
    /// what redirects use).
    pub fn join(&self, location: &str) -> Result<HttpUrl, String> {
        let location = location.trim();
        let location = location.split('#').next().unwrap_or_default();
        if let Some((scheme, rest)) = split_scheme(location) {
            let scheme = scheme.to_ascii_lowercase();
            let Some(rest) = rest.strip_prefix("//") else {
                return Err(format!("unsupported location {location:?}"));
            };
            return parse_authority_and_path(&scheme, rest);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return parse_authority_and_path(&self.scheme, rest);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else if location.is_empty() {
            self.path.clone()
        } else if location.starts_with('?') {
            let base = self.path.split('?').next().unwrap_or("/");
            format!("{base}{location}")
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(HttpUrl {
            scheme: self.scheme.clone(),
            host: self.host.clone(),
            port: self.port,
            path: normalize_path(&path),
        })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.host_port(), self.path)
    }
}

/// A prepared GET: URL, headers (canonical names, defaults applied) and the Host override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGetRequest {
    /// Where to send it.
    pub url: HttpUrl,
    /// Header lines to send, in order; never contains `Host`.
    pub headers: Vec<(String, String)>,
    /// A `Host` header from `httpHeaders`, sent instead of the URL's host:port.
    pub host_header: Option<String>,
}

impl HttpGetRequest {
    /// Builds the request for an `httpGet` action (`NewRequestForHTTPGetAction`): the host is
    /// `action.host` or the pod IP, the port is already resolved, `purpose` makes the
    /// User-Agent (`kube-probe/1.34`, `kube-lifecycle/1.34`).
    pub fn for_action(action: &HTTPGetAction, pod_ip: &str, port: u16, purpose: &str) -> Self {
        let scheme = action
            .scheme
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("http")
            .to_ascii_lowercase();
        let host = action
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(pod_ip)
            .to_string();
        let url = HttpUrl {
            scheme,
            host,
            port,
            path: probe_path(action.path.as_deref().unwrap_or("")),
        };
        let mut headers: Vec<(String, String)> = action
            .http_headers
            .iter()
            .flatten()
            .map(|h| (canonical_header_key(&h.name), h.value.clone()))
            .collect();
        let first = |headers: &[(String, String)], key: &str| {
            headers
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        if first(&headers, "User-Agent").is_none() {
            headers.push((
                "User-Agent".into(),
                format!("kube-{purpose}/{KUBE_VERSION}"),
            ));
        }
        match first(&headers, "Accept") {
            None => headers.push(("Accept".into(), "*/*".into())),
            // Accept overridden but empty: send none at all.
            Some(v) if v.is_empty() => headers.retain(|(k, _)| k != "Accept"),
            Some(_) => {}
        }
        let host_header = first(&headers, "Host").filter(|h| !h.is_empty());
        headers.retain(|(k, _)| k != "Host");
        HttpGetRequest {
            url,
            headers,
            host_header,
        }
    }
}

/// The final response of a GET (after any redirects that were followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The first [`MAX_RESP_BODY`] bytes of the body.
    pub body: Vec<u8>,
}

/// Why a GET produced no response; the message follows Go's `url.Error` text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    /// E.g. `Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused`.
    pub message: String,
    /// Whether the timeout expired (rather than the connection failing).
    pub timed_out: bool,
}

/// Runs the HTTP probe for `action` against `pod_ip` (unless the action names a host) on the
/// already resolved `port`.
pub async fn probe_http(
    pod_ip: &str,
    port: u16,
    action: &HTTPGetAction,
    timeout: Duration,
) -> (HandlerResult, String) {
    let req = HttpGetRequest::for_action(action, pod_ip, port, "probe");
    match http_get(&req, timeout).await {
        Err(err) => (HandlerResult::Failure, err.message),
        Ok(resp) => {
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            match resp.status {
                200..=299 => (HandlerResult::Success, body),
                300..=399 => (
                    HandlerResult::Warning,
                    format!("Probe terminated redirects, Response body: {body}"),
                ),
                // Like the kubelet, never the body: it may hold secrets (issue 99425).
                status => (
                    HandlerResult::Failure,
                    format!("HTTP probe failed with statuscode: {status}"),
                ),
            }
        }
    }
}

/// Performs the GET, following same-host redirects, all within `timeout`.
pub async fn http_get(req: &HttpGetRequest, timeout: Duration) -> Result<HttpResponse, HttpError> {
    let fail = |message: String| HttpError {
        message,
        timed_out: false,
    };
    if let Some(message) = invalid_header(&req.headers) {
        return Err(fail(format!("Get \"{}\": {message}", req.url)));
    }
    let deadline = Instant::now() + timeout;
    let mut url = req.url.clone();
    let mut host_header = req.host_header.clone();
    let mut requests = 0;
    loop {
        if url.scheme != "http" {
            return Err(fail(format!(
                "Get \"{url}\": scheme {:?} is not supported: minikubelet has no TLS client",
                url.scheme
            )));
        }
        requests += 1;
        let host = host_header.clone().unwrap_or_else(|| url.host_port());
        let exchange = round_trip(&url, &host, &req.headers);
        let resp = match tokio::time::timeout_at(deadline, exchange).await {
            Err(_) => {
                return Err(HttpError {
                    message: format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    ),
                    timed_out: true,
                });
            }
            Ok(Err(e)) => return Err(fail(format!("Get \"{url}\": {e}"))),
            Ok(Ok(resp)) => resp,
        };
        let Some(location) = resp
            .location
            .filter(|_| matches!(resp.response.status, 301 | 302 | 303 | 307 | 308))
        else {
            return Ok(resp.response);
        };
        let next = url.join(&location).map_err(|e| {
            fail(format!(
                "Get \"{url}\": failed to parse Location header {location:?}: {e}"
            ))
        })?;
        // The kubelet's redirect checker: another host ends the chain, and the redirect
        // itself is the answer (http.ErrUseLastResponse).
        if next.host != req.url.host {
            tracing::debug!(url = %url, location = %location, "probe redirect to another host not followed");
            return Ok(resp.response);
        }
        if requests >= MAX_REQUESTS {
            return Err(fail(format!("Get \"{next}\": stopped after 10 redirects")));
        }
        // Go keeps a custom Host only across relative redirects.
        if split_scheme(&location).is_some() || location.starts_with("//") {
            host_header = None;
        }
        url = next;
    }
}

/// A response and its Location header.
struct RawResponse {
    response: HttpResponse,
    location: Option<String>,
}

/// One request on a fresh connection; errors are Go-style transport messages.
async fn round_trip(
    url: &HttpUrl,
    host: &str,
    headers: &[(String, String)],
) -> Result<RawResponse, String> {
    let addr = url.host_port();
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| dial_error(&addr, &url.host, &e))?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\n",
        escape_request_target(&url.path)
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write tcp {addr}: {}", errno_text(&e)))?;

    let (status, response_headers) = loop {
        let (status, headers) = read_head(&mut reader).await?;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, headers);
    };
    let header = |name: &str| {
        response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Vec::new()
    } else if header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(&mut reader).await
    } else if let Some(len) = header("Content-Length").and_then(|l| l.trim().parse::<u64>().ok()) {
        read_limited((&mut reader).take(len)).await
    } else {
        read_limited(&mut reader).await
    };
    Ok(RawResponse {
        location: header("Location").map(str::to_string),
        response: HttpResponse { status, body },
    })
}

/// Reads a status line and header lines up to the blank line.
async fn read_head<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<(u16, Vec<(String, String)>), String> {
    let mut total = 0;
    let mut line = Vec::new();
    let mut status = None;
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("read: {}", errno_text(&e)))?;
        if n == 0 {
            return Err(if status.is_none() {
                "EOF"
            } else {
                "unexpected EOF"
            }
            .to_string());
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err("net/http: server response headers exceeded 1048576 bytes; aborted".into());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        match status {
            None => status = Some(parse_status_line(text)?),
            Some(_) if text.is_empty() => break,
            Some(_) => {
                if let Some((name, value)) = text.split_once(':') {
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
        }
    }
    Ok((status.unwrap_or_default(), headers))
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let malformed = || format!("malformed HTTP response {line:?}");
    let mut parts = line.splitn(3, ' ');
    let proto = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/") || code.len() != 3 {
        return Err(malformed());
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| format!("malformed HTTP status code {code:?}"))
}

/// Reads up to [`MAX_RESP_BODY`] bytes; stops there (the connection is then dropped, as the
/// kubelet's `ReadAtMost` does). Read errors end the body early.
async fn read_limited<R: tokio::io::AsyncRead + Unpin>(reader: R) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = reader
        .take(MAX_RESP_BODY as u64)
        .read_to_end(&mut body)
        .await;
    body
}

/// Decodes a chunked body, keeping at most [`MAX_RESP_BODY`] bytes.
async fn read_chunked<R: AsyncBufRead + Unpin>(reader: &mut R) -> Vec<u8> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    while body.len() < MAX_RESP_BODY {
        line.clear();
        if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or_default();
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let want = size.min(MAX_RESP_BODY - body.len());
        let start = body.len();
        body.resize(start + want, 0);
        if reader.read_exact(&mut body[start..]).await.is_err() {
            body.truncate(start);
            break;
        }
        if want < size {
            break;
        }
        line.clear();
        if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            break;
        }
    }
    body
}

/// Go's `net.JoinHostPort`.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A dial error as Go prints it: `dial tcp 127.0.0.1:1: connect: connection refused`.
pub fn dial_error(addr: &str, host: &str, err: &std::io::Error) -> String {
    if err.raw_os_error().is_some() {
        format!("dial tcp {addr}: connect: {}", errno_text(err))
    } else {
        format!("dial tcp: lookup {host}: {err}")
    }
}

/// An OS error's text the way Go prints it (`connection refused`, no "(os error 111)").
pub fn errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => desc.to_string(),
            }
        }
        None => err.to_string(),
    }
}

/// The probe's `path` as a request target (`formatURL`): a fragment is dropped, a missing
/// leading '/' added; the query is kept.
fn probe_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// Percent-encodes the bytes that may not appear in a request target (spaces, controls,
/// non-ASCII, quotes, angle brackets, backslash, caret, backtick, braces and pipe); existing
/// `%xx` escapes are left alone.
fn escape_request_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for &b in target.as_bytes() {
        if b <= 0x20 || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-custom-header` → `X-Custom-Header`. Keys with
/// bytes other than letters, digits and '-' are returned unchanged.
pub fn canonical_header_key(key: &str) -> String {
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return key.to_string();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

/// Go refuses to send header names that are not tokens and values with CR, LF or NUL.
fn invalid_header(headers: &[(String, String)]) -> Option<String> {
    const TOKEN_SPECIALS: &[u8] = b"!#$%&'*+-.^_`|~";
    for (name, value) in headers {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || TOKEN_SPECIALS.contains(&b));
        if !valid_name {
            return Some(format!("net/http: invalid header field name {name:?}"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Some(format!("net/http: invalid header field value for {name:?}"));
        }
    }
    None
}

/// `scheme:rest` when `s` starts with a URL scheme (`[A-Za-z][A-Za-z0-9+.-]*:`).
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)))
        .then_some((scheme, rest))
}

/// Parses `host[:port][/path]` after `scheme://`.
fn parse_authority_and_path(scheme: &str, rest: &str) -> Result<HttpUrl, String> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => return Err(format!("unsupported protocol scheme {other:?}")),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in host {authority:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} after host"))?,
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(HttpUrl {
        scheme: scheme.to_string(),
        host: host.to_string(),
        port,
        path: normalize_path(&path),
    })
}

/// Removes `.` and `..` segments from the path part (RFC 3986 `remove_dot_segments`).
fn normalize_path(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut path = format!("/{}", out.join("/"));
    if let Some(q) = query {
        path.push('?');
        path.push_str(q);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPHeader;

    fn url(path: &str) -> HttpUrl {
        HttpUrl {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            path: path.into(),
        }
    }

    #[test]
    fn join_location_table() {
        let base = url("/a/b/c?x=1");
        let cases: Vec<(&str, Result<&str, ()>)> = vec![
            ("/ok", Ok("http://127.0.0.1:8080/ok")),
            ("d", Ok("http://127.0.0.1:8080/a/b/d")),
            ("../d", Ok("http://127.0.0.1:8080/a/d")),
            ("./", Ok("http://127.0.0.1:8080/a/b/")),
            ("?y=2", Ok("http://127.0.0.1:8080/a/b/c?y=2")),
            ("/x#frag", Ok("http://127.0.0.1:8080/x")),
            ("http://localhost:9090/p", Ok("http://localhost:9090/p")),
            ("HTTP://example.com", Ok("http://example.com:80/")),
            ("https://example.com/s", Ok("https://example.com:443/s")),
            ("//other:81/q", Ok("http://other:81/q")),
            ("http://[::1]:8081/v6", Ok("http://[::1]:8081/v6")),
            ("ftp://example.com/", Err(())),
            ("http://host:notaport/", Err(())),
            ("mailto:someone", Err(())),
        ];
        for (location, want) in cases {
            let got = base.join(location).map(|u| u.to_string()).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{location}");
        }
    }

    #[test]
    fn request_for_action_defaults_and_overrides() {
        let header = |n: &str, v: &str| HTTPHeader {
            name: n.into(),
            value: v.into(),
        };
        struct Case {
            action: HTTPGetAction,
            want_url: &'static str,
            want_headers: Vec<(&'static str, &'static str)>,
            want_host: Option<&'static str>,
        }
        let cases = vec![
            Case {
                action: HTTPGetAction::default(),
                want_url: "http://10.0.0.1:80/",
                want_headers: vec![("User-Agent", "kube-probe/1.34"), ("Accept", "*/*")],
                want_host: None,
            },
            Case {
                action: HTTPGetAction {
                    path: Some("healthz?full=1#x".into()),
                    scheme: Some("HTTPS".into()),
                    host: Some("example.com".into()),
                    http_headers: Some(vec![
                        header("x-custom-header", "v1"),
                        header("user-agent", "mine"),
                        header("Accept", ""),
                        header("Host", "virtual.example"),
                    ]),
                    ..Default::default()
                },
                want_url: "https://example.com:80/healthz?full=1",
                want_headers: vec![("X-Custom-Header", "v1"), ("User-Agent", "mine")],
                want_host: Some("virtual.example"),
            },
            Case {
                action: HTTPGetAction {
                    http_headers: Some(vec![header("Accept", "application/json")]),
                    ..Default::default()
                },
                want_url: "http://10.0.0.1:80/",
                want_headers: vec![
                    ("Accept", "application/json"),
                    ("User-Agent", "kube-probe/1.34"),
                ],
                want_host: None,
            },
        ];
        for case in cases {
            let req = HttpGetRequest::for_action(&case.action, "10.0.0.1", 80, "probe");
            assert_eq!(req.url.to_string(), case.want_url);
            let headers: Vec<(&str, &str)> = req
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(headers, case.want_headers, "{}", case.want_url);
            assert_eq!(req.host_header.as_deref(), case.want_host);
        }
    }

    #[test]
    fn canonical_header_keys() {
        for (input, want) in [
            ("x-custom-header", "X-Custom-Header"),
            ("USER-AGENT", "User-Agent"),
            ("accept", "Accept"),
            ("a b", "a b"),
            ("x_y", "x_y"),
        ] {
            assert_eq!(canonical_header_key(input), want);
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Ok(200));
        assert_eq!(parse_status_line("HTTP/1.0 302"), Ok(302));
        assert!(parse_status_line("SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line("HTTP/1.1 2000 OK").is_err());
    }

    #[test]
    fn request_target_escaping() {
        assert_eq!(
            escape_request_target("/a b/%2F?q=\"x\""),
            "/a%20b/%2F?q=%22x%22"
        );
        assert_eq!(escape_request_target("/héllo"), "/h%C3%A9llo");
    }

    #[test]
    fn invalid_headers_are_refused() {
        let bad_value = vec![("X-A".to_string(), "a\r\nInjected: 1".to_string())];
        assert_eq!(
            invalid_header(&bad_value),
            Some("net/http: invalid header field value for \"X-A\"".into())
        );
        let bad_name = vec![("a b".to_string(), "v".to_string())];
        assert!(invalid_header(&bad_name).is_some());
    }

    #[test]
    fn errno_text_like_go() {
        let err = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_text(&err), "connection refused");
        assert_eq!(
            dial_error("127.0.0.1:1", "127.0.0.1", &err),
            "dial tcp 127.0.0.1:1: connect: connection refused"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_decode() {
        let raw: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n";
        let mut reader = BufReader::new(raw);
        assert_eq!(read_chunked(&mut reader).await, b"Wikipedia");
    }
}
