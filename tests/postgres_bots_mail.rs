//! Bots, webhooks and mail on a server whose store is PostgreSQL (a private
//! server per test), against the real binary, with real receivers on
//! loopback and the rows looked at in the database: bot keys (kept only as
//! hashes) created, rotated and revoked; incoming webhooks posting once per
//! `Idempotency-Key`; an outgoing webhook event written with its message,
//! surviving a kill and delivered once a receiver listens; a reset mail
//! queued while the mail server is down, sent once it is up, and its link
//! working once, even when used twice at the same moment.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::postgres::PgServer;
use common::receiver::{Action, Receiver};
use common::smtp::{self, Mail, SmtpSink};
use common::{wait_for, TestServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery";
/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(20);
const PUBLIC_URL: &str = "https://chat.example.test";

/// A server on `pg`'s database with `extra` settings.
fn server_on(pg: &PgServer, extra: &[(&str, &str)]) -> TestServer {
    TestServer::options()
        .env("CONFAB_DATABASE_URL", &pg.url())
        .envs(extra)
        .start()
}

/// The rows `sql` returns, each as its text columns.
fn rows(pg: &PgServer, sql: &str) -> Vec<Vec<Option<String>>> {
    pg.with_client(async |client| {
        let rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    })
}

/// The one value `sql` returns.
fn value(pg: &PgServer, sql: &str) -> String {
    let found = rows(pg, sql);
    assert_eq!(found.len(), 1, "{sql}: {found:?}");
    found[0][0].clone().unwrap_or_default()
}

/// `\x` + lowercase hex of SHA-256(`text`), as PostgreSQL prints a bytea.
fn sha256_bytea(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\\x{hex}")
}

/// Creates a bot as `admin`; returns `(key, bot view)`.
#[track_caller]
fn create_bot(server: &TestServer, admin: &str, body: Value) -> (String, Value) {
    let response = server.post_json("/api/bots", Some(admin), &body);
    response.assert_status(201, "create bot");
    let json = response.json();
    (
        json["key"].as_str().expect("key").to_string(),
        json["bot"].clone(),
    )
}

#[test]
fn bot_keys_are_kept_as_hashes_and_die_on_rotation_and_deletion() {
    let pg = PgServer::start();
    let server = server_on(&pg, &[]);
    let (admin, _) = server.register("root", PASSWORD);
    let (key, bot) = create_bot(&server, &admin, json!({"username": "robot"}));
    assert_eq!(bot["bot"], true);
    let bot_id = bot["id"].as_u64().expect("bot id");

    // Only the key's hash is in the database; the user is flagged a bot.
    assert_eq!(
        value(
            &pg,
            &format!("SELECT key_hash FROM bots WHERE user_id = {bot_id}")
        ),
        sha256_bytea(&key)
    );
    assert_eq!(
        rows(
            &pg,
            &format!("SELECT bot, password_hash, token_version FROM users WHERE id = {bot_id}")
        ),
        vec![vec![
            Some("t".into()),
            Some(String::new()),
            Some("0".into())
        ]]
    );
    server
        .try_login("robot", "anything at all")
        .assert_status(403, "bot login");
    server
        .post_json("/api/bots", Some(&admin), &json!({"username": "ROBOT"}))
        .assert_error(422, "validation_failed", "a taken name, whatever its case");

    // The key authenticates; the bot posts as a bot.
    let me = server.get("/api/me", Some(&key));
    me.assert_status(200, "bot key");
    assert_eq!(me.json()["user"]["username"], "robot");
    let message = server.post_message("lobby", &key, &json!({"body": "beep"}));
    assert_eq!(message["user"]["bot"], true);
    let listed = server.get("/api/bots", Some(&admin)).json();
    assert_eq!(listed["bots"][0]["username"], "robot", "{listed}");

    // Rotation: the old key is refused at once, the token version moved.
    let rotated = server.post_json("/api/bots/robot/key", Some(&admin), &json!({}));
    rotated.assert_status(200, "rotate");
    let new_key = rotated.json()["key"].as_str().expect("new key").to_string();
    assert_ne!(new_key, key);
    server
        .get("/api/me", Some(&key))
        .assert_status(401, "old key");
    server
        .get("/api/me", Some(&new_key))
        .assert_status(200, "new key");
    assert_eq!(
        value(
            &pg,
            &format!("SELECT key_hash FROM bots WHERE user_id = {bot_id}")
        ),
        sha256_bytea(&new_key)
    );
    assert_eq!(
        value(
            &pg,
            &format!("SELECT token_version FROM users WHERE id = {bot_id}")
        ),
        "1"
    );

    // Deletion: the key dies, the user stays (disabled) for its messages.
    server
        .request("DELETE", "/api/bots/robot", Some(&admin), None, &[])
        .assert_status(204, "delete bot");
    server
        .get("/api/me", Some(&new_key))
        .assert_status(401, "deleted key");
    assert_eq!(
        server.get("/api/bots", Some(&admin)).json()["bots"],
        json!([])
    );
    assert_eq!(value(&pg, "SELECT count(*) FROM bots"), "0");
    assert_eq!(
        rows(
            &pg,
            &format!("SELECT disabled, token_version FROM users WHERE id = {bot_id}")
        ),
        vec![vec![Some("t".into()), Some("2".into())]]
    );
    server
        .request("DELETE", "/api/bots/robot", Some(&admin), None, &[])
        .assert_status(404, "a deleted bot");
    server
        .post_json("/api/bots/robot/key", Some(&admin), &json!({}))
        .assert_status(404, "rotating a deleted bot");
    let history = server.get("/api/rooms/lobby/messages", Some(&admin)).json();
    assert_eq!(history["messages"][0]["user"]["username"], "robot");
}

#[test]
fn incoming_webhooks_post_once_per_idempotency_key() {
    let pg = PgServer::start();
    let server = server_on(&pg, &[]);
    let (admin, _) = server.register("root", PASSWORD);
    let (bob, _) = server.register("bob", PASSWORD);
    create_bot(&server, &admin, json!({"username": "cibot"}));
    server
        .post_json("/api/rooms/lobby/hooks", Some(&bob), &json!({}))
        .assert_status(403, "hook by non-owner");
    let made = server.post_json(
        "/api/rooms/lobby/hooks",
        Some(&admin),
        &json!({"as_bot": "cibot"}),
    );
    made.assert_status(201, "create hook");
    let path = made.json()["path"].as_str().expect("path").to_string();
    let token = path.rsplit('/').next().expect("token in the path");
    assert_eq!(
        value(&pg, "SELECT token_hash FROM hooks"),
        sha256_bytea(token),
        "only the token's hash is kept"
    );

    let keyed = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "deploy-42"),
    ];
    let send = |body: &str, headers: &[(&str, &str)]| {
        server.request("POST", &path, None, Some(body), headers)
    };
    let first = send(r#"{"text": "deployed v42"}"#, &keyed);
    first.assert_status(201, "incoming post");
    let again = send(r#"{"text": "deployed v42"}"#, &keyed);
    again.assert_status(200, "replayed post");
    assert_eq!(first.json()["message"]["id"], again.json()["message"]["id"]);
    assert_eq!(first.json()["message"]["user"]["username"], "cibot");
    send("plain text", &[("Content-Type", "text/plain")]).assert_status(201, "text/plain");
    let history = server.get("/api/rooms/lobby/messages", Some(&bob)).json();
    let bodies: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["deployed v42", "plain text"]);

    let listed = server.get("/api/rooms/lobby/hooks", Some(&admin)).json();
    assert_eq!(listed["hooks"][0]["user"], "cibot", "{listed}");
    let id = listed["hooks"][0]["id"].as_u64().expect("hook id");
    let delete = format!("/api/rooms/lobby/hooks/{id}");
    server
        .request("DELETE", &delete, Some(&admin), None, &[])
        .assert_status(204, "revoke hook");
    server
        .request("DELETE", &delete, Some(&admin), None, &[])
        .assert_status(404, "revoked twice");
    send(r#"{"text": "after"}"#, &keyed).assert_status(404, "revoked hook");
    assert_eq!(value(&pg, "SELECT count(*) FROM hooks"), "0");
}

#[test]
fn outgoing_events_are_written_with_their_message_and_survive_a_kill() {
    // A port with nothing listening yet: every attempt fails.
    let parked = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = parked.local_addr().expect("addr");
    drop(parked);
    let pg = PgServer::start();
    let mut server = server_on(
        &pg,
        &[
            ("CONFAB_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
            ("CONFAB_WEBHOOK_RETRY_BASE_MS", "50"),
        ],
    );
    let (admin, _) = server.register("root", PASSWORD);
    let (_, bot) = create_bot(
        &server,
        &admin,
        json!({"username": "later", "webhook_url": format!("http://{addr}/hook")}),
    );
    let posted = server.post_message("lobby", &admin, &json!({"body": "@later survive this"}));

    // The event is in the database as soon as the post is acknowledged.
    let queued = rows(&pg, "SELECT event_id, bot_id, topic, body FROM deliveries");
    assert_eq!(queued.len(), 1, "{queued:?}");
    let event_id = queued[0][0].clone().expect("event id");
    assert_eq!(queued[0][1], Some(bot["id"].to_string()));
    assert_eq!(queued[0][2].as_deref(), Some("room:lobby"));
    let body: Value = serde_json::from_str(queued[0][3].as_deref().expect("body")).expect("JSON");
    assert_eq!(body["message"]["id"], posted["id"]);
    assert_eq!(body["id"].to_string(), event_id);
    server.kill();

    let receiver = Receiver::on(
        TcpListener::bind(addr).expect("rebind the receiver's port"),
        |_| Action::Answer(200, r#"{"body": "pong"}"#.into()),
    );
    server.restart();
    let hit = receiver.next("the event queued before the kill");
    assert_eq!(hit.json()["id"].to_string(), event_id);
    assert_eq!(hit.header("x-confab-event-id"), Some(event_id.as_str()));
    assert_eq!(hit.json()["message"]["body"], "@later survive this");
    wait_for(WAIT, "the delivered event to leave the queue", || {
        (value(&pg, "SELECT count(*) FROM deliveries") == "0").then_some(())
    });
    // The answer is posted as the bot; no event goes out twice.
    let reply = wait_for(WAIT, "the bot's reply", || {
        let history = server.get("/api/rooms/lobby/messages", Some(&admin)).json();
        history["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["body"] == "pong").cloned())
    });
    assert_eq!(reply["user"]["username"], "later");
    assert!(receiver.hits.recv_timeout(Duration::from_secs(1)).is_err());
}

/// The token of the reset link in `mail`.
#[track_caller]
fn link_token(mail: &Mail) -> String {
    let link = mail
        .link()
        .unwrap_or_else(|| panic!("no link in {mail:#?}"));
    let prefix = format!("{PUBLIC_URL}/reset#token=");
    link.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("link {link:?} is not {prefix}…"))
        .to_string()
}

#[test]
fn a_reset_mail_waits_for_the_mail_server_and_its_link_works_once() {
    let port = smtp::reserve_port();
    let pg = PgServer::start();
    let smtp_url = smtp::url_for(port);
    let server = server_on(
        &pg,
        &[
            ("CONFAB_SMTP_URL", &smtp_url),
            ("CONFAB_MAIL_FROM", "Confab <chat@example.test>"),
            ("CONFAB_PUBLIC_URL", PUBLIC_URL),
        ],
    );
    let registered = server.post_json(
        "/api/register",
        None,
        &json!({"username": "alice", "password": "first-password", "email": "alice@example.test"}),
    );
    registered.assert_status(201, "register");
    let old_token = registered.json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let alice_id = registered.json()["user"]["id"].as_u64().expect("id");

    let forgot = server.post_json(
        "/api/password/forgot",
        None,
        &json!({"username_or_email": "ALICE@example.test"}),
    );
    forgot.assert_status(202, "forgot");
    // The request is answered before the link is made (the same time for
    // any name); then both are in the database with the mail server down.
    let queued = wait_for(WAIT, "the reset mail in the queue", || {
        let found = rows(&pg, "SELECT recipient FROM mail_queue");
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(queued, vec![vec![Some("alice@example.test".into())]]);
    assert_eq!(
        rows(&pg, "SELECT user_id, purpose FROM password_links"),
        vec![vec![Some(alice_id.to_string()), Some("reset".into())]]
    );

    let sink = SmtpSink::start_on(port);
    let mails = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(mails[0].to, vec!["alice@example.test"]);
    let token = link_token(&mails[0]);
    assert_eq!(
        value(&pg, "SELECT hash FROM password_links"),
        sha256_bytea(&token),
        "only the link's hash is kept"
    );
    wait_for(WAIT, "the sent mail to leave the queue", || {
        (value(&pg, "SELECT count(*) FROM mail_queue") == "0").then_some(())
    });

    // The same link used twice at the same moment: one wins.
    let start = Arc::new(Barrier::new(2));
    let attempts: Vec<_> = ["winner-password-1", "winner-password-2"]
        .into_iter()
        .map(|password| {
            let (start, addr, token) = (start.clone(), server.addr(), token.clone());
            thread::spawn(move || {
                let body = json!({"token": token, "password": password}).to_string();
                start.wait();
                let response = common::request(
                    addr,
                    "POST",
                    "/api/password/reset",
                    None,
                    Some(body.as_bytes()),
                    &[("Content-Type", "application/json")],
                );
                (password, response)
            })
        })
        .collect();
    let results: Vec<_> = attempts
        .into_iter()
        .map(|t| t.join().expect("reset thread"))
        .collect();
    let winners: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.status == 200)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one reset wins: {results:?}");
    for (_, response) in results.iter().filter(|(_, r)| r.status != 200) {
        response.assert_error(422, "invalid_token", "the losing reset");
    }
    server.login("alice", winners[0]);
    server
        .try_login("alice", "first-password")
        .assert_status(401, "old password");
    server
        .get("/api/me", Some(&old_token))
        .assert_status(401, "tokens from before the reset");
    server
        .post_json(
            "/api/password/reset",
            None,
            &json!({"token": token, "password": "yet-another-one"}),
        )
        .assert_error(422, "invalid_token", "a used link");
    assert_eq!(value(&pg, "SELECT count(*) FROM password_links"), "0");
}
