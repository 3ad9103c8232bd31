//! Rooms, topics and membership (tables `rooms`, `topics`, `topic_members`) and a user's counts in a topic.

use super::PgStore;
use crate::error::Result;
use crate::store::ops::{NewRoom, RoomSummary, TopicCounts};
use crate::store::records::{RoomRecord, TopicRecord};

/// Not yet.
#[allow(unused_variables)]
pub async fn ensure_lobby(store: &PgStore) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn create(store: &PgStore, new: NewRoom) -> Result<RoomRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn get(store: &PgStore, name: &str) -> Result<Option<RoomRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn all(store: &PgStore) -> Result<Vec<RoomRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn access(
    store: &PgStore,
    name: &str,
    user_id: u64,
) -> Result<Option<(RoomRecord, bool)>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn list(store: &PgStore, user_id: u64) -> Result<Vec<RoomSummary>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn add_member(store: &PgStore, topic_id: u64, user_id: u64) -> Result<bool> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn remove_member(store: &PgStore, topic_id: u64, user_id: u64) -> Result<bool> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn topic(store: &PgStore, topic_id: u64) -> Result<Option<TopicRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn last_seq(store: &PgStore, topic_id: u64) -> Result<u64> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn counts(store: &PgStore, user_id: u64, topic_id: u64) -> Result<TopicCounts> {
    let _ = store;
    Err(super::not_yet())
}
