//! Managing bots and incoming webhooks, shared by the REST API
//! (`src/http/api/bots.rs`, `hooks.rs`) and the CLI (`confab bot|hook`,
//! offline or through the admin socket): validation, the secrets shown
//! once, and the live effects (registry reload, closing a bot's sockets,
//! a changed rate limit applying to the next post).

use crate::accounts::{self, Problems};
use crate::bots::{keys, safety};
use crate::chat::topic;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::ops::NewBot;
use crate::store::ops::NewHook;
use crate::store::records::{BotRecord, HookRecord, RateLimit, RoomRecord, UserRecord};

/// What a new bot is made of.
#[derive(Debug, Default)]
pub struct BotInput {
    pub username: String,
    pub display_name: Option<String>,
    pub webhook_url: Option<String>,
    pub all_messages: bool,
}

/// A bot's fresh secrets, shown once.
#[derive(Debug)]
pub struct Secrets {
    pub key: String,
    pub signing_secret: String,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            key: keys::new_key(),
            signing_secret: keys::new_secret(),
        }
    }
}

/// `None` if the webhook URL is usable, else why not.
pub fn webhook_problem(url: &str) -> Option<String> {
    safety::parse_url(url).err()
}

/// Creates a bot (by user `created_by`, 0 for the CLI); 422 on a bad or
/// taken name or a refused webhook URL.
pub async fn create_bot(
    state: &AppState,
    input: BotInput,
    created_by: u64,
) -> Result<(UserRecord, BotRecord, Secrets)> {
    let display_name = input
        .display_name
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| input.username.clone());
    let webhook_url = input.webhook_url.filter(|u| !u.trim().is_empty());
    let mut problems = Problems::default();
    problems.check("username", accounts::username_problem(&input.username));
    problems.check(
        "display_name",
        accounts::display_name_problem(&display_name),
    );
    let url_problem = webhook_url.as_deref().and_then(webhook_problem);
    problems.check("webhook_url", url_problem.as_deref());
    problems.into_result()?;
    let secrets = Secrets::new();
    let (user, bot) = state
        .store
        .create_bot(NewBot {
            username: input.username,
            display_name,
            key_hash: keys::hash(&secrets.key),
            signing_secret: secrets.signing_secret.clone(),
            webhook_url: webhook_url.map(|u| u.trim().to_string()),
            all_messages: input.all_messages,
            created_by,
        })
        .await?;
    state.bots_changed().await?;
    Ok((user, bot, secrets))
}

/// The bot named `name` (a user flagged bot with a bot record).
pub async fn bot_named(state: &AppState, name: &str) -> Result<UserRecord> {
    let user = state
        .store
        .user_by_username(name)
        .await?
        .filter(|u| u.bot)
        .ok_or(Error::NotFound("bot"))?;
    Ok(user)
}

/// A new key and signing secret; the old key is refused at once.
pub async fn rotate_key(state: &AppState, user: &UserRecord) -> Result<Secrets> {
    let secrets = Secrets::new();
    state
        .store
        .rotate_bot_key(
            user.id,
            keys::hash(&secrets.key),
            secrets.signing_secret.clone(),
        )
        .await?;
    state.sessions_changed(user.id);
    Ok(secrets)
}

/// Deletes a bot: its key is refused at once and its sockets close.
pub async fn delete_bot(state: &AppState, user: &UserRecord) -> Result<()> {
    state.store.delete_bot(user.id).await?;
    state.sessions_changed(user.id);
    state.bots_changed().await?;
    state.bots.forget(user.id);
    Ok(())
}

/// Why a bot's own rate limit is unusable, if it is.
pub fn rate_limit_problem(limit: &RateLimit) -> Option<&'static str> {
    (limit.burst == 0 || limit.refill_per_sec == 0)
        .then_some("burst and refill_per_sec must be at least 1")
}

/// Gives a bot its own rate limit, or with `None` the one of people
/// again; its next post is limited by it (REST and sockets alike).
pub async fn set_rate_limit(
    state: &AppState,
    user: &UserRecord,
    limit: Option<RateLimit>,
) -> Result<()> {
    if let Some(problem) = limit.as_ref().and_then(rate_limit_problem) {
        return Err(Error::field("rate_limit", problem));
    }
    state.store.set_bot_rate_limit(user.id, limit).await?;
    state.bots_changed().await
}

/// The room named `name`.
pub async fn room_named(state: &AppState, name: &str) -> Result<RoomRecord> {
    state.store.room(name).await?.ok_or(Error::NotFound("room"))
}

/// Who a new hook of `room` posts as: the bot `as_bot` if named, else
/// `fallback` (the creator). The poster must be able to post there.
pub async fn hook_poster(
    state: &AppState,
    room: &RoomRecord,
    as_bot: Option<&str>,
    fallback: Option<u64>,
) -> Result<UserRecord> {
    let poster = match as_bot.filter(|b| !b.is_empty()) {
        Some(bot) => state
            .store
            .user_by_username(bot)
            .await?
            .filter(|u| u.bot && !u.disabled)
            .ok_or_else(|| Error::field("as_bot", "no such bot"))?,
        None => {
            let id = fallback.ok_or_else(|| {
                Error::field("as_bot", "is needed: the room has no owner to post as")
            })?;
            state.store.user(id).await?.ok_or(Error::Unauthorized)?
        }
    };
    // The poster must be able to post there (a private room needs membership).
    topic::require(state, &poster, &format!("room:{}", room.name))
        .await
        .map_err(|_| Error::field("as_bot", "may not post in this room"))?;
    Ok(poster)
}

/// Makes a hook of `room` posting as `poster`; returns it and its secret
/// token (shown once, in the URL `/hooks/TOKEN`).
pub async fn create_hook(
    state: &AppState,
    room: &RoomRecord,
    poster: &UserRecord,
    created_by: u64,
) -> Result<(HookRecord, String)> {
    let token = keys::new_hook_token();
    let hook = state
        .store
        .create_hook(NewHook {
            room: room.name.clone(),
            topic_id: room.topic_id,
            user_id: poster.id,
            token_hash: keys::hash(&token),
            created_by,
        })
        .await?;
    Ok((hook, token))
}

/// A hook's id from its text form (404 when not a number).
pub fn hook_id(id: &str) -> Result<u64> {
    id.parse().map_err(|_| Error::NotFound("hook"))
}
