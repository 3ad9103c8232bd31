//! WebSocket framing for the server side of RFC 6455, without I/O: a
//! decoder that turns the bytes a client sent into whole messages, and the
//! header encoder for frames the server sends (unmasked).
//!
//! The decoder streams: a frame's payload goes straight into the message it
//! belongs to as it arrives, and text is checked for UTF-8 on the way in, so
//! a bad byte fails the stream at once, even before the rest of its frame or
//! message has come. It keeps no buffer while nothing is half-received, so
//! an idle socket costs no memory here.

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

/// The header bit of a compressed message (permessage-deflate).
pub const RSV1: u8 = 0x40;

/// Whether an opcode is text or binary (a message that may be compressed).
pub fn is_data(opcode: u8) -> bool {
    matches!(opcode, OP_TEXT | OP_BINARY)
}

/// Longest header the server writes: 2 bytes plus a 64-bit length.
pub const MAX_HEADER: usize = 10;
/// Longest header a client writes: the server's plus a masking key.
const MAX_CLIENT_HEADER: usize = MAX_HEADER + 4;

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
    /// Header bytes of the next frame, while fewer than its header arrived.
    head: [u8; MAX_CLIENT_HEADER],
    head_len: u8,
    /// The frame whose payload is arriving.
    frame: Option<FrameState>,
    /// Opcode of the data message under way (its first frame has started).
    message_opcode: Option<u8>,
    /// Payload so far of the data message under way.
    message: Vec<u8>,
    /// Payload so far of a control frame.
    control: Vec<u8>,
    /// UTF-8 state of the text message under way.
    utf8: Utf8Check,
    /// Set after an error: frames are only skipped, to find the peer's close.
    discarding: bool,
    /// Set once a close frame was skipped.
    saw_close: bool,
    /// Whether permessage-deflate was negotiated: RSV1 marks a compressed
    /// message.
    inflate: bool,
    /// Whether the data message under way is compressed.
    compressed: bool,
}

/// A frame whose header has been read.
#[derive(Debug, Clone, Copy)]
struct FrameState {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Payload bytes already read (the masking key's phase).
    read: usize,
    /// Payload bytes still to come.
    remaining: usize,
}

/// A parsed frame header, before any rule is checked.
struct Header {
    first: u8,
    fin: bool,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    header_len: usize,
    /// `None` when the 64-bit length has its top bit set.
    payload_len: Option<u64>,
}

impl Decoder {
    /// A decoder refusing frames and messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            head: [0; MAX_CLIENT_HEADER],
            head_len: 0,
            frame: None,
            message_opcode: None,
            message: Vec::new(),
            control: Vec::new(),
            utf8: Utf8Check::default(),
            discarding: false,
            saw_close: false,
            inflate: false,
            compressed: false,
        }
    }

    /// Accepts compressed messages (permessage-deflate was negotiated);
    /// `max_message` then limits their inflated size.
    pub fn accept_compressed(&mut self) {
        self.inflate = true;
    }

    /// Feeds bytes read from the client, appending every completed message
    /// to `out`. After an error the stream must be closed; the decoder then
    /// only skips frames (see [`Decoder::discard`]).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        if self.discarding {
            return Err(WireError::Protocol("the stream already failed"));
        }
        let mut rest = input;
        let result = self.run(&mut rest, out);
        if result.is_err() {
            self.discard(rest);
        }
        result
    }

    /// Skips bytes the client sent after the stream failed or the server
    /// closed, keeping only frame boundaries; returns whether a close frame
    /// from the client has been seen. Bytes that make no sense as frames any
    /// more are skipped to the end.
    pub fn discard(&mut self, input: &[u8]) -> bool {
        if !self.discarding {
            self.discarding = true;
            self.message = Vec::new();
            self.control = Vec::new();
            self.message_opcode = None;
        }
        let mut rest = input;
        while !rest.is_empty() && !self.saw_close {
            // Skipping fails only on a length that loses the frame
            // boundaries; the frame state then swallows everything.
            let _ = self.run(&mut rest, &mut Vec::new());
        }
        self.saw_close
    }

    /// The frame loop shared by decoding and skipping. On an error, `input`
    /// is left at the bytes not used yet.
    fn run(&mut self, input: &mut &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        while !input.is_empty() && !self.saw_close {
            let Some(frame) = self.frame else {
                self.read_header(input, out)?;
                continue;
            };
            let take = frame.remaining.min(input.len());
            let (payload, rest) = input.split_at(take);
            *input = rest;
            self.payload(payload)?;
            if self.frame.is_some_and(|f| f.remaining == 0) {
                self.end_frame(out)?;
            }
        }
        Ok(())
    }

    /// Reads header bytes from `input`, starting a frame once its header is
    /// whole, and moves `input` past what it used.
    fn read_header(&mut self, input: &mut &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        let had = usize::from(self.head_len);
        let take = (MAX_CLIENT_HEADER - had).min(input.len());
        let parsed = if had == 0 {
            parse_header(input)
        } else {
            self.head[had..had + take].copy_from_slice(&input[..take]);
            parse_header(&self.head[..had + take])
        };
        let Some(header) = parsed else {
            // Shorter than its header: keep what came.
            self.head[had..had + take].copy_from_slice(&input[..take]);
            self.head_len = (had + take) as u8;
            *input = &input[take..];
            return Ok(());
        };
        self.head_len = 0;
        *input = &input[header.header_len - had..];
        self.start_frame(&header)?;
        if self.frame.is_some_and(|f| f.remaining == 0) {
            self.end_frame(out)?;
        }
        Ok(())
    }

    /// Checks a header against the rules and starts its frame.
    fn start_frame(&mut self, header: &Header) -> Result<(), WireError> {
        let Some(length) = header.payload_len else {
            // No frame boundary to follow any more: skip everything.
            self.frame = Some(FrameState {
                fin: true,
                opcode: OP_BINARY,
                mask: [0; 4],
                read: 0,
                remaining: usize::MAX,
            });
            return Err(WireError::Protocol("frame length has its top bit set"));
        };
        let remaining = usize::try_from(length).unwrap_or(usize::MAX);
        self.frame = Some(FrameState {
            fin: header.fin,
            opcode: header.opcode,
            mask: header.mask,
            read: 0,
            remaining,
        });
        if self.discarding {
            return Ok(());
        }
        self.check(header, remaining)
    }

    /// The framing rules a header must follow.
    fn check(&mut self, header: &Header, length: usize) -> Result<(), WireError> {
        let is_control = header.opcode & 0x08 != 0;
        let rsv1 = header.first & 0x40 != 0;
        if header.first & 0x30 != 0 || (rsv1 && !self.inflate) {
            return Err(WireError::Protocol("reserved bits set"));
        }
        if rsv1 && (is_control || header.opcode == OP_CONTINUATION) {
            return Err(WireError::Protocol(
                "RSV1 is only for the first frame of a message",
            ));
        }
        match header.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(WireError::Protocol("unknown opcode")),
        }
        if !header.masked {
            return Err(WireError::Protocol("client frames must be masked"));
        }
        if is_control {
            if !header.fin || length > 125 {
                return Err(WireError::Protocol(
                    "control frames must be whole and short",
                ));
            }
            return Ok(());
        }
        match (header.opcode, self.message_opcode) {
            (OP_CONTINUATION, None) => {
                return Err(WireError::Protocol("continuation without a message"))
            }
            (OP_CONTINUATION, Some(_)) => {}
            (_, Some(_)) => {
                return Err(WireError::Protocol("new message before the last one ended"))
            }
            (opcode, None) => {
                self.message_opcode = Some(opcode);
                self.utf8 = Utf8Check::default();
                self.compressed = rsv1;
            }
        }
        if length.saturating_add(self.message.len()) > self.max_message {
            return Err(WireError::TooBig);
        }
        Ok(())
    }

    /// Takes payload bytes of the current frame.
    fn payload(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let Some(frame) = self.frame.as_mut() else {
            return Ok(());
        };
        let (phase, opcode, mask) = (frame.read, frame.opcode, frame.mask);
        frame.read = frame.read.wrapping_add(bytes.len());
        frame.remaining -= bytes.len();
        if self.discarding {
            return Ok(());
        }
        let is_control = opcode & 0x08 != 0;
        let target = if is_control {
            &mut self.control
        } else {
            &mut self.message
        };
        let start = target.len();
        target.extend_from_slice(bytes);
        unmask(&mut target[start..], mask, phase);
        if !is_control && self.message_opcode == Some(OP_TEXT) && !self.compressed {
            self.utf8.feed(&self.message[start..])?;
        }
        Ok(())
    }

    /// Handles a frame whose payload is complete.
    fn end_frame(&mut self, out: &mut Vec<Message>) -> Result<(), WireError> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        if self.discarding {
            self.saw_close |= frame.opcode == OP_CLOSE;
            return Ok(());
        }
        match frame.opcode {
            OP_PING => out.push(Message::Ping(Bytes::from(std::mem::take(
                &mut self.control,
            )))),
            OP_PONG => out.push(Message::Pong(Bytes::from(std::mem::take(
                &mut self.control,
            )))),
            OP_CLOSE => out.push(close_message(&std::mem::take(&mut self.control))?),
            _ if frame.fin => {
                let opcode = self.message_opcode.take().unwrap_or(OP_BINARY);
                let mut payload = std::mem::take(&mut self.message);
                if self.compressed {
                    payload = super::ws_deflate::inflate(payload, self.max_message)?;
                    // Checked whole, now that it is text.
                    self.utf8 = Utf8Check::default();
                }
                out.push(data_message(opcode, payload, &self.utf8)?);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses a header without checking it, or `None` if more bytes are needed.
fn parse_header(data: &[u8]) -> Option<Header> {
    let (&first, &second) = (data.first()?, data.get(1)?);
    let masked = second & 0x80 != 0;
    let (payload_len, length_bytes) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
            2,
        ),
        127 => {
            let raw: [u8; 8] = data.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(raw), 8)
        }
        short => (u64::from(short), 0),
    };
    let too_long = payload_len >> 63 != 0;
    let header_len = 2 + length_bytes + if masked && !too_long { 4 } else { 0 };
    let mut mask = [0u8; 4];
    if masked && !too_long {
        mask.copy_from_slice(data.get(header_len - 4..header_len)?);
    }
    Some(Header {
        first,
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        masked,
        mask,
        header_len,
        payload_len: (!too_long).then_some(payload_len),
    })
}

/// Incremental UTF-8 validation: keeps only the (at most 3) bytes of a code
/// point that is not complete yet.
#[derive(Debug, Default, Clone, Copy)]
struct Utf8Check {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Check {
    /// Checks the next bytes; fails at the first byte no UTF-8 text can have.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WireError> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width: usize = match self.pending[0] {
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 2,
            };
            let take = width.saturating_sub(have).min(bytes.len());
            let mut joined = self.pending;
            joined[have..have + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&joined[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(WireError::BadUtf8),
                Err(_) => {
                    self.pending = joined;
                    self.pending_len = (have + take) as u8;
                }
            }
            bytes = &bytes[take..];
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(WireError::BadUtf8),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the text so far ends on a code point boundary.
    fn complete(&self) -> bool {
        self.pending_len == 0
    }
}

/// A text or binary message from its whole payload.
fn data_message(opcode: u8, payload: Vec<u8>, utf8: &Utf8Check) -> Result<Message, WireError> {
    if opcode == OP_TEXT {
        if !utf8.complete() {
            return Err(WireError::BadUtf8);
        }
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

/// XORs `payload` with the client's masking key; `phase` is how many bytes
/// of the frame's payload came before it.
fn unmask(payload: &mut [u8], mask: [u8; 4], phase: usize) {
    let mask: [u8; 4] = std::array::from_fn(|i| mask[(i + phase) % 4]);
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

/// The opcode (with RSV1 for a message compressed ahead) and payload bytes
/// of a message the server sends.
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
        Message::Frame(frame) => {
            let opcode: u8 = frame.header().opcode.into();
            let rsv1 = if frame.header().rsv1 { RSV1 } else { 0 };
            (opcode | rsv1, OutgoingPayload::Borrowed(frame.payload()))
        }
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

/// Appends the header of an unmasked, final frame to `out`; `opcode` may
/// carry [`RSV1`].
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
            assert!(decoder.message_opcode.is_none());
            assert_eq!(decoder.head_len, 0);
            assert_eq!(decoder.message.capacity(), 0, "nothing kept once idle");
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

    /// κόσμε, then a code point above U+10FFFF, then "edited" (Autobahn 6.4).
    const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    const TOO_HIGH: &[u8] = b"\xf4\x90\x80\x80";
    const EDITED: &[u8] = b"edited";

    /// Feeds `chunks` one by one; returns the index of the chunk that failed.
    fn first_failure(chunks: &[Vec<u8>]) -> Option<(usize, WireError)> {
        let mut decoder = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if let Err(e) = decoder.feed(chunk, &mut out) {
                return Some((i, e));
            }
        }
        None
    }

    #[test]
    fn utf8_fails_in_the_fragment_that_breaks_it() {
        // 6.4.1: fragments valid | invalid | rest: fails on the second.
        let chunks = vec![
            client_frame(0x01, KOSME),
            client_frame(0x00, TOO_HIGH),
            client_frame(0x80, EDITED),
        ];
        assert_eq!(first_failure(&chunks), Some((1, WireError::BadUtf8)));
        // 6.4.2: the bad code point starts at the end of the first fragment;
        // its second byte, first of the next fragment, is the bad one.
        let mut first = KOSME.to_vec();
        first.push(0xF4);
        let chunks = vec![
            client_frame(0x01, &first),
            client_frame(0x00, &TOO_HIGH[1..]),
            client_frame(0x80, EDITED),
        ];
        assert_eq!(first_failure(&chunks), Some((1, WireError::BadUtf8)));
    }

    #[test]
    fn utf8_fails_before_the_rest_of_a_frame_arrives() {
        let mut payload = KOSME.to_vec();
        payload.extend_from_slice(TOO_HIGH);
        payload.extend_from_slice(EDITED);
        let frame = client_frame(0x81, &payload);
        let header = frame.len() - payload.len();
        // 6.4.3: one frame in three chops: valid | bad code point | rest.
        let cut1 = header + KOSME.len();
        let cut2 = cut1 + TOO_HIGH.len();
        let chunks = vec![
            frame[..cut1].to_vec(),
            frame[cut1..cut2].to_vec(),
            frame[cut2..].to_vec(),
        ];
        assert_eq!(first_failure(&chunks), Some((1, WireError::BadUtf8)));
        // 6.4.4: valid plus the lead byte | the bad byte | the rest.
        let chunks = vec![
            frame[..cut1 + 1].to_vec(),
            frame[cut1 + 1..cut1 + 2].to_vec(),
            frame[cut1 + 2..].to_vec(),
        ];
        assert_eq!(first_failure(&chunks), Some((1, WireError::BadUtf8)));
        // The same frame with a good code point in that place is one message.
        let mut good = KOSME.to_vec();
        good.extend_from_slice("𝄞".as_bytes());
        good.extend_from_slice(EDITED);
        let frame = client_frame(0x81, &good);
        let chunks: Vec<Vec<u8>> = frame.chunks(1).map(<[u8]>::to_vec).collect();
        assert_eq!(first_failure(&chunks), None);
    }

    #[test]
    fn code_points_split_anywhere_across_fragments_are_fine() {
        let text = "aé€𝄞z".repeat(3);
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            for cut2 in cut..bytes.len() {
                let mut all = client_frame(0x01, &bytes[..cut]);
                all.extend(client_frame(0x00, &bytes[cut..cut2]));
                all.extend(client_frame(0x80, &bytes[cut2..]));
                assert_eq!(
                    decode_all(&all).unwrap(),
                    vec![Message::Text(text.as_str().into())],
                    "cuts {cut} {cut2}"
                );
            }
        }
        // A message ending inside a code point is not text.
        let mut cut_short = client_frame(0x01, b"ok");
        cut_short.extend(client_frame(0x80, &"é".as_bytes()[..1]));
        assert_eq!(decode_all(&cut_short), Err(WireError::BadUtf8));
        // Surrogates and overlong forms fail at their first bad byte.
        for bad in [
            &b"\xed\xa0\x80"[..],
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf8\x88\x80\x80\x80",
        ] {
            let frame = client_frame(0x01, bad);
            assert_eq!(
                first_failure(&[frame]),
                Some((0, WireError::BadUtf8)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn after_an_error_frames_are_skipped_until_the_close() {
        let mut decoder = Decoder::new(1 << 20);
        let mut out = Vec::new();
        let mut bad = client_frame(0xC1, b"rsv1");
        bad.extend(client_frame(0x81, b"after"));
        assert!(decoder.feed(&bad, &mut out).is_err());
        let mut more = client_frame(0x82, &[7u8; 3000]);
        more.extend(client_frame(0x89, b"ping"));
        let close = client_frame(0x88, &[0x03, 0xE8]);
        assert!(!decoder.discard(&more));
        assert!(!decoder.discard(&close[..3]));
        assert!(decoder.discard(&close[3..]));
        assert!(out.is_empty());
        assert_eq!(decoder.message.capacity(), 0, "skipped bytes are not kept");
    }

    fn inflating() -> Decoder {
        let mut decoder = Decoder::new(64 * 1024);
        decoder.accept_compressed();
        decoder
    }

    #[test]
    fn compressed_messages_when_negotiated() {
        use crate::socket::ws_deflate::deflate;
        let text = r#"[null,"1","phoenix","heartbeat",{"pad":"aaaaaaaaaaaaaaaaaaaaaa"}]"#;
        let compressed = deflate(text.as_bytes()).unwrap();
        assert!(compressed.len() < text.len());
        // Not negotiated: RSV1 is a protocol error.
        assert!(matches!(
            decode_all(&client_frame(0xC1, &compressed)),
            Err(WireError::Protocol(_))
        ));
        // One frame, and the same compressed bytes in three fragments with
        // RSV1 on the first only and a ping between.
        let mut bytes = client_frame(0xC1, &compressed);
        let (a, rest) = compressed.split_at(3);
        let (b, c) = rest.split_at(rest.len() / 2);
        bytes.extend(client_frame(0x41, a));
        bytes.extend(client_frame(0x00, b));
        bytes.extend(client_frame(0x89, b"mid"));
        bytes.extend(client_frame(0x80, c));
        bytes.extend(client_frame(0x81, b"plain"));
        let binary = deflate(&[1, 2, 3, 4, 5]).unwrap();
        bytes.extend(client_frame(0xC2, &binary));
        let mut decoder = inflating();
        let mut out = Vec::new();
        decoder.feed(&bytes, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Message::Text(text.into()),
                Message::Ping(Bytes::from_static(b"mid")),
                Message::Text(text.into()),
                Message::Text("plain".into()),
                Message::Binary(Bytes::from_static(&[1, 2, 3, 4, 5])),
            ]
        );
        assert_eq!(decoder.message.capacity(), 0, "nothing kept once idle");
    }

    #[test]
    fn compressed_messages_break_no_rule() {
        use crate::socket::ws_deflate::deflate;
        let feed = |bytes: Vec<u8>| inflating().feed(&bytes, &mut Vec::new());
        let part = deflate(b"hello").unwrap();
        // RSV1 on a continuation or a control frame.
        let mut bytes = client_frame(0x01, b"he");
        bytes.extend(client_frame(0xC0, b"llo"));
        assert!(matches!(feed(bytes), Err(WireError::Protocol(_))));
        assert!(matches!(
            feed(client_frame(0xC9, b"")),
            Err(WireError::Protocol(_))
        ));
        // RSV2 and RSV3 stay reserved.
        assert!(matches!(
            feed(client_frame(0xA1, &part)),
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            feed(client_frame(0x91, &part)),
            Err(WireError::Protocol(_))
        ));
        // The limit applies to the inflated size: a small bomb is too big.
        let bomb = deflate(&vec![b' '; 1 << 20]).unwrap();
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(feed(client_frame(0xC1, &bomb)), Err(WireError::TooBig));
        // Inflated text must be UTF-8; garbage is no deflate stream.
        let bad = deflate(b"ok \xff").unwrap();
        assert_eq!(feed(client_frame(0xC1, &bad)), Err(WireError::BadUtf8));
        assert!(matches!(
            feed(client_frame(0xC2, &[0xFF, 0xFF])),
            Err(WireError::Protocol(_))
        ));
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
