//! A small async Phoenix Channels V2 client over WebSocket, for the realtime
//! integration tests (phoenix-protocol.md §2–3).
//!
//! - [`PhxClient::connect`] opens `ws://ADDR/socket/websocket?token=..&vsn=2.0.0`;
//!   [`PhxClient::connect_raw`] / [`PhxClient::connect_with_headers`] take a
//!   whole URL (and extra request headers) and report a refused upgrade as
//!   [`ConnectError::Refused`] with its HTTP status.
//! - [`PhxClient::send`] writes one raw V2 array `[join_ref, ref, topic,
//!   event, payload]`, [`PhxClient::send_text`] any text frame.
//! - [`PhxClient::join`], [`PhxClient::push`] and [`PhxClient::leave`] send
//!   with a fresh ref (decimal strings from one counter) and wait for the
//!   `phx_reply` carrying that ref; every other frame read meanwhile is
//!   buffered, and [`PhxClient::next_frame`] hands buffered frames out first.
//! - [`PhxClient::push_pipelined`] keeps a window of pushes in flight and
//!   collects their replies (other frames are dropped, see there).
//! - [`PhxClient::closed`] / [`PhxClient::wait_end`] wait for the server to
//!   end the connection and tell how (close frame and code, or a bare EOF).
//!
//! Nothing here sleeps: every wait is on a frame, with a deadline that only
//! decides when a test fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long `join`, `push`, `leave` and each step of a pipeline wait for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs blocking code (the harness's HTTP client, process control) from an
/// async test on the multi-threaded runtime without stalling other tasks.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The socket URL phoenix.js builds for `params: {token}`.
pub fn socket_url(addr: SocketAddr, token: &str) -> String {
    format!("ws://{addr}/socket/websocket?token={token}&vsn=2.0.0")
}

/// One decoded server frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// A ref as a string: strings as they are, numbers as decimals, null as `None`.
fn ref_text(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(format!("a ref is neither string, number nor null: {other}")),
    }
}

impl Frame {
    /// Decodes a V2 text frame; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Frame, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text:?}"))?;
        let Some(parts) = value.as_array() else {
            return Err(format!("not a JSON array: {text:?}"));
        };
        if parts.len() != 5 {
            return Err(format!("{} elements instead of 5: {text:?}", parts.len()));
        }
        let string = |i: usize, what: &str| {
            parts[i]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{what} is not a string: {text:?}"))
        };
        if !parts[4].is_object() {
            return Err(format!("payload is not an object: {text:?}"));
        }
        Ok(Frame {
            join_ref: ref_text(&parts[0])?,
            msg_ref: ref_text(&parts[1])?,
            topic: string(2, "topic")?,
            event: string(3, "event")?,
            payload: parts[4].clone(),
        })
    }

    /// Whether this is the `phx_reply` to the message with ref `msg_ref`.
    pub fn is_reply_to(&self, msg_ref: &str) -> bool {
        self.event == "phx_reply" && self.msg_ref.as_deref() == Some(msg_ref)
    }

    /// `(status, response)` of a `phx_reply`.
    pub fn reply_parts(&self) -> (String, Value) {
        let status = self.payload["status"]
            .as_str()
            .unwrap_or_else(|| panic!("reply without a string status: {self:?}"))
            .to_string();
        (status, self.payload["response"].clone())
    }

    /// Whether this is a `new_msg` broadcast on `topic` (join_ref and ref null).
    pub fn is_new_msg_on(&self, topic: &str) -> bool {
        self.event == "new_msg"
            && self.topic == topic
            && self.join_ref.is_none()
            && self.msg_ref.is_none()
    }

    /// The `seq` of a message payload.
    pub fn seq(&self) -> Option<u64> {
        self.payload["seq"].as_u64()
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The server sent a close frame (with this code; 1005 when it had none).
    Close(u16, String),
    /// The stream ended or failed without a close frame.
    Eof(String),
}

/// Why a connection did not open.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade with this HTTP status (not 101).
    Refused { status: u16, body: String },
    /// Anything else (I/O, protocol).
    Failed(String),
}

impl ConnectError {
    /// The HTTP status of a refused upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Refused { status, .. } => Some(*status),
            ConnectError::Failed(_) => None,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused { status, body } => {
                write!(f, "upgrade refused with HTTP {status}: {body:?}")
            }
            ConnectError::Failed(e) => write!(f, "connection failed: {e}"),
        }
    }
}

/// A Phoenix V2 client on one WebSocket.
pub struct PhxClient {
    ws: Ws,
    next_ref: u64,
    /// topic → join_ref of the channel joined through [`PhxClient::join`].
    joined: HashMap<String, String>,
    /// Frames read while waiting for something else, oldest first.
    buffer: VecDeque<Frame>,
    /// Set once the connection has ended.
    end: Option<End>,
    /// Frames [`PhxClient::push_pipelined`] read and dropped.
    pub dropped: usize,
}

impl PhxClient {
    /// Connects with `token` in the query string and `vsn=2.0.0`.
    pub async fn connect(addr: SocketAddr, token: &str) -> Result<PhxClient, ConnectError> {
        PhxClient::connect_raw(&socket_url(addr, token)).await
    }

    /// Connects to `url` as given (for handshake tests).
    pub async fn connect_raw(url: &str) -> Result<PhxClient, ConnectError> {
        PhxClient::connect_with_headers(url, &[]).await
    }

    /// Connects to `url` with extra request headers (e.g. `Origin`).
    pub async fn connect_with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<PhxClient, ConnectError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectError::Failed(format!("bad URL {url}: {e}")))?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let connecting = tokio_tungstenite::connect_async(request);
        match timeout(REPLY_TIMEOUT, connecting).await {
            Err(_) => Err(ConnectError::Failed(format!(
                "no handshake answer within {REPLY_TIMEOUT:?}"
            ))),
            Ok(Ok((ws, _response))) => Ok(PhxClient {
                ws,
                next_ref: 0,
                joined: HashMap::new(),
                buffer: VecDeque::new(),
                end: None,
                dropped: 0,
            }),
            Ok(Err(WsError::Http(response))) => Err(ConnectError::Refused {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            }),
            Ok(Err(e)) => Err(ConnectError::Failed(e.to_string())),
        }
    }

    /// A fresh ref ("1", "2", ...).
    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// The join_ref of `topic` if it was joined with [`PhxClient::join`].
    pub fn join_ref(&self, topic: &str) -> Option<&str> {
        self.joined.get(topic).map(String::as_str)
    }

    /// Sends one raw V2 array frame.
    pub async fn send(
        &mut self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> Result<(), String> {
        let text = json!([join_ref, msg_ref, topic, event, payload]).to_string();
        self.send_text(text).await
    }

    /// Sends a text frame as given.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), String> {
        self.send_message(Message::text(text.into())).await
    }

    /// Sends any WebSocket message.
    pub async fn send_message(&mut self, message: Message) -> Result<(), String> {
        match timeout(REPLY_TIMEOUT, self.ws.send(message)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "the send did not complete within {REPLY_TIMEOUT:?}"
            )),
        }
    }

    /// Reads the next frame from the socket (not the buffer). `None` once
    /// the connection has ended; see [`PhxClient::end`].
    async fn read_one(&mut self) -> Option<Frame> {
        if self.end.is_some() {
            return None;
        }
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Some(Frame::parse(text.as_str()).unwrap_or_else(|e| {
                        panic!("the server sent a bad frame: {e}");
                    }));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.end = Some(match frame {
                        Some(frame) => End::Close(u16::from(frame.code), frame.reason.to_string()),
                        None => End::Close(1005, String::new()),
                    });
                    return None;
                }
                Some(Ok(Message::Binary(data))) => {
                    panic!("unexpected binary frame from the server: {data:?}")
                }
                Some(Ok(_)) => {} // ping, pong, raw frame
                Some(Err(e)) => {
                    self.end = Some(End::Eof(e.to_string()));
                    return None;
                }
                None => {
                    self.end = Some(End::Eof("the stream ended".into()));
                    return None;
                }
            }
        }
    }

    /// The next frame (buffered ones first) within `within`; `None` on
    /// timeout or once the connection has ended (see [`PhxClient::end`]).
    pub async fn next_frame(&mut self, within: Duration) -> Option<Frame> {
        if let Some(frame) = self.buffer.pop_front() {
            return Some(frame);
        }
        timeout(within, self.read_one()).await.ok().flatten()
    }

    /// The next frame before `deadline`, panicking with `what` if none comes
    /// or the connection ends.
    pub async fn expect_frame(&mut self, deadline: Instant, what: &str) -> Frame {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.next_frame(left).await {
            Some(frame) => frame,
            None => panic!("{what}: no frame in time (connection end: {:?})", self.end),
        }
    }

    /// The client's end of the TCP connection (to match server-side traces).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.ws.get_ref() {
            MaybeTlsStream::Plain(stream) => stream.local_addr().ok(),
            _ => None,
        }
    }

    /// How the connection ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Takes every buffered frame.
    pub fn take_buffered(&mut self) -> Vec<Frame> {
        self.buffer.drain(..).collect()
    }

    /// Waits for the `phx_reply` with `msg_ref` (looking at buffered frames
    /// first), buffering everything else. Panics on timeout or if the
    /// connection ends first.
    pub async fn wait_reply(&mut self, msg_ref: &str, within: Duration) -> (String, Value) {
        match self.try_wait_reply(msg_ref, within).await {
            Some(reply) => reply,
            None => match &self.end {
                Some(end) => {
                    panic!("the connection ended ({end:?}) before the reply to ref {msg_ref}")
                }
                None => panic!("no reply to ref {msg_ref} within {within:?}"),
            },
        }
    }

    /// [`PhxClient::wait_reply`] that returns `None` on timeout or once the
    /// connection has ended, for tests that report rather than panic.
    pub async fn try_wait_reply(
        &mut self,
        msg_ref: &str,
        within: Duration,
    ) -> Option<(String, Value)> {
        if let Some(i) = self.buffer.iter().position(|f| f.is_reply_to(msg_ref)) {
            let frame = self.buffer.remove(i).expect("index in range");
            return Some(frame.reply_parts());
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.read_one()).await {
                Err(_) | Ok(None) => return None,
                Ok(Some(frame)) if frame.is_reply_to(msg_ref) => return Some(frame.reply_parts()),
                Ok(Some(frame)) => self.buffer.push_back(frame),
            }
        }
    }

    /// Sends `event` on `topic` with a fresh ref (a `phx_join` carries it as
    /// its join_ref, anything else the topic's join_ref) and waits for the
    /// reply within `within`; `None` if none came or the connection ended
    /// (see [`PhxClient::end`]). An ok join is remembered as by
    /// [`PhxClient::join`].
    pub async fn try_push(
        &mut self,
        topic: &str,
        event: &str,
        payload: Value,
        within: Duration,
    ) -> Option<(String, Value)> {
        let msg_ref = self.make_ref();
        let join_ref = if event == "phx_join" {
            Some(msg_ref.clone())
        } else {
            self.joined.get(topic).cloned()
        };
        self.send(join_ref.as_deref(), Some(&msg_ref), topic, event, payload)
            .await
            .ok()?;
        let reply = self.try_wait_reply(&msg_ref, within).await?;
        if event == "phx_join" && reply.0 == "ok" {
            self.joined.insert(topic.to_string(), msg_ref);
        }
        Some(reply)
    }

    /// Connects to `addr` with `token` and joins `topic` with an empty
    /// payload, panicking if either fails.
    pub async fn joined(addr: SocketAddr, token: &str, topic: &str) -> PhxClient {
        let mut client = PhxClient::connect(addr, token)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        client.join_ok(topic, json!({})).await;
        client
    }

    /// The payloads of the buffered `new_msg` broadcasts on `topic`, in
    /// arrival order; the whole buffer is taken.
    pub fn take_new_msgs(&mut self, topic: &str) -> Vec<Value> {
        self.take_buffered()
            .into_iter()
            .filter(|f| f.is_new_msg_on(topic))
            .map(|f| f.payload)
            .collect()
    }

    /// Joins `topic`; returns the reply's `(status, response)` and, on ok,
    /// remembers the join_ref for later pushes.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Value) {
        let join_ref = self.make_ref();
        self.send(Some(&join_ref), Some(&join_ref), topic, "phx_join", payload)
            .await
            .unwrap_or_else(|e| panic!("sending the join of {topic}: {e}"));
        let (status, response) = self.wait_reply(&join_ref, REPLY_TIMEOUT).await;
        if status == "ok" {
            self.joined.insert(topic.to_string(), join_ref);
        }
        (status, response)
    }

    /// [`PhxClient::join`], asserting an ok reply; returns its response.
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> Value {
        let (status, response) = self.join(topic, payload).await;
        assert_eq!(status, "ok", "join {topic} failed: {response}");
        response
    }

    /// Pushes `event` on `topic` (with the topic's join_ref, or null if not
    /// joined) and waits for the reply.
    pub async fn push(&mut self, topic: &str, event: &str, payload: Value) -> (String, Value) {
        let join_ref = self.joined.get(topic).cloned();
        let msg_ref = self.make_ref();
        self.send(join_ref.as_deref(), Some(&msg_ref), topic, event, payload)
            .await
            .unwrap_or_else(|e| panic!("sending {event} on {topic}: {e}"));
        self.wait_reply(&msg_ref, REPLY_TIMEOUT).await
    }

    /// Leaves `topic` and waits for the leave reply (the `phx_close` that
    /// follows it stays in the buffer).
    pub async fn leave(&mut self, topic: &str) -> (String, Value) {
        let join_ref = self.joined.remove(topic);
        let msg_ref = self.make_ref();
        self.send(
            join_ref.as_deref(),
            Some(&msg_ref),
            topic,
            "phx_leave",
            json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("sending the leave of {topic}: {e}"));
        self.wait_reply(&msg_ref, REPLY_TIMEOUT).await
    }

    /// Pushes `event` with each payload on the joined `topic`, keeping up to
    /// `window` pushes in flight, and returns the `(status, response)` of
    /// each push by index. `on_reply(index, status, response)` runs as each
    /// reply arrives. Every other frame read meanwhile is DROPPED (counted in
    /// [`PhxClient::dropped`]), so a publisher can push thousands of
    /// messages without keeping its own broadcasts. Stops early, with `None`
    /// for the unanswered pushes, if the connection ends; panics if no frame
    /// arrives within [`REPLY_TIMEOUT`] while replies are outstanding.
    pub async fn push_pipelined(
        &mut self,
        topic: &str,
        event: &str,
        payloads: Vec<Value>,
        window: usize,
        mut on_reply: impl FnMut(usize, &str, &Value),
    ) -> Vec<Option<(String, Value)>> {
        let join_ref = self
            .joined
            .get(topic)
            .cloned()
            .unwrap_or_else(|| panic!("push_pipelined: {topic} is not joined"));
        let total = payloads.len();
        let mut results: Vec<Option<(String, Value)>> = vec![None; total];
        let mut pending: HashMap<String, usize> = HashMap::new();
        let mut payloads = payloads.into_iter().enumerate();
        let mut exhausted = false;
        loop {
            while !exhausted && pending.len() < window.max(1) && self.end.is_none() {
                let Some((index, payload)) = payloads.next() else {
                    exhausted = true;
                    break;
                };
                let msg_ref = self.make_ref();
                if self
                    .send(Some(&join_ref), Some(&msg_ref), topic, event, payload)
                    .await
                    .is_err()
                {
                    exhausted = true;
                    break;
                }
                pending.insert(msg_ref, index);
            }
            if pending.is_empty() {
                break;
            }
            let frame = match timeout(REPLY_TIMEOUT, self.read_one()).await {
                Err(_) => panic!(
                    "push_pipelined on {topic}: no frame within {REPLY_TIMEOUT:?} \
                     with {} replies outstanding",
                    pending.len()
                ),
                Ok(None) => break,
                Ok(Some(frame)) => frame,
            };
            let index = match frame.msg_ref.as_deref() {
                Some(r) if frame.event == "phx_reply" => pending.remove(r),
                _ => None,
            };
            match index {
                Some(index) => {
                    let (status, response) = frame.reply_parts();
                    on_reply(index, &status, &response);
                    results[index] = Some((status, response));
                }
                None => self.dropped += 1,
            }
        }
        results
    }

    /// Reads (and buffers) frames until the server ends the connection or
    /// `within` passes (then panics). Returns how it ended.
    pub async fn wait_end(&mut self, within: Duration) -> End {
        let deadline = Instant::now() + within;
        while self.end.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.read_one()).await {
                Err(_) => panic!("the server did not end the connection within {within:?}"),
                Ok(Some(frame)) => self.buffer.push_back(frame),
                Ok(None) => {}
            }
        }
        self.end.clone().expect("ended")
    }

    /// Waits for the server to end the connection (panicking after
    /// `within`): the close frame's code, or `None` if the connection ended
    /// without one.
    pub async fn closed(&mut self, within: Duration) -> Option<u16> {
        match self.wait_end(within).await {
            End::Close(code, _) => Some(code),
            End::Eof(_) => None,
        }
    }

    /// Closes the connection from this side (best effort).
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(5), self.ws.close(None)).await;
    }
}
