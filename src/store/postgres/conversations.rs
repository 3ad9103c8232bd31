//! Direct conversations (table `conversations`, one per pair of users,
//! lower id first, topic `dm:<id>` with both as members) and ignores
//! (table `ignores`).
//!
//! A new conversation is made under a transaction-scoped advisory lock on
//! its pair, so two opens at once (on one node or several) make one
//! conversation and use no id in vain; an existing one is found without it.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::convert::{from_db, to_db, Param};
use super::error::db;
use super::rooms::{counts_from_row, counts_sql, create_topic};
use super::users;
use super::PgStore;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::ConversationSummary;
use crate::store::records::ConversationRecord;

/// The columns [`from_row`] reads, in order, for `SELECT {COLUMNS} FROM conversations`.
pub const COLUMNS: &str = "id, user_low, user_high, topic_id, created_at";

/// First key of the advisory locks on pairs ("conv"); the second is
/// [`pair_key`]. Two-key advisory locks never collide with the one-key
/// lock of the migrations.
const PAIR_LOCK: i32 = 0x636f_6e76;

/// A `conversations` row selected with [`COLUMNS`] from column `at` on.
pub fn from_row(row: &Row, at: usize) -> Result<ConversationRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("conversations row: {e}"));
    Ok(ConversationRecord {
        id: from_db(row.try_get(at).map_err(column)?),
        users: (
            from_db(row.try_get(at + 1).map_err(column)?),
            from_db(row.try_get(at + 2).map_err(column)?),
        ),
        topic_id: from_db(row.try_get(at + 3).map_err(column)?),
        created_at: row.try_get(at + 4).map_err(column)?,
    })
}

/// The second advisory lock key of the pair (`low`, `high`): a fixed mix
/// of both ids, the same on every node. Pairs sharing a key merely take
/// turns.
fn pair_key(low: u64, high: u64) -> i32 {
    let mixed = low.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
        ^ high.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let folded = (mixed ^ (mixed >> 32)) as u32;
    i32::from_ne_bytes(folded.to_ne_bytes())
}

/// The conversation of the pair, if there is one.
async fn of_pair(
    client: &impl GenericClient,
    low: &i64,
    high: &i64,
) -> Result<Option<ConversationRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM conversations WHERE user_low = $1 AND user_high = $2");
    let row = client.query_opt(&sql, &[low, high]).await.map_err(db)?;
    row.map(|row| from_row(&row, 0)).transpose()
}

/// The conversation between two users, created (both as members) if
/// needed; the flag says whether it is new.
pub async fn open(store: &PgStore, a: u64, b: u64) -> Result<(ConversationRecord, bool)> {
    let (low, high) = (a.min(b), a.max(b));
    let (low_db, high_db) = (to_db(low), to_db(high));
    let mut client = store.client().await?;
    if let Some(existing) = of_pair(&client, &low_db, &high_db).await? {
        return Ok((existing, false));
    }
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&PAIR_LOCK, &pair_key(low, high)],
    )
    .await
    .map_err(db)?;
    if let Some(existing) = of_pair(&tx, &low_db, &high_db).await? {
        return Ok((existing, false));
    }
    let id: i64 = tx
        .query_one("SELECT nextval('conversations_id_seq')", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    let topic_id = create_topic(&tx, "dm", &format!("dm:{id}")).await?;
    let record = ConversationRecord {
        id: from_db(id),
        users: (low, high),
        topic_id,
        created_at: clock::now_ms(),
    };
    let topic_db = to_db(topic_id);
    let params: [Param; 5] = [&id, &low_db, &high_db, &topic_db, &record.created_at];
    tx.execute(
        "INSERT INTO conversations (id, user_low, user_high, topic_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &params,
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO topic_members (topic_id, user_id) VALUES ($1, $2), ($1, $3) \
         ON CONFLICT DO NOTHING",
        &[&topic_db, &low_db, &high_db],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok((record, true))
}

/// One conversation by id.
pub async fn get(store: &PgStore, id: u64) -> Result<Option<ConversationRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {COLUMNS} FROM conversations WHERE id = $1");
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client
        .query_opt(&statement, &[&to_db(id)])
        .await
        .map_err(db)?;
    row.map(|row| from_row(&row, 0)).transpose()
}

/// The conversations of `user_id` (those whose topic they are a member
/// of), by id, with the other participant (skipped when their account is
/// gone) and the user's counts, read in one snapshot.
pub async fn list(store: &PgStore, user_id: u64) -> Result<Vec<ConversationSummary>> {
    let client = store.client().await?;
    let sql = format!(
        "SELECT u.*, c.id, c.user_low, c.user_high, c.topic_id, c.created_at, {} \
         FROM conversations c \
         JOIN topic_members m ON m.topic_id = c.topic_id AND m.user_id = $1 \
         JOIN LATERAL (SELECT {} FROM users \
                       WHERE id = CASE WHEN c.user_low = $1 THEN c.user_high \
                                       ELSE c.user_low END) u ON true \
         ORDER BY c.id",
        counts_sql("c.topic_id"),
        users::COLUMNS
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client
        .query(&statement, &[&to_db(user_id)])
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ConversationSummary {
                with: users::from_row(row)?,
                conversation: from_row(row, 10)?,
                counts: counts_from_row(row, 15)?,
            })
        })
        .collect()
}

/// The users `user_id` ignores.
pub async fn ignores(store: &PgStore, user_id: u64) -> Result<HashSet<u64>> {
    let client = store.client().await?;
    ignored_by(&client, user_id).await
}

/// The users `user_id` ignores, read through `client`.
async fn ignored_by(client: &impl GenericClient, user_id: u64) -> Result<HashSet<u64>> {
    let rows = client
        .query(
            "SELECT ignored_id FROM ignores WHERE user_id = $1",
            &[&to_db(user_id)],
        )
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| row.try_get::<_, i64>(0).map(from_db).map_err(db))
        .collect()
}

/// Starts or stops ignoring `other`; returns the new set.
pub async fn set_ignore(
    store: &PgStore,
    user_id: u64,
    other: u64,
    ignore: bool,
) -> Result<HashSet<u64>> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let sql = if ignore {
        "INSERT INTO ignores (user_id, ignored_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM ignores WHERE user_id = $1 AND ignored_id = $2"
    };
    tx.execute(sql, &[&to_db(user_id), &to_db(other)])
        .await
        .map_err(db)?;
    let set = ignored_by(&tx, user_id).await?;
    tx.commit().await.map_err(db)?;
    Ok(set)
}
