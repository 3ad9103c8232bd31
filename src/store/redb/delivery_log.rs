//! The delivery log of outgoing webhooks: `delivery_log` ((bot user id, n)
//! → [`DeliveryAttemptRecord`]), n counting up per bot, so one bot's log is
//! one contiguous key range in the order the attempts were added. Each
//! write keeps only the newest attempts; deleting the bot drops its log in
//! the same write ([`forget_in`]).

use redb::ReadableTable;

use super::bot_limits::is_bot_in;
use super::codec;
use super::tables::DELIVERY_LOG;
use super::{EmbeddedStore, WriteCtx};
use crate::error::{Error, Result};
use crate::store::records::DeliveryAttemptRecord;

/// Drops a bot's delivery log inside the write that deletes the bot.
pub fn forget_in(ctx: &mut WriteCtx<'_>, bot_id: u64) -> Result<()> {
    let mut table = ctx.tx().open_table(DELIVERY_LOG)?;
    table.retain_in((bot_id, 0)..=(bot_id, u64::MAX), |_, _| false)?;
    Ok(())
}

impl EmbeddedStore {
    /// Adds an attempt to a bot's log and drops the oldest beyond `keep`
    /// (at least 1); 404 for no such bot.
    pub(super) async fn log_delivery_attempt(
        &self,
        bot_id: u64,
        attempt: DeliveryAttemptRecord,
        keep: usize,
    ) -> Result<()> {
        self.write(move |ctx| {
            if !is_bot_in(ctx, bot_id)? {
                return Err(Error::NotFound("bot"));
            }
            let mut table = ctx.tx().open_table(DELIVERY_LOG)?;
            let range = (bot_id, 0)..=(bot_id, u64::MAX);
            let next = match table.range(range.clone())?.next_back() {
                Some(entry) => entry?.0.value().1.saturating_add(1),
                None => 1,
            };
            table.insert((bot_id, next), codec::encode(&attempt).as_slice())?;
            // The newest `keep` (at least 1) have n > next - keep.
            let keep = u64::try_from(keep.max(1)).unwrap_or(u64::MAX);
            let oldest_kept = next.saturating_add(1).saturating_sub(keep);
            table.retain_in((bot_id, 0)..(bot_id, oldest_kept), |_, _| false)?;
            Ok(())
        })
        .await
    }

    /// A bot's delivery log, newest first.
    pub(super) async fn delivery_log(&self, bot_id: u64) -> Result<Vec<DeliveryAttemptRecord>> {
        self.read(move |tx| {
            let table = tx.open_table(DELIVERY_LOG)?;
            let mut out = Vec::new();
            for entry in table.range((bot_id, 0)..=(bot_id, u64::MAX))?.rev() {
                let (_, value) = entry?;
                out.push(codec::decode(value.value())?);
            }
            Ok(out)
        })
        .await
    }
}
