//! Bot accounts over REST (admins only): create (the API key and signing
//! secret are shown once), list, rotate the key, delete, and the delivery
//! log of outgoing webhooks. Rotation and deletion refuse the old key at
//! once and close the bot's sockets.

use serde::Deserialize;
use serde_json::json;

use crate::bots::{self, manage};
use crate::error::Result;
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    username: String,
    display_name: Option<String>,
    webhook_url: Option<String>,
    #[serde(default)]
    all_messages: bool,
}

/// Creates a bot: `201 {bot, key, signing_secret}`.
pub async fn create(call: &mut Call) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let input: CreateInput = call.json().await?;
    let input = manage::BotInput {
        username: input.username,
        display_name: input.display_name,
        webhook_url: input.webhook_url,
        all_messages: input.all_messages,
    };
    let (user, bot, secrets) = manage::create_bot(&call.state, input, admin.user.id).await?;
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot created");
    Ok(reply::json(
        201,
        &json!({"bot": bots::view(&user, &bot), "key": secrets.key, "signing_secret": secrets.signing_secret}),
    ))
}

/// Every bot: `{bots: [...]}`.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    call.admin().await?;
    let all = call.state.store.bots().await?;
    let views: Vec<_> = all.iter().map(|(u, b)| bots::view(u, b)).collect();
    Ok(reply::json(200, &json!({ "bots": views })))
}

/// A new key and signing secret; the old key is refused at once.
pub async fn rotate(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let user = manage::bot_named(&call.state, name).await?;
    let secrets = manage::rotate_key(&call.state, &user).await?;
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot key rotated");
    Ok(reply::json(
        200,
        &json!({"key": secrets.key, "signing_secret": secrets.signing_secret}),
    ))
}

/// Deletes a bot: its key is refused at once and its sockets close.
pub async fn delete(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let user = manage::bot_named(&call.state, name).await?;
    manage::delete_bot(&call.state, &user).await?;
    tracing::info!(bot = %user.username, by = %admin.user.username, "bot deleted");
    Ok(reply::empty(204))
}

/// The last delivery attempts of the bot's outgoing webhook, newest first.
pub async fn deliveries(call: &mut Call, name: &str) -> Result<HttpResponse> {
    call.admin().await?;
    let user = manage::bot_named(&call.state, name).await?;
    Ok(reply::json(
        200,
        &json!({"deliveries": call.state.bots.attempts(user.id)}),
    ))
}
