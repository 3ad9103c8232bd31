//! Durability promises of api.md §4 against the real binary: an ok reply to
//! `new_msg` means the message is on disk (SIGKILL loses nothing), seqs stay
//! gapless across crashes, `client_id` idempotency survives a restart, and
//! SIGTERM drains (close 1001, exit 0, acknowledged messages kept).
//! Each test runs its own server on a fresh data directory.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::phx::{blocking, End, PhxClient};
use common::TestServer;
use serde_json::{json, Value};

const LOBBY: &str = "room:lobby";
const PASSWORD: &str = "durable-password";
/// The push rate limit is not what these tests exercise.
const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("CONFAB_PUSH_BURST", "1000000"),
    ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
];
/// Pushes in flight per publishing socket.
const WINDOW: usize = 32;

/// An acknowledged message: what was sent and what the ok reply said.
#[derive(Clone, Debug)]
struct Acked {
    body: String,
    id: u64,
    seq: u64,
}

/// Connects and joins the lobby.
async fn lobby_client(server: &TestServer, token: &str) -> PhxClient {
    PhxClient::joined(server.addr(), token, LOBBY).await
}

/// A server without the push rate limit (and with `extra` settings), and
/// the tokens of the users `names`.
fn started<const N: usize>(extra: &[(&str, &str)], names: [&str; N]) -> (TestServer, [String; N]) {
    let mut env = NO_RATE_LIMIT.to_vec();
    env.extend_from_slice(extra);
    let server = TestServer::start_with(&env, None);
    let tokens = server.register_all(names, PASSWORD);
    (server, tokens)
}

/// The acknowledged pushes among pipelined `replies` to `bodies` (a reply
/// that never came is skipped).
fn acked_replies(replies: &[Option<(String, Value)>], bodies: &[String]) -> Vec<Acked> {
    replies
        .iter()
        .zip(bodies)
        .filter_map(|(reply, body)| {
            let (_, response) = reply.as_ref()?;
            Some(Acked {
                body: body.clone(),
                id: response["id"].as_u64().unwrap(),
                seq: response["seq"].as_u64().unwrap(),
            })
        })
        .collect()
}

/// Pushes `payload` as a lobby `new_msg`, asserting an ok reply; returns it.
async fn push_ok(client: &mut PhxClient, payload: Value) -> Value {
    let (status, response) = client.push(LOBBY, "new_msg", payload).await;
    assert_eq!(status, "ok", "{response}");
    response
}

/// The seqs of the lobby broadcasts buffered on `client` (the buffer is taken).
fn broadcast_seqs(client: &mut PhxClient) -> Vec<u64> {
    client
        .take_new_msgs(LOBBY)
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

/// Broadcast only after durable: every message in `seen` is in `history`
/// with the same id and body.
fn assert_broadcasts_stored(history: &[Value], seen: &[Value], what: &str) {
    for message in seen {
        let seq = message["seq"].as_u64().unwrap();
        let stored = history.get(seq as usize - 1).unwrap_or_else(|| {
            panic!("{what}: broadcast seq {seq} is not in the store: {message}")
        });
        assert_eq!(stored["id"], message["id"], "{what}: {stored} vs {message}");
        assert_eq!(
            stored["body"], message["body"],
            "{what}: {stored} vs {message}"
        );
    }
}

/// Pushes every body pipelined and asserts that each got an ok reply with
/// an id and a seq; returns them in push order.
async fn publish_all(client: &mut PhxClient, bodies: &[String]) -> Vec<Acked> {
    let payloads = bodies.iter().map(|b| json!({"body": b})).collect();
    let replies = client
        .push_pipelined(LOBBY, "new_msg", payloads, WINDOW, |_, _, _| {})
        .await;
    replies
        .into_iter()
        .zip(bodies)
        .enumerate()
        .map(|(i, (reply, body))| {
            let (status, response) = reply.unwrap_or_else(|| {
                panic!("push {i} got no reply (connection end: {:?})", client.end())
            });
            assert_eq!(status, "ok", "push {i}: {response}");
            Acked {
                body: body.clone(),
                id: response["id"].as_u64().expect("ack id"),
                seq: response["seq"].as_u64().expect("ack seq"),
            }
        })
        .collect()
}

/// Asserts `/readyz` and `/healthz` answer 200 (the store opened cleanly).
fn assert_ready(server: &TestServer, what: &str) {
    server.get("/readyz", None).assert_status(200, what);
    server.get("/healthz", None).assert_status(200, what);
}

/// The lobby's whole history, asserting seqs are exactly 1..=len and ids unique.
fn gapless_history(server: &TestServer, token: &str, what: &str) -> Vec<Value> {
    let history = blocking(|| server.room_messages_after("lobby", token, 0));
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).collect();
    assert_eq!(seqs, expected, "{what}: history seqs are not 1..=N");
    let ids: HashSet<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), history.len(), "{what}: duplicate message ids");
    history
}

/// Asserts every acknowledged message is in `history` with its id and body.
fn assert_all_present(history: &[Value], acked: &[Acked], what: &str) {
    for ack in acked {
        let Some(stored) = history.get(ack.seq as usize - 1) else {
            panic!(
                "{what}: acknowledged seq {} is missing (history has {})",
                ack.seq,
                history.len()
            );
        };
        assert_eq!(stored["seq"], ack.seq, "{what}: {stored}");
        assert_eq!(
            stored["id"], ack.id,
            "{what}: acknowledged {ack:?}, stored {stored}"
        );
        assert_eq!(stored["body"], ack.body.as_str(), "{what}: {stored}");
        assert_eq!(stored["topic"], LOBBY, "{what}: {stored}");
    }
}

/// Three SIGKILL/restart cycles with growing batches. Each round pipelines
/// its pushes and sends SIGKILL from the reply handler the moment the
/// N-th ok reply arrives, while later pushes are still in flight. After
/// each restart: the store opens cleanly, every acknowledged message is
/// there with its id and body, seqs are gapless 1..=N over all rounds, the
/// stored tail of the round is exactly a prefix of what was pushed (in
/// push order, nothing invented or duplicated), and every broadcast an
/// observer saw before the crash survived it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    let (mut server, [token, watcher]) = blocking(|| started(&[], ["alice", "bobby"]));
    let mut all_acked: Vec<Acked> = Vec::new();
    let mut head = 0u64;
    // (ok replies before SIGKILL, further pushes in flight)
    for (round, (count, in_flight)) in [(200usize, 0usize), (300, 100), (400, 100)]
        .into_iter()
        .enumerate()
    {
        let what = format!("round {round}");
        // Another socket records every broadcast until the crash.
        let mut observer = lobby_client(&server, &watcher).await;
        let observing = tokio::spawn(async move {
            observer.wait_end(Duration::from_secs(60)).await;
            observer.take_new_msgs(LOBBY)
        });
        let mut client = lobby_client(&server, &token).await;
        let bodies: Vec<String> = (0..count + in_flight)
            .map(|i| format!("r{round}-m{i}"))
            .collect();
        let payloads = bodies.iter().map(|b| json!({"body": b})).collect();
        let pid = libc::pid_t::try_from(server.pid().expect("running")).unwrap();
        let mut oks = 0;
        let replies = client
            .push_pipelined(LOBBY, "new_msg", payloads, WINDOW, |i, status, response| {
                assert_eq!(status, "ok", "push {i}: {response}");
                oks += 1;
                if oks == count {
                    // SAFETY: kill(2) on our own unreaped child.
                    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
                }
            })
            .await;
        blocking(|| server.kill()); // reap
        let seen = observing.await.expect("observer task");
        blocking(|| server.restart());
        assert_ready(&server, &what);

        let acked = acked_replies(&replies, &bodies);
        assert!(acked.len() >= count, "{what}: {} acks", acked.len());
        let seqs: Vec<u64> = acked.iter().map(|a| a.seq).collect();
        assert_eq!(
            seqs,
            (head + 1..=head + acked.len() as u64).collect::<Vec<u64>>(),
            "{what}: acks of one socket's pushes are not the next seqs in push order"
        );
        all_acked.extend(acked.iter().cloned());
        let history = gapless_history(&server, &token, &what);
        assert_all_present(&history, &all_acked, &what);
        // This round's part of the history is a prefix of its pushes.
        let stored: Vec<&str> = history[head as usize..]
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert!(
            stored.len() <= bodies.len(),
            "{what}: more messages than were sent"
        );
        assert_eq!(stored, bodies[..stored.len()], "{what}: stored tail");
        // Broadcast only after durable: nothing seen is taken back.
        let seen_seqs: Vec<u64> = seen.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seen_seqs,
            (head + 1..=head + seen.len() as u64).collect::<Vec<u64>>(),
            "{what}: the observer's broadcasts are not gapless from {}",
            head + 1
        );
        assert_broadcasts_stored(&history, &seen, &what);
        eprintln!(
            "{what}: {} acknowledged, {} stored, observer saw {} broadcasts",
            acked.len(),
            stored.len(),
            seen.len()
        );
        head = history.len() as u64;
    }
    assert!(server.is_running());
}

/// A `client_id` push is idempotent across a crash: the resend after
/// SIGKILL + restart returns the original id and seq, stores and broadcasts
/// nothing, and the history holds the message once. The same `client_id`
/// from another user is a different message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_is_idempotent_across_restart() {
    let (mut server, [alice, bob]) = blocking(|| started(&[], ["alice", "bobby"]));

    let mut client = lobby_client(&server, &alice).await;
    let first = push_ok(&mut client, json!({"body": "first", "client_id": "abc"})).await;
    let second = push_ok(&mut client, json!({"body": "second"})).await;
    assert_eq!(first["seq"], 1);
    assert_eq!(second["seq"], 2);
    // Before the crash too.
    let again = push_ok(&mut client, json!({"body": "first", "client_id": "abc"})).await;
    assert_eq!((&again["id"], &again["seq"]), (&first["id"], &first["seq"]));

    blocking(|| server.kill());
    drop(client);
    blocking(|| server.restart());
    assert_ready(&server, "after restart");

    let mut client = PhxClient::connect(server.addr(), &alice).await.unwrap();
    let joined = client.join_ok(LOBBY, json!({"last_seq": 2})).await;
    assert_eq!(joined["last_seq"], 2, "{joined}");
    assert_eq!(joined["messages"], json!([]), "{joined}");
    let resent = push_ok(
        &mut client,
        json!({"body": "first, resent after the crash", "client_id": "abc"}),
    )
    .await;
    assert_eq!(
        (&resent["id"], &resent["seq"]),
        (&first["id"], &first["seq"]),
        "the resend after the restart is a new message: {resent} vs {first}"
    );
    let third = push_ok(&mut client, json!({"body": "third", "client_id": "def"})).await;
    assert_eq!(third["seq"], 3, "{third}");
    // The broadcast of seq 3 precedes its ack on this socket; a broadcast of
    // the duplicate would precede that.
    assert_eq!(
        broadcast_seqs(&mut client),
        [3],
        "only the new message may be broadcast"
    );

    // The same client_id sent five times without waiting (a resend racing
    // the original): one message, five identical acks, one broadcast.
    let join_ref = client.join_ref(LOBBY).unwrap().to_string();
    let mut refs = Vec::new();
    for _ in 0..5 {
        let msg_ref = client.make_ref();
        client
            .send(
                Some(&join_ref),
                Some(&msg_ref),
                LOBBY,
                "new_msg",
                json!({"body": "raced", "client_id": "race"}),
            )
            .await
            .unwrap();
        refs.push(msg_ref);
    }
    let mut raced = Vec::new();
    for msg_ref in &refs {
        let (status, response) = client.wait_reply(msg_ref, Duration::from_secs(30)).await;
        assert_eq!(status, "ok", "{response}");
        raced.push((response["id"].clone(), response["seq"].clone()));
    }
    assert!(
        raced.iter().all(|r| *r == raced[0]) && raced[0].1 == 4,
        "raced acks: {raced:?}"
    );
    let (status, fifth) = client
        .push(LOBBY, "new_msg", json!({"body": "fifth"}))
        .await;
    assert_eq!(
        (status.as_str(), &fifth["seq"]),
        ("ok", &json!(5)),
        "{fifth}"
    );
    assert_eq!(
        broadcast_seqs(&mut client),
        [4, 5],
        "broadcasts after the raced pushes"
    );

    // Another user's "abc" is their own message.
    let mut other = lobby_client(&server, &bob).await;
    let bobs = push_ok(&mut other, json!({"body": "bob's abc", "client_id": "abc"})).await;
    assert_eq!(bobs["seq"], 6, "{bobs}");

    // The REST path shares the idempotency.
    let posted = blocking(|| {
        server.post_json(
            "/api/rooms/lobby/messages",
            Some(&alice),
            &json!({"body": "first, resent over REST", "client_id": "abc"}),
        )
    });
    assert!(
        posted.status == 200 || posted.status == 201,
        "REST resend: {} {}",
        posted.status,
        posted.body
    );
    let message = &posted.json()["message"];
    assert_eq!(
        (&message["id"], &message["seq"]),
        (&first["id"], &first["seq"]),
        "REST resend: {message}"
    );

    let history = gapless_history(&server, &alice, "history");
    let bodies: Vec<&str> = history
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["first", "second", "third", "raced", "fifth", "bob's abc"]
    );
    let abc: Vec<&Value> = history
        .iter()
        .filter(|m| m["client_id"] == "abc" && m["user"]["username"] == "alice")
        .collect();
    assert_eq!(abc.len(), 1, "alice's abc is stored once: {history:?}");
    assert_eq!(abc[0]["id"], first["id"]);
}

/// SIGTERM while a publisher pushes: exit 0 within the grace period, every
/// connected socket gets close 1001, and after a restart every acknowledged
/// message (and every message any client saw broadcast) is in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_keeps_acknowledged_messages() {
    const GRACE_SECS: u64 = 5;
    let grace_secs = GRACE_SECS.to_string();
    let grace = [("CONFAB_SHUTDOWN_GRACE_SECS", grace_secs.as_str())];
    let (mut server, [alice, bob]) = blocking(|| started(&grace, ["alice", "bobby"]));

    let mut observer = lobby_client(&server, &bob).await;
    let mut publisher = lobby_client(&server, &alice).await;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let bodies: Vec<String> = (0..50_000).map(|i| format!("drain-{i}")).collect();
    let sent = bodies.clone();
    let publishing = tokio::spawn(async move {
        let payloads = sent.iter().map(|b| json!({"body": b})).collect();
        let mut acks = 0usize;
        let replies = publisher
            .push_pipelined(LOBBY, "new_msg", payloads, 16, |_, status, response| {
                assert_eq!(status, "ok", "{response}");
                acks += 1;
                let _ = progress_tx.send(acks);
            })
            .await;
        (replies, publisher)
    });
    let watching = tokio::spawn(async move {
        let end = observer.wait_end(Duration::from_secs(30)).await;
        (end, observer.take_new_msgs(LOBBY))
    });

    tokio::time::timeout(Duration::from_secs(30), progress.wait_for(|n| *n >= 300))
        .await
        .expect("300 acks within 30 s")
        .expect("publisher alive");
    let (status, took) = blocking(|| server.terminate_within(Duration::from_secs(GRACE_SECS + 10)));
    assert!(
        status.success(),
        "exit status {status:?} on SIGTERM; output:\n{}",
        server.logs()
    );
    assert!(
        took <= Duration::from_secs(GRACE_SECS + 1),
        "exit took {took:?}, grace period is {GRACE_SECS} s"
    );

    let (replies, publisher) = publishing.await.expect("publisher task");
    let (observer_end, seen) = watching.await.expect("observer task");
    assert!(
        matches!(publisher.end(), Some(End::Close(1001, _))),
        "publisher's close: {:?}",
        publisher.end()
    );
    assert!(
        matches!(observer_end, End::Close(1001, _)),
        "observer's close: {observer_end:?}"
    );
    let acked = acked_replies(&replies, &bodies);
    assert!(acked.len() >= 300);
    assert!(
        acked.len() < bodies.len(),
        "the publisher finished before SIGTERM; the test proves nothing"
    );

    blocking(|| server.restart());
    assert_ready(&server, "after SIGTERM restart");
    let history = gapless_history(&server, &alice, "after SIGTERM");
    assert_all_present(&history, &acked, "after SIGTERM");
    // Broadcast only after durable: whatever the observer saw is stored.
    assert!(!seen.is_empty(), "the observer saw no broadcast");
    assert_broadcasts_stored(&history, &seen, "after SIGTERM");
    // Every stored message is one the publisher sent, in push order.
    for (i, stored) in history.iter().enumerate() {
        assert_eq!(stored["body"], bodies[i].as_str(), "{stored}");
    }
}

/// SIGTERM with stalled peers: an HTTP request whose body never finishes
/// and a socket that stopped reading with its TCP buffers full (its
/// session blocked writing, its queue not yet overflowing). The process
/// must still exit 0 within the configured grace period — one period, not
/// one per drain stage — and a healthy socket still gets its 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_grace_despite_stalled_peers() {
    use std::io::{Read, Write};

    const GRACE_SECS: u64 = 3;
    const COUNT: usize = 1500;
    let grace_secs = GRACE_SECS.to_string();
    let grace = [("CONFAB_SHUTDOWN_GRACE_SECS", grace_secs.as_str())];
    let (mut server, [alice, bob, carol]) =
        blocking(|| started(&grace, ["alice", "bobby", "carol"]));

    // A keep-alive HTTP connection: one full request answered (so the
    // server serves it), then a request whose body never completes.
    let mut stalled = std::net::TcpStream::connect(server.addr()).expect("connect");
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let host = server.addr();
    write!(stalled, "GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let n = stalled.read(&mut first).expect("healthz answer");
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    write!(
        stalled,
        "POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{\"username\": \"ali"
    )
    .unwrap();

    // S stops reading; a flood fills its TCP buffers (about 4 MB here)
    // while fewer frames than its queue (1024) wait behind them.
    let slow = lobby_client(&server, &carol).await;
    let mut reader = lobby_client(&server, &bob).await;
    let mut publisher = lobby_client(&server, &alice).await;
    let filler = "f".repeat(3990);
    let bodies: Vec<String> = (0..COUNT).map(|i| format!("{i} {filler}")).collect();
    publish_all(&mut publisher, &bodies).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < COUNT {
        let frame = reader.expect_frame(deadline, "reader's broadcasts").await;
        if frame.is_new_msg_on(LOBBY) {
            got += 1;
        }
    }

    let (status, took) =
        blocking(|| server.terminate_within(Duration::from_secs(4 * GRACE_SECS + 15)));
    eprintln!("exit {status:?} {took:?} after SIGTERM (grace {GRACE_SECS} s)");
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        server.logs()
    );
    let end = reader.wait_end(Duration::from_secs(5)).await;
    assert!(
        matches!(end, End::Close(1001, _)),
        "healthy socket: {end:?}"
    );
    assert!(
        took <= Duration::from_secs(GRACE_SECS + 1),
        "exit took {took:?} with a {GRACE_SECS} s grace period; output:\n{}",
        server.logs()
    );
    drop(slow);
    drop(stalled);
}
