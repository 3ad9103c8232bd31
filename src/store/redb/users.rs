//! Accounts: `users` (id → record) and `username_user` (lowercase name → id).
//! The first account ever created is an admin.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::codec;
use super::meta::next_id;
use super::tables::{USERNAME_USER, USERS};
use super::WriteCtx;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::NewUser;
use crate::store::records::UserRecord;

/// Reads one user by id inside a read transaction.
pub fn get(tx: &ReadTransaction, id: u64) -> Result<Option<UserRecord>> {
    let users = tx.open_table(USERS)?;
    let found = users.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// Reads one user by id inside a write batch.
pub fn get_in(ctx: &mut WriteCtx<'_>, id: u64) -> Result<Option<UserRecord>> {
    let users = ctx.tx().open_table(USERS)?;
    let found = users.get(id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

/// Writes a user record inside a write batch.
pub fn put(ctx: &mut WriteCtx<'_>, user: &UserRecord) -> Result<()> {
    let mut users = ctx.tx().open_table(USERS)?;
    users.insert(user.id, codec::encode(user).as_slice())?;
    Ok(())
}

/// Reads a user by (case-insensitive) username inside a read transaction.
pub fn get_by_username(tx: &ReadTransaction, username: &str) -> Result<Option<UserRecord>> {
    let index = tx.open_table(USERNAME_USER)?;
    let id = index
        .get(username.to_lowercase().as_str())?
        .map(|v| v.value());
    match id {
        Some(id) => get(tx, id),
        None => Ok(None),
    }
}

/// The user whose e-mail address is `email` (case-insensitive), by a scan
/// of the accounts; the first by id if several share it.
pub fn get_by_email(tx: &ReadTransaction, email: &str) -> Result<Option<UserRecord>> {
    let email = email.to_lowercase();
    let users = tx.open_table(USERS)?;
    for entry in users.iter()? {
        let (_, value) = entry?;
        let user: UserRecord = codec::decode(value.value())?;
        if user
            .email
            .as_deref()
            .is_some_and(|e| e.to_lowercase() == email)
        {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// Creates an account; 422 on a taken username. The very first account is admin.
pub fn create(ctx: &mut WriteCtx<'_>, new: NewUser) -> Result<UserRecord> {
    let key = new.username.to_lowercase();
    let first = {
        let index = ctx.tx().open_table(USERNAME_USER)?;
        if index.get(key.as_str())?.is_some() {
            return Err(Error::field("username", "is already taken"));
        }
        index.len()? == 0
    };
    let id = next_id(ctx.tx(), "next_user_id")?;
    let user = UserRecord {
        id,
        username: new.username,
        display_name: new.display_name,
        email: new.email,
        password_hash: new.password_hash,
        admin: new.admin || first,
        disabled: false,
        token_version: 0,
        created_at: clock::now_ms(),
        bot: false,
    };
    put(ctx, &user)?;
    ctx.tx()
        .open_table(USERNAME_USER)?
        .insert(key.as_str(), id)?;
    Ok(user)
}

/// Every user, by id.
pub fn all(tx: &ReadTransaction) -> Result<Vec<UserRecord>> {
    let users = tx.open_table(USERS)?;
    let mut out = Vec::new();
    for entry in users.iter()? {
        let (_, value) = entry?;
        out.push(codec::decode(value.value())?);
    }
    Ok(out)
}

/// Changes a user in place; 404 for no such user.
pub fn update<F>(ctx: &mut WriteCtx<'_>, id: u64, change: F) -> Result<UserRecord>
where
    F: FnOnce(&mut UserRecord),
{
    let mut user = get_in(ctx, id)?.ok_or(Error::NotFound("user"))?;
    change(&mut user);
    put(ctx, &user)?;
    Ok(user)
}
