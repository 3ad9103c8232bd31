//! One-time password links (table `password_links`) and the outgoing mail queue (`mail_queue`).

use super::PgStore;
use crate::error::Result;
use crate::store::ops::{LinkState, QueueStatus, Redeemed};
use crate::store::records::{MailRecord, PasswordLinkRecord};

/// Not yet.
#[allow(unused_variables)]
pub async fn issue_password_link(
    store: &PgStore,
    hash: [u8; 32],
    link: PasswordLinkRecord,
    mail: MailRecord,
) -> Result<u64> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn password_link_state(
    store: &PgStore,
    hash: [u8; 32],
    now_ms: i64,
) -> Result<LinkState> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn redeem_password_link(
    store: &PgStore,
    hash: [u8; 32],
    password_hash: String,
    now_ms: i64,
) -> Result<Redeemed> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn purge_expired_password_links(store: &PgStore, now_ms: i64) -> Result<usize> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn enqueue(store: &PgStore, mail: MailRecord) -> Result<u64> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn due(store: &PgStore, now_ms: i64, limit: usize) -> Result<Vec<(u64, MailRecord)>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn remove(store: &PgStore, id: u64) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn attempt_failed(
    store: &PgStore,
    id: u64,
    attempts: u32,
    next_attempt_at: i64,
) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn queue_status(store: &PgStore) -> Result<QueueStatus> {
    let _ = store;
    Err(super::not_yet())
}
