//! The HTTP front: one routing table from (method, path segments) to a
//! handler, and the single place where handler errors become api.md error
//! replies. Static paths fall through to the embedded web UI.

pub mod api;
pub mod assets;
pub mod call;
pub mod health;
pub mod metrics;
pub mod query;
pub mod reply;
pub mod router;

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
    let is_asset =
        !path.starts_with("/api/") && !path.starts_with("/socket/") && !path.starts_with("/hooks/");
    let (label, result) = route(&mut call, &method, &path).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => reply::error(&error),
    };
    let status = response.status().as_u16();
    call.state.metrics.http_request(label, status);
    tracing::debug!(%method, route = label, status, "request");
    Ok(reply::finish(response, is_asset))
}

async fn route(
    call: &mut Call,
    method: &Method,
    path: &str,
) -> (&'static str, Result<HttpResponse>) {
    let Some(matched) = router::find(method.as_str(), path) else {
        return if path.starts_with("/api/") || path.starts_with("/socket/") {
            ("unmatched", Err(Error::NotFound("route")))
        } else if method == Method::GET || method == Method::HEAD {
            ("static", Ok(assets::serve(call, path)))
        } else {
            ("unmatched", Err(Error::NotFound("route")))
        };
    };
    let p = |i: usize| matched.params.get(i).map_or("", String::as_str);
    use api::{
        admin, attachments, auth, bots, conversations, hooks, ignores, me, password, rooms, search,
        users,
    };
    use router::Route::*;
    let result = match matched.route {
        Healthz => Ok(health::healthz()),
        Readyz => Ok(health::readyz(call).await),
        Metrics => metrics::serve(call),
        Register => auth::register(call).await,
        Login => auth::login(call).await,
        Logout => auth::logout(call).await,
        RefreshToken => auth::refresh(call).await,
        Me => me::show(call).await,
        UpdateMe => me::update(call).await,
        Users => users::list(call).await,
        CreateUser => users::create(call).await,
        Rooms => rooms::list(call).await,
        CreateRoom => rooms::create(call).await,
        AddMember => rooms::add_member(call, p(0)).await,
        RemoveMember => rooms::remove_member(call, p(0), p(1)).await,
        RoomHistory => rooms::history(call, &format!("room:{}", p(0))).await,
        RoomPost => rooms::post(call, &format!("room:{}", p(0))).await,
        Conversations => conversations::list(call).await,
        OpenConversation => conversations::open(call).await,
        ConversationHistory => conversations::history(call, p(0)).await,
        ConversationPost => conversations::post(call, p(0)).await,
        Ignores => ignores::list(call).await,
        Ignore => ignores::set(call, p(0), true).await,
        Unignore => ignores::set(call, p(0), false).await,
        AdminExport => admin::export(call).await,
        RoomUpload => attachments::upload(call, &format!("room:{}", p(0))).await,
        ConversationUpload => match p(0).parse::<u64>() {
            Ok(id) => attachments::upload(call, &format!("dm:{id}")).await,
            Err(_) => Err(Error::NotFound("conversation")),
        },
        Attachment => attachments::fetch(call, p(0)).await,
        Search => search::search(call).await,
        WebSocket => crate::socket::upgrade::upgrade(call).await,
        LongPoll => crate::socket::longpoll::handle(call).await,
        Bots => bots::list(call).await,
        CreateBot => bots::create(call).await,
        DeleteBot => bots::delete(call, p(0)).await,
        RotateBotKey => bots::rotate(call, p(0)).await,
        BotDeliveries => bots::deliveries(call, p(0)).await,
        UpdateBot => bots::update(call, p(0)).await,
        RoomHooks => hooks::list(call, p(0)).await,
        CreateRoomHook => hooks::create(call, p(0)).await,
        DeleteRoomHook => hooks::delete(call, p(0), p(1)).await,
        IncomingHook => hooks::incoming(call, p(0)).await,
        PasswordForgot => password::forgot(call).await,
        PasswordReset => password::reset(call).await,
    };
    (matched.pattern, result)
}
