//! RFC 6455 framing as the server speaks it, tested from raw TCP bytes
//! against the real binary: pings are answered with the same payload, a
//! message split into fragments with a control frame between them is one
//! message, frames a client sends glued together in one write are each
//! handled, and an unmasked client frame ends the socket with close 1002.
//! A client still sending after a protocol error gets the close frame and
//! a clean end of stream (FIN), not a reset.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ws_frames::{masked_frame as frame, open_raw, read_frame};
use common::TestServer;
use serde_json::Value;

const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A raw client: the upgrade by hand, frames byte by byte.
struct RawSocket {
    tcp: TcpStream,
}

/// A frame the server sent.
#[derive(Debug)]
struct ServerFrame {
    fin: bool,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl RawSocket {
    fn open(server: &TestServer, token: &str) -> RawSocket {
        let (tcp, head) = open_raw(server.addr(), token, "", READ_TIMEOUT);
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "wrong accept key: {head}"
        );
        RawSocket { tcp }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).unwrap();
    }

    fn read(&mut self) -> ServerFrame {
        let raw = read_frame(&mut self.tcp).expect("frame header");
        ServerFrame {
            fin: raw.first & 0x80 != 0,
            opcode: raw.first & 0x0F,
            masked: raw.masked,
            payload: raw.payload,
        }
    }

    /// The next text frame's JSON, skipping presence traffic.
    fn next_reply(&mut self) -> Value {
        loop {
            let frame = self.read();
            assert_eq!(frame.opcode, 1, "expected a text frame: {frame:?}");
            let value: Value = serde_json::from_slice(&frame.payload).unwrap();
            if value[3] == "phx_reply" {
                return value;
            }
        }
    }
}

#[test]
fn framing_edges_over_raw_tcp() {
    let mut server = TestServer::start();
    let (token, _) = server.register("framer", "framing-password");
    let mut socket = RawSocket::open(&server, &token);

    // Ping: a pong with the same payload, unmasked and whole.
    socket.send(&frame(0x89, b"are you there"));
    let pong = socket.read();
    assert_eq!((pong.opcode, pong.fin, pong.masked), (0xA, true, false));
    assert_eq!(pong.payload, b"are you there");

    // A join in three fragments with a ping between them, all in one write,
    // followed by a heartbeat in the same write.
    let join = br#"["1","1","room:lobby","phx_join",{}]"#;
    let mut bytes = frame(0x01, &join[..10]);
    bytes.extend(frame(0x00, &join[10..20]));
    bytes.extend(frame(0x89, b"mid"));
    bytes.extend(frame(0x80, &join[20..]));
    bytes.extend(frame(0x81, br#"[null,"2","phoenix","heartbeat",{}]"#));
    socket.send(&bytes);
    let pong = socket.read();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"mid"[..]));
    let reply = socket.next_reply();
    assert_eq!(reply[1], "1", "join reply: {reply}");
    assert_eq!(reply[4]["status"], "ok", "join reply: {reply}");
    let heartbeat = socket.next_reply();
    assert_eq!(heartbeat[1], "2");
    assert_eq!(heartbeat[2], "phoenix");

    // The same bytes dribbled one at a time are the same message.
    for byte in frame(0x81, br#"[null,"3","phoenix","heartbeat",{}]"#) {
        socket.send(&[byte]);
    }
    assert_eq!(socket.next_reply()[1], "3");

    // An unmasked client frame is a protocol error: close 1002.
    socket.send(&[0x81, 0x02, b'h', b'i']);
    let close = loop {
        let frame = socket.read();
        if frame.opcode == 0x8 {
            break frame;
        }
    };
    assert_eq!(
        u16::from_be_bytes([close.payload[0], close.payload[1]]),
        1002
    );
    // Then the server ends the connection.
    let mut rest = Vec::new();
    let _ = socket.tcp.read_to_end(&mut rest);
    assert!(server.is_running());
}

#[test]
fn a_client_still_sending_after_an_error_gets_the_close_and_a_fin() {
    let mut server = TestServer::start();
    let (token, _) = server.register("linger", "framing-password");
    for _round in 0..3 {
        let mut socket = RawSocket::open(&server, &token);
        // A reserved bit: protocol error. The client does not notice and
        // goes on sending binary frames until it has read the close frame.
        socket.send(&frame(0xC2, b"rsv1"));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writer = socket.tcp.try_clone().unwrap();
        let writer = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let chunk = frame(0x82, &[0x5A; 4000]);
                let mut sent = 0usize;
                // At least 100 kB, and on until the close frame was read.
                while sent < 100_000 || !stop.load(Ordering::Relaxed) {
                    writer.write_all(&chunk)?;
                    sent += chunk.len();
                }
                // Its close frame answers the server's.
                writer.write_all(&frame(0x88, &1002u16.to_be_bytes()))?;
                Ok::<usize, std::io::Error>(sent)
            }
        });
        let close = loop {
            let frame = socket.read();
            if frame.opcode == 0x8 {
                break frame;
            }
        };
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            u16::from_be_bytes([close.payload[0], close.payload[1]]),
            1002
        );
        writer
            .join()
            .unwrap()
            .expect("the server reset the connection");
        // The server ends its side with a FIN: end of stream, not an error.
        let mut rest = Vec::new();
        let end = socket.tcp.read_to_end(&mut rest);
        assert!(end.is_ok(), "connection reset instead of closed: {end:?}");
        assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    }
    assert!(server.is_running());
}

#[test]
fn a_close_right_behind_a_bad_frame_ends_the_connection_at_once() {
    let mut server = TestServer::start();
    let (token, _) = server.register("prompt", "framing-password");
    let mut socket = RawSocket::open(&server, &token);
    // The bad frame and the client's close arrive together: the server
    // skips to the close and needs to wait for nothing more.
    let mut bytes = frame(0x83, b"reserved opcode");
    bytes.extend(frame(0x88, &1000u16.to_be_bytes()));
    let started = std::time::Instant::now();
    socket.send(&bytes);
    let close = socket.read();
    assert_eq!(close.opcode, 0x8);
    assert_eq!(
        u16::from_be_bytes([close.payload[0], close.payload[1]]),
        1002
    );
    let mut rest = Vec::new();
    socket
        .tcp
        .read_to_end(&mut rest)
        .expect("a FIN, not a reset");
    assert!(rest.is_empty());
    // Well inside the 2 s the server would otherwise wait for the close.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(server.is_running());
}
