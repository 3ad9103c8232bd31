//! Topics with a history: `topic_ids` (name → id), `topics` (id → record),
//! and membership both ways (`topic_members`, `user_topics`).

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::codec;
use super::meta::next_id;
use super::tables::{TOPICS, TOPIC_IDS, TOPIC_MEMBERS, USER_TOPICS};
use crate::clock;
use crate::error::Result;
use crate::store::records::TopicRecord;

/// Creates the topic `name` with a fresh epoch; returns its id.
pub fn create(tx: &WriteTransaction, name: &str) -> Result<u64> {
    let id = next_id(tx, "next_topic_id")?;
    let record = TopicRecord {
        name: name.to_string(),
        epoch: crate::random::random_token(9),
        created_at: clock::now_ms(),
    };
    tx.open_table(TOPICS)?
        .insert(id, codec::encode(&record).as_slice())?;
    tx.open_table(TOPIC_IDS)?.insert(name, id)?;
    Ok(id)
}

/// The id of topic `name`, if it exists.
pub fn id_of(tx: &ReadTransaction, name: &str) -> Result<Option<u64>> {
    Ok(tx.open_table(TOPIC_IDS)?.get(name)?.map(|v| v.value()))
}

/// The record of topic `id`.
pub fn get(tx: &ReadTransaction, id: u64) -> Result<Option<TopicRecord>> {
    let topics = tx.open_table(TOPICS)?;
    let found = topics.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// Every topic id with a history (rooms and conversations), ascending.
pub fn all_ids(tx: &ReadTransaction) -> Result<Vec<u64>> {
    let topics = tx.open_table(TOPICS)?;
    let mut out = Vec::new();
    for entry in topics.iter()? {
        out.push(entry?.0.value());
    }
    Ok(out)
}

/// Whether `user_id` is a member of topic `topic_id`.
pub fn is_member(tx: &ReadTransaction, topic_id: u64, user_id: u64) -> Result<bool> {
    let members = tx.open_multimap_table(USER_TOPICS)?;
    for value in members.get(user_id)? {
        if value?.value() == topic_id {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Member user ids of a topic.
pub fn members(tx: &ReadTransaction, topic_id: u64) -> Result<Vec<u64>> {
    let members = tx.open_multimap_table(TOPIC_MEMBERS)?;
    let mut out = Vec::new();
    for value in members.get(topic_id)? {
        out.push(value?.value());
    }
    Ok(out)
}

/// Topic ids the user is a member of.
pub fn of_user(tx: &ReadTransaction, user_id: u64) -> Result<Vec<u64>> {
    let topics = tx.open_multimap_table(USER_TOPICS)?;
    let mut out = Vec::new();
    for value in topics.get(user_id)? {
        out.push(value?.value());
    }
    Ok(out)
}

/// Adds a member (idempotent). Returns whether they were newly added.
pub fn add_member(tx: &WriteTransaction, topic_id: u64, user_id: u64) -> Result<bool> {
    let was_member = tx
        .open_multimap_table(TOPIC_MEMBERS)?
        .insert(topic_id, user_id)?;
    tx.open_multimap_table(USER_TOPICS)?
        .insert(user_id, topic_id)?;
    Ok(!was_member)
}

/// Removes a member (idempotent). Returns whether they were a member.
pub fn remove_member(tx: &WriteTransaction, topic_id: u64, user_id: u64) -> Result<bool> {
    let removed = tx
        .open_multimap_table(TOPIC_MEMBERS)?
        .remove(topic_id, user_id)?;
    tx.open_multimap_table(USER_TOPICS)?
        .remove(user_id, topic_id)?;
    Ok(removed)
}
