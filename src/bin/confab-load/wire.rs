//! Client-side WebSocket framing (RFC 6455) without I/O: masked frames out,
//! server frames in. The reader's buffer is filled straight from the socket
//! into spare capacity (nothing is zeroed), each text message is copied out
//! once, and the buffer gives its memory back after a large message.

use tokio_tungstenite::tungstenite::Utf8Bytes;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Spare room made before each read from the socket.
pub const READ_CHUNK: usize = 4096;
/// A buffer larger than this is dropped once it has been fully read.
const KEEP_CAPACITY: usize = 16 * 1024;

/// A frame or message the server sent.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(Utf8Bytes),
    Binary,
    Ping(Vec<u8>),
    Pong,
    /// The close code, if the frame carried one.
    Close(Option<u16>),
}

/// Why the server's bytes are not a WebSocket stream this client accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    TooBig,
    BadUtf8,
    Protocol(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooBig => write!(f, "message too big"),
            WireError::BadUtf8 => write!(f, "text message is not UTF-8"),
            WireError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// Bytes received and not yet decoded, and a fragmented message in progress.
pub struct Reader {
    buf: Vec<u8>,
    /// Where undecoded bytes start in `buf`.
    start: usize,
    fragments: Option<(u8, Vec<u8>)>,
    max_message: usize,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    inflate: bool,
    /// Whether the fragmented message in progress is compressed.
    compressed: bool,
}

impl Reader {
    pub fn new(max_message: usize) -> Reader {
        Reader {
            buf: Vec::new(),
            start: 0,
            fragments: None,
            max_message,
            inflate: false,
            compressed: false,
        }
    }

    /// Accepts compressed messages (the server agreed to permessage-deflate
    /// without context takeover: each message inflates on its own).
    pub fn accept_compressed(&mut self) {
        self.inflate = true;
    }

    /// The buffer to read into (append only), with at least [`READ_CHUNK`]
    /// bytes of spare capacity.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }

    /// The next complete frame (fragments joined), or `None` until more
    /// bytes arrive. After an error the connection must be dropped.
    pub fn next(&mut self) -> Result<Option<Frame>, WireError> {
        loop {
            let input = &self.buf[self.start..];
            let Some((fin, opcode, header_len, len)) = header(input, self.max_message)? else {
                return Ok(None);
            };
            let rsv1 = opcode & RSV1 != 0;
            let opcode = opcode & !RSV1;
            if rsv1 && (!self.inflate || !matches!(opcode, OP_TEXT | OP_BINARY)) {
                return Err(WireError::Protocol("RSV1 without a compressed message"));
            }
            if input.len() - header_len < len {
                return Ok(None);
            }
            let payload = &input[header_len..header_len + len];
            self.start += header_len + len;
            match opcode {
                OP_TEXT | OP_BINARY if self.fragments.is_some() => {
                    return Err(WireError::Protocol("new message inside a fragmented one"))
                }
                OP_TEXT | OP_BINARY if fin => {
                    let message = self.maybe_inflate(rsv1, payload.to_vec())?;
                    return data(opcode, message).map(Some);
                }
                OP_TEXT | OP_BINARY => {
                    self.compressed = rsv1;
                    self.fragments = Some((opcode, payload.to_vec()));
                }
                OP_CONTINUATION => {
                    let Some((opcode, mut message)) = self.fragments.take() else {
                        return Err(WireError::Protocol("continuation without a message"));
                    };
                    message.extend_from_slice(payload);
                    if message.len() > self.max_message {
                        return Err(WireError::TooBig);
                    }
                    if fin {
                        let message = self.maybe_inflate(self.compressed, message)?;
                        return data(opcode, message).map(Some);
                    }
                    self.fragments = Some((opcode, message));
                }
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Frame::Close(code)));
                }
                OP_PING => return Ok(Some(Frame::Ping(payload.to_vec()))),
                OP_PONG => return Ok(Some(Frame::Pong)),
                _ => return Err(WireError::Protocol("unknown opcode")),
            }
        }
    }
}

impl Reader {
    /// A whole message's bytes, inflated if it came compressed.
    fn maybe_inflate(&self, compressed: bool, mut message: Vec<u8>) -> Result<Vec<u8>, WireError> {
        if !compressed {
            return Ok(message);
        }
        const BAD: WireError = WireError::Protocol("bad compressed message");
        message.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
        let mut inflater = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(message.len() * 4 + 64);
        loop {
            let used = inflater.total_in() as usize;
            inflater
                .decompress_vec(&message[used..], &mut out, flate2::FlushDecompress::Sync)
                .map_err(|_| BAD)?;
            if out.len() > self.max_message {
                return Err(WireError::TooBig);
            }
            if inflater.total_in() as usize == message.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() < out.capacity() && inflater.total_in() as usize == used {
                return Err(BAD);
            }
            out.reserve(out.capacity());
        }
    }
}

/// RSV1 in a frame's first byte: a compressed message (permessage-deflate).
const RSV1: u8 = 0x40;

/// Parses a frame header at the front of `input`: (fin, opcode, header
/// length, payload length), or `None` if it is not all there yet.
fn header(input: &[u8], max: usize) -> Result<Option<(bool, u8, usize, usize)>, WireError> {
    let [b0, b1, rest @ ..] = input else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 {
        return Err(WireError::Protocol("reserved bits set"));
    }
    if b1 & 0x80 != 0 {
        return Err(WireError::Protocol("masked frame from the server"));
    }
    let (len, extra) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u16::from_be_bytes([*a, *b]) as u64, 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 8)
            }
            None => return Ok(None),
        },
        n => (n as u64, 0),
    };
    let len = usize::try_from(len).map_err(|_| WireError::TooBig)?;
    if len > max {
        return Err(WireError::TooBig);
    }
    Ok(Some((b0 & 0x80 != 0, b0 & (0x0F | RSV1), 2 + extra, len)))
}

fn data(opcode: u8, payload: Vec<u8>) -> Result<Frame, WireError> {
    if opcode == OP_BINARY {
        return Ok(Frame::Binary);
    }
    String::from_utf8(payload)
        .map(|text| Frame::Text(Utf8Bytes::from(text)))
        .map_err(|_| WireError::BadUtf8)
}

/// Appends a final, masked client frame to `out`.
pub fn encode(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked).
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 65535 => {
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

    fn feed(reader: &mut Reader, bytes: &[u8]) {
        reader.buffer().extend_from_slice(bytes);
    }

    /// A message compressed the way a server without context takeover does.
    fn deflated(message: &[u8]) -> Vec<u8> {
        let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = Vec::with_capacity(message.len() + 64);
        compress
            .compress_vec(message, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn compressed_messages_only_once_negotiated() {
        let text = r#"[null,null,"room:a","new_msg",{"body":"hello hello hello"}]"#;
        let compressed = deflated(text.as_bytes());
        let mut bytes = server_frame(0xC1, &compressed);
        let (a, b) = compressed.split_at(4);
        bytes.extend(server_frame(0x41, a));
        bytes.extend(server_frame(0x80, b));
        let mut reader = Reader::new(1 << 20);
        reader.buffer().extend_from_slice(&bytes);
        assert!(matches!(reader.next(), Err(WireError::Protocol(_))));
        let mut reader = Reader::new(1 << 20);
        reader.accept_compressed();
        reader.buffer().extend_from_slice(&bytes);
        for _ in 0..2 {
            assert_eq!(reader.next().unwrap(), Some(Frame::Text(text.into())));
        }
        assert_eq!(reader.next().unwrap(), None);
    }

    #[test]
    fn frames_split_anywhere_decode_whole() {
        let long = "x".repeat(70_000);
        let mut stream = server_frame(0x81, b"hello");
        stream.extend(server_frame(0x81, long.as_bytes()));
        stream.extend(server_frame(0x89, b"p"));
        stream.extend(server_frame(0x88, &1000u16.to_be_bytes()));
        let mut reader = Reader::new(1 << 20);
        let mut frames = Vec::new();
        // One byte at a time: every header and payload arrives in pieces.
        for byte in &stream {
            feed(&mut reader, std::slice::from_ref(byte));
            while let Some(frame) = reader.next().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], Frame::Text("hello".into()));
        assert_eq!(frames[1], Frame::Text(long.into()));
        assert_eq!(frames[2], Frame::Ping(b"p".to_vec()));
        assert_eq!(frames[3], Frame::Close(Some(1000)));
        // The large message's buffer was given back.
        assert!(reader.buffer().capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn fragments_join_and_bad_input_is_refused() {
        let mut reader = Reader::new(16);
        feed(&mut reader, &server_frame(0x01, b"ab"));
        feed(&mut reader, &server_frame(0x80, b"cd"));
        assert_eq!(reader.next().unwrap(), Some(Frame::Text("abcd".into())));
        assert_eq!(reader.next().unwrap(), None);

        let mut reader = Reader::new(16);
        feed(&mut reader, &server_frame(0x81, &[b'a'; 17]));
        assert_eq!(reader.next(), Err(WireError::TooBig));

        let mut reader = Reader::new(16);
        feed(&mut reader, &server_frame(0x81, &[0xff, 0xfe]));
        assert_eq!(reader.next(), Err(WireError::BadUtf8));

        let mut reader = Reader::new(16);
        feed(&mut reader, &[0x81, 0x81, 0, 0, 0, 0, b'a']);
        assert!(matches!(reader.next(), Err(WireError::Protocol(_))));
    }

    #[test]
    fn client_frames_are_masked() {
        let mask = [1, 2, 3, 4];
        for len in [5usize, 200, 70_000] {
            let payload = vec![b'z'; len];
            let mut out = Vec::new();
            encode(OP_TEXT, &payload, mask, &mut out);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "mask bit");
            let header_len = match len {
                5 => 2,
                200 => 4,
                _ => 10,
            };
            assert_eq!(&out[header_len..header_len + 4], &mask);
            let unmasked: Vec<u8> = out[header_len + 4..]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(unmasked, payload);
        }
    }
}
