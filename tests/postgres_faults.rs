//! PostgreSQL going away under a running confab (api.md §6): `/readyz`
//! answers 503 while the database is stopped and 200 again once it is
//! back; writes meanwhile answer `unavailable` promptly instead of hanging;
//! and after the database comes back, without restarting confab, service
//! resumes by itself with every acknowledged message kept and seqs gapless.
//!
//! Each test runs its own PostgreSQL ([`PgServer`]) and stops it with a
//! fast shutdown, as `pg_ctl stop -m fast` does. (A database unreachable at
//! start-up is refused with its host named: see `postgres_schema.rs`.)

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::phx::{blocking, PhxClient};
use common::postgres::PgServer;
use common::{request, wait_for, TestServer};
use serde_json::{json, Value};
use tokio::sync::watch;

const PASSWORD: &str = "fault-test-password";
const LOBBY: &str = "room:lobby";
/// The push rate limit is not what these tests exercise.
const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("CONFAB_PUSH_BURST", "1000000"),
    ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
];
/// The longest any answer may take, the database up or down ("promptly,
/// never hang"): the pool's own bound on waiting for a connection is 5 s.
const PROMPT: Duration = Duration::from_secs(6);
/// How long confab may take to notice the database is back.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long the database stays away at least: long enough for several
/// rounds of failed reconnects.
const OUTAGE: Duration = Duration::from_secs(2);
/// Pushes in flight per publishing socket, so that several batches are
/// being committed when the database goes.
const WINDOW: usize = 8;
/// A client's pause after an `unavailable` answer before trying again, as
/// a real client backs off (not a synchronisation).
const BACKOFF: Duration = Duration::from_millis(50);

/// A confab on `pg`'s database, without the push rate limit.
fn server_on(pg: &PgServer) -> TestServer {
    TestServer::options()
        .env("CONFAB_DATABASE_URL", &pg.url())
        .envs(&NO_RATE_LIMIT)
        .start()
}

/// `GET /readyz`: its status and how long the answer took.
fn readyz(server: &TestServer) -> (u16, Duration) {
    let started = Instant::now();
    let status = server.get("/readyz", None).status;
    (status, started.elapsed())
}

#[test]
fn readyz_follows_the_database_without_a_restart() {
    let mut pg = PgServer::start();
    let mut server = server_on(&pg);
    let pid = server.pid();
    let (token, _) = server.register("ada", PASSWORD);
    assert_eq!(readyz(&server).0, 200, "ready with the database up");

    pg.stop();
    let (status, took) = readyz(&server);
    assert_eq!(status, 503, "/readyz with the database stopped");
    assert!(
        took < PROMPT,
        "/readyz took {took:?} with the database down"
    );
    server
        .get("/healthz", None)
        .assert_status(200, "the process itself is up");
    let started = Instant::now();
    server
        .post_json(
            "/api/rooms/lobby/messages",
            Some(&token),
            &json!({"body": "while the database is away"}),
        )
        .assert_error(503, "unavailable", "a post with the database down");
    assert!(
        started.elapsed() < PROMPT,
        "the refused post took {:?}",
        started.elapsed()
    );
    // Still not ready a moment later: nothing pretends it is back.
    assert_eq!(readyz(&server).0, 503, "/readyz, asked again");

    pg.resume();
    wait_for(RECOVERY, "/readyz to answer 200 again", || {
        (readyz(&server).0 == 200).then_some(())
    });
    let posted = server.post_message("lobby", &token, &json!({"body": "back again"}));
    assert_eq!(posted["seq"], 1, "{posted}");
    assert!(server.is_running(), "confab exited:\n{}", server.logs());
    assert_eq!(server.pid(), pid, "confab was not restarted");
}

/// How one push was answered.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Ok {
        id: u64,
        seq: u64,
    },
    Unavailable,
    /// Any other answer (a test failure).
    Other(String),
}

/// One push of a publisher: what it sent, when, and what came back.
#[derive(Clone, Debug)]
struct Push {
    body: String,
    sent: Instant,
    took: Duration,
    outcome: Outcome,
}

/// Every publisher's pushes so far, by publisher.
type Log = Vec<Vec<Push>>;

/// A publisher on a socket: pushes `new_msg` to the lobby, up to
/// [`WINDOW`] in flight, until `stop`, recording every answer in
/// `log[index]`.
async fn socket_publisher(
    mut client: PhxClient,
    index: usize,
    stop: Arc<AtomicBool>,
    log: watch::Sender<Log>,
) {
    let record = |body: String, sent: Instant, outcome: Outcome| {
        let took = sent.elapsed();
        log.send_modify(|log| {
            log[index].push(Push {
                body,
                sent,
                took,
                outcome,
            })
        });
    };
    let join_ref = client.join_ref(LOBBY).expect("joined").to_owned();
    let mut pending: HashMap<String, (String, Instant)> = HashMap::new();
    let mut n = 0;
    loop {
        while !stop.load(Ordering::Relaxed) && pending.len() < WINDOW {
            let body = format!("socket{index}-{n}");
            n += 1;
            let msg_ref = client.make_ref();
            let payload = json!({"body": body});
            let sent = Instant::now();
            if let Err(e) = client
                .send(Some(&join_ref), Some(&msg_ref), LOBBY, "new_msg", payload)
                .await
            {
                record(body, sent, Outcome::Other(format!("send failed: {e}")));
                return;
            }
            pending.insert(msg_ref, (body, sent));
        }
        if pending.is_empty() {
            break;
        }
        let Some(frame) = client.next_frame(RECOVERY).await else {
            for (body, sent) in pending.into_values() {
                let end = client.end().cloned();
                let why = format!("no answer within {RECOVERY:?} (connection end: {end:?})");
                record(body, sent, Outcome::Other(why));
            }
            return;
        };
        // The publishers' broadcasts are not this test's business.
        let Some((body, sent)) = frame
            .msg_ref
            .as_ref()
            .filter(|_| frame.event == "phx_reply")
            .and_then(|msg_ref| pending.remove(msg_ref))
        else {
            continue;
        };
        let (status, response) = frame.reply_parts();
        let outcome = match status.as_str() {
            "ok" => Outcome::Ok {
                id: response["id"].as_u64().expect("ack id"),
                seq: response["seq"].as_u64().expect("ack seq"),
            },
            "error" if response["reason"] == "unavailable" => Outcome::Unavailable,
            _ => Outcome::Other(format!("{status} {response}")),
        };
        let failed = matches!(outcome, Outcome::Other(_));
        let unavailable = outcome == Outcome::Unavailable;
        record(body, sent, outcome);
        if failed {
            return;
        }
        if unavailable {
            tokio::time::sleep(BACKOFF).await;
        }
    }
    client.close().await;
}

/// A publisher over REST (`POST /api/rooms/lobby/messages`), like
/// [`socket_publisher`], on its own thread.
fn rest_publisher(
    addr: std::net::SocketAddr,
    token: String,
    index: usize,
    stop: Arc<AtomicBool>,
    log: watch::Sender<Log>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let body = format!("rest{index}-{n}");
        n += 1;
        let payload = json!({"body": body}).to_string();
        let sent = Instant::now();
        let response = request(
            addr,
            "POST",
            "/api/rooms/lobby/messages",
            Some(&token),
            Some(payload.as_bytes()),
            &[("Content-Type", "application/json")],
        );
        let took = sent.elapsed();
        let json: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        let outcome = match response.status {
            201 => Outcome::Ok {
                id: json["message"]["id"].as_u64().expect("message id"),
                seq: json["message"]["seq"].as_u64().expect("message seq"),
            },
            503 if json["error"] == "unavailable" => Outcome::Unavailable,
            status => Outcome::Other(format!("HTTP {status} {}", response.body)),
        };
        let failed = matches!(outcome, Outcome::Other(_));
        let unavailable = outcome == Outcome::Unavailable;
        log.send_modify(|log| {
            log[index].push(Push {
                body,
                sent,
                took,
                outcome,
            })
        });
        if failed {
            return;
        }
        if unavailable {
            std::thread::sleep(BACKOFF);
        }
    }
}

/// Waits until `done` holds for the log (re-checked on every answer), or
/// panics after `within` showing how far each publisher got.
async fn until(
    log: &mut watch::Receiver<Log>,
    within: Duration,
    what: &str,
    done: impl Fn(&Log) -> bool,
) {
    let timed_out = tokio::time::timeout(within, log.wait_for(|log| done(log)))
        .await
        .is_err();
    if timed_out {
        let summary: Vec<String> = log
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, pushes)| {
                let last = pushes.last().map(|p| &p.outcome);
                format!("publisher {i}: {} pushes, last {last:?}", pushes.len())
            })
            .collect();
        panic!("timed out after {within:?} waiting for {what}:\n{summary:#?}");
    }
}

/// Whether every publisher has at least `n` pushes sent at or after
/// `since` that were answered with `wanted`.
fn each_has(log: &Log, n: usize, since: Instant, wanted: fn(&Outcome) -> bool) -> bool {
    log.iter().all(|pushes| {
        pushes
            .iter()
            .filter(|p| p.sent >= since && wanted(&p.outcome))
            .count()
            >= n
    })
}

fn is_ok(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Ok { .. })
}

fn is_unavailable(outcome: &Outcome) -> bool {
    *outcome == Outcome::Unavailable
}

/// Several clients (three sockets with pushes in flight, one REST) post
/// continuously while PostgreSQL is stopped with a fast shutdown and, at
/// least [`OUTAGE`] later, started again. During the outage every post
/// answers `unavailable` promptly; afterwards posting works again on the
/// same sockets without restarting confab, every acknowledged message is
/// in the history with its id and seq, seqs are gapless, each publisher's
/// messages are in the order pushed, and nothing is stored twice or
/// invented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_while_publishing_loses_no_acknowledged_message() {
    const SOCKETS: usize = 3;
    let mut pg = blocking(PgServer::start);
    let mut server = blocking(|| server_on(&pg));
    let pid = server.pid();
    let tokens: Vec<String> = blocking(|| {
        (0..=SOCKETS)
            .map(|i| server.register(&format!("user{i}"), PASSWORD).0)
            .collect()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (log_tx, mut log) = watch::channel::<Log>(vec![Vec::new(); SOCKETS + 1]);
    let mut sockets = Vec::new();
    for (index, token) in tokens.iter().take(SOCKETS).enumerate() {
        let client = PhxClient::joined(server.addr(), token, LOBBY).await;
        sockets.push(tokio::spawn(socket_publisher(
            client,
            index,
            stop.clone(),
            log_tx.clone(),
        )));
    }
    let rest = {
        let (addr, token, stop, log) = (
            server.addr(),
            tokens[SOCKETS].clone(),
            stop.clone(),
            log_tx.clone(),
        );
        std::thread::spawn(move || rest_publisher(addr, token, SOCKETS, stop, log))
    };

    let started = Instant::now();
    until(&mut log, RECOVERY, "20 acknowledged posts each", |log| {
        each_has(log, 20, started, is_ok)
    })
    .await;

    let stopping = Instant::now();
    blocking(|| pg.stop());
    let down = Instant::now();
    until(
        &mut log,
        RECOVERY,
        "3 `unavailable` answers each with the database down",
        |log| each_has(log, 3, down, is_unavailable),
    )
    .await;
    let (status, _) = blocking(|| readyz(&server));
    assert_eq!(status, 503, "/readyz during the outage");
    tokio::time::sleep_until((down + OUTAGE).into()).await;

    let resuming = Instant::now();
    blocking(|| pg.resume());
    let up = Instant::now();
    until(
        &mut log,
        RECOVERY,
        "10 acknowledged posts each after the database came back",
        |log| each_has(log, 10, up, is_ok),
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    for socket in sockets {
        socket.await.expect("socket publisher");
    }
    blocking(|| rest.join()).expect("REST publisher");
    let log = log.borrow().clone();

    // Every push was answered promptly, with ok or unavailable only; while
    // the database was down, with unavailable.
    for (index, pushes) in log.iter().enumerate() {
        for push in pushes {
            assert!(
                !matches!(push.outcome, Outcome::Other(_)),
                "publisher {index}: {push:?}"
            );
            assert!(
                push.took < PROMPT,
                "publisher {index}: an answer took {:?}: {push:?}",
                push.took
            );
            if push.sent >= down && push.sent + push.took < resuming {
                assert_eq!(
                    push.outcome,
                    Outcome::Unavailable,
                    "publisher {index}: acknowledged with the database down: {push:?}"
                );
            }
        }
    }
    let outage: Vec<&Push> = log
        .iter()
        .flatten()
        .filter(|p| p.sent >= stopping && p.sent < up)
        .collect();
    assert!(
        outage.iter().any(|p| p.outcome == Outcome::Unavailable),
        "no post noticed the outage"
    );

    // The history: gapless, every acknowledged message with its id and
    // seq, each body at most once, nothing that was not pushed.
    let history = blocking(|| server.room_messages_after("lobby", &tokens[0], 0));
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).collect();
    assert_eq!(seqs, expected, "history seqs are not 1..=N");
    let mut bodies = HashSet::new();
    for message in &history {
        let body = message["body"].as_str().expect("body").to_owned();
        assert!(bodies.insert(body.clone()), "stored twice: {message}");
    }
    let pushed: HashSet<&str> = log.iter().flatten().map(|p| p.body.as_str()).collect();
    for body in &bodies {
        assert!(pushed.contains(body.as_str()), "never pushed: {body}");
    }
    let mut acked = 0;
    for push in log.iter().flatten() {
        if let Outcome::Ok { id, seq } = push.outcome {
            acked += 1;
            let stored = history
                .get(seq as usize - 1)
                .unwrap_or_else(|| panic!("acknowledged {push:?} is not in the history"));
            assert_eq!(stored["id"], id, "{push:?} vs {stored}");
            assert_eq!(stored["body"], push.body.as_str(), "{push:?} vs {stored}");
        }
    }
    assert!(
        acked >= 30 * (SOCKETS + 1),
        "only {acked} acknowledged posts"
    );
    let unavailable = log
        .iter()
        .flatten()
        .filter(|p| p.outcome == Outcome::Unavailable)
        .count();
    let slowest = log
        .iter()
        .flatten()
        .map(|p| p.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} posts: {acked} acknowledged, {unavailable} unavailable, {} stored; \
         database down for {:?}; slowest answer {slowest:?}",
        pushed.len(),
        history.len(),
        up - stopping
    );
    assert!(server.is_running(), "confab exited:\n{}", server.logs());
    assert_eq!(server.pid(), pid, "confab was not restarted");
    // Each publisher's messages are stored in the order it pushed them.
    let mut last_stored: HashMap<&str, u64> = HashMap::new();
    for message in &history {
        let body = message["body"].as_str().expect("body");
        let (publisher, n) = body.rsplit_once('-').expect("publisher-n body");
        let n: u64 = n.parse().expect("push number");
        if let Some(before) = last_stored.insert(publisher, n) {
            assert!(
                before < n,
                "{publisher}: push {n} stored after push {before}"
            );
        }
    }
}
