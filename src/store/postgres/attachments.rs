//! Uploaded images (table `attachments`, bytes in a `bytea`, TOASTed out
//! of line so the other columns read without them). The size limit is the
//! request body limit, checked before the store is asked, as for the
//! embedded store; the type is sniffed by the caller.

use tokio_postgres::Row;

use super::convert::{from_db, to_db, Param};
use super::error::db;
use super::PgStore;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::records::AttachmentRecord;

/// Stores an image (already sniffed as `content_type`) for a topic.
pub async fn add(
    store: &PgStore,
    topic_id: u64,
    user_id: u64,
    content_type: &'static str,
    bytes: Vec<u8>,
) -> Result<AttachmentRecord> {
    let client = store.client().await?;
    let size = i64::try_from(bytes.len())
        .map_err(|_| Error::Store(format!("attachment of {} bytes", bytes.len())))?;
    let sql = format!(
        "INSERT INTO attachments (topic_id, uploader_id, content_type, size, bytes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let params: [Param; 6] = [
        &to_db(topic_id),
        &to_db(user_id),
        &content_type,
        &size,
        &bytes,
        &clock::now_ms(),
    ];
    let row = client.query_one(&sql, &params).await.map_err(db)?;
    from_row(&row)
}

/// One attachment with its bytes.
pub async fn get(store: &PgStore, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>> {
    let client = store.client().await?;
    let sql = format!("SELECT {COLUMNS}, bytes FROM attachments WHERE id = $1");
    let row = client.query_opt(&sql, &[&to_db(id)]).await.map_err(db)?;
    match row {
        Some(row) => {
            let bytes = row.try_get(7).map_err(db)?;
            Ok(Some((from_row(&row)?, bytes)))
        }
        None => Ok(None),
    }
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
