//! Reactions: `reactions` keyed (topic id, seq) like `messages`, one
//! [`ReactionsRecord`] per message that has any. A page of history reads its
//! reactions with one range over the same seqs; a topic without reactions
//! costs one empty range lookup.

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};

use super::codec;
use super::messages;
use super::tables::REACTIONS;
use super::WriteCtx;
use crate::error::{Error, Result};
use crate::store::ops::Toggled;
use crate::store::records::{ReactionEntry, ReactionsRecord};

/// Most distinct emoji on one message.
pub const MAX_DISTINCT: usize = crate::store::ops::MAX_DISTINCT_EMOJI;

/// Adds or removes `user_id`'s `emoji` on message (topic, seq). A missing
/// or deleted message is [`Error::NotFound`]; nothing is written then.
pub fn toggle(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    seq: u64,
    emoji: &str,
    user_id: u64,
) -> Result<Toggled> {
    match messages::get_in(ctx, topic_id, seq)? {
        Some(record) if !record.deleted => {}
        _ => return Err(Error::NotFound("message")),
    }
    let mut table = ctx.tx().open_table(REACTIONS)?;
    let found: Option<ReactionsRecord> = table
        .get((topic_id, seq))?
        .map(|v| codec::decode(v.value()))
        .transpose()?;
    let mut record = found.unwrap_or_default();
    let toggled = match record.entries.iter().position(|e| e.emoji == emoji) {
        Some(at) => {
            let entry = &mut record.entries[at];
            match entry.users.iter().position(|&u| u == user_id) {
                Some(i) => {
                    entry.users.remove(i);
                    if entry.users.is_empty() {
                        record.entries.remove(at);
                    }
                    Toggled::Off
                }
                None => {
                    entry.users.push(user_id);
                    Toggled::On
                }
            }
        }
        None if record.entries.len() >= MAX_DISTINCT => return Ok(Toggled::Full),
        None => {
            record.entries.push(ReactionEntry {
                emoji: emoji.to_string(),
                users: vec![user_id],
            });
            Toggled::On
        }
    };
    if record.entries.is_empty() {
        table.remove((topic_id, seq))?;
    } else {
        table.insert((topic_id, seq), codec::encode(&record).as_slice())?;
    }
    Ok(toggled)
}

/// Forgets every reaction on message (topic, seq) (it was deleted).
pub fn erase_of_message(ctx: &mut WriteCtx<'_>, topic_id: u64, seq: u64) -> Result<()> {
    ctx.tx().open_table(REACTIONS)?.remove((topic_id, seq))?;
    Ok(())
}

/// The reactions of message (topic, seq) inside a write batch.
pub fn of_message_in(
    ctx: &mut WriteCtx<'_>,
    topic_id: u64,
    seq: u64,
) -> Result<Option<ReactionsRecord>> {
    let table = ctx.tx().open_table(REACTIONS)?;
    let found = table.get((topic_id, seq))?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// The reactions of the messages of `topic_id` with `first <= seq <= last`,
/// by seq (messages without reactions are absent).
pub fn of_range(
    tx: &ReadTransaction,
    topic_id: u64,
    first: u64,
    last: u64,
) -> Result<HashMap<u64, ReactionsRecord>> {
    let mut out = HashMap::new();
    if first > last {
        return Ok(out);
    }
    let table = tx.open_table(REACTIONS)?;
    for entry in table.range((topic_id, first)..=(topic_id, last))? {
        let (key, value) = entry?;
        out.insert(key.value().1, codec::decode(value.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{export, EmbeddedStore};
    use super::*;

    async fn store_with_message() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), 8, None).unwrap();
        store
            .write(|ctx| messages::append(ctx, 1, 5, "hi".into(), None, Vec::new()))
            .await
            .unwrap();
        (dir, store)
    }

    async fn toggle_on(store: &EmbeddedStore, emoji: &str, user: u64) -> Result<Toggled> {
        let emoji = emoji.to_string();
        store
            .write(move |ctx| toggle(ctx, 1, 1, &emoji, user))
            .await
    }

    #[tokio::test]
    async fn toggles_keeps_order_and_limits_distinct_emoji() {
        let (_dir, store) = store_with_message().await;
        assert_eq!(toggle_on(&store, "👍", 7).await.unwrap(), Toggled::On);
        assert_eq!(toggle_on(&store, "🎉", 8).await.unwrap(), Toggled::On);
        assert_eq!(toggle_on(&store, "👍", 8).await.unwrap(), Toggled::On);
        let read = store.read(|tx| of_range(tx, 1, 1, 1)).await.unwrap();
        let record = &read[&1];
        assert_eq!(record.entries[0].emoji, "👍");
        assert_eq!(record.entries[0].users, vec![7, 8]);
        assert_eq!(record.entries[1].emoji, "🎉");
        assert_eq!(toggle_on(&store, "👍", 7).await.unwrap(), Toggled::Off);
        assert_eq!(toggle_on(&store, "👍", 8).await.unwrap(), Toggled::Off);
        assert_eq!(toggle_on(&store, "🎉", 8).await.unwrap(), Toggled::Off);
        let read = store.read(|tx| of_range(tx, 1, 0, 10)).await.unwrap();
        assert!(read.is_empty(), "an emptied record is removed");

        for i in 0..MAX_DISTINCT {
            let emoji = format!("e{i}");
            assert_eq!(toggle_on(&store, &emoji, 7).await.unwrap(), Toggled::On);
        }
        assert_eq!(toggle_on(&store, "x", 7).await.unwrap(), Toggled::Full);
        // An emoji already there can still be added to and removed.
        assert_eq!(toggle_on(&store, "e3", 9).await.unwrap(), Toggled::On);
        assert_eq!(toggle_on(&store, "e3", 7).await.unwrap(), Toggled::Off);
    }

    #[tokio::test]
    async fn survive_export_and_import() {
        let (_dir, store) = store_with_message().await;
        toggle_on(&store, "👍", 7).await.unwrap();
        toggle_on(&store, "🎉", 8).await.unwrap();
        let before = store.read(|tx| of_range(tx, 1, 1, 1)).await.unwrap();
        let dump = store
            .read(|tx| {
                let mut out = Vec::new();
                export::export(tx, &mut out)?;
                Ok(out)
            })
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&dump).contains("\"type\":\"reactions\""));
        let restored_dir = tempfile::tempdir().unwrap();
        export::import(restored_dir.path(), dump.as_slice()).unwrap();
        let restored = EmbeddedStore::open(restored_dir.path(), 8, None).unwrap();
        let after = restored.read(|tx| of_range(tx, 1, 1, 1)).await.unwrap();
        assert_eq!(after, before);
    }

    #[tokio::test]
    async fn missing_or_deleted_messages_are_not_found() {
        let (_dir, store) = store_with_message().await;
        let missing = store
            .write(|ctx| toggle(ctx, 1, 2, "👍", 7))
            .await
            .unwrap_err();
        assert!(matches!(missing, Error::NotFound(_)));
        store
            .write(|ctx| {
                messages::update(ctx, 1, 1, |m| {
                    m.deleted = true;
                    Ok(())
                })
            })
            .await
            .unwrap();
        let deleted = toggle_on(&store, "👍", 7).await.unwrap_err();
        assert!(matches!(deleted, Error::NotFound(_)));
    }
}
