//! JSON shapes of chat objects (api.md §2): messages and their authors,
//! rooms. Serialized straight from records, without an intermediate tree.

use serde::Serialize;

use crate::clock;
use crate::store::records::{AttachmentRecord, ReactionsRecord, RoomRecord, Stored};

/// `{id, username, display_name, bot?}` of a message author.
pub use crate::store::records::Author as UserBrief;

/// `message`: `{id, topic, seq, user, body, client_id?, inserted_at, edited_at?, deleted?,
/// mentions, attachment?, reactions?}`.
#[derive(Serialize)]
pub struct MessageView<'a> {
    pub id: u64,
    pub topic: &'a str,
    pub seq: u64,
    pub user: &'a UserBrief,
    pub body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    pub inserted_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentView>,
    /// Ids of the users the message mentions.
    pub mentions: &'a [u64],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactions: Option<ReactionsView<'a>>,
}

/// `reactions`: `{emoji: [user id]}`, emoji in the order first used.
#[derive(Clone, Copy, Debug)]
pub struct ReactionsView<'a>(pub &'a ReactionsRecord);

impl Serialize for ReactionsView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.entries.len()))?;
        for entry in &self.0.entries {
            map.serialize_entry(&entry.emoji, &entry.users)?;
        }
        map.end()
    }
}

/// `attachment`: `{id, url, content_type, size}` of a message's image.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentView {
    pub id: u64,
    pub url: String,
    pub content_type: String,
    pub size: u64,
}

impl From<&AttachmentRecord> for AttachmentView {
    fn from(record: &AttachmentRecord) -> Self {
        AttachmentView {
            id: record.id,
            url: format!("/api/attachments/{}", record.id),
            content_type: record.content_type.clone(),
            size: record.size,
        }
    }
}

impl<'a> MessageView<'a> {
    /// The view of a stored message on `topic` by `user`.
    pub fn new(topic: &'a str, stored: &'a Stored, user: &'a UserBrief) -> Self {
        let record = &stored.record;
        MessageView {
            id: record.id,
            topic,
            seq: stored.seq,
            user,
            body: &record.body,
            client_id: record.client_id.as_deref(),
            inserted_at: clock::rfc3339_ms(record.inserted_at),
            edited_at: record.edited_at.map(clock::rfc3339_ms),
            deleted: record.deleted,
            attachment: None,
            mentions: &record.mentions,
            reactions: None,
        }
    }

    /// The same view carrying `attachment`.
    pub fn with_attachment(mut self, attachment: Option<&AttachmentRecord>) -> Self {
        self.attachment = attachment.map(AttachmentView::from);
        self
    }

    /// The same view carrying `reactions` (none on a deleted message).
    pub fn with_reactions(mut self, reactions: Option<&'a ReactionsRecord>) -> Self {
        self.reactions = reactions
            .filter(|r| !self.deleted && !r.entries.is_empty())
            .map(ReactionsView);
        self
    }

    /// As a JSON value (for replies that hold several messages).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// `room`: `{name, topic, private, description, owner, last_seq, unread?, unread_mentions?, created_at}`.
pub fn room(
    room: &RoomRecord,
    owner: Option<&str>,
    last_seq: u64,
    unread: Option<u64>,
) -> serde_json::Value {
    let mut value = serde_json::json!({
        "name": room.name,
        "topic": format!("room:{}", room.name),
        "private": room.private,
        "description": room.description,
        "owner": owner,
        "last_seq": last_seq,
        "created_at": clock::rfc3339_ms(room.created_at),
    });
    if let Some(unread) = unread {
        value["unread"] = serde_json::json!(unread);
        // Set by callers that count them (the rooms list).
        value["unread_mentions"] = serde_json::json!(0);
    }
    value
}
