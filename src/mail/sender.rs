//! The background sender: works through the mail queue in the store, one
//! mail at a time, retrying a failed mail with exponential backoff (1 s
//! doubling to at most 15 min) until it is a day old, then giving it up.
//! Sent and given-up mails leave the queue. Failures go to the log and to
//! `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::transport::Mailer;
use crate::clock;
use crate::metrics::Metrics;
use crate::state::State;

/// First retry delay.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest delay between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(15 * 60);
/// A mail not sent this long after it was queued is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Longest sleep with nothing due (the queue is looked at again after it).
const IDLE: Duration = Duration::from_secs(60);
/// Mails taken from the queue per look.
const BATCH: usize = 16;

/// Delay before the attempt after `attempts` failures.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
}

/// Starts the sender, when mail is configured.
pub fn spawn(state: State, mailer: Mailer) {
    tokio::spawn(run(state, Arc::new(mailer)));
}

async fn run(state: State, mailer: Arc<Mailer>) {
    loop {
        let sleep = match pass(&state, &mailer).await {
            Ok(sleep) => sleep,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail queue failed");
                IDLE
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = state.outbox.wait() => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Sends what is due; returns how long to sleep before the next look.
async fn pass(state: &State, mailer: &Mailer) -> crate::error::Result<Duration> {
    loop {
        let due = state.store.due_mail(clock::now_ms(), BATCH).await?;
        if due.is_empty() {
            break;
        }
        for (id, mail) in due {
            if state.shutdown.is_cancelled() {
                return Ok(IDLE);
            }
            match mailer.send(&mail).await {
                Ok(()) => {
                    state.store.remove_mail(id).await?;
                    Metrics::inc(&state.metrics.mail_sent);
                    tracing::info!(id, "mail sent");
                }
                Err(e) => {
                    Metrics::inc(&state.metrics.mail_failures);
                    let attempts = mail.attempts.saturating_add(1);
                    let now = clock::now_ms();
                    let age = Duration::from_millis((now - mail.created_at).max(0) as u64);
                    if e.permanent || age >= GIVE_UP_AFTER {
                        state.store.remove_mail(id).await?;
                        Metrics::inc(&state.metrics.mail_dropped);
                        tracing::error!(id, attempts, error = %e.message, "mail given up");
                    } else {
                        let delay = backoff(attempts);
                        let next = now + delay.as_millis() as i64;
                        state.store.mail_attempt_failed(id, attempts, next).await?;
                        tracing::warn!(
                            id,
                            attempts,
                            retry_in_secs = delay.as_secs_f64(),
                            error = %e.message,
                            "mail not sent; will retry"
                        );
                    }
                }
            }
        }
    }
    let status = state.store.mail_queue_status().await?;
    state
        .metrics
        .mail_queued
        .store(status.queued as u64, Ordering::Relaxed);
    let sleep = status.next_attempt_at.map_or(IDLE, |at| {
        Duration::from_millis((at - clock::now_ms()).max(0) as u64).min(IDLE)
    });
    Ok(sleep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
