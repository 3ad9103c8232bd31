//! Rooms: `rooms` (name → record). Each room owns the topic `room:<name>`;
//! private rooms admit their members only. `lobby` exists from first start.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::codec;
use super::tables::ROOMS;
use super::topics;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::{NewRoom, LOBBY};
use crate::store::records::RoomRecord;

/// Creates `lobby` if it does not exist (called when the store opens).
pub fn ensure_lobby(tx: &WriteTransaction) -> Result<()> {
    if tx.open_table(ROOMS)?.get(LOBBY)?.is_some() {
        return Ok(());
    }
    insert(
        tx,
        NewRoom {
            name: LOBBY.into(),
            private: false,
            description: "Everyone's room".into(),
            owner: 0,
        },
    )?;
    Ok(())
}

/// Creates a room and its topic; 422 on a taken name.
pub fn insert(tx: &WriteTransaction, new: NewRoom) -> Result<RoomRecord> {
    if tx.open_table(ROOMS)?.get(new.name.as_str())?.is_some() {
        return Err(Error::field("name", "is already taken"));
    }
    let topic_id = topics::create(tx, &format!("room:{}", new.name))?;
    let room = RoomRecord {
        name: new.name,
        topic_id,
        private: new.private,
        description: new.description,
        owner: new.owner,
        created_at: clock::now_ms(),
    };
    tx.open_table(ROOMS)?
        .insert(room.name.as_str(), codec::encode(&room).as_slice())?;
    if room.owner != 0 {
        topics::add_member(tx, topic_id, room.owner)?;
    }
    Ok(room)
}

/// One room by name inside a read transaction.
pub fn get(tx: &ReadTransaction, name: &str) -> Result<Option<RoomRecord>> {
    let rooms = tx.open_table(ROOMS)?;
    let found = rooms.get(name)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// Every room, by name.
pub fn all(tx: &ReadTransaction) -> Result<Vec<RoomRecord>> {
    let rooms = tx.open_table(ROOMS)?;
    let mut out = Vec::new();
    for entry in rooms.iter()? {
        let (_, value) = entry?;
        out.push(codec::decode(value.value())?);
    }
    Ok(out)
}
