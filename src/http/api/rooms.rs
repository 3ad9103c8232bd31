//! Rooms over REST: list and create, private-room membership (removal also
//! ejects the user's joined sockets), and message history and posting
//! through the same path as socket pushes.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::Problems;
use crate::chat::messages::{self, Page};
use crate::chat::notify;
use crate::chat::topic;
use crate::chat::views;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::query;
use crate::http::reply::{self, HttpResponse};
use crate::store::ops::{NewRoom, MAX_CLIENT_ID_LEN};
use crate::store::records::{RoomRecord, UserRecord};

/// `None` if `name` is 1–64 of `a-z 0-9 _ -`, else the reason.
pub fn room_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        return Some("must be 1 to 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Some("may only contain a-z, 0-9, '_' and '-'");
    }
    None
}

/// Public rooms and the private rooms the caller belongs to, with
/// `last_seq`, `unread` and `unread_mentions`.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let user_id = identity.user.id;
    let rooms: Vec<Value> = call
        .state
        .store
        .room_list(user_id)
        .await?
        .into_iter()
        .map(|summary| {
            let counts = summary.counts;
            let mut view = views::room(
                &summary.room,
                summary.owner.as_deref(),
                counts.last_seq,
                Some(counts.unread()),
            );
            view["unread_mentions"] = json!(counts.unread_mentions);
            view
        })
        .collect();
    Ok(reply::json(200, &json!({ "rooms": rooms })))
}

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    description: String,
}

/// Creates a room; the caller becomes owner and member.
pub async fn create(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let input: CreateInput = call.json().await?;
    let mut problems = Problems::default();
    problems.check("name", room_name_problem(&input.name));
    if input.description.chars().count() > 280 {
        problems.check("description", Some("must be at most 280 characters"));
    }
    problems.into_result()?;
    let room = call
        .state
        .store
        .create_room(NewRoom {
            name: input.name,
            private: input.private,
            description: input.description,
            owner: identity.user.id,
        })
        .await?;
    Ok(reply::json(
        201,
        &json!({"room": views::room(&room, Some(&identity.user.username), 0, Some(0))}),
    ))
}

/// The room, for someone allowed to manage its members (owner or admin).
async fn managed_room(call: &Call, name: &str) -> Result<RoomRecord> {
    let identity = call.identity().await?;
    let room = call
        .state
        .store
        .room(name)
        .await?
        .ok_or(Error::NotFound("room"))?;
    if room.owner != identity.user.id && !identity.user.admin {
        return Err(Error::Forbidden(
            "only the room's owner or an admin may change its members".into(),
        ));
    }
    Ok(room)
}

async fn user_named(call: &Call, username: &str) -> Result<UserRecord> {
    call.state
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(|| Error::field("username", "no such user"))
}

#[derive(Deserialize)]
struct MemberInput {
    #[serde(default)]
    username: String,
}

/// Adds a member (owner or admin).
pub async fn add_member(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let room = managed_room(call, name).await?;
    let input: MemberInput = call.json().await?;
    let user = user_named(call, &input.username).await?;
    let (topic_id, user_id) = (room.topic_id, user.id);
    let added = call.state.store.add_member(topic_id, user_id).await?;
    if added {
        let last_seq = call.state.store.last_seq(topic_id).await?;
        let owner = call.state.store.user(room.owner).await?.map(|u| u.username);
        notify::send(
            &call.state.hub,
            user.id,
            "room_added",
            &json!({"room": views::room(&room, owner.as_deref(), last_seq, Some(last_seq))}),
        );
    }
    Ok(reply::empty(204))
}

/// Removes a member (owner or admin); their sockets leave the topic.
pub async fn remove_member(call: &mut Call, name: &str, username: &str) -> Result<HttpResponse> {
    let room = managed_room(call, name).await?;
    let user = user_named(call, username).await?;
    let (topic_id, user_id) = (room.topic_id, user.id);
    let removed = call.state.store.remove_member(topic_id, user_id).await?;
    if removed {
        notify::send(
            &call.state.hub,
            user.id,
            "room_removed",
            &json!({"room": {"name": room.name, "topic": format!("room:{}", room.name)}}),
        );
    }
    if room.private {
        call.state.eject(&format!("room:{}", room.name), user.id);
    }
    Ok(reply::empty(204))
}

/// `before`, `after` and `limit` from the query string.
fn page(call: &Call) -> Result<Page> {
    let params = query::pairs(call.parts.uri.query());
    let number = |key: &str| -> Result<Option<u64>> {
        query::last(&params, key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| Error::field(key, "must be a non-negative integer"))
            })
            .transpose()
    };
    Ok(Page {
        before: number("before")?,
        after: number("after")?,
        limit: number("limit")?.map(|n| n as usize),
    })
}

/// `around` from the query string: a seq (≥ 1), not combined with
/// `before` or `after`.
fn around(call: &Call, page: &Page) -> Result<Option<u64>> {
    let params = query::pairs(call.parts.uri.query());
    let Some(value) = query::last(&params, "around") else {
        return Ok(None);
    };
    let seq = value
        .parse::<u64>()
        .ok()
        .filter(|&seq| seq >= 1)
        .ok_or_else(|| Error::field("around", "must be a positive integer"))?;
    if page.before.is_some() || page.after.is_some() {
        return Err(Error::field(
            "around",
            "cannot be combined with before or after",
        ));
    }
    Ok(Some(seq))
}

/// A page of a topic's history (members only); with `around=SEQ`, the page
/// centred on that message, `{messages, has_more_before, has_more_after}`.
pub async fn history(call: &mut Call, topic_name: &str) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let access = topic::require(&call.state, &identity.user, topic_name).await?;
    let page = page(call)?;
    if let Some(seq) = around(call, &page)? {
        let (messages, has_more_before, has_more_after) =
            messages::around(&call.state, &access, seq, page.limit).await?;
        #[derive(serde::Serialize)]
        struct AroundPage {
            messages: messages::MessageViews,
            has_more_before: bool,
            has_more_after: bool,
        }
        return Ok(reply::json(
            200,
            &AroundPage {
                messages,
                has_more_before,
                has_more_after,
            },
        ));
    }
    let (messages, has_more) = messages::history(&call.state, &access, page).await?;
    #[derive(serde::Serialize)]
    struct HistoryPage {
        messages: messages::MessageViews,
        has_more: bool,
    }
    Ok(reply::json(200, &HistoryPage { messages, has_more }))
}

#[derive(Deserialize)]
struct PostInput {
    body: Option<Value>,
    client_id: Option<String>,
    attachment_id: Option<u64>,
}

/// Posts a message through the same durable path as a socket push.
pub async fn post(call: &mut Call, topic_name: &str) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let access = topic::require(&call.state, &identity.user, topic_name).await?;
    // A bot's messages draw on its own bucket, shared with its sockets.
    let state = &call.state;
    if identity.user.bot
        && !state.bots.take_post_token(
            identity.user.id,
            crate::bots::default_rate_limit(&state.cfg),
        )
    {
        return Err(Error::RateLimited(std::time::Duration::from_secs(1)));
    }
    let input: PostInput = call.json().await?;
    let body = match input.body {
        Some(Value::String(body)) => body,
        Some(_) => return Err(Error::field("body", "must be a string")),
        None => String::new(),
    };
    if let Some((_, text)) = messages::body_problem(
        &body,
        call.state.cfg.max_body_chars,
        input.attachment_id.is_some(),
    ) {
        return Err(Error::field("body", text));
    }
    if let Some(id) = &input.client_id {
        if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
            return Err(Error::field("client_id", "must be 1 to 128 bytes"));
        }
    }
    let draft = messages::Draft {
        body,
        client_id: input.client_id,
        attachment_id: input.attachment_id,
    };
    let posted = messages::post_and_wait(&call.state, &identity.user, &access, draft).await?;
    let status = if posted.duplicate { 200 } else { 201 };
    Ok(reply::json(status, &json!({"message": posted.message()})))
}
