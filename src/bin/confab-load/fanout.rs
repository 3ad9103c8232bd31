//! `fanout` mode: S subscribers join one topic, then P publishers (which
//! also join it) push `new_msg` at a total target rate on an open-loop
//! schedule for warmup + duration.
//!
//! Measures: delivered messages/s (deliveries received inside the window,
//! over the window), end-to-end latency from the publisher's send stamp in
//! the body to the subscriber's receipt (same process clock; messages
//! *sent* inside the window), acknowledgement latency, how late publishers
//! were against their schedule, and per subscriber: lost messages (acked
//! ok by the server but never delivered to a subscriber that stayed
//! connected) and duplicates (same publisher and counter twice), tracked
//! by the `p=`/`n=` stamp, not by server seqs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::cli::FanoutArgs;
use crate::client::{self, Recv};
use crate::clock::{instant_at, micros, now_us};
use crate::publisher::{self, PaceShared, Plan, PubOutcome};
use crate::report::Report;
use crate::scan;
use crate::scrape;
use crate::seen::{Insert, SeqSet};
use crate::stats::{per_sec, Histogram, Tally};
use crate::Ctx;

struct Shared {
    latency: Histogram,
    pace: PaceShared,
    delivered_total: AtomicU64,
    delivered_in_window: AtomicU64,
    settled: AtomicUsize,
    /// Subscribers joined and still connected.
    connected: AtomicUsize,
    publishers: usize,
}

#[derive(Default)]
struct SubOutcome {
    joined: bool,
    open_error: Option<String>,
    /// Per publisher, the counters delivered.
    seen: Vec<SeqSet>,
    /// Per publisher, the highest counter delivered so far.
    highest: Vec<Option<u64>>,
    duplicates: u64,
    /// Deliveries of a counter below one this subscriber already got from
    /// the same publisher (its pushes are stored in push order).
    out_of_order: u64,
    /// `new_msg` frames without a valid stamp of this run.
    foreign: u64,
    ended: Option<String>,
}

pub async fn run(ctx: Arc<Ctx>, args: FanoutArgs) -> Result<Report, String> {
    let c = &ctx.common;
    let (s, p) = (args.subscribers, args.publishers.max(1));
    let topic = c.topic_for(0);
    let shared = Arc::new(Shared {
        latency: Histogram::default(),
        pace: PaceShared::default(),
        delivered_total: AtomicU64::new(0),
        delivered_in_window: AtomicU64::new(0),
        settled: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        publishers: p,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    eprintln!("confab-load fanout: {s} subscribers and {p} publishers on {topic}");

    let started = Instant::now();
    let subs: Vec<_> = (0..s)
        .map(|i| {
            tokio::spawn(subscriber(
                ctx.clone(),
                shared.clone(),
                i,
                topic.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    wait_settled(&shared.settled, s, "subscribers").await;
    let subscribe_s = started.elapsed().as_secs_f64();
    if s > 0 && shared.connected.load(Relaxed) == 0 {
        let mut errors = Tally::default();
        for task in subs {
            if let Some(e) = task.await.ok().and_then(|o| o.open_error) {
                errors.add(e, 1);
            }
        }
        return Err(format!(
            "no subscriber could connect and join: {}",
            errors.line()
        ));
    }

    // Publishers: open and join, then wait for the start time.
    let (go_tx, go_rx) = watch::channel::<Option<u64>>(None);
    let pub_settled = Arc::new(AtomicUsize::new(0));
    let per_pub_rate = args.rate / p as f64;
    let interval_us = 1e6 / per_pub_rate.max(1e-6);
    let pubs: Vec<_> = (0..p)
        .map(|j| {
            let (ctx, shared, settled, mut go) = (
                ctx.clone(),
                shared.clone(),
                pub_settled.clone(),
                go_rx.clone(),
            );
            let topic_json = client::topic_json(&topic);
            let drain = args.drain;
            let body_bytes = args.body_bytes;
            tokio::spawn(async move {
                let opened = {
                    let _permit = ctx.permits.acquire().await.ok();
                    open_and_join(&ctx, ctx.publisher_target(j), s + j, &topic_json).await
                };
                settled.fetch_add(1, Relaxed);
                let (conn, join_ref) = match opened {
                    Ok(x) => x,
                    Err(e) => {
                        return PubOutcome {
                            ended: Some(e),
                            ..PubOutcome::default()
                        }
                    }
                };
                let start_us = loop {
                    if let Some(start) = *go.borrow_and_update() {
                        break start;
                    }
                    if go.changed().await.is_err() {
                        return PubOutcome::default();
                    }
                };
                let end_us = shared.pace.win_end.load(Relaxed);
                let plan = Plan {
                    index: j,
                    topic_json,
                    join_ref,
                    rate: per_pub_rate,
                    start_us,
                    phase_us: (interval_us * j as f64 / p as f64) as u64,
                    end_us,
                    deadline_us: end_us + micros(drain),
                    body_bytes,
                };
                publisher::run(conn, plan, &shared.pace).await
            })
        })
        .collect();
    wait_settled(&pub_settled, p, "publishers").await;

    let start_us = now_us() + 50_000;
    let win_start = start_us + micros(c.warmup);
    let win_end = win_start + micros(c.duration);
    shared.pace.win_start.store(win_start, Relaxed);
    shared.pace.win_end.store(win_end, Relaxed);
    let _ = go_tx.send(Some(start_us));
    eprintln!(
        "confab-load fanout: publishing {} msg/s for {:.0} s (+{:.0} s warmup)",
        args.rate,
        c.duration.as_secs_f64(),
        c.warmup.as_secs_f64()
    );
    tokio::time::sleep_until(instant_at(win_start)).await;
    ctx.meter.begin_window();
    let scraped_before = scrape::read_all(&args.scrape).await;
    tokio::time::sleep_until(instant_at(win_end)).await;
    ctx.meter.end_window();
    let scraped_after = scrape::read_all(&args.scrape).await;

    let mut pub_outcomes = Vec::with_capacity(p);
    for task in pubs {
        pub_outcomes.push(task.await.unwrap_or_default());
    }
    let acked_total: u64 = pub_outcomes.iter().map(|o| o.acked.count()).sum();
    // Let deliveries drain: every subscriber should get every acked message.
    let drain_until = Instant::now() + args.drain;
    while Instant::now() < drain_until {
        let expected = acked_total * shared.connected.load(Relaxed) as u64;
        if shared.delivered_total.load(Relaxed) >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut sub_outcomes = Vec::with_capacity(s);
    for task in subs {
        sub_outcomes.push(task.await.unwrap_or_default());
    }

    // Loss and duplicates.
    let (mut lost, mut lost_on_ended, mut duplicates, mut foreign, mut unacked_delivered) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut out_of_order = 0u64;
    let mut open_errors = Tally::default();
    let mut ended = Tally::default();
    let mut joined = 0;
    for sub in &sub_outcomes {
        if let Some(e) = &sub.open_error {
            open_errors.add(e.clone(), 1);
            continue;
        }
        joined += usize::from(sub.joined);
        duplicates += sub.duplicates;
        out_of_order += sub.out_of_order;
        foreign += sub.foreign;
        let mut missing = 0;
        for (j, out) in pub_outcomes.iter().enumerate() {
            let seen = sub.seen.get(j);
            missing += out
                .acked
                .iter()
                .filter(|&n| !seen.is_some_and(|s| s.contains(n)))
                .count() as u64;
            if let Some(seen) = seen {
                unacked_delivered += seen.iter().filter(|&n| !out.acked.contains(n)).count() as u64;
            }
        }
        match &sub.ended {
            Some(end) => {
                ended.add(end.clone(), 1);
                lost_on_ended += missing;
            }
            None => lost += missing,
        }
    }
    let mut pub_errors = Tally::default();
    let mut pub_ended = Tally::default();
    let (mut sent, mut unacked) = (0, 0);
    for out in &pub_outcomes {
        pub_errors.merge(&out.errors);
        sent += out.sent;
        unacked += out.unacked;
        if let Some(e) = &out.ended {
            pub_ended.add(e.clone(), 1);
        }
    }

    let window_us = micros(c.duration);
    let delivered_in_window = shared.delivered_in_window.load(Relaxed);
    let acked_in_window = shared.pace.acked_in_window.load(Relaxed);
    let alive = joined - ended.total() as usize;
    let mut problems = Vec::new();
    if open_errors.total() > 0 {
        problems.push(format!(
            "{} subscribers could not connect or join ({})",
            open_errors.total(),
            open_errors.line()
        ));
    }
    if ended.total() > 0 {
        problems.push(format!(
            "{} subscribers were disconnected ({}); {lost_on_ended} deliveries missing on them",
            ended.total(),
            ended.line()
        ));
    }
    if pub_ended.total() > 0 {
        problems.push(format!("publishers ended early: {}", pub_ended.line()));
    }
    if pub_errors.total() > 0 {
        problems.push(format!("publish errors: {}", pub_errors.line()));
    }
    if unacked > 0 {
        problems.push(format!("{unacked} pushes never acknowledged"));
    }
    if lost > 0 {
        problems.push(format!(
            "{lost} acknowledged messages never reached a connected subscriber"
        ));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} duplicate deliveries"));
    }
    if out_of_order > 0 {
        problems.push(format!(
            "{out_of_order} deliveries came after a later message of the same publisher"
        ));
    }
    let violation = lost > 0 || duplicates > 0 || out_of_order > 0;
    let mut lines = vec![
        format!(
            "fanout: {joined}/{s} subscribers joined in {subscribe_s:.2} s, {p} publisher(s), target {} msg/s",
            args.rate
        ),
        format!(
            "published {sent} ({} /s acked in window), errors: {}, unacked: {unacked}",
            per_sec(acked_in_window, window_us),
            pub_errors.line()
        ),
        format!(
            "delivered {} msg/s in the window (expected about {}), lost {lost}, duplicates {duplicates}",
            per_sec(delivered_in_window, window_us),
            per_sec(acked_in_window * alive as u64, window_us)
        ),
        format!("end-to-end latency: {}", shared.latency.line()),
        format!("ack latency:        {}", shared.pace.ack.line()),
        format!("publisher lateness: {}", shared.pace.lag.line()),
    ];
    let scraped = scrape::deltas(&args.scrape, &scraped_before, &scraped_after);
    if let Some(rows) = scraped.as_array() {
        for row in rows {
            let grown = match row["increase"].as_object() {
                Some(counters) => counters
                    .iter()
                    .map(|(name, d)| format!("{name} +{d}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "not read".into(),
            };
            lines.push(format!(
                "{} in the window: {grown}",
                row["url"].as_str().unwrap_or("")
            ));
        }
    }
    let mut results = json!({
        "subscribers_joined": joined,
        "subscribe_s": subscribe_s,
        "subscriber_open_errors": open_errors.to_json(),
        "published": sent,
        "acked_per_s": per_sec(acked_in_window, window_us),
        "publish_errors": pub_errors.to_json(),
        "unacked": unacked,
        "delivered_per_s": per_sec(delivered_in_window, window_us),
        "delivered_in_window": delivered_in_window,
        "latency": shared.latency.summary(),
        "ack_latency": shared.pace.ack.summary(),
        "publisher_lateness": shared.pace.lag.summary(),
        "lost": lost,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "subscribers_disconnected": ended.to_json(),
        "lost_on_disconnected": lost_on_ended,
        "delivered_unacked": unacked_delivered,
        "foreign_messages": foreign,
    });
    if !args.scrape.is_empty() {
        results["scraped"] = scraped;
    }
    Ok(Report {
        lines,
        params: json!({
            "url": c.url_label(), "topic": topic, "subscribers": s, "publishers": p,
            "rate": args.rate, "body_bytes": args.body_bytes,
            "duration_s": c.duration.as_secs_f64(), "warmup_s": c.warmup.as_secs_f64(),
            "drain_s": args.drain.as_secs_f64(),
            "threads": c.threads, "users": ctx.tokens.len(),
        }),
        results,
        problems,
        violation,
    })
}

async fn wait_settled(counter: &AtomicUsize, n: usize, what: &str) {
    let mut last = Instant::now();
    while counter.load(Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last.elapsed() > Duration::from_secs(2) {
            last = Instant::now();
            eprintln!("confab-load: {} of {n} {what} ready", counter.load(Relaxed));
        }
    }
}

async fn open_and_join(
    ctx: &Ctx,
    target: &client::Target,
    i: usize,
    topic_json: &str,
) -> Result<(client::Conn, u64), String> {
    let mut conn = client::open(target, ctx.token(i), i)
        .await
        .map_err(|e| e.class())?;
    let (join_ref, _) = conn
        .join_and_wait(topic_json, "{}", ctx.common.op_timeout, |_| {})
        .await
        .map_err(|reason| format!("join_{reason}"))?;
    Ok((conn, join_ref))
}

async fn subscriber(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    i: usize,
    topic: String,
    mut stop: watch::Receiver<bool>,
) -> SubOutcome {
    let mut out = SubOutcome {
        seen: vec![SeqSet::new(0); shared.publishers],
        highest: vec![None; shared.publishers],
        ..SubOutcome::default()
    };
    let opened = {
        let _permit = ctx.permits.acquire().await.ok();
        open_and_join(&ctx, ctx.target(i), i, &client::topic_json(&topic)).await
    };
    shared.settled.fetch_add(1, Relaxed);
    let mut conn = match opened {
        Ok((conn, _)) => conn,
        Err(e) => {
            out.open_error = Some(e);
            return out;
        }
    };
    out.joined = true;
    shared.connected.fetch_add(1, Relaxed);
    let mut heartbeat = tokio::time::interval(ctx.common.heartbeat_interval);
    heartbeat.tick().await;
    // Kept across wake-ups: one waiter for the whole run, not one per frame.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            received = conn.recv() => {
                let end = match received {
                    Recv::Text(text) => {
                        on_frame(&text, &shared, &mut out);
                        conn.drain_buffered(|text| on_frame(text, &shared, &mut out))
                    }
                    end => Some(end),
                };
                if let Some(end) = end {
                    out.ended = Some(end.end_class());
                    break;
                }
            }
            _ = heartbeat.tick() => {
                if conn.heartbeat().await.is_err() {
                    out.ended = Some("send_error".into());
                    break;
                }
            }
        }
    }
    if out.ended.is_some() {
        shared.connected.fetch_sub(1, Relaxed);
    }
    out
}

/// The per-frame work of a subscriber: envelope scan, stamp scan, clock read.
fn on_frame(text: &str, shared: &Shared, out: &mut SubOutcome) {
    let Some(f) = scan::frame(text) else {
        out.foreign += 1;
        return;
    };
    if f.event != "new_msg" {
        return;
    }
    let Some(stamp) = scan::stamp(f.payload).filter(|s| (s.p as usize) < shared.publishers) else {
        out.foreign += 1;
        return;
    };
    let now = now_us();
    shared.delivered_total.fetch_add(1, Relaxed);
    let (start, end) = (
        shared.pace.win_start.load(Relaxed),
        shared.pace.win_end.load(Relaxed),
    );
    if now >= start && now < end {
        shared.delivered_in_window.fetch_add(1, Relaxed);
    }
    if stamp.t >= start && stamp.t < end {
        shared.latency.record(now.saturating_sub(stamp.t));
    }
    let highest = &mut out.highest[stamp.p as usize];
    if highest.is_some_and(|h| stamp.n < h) {
        out.out_of_order += 1;
    } else {
        *highest = Some(stamp.n);
    }
    match out.seen[stamp.p as usize].insert(stamp.n) {
        Insert::New => {}
        Insert::Duplicate => out.duplicates += 1,
        Insert::OutOfRange => out.foreign += 1,
    }
}
