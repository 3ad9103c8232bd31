//! Cluster mode under faults (api.md §6: every promise holds for clients
//! on different nodes). Each test runs its own cluster (see
//! `common/cluster.rs`): one private PostgreSQL, three clustered NATS
//! servers and three confab nodes, node `i` on NATS server `i`, with
//! heartbeats every 200 ms and a node down after 5 silent ones.
//!
//! The clients are real Phoenix V2 WebSocket clients. A [`Member`] keeps
//! one socket joined to a topic and records every `new_msg` seq it
//! receives (join replies included), its presence view, and the answer to
//! each of its own pushes when it publishes. After a fault, each socket's
//! seqs must be exactly `1..=N` for the `N` messages the database holds:
//! nothing missed, nothing repeated, nothing out of order; and every
//! acknowledged push must be in the database with its seq.
//!
//! The last test covers a broadcast lost on its way out of a node (inside
//! a NATS server that hangs, then dies) with nothing posted after it.
//!
//! Nothing sleeps to synchronise: waits poll what a client has seen, or a
//! node's `/metrics` or `/readyz`, with deadlines that only decide when a
//! test fails. (Publishers pace their pushes and outages last a set time;
//! those pauses shape the load, they do not wait for anything.)

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::phx::{blocking, End, Frame, PhxClient};
use common::{request, TestServer};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const PASSWORD: &str = "cluster-test-password";
const LOBBY: &str = "room:lobby";
/// How long a broadcast may take to reach every socket on every node,
/// gap fills and reconnects included.
const DELIVERY: Duration = Duration::from_secs(20);
/// How long a single cross-node event (typing, presence, a close) may take.
const QUICK: Duration = Duration::from_secs(5);
/// The bound on a killed node's presences leaving the others: the silence
/// bound is 200 ms × 5; the rest is slack for a loaded machine.
const PRESENCE_GONE: Duration = Duration::from_secs(5);
/// The longest any answer may take with the database away ("at once,
/// never hang"): the pool's own bound on waiting for a connection is 5 s.
const PROMPT: Duration = Duration::from_secs(6);
/// How long a publisher waits for a reply before it counts as lost.
const REPLY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `probe` every 20 ms until it returns `Some`, or panics with
/// `what` (and `detail()`) after `within`.
async fn until<T>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    detail: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {within:?} waiting for {what}\n{}",
                detail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads frames until one satisfies `wanted` (dropping the others), or
/// panics with `what` and the frames seen after `within`.
async fn wait_frame(
    client: &mut PhxClient,
    within: Duration,
    what: &str,
    wanted: impl Fn(&Frame) -> bool,
) -> Frame {
    let deadline = Instant::now() + within;
    let mut skipped: Vec<Frame> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.next_frame(left).await {
            Some(frame) if wanted(&frame) => return frame,
            Some(frame) => skipped.push(frame),
            None => panic!(
                "{what}: not seen within {within:?} (connection end: {:?}); other frames: {:#?}",
                client.end(),
                &skipped[skipped.len().saturating_sub(20)..]
            ),
        }
    }
}

/// `user:<id>` of a user object.
fn user_topic(user: &Value) -> String {
    format!("user:{}", user["id"])
}

/// The presence key (user id as a string) of a user object.
fn key_of(user: &Value) -> String {
    user["id"].to_string()
}

/// Whether a `presence_state` or `presence_diff` (its `side`: `joins` or
/// `leaves`) frame on `topic` names `key`.
fn presence_names(frame: &Frame, topic: &str, key: &str, side: &str) -> bool {
    if frame.topic != topic {
        return false;
    }
    match frame.event.as_str() {
        "presence_state" => side == "joins" && frame.payload.get(key).is_some(),
        "presence_diff" => frame.payload[side].get(key).is_some(),
        _ => false,
    }
}

/// Joins `topic` on `addr` with `token`, asserting an ok reply.
async fn joined(addr: SocketAddr, token: &str, topic: &str) -> PhxClient {
    PhxClient::joined(addr, token, topic).await
}

// ---------------------------------------------------------------------------
// Members: sockets that listen and publish, recording what they see
// ---------------------------------------------------------------------------

/// How one push was answered.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Ok(u64),
    Unavailable,
    /// Any other answer, or none (a test failure).
    Other(String),
}

/// One push of a member.
#[derive(Clone, Debug)]
struct Push {
    body: String,
    sent: Instant,
    took: Duration,
    outcome: Outcome,
}

/// What one member has seen so far.
#[derive(Debug, Default)]
struct Seen {
    /// `new_msg` seqs on the topic in arrival order, from join replies too.
    seqs: Vec<u64>,
    pushes: Vec<Push>,
    /// The presences on the topic as this socket sees them: `(key, phx_ref)`.
    present: HashSet<(String, String)>,
    /// Set by the member once it has seen the order to be quiet and has
    /// no push unanswered.
    idle: bool,
    end: Option<End>,
}

impl Seen {
    fn acked(&self) -> usize {
        self.pushes
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Ok(_)))
            .count()
    }

    fn answered_since(&self, since: Instant, wanted: fn(&Outcome) -> bool) -> usize {
        self.pushes
            .iter()
            .filter(|p| p.sent >= since && wanted(&p.outcome))
            .count()
    }

    fn is_present(&self, key: &str) -> bool {
        self.present.iter().any(|(k, _)| k == key)
    }

    /// Applies a `presence_state` or `presence_diff` payload.
    fn presence(&mut self, event: &str, payload: &Value) {
        let metas = |side: &Value| -> Vec<(String, String)> {
            side.as_object()
                .into_iter()
                .flatten()
                .flat_map(|(key, entry)| {
                    entry["metas"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m["phx_ref"].as_str())
                        .map(|r| (key.clone(), r.to_owned()))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        match event {
            "presence_state" => self.present.extend(metas(payload)),
            "presence_diff" => {
                self.present.extend(metas(&payload["joins"]));
                for left in metas(&payload["leaves"]) {
                    self.present.remove(&left);
                }
            }
            _ => {}
        }
    }

    /// Records the messages of a join reply.
    fn joined(&mut self, reply: &Value) {
        for message in reply["messages"].as_array().into_iter().flatten() {
            self.seqs
                .push(message["seq"].as_u64().expect("message seq"));
        }
    }
}

fn is_ok(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Ok(_))
}

fn is_unavailable(outcome: &Outcome) -> bool {
    *outcome == Outcome::Unavailable
}

/// Whether and how a member publishes.
#[derive(Clone, Copy, Debug)]
enum Publish {
    /// Listens only.
    No,
    /// `count` pushes, `window` in flight, as fast as answered.
    Count { count: usize, window: usize },
    /// Until stopped, `window` in flight, at most one push per `pace`.
    Paced { window: usize, pace: Duration },
}

/// A socket joined to a topic, run by a task: it records every `new_msg`
/// seq and presence change it receives and publishes as told.
struct Member {
    name: String,
    seen: Arc<Mutex<Seen>>,
    /// Set: no more pushes.
    quiet: Arc<AtomicBool>,
    /// Set: end once the pushes in flight are answered.
    stop: Arc<AtomicBool>,
    /// Gives back the socket client when it ends (nothing for REST).
    task: Option<JoinHandle<Option<PhxClient>>>,
}

impl Member {
    /// Connects to `addr`, joins `topic` (with `payload`) and starts.
    async fn join(
        name: &str,
        addr: SocketAddr,
        token: &str,
        topic: &str,
        payload: Value,
        publish: Publish,
    ) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        Member::rejoin(name, seen, addr, token, topic, payload, publish).await
    }

    /// [`Member::join`] continuing an earlier member's record.
    async fn rejoin(
        name: &str,
        seen: Arc<Mutex<Seen>>,
        addr: SocketAddr,
        token: &str,
        topic: &str,
        payload: Value,
        publish: Publish,
    ) -> Member {
        let mut client = PhxClient::connect(addr, token)
            .await
            .unwrap_or_else(|e| panic!("{name}: connect to {addr}: {e}"));
        let reply = client.join_ok(topic, payload).await;
        {
            let mut seen = lock(&seen);
            seen.end = None;
            seen.joined(&reply);
        }
        let quiet = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run_member(
            name.to_owned(),
            client,
            topic.to_owned(),
            publish,
            seen.clone(),
            [quiet.clone(), stop.clone()],
        ));
        Member {
            name: name.to_owned(),
            seen,
            quiet,
            stop,
            task: Some(task),
        }
    }

    /// Publishes again after [`Member::quiet`].
    fn resume(&self) {
        self.quiet.store(false, Ordering::Relaxed);
    }

    /// Stops publishing and waits until the pushes in flight are answered
    /// (the member goes on listening).
    async fn quiet(&self) {
        self.quiet.store(true, Ordering::Relaxed);
        until(
            REPLY + QUICK,
            &format!("{}: the pushes in flight to be answered", self.name),
            || self.seen().idle.then_some(()),
            || summary(&[self]),
        )
        .await;
    }

    /// A publisher over REST (`POST /api/rooms/lobby/messages`) on a
    /// thread of its own, at most one post per `pace`, paused while quiet,
    /// until stopped.
    fn rest(name: &str, addr: SocketAddr, token: &str, pace: Duration) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let quiet = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (name, token, seen) = (name.to_owned(), token.to_owned(), seen.clone());
            let flags = [quiet.clone(), stop.clone()];
            tokio::task::spawn_blocking(move || {
                rest_publisher(&name, addr, &token, pace, &seen, &flags);
                None
            })
        };
        Member {
            name: name.to_owned(),
            seen,
            quiet,
            stop,
            task: Some(task),
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    /// Stops publishing and listening once the pushes in flight are
    /// answered; returns the client (`None` if the connection had ended).
    async fn stop(&mut self) -> Option<PhxClient> {
        self.stop.store(true, Ordering::Relaxed);
        let task = self.task.take()?;
        let client = task
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))?;
        client.end().is_none().then_some(client)
    }

    /// Waits for the member's task to end by itself (its connection ended).
    async fn ended(&mut self, within: Duration) -> End {
        let task = self.task.take().expect("the member runs");
        let client = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("{}: the connection did not end in {within:?}", self.name))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
            .expect("a socket member");
        client.end().cloned().expect("the connection ended")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The task of a [`Member`].
async fn run_member(
    name: String,
    mut client: PhxClient,
    topic: String,
    publish: Publish,
    seen: Arc<Mutex<Seen>>,
    [quiet, stop]: [Arc<AtomicBool>; 2],
) -> Option<PhxClient> {
    let join_ref = client.join_ref(&topic).expect("joined").to_owned();
    let (limit, window, pace) = match publish {
        Publish::No => (0, 1, Duration::ZERO),
        Publish::Count { count, window } => (count, window, Duration::ZERO),
        Publish::Paced { window, pace } => (usize::MAX, window, pace),
    };
    let mut pending: HashMap<String, (String, Instant)> = HashMap::new();
    let mut sent = 0usize;
    let mut next_send = Instant::now();
    let record = |body: String, sent: Instant, outcome: Outcome| {
        lock(&seen).pushes.push(Push {
            body,
            sent,
            took: sent.elapsed(),
            outcome,
        });
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping
            && !quiet.load(Ordering::Relaxed)
            && sent < limit
            && pending.len() < window
            && Instant::now() >= next_send
            && client.end().is_none()
        {
            let body = format!("{name}-{sent}");
            sent += 1;
            let msg_ref = client.make_ref();
            let now = Instant::now();
            let payload = json!({"body": body});
            if let Err(e) = client
                .send(Some(&join_ref), Some(&msg_ref), &topic, "new_msg", payload)
                .await
            {
                record(body, now, Outcome::Other(format!("send failed: {e}")));
                break;
            }
            pending.insert(msg_ref, (body, now));
            next_send = now + pace;
        }
        // Read after any send of this round: no push goes out once idle.
        lock(&seen).idle = quiet.load(Ordering::Relaxed) && pending.is_empty();
        if stopping && pending.is_empty() {
            return Some(client);
        }
        // Pushes unanswered for too long, or while stopping, count as lost.
        let overdue: Vec<String> = pending
            .iter()
            .filter(|(_, (_, at))| at.elapsed() > REPLY)
            .map(|(r, _)| r.clone())
            .collect();
        for msg_ref in overdue {
            let (body, at) = pending.remove(&msg_ref).expect("pending");
            record(
                body,
                at,
                Outcome::Other(format!("no reply within {REPLY:?}")),
            );
        }
        let mut wait = Duration::from_millis(50);
        if !stopping && sent < limit && pending.len() < window {
            wait = wait.min(next_send.saturating_duration_since(Instant::now()));
        }
        let Some(frame) = client.next_frame(wait).await else {
            if let Some(end) = client.end().cloned() {
                for (body, at) in pending.drain().map(|(_, v)| v) {
                    record(
                        body,
                        at,
                        Outcome::Other(format!("connection ended: {end:?}")),
                    );
                }
                let mut seen = lock(&seen);
                seen.end = Some(end);
                seen.idle = true;
                return Some(client);
            }
            continue;
        };
        if frame.event == "phx_reply" {
            let Some((body, at)) = frame.msg_ref.as_ref().and_then(|r| pending.remove(r)) else {
                continue;
            };
            let (status, response) = frame.reply_parts();
            let outcome = match status.as_str() {
                "ok" => Outcome::Ok(response["seq"].as_u64().expect("ack seq")),
                "error" if response["reason"] == "unavailable" => Outcome::Unavailable,
                _ => Outcome::Other(format!("{status} {response}")),
            };
            record(body, at, outcome);
        } else if frame.is_new_msg_on(&topic) {
            let seq = frame.seq().expect("new_msg seq");
            lock(&seen).seqs.push(seq);
        } else if frame.topic == topic {
            lock(&seen).presence(&frame.event, &frame.payload);
        }
    }
}

/// The loop of a REST [`Member`].
fn rest_publisher(
    name: &str,
    addr: SocketAddr,
    token: &str,
    pace: Duration,
    seen: &Mutex<Seen>,
    [quiet, stop]: &[Arc<AtomicBool>; 2],
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let idle = quiet.load(Ordering::Relaxed);
        lock(seen).idle = idle;
        if idle {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let body = format!("{name}-{n}");
        n += 1;
        let payload = json!({"body": body}).to_string();
        let sent = Instant::now();
        let response = request(
            addr,
            "POST",
            "/api/rooms/lobby/messages",
            Some(token),
            Some(payload.as_bytes()),
            &[("Content-Type", "application/json")],
        );
        let took = sent.elapsed();
        let json: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        let outcome = match response.status {
            201 => Outcome::Ok(json["message"]["seq"].as_u64().expect("message seq")),
            503 if json["error"] == "unavailable" => Outcome::Unavailable,
            status => Outcome::Other(format!("HTTP {status} {}", response.body)),
        };
        let mut seen = lock(seen);
        seen.pushes.push(Push {
            body,
            sent,
            took,
            outcome,
        });
        drop(seen);
        std::thread::sleep(pace.saturating_sub(took));
    }
}

/// Every push of `members` answered with something other than ok or
/// unavailable (a failure to show).
fn failed_pushes(members: &[&Member]) -> Vec<String> {
    members
        .iter()
        .flat_map(|m| {
            m.seen()
                .pushes
                .iter()
                .filter(|p| matches!(p.outcome, Outcome::Other(_)))
                .map(|p| format!("{}: {p:?}", m.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How far each member got, for failure messages.
fn summary(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| {
            let seen = m.seen();
            let mut distinct = seen.seqs.clone();
            distinct.sort_unstable();
            distinct.dedup();
            format!(
                "{}: {} seqs received ({} distinct, last {:?}), {} pushes, {} acked, end {:?}",
                m.name,
                seen.seqs.len(),
                distinct.len(),
                seen.seqs.last(),
                seen.pushes.len(),
                seen.acked(),
                seen.end
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the members together have at least `n` acknowledged pushes
/// sent at or after `since`.
async fn until_acked(members: &[&Member], n: usize, since: Instant, what: &str) {
    until(
        DELIVERY,
        what,
        || {
            let total: usize = members
                .iter()
                .map(|m| m.seen().answered_since(since, is_ok))
                .sum();
            (total >= n).then_some(())
        },
        || summary(members),
    )
    .await;
}

/// The whole history of the lobby, read from `node`: asserts seqs are
/// `1..=N`, each body stored once, and every push acknowledged by any of
/// `publishers` stored with its seq. Returns `N`.
fn check_history(node: &TestServer, token: &str, publishers: &[&Member]) -> u64 {
    let history = node.room_messages_after("lobby", token, 0);
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).collect();
    assert_eq!(seqs, expected, "the stored seqs are not 1..=N");
    let mut bodies = HashSet::new();
    for message in &history {
        let body = message["body"].as_str().expect("body").to_owned();
        assert!(bodies.insert(body), "stored twice: {message}");
    }
    let mut acked = 0;
    for member in publishers {
        for push in &member.seen().pushes {
            if let Outcome::Ok(seq) = push.outcome {
                acked += 1;
                let stored = history.get(seq as usize - 1).unwrap_or_else(|| {
                    panic!("{}: acknowledged {push:?} is not stored", member.name)
                });
                assert_eq!(
                    stored["body"],
                    push.body.as_str(),
                    "{}: acknowledged {push:?} vs stored {stored}",
                    member.name
                );
            }
        }
    }
    assert!(acked > 0, "nothing was acknowledged");
    history.len() as u64
}

/// Waits until every member has received `n` distinct seqs, stops them,
/// then asserts each received exactly `1..=n` in order.
async fn check_delivery(members: &mut [&mut Member], n: u64) {
    {
        let view: Vec<&Member> = members.iter().map(|m| &**m).collect();
        wait_delivered(&view, n).await;
    }
    for member in members.iter_mut() {
        member.stop().await;
        assert_exact(member, n);
    }
}

/// Waits until every member has received each of the seqs `1..=n`.
async fn wait_delivered(members: &[&Member], n: u64) {
    until(
        DELIVERY,
        &format!("every socket to receive seqs 1..={n}"),
        || {
            members
                .iter()
                .all(|m| {
                    let seen = m.seen();
                    let distinct: HashSet<u64> = seen.seqs.iter().copied().collect();
                    (1..=n).all(|s| distinct.contains(&s))
                })
                .then_some(())
        },
        || summary(members),
    )
    .await;
}

/// Asserts that `member` received exactly the seqs `1..=n`, in order.
fn assert_exact(member: &Member, n: u64) {
    let seen = member.seen();
    let expected: Vec<u64> = (1..=n).collect();
    if seen.seqs != expected {
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for s in &seen.seqs {
            *counts.entry(*s).or_default() += 1;
        }
        let mut repeated: Vec<u64> = counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(s, _)| *s)
            .collect();
        repeated.sort_unstable();
        let missing: Vec<u64> = (1..=n).filter(|s| !counts.contains_key(s)).collect();
        let disorder: Vec<(u64, u64)> = seen
            .seqs
            .windows(2)
            .filter(|w| w[1] <= w[0])
            .map(|w| (w[0], w[1]))
            .take(20)
            .collect();
        panic!(
            "{}: received {} seqs, want exactly 1..={n} in order; missing: {missing:?}; \
             repeated: {repeated:?}; out of order (previous, next): {disorder:?}",
            member.name,
            seen.seqs.len()
        );
    }
}

/// A member `{prefix}{i}` on each node `i`, as the `i`th of `users`.
async fn one_per_node(
    cluster: &TestCluster,
    prefix: &str,
    users: &[(String, Value)],
    publish: Publish,
) -> Vec<Member> {
    let mut members = Vec::new();
    for (i, (token, _)) in users.iter().enumerate() {
        let name = format!("{prefix}{i}");
        members.push(Member::join(&name, cluster.addr(i), token, LOBBY, json!({}), publish).await);
    }
    members
}

/// Registers `names` through node 0; returns their `(token, user)`s.
fn register_all(cluster: &TestCluster, names: &[&str]) -> Vec<(String, Value)> {
    names
        .iter()
        .map(|name| cluster.register(name, PASSWORD))
        .collect()
}

fn readyz_text(cluster: &TestCluster, i: usize) -> (u16, String) {
    let response = cluster.readyz(i);
    (response.status, response.body.trim().to_owned())
}

// ---------------------------------------------------------------------------
// a. Everything crosses nodes
// ---------------------------------------------------------------------------

/// Users on different nodes see each other's messages in seq order,
/// typing, edits, deletions, reactions, presence joins and leaves;
/// credential changes, member removals and personal notifications made on
/// one node act on sockets on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_a_node_does_reaches_sockets_on_the_others() {
    let cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| register_all(&cluster, &["ann", "bob", "cat"]));
    let (ann_token, ann) = users[0].clone();
    let (bob_token, bob) = users[1].clone();
    let (cat_token, cat) = users[2].clone();

    let mut ann_ws = joined(cluster.addr(0), &ann_token, LOBBY).await;
    let mut bob_ws = joined(cluster.addr(1), &bob_token, LOBBY).await;

    // Presence: each sees the other, whichever joined first.
    wait_frame(
        &mut bob_ws,
        QUICK,
        "node 1 sees ann (node 0) present",
        |f| presence_names(f, LOBBY, &key_of(&ann), "joins"),
    )
    .await;
    wait_frame(
        &mut ann_ws,
        QUICK,
        "node 0 sees bob (node 1) present",
        |f| presence_names(f, LOBBY, &key_of(&bob), "joins"),
    )
    .await;

    // Messages from both nodes, interleaved: both sockets get 1..=20 in order.
    for i in 0..10 {
        let (status, reply) = ann_ws
            .push(LOBBY, "new_msg", json!({"body": format!("ann {i} @cat")}))
            .await;
        assert_eq!(status, "ok", "{reply}");
        let (status, reply) = bob_ws
            .push(LOBBY, "new_msg", json!({"body": format!("bob {i}")}))
            .await;
        assert_eq!(status, "ok", "{reply}");
    }
    for (name, ws) in [("ann", &mut ann_ws), ("bob", &mut bob_ws)] {
        let mut seqs = Vec::new();
        while seqs.len() < 20 {
            let frame = wait_frame(
                ws,
                QUICK,
                &format!("{name}: new_msg {}", seqs.len() + 1),
                |f| f.is_new_msg_on(LOBBY),
            )
            .await;
            seqs.push(frame.seq().expect("seq"));
        }
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "{name}'s seqs");
    }

    // Typing on node 0 reaches node 1.
    ann_ws
        .send(
            ann_ws.join_ref(LOBBY).map(str::to_owned).as_deref(),
            None,
            LOBBY,
            "typing",
            json!({}),
        )
        .await
        .expect("typing");
    let typing = wait_frame(&mut bob_ws, QUICK, "typing from node 0", |f| {
        f.event == "typing" && f.topic == LOBBY
    })
    .await;
    assert_eq!(typing.payload["user"]["id"], ann["id"], "{typing:?}");

    // An edit and a deletion on node 0, a reaction on node 1.
    let (status, reply) = ann_ws
        .push(
            LOBBY,
            "edit_msg",
            json!({"seq": 1, "body": "edited on node 0"}),
        )
        .await;
    assert_eq!(status, "ok", "edit: {reply}");
    let updated = wait_frame(&mut bob_ws, QUICK, "msg_updated from node 0", |f| {
        f.event == "msg_updated" && f.topic == LOBBY
    })
    .await;
    assert_eq!(updated.payload["seq"], 1, "{updated:?}");
    assert_eq!(updated.payload["body"], "edited on node 0", "{updated:?}");
    let (status, reply) = ann_ws.push(LOBBY, "delete_msg", json!({"seq": 3})).await;
    assert_eq!(status, "ok", "delete: {reply}");
    let deleted = wait_frame(&mut bob_ws, QUICK, "msg_deleted from node 0", |f| {
        f.event == "msg_deleted" && f.topic == LOBBY
    })
    .await;
    assert_eq!(deleted.payload["seq"], 3, "{deleted:?}");
    let (status, reply) = bob_ws
        .push(LOBBY, "react", json!({"seq": 2, "emoji": "👍"}))
        .await;
    assert_eq!(status, "ok", "react: {reply}");
    let reaction = wait_frame(&mut ann_ws, QUICK, "reaction from node 1", |f| {
        f.event == "reaction" && f.topic == LOBBY
    })
    .await;
    assert_eq!(reaction.payload["seq"], 2, "{reaction:?}");
    assert_eq!(reaction.payload["user_id"], bob["id"], "{reaction:?}");
    assert_eq!(reaction.payload["on"], true, "{reaction:?}");

    // A mention made on node 0 reaches cat's personal topic on node 2; so
    // does being added to a private room there.
    let cat_topic = user_topic(&cat);
    let mut cat_ws = joined(cluster.addr(2), &cat_token, &cat_topic).await;
    let (status, reply) = ann_ws
        .push(LOBBY, "new_msg", json!({"body": "hello @cat"}))
        .await;
    assert_eq!(status, "ok", "{reply}");
    let mention = wait_frame(&mut cat_ws, QUICK, "mention from node 0 on node 2", |f| {
        f.event == "mention" && f.topic == cat_topic
    })
    .await;
    assert_eq!(mention.payload["topic"], LOBBY, "{mention:?}");
    assert_eq!(mention.payload["seq"], reply["seq"], "{mention:?}");
    assert_eq!(mention.payload["author"]["id"], ann["id"], "{mention:?}");

    blocking(|| {
        cluster
            .node(0)
            .post_json(
                "/api/rooms",
                Some(&ann_token),
                &json!({"name": "secret", "private": true}),
            )
            .assert_status(201, "create a private room");
        cluster
            .node(0)
            .post_json(
                "/api/rooms/secret/members",
                Some(&ann_token),
                &json!({"username": "cat"}),
            )
            .assert_status(204, "add cat");
    });
    let added = wait_frame(
        &mut cat_ws,
        QUICK,
        "room_added from node 0 on node 2",
        |f| f.event == "room_added" && f.topic == cat_topic,
    )
    .await;
    assert_eq!(added.payload["room"]["name"], "secret", "{added:?}");

    // Removing cat on node 0 ejects cat's socket on node 2 from the room.
    cat_ws.join_ok("room:secret", json!({})).await;
    let secret_ref = cat_ws.join_ref("room:secret").expect("joined").to_owned();
    blocking(|| {
        cluster
            .node(0)
            .request(
                "DELETE",
                "/api/rooms/secret/members/cat",
                Some(&ann_token),
                None,
                &[],
            )
            .assert_status(204, "remove cat");
    });
    let close = wait_frame(
        &mut cat_ws,
        QUICK,
        "phx_close of room:secret on node 2",
        |f| f.event == "phx_close" && f.topic == "room:secret",
    )
    .await;
    assert_eq!(
        close.join_ref.as_deref(),
        Some(secret_ref.as_str()),
        "{close:?}"
    );

    // Bob's socket on node 1 closes: node 0 sees bob leave.
    bob_ws.close().await;
    wait_frame(&mut ann_ws, QUICK, "node 0 sees bob (node 1) leave", |f| {
        presence_names(f, LOBBY, &key_of(&bob), "leaves")
    })
    .await;

    // A password change through node 0 closes bob's socket on node 1
    // (opened with another token of his).
    let (other_token, _) = blocking(|| cluster.node(1).login("bob", PASSWORD));
    let mut bob_ws = joined(cluster.addr(1), &bob_token, LOBBY).await;
    blocking(|| {
        cluster
            .node(0)
            .send_json(
                "PATCH",
                "/api/me",
                Some(&other_token),
                &json!({"password": {"current": PASSWORD, "new": "another-password-1"}}),
            )
            .assert_status(200, "change bob's password");
    });
    let end = bob_ws.wait_end(QUICK).await;
    assert!(
        matches!(end, End::Close(1008, _)),
        "bob's socket on node 1 ended with {end:?}, not 1008 (credentials revoked)"
    );
    wait_frame(
        &mut ann_ws,
        QUICK,
        "node 0 sees bob's revoked socket leave",
        |f| presence_names(f, LOBBY, &key_of(&bob), "leaves"),
    )
    .await;
}

// ---------------------------------------------------------------------------
// b. Concurrent publishers on every node
// ---------------------------------------------------------------------------

/// Three publishers on three nodes push 200 messages each into one topic
/// at once, 16 in flight each; a listener on every node besides. Every
/// socket receives every seq exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_every_node_give_every_socket_every_seq_once() {
    const EACH: usize = 200;
    let cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| {
        register_all(
            &cluster,
            &[
                "user_p0", "user_p1", "user_p2", "user_l0", "user_l1", "user_l2",
            ],
        )
    });
    let mut listeners = one_per_node(&cluster, "l", &users[3..], Publish::No).await;
    let count = Publish::Count {
        count: EACH,
        window: 16,
    };
    let mut publishers = one_per_node(&cluster, "p", &users[..3], count).await;
    let view: Vec<&Member> = publishers.iter().collect();
    let started = Instant::now();
    until(
        DELIVERY * 2,
        "every push answered",
        || {
            view.iter()
                .all(|m| m.seen().pushes.len() == EACH)
                .then_some(())
        },
        || summary(&view),
    )
    .await;
    let published = started.elapsed();
    let failed = failed_pushes(&view);
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    let n = blocking(|| check_history(cluster.node(1), &users[0].0, &view));
    assert_eq!(n, 3 * EACH as u64, "stored messages");
    let mut all: Vec<&mut Member> = publishers.iter_mut().chain(listeners.iter_mut()).collect();
    check_delivery(&mut all, n).await;
    let fills: f64 = (0..3)
        .map(|i| cluster.metric(i, "confab_gap_fills_total").unwrap_or(0.0))
        .sum();
    let duplicates: f64 = (0..3)
        .map(|i| {
            cluster
                .metric(i, "confab_bus_duplicates_total")
                .unwrap_or(0.0)
        })
        .sum();
    eprintln!("{n} messages from 3 nodes in {published:?}; {fills} gap fills, {duplicates} duplicates dropped");
}

// ---------------------------------------------------------------------------
// c. A node killed while others publish
// ---------------------------------------------------------------------------

/// Node 0 is killed with SIGKILL while publishers on nodes 1 and 2 push.
/// Every acknowledged message is stored; the killed node's client
/// reconnects to node 1 with `last_seq` and ends up with every seq exactly
/// once; its presence leaves the other nodes within the silence bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_and_its_presences_leave() {
    let mut cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| register_all(&cluster, &["user_p1", "user_p2", "victim"]));
    let (victim_token, victim) = users[2].clone();
    let paced = Publish::Paced {
        window: 4,
        pace: Duration::from_millis(10),
    };
    let mut victim_ws = Member::join(
        "victim",
        cluster.addr(0),
        &victim_token,
        LOBBY,
        json!({}),
        Publish::No,
    )
    .await;
    let mut p1 = Member::join("p1", cluster.addr(1), &users[0].0, LOBBY, json!({}), paced).await;
    let mut p2 = Member::join("p2", cluster.addr(2), &users[1].0, LOBBY, json!({}), paced).await;
    let victim_key = key_of(&victim);
    until(
        QUICK,
        "nodes 1 and 2 to see the victim present",
        || (p1.seen().is_present(&victim_key) && p2.seen().is_present(&victim_key)).then_some(()),
        || summary(&[&p1, &p2]),
    )
    .await;
    let started = Instant::now();
    until_acked(&[&p1, &p2], 60, started, "60 acknowledged posts").await;

    blocking(|| cluster.kill(0));
    let killed = Instant::now();
    let end = victim_ws.ended(QUICK).await;
    assert!(
        matches!(end, End::Eof(_)),
        "the victim's socket ended with {end:?}"
    );
    until(
        PRESENCE_GONE,
        "the killed node's presence to leave nodes 1 and 2",
        || (!p1.seen().is_present(&victim_key) && !p2.seen().is_present(&victim_key)).then_some(()),
        || summary(&[&p1, &p2]),
    )
    .await;
    let gone = killed.elapsed();
    for i in 1..3 {
        cluster.wait_peers(i, 1, PRESENCE_GONE);
    }

    // The victim's client reconnects to node 1 and recovers from its last seq.
    let last_seq = *victim_ws.seen().seqs.last().unwrap_or(&0);
    let mut victim_ws = Member::rejoin(
        "victim",
        victim_ws.seen.clone(),
        cluster.addr(1),
        &victim_token,
        LOBBY,
        json!({"last_seq": last_seq}),
        Publish::No,
    )
    .await;
    let resumed = Instant::now();
    until_acked(
        &[&p1, &p2],
        60,
        resumed,
        "60 acknowledged posts after the kill",
    )
    .await;
    p1.quiet().await;
    p2.quiet().await;
    let failed = failed_pushes(&[&p1, &p2]);
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    let n = blocking(|| check_history(cluster.node(1), &users[0].0, &[&p1, &p2]));
    check_delivery(&mut [&mut p1, &mut p2, &mut victim_ws], n).await;
    eprintln!(
        "{n} messages; the victim resumed from seq {last_seq}; its presence left in {gone:?}"
    );
}

// ---------------------------------------------------------------------------
// d. One NATS server killed
// ---------------------------------------------------------------------------

/// A publisher and a listener on each node; NATS server 0 (node 0's) is
/// killed with SIGKILL mid-stream. Node 0 reconnects to another NATS
/// server, and no socket on any node misses, repeats or reorders a
/// message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_killed_while_publishing_costs_no_socket_a_message() {
    let mut cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| {
        register_all(
            &cluster,
            &[
                "user_p0", "user_p1", "user_p2", "user_l0", "user_l1", "user_l2",
            ],
        )
    });
    let paced = Publish::Paced {
        window: 4,
        pace: Duration::from_millis(10),
    };
    let mut members = one_per_node(&cluster, "l", &users[3..6], Publish::No).await;
    members.extend(one_per_node(&cluster, "p", &users[..3], paced).await);
    let publishers: Vec<&Member> = members[3..].iter().collect();
    until_acked(&publishers, 60, Instant::now(), "60 acknowledged posts").await;

    blocking(|| cluster.nats.stop(0));
    let killed = Instant::now();
    until(
        DELIVERY,
        "node 0 to lose its NATS server and reconnect to another",
        || {
            blocking(|| {
                let noticed = cluster.node(0).logs().contains("bus disconnected");
                let up = cluster.metric(0, "confab_bus_connected") == Some(1.0);
                (noticed && up).then_some(())
            })
        },
        || cluster.node(0).logs(),
    )
    .await;
    let reconnected = killed.elapsed();
    for i in 1..3 {
        let (status, text) = blocking(|| readyz_text(&cluster, i));
        assert_eq!((status, text.as_str()), (200, "ready; bus up"), "node {i}");
    }
    until_acked(
        &publishers,
        60,
        Instant::now(),
        "60 acknowledged posts after the kill",
    )
    .await;
    for publisher in &publishers {
        publisher.quiet().await;
    }
    let failed = failed_pushes(&publishers);
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    let n = blocking(|| check_history(cluster.node(1), &users[0].0, &publishers));
    drop(publishers);
    let mut all: Vec<&mut Member> = members.iter_mut().collect();
    check_delivery(&mut all, n).await;
    let fills: f64 = (0..3)
        .map(|i| cluster.metric(i, "confab_gap_fills_total").unwrap_or(0.0))
        .sum();
    eprintln!(
        "{n} messages; node 0 back on the bus {reconnected:?} after the kill; {fills} gap fills"
    );
}

// ---------------------------------------------------------------------------
// e. The whole bus down for 5 s
// ---------------------------------------------------------------------------

/// Every NATS server is stopped for 5 s while sockets on every node and a
/// REST client publish. Meanwhile posts are still stored and acknowledged
/// and `/readyz` says `bus down`. Publishing pauses before the bus comes
/// back, so the messages a node missed after its own last post reach its
/// sockets only through the reads after reconnecting; then publishing goes
/// on. In the end every socket on every node has every message, in order,
/// none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_bus_down_for_five_seconds_costs_no_socket_a_message() {
    const OUTAGE: Duration = Duration::from_secs(5);
    let mut cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| {
        register_all(
            &cluster,
            &[
                "user_p0", "user_p1", "user_p2", "user_l0", "user_l1", "user_l2", "rest",
            ],
        )
    });
    let paced = Publish::Paced {
        window: 4,
        pace: Duration::from_millis(20),
    };
    let mut members = one_per_node(&cluster, "l", &users[3..6], Publish::No).await;
    members.extend(one_per_node(&cluster, "p", &users[..3], paced).await);
    let rest = Member::rest(
        "rest",
        cluster.addr(2),
        &users[6].0,
        Duration::from_millis(20),
    );
    let publishers: Vec<&Member> = members[3..].iter().chain([&rest]).collect();
    until_acked(&publishers, 40, Instant::now(), "40 acknowledged posts").await;

    blocking(|| cluster.nats.stop_all());
    let down = Instant::now();
    until(
        QUICK,
        "every node to say `bus down`",
        || {
            blocking(|| {
                (0..3)
                    .all(|i| readyz_text(&cluster, i) == (503, "not ready; bus down".into()))
                    .then_some(())
            })
        },
        || {
            format!(
                "{:?}",
                (0..3).map(|i| readyz_text(&cluster, i)).collect::<Vec<_>>()
            )
        },
    )
    .await;
    until(
        OUTAGE,
        "5 acknowledged posts from every publisher with the bus down",
        || {
            publishers
                .iter()
                .all(|m| m.seen().answered_since(down, is_ok) >= 5)
                .then_some(())
        },
        || summary(&publishers),
    )
    .await;
    tokio::time::sleep_until((down + OUTAGE).into()).await;
    for i in 0..3 {
        let (status, text) = blocking(|| readyz_text(&cluster, i));
        assert_eq!(
            (status, text.as_str()),
            (503, "not ready; bus down"),
            "node {i}"
        );
    }
    // Publishing stops before the bus comes back: what the nodes missed of
    // each other's posts since their own last one reaches them only through
    // the reads after reconnecting.
    for publisher in &publishers {
        publisher.quiet().await;
    }
    let before = blocking(|| check_history(cluster.node(0), &users[0].0, &publishers));
    let restarting = Instant::now();
    blocking(|| cluster.nats.start_all());
    until(
        DELIVERY,
        "every node to say `bus up`",
        || {
            blocking(|| {
                (0..3)
                    .all(|i| readyz_text(&cluster, i) == (200, "ready; bus up".into()))
                    .then_some(())
            })
        },
        || {
            format!(
                "{:?}",
                (0..3).map(|i| readyz_text(&cluster, i)).collect::<Vec<_>>()
            )
        },
    )
    .await;
    let up = Instant::now();
    let view: Vec<&Member> = members.iter().collect();
    wait_delivered(&view, before).await;
    let caught_up = up.elapsed();
    drop(view);
    for publisher in &publishers {
        publisher.resume();
    }
    until_acked(
        &publishers,
        60,
        up,
        "60 acknowledged posts after the bus came back",
    )
    .await;
    for publisher in &publishers {
        publisher.quiet().await;
    }
    let failed = failed_pushes(&publishers);
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    let during: Vec<usize> = publishers
        .iter()
        .map(|m| {
            m.seen()
                .pushes
                .iter()
                .filter(|p| p.sent >= down && p.sent + p.took < restarting && is_ok(&p.outcome))
                .count()
        })
        .collect();
    assert!(
        during.iter().all(|&n| n >= 5),
        "acknowledged posts per publisher during the outage: {during:?}"
    );
    let n = blocking(|| check_history(cluster.node(0), &users[0].0, &publishers));
    drop(publishers);
    blocking(|| cluster.wait_formed());
    let mut all: Vec<&mut Member> = members.iter_mut().collect();
    check_delivery(&mut all, n).await;
    let fills: f64 = (0..3)
        .map(|i| cluster.metric(i, "confab_gap_fills_total").unwrap_or(0.0))
        .sum();
    let duplicates: f64 = (0..3)
        .map(|i| {
            cluster
                .metric(i, "confab_bus_duplicates_total")
                .unwrap_or(0.0)
        })
        .sum();
    eprintln!(
        "{n} messages, {during:?} acknowledged per publisher during the outage; every socket \
         had the {before} sent until then {caught_up:?} after the bus was back; \
         {fills} gap fills, {duplicates} duplicates dropped"
    );
}

// ---------------------------------------------------------------------------
// f. PostgreSQL restarted
// ---------------------------------------------------------------------------

/// PostgreSQL is stopped (fast shutdown) for 2 s while sockets on every
/// node and a REST client publish: writes answer `unavailable` promptly
/// meanwhile and `/readyz` is 503; nothing acknowledged is lost; service
/// resumes by itself, and every socket has every stored message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_in_a_cluster_loses_nothing_acknowledged() {
    const OUTAGE: Duration = Duration::from_secs(2);
    let mut cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| {
        register_all(
            &cluster,
            &["user_p0", "user_p1", "user_p2", "user_l0", "rest"],
        )
    });
    let paced = Publish::Paced {
        window: 4,
        pace: Duration::from_millis(20),
    };
    let mut members = Vec::new();
    members.push(
        Member::join(
            "l0",
            cluster.addr(0),
            &users[3].0,
            LOBBY,
            json!({}),
            Publish::No,
        )
        .await,
    );
    members.extend(one_per_node(&cluster, "p", &users[..3], paced).await);
    let rest = Member::rest(
        "rest",
        cluster.addr(1),
        &users[4].0,
        Duration::from_millis(20),
    );
    let publishers: Vec<&Member> = members[1..].iter().chain([&rest]).collect();
    until_acked(&publishers, 40, Instant::now(), "40 acknowledged posts").await;

    let stopping = Instant::now();
    blocking(|| cluster.pg.stop());
    let down = Instant::now();
    until(
        DELIVERY,
        "2 `unavailable` answers for every publisher with the database down",
        || {
            publishers
                .iter()
                .all(|m| m.seen().answered_since(down, is_unavailable) >= 2)
                .then_some(())
        },
        || summary(&publishers),
    )
    .await;
    for i in 0..3 {
        let (status, text) = blocking(|| readyz_text(&cluster, i));
        assert_eq!(
            (status, text.as_str()),
            (503, "not ready; bus up"),
            "node {i}"
        );
    }
    tokio::time::sleep_until((down + OUTAGE).into()).await;
    let resuming = Instant::now();
    blocking(|| cluster.pg.resume());
    let up = Instant::now();
    until(
        DELIVERY,
        "10 acknowledged posts from every publisher after the database came back",
        || {
            publishers
                .iter()
                .all(|m| m.seen().answered_since(up, is_ok) >= 10)
                .then_some(())
        },
        || summary(&publishers),
    )
    .await;
    for publisher in &publishers {
        publisher.quiet().await;
    }
    let failed = failed_pushes(&publishers);
    assert!(failed.is_empty(), "pushes failed: {failed:#?}");
    for publisher in &publishers {
        for push in &publisher.seen().pushes {
            assert!(
                push.took < PROMPT,
                "{}: an answer took {:?}: {push:?}",
                publisher.name,
                push.took
            );
            if push.sent >= down && push.sent + push.took < resuming {
                assert_eq!(
                    push.outcome,
                    Outcome::Unavailable,
                    "{}: acknowledged with the database down: {push:?}",
                    publisher.name
                );
            }
        }
    }
    for i in 0..3 {
        let (status, text) = blocking(|| readyz_text(&cluster, i));
        assert_eq!((status, text.as_str()), (200, "ready; bus up"), "node {i}");
    }
    let n = blocking(|| check_history(cluster.node(2), &users[0].0, &publishers));
    drop(publishers);
    let mut all: Vec<&mut Member> = members.iter_mut().collect();
    check_delivery(&mut all, n).await;
    eprintln!(
        "{n} messages; the database was away for {:?}",
        up - stopping
    );
}

// ---------------------------------------------------------------------------
// g. A node restarted under the same name
// ---------------------------------------------------------------------------

/// Node 0 is killed with SIGKILL and started again with the same name.
/// The presences of its former run leave the other nodes as soon as the
/// new run is heard (the silence bound is raised to 10 s here, so it is
/// not what removes them), every node sees two peers, not three, and the
/// new run's presences replicate as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_leaves_no_ghost_presences() {
    let silence = Duration::from_millis(200 * 50);
    let mut cluster = blocking(|| {
        TestCluster::options(3)
            .env("CONFAB_CLUSTER_DOWN_AFTER", "50")
            .start()
    });
    let users = blocking(|| register_all(&cluster, &["ghost", "user_o1", "user_o2", "fresh"]));
    let (ghost_key, fresh_key) = (key_of(&users[0].1), key_of(&users[3].1));
    let mut ghost = Member::join(
        "ghost",
        cluster.addr(0),
        &users[0].0,
        LOBBY,
        json!({}),
        Publish::No,
    )
    .await;
    let mut o1 = Member::join(
        "o1",
        cluster.addr(1),
        &users[1].0,
        LOBBY,
        json!({}),
        Publish::No,
    )
    .await;
    let mut o2 = Member::join(
        "o2",
        cluster.addr(2),
        &users[2].0,
        LOBBY,
        json!({}),
        Publish::No,
    )
    .await;
    until(
        QUICK,
        "nodes 1 and 2 to see the ghost present",
        || (o1.seen().is_present(&ghost_key) && o2.seen().is_present(&ghost_key)).then_some(()),
        || summary(&[&o1, &o2]),
    )
    .await;

    blocking(|| cluster.kill(0));
    let killed = Instant::now();
    ghost.ended(QUICK).await;
    blocking(|| cluster.restart(0));
    let restarted = killed.elapsed();
    until(
        silence.saturating_sub(killed.elapsed()),
        "the former run's presence to leave nodes 1 and 2 before the silence bound",
        || (!o1.seen().is_present(&ghost_key) && !o2.seen().is_present(&ghost_key)).then_some(()),
        || summary(&[&o1, &o2]),
    )
    .await;
    let gone = killed.elapsed();
    blocking(|| cluster.wait_formed());

    // The new run's presences replicate; the old run's stay gone, on the
    // restarted node too.
    let mut fresh = Member::join(
        "fresh",
        cluster.addr(0),
        &users[3].0,
        LOBBY,
        json!({}),
        Publish::No,
    )
    .await;
    until(
        QUICK,
        "everyone to see everyone of the new run",
        || {
            let (o1, o2, fresh) = (o1.seen(), o2.seen(), fresh.seen());
            (o1.is_present(&fresh_key)
                && o2.is_present(&fresh_key)
                && fresh.is_present(&key_of(&users[1].1))
                && fresh.is_present(&key_of(&users[2].1)))
            .then_some(())
        },
        || summary(&[&o1, &o2, &fresh]),
    )
    .await;
    for member in [&o1, &o2, &fresh] {
        assert!(
            !member.seen().is_present(&ghost_key),
            "{} sees the former run's presence: {:?}",
            member.name,
            member.seen().present
        );
    }
    for i in 0..3 {
        assert_eq!(
            blocking(|| cluster.metric(i, "confab_cluster_peers")),
            Some(2.0),
            "node {i}'s peers"
        );
    }
    for member in [&mut o1, &mut o2, &mut fresh] {
        assert!(
            member.stop().await.is_some(),
            "{}'s socket ended",
            member.name
        );
    }
    eprintln!(
        "node 0 restarted {restarted:?} after the kill; its former presence left {gone:?} after it"
    );
}

// ---------------------------------------------------------------------------
// h. A message lost inside a hung NATS server
// ---------------------------------------------------------------------------

/// NATS server 0 hangs (SIGSTOP) and node 0 posts one message: it is
/// stored and acknowledged, and its broadcast goes into the connection to
/// the hung server. Then that server dies (SIGKILL) with the broadcast
/// unread, and node 0 reconnects to another. Nothing more is posted, so
/// no later seq shows the other nodes a gap: the message still reaches
/// their sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_lost_in_a_hung_nats_server_still_reaches_every_node() {
    let mut cluster = blocking(|| TestCluster::start(3));
    let users = blocking(|| register_all(&cluster, &["user_l0", "user_l1", "user_l2", "poster"]));
    let mut members = one_per_node(&cluster, "l", &users[..3], Publish::No).await;
    let poster = &users[3].0;
    blocking(|| {
        cluster
            .node(0)
            .post_message("lobby", poster, &json!({"body": "before"}))
    });
    wait_delivered(&members.iter().collect::<Vec<_>>(), 1).await;

    blocking(|| cluster.nats.freeze(0));
    let published = |cluster: &TestCluster| {
        cluster
            .metric(0, "confab_bus_published_total")
            .expect("confab_bus_published_total")
    };
    let stored = blocking(|| {
        cluster
            .node(0)
            .post_message("lobby", poster, &json!({"body": "into the hung server"}))
    });
    assert_eq!(stored["seq"], 2, "{stored}");
    // The broadcast went into the connection once later sends (presence
    // heartbeats, in the same ordered queue) have followed it.
    let after_post = blocking(|| published(&cluster));
    until(
        QUICK,
        "node 0 to send two more bus messages after the post",
        || blocking(|| (published(&cluster) >= after_post + 2.0).then_some(())),
        || cluster.node(0).logs(),
    )
    .await;
    blocking(|| cluster.nats.stop(0));
    until(
        DELIVERY,
        "node 0 to reconnect to another NATS server",
        || {
            blocking(|| {
                let noticed = cluster.node(0).logs().contains("bus disconnected");
                let up = cluster.metric(0, "confab_bus_connected") == Some(1.0);
                (noticed && up).then_some(())
            })
        },
        || cluster.node(0).logs(),
    )
    .await;
    let mut all: Vec<&mut Member> = members.iter_mut().collect();
    check_delivery(&mut all, 2).await;
}
