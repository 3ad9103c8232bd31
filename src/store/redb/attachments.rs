//! Attachments: small images. `attachments` keeps each one's metadata,
//! `attachment_bytes` its bytes, and `message_attachment` links a message
//! ((topic id, seq)) to at most one attachment.

use redb::{ReadTransaction, ReadableTable};

use super::codec;
use super::meta::next_id;
use super::tables::{ATTACHMENTS, ATTACHMENT_BYTES, MESSAGE_ATTACHMENT};
use super::WriteCtx;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::records::AttachmentRecord;

/// One attachment's metadata.
pub fn get(tx: &ReadTransaction, id: u64) -> Result<Option<AttachmentRecord>> {
    let table = tx.open_table(ATTACHMENTS)?;
    let found = table.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// The attachment of message (topic, seq), if it has one.
pub fn of_message(
    tx: &ReadTransaction,
    topic_id: u64,
    seq: u64,
) -> Result<Option<AttachmentRecord>> {
    let id = tx
        .open_table(MESSAGE_ATTACHMENT)?
        .get((topic_id, seq))?
        .map(|v| v.value());
    match id {
        Some(id) => get(tx, id),
        None => Ok(None),
    }
}

/// The attachment of message (topic, seq) inside a write batch.
pub fn of_message_in(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    seq: u64,
) -> Result<Option<AttachmentRecord>> {
    let id = ctx
        .tx()
        .open_table(MESSAGE_ATTACHMENT)?
        .get((topic_id, seq))?
        .map(|v| v.value());
    match id {
        Some(id) => get_in(ctx, id),
        None => Ok(None),
    }
}

fn get_in(ctx: &mut WriteCtx<'_>, id: u64) -> Result<Option<AttachmentRecord>> {
    let table = ctx.tx().open_table(ATTACHMENTS)?;
    let found = table.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// The attachment `id` if `user_id` uploaded it to `topic_id` and no message
/// carries it yet; a 422 otherwise. Writes nothing.
pub fn check(
    ctx: &mut WriteCtx<'_>,
    id: u64,
    topic_id: u64,
    user_id: u64,
) -> Result<AttachmentRecord> {
    let record =
        get_in(ctx, id)?.ok_or_else(|| Error::field("attachment_id", "no such attachment"))?;
    if record.topic_id != topic_id || record.user_id != user_id {
        return Err(Error::field(
            "attachment_id",
            "belongs to another topic or user",
        ));
    }
    if record.linked_seq.is_some() {
        return Err(Error::field(
            "attachment_id",
            "is already attached to a message",
        ));
    }
    Ok(record)
}

/// Links attachment `id` to message (topic, seq).
pub fn link(ctx: &mut WriteCtx<'_>, id: u64, topic_id: u64, seq: u64) -> Result<AttachmentRecord> {
    let mut record =
        get_in(ctx, id)?.ok_or_else(|| Error::field("attachment_id", "no such attachment"))?;
    record.linked_seq = Some(seq);
    ctx.tx()
        .open_table(ATTACHMENTS)?
        .insert(id, codec::encode(&record).as_slice())?;
    ctx.tx()
        .open_table(MESSAGE_ATTACHMENT)?
        .insert((topic_id, seq), id)?;
    Ok(record)
}

/// Erases the attachment of message (topic, seq), bytes included.
pub fn erase_of_message(ctx: &mut WriteCtx<'_>, topic_id: u64, seq: u64) -> Result<()> {
    let id = ctx
        .tx()
        .open_table(MESSAGE_ATTACHMENT)?
        .remove((topic_id, seq))?
        .map(|v| v.value());
    if let Some(id) = id {
        ctx.tx().open_table(ATTACHMENTS)?.remove(id)?;
        ctx.tx().open_table(ATTACHMENT_BYTES)?.remove(id)?;
    }
    Ok(())
}

/// Stores an image (its type already sniffed) for a topic.
pub fn add(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    user_id: u64,
    content_type: &str,
    bytes: &[u8],
) -> Result<AttachmentRecord> {
    let record = AttachmentRecord {
        id: next_id(ctx.tx(), "next_attachment_id")?,
        topic_id,
        user_id,
        content_type: content_type.to_string(),
        size: bytes.len() as u64,
        created_at: clock::now_ms(),
        linked_seq: None,
    };
    ctx.tx()
        .open_table(ATTACHMENTS)?
        .insert(record.id, codec::encode(&record).as_slice())?;
    ctx.tx()
        .open_table(ATTACHMENT_BYTES)?
        .insert(record.id, bytes)?;
    Ok(record)
}

/// One attachment with its bytes.
pub fn with_bytes(tx: &ReadTransaction, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>> {
    let Some(record) = get(tx, id)? else {
        return Ok(None);
    };
    let bytes = tx
        .open_table(ATTACHMENT_BYTES)?
        .get(id)?
        .map(|v| v.value().to_vec())
        .unwrap_or_default();
    Ok(Some((record, bytes)))
}
