//! Bots' own message rate limits (table `bot_rate_limits`, one row per bot
//! limited otherwise than people; the row goes with the bot's `bots` row).

use super::convert::{from_db, to_db};
use super::error::db;
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::records::RateLimit;

/// A u32 setting read back from a `bigint` column (CHECKed to fit).
pub fn setting(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The bots with a rate limit of their own, by user id.
pub async fn all(store: &PgStore) -> Result<Vec<(u64, RateLimit)>> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT user_id, burst, refill_per_sec FROM bot_rate_limits ORDER BY user_id",
        )
        .await
        .map_err(db)?;
    let rows = client.query(&statement, &[]).await.map_err(db)?;
    rows.iter()
        .map(|row| {
            let column =
                |e: tokio_postgres::Error| Error::Store(format!("bot_rate_limits row: {e}"));
            Ok((
                from_db(row.try_get(0).map_err(column)?),
                RateLimit {
                    burst: setting(row.try_get(1).map_err(column)?),
                    refill_per_sec: setting(row.try_get(2).map_err(column)?),
                },
            ))
        })
        .collect()
}

/// Sets (or with `None` drops) a bot's own rate limit; 404 for no such bot.
pub async fn set(store: &PgStore, user_id: u64, limit: Option<RateLimit>) -> Result<()> {
    let client = store.client().await?;
    let id = to_db(user_id);
    let found = match limit {
        Some(limit) => {
            let statement = client
                .prepare_cached(
                    "INSERT INTO bot_rate_limits (user_id, burst, refill_per_sec) \
                     SELECT user_id, $2, $3 FROM bots WHERE user_id = $1 \
                     ON CONFLICT (user_id) DO UPDATE \
                     SET burst = EXCLUDED.burst, refill_per_sec = EXCLUDED.refill_per_sec",
                )
                .await
                .map_err(db)?;
            let (burst, refill) = (i64::from(limit.burst), i64::from(limit.refill_per_sec));
            client
                .execute(&statement, &[&id, &burst, &refill])
                .await
                .map_err(db)?
        }
        None => {
            let statement = client
                .prepare_cached(
                    "WITH bot AS (SELECT user_id FROM bots WHERE user_id = $1), \
                     dropped AS (DELETE FROM bot_rate_limits \
                                 WHERE user_id IN (SELECT user_id FROM bot)) \
                     SELECT count(*) FROM bot",
                )
                .await
                .map_err(db)?;
            let row = client.query_one(&statement, &[&id]).await.map_err(db)?;
            let count: i64 = row.try_get(0).map_err(db)?;
            from_db(count)
        }
    };
    if found == 0 {
        return Err(Error::NotFound("bot"));
    }
    Ok(())
}
