//! The realtime contract of api.md §3–4 over real WebSockets against the
//! real binary: one gapless order for concurrent publishers, recovery with
//! `last_seq` under load, limits and bad input, slow consumers, and sockets
//! closed when their credentials are revoked. Each test runs its own server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::phx::{blocking, socket_url, ConnectError, End, Frame, PhxClient};
use common::{proc_status_kib, TestServer};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const LOBBY: &str = "room:lobby";
const PASSWORD: &str = "socket-password";
/// The push rate limit is not what most tests exercise.
const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("CONFAB_PUSH_BURST", "1000000"),
    ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
];
/// How long a server may take to close a socket it should close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

async fn connect(server: &TestServer, token: &str) -> PhxClient {
    PhxClient::connect(server.addr(), token)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn lobby_client(server: &TestServer, token: &str) -> PhxClient {
    PhxClient::joined(server.addr(), token, LOBBY).await
}

/// Asserts a socket with `token` is refused with 403 before the upgrade.
async fn assert_refused(server: &TestServer, token: &str, what: &str) {
    let refused = PhxClient::connect(server.addr(), token).await;
    assert_eq!(
        refused.as_ref().err().and_then(ConnectError::status),
        Some(403),
        "{what}"
    );
}

/// Waits for the server to close `client` and asserts it was not a normal
/// closure (1000).
async fn assert_closed_abnormally(client: &mut PhxClient, what: &str) {
    let code = client.closed(CLOSE_TIMEOUT).await;
    eprintln!("close code after {what}: {code:?}");
    assert!(
        code.is_some_and(|c| c != 1000),
        "{what}: close code {code:?} (end {:?})",
        client.end()
    );
}

/// Pushes one message and asserts an ok reply; returns it.
async fn push_ok(client: &mut PhxClient, topic: &str, body: &str) -> Value {
    let (status, response) = client.push(topic, "new_msg", json!({"body": body})).await;
    assert_eq!(status, "ok", "push {body:?} on {topic}: {response}");
    assert!(response["seq"].is_u64(), "{response}");
    response
}

/// Reads frames until `count` `new_msg` broadcasts on the lobby arrived
/// (before `deadline`); returns their payloads in arrival order.
async fn collect_new_msgs(client: &mut PhxClient, count: usize, deadline: Instant) -> Vec<Value> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let what = format!("waiting for new_msg {} of {count}", seen.len() + 1);
        let frame = client.expect_frame(deadline, &what).await;
        if frame.event == "new_msg" {
            assert!(frame.is_new_msg_on(LOBBY), "stray new_msg frame {frame:?}");
            seen.push(frame.payload);
        }
    }
    seen
}

/// Whether `frame` is a lobby `presence_diff` in which `key` leaves.
fn is_lobby_leave_of(frame: &Frame, key: &str) -> bool {
    frame.event == "presence_diff"
        && frame.topic == LOBBY
        && frame.payload["leaves"].get(key).is_some()
}

/// Reads `client` (buffered frames first) until presence key `key` leaves
/// the lobby, or panics at `deadline`.
async fn wait_presence_leave(client: &mut PhxClient, key: &str, deadline: Instant, what: &str) {
    loop {
        let frame = client.expect_frame(deadline, what).await;
        if is_lobby_leave_of(&frame, key) {
            return;
        }
    }
}

/// Accepts `seq` only as the successor of `last_seen` (exactly once, in order).
#[track_caller]
fn check(seq: u64, last_seen: &mut u64, how: &str) {
    assert_eq!(
        seq,
        *last_seen + 1,
        "{how}: got seq {seq} after {last_seen} (duplicate, gap or disorder)"
    );
    *last_seen = seq;
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {m}")))
        .collect()
}

// ---------------------------------------------------------------------------
// Ordering and recovery
// ---------------------------------------------------------------------------

/// 8 sockets push 100 messages each at once while 3 sockets only listen:
/// every listener sees the same gapless 1..=800 once each, in order, and
/// every ack's (id, seq) is the broadcast with that id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_give_every_subscriber_one_gapless_order() {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 100;
    const TOTAL: usize = PUBLISHERS * EACH;
    let server = blocking(|| TestServer::start_with(&NO_RATE_LIMIT, None));
    let users = ["alice", "bobby"];
    let tokens: Vec<String> = users
        .iter()
        .map(|u| blocking(|| server.register(u, PASSWORD)).0)
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut listening = Vec::new();
    for i in 0..3 {
        let mut client = connect(&server, &tokens[i % 2]).await;
        let joined = client.join_ok(LOBBY, json!({})).await;
        assert_eq!(joined["last_seq"], 0, "{joined}");
        listening.push(tokio::spawn(async move {
            collect_new_msgs(&mut client, TOTAL, deadline).await
        }));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(PUBLISHERS));
    let mut publishing = Vec::new();
    for k in 0..PUBLISHERS {
        let mut client = lobby_client(&server, &tokens[k % 2]).await;
        let barrier = barrier.clone();
        publishing.push(tokio::spawn(async move {
            let bodies: Vec<String> = (0..EACH).map(|i| format!("p{k}-m{i}")).collect();
            let payloads = bodies.iter().map(|b| json!({"body": b})).collect();
            barrier.wait().await;
            let replies = client
                .push_pipelined(LOBBY, "new_msg", payloads, 10, |_, _, _| {})
                .await;
            let acks: Vec<(String, Value)> = replies
                .into_iter()
                .zip(bodies)
                .map(|(reply, body)| {
                    let (status, response) = reply.expect("a reply to every push");
                    assert_eq!(status, "ok", "{body}: {response}");
                    (body, response)
                })
                .collect();
            acks
        }));
    }

    let mut acks = Vec::new();
    for (k, task) in publishing.into_iter().enumerate() {
        let mine = task.await.expect("publisher task");
        let mine_seqs: Vec<u64> = mine
            .iter()
            .map(|(_, r)| r["seq"].as_u64().unwrap())
            .collect();
        assert!(
            mine_seqs.windows(2).all(|w| w[0] < w[1]),
            "publisher {k}: one socket's pushes got seqs out of push order: {mine_seqs:?}"
        );
        acks.extend(mine.into_iter().map(|ack| (k, ack)));
    }
    let mut views = Vec::new();
    for task in listening {
        views.push(task.await.expect("subscriber task"));
    }

    let expected: Vec<u64> = (1..=TOTAL as u64).collect();
    let mut acked_seqs: Vec<u64> = acks
        .iter()
        .map(|(_, (_, r))| r["seq"].as_u64().unwrap())
        .collect();
    acked_seqs.sort_unstable();
    assert_eq!(acked_seqs, expected, "acks are not exactly 1..={TOTAL}");
    for (i, view) in views.iter().enumerate() {
        assert_eq!(
            seqs(view),
            expected,
            "subscriber {i}: not the gapless order"
        );
    }
    // All subscribers saw identical messages.
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);
    for (k, (body, ack)) in &acks {
        let seq = ack["seq"].as_u64().unwrap();
        let message = &views[0][seq as usize - 1];
        assert_eq!(message["id"], ack["id"], "ack {ack} vs broadcast {message}");
        assert_eq!(message["body"], body.as_str(), "{message}");
        assert_eq!(message["user"]["username"], users[k % 2], "{message}");
        assert_eq!(message["topic"], LOBBY, "{message}");
    }
}

/// While a publisher pushes 1500 messages as fast as acks return, a client
/// joins with `last_seq: K` and later leaves and rejoins with its own last
/// seen seq, several times: across join replies (`recovered: true`) and
/// `new_msg` broadcasts it gets every seq > K exactly once, in order, up to
/// the publisher's last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoining_with_last_seq_recovers_every_message_once_under_load() {
    const TOTAL: u64 = 1500;
    const REJOINS: usize = 5;
    const PER_PERIOD: u64 = 120;
    let server = blocking(|| TestServer::start_with(&NO_RATE_LIMIT, None));
    let (alice, _) = blocking(|| server.register("alice", PASSWORD));
    let (bob, _) = blocking(|| server.register("bobby", PASSWORD));

    let mut publisher = lobby_client(&server, &alice).await;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let publishing = tokio::spawn(async move {
        let payloads = (0..TOTAL)
            .map(|i| json!({"body": format!("load-{i}")}))
            .collect();
        let replies = publisher
            .push_pipelined(LOBBY, "new_msg", payloads, 8, |_, status, response| {
                assert_eq!(status, "ok", "{response}");
                let seq = response["seq"].as_u64().unwrap();
                progress_tx.send_modify(|head| *head = (*head).max(seq));
            })
            .await;
        replies
            .into_iter()
            .map(|r| r.expect("a reply to every push").1["seq"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::time::timeout_at(deadline, progress.wait_for(|head| *head >= 100))
        .await
        .expect("100 acks in time")
        .expect("publisher alive");
    let first_k = *progress.borrow();
    let mut client = connect(&server, &bob).await;
    let mut last_seen = first_k;
    let mut joins_during_stream = 0;
    let mut recovered_total = 0usize;
    for period in 0..=REJOINS {
        if *progress.borrow() < TOTAL {
            joins_during_stream += 1;
        }
        let joined = client.join_ok(LOBBY, json!({"last_seq": last_seen})).await;
        for frame in client.take_buffered() {
            assert!(
                !frame.is_new_msg_on(LOBBY),
                "period {period}: new_msg before the join reply: {frame:?}"
            );
        }
        assert_eq!(joined["recovered"], true, "{joined}");
        assert_eq!(joined["truncated"], false, "{joined}");
        let recovered = joined["messages"].as_array().expect("messages").clone();
        recovered_total += recovered.len();
        for message in &recovered {
            check(
                message["seq"].as_u64().unwrap(),
                &mut last_seen,
                "join reply",
            );
        }
        assert_eq!(
            joined["last_seq"], last_seen,
            "period {period}: the join reply's messages end at its last_seq"
        );
        let target = if period == REJOINS {
            TOTAL
        } else {
            (last_seen + PER_PERIOD).min(TOTAL)
        };
        while last_seen < target {
            let frame = client
                .expect_frame(deadline, "waiting for broadcasts")
                .await;
            if frame.is_new_msg_on(LOBBY) {
                check(frame.seq().unwrap(), &mut last_seen, "broadcast");
            }
        }
        if period < REJOINS {
            let (status, response) = client.leave(LOBBY).await;
            assert_eq!(status, "ok", "{response}");
            // Broadcasts that arrived before the leave reply still count.
            for frame in client.take_buffered() {
                if frame.is_new_msg_on(LOBBY) {
                    check(frame.seq().unwrap(), &mut last_seen, "before leave reply");
                }
            }
        }
    }
    let acked = publishing.await.expect("publisher task");
    assert_eq!(acked, (1..=TOTAL).collect::<Vec<u64>>(), "publisher's acks");
    assert_eq!(last_seen, TOTAL);
    assert!(
        joins_during_stream >= 2,
        "only {joins_during_stream} joins happened while the publisher was running"
    );
    eprintln!(
        "recovery: first last_seq {first_k}, {} joins ({joins_during_stream} during the stream), \
         {recovered_total} messages recovered in join replies",
        REJOINS + 1
    );
    // Nothing more for the lobby after the last message.
    assert!(client
        .take_buffered()
        .iter()
        .all(|f| !f.is_new_msg_on(LOBBY)));

    // The epoch: a matching one recovers, a foreign one gets the newest
    // messages with `recovered: false`.
    let mut fresh = connect(&server, &bob).await;
    let first = fresh.join_ok(LOBBY, json!({})).await;
    let epoch = first["epoch"].as_str().expect("epoch").to_string();
    assert_eq!(first["recovered"], false, "{first}");
    assert_eq!(first["last_seq"], TOTAL);
    assert_eq!(
        seqs(first["messages"].as_array().unwrap()),
        (TOTAL - 49..=TOTAL).collect::<Vec<u64>>(),
        "a join without last_seq gets the newest 50"
    );
    fresh.leave(LOBBY).await;
    let same = fresh
        .join_ok(LOBBY, json!({"last_seq": TOTAL - 3, "epoch": epoch}))
        .await;
    assert_eq!(same["recovered"], true, "{same}");
    assert_eq!(
        seqs(same["messages"].as_array().unwrap()),
        [TOTAL - 2, TOTAL - 1, TOTAL]
    );
    fresh.leave(LOBBY).await;
    let other = fresh
        .join_ok(
            LOBBY,
            json!({"last_seq": 3, "epoch": format!("{epoch}-other")}),
        )
        .await;
    assert_eq!(other["recovered"], false, "{other}");
    assert_eq!(other["epoch"], epoch.as_str());
    assert_eq!(
        seqs(other["messages"].as_array().unwrap()),
        (TOTAL - 49..=TOTAL).collect::<Vec<u64>>(),
        "a foreign epoch gets the newest 50, not a recovery from seq 3"
    );
}

// ---------------------------------------------------------------------------
// Limits and bad input
// ---------------------------------------------------------------------------

/// Every refusal is a clear error reply, close code or HTTP status, never
/// a crash: malformed frames (1007, not 1000), short arrays, oversized
/// frames (1009), long bodies, unjoined topics, the push rate limit, the
/// topics-per-socket and sockets-per-user limits, bad tokens and origins.
/// Other clients keep working, and the server is still up at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_limits_are_refused_without_harm() {
    let env = [
        ("CONFAB_MAX_FRAME_BYTES", "2048"),
        ("CONFAB_MAX_BODY_CHARS", "100"),
        ("CONFAB_PUSH_BURST", "5"),
        ("CONFAB_PUSH_REFILL_PER_SEC", "1"),
        ("CONFAB_MAX_TOPICS_PER_SOCKET", "2"),
        ("CONFAB_MAX_SOCKETS_PER_USER", "2"),
        ("CONFAB_ALLOWED_ORIGINS", "http://good.example"),
    ];
    let mut server = blocking(|| TestServer::start_with(&env, None));
    let token = |name: &str| blocking(|| server.register(name, PASSWORD)).0;
    let (a, b, c, d, e, f) = (
        token("user_a"),
        token("user_b"),
        token("user_c"),
        token("user_d"),
        token("user_e"),
        token("user_f"),
    );

    // Malformed JSON closes that socket with 1007; a second socket lives on.
    let mut a1 = lobby_client(&server, &a).await;
    let mut a2 = lobby_client(&server, &a).await;
    a1.send_text("[\"1\",\"2\",\"room:lobby\",\"new_msg\",{not json")
        .await
        .unwrap();
    assert_eq!(a1.closed(CLOSE_TIMEOUT).await, Some(1007), "malformed JSON");
    push_ok(&mut a2, LOBBY, "still here").await;
    let (status, response) = a2.push("phoenix", "heartbeat", json!({})).await;
    assert_eq!(
        (status.as_str(), &response),
        ("ok", &json!({})),
        "heartbeat"
    );

    // A body over the limit, and one at it.
    let (status, response) = a2
        .push(LOBBY, "new_msg", json!({"body": "x".repeat(101)}))
        .await;
    assert_eq!(status, "error");
    assert_eq!(response, json!({"reason": "body_too_long"}));
    push_ok(&mut a2, LOBBY, &"y".repeat(100)).await;
    // The limit counts characters, not bytes.
    push_ok(&mut a2, LOBBY, &"é".repeat(100)).await;

    // A push to a topic this socket has not joined.
    let msg_ref = a2.make_ref();
    a2.send(
        Some("77"),
        Some(&msg_ref),
        "room:elsewhere",
        "new_msg",
        json!({"body": "hi"}),
    )
    .await
    .unwrap();
    let reply = loop {
        let frame = a2
            .expect_frame(Instant::now() + CLOSE_TIMEOUT, "unmatched topic reply")
            .await;
        if frame.is_reply_to(&msg_ref) {
            break frame;
        }
    };
    assert_eq!(
        reply.join_ref, None,
        "unmatched topic reply carries join_ref null"
    );
    assert_eq!(reply.topic, "room:elsewhere");
    assert_eq!(
        reply.reply_parts(),
        ("error".to_string(), json!({"reason": "unmatched topic"}))
    );
    let (status, response) = a2.join("nosuchkind:topic", json!({})).await;
    assert_eq!(
        (status.as_str(), &response["reason"]),
        ("error", &json!("unmatched topic"))
    );

    // A four-element array closes the socket, not with 1000.
    let mut b1 = connect(&server, &b).await;
    b1.send_text("[\"1\",\"1\",\"room:lobby\",\"phx_join\"]")
        .await
        .unwrap();
    assert_closed_abnormally(&mut b1, "4-element array").await;

    // A binary frame that is no Phoenix frame: closed, not with 1000.
    let mut b2 = connect(&server, &b).await;
    b2.send_message(Message::Binary(vec![9u8, 9, 9].into()))
        .await
        .unwrap();
    assert_closed_abnormally(&mut b2, "garbage binary frame").await;

    // A frame over max_frame_bytes: 1009.
    let mut c1 = lobby_client(&server, &c).await;
    let join_ref = c1.join_ref(LOBBY).unwrap().to_string();
    c1.send(
        Some(&join_ref),
        Some("9"),
        LOBBY,
        "new_msg",
        json!({"body": "z".repeat(3000)}),
    )
    .await
    .unwrap();
    assert_eq!(
        c1.closed(CLOSE_TIMEOUT).await,
        Some(1009),
        "oversized frame"
    );

    // The push rate limit: burst 5, then rate_limited.
    let mut d1 = lobby_client(&server, &d).await;
    let payloads = (0..10)
        .map(|i| json!({"body": format!("burst {i}")}))
        .collect();
    let replies = d1
        .push_pipelined(LOBBY, "new_msg", payloads, 10, |_, _, _| {})
        .await;
    let statuses: Vec<String> = replies
        .iter()
        .map(|r| {
            let (status, response) = r.as_ref().expect("a reply to every push");
            match status.as_str() {
                "ok" => "ok".to_string(),
                _ => response["reason"].as_str().unwrap_or("?").to_string(),
            }
        })
        .collect();
    assert!(statuses[..5].iter().all(|s| s == "ok"), "{statuses:?}");
    let limited = statuses[5..]
        .iter()
        .filter(|s| *s == "rate_limited")
        .count();
    assert!(
        limited >= 4,
        "expected rate_limited after the burst: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| s == "ok" || s == "rate_limited"),
        "{statuses:?}"
    );

    // Topics per socket: 2.
    for room in ["second", "third"] {
        blocking(|| server.post_json("/api/rooms", Some(&d), &json!({"name": room})))
            .assert_status(201, room);
    }
    d1.join_ok("room:second", json!({})).await;
    let (status, response) = d1.join("room:third", json!({})).await;
    assert_eq!(status, "error", "{response}");
    assert_eq!(response, json!({"reason": "too many channels joined"}));
    let (status, _) = d1.leave("room:second").await;
    assert_eq!(status, "ok");
    d1.join_ok("room:third", json!({})).await;

    // Sockets per user: 2; the third is refused at the HTTP level.
    let mut e1 = connect(&server, &e).await;
    let mut e2 = connect(&server, &e).await;
    let refused = PhxClient::connect(server.addr(), &e).await;
    let status = refused.as_ref().err().and_then(|err| err.status());
    assert_eq!(
        status,
        Some(429),
        "third socket of a user: {:?}",
        refused.as_ref().err().map(ToString::to_string)
    );
    e1.join_ok(LOBBY, json!({})).await;
    e2.join_ok(LOBBY, json!({})).await;
    push_ok(&mut e1, LOBBY, "e1 works").await;
    push_ok(&mut e2, LOBBY, "e2 works").await;

    // Bad or missing token: 403 before the upgrade.
    let addr = server.addr();
    for url in [
        socket_url(addr, "not-a-token"),
        socket_url(addr, &format!("{a}x")),
        format!("ws://{addr}/socket/websocket?vsn=2.0.0"),
    ] {
        let refused = PhxClient::connect_raw(&url).await;
        assert_eq!(
            refused.as_ref().err().and_then(ConnectError::status),
            Some(403),
            "{url}: {:?}",
            refused.as_ref().err().map(ToString::to_string)
        );
    }

    // Origins: the allowed one and none open; another is refused.
    let url = socket_url(addr, &f);
    let evil = PhxClient::connect_with_headers(&url, &[("Origin", "http://evil.example")]).await;
    assert_eq!(
        evil.as_ref().err().and_then(ConnectError::status),
        Some(403),
        "evil origin"
    );
    let mut good = PhxClient::connect_with_headers(&url, &[("Origin", "http://good.example")])
        .await
        .unwrap_or_else(|e| panic!("allowed origin: {e}"));
    let mut plain = PhxClient::connect_raw(&url)
        .await
        .unwrap_or_else(|e| panic!("no origin: {e}"));
    good.join_ok(LOBBY, json!({})).await;
    plain.join_ok(LOBBY, json!({})).await;

    // A payload that is not an object, and bad join params: error replies.
    let (status, response) = plain.push(LOBBY, "new_msg", json!("just a string")).await;
    assert_eq!(
        (status.as_str(), &response),
        ("error", &json!({"reason": "invalid_payload"}))
    );
    let (status, response) = good.join("room:second", json!({"last_seq": -1})).await;
    assert_eq!(
        (status.as_str(), &response),
        ("error", &json!({"reason": "invalid_payload"}))
    );
    for body in ["", " \n\t "] {
        let (status, response) = good.push(LOBBY, "new_msg", json!({"body": body})).await;
        assert_eq!(
            (status.as_str(), &response),
            ("error", &json!({"reason": "empty_body"})),
            "body {body:?}"
        );
    }
    // A push with a stale join_ref is dropped without a reply: the reply to
    // a later heartbeat comes first and nothing answers the stale ref.
    let stale_ref = good.make_ref();
    good.send(Some("stale"), Some(&stale_ref), LOBBY, "history", json!({}))
        .await
        .unwrap();
    let (status, _) = good.push("phoenix", "heartbeat", json!({})).await;
    assert_eq!(status, "ok");
    assert!(
        good.take_buffered()
            .iter()
            .all(|f| !f.is_reply_to(&stale_ref)),
        "a push with a stale join_ref was answered"
    );

    assert!(server.is_running(), "the server died:\n{}", server.logs());
    blocking(|| server.get("/healthz", None)).assert_status(200, "healthz at the end");
    push_ok(&mut a2, LOBBY, "a2 at the end").await;
}

/// A client that closes its socket gets the close frame echoed (RFC 6455
/// §5.5.1: an endpoint that receives a Close frame MUST send one back)
/// before the TCP connection ends, and its presence leaves the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_initiated_close_is_answered_with_a_close_frame() {
    let server = blocking(TestServer::start);
    let (alice, alice_user) = blocking(|| server.register("alice", PASSWORD));
    let (bob, _) = blocking(|| server.register("bobby", PASSWORD));
    let mut watcher = lobby_client(&server, &bob).await;
    let mut leaving = lobby_client(&server, &alice).await;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    leaving
        .send_message(Message::Close(Some(frame)))
        .await
        .unwrap();
    let end = leaving.wait_end(CLOSE_TIMEOUT).await;
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let key = alice_user["id"].to_string();
    wait_presence_leave(&mut watcher, &key, deadline, "alice leaves after her close").await;
    assert!(
        matches!(end, End::Close(..)),
        "the server did not answer the client's close frame: {end:?}"
    );
}

/// A socket that never reads is closed as a slow consumer once its bounded
/// queue fills; a normal reader gets every message in order, the publisher
/// every ack, and the server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_memory_stays_bounded() {
    const COUNT: usize = 2000;
    const BODY_CHARS: usize = 3990;
    let mut env = NO_RATE_LIMIT.to_vec();
    env.push(("CONFAB_OUTBOUND_QUEUE_FRAMES", "64"));
    let server = blocking(|| TestServer::start_with(&env, None));
    let (alice, _) = blocking(|| server.register("alice", PASSWORD));
    let (bob, _) = blocking(|| server.register("bobby", PASSWORD));
    let (carol, carol_user) = blocking(|| server.register("carol", PASSWORD));
    let carol_key = carol_user["id"].to_string();
    let pid = server.pid().expect("server pid");

    // S joins, then is never read from until the end.
    let mut slow = lobby_client(&server, &carol).await;
    let mut reader = lobby_client(&server, &bob).await;
    let mut publisher = lobby_client(&server, &alice).await;
    push_ok(&mut publisher, LOBBY, "warm-up").await;
    let rss_before = proc_status_kib(pid, "VmRSS").expect("VmRSS");

    let deadline = Instant::now() + Duration::from_secs(60);
    // R also waits for S's presence to leave (a slow consumer's close
    // leaves its presence, api.md §3).
    let key = carol_key.clone();
    let reading = tokio::spawn(async move {
        let mut messages = Vec::with_capacity(COUNT + 1);
        let mut slow_left = false;
        while messages.len() < COUNT + 1 || !slow_left {
            let what = format!(
                "reader: {} of {} messages, slow consumer's presence left: {slow_left}",
                messages.len(),
                COUNT + 1
            );
            let frame = reader.expect_frame(deadline, &what).await;
            if frame.is_new_msg_on(LOBBY) {
                messages.push(frame.payload);
            } else if is_lobby_leave_of(&frame, &key) {
                slow_left = true;
            }
        }
        messages
    });
    let filler = "m".repeat(BODY_CHARS - 10);
    let payloads = (0..COUNT)
        .map(|i| json!({"body": format!("{i:>9} {filler}")}))
        .collect();
    let replies = publisher
        .push_pipelined(LOBBY, "new_msg", payloads, 32, |_, _, _| {})
        .await;
    for (i, reply) in replies.iter().enumerate() {
        let (status, response) = reply
            .as_ref()
            .unwrap_or_else(|| panic!("push {i}: no reply ({:?})", publisher.end()));
        assert_eq!(status, "ok", "push {i}: {response}");
        assert_eq!(response["seq"], i as u64 + 2, "push {i}");
    }
    let received = reading.await.expect("reader task");
    assert_eq!(
        seqs(&received),
        (1..=COUNT as u64 + 1).collect::<Vec<u64>>()
    );
    for (i, message) in received[1..].iter().enumerate() {
        let body = message["body"].as_str().unwrap();
        assert_eq!(body.chars().count(), BODY_CHARS);
        assert!(
            body.starts_with(&format!("{i:>9} ")),
            "message {i} has body {body:.20}"
        );
    }

    let peak = proc_status_kib(pid, "VmHWM").expect("VmHWM");
    let rss_after = proc_status_kib(pid, "VmRSS").expect("VmRSS");
    eprintln!("server memory: VmRSS {rss_before} kB before, {rss_after} kB after, peak {peak} kB");
    assert!(
        peak.saturating_sub(rss_before) < 100 * 1024,
        "server memory grew from {rss_before} kB to a peak of {peak} kB"
    );
    blocking(|| server.get("/healthz", None)).assert_status(200, "healthz after the flood");

    // Now drain S: it must end (close frame 1013/1008, or the connection
    // closed under a full buffer) before it got everything.
    let end = slow.wait_end(Duration::from_secs(30)).await;
    let got = slow
        .take_buffered()
        .iter()
        .filter(|f| f.is_new_msg_on(LOBBY))
        .count();
    eprintln!(
        "slow consumer: ended with {end:?} after {got} of {} messages",
        COUNT + 1
    );
    assert!(got < COUNT + 1, "the slow consumer was never cut off");
    match &end {
        End::Close(code, _) => assert!([1008, 1013].contains(code), "close code {code}"),
        End::Eof(_) => {}
    }
    // And a fresh client still gets served.
    let mut late = connect(&server, &carol).await;
    let joined = late.join_ok(LOBBY, json!({"last_seq": COUNT as u64})).await;
    assert_eq!(
        seqs(joined["messages"].as_array().unwrap()),
        [COUNT as u64 + 1]
    );
}

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

/// A password change closes that user's live socket (not with 1000) and its
/// old token no longer opens one (403); logout closes the socket opened with
/// that token; another user's socket is unaffected throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_close_live_sockets() {
    let server = blocking(|| TestServer::start_with(&NO_RATE_LIMIT, None));
    let (carol, carol_user) = blocking(|| server.register("carol", PASSWORD));
    let (dave, _) = blocking(|| server.register("dave_", PASSWORD));
    let carol_key = carol_user["id"].to_string();
    let deadline = Instant::now() + Duration::from_secs(30);

    let mut c1 = lobby_client(&server, &carol).await;
    let mut d1 = lobby_client(&server, &dave).await;
    push_ok(&mut c1, LOBBY, "carol before").await;

    let changed = blocking(|| {
        server.send_json(
            "PATCH",
            "/api/me",
            Some(&carol),
            &json!({"password": {"current": PASSWORD, "new": "a-brand-new-password"}}),
        )
    });
    changed.assert_status(200, "password change");
    let fresh = changed.json()["token"]
        .as_str()
        .expect("a fresh token after a password change")
        .to_string();
    assert_closed_abnormally(&mut c1, "password change").await;
    wait_presence_leave(
        &mut d1,
        &carol_key,
        deadline,
        "carol leaves after the password change",
    )
    .await;
    push_ok(&mut d1, LOBBY, "dave after carol's password change").await;
    assert_refused(&server, &carol, "old token after a password change").await;

    let mut c2 = lobby_client(&server, &fresh).await;
    push_ok(&mut c2, LOBBY, "carol with the fresh token").await;
    // A second session of carol's, with its own token, outlives the logout.
    let (other, _) = blocking(|| server.login("carol", "a-brand-new-password"));
    let mut c3 = lobby_client(&server, &other).await;
    blocking(|| server.post_json("/api/logout", Some(&fresh), &json!({})))
        .assert_status(204, "logout");
    assert_closed_abnormally(&mut c2, "logout").await;
    assert_refused(&server, &fresh, "token after logout").await;

    wait_presence_leave(
        &mut d1,
        &carol_key,
        deadline,
        "carol's logged-out socket leaves",
    )
    .await;
    push_ok(&mut d1, LOBBY, "dave at the end").await;
    assert_eq!(d1.end(), None, "dave's socket was closed");
    push_ok(&mut c3, LOBBY, "carol's other session after the logout").await;
    assert_eq!(
        c3.end(),
        None,
        "carol's other socket was closed by the logout"
    );
}
