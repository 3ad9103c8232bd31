//! Bot accounts over REST (admins only): create (the API key and signing
//! secret are shown once), list, change the rate limit, rotate the key,
//! delete, and the delivery log of outgoing webhooks. Rotation and deletion
//! refuse the old key at once and close the bot's sockets.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::bots::{self, manage};
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::store::records::RateLimit;

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
        &json!({"bot": bots::view(&user, &bot, None), "key": secrets.key, "signing_secret": secrets.signing_secret}),
    ))
}

/// Every bot: `{bots: [...], default_rate_limit}` (the limit of people,
/// which bots whose `rate_limit` is null have).
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    call.admin().await?;
    let all = call.state.store.bots().await?;
    let limits: HashMap<u64, RateLimit> = call
        .state
        .store
        .bot_rate_limits()
        .await?
        .into_iter()
        .collect();
    let views: Vec<_> = all
        .iter()
        .map(|(u, b)| bots::view(u, b, limits.get(&u.id)))
        .collect();
    let default = bots::default_rate_limit(&call.state.cfg);
    Ok(reply::json(
        200,
        &json!({ "bots": views, "default_rate_limit": bots::rate_limit_view(&default) }),
    ))
}

/// A whole number from 1 to u32::MAX.
fn positive(value: Option<&Value>) -> Option<u32> {
    value
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n >= 1)
}

/// `rate_limit` of a PATCH: `null` (the limit of people) or
/// `{burst, refill_per_sec}`, both whole numbers of at least 1.
fn rate_limit_input(value: &Value) -> Result<Option<RateLimit>> {
    if value.is_null() {
        return Ok(None);
    }
    let burst = positive(value.get("burst"));
    let refill_per_sec = positive(value.get("refill_per_sec"));
    match (value.is_object(), burst, refill_per_sec) {
        (true, Some(burst), Some(refill_per_sec)) => Ok(Some(RateLimit {
            burst,
            refill_per_sec,
        })),
        _ => Err(Error::field(
            "rate_limit",
            "must be null or {burst, refill_per_sec} with whole numbers of at least 1",
        )),
    }
}

/// Changes a bot's settings: `{rate_limit}`; answers the bot's view.
pub async fn update(call: &mut Call, name: &str) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let user = manage::bot_named(&call.state, name).await?;
    let input: Value = call.json().await?;
    let Some(fields) = input.as_object() else {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    };
    if let Some(value) = fields.get("rate_limit") {
        let limit = rate_limit_input(value)?;
        manage::set_rate_limit(&call.state, &user, limit).await?;
        tracing::info!(bot = %user.username, by = %admin.user.username, ?limit, "bot rate limit set");
    }
    let bot = call
        .state
        .store
        .bot(user.id)
        .await?
        .ok_or(Error::NotFound("bot"))?;
    let limit = call
        .state
        .store
        .bot_rate_limits()
        .await?
        .into_iter()
        .find_map(|(id, limit)| (id == user.id).then_some(limit));
    Ok(reply::json(
        200,
        &json!({ "bot": bots::view(&user, &bot, limit.as_ref()) }),
    ))
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

/// The last delivery attempts of the bot's outgoing webhook (at most
/// [`bots::LOG_LEN`]), newest first.
pub async fn deliveries(call: &mut Call, name: &str) -> Result<HttpResponse> {
    call.admin().await?;
    let user = manage::bot_named(&call.state, name).await?;
    let log = call.state.store.delivery_log(user.id).await?;
    let views: Vec<Value> = log.iter().map(bots::attempt_view).collect();
    Ok(reply::json(200, &json!({ "deliveries": views })))
}
