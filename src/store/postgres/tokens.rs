//! Revoked tokens (table `revoked_tokens`).

use super::PgStore;
use crate::error::Result;

/// Not yet.
#[allow(unused_variables)]
pub async fn revoke(store: &PgStore, jti: &str, expires_at: u64) -> Result<()> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn is_revoked(store: &PgStore, jti: &str) -> Result<bool> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn purge_expired(store: &PgStore, now: u64) -> Result<usize> {
    let _ = store;
    Err(super::not_yet())
}
