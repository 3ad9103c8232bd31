//! One Phoenix Channels V2 client connection: TCP from a spread loopback
//! source address, the WebSocket handshake with small buffers (4 KiB read
//! chunk, 4 KiB write threshold), and the frames a client sends (join,
//! push, heartbeat, each with a fresh decimal ref) and receives (text
//! frames; pings are answered by tungstenite).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::cli::Common;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    /// `ws://host:port/path?vsn=2.0.0&params` without the token.
    base_url: String,
    source_ips: u32,
    pub op_timeout: Duration,
}

impl Target {
    /// Resolves `--url` and prepares the query (`vsn=2.0.0` unless given, `--param`s).
    pub async fn new(common: &Common) -> Result<Target, String> {
        let rest = common
            .url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{}: only ws:// URLs are supported", common.url))?;
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
            .map_err(|e| format!("{}: {e}", common.url))?
            .next()
            .ok_or_else(|| format!("{}: no address", common.url))?;
        let mut url = common.url.clone();
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
            base_url: url,
            source_ips: if loopback_v4 { common.source_ips } else { 0 },
            op_timeout: common.op_timeout,
        })
    }

    fn url(&self, token: Option<&str>) -> String {
        match token {
            Some(token) => {
                let sep = if self.base_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}token={}", self.base_url, encode(token))
            }
            None => self.base_url.clone(),
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
    ws: WebSocketStream<TcpStream>,
    next_ref: u64,
}

/// Small per-connection buffers: most test sockets are idle most of the time.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
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
        let request = target
            .url(token)
            .into_client_request()
            .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| match e {
                    WsError::Http(response) => ConnectError::Http(response.status().as_u16()),
                    other => ConnectError::Handshake(other.to_string()),
                })?;
        Ok(Conn { ws, next_ref: 1 })
    };
    tokio::time::timeout(target.op_timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

impl Conn {
    /// A fresh ref (decimal, increasing).
    pub fn take_ref(&mut self) -> u64 {
        let r = self.next_ref;
        self.next_ref += 1;
        r
    }

    /// Sends one text frame.
    pub async fn send(&mut self, text: String) -> Result<(), WsError> {
        self.ws.send(Message::text(text)).await
    }

    /// Sends `phx_join` for `topic` (JSON-encoded, with quotes) with a JSON
    /// object payload; returns its ref, which is also the join_ref.
    pub async fn join(&mut self, topic_json: &str, payload: &str) -> Result<u64, WsError> {
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
    ) -> Result<u64, WsError> {
        let r = self.take_ref();
        let text = match join_ref {
            Some(j) => format!("[\"{j}\",\"{r}\",{topic_json},\"{event}\",{payload}]"),
            None => format!("[null,\"{r}\",{topic_json},\"{event}\",{payload}]"),
        };
        self.send(text).await?;
        Ok(r)
    }

    /// Sends a heartbeat; returns its ref.
    pub async fn heartbeat(&mut self) -> Result<u64, WsError> {
        let r = self.take_ref();
        self.send(format!("[null,\"{r}\",\"phoenix\",\"heartbeat\",{{}}]"))
            .await?;
        Ok(r)
    }

    /// The next text frame, or how the connection ended. Cancel-safe.
    pub async fn recv(&mut self) -> Recv {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    FRAMES_RECEIVED.fetch_add(1, Relaxed);
                    return Recv::Text(text);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Recv::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Recv::Error(e.to_string()),
                None => return Recv::Closed(None),
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
