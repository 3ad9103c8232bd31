//! The outbox of outgoing webhooks: `deliveries` (event id →
//! [`DeliveryRecord`]). Events are written in the same commit as the
//! message that caused them, so none is lost to a crash, and deleted once
//! delivered or given up on; at start the server resumes what is left.

use redb::{ReadableMultimapTable, ReadableTable};

use super::codec;
use super::meta::next_id;
use super::tables::{DELIVERIES, USER_TOPICS};
use super::{EmbeddedStore, WriteCtx};
use crate::clock;
use crate::error::Result;
use crate::store::ops::BotAudience;
use crate::store::records::{AttachmentRecord, DeliveryRecord, Stored};

/// A bot that may be told of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    bot_id: u64,
    /// Only if the bot is a member of the message's topic.
    if_member: bool,
}

fn is_member_in(ctx: &mut WriteCtx<'_>, topic_id: u64, user_id: u64) -> Result<bool> {
    let members = ctx.tx().open_multimap_table(USER_TOPICS)?;
    for value in members.get(user_id)? {
        if value?.value() == topic_id {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Queues one event per bot of `audience` that qualifies for message
/// `stored` (see [`BotAudience`]), inside the batch of the message.
pub fn enqueue_in(
    ctx: &mut WriteCtx<'_>,
    topic: &str,
    stored: &Stored,
    attachment: Option<&AttachmentRecord>,
    audience: &BotAudience,
) -> Result<Vec<DeliveryRecord>> {
    let direct = topic.starts_with("dm:");
    let mut candidates: Vec<Candidate> = audience
        .bots
        .iter()
        .filter(|(id, _)| *id != stored.record.user_id)
        .filter_map(|&(bot_id, all_messages)| {
            if stored.record.mentions.contains(&bot_id) {
                Some(Candidate {
                    bot_id,
                    if_member: false,
                })
            } else if direct || all_messages {
                Some(Candidate {
                    bot_id,
                    if_member: true,
                })
            } else {
                None
            }
        })
        .collect();
    candidates.sort_by_key(|c| c.bot_id);
    let mut out = Vec::new();
    for candidate in candidates {
        if candidate.if_member && !is_member_in(ctx, stored.topic_id, candidate.bot_id)? {
            continue;
        }
        let event_id = next_id(ctx.tx(), "next_event_id")?;
        let record = DeliveryRecord {
            event_id,
            bot_id: candidate.bot_id,
            topic: topic.to_string(),
            body: (audience.body)(event_id, topic, stored, &audience.author, attachment),
            created_at: clock::now_ms(),
        };
        ctx.tx()
            .open_table(DELIVERIES)?
            .insert(event_id, codec::encode(&record).as_slice())?;
        out.push(record);
    }
    Ok(out)
}

impl EmbeddedStore {
    /// Every event not delivered yet, oldest first.
    pub(super) async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        self.read(|tx| {
            let table = tx.open_table(DELIVERIES)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                out.push(codec::decode(value.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Drops an event once delivered or given up on.
    pub(super) async fn finish_delivery(&self, event_id: u64) -> Result<()> {
        self.write(move |ctx| {
            ctx.tx().open_table(DELIVERIES)?.remove(event_id)?;
            Ok(())
        })
        .await
    }
}
