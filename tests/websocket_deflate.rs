//! permessage-deflate (RFC 7692) against the real binary, over raw TCP with
//! frames compressed and inflated by hand: the handshake's answer, a
//! compressed heartbeat answered compressed, a chat message broadcast
//! compressed to a compressing subscriber and plain to another, RSV1
//! without the extension closing 1002, and a zip bomb closing 1009.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::ws_frames::{masked_frame as frame, open_raw, read_frame};
use common::TestServer;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};

const READ_TIMEOUT: Duration = Duration::from_secs(15);
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Compresses one message as a client without context takeover would.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    compress
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert_eq!(compress.total_in() as usize, payload.len());
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

/// Inflates one message the server sent.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut data = payload.to_vec();
    data.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    decompress
        .decompress_vec(&data, &mut out, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(decompress.total_in() as usize, data.len(), "one message");
    out
}

/// A raw client that may offer permessage-deflate.
struct Client {
    tcp: TcpStream,
    /// The server's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

/// A frame the server sent.
#[derive(Debug)]
struct ServerFrame {
    first: u8,
    payload: Vec<u8>,
}

impl ServerFrame {
    fn compressed(&self) -> bool {
        self.first & 0x40 != 0
    }

    fn opcode(&self) -> u8 {
        self.first & 0x0F
    }

    /// The message's bytes, inflated if it was compressed.
    fn message(&self) -> Vec<u8> {
        if self.compressed() {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.message()).expect("a JSON text frame")
    }
}

impl Client {
    fn open(server: &TestServer, token: &str, offer: Option<&str>) -> Client {
        let extension = offer
            .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
            .unwrap_or_default();
        let (tcp, head) = open_raw(server.addr(), token, &extension, READ_TIMEOUT);
        let extensions = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_string())
        });
        Client { tcp, extensions }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).unwrap();
    }

    /// Sends a text message, compressed or not.
    fn send_text(&mut self, text: &str, compressed: bool) {
        if compressed {
            self.send(&frame(0xC1, &deflate(text.as_bytes())));
        } else {
            self.send(&frame(0x81, text.as_bytes()));
        }
    }

    fn read(&mut self) -> ServerFrame {
        let raw = read_frame(&mut self.tcp).expect("frame header");
        assert_eq!(raw.first & 0xB0, 0x80, "final, no RSV2/RSV3: {raw:?}");
        ServerFrame {
            first: raw.first,
            payload: raw.payload,
        }
    }

    /// The next frame that is not presence traffic.
    fn next(&mut self) -> ServerFrame {
        loop {
            let frame = self.read();
            if frame.opcode() == 1 {
                let event = frame.json()[3].clone();
                if event == "presence_state" || event == "presence_diff" {
                    continue;
                }
            }
            return frame;
        }
    }

    /// Reads until the server's close frame and returns its code.
    fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.read();
            if frame.opcode() == 8 {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    }
}

#[test]
fn compressed_messages_both_ways() {
    let server = TestServer::options()
        .env("CONFAB_WEBSOCKET_COMPRESSION", "true")
        .start();
    let (token, _) = server.register("squeezer", "deflate-password");

    // What browsers offer; the server's answer asks for no context
    // takeover on both sides.
    let mut a = Client::open(
        &server,
        &token,
        Some("permessage-deflate; client_max_window_bits"),
    );
    assert_eq!(a.extensions.as_deref(), Some(ACCEPTED));

    // A compressed heartbeat gets a compressed reply.
    a.send_text(r#"[null,"1","phoenix","heartbeat",{}]"#, true);
    let reply = a.next();
    assert!(reply.compressed(), "{reply:?}");
    let value = reply.json();
    assert_eq!(
        (value[1].as_str(), value[3].as_str()),
        (Some("1"), Some("phx_reply"))
    );
    // A plain one too (the client may send either).
    a.send_text(r#"[null,"2","phoenix","heartbeat",{}]"#, false);
    assert_eq!(a.next().json()[1], "2");
    // Pings are never compressed.
    a.send(&frame(0x89, b"ping"));
    let pong = a.next();
    assert_eq!((pong.first, pong.payload.as_slice()), (0x8A, &b"ping"[..]));

    // A compressing and a plain subscriber in the same room.
    let mut b = Client::open(&server, &token, Some("permessage-deflate"));
    assert_eq!(b.extensions.as_deref(), Some(ACCEPTED));
    let mut plain = Client::open(&server, &token, None);
    assert_eq!(plain.extensions, None);
    for (client, compressed) in [(&mut a, true), (&mut b, true), (&mut plain, false)] {
        client.send_text(r#"["j","j","room:lobby","phx_join",{}]"#, compressed);
        let joined = client.next();
        assert_eq!(joined.compressed(), compressed, "{joined:?}");
        assert_eq!(joined.json()[4]["status"], "ok", "{}", joined.json());
    }
    let body = "a typical chat message, with some words that repeat: chat chat chat";
    let push = json!(["j", "p", "room:lobby", "new_msg", {"body": body}]).to_string();
    // In fragments: RSV1 on the first one only.
    let compressed = deflate(push.as_bytes());
    let (first, rest) = compressed.split_at(5);
    a.send(&[frame(0x41, first), frame(0x80, rest)].concat());
    for (client, compressed) in [(&mut a, true), (&mut b, true), (&mut plain, false)] {
        let got = loop {
            let frame = client.next();
            if frame.json()[3] == "new_msg" {
                break frame;
            }
        };
        assert_eq!(got.compressed(), compressed, "{got:?}");
        assert_eq!(got.json()[4]["body"], body);
        if compressed {
            assert!(got.payload.len() < got.message().len());
        }
    }

    // RSV1 on a socket that did not negotiate the extension: 1002.
    plain.send_text(r#"[null,"3","phoenix","heartbeat",{}]"#, true);
    assert_eq!(plain.close_code(), 1002);
    // A message inflating past max_frame_bytes: 1009.
    let bomb = deflate(&vec![b' '; 4 << 20]);
    assert!(bomb.len() < 64 * 1024);
    b.send(&frame(0xC1, &bomb));
    assert_eq!(b.close_code(), 1009);
    // RSV1 on a control frame: 1002.
    a.send(&frame(0xC9, b""));
    assert_eq!(a.close_code(), 1002);
}

#[test]
fn window_bits_and_the_setting() {
    let server = TestServer::options()
        .env("CONFAB_WEBSOCKET_COMPRESSION", "true")
        .start();
    let (token, _) = server.register("squeezer", "deflate-password");
    // An offer the server cannot honour is declined; the next one is taken.
    let mut client = Client::open(
        &server,
        &token,
        Some("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=8"),
    );
    assert_eq!(
        client.extensions.as_deref(),
        Some(format!("{ACCEPTED}; server_max_window_bits=8").as_str())
    );
    // With a 256-byte window, short messages are compressed, longer ones not.
    client.send_text(r#"[null,"1","phoenix","heartbeat",{}]"#, true);
    assert!(client.next().compressed());
    let pad = "x".repeat(400);
    client.send_text(
        &format!(r#"[null,"{pad}","phoenix","heartbeat",{{}}]"#),
        true,
    );
    let long = client.next();
    assert!(!long.compressed(), "{long:?}");
    assert_eq!(long.json()[1].as_str(), Some(pad.as_str()));
    let declined = Client::open(&server, &token, Some("permessage-deflate; mystery"));
    assert_eq!(declined.extensions, None);

    // Off (the default): never negotiated, and RSV1 is a protocol error.
    let server = TestServer::start();
    let (token, _) = server.register("squeezer", "deflate-password");
    let mut client = Client::open(&server, &token, Some("permessage-deflate"));
    assert_eq!(client.extensions, None);
    client.send_text(r#"[null,"1","phoenix","heartbeat",{}]"#, true);
    assert_eq!(client.close_code(), 1002);
}
