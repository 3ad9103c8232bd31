//! Ignores: `GET /api/me/ignores`, `PUT` and `DELETE /api/me/ignores/{username}`.
//! Messages and typing of ignored users are filtered out of the caller's
//! sockets on the way out; the change applies to live sockets at once.

use std::collections::HashSet;

use serde_json::json;

use super::views;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};

/// The users the caller ignores.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let ids = call.state.store.ignores(identity.user.id).await?;
    let mut ignored = Vec::new();
    for id in ids {
        if let Some(user) = call.state.store.user(id).await? {
            ignored.push(views::user(&user));
        }
    }
    Ok(reply::json(200, &json!({ "ignores": ignored })))
}

/// Starts (`ignore`) or stops ignoring `username`.
pub async fn set(call: &mut Call, username: &str, ignore: bool) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let other = call
        .state
        .store
        .user_by_username(username)
        .await?
        .ok_or(Error::NotFound("user"))?;
    if other.id == identity.user.id {
        return Err(Error::field("username", "is yourself"));
    }
    let set: HashSet<u64> = call
        .state
        .store
        .set_ignore(identity.user.id, other.id, ignore)
        .await?;
    call.state.ignores_changed(identity.user.id, &set);
    Ok(reply::empty(204))
}
