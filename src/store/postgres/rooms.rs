//! Rooms, topics and membership (tables `rooms`, `topics`, `topic_members`)
//! and a user's counts in a topic (its `last_seq`, their read position and
//! unread mentions).
//!
//! Rooms are made under `LOCK TABLE rooms IN SHARE ROW EXCLUSIVE MODE`
//! (which only room creation conflicts with; reads and posts go on), so a
//! name is checked and taken in one step, as in the embedded store, and
//! nodes opening a fresh database at once make one lobby between them.
//! Lists are in the embedded store's order: rooms by name compared as bytes
//! (`COLLATE "C"`, whatever the database's collation).

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::convert::{from_db, owner_from_db, owner_to_db, to_db, Param};
use super::error::{db, is_unique_violation};
use super::PgStore;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::{NewRoom, RoomSummary, TopicCounts, LOBBY};
use crate::store::records::{RoomRecord, TopicRecord};

/// The columns [`from_row`] reads, in order, for `SELECT {COLUMNS} FROM rooms`.
pub const COLUMNS: &str = "name, topic_id, private, description, owner_id, created_at";

/// [`COLUMNS`] of the rooms aliased `r`.
const R_COLUMNS: &str = "r.name, r.topic_id, r.private, r.description, r.owner_id, r.created_at";

/// A `rooms` row selected with [`COLUMNS`] (first).
pub fn from_row(row: &Row) -> Result<RoomRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("rooms row: {e}"));
    Ok(RoomRecord {
        name: row.try_get(0).map_err(column)?,
        topic_id: from_db(row.try_get(1).map_err(column)?),
        private: row.try_get(2).map_err(column)?,
        description: row.try_get(3).map_err(column)?,
        owner: owner_from_db(row.try_get(4).map_err(column)?),
        created_at: row.try_get(5).map_err(column)?,
    })
}

/// The select list of a user's counts in the topic `topic` (an SQL
/// expression) for the user `$1`: last seq, read position, unread mentions.
pub fn counts_sql(topic: &str) -> String {
    format!(
        "coalesce((SELECT t.last_seq FROM topics t WHERE t.id = {topic}), 0), \
         coalesce((SELECT p.seq FROM read_positions p \
                   WHERE p.user_id = $1 AND p.topic_id = {topic}), 0), \
         (SELECT count(*) FROM unread_mentions m \
          WHERE m.user_id = $1 AND m.topic_id = {topic})"
    )
}

/// The counts selected with [`counts_sql`] at columns `at..at + 3`.
pub fn counts_from_row(row: &Row, at: usize) -> Result<TopicCounts> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("counts: {e}"));
    Ok(TopicCounts {
        last_seq: from_db(row.try_get(at).map_err(column)?),
        read: from_db(row.try_get(at + 1).map_err(column)?),
        unread_mentions: from_db(row.try_get(at + 2).map_err(column)?),
    })
}

/// The error for a room name already in use, as the embedded store gives it.
fn taken() -> Error {
    Error::field("name", "is already taken")
}

/// Whether the room `name` exists.
async fn exists(client: &impl GenericClient, name: &str) -> Result<bool> {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE name = $1)",
            &[&name],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)
}

/// Creates the topic `name` (`room:…` or `dm:…`, of `kind`) with a fresh
/// epoch; returns its id.
pub async fn create_topic(tx: &Transaction<'_>, kind: &str, name: &str) -> Result<u64> {
    let epoch = crate::random::random_token(9);
    let params: [Param; 4] = [&kind, &name, &epoch, &clock::now_ms()];
    let row = tx
        .query_one(
            "INSERT INTO topics (kind, name, epoch, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
            &params,
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                taken()
            } else {
                db(e)
            }
        })?;
    Ok(from_db(row.try_get(0).map_err(db)?))
}

/// Creates a room and its topic under the rooms lock; 422 on a taken name.
/// A non-zero owner becomes a member.
async fn insert_locked(tx: &Transaction<'_>, new: NewRoom) -> Result<RoomRecord> {
    tx.batch_execute("LOCK TABLE rooms IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(db)?;
    if exists(tx, &new.name).await? {
        return Err(taken());
    }
    let topic_id = create_topic(tx, "room", &format!("room:{}", new.name)).await?;
    let room = RoomRecord {
        name: new.name,
        topic_id,
        private: new.private,
        description: new.description,
        owner: new.owner,
        created_at: clock::now_ms(),
    };
    let params: [Param; 6] = [
        &room.name,
        &to_db(room.topic_id),
        &room.private,
        &room.description,
        &owner_to_db(room.owner),
        &room.created_at,
    ];
    tx.execute(
        "INSERT INTO rooms (name, topic_id, private, description, owner_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &params,
    )
    .await
    .map_err(db)?;
    if room.owner != 0 {
        tx.execute(
            "INSERT INTO topic_members (topic_id, user_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[&to_db(room.topic_id), &to_db(room.owner)],
        )
        .await
        .map_err(db)?;
    }
    Ok(room)
}

/// Creates `lobby` if it does not exist (called when the store opens, by
/// every node; one of them makes it).
pub async fn ensure_lobby(store: &PgStore) -> Result<()> {
    let mut client = store.client().await?;
    if exists(&client, LOBBY).await? {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(db)?;
    let made = insert_locked(
        &tx,
        NewRoom {
            name: LOBBY.into(),
            private: false,
            description: "Everyone's room".into(),
            owner: 0,
        },
    )
    .await;
    match made {
        Ok(_) => tx.commit().await.map_err(db),
        // Another node made it while this one waited for the lock.
        Err(Error::Validation(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a room and its topic; 422 on a taken name. A non-zero owner
/// becomes a member.
pub async fn create(store: &PgStore, new: NewRoom) -> Result<RoomRecord> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let room = insert_locked(&tx, new).await?;
    tx.commit().await.map_err(db)?;
    Ok(room)
}

/// One room by name.
pub async fn get(store: &PgStore, name: &str) -> Result<Option<RoomRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {COLUMNS} FROM rooms WHERE name = $1");
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client.query_opt(&statement, &[&name]).await.map_err(db)?;
    row.as_ref().map(from_row).transpose()
}

/// Every room, by name.
pub async fn all(store: &PgStore) -> Result<Vec<RoomRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {COLUMNS} FROM rooms ORDER BY name COLLATE \"C\"");
    let rows = client.query(&sql, &[]).await.map_err(db)?;
    rows.iter().map(from_row).collect()
}

/// The SQL of "`$1` may read the room aliased `r`": public, or a member.
const MAY_READ: &str = "(NOT r.private OR EXISTS (SELECT 1 FROM topic_members tm \
                        WHERE tm.topic_id = r.topic_id AND tm.user_id = $1))";

/// One room by name and whether `user_id` may read it (public, or a member).
pub async fn access(
    store: &PgStore,
    name: &str,
    user_id: u64,
) -> Result<Option<(RoomRecord, bool)>> {
    let client = store.client().await?;
    let sql = format!("SELECT {R_COLUMNS}, {MAY_READ} FROM rooms r WHERE r.name = $2");
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client
        .query_opt(&statement, &[&to_db(user_id), &name])
        .await
        .map_err(db)?;
    match row {
        Some(row) => {
            let allowed = row.try_get(6).map_err(db)?;
            Ok(Some((from_row(&row)?, allowed)))
        }
        None => Ok(None),
    }
}

/// The public rooms and the private rooms `user_id` belongs to, by name,
/// with the owner's username and the user's counts, read in one snapshot.
pub async fn list(store: &PgStore, user_id: u64) -> Result<Vec<RoomSummary>> {
    let client = store.client().await?;
    let sql = format!(
        "SELECT {R_COLUMNS}, u.username, {} FROM rooms r \
         LEFT JOIN users u ON u.id = r.owner_id \
         WHERE {MAY_READ} ORDER BY r.name COLLATE \"C\"",
        counts_sql("r.topic_id")
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client
        .query(&statement, &[&to_db(user_id)])
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(RoomSummary {
                room: from_row(row)?,
                owner: row.try_get(6).map_err(db)?,
                counts: counts_from_row(row, 7)?,
            })
        })
        .collect()
}

/// Adds a member to a topic (idempotent); whether they were newly added.
pub async fn add_member(store: &PgStore, topic_id: u64, user_id: u64) -> Result<bool> {
    let client = store.client().await?;
    let added = client
        .execute(
            "INSERT INTO topic_members (topic_id, user_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[&to_db(topic_id), &to_db(user_id)],
        )
        .await
        .map_err(db)?;
    Ok(added == 1)
}

/// Removes a member (idempotent); whether they were a member.
pub async fn remove_member(store: &PgStore, topic_id: u64, user_id: u64) -> Result<bool> {
    let client = store.client().await?;
    let removed = client
        .execute(
            "DELETE FROM topic_members WHERE topic_id = $1 AND user_id = $2",
            &[&to_db(topic_id), &to_db(user_id)],
        )
        .await
        .map_err(db)?;
    Ok(removed == 1)
}

/// One topic by id.
pub async fn topic(store: &PgStore, topic_id: u64) -> Result<Option<TopicRecord>> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT name, epoch, created_at FROM topics WHERE id = $1")
        .await
        .map_err(db)?;
    let row = client
        .query_opt(&statement, &[&to_db(topic_id)])
        .await
        .map_err(db)?;
    match row {
        Some(row) => Ok(Some(TopicRecord {
            name: row.try_get(0).map_err(db)?,
            epoch: row.try_get(1).map_err(db)?,
            created_at: row.try_get(2).map_err(db)?,
        })),
        None => Ok(None),
    }
}

/// The last seq of a topic (0 when empty or unknown).
pub async fn last_seq(store: &PgStore, topic_id: u64) -> Result<u64> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT coalesce((SELECT last_seq FROM topics WHERE id = $1), 0)")
        .await
        .map_err(db)?;
    let seq: i64 = client
        .query_one(&statement, &[&to_db(topic_id)])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    Ok(from_db(seq))
}

/// A user's last seq, read position and unread mentions in a topic.
pub async fn counts(store: &PgStore, user_id: u64, topic_id: u64) -> Result<TopicCounts> {
    let client = store.client().await?;
    let sql = format!("SELECT {}", counts_sql("$2"));
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client
        .query_one(&statement, &[&to_db(user_id), &to_db(topic_id)])
        .await
        .map_err(db)?;
    counts_from_row(&row, 0)
}
