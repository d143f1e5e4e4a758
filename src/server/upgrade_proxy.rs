//! The kubelet's streaming proxy: forwards a client's upgrade request to the URL the streaming
//! server handed out, and once that answers 101, splices the two connections together.
//!
//! Mirrors `proxyStream` in `pkg/kubelet/server/server.go` and apimachinery's
//! `UpgradeAwareHandler` with `upgradeRequired`: non-upgrade requests are refused; a non-101
//! answer (a Status for an unknown token, an unsupported protocol) is passed back as is, so
//! the client sees the streaming server's own error. Since Kubernetes 1.20 the kubelet always
//! proxies (redirecting clients to the runtime's URL was removed with
//! `--redirect-container-streaming`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::status;

/// How long connecting to the streaming server and reading its answer may take. It is on
/// loopback in the same process: anything slow means it is overloaded or wedged.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer head accepted from the streaming server.
const MAX_HEAD: usize = 16 * 1024;
/// Largest error body passed back.
const MAX_BODY: usize = 1 << 20;

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The URL is not `http://host:port/path`.
    #[error("invalid streaming URL {0:?}")]
    Url(String),
    /// Talking to the streaming server failed.
    #[error("streaming server at {addr}: {source}")]
    Backend {
        addr: String,
        source: std::io::Error,
    },
    /// Its answer could not be parsed.
    #[error("streaming server at {addr}: malformed answer")]
    Malformed { addr: String },
}

/// Proxies `req` (an upgrade request) to `url`; the response to give the client.
pub async fn proxy_stream(req: Request, url: &str) -> Response {
    if !is_upgrade(&req) {
        return status::bad_request("Upgrade request required");
    }
    match try_proxy(req, url).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(error = %e, "proxy to the streaming server failed");
            status::internal(e.to_string())
        }
    }
}

/// Whether `req` asks to upgrade its connection (`Connection: Upgrade` and an `Upgrade`).
pub fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && req.headers().contains_key(axum::http::header::UPGRADE)
}

async fn try_proxy(mut req: Request, url: &str) -> Result<Response, ProxyError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProxyError::Url(url.to_string()))?;
    let (addr, path) = rest
        .split_once('/')
        .map(|(a, p)| (a.to_string(), format!("/{p}")))
        .ok_or_else(|| ProxyError::Url(url.to_string()))?;
    let backend_err = |source| ProxyError::Backend {
        addr: addr.clone(),
        source,
    };
    // The client's query travels along (port-forward's `port=` for WebSocket clients).
    let target = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut head = format!("{} {target} HTTP/1.1\r\nHost: {addr}\r\n", req.method());
    for (name, value) in req.headers() {
        if name == axum::http::header::HOST {
            continue;
        }
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{}: {v}\r\n", name.as_str()));
        }
    }
    head.push_str("\r\n");

    let (mut backend, answer) = tokio::time::timeout(BACKEND_TIMEOUT, async {
        let mut backend = TcpStream::connect(&addr).await?;
        backend.write_all(head.as_bytes()).await?;
        let answer = read_head(&mut backend).await?;
        Ok::<_, std::io::Error>((backend, answer))
    })
    .await
    .map_err(|_| {
        backend_err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        ))
    })?
    .map_err(backend_err)?;
    let (status_code, headers, leftover) =
        parse_head(&answer).ok_or(ProxyError::Malformed { addr: addr.clone() })?;

    let mut builder = Response::builder().status(status_code);
    for (name, value) in &headers {
        // The backend body's framing; the client's answer is framed anew.
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            builder = builder.header(n, v);
        }
    }
    if status_code == StatusCode::SWITCHING_PROTOCOLS {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "client upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(upgraded);
            if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        });
        return builder
            .body(Body::empty())
            .map_err(|_| ProxyError::Malformed { addr });
    }
    // An error answer: pass the body back (bounded).
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let mut body = leftover;
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut chunk = [0u8; 8192];
    while body.len() < want {
        match tokio::time::timeout(BACKEND_TIMEOUT, backend.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(want);
    builder
        .body(Body::from(body))
        .map_err(|_| ProxyError::Malformed { addr })
}

/// Reads up to the end of the answer head; returns everything read (head and what followed).
async fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "answer head too large",
            ));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An answer head: status, headers, and the bytes that followed it.
type Head = (StatusCode, Vec<(String, String)>, Vec<u8>);

/// Status, headers and the bytes after the head.
fn parse_head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let code: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((
        StatusCode::from_u16(code).ok()?,
        headers,
        buf[end + 4..].to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answer_heads() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n\x01hi";
        let (code, headers, rest) = parse_head(raw).unwrap();
        assert_eq!(code, StatusCode::SWITCHING_PROTOCOLS);
        assert!(headers.contains(&(
            "Sec-WebSocket-Protocol".to_string(),
            "v5.channel.k8s.io".to_string()
        )));
        assert_eq!(rest, b"\x01hi");
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let (code, headers, rest) = parse_head(raw).unwrap();
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(headers.len(), 2);
        assert_eq!(rest, b"{}");
        assert!(parse_head(b"HTTP/1.1 200").is_none());
    }
}
