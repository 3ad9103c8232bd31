//! Uploaded images (table `attachments`, bytes in a `bytea`).

use tokio_postgres::Row;

use super::convert::from_db;
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::records::AttachmentRecord;

/// Not yet.
#[allow(unused_variables)]
pub async fn add(
    store: &PgStore,
    topic_id: u64,
    user_id: u64,
    content_type: &'static str,
    bytes: Vec<u8>,
) -> Result<AttachmentRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn get(store: &PgStore, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>> {
    let _ = store;
    Err(super::not_yet())
}
/// The columns [`from_row`] reads, in order (not the bytes).
pub const COLUMNS: &str = "id, topic_id, uploader_id, content_type, size, created_at, message_seq";

/// An `attachments` row selected with [`COLUMNS`].
pub fn from_row(row: &Row) -> Result<AttachmentRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("attachments row: {e}"));
    let linked: Option<i64> = row.try_get(6).map_err(column)?;
    Ok(AttachmentRecord {
        id: from_db(row.try_get(0).map_err(column)?),
        topic_id: from_db(row.try_get(1).map_err(column)?),
        user_id: from_db(row.try_get(2).map_err(column)?),
        content_type: row.try_get(3).map_err(column)?,
        size: from_db(row.try_get(4).map_err(column)?),
        created_at: row.try_get(5).map_err(column)?,
        linked_seq: linked.map(from_db),
    })
}
