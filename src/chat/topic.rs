//! Topic names and who may join them (api.md §3): `room:<name>` (anyone for
//! a public room, members for a private one), `dm:<id>` (the two
//! participants), `user:<id>` (that user only).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::records::UserRecord;
use crate::store::{rooms, topics};

/// A parsed topic name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind<'a> {
    Room(&'a str),
}

/// Parses a topic; `None` for topics no channel serves.
pub fn parse(topic: &str) -> Option<TopicKind<'_>> {
    let (prefix, rest) = topic.split_once(':')?;
    match prefix {
        "room" if !rest.is_empty() => Some(TopicKind::Room(rest)),
        _ => None,
    }
}

/// A topic the caller may use, with its history id.
#[derive(Clone, Debug)]
pub struct Access {
    pub name: Arc<str>,
    pub topic_id: u64,
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
        TopicKind::Room(room_name) => {
            let room_name = room_name.to_string();
            state
                .store
                .read(move |tx| {
                    let Some(room) = rooms::get(tx, &room_name)? else {
                        return Ok(Err(Refusal::NotFound));
                    };
                    if room.private && !topics::is_member(tx, room.topic_id, user_id)? {
                        return Ok(Err(Refusal::Unauthorized));
                    }
                    Ok(Ok(Access {
                        name,
                        topic_id: room.topic_id,
                    }))
                })
                .await
        }
    }
}

/// [`authorize`] for REST: 404 / 403 as errors.
pub async fn require(state: &AppState, user: &UserRecord, topic: &str) -> Result<Access> {
    match authorize(state, user, topic).await? {
        Ok(access) => Ok(access),
        Err(Refusal::Unauthorized) => Err(Error::Forbidden(
            "you are not a member of this conversation".into(),
        )),
        Err(_) => Err(Error::NotFound("topic")),
    }
}
