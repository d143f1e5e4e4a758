//! Exec and attach sessions of the streaming server, and the WebSocket transport that carries
//! them. Mirrors `cri/streaming/remotecommand` (`ServeExec`, `ServeAttach`, `websocket.go`).
//!
//! A session is split in two halves joined by two bounded channels, so one session logic serves
//! every wire protocol:
//! - the *session* ([`run_exec`], [`run_attach`]) moves bytes between [`ClientInput`] /
//!   [`ServerOutput`] and a process (its pipes or pty) or a container's attach socket, and
//!   returns an [`Outcome`];
//! - the *transport* ([`serve_websocket`] here, the SPDY one in [`serve_spdy`]) decodes
//!   the client's frames into [`ClientInput`], encodes [`ServerOutput`], and at the end writes
//!   the outcome on the error stream and closes properly (WebSocket Close 1000).
//!
//! When the client goes away, the session's input channel closes; an exec's process group is
//! then killed, an attach simply detaches.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wsstream::{self, ChannelProtocol};
use crate::runtime::exec::{ExecContext, StreamOptions, exec_streaming};
use crate::server::status;
use crate::shim::attach as shim_attach;

/// Messages buffered between a transport and its session, each way. Small: the channels only
/// decouple the two halves; real buffering is in the kernel's pipes and sockets, and a full
/// channel pushes back on the process (output) or the client (input).
const CHANNEL_DEPTH: usize = 16;
/// Bytes read from a process's output at a time (one WebSocket message at most this big).
const READ_CHUNK: usize = 32 * 1024;
/// After the process exits, how long to keep reading output that a child it left behind still
/// holds open. As `exec_sync`'s drain: the exited process's last writes are in the pipe
/// already; a background daemon must not hold the session (and kubectl) open.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(200);
/// After sending its Close frame, how long the server waits for the client's. kubectl answers
/// at once; a client that does not is cut off.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest WebSocket message (and frame) accepted from a client, as SPDY's
/// [`super::spdy::MAX_FRAME_LEN`]: kubectl sends stdin 32 KiB at a time, so 1 MiB leaves room
/// for other clients while bounding what one message makes the agent buffer (axum's default
/// is 64 MiB a message: 18 × 15 MiB frames grew the agent by 270 MiB). A bigger one ends the
/// session with Close 1009 and a Status.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Stdin bytes a WebSocket session keeps queued for a process that is not reading them, beyond
/// the message being read. While the queue is full the socket is not read (the client is
/// pushed back through TCP) but probed with pings, so a client that went away is still
/// noticed. Larger queues absorb bursts better; each session may hold this much plus one
/// message plus the stdin channel's chunks.
const STDIN_QUEUE_BYTES: usize = 256 * 1024;
/// Stdin is handed to the session in pieces of at most this many bytes (WebSocket and SPDY), so
/// the channel between the two halves ([`CHANNEL_DEPTH`] pieces) holds at most 512 KiB.
const STDIN_CHUNK: usize = 32 * 1024;
/// While stdin is stalled (queue full), how often the server pings the client. A client that
/// closed its socket answers the first ping with a TCP reset and the second send fails, so an
/// abandoned session ends within two intervals. Pings cost a few bytes each, only while
/// stalled; kubectl pings every 5 s itself.
const STALL_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The WebSocket close code for a message over [`MAX_MESSAGE_SIZE`] (RFC 6455 "Message Too
/// Big").
const CLOSE_TOO_BIG: u16 = 1009;
/// After closing a session whose client is still sending (a message over the limit), how long
/// to wait before dropping the socket: dropping it with unread data sends a TCP reset, which
/// can destroy the Status and Close frames before the client reads them. Go's `net/http`
/// waits 500 ms for the same reason (`rstAvoidanceDelay`).
const RST_AVOIDANCE_DELAY: Duration = Duration::from_millis(500);

/// What the client sent, whatever the wire protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput {
    /// Bytes for stdin.
    Stdin(Bytes),
    /// The client's stdin reached EOF (v5 `[0xFF, 0x00]`, SPDY FIN on the stdin stream).
    StdinClosed,
    /// The terminal was resized.
    Resize { width: u16, height: u16 },
}

/// What the server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerOutput {
    /// Process stdout (or the terminal's output).
    Stdout(Bytes),
    /// Process stderr.
    Stderr(Bytes),
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited (with this argv and code), or an attached container exited.
    Exited { command: Vec<String>, code: i32 },
    /// It could not run, or broke.
    Failed(String),
    /// The client went away first; nothing is sent.
    ClientGone,
}

impl Outcome {
    /// The Status JSON for the error stream (v4 and later).
    pub fn status(&self) -> Option<Value> {
        match self {
            Outcome::Exited { code: 0, .. } => Some(status::success()),
            Outcome::Exited { command, code } => Some(status::non_zero_exit(command, *code)),
            Outcome::Failed(msg) => Some(status::internal_error(msg)),
            Outcome::ClientGone => None,
        }
    }

    /// The plain-text error for protocols before v4 (nothing on success).
    pub fn legacy_error(&self) -> Option<String> {
        match self {
            Outcome::Exited { code: 0, .. } | Outcome::ClientGone => None,
            Outcome::Exited { command, code } => Some(format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            )),
            Outcome::Failed(msg) => Some(msg.clone()),
        }
    }
}

/// The CRI exec session: starts `argv` in the container's context and moves bytes until the
/// process exits (then its output is drained, bounded by `DRAIN_TIMEOUT`) or the client goes
/// away (then the process group is killed).
pub async fn run_exec(
    ctx: ExecContext,
    argv: Vec<String>,
    opts: StreamOptions,
    mut input: mpsc::Receiver<ClientInput>,
    output: mpsc::Sender<ServerOutput>,
) -> Outcome {
    let mut session = match exec_streaming(&ctx, &argv, opts) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let mut stdin = session.stdin.take();
    let stdout = session.stdout.take();
    let stderr = session.stderr.take();
    let terminal = session.terminal.take();
    let tty = opts.tty;

    let input_pump = async {
        while let Some(msg) = input.recv().await {
            match msg {
                ClientInput::Stdin(data) => {
                    if let Some(w) = &mut stdin
                        && w.write_all(&data).await.is_err()
                    {
                        // The process closed its stdin (EPIPE): drop what follows.
                        stdin = None;
                    }
                }
                ClientInput::StdinClosed => {
                    if tty {
                        // A terminal has no EOF of its own: send the EOF character (VEOF,
                        // Ctrl-D), as a user at the terminal would.
                        if let Some(w) = &mut stdin {
                            let _ = w.write_all(&[0x04]).await;
                        }
                    } else if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                ClientInput::Resize { width, height } => {
                    if let Some(t) = &terminal
                        && let Err(e) = t.resize(width, height)
                    {
                        tracing::debug!(error = %e, width, height, "resize exec terminal");
                    }
                }
            }
        }
    };
    let outputs = async {
        tokio::join!(
            pump_output(stdout, &output, ServerOutput::Stdout),
            pump_output(stderr, &output, ServerOutput::Stderr)
        )
    };
    tokio::pin!(input_pump);
    tokio::pin!(outputs);
    let mut outputs_done = false;
    let exited = {
        let wait = session.wait();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                res = &mut wait => break res,
                _ = &mut input_pump => {
                    tracing::debug!(command = %argv.join(" "), "exec client went away; killing the process group");
                    return Outcome::ClientGone;
                }
                _ = &mut outputs, if !outputs_done => outputs_done = true,
            }
        }
    };
    if !outputs_done {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut outputs).await;
    }
    match exited {
        Ok(code) => Outcome::Exited {
            command: argv,
            code,
        },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Reads a process stream to EOF into `output`; stops early if the transport is gone.
async fn pump_output<R: AsyncRead + Unpin + ?Sized>(
    reader: Option<Box<R>>,
    output: &mpsc::Sender<ServerOutput>,
    wrap: fn(Bytes) -> ServerOutput,
) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The CRI attach session: connects to the container's shim and moves bytes until the
/// container exits (its shim closes the socket: success) or the client goes away (detach; the
/// container keeps running).
pub async fn run_attach(
    socket: PathBuf,
    opts: StreamOptions,
    mut input: mpsc::Receiver<ClientInput>,
    output: mpsc::Sender<ServerOutput>,
) -> Outcome {
    let conn = match tokio::net::UnixStream::connect(&socket).await {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed(format!(
                "attach to container: connect {}: {e}",
                socket.display()
            ));
        }
    };
    let (mut rd, mut wr) = conn.into_split();
    let input_pump = async {
        while let Some(msg) = input.recv().await {
            let frames = match msg {
                ClientInput::Stdin(data) if opts.stdin => data
                    .chunks(shim_attach::MAX_FRAME)
                    .map(|c| shim_attach::encode_frame(shim_attach::FRAME_STDIN, c))
                    .collect(),
                ClientInput::StdinClosed if opts.stdin => {
                    vec![shim_attach::encode_frame(
                        shim_attach::FRAME_STDIN_CLOSE,
                        &[],
                    )]
                }
                // The container's own terminal is not ours to resize (containers get no tty).
                _ => Vec::new(),
            };
            for f in frames {
                if wr.write_all(&f).await.is_err() {
                    return;
                }
            }
        }
    };
    let output_pump = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let Ok(frames) = shim_attach::decode_frames(&mut buf) else {
                return;
            };
            for (kind, data) in frames {
                let msg = match kind {
                    shim_attach::FRAME_STDOUT if opts.stdout => ServerOutput::Stdout(data.into()),
                    shim_attach::FRAME_STDERR if opts.stderr => ServerOutput::Stderr(data.into()),
                    // With a tty there is one output stream: stderr joins stdout.
                    shim_attach::FRAME_STDERR if opts.tty && opts.stdout => {
                        ServerOutput::Stdout(data.into())
                    }
                    _ => continue,
                };
                if output.send(msg).await.is_err() {
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = input_pump => Outcome::ClientGone,
        _ = output_pump => Outcome::Exited { command: Vec::new(), code: 0 },
    }
}

/// Runs a session over a WebSocket in `proto`: client frames in, output frames out, then the
/// outcome on the error channel and a Close 1000 (without which kubectl reports failure).
/// Ends after `idle` without any message either way (`streamingConnectionIdleTimeout`);
/// kubectl's pings every 5 s count as traffic. When the client goes away (Close, EOF, an error,
/// a failed send) the session is dropped at once, which kills an exec's process group or
/// detaches an attach, whatever it was doing (a process not reading its stdin included).
pub async fn serve_websocket<F, Fut>(
    mut ws: WebSocket,
    proto: ChannelProtocol,
    idle: Duration,
    session: F,
) where
    F: FnOnce(mpsc::Receiver<ClientInput>, mpsc::Sender<ServerOutput>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
    let (out_tx, mut out_rx) = mpsc::channel(CHANNEL_DEPTH);
    let core = session(in_rx, out_tx);
    tokio::pin!(core);
    let mut in_tx = Some(in_tx);
    // Decoded client input waiting for room in the session's channel, and its stdin bytes.
    let mut pending = StdinQueue::default();
    let mut outcome: Option<Outcome> = None;
    let mut close_code = 1000;
    let mut output_open = true;
    let mut deadline = Instant::now() + idle;
    let mut probe = tokio::time::interval(STALL_PROBE_INTERVAL);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    while outcome.is_none() || output_open {
        let stalled = pending.bytes >= STDIN_QUEUE_BYTES;
        // Set in a branch, applied after the select (the reserve future borrows `in_tx`).
        let mut close_input = false;
        tokio::select! {
            o = &mut core, if outcome.is_none() => outcome = Some(o),
            item = out_rx.recv(), if output_open => match item {
                Some(out) => {
                    deadline = Instant::now() + idle;
                    let msg = match out {
                        ServerOutput::Stdout(b) => wsstream::encode(proto, wsstream::STDOUT, &b),
                        ServerOutput::Stderr(b) => wsstream::encode(proto, wsstream::STDERR, &b),
                    };
                    if !send(&mut ws, msg, idle).await {
                        return client_gone();
                    }
                }
                None => output_open = false,
            },
            permit = reserve(in_tx.as_ref()), if !pending.is_empty() => match permit {
                Some(p) => p.send(pending.pop()),
                // The session stopped taking input (it ended): drop what is queued.
                None => close_input = true,
            },
            msg = ws.recv(), if !stalled => {
                deadline = Instant::now() + idle;
                match msg {
                    Some(Ok(Message::Close(_))) | None => return client_gone(),
                    Some(Err(e)) => {
                        let text = e.to_string();
                        // tungstenite's CapacityError: "Message too long: <size> > <max>".
                        if text.contains("too long") || text.contains("too big") {
                            tracing::info!(error = %text, max = MAX_MESSAGE_SIZE, "streaming client sent a message over the limit; closing the session");
                            outcome = Some(Outcome::Failed(format!(
                                "message from the client over the limit of {MAX_MESSAGE_SIZE} bytes: {text}"
                            )));
                            close_code = CLOSE_TOO_BIG;
                            break;
                        }
                        return client_gone();
                    }
                    Some(Ok(m)) => match wsstream::decode(proto, &m) {
                        Ok(Some((channel, data))) => {
                            if in_tx.is_some() {
                                pending.extend(client_input(proto, channel, data));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "bad message from streaming client");
                            outcome = Some(Outcome::Failed(e.to_string()));
                            break;
                        }
                    },
                }
            }
            _ = probe.tick(), if stalled => {
                if !send(&mut ws, Message::Ping(Bytes::new()), idle).await {
                    return client_gone();
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(?idle, "streaming connection idle; closing it");
                outcome = Some(Outcome::Failed(format!("streaming connection idle for {idle:?}")));
                break;
            }
        }
        if close_input {
            in_tx = None;
            pending = StdinQueue::default();
        }
    }
    drop(in_tx);
    let outcome = outcome.unwrap_or(Outcome::ClientGone);
    if outcome == Outcome::ClientGone {
        return;
    }
    let last = if proto.version >= 4 {
        outcome
            .status()
            .map(|s| wsstream::encode(proto, wsstream::ERROR, s.to_string().as_bytes()))
    } else {
        outcome
            .legacy_error()
            .map(|e| wsstream::encode(proto, wsstream::ERROR, e.as_bytes()))
    };
    if let Some(msg) = last {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(msg)).await;
    }
    let reason = if close_code == CLOSE_TOO_BIG {
        "message too big"
    } else {
        ""
    };
    let _ = tokio::time::timeout(
        CLOSE_TIMEOUT,
        ws.send(Message::Close(Some(CloseFrame {
            code: close_code,
            reason: reason.into(),
        }))),
    )
    .await;
    if close_code == CLOSE_TOO_BIG {
        // The rest of the oversized message cannot be read; let the client read our answer.
        tokio::time::sleep(RST_AVOIDANCE_DELAY).await;
        return;
    }
    // Read until the client's Close answer (or a bound), so the close handshake completes.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(m)) = ws.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The client went away: returning drops the session (an exec's process group is killed).
fn client_gone() {
    tracing::debug!("streaming client went away; ending the session");
}

/// Sends `msg`; `false` if the client is gone, or has not taken it within `idle` (a client
/// that stopped reading holds the session no longer than an idle one).
async fn send(ws: &mut WebSocket, msg: Message, idle: Duration) -> bool {
    matches!(tokio::time::timeout(idle, ws.send(msg)).await, Ok(Ok(())))
}

/// Client input not yet handed to the session, with the stdin bytes it holds.
#[derive(Default)]
struct StdinQueue {
    items: std::collections::VecDeque<ClientInput>,
    bytes: usize,
}

impl StdinQueue {
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `inputs`, stdin cut into [`STDIN_CHUNK`] pieces (slices of the same buffer).
    fn extend(&mut self, inputs: Vec<ClientInput>) {
        for input in inputs {
            match input {
                ClientInput::Stdin(mut data) => {
                    self.bytes += data.len();
                    while data.len() > STDIN_CHUNK {
                        self.items
                            .push_back(ClientInput::Stdin(data.split_to(STDIN_CHUNK)));
                    }
                    self.items.push_back(ClientInput::Stdin(data));
                }
                other => self.items.push_back(other),
            }
        }
    }

    /// The next input (only called when not empty).
    fn pop(&mut self) -> ClientInput {
        match self.items.pop_front() {
            Some(item) => {
                if let ClientInput::Stdin(b) = &item {
                    self.bytes -= b.len();
                }
                item
            }
            None => ClientInput::Stdin(Bytes::new()),
        }
    }
}

/// The SPDY protocol versions exec and attach accept (`X-Stream-Protocol-Version`), newest
/// first. Over SPDY, v5 behaves as v4: a stream's FIN already says "stdin closed".
pub const SPDY_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Runs a session over SPDY/3.1 (the fallback kubectl takes when the WebSocket upgrade is
/// refused, and what kubectl before 1.30 uses). The client opens one stream per channel, each
/// with a `streamtype` header (`error`, `stdin`, `stdout`, `stderr`, `resize`); the server
/// answers each at once, waits (at most `creation_timeout`) until all the options call for are
/// there, runs the session, then writes the Status on the error stream and ends every stream
/// it writes with FIN. Mirrors `remotecommand/httpstream.go` (`createStreams`, v4 handler).
pub async fn serve_spdy<IO, F, Fut>(
    io: IO,
    opts: StreamOptions,
    idle: Duration,
    creation_timeout: Duration,
    session: F,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    F: FnOnce(mpsc::Receiver<ClientInput>, mpsc::Sender<ServerOutput>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    use super::spdy;
    let (streams_tx, mut streams_rx) = mpsc::channel(8);
    let conn = tokio::spawn(spdy::serve(io, streams_tx, idle));
    tokio::pin!(conn);
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty);
    let mut streams: std::collections::HashMap<&'static str, spdy::Stream> =
        std::collections::HashMap::new();
    let deadline = Instant::now() + creation_timeout;
    while streams.len() < expected {
        let s = match tokio::time::timeout_at(deadline, streams_rx.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                tracing::info!(
                    expected,
                    got = streams.len(),
                    "timed out waiting for the client to create streams"
                );
                return;
            }
        };
        let kind = match s.header("streamtype") {
            Some("error") => "error",
            Some("stdin") => "stdin",
            Some("stdout") => "stdout",
            Some("stderr") => "stderr",
            Some("resize") => "resize",
            other => {
                tracing::debug!(streamtype = ?other, "refusing SPDY stream of unknown type");
                s.reset(spdy::REFUSED_STREAM).await;
                continue;
            }
        };
        if !s.reply().await {
            return;
        }
        streams.insert(kind, s);
    }
    let take = |streams: &mut std::collections::HashMap<&'static str, spdy::Stream>, k| {
        streams.remove(k).map(spdy::Stream::split)
    };
    let Some((mut error_rx, error_tx)) = take(&mut streams, "error") else {
        return;
    };
    let stdin = take(&mut streams, "stdin");
    let stdout = take(&mut streams, "stdout").map(|(_, w)| w);
    let stderr = take(&mut streams, "stderr").map(|(_, w)| w);
    let resize = take(&mut streams, "resize");
    tokio::spawn(async move { while error_rx.recv().await.is_some() {} });

    let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
    let (out_tx, mut out_rx) = mpsc::channel::<ServerOutput>(CHANNEL_DEPTH);
    if let Some((mut rd, _)) = stdin {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(mut b) = rd.recv().await {
                // In pieces, as over WebSocket: the channel then holds at most 16 × 32 KiB.
                while !b.is_empty() {
                    let piece = b.split_to(b.len().min(STDIN_CHUNK));
                    if tx.send(ClientInput::Stdin(piece)).await.is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(ClientInput::StdinClosed).await;
        });
    }
    if let Some((mut rd, _)) = resize {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(b) = rd.recv().await {
                buf.extend_from_slice(&b);
                // Only complete lines: a size may arrive split over data frames.
                let Some(end) = buf.iter().rposition(|&c| c == b'\n') else {
                    continue;
                };
                let lines: Vec<u8> = buf.drain(..=end).collect();
                for size in wsstream::parse_resizes(&lines) {
                    let msg = ClientInput::Resize {
                        width: size.width,
                        height: size.height,
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // Held until the session ends: the session reads "input closed" as "client gone", and over
    // SPDY the client is gone only when the connection is (watched below), not when its
    // stdin stream ends.
    let _client_alive = in_tx;
    let outputs = async {
        while let Some(o) = out_rx.recv().await {
            let (w, b) = match o {
                ServerOutput::Stdout(b) => (&stdout, b),
                ServerOutput::Stderr(b) => (&stderr, b),
            };
            if let Some(w) = w {
                w.write(b).await;
            }
        }
    };
    let run = async { tokio::join!(session(in_rx, out_tx), outputs).0 };
    let outcome = tokio::select! {
        o = run => o,
        _ = &mut conn => {
            tracing::debug!("SPDY client went away during the session");
            return;
        }
    };
    if let Some(status) = outcome.status() {
        error_tx.write(Bytes::from(status.to_string())).await;
    }
    for w in [&stdout, &stderr].into_iter().flatten() {
        w.close().await;
    }
    error_tx.close().await;
    // The client resets its streams and sends GOAWAY once it has read the status.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut conn).await;
}

async fn reserve(tx: Option<&mpsc::Sender<ClientInput>>) -> Option<mpsc::Permit<'_, ClientInput>> {
    tx?.reserve().await.ok()
}

/// The session inputs a client frame on `channel` stands for.
pub fn client_input(proto: ChannelProtocol, channel: u8, data: Bytes) -> Vec<ClientInput> {
    match channel {
        wsstream::STDIN if !data.is_empty() => vec![ClientInput::Stdin(data)],
        wsstream::RESIZE => wsstream::parse_resizes(&data)
            .into_iter()
            .map(|s| ClientInput::Resize {
                width: s.width,
                height: s.height,
            })
            .collect(),
        wsstream::CLOSE if proto.version >= 5 && data.first() == Some(&wsstream::STDIN) => {
            vec![ClientInput::StdinClosed]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_to_inputs() {
        use wsstream::{V4, V5};
        let cases: Vec<(ChannelProtocol, u8, &[u8], Vec<ClientInput>)> = vec![
            (
                V5,
                0,
                b"ls\n",
                vec![ClientInput::Stdin(Bytes::from_static(b"ls\n"))],
            ),
            (V5, 0, b"", vec![]),
            (
                V5,
                4,
                b"{\"Width\":100,\"Height\":40}\n",
                vec![ClientInput::Resize {
                    width: 100,
                    height: 40,
                }],
            ),
            (V5, 255, &[0], vec![ClientInput::StdinClosed]),
            // v4 has no close signal; a close of another stream means nothing here.
            (V4, 255, &[0], vec![]),
            (V5, 255, &[2], vec![]),
            (V5, 1, b"x", vec![]),
        ];
        for (proto, ch, data, want) in cases {
            assert_eq!(
                client_input(proto, ch, Bytes::copy_from_slice(data)),
                want,
                "{} ch {ch}",
                proto.name
            );
        }
    }

    #[tokio::test]
    async fn exec_session_pipes_stdin_and_reports_exit() {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let argv: Vec<String> = ["sh", "-c", "cat; echo err >&2; exit 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let opts = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let session = tokio::spawn(run_exec(
            ExecContext::default(),
            argv.clone(),
            opts,
            in_rx,
            out_tx,
        ));
        in_tx
            .send(ClientInput::Stdin(Bytes::from_static(b"a\nb\n")))
            .await
            .unwrap();
        in_tx.send(ClientInput::StdinClosed).await.unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(o) = out_rx.recv().await {
            match o {
                ServerOutput::Stdout(b) => out.extend_from_slice(&b),
                ServerOutput::Stderr(b) => err.extend_from_slice(&b),
            }
        }
        assert_eq!(out, b"a\nb\n");
        assert_eq!(err, b"err\n");
        let outcome = session.await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Exited {
                command: argv,
                code: 3
            }
        );
        assert_eq!(outcome.status().unwrap()["reason"], "NonZeroExitCode");
    }

    #[tokio::test]
    async fn exec_session_with_a_tty() {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let argv: Vec<String> = ["sh", "-c", "stty size; test -t 0 && echo tty"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let opts = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        // Resize before the process reads its size: queue it first.
        in_tx
            .send(ClientInput::Resize {
                width: 100,
                height: 40,
            })
            .await
            .unwrap();
        let session = tokio::spawn(run_exec(
            ExecContext::default(),
            argv.clone(),
            opts,
            in_rx,
            out_tx,
        ));
        let mut out = Vec::new();
        while let Some(ServerOutput::Stdout(b)) = out_rx.recv().await {
            out.extend_from_slice(&b);
        }
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("tty"), "{text:?}");
        assert_eq!(
            session.await.unwrap(),
            Outcome::Exited {
                command: argv,
                code: 0
            }
        );
        drop(in_tx);
    }

    #[tokio::test]
    async fn exec_session_client_gone_kills_the_process() {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, _out_rx) = mpsc::channel(4);
        let argv: Vec<String> = ["sleep", "30"].iter().map(|s| s.to_string()).collect();
        let session = tokio::spawn(run_exec(
            ExecContext::default(),
            argv,
            StreamOptions {
                stdout: true,
                ..Default::default()
            },
            in_rx,
            out_tx,
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(in_tx);
        let outcome = tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .expect("the session ends when the client goes")
            .unwrap();
        assert_eq!(outcome, Outcome::ClientGone);
    }
}
