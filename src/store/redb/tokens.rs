//! Revoked tokens: `revoked_jti_expiry` maps a token id to its expiry, so a
//! logged-out token stays refused until it would have expired anyway.

use redb::ReadTransaction;

use super::tables::REVOKED_JTI_EXPIRY;
use super::WriteCtx;
use crate::error::Result;

/// Refuses the token `jti` from now on (until `expires_at`, in epoch seconds).
pub fn revoke(ctx: &mut WriteCtx<'_>, jti: &str, expires_at: u64) -> Result<()> {
    let mut table = ctx.tx().open_table(REVOKED_JTI_EXPIRY)?;
    table.insert(jti, expires_at)?;
    Ok(())
}

/// Whether `jti` has been revoked.
pub fn is_revoked(tx: &ReadTransaction, jti: &str) -> Result<bool> {
    let table = tx.open_table(REVOKED_JTI_EXPIRY)?;
    Ok(table.get(jti)?.is_some())
}

/// Drops revocations whose token has expired by `now` (epoch seconds).
/// Returns how many were removed.
pub fn purge_expired(ctx: &mut WriteCtx<'_>, now: u64) -> Result<usize> {
    let mut table = ctx.tx().open_table(REVOKED_JTI_EXPIRY)?;
    let removed = table.extract_if(|_, expires_at| expires_at <= now)?.count();
    Ok(removed)
}
