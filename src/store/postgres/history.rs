//! Reading history: pages, the page around a message, the recovery of a
//! join and the indexer's reads. Each is a range scan of the primary key
//! (topic_id, seq) of `messages`; the authors, attachments and reactions
//! of a page are then read with three statements sent together (the client
//! pipelines them on one connection).

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::{IsolationLevel, Row};

use super::convert::{from_db, ids_from_db, ids_to_db, to_db, Param};
use super::error::db;
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::ops::{AroundPage, HistoryQuery, MessagePage, Recovery, RecoveryQuery};
use crate::store::records::{Author, MessageRecord, ReactionEntry, ReactionsRecord, Stored};

/// The columns [`from_row`] reads, in order.
pub const COLUMNS: &str =
    "topic_id, seq, id, author_id, body, client_id, inserted_at, edited_at, deleted, mentions";

/// A `messages` row selected with [`COLUMNS`].
pub fn from_row(row: &Row) -> Result<Stored> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("messages row: {e}"));
    Ok(Stored {
        topic_id: from_db(row.try_get(0).map_err(column)?),
        seq: from_db(row.try_get(1).map_err(column)?),
        record: MessageRecord {
            id: from_db(row.try_get(2).map_err(column)?),
            user_id: from_db(row.try_get(3).map_err(column)?),
            body: row.try_get(4).map_err(column)?,
            client_id: row.try_get(5).map_err(column)?,
            inserted_at: row.try_get(6).map_err(column)?,
            edited_at: row.try_get(7).map_err(column)?,
            deleted: row.try_get(8).map_err(column)?,
            mentions: ids_from_db(row.try_get(9).map_err(column)?),
        },
    })
}

/// Rows of a page query: up to `limit` plus one, which only says that more
/// exist.
fn limited(rows: Vec<Row>, limit: usize) -> Result<(Vec<Stored>, bool)> {
    let has_more = rows.len() > limit;
    let stored = rows
        .iter()
        .take(limit)
        .map(from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok((stored, has_more))
}

/// The oldest `limit` messages with `seq > after`, ascending, and whether
/// newer ones exist.
pub async fn oldest_after(
    client: &impl GenericClient,
    topic_id: u64,
    after: u64,
    limit: usize,
) -> Result<(Vec<Stored>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE topic_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client
        .query(
            &statement,
            &[&to_db(topic_id), &to_db(after), &page_limit(limit)],
        )
        .await
        .map_err(db)?;
    limited(rows, limit)
}

/// The newest `limit` messages with `seq < before` (all when `None`),
/// ascending, and whether older ones exist.
pub async fn newest_before(
    client: &impl GenericClient,
    topic_id: u64,
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<Stored>, bool)> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE topic_id = $1 AND seq < $2 \
         ORDER BY seq DESC LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let before = before.map_or(i64::MAX, to_db);
    let rows = client
        .query(&statement, &[&to_db(topic_id), &before, &page_limit(limit)])
        .await
        .map_err(db)?;
    let (mut stored, has_more) = limited(rows, limit)?;
    stored.reverse();
    Ok((stored, has_more))
}

/// `limit + 1` as a bigint.
fn page_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

/// The authors, attachments and reactions of `messages` (ascending, one
/// topic).
async fn page(
    client: &impl GenericClient,
    messages: Vec<Stored>,
    has_more: bool,
) -> Result<MessagePage> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(MessagePage {
            has_more,
            ..MessagePage::default()
        });
    };
    let topic_id = to_db(first.topic_id);
    let (first_seq, last_seq) = (to_db(first.seq), to_db(last.seq));
    let mut author_ids: Vec<u64> = messages.iter().map(|m| m.record.user_id).collect();
    author_ids.sort_unstable();
    author_ids.dedup();
    let author_ids = ids_to_db(&author_ids);
    let users_sql = format!(
        "SELECT {} FROM users WHERE id = ANY($1)",
        super::users::COLUMNS
    );
    let attachments_sql = format!(
        "SELECT {} FROM attachments WHERE topic_id = $1 AND message_seq BETWEEN $2 AND $3",
        super::attachments::COLUMNS
    );
    let reactions_sql = "SELECT seq, emoji, user_id FROM reactions \
                         WHERE topic_id = $1 AND seq BETWEEN $2 AND $3 \
                         ORDER BY seq, emoji_ord, ord";
    let (users_statement, attachments_statement, reactions_statement) = tokio::try_join!(
        client.prepare_cached(&users_sql),
        client.prepare_cached(&attachments_sql),
        client.prepare_cached(reactions_sql),
    )
    .map_err(db)?;
    let users_params: [Param; 1] = [&author_ids];
    let range_params: [Param; 3] = [&topic_id, &first_seq, &last_seq];
    // Sent together: the client pipelines them on the connection.
    let (users, attachments, reactions) = tokio::try_join!(
        client.query(&users_statement, &users_params),
        client.query(&attachments_statement, &range_params),
        client.query(&reactions_statement, &range_params),
    )
    .map_err(db)?;
    let mut authors = HashMap::new();
    for row in &users {
        let user = super::users::from_row(row)?;
        authors.insert(user.id, Author::from(&user));
    }
    let mut by_seq = HashMap::new();
    for row in &attachments {
        let attachment = super::attachments::from_row(row)?;
        if let Some(seq) = attachment.linked_seq {
            by_seq.insert(seq, attachment);
        }
    }
    let mut attached = Vec::with_capacity(messages.len());
    for message in &messages {
        authors
            .entry(message.record.user_id)
            .or_insert_with(|| Author::unknown(message.record.user_id));
        attached.push(by_seq.remove(&message.seq));
    }
    Ok(MessagePage {
        messages,
        authors,
        attachments: attached,
        reactions: reactions_of(&reactions)?,
        has_more,
    })
}

/// Reactions rows (seq, emoji, user_id), ordered by seq, emoji order and
/// reaction order, grouped per message.
pub fn reactions_of(rows: &[Row]) -> Result<HashMap<u64, ReactionsRecord>> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("reactions row: {e}"));
    let mut out: HashMap<u64, ReactionsRecord> = HashMap::new();
    for row in rows {
        let seq = from_db(row.try_get(0).map_err(column)?);
        let emoji: String = row.try_get(1).map_err(column)?;
        let user = from_db(row.try_get(2).map_err(column)?);
        let record = out.entry(seq).or_default();
        match record.entries.last_mut() {
            Some(entry) if entry.emoji == emoji => entry.users.push(user),
            _ => record.entries.push(ReactionEntry {
                emoji,
                users: vec![user],
            }),
        }
    }
    Ok(out)
}

/// A page of history.
pub async fn history(store: &PgStore, topic_id: u64, query: HistoryQuery) -> Result<MessagePage> {
    let client = store.client().await?;
    let (stored, has_more) = match query.after {
        Some(after) => oldest_after(&client, topic_id, after, query.limit).await?,
        None => newest_before(&client, topic_id, query.before, query.limit).await?,
    };
    page(&client, stored, has_more).await
}

/// A page of up to `limit` messages centred on `seq`, ascending, read in
/// one snapshot (see the embedded store's `around` for the split).
pub async fn around(store: &PgStore, topic_id: u64, seq: u64, limit: usize) -> Result<AroundPage> {
    let limit = limit.max(1);
    let mut client = store.client().await?;
    let tx = snapshot(&mut client).await?;
    let (mut older, older_more) = newest_before(&tx, topic_id, Some(seq), limit).await?;
    let (mut newer, newer_more) = oldest_after(&tx, topic_id, seq.saturating_sub(1), limit).await?;
    let half = (limit - 1) / 2;
    let take_after = newer.len().min(limit - older.len().min(half));
    let take_before = older.len().min(limit - take_after);
    let has_more_before = older_more || older.len() > take_before;
    let has_more_after = newer_more || newer.len() > take_after;
    newer.truncate(take_after);
    let mut stored = older.split_off(older.len() - take_before);
    stored.append(&mut newer);
    let page = page(&tx, stored, false).await?;
    tx.commit().await.map_err(db)?;
    Ok(AroundPage {
        page,
        has_more_before,
        has_more_after,
    })
}

/// A read-only transaction on one snapshot.
async fn snapshot(client: &mut deadpool_postgres::Object) -> Result<Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db)
}

/// The history part of a join reply, read in one snapshot so that
/// `last_seq` and the messages agree.
pub async fn recovery(store: &PgStore, topic_id: u64, query: RecoveryQuery) -> Result<Recovery> {
    let mut client = store.client().await?;
    let tx = snapshot(&mut client).await?;
    let statement = tx
        .prepare_cached("SELECT epoch, last_seq FROM topics WHERE id = $1")
        .await
        .map_err(db)?;
    let row = tx
        .query_opt(&statement, &[&to_db(topic_id)])
        .await
        .map_err(db)?
        .ok_or_else(|| Error::Store(format!("topic {topic_id} has no record")))?;
    let epoch: String = row.try_get(0).map_err(db)?;
    let last_seq = from_db(row.try_get(1).map_err(db)?);
    let epoch_matches = query.epoch.as_deref().is_none_or(|e| e == epoch);
    let (stored, recovered, truncated) = match query.since {
        Some(since) if epoch_matches => {
            let (stored, more) = oldest_after(&tx, topic_id, since, query.max_recovery).await?;
            (stored, true, more)
        }
        _ => {
            let (stored, _) = newest_before(&tx, topic_id, None, query.default_limit).await?;
            (stored, false, false)
        }
    };
    let page = page(&tx, stored, truncated).await?;
    tx.commit().await.map_err(db)?;
    Ok(Recovery {
        epoch,
        last_seq,
        page,
        recovered,
    })
}

/// The oldest `limit` messages of a topic after `after` (the indexer's
/// catch-up).
pub async fn messages_after(
    store: &PgStore,
    topic_id: u64,
    after: u64,
    limit: usize,
) -> Result<(Vec<Stored>, bool)> {
    let client = store.client().await?;
    oldest_after(&client, topic_id, after, limit).await
}
