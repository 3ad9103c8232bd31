//! The tables every posted message touches (messages, client ids, read
//! positions, topic members, meta, unread mentions), opened once per write
//! batch instead of once per operation.
//!
//! Opening a redb table looks its definition up in the table tree and
//! closing it writes the root back; a post made seven opens of these five
//! tables, so a batch of a thousand messages made seven thousand. (That was
//! a small part of the cost of a post, see BENCHMARKS.md.) redb refuses to
//! open a table that is already open, so [`super::WriteCtx`] hands out the
//! raw transaction only after closing these (see `WriteCtx::tx`).

use redb::{MultimapTable, Table, WriteTransaction};

use super::tables::{
    CLIENT_ID_SEQ, MESSAGES, META, READ_POSITIONS, TOPIC_MEMBERS, UNREAD_MENTIONS,
};
use crate::error::Result;

/// The open tables of the hot path; dropping this closes them.
pub struct BatchTables<'a> {
    pub messages: Table<'a, (u64, u64), &'static [u8]>,
    pub client_id_seq: Table<'a, (u64, u64, &'static str), u64>,
    pub read_positions: Table<'a, (u64, u64), u64>,
    pub topic_members: MultimapTable<'a, u64, u64>,
    pub meta: Table<'a, &'static str, &'static [u8]>,
    pub unread_mentions: Table<'a, (u64, u64, u64), u64>,
}

impl<'a> BatchTables<'a> {
    /// Opens all of them in `tx`.
    pub fn open(tx: &'a WriteTransaction) -> Result<BatchTables<'a>> {
        Ok(BatchTables {
            messages: tx.open_table(MESSAGES)?,
            client_id_seq: tx.open_table(CLIENT_ID_SEQ)?,
            read_positions: tx.open_table(READ_POSITIONS)?,
            topic_members: tx.open_multimap_table(TOPIC_MEMBERS)?,
            meta: tx.open_table(META)?,
            unread_mentions: tx.open_table(UNREAD_MENTIONS)?,
        })
    }
}
