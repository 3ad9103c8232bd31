//! Crash loop (api.md §4): SIGKILL the server at random moments while
//! several sockets pipeline `new_msg` pushes to three topics, restart it,
//! and check after every restart that
//!
//! - the store opens cleanly (`/readyz` 200, and an offline `confab export`
//!   of the whole store at the end succeeds);
//! - every acknowledged message is present with the id, seq and body its
//!   ack and its push said;
//! - every topic's seqs are gapless `1..=max`, and each publisher's stored
//!   messages are exactly a prefix of what it pushed (so a message that
//!   was in flight at the kill is either fully there or absent, never a
//!   hole or a half-written body);
//! - resending the unacknowledged pushes with their `client_id` after the
//!   restart has exactly-once effect: the ones that had been stored answer
//!   with their original id and seq, the others are stored once.
//!
//! The default form (CI) does 20 kills in well under a minute; with
//! `CONFAB_LONG_TESTS=1` it does 200 (`CONFAB_CRASH_KILLS` overrides both).
//! The random source is seeded from the clock and the seed is printed;
//! `CONFAB_CRASH_SEED=<seed>` replays a run's kill delays and bodies.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::phx::{blocking, PhxClient};
use common::reliability::{env_u64, long_tests, XorShift};
use common::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "crash-test-password";
/// The push rate limit is not what this test exercises.
const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("CONFAB_PUSH_BURST", "1000000"),
    ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
];
/// Pushes in flight per publishing socket.
const WINDOW: usize = 16;
/// Upper bound of pushes per publisher per round (the kill comes long before).
const MAX_PUSHES: usize = 20_000;
/// Kill delay after publishing starts, in milliseconds.
const KILL_DELAY_MS: (u64, u64) = (20, 200);
/// The rooms published to.
const ROOMS: [&str; 3] = ["lobby", "ops", "dev"];
/// (user index, room index) of each publisher: two publishers share the
/// lobby, one user publishes to two rooms.
const PUBLISHERS: [(usize, usize); 4] = [(0, 0), (1, 0), (2, 1), (0, 2)];
/// Publishing users.
const USERS: [&str; 3] = ["alice", "bobby", "carol"];

/// One push as sent.
#[derive(Clone, Debug)]
struct Push {
    client_id: String,
    body: String,
}

/// What one publisher did in one round.
struct Round {
    publisher: usize,
    /// Every push that was written to the socket, in order.
    sent: Vec<Push>,
    /// `(id, seq)` of the ok reply of `sent[i]`, if one arrived.
    acks: Vec<Option<(u64, u64)>>,
}

/// A message known to be stored: its ack (or the history) said so.
#[derive(Clone, Debug)]
struct Known {
    id: u64,
    seq: u64,
    body: String,
    client_id: String,
}

fn topic(room: usize) -> String {
    format!("room:{}", ROOMS[room])
}

/// A message body of random length with its client id inside, so a body
/// can never be mistaken for another push's.
fn make_body(rng: &mut XorShift, client_id: &str) -> String {
    let filler_len = if rng.chance(5) {
        rng.range(500, 3900)
    } else {
        rng.range(0, 120)
    } as usize;
    let filler: String = (0..filler_len)
        .map(|i| char::from(b'a' + ((i as u64 + rng.next_u64()) % 26) as u8))
        .collect();
    format!("{client_id} {filler}")
}

/// Pushes `new_msg` with a window of [`WINDOW`] until the connection ends
/// (the kill) or [`MAX_PUSHES`] were sent. Tells `started` after the first
/// push went out. Frames other than the replies (broadcasts) are dropped.
async fn publish_until_killed(
    mut client: PhxClient,
    publisher: usize,
    round: usize,
    mut rng: XorShift,
    started: tokio::sync::mpsc::Sender<()>,
) -> Round {
    let room = PUBLISHERS[publisher].1;
    let topic = topic(room);
    let join_ref = client
        .join_ref(&topic)
        .expect("the publisher has joined")
        .to_string();
    let mut sent: Vec<Push> = Vec::new();
    let mut acks: Vec<Option<(u64, u64)>> = Vec::new();
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut announced = false;
    'publishing: loop {
        while pending.len() < WINDOW && sent.len() < MAX_PUSHES && client.end().is_none() {
            let client_id = format!("k{round}-p{publisher}-m{}", sent.len());
            let body = make_body(&mut rng, &client_id);
            let msg_ref = client.make_ref();
            let payload = json!({"body": body, "client_id": client_id});
            if client
                .send(Some(&join_ref), Some(&msg_ref), &topic, "new_msg", payload)
                .await
                .is_err()
            {
                // Whether the frame left is unknowable; the kill is the
                // only reason for a failed write, and an unsent push that
                // is counted as sent only makes the check laxer for it.
                sent.push(Push { client_id, body });
                acks.push(None);
                break 'publishing;
            }
            pending.insert(msg_ref, sent.len());
            sent.push(Push { client_id, body });
            acks.push(None);
            if !announced {
                announced = true;
                let _ = started.send(()).await;
            }
        }
        if pending.is_empty() {
            break;
        }
        let Some(frame) = client.next_frame(Duration::from_secs(30)).await else {
            assert!(
                client.end().is_some(),
                "publisher {publisher}: no frame for 30 s with {} pushes outstanding",
                pending.len()
            );
            break;
        };
        if frame.event != "phx_reply" {
            continue;
        }
        let Some(index) = frame.msg_ref.as_deref().and_then(|r| pending.remove(r)) else {
            continue;
        };
        let (status, response) = frame.reply_parts();
        assert_eq!(
            status, "ok",
            "publisher {publisher} push {index}: {response}"
        );
        let id = response["id"].as_u64().expect("ack id");
        let seq = response["seq"].as_u64().expect("ack seq");
        acks[index] = Some((id, seq));
    }
    if !announced {
        let _ = started.send(()).await;
    }
    Round {
        publisher,
        sent,
        acks,
    }
}

/// The messages of `room` with `seq > after`, asserting they are exactly
/// `after+1 ..` without gaps and that each has an id, a body and a client id.
fn history_after(server: &TestServer, token: &str, room: usize, after: u64) -> Vec<Value> {
    let messages = server.room_messages_after(ROOMS[room], token, after);
    for (i, message) in messages.iter().enumerate() {
        let expected = after + 1 + i as u64;
        assert_eq!(
            message["seq"].as_u64(),
            Some(expected),
            "room {}: seq gap or disorder after {after}: {message}",
            ROOMS[room]
        );
        assert!(message["id"].is_u64(), "message without id: {message}");
        assert!(
            message["body"].is_string(),
            "message without body: {message}"
        );
    }
    messages
}

/// Asserts `message` is the stored form of `known`.
fn assert_matches(message: &Value, known: &Known, what: &str) {
    assert_eq!(
        message["seq"].as_u64(),
        Some(known.seq),
        "{what}: {message}"
    );
    assert_eq!(message["id"].as_u64(), Some(known.id), "{what}: {message}");
    assert_eq!(
        message["body"].as_str(),
        Some(known.body.as_str()),
        "{what}: {message}"
    );
    assert_eq!(
        message["client_id"].as_str(),
        Some(known.client_id.as_str()),
        "{what}: {message}"
    );
}

/// Figures of a run.
#[derive(Default, Debug)]
struct Figures {
    kills: usize,
    sent: usize,
    acked: usize,
    in_flight_stored: usize,
    in_flight_lost: usize,
    resent: usize,
    resent_duplicates: usize,
    verified: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_loses_no_acknowledged_message() {
    let kills = env_u64("CONFAB_CRASH_KILLS", if long_tests() { 200 } else { 20 }) as usize;
    let seed = XorShift::seed_from_env_or_time("CONFAB_CRASH_SEED");
    eprintln!("crash loop: {kills} kills, seed {seed} (replay with CONFAB_CRASH_SEED={seed})");
    let mut rng = XorShift::new(seed);
    let started_at = Instant::now();

    let mut server = blocking(|| TestServer::start_with(&NO_RATE_LIMIT, None));
    let tokens: Vec<String> = USERS
        .iter()
        .map(|name| blocking(|| server.register(name, PASSWORD)).0)
        .collect();
    for room in &ROOMS[1..] {
        blocking(|| {
            server
                .post_json("/api/rooms", Some(&tokens[0]), &json!({"name": room}))
                .assert_status(201, "create room");
        });
    }

    // Per room: every message known to be stored, by seq (index seq-1).
    let mut stored: Vec<Vec<Known>> = vec![Vec::new(); ROOMS.len()];
    let mut figures = Figures::default();

    for round in 0..kills {
        let what = format!("kill {round} (seed {seed})");
        let heads_before: Vec<u64> = stored.iter().map(|k| k.len() as u64).collect();
        // Connect and join every publisher before publishing starts.
        let mut clients = Vec::new();
        for (user, room) in PUBLISHERS {
            let mut client = PhxClient::connect(server.addr(), &tokens[user])
                .await
                .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
            let last_seq = stored[room].len() as u64;
            let joined = client
                .join_ok(&topic(room), json!({"last_seq": last_seq}))
                .await;
            assert_eq!(
                joined["last_seq"].as_u64(),
                Some(last_seq),
                "{what}: join reply of {}: {joined}",
                topic(room)
            );
            clients.push(client);
        }
        let (started_tx, mut started_rx) = tokio::sync::mpsc::channel(PUBLISHERS.len());
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(publisher, client)| {
                let rng = XorShift::new(rng.next_u64());
                tokio::spawn(publish_until_killed(
                    client,
                    publisher,
                    round,
                    rng,
                    started_tx.clone(),
                ))
            })
            .collect();
        drop(started_tx);
        for _ in 0..PUBLISHERS.len() {
            tokio::time::timeout(Duration::from_secs(30), started_rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{what}: publishers did not start"));
        }
        let delay = rng.range(KILL_DELAY_MS.0, KILL_DELAY_MS.1);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let pid = libc::pid_t::try_from(server.pid().expect("server running")).unwrap();
        // SAFETY: kill(2) on our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "{what}");
        let mut rounds = Vec::new();
        for task in tasks {
            rounds.push(task.await.expect("publisher task"));
        }
        blocking(|| server.kill()); // reap
        figures.kills += 1;
        blocking(|| server.restart());
        blocking(|| {
            server
                .get("/readyz", None)
                .assert_status(200, &format!("{what}: /readyz after restart"));
        });

        // What the histories say now, from each room's previous head on.
        let reader = &tokens[1];
        let mut fresh: Vec<Vec<Value>> = Vec::new();
        for (room, known) in stored.iter().enumerate() {
            let head = known.len() as u64;
            // One message before the head too: the old head is still there.
            let from = head.saturating_sub(1);
            let mut messages = blocking(|| history_after(&server, reader, room, from));
            if head > 0 {
                let old_head = messages.remove(0);
                assert_matches(&old_head, &known[head as usize - 1], &what);
            }
            fresh.push(messages);
        }

        // Each publisher's stored messages are a prefix of its pushes that
        // holds every acknowledged one, with the acked id and seq.
        let mut stored_ids: HashMap<String, (u64, u64)> = HashMap::new();
        for (room, messages) in fresh.iter().enumerate() {
            for message in messages {
                let client_id = message["client_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{what}: message without client_id: {message}"))
                    .to_string();
                let id = message["id"].as_u64().unwrap();
                let seq = message["seq"].as_u64().unwrap();
                assert!(
                    stored_ids.insert(client_id.clone(), (id, seq)).is_none(),
                    "{what}: client_id {client_id} stored twice in {}",
                    ROOMS[room]
                );
            }
        }
        let mut by_room_order: Vec<Vec<Known>> = vec![Vec::new(); ROOMS.len()];
        for result in &rounds {
            let (user, room) = PUBLISHERS[result.publisher];
            let stored_count = result
                .sent
                .iter()
                .take_while(|p| stored_ids.contains_key(&p.client_id))
                .count();
            for push in &result.sent[stored_count..] {
                assert!(
                    !stored_ids.contains_key(&push.client_id),
                    "{what}: publisher {} push {} is stored although an earlier push \
                     of the same socket is not (a hole)",
                    result.publisher,
                    push.client_id
                );
            }
            let acked = result.acks.iter().filter(|a| a.is_some()).count();
            if let Some(lost) = result.acks[stored_count..].iter().position(Option::is_some) {
                panic!(
                    "{what}: publisher {}: acknowledged push {} is missing after the restart \
                     ({acked} acked, stored prefix {stored_count} of {} sent)",
                    result.publisher,
                    result.sent[stored_count + lost].client_id,
                    result.sent.len()
                );
            }
            let messages: HashMap<&str, &Value> = fresh[room]
                .iter()
                .map(|m| (m["client_id"].as_str().unwrap(), m))
                .collect();
            for (index, push) in result.sent[..stored_count].iter().enumerate() {
                let message = messages[push.client_id.as_str()];
                assert_eq!(
                    message["body"].as_str(),
                    Some(push.body.as_str()),
                    "{what}: body of {} differs from what was pushed",
                    push.client_id
                );
                assert_eq!(
                    message["user"]["username"].as_str(),
                    Some(USERS[user]),
                    "{what}: author of {}",
                    push.client_id
                );
                let (id, seq) = stored_ids[&push.client_id];
                if let Some((acked_id, acked_seq)) = result.acks[index] {
                    assert_eq!(
                        (id, seq),
                        (acked_id, acked_seq),
                        "{what}: {} acknowledged as (id, seq) = ({acked_id}, {acked_seq}) \
                         but stored as ({id}, {seq})",
                        push.client_id
                    );
                }
                by_room_order[room].push(Known {
                    id,
                    seq,
                    body: push.body.clone(),
                    client_id: push.client_id.clone(),
                });
            }
            figures.sent += result.sent.len();
            figures.acked += acked;
            figures.in_flight_stored += stored_count - acked;
            figures.in_flight_lost += result.sent.len() - stored_count;
        }
        for (room, mut known) in by_room_order.into_iter().enumerate() {
            known.sort_by_key(|k| k.seq);
            assert_eq!(
                known.len(),
                fresh[room].len(),
                "{what}: {} holds messages no publisher of this round sent",
                ROOMS[room]
            );
            stored[room].extend(known);
        }

        // Resend every unacknowledged push with its client_id: exactly once.
        let mut resend_clients = Vec::new();
        for result in &rounds {
            let (user, room) = PUBLISHERS[result.publisher];
            let unacked: Vec<(usize, &Push)> = result
                .sent
                .iter()
                .enumerate()
                .filter(|(i, _)| result.acks[*i].is_none())
                .collect();
            if unacked.is_empty() {
                continue;
            }
            let mut client = PhxClient::connect(server.addr(), &tokens[user])
                .await
                .unwrap_or_else(|e| panic!("{what}: reconnect: {e}"));
            client.join_ok(&topic(room), json!({})).await;
            let payloads = unacked
                .iter()
                .map(|(_, p)| json!({"body": p.body, "client_id": p.client_id}))
                .collect();
            let replies = client
                .push_pipelined(&topic(room), "new_msg", payloads, WINDOW, |_, _, _| {})
                .await;
            for ((_, push), reply) in unacked.iter().zip(replies) {
                let (status, response) =
                    reply.unwrap_or_else(|| panic!("{what}: no reply to the resend of {push:?}"));
                assert_eq!(
                    status, "ok",
                    "{what}: resend of {}: {response}",
                    push.client_id
                );
                let id = response["id"].as_u64().unwrap();
                let seq = response["seq"].as_u64().unwrap();
                figures.resent += 1;
                match stored_ids.get(&push.client_id) {
                    Some(&(old_id, old_seq)) => {
                        figures.resent_duplicates += 1;
                        assert_eq!(
                            (id, seq),
                            (old_id, old_seq),
                            "{what}: the resend of {}, stored before the kill, made a new message",
                            push.client_id
                        );
                    }
                    None => {
                        assert_eq!(
                            seq,
                            stored[room].len() as u64 + 1,
                            "{what}: resend of {} got seq {seq}",
                            push.client_id
                        );
                        stored[room].push(Known {
                            id,
                            seq,
                            body: push.body.clone(),
                            client_id: push.client_id.clone(),
                        });
                    }
                }
            }
            resend_clients.push(client);
        }
        for client in resend_clients {
            client.close().await;
        }
        // Every push of the round is now stored exactly once.
        for (room, known) in stored.iter().enumerate() {
            let round_start = heads_before[room];
            let now = blocking(|| history_after(&server, reader, room, round_start));
            let tail = &known[round_start as usize..];
            assert_eq!(
                now.len(),
                tail.len(),
                "{what}: {} after the resends",
                ROOMS[room]
            );
            for (message, known) in now.iter().zip(tail) {
                assert_matches(message, known, &what);
            }
        }
        let sent_this_round: usize = rounds.iter().map(|r| r.sent.len()).sum();
        let acked_this_round: usize = rounds
            .iter()
            .map(|r| r.acks.iter().filter(|a| a.is_some()).count())
            .sum();
        eprintln!(
            "{what}: kill after {delay} ms, {sent_this_round} sent, {acked_this_round} acked, \
             heads {:?}",
            stored.iter().map(Vec::len).collect::<Vec<_>>()
        );
        if long_tests() && round % 20 == 19 {
            full_check(&server, reader, &stored, &mut figures, &what);
        }
    }

    full_check(&server, &tokens[1], &stored, &mut figures, "final");
    // The store opens and reads end to end offline too.
    blocking(|| server.kill());
    let cli = common::Cli::on(server.data_dir());
    let exported = cli.export(&cli.cwd().join("export.jsonl"));
    let total: usize = stored.iter().map(Vec::len).sum();
    let message_lines = exported
        .lines()
        .filter(|l| l.contains("\"client_id\":\"k"))
        .count();
    assert_eq!(
        message_lines, total,
        "the offline export holds {message_lines} test messages, expected {total}"
    );
    eprintln!(
        "crash loop done in {:?}: seed {seed}, {figures:?}, final heads {:?}",
        started_at.elapsed(),
        stored.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(figures.kills, kills);
    assert!(
        figures.acked > 0,
        "no push was ever acknowledged: the test proved nothing"
    );
}

/// Reads every room's whole history and compares it with what is known.
fn full_check(
    server: &TestServer,
    token: &str,
    stored: &[Vec<Known>],
    figures: &mut Figures,
    what: &str,
) {
    let mut client_ids = HashSet::new();
    let mut verified = 0;
    for (room, known) in stored.iter().enumerate() {
        let history = blocking(|| history_after(server, token, room, 0));
        assert_eq!(
            history.len(),
            known.len(),
            "{what}: {} holds {} messages, expected {}",
            ROOMS[room],
            history.len(),
            known.len()
        );
        for (message, known) in history.iter().zip(known) {
            assert_matches(message, known, what);
            assert!(
                client_ids.insert(known.client_id.clone()),
                "{what}: client_id {} twice",
                known.client_id
            );
        }
        verified += history.len();
    }
    figures.verified = verified;
}
