//! `GET /api/me` and `PATCH /api/me` (display name, e-mail, password).

use serde::Deserialize;
use serde_json::json;

use super::views;
use crate::accounts::{self, Problems};
use crate::error::Result;
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::store::ops::ProfileChange;

/// The caller's own account.
pub async fn show(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let cfg = &call.state.cfg;
    Ok(reply::json(
        200,
        &json!({
            "user": views::user(&identity.user),
            "limits": {
                "max_body_chars": cfg.max_body_chars,
                "max_frame_bytes": cfg.max_frame_bytes,
                "max_upload_bytes": cfg.max_http_body_bytes,
                "max_topics_per_socket": cfg.max_topics_per_socket,
            },
        }),
    ))
}

#[derive(Deserialize)]
struct PasswordChange {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

#[derive(Deserialize)]
struct UpdateInput {
    display_name: Option<String>,
    email: Option<String>,
    password: Option<PasswordChange>,
}

/// Updates the caller's profile. A password change revokes every token of
/// the user and answers with a fresh `token` for this client.
pub async fn update(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let input: UpdateInput = call.json().await?;
    let mut problems = Problems::default();
    if let Some(name) = &input.display_name {
        problems.check("display_name", accounts::display_name_problem(name));
        if name.trim().is_empty() {
            problems.check("display_name", Some("may not be empty"));
        }
    }
    if let Some(email) = input.email.as_deref().filter(|e| !e.is_empty()) {
        problems.check("email", accounts::email_problem(email));
    }
    if let Some(change) = &input.password {
        problems.check("password", accounts::password_problem(&change.new));
        let matches = call
            .state
            .passwords
            .verify(&change.current, Some(&identity.user.password_hash))
            .await?;
        if !matches {
            problems.check("password", Some("the current password is wrong"));
        }
    }
    problems.into_result()?;

    let (display_name, email) = (input.display_name, input.email);
    let mut user = call
        .state
        .store
        .update_profile(
            identity.user.id,
            ProfileChange {
                display_name,
                email,
            },
        )
        .await?;
    let mut body = json!({});
    if let Some(change) = input.password {
        user = accounts::set_password(&call.state, user.id, &change.new).await?;
        let (token, claims) = call.state.keys.issue(user.id, user.token_version)?;
        body["token"] = json!(token);
        body["expires_at"] = json!(views::expires_at(&claims));
    }
    body["user"] = views::user(&user);
    Ok(reply::json(200, &body))
}
