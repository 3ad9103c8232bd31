//! Bots' own message rate limits: `bot_rate_limits` (bot user id →
//! [`RateLimit`]). A bot without a row is limited as people are; deleting
//! the bot drops its row in the same write ([`forget_in`]).

use redb::ReadableTable;

use super::codec;
use super::tables::{BOTS, BOT_RATE_LIMITS};
use super::{EmbeddedStore, WriteCtx};
use crate::error::{Error, Result};
use crate::store::records::RateLimit;

/// Whether `user_id` is a bot, inside a write batch.
pub fn is_bot_in(ctx: &mut WriteCtx<'_>, user_id: u64) -> Result<bool> {
    Ok(ctx.tx().open_table(BOTS)?.get(user_id)?.is_some())
}

/// Drops a bot's rate limit inside the write that deletes the bot.
pub fn forget_in(ctx: &mut WriteCtx<'_>, user_id: u64) -> Result<()> {
    ctx.tx().open_table(BOT_RATE_LIMITS)?.remove(user_id)?;
    Ok(())
}

impl EmbeddedStore {
    /// The bots with a rate limit of their own, by user id.
    pub(super) async fn bot_rate_limits(&self) -> Result<Vec<(u64, RateLimit)>> {
        self.read(|tx| {
            let table = tx.open_table(BOT_RATE_LIMITS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (id, value) = entry?;
                out.push((id.value(), codec::decode(value.value())?));
            }
            Ok(out)
        })
        .await
    }

    /// Sets (or with `None` drops) a bot's own rate limit; 404 for no such bot.
    pub(super) async fn set_bot_rate_limit(
        &self,
        user_id: u64,
        limit: Option<RateLimit>,
    ) -> Result<()> {
        self.write(move |ctx| {
            if !is_bot_in(ctx, user_id)? {
                return Err(Error::NotFound("bot"));
            }
            let mut table = ctx.tx().open_table(BOT_RATE_LIMITS)?;
            match limit {
                Some(limit) => {
                    table.insert(user_id, codec::encode(&limit).as_slice())?;
                }
                None => {
                    table.remove(user_id)?;
                }
            }
            Ok(())
        })
        .await
    }
}
