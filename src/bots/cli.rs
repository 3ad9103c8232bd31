//! What `confab bot …` and `confab hook …` do and print, on a stopped
//! server's store or on the running server's state behind the admin socket
//! (the same text either way). The work itself is [`super::manage`], as for
//! the REST API. `Ok` is the text for stdout, `Err` the one failure line.

use std::collections::HashMap;

use super::manage::{self, BotInput};
use crate::error::Error;
use crate::state::AppState;
use crate::store::records::RateLimit;

type Outcome = Result<String, String>;

/// One line for a failure, with field errors spelled out and unknown
/// names named.
fn line(error: Error, what: &str, name: &str) -> String {
    match error {
        Error::NotFound(kind) if kind == what => format!("no {what} named {name:?}"),
        Error::NotFound(kind) => format!("no {kind} named {name:?}"),
        other => crate::commands::describe(&other),
    }
}

fn secrets_text(secrets: &manage::Secrets) -> String {
    format!(
        "key: {}\nsigning secret: {}\n",
        secrets.key, secrets.signing_secret
    )
}

/// `confab bot add`.
pub async fn bot_add(state: &AppState, input: BotInput) -> Outcome {
    let name = input.username.clone();
    let (user, bot, secrets) = manage::create_bot(state, input, 0)
        .await
        .map_err(|e| line(e, "bot", &name))?;
    tracing::info!(bot = %user.username, "bot created from the command line");
    let mut out = format!("created bot {} (id {})\n", user.username, user.id);
    if let Some(url) = &bot.webhook_url {
        out.push_str(&format!(
            "webhook: {url}{}\n",
            if bot.all_messages {
                " (all messages)"
            } else {
                ""
            }
        ));
    }
    out.push_str(&secrets_text(&secrets));
    Ok(out)
}

/// `confab bot list`.
pub async fn bot_list(state: &AppState) -> Outcome {
    let bots = state
        .store
        .bots()
        .await
        .map_err(|e| crate::commands::describe(&e))?;
    let limits = own_limits(state).await?;
    let mut out = format!(
        "{:>6}  {:<32}  {:<8}  {:<14}  webhook\n",
        "id", "username", "flags", "rate limit"
    );
    for (user, bot) in bots {
        let flags = match (user.disabled, bot.all_messages) {
            (true, _) => "disabled",
            (false, true) => "all",
            (false, false) => "",
        };
        let limit = match limits.get(&user.id) {
            Some(limit) => format!("{}/s burst {}", limit.refill_per_sec, limit.burst),
            None => "default".to_string(),
        };
        out.push_str(&format!(
            "{:>6}  {:<32}  {:<8}  {:<14}  {}\n",
            user.id,
            user.username,
            flags,
            limit,
            bot.webhook_url.as_deref().unwrap_or("-")
        ));
    }
    Ok(out)
}

/// `confab bot key`: rotates the key and signing secret.
pub async fn bot_key(state: &AppState, name: &str) -> Outcome {
    let user = manage::bot_named(state, name)
        .await
        .map_err(|e| line(e, "bot", name))?;
    let secrets = manage::rotate_key(state, &user)
        .await
        .map_err(|e| line(e, "bot", name))?;
    tracing::info!(bot = %user.username, "bot key rotated from the command line");
    Ok(format!(
        "new key for bot {}; the old key is refused from now on\n{}",
        user.username,
        secrets_text(&secrets)
    ))
}

/// `confab bot delete`.
pub async fn bot_delete(state: &AppState, name: &str) -> Outcome {
    let user = manage::bot_named(state, name)
        .await
        .map_err(|e| line(e, "bot", name))?;
    manage::delete_bot(state, &user)
        .await
        .map_err(|e| line(e, "bot", name))?;
    tracing::info!(bot = %user.username, "bot deleted from the command line");
    Ok(format!("deleted bot {}\n", user.username))
}

/// The bots' own rate limits, from the store.
async fn own_limits(state: &AppState) -> Result<HashMap<u64, RateLimit>, String> {
    let limits = state
        .store
        .bot_rate_limits()
        .await
        .map_err(|e| crate::commands::describe(&e))?;
    Ok(limits.into_iter().collect())
}

fn limit_text(limit: &RateLimit) -> String {
    let plural = if limit.refill_per_sec == 1 { "" } else { "s" };
    format!(
        "{} message{plural} a second, bursts of {}",
        limit.refill_per_sec, limit.burst
    )
}

/// `confab bot limit NAME [N|default] [--burst B]`: shows the bot's rate
/// limit, sets it to N messages a second (bursts of B, else N), or returns
/// it to the limit of people.
pub async fn bot_limit(
    state: &AppState,
    name: &str,
    rate: Option<&str>,
    burst: Option<u32>,
) -> Outcome {
    let user = manage::bot_named(state, name)
        .await
        .map_err(|e| line(e, "bot", name))?;
    let default = super::default_rate_limit(&state.cfg);
    let limit = match rate {
        None if burst.is_some() => return Err("--burst needs a limit N".to_string()),
        None => {
            return Ok(match own_limits(state).await?.get(&user.id) {
                Some(limit) => format!("bot {}: {}\n", user.username, limit_text(limit)),
                None => format!(
                    "bot {}: the default for people ({})\n",
                    user.username,
                    limit_text(&default)
                ),
            })
        }
        Some("default") if burst.is_some() => {
            return Err("--burst goes with a limit N, not with default".to_string())
        }
        Some("default") => None,
        Some(text) => {
            let refill_per_sec = text.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                format!("{text:?} is not a limit: give a whole number of messages a second (at least 1) or default")
            })?;
            let burst = burst.unwrap_or(refill_per_sec);
            if burst == 0 {
                return Err("--burst must be at least 1".to_string());
            }
            Some(RateLimit {
                burst,
                refill_per_sec,
            })
        }
    };
    manage::set_rate_limit(state, &user, limit)
        .await
        .map_err(|e| line(e, "bot", name))?;
    tracing::info!(bot = %user.username, ?limit, "bot rate limit set from the command line");
    Ok(match limit {
        Some(limit) => format!("bot {}: now {}\n", user.username, limit_text(&limit)),
        None => format!(
            "bot {}: now the default for people ({})\n",
            user.username,
            limit_text(&default)
        ),
    })
}

/// `confab hook add`: posts as the bot `as_bot`, else as the room's owner.
pub async fn hook_add(state: &AppState, room: &str, as_bot: Option<&str>) -> Outcome {
    let record = manage::room_named(state, room)
        .await
        .map_err(|e| line(e, "room", room))?;
    if let Some(bot) = as_bot {
        manage::bot_named(state, bot)
            .await
            .map_err(|e| line(e, "bot", bot))?;
    }
    let owner = (record.owner != 0).then_some(record.owner);
    if as_bot.is_none() && owner.is_none() {
        return Err(format!(
            "room {room} has no owner to post as; name a bot with --as BOT"
        ));
    }
    let poster = match manage::hook_poster(state, &record, as_bot, owner).await {
        Ok(poster) => poster,
        Err(Error::Validation(fields)) => {
            let reasons: Vec<String> = fields.into_values().flatten().collect();
            let who = as_bot.map_or("the room's owner".to_string(), |b| format!("bot {b}"));
            return Err(format!(
                "a hook of room {room} cannot post as {who}: {}",
                reasons.join(", ")
            ));
        }
        Err(e) => return Err(line(e, "room", room)),
    };
    let (hook, token) = manage::create_hook(state, &record, &poster, 0)
        .await
        .map_err(|e| line(e, "room", room))?;
    let path = format!("/hooks/{token}");
    let url = match state.cfg.public_url.trim_end_matches('/') {
        "" => path,
        base => format!("{base}{path}"),
    };
    Ok(format!(
        "created hook {} in room {} posting as {}\nurl: {url}\n",
        hook.id, record.name, poster.username
    ))
}

/// `confab hook list`.
pub async fn hook_list(state: &AppState, room: &str) -> Outcome {
    let record = manage::room_named(state, room)
        .await
        .map_err(|e| line(e, "room", room))?;
    let hooks = state
        .store
        .hooks_of_topic(record.topic_id)
        .await
        .map_err(|e| crate::commands::describe(&e))?;
    let mut out = format!("{:>6}  posts as\n", "id");
    for hook in hooks {
        let user = state
            .store
            .user(hook.user_id)
            .await
            .map_err(|e| crate::commands::describe(&e))?;
        let name = user.map_or_else(|| format!("#{}", hook.user_id), |u| u.username);
        out.push_str(&format!("{:>6}  {name}\n", hook.id));
    }
    Ok(out)
}

/// `confab hook delete`.
pub async fn hook_delete(state: &AppState, room: &str, id: &str) -> Outcome {
    let record = manage::room_named(state, room)
        .await
        .map_err(|e| line(e, "room", room))?;
    let not_found = || format!("room {room} has no hook {id:?}");
    let hook_id = manage::hook_id(id).map_err(|_| not_found())?;
    match state.store.delete_hook(record.topic_id, hook_id).await {
        Ok(()) => Ok(format!("deleted hook {hook_id} of room {room}\n")),
        Err(Error::NotFound(_)) => Err(not_found()),
        Err(e) => Err(crate::commands::describe(&e)),
    }
}
