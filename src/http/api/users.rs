//! `GET /api/users` (any user) and `POST /api/users` (admin: create an
//! account with a generated password, shown once; with an e-mail address and
//! mail set up, the user also gets a welcome mail with a link to choose
//! their own password).

use serde::Deserialize;
use serde_json::json;

use super::views;
use crate::accounts::{self, Signup};
use crate::error::Result;
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::password_links;
use crate::store::records::UserRecord;

/// Every account.
pub async fn list(call: &mut Call) -> Result<HttpResponse> {
    call.identity().await?;
    let users = call.state.store.users().await?;
    let users: Vec<_> = users.iter().map(views::user).collect();
    Ok(reply::json(200, &json!({ "users": users })))
}

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    username: String,
    display_name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// Creates an account as an admin; 201 `{user, password}`.
pub async fn create(call: &mut Call) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let input: CreateInput = call.json().await?;
    let password = accounts::generate_password();
    let user = accounts::create(
        &call.state,
        Signup {
            username: input.username,
            password: password.clone(),
            display_name: input.display_name,
            email: input.email,
            admin: input.admin,
        },
    )
    .await?;
    tracing::info!(user = %user.username, by = %admin.user.username, "account created by admin");
    let welcome_mail = welcome(&call.state, &user).await;
    Ok(reply::json(
        201,
        &json!({"user": views::user(&user), "password": password, "welcome_mail": welcome_mail}),
    ))
}

/// Queues the welcome mail; whether one was queued. The account exists
/// either way, so a failure here is logged, not returned.
pub async fn welcome(state: &crate::state::AppState, user: &UserRecord) -> bool {
    match password_links::send_welcome(state, user).await {
        Ok(queued) => queued,
        Err(e) => {
            tracing::error!(user = %user.username, error = %e, "cannot queue the welcome mail");
            false
        }
    }
}
