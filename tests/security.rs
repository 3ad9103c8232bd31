//! Security tests against the real binary (api.md §2–3):
//!
//! - forged, re-signed, tampered, expired and revoked JWTs are refused on
//!   every door: HTTP (401), the WebSocket upgrade with the token in the
//!   query or in the `authToken` subprotocol (403), and LongPoll (`403`);
//! - no user can join or read another user's `user:` / `dm:` topic or a
//!   private room, over the socket or over REST (history, post, uploads,
//!   attachment bytes, membership);
//! - a restricted `allowed_origins` refuses cross-origin upgrades;
//! - static paths never escape the embedded assets;
//! - clients that dribble their headers (slowloris) are cut off and do not
//!   starve other clients;
//! - failed logins are throttled per address and per username (429 with
//!   `Retry-After`);
//! - no password, token, password hash or JWT secret appears in a log line,
//!   and no response but the admin export carries a password hash.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use common::phx::{blocking, socket_url, ConnectError, PhxClient};
use common::{request, wait_for, Response, TestServer};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const PASSWORD: &str = "security-password-1";
const SECRET: &str = "security-test-jwt-secret-0123456789abcdefXYZ";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// How the three doors answer one token.
#[derive(Debug, PartialEq, Eq)]
struct Doors {
    http: u16,
    ws_query: u16,
    ws_protocol: u16,
    longpoll: u16,
}

impl Doors {
    const OPEN: Doors = Doors {
        http: 200,
        ws_query: 101,
        ws_protocol: 101,
        longpoll: 410,
    };
    const SHUT: Doors = Doors {
        http: 401,
        ws_query: 403,
        ws_protocol: 403,
        longpoll: 403,
    };
}

/// The status of a WebSocket upgrade: 101 if it opened (the socket is then
/// closed again), else the refusal's HTTP status.
async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    match PhxClient::connect_with_headers(url, headers).await {
        Ok(client) => {
            client.close().await;
            101
        }
        Err(ConnectError::Refused { status, .. }) => status,
        Err(ConnectError::Failed(e)) => panic!("upgrade of {url} failed oddly: {e}"),
    }
}

/// The `authToken` subprotocol phoenix.js sends for `token`.
fn token_protocol(token: &str) -> String {
    format!("phoenix, base64url.bearer.phx.{}", B64.encode(token))
}

/// The logical status of a LongPoll open (`GET /socket/longpoll?token=..`).
fn longpoll_open(server: &TestServer, token: &str, headers: &[(&str, &str)]) -> Value {
    let path = format!("/socket/longpoll?vsn=2.0.0&token={}", percent_encode(token));
    let response = server.request("GET", &path, None, None, headers);
    response.assert_status(200, "LongPoll always answers 200");
    response.json()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Tries `token` on every door.
async fn doors(server: &TestServer, token: &str) -> Doors {
    let http = blocking(|| server.get("/api/me", Some(token))).status;
    let ws_query = upgrade_status(&socket_url(server.addr(), &percent_encode(token)), &[]).await;
    let protocol = token_protocol(token);
    let ws_protocol = upgrade_status(
        &format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr()),
        &[("Sec-WebSocket-Protocol", &protocol)],
    )
    .await;
    let longpoll = blocking(|| longpoll_open(server, token, &[]))["status"]
        .as_u64()
        .expect("LongPoll status") as u16;
    Doors {
        http,
        ws_query,
        ws_protocol,
        longpoll,
    }
}

#[track_caller]
fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).expect("base64url JWT part")).expect("JSON JWT part")
}

/// A JWT with `header` and `claims`, signed with HMAC-SHA256 over the
/// signing input with `secret` whatever the header says.
fn hs256_signed(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HMAC");
    format!("{input}.{signature}")
}

/// `claims` signed with `alg` and the server's own secret.
fn with_secret(alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    signed_with(alg, claims, SECRET.as_bytes())
}

fn signed_with(alg: jsonwebtoken::Algorithm, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign a test token")
}

/// The 4-byte signature of a PNG file and a few bytes: an accepted upload.
fn tiny_png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1]);
    bytes
}

/// `GET path` with a bearer token, the body kept as bytes.
fn get_bytes(server: &TestServer, path: &str, token: &str) -> common::RawResponse {
    let raw = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n",
        server.addr()
    );
    common::request_raw_bytes(server.addr(), raw.as_bytes(), false)
}

fn upload(server: &TestServer, path: &str, token: &str) -> Response {
    request(
        server.addr(),
        "POST",
        path,
        Some(token),
        Some(&tiny_png()),
        &[("Content-Type", "image/png")],
    )
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// Forged tokens: `alg: none`, other algorithms (HS384/HS512 with the right
/// secret, RS256/ES256 headers over an HMAC signature: algorithm
/// confusion), tampered claims under the real signature, another secret,
/// claims the server did not issue (unknown user, old token version,
/// missing `exp`/`jti`), and malformed strings. Each is refused on HTTP,
/// both WebSocket token carriers and LongPoll; the real token passes all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused_on_every_door() {
    let server = blocking(|| TestServer::start_with(&[("CONFAB_JWT_SECRET", SECRET)], None));
    let (admin_token, admin) = blocking(|| server.register("alice", PASSWORD));
    let (token, bob) = blocking(|| server.register("bobby", PASSWORD));
    assert_eq!(
        doors(&server, &token).await,
        Doors::OPEN,
        "bob's real token"
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header = decode_part(parts[0]);
    assert_eq!(header["alg"], "HS256", "{header}");
    let claims = decode_part(parts[1]);
    assert_eq!(claims["sub"], bob["id"].to_string(), "{claims}");

    // Control: a token minted here with the server's secret and fresh
    // claims is accepted, so every refusal below is about what was changed.
    let mut own = claims.clone();
    own["jti"] = json!("security-test-jti-1");
    let minted = with_secret(jsonwebtoken::Algorithm::HS256, &own);
    assert_eq!(doors(&server, &minted).await, Doors::OPEN, "minted token");

    let payload = B64.encode(own.to_string());
    let none = |alg: &str| B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let mut escalated = own.clone();
    escalated["sub"] = json!(admin["id"].to_string());
    let mut extended = claims.clone();
    extended["exp"] = json!(claims["exp"].as_u64().unwrap() + 365 * 24 * 3600);
    let mut unknown_user = own.clone();
    unknown_user["sub"] = json!("999999");
    let mut old_version = own.clone();
    old_version["ver"] = json!(own["ver"].as_u64().unwrap_or(0) + 1);
    let mut no_exp = own.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_jti = own.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut numeric_sub = own.clone();
    numeric_sub["sub"] = json!(bob["id"].as_u64().unwrap());

    let forged: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            format!("{}.{payload}.", none("none")),
        ),
        (
            "alg none with the real signature",
            format!("{}.{payload}.{}", none("none"), parts[2]),
        ),
        ("alg None", format!("{}.{payload}.", none("None"))),
        ("alg NONE", format!("{}.{payload}.", none("NONE"))),
        ("alg none, two parts", format!("{}.{payload}", none("none"))),
        (
            "HS512 with the right secret",
            with_secret(jsonwebtoken::Algorithm::HS512, &own),
        ),
        (
            "HS384 with the right secret",
            with_secret(jsonwebtoken::Algorithm::HS384, &own),
        ),
        (
            "RS256 header over an HMAC signature",
            hs256_signed(
                &json!({"alg": "RS256", "typ": "JWT"}),
                &own,
                SECRET.as_bytes(),
            ),
        ),
        (
            "ES256 header over an HMAC signature",
            hs256_signed(
                &json!({"alg": "ES256", "typ": "JWT"}),
                &own,
                SECRET.as_bytes(),
            ),
        ),
        (
            "RS256 header with the real signature",
            format!(
                "{}.{}.{}",
                B64.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
                parts[1],
                parts[2]
            ),
        ),
        (
            "sub changed to the admin under the real signature",
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(escalated.to_string()),
                parts[2]
            ),
        ),
        (
            "exp extended under the real signature",
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(extended.to_string()),
                parts[2]
            ),
        ),
        (
            "signature of another token",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                admin_token.split('.').nth(2).unwrap()
            ),
        ),
        ("signature cut short", {
            let mut t = token.clone();
            t.truncate(t.len() - 4);
            t
        }),
        ("signature flipped", {
            let mut sig = B64.decode(parts[2]).unwrap();
            sig[0] ^= 1;
            format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig))
        }),
        (
            "another secret",
            signed_with(
                jsonwebtoken::Algorithm::HS256,
                &own,
                b"not-the-server-secret-0123456789abcdefgh",
            ),
        ),
        (
            "empty secret",
            signed_with(jsonwebtoken::Algorithm::HS256, &own, b""),
        ),
        (
            "unknown user, right secret",
            with_secret(jsonwebtoken::Algorithm::HS256, &unknown_user),
        ),
        (
            "older token version, right secret",
            with_secret(jsonwebtoken::Algorithm::HS256, &old_version),
        ),
        (
            "no exp, right secret",
            with_secret(jsonwebtoken::Algorithm::HS256, &no_exp),
        ),
        (
            "no jti, right secret",
            with_secret(jsonwebtoken::Algorithm::HS256, &no_jti),
        ),
        (
            "numeric sub, right secret",
            with_secret(jsonwebtoken::Algorithm::HS256, &numeric_sub),
        ),
        ("garbage", "not-a-token".to_string()),
        ("three dots", "..".to_string()),
        ("empty parts with a dot", ".x.".to_string()),
        ("token twice", format!("{token}.{token}")),
        ("trailing garbage", format!("{token}x")),
    ];
    let mut open = Vec::new();
    for (what, forged_token) in &forged {
        let answer = doors(&server, forged_token).await;
        eprintln!("{what}: {answer:?}");
        if answer != Doors::SHUT {
            open.push(format!("{what}: {answer:?}"));
        }
    }
    assert!(
        open.is_empty(),
        "forged tokens got through:\n{}",
        open.join("\n")
    );
    // Nothing was broken for the real tokens.
    assert_eq!(
        doors(&server, &token).await,
        Doors::OPEN,
        "bob's real token"
    );
    blocking(|| server.get("/api/me", Some(&admin_token))).assert_status(200, "admin token");
    // A LongPoll session token is not an access token, nor the reverse.
    let opened = blocking(|| longpoll_open(&server, &token, &[]));
    let session = opened["token"].as_str().expect("session token").to_string();
    blocking(|| server.get("/api/me", Some(&session))).assert_error(
        401,
        "unauthorized",
        "a LongPoll session token as bearer",
    );
    let posted = blocking(|| {
        server.request(
            "POST",
            "/socket/longpoll?vsn=2.0.0",
            None,
            Some("[null,\"1\",\"phoenix\",\"heartbeat\",{}]"),
            &[("X-Phoenix-LongPoll-Token", &token)],
        )
    });
    assert_eq!(
        posted.json()["status"],
        410,
        "an access token is not a LongPoll session: {}",
        posted.body
    );
}

/// `CONFAB_TOKEN_TTL_SECS=1`: once expired, a token is refused everywhere
/// (and cannot be refreshed); a fresh login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_on_every_door() {
    let server = blocking(|| TestServer::start_with(&[("CONFAB_TOKEN_TTL_SECS", "1")], None));
    let (token, _) = blocking(|| server.register("alice", PASSWORD));
    let claims = decode_part(token.split('.').nth(1).unwrap());
    let exp = claims["exp"].as_u64().unwrap();
    // Within its second the token works (if this host is fast enough to
    // get here in time; the refusal below is what matters).
    let early = blocking(|| server.get("/api/me", Some(&token))).status;
    blocking(|| {
        wait_for(Duration::from_secs(10), "the token to expire", || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            (now > exp).then_some(())
        })
    });
    assert_eq!(doors(&server, &token).await, Doors::SHUT, "expired token");
    blocking(|| server.request("POST", "/api/token/refresh", Some(&token), None, &[]))
        .assert_error(401, "unauthorized", "refresh with an expired token");
    blocking(|| server.request("POST", "/api/logout", Some(&token), None, &[])).assert_error(
        401,
        "unauthorized",
        "logout with an expired token",
    );
    // A fresh login works again (its token lives one second too).
    let (fresh, _) = blocking(|| server.login("alice", PASSWORD));
    let status = blocking(|| server.get("/api/me", Some(&fresh))).status;
    eprintln!("first use within the TTL: {early}; a fresh token right away: {status}");
}

/// A logged-out token (revoked `jti`) is refused on every door, cannot be
/// refreshed or logged out again, and its LongPoll session ends; the same
/// user's other token is unaffected. Survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_jti_is_refused_on_every_door() {
    let mut server = blocking(TestServer::start);
    let (first, _) = blocking(|| server.register("alice", PASSWORD));
    let (second, _) = blocking(|| server.login("alice", PASSWORD));
    assert_eq!(doors(&server, &first).await, Doors::OPEN, "before logout");
    let opened = blocking(|| longpoll_open(&server, &first, &[]));
    let session = opened["token"].as_str().unwrap().to_string();

    blocking(|| server.request("POST", "/api/logout", Some(&first), None, &[]))
        .assert_status(204, "logout");
    assert_eq!(doors(&server, &first).await, Doors::SHUT, "after logout");
    blocking(|| server.request("POST", "/api/token/refresh", Some(&first), None, &[]))
        .assert_error(401, "unauthorized", "refresh of a revoked token");
    blocking(|| server.request("POST", "/api/logout", Some(&first), None, &[])).assert_error(
        401,
        "unauthorized",
        "second logout",
    );
    // The LongPoll session opened with it ends (410 on its next poll).
    let polled = blocking(|| {
        wait_for(
            Duration::from_secs(15),
            "the LongPoll session to end",
            || {
                let response = server.request(
                    "GET",
                    "/socket/longpoll?vsn=2.0.0",
                    None,
                    None,
                    &[("X-Phoenix-LongPoll-Token", &session)],
                );
                let status = response.json()["status"].as_u64();
                (status == Some(410)).then_some(response)
            },
        )
    });
    eprintln!("LongPoll after logout: {}", polled.body);
    assert_eq!(
        doors(&server, &second).await,
        Doors::OPEN,
        "the other token"
    );

    blocking(|| server.restart());
    assert_eq!(
        doors(&server, &first).await,
        Doors::SHUT,
        "after logout and restart"
    );
    assert_eq!(doors(&server, &second).await, Doors::OPEN, "after restart");
}

// ---------------------------------------------------------------------------
// Topic authorization
// ---------------------------------------------------------------------------

/// Bob may not join, read, post to, upload to or see attachments of
/// alice's personal topic, alice and carol's conversation, or alice's
/// private room — over the socket or REST — and never receives their
/// broadcasts; an unjoined topic cannot be pushed to with a made-up
/// join_ref. Members can do all of it (control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_topics_are_refused() {
    let server = blocking(TestServer::start);
    let (alice, alice_user) = blocking(|| server.register("alice", PASSWORD));
    let (bob, bob_user) = blocking(|| server.register("bobby", PASSWORD));
    let (carol, _) = blocking(|| server.register("carol", PASSWORD));
    let alice_id = alice_user["id"].as_u64().unwrap();
    let bob_id = bob_user["id"].as_u64().unwrap();

    // alice's private room, alice and carol's conversation, and one
    // attachment in each.
    blocking(|| {
        server
            .post_json(
                "/api/rooms",
                Some(&alice),
                &json!({"name": "secret", "private": true}),
            )
            .assert_status(201, "private room");
    });
    let conversation = blocking(|| {
        server.post_json(
            "/api/conversations",
            Some(&alice),
            &json!({"username": "carol"}),
        )
    });
    assert!(
        conversation.status == 201 || conversation.status == 200,
        "{}",
        conversation.body
    );
    let dm_id = conversation.json()["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    let dm = format!("dm:{dm_id}");
    let room_attachment = blocking(|| upload(&server, "/api/rooms/secret/attachments", &alice));
    room_attachment.assert_status(201, "upload to the private room");
    let room_attachment = room_attachment.json()["attachment"]["id"].as_u64().unwrap();
    let dm_attachment = blocking(|| {
        upload(
            &server,
            &format!("/api/conversations/{dm_id}/attachments"),
            &carol,
        )
    });
    dm_attachment.assert_status(201, "upload to the conversation");
    let dm_attachment = dm_attachment.json()["attachment"]["id"].as_u64().unwrap();

    // Socket joins.
    let mut bob_socket = PhxClient::connect(server.addr(), &bob).await.unwrap();
    for topic in [
        format!("user:{alice_id}"),
        dm.clone(),
        "room:secret".to_string(),
    ] {
        for payload in [json!({}), json!({"last_seq": 0})] {
            let (status, response) = bob_socket.join(&topic, payload).await;
            assert_eq!(
                (status.as_str(), &response["reason"]),
                ("error", &json!("unauthorized")),
                "bob joining {topic}: {response}"
            );
        }
    }
    bob_socket
        .join_ok(&format!("user:{bob_id}"), json!({}))
        .await;
    bob_socket.join_ok("room:lobby", json!({})).await;
    // Pushing to an unjoined topic with a made-up join_ref does nothing.
    for topic in ["room:secret", dm.as_str()] {
        let msg_ref = bob_socket.make_ref();
        bob_socket
            .send(
                Some("1"),
                Some(&msg_ref),
                topic,
                "new_msg",
                json!({"body": "smuggled"}),
            )
            .await
            .unwrap();
        let (status, response) = bob_socket
            .wait_reply(&msg_ref, Duration::from_secs(10))
            .await;
        assert_eq!(
            (status.as_str(), &response["reason"]),
            ("error", &json!("unmatched topic")),
            "push to unjoined {topic}: {response}"
        );
        let msg_ref = bob_socket.make_ref();
        bob_socket
            .send(
                Some("1"),
                Some(&msg_ref),
                topic,
                "history",
                json!({"limit": 50}),
            )
            .await
            .unwrap();
        let (status, response) = bob_socket
            .wait_reply(&msg_ref, Duration::from_secs(10))
            .await;
        assert_eq!(status, "error", "history of unjoined {topic}: {response}");
    }

    // Members can: alice joins the room and her personal topic, carol the dm.
    let mut alice_socket = PhxClient::connect(server.addr(), &alice).await.unwrap();
    alice_socket.join_ok("room:secret", json!({})).await;
    alice_socket
        .join_ok(&format!("user:{alice_id}"), json!({}))
        .await;
    let (status, response) = alice_socket
        .push(
            "room:secret",
            "new_msg",
            json!({"body": "room secret body"}),
        )
        .await;
    assert_eq!(status, "ok", "{response}");
    let mut carol_socket = PhxClient::connect(server.addr(), &carol).await.unwrap();
    carol_socket.join_ok(&dm, json!({})).await;
    let (status, response) = carol_socket
        .push(&dm, "new_msg", json!({"body": "dm secret body"}))
        .await;
    assert_eq!(status, "ok", "{response}");
    // A marker in the lobby: everything before it has reached bob's socket.
    let (status, _) = alice_socket.join("room:lobby", json!({})).await;
    assert_eq!(status, "ok");
    let (status, marker) = alice_socket
        .push("room:lobby", "new_msg", json!({"body": "marker"}))
        .await;
    assert_eq!(status, "ok", "{marker}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let frame = bob_socket
            .expect_frame(deadline, "bob's lobby marker")
            .await;
        let done = frame.is_new_msg_on("room:lobby") && frame.payload["body"] == "marker";
        seen.push(frame);
        if done {
            break;
        }
    }
    for frame in &seen {
        let text = frame.payload.to_string();
        assert!(
            !text.contains("secret body") && frame.topic != "room:secret" && frame.topic != dm,
            "bob received a frame of a topic he may not see: {frame:?}"
        );
    }

    // REST.
    let refused = |method: &str, path: &str, body: Option<&Value>| {
        let response = match body {
            Some(body) => server.send_json(method, path, Some(&bob), body),
            None => server.request(method, path, Some(&bob), None, &[]),
        };
        assert!(
            response.status == 403 || response.status == 404,
            "bob: {method} {path} answered {}: {}",
            response.status,
            response.body
        );
        assert!(
            !response.body.contains("secret body"),
            "bob: {method} {path} leaked a message: {}",
            response.body
        );
        response.status
    };
    let paths = [
        "/api/rooms/secret/messages",
        "/api/rooms/secret/messages?after=0",
        "/api/rooms/secret/messages?before=100&limit=200",
        "/api/rooms/%73ecret/messages",
    ];
    blocking(|| {
        for path in paths {
            assert_eq!(refused("GET", path, None), 403, "GET {path}");
        }
        let dm_history = format!("/api/conversations/{dm_id}/messages");
        assert_eq!(refused("GET", &dm_history, None), 403, "{dm_history}");
        refused(
            "POST",
            "/api/rooms/secret/messages",
            Some(&json!({"body": "intruder"})),
        );
        refused("POST", &dm_history, Some(&json!({"body": "intruder"})));
        for path in [
            "/api/rooms/secret/attachments".to_string(),
            format!("/api/conversations/{dm_id}/attachments"),
        ] {
            let response = upload(&server, &path, &bob);
            assert!(
                response.status == 403 || response.status == 404,
                "bob uploading to {path}: {} {}",
                response.status,
                response.body
            );
        }
        for id in [room_attachment, dm_attachment] {
            let response = get_bytes(&server, &format!("/api/attachments/{id}"), &bob);
            assert_eq!(
                response.status,
                404,
                "bob fetching attachment {id}: {:?}",
                String::from_utf8_lossy(&response.body)
            );
        }
        refused(
            "POST",
            "/api/rooms/secret/members",
            Some(&json!({"username": "bobby"})),
        );
        refused("DELETE", "/api/rooms/secret/members/alice", None);
        let rooms = server.get("/api/rooms", Some(&bob));
        rooms.assert_status(200, "bob's rooms");
        assert!(
            !rooms.body.contains("\"secret\""),
            "bob's room list shows the private room: {}",
            rooms.body
        );
        let conversations = server.get("/api/conversations", Some(&bob));
        conversations.assert_status(200, "bob's conversations");
        assert!(
            !conversations.body.contains(&dm),
            "bob's conversations show alice and carol's: {}",
            conversations.body
        );
        // The members can read what bob could not.
        let history = server.get("/api/rooms/secret/messages", Some(&alice));
        history.assert_status(200, "alice reads her room");
        assert!(history.body.contains("room secret body"));
        let history = server.get(
            &format!("/api/conversations/{dm_id}/messages"),
            Some(&alice),
        );
        history.assert_status(200, "alice reads her conversation");
        assert!(history.body.contains("dm secret body"));
        let fetched = get_bytes(
            &server,
            &format!("/api/attachments/{room_attachment}"),
            &alice,
        );
        assert_eq!(fetched.status, 200, "alice fetches her room's attachment");
        assert_eq!(fetched.body, tiny_png());
        // Nothing bob tried was stored.
        for token in [&alice, &carol] {
            for path in [
                "/api/rooms/secret/messages".to_string(),
                format!("/api/conversations/{dm_id}/messages"),
            ] {
                let response = server.get(&path, Some(token));
                if response.status == 200 {
                    assert!(
                        !response.body.contains("intruder") && !response.body.contains("smuggled"),
                        "{path}: {}",
                        response.body
                    );
                }
            }
        }
    });
    // Once removed from the private room, carol (added, then removed) cannot join.
    blocking(|| {
        server
            .post_json(
                "/api/rooms/secret/members",
                Some(&alice),
                &json!({"username": "carol"}),
            )
            .assert_status(204, "add carol");
    });
    carol_socket.join_ok("room:secret", json!({})).await;
    blocking(|| {
        server
            .request(
                "DELETE",
                "/api/rooms/secret/members/carol",
                Some(&alice),
                None,
                &[],
            )
            .assert_status(204, "remove carol");
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = carol_socket.expect_frame(deadline, "carol's eject").await;
        if frame.topic == "room:secret" && frame.event == "phx_close" {
            break;
        }
    }
    let (status, response) = carol_socket.join("room:secret", json!({})).await;
    assert_eq!(
        (status.as_str(), &response["reason"]),
        ("error", &json!("unauthorized")),
        "{response}"
    );
    bob_socket.close().await;
    alice_socket.close().await;
    carol_socket.close().await;
}

/// A conversation or personal topic has one name: `dm:<id>` / `user:<id>`
/// as the server writes them. Aliases (`dm:0<id>`, `dm:+<id>`,
/// `user:0<id>`) parse to the same id and are authorized against it, but
/// they are distinct hub topics: a message posted on an alias is stored in
/// the conversation yet not broadcast to the sockets on the real topic,
/// and its ack/broadcast carry the alias as `topic`. They must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_are_refused() {
    let server = blocking(TestServer::start);
    let (alice, alice_user) = blocking(|| server.register("alice", PASSWORD));
    let (carol, _) = blocking(|| server.register("carol", PASSWORD));
    let alice_id = alice_user["id"].as_u64().unwrap();
    let opened = blocking(|| {
        server.post_json(
            "/api/conversations",
            Some(&alice),
            &json!({"username": "carol"}),
        )
    });
    let dm_id = opened.json()["conversation"]["id"].as_u64().unwrap();
    let dm = format!("dm:{dm_id}");
    let mut alice_socket = PhxClient::connect(server.addr(), &alice).await.unwrap();
    alice_socket.join_ok(&dm, json!({})).await;
    let mut carol_socket = PhxClient::connect(server.addr(), &carol).await.unwrap();
    let mut accepted = Vec::new();
    for alias in [
        format!("dm:0{dm_id}"),
        format!("dm:+{dm_id}"),
        format!("dm:00{dm_id}"),
    ] {
        let (status, response) = carol_socket.join(&alias, json!({})).await;
        if status == "ok" {
            let (_, ack) = carol_socket
                .push(&alias, "new_msg", json!({"body": format!("via {alias}")}))
                .await;
            accepted.push(format!("{alias}: joined, a post was acked as {ack}"));
        } else {
            assert_ne!(response["reason"], "unauthorized", "{alias}: {response}");
        }
    }
    for alias in [
        format!("user:0{alias_id}", alias_id = alice_id),
        format!("user:+{alice_id}"),
    ] {
        let mut own = PhxClient::connect(server.addr(), &alice).await.unwrap();
        let (status, _) = own.join(&alias, json!({})).await;
        if status == "ok" {
            accepted.push(format!(
                "{alias}: alice joined an alias of her personal topic"
            ));
        }
        own.close().await;
    }
    // What the aliases did to alice's live view of the conversation.
    let (status, marker) = carol_socket.join(&dm, json!({})).await;
    assert_eq!(status, "ok", "{marker}");
    let (_, marker) = carol_socket
        .push(&dm, "new_msg", json!({"body": "marker"}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut live = Vec::new();
    loop {
        let frame = alice_socket.expect_frame(deadline, "the marker").await;
        if frame.is_new_msg_on(&dm) {
            let body = frame.payload["body"].as_str().unwrap_or("").to_string();
            live.push(body.clone());
            if body == "marker" {
                break;
            }
        }
    }
    let stored = blocking(|| {
        server.get(
            &format!("/api/conversations/{dm_id}/messages"),
            Some(&alice),
        )
    });
    eprintln!(
        "marker {marker}; alice saw live {live:?}; history {}",
        stored.body
    );
    assert!(
        accepted.is_empty(),
        "topic aliases were accepted (alice saw live only {live:?}, while the history \
         holds every post):\n{}",
        accepted.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Origins
// ---------------------------------------------------------------------------

/// With `allowed_origins = ["https://chat.example"]`, a browser upgrade
/// from another origin is refused (403) before a socket opens; the allowed
/// origin and origin-less (non-browser) clients get 101; LongPoll answers
/// `{"status": 403}` to a bad origin. With the default (empty) list only
/// the same origin is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_upgrades_are_refused() {
    let server = blocking(|| {
        TestServer::start_with(&[("CONFAB_ALLOWED_ORIGINS", "https://chat.example")], None)
    });
    let (token, _) = blocking(|| server.register("alice", PASSWORD));
    let url = socket_url(server.addr(), &token);
    let cases: [(Option<&str>, u16); 9] = [
        (Some("https://evil.example"), 403),
        (Some("http://chat.example"), 403),
        (Some("https://chat.example.evil.example"), 403),
        (Some("https://evil.example/https://chat.example"), 403),
        (Some("null"), 403),
        (Some("https://chat.example:8443"), 403),
        (Some("https://chat.example"), 101),
        (Some("https://CHAT.example/"), 101),
        (None, 101),
    ];
    let mut wrong = Vec::new();
    for (origin, expected) in cases {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let status = upgrade_status(&url, &headers).await;
        if status != expected {
            wrong.push(format!("Origin {origin:?}: {status}, expected {expected}"));
        }
        let protocol = token_protocol(&token);
        let mut with_protocol = headers.clone();
        with_protocol.push(("Sec-WebSocket-Protocol", &protocol));
        let status = upgrade_status(
            &format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr()),
            &with_protocol,
        )
        .await;
        if status != expected {
            wrong.push(format!(
                "Origin {origin:?} (token in the subprotocol): {status}, expected {expected}"
            ));
        }
        let longpoll = blocking(|| longpoll_open(&server, &token, &headers));
        let expected_lp = if expected == 101 { 410 } else { 403 };
        if longpoll["status"] != expected_lp {
            wrong.push(format!(
                "LongPoll with Origin {origin:?}: {longpoll}, expected status {expected_lp}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Default: same origin only.
    let server = blocking(TestServer::start);
    let (token, _) = blocking(|| server.register("alice", PASSWORD));
    let url = socket_url(server.addr(), &token);
    let same = format!("http://{}", server.addr());
    assert_eq!(upgrade_status(&url, &[("Origin", &same)]).await, 101);
    assert_eq!(
        upgrade_status(&url, &[("Origin", "http://evil.example")]).await,
        403
    );
    assert_eq!(
        upgrade_status(
            &url,
            &[("Origin", &format!("http://{}.evil.example", server.addr()))]
        )
        .await,
        403
    );
    assert_eq!(upgrade_status(&url, &[]).await, 101);
}

// ---------------------------------------------------------------------------
// Static files
// ---------------------------------------------------------------------------

/// Paths that try to climb out of the embedded assets, or reach dotfiles,
/// never return a file's content: 404 for the classic ones, and at worst
/// the web UI's index page for extension-less paths.
#[test]
fn static_paths_do_not_escape_the_assets() {
    let server = TestServer::start();
    let index = server.get("/", None);
    index.assert_status(200, "index");
    let must_404 = [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/assets/../../etc/passwd",
        "/.git/config",
        "/..%2fCargo.toml",
        "/%2e%2e%2fCargo.toml",
        "/..%5cCargo.toml",
        "/js/../../Cargo.toml",
        "/./Cargo.toml",
        "/.env",
        "/.gitignore",
        "/Cargo.toml",
        "/src/main.rs",
        "/config.toml",
        "/index.html%00.png",
        "/..;/Cargo.toml",
    ];
    let other = [
        "//etc/passwd",
        "/..",
        "/%2e%2e",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/%2fetc%2fpasswd",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/....//....//etc/passwd",
        "/%252e%252e/Cargo.toml",
        "/%c0%ae%c0%ae/Cargo.toml",
        "/\\..\\Cargo.toml",
    ];
    let leaked = |body: &str| {
        body.contains("[package]")
            || body.contains("root:x:0:0")
            || body.contains("[core]")
            || body.contains("/target")
    };
    let mut wrong = Vec::new();
    for path in must_404.iter().chain(&other) {
        for method in ["GET", "HEAD"] {
            let raw = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr()
            );
            let response = common::request_raw(server.addr(), raw.as_bytes(), method == "HEAD");
            if leaked(&response.body) {
                wrong.push(format!(
                    "{method} {path}: leaked a file ({}): {}",
                    response.status, response.body
                ));
            } else if must_404.contains(path) && response.status != 404 && response.status != 400 {
                wrong.push(format!(
                    "{method} {path}: {} instead of 404",
                    response.status
                ));
            } else if response.status == 200 && method == "GET" && response.body != index.body {
                wrong.push(format!(
                    "{method} {path}: 200 with something else than the UI"
                ));
            }
            eprintln!("{method} {path}: {}", response.status);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    server.get("/healthz", None).assert_status(200, "still up");
}

// ---------------------------------------------------------------------------
// Slowloris
// ---------------------------------------------------------------------------

/// What a slow client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    /// A request line, then one header byte per pace.
    Dribble,
    /// Nothing at all after connecting.
    Silent,
    /// The first bytes of an HTTP/2 preface, then nothing.
    PartialPreface,
    /// One byte that could start a request or a preface ("P"), then nothing.
    OneByte,
    /// One complete request on a keep-alive connection, then nothing.
    IdleKeepAlive,
}

/// How a slow connection ended.
#[derive(Debug)]
struct SlowEnd {
    kind: Slow,
    /// From connect to the server closing the connection; `None` if it was
    /// still open when the client gave up.
    lasted: Option<Duration>,
    /// What the server sent.
    answer: String,
    /// Header bytes dribbled.
    bytes_sent: usize,
}

/// Runs one slow client until the server closes the connection or
/// `give_up` passes.
fn slow_client(addr: SocketAddr, kind: Slow, pace: Duration, give_up: Duration) -> SlowEnd {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(pace)).unwrap();
    let opening: &[u8] = match kind {
        Slow::Dribble => b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Slow::Silent => b"",
        Slow::PartialPreface => b"PRI * HTTP/2.0\r\n",
        Slow::OneByte => b"P",
        Slow::IdleKeepAlive => b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    stream.write_all(opening).unwrap();
    let header = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut bytes_sent = 0;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let lasted = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Some(started.elapsed()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                if started.elapsed() > give_up {
                    break None;
                }
                if kind == Slow::Dribble {
                    let byte = header[bytes_sent % header.len()];
                    if stream.write_all(&[byte]).is_err() {
                        break Some(started.elapsed());
                    }
                    bytes_sent += 1;
                }
            }
            Err(_) => break Some(started.elapsed()), // reset
        }
    };
    SlowEnd {
        kind,
        lasted,
        answer: String::from_utf8_lossy(&answer).into_owned(),
        bytes_sent,
    }
}

/// Runs `count` slow clients of each kind at once against a server with a
/// header timeout of `timeout_secs`, while a normal client keeps calling
/// `/healthz`; returns how each ended and the slowest healthz answer.
fn slowloris(
    server: &TestServer,
    kinds: &[(Slow, usize)],
    give_up: Duration,
) -> (Vec<SlowEnd>, Duration) {
    let addr = server.addr();
    let mut threads = Vec::new();
    for &(kind, count) in kinds {
        for _ in 0..count {
            threads.push(std::thread::spawn(move || {
                slow_client(addr, kind, Duration::from_millis(250), give_up)
            }));
        }
    }
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        server
            .get("/healthz", None)
            .assert_status(200, "healthz during slowloris");
        worst = worst.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let ends = threads
        .into_iter()
        .map(|t| t.join().expect("slow client"))
        .collect();
    (ends, worst)
}

/// Summarises and checks slow-client ends: each was closed within `limit`
/// with nothing or a 408 as the answer (a keep-alive client also got its
/// 200 first).
fn check_slow_ends(ends: &[SlowEnd], limit: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_kind: std::collections::BTreeMap<String, (usize, usize, Duration)> =
        Default::default();
    for end in ends {
        let entry = by_kind.entry(format!("{:?}", end.kind)).or_default();
        entry.0 += 1;
        match end.lasted {
            None => {
                entry.1 += 1;
                problems.push(format!(
                    "{:?}: still open when the client gave up",
                    end.kind
                ));
            }
            Some(lasted) => {
                entry.2 = entry.2.max(lasted);
                if lasted > limit {
                    problems.push(format!("{:?}: closed only after {lasted:?}", end.kind));
                }
            }
        }
        let answer = match end.kind {
            Slow::IdleKeepAlive => end
                .answer
                .split_once("\r\n\r\nok")
                .map_or(end.answer.as_str(), |(_, rest)| rest),
            _ => end.answer.as_str(),
        };
        if !(answer.is_empty() || answer.starts_with("HTTP/1.1 408")) {
            problems.push(format!(
                "{:?}: unexpected answer {:?}",
                end.kind, end.answer
            ));
        }
        if end.kind == Slow::Dribble {
            assert!(end.bytes_sent > 0, "the dribbler sent nothing");
        }
    }
    for (kind, (count, open, longest)) in by_kind {
        eprintln!("  {kind}: {count} clients, {open} still open at the end, longest {longest:?}");
    }
    problems
}

/// 50 connections dribble header bytes (one every 250 ms) and 10 more
/// finish one keep-alive request and then go quiet. A normal client's
/// `/healthz` keeps answering quickly, and with
/// `CONFAB_HEADER_READ_TIMEOUT_SECS=2` the server closes every one of the
/// slow connections within a few seconds.
#[test]
fn slowloris_dribbled_headers_are_cut_off() {
    const TIMEOUT_SECS: u64 = 2;
    let server = TestServer::start_with(
        &[("CONFAB_HEADER_READ_TIMEOUT_SECS", &TIMEOUT_SECS.to_string())],
        None,
    );
    let started = Instant::now();
    let (ends, worst) = slowloris(
        &server,
        &[(Slow::Dribble, 50), (Slow::IdleKeepAlive, 10)],
        Duration::from_secs(15),
    );
    eprintln!(
        "slowloris (dribble): worst healthz {worst:?}, all done after {:?}",
        started.elapsed()
    );
    let problems = check_slow_ends(&ends, Duration::from_secs(TIMEOUT_SECS + 4));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        worst < Duration::from_secs(2),
        "healthz took {worst:?} during the slowloris"
    );
    let (token, _) = server.register("alice", PASSWORD);
    server
        .get("/api/me", Some(&token))
        .assert_status(200, "after the slowloris");
}

/// Connections that send nothing at all after connecting (or only part of
/// an HTTP/2 preface, or a lone "P") must be closed by the header timeout
/// too; otherwise
/// anyone can hold file descriptors and tasks forever with bare connects.
#[test]
fn silent_connections_are_cut_off_by_the_header_timeout() {
    const TIMEOUT_SECS: u64 = 2;
    let server = TestServer::start_with(
        &[("CONFAB_HEADER_READ_TIMEOUT_SECS", &TIMEOUT_SECS.to_string())],
        None,
    );
    let (ends, worst) = slowloris(
        &server,
        &[
            (Slow::Silent, 10),
            (Slow::PartialPreface, 5),
            (Slow::OneByte, 5),
        ],
        Duration::from_secs(12),
    );
    eprintln!("slowloris (silent): worst healthz {worst:?}");
    let problems = check_slow_ends(&ends, Duration::from_secs(TIMEOUT_SECS + 4));
    assert!(
        problems.is_empty(),
        "connections that send no complete request line outlive \
         CONFAB_HEADER_READ_TIMEOUT_SECS={TIMEOUT_SECS}:\n{}",
        problems.join("\n")
    );
    assert!(worst < Duration::from_secs(2), "healthz took {worst:?}");
}

// ---------------------------------------------------------------------------
// Brute force
// ---------------------------------------------------------------------------

fn login_with(server: &TestServer, username: &str, password: &str, ip: Option<&str>) -> Response {
    let body = json!({"username": username, "password": password}).to_string();
    let headers: Vec<(&str, &str)> = ip.map(|ip| ("X-Forwarded-For", ip)).into_iter().collect();
    server.request(
        "POST",
        "/api/login",
        None,
        Some(&body),
        &[&[("Content-Type", "application/json")], headers.as_slice()].concat(),
    )
}

/// Five logins of `username` with a wrong password, from the addresses
/// `{prefix}0` to `{prefix}4`, each answered 401.
#[track_caller]
fn wrong_guesses_from_five_addresses(
    server: &TestServer,
    username: &str,
    prefix: &str,
    what: &str,
) {
    for i in 0..5 {
        login_with(
            server,
            username,
            "wrong-password",
            Some(&format!("{prefix}{i}")),
        )
        .assert_error(401, "invalid_credentials", what);
    }
}

#[track_caller]
fn assert_throttled(response: &Response, what: &str) -> u64 {
    response.assert_error(429, "rate_limited", what);
    let retry_after: u64 = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"))
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After is not seconds"));
    assert!(
        (1..=300).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    retry_after
}

/// Password guessing is throttled: from one address across usernames
/// (default settings), and for one username across addresses (behind a
/// trusted proxy, addresses from `X-Forwarded-For`). Once throttled, even
/// the right password gets 429, for a known and an unknown user alike,
/// and the throttled answers are immediate (no password hashing).
#[test]
fn login_brute_force_is_throttled() {
    // One address, many usernames.
    let server = TestServer::start();
    server.register("alice", PASSWORD);
    for (i, name) in ["alice", "nobody1", "nobody2", "alice", "nobody3"]
        .iter()
        .enumerate()
    {
        login_with(&server, name, &format!("guess-{i}-password"), None).assert_error(
            401,
            "invalid_credentials",
            "guess",
        );
    }
    let retry = assert_throttled(
        &login_with(&server, "someone-else", "guess-password", None),
        "6th guess from one address, new username",
    );
    assert_throttled(
        &login_with(&server, "alice", PASSWORD, None),
        "the right password from a throttled address",
    );
    let started = Instant::now();
    for i in 0..50 {
        assert_throttled(
            &login_with(&server, &format!("user{i}"), "guess-password", None),
            "continued guessing",
        );
    }
    let per_attempt = started.elapsed() / 50;
    eprintln!("per-address throttle: Retry-After {retry} s, throttled answer in {per_attempt:?}");
    // A spoofed X-Forwarded-For does not escape it (not a trusted proxy).
    assert_throttled(
        &login_with(&server, "alice", PASSWORD, Some("10.1.2.3")),
        "spoofed X-Forwarded-For",
    );

    // One username, many addresses.
    let server = TestServer::start_with(&[("CONFAB_TRUST_FORWARDED_FOR", "true")], None);
    server.register_all(["alice", "bobby"], PASSWORD);
    wrong_guesses_from_five_addresses(&server, "alice", "10.0.0.", "guess");
    assert_throttled(
        &login_with(&server, "alice", "wrong-password", Some("10.0.1.1")),
        "6th guess for one username from a new address",
    );
    assert_throttled(
        &login_with(&server, "ALICE", PASSWORD, Some("10.0.1.2")),
        "the right password for a throttled username (other case)",
    );
    wrong_guesses_from_five_addresses(&server, "nobody", "10.0.2.", "guess for an unknown user");
    assert_throttled(
        &login_with(&server, "nobody", "wrong-password", Some("10.0.3.1")),
        "an unknown username is throttled like a known one",
    );
    // Others are unaffected.
    let response = login_with(&server, "bobby", PASSWORD, Some("10.0.4.1"));
    response.assert_status(200, "another user from another address");
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// A debug-logged session exercising every credential path — register,
/// login (good and bad), password change, admin-created user, refresh,
/// logout, sockets with the token in the query and in the subprotocol,
/// LongPoll with its session token, forged tokens — never writes a
/// password, token (or its signature), the JWT secret, a password hash or
/// a message body to the log; and no response other than the admin export
/// contains a password hash or the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_or_responses() {
    let server = blocking(|| {
        TestServer::start_with(
            &[("CONFAB_LOG", "debug"), ("CONFAB_JWT_SECRET", SECRET)],
            None,
        )
    });
    let mut responses: Vec<(String, Response)> = Vec::new();
    let mut secrets: Vec<String> = vec![SECRET.to_string()];
    let mut bodies: Vec<String> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();

    let alice_pw = "alice-secret-password-1";
    let alice_pw2 = "alice-secret-password-2";
    let bob_pw = "bob-secret-password-1";
    secrets.extend([alice_pw, alice_pw2, bob_pw].map(String::from));

    blocking(|| {
        let mut keep = |what: &str, response: Response| -> Response {
            responses.push((what.to_string(), response.clone()));
            response
        };
        let r = keep(
            "register alice",
            server.post_json(
                "/api/register",
                None,
                &json!({"username": "alice", "password": alice_pw, "email": "a@example.com"}),
            ),
        );
        r.assert_status(201, "register");
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
        let r = keep(
            "register bob",
            server.post_json(
                "/api/register",
                None,
                &json!({"username": "bobby", "password": bob_pw}),
            ),
        );
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
        keep(
            "register with a bad password",
            server.post_json(
                "/api/register",
                None,
                &json!({"username": "shorty", "password": "short"}),
            ),
        );
        keep(
            "register taken",
            server.post_json(
                "/api/register",
                None,
                &json!({"username": "alice", "password": "another-password-9"}),
            ),
        );
        let r = keep("login alice", server.try_login("alice", alice_pw));
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
        keep(
            "login wrong",
            server.try_login("alice", "alice-wrong-password-x"),
        );
        secrets.push("alice-wrong-password-x".into());
        let t = tokens[2].clone();
        let r = keep(
            "password change",
            server.send_json(
                "PATCH",
                "/api/me",
                Some(&t),
                &json!({"password": {"current": alice_pw, "new": alice_pw2}}),
            ),
        );
        r.assert_status(200, "password change");
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
        let admin = tokens[3].clone();
        keep(
            "password change with a wrong current",
            server.send_json(
                "PATCH",
                "/api/me",
                Some(&admin),
                &json!({"password": {"current": "not-the-current-pw", "new": "whatever-new-pw-1"}}),
            ),
        );
        secrets.push("whatever-new-pw-1".into());
        let r = keep(
            "admin creates carol",
            server.post_json("/api/users", Some(&admin), &json!({"username": "carol"})),
        );
        r.assert_status(201, "create carol");
        let carol_pw = r.json()["password"].as_str().unwrap().to_string();
        secrets.push(carol_pw.clone());
        let r = keep("login carol", server.try_login("carol", &carol_pw));
        let carol = r.json()["token"].as_str().unwrap().to_string();
        tokens.push(carol.clone());
        let r = keep(
            "refresh",
            server.request("POST", "/api/token/refresh", Some(&carol), None, &[]),
        );
        tokens.push(r.json()["token"].as_str().unwrap().to_string());
        keep("me", server.get("/api/me", Some(&admin)));
        keep(
            "patch me",
            server.send_json(
                "PATCH",
                "/api/me",
                Some(&admin),
                &json!({"display_name": "Alice A."}),
            ),
        );
        keep("users", server.get("/api/users", Some(&admin)));
        keep("rooms", server.get("/api/rooms", Some(&admin)));
        keep(
            "create room",
            server.post_json("/api/rooms", Some(&admin), &json!({"name": "dev"})),
        );
        keep(
            "add member",
            server.post_json(
                "/api/rooms/dev/members",
                Some(&admin),
                &json!({"username": "carol"}),
            ),
        );
        let body = "rest message body 7f3a";
        bodies.push(body.into());
        keep(
            "post",
            server.post_json(
                "/api/rooms/lobby/messages",
                Some(&admin),
                &json!({"body": body, "client_id": "c1"}),
            ),
        );
        keep(
            "history",
            server.get("/api/rooms/lobby/messages", Some(&admin)),
        );
        keep(
            "conversation",
            server.post_json(
                "/api/conversations",
                Some(&admin),
                &json!({"username": "carol"}),
            ),
        );
        keep(
            "conversations",
            server.get("/api/conversations", Some(&admin)),
        );
        keep("ignores", server.get("/api/me/ignores", Some(&admin)));
        keep("metrics", server.get("/metrics", None));
        keep("healthz", server.get("/healthz", None));
        keep("readyz", server.get("/readyz", None));
        keep("index", server.get("/", None));
        keep("unknown route", server.get("/api/nothing", Some(&admin)));
        keep(
            "bad json",
            server.request(
                "POST",
                "/api/login",
                None,
                Some("{\"username\": \"alice\", \"password\": \"alice-secret-password-2"),
                &[("Content-Type", "application/json")],
            ),
        );
        keep(
            "forged token",
            server.get("/api/me", Some(&format!("{admin}x"))),
        );
        let bob = tokens[1].clone();
        keep(
            "export as non-admin",
            server.get("/api/admin/export", Some(&bob)),
        );
    });

    // Sockets: token in the query, in the subprotocol, and a refused one.
    let admin = tokens[3].clone();
    let mut query_socket = PhxClient::connect(server.addr(), &admin).await.unwrap();
    let joined = query_socket.join_ok("room:lobby", json!({})).await;
    assert!(!joined.to_string().contains("$argon2"), "{joined}");
    let socket_body = "socket message body 91c2";
    bodies.push(socket_body.into());
    let (status, _) = query_socket
        .push(
            "room:lobby",
            "new_msg",
            json!({"body": socket_body, "client_id": "c2"}),
        )
        .await;
    assert_eq!(status, "ok");
    let protocol = token_protocol(&tokens[5]);
    let mut protocol_socket = PhxClient::connect_with_headers(
        &format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr()),
        &[("Sec-WebSocket-Protocol", &protocol)],
    )
    .await
    .unwrap();
    let joined = protocol_socket.join_ok("room:lobby", json!({})).await;
    for frame in query_socket
        .take_buffered()
        .iter()
        .chain(protocol_socket.take_buffered().iter())
    {
        assert!(
            !frame.payload.to_string().contains("$argon2"),
            "socket frame: {frame:?}"
        );
    }
    assert!(!joined.to_string().contains(SECRET));
    // A refused upgrade with a real-looking token, and a V1 socket.
    let forged = format!("{admin}x");
    assert_eq!(
        upgrade_status(&socket_url(server.addr(), &forged), &[]).await,
        403
    );
    let v1 = format!(
        "ws://{}/socket/websocket?vsn=1.0.0&token={}",
        server.addr(),
        tokens[4]
    );
    assert_eq!(upgrade_status(&v1, &[]).await, 101);
    // LongPoll with its session token.
    let session = blocking(|| {
        let opened = longpoll_open(&server, &tokens[4], &[]);
        let session = opened["token"].as_str().unwrap().to_string();
        let r = server.request(
            "POST",
            "/socket/longpoll?vsn=2.0.0",
            None,
            Some("[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]"),
            &[("X-Phoenix-LongPoll-Token", &session)],
        );
        responses.push(("longpoll post".into(), r));
        let r = server.request(
            "GET",
            "/socket/longpoll?vsn=2.0.0",
            None,
            None,
            &[("X-Phoenix-LongPoll-Token", &session)],
        );
        responses.push(("longpoll poll".into(), r));
        session
    });
    tokens.push(session);
    query_socket.close().await;
    protocol_socket.close().await;
    blocking(|| {
        let bob = tokens[1].clone();
        server
            .request("POST", "/api/logout", Some(&bob), None, &[])
            .assert_status(204, "logout");
    });

    // The admin export is the one place hashes may appear (sanity: the
    // checks below would see one).
    let export = blocking(|| server.get("/api/admin/export", Some(&admin)));
    export.assert_status(200, "export");
    assert!(
        export.body.contains("$argon2"),
        "the export has no password hash; the greps below may be blind"
    );
    for (what, response) in &responses {
        assert!(
            !response.body.contains("$argon2"),
            "{what}: a password hash in the response: {}",
            response.body
        );
        assert!(
            !response.body.contains(SECRET),
            "{what}: the JWT secret in the response: {}",
            response.body
        );
        for header in &response.headers {
            assert!(
                !header.1.contains("$argon2") && !header.1.contains(SECRET),
                "{what}: header {header:?}"
            );
        }
        for password in [alice_pw, alice_pw2, bob_pw, "alice-wrong-password-x"] {
            assert!(
                !response.body.contains(password),
                "{what}: a password in the response: {}",
                response.body
            );
        }
    }

    for token in &tokens {
        secrets.push(token.clone());
        secrets.push(token.rsplit('.').next().unwrap().to_string());
        secrets.push(B64.encode(token)); // the subprotocol form
    }
    let logs = server.logs();
    assert!(
        logs.contains("/api/login") && logs.contains("DEBUG"),
        "expected debug logs, got:\n{logs}"
    );
    let mut found = Vec::new();
    for secret in &secrets {
        if logs.contains(secret.as_str()) {
            found.push(format!("secret {secret:?}"));
        }
    }
    for body in &bodies {
        if logs.contains(body.as_str()) {
            found.push(format!("message body {body:?}"));
        }
    }
    if logs.contains("$argon2") {
        found.push("a password hash ($argon2)".into());
    }
    eprintln!(
        "checked {} log bytes ({} lines) for {} secrets and {} bodies; {} responses",
        logs.len(),
        logs.lines().count(),
        secrets.len(),
        bodies.len(),
        responses.len()
    );
    assert!(
        found.is_empty(),
        "the logs contain {}:\n{logs}",
        found.join(", ")
    );
}
