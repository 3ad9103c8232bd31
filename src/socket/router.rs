//! Routing of one client frame, exactly as Phoenix does it
//! (phoenix-protocol.md §3.3): heartbeats first, then joins (including the
//! duplicate-join close), leaves, and channel events — with stale join refs
//! dropped and unjoined topics answered "unmatched topic".

use bytes::Bytes;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::frame::{self, Inbound, Payload, Ref, Vsn};
use super::session::{Channel, Closing, Session};
use crate::chat::messages;
use crate::chat::topic::{self, Refusal};
use crate::clock;
use crate::hub::presence::Meta;

const EMPTY: Value = Value::Null;

fn empty_object() -> Value {
    json!({})
}

/// Whether a message's join_ref addresses the channel instance `current`
/// (null is accepted, as Phoenix ≥ 1.8.12 does).
fn addresses(join_ref: &Ref, current: &Ref) -> bool {
    join_ref.is_null() || join_ref == current
}

impl Session {
    /// Handles one text frame; `Err` closes the socket.
    pub async fn on_text(&mut self, text: &str, out: &mut Vec<Message>) -> Result<(), Closing> {
        let inbound = frame::decode_text(self.vsn, text).map_err(|e| {
            tracing::debug!(conn = self.conn.id(), error = %e, "malformed frame");
            Closing::MALFORMED
        })?;
        self.route(inbound, out).await;
        Ok(())
    }

    /// Handles one binary frame; `Err` closes the socket. Under V1 it holds
    /// JSON, as in a text frame: Phoenix's V1 serializer decodes JSON
    /// whatever the frame's opcode, and some clients send it so.
    pub async fn on_binary(&mut self, data: Bytes, out: &mut Vec<Message>) -> Result<(), Closing> {
        if self.vsn == Vsn::V1 {
            let text = std::str::from_utf8(&data).map_err(|_| Closing::MALFORMED)?;
            return self.on_text(text, out).await;
        }
        let inbound = frame::decode_binary_bytes(self.vsn, data).map_err(|_| Closing::MALFORMED)?;
        self.route(inbound, out).await;
        Ok(())
    }

    async fn route(&mut self, msg: Inbound, out: &mut Vec<Message>) {
        if msg.topic == "phoenix" && msg.event == "heartbeat" {
            out.push(self.reply(&EMPTY, &msg.msg_ref, "phoenix", "ok", &empty_object()));
            return;
        }
        if self.order.holds(&msg.topic) {
            // A reply on this topic is still to come: what this push
            // answers waits behind it.
            let topic = msg.topic.clone();
            let mut answered = Vec::new();
            self.dispatch(msg, &mut answered).await;
            self.order.send(&topic, answered, out);
        } else {
            self.dispatch(msg, out).await;
        }
    }

    async fn dispatch(&mut self, msg: Inbound, out: &mut Vec<Message>) {
        match msg.event.as_str() {
            "phx_join" => self.join(msg, out).await,
            "phx_leave" => self.leave(msg, out),
            _ => {
                let Some(channel) = self.channels.get(&msg.topic) else {
                    out.push(self.reply(
                        &EMPTY,
                        &msg.msg_ref,
                        &msg.topic,
                        "error",
                        &json!({"reason": "unmatched topic"}),
                    ));
                    return;
                };
                if !addresses(&msg.join_ref, &channel.join_ref) {
                    return;
                }
                self.channel_event(msg, out).await;
            }
        }
    }

    async fn join(&mut self, msg: Inbound, out: &mut Vec<Message>) {
        // A V1 join without join_ref uses its ref as the channel's join ref.
        let join_ref = if msg.join_ref.is_null() {
            msg.msg_ref.clone()
        } else {
            msg.join_ref.clone()
        };
        let replaced = self.channels.remove(&msg.topic);
        if let Some(old) = &replaced {
            // Keep the subscription across the rejoin so no presence diff is
            // lost in between; only the old instance's presence goes.
            self.state.hub.untrack(&msg.topic, self.conn.id());
            tracing::debug!(topic = %msg.topic, old = %old.join_ref, "duplicate join closes the old channel");
        }
        self.join_new(&msg, join_ref, out).await;
        if replaced.is_some() && !self.channels.contains_key(&msg.topic) {
            self.state.hub.unsubscribe(&msg.topic, self.conn.id());
        }
        if let Some(old) = replaced {
            out.push(self.frame(
                &old.join_ref,
                &old.join_ref,
                &msg.topic,
                "phx_close",
                &empty_object(),
            ));
        }
    }

    async fn join_new(&mut self, msg: &Inbound, join_ref: Ref, out: &mut Vec<Message>) {
        let error = |session: &Session, reason: &str| {
            session.reply(
                &msg.join_ref,
                &msg.msg_ref,
                &msg.topic,
                "error",
                &json!({"reason": reason}),
            )
        };
        if self.channels.len() >= self.state.cfg.max_topics_per_socket {
            out.push(error(self, "too many channels joined"));
            return;
        }
        let params = match &msg.payload {
            Payload::Json(Value::Object(map)) => JoinParams::parse(map),
            Payload::Json(Value::Null) => Ok(JoinParams::default()),
            _ => Err("the join payload must be an object"),
        };
        let params = match params {
            Ok(params) => params,
            Err(_) => {
                out.push(error(self, "invalid_payload"));
                return;
            }
        };
        let access = match topic::authorize(&self.state, &self.identity.user, &msg.topic).await {
            Ok(Ok(access)) => access,
            Ok(Err(refusal)) => {
                let join_ref = if refusal == Refusal::Unmatched {
                    &EMPTY
                } else {
                    &msg.join_ref
                };
                out.push(self.reply(
                    join_ref,
                    &msg.msg_ref,
                    &msg.topic,
                    "error",
                    &json!({"reason": refusal.reason()}),
                ));
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, topic = %msg.topic, "join failed");
                out.push(error(self, "join crashed"));
                return;
            }
        };
        self.state.hub.subscribe(&access.name, &self.conn);
        if !access.has_history() {
            out.push(self.reply(
                &msg.join_ref,
                &msg.msg_ref,
                &msg.topic,
                "ok",
                &empty_object(),
            ));
            self.channels.insert(
                msg.topic.clone(),
                Channel {
                    join_ref,
                    access,
                    floor: 0,
                    last_typing: None,
                },
            );
            return;
        }
        // Subscribed first, then read: anything committed after the read
        // arrives as a broadcast, anything before is in the reply, and the
        // floor drops the overlap.
        let snapshot =
            match messages::snapshot(&self.state, &access, params.last_seq, params.epoch).await {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    self.state.hub.unsubscribe(&access.name, self.conn.id());
                    tracing::error!(error = %e, topic = %msg.topic, "join failed");
                    out.push(error(self, "join crashed"));
                    return;
                }
            };
        self.state
            .hub
            .joined(&access.name, access.topic_id, snapshot.last_seq);
        out.push(self.reply(&msg.join_ref, &msg.msg_ref, &msg.topic, "ok", &snapshot));
        let user = &self.identity.user;
        let meta = Meta {
            phx_ref: String::new(),
            online_at: clock::now_ms(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            bot: user.bot,
            conn_id: self.conn.id(),
            joined: 0,
        };
        let state = self.state.hub.track(
            &access.name,
            user.id.to_string(),
            meta,
            self.state.cfg.presence_state_limit,
        );
        out.push(self.raw_push(&join_ref, &msg.topic, "presence_state", &state));
        self.channels.insert(
            msg.topic.clone(),
            Channel {
                join_ref,
                access,
                floor: snapshot.last_seq,
                last_typing: None,
            },
        );
    }

    fn leave(&mut self, msg: Inbound, out: &mut Vec<Message>) {
        match self.channels.get(&msg.topic) {
            Some(channel) if addresses(&msg.join_ref, &channel.join_ref) => {
                let join_ref = channel.join_ref.clone();
                self.channels.remove(&msg.topic);
                self.state.hub.unsubscribe(&msg.topic, self.conn.id());
                out.push(self.reply(&join_ref, &msg.msg_ref, &msg.topic, "ok", &empty_object()));
                out.push(self.frame(
                    &join_ref,
                    &join_ref,
                    &msg.topic,
                    "phx_close",
                    &empty_object(),
                ));
            }
            Some(_) => {}
            None => out.push(self.reply(
                &msg.join_ref,
                &msg.msg_ref,
                &msg.topic,
                "ok",
                &empty_object(),
            )),
        }
    }
}

/// The recovery parameters of a join payload.
#[derive(Default)]
struct JoinParams {
    last_seq: Option<u64>,
    epoch: Option<String>,
}

impl JoinParams {
    fn parse(map: &serde_json::Map<String, Value>) -> Result<JoinParams, &'static str> {
        let last_seq = match map.get("last_seq") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or("last_seq must be a non-negative integer")?,
            ),
        };
        let epoch = match map.get("epoch") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("epoch must be a string"),
        };
        Ok(JoinParams { last_seq, epoch })
    }
}
