//! `POST /api/password/forgot` and `POST /api/password/reset`: "forgot
//! password" by mail, with one-time links ([`crate::password_links`]).
//!
//! `forgot` answers 202 with the same body whether or not the account
//! exists; the lookup and the mail happen after the answer, so its timing
//! says nothing either. It is throttled per address and per name like failed
//! logins. `reset` answers 200 with a session, like a login.

use serde::Deserialize;
use serde_json::json;

use super::views;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};
use crate::password_links;

#[derive(Deserialize)]
struct ForgotInput {
    #[serde(default)]
    username_or_email: String,
}

/// Queues a reset mail for the named account, if there is one; always 202.
pub async fn forgot(call: &mut Call) -> Result<HttpResponse> {
    if !password_links::mail_enabled(&call.state) {
        return Err(Error::Unavailable(
            "password reset by mail is not set up on this server: ask an admin".into(),
        ));
    }
    let input: ForgotInput = call.json().await?;
    let name = input.username_or_email.trim().to_lowercase();
    if name.is_empty() || name.len() > 254 {
        return Err(Error::field(
            "username_or_email",
            "must be a username or an e-mail address",
        ));
    }
    let client = call.client_key();
    let throttle = &call.state.forgot_throttle;
    throttle.check(&client, &name).map_err(Error::RateLimited)?;
    throttle.failed(&client, &name);
    let state = call.state.clone();
    tokio::spawn(async move {
        let outcome = match password_links::find_account(&state, &name).await {
            Ok(Some(user)) => password_links::send_reset(&state, &user).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "cannot queue a password reset mail");
        }
    });
    Ok(reply::json(
        202,
        &json!({"message": "If the account exists and has an e-mail address, a mail is on its way."}),
    ))
}

#[derive(Deserialize)]
struct ResetInput {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// Sets a new password with a one-time link; 200 with a session.
pub async fn reset(call: &mut Call) -> Result<HttpResponse> {
    let input: ResetInput = call.json().await?;
    let user = password_links::redeem(&call.state, &input.token, &input.password).await?;
    let (token, claims) = call.state.keys.issue(user.id, user.token_version)?;
    Ok(reply::json(200, &views::session(&user, &token, &claims)))
}
