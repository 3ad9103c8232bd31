//! Revoked tokens: `revoked_jti_expiry` maps a token id to its expiry, so a
//! logged-out token stays refused until it would have expired anyway.

use super::tables::REVOKED_JTI_EXPIRY;
use super::Store;
use crate::error::Result;

impl Store {
    /// Refuses the token `jti` from now on (until `expires_at`, in epoch seconds).
    pub async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<()> {
        let jti = jti.to_string();
        self.write(move |ctx| {
            let mut table = ctx.tx().open_table(REVOKED_JTI_EXPIRY)?;
            table.insert(jti.as_str(), expires_at)?;
            Ok(())
        })
        .await
    }

    /// Whether `jti` has been revoked.
    pub async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let jti = jti.to_string();
        self.read(move |tx| {
            let table = tx.open_table(REVOKED_JTI_EXPIRY)?;
            Ok(table.get(jti.as_str())?.is_some())
        })
        .await
    }

    /// Drops revocations whose token has expired by `now` (epoch seconds).
    /// Returns how many were removed.
    pub async fn purge_expired_revocations(&self, now: u64) -> Result<usize> {
        self.write(move |ctx| {
            let mut table = ctx.tx().open_table(REVOKED_JTI_EXPIRY)?;
            let removed = table.extract_if(|_, expires_at| expires_at <= now)?.count();
            Ok(removed)
        })
        .await
    }
}
