//! The records kept as values in the store's tables. Encoded only through
//! [`super::codec`]; a field change here needs a new format byte there.

use serde::{Deserialize, Serialize};

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub admin: bool,
    pub disabled: bool,
    /// Tokens carrying an older version are refused (password change, `user passwd`).
    pub token_version: u32,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}
