//! Accounts (table `users`): creation (the first is an admin), lookups by
//! id, name and address, profile, password and disabled changes.
//!
//! Names are unique whatever their case (the unique index on
//! `lower(username)`); lookups compare with the name lowercased here, as
//! the embedded store does. The first account is made an admin under a
//! lock of the table, taken only while it is still empty (accounts are
//! never deleted, so once it holds one it never is again): two first
//! registrations at once give one admin.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::convert::{from_db, to_db, Param};
use super::error::{db, is_unique_violation};
use super::PgStore;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::{NewUser, ProfileChange};
use crate::store::records::UserRecord;

/// The error for a name already in use, as the embedded store gives it.
fn taken() -> Error {
    Error::field("username", "is already taken")
}

/// Creates an account; 422 on a taken username. The very first account is
/// an admin.
pub async fn create(store: &PgStore, new: NewUser) -> Result<UserRecord> {
    let key = new.username.to_lowercase();
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let row = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM users), \
             EXISTS (SELECT 1 FROM users WHERE lower(username) = $1)",
            &[&key],
        )
        .await
        .map_err(db)?;
    let empty: bool = row.try_get(0).map_err(db)?;
    let exists: bool = row.try_get(1).map_err(db)?;
    // Checked before the insert so that a refused name uses no id.
    if exists {
        return Err(taken());
    }
    if empty {
        // Whoever gets the lock second sees the first account below.
        tx.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db)?;
    }
    let sql = format!(
        "INSERT INTO users (username, display_name, email, password_hash, admin, created_at) \
         VALUES ($1, $2, $3, $4, $5 OR NOT EXISTS (SELECT 1 FROM users), $6) \
         RETURNING {COLUMNS}"
    );
    let params: [Param; 6] = [
        &new.username,
        &new.display_name,
        &new.email,
        &new.password_hash,
        &new.admin,
        &clock::now_ms(),
    ];
    let row = match tx.query_one(&sql, &params).await {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => return Err(taken()),
        Err(e) => return Err(db(e)),
    };
    let user = from_row(&row)?;
    tx.commit().await.map_err(db)?;
    Ok(user)
}

/// The one user `sql` (selecting [`COLUMNS`]) finds with `params`, if any.
async fn one(store: &PgStore, sql: &str, params: &[Param<'_>]) -> Result<Option<UserRecord>> {
    let client = store.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(db)?;
    let row = client.query_opt(&statement, params).await.map_err(db)?;
    row.as_ref().map(from_row).transpose()
}

/// One user by id.
pub async fn get(store: &PgStore, id: u64) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    one(store, &sql, &[&to_db(id)]).await
}

/// One user by username (case-insensitive).
pub async fn by_username(store: &PgStore, username: &str) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(username) = $1");
    one(store, &sql, &[&username.to_lowercase()]).await
}

/// The user whose e-mail address is `email` (case-insensitive); the first
/// by id if several share it.
pub async fn by_email(store: &PgStore, email: &str) -> Result<Option<UserRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(email) = $1 ORDER BY id LIMIT 1");
    one(store, &sql, &[&email.to_lowercase()]).await
}

/// Every user, by id.
pub async fn all(store: &PgStore) -> Result<Vec<UserRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id");
    let rows = client.query(&sql, &[]).await.map_err(db)?;
    rows.iter().map(from_row).collect()
}

/// The user `sql` (an `UPDATE ... RETURNING` [`COLUMNS`]) changed; 404 for
/// no such user.
async fn changed(store: &PgStore, sql: &str, params: &[Param<'_>]) -> Result<UserRecord> {
    one(store, sql, params)
        .await?
        .ok_or(Error::NotFound("user"))
}

/// Changes a user's display name (stored trimmed) and email (an empty one
/// removes it); `None` leaves a field as it is. 404 for no such user.
pub async fn update_profile(store: &PgStore, id: u64, change: ProfileChange) -> Result<UserRecord> {
    let display_name = change.display_name.map(|name| name.trim().to_string());
    let set_email = change.email.is_some();
    let email = change.email.filter(|e| !e.is_empty());
    let sql = format!(
        "UPDATE users SET display_name = coalesce($2, display_name), \
         email = CASE WHEN $3 THEN $4 ELSE email END \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    changed(
        store,
        &sql,
        &[&to_db(id), &display_name, &set_email, &email],
    )
    .await
}

/// Sets a new password hash and moves the token version on (wrapping as a
/// u32 does), so tokens issued before are refused. 404 for no such user.
pub async fn set_password_hash(
    store: &PgStore,
    id: u64,
    password_hash: String,
) -> Result<UserRecord> {
    let sql = format!(
        "UPDATE users SET password_hash = $2, \
         token_version = (token_version + 1) % 4294967296 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    changed(store, &sql, &[&to_db(id), &password_hash]).await
}

/// Enables or disables an account. 404 for no such user.
pub async fn set_disabled(store: &PgStore, id: u64, disabled: bool) -> Result<UserRecord> {
    let sql = format!("UPDATE users SET disabled = $2 WHERE id = $1 RETURNING {COLUMNS}");
    changed(store, &sql, &[&to_db(id), &disabled]).await
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
