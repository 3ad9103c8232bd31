//! Account rules and flows shared by the HTTP API and the CLI: what a valid
//! username, password, e-mail and display name are; registering, logging in,
//! changing a password (which revokes every older token).

use crate::error::{Error, FieldErrors, Result};
use crate::state::AppState;
use crate::store::ops::NewUser;
use crate::store::records::UserRecord;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (argon2 input is bounded so hashing stays cheap).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// `None` if `name` is 3–32 of `a-z 0-9 _ . -`, else the reason.
pub fn username_problem(name: &str) -> Option<&'static str> {
    let len = name.chars().count();
    if !(3..=32).contains(&len) {
        return Some("must be 3 to 32 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
    {
        return Some("may only contain a-z, 0-9, '_', '.' and '-'");
    }
    None
}

/// `None` if the password is acceptable, else the reason.
pub fn password_problem(password: &str) -> Option<&'static str> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_CHARS {
        Some("must be at least 8 characters")
    } else if len > MAX_PASSWORD_CHARS {
        Some("must be at most 1024 characters")
    } else {
        None
    }
}

/// `None` if `email` looks like an address, else the reason.
pub fn email_problem(email: &str) -> Option<&'static str> {
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    (!valid).then_some("is not a valid e-mail address")
}

/// `None` if the display name is acceptable, else the reason.
pub fn display_name_problem(name: &str) -> Option<&'static str> {
    let len = name.chars().count();
    if len > 64 {
        Some("must be at most 64 characters")
    } else if name.chars().any(char::is_control) {
        Some("may not contain control characters")
    } else {
        None
    }
}

/// Collects per-field problems into one 422.
#[derive(Default)]
pub struct Problems(FieldErrors);

impl Problems {
    /// Records `reason` for `field` if there is one.
    pub fn check(&mut self, field: &str, reason: Option<&str>) {
        if let Some(reason) = reason {
            self.0
                .entry(field.to_string())
                .or_default()
                .push(reason.to_string());
        }
    }

    /// `Err(422)` if anything was recorded.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// Input for creating an account.
#[derive(Clone, Debug, Default)]
pub struct Signup {
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
}

/// Validates and creates an account (password hashed on the blocking pool).
pub async fn create(state: &AppState, signup: Signup) -> Result<UserRecord> {
    let mut problems = Problems::default();
    problems.check("username", username_problem(&signup.username));
    problems.check("password", password_problem(&signup.password));
    if let Some(email) = signup.email.as_deref().filter(|e| !e.is_empty()) {
        problems.check("email", email_problem(email));
    }
    if let Some(name) = &signup.display_name {
        problems.check("display_name", display_name_problem(name));
    }
    problems.into_result()?;
    let password_hash = state.passwords.hash(&signup.password).await?;
    let display_name = signup
        .display_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| signup.username.clone());
    state
        .store
        .create_user(NewUser {
            username: signup.username,
            display_name,
            email: signup.email.filter(|e| !e.is_empty()),
            password_hash,
            admin: signup.admin,
        })
        .await
}

/// Checks a username and password; the same error for a wrong user or password.
pub async fn check_credentials(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<UserRecord> {
    let user = state.store.user_by_username(username).await?;
    let matched = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    match user {
        Some(user) if matched => Ok(user),
        _ => Err(Error::InvalidCredentials),
    }
}

/// Sets a new password and bumps the token version, revoking every token
/// issued before.
pub async fn set_password(state: &AppState, user_id: u64, password: &str) -> Result<UserRecord> {
    if let Some(reason) = password_problem(password) {
        return Err(Error::field("password", reason));
    }
    let hash = state.passwords.hash(password).await?;
    let user = state.store.set_password_hash(user_id, hash).await?;
    state.sessions_changed(user.id);
    Ok(user)
}

/// Enables or disables an account. Disabling ends the user's live sockets.
pub async fn set_disabled(state: &AppState, user_id: u64, disabled: bool) -> Result<UserRecord> {
    let user = state.store.set_disabled(user_id, disabled).await?;
    state.sessions_changed(user.id);
    Ok(user)
}

/// A random password for accounts created by an admin or the CLI.
pub fn generate_password() -> String {
    crate::auth::random_token(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username_problem("ada").is_none());
        assert!(username_problem("a.b-c_9").is_none());
        assert!(username_problem("ab").is_some());
        assert!(username_problem("Ada").is_some());
        assert!(username_problem("a b c").is_some());
        assert!(username_problem(&"a".repeat(33)).is_some());
    }

    #[test]
    fn passwords_emails_names() {
        assert!(password_problem("1234567").is_some());
        assert!(password_problem("12345678").is_none());
        assert!(email_problem("a@b.co").is_none());
        assert!(email_problem("a@b").is_some());
        assert!(email_problem("no at sign").is_some());
        assert!(display_name_problem("Ada Lovelace").is_none());
        assert!(display_name_problem("bad\u{7}name").is_some());
    }
}
