//! JSON shapes of api.md §2 built from store records. The password hash and
//! internal counters never appear here.

use serde_json::{json, Value};

use crate::auth::Claims;
use crate::clock;
use crate::store::records::UserRecord;

/// `user`: `{id, username, display_name, email?, admin, bot?, created_at}`.
pub fn user(user: &UserRecord) -> Value {
    let mut value = json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "admin": user.admin,
        "disabled": user.disabled,
        "created_at": clock::rfc3339_ms(user.created_at),
    });
    if let Some(email) = &user.email {
        value["email"] = json!(email);
    }
    if user.bot {
        value["bot"] = json!(true);
    }
    value
}

/// `{user, token, expires_at}` after register or login.
pub fn session(user_record: &UserRecord, token: &str, claims: &Claims) -> Value {
    json!({
        "user": user(user_record),
        "token": token,
        "expires_at": expires_at(claims),
    })
}

/// The expiry of a token as an RFC 3339 string.
pub fn expires_at(claims: &Claims) -> String {
    clock::rfc3339_ms((claims.exp as i64).saturating_mul(1000))
}
