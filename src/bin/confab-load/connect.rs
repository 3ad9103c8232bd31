//! `connect` mode: opens N sockets (at most `--connect-concurrency`
//! handshakes-plus-joins in flight, optionally paced by `--connect-rate`),
//! joins K topics on each, then holds them for `--duration` with heartbeats
//! every `--heartbeat-interval` (staggered over the interval).
//!
//! Measures: established and failed sockets (by class: HTTP status of a
//! refused upgrade, TCP error, timeout), joins ok and refused (by reason),
//! ramp time until every socket settled, connect (TCP + upgrade) and join
//! latency, heartbeat round trip while all sockets are held, sockets the
//! server closed while held, and server RSS per established socket.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::cli::ConnectArgs;
use crate::client::{self, Recv};
use crate::clock::micros;
use crate::report::Report;
use crate::scan;
use crate::stats::{round1, round3, Histogram, Tally};
use crate::Ctx;

#[derive(Default)]
struct Shared {
    connect: Histogram,
    join: Histogram,
    heartbeat: Histogram,
    settled: AtomicUsize,
    /// Heartbeat RTTs count only inside the window.
    in_window: AtomicBool,
}

#[derive(Default)]
struct Outcome {
    connected: bool,
    connect_error: Option<String>,
    joined: usize,
    join_errors: Tally,
    /// How the socket ended before the stop signal, if it did.
    ended: Option<String>,
    heartbeats_unanswered: u64,
}

pub async fn run(ctx: Arc<Ctx>, args: ConnectArgs) -> Result<Report, String> {
    let n = args.sockets;
    let k = args.topics_per_socket.max(1);
    let c = &ctx.common;
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    eprintln!("confab-load connect: opening {n} sockets, {k} topic(s) each");
    let started = Instant::now();
    let pace = (args.connect_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.connect_rate));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(pace) = pace {
            tokio::time::sleep_until((started + pace * i as u32).into()).await;
        }
        // Stagger first heartbeats over one interval.
        let offset = c.heartbeat_interval.mul_f64(i as f64 / n.max(1) as f64);
        tasks.push(tokio::spawn(socket(
            ctx.clone(),
            shared.clone(),
            i,
            k,
            offset,
            stop_rx.clone(),
        )));
    }
    let mut last_report = Instant::now();
    while shared.settled.load(Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "confab-load connect: {} of {n} settled",
                shared.settled.load(Relaxed)
            );
        }
    }
    let ramp = started.elapsed();
    let rss_after_ramp = ctx.meter.server_rss();
    eprintln!(
        "confab-load connect: all settled in {:.2} s; holding for {:.0} s",
        ramp.as_secs_f64(),
        c.duration.as_secs_f64()
    );
    tokio::time::sleep(c.warmup).await;
    ctx.meter.begin_window();
    shared.in_window.store(true, Relaxed);
    tokio::time::sleep(c.duration).await;
    shared.in_window.store(false, Relaxed);
    ctx.meter.end_window();
    let _ = stop_tx.send(true);

    let mut failed = Tally::default();
    let mut join_errors = Tally::default();
    let mut dropped = Tally::default();
    let (mut established, mut joined, mut unanswered) = (0usize, 0usize, 0u64);
    for task in tasks {
        let Ok(out) = task.await else {
            failed.add("task_panicked", 1);
            continue;
        };
        if out.connected {
            established += 1;
        }
        if let Some(class) = out.connect_error {
            failed.add(class, 1);
        }
        joined += out.joined;
        join_errors.merge(&out.join_errors);
        if let Some(end) = out.ended {
            dropped.add(end, 1);
        }
        unanswered += out.heartbeats_unanswered;
    }
    let alive = established - dropped.total() as usize;
    let rss_per_socket = rss_after_ramp.and_then(|(before, after)| {
        (established > 0).then(|| round1(after.saturating_sub(before) as f64 / established as f64))
    });

    let mut problems = Vec::new();
    if failed.total() > 0 {
        problems.push(format!(
            "{} sockets failed to open ({})",
            failed.total(),
            failed.line()
        ));
    }
    if join_errors.total() > 0 {
        problems.push(format!(
            "{} joins refused ({})",
            join_errors.total(),
            join_errors.line()
        ));
    }
    if dropped.total() > 0 {
        problems.push(format!(
            "{} sockets ended while held ({})",
            dropped.total(),
            dropped.line()
        ));
    }
    if unanswered > 0 {
        problems.push(format!(
            "{unanswered} heartbeats were not answered before the next one"
        ));
    }
    let lines = vec![
        format!(
            "connect: {established}/{n} sockets established, {} failed ({}); ramp {:.2} s",
            failed.total(),
            failed.line(),
            ramp.as_secs_f64()
        ),
        format!(
            "joins: {joined}/{} ok, refused: {}",
            established * k,
            join_errors.line()
        ),
        format!("connect latency:   {}", shared.connect.line()),
        format!("join latency:      {}", shared.join.line()),
        format!(
            "heartbeat rtt (held, in window): {}",
            shared.heartbeat.line()
        ),
        format!(
            "held {:.0} s: {alive} alive at end, ended early: {}; server rss per socket {} KiB",
            c.duration.as_secs_f64(),
            dropped.line(),
            rss_per_socket.map_or("?".into(), |v| v.to_string())
        ),
    ];
    Ok(Report {
        lines,
        params: json!({
            "url": c.url_label(), "sockets": n, "topics_per_socket": k,
            "topic": c.topic, "topic_pattern": c.topic_pattern, "rooms": c.rooms,
            "connect_rate": args.connect_rate, "connect_concurrency": c.connect_concurrency,
            "duration_s": c.duration.as_secs_f64(), "warmup_s": c.warmup.as_secs_f64(),
            "heartbeat_interval_s": c.heartbeat_interval.as_secs_f64(),
            "source_ips": c.source_ips, "threads": c.threads, "users": ctx.tokens.len(),
        }),
        results: json!({
            "requested": n,
            "established": established,
            "failed": failed.total(),
            "failed_by_class": failed.to_json(),
            "joins_ok": joined,
            "joins_refused": join_errors.total(),
            "join_refusals": join_errors.to_json(),
            "ramp_s": round3(ramp.as_secs_f64()),
            "connect_latency": shared.connect.summary(),
            "join_latency": shared.join.summary(),
            "heartbeat_rtt": shared.heartbeat.summary(),
            "heartbeats_unanswered": unanswered,
            "alive_at_end": alive,
            "ended_while_held": dropped.to_json(),
            "server_rss_kib_per_socket": rss_per_socket,
        }),
        problems,
        violation: false,
    })
}

async fn socket(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    i: usize,
    k: usize,
    heartbeat_offset: Duration,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome::default();
    let c = &ctx.common;
    let permit = ctx.permits.acquire().await.ok();
    let t = Instant::now();
    let mut conn = match client::open(ctx.target(i), ctx.token(i), i).await {
        Ok(conn) => conn,
        Err(e) => {
            out.connect_error = Some(e.class());
            shared.settled.fetch_add(1, Relaxed);
            return out;
        }
    };
    shared.connect.record(micros(t.elapsed()));
    out.connected = true;
    for j in 0..k {
        let topic = client::topic_json(&c.topic_for(i * k + j));
        let t = Instant::now();
        match conn.join_and_wait(&topic, "{}", c.op_timeout, |_| {}).await {
            Ok(_) => {
                shared.join.record(micros(t.elapsed()));
                out.joined += 1;
            }
            Err(reason) => out.join_errors.add(reason, 1),
        }
    }
    drop(permit);
    shared.settled.fetch_add(1, Relaxed);

    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat_offset,
        c.heartbeat_interval,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                if pending.is_some() {
                    out.heartbeats_unanswered += 1;
                }
                match conn.heartbeat().await {
                    Ok(r) => pending = Some((r, Instant::now())),
                    Err(_) => {
                        out.ended = Some("send_error".into());
                        break;
                    }
                }
            }
            received = conn.recv() => match received {
                Recv::Text(text) => {
                    if let Some((r, sent)) = pending {
                        let answered = scan::frame(&text).is_some_and(|f| {
                            f.event == "phx_reply" && f.msg_ref.and_then(|s| s.parse().ok()) == Some(r)
                        });
                        if answered {
                            if shared.in_window.load(Relaxed) {
                                shared.heartbeat.record(micros(sent.elapsed()));
                            }
                            pending = None;
                        }
                    }
                }
                end => {
                    out.ended = Some(end.end_class());
                    break;
                }
            }
        }
    }
    out
}
