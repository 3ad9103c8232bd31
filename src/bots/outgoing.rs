//! The outgoing webhook dispatcher: a task apart from chat delivery that
//! sends every queued event ([`crate::store::deliveries`]) to its bot's
//! URL, retrying with exponential backoff and jitter until it succeeds or
//! `webhook_retry_hours` have passed since the event, with at most
//! `webhook_max_in_flight` requests per bot at once. A 2xx answer with a
//! JSON `body` is posted as the bot's reply in the event's topic. An event
//! leaves the store only once delivered or given up on, so a restart
//! resumes what was left (at least once; the event id allows deduplication).
//! Every attempt goes to the bot's delivery log in the store (the newest
//! [`super::LOG_LEN`]); a resumed event counts its attempts on from there.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client;
use crate::chat::{messages, topic};
use crate::clock;
use crate::state::State;
use crate::store::records::{AttemptOutcome, DeliveryAttemptRecord, DeliveryRecord};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Starts the dispatcher: resumes the events left in the store, then
/// takes new ones as they commit.
pub fn start(state: State) {
    let Some(mut receiver) = state.bots.take_receiver() else {
        return;
    };
    tokio::spawn(async move {
        let running: Arc<Mutex<HashSet<u64>>> = Arc::default();
        match state.store.pending_deliveries().await {
            Ok(pending) => {
                if !pending.is_empty() {
                    tracing::info!(events = pending.len(), "resuming webhook deliveries");
                }
                for record in pending {
                    spawn(&state, &running, record, true);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read queued webhook deliveries"),
        }
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                next = receiver.recv() => match next {
                    Some(record) => spawn(&state, &running, record, false),
                    None => break,
                },
            }
        }
    });
}

fn spawn(state: &State, running: &Arc<Mutex<HashSet<u64>>>, record: DeliveryRecord, resumed: bool) {
    if let Ok(mut set) = running.lock() {
        if !set.insert(record.event_id) {
            return;
        }
    }
    let state = state.clone();
    let running = running.clone();
    tokio::spawn(async move {
        let event_id = record.event_id;
        tokio::select! {
            _ = state.shutdown.cancelled() => {}
            _ = deliver(&state, record, resumed) => {}
        }
        if let Ok(mut set) = running.lock() {
            set.remove(&event_id);
        }
    });
}

/// The wait before retry number `attempt` (1-based): base × 2^(attempt-1),
/// at most an hour, with up to ±25 % jitter.
pub fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(MAX_BACKOFF.as_millis() as u64);
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    let unit = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    let factor = 0.75 + unit * 0.5;
    Duration::from_millis(((capped as f64) * factor) as u64)
}

async fn finish(state: &State, event_id: u64) {
    if let Err(e) = state.store.finish_delivery(event_id).await {
        tracing::warn!(event_id, error = %e, "cannot drop a finished webhook event");
    }
}

/// Adds an attempt to the bot's delivery log in the store.
async fn log(state: &State, bot_id: u64, attempt: DeliveryAttemptRecord) {
    let event_id = attempt.event_id;
    match state
        .store
        .log_delivery_attempt(bot_id, attempt, super::LOG_LEN)
        .await
    {
        // Deleted meanwhile: its log went with it.
        Ok(()) | Err(crate::error::Error::NotFound(_)) => {}
        Err(e) => tracing::warn!(event_id, error = %e, "cannot log a webhook delivery attempt"),
    }
}

/// The attempts already logged for a resumed event (0 for a new one).
async fn attempts_before(state: &State, record: &DeliveryRecord) -> u32 {
    match state.store.delivery_log(record.bot_id).await {
        Ok(log) => log
            .iter()
            .filter(|a| a.event_id == record.event_id)
            .map(|a| a.attempt)
            .max()
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn deliver(state: &State, record: DeliveryRecord, resumed: bool) {
    let cfg = &state.cfg;
    let deadline = record
        .created_at
        .saturating_add((cfg.webhook_retry_hours as i64).saturating_mul(3_600_000));
    let limit = state
        .bots
        .limit(record.bot_id, cfg.webhook_max_in_flight.max(1));
    let mut attempts = if resumed {
        attempts_before(state, &record).await
    } else {
        0
    };
    loop {
        let bot = match state.store.bot(record.bot_id).await {
            Ok(Some(bot)) => bot,
            Ok(None) => return finish(state, record.event_id).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a bot for delivery");
                tokio::time::sleep(backoff(cfg.webhook_retry_base_ms, attempts + 1)).await;
                continue;
            }
        };
        let Some(url) = bot.webhook_url.clone() else {
            return finish(state, record.event_id).await;
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let at = clock::now_ms();
        let started = Instant::now();
        let result = client::send(
            &cfg.webhook_allowed_hosts,
            state.bots.tls(cfg),
            &url,
            &bot.signing_secret,
            record.event_id,
            &record.body,
        )
        .await;
        drop(permit);
        let latency_ms = started.elapsed().as_millis() as u64;
        attempts = attempts.saturating_add(1);
        match result {
            Ok(answer) => {
                let attempt = DeliveryAttemptRecord {
                    event_id: record.event_id,
                    attempt: attempts,
                    at,
                    status: Some(answer.status),
                    error: None,
                    latency_ms,
                    outcome: AttemptOutcome::Delivered,
                };
                log(state, record.bot_id, attempt).await;
                if let Some(reply) = answer.reply {
                    post_reply(state, &record, reply).await;
                }
                return finish(state, record.event_id).await;
            }
            Err(failure) => {
                let give_up = failure.permanent || clock::now_ms() >= deadline;
                let attempt = DeliveryAttemptRecord {
                    event_id: record.event_id,
                    attempt: attempts,
                    at,
                    status: failure.status,
                    error: Some(failure.error.clone()),
                    latency_ms,
                    outcome: if give_up {
                        AttemptOutcome::GaveUp
                    } else {
                        AttemptOutcome::Retrying
                    },
                };
                log(state, record.bot_id, attempt).await;
                if give_up {
                    tracing::warn!(
                        event_id = record.event_id,
                        bot_id = record.bot_id,
                        error = %failure.error,
                        "webhook event given up"
                    );
                    return finish(state, record.event_id).await;
                }
                tokio::time::sleep(backoff(cfg.webhook_retry_base_ms, attempts)).await;
            }
        }
    }
}

/// Posts a bot's answer in the topic of the event, through the chat path;
/// the event id makes the client id, so a redelivered answer posts once.
async fn post_reply(state: &State, record: &DeliveryRecord, reply: String) {
    let outcome = async {
        let user = state
            .store
            .user(record.bot_id)
            .await?
            .ok_or(crate::error::Error::NotFound("bot"))?;
        if let Some((_, text)) = messages::body_problem(&reply, state.cfg.max_body_chars, false) {
            return Err(crate::error::Error::field("body", text));
        }
        let access = topic::require(state, &user, &record.topic).await?;
        let draft = messages::Draft {
            body: reply,
            client_id: Some(format!("webhook-reply-{}", record.event_id)),
            attachment_id: None,
        };
        messages::post_and_wait(state, &user, &access, draft).await
    }
    .await;
    if let Err(e) = outcome {
        tracing::info!(event_id = record.event_id, error = %e, "webhook reply not posted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for attempt in 1..5u32 {
            let d = backoff(100, attempt).as_millis() as u64;
            let nominal = 100u64 << (attempt - 1);
            assert!(
                d >= nominal * 3 / 4 && d <= nominal * 5 / 4,
                "{attempt}: {d}"
            );
        }
        assert!(backoff(1000, 40) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }
}
