//! Bots and webhooks against the real binary, with real HTTP receivers on
//! loopback: bot keys over REST and the socket, rotation and revocation,
//! no password sign-in for bots, a bot's own rate limit (REST and socket,
//! changed at runtime, kept across a restart), incoming webhooks with
//! idempotency, and outgoing webhooks (signature, reply, retries, a hanging
//! receiver, a crash with events queued, the delivery log kept across a
//! restart, the default refusal of loopback targets).

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
    // At least one failed attempt is in the log before the kill.
    wait_for_log(&server, &admin, "later", |log| !log.is_empty());
    server.kill();

    let receiver = Receiver::on(
        TcpListener::bind(addr).expect("rebind the receiver's port"),
        |_| Action::Answer(204, String::new()),
    );
    server.restart();
    let hit = receiver.next("the event queued before the kill");
    assert_eq!(hit.json()["message"]["id"], posted["id"]);
    assert_eq!(hit.json()["message"]["body"], "@later survive this");

    // The log kept the attempts before the kill, and the resumed event
    // counted on from them: 1, 2, ..., n, the last one delivered.
    let log = wait_for_log(&server, &admin, "later", |log| {
        log.first().is_some_and(|a| a["outcome"] == "delivered")
    });
    let mut numbers: Vec<u64> = log
        .iter()
        .filter(|a| a["event_id"] == hit.json()["id"])
        .map(|a| a["attempt"].as_u64().expect("attempt number"))
        .collect();
    numbers.reverse();
    assert!(numbers.len() >= 2, "{log:?}");
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
}

/// A bot's delivery log once `done` holds for it (newest first).
#[track_caller]
fn wait_for_log(
    server: &TestServer,
    admin: &str,
    bot: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = server.get(&format!("/api/bots/{bot}/deliveries"), Some(admin));
        response.assert_status(200, "delivery log");
        let log = response.json()["deliveries"]
            .as_array()
            .expect("deliveries")
            .clone();
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery log never got there: {log:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_delivery_log_shows_status_and_latency_and_survives_a_restart() {
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Action::Answer(503, "{}".into())
        } else {
            Action::Answer(200, "{}".into())
        }
    });
    let mut server = TestServer::start_with(&webhook_env(&[]), None);
    let (admin, _) = server.register("root", PASSWORD);
    let (bob, _) = server.register("bob", PASSWORD);
    create_bot(
        &server,
        &admin,
        json!({"username": "logger", "webhook_url": receiver.url()}),
    );
    assert_eq!(
        server
            .get("/api/bots/logger/deliveries", Some(&admin))
            .json(),
        json!({"deliveries": []})
    );
    server.post_message("lobby", &admin, &json!({"body": "@logger one"}));
    let event = receiver.next("the first attempt").json()["id"].clone();
    receiver.next("the retry");

    let log = wait_for_log(&server, &admin, "logger", |log| log.len() == 2);
    let (newest, oldest) = (&log[0], &log[1]);
    for attempt in [newest, oldest] {
        assert_eq!(attempt["event_id"], event, "{attempt}");
        assert!(attempt["latency_ms"].is_u64(), "{attempt}");
        assert!(
            attempt["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{attempt}"
        );
    }
    assert_eq!(oldest["attempt"], 1);
    assert_eq!(oldest["status"], 503);
    assert_eq!(oldest["outcome"], "retrying");
    assert_eq!(oldest["error"], "answered 503");
    assert_eq!(newest["attempt"], 2);
    assert_eq!(newest["status"], 200);
    assert_eq!(newest["outcome"], "delivered");
    assert!(newest["error"].is_null());

    // Admins only, and only for bots.
    server
        .get("/api/bots/logger/deliveries", Some(&bob))
        .assert_status(403, "a person's view of the log");
    server
        .get("/api/bots/bob/deliveries", Some(&admin))
        .assert_status(404, "the log of a person");

    server.restart();
    let after = server
        .get("/api/bots/logger/deliveries", Some(&admin))
        .json();
    assert_eq!(after["deliveries"], Value::Array(log));

    // Deleting the bot drops its log.
    server
        .request("DELETE", "/api/bots/logger", Some(&admin), None, &[])
        .assert_status(204, "delete bot");
    let gone = server.get("/api/bots/logger/deliveries", Some(&admin));
    gone.assert_status(200, "the log of a deleted bot");
    assert_eq!(gone.json(), json!({"deliveries": []}));
}

/// Bot posts over REST until the first 429; returns how many were accepted
/// (at most `most`, else the test fails).
#[track_caller]
fn rest_posts_until_refused(server: &TestServer, key: &str, most: usize) -> usize {
    for i in 0..=most {
        let response = server.post_json(
            "/api/rooms/lobby/messages",
            Some(key),
            &json!({ "body": format!("rest {i}") }),
        );
        match response.status {
            201 => continue,
            429 => {
                assert!(response.header("retry-after").is_some(), "no Retry-After");
                assert_eq!(response.json()["error"], "rate_limited");
                return i;
            }
            other => panic!("bot post: HTTP {other}: {}", response.body),
        }
    }
    panic!("more than {most} bot posts accepted without a 429");
}

/// Socket pushes of `new_msg` until the first refusal; returns how many
/// were accepted (at most `most`, else the test fails).
async fn socket_posts_until_refused(socket: &mut PhxClient, most: usize) -> usize {
    for i in 0..=most {
        let (status, reply) = socket
            .push(
                "room:lobby",
                "new_msg",
                json!({ "body": format!("socket {i}") }),
            )
            .await;
        if status != "ok" {
            assert_eq!(reply["reason"], "rate_limited", "{reply}");
            return i;
        }
    }
    panic!("more than {most} socket pushes accepted without a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bots_own_rate_limit_holds_over_rest_and_socket_and_changes_at_runtime() {
    // People (and bots without a limit of their own): bursts of 6, 1 a second.
    let mut server = blocking(|| {
        TestServer::start_with(
            &[
                ("CONFAB_PUSH_BURST", "6"),
                ("CONFAB_PUSH_REFILL_PER_SEC", "1"),
            ],
            None,
        )
    });
    let (admin, _) = blocking(|| server.register("root", PASSWORD));
    let (bob, _) = blocking(|| server.register("bob", PASSWORD));
    let (key, _, bot) = blocking(|| create_bot(&server, &admin, json!({"username": "chatty"})));
    assert_eq!(bot["rate_limit"], Value::Null);
    let listed = blocking(|| server.get("/api/bots", Some(&admin))).json();
    assert_eq!(
        listed["default_rate_limit"],
        json!({"burst": 6, "refill_per_sec": 1})
    );

    // The default: a burst of 6 (a refill of 1 a second may add one or two
    // while the posts are made), far from a burst of 30.
    let accepted = blocking(|| rest_posts_until_refused(&server, &key, 12));
    assert!((6..9).contains(&accepted), "{accepted} accepted");

    let patch = |server: &TestServer, body: Value| {
        blocking(|| server.send_json("PATCH", "/api/bots/chatty", Some(&admin), &body))
    };
    // Only admins, only bots, only sound limits.
    blocking(|| {
        server.send_json(
            "PATCH",
            "/api/bots/chatty",
            Some(&bob),
            &json!({"rate_limit": null}),
        )
    })
    .assert_status(403, "a person changes a bot's limit");
    blocking(|| {
        server.send_json(
            "PATCH",
            "/api/bots/bob",
            Some(&admin),
            &json!({"rate_limit": null}),
        )
    })
    .assert_status(404, "the limit of a person");
    for bad in [
        json!({"rate_limit": {"burst": 0, "refill_per_sec": 1}}),
        json!({"rate_limit": {"burst": 5}}),
        json!({"rate_limit": {"burst": 5, "refill_per_sec": -1}}),
        json!({"rate_limit": {"burst": 5, "refill_per_sec": 4294967296u64}}),
        json!({"rate_limit": 5}),
    ] {
        let refused = patch(&server, bad.clone());
        refused.assert_status(422, &bad.to_string());
        assert!(
            refused.json()["errors"]["rate_limit"].is_array(),
            "{}",
            refused.body
        );
    }

    // Raised above the default: 30 at once, over the socket too (where a
    // person's socket would stop at 6).
    let changed = patch(
        &server,
        json!({"rate_limit": {"burst": 30, "refill_per_sec": 1}}),
    );
    changed.assert_status(200, "raise the limit");
    assert_eq!(
        changed.json()["bot"]["rate_limit"],
        json!({"burst": 30, "refill_per_sec": 1})
    );
    let mut socket = PhxClient::joined(server.addr(), &key, "room:lobby").await;
    let accepted = socket_posts_until_refused(&mut socket, 40).await;
    assert!((30..33).contains(&accepted), "{accepted} accepted");
    // REST draws on the same, now empty, bucket.
    let refused = blocking(|| {
        server.post_json(
            "/api/rooms/lobby/messages",
            Some(&key),
            &json!({"body": "over the limit"}),
        )
    });
    refused.assert_status(429, "REST after the socket used the bucket");
    // People are not limited by the bot's bucket.
    blocking(|| server.post_message("lobby", &admin, &json!({"body": "a person"})));

    // Lowered below the default; the listing shows it.
    patch(
        &server,
        json!({"rate_limit": {"burst": 2, "refill_per_sec": 1}}),
    )
    .assert_status(200, "lower the limit");
    let listed = blocking(|| server.get("/api/bots", Some(&admin))).json();
    assert_eq!(
        listed["bots"][0]["rate_limit"],
        json!({"burst": 2, "refill_per_sec": 1})
    );
    let accepted = blocking(|| rest_posts_until_refused(&server, &key, 6));
    assert!((2..4).contains(&accepted), "{accepted} accepted");

    // Kept in the store: after a restart the bot still has its own limit.
    drop(socket);
    blocking(|| server.restart());
    let listed = blocking(|| server.get("/api/bots", Some(&admin))).json();
    assert_eq!(
        listed["bots"][0]["rate_limit"],
        json!({"burst": 2, "refill_per_sec": 1})
    );
    let mut socket = PhxClient::joined(server.addr(), &key, "room:lobby").await;
    let accepted = socket_posts_until_refused(&mut socket, 6).await;
    assert!((2..4).contains(&accepted), "{accepted} accepted");

    // Back to the default of people.
    let reset = patch(&server, json!({"rate_limit": null}));
    reset.assert_status(200, "reset the limit");
    assert_eq!(reset.json()["bot"]["rate_limit"], Value::Null);
    let accepted = blocking(|| rest_posts_until_refused(&server, &key, 12));
    assert!((6..9).contains(&accepted), "{accepted} accepted");
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
