//! The server side of WebSocket (RFC 6455), as much as `kubectl exec` needs: the opening
//! handshake's accept key and subprotocol choice, and message framing (client frames masked,
//! ours not; fragmented messages joined; ping answered; close echoed).

use std::io;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFC 6455's GUID appended to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest message accepted from a client (stdin chunks are small).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{ACCEPT_GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The first of `ours` (in our preference) that the client offered in its
/// `Sec-WebSocket-Protocol` headers (comma-separated, possibly several lines).
pub fn choose_protocol<'a>(offered: &[&str], ours: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    ours.iter().copied().find(|p| offered.contains(p))
}

/// What a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Vec<u8>),
    Text(Vec<u8>),
    /// The client closes (its status code, if any); the connection ends after our echo.
    Close(Option<u16>),
}

/// Reads client messages; answers pings through the writer it is given.
#[derive(Debug)]
pub struct Reader<R> {
    io: R,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader { io }
    }

    /// The next data or close message; pings get their pong through `pong` (the payload).
    /// `Ok(None)`: the connection ended without a close frame.
    pub async fn next(&mut self, mut pong: impl FnMut(Vec<u8>)) -> io::Result<Option<Message>> {
        let mut message: Option<(u8, Vec<u8>)> = None;
        loop {
            let Some((fin, opcode, payload)) = self.frame().await? else {
                return Ok(None);
            };
            match opcode {
                OP_PING => pong(payload),
                OP_PONG => {}
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Message::Close(code)));
                }
                OP_TEXT | OP_BINARY if message.is_none() => {
                    if fin {
                        return Ok(Some(data(opcode, payload)));
                    }
                    message = Some((opcode, payload));
                }
                OP_CONTINUATION if message.is_some() => {
                    let (op, mut joined) = message.take().unwrap_or_default();
                    if joined.len() + payload.len() > MAX_MESSAGE {
                        return Err(invalid("message too large"));
                    }
                    joined.extend_from_slice(&payload);
                    if fin {
                        return Ok(Some(data(op, joined)));
                    }
                    message = Some((op, joined));
                }
                _ => return Err(invalid("unexpected frame")),
            }
        }
    }

    /// One frame: (FIN, opcode, unmasked payload).
    async fn frame(&mut self) -> io::Result<Option<(bool, u8, Vec<u8>)>> {
        let mut head = [0u8; 2];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err),
        }
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0F;
        if head[1] & 0x80 == 0 {
            return Err(invalid("client frames must be masked"));
        }
        let len = match head[1] & 0x7F {
            126 => u64::from(self.io.read_u16().await?),
            127 => self.io.read_u64().await?,
            n => u64::from(n),
        };
        if len > MAX_MESSAGE as u64 {
            return Err(invalid("frame too large"));
        }
        let mut mask = [0u8; 4];
        self.io.read_exact(&mut mask).await?;
        let mut payload = vec![0u8; len as usize];
        self.io.read_exact(&mut payload).await?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        Ok(Some((fin, opcode, payload)))
    }
}

fn data(opcode: u8, payload: Vec<u8>) -> Message {
    if opcode == OP_TEXT {
        Message::Text(payload)
    } else {
        Message::Binary(payload)
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {why}"))
}

/// A frame as the server sends it (unmasked, unfragmented).
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Server frames the session writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame with this status code (1000: normal).
    Close(u16),
}

/// Writes one outgoing frame.
pub async fn write<W: AsyncWrite + Unpin>(io: &mut W, frame: &Outgoing) -> io::Result<()> {
    let bytes = match frame {
        Outgoing::Binary(p) => encode_frame(OP_BINARY, p),
        Outgoing::Pong(p) => encode_frame(OP_PONG, p),
        Outgoing::Close(code) => encode_frame(OP_CLOSE, &code.to_be_bytes()),
    };
    io.write_all(&bytes).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_from_the_rfc() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn protocol_choice_follows_our_preference() {
        let ours = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
        assert_eq!(
            choose_protocol(&["v4.channel.k8s.io, v5.channel.k8s.io"], &ours),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol(&["base64.channel.k8s.io", "v4.channel.k8s.io"], &ours),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol(&["channel.k8s.io"], &ours), None);
    }

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn reads_masked_fragmented_messages_and_answers_pings() {
        let mut wire = masked(false, OP_BINARY, &[0, b'h']);
        wire.extend(masked(true, OP_PING, b"p"));
        wire.extend(masked(true, OP_CONTINUATION, &vec![b'i'; 300]));
        wire.extend(masked(true, OP_CLOSE, &1000u16.to_be_bytes()));
        let mut reader = Reader::new(&wire[..]);
        let mut pongs = Vec::new();
        let first = reader.next(|p| pongs.push(p)).await.unwrap().unwrap();
        let mut expected = vec![0, b'h'];
        expected.extend(vec![b'i'; 300]);
        assert_eq!(first, Message::Binary(expected));
        assert_eq!(pongs, vec![b"p".to_vec()]);
        assert_eq!(
            reader.next(|_| {}).await.unwrap(),
            Some(Message::Close(Some(1000)))
        );
        assert_eq!(reader.next(|_| {}).await.unwrap(), None);
    }

    #[test]
    fn server_frames_are_unmasked_with_extended_lengths() {
        assert_eq!(encode_frame(OP_BINARY, b"ab"), vec![0x82, 2, b'a', b'b']);
        let long = encode_frame(OP_BINARY, &[0u8; 200]);
        assert_eq!(&long[..4], &[0x82, 126, 0, 200]);
        let huge = encode_frame(OP_BINARY, &vec![0u8; 70_000]);
        assert_eq!(&huge[..2], &[0x82, 127]);
    }

    #[tokio::test]
    async fn unmasked_client_frames_are_refused() {
        let wire = [0x82, 1, b'x'];
        assert!(Reader::new(&wire[..]).next(|_| {}).await.is_err());
    }
}
