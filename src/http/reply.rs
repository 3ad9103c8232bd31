//! Building HTTP responses: JSON bodies, the api.md error shape, and the
//! security headers every response carries.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::error::Error;

/// The body type of every response.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A response with a body of bytes.
pub type HttpResponse = Response<Body>;

/// Wraps bytes as a response body.
pub fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response.
pub fn json(status: u16, value: &impl serde::Serialize) -> HttpResponse {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(body(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An empty response with `status`.
pub fn empty(status: u16) -> HttpResponse {
    let mut response = Response::new(body(Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    response
}

/// A plain-text response.
pub fn text(status: u16, text: &'static str) -> HttpResponse {
    let mut response = Response::new(body(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The api.md error shape for `error`, with `Retry-After` on 429.
pub fn error(error: &Error) -> HttpResponse {
    if error.is_internal() {
        tracing::error!(error = %error, "request failed");
    }
    let mut response = json(error.status(), &error.body());
    if let Error::RateLimited(wait) = error {
        let secs = wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }
    response
}

/// Adds the headers every response carries; API responses are never cached.
pub fn finish(mut response: HttpResponse, is_asset: bool) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if !is_asset && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
