//! The HTTP API of api.md §2 against the real binary: accounts, tokens,
//! throttling, error shapes, limits, static files, restarts and shutdown.
//! Each test runs its own server on a fresh data directory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::{wait_for, Cli, Response, TestServer};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn me(server: &TestServer, token: &str) -> Response {
    server.get("/api/me", Some(token))
}

/// Asserts that `token` is accepted by `GET /api/me` as `username`.
#[track_caller]
fn assert_token_works(server: &TestServer, token: &str, username: &str, what: &str) -> Value {
    let response = me(server, token);
    response.assert_status(200, what);
    let user = response.json()["user"].clone();
    assert_eq!(user["username"], username, "{what}: body {}", response.body);
    user
}

/// Asserts that `token` is refused by `GET /api/me` with 401 `unauthorized`.
#[track_caller]
fn assert_token_refused(server: &TestServer, token: &str, what: &str) {
    me(server, token).assert_error(401, "unauthorized", what);
}

/// Asserts the `{user, token, expires_at}` session shape.
#[track_caller]
fn assert_session(response: &Response, username: &str, what: &str) -> (String, Value) {
    let body = response.json();
    let user = &body["user"];
    assert_eq!(user["username"], username, "{what}: {}", response.body);
    assert!(user["id"].is_u64(), "{what}: user.id: {}", response.body);
    assert!(
        user["display_name"].is_string(),
        "{what}: user.display_name: {}",
        response.body
    );
    assert!(
        user["admin"].is_boolean(),
        "{what}: user.admin: {}",
        response.body
    );
    assert_rfc3339(&user["created_at"], what);
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no token: {}", response.body));
    assert_eq!(
        token.split('.').count(),
        3,
        "{what}: token is not a JWT: {token}"
    );
    assert_rfc3339(&body["expires_at"], what);
    (token.to_string(), user.clone())
}

#[track_caller]
fn assert_rfc3339(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected an RFC 3339 string, got {value}"));
    let bytes = text.as_bytes();
    assert!(
        text.len() == 24
            && bytes[4] == b'-'
            && bytes[10] == b'T'
            && bytes[19] == b'.'
            && text.ends_with('Z'),
        "{what}: {text:?} is not an RFC 3339 UTC time with milliseconds"
    );
}

/// The JSON claims of a JWT (unverified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&B64.decode(payload).expect("base64url payload")).expect("JSON claims")
}

fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign a test token")
}

/// Register, login, `GET /api/me`, logout and refresh; the first account is admin.
#[test]
fn register_login_me_logout() {
    let server = TestServer::start();

    let response = server.post_json(
        "/api/register",
        None,
        &json!({"username": "alice", "password": "alice-password"}),
    );
    response.assert_status(201, "register alice");
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "content-type: {:?}",
        response.header("content-type")
    );
    assert_eq!(
        response.header("cache-control"),
        Some("no-store"),
        "API responses must not be cached"
    );
    let (alice_token, alice) = assert_session(&response, "alice", "register alice");
    assert_eq!(alice["admin"], true, "the first user is admin: {alice}");
    assert_eq!(
        alice["display_name"], "alice",
        "display name defaults to the username"
    );

    let response = server.post_json(
        "/api/register",
        None,
        &json!({"username": "bob", "password": "bob-password", "display_name": "Bob B."}),
    );
    response.assert_status(201, "register bob");
    let (bob_token, bob) = assert_session(&response, "bob", "register bob");
    assert_eq!(bob["admin"], false, "the second user is not admin: {bob}");
    assert_eq!(bob["display_name"], "Bob B.");
    assert_ne!(alice["id"], bob["id"], "user ids must differ");

    // login
    let response = server.try_login("alice", "alice-password");
    response.assert_status(200, "login alice");
    let (login_token, login_user) = assert_session(&response, "alice", "login alice");
    assert_eq!(login_user, alice, "login returns the same user");
    assert_ne!(login_token, alice_token, "each login issues a new token");

    // me
    for token in [&alice_token, &login_token] {
        let response = me(&server, token);
        response.assert_status(200, "GET /api/me");
        assert_eq!(
            response.json()["user"],
            alice,
            "me is the registered user; body {}",
            response.body
        );
    }
    assert_token_works(&server, &bob_token, "bob", "bob's token");

    // logout revokes exactly that token
    let response = server.request("POST", "/api/logout", Some(&alice_token), None, &[]);
    response.assert_status(204, "logout");
    assert!(
        response.body.is_empty(),
        "204 has no body: {:?}",
        response.body
    );
    assert_token_refused(&server, &alice_token, "me after logout");
    server
        .request("POST", "/api/logout", Some(&alice_token), None, &[])
        .assert_error(401, "unauthorized", "second logout with a revoked token");
    server
        .request("POST", "/api/token/refresh", Some(&alice_token), None, &[])
        .assert_error(401, "unauthorized", "refresh with a revoked token");
    assert_token_works(&server, &login_token, "alice", "the other login's token");
    assert_token_works(
        &server,
        &bob_token,
        "bob",
        "bob's token after alice's logout",
    );

    // refresh gives a working token for the same user
    let response = server.request("POST", "/api/token/refresh", Some(&login_token), None, &[]);
    response.assert_status(200, "refresh");
    let body = response.json();
    let fresh = body["token"].as_str().expect("refreshed token").to_string();
    assert_rfc3339(&body["expires_at"], "refresh");
    assert_token_works(&server, &fresh, "alice", "refreshed token");
}

/// Register validation: 422 with `errors.<field>` for each bad field.
#[test]
fn registration_validation() {
    let server = TestServer::start();
    let (admin_token, _) = server.register("alice", "alice-password");

    let register = |body: Value| server.post_json("/api/register", None, &body);
    let assert_field =
        |response: Response, field: &str, what: &str| {
            let body = response.assert_error(422, "validation_failed", what);
            let reasons = &body["errors"][field];
            assert!(
                reasons.as_array().is_some_and(|r| !r.is_empty()
                    && r.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty()))),
                "{what}: expected errors.{field} to be a list of reasons; body {body}"
            );
            body
        };

    assert_field(
        register(json!({"username": "alice", "password": "another-password"})),
        "username",
        "taken username",
    );
    for bad in ["Alice", "ab", "a b c", "bob!", "", &"a".repeat(33)] {
        let body = assert_field(
            register(json!({"username": bad, "password": "long-enough"})),
            "username",
            &format!("username {bad:?}"),
        );
        assert!(
            body["errors"].get("password").is_none(),
            "only the username is wrong: {body}"
        );
    }
    assert_field(
        register(json!({"username": "carol", "password": "1234567"})),
        "password",
        "7-character password",
    );
    for bad in ["not-an-email", "a@b", "a b@example.com", "@example.com"] {
        assert_field(
            register(json!({"username": "carol", "password": "long-enough", "email": bad})),
            "email",
            &format!("email {bad:?}"),
        );
    }
    // Several problems are reported together.
    let body = assert_field(
        register(json!({"username": "X", "password": "short", "email": "nope"})),
        "username",
        "three problems",
    );
    assert!(
        body["errors"]["password"].is_array() && body["errors"]["email"].is_array(),
        "all fields are reported: {body}"
    );

    // Boundaries that are valid.
    let response = register(json!({
        "username": "c.a_r-o1",
        "password": "12345678",
        "email": "carol@example.com",
    }));
    response.assert_status(201, "valid edge-case registration");
    assert_eq!(response.json()["user"]["email"], "carol@example.com");
    register(json!({"username": "a".repeat(32), "password": "12345678"}))
        .assert_status(201, "32-character username");

    // Nothing invalid was created.
    let response = server.get("/api/users", Some(&admin_token));
    response.assert_status(200, "list users");
    let mut names: Vec<String> = response.json()["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["a".repeat(32), "alice".into(), "c.a_r-o1".into()]);
}

/// Wrong password and unknown user get the same 401 `invalid_credentials`.
#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start();
    server.register("alice", "alice-password");

    let wrong_password = server.try_login("alice", "not-the-password");
    let body_wrong = wrong_password.assert_error(401, "invalid_credentials", "wrong password");
    let unknown_user = server.try_login("nobody", "alice-password");
    let body_unknown = unknown_user.assert_error(401, "invalid_credentials", "unknown user");
    assert_eq!(
        body_wrong, body_unknown,
        "a wrong user and a wrong password must be indistinguishable"
    );
    server
        .post_json("/api/login", None, &json!({}))
        .assert_error(401, "invalid_credentials", "empty credentials");
    // The right password still works afterwards.
    server.login("alice", "alice-password");
}

/// Failed logins are limited per username and per address: 429 with `Retry-After`.
#[test]
fn login_throttling_per_username_and_per_address() {
    let limits = [
        ("CONFAB_LOGIN_MAX_FAILURES", "3"),
        ("CONFAB_TRUST_FORWARDED_FOR", "true"),
    ];
    let server = TestServer::options().envs(&limits).start();
    server.register("alice", "alice-password");
    server.register("bob", "bob-password");
    let login_from = |ip: &str, username: &str, password: &str| {
        server.request(
            "POST",
            "/api/login",
            None,
            Some(&json!({"username": username, "password": password}).to_string()),
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", ip),
            ],
        )
    };
    let assert_throttled = |response: Response, what: &str| {
        response.assert_error(429, "rate_limited", what);
        let retry = response
            .header("retry-after")
            .unwrap_or_else(|| panic!("{what}: 429 without Retry-After: {:?}", response.headers));
        let secs: u64 = retry
            .parse()
            .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not whole seconds"));
        assert!(
            (1..=300).contains(&secs),
            "{what}: Retry-After {secs} is outside 1..=login_window_secs (300)"
        );
    };

    // Per username: three failures from three addresses...
    for i in 1..=3 {
        login_from(&format!("10.0.0.{i}"), "alice", "wrong-password").assert_error(
            401,
            "invalid_credentials",
            &format!("failure {i}"),
        );
    }
    // ...and the name is throttled from any address, even with the right password.
    assert_throttled(
        login_from("10.0.0.4", "alice", "wrong-password"),
        "4th attempt",
    );
    assert_throttled(
        login_from("10.0.0.5", "alice", "alice-password"),
        "right password while throttled",
    );
    assert_throttled(
        login_from("10.0.0.6", "ALICE", "alice-password"),
        "the name is throttled case-insensitively",
    );
    // Another name is not affected.
    login_from("10.0.0.7", "bob", "bob-password").assert_status(200, "bob is not throttled");

    // Per address: three failures on different names from one address.
    for name in ["u1", "u2", "u3"] {
        login_from("10.0.1.1", name, "whatever-password").assert_error(
            401,
            "invalid_credentials",
            &format!("failure for {name}"),
        );
    }
    assert_throttled(
        login_from("10.0.1.1", "bob", "bob-password"),
        "throttled address",
    );
    login_from("10.0.1.2", "bob", "bob-password").assert_status(200, "another address is fine");

    // A successful login clears the name's failures.
    for (i, ip) in ["10.0.2.1", "10.0.2.2"].iter().enumerate() {
        login_from(ip, "bob", "wrong-password").assert_error(
            401,
            "invalid_credentials",
            &format!("bob failure {i}"),
        );
    }
    login_from("10.0.2.3", "bob", "bob-password").assert_status(200, "bob logs in");
    for (i, ip) in ["10.0.2.4", "10.0.2.5"].iter().enumerate() {
        login_from(ip, "bob", "wrong-password").assert_error(
            401,
            "invalid_credentials",
            &format!("bob failure {i} after a success"),
        );
    }
}

/// The login limit lifts once the window has passed, as `Retry-After` says.
#[test]
fn login_throttle_lifts_after_the_window() {
    let limits = [
        ("CONFAB_LOGIN_MAX_FAILURES", "1"),
        ("CONFAB_LOGIN_WINDOW_SECS", "1"),
    ];
    let server = TestServer::options().envs(&limits).start();
    server.register("alice", "alice-password");
    server
        .try_login("alice", "wrong-password")
        .assert_error(401, "invalid_credentials", "failure");
    let response = server.try_login("alice", "alice-password");
    response.assert_error(429, "rate_limited", "throttled");
    assert_eq!(
        response.header("retry-after"),
        Some("1"),
        "Retry-After for a 1 s window"
    );
    let response = wait_for(Duration::from_secs(5), "the limit to lift", || {
        let response = server.try_login("alice", "alice-password");
        (response.status != 429).then_some(response)
    });
    response.assert_status(200, "login after the window");
}

/// 400 for malformed JSON, 413 over the body limit, 404 for unknown routes, 401 without a usable token.
#[test]
fn malformed_oversized_unknown_and_unauthenticated_requests() {
    let server = TestServer::start_with(&[("CONFAB_MAX_HTTP_BODY_BYTES", "1024")], None);
    let (token, _) = server.register("alice", "alice-password");
    let json_header = [("Content-Type", "application/json")];

    for bad in ["{\"username\": ", "not json", "[1, 2]", "{\"username\": 5}"] {
        server
            .request("POST", "/api/login", None, Some(bad), &json_header)
            .assert_error(400, "bad_request", &format!("body {bad:?}"));
    }
    server
        .request("POST", "/api/register", None, Some(""), &json_header)
        .assert_error(400, "bad_request", "empty body");
    server
        .request(
            "PATCH",
            "/api/me",
            Some(&token),
            Some("{oops"),
            &json_header,
        )
        .assert_error(400, "bad_request", "malformed PATCH /api/me");

    // Oversized, with a Content-Length...
    let big = format!(
        "{{\"username\": \"alice\", \"password\": \"{}\"}}",
        "x".repeat(4096)
    );
    server
        .request("POST", "/api/login", None, Some(&big), &json_header)
        .assert_error(413, "payload_too_large", "4 KiB body with Content-Length");
    // ...and chunked, without one.
    let mut raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr()
    )
    .into_bytes();
    for piece in big.as_bytes().chunks(512) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    common::request_raw(server.addr(), &raw, false).assert_error(
        413,
        "payload_too_large",
        "4 KiB chunked body",
    );
    // A body just under the limit is read normally.
    let padded = format!(
        "{{\"username\": \"alice\", \"password\": \"wrong\", \"pad\": \"{}\"}}",
        "x".repeat(900)
    );
    assert!(padded.len() < 1024);
    server
        .request("POST", "/api/login", None, Some(&padded), &json_header)
        .assert_error(401, "invalid_credentials", "body under the limit");

    // Unknown routes.
    server
        .get("/api/nope", None)
        .assert_error(404, "not_found", "GET /api/nope");
    server
        .post_json("/api/nope", Some(&token), &json!({}))
        .assert_error(404, "not_found", "POST /api/nope");
    server
        .request("DELETE", "/api/me", Some(&token), None, &[])
        .assert_error(404, "not_found", "DELETE /api/me");

    // Missing and unusable tokens.
    server
        .get("/api/me", None)
        .assert_error(401, "unauthorized", "no token");
    server
        .get("/api/me", Some("garbage"))
        .assert_error(401, "unauthorized", "garbage token");
    server
        .get("/api/me", Some("a.b.c"))
        .assert_error(401, "unauthorized", "garbage JWT");
    server
        .request(
            "GET",
            "/api/me",
            None,
            None,
            &[("Authorization", &format!("Basic {token}"))],
        )
        .assert_error(401, "unauthorized", "Basic scheme");
    server.get("/api/users", None).assert_error(
        401,
        "unauthorized",
        "GET /api/users without a token",
    );
    server
        .request("POST", "/api/logout", None, None, &[])
        .assert_error(401, "unauthorized", "logout without a token");
    // The valid token is still fine (the failures above were not flukes).
    assert_token_works(&server, &token, "alice", "valid token");
}

/// A user disabled with the CLI loses their tokens and cannot log in (403).
#[test]
fn disabled_user_is_refused_after_restart() {
    let mut server = TestServer::start();
    let (alice_token, _) = server.register("alice", "alice-password");
    let (bob_token, _) = server.register("bob", "bob-password");
    assert_token_works(&server, &bob_token, "bob", "bob before disabling");

    server.stop();
    let cli = Cli::on(server.data_dir());
    cli.run_ok(&["user", "disable", "bob"], None);
    server.restart();

    assert_token_refused(&server, &bob_token, "disabled bob's old token");
    server
        .try_login("bob", "bob-password")
        .assert_error(403, "forbidden", "disabled bob's login");
    server.try_login("bob", "wrong-password").assert_error(
        401,
        "invalid_credentials",
        "disabled bob, wrong password",
    );
    assert_token_works(&server, &alice_token, "alice", "alice is unaffected");

    // Enabling again restores access.
    server.terminate();
    cli.run_ok(&["user", "enable", "bob"], None);
    server.restart();
    let (token, _) = server.login("bob", "bob-password");
    assert_token_works(&server, &token, "bob", "re-enabled bob");
}

/// Tokens stop working once `exp` passes.
#[test]
fn expired_tokens_are_refused() {
    let server = TestServer::start_with(&[("CONFAB_TOKEN_TTL_SECS", "1")], None);
    let (token, _) = server.register("alice", "alice-password");
    let claims = claims_of(&token);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        1,
        "the configured TTL is used: {claims}"
    );
    assert_token_works(&server, &token, "alice", "fresh token");
    wait_for(Duration::from_secs(5), "the token to expire", || {
        let response = me(&server, &token);
        match response.status {
            200 => None,
            _ => Some(response),
        }
    })
    .assert_error(401, "unauthorized", "expired token");
    server
        .request("POST", "/api/token/refresh", Some(&token), None, &[])
        .assert_error(401, "unauthorized", "refresh with an expired token");
    // A new login gives a working token again.
    let (token, _) = server.login("alice", "alice-password");
    assert_token_works(&server, &token, "alice", "new token");
}

/// Only HS256 tokens signed with this server's secret are accepted.
#[test]
fn tokens_signed_otherwise_are_refused() {
    const SECRET: &str = "integration-test-secret-0123456789abcdef";
    let server = TestServer::start_with(&[("CONFAB_JWT_SECRET", SECRET)], None);
    let (token, _) = server.register("alice", "alice-password");
    let claims = claims_of(&token);
    for key in ["sub", "exp", "iat", "jti", "ver"] {
        assert!(
            claims.get(key).is_some(),
            "claim {key} missing from {claims}"
        );
    }

    // Control: a token made here with the server's secret is accepted, so
    // the refusals below are about the signature, not the token's form.
    let mut own = claims.clone();
    own["jti"] = json!("test-made-token-1");
    assert_token_works(
        &server,
        &sign_hs256(&own, SECRET.as_bytes()),
        "alice",
        "token signed with the server's secret",
    );

    let other = sign_hs256(&own, b"another-secret-another-secret-0123456789");
    assert_token_refused(&server, &other, "token signed with another secret");

    // A second server with its own secret: its tokens are refused here, even
    // though user id 1 exists on both.
    let second = TestServer::start_with(
        &[(
            "CONFAB_JWT_SECRET",
            "second-server-secret-0123456789abcdefghij",
        )],
        None,
    );
    let (foreign, foreign_user) = second.register("alice", "alice-password");
    assert_eq!(
        claims_of(&foreign)["sub"],
        claims["sub"],
        "same user id on both servers"
    );
    assert_eq!(foreign_user["username"], "alice");
    assert_token_refused(&server, &foreign, "token of another server");

    // alg: none, with and without a signature part.
    let none_header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(own.to_string());
    assert_token_refused(
        &server,
        &format!("{none_header}.{payload}."),
        "alg none, empty signature",
    );
    let real_signature = token.split('.').nth(2).unwrap();
    assert_token_refused(
        &server,
        &format!("{none_header}.{payload}.{real_signature}"),
        "alg none with a signature",
    );

    // Another algorithm with the right secret.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &own,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_token_refused(&server, &hs512, "HS512 token");

    // Tampered claims under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut tampered = claims.clone();
    tampered["exp"] = json!(claims["exp"].as_u64().unwrap() + 3600);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(tampered.to_string()),
        parts[2]
    );
    assert_token_refused(&server, &forged, "tampered claims");

    // The real token still works.
    assert_token_works(&server, &token, "alice", "the original token");
}

/// `PATCH /api/me`: display name, e-mail and password (which revokes older tokens).
#[test]
fn password_and_profile_changes() {
    let server = TestServer::start();
    let (token, _) = server.register("alice", "old-password");
    let (other_token, _) = server.login("alice", "old-password");
    let (bob_token, _) = server.register("bob", "bob-password");

    let patch = |token: &str, body: Value| server.send_json("PATCH", "/api/me", Some(token), &body);

    // Display name: no new token, old tokens keep working.
    let response = patch(&token, json!({"display_name": "  Alice Liddell "}));
    response.assert_status(200, "display name change");
    let body = response.json();
    assert_eq!(
        body["user"]["display_name"], "Alice Liddell",
        "trimmed: {body}"
    );
    assert!(
        body.get("token").is_none(),
        "no token without a password change: {body}"
    );
    let user = assert_token_works(&server, &token, "alice", "after renaming");
    assert_eq!(user["display_name"], "Alice Liddell");
    patch(&token, json!({"display_name": "   "})).assert_error(
        422,
        "validation_failed",
        "blank display name",
    );

    // E-mail.
    let response = patch(&token, json!({"email": "alice@example.com"}));
    response.assert_status(200, "email change");
    assert_eq!(response.json()["user"]["email"], "alice@example.com");
    let body =
        patch(&token, json!({"email": "nope"})).assert_error(422, "validation_failed", "bad email");
    assert!(body["errors"]["email"].is_array(), "{body}");

    // Wrong current password, and a too-short new one: 422, nothing changes.
    let body = patch(
        &token,
        json!({"password": {"current": "wrong-password", "new": "new-password"}}),
    )
    .assert_error(422, "validation_failed", "wrong current password");
    assert!(body["errors"]["password"].is_array(), "{body}");
    let body = patch(
        &token,
        json!({"password": {"current": "old-password", "new": "short"}}),
    )
    .assert_error(422, "validation_failed", "short new password");
    assert!(body["errors"]["password"].is_array(), "{body}");
    server.login("alice", "old-password");
    assert_token_works(&server, &token, "alice", "token after refused changes");

    // The change itself.
    let response = patch(
        &token,
        json!({"password": {"current": "old-password", "new": "new-password"}}),
    );
    response.assert_status(200, "password change");
    let body = response.json();
    let fresh = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no fresh token: {body}"))
        .to_string();
    assert_rfc3339(&body["expires_at"], "password change");
    assert_eq!(body["user"]["username"], "alice", "{body}");
    assert!(
        !response.body.contains("password_hash") && !response.body.contains("$argon2"),
        "{body}"
    );

    assert_token_refused(&server, &token, "the token used for the change");
    assert_token_refused(&server, &other_token, "another older token");
    assert_token_works(&server, &fresh, "alice", "the fresh token");
    assert_token_works(&server, &bob_token, "bob", "other users are unaffected");
    server.try_login("alice", "old-password").assert_error(
        401,
        "invalid_credentials",
        "the old password",
    );
    let (_, user) = server.login("alice", "new-password");
    assert_eq!(user["display_name"], "Alice Liddell");
    assert_eq!(user["email"], "alice@example.com");
}

/// A restart on the same data directory keeps users, the secret, tokens and revocations.
#[test]
fn restart_keeps_users_secret_and_tokens() {
    let mut server = TestServer::start();
    let (alice_token, alice) = server.register("alice", "alice-password");
    let (bob_token, _) = server.register("bob", "bob-password");
    let (revoked, _) = server.login("bob", "bob-password");
    server
        .request("POST", "/api/logout", Some(&revoked), None, &[])
        .assert_status(204, "logout");

    server.restart();

    let response = me(&server, &alice_token);
    response.assert_status(200, "alice's token after restart");
    assert_eq!(response.json()["user"], alice, "same user after restart");
    assert_token_works(&server, &bob_token, "bob", "bob's token after restart");
    assert_token_refused(&server, &revoked, "a revoked token stays revoked");
    server.login("bob", "bob-password");
    let (_, carol) = server.register("carol", "carol-password");
    assert_eq!(
        carol["admin"], false,
        "only the very first user is admin: {carol}"
    );
    assert!(
        carol["id"] != alice["id"],
        "ids are not reused: {carol} vs {alice}"
    );
}

/// `POST /api/users` (admin only) and `GET /api/users`; no response carries a password hash.
#[test]
fn admin_creates_users() {
    let server = TestServer::start();
    let (admin_token, _) = server.register("alice", "alice-password");
    let mut bodies = Vec::new();

    let response = server.post_json(
        "/api/users",
        Some(&admin_token),
        &json!({"username": "carol", "display_name": "Carol C.", "email": "carol@example.com"}),
    );
    response.assert_status(201, "admin creates carol");
    bodies.push(response.body.clone());
    let body = response.json();
    assert_eq!(body["user"]["username"], "carol", "{body}");
    assert_eq!(body["user"]["display_name"], "Carol C.", "{body}");
    assert_eq!(body["user"]["email"], "carol@example.com", "{body}");
    assert_eq!(body["user"]["admin"], false, "{body}");
    let password = body["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated password: {body}"))
        .to_string();
    assert!(
        password.len() >= 16,
        "generated password too short: {password:?}"
    );
    let response = server.try_login("carol", &password);
    response.assert_status(200, "carol logs in with the generated password");
    bodies.push(response.body.clone());
    let carol_token = response.json()["token"].as_str().unwrap().to_string();

    // A non-admin may not.
    let response = server.post_json(
        "/api/users",
        Some(&carol_token),
        &json!({"username": "dave"}),
    );
    response.assert_error(403, "forbidden", "non-admin creates a user");
    server
        .try_login("dave", "")
        .assert_error(401, "invalid_credentials", "dave was not created");
    server
        .post_json("/api/users", None, &json!({"username": "dave"}))
        .assert_error(401, "unauthorized", "anonymous creates a user");

    // Admins can create admins; validation applies.
    let response = server.post_json(
        "/api/users",
        Some(&admin_token),
        &json!({"username": "erin", "admin": true}),
    );
    response.assert_status(201, "admin creates an admin");
    bodies.push(response.body.clone());
    assert_eq!(response.json()["user"]["admin"], true);
    let body = server
        .post_json(
            "/api/users",
            Some(&admin_token),
            &json!({"username": "carol"}),
        )
        .assert_error(422, "validation_failed", "taken username");
    assert!(body["errors"]["username"].is_array(), "{body}");

    // Everyone can list.
    for (token, who) in [(&admin_token, "admin"), (&carol_token, "carol")] {
        let response = server.get("/api/users", Some(token));
        response.assert_status(200, &format!("list as {who}"));
        bodies.push(response.body.clone());
        let mut names: Vec<String> = response.json()["users"]
            .as_array()
            .unwrap_or_else(|| panic!("users array: {}", response.body))
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["alice", "carol", "erin"], "as {who}");
    }
    let response = me(&server, &carol_token);
    bodies.push(response.body.clone());

    for body in &bodies {
        assert!(
            !body.contains("password_hash") && !body.contains("$argon2"),
            "a response leaks a password hash: {body}"
        );
    }
}

/// `registration = "closed"`: register is 403, admins still create accounts.
#[test]
fn closed_registration() {
    let cli = Cli::fresh();
    cli.run_ok(
        &["user", "add", "root", "--password-stdin"],
        Some("root-password\n"),
    );
    let server = TestServer::start_with(
        &[("CONFAB_REGISTRATION", "closed")],
        Some(cli.data().to_path_buf()),
    );

    server
        .post_json(
            "/api/register",
            None,
            &json!({"username": "mallory", "password": "mallory-password"}),
        )
        .assert_error(403, "forbidden", "register while closed");
    server
        .try_login("mallory", "mallory-password")
        .assert_error(401, "invalid_credentials", "nothing was registered");

    // Accounts still come from an admin.
    let (root_token, root) = server.login("root", "root-password");
    assert_eq!(root["admin"], true, "the first (CLI) user is admin");
    let response = server.post_json(
        "/api/users",
        Some(&root_token),
        &json!({"username": "dave"}),
    );
    response.assert_status(201, "admin creates a user while registration is closed");
    let password = response.json()["password"].as_str().unwrap().to_string();
    server.login("dave", &password);
}

/// Probes, the embedded UI (CSP, ETag, 304) and path traversal.
#[test]
fn probes_and_static_files() {
    let server = TestServer::start();

    let response = server.get("/healthz", None);
    response.assert_status(200, "/healthz");
    assert_eq!(response.body, "ok");
    let response = server.get("/readyz", None);
    response.assert_status(200, "/readyz");

    let response = server.get("/", None);
    response.assert_status(200, "GET /");
    let content_type = response.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("text/html"),
        "content-type {content_type:?}"
    );
    assert!(
        response.body.to_ascii_lowercase().contains("<html")
            || response
                .body
                .to_ascii_lowercase()
                .contains("<!doctype html"),
        "GET / is not HTML: {}",
        response.body
    );
    let csp = response
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP header: {:?}", response.headers));
    assert!(csp.contains("default-src"), "CSP {csp:?}");
    let etag = response
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {:?}", response.headers))
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "ETag {etag:?}"
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));

    let response = server.request("GET", "/", None, None, &[("If-None-Match", &etag)]);
    response.assert_status(304, "conditional GET with the current ETag");
    assert!(
        response.body.is_empty(),
        "304 with a body: {:?}",
        response.body
    );
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    server
        .request("GET", "/", None, None, &[("If-None-Match", "\"stale\"")])
        .assert_status(200, "conditional GET with another ETag");
    // The same file under its own name has the same ETag.
    let response = server.get("/index.html", None);
    response.assert_status(200, "/index.html");
    assert_eq!(response.header("etag"), Some(etag.as_str()));

    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/assets/../../Cargo.toml",
        "/..%2fCargo.toml",
        "/.git/config",
        "/nope.js",
    ] {
        let response = server.get(path, None);
        response.assert_error(404, "not_found", path);
        assert!(
            !response.body.contains("[package]") && !response.body.contains("[core]"),
            "{path} leaked a file: {}",
            response.body
        );
    }
}

#[test]
fn if_none_match_uses_weak_comparison() {
    // RFC 9110 §13.1.2: If-None-Match uses the weak comparison, so a
    // `W/"tag"` (what a compressing proxy hands the browser) must match.
    let server = TestServer::start();
    let response = server.get("/", None);
    response.assert_status(200, "GET /");
    let etag = response.header("etag").expect("ETag").to_string();
    server
        .request(
            "GET",
            "/",
            None,
            None,
            &[("If-None-Match", &format!("\"x\", {etag}"))],
        )
        .assert_status(304, "the ETag in a list");
    server
        .request(
            "GET",
            "/",
            None,
            None,
            &[("If-None-Match", &format!("W/{etag}"))],
        )
        .assert_status(304, "the weak form of the current ETag");
}

#[test]
fn unknown_socket_paths_are_not_the_web_ui() {
    // `/socket/...` is not a static path: an unknown route there is a 404 in
    // the error shape, not index.html.
    let server = TestServer::start();
    for path in ["/socket/nope", "/socket/websocket/extra"] {
        let response = server.get(path, None);
        response.assert_error(404, "not_found", path);
    }
}

/// SIGTERM with idle connections: exit 0, promptly.
#[test]
fn sigterm_exits_promptly_with_idle_connections() {
    // A long grace period: idle connections must not use it up.
    let mut server = TestServer::start_with(&[("CONFAB_SHUTDOWN_GRACE_SECS", "20")], None);
    server.register("alice", "alice-password");

    // An idle keep-alive connection after one request, and one that never sent anything.
    let mut keep_alive = TcpStream::connect(server.addr()).unwrap();
    write!(
        keep_alive,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr()
    )
    .unwrap();
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = keep_alive.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "keep-alive request: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let _silent = TcpStream::connect(server.addr()).unwrap();

    let (status, took) = server.terminate_within(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM; output:\n{}",
        server.logs()
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to exit with only idle connections open"
    );
    assert!(
        !server.logs().contains("panicked"),
        "panic during shutdown:\n{}",
        server.logs()
    );
}

#[test]
fn sigint_exits_cleanly() {
    let mut server = TestServer::start();
    let (token, _) = server.register("alice", "alice-password");
    let (status, _) = server.signal_within(libc::SIGINT, Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?} after SIGINT; output:\n{}",
        server.logs()
    );
    // What was written before the signal is there after a restart.
    server.restart();
    assert_token_works(&server, &token, "alice", "token after SIGINT and restart");
}

#[test]
fn sigterm_exit_is_bounded_by_the_grace_period() {
    let grace = 2;
    let mut server =
        TestServer::start_with(&[("CONFAB_SHUTDOWN_GRACE_SECS", &grace.to_string())], None);
    // A request whose body never arrives: whether the server is already
    // waiting on it or not, the exit must not wait longer than the grace.
    let mut stuck = TcpStream::connect(server.addr()).unwrap();
    write!(
        stuck,
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"user",
        server.addr()
    )
    .unwrap();
    // The server is up and answering while that request hangs.
    server.get("/healthz", None).assert_status(200, "healthz");

    let (status, took) = server.terminate_within(Duration::from_secs(grace + 20));
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM with a stuck request; output:\n{}",
        server.logs()
    );
    assert!(
        took < Duration::from_secs(grace + 3),
        "took {took:?} to exit, grace is {grace} s"
    );
}

#[test]
fn slow_request_headers_are_cut_off() {
    let server = TestServer::start_with(&[("CONFAB_HEADER_READ_TIMEOUT_SECS", "1")], None);
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    write!(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut received = Vec::new();
    // The server either answers 408 and closes, or just closes.
    match slow.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the connection was still open after {:?}: {e}",
            started.elapsed()
        ),
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "headers sent too slowly were tolerated for {took:?}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer to incomplete headers: {text:?}"
    );
    server
        .get("/healthz", None)
        .assert_status(200, "server still fine");
}

#[test]
fn forwarded_for_is_ignored_unless_trusted() {
    let server = TestServer::start_with(&[("CONFAB_LOGIN_MAX_FAILURES", "2")], None);
    server.register("alice", "alice-password");
    // Each attempt claims a different address and user; all really come from
    // 127.0.0.1, which is what must be counted.
    for (i, name) in ["u1", "u2"].iter().enumerate() {
        server
            .request(
                "POST",
                "/api/login",
                None,
                Some(&json!({"username": name, "password": "whatever-pw"}).to_string()),
                &[("X-Forwarded-For", &format!("10.9.9.{i}"))],
            )
            .assert_error(401, "invalid_credentials", "failure");
    }
    let response = server.request(
        "POST",
        "/api/login",
        None,
        Some(&json!({"username": "alice", "password": "alice-password"}).to_string()),
        &[("X-Forwarded-For", "10.9.9.99")],
    );
    response.assert_error(
        429,
        "rate_limited",
        "a spoofed X-Forwarded-For must not escape the address limit",
    );
}

/// Debug logs of a busy session contain no password, token or hash.
#[test]
fn logs_never_contain_secrets() {
    let server = TestServer::start_with(&[("CONFAB_LOG", "debug")], None);
    let mut secrets = vec![
        "alice-first-password".to_string(),
        "alice-second-password".to_string(),
        "bob-password-1".to_string(),
        "definitely-wrong-pw".to_string(),
    ];

    let (t1, _) = server.register("alice", "alice-first-password");
    let (t2, _) = server.register("bob", "bob-password-1");
    let (t3, _) = server.login("alice", "alice-first-password");
    server
        .try_login("alice", "definitely-wrong-pw")
        .assert_status(401, "wrong password");
    let response = server.send_json(
        "PATCH",
        "/api/me",
        Some(&t3),
        &json!({"password": {"current": "alice-first-password", "new": "alice-second-password"}}),
    );
    response.assert_status(200, "password change");
    let t4 = response.json()["token"].as_str().unwrap().to_string();
    let response = server.post_json("/api/users", Some(&t4), &json!({"username": "carol"}));
    response.assert_status(201, "create carol");
    let carol_password = response.json()["password"].as_str().unwrap().to_string();
    let (t5, _) = server.login("carol", &carol_password);
    let response = server.request("POST", "/api/token/refresh", Some(&t5), None, &[]);
    response.assert_status(200, "refresh");
    let t6 = response.json()["token"].as_str().unwrap().to_string();
    server
        .request("POST", "/api/logout", Some(&t2), None, &[])
        .assert_status(204, "logout");
    me(&server, &t1).assert_status(401, "revoked by the password change");
    server
        .get("/api/me", Some("garbage-token-value"))
        .assert_status(401, "garbage");

    secrets.push(carol_password);
    for token in [&t1, &t2, &t3, &t4, &t5, &t6] {
        secrets.push(token.clone());
        // The signature alone is enough to forge nothing, but it is still a secret.
        secrets.push(token.rsplit('.').next().unwrap().to_string());
    }

    let logs = server.logs();
    // The debug request log is on, so the check below looks at real output.
    assert!(
        logs.contains("/api/login") && logs.contains("/api/me"),
        "expected debug request logs, got:\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "the logs contain the secret {secret:?}:\n{logs}"
        );
    }
    assert!(
        !logs.contains("$argon2"),
        "the logs contain a password hash:\n{logs}"
    );
}
