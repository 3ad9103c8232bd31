//! Incoming webhooks: a room's owner or an admin makes a secret URL
//! (`POST /api/rooms/{name}/hooks`, shown once), lists and revokes them;
//! `POST /hooks/{token}` posts `{"text": …}` (Slack-compatible), `{"body":
//! …}` or a `text/plain` body into that room as the hook's user, through
//! the chat path. `Idempotency-Key` becomes the message's `client_id`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::bots::{keys, manage};
use crate::chat::{messages, topic};
use crate::clock;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::store::ops as stored_messages;
use crate::store::records::{HookRecord, RoomRecord};

/// The room, for someone allowed to manage its hooks (owner or admin).
async fn managed_room(call: &Call, name: &str) -> Result<(RoomRecord, u64)> {
    let identity = call.identity().await?;
    let room = manage::room_named(&call.state, name).await?;
    if room.owner != identity.user.id && !identity.user.admin {
        return Err(Error::Forbidden(
            "only the room's owner or an admin may manage its webhooks".into(),
        ));
    }
    Ok((room, identity.user.id))
}

async fn view(call: &Call, hook: &HookRecord) -> Result<Value> {
    let user = call.state.store.user(hook.user_id).await?;
    Ok(json!({
        "id": hook.id,
        "room": hook.room,
        "user": user.map(|u| u.username),
        "created_at": clock::rfc3339_ms(hook.created_at),
    }))
}

#[derive(Deserialize, Default)]
struct CreateInput {
    as_bot: Option<String>,
}

/// Makes a hook: `201 {hook, url}`; the URL holds the secret and is shown once.
pub async fn create(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let (room, creator) = managed_room(call, name).await?;
    let bytes = call.body_bytes().await?;
    let input: CreateInput = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateInput::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("invalid JSON: {e}")))?
    };
    let poster =
        manage::hook_poster(&call.state, &room, input.as_bot.as_deref(), Some(creator)).await?;
    let (hook, token) = manage::create_hook(&call.state, &room, &poster, creator).await?;
    let host = call.header(hyper::header::HOST).unwrap_or("localhost");
    let scheme = if call.state.cfg.trust_forwarded_for {
        call.header("x-forwarded-proto").unwrap_or("http")
    } else {
        "http"
    };
    let url = format!("{scheme}://{host}/hooks/{token}");
    Ok(reply::json(
        201,
        &json!({"hook": view(call, &hook).await?, "url": url, "path": format!("/hooks/{token}")}),
    ))
}

/// A room's hooks, without their secrets.
pub async fn list(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let (room, _) = managed_room(call, name).await?;
    let hooks = call.state.store.hooks_of_topic(room.topic_id).await?;
    let mut views = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        views.push(view(call, hook).await?);
    }
    Ok(reply::json(200, &json!({ "hooks": views })))
}

/// Revokes a hook: its URL is refused at once.
pub async fn delete(call: &mut Call, name: &str, id: &str) -> Result<HttpResponse> {
    let (room, _) = managed_room(call, name).await?;
    let id = manage::hook_id(id)?;
    call.state.store.delete_hook(room.topic_id, id).await?;
    Ok(reply::empty(204))
}

/// The text of an incoming post: `text` or `body` of a JSON object, or a
/// `text/plain` body.
fn text_of(content_type: &str, bytes: &[u8]) -> Result<String> {
    if content_type.starts_with("text/plain") {
        return String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::BadRequest("the body is not UTF-8".into()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("invalid JSON: {e}")))?;
    let text = value.get("text").or_else(|| value.get("body"));
    match text {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(Error::field("text", "must be a string")),
        None => Ok(String::new()),
    }
}

/// `POST /hooks/{token}`: posts into the hook's room as its user.
pub async fn incoming(call: &mut Call, token: &str) -> Result<HttpResponse> {
    let hook = call
        .state
        .store
        .hook_by_token_hash(keys::hash(token))
        .await?
        .ok_or(Error::NotFound("hook"))?;
    if !call.state.bots.take_hook_token(
        hook.id,
        call.state.cfg.push_burst,
        call.state.cfg.push_refill_per_sec,
    ) {
        return Err(Error::RateLimited(std::time::Duration::from_secs(1)));
    }
    let client_id = call
        .header("idempotency-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if let Some(id) = &client_id {
        if id.len() > stored_messages::MAX_CLIENT_ID_LEN {
            return Err(Error::field("idempotency_key", "must be 1 to 128 bytes"));
        }
    }
    let content_type = call
        .header(hyper::header::CONTENT_TYPE)
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let bytes = call.body_bytes().await?;
    let text = text_of(&content_type, &bytes)?;
    if let Some((_, reason)) = messages::body_problem(&text, call.state.cfg.max_body_chars, false) {
        return Err(Error::field("text", reason));
    }
    let user = call
        .state
        .store
        .user(hook.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Error::NotFound("hook"))?;
    let access = topic::require(&call.state, &user, &format!("room:{}", hook.room)).await?;
    let draft = messages::Draft {
        body: text,
        client_id,
        attachment_id: None,
    };
    let posted = messages::post_and_wait(&call.state, &user, &access, draft).await?;
    let status = if posted.duplicate { 200 } else { 201 };
    Ok(reply::json(status, &json!({"message": posted.message()})))
}
