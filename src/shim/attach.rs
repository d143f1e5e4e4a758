//! The attach socket, `<state-dir>/attach.sock`: how the agent reaches a running container's own
//! stdin and output (CRI `Attach`), through the container's shim.
//!
//! Mirrors conmon's attach socket (and containerd-shim's stdio FIFOs): the shim holds the
//! container's stdin write end (when the spec asked for `stdin: true`) and its stdout/stderr
//! read ends; each attached client gets a copy of the output from the moment it connects and
//! may write to stdin. The shim side is synchronous: the listener, the clients and the stdin
//! pipe join the shim's poll(2) set, every descriptor is non-blocking, and nothing a client does
//! can block the container or its log:
//! - output for a client that does not read is queued up to [`CLIENT_QUEUE_MAX`], past that the
//!   client is disconnected;
//! - stdin from clients is queued up to [`STDIN_QUEUE_MAX`]; while it is full the shim stops
//!   reading clients (the kernel's socket buffers push back on the agent).
//!
//! Wire format, both directions: frames of a 1-byte kind, a 4-byte big-endian length and that
//! many bytes. Kinds: [`FRAME_STDIN`] and [`FRAME_STDIN_CLOSE`] (agent → shim),
//! [`FRAME_STDOUT`] and [`FRAME_STDERR`] (shim → agent). When the container is gone and its
//! output drained, the shim flushes what it queued and closes every client: EOF is the end.
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};

use crate::logs::Stream;

/// agent → shim: bytes for the container's stdin.
pub const FRAME_STDIN: u8 = 0;
/// shim → agent: bytes the container wrote to stdout.
pub const FRAME_STDOUT: u8 = 1;
/// shim → agent: bytes the container wrote to stderr.
pub const FRAME_STDERR: u8 = 2;
/// agent → shim: this client's stdin reached EOF. The container's stdin is closed only when
/// its spec says `stdinOnce` (the kubelet's rule: stdin ends with the first attach session).
pub const FRAME_STDIN_CLOSE: u8 = 3;
/// Bytes of a frame header: kind + big-endian u32 length.
pub const HEADER_LEN: usize = 5;
/// Largest frame payload accepted; larger means a broken peer, which is disconnected.
pub const MAX_FRAME: usize = 64 * 1024;

/// At most this many clients at once; more are accepted and closed at once. Each costs a
/// descriptor and up to [`CLIENT_QUEUE_MAX`] of shim memory, and the shim is meant to stay small.
pub const MAX_CLIENTS: usize = 8;
/// Output queued for one client before it is dropped as too slow. Larger tolerates a briefly
/// stalled client (a slow network to kubectl); smaller bounds the shim's memory. The
/// container never waits for a client either way.
pub const CLIENT_QUEUE_MAX: usize = 256 * 1024;
/// Client input queued for the container's stdin before the shim stops reading clients.
pub const STDIN_QUEUE_MAX: usize = 64 * 1024;
/// When the container is gone, how long the shim tries to hand each client its queued output.
/// Short: it delays the exit record (and so the restart) by at most this much per client.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

/// Encodes one frame.
pub fn encode_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits the complete frames off the front of `buf`; `Err` on an oversized frame.
pub fn decode_frames(buf: &mut Vec<u8>) -> Result<Vec<(u8, Vec<u8>)>, usize> {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= HEADER_LEN {
        let len = u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
        if len > MAX_FRAME {
            return Err(len);
        }
        if buf.len() - at < HEADER_LEN + len {
            break;
        }
        frames.push((
            buf[at],
            buf[at + HEADER_LEN..at + HEADER_LEN + len].to_vec(),
        ));
        at += HEADER_LEN + len;
    }
    buf.drain(..at);
    Ok(frames)
}

/// The path of a container's attach socket.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(super::ATTACH_SOCKET)
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    /// Sent stdin (or its close): its detaching ends a `stdinOnce` container's stdin.
    used_stdin: bool,
}

/// The shim's side: listener, clients, and the container's stdin.
pub(super) struct AttachServer {
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Client>,
    stdin: Option<std::fs::File>,
    stdin_queue: VecDeque<u8>,
    stdin_once: bool,
    /// Close stdin once the queue is written (a `stdinOnce` session ended).
    close_stdin: bool,
}

/// Which descriptor a poll slot belongs to.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Stdin,
    Client(usize),
}

impl AttachServer {
    /// Binds `<state-dir>/attach.sock` (mode 0600) and takes over the container's stdin. On
    /// failure the stdin descriptor is handed back, so the container's stdin stays open.
    pub fn bind(
        state_dir: &Path,
        stdin: Option<OwnedFd>,
        stdin_once: bool,
    ) -> Result<AttachServer, (io::Error, Option<OwnedFd>)> {
        let path = socket_path(state_dir);
        let _ = std::fs::remove_file(&path);
        let listener = match UnixListener::bind(&path).and_then(|l| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            l.set_nonblocking(true)?;
            Ok(l)
        }) {
            Ok(l) => l,
            Err(e) => return Err((e, stdin)),
        };
        let stdin = match stdin {
            Some(fd) => match set_nonblocking(&fd) {
                Ok(()) => Some(std::fs::File::from(fd)),
                Err(e) => return Err((e, Some(fd))),
            },
            None => None,
        };
        Ok(AttachServer {
            path,
            listener,
            clients: Vec::new(),
            stdin,
            stdin_queue: VecDeque::new(),
            stdin_once,
            close_stdin: false,
        })
    }

    fn slots(&self) -> Vec<(Slot, PollFlags)> {
        let mut out = vec![(Slot::Listener, PollFlags::POLLIN)];
        if self.stdin.is_some() && !self.stdin_queue.is_empty() {
            out.push((Slot::Stdin, PollFlags::POLLOUT));
        }
        let read_clients = self.stdin_queue.len() < STDIN_QUEUE_MAX;
        for (i, c) in self.clients.iter().enumerate() {
            let mut flags = PollFlags::empty();
            if read_clients {
                flags |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            out.push((Slot::Client(i), flags));
        }
        out
    }

    /// The descriptors to add to the shim's poll set, in the order [`Self::handle`] expects.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        self.slots()
            .into_iter()
            .map(|(slot, flags)| {
                let fd = match slot {
                    Slot::Listener => self.listener.as_fd(),
                    Slot::Stdin => match &self.stdin {
                        Some(f) => f.as_fd(),
                        None => self.listener.as_fd(),
                    },
                    Slot::Client(i) => self.clients[i].stream.as_fd(),
                };
                PollFd::new(fd, flags)
            })
            .collect()
    }

    /// Handles the poll results for the descriptors [`Self::poll_fds`] returned (same order).
    pub fn handle(&mut self, revents: &[Option<PollFlags>]) {
        let slots = self.slots();
        let mut dead = Vec::new();
        for ((slot, _), ev) in slots.iter().zip(revents) {
            let Some(ev) = ev.filter(|e| !e.is_empty()) else {
                continue;
            };
            match *slot {
                Slot::Listener => self.accept(),
                Slot::Stdin => self.write_stdin(),
                Slot::Client(i) => {
                    let mut alive = true;
                    if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        alive = self.read_client(i);
                    }
                    if alive && ev.contains(PollFlags::POLLOUT) {
                        alive = flush_client(&mut self.clients[i]);
                    }
                    if !alive {
                        dead.push(i);
                    }
                }
            }
        }
        self.drop_clients(dead);
        if !self.stdin_queue.is_empty() || (self.close_stdin && self.stdin.is_some()) {
            self.write_stdin();
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        inbuf: Vec::new(),
                        out: VecDeque::new(),
                        used_stdin: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads what a client sent; `false` when it is gone or broken.
    fn read_client(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let c = &mut self.clients[i];
        let n = match c.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return true;
            }
            Err(_) => return false,
        };
        c.inbuf.extend_from_slice(&buf[..n]);
        let Ok(frames) = decode_frames(&mut c.inbuf) else {
            return false;
        };
        for (kind, payload) in frames {
            match kind {
                FRAME_STDIN => {
                    self.clients[i].used_stdin = true;
                    if self.stdin.is_some() && !self.close_stdin {
                        self.stdin_queue.extend(payload);
                    }
                }
                FRAME_STDIN_CLOSE => {
                    self.clients[i].used_stdin = true;
                    if self.stdin_once {
                        self.close_stdin = true;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    fn drop_clients(&mut self, mut dead: Vec<usize>) {
        dead.sort_unstable();
        dead.dedup();
        for i in dead.into_iter().rev() {
            let c = self.clients.remove(i);
            if c.used_stdin && self.stdin_once {
                self.close_stdin = true;
            }
        }
    }

    fn write_stdin(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            while !self.stdin_queue.is_empty() {
                let (front, _) = self.stdin_queue.as_slices();
                match stdin.write(front) {
                    Ok(n) => {
                        self.stdin_queue.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => {
                        // EPIPE: the container closed its stdin (or is gone).
                        self.stdin = None;
                        self.stdin_queue.clear();
                        return;
                    }
                }
            }
        }
        if self.close_stdin {
            self.stdin = None;
            self.stdin_queue.clear();
        }
    }

    /// Queues container output for every client; drops clients that fell too far behind.
    pub fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let kind = match stream {
            Stream::Stdout => FRAME_STDOUT,
            Stream::Stderr => FRAME_STDERR,
        };
        let frame = encode_frame(kind, data);
        let mut dead = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.out.len() + frame.len() > CLIENT_QUEUE_MAX {
                dead.push(i);
                continue;
            }
            c.out.extend(&frame);
            if !flush_client(c) {
                dead.push(i);
            }
        }
        self.drop_clients(dead);
    }

    /// The container is gone: hand each client what is queued (bounded), close them, and
    /// remove the socket.
    pub fn finish(mut self) {
        let _ = std::fs::remove_file(&self.path);
        for c in &mut self.clients {
            if c.stream.set_nonblocking(false).is_err()
                || c.stream
                    .set_write_timeout(Some(FINAL_FLUSH_TIMEOUT))
                    .is_err()
            {
                continue;
            }
            let (a, b) = c.out.as_slices();
            let _ = c.stream.write_all(a).and_then(|()| c.stream.write_all(b));
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.clients.clear();
    }
}

/// Writes what is queued for a client without blocking; `false` if it is gone.
fn flush_client(c: &mut Client) -> bool {
    while !c.out.is_empty() {
        let (front, _) = c.out.as_slices();
        match c.stream.write(front) {
            Ok(0) => return false,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let mut wire = encode_frame(FRAME_STDIN, b"hello");
        wire.extend(encode_frame(FRAME_STDIN_CLOSE, b""));
        wire.extend(encode_frame(FRAME_STDOUT, b"partial"));
        // Feed the bytes in pieces: frames come out only when complete.
        let cut = wire.len() - 3;
        let mut buf = wire[..cut].to_vec();
        let got = decode_frames(&mut buf).unwrap();
        assert_eq!(
            got,
            vec![
                (FRAME_STDIN, b"hello".to_vec()),
                (FRAME_STDIN_CLOSE, vec![])
            ]
        );
        buf.extend_from_slice(&wire[cut..]);
        assert_eq!(
            decode_frames(&mut buf).unwrap(),
            vec![(FRAME_STDOUT, b"partial".to_vec())]
        );
        assert!(buf.is_empty());
        let mut huge = vec![FRAME_STDIN];
        huge.extend(((MAX_FRAME + 1) as u32).to_be_bytes());
        assert_eq!(decode_frames(&mut huge), Err(MAX_FRAME + 1));
    }

    #[test]
    fn stdin_is_forwarded_and_closed_once() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let Ok(mut srv) = AttachServer::bind(dir.path(), Some(w), true) else {
            panic!("bind attach socket");
        };
        let mut client = UnixStream::connect(socket_path(dir.path())).unwrap();
        let pump = |srv: &mut AttachServer| {
            for _ in 0..5 {
                let mut fds = srv.poll_fds();
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
                let ev: Vec<_> = fds.iter().map(|f| f.revents()).collect();
                drop(fds);
                srv.handle(&ev);
            }
        };
        pump(&mut srv);
        assert_eq!(srv.clients.len(), 1);
        client
            .write_all(&encode_frame(FRAME_STDIN, b"abc\n"))
            .unwrap();
        client
            .write_all(&encode_frame(FRAME_STDIN_CLOSE, b""))
            .unwrap();
        pump(&mut srv);
        // stdinOnce: the container's stdin is closed, so the reader sees the data, then EOF.
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "abc\n");

        srv.broadcast(Stream::Stderr, b"oops");
        srv.finish();
        let mut out = Vec::new();
        client.read_to_end(&mut out).unwrap();
        assert_eq!(out, encode_frame(FRAME_STDERR, b"oops"));
        assert!(!socket_path(dir.path()).exists());
    }
}
