//! SPDY/3.1 as moby/spdystream (client-go's SPDY transport) speaks it: enough of the framing,
//! the zlib header compression and the stream bookkeeping for port-forward and the exec
//! fallback. Mirrors `moby/spdystream/spdy` (`types.go`, `read.go`, `write.go`) and the server
//! half of `spdystream.Connection`.
//!
//! Wire format, all big-endian:
//! - control frame: `0x80 0x03` (control bit, version 3), type (2), flags (1), length (3),
//!   payload;
//! - data frame: stream id (4, top bit 0), flags (1, FIN = 1), length (3), bytes.
//!
//! Header blocks (in SYN_STREAM, SYN_REPLY, HEADERS) are a count and length-prefixed
//! name/value pairs, zlib-compressed with the SPDY/3 dictionary in **one deflate stream per
//! direction per connection**, flushed with Z_SYNC_FLUSH after each block: a block can only be
//! decoded after every earlier one.
//!
//! Like spdystream there is no flow control (WINDOW_UPDATE and SETTINGS are read and
//! ignored); the bounded channels between the connection and its streams push back instead.
//! The server never opens streams; it answers each client stream with a SYN_REPLY before any
//! DATA (spdystream drops data for a stream it has no reply for), and echoes client PINGs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

/// SPDY version.
pub const VERSION: u16 = 3;
/// FIN flag (data and SYN frames): the sender's half of the stream is done.
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: protocol error.
pub const PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream was refused (bad headers, too many streams).
pub const REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: cancelled.
pub const CANCEL: u32 = 5;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;

/// Largest frame accepted. Client data frames are small (spdystream writes what it read, at
/// most 32 KiB); a header block is a few hundred bytes. A bigger length means a broken or
/// hostile peer, and bounds what one frame can make the agent buffer.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Largest decompressed header block (a zip bomb guard).
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// At most this many streams open on one connection (kubectl uses two per forwarded
/// connection and five for an exec); more are refused with RST_STREAM.
pub const MAX_STREAMS: usize = 256;
/// Bytes buffered per stream before the connection stops reading (there is no flow control: a
/// slow consumer stalls its whole connection, as with spdystream's own buffers). Counted in
/// bytes, each frame costing [`FRAME_OVERHEAD`] more, so neither 1 MiB frames nor 1-byte ones
/// can make a stream hold more (16 frames of 1 MiB used to be allowed). A frame larger than
/// the budget takes all of it. Larger absorbs bursts of a slow consumer better.
const STREAM_BUFFER_BYTES: usize = 256 * 1024;
/// What a queued frame costs beyond its bytes (the queue entry and the buffer's header).
const FRAME_OVERHEAD: usize = 64;
/// While the connection is stalled on a full stream, how often the server pings the client:
/// a client that closed its socket answers with a TCP reset and the next write fails, which
/// ends the connection (and the session, killing an exec's process) even though its FIN is
/// queued behind unread frames. As the WebSocket transport's probe.
const STALL_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Outgoing frames buffered before writers wait.
const OUT_DEPTH: usize = 64;
/// After the client is gone, how long queued frames may take to drain.
const WRITER_GRACE: Duration = Duration::from_secs(1);

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): the length-prefixed
/// names below, then fixed status, date and MIME text. 1423 bytes, Adler-32 `0xe3c6a7c2`
/// (checked in a test), which the client's zlib header names.
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
            "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
            "authorization", "cache-control", "connection", "content-base", "content-encoding",
            "content-language", "content-length", "content-location", "content-md5",
            "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
            "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
            "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
            "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer",
            "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
            "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1",
            "url", "public", "set-cookie", "keep-alive", "origin",
        ];
        const TAIL: &[&str] = &[
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information",
            "204 No Content",
            "301 Moved Permanently",
            "400 Bad Request",
            "401 Unauthorized",
            "403 Forbidden",
            "404 Not Found",
            "500 Internal Server Error",
            "501 Not Implemented",
            "503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
            " 00:00:00",
            " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,public",
            "privatemax-age=gzip,deflate,sdch",
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ];
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        for t in TAIL {
            d.extend_from_slice(t.as_bytes());
        }
        d
    })
}

/// Errors of the SPDY layer.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// A control frame of another SPDY version.
    #[error("spdy: unsupported version {0}")]
    Version(u16),
    /// A frame longer than [`MAX_FRAME_LEN`].
    #[error("spdy: frame of {0} bytes exceeds the limit")]
    FrameTooLarge(usize),
    /// A frame whose payload does not fit its type.
    #[error("spdy: malformed {0} frame")]
    Malformed(&'static str),
    /// The header block could not be (de)compressed.
    #[error("spdy: header compression: {0}")]
    Compression(String),
    /// Reading or writing the connection failed.
    #[error("spdy: {0}")]
    Io(#[from] std::io::Error),
}

/// Header name/value pairs, names lowercase, several values of one name joined with NUL.
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The peer opens a stream.
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        fin: bool,
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// A stream is aborted.
    RstStream { stream_id: u32, status: u32 },
    /// Liveness; echoed when the peer started it.
    Ping { id: u32 },
    /// The peer is done with the connection.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// Stream bytes.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// Read and ignored: SETTINGS, WINDOW_UPDATE, HEADERS (decoded, to keep zlib in step), NOOP.
    Other { frame_type: u16 },
}

/// The decompressing half of a connection's header codec (peer → us).
pub struct HeaderDecoder(Decompress);

/// The compressing half (us → peer).
pub struct HeaderEncoder(Compress);

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder(Decompress::new(true))
    }
}

impl HeaderDecoder {
    /// Decodes one header block (continuing the connection's zlib stream).
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let start_in = self.0.total_in();
        loop {
            let consumed = (self.0.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            match self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Compression("header block too large".into()));
            }
            let consumed = (self.0.total_in() - start_in) as usize;
            if consumed >= block.len() && out.capacity() > out.len() {
                break;
            }
        }
        parse_header_block(&out)
    }
}

impl HeaderEncoder {
    /// A compressor primed with the SPDY dictionary.
    pub fn new() -> Result<Self, SpdyError> {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(dictionary())
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(HeaderEncoder(c))
    }

    /// Encodes one header block (continuing the connection's zlib stream, sync-flushed).
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start_in = self.0.total_in();
        loop {
            let consumed = (self.0.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.0
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = (self.0.total_in() - start_in) as usize;
            // Done once all input is in and the flush left room to spare (it finished).
            if consumed >= raw.len() && out.capacity() > out.len() {
                break;
            }
        }
        Ok(out)
    }
}

fn parse_header_block(raw: &[u8]) -> Result<Headers, SpdyError> {
    let mut b = raw;
    let take_u32 = |b: &mut &[u8]| -> Result<u32, SpdyError> {
        if b.len() < 4 {
            return Err(SpdyError::Malformed("header block"));
        }
        Ok(b.get_u32())
    };
    let take_str = |b: &mut &[u8], len: usize| -> Result<String, SpdyError> {
        if b.len() < len {
            return Err(SpdyError::Malformed("header block"));
        }
        let s = String::from_utf8_lossy(&b[..len]).into_owned();
        b.advance(len);
        Ok(s)
    };
    let count = take_u32(&mut b)? as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = take_u32(&mut b)? as usize;
        let name = take_str(&mut b, n)?.to_ascii_lowercase();
        let v = take_u32(&mut b)? as usize;
        let value = take_str(&mut b, v)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Takes one complete frame off the front of `buf` (`Ok(None)`: more bytes needed).
pub fn parse_frame(
    buf: &mut BytesMut,
    dec: &mut HeaderDecoder,
) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(SpdyError::FrameTooLarge(len));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let mut frame = buf.split_to(8 + len).freeze();
    let control = frame[0] & 0x80 != 0;
    let flags = frame[4];
    if !control {
        let stream_id = frame.get_u32() & 0x7fff_ffff;
        frame.advance(4);
        return Ok(Some(Frame::Data {
            stream_id,
            fin: flags & FLAG_FIN != 0,
            data: frame,
        }));
    }
    let version = frame.get_u16() & 0x7fff;
    if version != VERSION {
        return Err(SpdyError::Version(version));
    }
    let frame_type = frame.get_u16();
    frame.advance(4);
    let mut p = frame;
    let need = |p: &Bytes, n: usize, what| {
        if p.len() < n {
            Err(SpdyError::Malformed(what))
        } else {
            Ok(())
        }
    };
    Ok(Some(match frame_type {
        TYPE_SYN_STREAM => {
            need(&p, 10, "SYN_STREAM")?;
            let stream_id = p.get_u32() & 0x7fff_ffff;
            let associated_id = p.get_u32() & 0x7fff_ffff;
            let priority = p.get_u8() >> 5;
            p.advance(1);
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                fin: flags & FLAG_FIN != 0,
                headers: dec.decode(&p)?,
            }
        }
        TYPE_SYN_REPLY => {
            need(&p, 4, "SYN_REPLY")?;
            let stream_id = p.get_u32() & 0x7fff_ffff;
            Frame::SynReply {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                headers: dec.decode(&p)?,
            }
        }
        TYPE_RST_STREAM => {
            need(&p, 8, "RST_STREAM")?;
            Frame::RstStream {
                stream_id: p.get_u32() & 0x7fff_ffff,
                status: p.get_u32(),
            }
        }
        TYPE_PING => {
            need(&p, 4, "PING")?;
            Frame::Ping { id: p.get_u32() }
        }
        TYPE_GOAWAY => {
            need(&p, 8, "GOAWAY")?;
            Frame::GoAway {
                last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                status: p.get_u32(),
            }
        }
        TYPE_HEADERS => {
            need(&p, 4, "HEADERS")?;
            p.advance(4);
            // Decoded and dropped: the zlib stream must see every block.
            dec.decode(&p)?;
            Frame::Other { frame_type }
        }
        other => Frame::Other { frame_type: other },
    }))
}

fn control_frame(frame_type: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// A SYN_REPLY frame.
pub fn encode_syn_reply(
    enc: &mut HeaderEncoder,
    stream_id: u32,
    fin: bool,
    headers: &[(&str, &str)],
) -> Result<Vec<u8>, SpdyError> {
    let mut payload = stream_id.to_be_bytes().to_vec();
    payload.extend(enc.encode(headers)?);
    Ok(control_frame(
        TYPE_SYN_REPLY,
        if fin { FLAG_FIN } else { 0 },
        &payload,
    ))
}

/// A SYN_STREAM frame (the client's side; the server never opens streams, tests do).
pub fn encode_syn_stream(
    enc: &mut HeaderEncoder,
    stream_id: u32,
    fin: bool,
    headers: &[(&str, &str)],
) -> Result<Vec<u8>, SpdyError> {
    let mut payload = stream_id.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    payload.extend(enc.encode(headers)?);
    Ok(control_frame(
        TYPE_SYN_STREAM,
        if fin { FLAG_FIN } else { 0 },
        &payload,
    ))
}

/// A data frame (at most [`MAX_FRAME_LEN`] bytes of `data`; callers write smaller chunks).
pub fn encode_data(stream_id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    out.push(if fin { FLAG_FIN } else { 0 });
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

/// A RST_STREAM frame.
pub fn encode_rst_stream(stream_id: u32, status: u32) -> Vec<u8> {
    let mut p = stream_id.to_be_bytes().to_vec();
    p.extend_from_slice(&status.to_be_bytes());
    control_frame(TYPE_RST_STREAM, 0, &p)
}

/// A PING frame.
pub fn encode_ping(id: u32) -> Vec<u8> {
    control_frame(TYPE_PING, 0, &id.to_be_bytes())
}

/// A GOAWAY frame.
pub fn encode_goaway(last_good_stream_id: u32, status: u32) -> Vec<u8> {
    let mut p = last_good_stream_id.to_be_bytes().to_vec();
    p.extend_from_slice(&status.to_be_bytes());
    control_frame(TYPE_GOAWAY, 0, &p)
}

/// Frames a stream or the connection asks the writer to send.
enum Outgoing {
    Reply(u32),
    Data { id: u32, data: Bytes, fin: bool },
    Reset(u32, u32),
    Ping(u32),
    GoAway(u32),
}

/// A stream the client opened, handed to the application.
pub struct Stream {
    /// Its id (odd: client-initiated).
    pub id: u32,
    /// Its SYN_STREAM headers.
    pub headers: Headers,
    data: Inbound,
    out: mpsc::Sender<Outgoing>,
}

/// A stream's received frames, each holding its share of the stream's byte budget until read.
type Inbound = mpsc::UnboundedReceiver<(Bytes, OwnedSemaphorePermit)>;
/// The connection's end of [`Inbound`].
type Outbound = mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>;

impl Stream {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Accepts the stream (SYN_REPLY); must come before any data.
    pub async fn reply(&self) -> bool {
        self.out.send(Outgoing::Reply(self.id)).await.is_ok()
    }

    /// Refuses or aborts the stream (RST_STREAM).
    pub async fn reset(&self, status: u32) {
        let _ = self.out.send(Outgoing::Reset(self.id, status)).await;
    }

    /// The next bytes from the client; `None` once it sent FIN (or reset, or the connection
    /// ended).
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.data.recv().await.map(|(b, _budget)| b)
    }

    /// Splits into the receiving half and a writer.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (
            StreamReader {
                id: self.id,
                data: self.data,
            },
            StreamWriter {
                id: self.id,
                out: self.out,
            },
        )
    }
}

/// The receiving half of a [`Stream`].
pub struct StreamReader {
    /// The stream's id.
    pub id: u32,
    data: Inbound,
}

impl StreamReader {
    /// As [`Stream::recv`].
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.data.recv().await.map(|(b, _budget)| b)
    }
}

/// The sending half of a [`Stream`].
#[derive(Clone)]
pub struct StreamWriter {
    /// The stream's id.
    pub id: u32,
    out: mpsc::Sender<Outgoing>,
}

impl StreamWriter {
    /// Sends bytes; `false` if the connection is gone.
    pub async fn write(&self, data: Bytes) -> bool {
        self.out
            .send(Outgoing::Data {
                id: self.id,
                data,
                fin: false,
            })
            .await
            .is_ok()
    }

    /// Ends our half of the stream (an empty data frame with FIN).
    pub async fn close(&self) {
        let _ = self
            .out
            .send(Outgoing::Data {
                id: self.id,
                data: Bytes::new(),
                fin: true,
            })
            .await;
    }

    /// Aborts the stream.
    pub async fn reset(&self, status: u32) {
        let _ = self.out.send(Outgoing::Reset(self.id, status)).await;
    }
}

/// Serves one SPDY connection: every stream the client opens goes to `streams`; returns when
/// the client sends GOAWAY or closes, on a protocol error, or after `idle` with no frame either
/// way. Stream ends (FIN, RST) close the stream's receiver.
pub async fn serve<IO>(
    io: IO,
    streams: mpsc::Sender<Stream>,
    idle: Duration,
) -> Result<(), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(OUT_DEPTH);
    let epoch = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let mut writer = tokio::spawn(write_loop(wr, out_rx, epoch, last_activity.clone()));
    let touch = |t: &AtomicU64| t.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);

    let mut dec = HeaderDecoder::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut open: HashMap<u32, (Outbound, Arc<Semaphore>)> = HashMap::new();
    // Our pings have even ids (the client's are odd).
    let mut ping_id = 0u32;
    let mut last_id = 0u32;
    let mut writer_done = false;
    let result = 'conn: loop {
        // Drain every complete frame before reading more.
        loop {
            let frame = match parse_frame(&mut buf, &mut dec) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => break 'conn Err(e),
            };
            touch(&last_activity);
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                    ..
                } => {
                    if stream_id % 2 == 0 || stream_id <= last_id {
                        let _ = out_tx
                            .send(Outgoing::Reset(stream_id, PROTOCOL_ERROR))
                            .await;
                        continue;
                    }
                    last_id = stream_id;
                    if open.len() >= MAX_STREAMS {
                        tracing::debug!(stream_id, "spdy: too many streams; refusing");
                        let _ = out_tx
                            .send(Outgoing::Reset(stream_id, REFUSED_STREAM))
                            .await;
                        continue;
                    }
                    let (tx, rx) = mpsc::unbounded_channel();
                    if !fin {
                        open.insert(
                            stream_id,
                            (tx, Arc::new(Semaphore::new(STREAM_BUFFER_BYTES))),
                        );
                    }
                    let stream = Stream {
                        id: stream_id,
                        headers,
                        data: rx,
                        out: out_tx.clone(),
                    };
                    if streams.send(stream).await.is_err() {
                        break 'conn Ok(());
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if let Some((tx, budget)) = open.get(&stream_id).cloned()
                        && !data.is_empty()
                    {
                        let cost = (data.len() + FRAME_OVERHEAD).min(STREAM_BUFFER_BYTES);
                        let acquire =
                            budget.acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX));
                        tokio::pin!(acquire);
                        // Wait for room, noticing meanwhile a client that went away.
                        let permit = loop {
                            tokio::select! {
                                p = &mut acquire => break p.ok(),
                                _ = &mut writer, if !writer_done => {
                                    writer_done = true;
                                    break 'conn Ok(());
                                }
                                _ = tokio::time::sleep(STALL_PROBE_INTERVAL) => {
                                    ping_id = ping_id.wrapping_add(2);
                                    let _ = out_tx.try_send(Outgoing::Ping(ping_id));
                                }
                            }
                        };
                        if permit.is_none_or(|p| tx.send((data, p)).is_err()) {
                            open.remove(&stream_id);
                        }
                    }
                    if fin {
                        open.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    open.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    // Client pings have odd ids; even ones would answer pings of ours.
                    if id % 2 == 1 {
                        let _ = out_tx.send(Outgoing::Ping(id)).await;
                    }
                }
                Frame::GoAway { .. } => break 'conn Ok(()),
                Frame::SynReply { .. } | Frame::Other { .. } => {}
            }
        }
        let since = Duration::from_millis(last_activity.load(Ordering::Relaxed));
        let deadline = epoch + since + idle;
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e.into()),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let since = Duration::from_millis(last_activity.load(Ordering::Relaxed));
                if Instant::now() >= epoch + since + idle {
                    tracing::info!(?idle, "spdy connection idle; closing it");
                    let _ = out_tx.send(Outgoing::GoAway(last_id)).await;
                    break Ok(());
                }
            }
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                break Ok(());
            }
        }
    };
    drop(open);
    drop(out_tx);
    if !writer_done
        && tokio::time::timeout(WRITER_GRACE, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    result
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut out: mpsc::Receiver<Outgoing>,
    epoch: Instant,
    last_activity: Arc<AtomicU64>,
) {
    let Ok(mut enc) = HeaderEncoder::new() else {
        return;
    };
    while let Some(item) = out.recv().await {
        let bytes = match item {
            Outgoing::Reply(id) => match encode_syn_reply(&mut enc, id, false, &[]) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: encode SYN_REPLY");
                    return;
                }
            },
            Outgoing::Data { id, data, fin } => encode_data(id, fin, &data),
            Outgoing::Reset(id, status) => encode_rst_stream(id, status),
            Outgoing::GoAway(last) => encode_goaway(last, 0),
            Outgoing::Ping(id) => encode_ping(id),
        };
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
        if out.is_empty() && wr.flush().await.is_err() {
            return;
        }
        last_activity.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Adler-32, as zlib puts it in the header of a stream using this dictionary.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_share_one_zlib_stream() {
        let mut enc = HeaderEncoder::new().unwrap();
        let mut dec = HeaderDecoder::default();
        let blocks: Vec<Vec<(&str, &str)>> = vec![
            vec![
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ],
            vec![("streamtype", "data"), ("port", "8080"), ("requestid", "0")],
            vec![],
        ];
        for h in &blocks {
            let wire = enc.encode(h).unwrap();
            let got = dec.decode(&wire).unwrap();
            let want: Headers = h
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want);
        }
        // The first block names the dictionary in its zlib header: 78 xx e3 c6 a7 c2.
        let mut fresh = HeaderEncoder::new().unwrap();
        let first = fresh.encode(&[("a", "b")]).unwrap();
        assert_eq!(first[0], 0x78);
        assert_eq!(&first[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn frames_round_trip() {
        let mut enc = HeaderEncoder::new().unwrap();
        let mut dec = HeaderDecoder::default();
        let mut wire = BytesMut::new();
        wire.extend(encode_syn_stream(&mut enc, 1, false, &[("streamtype", "error")]).unwrap());
        wire.extend(encode_data(1, true, b""));
        wire.extend(encode_data(3, false, b"GET / HTTP/1.1\r\n"));
        wire.extend(encode_ping(1));
        wire.extend(encode_rst_stream(3, CANCEL));
        wire.extend(encode_goaway(3, 0));
        wire.extend(encode_syn_reply(&mut enc, 5, true, &[]).unwrap());
        // Fed byte by byte, frames appear only when complete.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = parse_frame(&mut buf, &mut dec).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::SynStream {
                    stream_id: 1,
                    associated_id: 0,
                    priority: 0,
                    fin: false,
                    headers: vec![("streamtype".into(), "error".into())],
                },
                Frame::Data {
                    stream_id: 1,
                    fin: true,
                    data: Bytes::new()
                },
                Frame::Data {
                    stream_id: 3,
                    fin: false,
                    data: Bytes::from_static(b"GET / HTTP/1.1\r\n")
                },
                Frame::Ping { id: 1 },
                Frame::RstStream {
                    stream_id: 3,
                    status: CANCEL
                },
                Frame::GoAway {
                    last_good_stream_id: 3,
                    status: 0
                },
                Frame::SynReply {
                    stream_id: 5,
                    fin: true,
                    headers: vec![]
                },
            ]
        );
        let mut bad = BytesMut::from(&[0x80u8, 2, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(
            parse_frame(&mut bad, &mut dec),
            Err(SpdyError::Version(2))
        ));
        let mut huge = BytesMut::from(&[0u8, 0, 0, 1, 0, 0x7f, 0xff, 0xff][..]);
        assert!(matches!(
            parse_frame(&mut huge, &mut dec),
            Err(SpdyError::FrameTooLarge(_))
        ));
    }

    #[tokio::test]
    async fn a_gone_client_ends_a_connection_stalled_on_a_full_stream() {
        let (client, server) = tokio::io::duplex(4 << 20);
        let (streams_tx, mut streams_rx) = mpsc::channel(4);
        let srv = tokio::spawn(serve(server, streams_tx, Duration::from_secs(3600)));
        let (_crd, mut cwr) = tokio::io::split(client);
        let mut enc = HeaderEncoder::new().unwrap();
        cwr.write_all(&encode_syn_stream(&mut enc, 1, false, &[("streamtype", "stdin")]).unwrap())
            .await
            .unwrap();
        // Nobody reads the stream: 20 frames of 64 KiB, 3 fit in its budget (and more than
        // the 16 frames a stream used to queue).
        let s = streams_rx.recv().await.unwrap();
        let frame = encode_data(1, false, &vec![7u8; 64 * 1024]);
        for _ in 0..20 {
            cwr.write_all(&frame).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!srv.is_finished());
        // The client goes away: the connection's pings fail and it ends.
        drop(cwr);
        drop(_crd);
        let ended = tokio::time::timeout(STALL_PROBE_INTERVAL * 3, srv).await;
        assert!(ended.is_ok(), "the connection outlived its client");
        drop(s);
    }

    #[tokio::test]
    async fn server_replies_echoes_pings_and_routes_data() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (streams_tx, mut streams_rx) = mpsc::channel(4);
        let srv = tokio::spawn(serve(server, streams_tx, Duration::from_secs(10)));
        let (mut crd, mut cwr) = tokio::io::split(client);
        let mut enc = HeaderEncoder::new().unwrap();
        cwr.write_all(&encode_syn_stream(&mut enc, 1, false, &[("streamtype", "data")]).unwrap())
            .await
            .unwrap();
        cwr.write_all(&encode_ping(7)).await.unwrap();
        let mut s = streams_rx.recv().await.unwrap();
        assert_eq!(s.header("streamtype"), Some("data"));
        assert!(s.reply().await);
        cwr.write_all(&encode_data(1, true, b"hello"))
            .await
            .unwrap();
        assert_eq!(s.recv().await, Some(Bytes::from_static(b"hello")));
        assert_eq!(s.recv().await, None);
        let (_r, w) = s.split();
        assert!(w.write(Bytes::from_static(b"world")).await);
        w.close().await;
        // Read back: PING echo, SYN_REPLY, DATA, FIN (the ping may come first).
        let mut dec = HeaderDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        while got.len() < 4 {
            crd.read_buf(&mut buf).await.unwrap();
            while let Some(f) = parse_frame(&mut buf, &mut dec).unwrap() {
                got.push(f);
            }
        }
        assert!(got.contains(&Frame::Ping { id: 7 }));
        let rest: Vec<_> = got
            .into_iter()
            .filter(|f| !matches!(f, Frame::Ping { .. }))
            .collect();
        assert_eq!(
            rest,
            vec![
                Frame::SynReply {
                    stream_id: 1,
                    fin: false,
                    headers: vec![]
                },
                Frame::Data {
                    stream_id: 1,
                    fin: false,
                    data: Bytes::from_static(b"world")
                },
                Frame::Data {
                    stream_id: 1,
                    fin: true,
                    data: Bytes::new()
                },
            ]
        );
        cwr.write_all(&encode_goaway(1, 0)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), srv)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
