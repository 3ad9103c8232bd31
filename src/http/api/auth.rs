//! `POST /api/register`, `/api/login`, `/api/logout`, `/api/token/refresh`.

use serde::Deserialize;
use serde_json::json;

use super::views;
use crate::accounts::{self, Signup};
use crate::config::Registration;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};

#[derive(Deserialize)]
struct RegisterInput {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    display_name: Option<String>,
    email: Option<String>,
}

/// Creates an account when registration is open; 201 with a token.
pub async fn register(call: &mut Call) -> Result<HttpResponse> {
    if call.state.cfg.registration == Registration::Closed {
        return Err(Error::Forbidden("registration is closed".into()));
    }
    let input: RegisterInput = call.json().await?;
    let user = accounts::create(
        &call.state,
        Signup {
            username: input.username,
            password: input.password,
            display_name: input.display_name,
            email: input.email,
            admin: false,
        },
    )
    .await?;
    let (token, claims) = call.state.keys.issue(user.id, user.token_version)?;
    tracing::info!(user = %user.username, id = user.id, "account registered");
    Ok(reply::json(201, &views::session(&user, &token, &claims)))
}

#[derive(Deserialize)]
struct LoginInput {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Exchanges a username and password for a token; throttled per address and name.
pub async fn login(call: &mut Call) -> Result<HttpResponse> {
    let input: LoginInput = call.json().await?;
    let client = call.client_key();
    call.state
        .login_throttle
        .check(&client, &input.username)
        .map_err(Error::RateLimited)?;
    if let Some(user) = call.state.store.user_by_username(&input.username).await? {
        if user.bot {
            return Err(Error::Forbidden(
                "bots cannot sign in with a password: use the bot's API key as the bearer token"
                    .into(),
            ));
        }
    }
    let user =
        match accounts::check_credentials(&call.state, &input.username, &input.password).await {
            Ok(user) => user,
            Err(Error::InvalidCredentials) => {
                call.state.login_throttle.failed(&client, &input.username);
                crate::metrics::Metrics::inc(&call.state.metrics.auth_failures);
                tracing::info!(%client, "login failed");
                return Err(Error::InvalidCredentials);
            }
            Err(other) => return Err(other),
        };
    call.state.login_throttle.succeeded(&input.username);
    if user.disabled {
        return Err(Error::Forbidden("this account is disabled".into()));
    }
    let (token, claims) = call.state.keys.issue(user.id, user.token_version)?;
    Ok(reply::json(200, &views::session(&user, &token, &claims)))
}

/// Revokes the calling token until it expires.
pub async fn logout(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    call.state
        .store
        .revoke_token(&identity.claims.jti, identity.claims.exp)
        .await?;
    call.state.sessions_changed(identity.user.id);
    Ok(reply::empty(204))
}

/// A fresh token for the caller.
pub async fn refresh(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let (token, claims) = call
        .state
        .keys
        .issue(identity.user.id, identity.user.token_version)?;
    Ok(reply::json(
        200,
        &json!({"token": token, "expires_at": views::expires_at(&claims)}),
    ))
}
