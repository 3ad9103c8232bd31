//! LongPoll in a cluster behind a round-robin load balancer with no sticky
//! sessions: two confab nodes on one private PostgreSQL and one private
//! nats-server, and a TCP proxy in this file that sends each new
//! connection to the next node. The LongPoll client opens a connection per
//! request (`Connection: close`), so its GETs and POSTs alternate between
//! the nodes and every other one lands on the node that does not hold its
//! session; that node passes it on over the bus.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use base64::Engine;
use common::phx::{blocking, Frame, PhxClient};
use common::postgres::PgServer;
use common::TestServer;
use serde_json::{json, Value};
use tokio::time::Instant;

const LOBBY: &str = "room:lobby";
const PASSWORD: &str = "cluster-longpoll-password";
const SECRET: &str = "cluster-longpoll-secret-0123456789abcdef";
/// How long anything that should happen may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// nats-server
// ---------------------------------------------------------------------------

/// One nats-server on a free loopback port, stopped when dropped.
struct Nats {
    child: Child,
    addr: String,
}

impl Nats {
    fn start() -> Nats {
        let bin = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .expect("nats-server is not installed: apt-get install nats-server");
        // `-p -1`: a random free port, which the server logs.
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run nats-server");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines_tx, lines) = mpsc::channel();
        // Keeps reading, so the pipe never fills.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = lines_tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let mut addr = None;
        loop {
            let Ok(line) = lines.recv_timeout(WAIT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not start:\n{}", seen.join("\n"));
            };
            if let Some((_, rest)) = line.split_once("Listening for client connections on ") {
                addr = Some(rest.trim().to_string());
            }
            let ready = line.contains("Server is ready");
            seen.push(line);
            if ready {
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no client port logged:\n{}", seen.join("\n")));
        Nats { child, addr }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The round-robin proxy
// ---------------------------------------------------------------------------

/// A TCP proxy on loopback: each new connection goes to the next node in
/// turn; a node that refuses the connection (it is down) is skipped, as a
/// load balancer's health check would.
struct Proxy {
    addr: SocketAddr,
    /// Connections passed to each node.
    passed: Arc<Vec<AtomicU64>>,
}

impl Proxy {
    fn start(nodes: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let passed: Arc<Vec<AtomicU64>> =
            Arc::new(nodes.iter().map(|_| AtomicU64::new(0)).collect());
        let counts = passed.clone();
        let next = AtomicUsize::new(0);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let upstream = (0..nodes.len()).find_map(|i| {
                    let index = (first + i) % nodes.len();
                    TcpStream::connect(nodes[index]).ok().map(|s| (index, s))
                });
                let Some((index, upstream)) = upstream else {
                    continue; // every node is down: the client sees a close
                };
                counts[index].fetch_add(1, Ordering::Relaxed);
                pipe(client, upstream);
            }
        });
        Proxy { addr, passed }
    }

    fn passed(&self) -> Vec<u64> {
        self.passed
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

/// Copies both ways between `a` and `b` until each side has ended.
fn pipe(a: TcpStream, b: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    match (a.try_clone(), b.try_clone()) {
        (Ok(a2), Ok(b2)) => {
            copy(a, b2);
            copy(b, a2);
        }
        _ => {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

/// PostgreSQL, NATS, two nodes (`n1`, `n2`) and the proxy in front of them.
struct Cluster {
    nodes: Vec<TestServer>,
    proxy: Proxy,
    _nats: Nats,
    _pg: PgServer,
}

impl Cluster {
    fn start() -> Cluster {
        let pg = PgServer::start();
        let nats = Nats::start();
        let (database, bus) = (pg.url(), nats.url());
        // One after the other: the first creates the schema.
        let nodes: Vec<TestServer> = ["n1", "n2"]
            .into_iter()
            .map(|name| {
                TestServer::options()
                    .envs(&[
                        ("CONFAB_DATABASE_URL", database.as_str()),
                        ("CONFAB_NATS_URL", bus.as_str()),
                        ("CONFAB_JWT_SECRET", SECRET),
                        ("CONFAB_NODE_NAME", name),
                        ("CONFAB_LOG", "warn,confab::socket=debug"),
                    ])
                    .start()
            })
            .collect();
        let proxy = Proxy::start(nodes.iter().map(TestServer::addr).collect());
        Cluster {
            nodes,
            proxy,
            _nats: nats,
            _pg: pg,
        }
    }

    /// Every node's output, for failure messages.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("--- n{} ---\n{}", i + 1, node.logs()))
            .collect()
    }

    /// The value of counter `name` in node `index`'s `/metrics` (0 if absent).
    fn metric(&self, index: usize, name: &str) -> u64 {
        let response = self.nodes[index].get("/metrics", None);
        response.assert_status(200, "metrics");
        response
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0, |value| value.trim().parse().expect("a counter value"))
    }
}

/// Which node (`0` for n1, `1` for n2) a LongPoll session token names.
fn holder_of(token: &str) -> usize {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url claims"),
    )
    .expect("JSON claims");
    let node = claims["node"].as_str().expect("the token names its node");
    match node.split_once('#') {
        Some(("n1", _)) => 0,
        Some(("n2", _)) => 1,
        _ => panic!("unknown node {node:?}"),
    }
}

// ---------------------------------------------------------------------------
// The LongPoll client (phoenix-protocol.md §6), one connection per request
// ---------------------------------------------------------------------------

/// One LongPoll request on a fresh connection; the JSON body of the answer
/// (asserting HTTP 200 and the LongPoll headers), or why there is none.
fn longpoll(
    addr: SocketAddr,
    method: &str,
    query: &str,
    body: Option<&str>,
) -> Result<Value, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} /socket/longpoll?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Accept: application/json\r\n"
    );
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or_default());
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {text:?}"))?;
    let headers = headers.to_ascii_lowercase();
    if !headers.starts_with("http/1.1 200") {
        return Err(format!("not HTTP 200: {text:?}"));
    }
    if !headers.contains("content-type: application/json; charset=utf-8")
        || !headers.contains("cache-control: no-store")
    {
        return Err(format!("not the LongPoll headers: {headers:?}"));
    }
    serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body:?}"))
}

/// A LongPoll session through the proxy.
struct LongPoll {
    proxy: SocketAddr,
    user_token: String,
    session: String,
}

impl LongPoll {
    /// Opens a session (the first GET, answered 410 with a token).
    fn open(proxy: SocketAddr, user_token: &str) -> LongPoll {
        let query = format!("token={user_token}&vsn=2.0.0&");
        let answer = longpoll(proxy, "GET", &query, None).expect("open");
        assert_eq!(answer["status"], 410, "open: {answer}");
        let session = answer["token"]
            .as_str()
            .expect("a session token")
            .to_string();
        LongPoll {
            proxy,
            user_token: user_token.to_string(),
            session,
        }
    }

    fn query(&self) -> String {
        format!("token={}&vsn=2.0.0&token={}", self.user_token, self.session)
    }

    fn get(&self) -> Result<Value, String> {
        longpoll(self.proxy, "GET", &self.query(), None)
    }

    /// POSTs `frames` (one per line); asserts `{"status":200}`.
    fn post(&self, frames: &[Value]) {
        let body: String = frames.iter().map(|f| format!("{f}\n")).collect();
        let answer = longpoll(self.proxy, "POST", &self.query(), Some(&body)).expect("post");
        assert_eq!(answer, json!({"status": 200}), "post {body}");
    }

    /// Polls on a thread until `stop`, sending every frame received on the
    /// returned channel; a poll answered with anything but 200 or 204 is
    /// sent as an `Err` and ends the thread.
    fn poll_on_thread(
        &self,
        stop: Arc<AtomicBool>,
    ) -> (
        mpsc::Receiver<Result<Frame, String>>,
        thread::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel();
        let me = LongPoll {
            proxy: self.proxy,
            user_token: self.user_token.clone(),
            session: self.session.clone(),
        };
        let handle = thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let answer = match me.get() {
                    Ok(answer) => answer,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                match answer["status"].as_u64() {
                    Some(200) => {
                        for message in answer["messages"].as_array().expect("messages") {
                            let text = message.as_str().expect("each message is a string");
                            let _ = tx.send(Frame::parse(text));
                        }
                    }
                    Some(204) => {}
                    _ => {
                        let _ = tx.send(Err(format!("poll answered {answer}")));
                        return;
                    }
                }
            }
        });
        (rx, handle)
    }
}

/// Reads LongPoll frames until one satisfies `wanted`; panics with `what`
/// (and the nodes' logs) if none comes in time.
fn expect_lp(
    frames: &mpsc::Receiver<Result<Frame, String>>,
    cluster: &Cluster,
    what: &str,
    wanted: impl Fn(&Frame) -> bool,
) -> Frame {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match frames.recv_timeout(left) {
            Ok(Ok(frame)) if wanted(&frame) => return frame,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!(
                "{what}: the LongPoll client failed: {e}\n{}",
                cluster.logs()
            ),
            Err(_) => panic!("{what}: nothing in time\n{}", cluster.logs()),
        }
    }
}

/// Reads WebSocket frames until one satisfies `wanted`.
async fn expect_ws(client: &mut PhxClient, what: &str, wanted: impl Fn(&Frame) -> bool) -> Frame {
    let deadline = Instant::now() + WAIT;
    loop {
        let frame = client.expect_frame(deadline, what).await;
        if wanted(&frame) {
            return frame;
        }
    }
}

fn joins(frame: &Frame, key: &str) -> bool {
    frame.topic == LOBBY
        && ((frame.event == "presence_diff" && frame.payload["joins"].get(key).is_some())
            || (frame.event == "presence_state" && frame.payload.get(key).is_some()))
}

fn leaves(frame: &Frame, key: &str) -> bool {
    frame.topic == LOBBY
        && frame.event == "presence_diff"
        && frame.payload["leaves"].get(key).is_some()
}

fn new_msg(frame: &Frame, body: &str) -> bool {
    frame.is_new_msg_on(LOBBY) && frame.payload["body"] == body
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// A LongPoll client behind the round-robin proxy and a WebSocket client on
/// n2 exchange messages both ways and see each other join and leave; the
/// node that does not hold the LongPoll session forwarded requests to the
/// one that does, and every forward was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longpoll_behind_round_robin_talks_with_a_websocket_on_another_node() {
    let cluster = blocking(Cluster::start);
    let (alice, alice_user) = blocking(|| cluster.nodes[0].register("alice", PASSWORD));
    let (bob, bob_user) = blocking(|| cluster.nodes[0].register("bob", PASSWORD));
    let (alice_key, bob_key) = (alice_user["id"].to_string(), bob_user["id"].to_string());

    let mut ws = PhxClient::connect(cluster.nodes[1].addr(), &bob)
        .await
        .unwrap_or_else(|e| panic!("bob connects to n2: {e}"));
    ws.join_ok(LOBBY, json!({})).await;

    let lp = blocking(|| LongPoll::open(cluster.proxy.addr, &alice));
    let holder = holder_of(&lp.session);
    let other = 1 - holder;
    let stop = Arc::new(AtomicBool::new(false));
    let (frames, poller) = lp.poll_on_thread(stop.clone());

    // Alice joins over LongPoll and sees Bob; Bob sees her arrive.
    blocking(|| lp.post(&[json!(["1", "1", LOBBY, "phx_join", {}])]));
    let reply = blocking(|| {
        expect_lp(&frames, &cluster, "alice's join reply", |f| {
            f.is_reply_to("1")
        })
    });
    assert_eq!(reply.reply_parts().0, "ok", "{reply:?}");
    blocking(|| expect_lp(&frames, &cluster, "alice sees bob", |f| joins(f, &bob_key)));
    expect_ws(&mut ws, "bob sees alice join", |f| joins(f, &alice_key)).await;

    // LongPoll → WebSocket.
    blocking(|| lp.post(&[json!(["1", "2", LOBBY, "new_msg", {"body": "from longpoll"}])]));
    let reply = blocking(|| {
        expect_lp(&frames, &cluster, "alice's push reply", |f| {
            f.is_reply_to("2")
        })
    });
    assert_eq!(reply.reply_parts().0, "ok", "{reply:?}");
    expect_ws(&mut ws, "bob gets alice's message", |f| {
        new_msg(f, "from longpoll")
    })
    .await;

    // WebSocket → LongPoll.
    let (status, response) = ws
        .push(LOBBY, "new_msg", json!({"body": "from websocket"}))
        .await;
    assert_eq!(status, "ok", "{response}");
    blocking(|| {
        expect_lp(&frames, &cluster, "alice gets bob's message", |f| {
            new_msg(f, "from websocket")
        })
    });

    // Bob leaves and comes back; then Alice leaves.
    let (status, _) = ws.leave(LOBBY).await;
    assert_eq!(status, "ok");
    blocking(|| {
        expect_lp(&frames, &cluster, "alice sees bob leave", |f| {
            leaves(f, &bob_key)
        })
    });
    ws.join_ok(LOBBY, json!({})).await;
    blocking(|| {
        expect_lp(&frames, &cluster, "alice sees bob return", |f| {
            joins(f, &bob_key)
        })
    });
    blocking(|| lp.post(&[json!(["1", "3", LOBBY, "phx_leave", {}])]));
    expect_ws(&mut ws, "bob sees alice leave", |f| leaves(f, &alice_key)).await;

    // The poller ends after the answer to its current poll (a heartbeat's
    // reply wakes it).
    stop.store(true, Ordering::Relaxed);
    blocking(|| lp.post(&[json!([null, "4", "phoenix", "heartbeat", {}])]));
    blocking(|| poller.join().expect("the poller"));

    let passed = cluster.proxy.passed();
    assert!(
        passed.iter().all(|&n| n >= 3),
        "the proxy spread the connections: {passed:?}"
    );
    let forwarded = blocking(|| cluster.metric(other, "confab_longpoll_forwarded_total"));
    let failed = blocking(|| cluster.metric(other, "confab_longpoll_forward_failures_total"));
    let forwarded_by_holder =
        blocking(|| cluster.metric(holder, "confab_longpoll_forwarded_total"));
    assert!(
        forwarded >= 3,
        "n{} forwarded {forwarded} requests to n{}\n{}",
        other + 1,
        holder + 1,
        cluster.logs()
    );
    assert_eq!(failed, 0, "every forward was answered");
    assert_eq!(
        forwarded_by_holder, 0,
        "the holder handles its own requests"
    );
}

/// A poll forwarded to the holder is held the whole poll window and
/// answered 204. Then the node holding the session is killed: the client's
/// next GET and POST, answered by the surviving node, say the session is
/// gone exactly as for an unknown session (`{"status":410}`), and a new
/// session opens and works there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_polls_cross_nodes_and_a_killed_holder_makes_the_session_gone() {
    let mut cluster = blocking(Cluster::start);
    let (alice, _) = blocking(|| cluster.nodes[0].register("alice", PASSWORD));
    let lp = blocking(|| LongPoll::open(cluster.proxy.addr, &alice));
    let holder = holder_of(&lp.session);
    let survivor = 1 - holder;
    // Alive, a poll from either node reaches the session.
    blocking(|| lp.post(&[json!([null, "1", "phoenix", "heartbeat", {}])]));
    let answer = blocking(|| lp.get()).expect("poll");
    assert_eq!(answer["status"], 200, "{answer}");
    // A poll passed on by the other node is held the whole window there,
    // then answered 204 with the token.
    let started = std::time::Instant::now();
    let answer = blocking(|| longpoll(cluster.nodes[survivor].addr(), "GET", &lp.query(), None))
        .expect("a held poll through the other node");
    assert_eq!(
        answer,
        json!({"status": 204, "token": lp.session, "messages": []}),
        "\n{}",
        cluster.logs()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );

    cluster.nodes[holder].kill();

    let gone = json!({ "status": 410 });
    for _ in 0..2 {
        let answer = blocking(|| lp.get()).expect("poll after the kill");
        assert_eq!(answer, gone, "\n{}", cluster.logs());
    }
    let body = format!("{}\n", json!([null, "2", "phoenix", "heartbeat", {}]));
    let answer = blocking(|| longpoll(lp.proxy, "POST", &lp.query(), Some(&body)))
        .expect("post after the kill");
    assert_eq!(answer, gone);
    let failures = blocking(|| cluster.metric(survivor, "confab_longpoll_forward_failures_total"));
    assert!(failures >= 3, "{failures} failed forwards counted");

    // The client reconnects: the new session is on the survivor and works.
    let lp = blocking(|| LongPoll::open(cluster.proxy.addr, &alice));
    assert_eq!(holder_of(&lp.session), survivor);
    blocking(|| lp.post(&[json!([null, "3", "phoenix", "heartbeat", {}])]));
    let answer = blocking(|| lp.get()).expect("poll on the new session");
    assert_eq!(answer["status"], 200, "{answer}");
    let frame = Frame::parse(answer["messages"][0].as_str().expect("a message")).expect("a frame");
    assert!(frame.is_reply_to("3"), "{frame:?}");
}
