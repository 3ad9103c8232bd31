//! Authentication shared by the HTTP API and the socket upgrade: who is
//! calling, from a bearer token, with every refusal rule in one place
//! (bad signature, expired, revoked `jti`, older token version, disabled user).

pub mod hashing_pool;
pub mod password;
pub mod throttle;
pub mod token;

use crate::error::{Error, Result};
use crate::store::records::UserRecord;
use crate::store::Store;
pub use token::{Claims, TokenKeys};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user: UserRecord,
    pub claims: Claims,
}

/// Checks a raw token (a JWT, or a bot API key `cfb_…`) against the keys
/// and the store.
pub async fn authenticate(keys: &TokenKeys, store: &Store, token: &str) -> Result<Identity> {
    if crate::bots::keys::is_key(token) {
        return authenticate_bot(store, token).await;
    }
    let claims = keys.verify(token)?;
    let user = store
        .user(claims.user_id()?)
        .await?
        .ok_or(Error::Unauthorized)?;
    if user.disabled || claims.ver != user.token_version {
        return Err(Error::Unauthorized);
    }
    if store.is_token_revoked(&claims.jti).await? {
        return Err(Error::Unauthorized);
    }
    Ok(Identity { user, claims })
}

/// A bot API key: found by its hash. The identity's claims stand for the
/// key: its version is the bot's token version (moved by a rotation or a
/// deletion, which makes open sockets fail their recheck) and its `jti`
/// names the key, so a logout with it refuses that key.
async fn authenticate_bot(store: &Store, key: &str) -> Result<Identity> {
    let hash = crate::bots::keys::hash(key);
    let jti = format!("botkey-{}", crate::bots::keys::hex(&hash[..12]));
    let user = store
        .bot_by_key_hash(hash)
        .await?
        .ok_or(Error::Unauthorized)?;
    if user.disabled || !user.bot || store.is_token_revoked(&jti).await? {
        return Err(Error::Unauthorized);
    }
    let now = crate::clock::now_secs();
    let claims = Claims {
        sub: user.id.to_string(),
        exp: now + 365 * 24 * 3600,
        iat: now,
        jti,
        ver: user.token_version,
    };
    Ok(Identity { user, claims })
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub use crate::random::{random_bytes, random_token};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token(16), random_token(16));
        assert_eq!(random_token(16).len(), 22);
    }
}
