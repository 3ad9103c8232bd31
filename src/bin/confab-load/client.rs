//! One Phoenix Channels V2 client connection: TCP from a spread loopback
//! source address, the WebSocket handshake, and the frames a client sends
//! (join, push, heartbeat, each with a fresh decimal ref) and receives
//! (text frames; pings are answered with the next frame sent). Framing is
//! [`crate::wire`]: reads go straight into a 4 KiB buffer, which is all an
//! idle connection holds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::cli::Common;
use crate::wire::{self, Frame, Reader};

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 64 << 20;
/// Largest upgrade response accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    /// The `Host` header: `host:port` as given in the URL.
    authority: String,
    /// `/path?vsn=2.0.0&params` without the token.
    base_path: String,
    source_ips: u32,
    pub op_timeout: Duration,
    /// Offer permessage-deflate.
    deflate: bool,
    /// The URL as given.
    pub url: String,
    /// Connections opened to this target so far (shared by clones).
    pub opened: Arc<AtomicU64>,
}

impl Target {
    /// Resolves `url` (one of `--url`) and prepares the query (`vsn=2.0.0`
    /// unless given, `--param`s).
    pub async fn new(url: &str, common: &Common) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        let given = url;
        let mut url = rest[authority.len()..].to_string();
        if !url.starts_with('/') {
            url.insert(0, '/');
        }
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if !url.contains("vsn=") {
            url.push(sep);
            url.push_str("vsn=2.0.0");
            sep = '&';
        }
        for param in &common.params {
            let (k, v) = param
                .split_once('=')
                .ok_or_else(|| format!("--param {param:?}: expected K=V"))?;
            url.push(sep);
            url.push_str(&encode(k));
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        }
        let loopback_v4 = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        Ok(Target {
            addr,
            authority: authority.to_string(),
            base_path: url,
            source_ips: if loopback_v4 { common.source_ips } else { 0 },
            op_timeout: common.op_timeout,
            deflate: common.deflate,
            url: given.to_string(),
            opened: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The request path and query, with the token if any.
    fn path(&self, token: Option<&str>) -> String {
        match token {
            Some(token) => {
                let sep = if self.base_path.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}token={}", self.base_path, encode(token))
            }
            None => self.base_path.clone(),
        }
    }
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text frames received by every connection of this process.
pub static FRAMES_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Why a connection could not be opened, in report classes.
#[derive(Debug)]
pub enum ConnectError {
    /// Binding the source address failed.
    Bind(std::io::Error),
    /// The TCP connect failed.
    Tcp(std::io::Error),
    /// The server answered the upgrade with this HTTP status.
    Http(u16),
    /// The WebSocket handshake failed otherwise.
    Handshake(String),
    /// No answer within the op timeout.
    Timeout,
}

impl ConnectError {
    /// A short class for tallies: `http_403`, `tcp_ConnectionRefused`, ...
    pub fn class(&self) -> String {
        match self {
            ConnectError::Bind(e) => format!("bind_{:?}", e.kind()),
            ConnectError::Tcp(e) => format!("tcp_{:?}", e.kind()),
            ConnectError::Http(status) => format!("http_{status}"),
            ConnectError::Handshake(_) => "handshake".into(),
            ConnectError::Timeout => "timeout".into(),
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Bind(e) => write!(f, "bind: {e}"),
            ConnectError::Tcp(e) => write!(f, "tcp: {e}"),
            ConnectError::Http(s) => write!(f, "upgrade refused with HTTP {s}"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
            ConnectError::Timeout => write!(f, "timed out"),
        }
    }
}

/// What [`Conn::recv`] yields.
pub enum Recv {
    /// A text frame.
    Text(Utf8Bytes),
    /// The server closed the socket (close code if it sent one).
    Closed(Option<u16>),
    /// The connection failed.
    Error(String),
}

impl Recv {
    /// A tally class for an end of connection: `close_1013`, `eof`,
    /// `error: <message>`.
    pub fn end_class(&self) -> String {
        match self {
            Recv::Text(_) => "text".into(),
            Recv::Closed(Some(code)) => format!("close_{code}"),
            Recv::Closed(None) => "eof".into(),
            Recv::Error(e) => format!("error: {}", e.split(" (os error").next().unwrap_or(e)),
        }
    }
}

/// An open client socket.
pub struct Conn {
    tcp: TcpStream,
    reader: Reader,
    /// Set once the server closed the TCP stream.
    eof: bool,
    /// Pongs owed to the server, written ahead of the next frame sent.
    owed: Vec<u8>,
    mask: [u8; 4],
    next_ref: u64,
}

/// Opens connection number `index` (its source address is
/// 127.0.0.(1 + index mod N)).
pub async fn open(
    target: &Target,
    token: Option<&str>,
    index: usize,
) -> Result<Conn, ConnectError> {
    let attempt = async {
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(ConnectError::Bind)?;
        if target.source_ips > 0 {
            let last = 1 + (index % target.source_ips as usize) as u8;
            socket
                .bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), 0))
                .map_err(ConnectError::Bind)?;
        }
        let stream = socket
            .connect(target.addr)
            .await
            .map_err(ConnectError::Tcp)?;
        let _ = stream.set_nodelay(true);
        handshake(
            stream,
            &target.authority,
            &target.path(token),
            target.deflate,
        )
        .await
    };
    let conn = tokio::time::timeout(target.op_timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)??;
    target.opened.fetch_add(1, Relaxed);
    Ok(conn)
}

impl Conn {
    /// A fresh ref (decimal, increasing).
    pub fn take_ref(&mut self) -> u64 {
        let r = self.next_ref;
        self.next_ref += 1;
        r
    }

    /// Sends one text frame (not cancel-safe: a send cut off mid-frame
    /// leaves the connection unusable).
    pub async fn send(&mut self, text: String) -> std::io::Result<()> {
        let mut out = std::mem::take(&mut self.owed);
        out.reserve(text.len() + 14);
        wire::encode(wire::OP_TEXT, text.as_bytes(), self.mask, &mut out);
        self.tcp.write_all(&out).await
    }

    /// Sends `phx_join` for `topic` (JSON-encoded, with quotes) with a JSON
    /// object payload; returns its ref, which is also the join_ref.
    pub async fn join(&mut self, topic_json: &str, payload: &str) -> std::io::Result<u64> {
        let r = self.take_ref();
        self.send(format!(
            "[\"{r}\",\"{r}\",{topic_json},\"phx_join\",{payload}]"
        ))
        .await?;
        Ok(r)
    }

    /// Sends an event on a joined channel (or, without join_ref, on a
    /// topic that needs no join such as `phoenix`); returns its ref.
    pub async fn push(
        &mut self,
        join_ref: Option<u64>,
        topic_json: &str,
        event: &str,
        payload: &str,
    ) -> std::io::Result<u64> {
        let r = self.take_ref();
        let text = match join_ref {
            Some(j) => format!("[\"{j}\",\"{r}\",{topic_json},\"{event}\",{payload}]"),
            None => format!("[null,\"{r}\",{topic_json},\"{event}\",{payload}]"),
        };
        self.send(text).await?;
        Ok(r)
    }

    /// Sends a heartbeat; returns its ref.
    pub async fn heartbeat(&mut self) -> std::io::Result<u64> {
        let r = self.take_ref();
        self.send(format!("[null,\"{r}\",\"phoenix\",\"heartbeat\",{{}}]"))
            .await?;
        Ok(r)
    }

    /// The next text frame, or how the connection ended. Cancel-safe.
    pub async fn recv(&mut self) -> Recv {
        loop {
            if let Some(received) = self.buffered() {
                return received;
            }
            // The only await: nothing read is lost if this future is dropped.
            if let Err(e) = self.tcp.readable().await {
                return Recv::Error(e.to_string());
            }
            match self.tcp.try_read_buf(self.reader.buffer()) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Recv::Error(e.to_string()),
            }
        }
    }

    /// The next text frame or end of connection among the bytes already
    /// read, without touching the socket.
    pub fn buffered(&mut self) -> Option<Recv> {
        loop {
            match self.reader.next() {
                Ok(Some(Frame::Text(text))) => {
                    FRAMES_RECEIVED.fetch_add(1, Relaxed);
                    return Some(Recv::Text(text));
                }
                Ok(Some(Frame::Close(code))) => return Some(Recv::Closed(code)),
                Ok(Some(Frame::Ping(data))) => {
                    wire::encode(wire::OP_PONG, &data, self.mask, &mut self.owed);
                }
                Ok(Some(Frame::Binary | Frame::Pong)) => {}
                Ok(None) if self.eof => return Some(Recv::Closed(None)),
                Ok(None) => return None,
                Err(e) => return Some(Recv::Error(e.to_string())),
            }
        }
    }

    /// Hands every text frame already read to `each`, without touching the
    /// socket (one wake-up then serves all of them); returns how the
    /// connection ended, if it did.
    pub fn drain_buffered(&mut self, mut each: impl FnMut(&str)) -> Option<Recv> {
        loop {
            match self.buffered()? {
                Recv::Text(text) => each(&text),
                end => return Some(end),
            }
        }
    }

    /// Waits for the `phx_reply` with ref `r`, handing every other frame to
    /// `other`; `Err` on timeout or end of connection.
    pub async fn reply(
        &mut self,
        r: u64,
        timeout: Duration,
        mut other: impl FnMut(&str),
    ) -> Result<Utf8Bytes, String> {
        let wait = async {
            loop {
                match self.recv().await {
                    Recv::Text(text) => {
                        let mine = crate::scan::frame(&text).is_some_and(|f| {
                            f.event == "phx_reply"
                                && f.msg_ref.and_then(|s| s.parse().ok()) == Some(r)
                        });
                        if mine {
                            return Ok(text);
                        }
                        other(&text);
                    }
                    end => return Err(end.end_class()),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| "timeout".to_string())?
    }

    /// Joins `topic` and waits for the reply: `Ok(reply frame)` if the
    /// status is ok, else `Err(reason)`; other frames go to `other`.
    pub async fn join_and_wait(
        &mut self,
        topic_json: &str,
        payload: &str,
        timeout: Duration,
        other: impl FnMut(&str),
    ) -> Result<(u64, Utf8Bytes), String> {
        let r = self
            .join(topic_json, payload)
            .await
            .map_err(|e| e.to_string())?;
        let reply = self.reply(r, timeout, other).await?;
        let payload_ok = crate::scan::frame(&reply).is_some_and(|f| crate::scan::is_ok(f.payload));
        if payload_ok {
            Ok((r, reply))
        } else {
            let reason = crate::scan::frame(&reply)
                .map(|f| crate::scan::reason(f.payload))
                .unwrap_or_else(|| "malformed reply".into());
            Err(reason)
        }
    }
}

/// Upgrades `tcp` to a WebSocket: sends the request for `path`, checks the
/// `101` answer and its accept key, and keeps bytes that came after it.
async fn handshake(
    mut tcp: TcpStream,
    authority: &str,
    path: &str,
    deflate: bool,
) -> Result<Conn, ConnectError> {
    let mut nonce = [0u8; 16];
    let mut mask = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|e| ConnectError::Handshake(e.to_string()))?;
    getrandom::fill(&mut mask).map_err(|e| ConnectError::Handshake(e.to_string()))?;
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    let mut head = Vec::with_capacity(1024);
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_RESPONSE_HEAD {
            return Err(ConnectError::Handshake("response head too long".into()));
        }
        head.reserve(1024);
        match tcp.read_buf(&mut head).await {
            Ok(0) => {
                return Err(ConnectError::Handshake(
                    "connection closed during the upgrade".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(ConnectError::Handshake(e.to_string())),
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text
        .split("\r\n")
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| ConnectError::Handshake("malformed status line".into()))?;
    if status != 101 {
        return Err(ConnectError::Http(status));
    }
    let header = |wanted: &str| {
        text.split("\r\n").skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_string())
        })
    };
    let accept = header("sec-websocket-accept");
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(ConnectError::Handshake("wrong Sec-WebSocket-Accept".into()));
    }
    let mut reader = Reader::new(MAX_MESSAGE);
    if deflate
        && header("sec-websocket-extensions")
            .is_some_and(|value| value.starts_with("permessage-deflate"))
    {
        reader.accept_compressed();
    }
    reader.buffer().extend_from_slice(&head[end..]);
    Ok(Conn {
        tcp,
        reader,
        eof: false,
        owed: Vec::new(),
        mask,
        next_ref: 1,
    })
}

/// A topic name as a JSON string literal.
pub fn topic_json(topic: &str) -> String {
    serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".into())
}

/// The token for socket `i` (round robin), if any.
pub fn token_for(tokens: &[String], i: usize) -> Option<&str> {
    if tokens.is_empty() {
        None
    } else {
        Some(tokens[i % tokens.len()].as_str())
    }
}

/// A message body of `len` bytes starting with the stamp
/// `t=<micros> p=<publisher> n=<counter>` (padded with `x`).
pub fn stamped_body(t: u64, p: usize, n: u64, len: usize) -> String {
    let mut body = format!("t={t} p={p} n={n} ");
    while body.len() < len {
        body.push('x');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_bodies() {
        assert_eq!(encode("a b&c"), "a%20b%26c");
        let body = stamped_body(12, 3, 4, 20);
        assert_eq!(body, "t=12 p=3 n=4 xxxxxxx");
        assert_eq!(stamped_body(12, 3, 4, 0), "t=12 p=3 n=4 ");
        assert_eq!(token_for(&[], 3), None);
        assert_eq!(token_for(&["a".into(), "b".into()], 3), Some("b"));
        assert_eq!(topic_json("room:x"), "\"room:x\"");
    }
}
