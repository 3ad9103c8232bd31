//! One-time links to choose a password: mailed to an account an admin
//! created (welcome) and on "forgot password" (reset), redeemed once at
//! `POST /api/password/reset`.
//!
//! A link is `PUBLIC_URL/reset#token=T`, `T` 32 random bytes in base64url;
//! the fragment never reaches a server log or a `Referer`. The store keeps
//! only SHA-256(T). Redeeming sets the password and bumps the user's token
//! version, which revokes their tokens (their sockets close) and every other
//! link of theirs. The mail never carries a password.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::accounts;
use crate::clock;
use crate::error::{Error, Result};
use crate::fault;
use crate::mail::{settings, texts};
use crate::state::AppState;
use crate::store::ops::{LinkState, Redeemed};
use crate::store::records::{LinkPurpose, MailRecord, PasswordLinkRecord, UserRecord};

/// Random bytes in a link's token.
const TOKEN_BYTES: usize = 32;

/// Whether this server sends mail (`smtp_url` is set).
pub fn mail_enabled(state: &AppState) -> bool {
    !state.cfg.smtp_url.is_empty()
}

/// The key a token is stored under.
fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Queues a welcome mail with a link to choose a password, if mail is on and
/// the user has an address. Returns whether a mail was queued.
pub async fn send_welcome(state: &AppState, user: &UserRecord) -> Result<bool> {
    if !mail_enabled(state) || user.email.is_none() {
        return Ok(false);
    }
    let hours = state.cfg.welcome_link_hours;
    let validity = Duration::from_secs(hours.saturating_mul(3600));
    issue(state, user, LinkPurpose::Welcome, validity, |link| {
        texts::welcome(&user.display_name, &user.username, link, hours)
    })
    .await?;
    Ok(true)
}

/// Queues a reset mail, if mail is on and the user has an address and is
/// not disabled.
pub async fn send_reset(state: &AppState, user: &UserRecord) -> Result<()> {
    if !mail_enabled(state) || user.email.is_none() || user.disabled {
        return Ok(());
    }
    let minutes = state.cfg.reset_link_minutes;
    let validity = Duration::from_secs(minutes.saturating_mul(60));
    issue(state, user, LinkPurpose::Reset, validity, |link| {
        texts::reset(&user.display_name, &user.username, link, minutes)
    })
    .await
}

async fn issue(
    state: &AppState,
    user: &UserRecord,
    purpose: LinkPurpose,
    validity: Duration,
    text: impl FnOnce(&str) -> (String, String),
) -> Result<()> {
    let Some(to) = user.email.clone() else {
        return Ok(());
    };
    let token = crate::random::random_token(TOKEN_BYTES);
    let link = format!("{}/reset#token={token}", settings::base_url(&state.cfg));
    let (subject, body) = text(&link);
    let now = clock::now_ms();
    let validity = fault::link_validity(validity);
    let record = PasswordLinkRecord {
        user_id: user.id,
        purpose,
        token_version: user.token_version,
        expires_at: now.saturating_add(validity.as_millis() as i64),
    };
    let mail = MailRecord {
        to,
        subject,
        body,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
    };
    let id = state
        .store
        .issue_password_link(token_hash(&token), record, mail)
        .await?;
    tracing::info!(user = %user.username, mail = id, ?purpose, "password link queued");
    state.outbox.queued();
    Ok(())
}

/// The account a "forgot password" names: by e-mail if it has an `@`, else
/// by username.
pub async fn find_account(state: &AppState, username_or_email: &str) -> Result<Option<UserRecord>> {
    let name = username_or_email.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.contains('@') {
        state.store.user_by_email(name).await
    } else {
        state.store.user_by_username(name).await
    }
}

/// Sets `password` with the link `token`; the user's older tokens and links
/// are revoked and their sockets told to re-check.
pub async fn redeem(state: &AppState, token: &str, password: &str) -> Result<UserRecord> {
    let hash = token_hash(token);
    // Refuse a bad link before paying for a password hash.
    match state
        .store
        .password_link_state(hash, clock::now_ms())
        .await?
    {
        LinkState::Unknown => return Err(Error::InvalidToken),
        LinkState::Expired => return Err(Error::ExpiredToken),
        LinkState::Usable => {}
    }
    if let Some(reason) = accounts::password_problem(password) {
        return Err(Error::field("password", reason));
    }
    let password_hash = state.passwords.hash(password).await?;
    match state
        .store
        .redeem_password_link(hash, password_hash, clock::now_ms())
        .await?
    {
        Redeemed::Done(user) => {
            state.sessions_changed(user.id);
            tracing::info!(user = %user.username, "password set with a one-time link");
            Ok(user)
        }
        Redeemed::Unknown => Err(Error::InvalidToken),
        Redeemed::Expired => Err(Error::ExpiredToken),
        Redeemed::Disabled => Err(Error::Forbidden("this account is disabled".into())),
    }
}
