//! Bot accounts over REST (admins only): create (the API key and signing
//! secret are shown once), list, rotate the key, delete, and the delivery
//! log of outgoing webhooks. Rotation and deletion refuse the old key at
//! once and close the bot's sockets.

use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, Problems};
use crate::bots::{self, keys, safety};
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::store::ops::NewBot;
use crate::store::records::UserRecord;

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    username: String,
    display_name: Option<String>,
    webhook_url: Option<String>,
    #[serde(default)]
    all_messages: bool,
}

/// `None` if the webhook URL is usable, else why not.
pub fn webhook_problem(url: &str) -> Option<String> {
    safety::parse_url(url).err()
}

/// Creates a bot: `201 {bot, key, signing_secret}`.
pub async fn create(call: &mut Call) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let input: CreateInput = call.json().await?;
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
    let key = keys::new_key();
    let signing_secret = keys::new_secret();
    let (user, bot) = call
        .state
        .store
        .create_bot(NewBot {
            username: input.username,
            display_name,
            key_hash: keys::hash(&key),
            signing_secret: signing_secret.clone(),
            webhook_url: webhook_url.map(|u| u.trim().to_string()),
            all_messages: input.all_messages,
            created_by: admin.user.id,
        })
        .await?;
    call.state.bots.reload(&call.state.store).await?;
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot created");
    Ok(reply::json(
        201,
        &json!({"bot": bots::view(&user, &bot), "key": key, "signing_secret": signing_secret}),
    ))
}

/// Every bot: `{bots: [...]}`.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    call.admin().await?;
    let all = call.state.store.bots().await?;
    let views: Vec<_> = all.iter().map(|(u, b)| bots::view(u, b)).collect();
    Ok(reply::json(200, &json!({ "bots": views })))
}

/// The bot named `name` (a user flagged bot with a bot record).
async fn bot_named(call: &Call, name: &str) -> Result<UserRecord> {
    let user = call
        .state
        .store
        .user_by_username(name)
        .await?
        .filter(|u| u.bot)
        .ok_or(Error::NotFound("bot"))?;
    Ok(user)
}

/// A new key and signing secret; the old key is refused at once.
pub async fn rotate(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let user = bot_named(call, name).await?;
    let key = keys::new_key();
    let signing_secret = keys::new_secret();
    call.state
        .store
        .rotate_bot_key(user.id, keys::hash(&key), signing_secret.clone())
        .await?;
    call.state.sessions_changed(user.id);
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot key rotated");
    Ok(reply::json(
        200,
        &json!({"key": key, "signing_secret": signing_secret}),
    ))
}

/// Deletes a bot: its key is refused at once and its sockets close.
pub async fn delete(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let user = bot_named(call, name).await?;
    call.state.store.delete_bot(user.id).await?;
    call.state.sessions_changed(user.id);
    call.state.bots.reload(&call.state.store).await?;
    call.state.bots.forget(user.id);
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot deleted");
    Ok(reply::empty(204))
}

/// The last delivery attempts of the bot's outgoing webhook, newest first.
pub async fn deliveries(call: &mut Call, name: &str) -> Result<HttpResponse> {
    call.admin().await?;
    let user = bot_named(call, name).await?;
    Ok(reply::json(
        200,
        &json!({"deliveries": call.state.bots.attempts(user.id)}),
    ))
}
