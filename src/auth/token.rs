//! Access tokens: JWT signed with HS256, claims `sub` (user id), `exp`,
//! `iat`, `jti` and `ver` (the user's token version at issue time).
//! Only HS256 is accepted; `alg: none` and every other algorithm are refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::{Error, Result};

/// The claims confab puts in and expects from a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Unique token id, for logout.
    pub jti: String,
    /// The user's token version when issued.
    #[serde(default)]
    pub ver: u32,
}

impl Claims {
    /// The user id in `sub`.
    pub fn user_id(&self) -> Result<u64> {
        self.sub.parse().map_err(|_| Error::Unauthorized)
    }
}

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenKeys {
    /// Keys for `secret`; tokens live `ttl_secs`.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// A fresh token for `user_id`; returns it with its claims.
    pub fn issue(&self, user_id: u64, version: u32) -> Result<(String, Claims)> {
        let now = clock::now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            exp: now + self.ttl_secs,
            iat: now,
            jti: super::random_token(16),
            ver: version,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
        Ok((token, claims))
    }

    /// The claims of a validly signed, unexpired token; 401 otherwise.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::Unauthorized)
    }
}

/// Claims of a LongPoll session token: which session, whose, until when,
/// and in a cluster which node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub exp: u64,
    pub iat: u64,
    /// The id of the node holding the session (cluster mode only; absent
    /// on a single node, so its tokens are as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// LongPoll session tokens live as long as Phoenix's (14 days).
const SESSION_TOKEN_SECS: u64 = 14 * 24 * 3600;

impl TokenKeys {
    /// A signed token naming LongPoll session `sid` of `user_id`, held by
    /// `node` in a cluster.
    pub fn issue_session(&self, user_id: u64, sid: &str, node: Option<&str>) -> Result<String> {
        let now = clock::now_secs();
        let claims = SessionClaims {
            sub: user_id.to_string(),
            sid: sid.to_string(),
            exp: now + SESSION_TOKEN_SECS,
            iat: now,
            node: node.map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))
    }

    /// The claims of a valid LongPoll session token (an access token is not one).
    pub fn verify_session(&self, token: &str) -> Option<SessionClaims> {
        let mut validation = self.validation.clone();
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let keys = TokenKeys::new(SECRET, 60);
        let (token, claims) = keys.issue(42, 3).unwrap();
        let back = keys.verify(&token).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.user_id().unwrap(), 42);
        assert_eq!(back.ver, 3);
        assert!(back.exp >= back.iat + 60);
    }

    #[test]
    fn other_secret_tampering_and_none_are_refused() {
        let keys = TokenKeys::new(SECRET, 60);
        let other = TokenKeys::new(b"another secret another secret xx", 60);
        let (token, _) = other.issue(1, 0).unwrap();
        assert!(keys.verify(&token).is_err());

        let (token, _) = keys.issue(1, 0).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = "2".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        assert!(keys.verify(&forged).is_err());

        let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys
            .verify(&format!("{none_header}.{}.", parts[1]))
            .is_err());
        assert!(keys.verify("garbage").is_err());
    }

    #[test]
    fn session_tokens_are_not_access_tokens() {
        let keys = TokenKeys::new(SECRET, 60);
        let session = keys.issue_session(5, "abc", None).unwrap();
        let claims = keys.verify_session(&session).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("5", "abc"));
        assert_eq!(claims.node, None);
        // A single node's claims are as they were before nodes were named.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload: serde_json::Value =
            serde_json::from_slice(&b64.decode(session.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert!(payload.get("node").is_none());
        let held = keys.issue_session(5, "abc", Some("n1#Ab-_")).unwrap();
        assert_eq!(
            keys.verify_session(&held).unwrap().node.as_deref(),
            Some("n1#Ab-_")
        );
        let (access, _) = keys.issue(5, 0).unwrap();
        assert!(keys.verify_session(&access).is_none());
        let other = TokenKeys::new(b"another secret another secret xx", 60);
        assert!(other.verify_session(&session).is_none());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::new(SECRET, 60);
        let now = clock::now_secs();
        let claims = Claims {
            sub: "1".into(),
            exp: now - 1,
            iat: now - 61,
            jti: "x".into(),
            ver: 0,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }
}
