//! `reconnect-storm` mode: N clients join their topic (topic i of the
//! pattern) and follow its `new_msg` seqs while one publisher socket per
//! topic (never dropped) publishes at `--rate` in total. After the warmup
//! every client drops its TCP connection at the same moment (no close
//! frame), reconnects at once (retrying with backoff up to
//! `--reconnect-timeout`; at most `--connect-concurrency` handshakes in
//! flight) and rejoins with `{last_seq, epoch}` of the last message it saw.
//! Publishing continues for `--duration` after the drop, then clients get
//! up to `--drain` to catch up.
//!
//! Measures: time from the drop until each client's rejoin reply arrived
//! (that reply carries every missed message), and until every client had
//! it; reconnect attempts that failed (by class); and, per client, over
//! all seqs from its first join to the last acknowledged seq of its topic:
//! gaps (never received), duplicates, out-of-order arrivals, and rejoin
//! replies that were not `recovered: true` or were `truncated` — the
//! promise is exactly once, in order, so gaps and duplicates must be zero.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::cli::StormArgs;
use crate::client::{self, Conn, Recv};
use crate::clock::{instant_at, micros, now_us};
use crate::publisher::{self, PaceShared, Plan, PubOutcome};
use crate::report::Report;
use crate::scan;
use crate::seen::{Insert, SeqSet};
use crate::stats::{ms, per_sec, Histogram, Tally};
use crate::Ctx;

const RUN: u8 = 0;
const DROP: u8 = 1;
const STOP: u8 = 2;

struct Shared {
    recovery: Histogram,
    drop_us: AtomicU64,
    settled: AtomicUsize,
    /// Clients whose first join succeeded.
    joined: AtomicUsize,
    recovered: AtomicUsize,
    /// Highest seq each client has seen.
    last_seen: Vec<AtomicU64>,
}

/// One client's view of its topic.
#[derive(Default)]
struct Track {
    topic_json: String,
    /// `last_seq` of the first join reply: every later seq must arrive.
    floor: u64,
    epoch: Option<String>,
    last: u64,
    seen: SeqSet,
    duplicates: u64,
    out_of_order: u64,
    below_floor: u64,
}

impl Track {
    fn record(&mut self, seq: u64) {
        if seq <= self.floor {
            self.below_floor += 1;
            return;
        }
        match self.seen.insert(seq) {
            Insert::Duplicate => self.duplicates += 1,
            Insert::New if seq < self.last => self.out_of_order += 1,
            _ => {}
        }
        self.last = self.last.max(seq);
    }

    /// A broadcast on this socket.
    fn on_frame(&mut self, text: &str) {
        let Some(f) = scan::frame(text) else { return };
        if f.event != "new_msg"
            || self.topic_json.get(1..self.topic_json.len() - 1) != Some(f.topic)
        {
            return;
        }
        if let Some(seq) = scan::u64_field(f.payload, "seq") {
            self.record(seq);
        }
    }
}

#[derive(Default)]
struct Outcome {
    open_error: Option<String>,
    topic: usize,
    track: Track,
    recovered_us: Option<u64>,
    attempts: u64,
    reconnect_errors: Tally,
    not_recovered_reply: bool,
    truncated: bool,
    ended_before_drop: Option<String>,
    ended_after_rejoin: Option<String>,
}

pub async fn run(ctx: Arc<Ctx>, args: StormArgs) -> Result<Report, String> {
    let c = ctx.common.clone();
    let n = args.clients;
    let topics = c.topic_count().min(n.max(1));
    let shared = Arc::new(Shared {
        recovery: Histogram::default(),
        drop_us: AtomicU64::new(u64::MAX),
        settled: AtomicUsize::new(0),
        joined: AtomicUsize::new(0),
        recovered: AtomicUsize::new(0),
        last_seen: (0..n).map(|_| AtomicU64::new(0)).collect(),
    });
    let (phase_tx, phase_rx) = watch::channel(RUN);
    eprintln!("confab-load reconnect-storm: {n} clients over {topics} topic(s)");
    let clients: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(client_task(
                ctx.clone(),
                shared.clone(),
                args.reconnect_timeout,
                i,
                topics,
                phase_rx.clone(),
            ))
        })
        .collect();
    while shared.settled.load(Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if n > 0 && shared.joined.load(Relaxed) == 0 {
        let _ = phase_tx.send(STOP);
        let mut errors = Tally::default();
        for task in clients {
            if let Some(e) = task.await.ok().and_then(|o| o.open_error) {
                errors.add(e, 1);
            }
        }
        return Err(format!(
            "no client could connect and join: {}",
            errors.line()
        ));
    }

    // One publisher per topic, never dropped.
    let pace = Arc::new(PaceShared::default());
    let mut conns = Vec::new();
    for t in 0..topics {
        let topic_json = client::topic_json(&c.topic_for(t));
        let mut conn = client::open(ctx.publisher_target(t), ctx.token(n + t), n + t)
            .await
            .map_err(|e| format!("publisher {t} cannot connect: {e}"))?;
        let (join_ref, _) = conn
            .join_and_wait(&topic_json, "{}", c.op_timeout, |_| {})
            .await
            .map_err(|e| format!("publisher {t} cannot join: {e}"))?;
        conns.push((conn, join_ref, topic_json));
    }
    let start_us = now_us() + 50_000;
    let drop_at = start_us + micros(c.warmup);
    let end_us = drop_at + micros(c.duration);
    pace.win_start.store(drop_at, Relaxed);
    pace.win_end.store(end_us, Relaxed);
    let per_topic_rate = args.rate / topics as f64;
    let publishers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(t, (conn, join_ref, topic_json))| {
            let plan = Plan {
                index: t,
                topic_json,
                join_ref,
                rate: per_topic_rate,
                start_us,
                phase_us: (1e6 / per_topic_rate.max(1e-6) * t as f64 / topics as f64) as u64,
                end_us,
                deadline_us: end_us + micros(args.drain),
                body_bytes: args.body_bytes,
            };
            let pace = pace.clone();
            tokio::spawn(async move { publisher::run(conn, plan, &pace).await })
        })
        .collect();

    tokio::time::sleep_until(instant_at(drop_at)).await;
    ctx.meter.begin_window();
    let joined = shared.joined.load(Relaxed);
    shared.drop_us.store(now_us(), Relaxed);
    let dropped_at = Instant::now();
    let _ = phase_tx.send(DROP);
    eprintln!("confab-load reconnect-storm: dropped {joined} clients");
    let recover_deadline = dropped_at + args.reconnect_timeout;
    while shared.recovered.load(Relaxed) < joined && Instant::now() < recover_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_recovered = (shared.recovered.load(Relaxed) >= joined).then(|| dropped_at.elapsed());
    eprintln!(
        "confab-load reconnect-storm: {} of {joined} recovered{}",
        shared.recovered.load(Relaxed),
        all_recovered.map_or(String::new(), |d| format!(" in {:.3} s", d.as_secs_f64()))
    );

    let mut pub_outcomes: Vec<PubOutcome> = Vec::new();
    for task in publishers {
        pub_outcomes.push(task.await.unwrap_or_default());
    }
    let final_seq: Vec<u64> = pub_outcomes.iter().map(|o| o.max_seq).collect();
    // Let clients catch up with the last acknowledged seq of their topic.
    let drain_until = Instant::now() + args.drain;
    while Instant::now() < drain_until {
        let behind = (0..n)
            .filter(|&i| shared.last_seen[i].load(Relaxed) < final_seq[i % topics])
            .count();
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.meter.end_window();
    let _ = phase_tx.send(STOP);
    let mut outcomes = Vec::with_capacity(n);
    for task in clients {
        outcomes.push(task.await.unwrap_or_default());
    }

    // Per-client verdicts.
    let mut open_errors = Tally::default();
    let mut reconnect_errors = Tally::default();
    let mut ended_before = Tally::default();
    let mut ended_after = Tally::default();
    let (mut gaps, mut clients_with_gaps, mut duplicates, mut out_of_order, mut below_floor) =
        (0u64, 0usize, 0u64, 0u64, 0u64);
    let (mut not_recovered, mut not_recovered_replies, mut truncated, mut attempts) =
        (0usize, 0usize, 0usize, 0u64);
    for o in &outcomes {
        if let Some(e) = &o.open_error {
            open_errors.add(e.clone(), 1);
            continue;
        }
        reconnect_errors.merge(&o.reconnect_errors);
        attempts += o.attempts;
        if let Some(e) = &o.ended_before_drop {
            ended_before.add(e.clone(), 1);
        }
        if o.recovered_us.is_none() {
            not_recovered += 1;
            continue;
        }
        not_recovered_replies += usize::from(o.not_recovered_reply);
        truncated += usize::from(o.truncated);
        duplicates += o.track.duplicates;
        out_of_order += o.track.out_of_order;
        below_floor += o.track.below_floor;
        if let Some(e) = &o.ended_after_rejoin {
            ended_after.add(e.clone(), 1);
            continue;
        }
        let last = final_seq[o.topic];
        if last > o.track.floor {
            let missing = o.track.seen.missing(o.track.floor + 1, last);
            gaps += missing;
            clients_with_gaps += usize::from(missing > 0);
        }
    }
    let published: u64 = pub_outcomes.iter().map(|o| o.sent).sum();
    let mut pub_errors = Tally::default();
    let mut pub_ended = Tally::default();
    for o in &pub_outcomes {
        pub_errors.merge(&o.errors);
        if let Some(e) = &o.ended {
            pub_ended.add(e.clone(), 1);
        }
    }

    let mut problems = Vec::new();
    if open_errors.total() > 0 {
        problems.push(format!(
            "{} clients could not connect or join initially ({})",
            open_errors.total(),
            open_errors.line()
        ));
    }
    if not_recovered > 0 {
        problems.push(format!(
            "{not_recovered} clients did not recover within {:.0} s",
            args.reconnect_timeout.as_secs_f64()
        ));
    }
    if reconnect_errors.total() > 0 {
        problems.push(format!(
            "failed reconnect attempts: {}",
            reconnect_errors.line()
        ));
    }
    if gaps > 0 {
        problems.push(format!(
            "{gaps} missing messages (gaps) on {clients_with_gaps} clients"
        ));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} duplicate messages"));
    }
    if out_of_order > 0 {
        problems.push(format!("{out_of_order} messages out of seq order"));
    }
    if below_floor > 0 {
        problems.push(format!(
            "{below_floor} messages at or below a client's first last_seq"
        ));
    }
    if not_recovered_replies > 0 {
        problems.push(format!(
            "{not_recovered_replies} rejoin replies said recovered: false"
        ));
    }
    if truncated > 0 {
        problems.push(format!(
            "{truncated} rejoin replies were truncated (more than the recovery limit missed)"
        ));
    }
    if ended_before.total() > 0 {
        problems.push(format!(
            "clients disconnected before the drop: {}",
            ended_before.line()
        ));
    }
    if ended_after.total() > 0 {
        problems.push(format!(
            "clients disconnected after rejoining: {}",
            ended_after.line()
        ));
    }
    if pub_errors.total() > 0 || pub_ended.total() > 0 {
        problems.push(format!(
            "publisher errors: {}; ended: {}",
            pub_errors.line(),
            pub_ended.line()
        ));
    }
    let violation = gaps > 0 || duplicates > 0 || out_of_order > 0 || below_floor > 0;
    let all_recovered_ms = all_recovered.map(|d| ms(micros(d)));
    let lines = vec![
        format!(
            "reconnect-storm: {joined}/{n} clients dropped at once; {} recovered, all within {}",
            shared.recovered.load(Relaxed),
            all_recovered_ms.map_or("— (not all recovered)".into(), |v| format!("{v:.1} ms"))
        ),
        format!("rejoin after drop: {}", shared.recovery.line()),
        format!(
            "reconnect attempts {attempts}, failed: {}",
            reconnect_errors.line()
        ),
        format!(
            "published {published} at {} msg/s in the window (final seq {:?}); gaps {gaps}, duplicates {duplicates}, out of order {out_of_order}",
            per_sec(pace.acked_in_window.load(Relaxed), end_us - drop_at),
            final_seq
        ),
    ];
    Ok(Report {
        lines,
        params: json!({
            "url": c.url_label(), "clients": n, "topics": topics, "topic": c.topic,
            "topic_pattern": c.topic_pattern, "rate": args.rate, "body_bytes": args.body_bytes,
            "warmup_s": c.warmup.as_secs_f64(), "duration_s": c.duration.as_secs_f64(),
            "reconnect_timeout_s": args.reconnect_timeout.as_secs_f64(),
            "drain_s": args.drain.as_secs_f64(),
            "connect_concurrency": c.connect_concurrency, "threads": c.threads,
            "users": ctx.tokens.len(),
        }),
        results: json!({
            "clients_joined": joined,
            "open_errors": open_errors.to_json(),
            "recovered": shared.recovered.load(Relaxed),
            "not_recovered": not_recovered,
            "all_recovered_ms": all_recovered_ms,
            "recovery": shared.recovery.summary(),
            "reconnect_attempts": attempts,
            "reconnect_failures": reconnect_errors.to_json(),
            "published": published,
            "final_seq": final_seq,
            "ack_latency": pace.ack.summary(),
            "gaps": gaps,
            "clients_with_gaps": clients_with_gaps,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "below_floor": below_floor,
            "rejoin_not_recovered": not_recovered_replies,
            "rejoin_truncated": truncated,
            "disconnected_before_drop": ended_before.to_json(),
            "disconnected_after_rejoin": ended_after.to_json(),
        }),
        problems,
        violation,
    })
}

async fn client_task(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    reconnect_timeout: Duration,
    i: usize,
    topics: usize,
    mut phase: watch::Receiver<u8>,
) -> Outcome {
    let c = &ctx.common;
    let topic_index = i % topics;
    let mut out = Outcome {
        topic: topic_index,
        ..Outcome::default()
    };
    out.track.topic_json = client::topic_json(&c.topic_for(topic_index));
    let first = {
        let _permit = ctx.permits.acquire().await.ok();
        first_join(&ctx, i, &out.track.topic_json).await
    };
    shared.settled.fetch_add(1, Relaxed);
    let mut conn = match first {
        Ok((conn, floor, epoch)) => {
            out.track.floor = floor;
            out.track.last = floor;
            out.track.epoch = epoch;
            out.track.seen = SeqSet::new(floor + 1);
            shared.last_seen[i].store(floor, Relaxed);
            shared.joined.fetch_add(1, Relaxed);
            conn
        }
        Err(e) => {
            out.open_error = Some(e);
            return out;
        }
    };

    // Follow the topic until the drop.
    if let Err(end) = pump(
        &mut conn,
        &mut out.track,
        &shared,
        i,
        &mut phase,
        DROP,
        c.heartbeat_interval,
    )
    .await
    {
        out.ended_before_drop = Some(end);
        while *phase.borrow_and_update() < DROP {
            if phase.changed().await.is_err() {
                return out;
            }
        }
    }
    if *phase.borrow() >= STOP {
        return out;
    }
    drop(conn);

    // Reconnect and rejoin with last_seq.
    let drop_us = shared.drop_us.load(Relaxed);
    let deadline = Instant::now() + reconnect_timeout;
    let mut conn = loop {
        if Instant::now() >= deadline || *phase.borrow() >= STOP {
            return out;
        }
        out.attempts += 1;
        match rejoin(&ctx, i, &mut out).await {
            Ok(conn) => break conn,
            Err(class) => {
                out.reconnect_errors.add(class, 1);
                let backoff = 50u64 << out.attempts.min(5);
                let jitter = (i as u64 * 7) % 50;
                tokio::time::sleep(Duration::from_millis(backoff.min(1000) + jitter)).await;
            }
        }
    };
    let recovered_us = now_us().saturating_sub(drop_us);
    out.recovered_us = Some(recovered_us);
    shared.recovery.record(recovered_us);
    shared.recovered.fetch_add(1, Relaxed);
    shared.last_seen[i].store(out.track.last, Relaxed);

    if let Err(end) = pump(
        &mut conn,
        &mut out.track,
        &shared,
        i,
        &mut phase,
        STOP,
        c.heartbeat_interval,
    )
    .await
    {
        out.ended_after_rejoin = Some(end);
    }
    out
}

/// Connects and joins without last_seq: (conn, last_seq, epoch).
async fn first_join(
    ctx: &Ctx,
    i: usize,
    topic_json: &str,
) -> Result<(Conn, u64, Option<String>), String> {
    let mut conn = client::open(ctx.target(i), ctx.token(i), i)
        .await
        .map_err(|e| e.class())?;
    let (_, reply) = conn
        .join_and_wait(topic_json, "{}", ctx.common.op_timeout, |_| {})
        .await
        .map_err(|reason| format!("join_{reason}"))?;
    let payload = scan::frame(&reply).map(|f| f.payload).unwrap_or("");
    let last_seq = scan::u64_field(payload, "last_seq").unwrap_or(0);
    let epoch = scan::str_field(payload, "epoch").map(str::to_string);
    Ok((conn, last_seq, epoch))
}

/// One reconnect attempt: connect, join with `{last_seq, epoch}`, apply
/// the recovered messages of the reply.
async fn rejoin(ctx: &Ctx, i: usize, out: &mut Outcome) -> Result<Conn, String> {
    let mut conn = {
        let _permit = ctx.permits.acquire().await.ok();
        client::open(ctx.target(i), ctx.token(i), i)
            .await
            .map_err(|e| e.class())?
    };
    let payload = match &out.track.epoch {
        Some(epoch) => format!("{{\"last_seq\":{},\"epoch\":\"{epoch}\"}}", out.track.last),
        None => format!("{{\"last_seq\":{}}}", out.track.last),
    };
    let topic_json = out.track.topic_json.clone();
    let track = &mut out.track;
    let (_, reply) = conn
        .join_and_wait(&topic_json, &payload, ctx.common.op_timeout, |text| {
            track.on_frame(text)
        })
        .await
        .map_err(|reason| format!("join_{reason}"))?;
    // The rejoin reply is parsed in full (once per client).
    let value: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
    let response = &value[4]["response"];
    if response["recovered"] != Value::Bool(true) {
        out.not_recovered_reply = true;
    }
    if response["truncated"] == Value::Bool(true) {
        out.truncated = true;
    }
    if let Some(messages) = response["messages"].as_array() {
        for m in messages {
            if let Some(seq) = m["seq"].as_u64() {
                out.track.record(seq);
            }
        }
    }
    Ok(conn)
}

/// Receives broadcasts (and sends heartbeats) until the phase reaches
/// `until`; `Err(class)` if the connection ends first.
async fn pump(
    conn: &mut Conn,
    track: &mut Track,
    shared: &Shared,
    i: usize,
    phase: &mut watch::Receiver<u8>,
    until: u8,
    heartbeat_every: Duration,
) -> Result<(), String> {
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    loop {
        if *phase.borrow_and_update() >= until {
            return Ok(());
        }
        // Kept across wake-ups until the phase moves.
        let changed = phase.changed();
        tokio::pin!(changed);
        loop {
            tokio::select! {
                biased;
                changed = &mut changed => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    break;
                }
                received = conn.recv() => {
                    let end = match received {
                        Recv::Text(text) => {
                            track.on_frame(&text);
                            conn.drain_buffered(|text| track.on_frame(text))
                        }
                        end => Some(end),
                    };
                    shared.last_seen[i].store(track.last, Relaxed);
                    if let Some(end) = end {
                        return Err(end.end_class());
                    }
                }
                _ = heartbeat.tick() => {
                    if conn.heartbeat().await.is_err() {
                        return Err("send_error".into());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_counts_gaps_duplicates_and_disorder() {
        let mut t = Track {
            topic_json: "\"room:s\"".into(),
            floor: 10,
            last: 10,
            seen: SeqSet::new(11),
            ..Track::default()
        };
        for seq in [11, 12, 12, 14, 13, 9] {
            t.record(seq);
        }
        t.on_frame(r#"[null,null,"room:s","new_msg",{"id":1,"seq":16,"body":"x"}]"#);
        t.on_frame(r#"[null,null,"room:other","new_msg",{"id":1,"seq":17,"body":"x"}]"#);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.below_floor, 1);
        assert_eq!(t.last, 16);
        assert_eq!(t.seen.missing(11, 17), 2);
    }
}
