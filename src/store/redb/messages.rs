//! Message history: `messages` keyed (topic id, seq) so one topic is one
//! contiguous range, and `client_id_seq` for idempotent posting. Seqs start
//! at 1 per topic and are assigned inside the write batch that stores the
//! message, so they have no gaps.

use redb::{ReadTransaction, ReadableTable};

use super::codec;
use super::meta;
use super::tables::MESSAGES;
use super::WriteCtx;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::records::{MessageRecord, Stored};

/// The `meta` counter that hands out message ids.
const MESSAGE_ID_COUNTER: &str = "next_message_id";

/// The last seq of a topic inside a write batch.
pub fn head(ctx: &mut WriteCtx<'_>, topic_id: u64) -> Result<u64> {
    let (tables, cache) = ctx.tables_and_cache()?;
    if let Some(&seq) = cache.topic_heads.get(&topic_id) {
        return Ok(seq);
    }
    let last = tables
        .messages
        .range((topic_id, 0)..=(topic_id, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1);
    cache.topic_heads.insert(topic_id, last);
    Ok(last)
}

/// The message this user already posted with `client_id` on this topic.
pub fn existing(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    user_id: u64,
    client_id: Option<&str>,
) -> Result<Option<Stored>> {
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let seen = ctx
        .tables()?
        .client_id_seq
        .get((topic_id, user_id, client_id))?
        .map(|v| v.value());
    let Some(seq) = seen else {
        return Ok(None);
    };
    let record = get_in(ctx, topic_id, seq)?
        .ok_or_else(|| Error::Store(format!("client_id points at missing seq {seq}")))?;
    Ok(Some(Stored {
        topic_id,
        seq,
        record,
    }))
}

/// Stores a message with the next seq of its topic. The caller has checked
/// with [`existing`] in the same batch that `client_id` is not taken.
pub fn append(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    user_id: u64,
    body: String,
    client_id: Option<String>,
    mentions: Vec<u64>,
) -> Result<Stored> {
    let seq = head(ctx, topic_id)? + 1;
    let (tables, cache) = ctx.tables_and_cache()?;
    let record = MessageRecord {
        id: meta::next_id_in(&mut tables.meta, MESSAGE_ID_COUNTER)?,
        user_id,
        body,
        client_id,
        inserted_at: clock::now_ms(),
        edited_at: None,
        deleted: false,
        mentions,
    };
    tables
        .messages
        .insert((topic_id, seq), codec::encode(&record).as_slice())?;
    if let Some(client_id) = record.client_id.as_deref() {
        tables
            .client_id_seq
            .insert((topic_id, user_id, client_id), seq)?;
    }
    cache.topic_heads.insert(topic_id, seq);
    Ok(Stored {
        topic_id,
        seq,
        record,
    })
}

/// One message inside a write batch.
pub fn get_in(ctx: &mut WriteCtx<'_>, topic_id: u64, seq: u64) -> Result<Option<MessageRecord>> {
    let found = ctx.tables()?.messages.get((topic_id, seq))?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// Changes one message in place; `change` may refuse (nothing is written).
pub fn update<F>(ctx: &mut WriteCtx<'_>, topic_id: u64, seq: u64, change: F) -> Result<Stored>
where
    F: FnOnce(&mut MessageRecord) -> Result<()>,
{
    let mut record = get_in(ctx, topic_id, seq)?.ok_or(Error::NotFound("message"))?;
    change(&mut record)?;
    ctx.tables()?
        .messages
        .insert((topic_id, seq), codec::encode(&record).as_slice())?;
    Ok(Stored {
        topic_id,
        seq,
        record,
    })
}

/// The last seq of a topic (0 when empty).
pub fn last_seq(tx: &ReadTransaction, topic_id: u64) -> Result<u64> {
    let table = tx.open_table(MESSAGES)?;
    let last = table
        .range((topic_id, 0)..=(topic_id, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1);
    Ok(last)
}

/// One message.
pub fn get(tx: &ReadTransaction, topic_id: u64, seq: u64) -> Result<Option<Stored>> {
    let table = tx.open_table(MESSAGES)?;
    let found = table.get((topic_id, seq))?;
    found
        .map(|v| {
            Ok(Stored {
                topic_id,
                seq,
                record: codec::decode(v.value())?,
            })
        })
        .transpose()
}

/// The newest `limit` messages with `seq < before` (all when `None`),
/// ascending, and whether older ones exist.
pub fn newest_before(
    tx: &ReadTransaction,
    topic_id: u64,
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<Stored>, bool)> {
    let table = tx.open_table(MESSAGES)?;
    let end = before.unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(limit.min(256));
    let mut has_more = false;
    for entry in table.range((topic_id, 0)..(topic_id, end))?.rev() {
        let (key, value) = entry?;
        if out.len() == limit {
            has_more = true;
            break;
        }
        out.push(Stored {
            topic_id,
            seq: key.value().1,
            record: codec::decode(value.value())?,
        });
    }
    out.reverse();
    Ok((out, has_more))
}

/// The oldest `limit` messages with `seq > after`, ascending, and whether
/// newer ones exist.
pub fn oldest_after(
    tx: &ReadTransaction,
    topic_id: u64,
    after: u64,
    limit: usize,
) -> Result<(Vec<Stored>, bool)> {
    let table = tx.open_table(MESSAGES)?;
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut has_more = false;
    if after == u64::MAX {
        return Ok((out, false));
    }
    for entry in table.range((topic_id, after + 1)..=(topic_id, u64::MAX))? {
        let (key, value) = entry?;
        if out.len() == limit {
            has_more = true;
            break;
        }
        out.push(Stored {
            topic_id,
            seq: key.value().1,
            record: codec::decode(value.value())?,
        });
    }
    Ok((out, has_more))
}
