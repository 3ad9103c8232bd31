//! The HTTP front: one routing table from (method, path segments) to a
//! handler, and the single place where handler errors become api.md error
//! replies. Static paths fall through to the embedded web UI.

pub mod api;
pub mod assets;
pub mod call;
pub mod health;
pub mod query;
pub mod reply;

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::error::{Error, Result};
use crate::state::State;
use call::Call;
pub use reply::{Body, HttpResponse};

/// Serves one request. Never fails: every error becomes a response.
pub async fn handle(
    state: State,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> std::result::Result<HttpResponse, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let mut call = Call {
        state,
        parts,
        body: Some(body),
        client_ip: peer.ip(),
    };
    let is_asset = !path.starts_with("/api/") && !path.starts_with("/socket/");
    let response = match route(&mut call, &method, &path).await {
        Ok(response) => response,
        Err(error) => reply::error(&error),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    Ok(reply::finish(response, is_asset))
}

async fn route(call: &mut Call, method: &Method, path: &str) -> Result<HttpResponse> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    use api::{auth, conversations, ignores, me, rooms, users};
    match (method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["healthz"]) => Ok(health::healthz()),
        (&Method::GET | &Method::HEAD, ["readyz"]) => Ok(health::readyz(call).await),
        (&Method::POST, ["api", "register"]) => auth::register(call).await,
        (&Method::POST, ["api", "login"]) => auth::login(call).await,
        (&Method::POST, ["api", "logout"]) => auth::logout(call).await,
        (&Method::POST, ["api", "token", "refresh"]) => auth::refresh(call).await,
        (&Method::GET, ["api", "me"]) => me::show(call).await,
        (&Method::PATCH, ["api", "me"]) => me::update(call).await,
        (&Method::GET, ["api", "users"]) => users::list(call).await,
        (&Method::POST, ["api", "users"]) => users::create(call).await,
        (&Method::GET, ["api", "rooms"]) => rooms::list(call).await,
        (&Method::POST, ["api", "rooms"]) => rooms::create(call).await,
        (&Method::POST, ["api", "rooms", name, "members"]) => rooms::add_member(call, name).await,
        (&Method::DELETE, ["api", "rooms", name, "members", username]) => {
            rooms::remove_member(call, name, username).await
        }
        (&Method::GET, ["api", "rooms", name, "messages"]) => {
            rooms::history(call, &format!("room:{name}")).await
        }
        (&Method::POST, ["api", "rooms", name, "messages"]) => {
            rooms::post(call, &format!("room:{name}")).await
        }
        (&Method::GET, ["api", "conversations"]) => conversations::list(call).await,
        (&Method::POST, ["api", "conversations"]) => conversations::open(call).await,
        (&Method::GET, ["api", "conversations", id, "messages"]) => {
            conversations::history(call, id).await
        }
        (&Method::POST, ["api", "conversations", id, "messages"]) => {
            conversations::post(call, id).await
        }
        (&Method::GET, ["api", "me", "ignores"]) => ignores::list(call).await,
        (&Method::PUT, ["api", "me", "ignores", username]) => {
            ignores::set(call, username, true).await
        }
        (&Method::DELETE, ["api", "me", "ignores", username]) => {
            ignores::set(call, username, false).await
        }
        (_, ["socket", "websocket"]) => crate::socket::upgrade::upgrade(call).await,
        (_, ["api", ..]) => Err(Error::NotFound("route")),
        (&Method::GET | &Method::HEAD, _) => Ok(assets::serve(call, path)),
        _ => Err(Error::NotFound("route")),
    }
}
