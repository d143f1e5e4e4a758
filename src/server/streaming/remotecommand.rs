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
/// kubectl's pings every 5 s count as traffic.
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
    // One decoded client message waiting for room in the session's channel; the socket is not
    // read meanwhile, so a process that does not read stdin pushes back on the client.
    let mut pending: Vec<ClientInput> = Vec::new();
    let mut outcome: Option<Outcome> = None;
    let mut output_open = true;
    let mut client_open = true;
    let mut deadline = Instant::now() + idle;

    while outcome.is_none() || output_open {
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
                    if ws.send(msg).await.is_err() {
                        client_open = false;
                        close_input = true;
                    }
                }
                None => output_open = false,
            },
            permit = reserve(in_tx.as_ref()), if !pending.is_empty() => match permit {
                Some(p) => p.send(pending.remove(0)),
                None => close_input = true,
            },
            msg = ws.recv(), if client_open && pending.is_empty() => {
                deadline = Instant::now() + idle;
                match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        client_open = false;
                        close_input = true;
                    }
                    Some(Ok(m)) => match wsstream::decode(proto, &m) {
                        Ok(Some((channel, data))) => pending = client_input(proto, channel, data),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "bad message from streaming client");
                            outcome = Some(Outcome::Failed(e.to_string()));
                            break;
                        }
                    },
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
            pending.clear();
        }
    }
    drop(in_tx);
    let outcome = outcome.unwrap_or(Outcome::ClientGone);
    if !client_open || outcome == Outcome::ClientGone {
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
        let _ = ws.send(msg).await;
    }
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
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
            while let Some(b) = rd.recv().await {
                if tx.send(ClientInput::Stdin(b)).await.is_err() {
                    return;
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
