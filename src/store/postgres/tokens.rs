//! Revoked tokens (table `revoked_tokens`): a logged-out token's id and
//! when it would have expired (epoch seconds), so it stays refused until
//! then; expired rows are purged.

use super::convert::to_db;
use super::error::db;
use super::PgStore;
use crate::error::Result;

/// Refuses the token `jti` from now on (until `expires_at`, epoch seconds);
/// revoking it again replaces the expiry, as the embedded store does.
pub async fn revoke(store: &PgStore, jti: &str, expires_at: u64) -> Result<()> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO revoked_tokens (jti, expires_at_secs) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE SET expires_at_secs = EXCLUDED.expires_at_secs",
            &[&jti, &to_db(expires_at)],
        )
        .await
        .map_err(db)?;
    Ok(())
}

/// Whether `jti` has been revoked (asked on every authenticated request).
pub async fn is_revoked(store: &PgStore, jti: &str) -> Result<bool> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)")
        .await
        .map_err(db)?;
    client
        .query_one(&statement, &[&jti])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)
}

/// Drops revocations whose token has expired by `now` (epoch seconds);
/// returns how many.
pub async fn purge_expired(store: &PgStore, now: u64) -> Result<usize> {
    let client = store.client().await?;
    let removed = client
        .execute(
            "DELETE FROM revoked_tokens WHERE expires_at_secs <= $1",
            &[&to_db(now)],
        )
        .await
        .map_err(db)?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}
