//! Read positions: `read_positions` maps (user, topic) to the last seq the
//! user has read; unread counts are the topic's last seq minus it.

use redb::{ReadTransaction, ReadableMultimapTable, ReadableTable};

use super::tables::READ_POSITIONS;
use super::WriteCtx;
use crate::error::Result;

/// The user's read position in a topic (0 if never read).
pub fn get(tx: &ReadTransaction, user_id: u64, topic_id: u64) -> Result<u64> {
    Ok(tx
        .open_table(READ_POSITIONS)?
        .get((user_id, topic_id))?
        .map_or(0, |v| v.value()))
}

/// Moves the read position forward to `seq` (never backwards); returns the new position.
pub fn advance(ctx: &mut WriteCtx<'_>, user_id: u64, topic_id: u64, seq: u64) -> Result<u64> {
    let table = &mut ctx.tables()?.read_positions;
    let current = table.get((user_id, topic_id))?.map_or(0, |v| v.value());
    if seq > current {
        table.insert((user_id, topic_id), seq)?;
        Ok(seq)
    } else {
        Ok(current)
    }
}

/// For every member of a topic other than `except`: `(user id, unread)`
/// given the topic's last seq is `last_seq`.
pub fn members_unread(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    last_seq: u64,
    except: u64,
) -> Result<Vec<(u64, u64)>> {
    let tables = ctx.tables()?;
    let positions = &tables.read_positions;
    let mut out = Vec::new();
    for member in tables.topic_members.get(topic_id)? {
        let member = member?.value();
        if member == except {
            continue;
        }
        let read = positions.get((member, topic_id))?.map_or(0, |v| v.value());
        out.push((member, last_seq.saturating_sub(read)));
    }
    Ok(out)
}
