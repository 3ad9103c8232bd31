//! Direct conversations: `conversations` (id → record) and
//! `user_pair_conversation` (the pair, lower id first → id), so there is one
//! conversation per pair. Both participants are members of its topic.

use redb::{ReadTransaction, ReadableTable};

use super::codec;
use super::meta::next_id;
use super::tables::{CONVERSATIONS, USER_PAIR_CONVERSATION};
use super::topics;
use super::WriteCtx;
use crate::clock;
use crate::error::Result;
use crate::store::records::ConversationRecord;

/// One conversation by id.
pub fn get(tx: &ReadTransaction, id: u64) -> Result<Option<ConversationRecord>> {
    let table = tx.open_table(CONVERSATIONS)?;
    let found = table.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// The conversations `user_id` takes part in, found through the topics
/// they are a member of (a conversation's topic is `dm:<id>`).
pub fn of_user(tx: &ReadTransaction, user_id: u64) -> Result<Vec<ConversationRecord>> {
    let mut out = Vec::new();
    for topic_id in topics::of_user(tx, user_id)? {
        let Some(topic) = topics::get(tx, topic_id)? else {
            continue;
        };
        let Some(id) = topic
            .name
            .strip_prefix("dm:")
            .and_then(|id| id.parse().ok())
        else {
            continue;
        };
        if let Some(conversation) = get(tx, id)? {
            out.push(conversation);
        }
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// The conversation between two users, created if needed; the flag says
/// whether it is new.
pub fn open(ctx: &mut WriteCtx<'_>, a: u64, b: u64) -> Result<(ConversationRecord, bool)> {
    let pair = (a.min(b), a.max(b));
    let existing = ctx
        .tx()
        .open_table(USER_PAIR_CONVERSATION)?
        .get(pair)?
        .map(|v| v.value());
    if let Some(id) = existing {
        let table = ctx.tx().open_table(CONVERSATIONS)?;
        let found = table.get(id)?;
        if let Some(record) = found {
            return Ok((codec::decode(record.value())?, false));
        }
    }
    let id = next_id(ctx.tx(), "next_conversation_id")?;
    let topic_id = topics::create(ctx.tx(), &format!("dm:{id}"))?;
    let record = ConversationRecord {
        id,
        users: pair,
        topic_id,
        created_at: clock::now_ms(),
    };
    ctx.tx()
        .open_table(CONVERSATIONS)?
        .insert(id, codec::encode(&record).as_slice())?;
    ctx.tx()
        .open_table(USER_PAIR_CONVERSATION)?
        .insert(pair, id)?;
    topics::add_member(ctx.tx(), topic_id, pair.0)?;
    topics::add_member(ctx.tx(), topic_id, pair.1)?;
    Ok((record, true))
}
