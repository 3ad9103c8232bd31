//! The outgoing mail queue: `mail_queue` maps a mail id to a
//! [`MailRecord`]. A mail is enqueued durably by the request that causes it
//! and removed once sent or given up; the mail sender works through it.

use redb::{ReadableTable, ReadableTableMetadata};

use super::codec;
use super::meta::next_id;
use super::tables::MAIL_QUEUE;
use super::{EmbeddedStore, WriteCtx};
use crate::error::Result;
use crate::store::ops::QueueStatus;
use crate::store::records::MailRecord;

/// Adds `mail` to the queue inside a write batch; returns its id.
pub fn enqueue_in(ctx: &mut WriteCtx<'_>, mail: &MailRecord) -> Result<u64> {
    let id = next_id(ctx.tx(), "next_mail_id")?;
    let mut queue = ctx.tx().open_table(MAIL_QUEUE)?;
    queue.insert(id, codec::encode(mail).as_slice())?;
    Ok(id)
}

impl EmbeddedStore {
    /// Adds `mail` to the queue; returns its id.
    pub(super) async fn enqueue_mail(&self, mail: MailRecord) -> Result<u64> {
        self.write(move |ctx| enqueue_in(ctx, &mail)).await
    }

    /// Up to `limit` mails whose next attempt is due by `now_ms`, oldest first.
    pub(super) async fn due_mail(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(u64, MailRecord)>> {
        self.read(move |tx| {
            let queue = tx.open_table(MAIL_QUEUE)?;
            let mut out = Vec::new();
            for entry in queue.iter()? {
                let (id, value) = entry?;
                let mail: MailRecord = codec::decode(value.value())?;
                if mail.next_attempt_at <= now_ms {
                    out.push((id.value(), mail));
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Removes a mail from the queue (sent, or given up).
    pub(super) async fn remove_mail(&self, id: u64) -> Result<()> {
        self.write(move |ctx| {
            ctx.tx().open_table(MAIL_QUEUE)?.remove(id)?;
            Ok(())
        })
        .await
    }

    /// Records a failed attempt: `attempts` so far, next try at `next_attempt_at`.
    pub(super) async fn mail_attempt_failed(
        &self,
        id: u64,
        attempts: u32,
        next_attempt_at: i64,
    ) -> Result<()> {
        self.write(move |ctx| {
            let mut queue = ctx.tx().open_table(MAIL_QUEUE)?;
            let found: Option<MailRecord> = queue
                .get(id)?
                .map(|v| codec::decode(v.value()))
                .transpose()?;
            if let Some(mut mail) = found {
                mail.attempts = attempts;
                mail.next_attempt_at = next_attempt_at;
                queue.insert(id, codec::encode(&mail).as_slice())?;
            }
            Ok(())
        })
        .await
    }

    /// How many mails wait and when the next one is due.
    pub(super) async fn mail_queue_status(&self) -> Result<QueueStatus> {
        self.read(|tx| {
            let queue = tx.open_table(MAIL_QUEUE)?;
            let mut status = QueueStatus {
                queued: queue.len()? as usize,
                next_attempt_at: None,
            };
            for entry in queue.iter()? {
                let (_, value) = entry?;
                let mail: MailRecord = codec::decode(value.value())?;
                status.next_attempt_at = Some(
                    status
                        .next_attempt_at
                        .map_or(mail.next_attempt_at, |t| t.min(mail.next_attempt_at)),
                );
            }
            Ok(status)
        })
        .await
    }
}
