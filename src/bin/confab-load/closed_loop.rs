//! A closed-loop requester (used by `publish` and `rtt`): keeps up to
//! `inflight` pushes outstanding on one socket, sends the next as soon as
//! a reply comes back (or on a fixed per-socket rate), and records the
//! push -> `phx_reply` latency of pushes sent inside the window and the
//! ok replies received inside it. Other frames (broadcasts of our own
//! messages) are skipped after the envelope scan.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{self, Conn, Recv};
use crate::clock::{instant_at, micros, now_us};
use crate::scan;
use crate::stats::{Histogram, Tally};
use crate::Ctx;

/// Figures all requesters of a run share.
pub struct LoopShared {
    /// Push -> ok reply, for pushes sent inside the window.
    pub latency: Histogram,
    pub win_start: AtomicU64,
    pub win_end: AtomicU64,
    /// Ok replies received inside the window.
    pub ok_in_window: AtomicU64,
    /// Time of the latest ok reply (µs).
    pub last_ok_us: AtomicU64,
    /// Requests started, against `limit`.
    pub tickets: AtomicU64,
    pub limit: Option<u64>,
}

impl LoopShared {
    pub fn new(limit: Option<u64>) -> LoopShared {
        LoopShared {
            latency: Histogram::default(),
            win_start: AtomicU64::new(u64::MAX),
            win_end: AtomicU64::new(u64::MAX),
            ok_in_window: AtomicU64::new(0),
            last_ok_us: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            limit,
        }
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.win_start.load(Relaxed) && t < self.win_end.load(Relaxed)
    }

    fn take_ticket(&self) -> bool {
        match self.limit {
            None => true,
            Some(limit) => self.tickets.fetch_add(1, Relaxed) < limit,
        }
    }
}

/// What to send and how often.
pub struct Spec {
    pub join_ref: Option<u64>,
    pub topic_json: String,
    pub event: String,
    pub inflight: usize,
    /// Minimum spacing between sends (µs); 0 = as soon as a slot is free.
    pub spacing_us: u64,
    pub start_us: u64,
    /// Nothing is sent at or after this.
    pub end_us: u64,
    /// Stop waiting for replies at this time.
    pub deadline_us: u64,
}

/// What one requester did.
#[derive(Default)]
pub struct LoopOutcome {
    pub sent: u64,
    pub ok: u64,
    pub errors: Tally,
    pub unanswered: u64,
    pub ended: Option<String>,
}

/// Runs requests until the end time (or the shared limit); `payload`
/// builds each payload from the send time and a counter.
pub async fn run(
    mut conn: Conn,
    spec: Spec,
    shared: &LoopShared,
    mut payload: impl FnMut(u64, u64) -> String,
) -> LoopOutcome {
    let mut out = LoopOutcome::default();
    let mut pending: VecDeque<(u64, u64)> = VecDeque::new(); // (ref, sent_us)
    let mut next_send = spec.start_us;
    let mut exhausted = false;
    tokio::time::sleep_until(instant_at(spec.start_us)).await;
    loop {
        let now = now_us();
        if now >= spec.deadline_us {
            break;
        }
        let may_send = !exhausted && now < spec.end_us;
        if may_send && pending.len() < spec.inflight && now >= next_send {
            if !shared.take_ticket() {
                exhausted = true;
                continue;
            }
            let t = now_us();
            match conn
                .push(
                    spec.join_ref,
                    &spec.topic_json,
                    &spec.event,
                    &payload(t, out.sent),
                )
                .await
            {
                // Paced: latency counts from the scheduled slot, so a send
                // that leaves late does not hide the delay that made it late.
                Ok(r) => pending.push_back((
                    r,
                    if spec.spacing_us == 0 {
                        t
                    } else {
                        next_send.min(t)
                    },
                )),
                Err(_) => {
                    out.ended = Some("send_error".into());
                    break;
                }
            }
            out.sent += 1;
            next_send = if spec.spacing_us == 0 {
                t
            } else {
                next_send.max(t.saturating_sub(spec.spacing_us)) + spec.spacing_us
            };
            continue;
        }
        if pending.is_empty() && !may_send {
            break;
        }
        // Wait for a reply, or for the next send slot when spacing applies.
        let wake = if may_send && pending.len() < spec.inflight {
            next_send
        } else if may_send {
            spec.end_us.min(spec.deadline_us)
        } else {
            spec.deadline_us
        };
        tokio::select! {
            biased;
            received = conn.recv() => match received {
                Recv::Text(text) => on_frame(&text, &mut pending, &mut out, shared),
                end => {
                    out.ended = Some(end.end_class());
                    break;
                }
            },
            () = tokio::time::sleep_until(instant_at(wake)) => {}
        }
    }
    out.unanswered = pending.len() as u64;
    out
}

fn on_frame(
    text: &str,
    pending: &mut VecDeque<(u64, u64)>,
    out: &mut LoopOutcome,
    shared: &LoopShared,
) {
    let Some(f) = scan::frame(text) else { return };
    if f.event != "phx_reply" {
        return;
    }
    let Some(r) = f.msg_ref.and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    let Some(pos) = pending.iter().position(|&(pr, _)| pr == r) else {
        return;
    };
    let Some((_, sent)) = pending.remove(pos) else {
        return;
    };
    if scan::is_ok(f.payload) {
        let now = now_us();
        out.ok += 1;
        shared.last_ok_us.fetch_max(now, Relaxed);
        if shared.in_window(sent) {
            shared.latency.record(now.saturating_sub(sent));
        }
        if shared.in_window(now) {
            shared.ok_in_window.fetch_add(1, Relaxed);
        }
    } else {
        out.errors.add(scan::reason(f.payload), 1);
    }
}

/// A closed-loop run over several sockets.
pub struct Drive {
    /// Sockets.
    pub sockets: usize,
    /// The topic of socket j, and whether it must be joined first.
    pub topic: Box<dyn Fn(usize) -> (String, bool) + Send + Sync>,
    pub event: String,
    pub inflight: usize,
    pub spacing_us: u64,
    /// Builds a payload from (socket, send time, counter).
    pub payload: Arc<dyn Fn(usize, u64, u64) -> String + Send + Sync>,
    pub limit: Option<u64>,
}

/// The outcome of [`drive`].
pub struct Driven {
    pub shared: Arc<LoopShared>,
    pub outcomes: Vec<LoopOutcome>,
    pub open_errors: Tally,
    pub ready: usize,
    /// Length of the measured window (shortened if the limit ran out first).
    pub window_us: u64,
}

/// Opens and joins every socket, runs them for warmup + duration, and
/// marks the window on the meter.
pub async fn drive(ctx: Arc<Ctx>, d: Drive) -> Driven {
    let c = &ctx.common;
    let shared = Arc::new(LoopShared::new(d.limit));
    let (go_tx, go_rx) = watch::channel::<Option<u64>>(None);
    let ready = Arc::new(AtomicUsize::new(0));
    let settled = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let d = Arc::new(d);
    let tasks: Vec<_> = (0..d.sockets)
        .map(|j| {
            let (ctx, shared, d, mut go) = (ctx.clone(), shared.clone(), d.clone(), go_rx.clone());
            let (ready, settled, finished) = (ready.clone(), settled.clone(), finished.clone());
            tokio::spawn(async move {
                let (topic, join) = (d.topic)(j);
                let topic_json = client::topic_json(&topic);
                let opened = {
                    let _permit = ctx.permits.acquire().await.ok();
                    open(&ctx, j, &topic_json, join).await
                };
                settled.fetch_add(1, Relaxed);
                let (conn, join_ref) = match opened {
                    Ok(x) => x,
                    Err(e) => return Err(e),
                };
                ready.fetch_add(1, Relaxed);
                let start_us = loop {
                    if let Some(start) = *go.borrow_and_update() {
                        break start;
                    }
                    if go.changed().await.is_err() {
                        return Err("aborted".to_string());
                    }
                };
                let end_us = shared.win_end.load(Relaxed);
                let spec = Spec {
                    join_ref,
                    topic_json,
                    event: d.event.clone(),
                    inflight: d.inflight.max(1),
                    spacing_us: d.spacing_us,
                    // Paced sockets start spread over one interval, so the
                    // load is steady instead of arriving in lockstep bursts.
                    start_us: start_us + d.spacing_us * j as u64 / d.sockets.max(1) as u64,
                    end_us,
                    deadline_us: end_us + micros(ctx.common.op_timeout),
                };
                let payload = d.payload.clone();
                let out = run(conn, spec, &shared, |t, n| payload(j, t, n)).await;
                finished.fetch_add(1, Relaxed);
                Ok(out)
            })
        })
        .collect();
    while settled.load(Relaxed) < d.sockets {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_us = now_us() + 50_000;
    let win_start = start_us + micros(c.warmup);
    let win_end = win_start + micros(c.duration);
    shared.win_start.store(win_start, Relaxed);
    shared.win_end.store(win_end, Relaxed);
    let _ = go_tx.send(Some(start_us));
    let ready = ready.load(Relaxed);
    tokio::time::sleep_until(instant_at(win_start)).await;
    ctx.meter.begin_window();
    while now_us() < win_end && finished.load(Relaxed) < ready {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let early = now_us() < win_end;
    ctx.meter.end_window();
    let window_us = if early {
        shared.last_ok_us.load(Relaxed).clamp(win_start, win_end) - win_start
    } else {
        win_end - win_start
    };
    let mut outcomes = Vec::new();
    let mut open_errors = Tally::default();
    for task in tasks {
        match task.await {
            Ok(Ok(out)) => outcomes.push(out),
            Ok(Err(e)) => open_errors.add(e, 1),
            Err(_) => open_errors.add("task_panicked", 1),
        }
    }
    Driven {
        shared,
        outcomes,
        open_errors,
        ready,
        window_us,
    }
}

async fn open(
    ctx: &Ctx,
    j: usize,
    topic_json: &str,
    join: bool,
) -> Result<(Conn, Option<u64>), String> {
    let mut conn = client::open(ctx.target(j), ctx.token(j), j)
        .await
        .map_err(|e| e.class())?;
    if !join {
        return Ok((conn, None));
    }
    let (join_ref, _) = conn
        .join_and_wait(topic_json, "{}", ctx.common.op_timeout, |_| {})
        .await
        .map_err(|reason| format!("join_{reason}"))?;
    Ok((conn, Some(join_ref)))
}

/// Sums the outcomes: (sent, ok, errors, unanswered, ended).
pub fn totals(outcomes: &[LoopOutcome]) -> (u64, u64, Tally, u64, Tally) {
    let (mut sent, mut ok, mut unanswered) = (0, 0, 0);
    let (mut errors, mut ended) = (Tally::default(), Tally::default());
    for o in outcomes {
        sent += o.sent;
        ok += o.ok;
        unanswered += o.unanswered;
        errors.merge(&o.errors);
        if let Some(e) = &o.ended {
            ended.add(e.clone(), 1);
        }
    }
    (sent, ok, errors, unanswered, ended)
}

/// What went wrong in a closed-loop run, one line each: sockets that did not
/// open, error replies, sockets that ended early, requests never answered.
/// `who` names the sockets ("publishers"), `what` the requests ("pushes").
pub fn problems(
    driven: &Driven,
    errors: &Tally,
    ended: &Tally,
    unanswered: u64,
    who: &str,
    what: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if driven.open_errors.total() > 0 {
        problems.push(format!(
            "{} {who} could not connect or join ({})",
            driven.open_errors.total(),
            driven.open_errors.line()
        ));
    }
    if errors.total() > 0 {
        problems.push(format!("error replies: {}", errors.line()));
    }
    if ended.total() > 0 {
        problems.push(format!("{who} disconnected: {}", ended.line()));
    }
    if unanswered > 0 {
        problems.push(format!("{unanswered} {what} never answered"));
    }
    problems
}
