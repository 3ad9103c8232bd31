//! The WebSocket handshake at `/socket/websocket`: origin check, serializer
//! negotiation (`vsn`), token (query `token` or the `authToken`
//! subprotocol), socket limits — every refusal is an HTTP status before any
//! socket opens, never accept-then-close. Accepted sockets run a session
//! under the server's session tracker.

use base64::Engine;
use futures_util::future::{FutureExt, OptionFuture};
use hyper::header::{
    HeaderValue, CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::OnUpgrade;
use hyper::Method;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::frame::Vsn;
use super::session::Session;
use super::ws_deflate;
use super::ws_stream::WsStream;
use crate::auth;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::query;
use crate::http::reply::{self, HttpResponse};
use crate::hub::ConnTx;

/// Prefix of the subprotocol that carries the token (phoenix.js `authToken`).
const TOKEN_PROTOCOL_PREFIX: &str = "base64url.bearer.phx.";

/// Handles `GET /socket/websocket`.
pub async fn upgrade(call: &mut Call) -> Result<HttpResponse> {
    if call.parts.method != Method::GET {
        return Ok(reply::text(400, "the WebSocket endpoint takes GET only"));
    }
    let state = call.state.clone();
    let params = query::pairs(call.parts.uri.query());
    if !origin_allowed(
        &state.cfg.allowed_origins,
        call.header(ORIGIN),
        call.header(HOST),
    ) {
        return Ok(reply::empty(403));
    }
    let Some(vsn) = Vsn::negotiate(query::last(&params, "vsn")) else {
        return Ok(reply::empty(403));
    };
    let offered = call
        .header(SEC_WEBSOCKET_PROTOCOL)
        .unwrap_or("")
        .to_string();
    let protocol_token = offered
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .and_then(decode_protocol_token);
    let answers_phoenix = offered.split(',').any(|p| p.trim() == "phoenix");
    let token = match protocol_token
        .as_deref()
        .or_else(|| query::last(&params, "token"))
    {
        Some(token) => token.to_string(),
        None => return Ok(reply::empty(403)),
    };
    let identity = match auth::authenticate(&state.keys, &state.store, &token).await {
        Ok(identity) => identity,
        Err(Error::Unauthorized) => {
            crate::metrics::Metrics::inc(&state.metrics.auth_failures);
            return Ok(reply::empty(403));
        }
        Err(other) => return Err(other),
    };
    let key = match websocket_key(call) {
        Some(key) => key,
        None => return Ok(reply::text(400, "not a valid WebSocket upgrade request")),
    };
    if state.hub.socket_count()
        >= state
            .socket_capacity
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(Error::Unavailable(
            "the server has reached its socket limit; try again later".into(),
        ));
    }
    let Some(on_upgrade) = call.parts.extensions.remove::<OnUpgrade>() else {
        return Ok(reply::text(400, "this connection cannot be upgraded"));
    };
    let (conn, outbound) = ConnTx::new(
        state.next_conn_id(),
        identity.user.id,
        state.cfg.outbound_queue_frames,
    );
    let Ok(registration) = state.hub.register(&conn, state.cfg.max_sockets_per_user) else {
        return Err(Error::RateLimited(std::time::Duration::from_secs(5)));
    };
    let max_message = state.cfg.max_frame_bytes;
    let deflate = if state.cfg.websocket_compression {
        deflate_offer(call)
    } else {
        None
    };
    let agreed = deflate.as_ref().map(|(agreed, _)| *agreed);
    let session_state = state.clone();
    // Chained, not one `async` block: a block would keep a slot for each
    // value it captured (the identity, the queue, ...) for the socket's
    // whole life, even once they have moved into the session. Here the
    // upgrade step and the session share the task's memory.
    let session = on_upgrade.then(move |upgraded| {
        let run = match upgraded.map(|u| u.downcast::<TokioIo<TcpStream>>()) {
            Ok(Ok(parts)) => {
                let ws = WsStream::new(parts.io.into_inner(), &parts.read_buf, max_message, agreed);
                let mut session = Session::new(session_state, registration, conn, vsn, identity);
                session.deflate = agreed;
                Some(session.run(ws, outbound))
            }
            Ok(Err(_)) => {
                tracing::warn!("upgraded connection is not a TCP stream");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                None
            }
        };
        // Without a session the registration was dropped above.
        OptionFuture::from(run).map(|_| ())
    });
    state.sessions.spawn(session);

    let mut response = reply::empty(101);
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(value) = deflate.and_then(|(_, response)| HeaderValue::from_str(&response).ok()) {
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, value);
    }
    if answers_phoenix || protocol_token.is_some() {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix"));
    }
    Ok(response)
}

/// The permessage-deflate offer accepted, if the client made one this
/// server can honour, with the response header's value.
fn deflate_offer(call: &Call) -> Option<(ws_deflate::Agreed, String)> {
    let offers: Vec<&str> = call
        .parts
        .headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    ws_deflate::negotiate(&offers.join(","))
}

/// The `Sec-WebSocket-Key` of a well-formed version-13 upgrade request.
fn websocket_key(call: &Call) -> Option<String> {
    let has_token = |value: Option<&str>, token: &str| {
        value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(call.header(CONNECTION), "upgrade")
        || !has_token(call.header(UPGRADE), "websocket")
        || call.header(SEC_WEBSOCKET_VERSION) != Some("13")
    {
        return None;
    }
    call.header(SEC_WEBSOCKET_KEY)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// Decodes the token carried in the subprotocol (standard base64 without
/// padding; URL-safe accepted too).
fn decode_protocol_token(encoded: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = encoded.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Whether a browser `Origin` may open a socket. No `Origin` (non-browser
/// clients) is allowed; an empty list means same origin as `Host`; `*` means any.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    if allowed.is_empty() {
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        return host.is_some_and(|h| h.trim().eq_ignore_ascii_case(origin_host));
    }
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(&none, None, Some("x:4000")));
        assert!(origin_allowed(&none, Some("http://x:4000"), Some("x:4000")));
        assert!(!origin_allowed(
            &none,
            Some("http://evil:4000"),
            Some("x:4000")
        ));
        let any = vec!["*".to_string()];
        assert!(origin_allowed(&any, Some("http://evil"), Some("x")));
        let list = vec!["https://chat.example.com".to_string()];
        assert!(origin_allowed(
            &list,
            Some("https://chat.example.com/"),
            Some("x")
        ));
        assert!(!origin_allowed(
            &list,
            Some("http://chat.example.com"),
            Some("x")
        ));
    }

    #[test]
    fn protocol_tokens() {
        assert_eq!(decode_protocol_token("YWJj").as_deref(), Some("abc"));
        assert_eq!(decode_protocol_token("YWI+Pz8").as_deref(), Some("ab>??"));
        assert_eq!(decode_protocol_token("YWI-Pz8").as_deref(), Some("ab>??"));
        assert_eq!(decode_protocol_token("!!"), None);
    }
}
