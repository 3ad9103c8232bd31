//! Bots (table `bots`), incoming webhooks (`hooks`) and the outgoing webhook queue (`deliveries`).

use super::PgStore;
use crate::error::Result;
use crate::store::ops::{NewBot, NewHook};
use crate::store::records::{BotRecord, DeliveryRecord, HookRecord, UserRecord};

/// Not yet.
#[allow(unused_variables)]
pub async fn create(store: &PgStore, new: NewBot) -> Result<(UserRecord, BotRecord)> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn all(store: &PgStore) -> Result<Vec<(UserRecord, BotRecord)>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn get(store: &PgStore, user_id: u64) -> Result<Option<BotRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn by_key_hash(store: &PgStore, key_hash: Vec<u8>) -> Result<Option<UserRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn rotate_key(
    store: &PgStore,
    user_id: u64,
    key_hash: Vec<u8>,
    signing_secret: String,
) -> Result<BotRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn update_webhook(
    store: &PgStore,
    user_id: u64,
    webhook_url: Option<String>,
    all_messages: bool,
) -> Result<BotRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn delete(store: &PgStore, user_id: u64) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn create_hook(store: &PgStore, new: NewHook) -> Result<HookRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn hooks_of_topic(store: &PgStore, topic_id: u64) -> Result<Vec<HookRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn hook_by_token_hash(
    store: &PgStore,
    token_hash: Vec<u8>,
) -> Result<Option<HookRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn delete_hook(store: &PgStore, topic_id: u64, id: u64) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn pending_deliveries(store: &PgStore) -> Result<Vec<DeliveryRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn finish_delivery(store: &PgStore, event_id: u64) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}
