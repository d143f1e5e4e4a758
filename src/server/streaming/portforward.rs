//! Port forwarding: the streaming server's `/portforward/{token}` over SPDY/3.1, either on the
//! upgraded connection itself (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
//! portforward.k8s.io`) or tunneled in WebSocket binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, what kubectl 1.30+ tries first). Mirrors
//! `cri/streaming/portforward/httpstream.go` and client-go's `tunneling_connection.go`.
//!
//! Each forwarded connection is a pair of client streams with the same `requestid` header: an
//! `error` stream and a `data` stream, both naming the `port`. Once both are there, the server
//! dials the port and copies bytes both ways on the data stream; a failure is written as text
//! on the error stream. Streams without a valid `port` or `streamtype` are refused.
//!
//! minikubelet's pods share the node's network namespace, so "the pod's port" is
//! `127.0.0.1:<port>` on the node (a runtime with pod sandboxes dials inside the sandbox's
//! network namespace instead).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::spdy::{self, Stream, StreamWriter};

/// The port-forward protocol name (`X-Stream-Protocol-Version`).
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunneled in WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long dialing the pod's port may take. Loopback answers at once (or refuses at once);
/// the bound is for a listener whose accept queue is full.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// When one direction of a forwarded connection ends, how long the other may still run
/// (containerd's value): enough for a request/response tail, short enough that a half-open
/// connection does not linger.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Bytes copied per read in each direction.
const COPY_CHUNK: usize = 32 * 1024;
/// Bytes buffered inside the WebSocket tunnel's pipe.
const TUNNEL_BUFFER: usize = 64 * 1024;

/// The pod's address for `port`: its loopback (containerd's `portForward` dials `localhost` in
/// the pod's network namespace).
fn pod_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Dials `port` on the loopback of the network namespace at `netns` (the pod's own), or of the
/// node's when `None` (a pod on the node's network). The socket is made on a short-lived thread
/// that enters the namespace, so no thread of the agent stays in a pod's namespace; a socket
/// keeps the namespace it was made in.
async fn dial(netns: Option<&std::path::Path>, port: u16) -> std::io::Result<TcpStream> {
    let Some(netns) = netns else {
        return TcpStream::connect(pod_addr(port)).await;
    };
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("mkl-portforward-dial".into())
        .spawn(move || {
            let r = (|| -> std::io::Result<std::net::TcpStream> {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let s = std::net::TcpStream::connect_timeout(&pod_addr(port), DIAL_TIMEOUT)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })();
            let _ = tx.send(r);
        })?;
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("the dialing thread ended"))??;
    TcpStream::from_std(s)
}

/// The streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<Stream>,
    data: Option<Stream>,
    created: Option<Instant>,
}

/// Why a stream is refused.
fn check_stream(s: &Stream) -> Result<(&'static str, u16), String> {
    let kind = match s.header("streamtype") {
        Some("error") => "error",
        Some("data") => "data",
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("streamtype header is required".into()),
    };
    let port = s
        .header("port")
        .ok_or_else(|| "port header is required".to_string())?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {port:?}"))?;
    Ok((kind, port))
}

/// The request id pairing two streams; clients older than the `requestid` header get the
/// kubelet's best effort (error stream id, or data stream id - 2).
fn request_id(s: &Stream, kind: &str) -> String {
    match s.header("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if kind == "data" => s.id.saturating_sub(2).to_string(),
        _ => s.id.to_string(),
    }
}

/// Serves port-forwarding over one SPDY connection until the client is done.
/// `stream_creation_timeout` bounds how long half a pair may wait for the other half.
pub async fn serve_spdy<IO>(
    io: IO,
    pod: String,
    netns: Option<std::path::PathBuf>,
    idle: Duration,
    stream_creation_timeout: Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (streams_tx, mut streams_rx) = mpsc::channel(8);
    let conn = tokio::spawn(spdy::serve(io, streams_tx, idle));
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(stream_creation_timeout));
    loop {
        tokio::select! {
            s = streams_rx.recv() => {
                let Some(s) = s else { break };
                let (kind, port) = match check_stream(&s) {
                    Ok(v) => v,
                    Err(msg) => {
                        tracing::debug!(pod = %pod, stream = s.id, reason = %msg, "refusing port-forward stream");
                        s.reset(spdy::REFUSED_STREAM).await;
                        continue;
                    }
                };
                if !s.reply().await {
                    break;
                }
                let id = request_id(&s, kind);
                let pair = pairs.entry(id.clone()).or_default();
                pair.port = port;
                pair.created.get_or_insert_with(Instant::now);
                if kind == "error" {
                    pair.error = Some(s);
                } else {
                    pair.data = Some(s);
                }
                if pair.error.is_some() && pair.data.is_some()
                    && let Some(Pair { port, error: Some(error), data: Some(data), .. }) = pairs.remove(&id)
                {
                    tokio::spawn(forward(pod.clone(), netns.clone(), port, data, error));
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, p)| p.created.is_some_and(|c| now - c > stream_creation_timeout))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in expired {
                    if let Some(p) = pairs.remove(&k) {
                        tracing::debug!(pod = %pod, request_id = %k, "timed out waiting for the other stream of a port-forward pair");
                        for s in [p.error, p.data].into_iter().flatten() {
                            s.reset(spdy::CANCEL).await;
                        }
                    }
                }
            }
        }
    }
    match conn.await {
        Ok(Err(e)) => tracing::debug!(pod = %pod, error = %e, "port-forward connection ended"),
        Err(e) => tracing::debug!(pod = %pod, error = %e, "port-forward connection task"),
        Ok(Ok(())) => {}
    }
}

/// One forwarded connection: dial, then copy both ways until both directions are done.
async fn forward(
    pod: String,
    netns: Option<std::path::PathBuf>,
    port: u16,
    data: Stream,
    error: Stream,
) {
    let (mut data_rx, data_tx) = data.split();
    let (mut error_rx, error_tx) = error.split();
    // The client never writes on the error stream; drain it so its FIN is consumed.
    tokio::spawn(async move { while error_rx.recv().await.is_some() {} });
    let conn = match tokio::time::timeout(DIAL_TIMEOUT, dial(netns.as_deref(), port)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(&pod, port, &data_tx, &error_tx, e.to_string()).await,
        Err(_) => return fail(&pod, port, &data_tx, &error_tx, "dial timed out".into()).await,
    };
    tracing::debug!(pod = %pod, port, "port-forward connection");
    let _ = conn.set_nodelay(true);
    let (mut tcp_rd, mut tcp_wr) = conn.into_split();
    let upstream = async {
        while let Some(bytes) = data_rx.recv().await {
            if tcp_wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = tcp_wr.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            match tcp_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !data_tx.write(Bytes::copy_from_slice(&buf[..n])).await {
                        return;
                    }
                }
            }
        }
        data_tx.close().await;
    };
    // As containerd's PortForward: when one direction ends, the other gets a short grace
    // period, then the pair is closed.
    tokio::pin!(upstream);
    tokio::pin!(downstream);
    let downstream_done = tokio::select! {
        _ = &mut upstream => tokio::time::timeout(HALF_CLOSE_GRACE, &mut downstream).await.is_ok(),
        _ = &mut downstream => {
            let _ = tokio::time::timeout(HALF_CLOSE_GRACE, &mut upstream).await;
            true
        }
    };
    if !downstream_done {
        data_tx.close().await;
    }
    error_tx.close().await;
}

async fn fail(pod: &str, port: u16, data: &StreamWriter, error: &StreamWriter, reason: String) {
    // The kubelet's wording; kubectl prints it and closes the forwarding session.
    let msg = format!("error forwarding port {port} to pod {pod}, uid : {reason}");
    tracing::info!(pod = %pod, port, error = %reason, "port-forward failed");
    error.write(Bytes::from(msg)).await;
    error.close().await;
    data.close().await;
}

/// Turns a WebSocket carrying tunneled SPDY into a byte stream: each binary message's bytes
/// are the next bytes of the SPDY connection (message boundaries mean nothing), and what the
/// server writes goes out as binary messages. Ends with a Close 1000.
pub fn tunnel(ws: WebSocket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(TUNNEL_BUFFER);
    tokio::spawn(pump_tunnel(ws, theirs));
    ours
}

async fn pump_tunnel(mut ws: WebSocket, io: DuplexStream) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut client_closed = false;
    loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    tracing::debug!("text message in a SPDY tunnel; closing it");
                    break;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_closed = true;
                    break;
                }
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        client_closed = true;
                        break;
                    }
                }
            },
        }
    }
    let _ = wr.shutdown().await;
    if !client_closed {
        let _ = ws
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::streaming::spdy::{
        Frame, HeaderDecoder, HeaderEncoder, encode_data, encode_syn_stream, parse_frame,
    };
    use bytes::BytesMut;

    #[tokio::test]
    async fn forwards_a_connection_and_refuses_bad_streams() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).await.unwrap();
            c.write_all(b"pong:").await.unwrap();
            c.write_all(&buf).await.unwrap();
        });
        let (client, server) = tokio::io::duplex(64 * 1024);
        let srv = tokio::spawn(serve_spdy(
            server,
            "web-node".into(),
            None,
            Duration::from_secs(10),
            Duration::from_secs(5),
        ));
        let (mut crd, mut cwr) = tokio::io::split(client);
        let mut enc = HeaderEncoder::new().unwrap();
        let p = port.to_string();
        let mut send = Vec::new();
        send.extend(
            encode_syn_stream(
                &mut enc,
                1,
                false,
                &[("streamtype", "error"), ("port", &p), ("requestid", "0")],
            )
            .unwrap(),
        );
        send.extend(encode_data(1, true, b""));
        send.extend(
            encode_syn_stream(
                &mut enc,
                3,
                false,
                &[("streamtype", "data"), ("port", &p), ("requestid", "0")],
            )
            .unwrap(),
        );
        send.extend(encode_data(3, false, b"hello"));
        send.extend(
            encode_syn_stream(&mut enc, 5, false, &[("streamtype", "data"), ("port", "x")])
                .unwrap(),
        );
        cwr.write_all(&send).await.unwrap();

        let mut dec = HeaderDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut data = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Until the data stream's FIN and the error stream's FIN arrived.
        while !(got.contains(&(3, true)) && got.contains(&(1, true))) {
            assert!(Instant::now() < deadline, "{got:?}");
            tokio::time::timeout(Duration::from_secs(10), crd.read_buf(&mut buf))
                .await
                .unwrap()
                .unwrap();
            while let Some(f) = parse_frame(&mut buf, &mut dec).unwrap() {
                match f {
                    Frame::Data {
                        stream_id,
                        fin,
                        data: d,
                    } => {
                        if stream_id == 3 {
                            data.extend_from_slice(&d);
                        }
                        got.push((stream_id, fin));
                    }
                    Frame::RstStream { stream_id, status } => {
                        assert_eq!((stream_id, status), (5, spdy::REFUSED_STREAM));
                        got.push((stream_id, true));
                    }
                    Frame::SynReply { stream_id, .. } => got.push((stream_id, false)),
                    _ => {}
                }
            }
        }
        assert_eq!(data, b"pong:hello");
        assert!(got.contains(&(5, true)), "stream 5 refused: {got:?}");
        drop(cwr);
        drop(crd);
        tokio::time::timeout(Duration::from_secs(5), srv)
            .await
            .unwrap()
            .unwrap();
    }
}
