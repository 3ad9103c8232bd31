//! One socket's task: reads client frames, routes them (see [`super::router`]),
//! writes replies and queued broadcasts in batches (feed, then one flush),
//! and closes the socket for idleness, slowness, bad input, revoked
//! credentials or shutdown — never with code 1000, so clients come back.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::frame::{Ref, Vsn};
use super::limits::TokenBucket;
use super::reply_order::ReplyOrder;
use super::ws_codec::WireError;
use super::ws_deflate::Agreed;
use super::ws_stream::{ReadError, WsStream};
use crate::auth::Identity;
use crate::chat::topic::Access;
use crate::hub::broadcast::Broadcast;
use crate::hub::{CloseReason, ConnTx, LateReply, Out, Outbox, Registration};
use crate::metrics::Metrics;
use crate::state::State;

/// Most queued frames written per flush.
const WRITE_BATCH: usize = 64;
/// How long one batch may take to reach the kernel before the peer counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake may take once the session has ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One joined channel instance on this socket.
pub struct Channel {
    pub join_ref: Ref,
    pub access: Access,
    /// Broadcast `new_msg` with a seq at or below this were in the join reply.
    pub floor: u64,
    /// When this channel last broadcast `typing`.
    pub last_typing: Option<std::time::Instant>,
}

/// Why the session ends, and the close frame it sends.
#[derive(Debug)]
pub struct Closing {
    pub code: u16,
    pub reason: &'static str,
}

impl Closing {
    pub const SHUTDOWN: Closing = Closing {
        code: 1001,
        reason: "server shutting down",
    };
    pub const IDLE: Closing = Closing {
        code: 1001,
        reason: "no frames within the heartbeat timeout",
    };
    pub const REVOKED: Closing = Closing {
        code: 1008,
        reason: "credentials revoked",
    };
    pub const SLOW: Closing = Closing {
        code: 1013,
        reason: "slow consumer",
    };
    pub const MALFORMED: Closing = Closing {
        code: 1007,
        reason: "malformed frame",
    };
    pub const PROTOCOL: Closing = Closing {
        code: 1002,
        reason: "websocket protocol error",
    };
    pub const TOO_BIG: Closing = Closing {
        code: 1009,
        reason: "frame too large",
    };
}

impl From<CloseReason> for Closing {
    fn from(reason: CloseReason) -> Closing {
        match reason {
            CloseReason::Shutdown => Closing::SHUTDOWN,
            CloseReason::SlowConsumer => Closing::SLOW,
        }
    }
}

/// State of one socket.
pub struct Session {
    pub state: State,
    pub conn: ConnTx,
    pub vsn: Vsn,
    pub identity: Identity,
    pub channels: HashMap<String, Channel>,
    pub bucket: TokenBucket,
    /// Users whose messages and typing this socket does not receive.
    pub ignores: Arc<HashSet<u64>>,
    /// Whether binary frames may be sent (V2 over WebSocket; never LongPoll).
    pub binary_frames: bool,
    /// permessage-deflate, if negotiated: broadcasts are then sent as their
    /// shared compressed bytes.
    pub deflate: Option<Agreed>,
    /// Frames of a channel waiting behind a reply still to come.
    pub order: ReplyOrder,
    /// The connection's place in the hub, given up when the session is
    /// dropped, after its channels (see the `Drop` impl).
    _registration: Registration,
}

/// However a session ends (its loop returning, a panic, the task being
/// cancelled), its channels are left, so its presences leave with a
/// `presence_diff` and no topic keeps a dead subscriber; then the dropped
/// [`Registration`] forgets the connection.
impl Drop for Session {
    fn drop(&mut self) {
        self.leave_all();
    }
}

impl Session {
    /// A session for an authenticated socket registered with the hub.
    pub fn new(
        state: State,
        registration: Registration,
        conn: ConnTx,
        vsn: Vsn,
        mut identity: Identity,
    ) -> Session {
        // A session never needs the password hash: keep it out of every
        // socket's memory (about 100 bytes each).
        identity.user.password_hash = String::new();
        let bucket = TokenBucket::new(state.cfg.push_burst, state.cfg.push_refill_per_sec);
        Session {
            state,
            conn,
            vsn,
            identity,
            channels: HashMap::new(),
            bucket,
            ignores: Arc::default(),
            binary_frames: vsn == Vsn::V2,
            deflate: None,
            order: ReplyOrder::default(),
            _registration: registration,
        }
    }

    /// Runs until the socket ends; then leaves every channel.
    ///
    /// The future of this loop lives as long as the socket, so what it
    /// awaits only now and then (loading the ignore list, routing a frame,
    /// writing, re-checking credentials, closing) is boxed for the moment
    /// it runs instead of widening it.
    pub async fn run(mut self, mut ws: WsStream, mut outbound: Outbox) {
        match Box::pin(self.state.store.ignores(self.identity.user.id)).await {
            Ok(ignores) => self.ignores = Arc::new(ignores),
            Err(e) => tracing::warn!(error = %e, "could not load ignores"),
        }
        let idle_timeout = Duration::from_secs(self.state.cfg.heartbeat_timeout_secs);
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let conn = self.conn.clone();
        // Both grow for a burst and are given back after it (see `write_all`).
        let mut batch: Vec<Out> = Vec::new();
        let mut immediate: Vec<Message> = Vec::new();
        let closing = loop {
            // A close order (slowness, shutdown) goes before the idle timer.
            if let Some(reason) = conn.closing() {
                break Some(Closing::from(reason));
            }
            tokio::select! {
                biased;
                () = &mut idle => break Some(Closing::IDLE),
                // Queued frames, or the hub's order to close (slowness, shutdown).
                received = outbound.recv_many(&mut batch, WRITE_BATCH) => {
                    if let Err(reason) = received {
                        break Some(Closing::from(reason));
                    }
                    let recheck = self.render(&mut batch, &mut immediate);
                    batch = Vec::new();
                    if let Err(closing) = Box::pin(self.write(&mut ws, &mut immediate)).await {
                        break closing;
                    }
                    if recheck && !Box::pin(self.credentials_valid()).await {
                        break Some(Closing::REVOKED);
                    }
                }
                frame = ws.next() => {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    Metrics::inc(&self.state.metrics.frames_in);
                    match frame {
                        None => break None,
                        Some(Ok(Message::Close(frame))) => {
                            // Echo the peer's close (RFC 6455 §5.5.1), then end.
                            let echo = [Message::Close(frame.map(|f| CloseFrame { code: f.code, reason: "".into() }))];
                            let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
                            Box::pin(async {
                                if let Ok(Ok(())) = tokio::time::timeout_at(deadline, ws.send_all(&echo)).await {
                                    ws.finish(deadline).await;
                                }
                            })
                            .await;
                            break None;
                        }
                        Some(Err(ReadError::Wire(WireError::TooBig))) => break Some(Closing::TOO_BIG),
                        Some(Err(ReadError::Wire(WireError::BadUtf8))) => break Some(Closing::MALFORMED),
                        Some(Err(ReadError::Wire(WireError::Protocol(_)))) => break Some(Closing::PROTOCOL),
                        Some(Err(ReadError::Io(_))) => break None,
                        Some(Ok(Message::Text(text))) => {
                            if let Err(closing) = Box::pin(self.on_text(text.as_str(), &mut immediate)).await {
                                break Some(closing);
                            }
                        }
                        Some(Ok(Message::Binary(data))) => {
                            if let Err(closing) = Box::pin(self.on_binary(data, &mut immediate)).await {
                                break Some(closing);
                            }
                        }
                        Some(Ok(Message::Ping(data))) => immediate.push(Message::Pong(data)),
                        Some(Ok(_)) => {}
                    }
                    if let Err(closing) = Box::pin(self.write(&mut ws, &mut immediate)).await {
                        break closing;
                    }
                }
            }
        };
        if let Some(closing) = closing {
            if closing.code == Closing::SLOW.code {
                Metrics::inc(&self.state.metrics.slow_consumer_closes);
            }
            tracing::debug!(
                conn = conn.id(),
                code = closing.code,
                reason = closing.reason,
                "closing socket"
            );
            let frame = CloseFrame {
                code: CloseCode::from(closing.code),
                reason: closing.reason.into(),
            };
            // Both the close frame and the wait for the peer's answer are
            // bounded; `finish` then ends our side with a FIN.
            let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
            Box::pin(async {
                let close = [Message::Close(Some(frame))];
                if let Ok(Ok(())) = tokio::time::timeout_at(deadline, ws.send_all(&close)).await {
                    ws.finish(deadline).await;
                }
            })
            .await;
        }
    }

    /// Writes frames, counting them.
    async fn write(
        &self,
        ws: &mut WsStream,
        frames: &mut Vec<Message>,
    ) -> Result<(), Option<Closing>> {
        self.state
            .metrics
            .frames_out
            .fetch_add(frames.len() as u64, std::sync::atomic::Ordering::Relaxed);
        write_all(ws, frames, &self.conn).await
    }

    /// Turns queued items into frames for this socket, dropping what this
    /// socket must not see. Returns whether credentials must be re-checked.
    pub(super) fn render(&mut self, batch: &mut Vec<Out>, frames: &mut Vec<Message>) -> bool {
        let mut recheck = false;
        for out in batch.drain(..) {
            match out {
                Out::Reply(reply) => {
                    let LateReply { topic, frame } = *reply;
                    self.order
                        .arrive(&topic, Message::Text(frame.into()), frames);
                }
                Out::Broadcast(broadcast) => {
                    let Some(channel) = self.channels.get(broadcast.topic()) else {
                        continue;
                    };
                    if broadcast.seq.is_some_and(|seq| seq <= channel.floor) {
                        continue;
                    }
                    if broadcast.author.is_some_and(|a| self.ignores.contains(&a)) {
                        continue;
                    }
                    let plain = match broadcast.binary_frame() {
                        Some(bytes) if self.binary_frames => Message::Binary(bytes),
                        Some(_) => continue,
                        None => Message::Text(broadcast.frame(self.vsn)),
                    };
                    let frame = self.compressed_ahead(&broadcast, plain);
                    // A broadcast never overtakes a reply or `phx_close`
                    // still waiting on its topic.
                    if self.order.holds_frames(broadcast.topic()) {
                        self.order.send(broadcast.topic(), [frame], frames);
                    } else {
                        frames.push(frame);
                    }
                }
                Out::Eject(topic) => {
                    if let Some(channel) = self.channels.remove(topic.as_ref()) {
                        self.state.hub.unsubscribe(&topic, self.conn.id());
                        let close = self.frame(
                            &channel.join_ref,
                            &channel.join_ref,
                            &topic,
                            "phx_close",
                            &serde_json::json!({}),
                        );
                        self.order.send(&topic, [close], frames);
                    }
                }
                Out::Recheck => recheck = true,
                Out::Ignores(ignores) => self.ignores = ignores,
            }
        }
        recheck
    }

    /// A broadcast as its shared compressed bytes, when this socket
    /// negotiated permessage-deflate; else `plain`.
    fn compressed_ahead(&self, broadcast: &Broadcast, plain: Message) -> Message {
        let Some(agreed) = self.deflate else {
            return plain;
        };
        let opcode = match &plain {
            Message::Text(_) => OpCode::Data(Data::Text),
            Message::Binary(_) => OpCode::Data(Data::Binary),
            _ => return plain,
        };
        if !agreed.compresses(plain.len()) {
            return plain;
        }
        match broadcast.deflated(self.vsn) {
            Some(bytes) => {
                let mut frame = Frame::message(bytes, opcode, true);
                frame.header_mut().rsv1 = true;
                Message::Frame(frame)
            }
            None => plain,
        }
    }

    /// Whether the token this socket opened with is still accepted.
    pub(super) async fn credentials_valid(&self) -> bool {
        let claims = &self.identity.claims;
        let user = match self.state.store.user(self.identity.user.id).await {
            Ok(Some(user)) => user,
            Ok(None) => return false,
            Err(_) => return true,
        };
        if user.disabled || user.token_version != claims.ver {
            return false;
        }
        !matches!(
            self.state.store.is_token_revoked(&claims.jti).await,
            Ok(true)
        )
    }

    /// Encodes a text frame for this socket's serializer.
    pub fn frame(
        &self,
        join_ref: &Ref,
        msg_ref: &Ref,
        topic: &str,
        event: &str,
        payload: &impl serde::Serialize,
    ) -> Message {
        Message::Text(
            super::frame::encode_text(self.vsn, join_ref, msg_ref, topic, event, payload).into(),
        )
    }

    /// Encodes a reply frame for this socket's serializer.
    pub fn reply(
        &self,
        join_ref: &Ref,
        msg_ref: &Ref,
        topic: &str,
        status: &str,
        response: &impl serde::Serialize,
    ) -> Message {
        Message::Text(
            super::frame::encode_reply(self.vsn, join_ref, msg_ref, topic, status, response).into(),
        )
    }

    /// A channel push whose payload is already-serialized JSON.
    pub fn raw_push(
        &self,
        join_ref: &Ref,
        topic: &str,
        event: &str,
        payload_json: &str,
    ) -> Message {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let text = match self.vsn {
            Vsn::V2 => format!(
                "[{},null,{},{},{}]",
                serde_json::to_string(join_ref).unwrap_or_else(|_| "null".into()),
                quote(topic),
                quote(event),
                payload_json
            ),
            Vsn::V1 => format!(
                "{{\"topic\":{},\"event\":{},\"payload\":{},\"ref\":null}}",
                quote(topic),
                quote(event),
                payload_json
            ),
        };
        Message::Text(text.into())
    }

    /// Leaves every channel (socket closing).
    pub(super) fn leave_all(&mut self) {
        for (topic, _) in self.channels.drain() {
            self.state.hub.unsubscribe(&topic, self.conn.id());
        }
    }
}

/// Writes `frames` (feed each, one flush). A peer that does not take them
/// within [`WRITE_TIMEOUT`], or a connection told to close meanwhile (slow,
/// shutdown), ends the session. Most writes fit the socket buffer and finish
/// at once; only a write that has to wait arms the timer and the close watch.
async fn write_all(
    ws: &mut WsStream,
    frames: &mut Vec<Message>,
    conn: &ConnTx,
) -> Result<(), Option<Closing>> {
    if frames.is_empty() {
        return Ok(());
    }
    let result = {
        let mut write = std::pin::pin!(ws.send_all(frames));
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(written) => written.map_err(|_| None),
            Poll::Pending => tokio::select! {
                result = tokio::time::timeout(WRITE_TIMEOUT, write) => match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(None),
                    Err(_) => Err(Some(Closing::SLOW)),
                },
                reason = conn.closed() => Err(Some(Closing::from(reason))),
            },
        }
    };
    // An idle socket keeps no frame list.
    *frames = Vec::new();
    result
}
