//! Mentions in the store: resolving names to users who may read a topic,
//! and `unread_mentions` keyed (user, topic, seq), so that reading up to a
//! seq clears one contiguous range and a count is a short range scan.

use std::collections::HashSet;

use redb::{ReadTransaction, ReadableMultimapTable, ReadableTable, ReadableTableMetadata};

use super::codec;
use super::tables::{ROOMS, UNREAD_MENTIONS, USERNAME_USER, USERS, USER_IGNORES};
use super::WriteCtx;
use crate::error::Result;
use crate::store::ops::MentionQuery;
use crate::store::records::{RoomRecord, UserRecord};

/// Whether everyone may read `topic` (a public room); otherwise only its members.
fn open_to_all(ctx: &mut WriteCtx<'_>, topic: &str) -> Result<bool> {
    let Some(name) = topic.strip_prefix("room:") else {
        return Ok(false);
    };
    let rooms = ctx.tx().open_table(ROOMS)?;
    let found = rooms.get(name)?;
    let room: Option<RoomRecord> = found.map(|v| codec::decode(v.value())).transpose()?;
    Ok(room.is_some_and(|room| !room.private))
}

/// The users named by `names` (each a list of spellings tried in order,
/// lowercase; the first that is an account wins) and the users in `also`,
/// without duplicates, keeping only enabled accounts that may read the topic.
pub fn resolve(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    topic: &str,
    names: &[Vec<String>],
    also: &[u64],
) -> Result<Vec<u64>> {
    let mut found: Vec<u64> = Vec::new();
    {
        let tx = ctx.tx();
        let index = tx.open_table(USERNAME_USER)?;
        let users = tx.open_table(USERS)?;
        let ids = names
            .iter()
            .map(|spellings| {
                for name in spellings {
                    if let Some(id) = index.get(name.as_str())? {
                        return Ok(Some(id.value()));
                    }
                }
                Ok(None)
            })
            .collect::<Result<Vec<Option<u64>>>>()?;
        for id in ids.into_iter().flatten().chain(also.iter().copied()) {
            if found.contains(&id) {
                continue;
            }
            let user: Option<UserRecord> = users
                .get(id)?
                .map(|v| codec::decode(v.value()))
                .transpose()?;
            if user.is_some_and(|u| !u.disabled) {
                found.push(id);
            }
        }
    }
    if found.is_empty() || open_to_all(ctx, topic)? {
        return Ok(found);
    }
    let mut members = HashSet::new();
    for member in ctx.tables()?.topic_members.get(topic_id)? {
        members.insert(member?.value());
    }
    found.retain(|id| members.contains(id));
    Ok(found)
}

/// Whether `user_id` ignores `author`.
pub fn ignores(ctx: &mut WriteCtx<'_>, user_id: u64, author: u64) -> Result<bool> {
    let table = ctx.tx().open_multimap_table(USER_IGNORES)?;
    for ignored in table.get(user_id)? {
        if ignored?.value() == author {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The last seq `user_id` has read in the topic, inside a write batch.
pub fn read_position(ctx: &mut WriteCtx<'_>, user_id: u64, topic_id: u64) -> Result<u64> {
    Ok(ctx
        .tables()?
        .read_positions
        .get((user_id, topic_id))?
        .map_or(0, |v| v.value()))
}

/// Records an unread mention of `user_id` at `seq` by `author`.
pub fn add_unread(
    ctx: &mut WriteCtx<'_>,
    user_id: u64,
    topic_id: u64,
    seq: u64,
    author: u64,
) -> Result<()> {
    ctx.tables()?
        .unread_mentions
        .insert((user_id, topic_id, seq), author)?;
    Ok(())
}

/// Drops the unread mention of `user_id` at `seq`, if any.
pub fn remove_unread(ctx: &mut WriteCtx<'_>, user_id: u64, topic_id: u64, seq: u64) -> Result<()> {
    ctx.tables()?
        .unread_mentions
        .remove((user_id, topic_id, seq))?;
    Ok(())
}

/// Clears the user's unread mentions in the topic up to and including `seq`.
pub fn clear_read(ctx: &mut WriteCtx<'_>, user_id: u64, topic_id: u64, seq: u64) -> Result<()> {
    let table = &mut ctx.tables()?.unread_mentions;
    let first = table
        .range((user_id, topic_id, 0)..=(user_id, topic_id, seq))?
        .next()
        .transpose()?
        .is_some();
    if first {
        table.retain_in((user_id, topic_id, 0)..=(user_id, topic_id, seq), |_, _| {
            false
        })?;
    }
    Ok(())
}

/// How many mentions of the user in the topic are unread, inside a write batch.
pub fn unread_count_in(ctx: &mut WriteCtx<'_>, user_id: u64, topic_id: u64) -> Result<u64> {
    let table = &ctx.tables()?.unread_mentions;
    let mut count = 0;
    for entry in table.range((user_id, topic_id, 0)..=(user_id, topic_id, u64::MAX))? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// How many mentions of the user in the topic are unread.
pub fn unread_count(tx: &ReadTransaction, user_id: u64, topic_id: u64) -> Result<u64> {
    let table = tx.open_table(UNREAD_MENTIONS)?;
    if table.is_empty()? {
        return Ok(0);
    }
    let mut count = 0;
    for entry in table.range((user_id, topic_id, 0)..=(user_id, topic_id, u64::MAX))? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// The users `query` mentions who may read the topic (empty for none).
pub fn resolve_query(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    topic: &str,
    query: Option<&MentionQuery>,
) -> Result<Vec<u64>> {
    match query {
        Some(query) => resolve(ctx, topic_id, topic, &query.names, &query.present),
        None => Ok(Vec::new()),
    }
}

/// Marks the message at `seq` as an unread mention for each of `added`
/// (other than the author, nor anyone ignoring the author, nor anyone who
/// has already read past it) and drops the marks of `removed`. Returns who
/// is to be told (`added` less the author and those ignoring them).
pub fn record(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    seq: u64,
    author: u64,
    added: &[u64],
    removed: &[u64],
) -> Result<Vec<u64>> {
    for &user in removed {
        remove_unread(ctx, user, topic_id, seq)?;
    }
    let mut notify = Vec::with_capacity(added.len());
    for &user in added {
        if user == author || ignores(ctx, user, author)? {
            continue;
        }
        if read_position(ctx, user, topic_id)? < seq {
            add_unread(ctx, user, topic_id, seq, author)?;
        }
        notify.push(user);
    }
    Ok(notify)
}
