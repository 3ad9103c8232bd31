//! A server-side WebSocket over the raw TCP stream of an upgraded
//! connection. Reads go through a stack buffer into [`Decoder`], which keeps
//! bytes only while a frame is half-received; writes gather each frame's
//! header and its (often shared) payload into one vectored write. So an idle
//! socket holds no read or write buffer at all.

use std::io::{self, IoSlice};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::ws_codec::{self, Decoder, OutgoingPayload, WireError};
use super::ws_deflate::{self, Agreed};

/// Bytes read from the kernel per call (on the stack, not kept per socket).
const READ_CHUNK: usize = 16 * 1024;
/// Frames per vectored write (two slices each, under the kernel's IOV_MAX).
const FRAMES_PER_WRITE: usize = 256;

/// What reading can fail with.
#[derive(Debug)]
pub enum ReadError {
    Wire(WireError),
    Io(io::Error),
}

/// One WebSocket connection, server role.
pub struct WsStream {
    tcp: TcpStream,
    decoder: Decoder,
    /// Messages decoded but not yet handed out.
    ready: std::collections::VecDeque<Message>,
    /// Set once the peer closed the TCP stream or sent bad bytes; reported
    /// after the messages that came before it.
    ended: Option<Option<ReadError>>,
    /// Set once nothing more is to be read: end of stream, a read error, or
    /// the peer's close frame handed out.
    peer_done: bool,
    /// Set while a write has stopped part-way through a frame, and left set
    /// if that write was cancelled (a timeout, a slow-consumer close): the
    /// peer has part of a frame, so nothing more may be written, not even a
    /// close frame. A write cancelled between frames leaves it clear.
    cut_off: bool,
    /// permessage-deflate, if negotiated: text and binary messages go out
    /// compressed (unless compressed ahead, shared by many sockets).
    deflate: Option<Agreed>,
}

impl WsStream {
    /// Wraps an upgraded connection. `early` holds bytes that arrived with
    /// the upgrade request (a client may send frames right behind it).
    /// `deflate` is what permessage-deflate negotiation agreed, if anything.
    pub fn new(
        tcp: TcpStream,
        early: &[u8],
        max_message: usize,
        deflate: Option<Agreed>,
    ) -> WsStream {
        let mut decoder = Decoder::new(max_message);
        if deflate.is_some() {
            decoder.accept_compressed();
        }
        let mut stream = WsStream {
            tcp,
            decoder,
            ready: Default::default(),
            ended: None,
            peer_done: false,
            cut_off: false,
            deflate,
        };
        if !early.is_empty() {
            stream.feed(early);
        }
        stream
    }

    /// The next message, or `None` once the peer has gone. Cancel-safe: bytes
    /// read are kept before any await.
    pub async fn next(&mut self) -> Option<Result<Message, ReadError>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                self.peer_done |= matches!(message, Message::Close(_));
                return Some(Ok(message));
            }
            if let Some(ended) = self.ended.take() {
                self.ended = Some(None);
                return ended.map(Err);
            }
            if let Err(e) = self.tcp.readable().await {
                self.ended = Some(Some(ReadError::Io(e)));
                continue;
            }
            self.read_available();
        }
    }

    /// Reads what the kernel has (without waiting) and decodes it.
    fn read_available(&mut self) {
        let mut chunk = [0u8; READ_CHUNK];
        match self.tcp.try_read(&mut chunk) {
            Ok(0) => {
                self.peer_done = true;
                self.ended = Some(None);
            }
            Ok(n) => self.feed(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                self.peer_done = true;
                self.ended = Some(Some(ReadError::Io(e)));
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut decoded = Vec::new();
        let result = self.decoder.feed(bytes, &mut decoded);
        self.ready.extend(decoded);
        if let Err(e) = result {
            self.ended = Some(Some(ReadError::Wire(e)));
        }
    }

    /// Writes `frames` in order, as few system calls as the kernel allows.
    /// If this future is dropped before it completes, the stream may end
    /// mid-frame, and every later write fails instead of corrupting it.
    pub async fn send_all(&mut self, frames: &[Message]) -> io::Result<()> {
        for group in frames.chunks(FRAMES_PER_WRITE) {
            self.send_group(group).await?;
        }
        Ok(())
    }

    async fn send_group(&mut self, frames: &[Message]) -> io::Result<()> {
        if self.cut_off {
            return Err(io::Error::other("an earlier write was cut off mid-frame"));
        }
        let mut headers = Vec::with_capacity(frames.len() * ws_codec::MAX_HEADER);
        // Per frame: where its header ends in `headers`, and where the frame
        // ends in the byte stream of this group.
        let mut ends = Vec::with_capacity(frames.len());
        let mut total = 0;
        let payloads: Vec<_> = frames
            .iter()
            .map(|frame| {
                let (opcode, payload) = self.outgoing(frame);
                let before = headers.len();
                ws_codec::encode_header(opcode, payload.as_slice().len(), &mut headers);
                total += headers.len() - before + payload.as_slice().len();
                ends.push((headers.len(), total));
                payload
            })
            .collect();
        let mut slices = Vec::with_capacity(frames.len() * 2);
        let mut start = 0;
        for ((header_end, _), payload) in ends.iter().zip(&payloads) {
            slices.push(IoSlice::new(&headers[start..*header_end]));
            start = *header_end;
            if !payload.as_slice().is_empty() {
                slices.push(IoSlice::new(payload.as_slice()));
            }
        }
        let mut remaining: &mut [IoSlice<'_>] = &mut slices;
        let mut written = 0;
        while !remaining.is_empty() {
            self.tcp.writable().await?;
            match self.tcp.try_write_vectored(remaining) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    IoSlice::advance_slices(&mut remaining, n);
                    written += n;
                    // If this future is dropped at the next await, the peer
                    // is left mid-frame only when `written` is not a frame end.
                    self.cut_off = inside_a_frame(&ends, written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The opcode and payload of a frame to write, compressed if
    /// permessage-deflate is on and the message was not compressed ahead.
    fn outgoing<'a>(&self, frame: &'a Message) -> (u8, OutgoingPayload<'a>) {
        let (opcode, payload) = ws_codec::outgoing(frame);
        match self.deflate {
            Some(agreed)
                if ws_codec::is_data(opcode) && agreed.compresses(payload.as_slice().len()) =>
            {
                match ws_deflate::deflate(payload.as_slice()) {
                    Some(compressed) => {
                        (opcode | ws_codec::RSV1, OutgoingPayload::Owned(compressed))
                    }
                    None => (opcode, payload),
                }
            }
            _ => (opcode, payload),
        }
    }

    /// After our close frame: reads and throws away what the peer still
    /// sends (skipping frames, keeping no payload) until its close frame, end
    /// of stream or `deadline`, then tells the peer no more data comes. So a
    /// peer still sending when the server closed gets the close frame and a
    /// FIN, not a reset over unread bytes.
    pub async fn finish(&mut self, deadline: tokio::time::Instant) {
        // The close may already be decoded, or skipped after an error.
        if self.ready.iter().any(|m| matches!(m, Message::Close(_))) || self.decoder.discard(&[]) {
            self.peer_done = true;
        }
        self.ready = Default::default();
        let _ = tokio::time::timeout_at(deadline, async {
            while !self.peer_done {
                if self.tcp.readable().await.is_err() {
                    break;
                }
                self.discard_available();
            }
        })
        .await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.tcp).await;
    }

    /// Reads what the kernel has (without waiting), only to find where the
    /// peer's frames end.
    fn discard_available(&mut self) {
        let mut chunk = [0u8; READ_CHUNK];
        match self.tcp.try_read(&mut chunk) {
            Ok(0) => self.peer_done = true,
            Ok(n) => self.peer_done = self.decoder.discard(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.peer_done = true,
        }
    }
}

/// Whether `written` bytes of a group stop inside a frame; `ends` holds
/// `(header end, frame end)` per frame, frame ends ascending.
fn inside_a_frame(ends: &[(usize, usize)], written: usize) -> bool {
    written > 0
        && ends
            .binary_search_by_key(&written, |&(_, frame_end)| frame_end)
            .is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpSocket;

    #[test]
    fn only_a_stop_inside_a_frame_counts_as_cut_off() {
        // Frames ending at bytes 10, 25 and 40 (header ends do not matter).
        let ends = [(2, 10), (4, 25), (6, 40)];
        assert!(!inside_a_frame(&ends, 0));
        assert!(inside_a_frame(&ends, 1));
        assert!(!inside_a_frame(&ends, 10));
        assert!(inside_a_frame(&ends, 11));
        assert!(!inside_a_frame(&ends, 25));
        assert!(!inside_a_frame(&ends, 40));
    }

    /// A connected pair with small kernel buffers on the server's side.
    async fn small_buffered_pair() -> (TcpStream, TcpStream) {
        let listener = TcpSocket::new_v4().unwrap();
        listener.set_send_buffer_size(64 * 1024).unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listener.listen(1).unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(64 * 1024).unwrap();
        let client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        (server_side, client)
    }

    #[tokio::test]
    async fn a_write_cut_off_mid_frame_stops_all_later_writes() {
        let (server_side, mut client) = small_buffered_pair().await;
        let mut ws = WsStream::new(server_side, &[], 1 << 20, None);

        // Far larger than both kernel buffers: with the client not reading,
        // the write stalls part-way through the frame and is cancelled.
        const SIZE: usize = 8 << 20;
        let big = Message::Text("x".repeat(SIZE).into());
        let cut = tokio::time::timeout(Duration::from_millis(300), ws.send_all(&[big])).await;
        assert!(cut.is_err(), "the write was expected to stall");

        let later = tokio::time::timeout(
            Duration::from_millis(300),
            ws.send_all(&[Message::Text("next".into())]),
        )
        .await;
        assert!(
            matches!(later, Ok(Err(_))),
            "a write after a cut-off one must fail at once: {later:?}"
        );
        drop(ws);

        // The client sees a prefix of the first frame and nothing after it.
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got[..2], [0x81, 127], "a text frame with a 64-bit length");
        assert!(
            got.len() > 10 && got.len() < SIZE + 10,
            "{} bytes",
            got.len()
        );
        assert!(
            got[10..].iter().all(|&b| b == b'x'),
            "only payload bytes follow"
        );
    }
}
