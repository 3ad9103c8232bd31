//! One incoming HTTP request as handlers see it: the shared state, the
//! client's address, and helpers to read a size-limited JSON body and to
//! authenticate the bearer token.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH};
use hyper::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{self, Identity};
use crate::error::{Error, Result};
use crate::state::State;

/// How long a client may take to send a body once headers have arrived.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request in flight.
pub struct Call {
    pub state: State,
    /// Method, URI, headers and extensions of the request.
    pub parts: Parts,
    /// The body, until a handler takes it.
    pub body: Option<Incoming>,
    pub client_ip: IpAddr,
}

impl Call {
    /// The value of header `name`, if it is valid text.
    pub fn header(&self, name: impl hyper::header::AsHeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The client address for throttling: the peer, or the first
    /// `X-Forwarded-For` entry when `trust_forwarded_for` is set.
    pub fn client_key(&self) -> String {
        if self.state.cfg.trust_forwarded_for {
            if let Some(first) = self
                .header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
            {
                return first.to_string();
            }
        }
        self.client_ip.to_string()
    }

    /// The raw body, refused with 413 over `max_http_body_bytes`.
    pub async fn body_bytes(&mut self) -> Result<Bytes> {
        let limit = self.state.cfg.max_http_body_bytes;
        let declared = self
            .header(CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(Error::PayloadTooLarge(limit));
        }
        let body = self
            .body
            .take()
            .ok_or_else(|| Error::BadRequest("the body was already read".into()))?;
        let collected =
            tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect())
                .await
                .map_err(|_| {
                    Error::BadRequest("the request body took too long to arrive".into())
                })?;
        match collected {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(Error::PayloadTooLarge(limit))
            }
            Err(e) => Err(Error::BadRequest(format!("could not read the body: {e}"))),
        }
    }

    /// The body parsed as JSON: 400 if it is not valid JSON of the expected shape.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.body_bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::BadRequest("a JSON body is required".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("invalid JSON: {e}")))
    }

    /// The bearer token of the request, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        auth::bearer(self.header(AUTHORIZATION))
    }

    /// The authenticated caller; 401 without a valid token.
    pub async fn identity(&self) -> Result<Identity> {
        let token = self.bearer_token().ok_or(Error::Unauthorized)?;
        auth::authenticate(&self.state.keys, &self.state.store, token).await
    }

    /// The authenticated caller, who must be an admin (403 otherwise).
    pub async fn admin(&self) -> Result<Identity> {
        let identity = self.identity().await?;
        if !identity.user.admin {
            return Err(Error::Forbidden("this needs an admin account".into()));
        }
        Ok(identity)
    }
}
