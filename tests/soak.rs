//! Soak: sockets connect, join, chat, leave and disconnect continuously
//! for a bounded time while the server's resident memory, open file
//! descriptors, threads and open sockets are sampled every second from
//! `/proc/<pid>` and `/metrics`. At the end, once every client is gone:
//!
//! - open file descriptors are back at the baseline (± a small constant,
//!   plus the database pool's connections on PostgreSQL);
//! - `/metrics` says `confab_sockets_open 0`, `confab_channels_joined 0`
//!   and `confab_presence_entries 0`, and a fresh joiner's
//!   `presence_state` holds only itself;
//! - resident memory in the last third of the run is not trending up
//!   beyond a tolerance: in a long run (≥ 300 s) 5 % of RSS (at least
//!   4 MiB); in the short run, which ends before the allocator and caches
//!   reach their working size (about a minute of this load), 4 MiB plus
//!   64 KiB per connection opened in that third (a gross-leak guard).
//!
//! The curve (time, RSS KiB, fds, threads, sockets, messages) is printed.
//! Default (CI): 20 s with 100 concurrent client loops. Long form:
//! `CONFAB_LONG_TESTS=1` (10 minutes; `CONFAB_SOAK_SECS` sets the
//! duration, `CONFAB_SOAK_CLIENTS` the concurrency, `CONFAB_SOAK_CSV` a
//! file to write every sample to, `CONFAB_SOAK_ARENAS` glibc's arena
//! count, default 2, or `default`; `CONFAB_SOAK_LOG` the server's log
//! filter and `CONFAB_SOAK_SERVER_LOG` a file to write its log to).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::phx::{blocking, End, PhxClient};
use common::reliability::{env_u64, fd_count, long_tests, metric, rss_kib, slope, XorShift};
use common::{proc_status_kib, wait_for, TestServer};
use serde_json::{json, Value};

const PASSWORD: &str = "soak-test-password";
const ROOMS: [&str; 4] = ["lobby", "alpha", "beta", "gamma"];
const USERS: usize = 25;

/// One sample of the server process.
#[derive(Clone, Debug)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    sockets: u64,
    stored: u64,
    /// Connections the clients had opened so far.
    connections: u64,
}

/// What the clients did.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    joins: AtomicU64,
    messages: AtomicU64,
    leaves: AtomicU64,
    clean_closes: AtomicU64,
    drops: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Counters {
    /// Records a failure with the wall-clock time (to match server log lines).
    fn fail(&self, what: String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            failures.push(format!(
                "[unix {}.{:03}] {what}",
                now.as_secs(),
                now.subsec_millis()
            ));
        }
    }
}

/// One client loop: connect, join 1–3 rooms, chat a little, maybe leave a
/// room, linger, disconnect (cleanly or by dropping the connection), again
/// until `deadline`.
async fn client_loop(
    addr: std::net::SocketAddr,
    tokens: Arc<Vec<String>>,
    worker: usize,
    mut rng: XorShift,
    deadline: Instant,
    counters: Arc<Counters>,
) {
    let mut round = 0u64;
    // The last seq this worker saw per topic.
    let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
    while Instant::now() < deadline {
        round += 1;
        let token = tokens[(worker + rng.range(0, 4) as usize * 7) % tokens.len()].clone();
        // A cycle that panics (the harness panics when a connection ends
        // unexpectedly) is a recorded failure, not the end of the soak.
        let port_slot = Arc::new(AtomicU64::new(0));
        let cycle = tokio::spawn(client_cycle(
            addr,
            token,
            worker,
            round,
            XorShift::new(rng.next_u64()),
            counters.clone(),
            port_slot.clone(),
            seen.clone(),
        ));
        if let Err(e) = cycle.await {
            let why = e
                .try_into_panic()
                .ok()
                .and_then(|p| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let port = port_slot.load(Ordering::Relaxed);
            counters.fail(format!(
                "worker {worker} round {round} (client port {port}): {why}"
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One connect … disconnect cycle of a client loop.
#[allow(clippy::too_many_arguments)]
async fn client_cycle(
    addr: std::net::SocketAddr,
    token: String,
    worker: usize,
    round: u64,
    mut rng: XorShift,
    counters: Arc<Counters>,
    port_slot: Arc<AtomicU64>,
    seen: Arc<Mutex<std::collections::HashMap<String, u64>>>,
) {
    {
        let token = &token;
        let mut client = match PhxClient::connect(addr, token).await {
            Ok(client) => client,
            Err(e) => {
                counters.fail(format!("worker {worker}: connect: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let local_port = client.local_addr().map_or(0, |a| a.port());
        port_slot.store(u64::from(local_port), Ordering::Relaxed);
        let mut joined = Vec::new();
        for _ in 0..rng.range(1, 3) {
            let room = ROOMS[rng.range(0, ROOMS.len() as u64 - 1) as usize];
            let topic = format!("room:{room}");
            if joined.contains(&topic) {
                continue;
            }
            // Half the joins recover from where this worker last was, a
            // little behind, as a reconnecting client does; the others
            // take the newest messages. (Recovering a backlog larger than
            // 272 KiB is a separate, known failure: see
            // large_join_and_history_replies_reach_the_client.)
            let known = seen.lock().unwrap().get(&topic).copied();
            let payload = match known {
                Some(seq) if rng.chance(50) => {
                    json!({"last_seq": seq.saturating_sub(rng.range(0, 20))})
                }
                _ => json!({}),
            };
            let (status, response) = client.join(&topic, payload).await;
            if status != "ok" {
                counters.fail(format!("worker {worker}: join {topic}: {response}"));
                continue;
            }
            if let Some(seq) = response["last_seq"].as_u64() {
                seen.lock().unwrap().insert(topic.clone(), seq);
            }
            counters.joins.fetch_add(1, Ordering::Relaxed);
            joined.push(topic);
        }
        for i in 0..rng.range(0, 4) {
            let Some(topic) = joined.get(rng.range(0, 9) as usize % joined.len().max(1)) else {
                break;
            };
            let topic = topic.clone();
            let body = format!(
                "w{worker} r{round} m{i} {}",
                "x".repeat(rng.range(0, 200) as usize)
            );
            let (status, response) = client
                .push(
                    &topic,
                    "new_msg",
                    json!({"body": body, "client_id": format!("{worker}-{round}-{i}")}),
                )
                .await;
            if status == "ok" {
                counters.messages.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.fail(format!("worker {worker}: new_msg: {response}"));
            }
            if rng.chance(30) {
                let _ = client
                    .send(
                        client.join_ref(&topic).map(str::to_string).as_deref(),
                        None,
                        &topic,
                        "typing",
                        json!({}),
                    )
                    .await;
            }
        }
        if rng.chance(30) {
            if let Some(topic) = joined.first().cloned() {
                let (status, response) = client.push(&topic, "history", json!({"limit": 20})).await;
                if status != "ok" {
                    counters.fail(format!("worker {worker}: history: {response}"));
                }
            }
        }
        if rng.chance(30) {
            if let Some(topic) = joined.pop() {
                let (status, _) = client.leave(&topic).await;
                if status == "ok" {
                    counters.leaves.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Linger connected, reading what arrives (broadcasts, presence).
        let linger = Instant::now() + Duration::from_millis(rng.range(0, 400));
        while Instant::now() < linger {
            let left = linger.saturating_duration_since(Instant::now());
            if client.next_frame(left).await.is_none() {
                break;
            }
        }
        if let Some(end) = client.end() {
            counters.fail(format!(
                "worker {worker}: the server ended the socket: {end:?}"
            ));
        }
        if !rng.chance(env_u64("CONFAB_SOAK_DROP_PERCENT", 20)) {
            client.close().await;
            counters.clean_closes.fetch_add(1, Ordering::Relaxed);
        } else {
            drop(client); // TCP close without a WebSocket close frame
            counters.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads `/metrics` (blocking).
fn metrics_text(addr: std::net::SocketAddr) -> String {
    let response = common::request(addr, "GET", "/metrics", None, None, &[]);
    response.assert_status(200, "metrics");
    response.body
}

/// Every `step`-th sample (and the last) as table rows.
fn curve_table(samples: &[Sample], max_rows: usize) -> String {
    let step = samples.len().div_ceil(max_rows.max(1)).max(1);
    let mut out = String::from(
        "| t (s) | RSS (KiB) | fds | threads | sockets | messages stored | connections made |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            out.push_str(&format!(
                "| {:.0} | {} | {} | {} | {} | {} | {} |\n",
                s.secs, s.rss_kib, s.fds, s.threads, s.sockets, s.stored, s.connections
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_keeps_memory_fds_and_presence_bounded() {
    let secs = env_u64("CONFAB_SOAK_SECS", if long_tests() { 600 } else { 20 });
    let clients = env_u64("CONFAB_SOAK_CLIENTS", 100) as usize;
    let seed = XorShift::seed_from_env_or_time("CONFAB_SOAK_SEED");
    eprintln!("soak: {secs} s, {clients} client loops, seed {seed}");
    let mut rng = XorShift::new(seed);

    // glibc gives every thread that allocates its own arena (up to 8 per
    // core): the blocking pool's threads each grow one, which looks like a
    // slow leak for minutes and then levels off. Two arenas make a real
    // leak stand out; CONFAB_SOAK_ARENAS=default runs with glibc's default.
    let arenas = std::env::var("CONFAB_SOAK_ARENAS").unwrap_or_else(|_| "2".into());
    let mut env = vec![
        // Bursty test clients, not abusive ones: keep the limits out of
        // the way but present.
        ("CONFAB_PUSH_BURST", "200"),
        ("CONFAB_PUSH_REFILL_PER_SEC", "100"),
        ("CONFAB_MAX_SOCKETS_PER_USER", "50"),
        // redb's page cache legitimately grows with the stored data up
        // to its cap; a small cap lets a short run reach it, so later
        // growth is not the cache filling up.
        ("CONFAB_STORE_CACHE_MIB", "8"),
        // On PostgreSQL the pool keeps the connections the load opened.
        ("CONFAB_DATABASE_POOL_SIZE", "8"),
    ];
    // File descriptors the server may hold after the soak beyond its
    // baseline: a few, and on PostgreSQL the pool's connections.
    let fd_slack = 4 + if common::on_postgres() { 8 } else { 0 };
    let log_level = std::env::var("CONFAB_SOAK_LOG").unwrap_or_else(|_| "debug".into());
    env.push(("CONFAB_LOG", log_level.as_str()));
    if arenas != "default" {
        env.push(("MALLOC_ARENA_MAX", arenas.as_str()));
    }
    eprintln!("MALLOC_ARENA_MAX: {arenas}");
    let server = blocking(|| TestServer::start_with(&env, None));
    let addr = server.addr();
    let pid = server.pid().expect("running");
    let mut tokens = Vec::new();
    for i in 0..USERS {
        tokens.push(blocking(|| server.register(&format!("soak{i:02}"), PASSWORD)).0);
    }
    for room in &ROOMS[1..] {
        blocking(|| {
            server
                .post_json("/api/rooms", Some(&tokens[0]), &json!({"name": room}))
                .assert_status(201, "create room");
        });
    }
    let tokens = Arc::new(tokens);
    // Baseline: the server idle after set-up, before any socket.
    let baseline_fds = blocking(|| {
        std::thread::sleep(Duration::from_millis(300));
        fd_count(pid).expect("fd count")
    });
    let baseline_rss = rss_kib(pid).expect("rss");
    eprintln!("baseline: {baseline_fds} fds, {baseline_rss} KiB");

    let counters = Arc::new(Counters::default());
    // Sampler thread.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = {
        let stop = stop.clone();
        let counters = counters.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let text = metrics_text(addr);
                samples.push(Sample {
                    secs: started.elapsed().as_secs_f64(),
                    rss_kib: rss_kib(pid).unwrap_or(0),
                    fds: fd_count(pid).unwrap_or(0),
                    threads: proc_status_kib(pid, "Threads").unwrap_or(0),
                    sockets: metric(&text, "confab_sockets_open").unwrap_or(-1.0) as u64,
                    stored: metric(&text, "confab_messages_stored_total").unwrap_or(0.0) as u64,
                    connections: counters.connections.load(Ordering::Relaxed),
                });
                next += Duration::from_secs(1);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            samples
        })
    };

    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            tokio::spawn(client_loop(
                server.addr(),
                tokens.clone(),
                worker,
                XorShift::new(rng.next_u64()),
                deadline,
                counters.clone(),
            ))
        })
        .collect();
    for worker in workers {
        if let Err(e) = worker.await {
            counters.fail(format!("a client loop failed: {e}"));
        }
    }
    let run_secs = started.elapsed().as_secs_f64();

    // Every client is gone: the server must return to idle.
    let settled = blocking(|| {
        wait_for(
            Duration::from_secs(15),
            "sockets and presence to drain",
            || {
                let text = metrics_text(addr);
                let zero = |name| metric(&text, name) == Some(0.0);
                (zero("confab_sockets_open")
                    && zero("confab_channels_joined")
                    && zero("confab_presence_entries"))
                .then_some(text)
            },
        )
    });
    let final_fds = blocking(|| {
        wait_for(
            Duration::from_secs(10),
            "fds to return to the baseline",
            || {
                let fds = fd_count(pid)?;
                (fds <= baseline_fds + fd_slack).then_some(fds)
            },
        )
    });
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    // A fresh joiner sees only itself in the lobby's presence.
    let mut last = PhxClient::connect(server.addr(), &tokens[0]).await.unwrap();
    last.join_ok("room:lobby", json!({})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let state = loop {
        let frame = last.expect_frame(deadline, "presence_state").await;
        if frame.event == "presence_state" {
            break frame.payload;
        }
    };
    last.close().await;

    let logs = server.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    for line in warnings.iter().take(20) {
        eprintln!("server: {line}");
    }
    if let Ok(path) = std::env::var("CONFAB_SOAK_SERVER_LOG") {
        std::fs::write(&path, &logs).expect("write the server log");
        eprintln!("server log written to {path}");
    }
    let failures = counters.failures.lock().unwrap().clone();
    if !failures.is_empty() {
        // What the server said about sockets it ended (the 1002s are the
        // clients that dropped their connection on purpose).
        let unusual: Vec<&str> = logs
            .lines()
            .filter(|l| !l.contains(" request ") && !l.contains("code=1002"))
            .filter(|l| l.contains("DEBUG") || l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!("{} unusual server log lines, the last 40:", unusual.len());
        for line in unusual.iter().rev().take(40).rev() {
            eprintln!("server: {line}");
        }
    }
    let total = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "soak: {run_secs:.0} s, {} connections, {} joins, {} messages, {} leaves, \
         {} clean closes, {} dropped connections, {} failures",
        total(&counters.connections),
        total(&counters.joins),
        total(&counters.messages),
        total(&counters.leaves),
        total(&counters.clean_closes),
        total(&counters.drops),
        failures.len()
    );
    eprintln!("{}", curve_table(&samples, 40));
    if let Ok(path) = std::env::var("CONFAB_SOAK_CSV") {
        let mut csv = String::from("secs,rss_kib,fds,threads,sockets,stored,connections\n");
        for s in &samples {
            csv.push_str(&format!(
                "{:.1},{},{},{},{},{},{}\n",
                s.secs, s.rss_kib, s.fds, s.threads, s.sockets, s.stored, s.connections
            ));
        }
        std::fs::write(&path, csv).expect("write the CSV");
        eprintln!("samples written to {path}");
    }

    // RSS trend over the last third (while clients were still running).
    let running: Vec<&Sample> = samples.iter().filter(|s| s.secs <= run_secs).collect();
    let third = &running[running.len() * 2 / 3..];
    let xs: Vec<f64> = third.iter().map(|s| s.secs).collect();
    let ys: Vec<f64> = third.iter().map(|s| s.rss_kib as f64).collect();
    let per_sec = slope(&xs, &ys);
    let span = xs.last().copied().unwrap_or(0.0) - xs.first().copied().unwrap_or(0.0);
    let growth = per_sec * span;
    let mean = ys.iter().sum::<f64>() / ys.len().max(1) as f64;
    let peak_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    // The allocator and caches take about a minute of this load to reach
    // their working size, so only a long run can demand a flat last third
    // (5 % of RSS, at least 4 MiB). A short run still catches a gross
    // leak: at most 64 KiB per connection opened in the last third.
    let strict = run_secs >= 300.0;
    let opened = third
        .last()
        .zip(third.first())
        .map_or(0, |(l, f)| l.connections.saturating_sub(f.connections));
    let tolerance = if strict {
        (mean * 0.05).max(4096.0)
    } else {
        4096.0 + 64.0 * opened as f64
    };
    eprintln!(
        "RSS: baseline {baseline_rss} KiB, peak {peak_rss} KiB, last-third mean {mean:.0} KiB, \
         slope {per_sec:.1} KiB/s = {growth:.0} KiB over {span:.0} s ({opened} connections; \
         {} tolerance {tolerance:.0} KiB); \
         fds: baseline {baseline_fds}, peak {peak_fds}, final {final_fds}",
        if strict { "strict" } else { "gross-leak" }
    );
    assert!(
        failures.is_empty(),
        "client failures:\n{}",
        failures.join("\n")
    );
    assert!(
        !logs.contains("panicked"),
        "the server panicked during the soak:\n{}",
        warnings.join("\n")
    );
    assert!(
        total(&counters.messages) > 0 && total(&counters.connections) > clients as u64,
        "the soak did too little to prove anything"
    );
    assert!(
        final_fds <= baseline_fds + fd_slack,
        "fds: {final_fds} after the soak, {baseline_fds} before"
    );
    assert_eq!(
        metric(&settled, "confab_presence_entries"),
        Some(0.0),
        "{settled}"
    );
    let keys: Vec<&String> = state.as_object().expect("presence map").keys().collect();
    assert!(
        keys.len() <= 1,
        "presence after the soak holds more than the last joiner: {state}"
    );
    assert!(
        running.len() < 6 || growth <= tolerance,
        "RSS still grows in the last third of the soak: {growth:.0} KiB over {span:.0} s \
         (tolerance {tolerance:.0} KiB)\n{}",
        curve_table(&samples, 60)
    );
}

/// Found by the soak: once a room holds enough history, a join that
/// recovers it (`last_seq` far behind) or a `history` page of long
/// messages is one frame larger than the socket's write-buffer cap
/// (tungstenite's `max_write_buffer_size`, 16 KiB + 4 × `max_frame_bytes`
/// = 272 KiB by default, src/socket/upgrade.rs). The write fails with
/// `WriteBufferFull`, the session ends without a close frame or a log
/// line, and a client that rejoins with the same `last_seq` fails the
/// same way forever. Every reply the protocol allows (1000 recovered
/// messages of up to `max_body_chars`, 200-message history pages) must
/// reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_join_and_history_replies_reach_the_client() {
    const COUNT: usize = 400;
    let server = blocking(|| {
        TestServer::start_with(
            &[
                ("CONFAB_PUSH_BURST", "1000000"),
                ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
            ],
            None,
        )
    });
    let (token, _) = blocking(|| server.register("alice", PASSWORD));
    let mut publisher = PhxClient::connect(server.addr(), &token).await.unwrap();
    publisher.join_ok("room:lobby", json!({})).await;
    let body = "z".repeat(3000);
    let payloads = (0..COUNT)
        .map(|i| json!({"body": format!("{i} {body}")}))
        .collect();
    let replies = publisher
        .push_pipelined("room:lobby", "new_msg", payloads, 32, |_, _, _| {})
        .await;
    assert!(replies
        .iter()
        .all(|r| r.as_ref().is_some_and(|(s, _)| s == "ok")));
    publisher.close().await;
    // REST pages are fine (control).
    let history = blocking(|| server.room_messages_after("lobby", &token, 0));
    assert_eq!(history.len(), COUNT);

    let mut problems = Vec::new();
    // Recovery of the whole backlog (about 1.2 MB in one reply).
    let mut client = PhxClient::connect(server.addr(), &token).await.unwrap();
    let reply = client
        .try_push(
            "room:lobby",
            "phx_join",
            json!({"last_seq": 0}),
            REPLY_WITHIN,
        )
        .await;
    let what = "the join with last_seq 0";
    check_messages_reply(reply, COUNT, what, client.end(), &mut problems);
    // A 200-message history page (about 600 KB).
    let mut client = PhxClient::joined(server.addr(), &token, "room:lobby").await;
    let page = json!({"before_seq": COUNT as u64 + 1, "limit": 200});
    let reply = client
        .try_push("room:lobby", "history", page, REPLY_WITHIN)
        .await;
    let what = "the 200-message history page";
    check_messages_reply(reply, 200, what, client.end(), &mut problems);
    let logs = server.logs();
    assert!(
        problems.is_empty(),
        "{}\nserver log (warn):\n{logs}",
        problems.join("\n")
    );
}

/// How long the large replies may take.
const REPLY_WITHIN: Duration = Duration::from_secs(30);

/// Records in `problems` unless `reply` is ok and carries `expected`
/// messages; `end` is how the connection ended, if it did.
fn check_messages_reply(
    reply: Option<(String, Value)>,
    expected: usize,
    what: &str,
    end: Option<&End>,
    problems: &mut Vec<String>,
) {
    match reply {
        Some((status, response)) if status == "ok" => {
            let got = response["messages"].as_array().map_or(0, Vec::len);
            if got != expected {
                problems.push(format!("{what}: {got} of {expected} messages"));
            }
        }
        Some((status, response)) => problems.push(format!("{what}: {status} {response}")),
        None => problems.push(format!(
            "{what} got no reply; the connection ended: {end:?}"
        )),
    }
}
