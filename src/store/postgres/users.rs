//! Accounts (table `users`): creation (the first is an admin), lookups by id, name and address, profile, password and disabled changes.

use tokio_postgres::Row;

use super::convert::from_db;
use super::PgStore;
use crate::error::{Error, Result};
use crate::store::ops::{NewUser, ProfileChange};
use crate::store::records::UserRecord;

/// Not yet.
#[allow(unused_variables)]
pub async fn create(store: &PgStore, new: NewUser) -> Result<UserRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn get(store: &PgStore, id: u64) -> Result<Option<UserRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn by_username(store: &PgStore, username: &str) -> Result<Option<UserRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn by_email(store: &PgStore, email: &str) -> Result<Option<UserRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn all(store: &PgStore) -> Result<Vec<UserRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn update_profile(store: &PgStore, id: u64, change: ProfileChange) -> Result<UserRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn set_password_hash(
    store: &PgStore,
    id: u64,
    password_hash: String,
) -> Result<UserRecord> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn set_disabled(store: &PgStore, id: u64, disabled: bool) -> Result<UserRecord> {
    let _ = store;
    Err(super::not_yet())
}
/// The columns [`from_row`] reads, in order, for `SELECT {COLUMNS} FROM users`.
pub const COLUMNS: &str =
    "id, username, display_name, email, password_hash, admin, disabled, token_version, created_at, bot";

/// A `users` row selected with [`COLUMNS`].
pub fn from_row(row: &Row) -> Result<UserRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("users row: {e}"));
    let token_version: i64 = row.try_get(7).map_err(column)?;
    Ok(UserRecord {
        id: from_db(row.try_get(0).map_err(column)?),
        username: row.try_get(1).map_err(column)?,
        display_name: row.try_get(2).map_err(column)?,
        email: row.try_get(3).map_err(column)?,
        password_hash: row.try_get(4).map_err(column)?,
        admin: row.try_get(5).map_err(column)?,
        disabled: row.try_get(6).map_err(column)?,
        token_version: u32::try_from(token_version).unwrap_or(u32::MAX),
        created_at: row.try_get(8).map_err(column)?,
        bot: row.try_get(9).map_err(column)?,
    })
}
