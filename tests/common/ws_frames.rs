//! Client-side WebSocket frames built by hand, for the tests that speak raw
//! RFC 6455 to the server (framing, conformance, permessage-deflate): the
//! upgrade request, masked client frames, and reading the server's frames.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A masked client frame; `first` is the FIN bit, the RSV bits and the
/// opcode. The length takes the shortest form RFC 6455 allows.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xFA, 0x21, 0x3D];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The key of [`open_raw`]'s upgrade request (RFC 6455's sample nonce).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A frame the server sent, as read off the wire.
#[derive(Debug)]
pub struct RawFrame {
    /// FIN, RSV and opcode.
    pub first: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Opens a TCP connection to `addr` and upgrades it to a V2 socket with
/// `token`, sending `extra_headers` (each ending in CRLF) with the request.
/// Asserts a 101 and returns the stream and the response head.
pub fn open_raw(
    addr: SocketAddr,
    token: &str,
    extra_headers: &str,
    read_timeout: Duration,
) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(read_timeout)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let request = format!(
        "GET /socket/websocket?token={token}&vsn=2.0.0 HTTP/1.1\r\nHost: {addr}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n{extra_headers}\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).expect("upgrade response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    (tcp, head)
}

/// Reads one whole frame; an error only if its header does not come.
pub fn read_frame(tcp: &mut TcpStream) -> std::io::Result<RawFrame> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head)?;
    let mut len = u64::from(head[1] & 0x7F);
    if len == 126 {
        let mut ext = [0u8; 2];
        tcp.read_exact(&mut ext).unwrap();
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        tcp.read_exact(&mut ext).unwrap();
        len = u64::from_be_bytes(ext);
    }
    let mut payload = vec![0u8; len as usize];
    tcp.read_exact(&mut payload).unwrap();
    Ok(RawFrame {
        first: head[0],
        masked: head[1] & 0x80 != 0,
        payload,
    })
}
