//! Direct conversations over REST: open one with a user (idempotent per
//! pair, the other user is notified on `user:<id>`), list them with
//! `last_seq` and `unread`, and their messages through the same path as rooms.

use serde::Deserialize;
use serde_json::{json, Value};

use super::rooms;
use super::views;
use crate::chat::notify;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::store::records::{ConversationRecord, UserRecord};

/// `conversation`: `{id, topic, with: user, last_seq, unread, unread_mentions}`.
pub fn view(
    conversation: &ConversationRecord,
    with: &UserRecord,
    last_seq: u64,
    unread: u64,
    unread_mentions: u64,
) -> Value {
    json!({
        "id": conversation.id,
        "topic": format!("dm:{}", conversation.id),
        "with": views::user(with),
        "last_seq": last_seq,
        "unread": unread,
        "unread_mentions": unread_mentions,
    })
}

/// The caller's conversations.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let me = identity.user.id;
    let list: Vec<Value> = call
        .state
        .store
        .conversation_list(me)
        .await?
        .iter()
        .map(|summary| {
            let counts = summary.counts;
            view(
                &summary.conversation,
                &summary.with,
                counts.last_seq,
                counts.unread(),
                counts.unread_mentions,
            )
        })
        .collect();
    Ok(reply::json(200, &json!({ "conversations": list })))
}

#[derive(Deserialize)]
struct OpenInput {
    #[serde(default)]
    username: String,
}

/// Opens (or returns) the conversation with `username`: 201 new, 200 existing.
pub async fn open(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let input: OpenInput = call.json().await?;
    let other = call
        .state
        .store
        .user_by_username(&input.username)
        .await?
        .ok_or_else(|| Error::field("username", "no such user"))?;
    if other.id == identity.user.id {
        return Err(Error::field("username", "is yourself"));
    }
    let (conversation, created) = call
        .state
        .store
        .open_conversation(identity.user.id, other.id)
        .await?;
    if created {
        let hub = &call.state.hub;
        notify::send(
            hub,
            other.id,
            "conversation_created",
            &json!({"conversation": view(&conversation, &identity.user, 0, 0, 0)}),
        );
        notify::send(
            hub,
            identity.user.id,
            "conversation_created",
            &json!({"conversation": view(&conversation, &other, 0, 0, 0)}),
        );
    }
    let counts = call
        .state
        .store
        .topic_counts(identity.user.id, conversation.topic_id)
        .await?;
    let (last_seq, unread, unread_mentions) =
        (counts.last_seq, counts.unread(), counts.unread_mentions);
    let body =
        json!({"conversation": view(&conversation, &other, last_seq, unread, unread_mentions)});
    Ok(reply::json(if created { 201 } else { 200 }, &body))
}

fn topic_of(id: &str) -> Result<String> {
    id.parse::<u64>()
        .map(|id| format!("dm:{id}"))
        .map_err(|_| Error::NotFound("conversation"))
}

/// A page of the conversation's history (participants only).
pub async fn history(call: &mut Call, id: &str) -> Result<HttpResponse> {
    let topic = topic_of(id)?;
    rooms::history(call, &topic).await
}

/// Posts to the conversation (participants only).
pub async fn post(call: &mut Call, id: &str) -> Result<HttpResponse> {
    let topic = topic_of(id)?;
    rooms::post(call, &topic).await
}
