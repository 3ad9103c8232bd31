//! WebSocket framing for the server side of RFC 6455, without I/O: a
//! decoder that turns the bytes a client sent into whole messages, and the
//! header encoder for frames the server sends (unmasked). The decoder keeps
//! no buffer while nothing is half-received, so an idle socket costs no
//! memory here.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Longest header the server writes: 2 bytes plus a 64-bit length.
pub const MAX_HEADER: usize = 10;

/// Why a client's bytes are not an acceptable WebSocket stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A frame or message is larger than the configured limit (close 1009).
    TooBig,
    /// A text message or close reason is not UTF-8 (close 1007).
    BadUtf8,
    /// The bytes break the framing rules (close 1002).
    Protocol(&'static str),
}

/// Decodes client frames into messages, reassembling fragments.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// Bytes of a frame not yet complete.
    partial: Vec<u8>,
    /// Payload so far of a fragmented message, and its opcode.
    fragments: Vec<u8>,
    fragment_opcode: Option<u8>,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

impl Decoder {
    /// A decoder refusing frames and messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: Vec::new(),
            fragments: Vec::new(),
            fragment_opcode: None,
        }
    }

    /// Feeds bytes read from the client, appending every completed message
    /// to `out`. After an error the stream must be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        if self.partial.is_empty() {
            let used = self.decode(input, out)?;
            if used < input.len() {
                self.partial.extend_from_slice(&input[used..]);
            }
        } else {
            self.partial.extend_from_slice(input);
            let buffered = std::mem::take(&mut self.partial);
            let used = self.decode(&buffered, out);
            let used = used?;
            if used < buffered.len() {
                let mut rest = buffered;
                rest.drain(..used);
                self.partial = rest;
            }
        }
        Ok(())
    }

    /// Decodes every complete frame at the start of `data`; returns the bytes used.
    fn decode(&mut self, data: &[u8], out: &mut Vec<Message>) -> Result<usize, WireError> {
        let mut used = 0;
        while let Some(header) = self.header(&data[used..])? {
            let total = header.header_len + header.payload_len;
            if data.len() - used < total {
                break;
            }
            let start = used + header.header_len;
            let mut payload = data[start..start + header.payload_len].to_vec();
            unmask(&mut payload, header.mask);
            used += total;
            if let Some(message) = self.frame(header.fin, header.opcode, payload)? {
                out.push(message);
            }
        }
        Ok(used)
    }

    /// Parses and checks a header, or `None` if more bytes are needed.
    fn header(&self, data: &[u8]) -> Result<Option<Header>, WireError> {
        if data.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (data[0], data[1]);
        if first & 0x70 != 0 {
            return Err(WireError::Protocol("reserved bits set"));
        }
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        let is_control = opcode & 0x08 != 0;
        match opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(WireError::Protocol("unknown opcode")),
        }
        if second & 0x80 == 0 {
            return Err(WireError::Protocol("client frames must be masked"));
        }
        let (length, length_bytes) = match second & 0x7F {
            126 => {
                if data.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([data[2], data[3]])), 2)
            }
            127 => {
                if data.len() < 10 {
                    return Ok(None);
                }
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&data[2..10]);
                let length = u64::from_be_bytes(raw);
                if length >> 63 != 0 {
                    return Err(WireError::Protocol("frame length has its top bit set"));
                }
                (length, 8)
            }
            short => (u64::from(short), 0),
        };
        if is_control && (!fin || length > 125) {
            return Err(WireError::Protocol(
                "control frames must be whole and short",
            ));
        }
        let so_far = if is_control { 0 } else { self.fragments.len() };
        let payload_len = usize::try_from(length).map_err(|_| WireError::TooBig)?;
        if payload_len.saturating_add(so_far) > self.max_message {
            return Err(WireError::TooBig);
        }
        let header_len = 2 + length_bytes + 4;
        if data.len() < header_len {
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&data[header_len - 4..header_len]);
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            header_len,
            payload_len,
        }))
    }

    /// Handles one unmasked frame; returns a message once one is complete.
    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    ) -> Result<Option<Message>, WireError> {
        match opcode {
            OP_PING => Ok(Some(Message::Ping(Bytes::from(payload)))),
            OP_PONG => Ok(Some(Message::Pong(Bytes::from(payload)))),
            OP_CLOSE => close_message(&payload).map(Some),
            OP_CONTINUATION => {
                let Some(first_opcode) = self.fragment_opcode else {
                    return Err(WireError::Protocol("continuation without a message"));
                };
                self.fragments.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                self.fragment_opcode = None;
                let whole = std::mem::take(&mut self.fragments);
                data_message(first_opcode, whole).map(Some)
            }
            _ => {
                if self.fragment_opcode.is_some() {
                    return Err(WireError::Protocol("new message before the last one ended"));
                }
                if fin {
                    return data_message(opcode, payload).map(Some);
                }
                self.fragment_opcode = Some(opcode);
                self.fragments = payload;
                Ok(None)
            }
        }
    }
}

/// A text or binary message from its whole payload.
fn data_message(opcode: u8, payload: Vec<u8>) -> Result<Message, WireError> {
    if opcode == OP_TEXT {
        let text = String::from_utf8(payload).map_err(|_| WireError::BadUtf8)?;
        Ok(Message::Text(Utf8Bytes::from(text)))
    } else {
        Ok(Message::Binary(Bytes::from(payload)))
    }
}

/// A close message from its payload: empty, or a code and a UTF-8 reason.
fn close_message(payload: &[u8]) -> Result<Message, WireError> {
    match payload.len() {
        0 => Ok(Message::Close(None)),
        1 => Err(WireError::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_allowed(code) {
                return Err(WireError::Protocol("close code not allowed on the wire"));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| WireError::BadUtf8)?;
            Ok(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from(reason),
            })))
        }
    }
}

/// Codes a peer may send (RFC 6455 §7.4): not 1004–1006, 1015, or unassigned.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs `payload` with the client's masking key.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i];
    }
}

/// The opcode and payload bytes of a message the server sends.
pub fn outgoing(message: &Message) -> (u8, OutgoingPayload<'_>) {
    match message {
        Message::Text(text) => (OP_TEXT, OutgoingPayload::Borrowed(text.as_bytes())),
        Message::Binary(data) => (OP_BINARY, OutgoingPayload::Borrowed(data)),
        Message::Ping(data) => (OP_PING, OutgoingPayload::Borrowed(data)),
        Message::Pong(data) => (OP_PONG, OutgoingPayload::Borrowed(data)),
        Message::Close(None) => (OP_CLOSE, OutgoingPayload::Borrowed(&[])),
        Message::Close(Some(frame)) => {
            let mut payload = u16::from(frame.code).to_be_bytes().to_vec();
            payload.extend_from_slice(frame.reason.as_bytes());
            (OP_CLOSE, OutgoingPayload::Owned(payload))
        }
        Message::Frame(frame) => (
            frame.header().opcode.into(),
            OutgoingPayload::Borrowed(frame.payload()),
        ),
    }
}

/// A payload to write: the message's own bytes, or bytes built for it.
pub enum OutgoingPayload<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl OutgoingPayload<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            OutgoingPayload::Borrowed(bytes) => bytes,
            OutgoingPayload::Owned(bytes) => bytes,
        }
    }
}

/// Appends the header of an unmasked, final frame to `out`.
pub fn encode_header(opcode: u8, payload_len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    if payload_len < 126 {
        out.push(payload_len as u8);
    } else if let Ok(short) = u16::try_from(payload_len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload_len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, WireError> {
        let mut decoder = Decoder::new(1 << 20);
        let mut out = Vec::new();
        decoder.feed(bytes, &mut out)?;
        Ok(out)
    }

    #[test]
    fn text_binary_and_control_frames() {
        let mut bytes = client_frame(0x81, b"hello");
        bytes.extend(client_frame(0x82, &[0, 1, 2, 3, 4, 5, 6]));
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(client_frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
        let out = decode_all(&bytes).unwrap();
        assert_eq!(out[0], Message::Text("hello".into()));
        assert_eq!(
            out[1],
            Message::Binary(Bytes::from_static(&[0, 1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(out[2], Message::Ping(Bytes::from_static(b"p")));
        assert_eq!(
            out[3],
            Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into()
            }))
        );
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_messages() {
        let long = "x".repeat(70_000);
        let mut bytes = client_frame(0x81, b"first");
        bytes.extend(client_frame(0x81, "é".repeat(100).as_bytes()));
        bytes.extend(client_frame(0x81, long.as_bytes()));
        for step in [1, 2, 3, 7, 125, 4096] {
            let mut decoder = Decoder::new(1 << 20);
            let mut out = Vec::new();
            for chunk in bytes.chunks(step) {
                decoder.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(out.len(), 3, "step {step}");
            assert_eq!(out[2], Message::Text(long.as_str().into()));
            assert!(decoder.fragment_opcode.is_none());
            assert_eq!(decoder.partial.capacity(), 0, "nothing kept once idle");
        }
    }

    #[test]
    fn fragments_reassemble_with_control_frames_between() {
        let mut bytes = client_frame(0x01, b"hel");
        bytes.extend(client_frame(0x89, b""));
        bytes.extend(client_frame(0x80, b"lo"));
        let out = decode_all(&bytes).unwrap();
        assert_eq!(
            out,
            vec![Message::Ping(Bytes::new()), Message::Text("hello".into())]
        );
    }

    #[test]
    fn framing_violations_are_refused() {
        let protocol = |bytes: Vec<u8>| matches!(decode_all(&bytes), Err(WireError::Protocol(_)));
        assert!(protocol(client_frame(0xC1, b"rsv1")));
        assert!(protocol(client_frame(0x83, b"opcode 3")));
        assert!(protocol(vec![0x81, 0x01, b'x']), "unmasked");
        assert!(protocol(client_frame(0x80, b"lonely continuation")));
        assert!(protocol(client_frame(0x09, b"fragmented ping")));
        assert!(protocol(client_frame(0x89, &[0u8; 126])));
        assert!(protocol(client_frame(0x88, &[3])));
        assert!(
            protocol(client_frame(0x88, &[0x03, 0xED])),
            "1005 on the wire"
        );
        let mut interleaved = client_frame(0x01, b"a");
        interleaved.extend(client_frame(0x81, b"b"));
        assert!(protocol(interleaved));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(protocol(huge));
    }

    #[test]
    fn size_and_utf8_limits() {
        let mut decoder = Decoder::new(10);
        let mut out = Vec::new();
        assert_eq!(
            decoder.feed(&client_frame(0x81, &[b'a'; 11]), &mut out),
            Err(WireError::TooBig)
        );
        let mut decoder = Decoder::new(10);
        let mut bytes = client_frame(0x01, &[b'a'; 6]);
        bytes.extend(client_frame(0x80, &[b'a'; 6]));
        assert_eq!(decoder.feed(&bytes, &mut out), Err(WireError::TooBig));
        assert_eq!(
            decode_all(&client_frame(0x81, &[0xFF])),
            Err(WireError::BadUtf8)
        );
        assert_eq!(
            decode_all(&client_frame(0x88, &[0x03, 0xE8, 0xFF])),
            Err(WireError::BadUtf8)
        );
        // A UTF-8 sequence split across fragments is fine.
        let mut split = client_frame(0x01, &"é".as_bytes()[..1]);
        split.extend(client_frame(0x80, &"é".as_bytes()[1..]));
        assert_eq!(decode_all(&split).unwrap(), vec![Message::Text("é".into())]);
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        for (len, expected) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
        ] {
            let mut out = Vec::new();
            encode_header(OP_TEXT, len, &mut out);
            assert_eq!(out.len(), expected, "length {len}");
            assert_eq!(out[0], 0x81);
        }
    }
}
