//! The one error type of the crate and its single mapping to HTTP replies
//! (`{"error": code, "message": text}`, api.md §2) and to Phoenix reply reasons.

use std::collections::BTreeMap;
use std::time::Duration;

/// Per-field validation messages, serialized as `{"field": ["reason", ...]}`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything that can go wrong while serving a request or a socket event.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body is not valid JSON or not of the expected shape.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// No, or an unusable, bearer token.
    #[error("authentication required")]
    Unauthorized,
    /// Wrong username or password (never says which).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The route or the named resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The body exceeds the configured limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Input failed validation; each field lists its reasons.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// A one-time password link that is unknown, used, or voided.
    #[error("this link is not valid (it may have been used already)")]
    InvalidToken,
    /// A one-time password link whose time is up.
    #[error("this link has expired: ask for a new one")]
    ExpiredToken,
    /// Too many attempts; try again after the given time.
    #[error("too many attempts, retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// The service cannot take this right now (store closed, limits reached).
    #[error("{0}")]
    Unavailable(String),
    /// A storage failure; details are logged, never sent.
    #[error("storage error: {0}")]
    Store(String),
    /// Any other internal failure; details are logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A validation error on one field.
    pub fn field(field: &str, reason: impl Into<String>) -> Error {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![reason.into()]);
        Error::Validation(errors)
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized | Error::InvalidCredentials => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::PayloadTooLarge(_) => 413,
            Error::Validation(_) | Error::InvalidToken | Error::ExpiredToken => 422,
            Error::RateLimited(_) => 429,
            Error::Unavailable(_) => 503,
            Error::Store(_) | Error::Internal(_) => 500,
        }
    }

    /// The stable machine-readable code of the error shape.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized => "unauthorized",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::Validation(_) => "validation_failed",
            Error::InvalidToken => "invalid_token",
            Error::ExpiredToken => "expired_token",
            Error::RateLimited(_) => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }

    /// The `reason` of a Phoenix error reply for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Unauthorized | Error::InvalidCredentials | Error::Forbidden(_) => "unauthorized",
            Error::NotFound(_) => "not_found",
            Error::BadRequest(_)
            | Error::Validation(_)
            | Error::PayloadTooLarge(_)
            | Error::InvalidToken
            | Error::ExpiredToken => "invalid_payload",
            Error::RateLimited(_) => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }

    /// The human text sent to clients: internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(_) | Error::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }

    /// The JSON body of the api.md error shape.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": self.code(),
            "message": self.public_message(),
        });
        if let Error::Validation(errors) = self {
            body["errors"] = serde_json::json!(errors);
        }
        body
    }

    /// Whether this is a server-side failure worth logging at error level.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Store(_) | Error::Internal(_))
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_body_names_fields() {
        let body = Error::field("username", "is taken").body();
        assert_eq!(body["error"], "validation_failed");
        assert_eq!(body["errors"]["username"][0], "is taken");
    }

    #[test]
    fn internal_details_are_not_sent() {
        let e = Error::Store("disk on fire at /secret/path".into());
        assert_eq!(e.status(), 500);
        assert!(!e.body().to_string().contains("secret"));
    }
}
