//! Bots and webhooks against the real binary, with real HTTP receivers on
//! loopback: bot keys over REST and the socket, rotation and revocation,
//! no password sign-in for bots, incoming webhooks with idempotency, and
//! outgoing webhooks (signature, reply, retries, a hanging receiver, a
//! crash with events queued, the default refusal of loopback targets).

mod common;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::phx::{blocking, PhxClient};
use common::receiver::{Action, Hit, Receiver};
use common::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const PASSWORD: &str = "correct horse battery";
/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(20);
/// The server's whole-request timeout of a webhook.
const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks `t=TS,v1=HEX` against HMAC-SHA256(secret, "TS.BODY").
fn signature_valid(header: &str, secret: &str, body: &str) -> bool {
    let mut ts = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => ts = Some(t),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(ts), Some(v1)) = (ts, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// Creates a bot as `admin`; returns `(key, signing_secret, bot view)`.
#[track_caller]
fn create_bot(server: &TestServer, admin: &str, body: Value) -> (String, String, Value) {
    let response = server.post_json("/api/bots", Some(admin), &body);
    response.assert_status(201, "create bot");
    let json = response.json();
    (
        json["key"].as_str().expect("key").to_string(),
        json["signing_secret"]
            .as_str()
            .expect("signing secret")
            .to_string(),
        json["bot"].clone(),
    )
}

fn webhook_env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("CONFAB_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
        ("CONFAB_WEBHOOK_RETRY_BASE_MS", "50"),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_keys_work_over_rest_and_socket_and_die_on_rotation_and_deletion() {
    let server = blocking(TestServer::start);
    let (admin, _) = blocking(|| server.register("root", PASSWORD));
    let (key, _, bot) = blocking(|| create_bot(&server, &admin, json!({"username": "robot"})));
    assert!(key.starts_with("cfb_"), "{key}");
    assert_eq!(bot["bot"], true);

    // No password sign-in, with a clear error.
    let refused = blocking(|| server.try_login("robot", "anything at all"));
    refused.assert_status(403, "bot login");
    assert!(refused.body.contains("API key"), "{}", refused.body);

    // The key authenticates REST; the bot shows as a bot.
    let message =
        blocking(|| server.post_message("lobby", &key, &json!({"body": "beep from REST"})));
    assert_eq!(message["user"]["bot"], true);
    let users = blocking(|| server.get("/api/users", Some(&admin))).json();
    let listed = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "robot")
        .cloned()
        .expect("robot listed");
    assert_eq!(listed["bot"], true);

    // ... and the socket, as a Phoenix client.
    let mut socket = PhxClient::joined(server.addr(), &key, "room:lobby").await;
    let (status, reply) = socket
        .push("room:lobby", "new_msg", json!({"body": "beep from socket"}))
        .await;
    assert_eq!(status, "ok", "{reply}");

    // Rotation: the old key is refused at once and its socket closes.
    let rotated = blocking(|| server.post_json("/api/bots/robot/key", Some(&admin), &json!({})));
    rotated.assert_status(200, "rotate");
    let new_key = rotated.json()["key"].as_str().expect("new key").to_string();
    assert_ne!(new_key, key);
    socket.closed(WAIT).await;
    blocking(|| server.get("/api/me", Some(&key))).assert_status(401, "old key");
    blocking(|| server.get("/api/me", Some(&new_key))).assert_status(200, "new key");
    assert!(PhxClient::connect(server.addr(), &key).await.is_err());

    // Deletion: the key is refused at once and its socket closes.
    let mut socket = PhxClient::joined(server.addr(), &new_key, "room:lobby").await;
    blocking(|| server.request("DELETE", "/api/bots/robot", Some(&admin), None, &[]))
        .assert_status(204, "delete bot");
    socket.closed(WAIT).await;
    blocking(|| server.get("/api/me", Some(&new_key))).assert_status(401, "deleted key");
    let bots = blocking(|| server.get("/api/bots", Some(&admin))).json();
    assert_eq!(bots["bots"], json!([]));
}

#[test]
fn incoming_webhooks_post_once_per_idempotency_key() {
    let server = TestServer::start_with(
        &[
            ("CONFAB_MAX_BODY_CHARS", "50"),
            ("CONFAB_PUSH_BURST", "8"),
            ("CONFAB_PUSH_REFILL_PER_SEC", "1"),
        ],
        None,
    );
    let (admin, _) = server.register("root", PASSWORD);
    let (bob, _) = server.register("bob", PASSWORD);
    create_bot(&server, &admin, json!({"username": "cibot"}));

    // Only the room's owner or an admin may make one.
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
    assert!(made.json()["url"].as_str().expect("url").ends_with(&path));
    let listed = server.get("/api/rooms/lobby/hooks", Some(&admin)).json();
    assert_eq!(listed["hooks"][0]["user"], "cibot");
    assert!(!listed.to_string().contains(&path[7..]), "secret listed");

    let send = |body: &str, headers: &[(&str, &str)]| {
        server.request("POST", &path, None, Some(body), headers)
    };
    let json_with_key = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "deploy-42"),
    ];
    let first = send(r#"{"text": "deployed v42"}"#, &json_with_key);
    first.assert_status(201, "incoming post");
    let again = send(r#"{"text": "deployed v42"}"#, &json_with_key);
    again.assert_status(200, "replayed post");
    assert_eq!(first.json()["message"]["id"], again.json()["message"]["id"]);
    assert_eq!(first.json()["message"]["user"]["username"], "cibot");
    assert_eq!(first.json()["message"]["user"]["bot"], true);
    let history = server.get("/api/rooms/lobby/messages", Some(&bob)).json();
    let count = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["body"] == "deployed v42")
        .count();
    assert_eq!(count, 1);

    send("plain text", &[("Content-Type", "text/plain")]).assert_status(201, "text/plain");
    send(
        r#"{"body": "body form"}"#,
        &[("Content-Type", "application/json")],
    )
    .assert_status(201, "body form");
    send(r#"{"text": "  "}"#, &[("Content-Type", "application/json")]).assert_status(422, "empty");
    send(
        &json!({"text": "x".repeat(51)}).to_string(),
        &[("Content-Type", "application/json")],
    )
    .assert_status(422, "too long");
    server
        .request("POST", "/hooks/nope", None, Some(r#"{"text":"x"}"#), &[])
        .assert_status(404, "unknown token");
    let limited = (0..20)
        .map(|i| {
            send(
                &json!({"text": format!("burst {i}")}).to_string(),
                &[("Content-Type", "application/json")],
            )
            .status
        })
        .any(|status| status == 429);
    assert!(limited, "no 429 within 20 quick posts");

    let id = listed["hooks"][0]["id"].as_u64().expect("hook id");
    server
        .request(
            "DELETE",
            &format!("/api/rooms/lobby/hooks/{id}"),
            Some(&admin),
            None,
            &[],
        )
        .assert_status(204, "revoke hook");
    send(
        r#"{"text": "after"}"#,
        &[("Content-Type", "application/json")],
    )
    .assert_status(404, "revoked hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_webhook_is_signed_retried_once_delivered_and_answered() {
    let receiver = Receiver::start(|n| {
        if n < 3 {
            Action::Answer(500, "{}".into())
        } else {
            Action::Answer(200, r#"{"body": "pong"}"#.into())
        }
    });
    let server = blocking(|| TestServer::start_with(&webhook_env(&[]), None));
    let (admin, _) = blocking(|| server.register("root", PASSWORD));
    let (_, secret, _) = blocking(|| {
        create_bot(
            &server,
            &admin,
            json!({"username": "echo", "webhook_url": receiver.url()}),
        )
    });
    let mut watcher = PhxClient::joined(server.addr(), &admin, "room:lobby").await;
    let posted = blocking(|| server.post_message("lobby", &admin, &json!({"body": "@echo ping"})));

    let hits: Vec<Hit> = (0..4)
        .map(|i| blocking(|| receiver.next(&format!("attempt {i}"))))
        .collect();
    let event = hits[3].json();
    for hit in &hits {
        assert_eq!(hit.json()["id"], event["id"], "one event, retried");
        assert_eq!(
            hit.header("x-confab-event-id"),
            Some(event["id"].to_string().as_str())
        );
    }
    let signature = hits[3].header("x-confab-signature").expect("signature");
    assert!(
        signature_valid(signature, &secret, &hits[3].body),
        "{signature}"
    );
    assert!(!signature_valid(signature, "whsec_other", &hits[3].body));
    assert_eq!(event["type"], "message");
    assert_eq!(event["room"], "lobby");
    assert_eq!(event["topic"], "room:lobby");
    assert_eq!(event["author"]["username"], "root");
    assert_eq!(event["message"]["id"], posted["id"]);
    assert_eq!(event["message"]["body"], "@echo ping");

    // The answer is posted as the bot in the same room.
    let deadline = tokio::time::Instant::now() + WAIT;
    let reply = loop {
        let frame = watcher.expect_frame(deadline, "the bot's reply").await;
        if frame.is_new_msg_on("room:lobby") && frame.payload["body"] == "pong" {
            break frame.payload;
        }
    };
    assert_eq!(reply["user"]["username"], "echo");
    assert_eq!(reply["user"]["bot"], true);

    // Delivered once: nothing more arrives, and the log shows the attempts.
    assert!(receiver.hits.recv_timeout(Duration::from_secs(1)).is_err());
    let log = blocking(|| server.get("/api/bots/echo/deliveries", Some(&admin))).json();
    let outcomes: Vec<&str> = log["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, ["delivered", "retrying", "retrying", "retrying"]);
    assert_eq!(log["deliveries"][1]["status"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_slow_delivery_to_people() {
    let receiver = Receiver::start(|_| Action::Hang);
    let server = blocking(|| {
        TestServer::start_with(&webhook_env(&[("CONFAB_WEBHOOK_MAX_IN_FLIGHT", "1")]), None)
    });
    let (admin, _) = blocking(|| server.register("root", PASSWORD));
    let (bob, _) = blocking(|| server.register("bob", PASSWORD));
    blocking(|| {
        create_bot(
            &server,
            &admin,
            json!({"username": "sloth", "webhook_url": receiver.url()}),
        )
    });
    let mut bob_socket = PhxClient::joined(server.addr(), &bob, "room:lobby").await;
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let body = format!("@sloth hello {i}");
        let started = Instant::now();
        blocking(|| server.post_message("lobby", &admin, &json!({ "body": body })));
        let deadline = tokio::time::Instant::from_std(started + WAIT);
        loop {
            let frame = bob_socket.expect_frame(deadline, "bob's copy").await;
            if frame.is_new_msg_on("room:lobby") && frame.payload["body"] == body.as_str() {
                break;
            }
        }
        worst = worst.max(started.elapsed());
        if i == 0 {
            // The receiver is now holding the first event open.
            blocking(|| receiver.next("the hanging attempt"));
        }
    }
    assert!(
        worst < HOOK_TIMEOUT / 4,
        "a message took {worst:?} to reach a person while the hook hangs (hook timeout {HOOK_TIMEOUT:?})"
    );
}

#[test]
fn undelivered_events_are_delivered_after_a_kill() {
    // A port with nothing listening yet: every attempt fails.
    let parked = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = parked.local_addr().expect("addr");
    drop(parked);
    let mut server = TestServer::start_with(&webhook_env(&[]), None);
    let (admin, _) = server.register("root", PASSWORD);
    create_bot(
        &server,
        &admin,
        json!({"username": "later", "webhook_url": format!("http://{addr}/hook")}),
    );
    let posted = server.post_message("lobby", &admin, &json!({"body": "@later survive this"}));
    server.kill();

    let receiver = Receiver::on(
        TcpListener::bind(addr).expect("rebind the receiver's port"),
        |_| Action::Answer(204, String::new()),
    );
    server.restart();
    let hit = receiver.next("the event queued before the kill");
    assert_eq!(hit.json()["message"]["id"], posted["id"]);
    assert_eq!(hit.json()["message"]["body"], "@later survive this");
}

#[test]
fn loopback_targets_are_refused_by_default() {
    let receiver = Receiver::start(|_| Action::Answer(200, "{}".into()));
    let server = TestServer::start();
    let (admin, _) = server.register("root", PASSWORD);
    create_bot(
        &server,
        &admin,
        json!({"username": "probe", "webhook_url": receiver.url()}),
    );
    server
        .post_json(
            "/api/bots",
            Some(&admin),
            &json!({"username": "bad", "webhook_url": "ftp://x/"}),
        )
        .assert_status(422, "ftp URL");
    server.post_message("lobby", &admin, &json!({"body": "@probe hi"}));
    let deadline = Instant::now() + WAIT;
    let attempt = loop {
        let log = server
            .get("/api/bots/probe/deliveries", Some(&admin))
            .json();
        if let Some(first) = log["deliveries"].get(0) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no delivery attempt logged");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(attempt["outcome"], "gave_up", "{attempt}");
    assert!(
        attempt["error"].as_str().unwrap_or("").contains("loopback"),
        "{attempt}"
    );
    assert!(
        receiver.hits.try_recv().is_err(),
        "the receiver was reached"
    );
}
