//! The delivery log of outgoing webhooks (table `delivery_log`): each bot's
//! newest attempts in the order they were added (`id`); every insert drops
//! the attempts beyond the newest `keep` in the same transaction, and the
//! rows go with the bot's `bots` row.

use tokio_postgres::Row;

use super::convert::{from_db, to_db};
use super::error::db;
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::records::{AttemptOutcome, DeliveryAttemptRecord};

fn from_row(row: &Row) -> Result<DeliveryAttemptRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("delivery_log row: {e}"));
    let status: Option<i32> = row.try_get(3).map_err(column)?;
    let outcome: String = row.try_get(6).map_err(column)?;
    Ok(DeliveryAttemptRecord {
        event_id: from_db(row.try_get(0).map_err(column)?),
        attempt: u32::try_from(row.try_get::<_, i64>(1).map_err(column)?).unwrap_or(u32::MAX),
        at: row.try_get(2).map_err(column)?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        error: row.try_get(4).map_err(column)?,
        latency_ms: from_db(row.try_get(5).map_err(column)?),
        outcome: AttemptOutcome::from_name(&outcome)
            .ok_or_else(|| Error::Store(format!("delivery_log: unknown outcome {outcome:?}")))?,
    })
}

/// Adds an attempt to a bot's log and drops the oldest beyond `keep` (at
/// least 1); 404 for no such bot.
pub async fn add(
    store: &PgStore,
    bot_id: u64,
    attempt: DeliveryAttemptRecord,
    keep: usize,
) -> Result<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let bot = to_db(bot_id);
    let insert = tx
        .prepare_cached(
            "INSERT INTO delivery_log \
             (bot_id, event_id, attempt, at, status, error, latency_ms, outcome) \
             SELECT user_id, $2, $3, $4, $5, $6, $7, $8 FROM bots WHERE user_id = $1",
        )
        .await
        .map_err(db)?;
    let inserted = tx
        .execute(
            &insert,
            &[
                &bot,
                &to_db(attempt.event_id),
                &i64::from(attempt.attempt),
                &attempt.at,
                &attempt.status.map(i32::from),
                &attempt.error,
                &to_db(attempt.latency_ms),
                &attempt.outcome.as_str(),
            ],
        )
        .await
        .map_err(db)?;
    if inserted == 0 {
        return Err(Error::NotFound("bot"));
    }
    let trim = tx
        .prepare_cached(
            "DELETE FROM delivery_log WHERE bot_id = $1 AND id < \
             (SELECT min(id) FROM (SELECT id FROM delivery_log WHERE bot_id = $1 \
                                   ORDER BY id DESC LIMIT $2) AS newest)",
        )
        .await
        .map_err(db)?;
    let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
    tx.execute(&trim, &[&bot, &keep]).await.map_err(db)?;
    tx.commit().await.map_err(db)
}

/// A bot's delivery log, newest first.
pub async fn of_bot(store: &PgStore, bot_id: u64) -> Result<Vec<DeliveryAttemptRecord>> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT event_id, attempt, at, status, error, latency_ms, outcome \
             FROM delivery_log WHERE bot_id = $1 ORDER BY id DESC",
        )
        .await
        .map_err(db)?;
    let rows = client
        .query(&statement, &[&to_db(bot_id)])
        .await
        .map_err(db)?;
    rows.iter().map(from_row).collect()
}
