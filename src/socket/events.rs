//! Channel events a client may push on a joined topic (api.md §3):
//! `new_msg`, `history`, `typing`, `edit_msg`, `delete_msg`, `react`, `read`.
//! Unknown events get an error reply; nothing a client sends can crash the socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::frame::{self, Inbound, Payload, Ref};
use super::session::Session;
use crate::chat::messages::{self, Change, Page};
use crate::chat::reactions::{self, Reacted};
use crate::chat::views::{AttachmentView, UserBrief};
use crate::error::Error;
use crate::hub::{Broadcast, LateReply, Out};
use crate::store::ops::MAX_CLIENT_ID_LEN;

/// At most one `typing` broadcast per channel in this interval.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// A reply's status and response.
type Answer = Result<Value, String>;

fn reason(reason: &str) -> Answer {
    Err(reason.to_string())
}

impl Session {
    /// Handles an event on a joined channel (join_ref already checked).
    pub(super) async fn channel_event(&mut self, msg: Inbound, out: &mut Vec<Message>) {
        let Some(channel) = self.channels.get(&msg.topic) else {
            return;
        };
        let join_ref = channel.join_ref.clone();
        let access = channel.access.clone();
        crate::fault::on_channel_event(&msg.event);
        // A bot's messages draw on its own bucket, shared with its REST
        // posts and its other sockets (its rate limit, else that of people).
        let allowed = if self.identity.user.bot && msg.event == "new_msg" {
            let default = crate::bots::default_rate_limit(&self.state.cfg);
            self.state
                .bots
                .take_post_token(self.identity.user.id, default)
        } else {
            self.bucket.take()
        };
        if !allowed {
            out.push(self.answer(&join_ref, &msg, reason("rate_limited")));
            return;
        }
        if let Payload::Binary(bytes) = &msg.payload {
            let answer = match msg.event.as_str() {
                "upload" => self.upload(&access, bytes.to_vec()).await,
                event if event.starts_with("bin_") => {
                    self.relay_binary(&access, &msg, bytes);
                    return;
                }
                _ => reason("binary_not_supported"),
            };
            out.push(self.answer(&join_ref, &msg, answer));
            return;
        }
        let payload = match &msg.payload {
            Payload::Json(Value::Object(map)) => map.clone(),
            Payload::Json(_) => {
                out.push(self.answer(&join_ref, &msg, reason("invalid_payload")));
                return;
            }
            Payload::Binary(_) => {
                out.push(self.answer(&join_ref, &msg, reason("binary_not_supported")));
                return;
            }
        };
        let answer = match msg.event.as_str() {
            "new_msg" => {
                // Refused at once, or answered once the message is durable.
                if let Err(why) = self.new_msg(&join_ref, &msg, &access, &payload).await {
                    out.push(self.answer(&join_ref, &msg, reason(why)));
                }
                return;
            }
            "typing" => {
                self.typing(&msg.topic);
                return;
            }
            "history" => self.history(&access, &payload).await,
            "edit_msg" => self.edit(&access, &payload).await,
            "delete_msg" => self.delete(&access, &payload).await,
            "react" => self.react(&access, &payload).await,
            "read" => self.read(&access, &payload).await,
            "attachment" => match self.attachment_bytes(&access, &payload).await {
                Ok(bytes) if self.binary_frames => {
                    match frame::encode_binary_reply(
                        &join_ref,
                        &msg.msg_ref,
                        &msg.topic,
                        "ok",
                        &bytes,
                    ) {
                        Ok(frame) => out.push(Message::Binary(frame.into())),
                        Err(_) => out.push(self.answer(&join_ref, &msg, reason("invalid_payload"))),
                    }
                    return;
                }
                Ok(_) => reason("binary_not_supported"),
                Err(why) => Err(why),
            },
            _ => reason("unknown_event"),
        };
        out.push(self.answer(&join_ref, &msg, answer));
    }

    fn answer(&self, join_ref: &Ref, msg: &Inbound, answer: Answer) -> Message {
        match answer {
            Ok(response) => self.reply(join_ref, &msg.msg_ref, &msg.topic, "ok", &response),
            Err(why) => self.reply(
                join_ref,
                &msg.msg_ref,
                &msg.topic,
                "error",
                &json!({"reason": why}),
            ),
        }
    }

    /// Validates a `new_msg` and hands it to the store; its reply comes
    /// through the outbox once the message is durable, in this channel's
    /// reply order. `Err` is a refusal to answer at once.
    async fn new_msg(
        &mut self,
        join_ref: &Ref,
        msg: &Inbound,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Result<(), &'static str> {
        let attachment_id = match payload.get("attachment_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or("invalid_attachment")?),
        };
        let body = match payload.get("body") {
            None | Some(Value::Null) => "",
            Some(Value::String(body)) => body.as_str(),
            Some(_) => return Err("invalid_payload"),
        };
        if let Some((why, _)) =
            messages::body_problem(body, self.state.cfg.max_body_chars, attachment_id.is_some())
        {
            return Err(why);
        }
        let client_id = match payload.get("client_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_CLIENT_ID_LEN => {
                Some(id.clone())
            }
            Some(_) => return Err("invalid_client_id"),
        };
        self.order.expect(&msg.topic);
        let conn = self.conn.clone();
        let vsn = self.vsn;
        let (join_ref, msg_ref, topic) = (join_ref.clone(), msg.msg_ref.clone(), msg.topic.clone());
        messages::post(
            &self.state,
            &self.identity.user,
            access,
            messages::Draft {
                body: body.to_string(),
                client_id,
                attachment_id,
            },
            move |result| {
                let frame = match result {
                    Ok(posted) => {
                        frame::encode_reply(vsn, &join_ref, &msg_ref, &topic, "ok", &posted.ack())
                    }
                    Err(e) => {
                        let why = match &e {
                            Error::Validation(fields) if fields.contains_key("attachment_id") => {
                                "invalid_attachment"
                            }
                            other => other.reason(),
                        };
                        frame::encode_reply(
                            vsn,
                            &join_ref,
                            &msg_ref,
                            &topic,
                            "error",
                            &json!({"reason": why}),
                        )
                    }
                };
                conn.send(Out::Reply(Box::new(LateReply { topic, frame })));
            },
        )
        .await;
        Ok(())
    }

    /// Stores a binary `upload` (an image) for this topic.
    async fn upload(&self, access: &crate::chat::topic::Access, bytes: Vec<u8>) -> Answer {
        match self
            .state
            .store
            .add_attachment(access.topic_id, self.identity.user.id, bytes)
            .await
        {
            Ok(record) => Ok(json!({"attachment": AttachmentView::from(&record)})),
            Err(Error::Validation(_)) => reason("unsupported_type"),
            Err(e) => reason(e.reason()),
        }
    }

    /// The bytes of an attachment of this topic.
    async fn attachment_bytes(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u8>, String> {
        let id = optional_seq(payload, "id")?.ok_or_else(|| "invalid_payload".to_string())?;
        match self.state.store.attachment(id).await {
            Ok(Some((record, bytes))) if record.topic_id == access.topic_id => Ok(bytes),
            Ok(_) => Err("not_found".into()),
            Err(e) => Err(e.reason().into()),
        }
    }

    /// Relays an ephemeral binary push (`bin_*` events) to the topic's other
    /// V2 WebSocket subscribers as a binary broadcast; nothing is stored.
    fn relay_binary(
        &self,
        access: &crate::chat::topic::Access,
        msg: &Inbound,
        bytes: &bytes::Bytes,
    ) {
        let Ok(frame) = frame::encode_binary_broadcast(&msg.topic, &msg.event, bytes) else {
            return;
        };
        let event: &'static str = "binary";
        let mut broadcast = Broadcast::binary(access.name.clone(), event, frame.into());
        broadcast.author = Some(self.identity.user.id);
        broadcast.exclude_conn = Some(self.conn.id());
        self.state.hub.publish(Arc::new(broadcast));
    }

    fn typing(&mut self, topic: &str) {
        let Some(channel) = self.channels.get_mut(topic) else {
            return;
        };
        let now = Instant::now();
        if channel
            .last_typing
            .is_some_and(|t| now.duration_since(t) < TYPING_INTERVAL)
        {
            return;
        }
        channel.last_typing = Some(now);
        let user = UserBrief::from(&self.identity.user);
        let mut broadcast = Broadcast::new(
            channel.access.name.clone(),
            "typing",
            &json!({"user": user}),
        );
        broadcast.author = Some(user.id);
        broadcast.exclude_conn = Some(self.conn.id());
        self.state.hub.publish(Arc::new(broadcast));
    }

    async fn history(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Answer {
        let page = Page {
            before: optional_seq(payload, "before_seq")?,
            after: optional_seq(payload, "after_seq")?,
            limit: optional_seq(payload, "limit")?.map(|n| n as usize),
        };
        match messages::history(&self.state, access, page).await {
            Ok((messages, has_more)) => {
                Ok(json!({"messages": messages.to_value(), "has_more": has_more}))
            }
            Err(e) => reason(e.reason()),
        }
    }

    async fn edit(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Answer {
        let seq = required_seq(payload)?;
        let body = payload.get("body").and_then(Value::as_str).unwrap_or("");
        if let Some((why, _)) = messages::body_problem(body, self.state.cfg.max_body_chars, false) {
            return reason(why);
        }
        match messages::change(
            &self.state,
            &self.identity.user,
            access,
            seq,
            Change::Edit(body.to_string()),
        )
        .await
        {
            Ok(message) => Ok(json!({"message": message})),
            Err(e) => reason(e.reason()),
        }
    }

    async fn delete(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Answer {
        let seq = required_seq(payload)?;
        match messages::change(
            &self.state,
            &self.identity.user,
            access,
            seq,
            Change::Delete,
        )
        .await
        {
            Ok(_) => Ok(json!({"seq": seq})),
            Err(e) => reason(e.reason()),
        }
    }

    async fn react(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Answer {
        let seq = required_seq(payload)?;
        let emoji = match payload.get("emoji") {
            Some(Value::String(emoji)) if reactions::emoji_ok(emoji) => emoji.clone(),
            _ => return reason("invalid_emoji"),
        };
        let user_id = self.identity.user.id;
        match reactions::toggle(&self.state, user_id, access, seq, emoji).await {
            Ok(Reacted::Toggled { on }) => Ok(json!({"on": on})),
            Ok(Reacted::TooMany) => reason("too_many_reactions"),
            Err(e) => reason(e.reason()),
        }
    }

    async fn read(
        &self,
        access: &crate::chat::topic::Access,
        payload: &serde_json::Map<String, Value>,
    ) -> Answer {
        let seq = required_seq(payload)?;
        match messages::mark_read(&self.state, self.identity.user.id, access, seq).await {
            Ok(position) => Ok(json!({"seq": position})),
            Err(e) => reason(e.reason()),
        }
    }
}

fn optional_seq(
    payload: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<u64>, String> {
    match payload.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| "invalid_payload".to_string()),
    }
}

fn required_seq(payload: &serde_json::Map<String, Value>) -> Result<u64, String> {
    optional_seq(payload, "seq")?.ok_or_else(|| "invalid_payload".to_string())
}
