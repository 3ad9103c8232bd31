//! Ignores: `user_ignores` maps a user to the users whose messages and
//! typing they do not want delivered.

use std::collections::HashSet;

use redb::{ReadTransaction, ReadableMultimapTable};

use super::tables::USER_IGNORES;
use super::WriteCtx;
use crate::error::Result;

/// The users `user_id` ignores.
pub fn of_user(tx: &ReadTransaction, user_id: u64) -> Result<HashSet<u64>> {
    let table = tx.open_multimap_table(USER_IGNORES)?;
    let mut out = HashSet::new();
    for value in table.get(user_id)? {
        out.insert(value?.value());
    }
    Ok(out)
}

/// Starts or stops ignoring `other`; returns the new set.
pub fn set(ctx: &mut WriteCtx<'_>, user_id: u64, other: u64, ignore: bool) -> Result<HashSet<u64>> {
    {
        let mut table = ctx.tx().open_multimap_table(USER_IGNORES)?;
        if ignore {
            table.insert(user_id, other)?;
        } else {
            table.remove(user_id, other)?;
        }
    }
    let table = ctx.tx().open_multimap_table(USER_IGNORES)?;
    let mut out = HashSet::new();
    for value in table.get(user_id)? {
        out.insert(value?.value());
    }
    Ok(out)
}
