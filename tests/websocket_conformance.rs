//! RFC 6455 conformance of the server's WebSocket framing, case by case in
//! the groups of the Autobahn|Testsuite fuzzing client: 1 payload lengths,
//! 2 pings and pongs, 3 reserved bits, 4 reserved opcodes, 5 fragmentation,
//! 6 UTF-8, 7 close handling, 9 large messages and many fragments.
//!
//! The server is a Phoenix endpoint, not an echo server, so the "echo" of a
//! text or binary message is the reply to a Phoenix heartbeat carried in it
//! (text: a V2 JSON array; binary: a V2 binary push), padded to the length a
//! case needs, and the echo of a ping is its pong. Every case runs on a
//! fresh authenticated socket over raw TCP and checks the exact frames the
//! server answers with, in order, the exact close code, and that a case not
//! ending in a close leaves nothing unexpected behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ws_frames::{masked_frame as frame, open_raw, read_frame};
use common::TestServer;
use serde_json::Value;

const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// The server's default `max_frame_bytes`.
const LIMIT: usize = 64 * 1024;

const FIN: u8 = 0x80;
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A server whose one user may hold many sockets, and that user's token.
fn server() -> (TestServer, String) {
    let server = TestServer::options()
        .env("CONFAB_MAX_SOCKETS_PER_USER", "1000")
        .start();
    let (token, _) = server.register("conformer", "conformance-password");
    (server, token)
}

/// A close frame's payload.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A text heartbeat whose JSON string holds `middle` (any bytes).
fn text_heartbeat_with(msg_ref: &str, middle: &[u8]) -> Vec<u8> {
    let mut out = format!(r#"[null,"{msg_ref}","phoenix","heartbeat",{{"p":""#).into_bytes();
    out.extend_from_slice(middle);
    out.extend_from_slice(br#""}]"#);
    out
}

/// A text heartbeat of exactly `len` bytes.
fn text_heartbeat(msg_ref: &str, len: usize) -> Vec<u8> {
    let bare = text_heartbeat_with(msg_ref, b"").len();
    assert!(len >= bare, "a heartbeat needs {bare} bytes");
    text_heartbeat_with(msg_ref, &vec![b'x'; len - bare])
}

/// A V2 binary heartbeat push of exactly `len` bytes.
fn binary_heartbeat(msg_ref: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0, 0, msg_ref.len() as u8, 7, 9];
    out.extend_from_slice(msg_ref.as_bytes());
    out.extend_from_slice(b"phoenixheartbeat");
    assert!(len >= out.len());
    out.resize(len, 0xA5);
    out
}

/// `payload` as a message in fragments of `size` bytes, `opcode` first.
fn fragments(opcode: u8, payload: &[u8], size: usize) -> Vec<u8> {
    let pieces: Vec<&[u8]> = payload.chunks(size.max(1)).collect();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { opcode } else { CONT };
        let fin = if i + 1 == pieces.len() { FIN } else { 0 };
        out.extend(frame(fin | op, piece));
    }
    out
}

/// What the server must answer, in order.
#[derive(Debug, Clone)]
enum Want {
    /// The `ok` reply to the heartbeat with this ref.
    Reply(String),
    /// A pong with this payload.
    Pong(Vec<u8>),
    /// The server closes with this code; the client answers and the server
    /// ends the stream.
    Close(u16),
    /// The server answers the client's close with this code (or none).
    CloseEcho(Option<u16>),
}

fn reply(msg_ref: &str) -> Want {
    Want::Reply(msg_ref.to_string())
}

/// A frame the server sent.
#[derive(Debug)]
struct ServerFrame {
    first: u8,
    masked: bool,
    payload: Vec<u8>,
}

/// A raw client socket.
struct Client {
    tcp: TcpStream,
}

impl Client {
    fn open(server: &TestServer, token: &str) -> Client {
        let (tcp, _) = open_raw(server.addr(), token, "", READ_TIMEOUT);
        Client { tcp }
    }

    fn read(&mut self, case: &str) -> ServerFrame {
        let raw = match read_frame(&mut self.tcp) {
            Ok(raw) => raw,
            Err(e) => panic!("{case}: no frame from the server: {e}"),
        };
        let frame = ServerFrame {
            first: raw.first,
            masked: raw.masked,
            payload: raw.payload,
        };
        assert!(!frame.masked, "{case}: server frames are unmasked");
        assert_eq!(frame.first & 0xF0, FIN, "{case}: whole frames, no RSV");
        frame
    }

    /// Checks the server's answers, in order, with nothing else between.
    fn expect(&mut self, case: &str, wants: &[Want]) {
        for want in wants {
            let got = self.read(case);
            let opcode = got.first & 0x0F;
            match want {
                Want::Reply(msg_ref) => {
                    assert_eq!(opcode, TEXT, "{case}: wanted {want:?}, got {got:?}");
                    let value: Value = serde_json::from_slice(&got.payload).unwrap();
                    assert_eq!(value[1], msg_ref.as_str(), "{case}: {value}");
                    assert_eq!(value[3], "phx_reply", "{case}: {value}");
                    assert_eq!(value[4]["status"], "ok", "{case}: {value}");
                }
                Want::Pong(payload) => {
                    assert_eq!(opcode, PONG, "{case}: wanted {want:?}, got {got:?}");
                    assert_eq!(&got.payload, payload, "{case}: pong payload");
                }
                Want::Close(code) => {
                    assert_eq!(opcode, CLOSE, "{case}: wanted {want:?}, got {got:?}");
                    assert_eq!(close_code(&got.payload), Some(*code), "{case}: {got:?}");
                    assert!(std::str::from_utf8(&got.payload[2..]).is_ok());
                    // The client may still be sending; its close answers.
                    let _ = self
                        .tcp
                        .write_all(&frame(FIN | CLOSE, &close_payload(*code, b"")));
                    self.expect_end(case);
                }
                Want::CloseEcho(code) => {
                    assert_eq!(opcode, CLOSE, "{case}: wanted {want:?}, got {got:?}");
                    assert_eq!(close_code(&got.payload), *code, "{case}: {got:?}");
                    self.expect_end(case);
                }
            }
        }
    }

    /// The server sends nothing more and ends the stream cleanly.
    fn expect_end(&mut self, case: &str) {
        let mut rest = Vec::new();
        match self.tcp.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "{case}: bytes after close: {rest:?}"),
            Err(e) => panic!("{case}: the stream did not end cleanly: {e}"),
        }
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Runs one case on a fresh socket: each element of `sends` is one write.
/// A case that does not end in a close ends with a heartbeat whose reply
/// must be the next frame, so nothing unexpected came before it.
fn case(server: &TestServer, token: &str, name: &str, sends: &[Vec<u8>], wants: &[Want]) {
    let mut client = Client::open(server, token);
    for bytes in sends {
        if client.tcp.write_all(bytes).is_err() {
            // The server may close before every byte of a failing case.
            break;
        }
    }
    client.expect(name, wants);
    if !matches!(wants.last(), Some(Want::Close(_) | Want::CloseEcho(_))) {
        let _ = client
            .tcp
            .write_all(&frame(FIN | TEXT, &text_heartbeat_with("end", b"")));
        client.expect(name, &[reply("end")]);
        let _ = client
            .tcp
            .write_all(&frame(FIN | CLOSE, &close_payload(1000, b"")));
        client.expect(name, &[Want::CloseEcho(Some(1000))]);
    }
}

#[test]
fn case_1_text_and_binary_payload_lengths() {
    let (server, token) = server();
    for len in [125, 126, 127, 128, 65_535, LIMIT] {
        let text = text_heartbeat("t", len);
        let binary = binary_heartbeat("b", len);
        case(
            &server,
            &token,
            &format!("1.1 text {len}"),
            &[frame(FIN | TEXT, &text)],
            &[reply("t")],
        );
        case(
            &server,
            &token,
            &format!("1.2 binary {len}"),
            &[frame(FIN | BINARY, &binary)],
            &[reply("b")],
        );
    }
    // The largest message dribbled in chops of 997 bytes (1.1.8, 1.2.8).
    for (op, payload) in [
        (TEXT, text_heartbeat("c", LIMIT)),
        (BINARY, binary_heartbeat("c", LIMIT)),
    ] {
        let bytes = frame(FIN | op, &payload);
        let chops: Vec<Vec<u8>> = bytes.chunks(997).map(<[u8]>::to_vec).collect();
        case(
            &server,
            &token,
            &format!("1.x chopped {op}"),
            &chops,
            &[reply("c")],
        );
    }
    // Empty messages are framed fine but are no Phoenix message: the
    // socket closes as malformed (1007), never as a framing error.
    case(
        &server,
        &token,
        "1.1.1 empty text",
        &[frame(FIN | TEXT, b"")],
        &[Want::Close(1007)],
    );
    case(
        &server,
        &token,
        "1.2.1 empty binary",
        &[frame(FIN | BINARY, b"")],
        &[Want::Close(1007)],
    );
    // An empty first fragment is part of the message.
    let mut bytes = frame(TEXT, b"");
    bytes.extend(frame(FIN | CONT, &text_heartbeat("e", 60)));
    case(
        &server,
        &token,
        "1.x empty first fragment",
        &[bytes],
        &[reply("e")],
    );
}

#[test]
fn case_2_pings_and_pongs() {
    let (server, token) = server();
    for len in [0usize, 1, 2, 124, 125] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        case(
            &server,
            &token,
            &format!("2.x ping {len}"),
            &[frame(FIN | PING, &payload)],
            &[Want::Pong(payload.clone())],
        );
    }
    let binary: Vec<u8> = vec![0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF];
    case(
        &server,
        &token,
        "2.3 binary ping",
        &[frame(FIN | PING, &binary)],
        &[Want::Pong(binary.clone())],
    );
    case(
        &server,
        &token,
        "2.5 ping of 126 bytes",
        &[frame(FIN | PING, &[b'p'; 126])],
        &[Want::Close(1002)],
    );
    // 2.6: a ping of 125 bytes in chops of one byte.
    let chops: Vec<Vec<u8>> = frame(FIN | PING, &[b'q'; 125])
        .chunks(1)
        .map(<[u8]>::to_vec)
        .collect();
    case(
        &server,
        &token,
        "2.6 chopped ping",
        &chops,
        &[Want::Pong(vec![b'q'; 125])],
    );
    // 2.7, 2.8: unsolicited pongs are ignored.
    case(
        &server,
        &token,
        "2.7 unsolicited pong",
        &[frame(FIN | PONG, b"")],
        &[],
    );
    case(
        &server,
        &token,
        "2.8 unsolicited pong",
        &[frame(FIN | PONG, b"unsolicited")],
        &[],
    );
    // 2.9: a pong, then a ping: only the ping is answered.
    let mut bytes = frame(FIN | PONG, b"unsolicited");
    bytes.extend(frame(FIN | PING, b"ping"));
    case(
        &server,
        &token,
        "2.9 pong then ping",
        &[bytes],
        &[Want::Pong(b"ping".to_vec())],
    );
    // 2.10, 2.11: ten pings in one write, or in ten, get ten pongs in order.
    let pings: Vec<Vec<u8>> = (0..10)
        .map(|i| frame(FIN | PING, format!("p{i}").as_bytes()))
        .collect();
    let pongs: Vec<Want> = (0..10)
        .map(|i| Want::Pong(format!("p{i}").into_bytes()))
        .collect();
    case(
        &server,
        &token,
        "2.10 ten pings at once",
        &[pings.concat()],
        &pongs,
    );
    case(&server, &token, "2.11 ten pings", &pings, &pongs);
}

#[test]
fn case_3_reserved_bits() {
    let (server, token) = server();
    for rsv in 1u8..=7 {
        let bits = rsv << 4;
        for (op, payload) in [
            (TEXT, text_heartbeat_with("r", b"")),
            (BINARY, binary_heartbeat("r", 40)),
            (PING, b"ping".to_vec()),
            (CLOSE, close_payload(1000, b"")),
        ] {
            // A valid message first: answered; then the bad frame: 1002;
            // then a ping that must not be answered.
            let sends = vec![
                frame(FIN | TEXT, &text_heartbeat_with("ok", b"")),
                frame(FIN | bits | op, &payload),
                frame(FIN | PING, b"after"),
            ];
            case(
                &server,
                &token,
                &format!("3.x rsv {rsv} opcode {op}"),
                &sends,
                &[reply("ok"), Want::Close(1002)],
            );
        }
    }
}

#[test]
fn case_4_reserved_opcodes() {
    let (server, token) = server();
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        for payload in [&b""[..], b"reserved opcode"] {
            let sends = vec![
                frame(FIN | TEXT, &text_heartbeat_with("ok", b"")),
                frame(FIN | op, payload),
                frame(FIN | PING, b"after"),
            ];
            case(
                &server,
                &token,
                &format!("4.x opcode {op}"),
                &sends,
                &[reply("ok"), Want::Close(1002)],
            );
        }
    }
}

#[test]
fn case_5_fragmentation() {
    let (server, token) = server();
    let hb = text_heartbeat("f", 60);
    let (a, b) = hb.split_at(25);
    // 5.1, 5.2: fragmented control frames.
    let mut bytes = frame(PING, b"frag");
    bytes.extend(frame(FIN | CONT, b"ment"));
    case(
        &server,
        &token,
        "5.1 fragmented ping",
        &[bytes],
        &[Want::Close(1002)],
    );
    let mut bytes = frame(PONG, b"frag");
    bytes.extend(frame(FIN | CONT, b"ment"));
    case(
        &server,
        &token,
        "5.2 fragmented pong",
        &[bytes],
        &[Want::Close(1002)],
    );
    // 5.3-5.5: a message in two fragments, in one write, in two, chopped.
    let two = [frame(TEXT, a), frame(FIN | CONT, b)];
    case(
        &server,
        &token,
        "5.3 two fragments",
        &[two.concat()],
        &[reply("f")],
    );
    case(
        &server,
        &token,
        "5.4 two fragments, two writes",
        &two,
        &[reply("f")],
    );
    let chops: Vec<Vec<u8>> = two.concat().chunks(1).map(<[u8]>::to_vec).collect();
    case(
        &server,
        &token,
        "5.5 two fragments, chopped",
        &chops,
        &[reply("f")],
    );
    // 5.6-5.8: a ping between the fragments is answered first.
    let three = [
        frame(TEXT, a),
        frame(FIN | PING, b"between"),
        frame(FIN | CONT, b),
    ];
    let wants = [Want::Pong(b"between".to_vec()), reply("f")];
    case(
        &server,
        &token,
        "5.6 ping between",
        &[three.concat()],
        &wants,
    );
    case(
        &server,
        &token,
        "5.7 ping between, three writes",
        &three,
        &wants,
    );
    let chops: Vec<Vec<u8>> = three.concat().chunks(1).map(<[u8]>::to_vec).collect();
    case(&server, &token, "5.8 ping between, chopped", &chops, &wants);
    // 5.9-5.14: a continuation with no message started.
    for (name, first) in [("5.9 final", FIN | CONT), ("5.12 non-final", CONT)] {
        let sends = vec![
            frame(first, b"fragment"),
            frame(FIN | TEXT, &text_heartbeat_with("never", b"")),
        ];
        case(
            &server,
            &token,
            &format!("{name} continuation first"),
            &sends,
            &[Want::Close(1002)],
        );
    }
    // 5.15: a message, then a continuation with no message under way.
    let sends = vec![
        frame(TEXT, a),
        frame(FIN | CONT, b),
        frame(CONT, b"stray"),
        frame(FIN | TEXT, &text_heartbeat_with("never", b"")),
    ];
    case(
        &server,
        &token,
        "5.15 stray continuation",
        &sends,
        &[reply("f"), Want::Close(1002)],
    );
    // 5.18: a new text message while one is under way.
    let sends = vec![frame(TEXT, a), frame(FIN | TEXT, b)];
    case(
        &server,
        &token,
        "5.18 text then text",
        &sends,
        &[Want::Close(1002)],
    );
    let sends = vec![frame(BINARY, b"x"), frame(FIN | TEXT, &hb)];
    case(
        &server,
        &token,
        "5.x binary then text",
        &sends,
        &[Want::Close(1002)],
    );
    // 5.19, 5.20: five fragments with pings between them.
    let pieces: Vec<&[u8]> = hb.chunks(12).collect();
    let mut sends = Vec::new();
    let mut wants = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        let fin = if i + 1 == pieces.len() { FIN } else { 0 };
        sends.push(frame(fin | op, piece));
        if i + 1 < pieces.len() {
            sends.push(frame(FIN | PING, format!("p{i}").as_bytes()));
            wants.push(Want::Pong(format!("p{i}").into_bytes()));
        }
    }
    wants.push(reply("f"));
    case(
        &server,
        &token,
        "5.19 pings between fragments",
        &sends,
        &wants,
    );
    // A binary message in fragments.
    let push = binary_heartbeat("g", 300);
    case(
        &server,
        &token,
        "5.x binary fragments",
        &[fragments(BINARY, &push, 100)],
        &[reply("g")],
    );
}

/// Byte sequences no UTF-8 text can hold.
const INVALID_UTF8: &[&[u8]] = &[
    b"\x80", // a lone continuation byte
    b"\xbf",
    b"\xc0\xaf", // overlong '/'
    b"\xc1\xbf",
    b"\xe0\x80\xaf",     // overlong, three bytes
    b"\xf0\x80\x80\xaf", // overlong, four bytes
    b"\xed\xa0\x80",     // a UTF-16 surrogate
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80", // above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80", // five-byte form
    b"\xfe",
    b"\xff",
    b"\xc3", // a lead byte followed by ASCII
    b"\xe2\x82",
    b"\xf0\x9d\x84",
];

#[test]
fn case_6_utf8() {
    let (server, token) = server();
    // Valid text across the code point ranges and their edges.
    let valid = "κόσμε \u{80}\u{7FF}\u{800}\u{FFFD}\u{FFFF}\u{10000}\u{10FFFF}\u{E000}𝄞 edited";
    let message = text_heartbeat_with("v", valid.as_bytes());
    case(
        &server,
        &token,
        "6.2.1 valid",
        &[frame(FIN | TEXT, &message)],
        &[reply("v")],
    );
    // 6.2.2-6.2.4: fragmented at every byte, or chopped at every byte.
    case(
        &server,
        &token,
        "6.2.3 one byte per fragment",
        &[fragments(TEXT, &message, 1)],
        &[reply("v")],
    );
    let chops: Vec<Vec<u8>> = frame(FIN | TEXT, &message)
        .chunks(1)
        .map(<[u8]>::to_vec)
        .collect();
    case(&server, &token, "6.2.4 chopped", &chops, &[reply("v")]);
    for cut in 1..message.len() {
        let two = [
            frame(TEXT, &message[..cut]),
            frame(FIN | CONT, &message[cut..]),
        ];
        case(
            &server,
            &token,
            &format!("6.2.2 cut at {cut}"),
            &[two.concat()],
            &[reply("v")],
        );
    }
    // 6.3-6.21: invalid bytes at the start, in the middle, at the end.
    for bad in INVALID_UTF8 {
        for (at, middle) in [
            ("start", [*bad, b"abc"].concat()),
            ("middle", [b"abc", *bad, b"def"].concat()),
            ("end", [b"abc", *bad].concat()),
        ] {
            let message = text_heartbeat_with("bad", &middle);
            let name = format!("6.x invalid {bad:x?} at the {at}");
            case(
                &server,
                &token,
                &name,
                &[frame(FIN | TEXT, &message)],
                &[Want::Close(1007)],
            );
            case(
                &server,
                &token,
                &format!("{name}, fragmented"),
                &[fragments(TEXT, &message, 7)],
                &[Want::Close(1007)],
            );
        }
    }
    // 6.4: the server fails at the first bad byte, before the rest arrives
    // (the rest is never sent here).
    let kosme: &[u8] = "κόσμε".as_bytes();
    let too_high: &[u8] = b"\xf4\x90\x80\x80";
    let sends = vec![frame(TEXT, kosme), frame(CONT, too_high)];
    case(
        &server,
        &token,
        "6.4.1 bad second fragment",
        &sends,
        &[Want::Close(1007)],
    );
    let sends = vec![
        frame(TEXT, &[kosme, &too_high[..1]].concat()),
        frame(CONT, &too_high[1..]),
    ];
    case(
        &server,
        &token,
        "6.4.2 bad code point across fragments",
        &sends,
        &[Want::Close(1007)],
    );
    let mut payload = [kosme, too_high, b"edited"].concat();
    let whole = frame(FIN | TEXT, &payload);
    let header = whole.len() - payload.len();
    let sends = vec![whole[..header + kosme.len() + too_high.len()].to_vec()];
    case(
        &server,
        &token,
        "6.4.3 bad bytes, frame incomplete",
        &sends,
        &[Want::Close(1007)],
    );
    let sends = vec![
        whole[..header + kosme.len() + 1].to_vec(),
        whole[header + kosme.len() + 1..header + kosme.len() + 2].to_vec(),
    ];
    case(
        &server,
        &token,
        "6.4.4 bad byte alone, frame incomplete",
        &sends,
        &[Want::Close(1007)],
    );
    // A message ending inside a code point.
    payload = text_heartbeat_with("cut", b"");
    let sends = vec![frame(TEXT, &payload), frame(FIN | CONT, b"\xce")];
    case(
        &server,
        &token,
        "6.x ends inside a code point",
        &sends,
        &[Want::Close(1007)],
    );
}

#[test]
fn case_7_close_handling() {
    let (server, token) = server();
    // 7.1.1-7.1.3: a close is echoed; nothing sent after it is answered.
    case(
        &server,
        &token,
        "7.1.1 close",
        &[frame(FIN | CLOSE, &close_payload(1000, b""))],
        &[Want::CloseEcho(Some(1000))],
    );
    let sends = vec![
        frame(FIN | CLOSE, &close_payload(1000, b"")),
        frame(FIN | PING, b"after close"),
        frame(FIN | TEXT, &text_heartbeat_with("after", b"")),
    ];
    case(
        &server,
        &token,
        "7.1.2 data after close",
        &sends,
        &[Want::CloseEcho(Some(1000))],
    );
    // 7.1.5: a close in the middle of a fragmented message.
    let sends = vec![
        frame(TEXT, b"[null,"),
        frame(FIN | CLOSE, &close_payload(1000, b"")),
        frame(FIN | CONT, b"\"x\"]"),
    ];
    case(
        &server,
        &token,
        "7.1.5 close between fragments",
        &sends,
        &[Want::CloseEcho(Some(1000))],
    );
    // 7.3: payload forms.
    case(
        &server,
        &token,
        "7.3.1 empty close",
        &[frame(FIN | CLOSE, b"")],
        &[Want::CloseEcho(None)],
    );
    case(
        &server,
        &token,
        "7.3.2 one-byte close",
        &[frame(FIN | CLOSE, b"\x03")],
        &[Want::Close(1002)],
    );
    case(
        &server,
        &token,
        "7.3.4 close with reason",
        &[frame(FIN | CLOSE, &close_payload(1000, b"bye"))],
        &[Want::CloseEcho(Some(1000))],
    );
    let reason = vec![b'r'; 123];
    case(
        &server,
        &token,
        "7.3.5 longest reason",
        &[frame(FIN | CLOSE, &close_payload(1000, &reason))],
        &[Want::CloseEcho(Some(1000))],
    );
    let reason = vec![b'r'; 124];
    case(
        &server,
        &token,
        "7.3.6 reason too long",
        &[frame(FIN | CLOSE, &close_payload(1000, &reason))],
        &[Want::Close(1002)],
    );
    // 7.5.1: a reason that is not UTF-8.
    let reason = ["κόσμε".as_bytes(), b"\xf4\x90\x80\x80", b"edited"].concat();
    case(
        &server,
        &token,
        "7.5.1 bad reason",
        &[frame(FIN | CLOSE, &close_payload(1000, &reason))],
        &[Want::Close(1007)],
    );
    // 7.7: codes a peer may send are echoed.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        case(
            &server,
            &token,
            &format!("7.7 code {code}"),
            &[frame(FIN | CLOSE, &close_payload(code, b""))],
            &[Want::CloseEcho(Some(code))],
        );
    }
    // 7.9, 7.13: codes no peer may send.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535,
    ] {
        case(
            &server,
            &token,
            &format!("7.9 code {code}"),
            &[frame(FIN | CLOSE, &close_payload(code, b""))],
            &[Want::Close(1002)],
        );
    }
}

#[test]
fn case_9_large_messages_and_many_fragments() {
    let (server, token) = server();
    // 9.1, 9.2: the largest allowed message in one frame; one byte more.
    case(
        &server,
        &token,
        "9.1 text at the limit",
        &[frame(FIN | TEXT, &text_heartbeat("big", LIMIT))],
        &[reply("big")],
    );
    case(
        &server,
        &token,
        "9.2 binary at the limit",
        &[frame(FIN | BINARY, &binary_heartbeat("big", LIMIT))],
        &[reply("big")],
    );
    case(
        &server,
        &token,
        "9.x text over the limit",
        &[frame(FIN | TEXT, &text_heartbeat("big", LIMIT + 1))],
        &[Want::Close(1009)],
    );
    case(
        &server,
        &token,
        "9.x binary over the limit",
        &[frame(FIN | BINARY, &binary_heartbeat("big", LIMIT + 1))],
        &[Want::Close(1009)],
    );
    // Over the limit is refused from the header alone: the payload is never sent.
    let header = frame(FIN | TEXT, &text_heartbeat("big", LIMIT + 1))[..14].to_vec();
    case(
        &server,
        &token,
        "9.x oversized header",
        &[header],
        &[Want::Close(1009)],
    );
    // 9.3, 9.4: the largest message in fragments of 64 bytes to 16 KiB.
    for size in [64usize, 256, 1024, 4096, 16_384] {
        let text = text_heartbeat("frag", LIMIT);
        case(
            &server,
            &token,
            &format!("9.3 text in {size}-byte fragments"),
            &[fragments(TEXT, &text, size)],
            &[reply("frag")],
        );
        let binary = binary_heartbeat("frag", LIMIT);
        case(
            &server,
            &token,
            &format!("9.4 binary in {size}-byte fragments"),
            &[fragments(BINARY, &binary, size)],
            &[reply("frag")],
        );
        let over = text_heartbeat("frag", LIMIT + size);
        case(
            &server,
            &token,
            &format!("9.x fragments over the limit, {size}"),
            &[fragments(TEXT, &over, size)],
            &[Want::Close(1009)],
        );
    }
    // 9.7, 9.8: a thousand small messages in one write, answered in order.
    let mut bytes = Vec::new();
    let mut wants = Vec::new();
    for i in 0..1000 {
        let msg_ref = format!("m{i}");
        if i % 2 == 0 {
            bytes.extend(frame(FIN | TEXT, &text_heartbeat(&msg_ref, 60)));
        } else {
            bytes.extend(frame(FIN | BINARY, &binary_heartbeat(&msg_ref, 60)));
        }
        wants.push(Want::Reply(msg_ref));
    }
    case(&server, &token, "9.7 a thousand messages", &[bytes], &wants);
}

#[test]
fn case_9_larger_limit() {
    let server = TestServer::options()
        .env("CONFAB_MAX_FRAME_BYTES", "1048576")
        .start();
    let (token, _) = server.register("conformer", "conformance-password");
    for len in [256 * 1024, 1 << 20] {
        case(
            &server,
            &token,
            &format!("9.1 text {len}"),
            &[frame(FIN | TEXT, &text_heartbeat("l", len))],
            &[reply("l")],
        );
        case(
            &server,
            &token,
            &format!("9.2 binary {len}"),
            &[frame(FIN | BINARY, &binary_heartbeat("l", len))],
            &[reply("l")],
        );
    }
    case(
        &server,
        &token,
        "9.x text over 1 MiB",
        &[frame(FIN | TEXT, &text_heartbeat("l", (1 << 20) + 1))],
        &[Want::Close(1009)],
    );
}
