//! Topic names and who may join them (api.md §3): `room:<name>` (anyone for
//! a public room, members for a private one), `dm:<id>` (the two
//! participants), `user:<id>` (that user only).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::records::UserRecord;

/// A parsed topic name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind<'a> {
    Room(&'a str),
    Dm(u64),
    User(u64),
}

/// Parses a topic; `None` for topics no channel serves.
pub fn parse(topic: &str) -> Option<TopicKind<'_>> {
    let (prefix, rest) = topic.split_once(':')?;
    match prefix {
        "room" if !rest.is_empty() => Some(TopicKind::Room(rest)),
        "dm" => canonical_id(rest).map(TopicKind::Dm),
        "user" => canonical_id(rest).map(TopicKind::User),
        _ => None,
    }
}

/// An id written the way the server writes it (digits, no sign, no leading
/// zero), so one conversation or user has exactly one topic name.
fn canonical_id(text: &str) -> Option<u64> {
    let id: u64 = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

/// The personal topic of a user.
pub fn personal(user_id: u64) -> String {
    format!("user:{user_id}")
}

/// A topic the caller may use.
#[derive(Clone, Debug)]
pub struct Access {
    pub name: Arc<str>,
    /// The history's id; 0 for personal topics, which have none.
    pub topic_id: u64,
}

impl Access {
    /// Whether the topic keeps messages (rooms and conversations) and has presence.
    pub fn has_history(&self) -> bool {
        self.topic_id != 0
    }
}

/// Why a join was refused: the `reason` of the error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No channel serves this topic.
    Unmatched,
    /// The room or conversation does not exist.
    NotFound,
    /// It exists, but not for this user.
    Unauthorized,
}

impl Refusal {
    /// The reason string sent to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unmatched => "unmatched topic",
            Refusal::NotFound => "not_found",
            Refusal::Unauthorized => "unauthorized",
        }
    }
}

/// Decides whether `user` may join `topic`.
pub async fn authorize(
    state: &AppState,
    user: &UserRecord,
    topic: &str,
) -> Result<std::result::Result<Access, Refusal>> {
    let Some(kind) = parse(topic) else {
        return Ok(Err(Refusal::Unmatched));
    };
    let name: Arc<str> = Arc::from(topic);
    let user_id = user.id;
    match kind {
        TopicKind::User(id) if id == user_id => Ok(Ok(Access { name, topic_id: 0 })),
        TopicKind::User(_) => Ok(Err(Refusal::Unauthorized)),
        TopicKind::Room(room_name) => match state.store.room_access(room_name, user_id).await? {
            None => Ok(Err(Refusal::NotFound)),
            Some((_, false)) => Ok(Err(Refusal::Unauthorized)),
            Some((room, true)) => Ok(Ok(Access {
                name,
                topic_id: room.topic_id,
            })),
        },
        TopicKind::Dm(id) => match state.store.conversation(id).await? {
            None => Ok(Err(Refusal::NotFound)),
            Some(conversation) if !conversation.includes(user_id) => Ok(Err(Refusal::Unauthorized)),
            Some(conversation) => Ok(Ok(Access {
                name,
                topic_id: conversation.topic_id,
            })),
        },
    }
}

/// [`authorize`] for REST on topics with history: 404 / 403 as errors.
pub async fn require(state: &AppState, user: &UserRecord, topic: &str) -> Result<Access> {
    match authorize(state, user, topic).await? {
        Ok(access) if access.has_history() => Ok(access),
        Err(Refusal::Unauthorized) => Err(Error::Forbidden(
            "you are not a member of this conversation".into(),
        )),
        _ => Err(Error::NotFound("topic")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topics() {
        assert_eq!(parse("room:lobby"), Some(TopicKind::Room("lobby")));
        assert_eq!(parse("dm:12"), Some(TopicKind::Dm(12)));
        assert_eq!(parse("user:7"), Some(TopicKind::User(7)));
        assert_eq!(parse("room:"), None);
        assert_eq!(parse("dm:x"), None);
        assert_eq!(parse("dm:012"), None);
        assert_eq!(parse("dm:+12"), None);
        assert_eq!(parse("user:07"), None);
        assert_eq!(parse("phoenix"), None);
        assert_eq!(parse("foo:bar"), None);
    }
}
