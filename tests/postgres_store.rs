//! The PostgreSQL store against the embedded one: the same sequence of
//! requests over the real HTTP API (and the admin socket for the CLI's
//! account and room commands) on a server with each backend, answer by
//! answer; the store operations no request reaches, called on both stores
//! directly; and the races only PostgreSQL has (several requests, or
//! several servers on one database, at once): one admin among first
//! registrations, one conversation per pair, one lobby, one JWT secret.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::postgres::PgServer;
use common::{request, request_raw_bytes, run_confab_with, temp_dir, Response, TestServer};
use confab::config::Config;
use confab::error::Error;
use confab::store::ops::{NewRoom, NewUser, ProfileChange};
use confab::store::records::UserRecord;
use confab::store::Store;
use serde_json::{json, Value};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

/// Keys whose values differ from run to run (times, tokens, random epochs).
const VOLATILE: &[&str] = &[
    "token",
    "password",
    "expires_at",
    "created_at",
    "inserted_at",
    "edited_at",
    "epoch",
];

/// `value` with every [`VOLATILE`] key's value replaced by `"*"`, and the
/// ids of messages (objects with a `seq`): PostgreSQL hands out a batch's
/// message ids before it knows which posts repeat a `client_id`, so its ids
/// are unique and increasing but may skip numbers the embedded store uses.
fn masked(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("seq") {
                    if let Some(id) = map.get_mut("id") {
                        *id = json!("*");
                    }
                }
                for (key, item) in map.iter_mut() {
                    if VOLATILE.contains(&key.as_str()) && !item.is_null() {
                        *item = json!("*");
                    } else {
                        walk(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// A tiny valid-looking PNG: the signature, then `tag`.
fn png(tag: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// One scenario run against one server, recording every answer.
struct Run<'a> {
    server: &'a TestServer,
    /// The environment the server was started with (for CLI commands).
    env: Vec<(&'a str, &'a str)>,
    /// (what, status, masked body) of every step.
    steps: Vec<(String, u16, Value)>,
}

impl<'a> Run<'a> {
    fn record(&mut self, what: &str, response: &Response) -> Value {
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&response.body).unwrap_or_else(|_| json!(response.body))
        };
        self.steps
            .push((what.to_owned(), response.status, masked(body.clone())));
        body
    }

    /// A JSON request (`body` `None`: none); returns the unmasked body.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let response = match &body {
            Some(body) => self.server.send_json(method, path, token, body),
            None => self.server.request(method, path, token, None, &[]),
        };
        self.record(&format!("{method} {path}"), &response)
    }

    /// Registers `username`; returns its token.
    fn register(&mut self, username: &str) -> String {
        let body = self.call(
            "POST",
            "/api/register",
            None,
            Some(json!({"username": username, "password": PASSWORD})),
        );
        body["token"].as_str().unwrap_or_default().to_owned()
    }

    /// Logs in; returns the token (empty when refused).
    fn login(&mut self, username: &str, password: &str) -> String {
        let body = self.call(
            "POST",
            "/api/login",
            None,
            Some(json!({"username": username, "password": password})),
        );
        body["token"].as_str().unwrap_or_default().to_owned()
    }

    /// `confab ARGS --data DIR` through the server's admin socket.
    fn cli(&mut self, args: &[&str]) {
        let data = self.server.data_dir().to_str().expect("UTF-8 path");
        let mut all = args.to_vec();
        all.extend(["--data", data]);
        let cwd = temp_dir();
        let output = run_confab_with(cwd.path(), &self.env, &all, None);
        self.steps.push((
            format!("confab {}", args.join(" ")),
            u16::from(output.status.success()),
            json!({
                "stdout": String::from_utf8_lossy(&output.stdout),
                "stderr": String::from_utf8_lossy(&output.stderr),
            }),
        ));
    }

    /// Uploads `bytes` to `path` (an `.../attachments` URL); returns the body.
    fn upload(&mut self, path: &str, token: &str, bytes: &[u8]) -> Value {
        let response = request(
            self.server.addr(),
            "POST",
            path,
            Some(token),
            Some(bytes),
            &[("Content-Type", "application/octet-stream")],
        );
        self.record(&format!("POST {path}"), &response)
    }

    /// Fetches attachment `id`, recording status, type, disposition and bytes.
    fn fetch_attachment(&mut self, id: &Value, token: &str) {
        let path = format!("/api/attachments/{id}");
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\n\r\n",
            self.server.addr()
        );
        let response = request_raw_bytes(self.server.addr(), raw.as_bytes(), false);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if response.status == 200 {
            json!({
                "content_type": header("content-type"),
                "disposition": header("content-disposition"),
                "bytes": String::from_utf8_lossy(&response.body),
            })
        } else {
            Value::Null
        };
        self.steps
            .push((format!("GET {path}"), response.status, body));
    }
}

/// Every store operation the API reaches, in an order that makes each
/// answer depend on the ones before.
fn scenario(run: &mut Run<'_>) {
    // Accounts: the first is an admin; names are taken whatever their case.
    let alice = run.register("alice");
    let bob = run.register("bob");
    let carol = run.register("carol");
    let dave = run.register("dave");
    run.register("alice");
    for username in ["bob", "erin"] {
        run.call(
            "POST",
            "/api/users",
            Some(&alice),
            Some(json!({"username": username, "admin": true})),
        );
    }
    run.login("ALICE", PASSWORD);
    run.login("alice", "wrong password");
    run.login("nobody", PASSWORD);
    run.call("GET", "/api/me", Some(&alice), None);

    // Profile, password (old tokens refused), logout, disable and enable.
    run.call(
        "PATCH",
        "/api/me",
        Some(&bob),
        Some(json!({"display_name": "  Bobby  ", "email": "Bob@Example.org"})),
    );
    run.call(
        "PATCH",
        "/api/me",
        Some(&bob),
        Some(json!({"display_name": "Bob B."})),
    );
    run.call("PATCH", "/api/me", Some(&bob), Some(json!({"email": ""})));
    let changed = run.call(
        "PATCH",
        "/api/me",
        Some(&carol),
        Some(json!({"password": {"current": PASSWORD, "new": "another good password"}})),
    );
    run.call("GET", "/api/me", Some(&carol), None);
    let carol = changed["token"].as_str().unwrap_or_default().to_owned();
    run.call("GET", "/api/me", Some(&carol), None);
    run.login("carol", PASSWORD);
    run.call("POST", "/api/logout", Some(&dave), None);
    run.call("GET", "/api/me", Some(&dave), None);
    let dave = run.login("dave", PASSWORD);
    run.cli(&["user", "disable", "dave"]);
    run.call("GET", "/api/me", Some(&dave), None);
    run.login("dave", PASSWORD);
    run.cli(&["user", "enable", "dave"]);
    let dave = run.login("dave", PASSWORD);
    run.cli(&["user", "disable", "nobody"]);
    run.call("GET", "/api/users", Some(&dave), None);

    // Rooms: names taken once, listed by name as bytes compare.
    run.call(
        "POST",
        "/api/rooms",
        Some(&alice),
        Some(json!({"name": "dev", "description": "Development"})),
    );
    run.call(
        "POST",
        "/api/rooms",
        Some(&bob),
        Some(json!({"name": "secret", "private": true})),
    );
    run.call(
        "POST",
        "/api/rooms",
        Some(&carol),
        Some(json!({"name": "dev"})),
    );
    for name in ["ab", "a-c", "a_b", "a0", "lobby"] {
        run.call(
            "POST",
            "/api/rooms",
            Some(&carol),
            Some(json!({"name": name})),
        );
    }
    run.cli(&["room", "add", "ops", "--private"]);
    run.cli(&["room", "add", "ops"]);

    // Membership of a private room: owner or admin only, idempotent.
    let members = "/api/rooms/secret/members";
    run.call(
        "POST",
        members,
        Some(&bob),
        Some(json!({"username": "carol"})),
    );
    run.call(
        "POST",
        members,
        Some(&bob),
        Some(json!({"username": "carol"})),
    );
    run.call(
        "POST",
        members,
        Some(&bob),
        Some(json!({"username": "nobody"})),
    );
    run.call(
        "POST",
        members,
        Some(&carol),
        Some(json!({"username": "dave"})),
    );
    run.call(
        "POST",
        members,
        Some(&alice),
        Some(json!({"username": "dave"})),
    );
    run.call(
        "POST",
        "/api/rooms/nowhere/members",
        Some(&alice),
        Some(json!({"username": "dave"})),
    );

    // Posts and mentions make per-user counts.
    let post = |run: &mut Run<'_>, room: &str, token: &str, body: Value| {
        run.call(
            "POST",
            &format!("/api/rooms/{room}/messages"),
            Some(token),
            Some(body),
        )
    };
    post(
        run,
        "lobby",
        &alice,
        json!({"body": "hello @bob and @carol"}),
    );
    post(run, "lobby", &bob, json!({"body": "hi", "client_id": "b1"}));
    post(run, "lobby", &bob, json!({"body": "hi", "client_id": "b1"}));
    post(run, "secret", &bob, json!({"body": "@carol @alice look"}));
    post(run, "secret", &dave, json!({"body": "seen, @bob"}));
    post(run, "secret", &alice, json!({"body": "not a member"}));
    post(run, "dev", &carol, json!({"body": "@dave build is green"}));
    for token in [&alice, &bob, &carol, &dave] {
        run.call("GET", "/api/rooms", Some(token), None);
    }
    run.call("GET", "/api/rooms/secret/messages", Some(&carol), None);
    run.call("GET", "/api/rooms/secret/messages", Some(&alice), None);
    run.call("GET", "/api/rooms/nowhere/messages", Some(&alice), None);

    // Removal: idempotent, and the room leaves the list.
    run.call(
        "DELETE",
        "/api/rooms/secret/members/carol",
        Some(&bob),
        None,
    );
    run.call(
        "DELETE",
        "/api/rooms/secret/members/carol",
        Some(&bob),
        None,
    );
    run.call("GET", "/api/rooms", Some(&carol), None);
    run.call("GET", "/api/rooms/secret/messages", Some(&carol), None);

    // Conversations: one per pair whoever opens it.
    let open = |run: &mut Run<'_>, token: &str, with: &str| {
        run.call(
            "POST",
            "/api/conversations",
            Some(token),
            Some(json!({"username": with})),
        )
    };
    let ab = open(run, &alice, "bob");
    open(run, &alice, "bob");
    open(run, &bob, "ALICE");
    open(run, &alice, "alice");
    open(run, &alice, "nobody");
    let ca = open(run, &carol, "alice");
    let ab = ab["conversation"]["id"].clone();
    let ca = ca["conversation"]["id"].clone();
    for (id, token, body) in [
        (&ab, &alice, "hi bob"),
        (&ab, &alice, "@bob are you there"),
        (&ab, &bob, "yes"),
        (&ca, &carol, "hello alice"),
        (&ab, &carol, "not mine"),
    ] {
        run.call(
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(token),
            Some(json!({ "body": body })),
        );
    }
    for token in [&alice, &bob, &carol, &dave] {
        run.call("GET", "/api/conversations", Some(token), None);
    }
    open(run, &bob, "alice");
    run.call(
        "GET",
        &format!("/api/conversations/{ab}/messages"),
        Some(&bob),
        None,
    );
    run.call(
        "GET",
        &format!("/api/conversations/{ab}/messages"),
        Some(&carol),
        None,
    );

    // Ignores (the list's order is unspecified: compared sorted).
    let ignores = |run: &mut Run<'_>, token: &str| {
        let mut body = run.call("GET", "/api/me/ignores", Some(token), None);
        if let Some(list) = body["ignores"].as_array_mut() {
            list.sort_by_key(|user| user["id"].as_u64());
        }
        if let Some(last) = run.steps.last_mut() {
            last.2 = masked(body);
        }
    };
    run.call("PUT", "/api/me/ignores/bob", Some(&alice), None);
    run.call("PUT", "/api/me/ignores/carol", Some(&alice), None);
    run.call("PUT", "/api/me/ignores/bob", Some(&alice), None);
    ignores(run, &alice);
    run.call("DELETE", "/api/me/ignores/bob", Some(&alice), None);
    run.call("DELETE", "/api/me/ignores/dave", Some(&alice), None);
    ignores(run, &alice);
    ignores(run, &bob);
    run.call("PUT", "/api/me/ignores/alice", Some(&alice), None);
    run.call("PUT", "/api/me/ignores/nobody", Some(&alice), None);

    // Attachments: images only, readable by the topic's members.
    let dev = run.upload("/api/rooms/dev/attachments", &carol, &png("dev image"));
    run.upload(
        "/api/rooms/dev/attachments",
        &carol,
        b"<svg onload=alert(1)>",
    );
    run.upload("/api/rooms/dev/attachments", &carol, b"");
    let secret = run.upload("/api/rooms/secret/attachments", &bob, &png("secret"));
    let dm = run.upload(
        &format!("/api/conversations/{ab}/attachments"),
        &alice,
        &png("dm"),
    );
    let dev = dev["attachment"]["id"].clone();
    let secret = secret["attachment"]["id"].clone();
    let dm = dm["attachment"]["id"].clone();
    post(
        run,
        "dev",
        &carol,
        json!({"body": "look", "attachment_id": dev}),
    );
    post(
        run,
        "dev",
        &carol,
        json!({"body": "again", "attachment_id": dev}),
    );
    post(
        run,
        "dev",
        &bob,
        json!({"body": "mine", "attachment_id": dm}),
    );
    run.call("GET", "/api/rooms/dev/messages", Some(&dave), None);
    run.fetch_attachment(&dev, &dave);
    run.fetch_attachment(&secret, &dave);
    run.fetch_attachment(&secret, &carol);
    run.fetch_attachment(&dm, &bob);
    run.fetch_attachment(&dm, &carol);
    run.fetch_attachment(&json!(999), &alice);
    for token in [&alice, &bob, &carol, &dave] {
        run.call("GET", "/api/rooms", Some(token), None);
        run.call("GET", "/api/conversations", Some(token), None);
    }
    run.call("GET", "/readyz", None, None);
}

/// Runs [`scenario`] on `server` (started with `env`).
fn transcript<'a>(
    server: &'a TestServer,
    env: Vec<(&'a str, &'a str)>,
) -> Vec<(String, u16, Value)> {
    let mut run = Run {
        server,
        env,
        steps: Vec::new(),
    };
    scenario(&mut run);
    run.steps
}

#[test]
fn postgres_answers_as_the_embedded_store_does() {
    let pg = PgServer::start();
    let url = pg.url();
    let embedded = TestServer::start();
    let postgres = TestServer::options()
        .env("CONFAB_DATABASE_URL", &url)
        .start();
    let expected = transcript(&embedded, Vec::new());
    let actual = transcript(&postgres, vec![("CONFAB_DATABASE_URL", &url)]);
    assert_eq!(expected.len(), actual.len());
    for (want, got) in expected.iter().zip(&actual) {
        assert_eq!(
            want, got,
            "{} answered differently on PostgreSQL:\nembedded:   {} {}\npostgresql: {} {}",
            want.0, want.1, want.2, got.1, got.2
        );
    }
    // The scenario did what it set out to: a sample of answers.
    let status = |what: &str| -> Vec<u16> {
        actual
            .iter()
            .filter(|step| step.0 == what)
            .map(|step| step.1)
            .collect()
    };
    assert_eq!(
        status("POST /api/register"),
        [201, 201, 201, 201, 422],
        "{actual:?}"
    );
    assert_eq!(status("POST /api/users"), [422, 201], "{actual:?}");
    assert_eq!(status("POST /api/conversations")[..3], [201, 200, 200]);
    let users = actual
        .iter()
        .find(|step| step.0 == "GET /api/users")
        .map(|step| step.2.clone())
        .unwrap_or_default();
    let admins: Vec<&Value> = users["users"]
        .as_array()
        .map(|list| list.iter().filter(|u| u["admin"] == true).collect())
        .unwrap_or_default();
    let names: Vec<&Value> = admins.iter().map(|u| &u["username"]).collect();
    assert_eq!(names, ["alice", "erin"], "{users}");
}

/// `n` threads start together and each runs `f(i)`; their results in order.
fn at_once<T: Send + 'static>(n: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let f = f.clone();
            thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect()
}

/// `n` servers on the database at `url`, started at the same moment.
fn servers_at_once(n: usize, url: &str) -> Vec<Arc<TestServer>> {
    let url = url.to_owned();
    at_once(n, move |_| {
        Arc::new(
            TestServer::options()
                .env("CONFAB_DATABASE_URL", &url)
                .start(),
        )
    })
}

#[test]
fn servers_starting_together_make_one_lobby_and_one_secret() {
    let pg = PgServer::start();
    let servers = servers_at_once(4, &pg.url());
    let (lobbies, topics): (i64, i64) = pg.with_client(async |client| {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM rooms), (SELECT count(*) FROM topics)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    });
    assert_eq!((lobbies, topics), (1, 1));
    // A token one server signs, every other accepts: they share the secret.
    let (token, _) = servers[0].register("alice", PASSWORD);
    for server in &servers {
        server
            .get("/api/me", Some(&token))
            .assert_status(200, "a token of another server");
        let rooms = server.get("/api/rooms", Some(&token)).json();
        assert_eq!(rooms["rooms"][0]["name"], "lobby", "{rooms}");
        assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(1), "{rooms}");
    }
    let secrets: i64 = pg.with_client(async |client| {
        client
            .query_one("SELECT count(*) FROM meta WHERE key = 'jwt_secret'", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(secrets, 1);
}

#[test]
fn first_registrations_at_once_make_one_admin() {
    let pg = PgServer::start();
    let servers = servers_at_once(2, &pg.url());
    let answers = at_once(8, move |i| {
        let server = &servers[i % 2];
        let response = server.post_json(
            "/api/register",
            None,
            &json!({"username": format!("user{i}"), "password": PASSWORD}),
        );
        response.assert_status(201, "register");
        response.json()["user"]["admin"] == true
    });
    assert_eq!(
        answers.iter().filter(|&&admin| admin).count(),
        1,
        "{answers:?}"
    );
    let admins: i64 = pg.with_client(async |client| {
        client
            .query_one("SELECT count(*) FROM users WHERE admin", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(admins, 1);
}

#[test]
fn concurrent_opens_make_one_conversation_per_pair() {
    const USERS: usize = 5;
    let pg = PgServer::start();
    let servers = servers_at_once(2, &pg.url());
    let tokens: Vec<String> = (0..USERS)
        .map(|i| servers[0].register(&format!("user{i}"), PASSWORD).0)
        .collect();
    let pairs: Vec<(usize, usize)> = (0..USERS)
        .flat_map(|a| (a + 1..USERS).map(move |b| (a, b)))
        .collect();
    // Each pair is opened from both ends at once, on different servers.
    let jobs: Vec<(usize, usize, usize)> = pairs
        .iter()
        .flat_map(|&(a, b)| [(a, b, 0), (b, a, 1)])
        .collect();
    let jobs = Arc::new(jobs);
    let tokens = Arc::new(tokens);
    let answers = {
        let jobs = jobs.clone();
        at_once(jobs.len(), move |i| {
            let (from, to, server) = jobs[i];
            let response = servers[server].post_json(
                "/api/conversations",
                Some(&tokens[from]),
                &json!({"username": format!("user{to}")}),
            );
            let id = response.json()["conversation"]["id"].as_u64();
            (response.status, id)
        })
    };
    for (index, &(a, b)) in pairs.iter().enumerate() {
        let (first, second) = (answers[2 * index], answers[2 * index + 1]);
        let mut statuses = [first.0, second.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "pair {a}-{b}: {first:?} {second:?}");
        assert!(first.1.is_some(), "pair {a}-{b}: {first:?}");
        assert_eq!(first.1, second.1, "pair {a}-{b}");
    }
    let (conversations, dm_topics, members): (i64, i64, i64) = pg.with_client(async |client| {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM conversations), \
                        (SELECT count(*) FROM topics WHERE kind = 'dm'), \
                        (SELECT count(*) FROM topic_members m \
                         JOIN topics t ON t.id = m.topic_id WHERE t.kind = 'dm')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    });
    let expected = pairs.len() as i64;
    assert_eq!(
        (conversations, dm_topics, members),
        (expected, expected, 2 * expected)
    );
}

/// What may be compared of a user across stores (not the creation time).
fn brief(user: &UserRecord) -> String {
    format!(
        "{} {} {:?} {:?} admin={} disabled={} v{} bot={}",
        user.id,
        user.username,
        user.display_name,
        user.email,
        user.admin,
        user.disabled,
        user.token_version,
        user.bot
    )
}

/// A result as compared across stores.
fn outcome<T>(result: Result<T, Error>, show: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(value) => show(value),
        Err(e) => format!("error {e:?}"),
    }
}

/// The operations no request reaches (or only through mail or a timer),
/// and the edges requests never hit, on one store; one line per answer.
async fn direct_operations(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let new_user = |name: &str, email: Option<&str>, admin: bool| NewUser {
        username: name.to_owned(),
        display_name: name.to_owned(),
        email: email.map(str::to_owned),
        password_hash: "x".to_owned(),
        admin,
    };
    for (name, email, admin) in [
        ("ann", Some("Ann@Example.org"), false),
        ("ben", Some("ann@example.ORG"), true),
        ("cy", None, false),
        ("ANN", None, false),
    ] {
        let created = store.create_user(new_user(name, email, admin)).await;
        out.push(outcome(created, |u| brief(&u)));
    }
    for email in ["ANN@EXAMPLE.ORG", "nobody@example.org", ""] {
        let found = store.user_by_email(email).await;
        out.push(outcome(found, |u| format!("{:?}", u.as_ref().map(brief))));
    }
    let found = store.user_by_username("Ben").await;
    out.push(outcome(found, |u| format!("{:?}", u.as_ref().map(brief))));
    let change = ProfileChange {
        display_name: Some(" Ann A. ".into()),
        email: None,
    };
    out.push(outcome(
        store.update_profile(1, change.clone()).await,
        |u| brief(&u),
    ));
    out.push(outcome(store.update_profile(99, change).await, |u| {
        brief(&u)
    }));
    for id in [1, 1, 99] {
        let changed = store.set_password_hash(id, "y".into()).await;
        out.push(outcome(changed, |u| brief(&u)));
    }
    for (id, disabled) in [(3, true), (3, true), (3, false), (99, true)] {
        out.push(outcome(store.set_disabled(id, disabled).await, |u| {
            brief(&u)
        }));
    }
    out.push(outcome(store.users().await, |all| {
        all.iter().map(brief).collect::<Vec<_>>().join("; ")
    }));

    // Revocations: revoking again replaces the expiry; purges count.
    for (jti, expires) in [("a", 100), ("b", 200), ("a", 300)] {
        out.push(outcome(store.revoke_token(jti, expires).await, |()| {
            "ok".into()
        }));
    }
    for now in [150, 250, 299, 300] {
        out.push(outcome(store.purge_expired_revocations(now).await, |n| {
            format!("purged {n}")
        }));
        for jti in ["a", "b", "c"] {
            let revoked = store.is_token_revoked(jti).await;
            out.push(outcome(revoked, |r| format!("{jti} revoked {r}")));
        }
    }

    // Unknown ids and names.
    out.push(outcome(store.topic(99).await, |t| format!("{t:?}")));
    out.push(outcome(store.last_seq(99).await, |s| s.to_string()));
    out.push(outcome(store.topic_counts(1, 99).await, |c| {
        format!("{c:?}")
    }));
    out.push(outcome(store.room("nowhere").await, |r| format!("{r:?}")));
    out.push(outcome(store.room_access("nowhere", 1).await, |r| {
        format!("{r:?}")
    }));
    out.push(outcome(store.conversation(99).await, |c| format!("{c:?}")));
    out.push(outcome(store.attachment(99).await, |a| format!("{a:?}")));

    // A room owned by nobody; members added and removed twice.
    let room = NewRoom {
        name: "ops".into(),
        private: true,
        description: "Operations".into(),
        owner: 0,
    };
    let created = store.create_room(room.clone()).await;
    let topic_id = created.as_ref().map_or(0, |r| r.topic_id);
    out.push(outcome(created, |r| {
        format!("{} {} {}", r.name, r.topic_id, r.owner)
    }));
    out.push(outcome(store.create_room(room).await, |r| r.name));
    for _ in 0..2 {
        out.push(outcome(store.add_member(topic_id, 2).await, |b| {
            b.to_string()
        }));
    }
    out.push(outcome(store.room_access("ops", 2).await, |r| {
        format!("{:?}", r.map(|(room, ok)| (room.name, ok)))
    }));
    out.push(outcome(store.room_access("ops", 1).await, |r| {
        format!("{:?}", r.map(|(room, ok)| (room.name, ok)))
    }));
    for _ in 0..2 {
        out.push(outcome(store.remove_member(topic_id, 2).await, |b| {
            b.to_string()
        }));
    }
    out.push(outcome(store.topic(topic_id).await, |t| {
        format!("{:?}", t.map(|t| t.name))
    }));
    out.push(outcome(store.rooms().await, |rooms| {
        let names: Vec<String> = rooms.into_iter().map(|r| r.name).collect();
        names.join(",")
    }));

    // The secret is made once and kept.
    let first = store.jwt_secret().await;
    let again = store.jwt_secret().await;
    out.push(outcome(first, |s| format!("secret of {} bytes", s.len())));
    out.push(format!(
        "same secret: {}",
        again.is_ok() && again.ok() == store.jwt_secret().await.ok()
    ));
    out.push(format!("ready: {}", store.ready().await));
    out
}

#[test]
fn operations_no_request_reaches_agree() {
    let pg = PgServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let data = temp_dir();
    let (expected, actual, version) = runtime.block_on(async {
        let mut cfg = Config {
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        let embedded = Store::open_configured(&cfg, None).await.expect("embedded");
        let expected = direct_operations(&embedded).await;
        embedded.close();
        cfg.database_url = pg.url();
        let postgres = Store::open_configured(&cfg, None).await.expect("postgres");
        let actual = direct_operations(&postgres).await;
        let version = postgres.schema_version().await;
        postgres.close();
        (expected, actual, version)
    });
    assert_eq!(expected.len(), actual.len());
    for (index, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(want, got, "answer {index} differs on PostgreSQL");
    }
    // The answers say what they should, not only the same thing.
    assert!(actual[0].contains("admin=true"), "{}", actual[0]);
    assert!(actual[2].contains("admin=false"), "{}", actual[2]);
    assert!(actual[3].starts_with("error Validation"), "{}", actual[3]);
    assert!(actual[4].contains("1 ann"), "{}", actual[4]);
    assert!(actual.iter().any(|a| a == "purged 1"), "{actual:?}");
    assert!(actual.contains(&"same secret: true".to_owned()));
    let latest = confab::store::postgres::migrations::latest();
    assert_eq!(version.ok(), u32::try_from(latest).ok());
}

/// A runtime for calling stores directly from a test.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `n` stores opened at once on the database at `url` (as `n` nodes
/// would), each with a pool and a data directory of its own (kept until
/// the returned directories drop).
async fn stores_at_once(n: usize, url: &str) -> (Vec<TempDir>, Vec<Store>) {
    let dirs: Vec<TempDir> = (0..n).map(|_| temp_dir()).collect();
    let configs: Vec<Config> = dirs
        .iter()
        .map(|dir| Config {
            data_dir: dir.path().to_path_buf(),
            database_url: url.to_owned(),
            database_pool_size: 16,
            ..Config::default()
        })
        .collect();
    let opens = configs.iter().map(|cfg| Store::open_configured(cfg, None));
    let stores = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .map(|opened| opened.expect("store opens"))
        .collect();
    (dirs, stores)
}

#[test]
fn stores_racing_make_one_admin_one_lobby_one_conversation_per_pair() {
    const USERS: u64 = 24;
    let pg = PgServer::start();
    let runtime = runtime();
    let (admins, lobbies, pairs, distinct, created) = runtime.block_on(async {
        // Opening at once: each store makes the lobby if it finds none.
        let (_dirs, stores) = stores_at_once(6, &pg.url()).await;
        let lobbies = stores[0].rooms().await.expect("rooms").len();
        // Accounts created at once across the stores, no hashing between:
        // the first ones race for the empty table.
        let creates = (0..USERS).map(|i| {
            stores[i as usize % stores.len()].create_user(NewUser {
                username: format!("user{i}"),
                display_name: format!("User {i}"),
                email: None,
                password_hash: "x".into(),
                admin: false,
            })
        });
        let users: Vec<UserRecord> = futures_util::future::join_all(creates)
            .await
            .into_iter()
            .map(|created| created.expect("account"))
            .collect();
        let admins = users.iter().filter(|u| u.admin).count();
        // Every pair opened from both ends at once, on different stores.
        let ids: Vec<u64> = users.iter().map(|u| u.id).take(8).collect();
        let mut opens = Vec::new();
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                opens.push((a, b, 0));
                opens.push((b, a, 1));
            }
        }
        let opened = futures_util::future::join_all(
            opens
                .iter()
                .map(|&(a, b, s)| stores[s].open_conversation(a, b)),
        )
        .await;
        let mut by_pair = std::collections::HashMap::new();
        let mut created = 0;
        for (&(a, b, _), result) in opens.iter().zip(opened) {
            let (conversation, new) = result.expect("conversation");
            assert_eq!(conversation.users, (a.min(b), a.max(b)));
            created += usize::from(new);
            by_pair
                .entry((a.min(b), a.max(b)))
                .or_insert_with(Vec::new)
                .push(conversation.id);
        }
        let pairs = by_pair.len();
        let distinct = by_pair
            .values()
            .filter(|ids| ids.iter().all(|&id| id == ids[0]))
            .count();
        for store in stores {
            store.close();
        }
        (admins, lobbies, pairs, distinct, created)
    });
    assert_eq!(admins, 1);
    assert_eq!(lobbies, 1);
    assert_eq!(pairs, 28);
    assert_eq!(distinct, 28, "a pair got two conversations");
    assert_eq!(created, 28, "conversations reported new");
    let (rooms, conversations): (i64, i64) = pg.with_client(async |client| {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM rooms), (SELECT count(*) FROM conversations)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    });
    assert_eq!((rooms, conversations), (1, 28));
}
