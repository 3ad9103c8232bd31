//! The catalog of every redb table: its name states key → value. Used by
//! store initialisation (every table is created once at open) and export.

use redb::TableDefinition;

/// Settings and counters: `schema_version`, `jwt_secret`, `next_user_id`, ...
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// user id → [`super::records::UserRecord`].
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
/// lowercase username → user id.
pub const USERNAME_USER: TableDefinition<&str, u64> = TableDefinition::new("username_user");
/// revoked token id (`jti`) → its expiry in seconds since the epoch.
pub const REVOKED_JTI_EXPIRY: TableDefinition<&str, u64> =
    TableDefinition::new("revoked_jti_expiry");

/// Opens every table once so later read transactions find them.
pub fn create_all(tx: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    tx.open_table(META)?;
    tx.open_table(USERS)?;
    tx.open_table(USERNAME_USER)?;
    tx.open_table(REVOKED_JTI_EXPIRY)?;
    Ok(())
}
