//! The WebSocket channel protocols of remote commands: which subprotocol a session speaks and
//! how a channel's bytes travel in a message. Mirrors apimachinery's
//! `util/httpstream/wsstream/conn.go` and `util/remotecommand/constants.go`.
//!
//! Every message carries one channel: the binary protocols put the channel number in the first
//! byte and the bytes after it; the base64 ones send a text message whose first character is
//! `'0' + channel` and whose rest is standard base64. Channels: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (a `metav1.Status` JSON from v4 on, plain text before), 4 resize; v5 adds 255, the
//! client's "I closed this stream" signal (`[0xFF, 0x00]`: stdin is done).

use axum::extract::ws::Message;
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use base64::Engine;
use bytes::Bytes;

/// Channel numbers.
pub const STDIN: u8 = 0;
/// stdout.
pub const STDOUT: u8 = 1;
/// stderr.
pub const STDERR: u8 = 2;
/// Error / exit status.
pub const ERROR: u8 = 3;
/// Terminal resize (client → server).
pub const RESIZE: u8 = 4;
/// v5: the client closed one of its streams; the payload is that stream's number.
pub const CLOSE: u8 = 255;

/// A channel protocol the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelProtocol {
    /// The `Sec-WebSocket-Protocol` token.
    pub name: &'static str,
    /// 1 (`channel.k8s.io`: plain-text errors), 4 (Status errors, resize) or 5 (+ close).
    pub version: u8,
    /// Text messages with base64 payloads.
    pub base64: bool,
}

/// `v5.channel.k8s.io`: what kubectl 1.30+ offers (and only that).
pub const V5: ChannelProtocol = ChannelProtocol {
    name: "v5.channel.k8s.io",
    version: 5,
    base64: false,
};
/// `v4.channel.k8s.io`.
pub const V4: ChannelProtocol = ChannelProtocol {
    name: "v4.channel.k8s.io",
    version: 4,
    base64: false,
};
/// `v4.base64.channel.k8s.io`.
pub const V4_BASE64: ChannelProtocol = ChannelProtocol {
    name: "v4.base64.channel.k8s.io",
    version: 4,
    base64: true,
};
/// `channel.k8s.io`, also what a client offering no protocol gets.
pub const V1: ChannelProtocol = ChannelProtocol {
    name: "channel.k8s.io",
    version: 1,
    base64: false,
};
/// `base64.channel.k8s.io`.
pub const V1_BASE64: ChannelProtocol = ChannelProtocol {
    name: "base64.channel.k8s.io",
    version: 1,
    base64: true,
};

/// What exec and attach accept. The CRI streaming server stops at v4 (the API server translates
/// v5 for it); minikubelet has no API server in between, so it speaks v5 itself.
pub const REMOTE_COMMAND_PROTOCOLS: [ChannelProtocol; 5] = [V5, V4, V4_BASE64, V1, V1_BASE64];

/// The protocols the client offered, in its order, from every `Sec-WebSocket-Protocol` header.
pub fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The session's protocol: the first one the client offered that `supported` holds (the
/// client's order decides, as in `wsstream.handshake`), and whether to name it in the answer.
/// A client that offers nothing gets `channel.k8s.io` semantics and no protocol header.
pub fn negotiate(
    offered: &[String],
    supported: &[ChannelProtocol],
) -> Option<(ChannelProtocol, bool)> {
    if offered.is_empty() {
        return supported.iter().find(|p| **p == V1).map(|p| (*p, false));
    }
    offered
        .iter()
        .find_map(|o| supported.iter().find(|p| p.name == o))
        .map(|p| (*p, true))
}

/// One channel's bytes as a message of `proto`.
pub fn encode(proto: ChannelProtocol, channel: u8, data: &[u8]) -> Message {
    if proto.base64 {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::Text(text.into())
    } else {
        let mut buf = Vec::with_capacity(1 + data.len());
        buf.push(channel);
        buf.extend_from_slice(data);
        Message::Binary(Bytes::from(buf))
    }
}

/// Why a message could not be decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The base64 payload is invalid.
    #[error("invalid base64 payload on channel {channel}")]
    Base64 { channel: u8 },
}

/// A data message's channel and bytes; `Ok(None)` for an empty message (harmless, skipped).
/// Text and binary messages are both read as bytes, whatever the protocol, as `wsstream` does
/// (the Python client sends stdin as text frames on `v4.channel.k8s.io`); the base64 protocols
/// then decode the payload. Control messages (ping, pong, close) are not data: the caller
/// handles them.
pub fn decode(proto: ChannelProtocol, msg: &Message) -> Result<Option<(u8, Bytes)>, DecodeError> {
    let raw: Bytes = match msg {
        Message::Binary(b) => b.clone(),
        Message::Text(t) => Bytes::copy_from_slice(t.as_str().as_bytes()),
        _ => return Ok(None),
    };
    let Some((&first, rest)) = raw.split_first() else {
        return Ok(None);
    };
    if proto.base64 {
        let channel = first.wrapping_sub(b'0');
        let data = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| DecodeError::Base64 { channel })?;
        Ok(Some((channel, Bytes::from(data))))
    } else {
        Ok(Some((first, raw.slice(1..))))
    }
}

/// A terminal size as the resize channel carries it (`remotecommand.TerminalSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Every terminal size in a resize payload (JSON objects, one per line); invalid lines are
/// skipped, as the kubelet logs and ignores them.
pub fn parse_resizes(payload: &[u8]) -> Vec<TerminalSize> {
    serde_json::Deserializer::from_slice(payload)
        .into_iter::<TerminalSize>()
        .map_while(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_follows_the_client_order() {
        type Choice<'a> = Option<(&'a str, bool)>;
        let cases: Vec<(Vec<String>, Choice)> = vec![
            // kubectl 1.32 offers only v5.
            (
                strings(&["v5.channel.k8s.io"]),
                Some(("v5.channel.k8s.io", true)),
            ),
            // The client's order, not the server's, decides.
            (
                strings(&["v4.base64.channel.k8s.io", "v5.channel.k8s.io"]),
                Some(("v4.base64.channel.k8s.io", true)),
            ),
            (
                strings(&["v3.channel.k8s.io", "v4.channel.k8s.io"]),
                Some(("v4.channel.k8s.io", true)),
            ),
            (strings(&[]), Some(("channel.k8s.io", false))),
            (strings(&["SPDY/3.1+portforward.k8s.io"]), None),
        ];
        for (offer, want) in cases {
            let got = negotiate(&offer, &REMOTE_COMMAND_PROTOCOLS).map(|(p, e)| (p.name, e));
            assert_eq!(got, want, "{offer:?}");
        }
        let mut h = HeaderMap::new();
        h.append(SEC_WEBSOCKET_PROTOCOL, "a, b".parse().unwrap());
        h.append(SEC_WEBSOCKET_PROTOCOL, "c".parse().unwrap());
        assert_eq!(offered(&h), strings(&["a", "b", "c"]));
    }

    #[test]
    fn framing_binary_and_base64() {
        let cases = [
            (
                V5,
                STDOUT,
                &b"hi\n"[..],
                Message::Binary(Bytes::from_static(b"\x01hi\n")),
            ),
            (
                V4_BASE64,
                STDERR,
                &b"hi\n"[..],
                Message::Text("2aGkK".into()),
            ),
            (V1_BASE64, STDOUT, &b""[..], Message::Text("1".into())),
        ];
        for (proto, ch, data, want) in cases {
            let msg = encode(proto, ch, data);
            assert_eq!(msg, want, "{}", proto.name);
            assert_eq!(
                decode(proto, &msg).unwrap(),
                Some((ch, Bytes::copy_from_slice(data)))
            );
        }
        // v5 stdin close as kubectl sends it.
        assert_eq!(
            decode(V5, &Message::Binary(Bytes::from_static(&[0xFF, 0x00]))).unwrap(),
            Some((CLOSE, Bytes::from_static(&[0])))
        );
        assert_eq!(decode(V5, &Message::Binary(Bytes::new())).unwrap(), None);
        // Text frames on a binary protocol are read as bytes (the Python client's stdin).
        assert_eq!(
            decode(V4, &Message::Text("\u{0}line\n".into())).unwrap(),
            Some((STDIN, Bytes::from_static(b"line\n")))
        );
        assert!(decode(V4_BASE64, &Message::Text("0!!".into())).is_err());
    }

    #[test]
    fn resize_lines() {
        assert_eq!(
            parse_resizes(b"{\"Width\":100,\"Height\":40}\n{\"Width\":80,\"Height\":24}\n"),
            vec![
                TerminalSize {
                    width: 100,
                    height: 40
                },
                TerminalSize {
                    width: 80,
                    height: 24
                }
            ]
        );
        assert!(parse_resizes(b"nonsense").is_empty());
    }
}
