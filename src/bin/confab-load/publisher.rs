//! A rate-paced publisher socket (used by `fanout` and `reconnect-storm`):
//! pushes `new_msg` on an open-loop schedule (message k of publisher p is
//! due at start + phase + k/rate, whatever the acks do), puts the actual
//! send time in the body (`t=<µs> p=<p> n=<k>`), matches each `phx_reply`
//! to its push by ref, and records which counters the server acknowledged
//! with `ok` and the highest `seq` it returned. Lateness against the
//! schedule is recorded too, so a generator that falls behind shows up
//! instead of silently lowering the load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::client::{self, Conn, Recv};
use crate::clock::{instant_at, now_us};
use crate::scan;
use crate::seen::SeqSet;
use crate::stats::{Histogram, Tally};

/// Figures all publishers of a run share.
pub struct PaceShared {
    /// Push -> ok reply, for pushes sent inside the window.
    pub ack: Histogram,
    /// How late each push left against its schedule.
    pub lag: Histogram,
    pub win_start: AtomicU64,
    pub win_end: AtomicU64,
    pub sent_in_window: AtomicU64,
    pub acked_in_window: AtomicU64,
}

impl Default for PaceShared {
    fn default() -> Self {
        PaceShared {
            ack: Histogram::default(),
            lag: Histogram::default(),
            win_start: AtomicU64::new(u64::MAX),
            win_end: AtomicU64::new(u64::MAX),
            sent_in_window: AtomicU64::new(0),
            acked_in_window: AtomicU64::new(0),
        }
    }
}

impl PaceShared {
    fn in_window(&self, t: u64) -> bool {
        t >= self.win_start.load(Relaxed) && t < self.win_end.load(Relaxed)
    }
}

/// The schedule of one publisher (times in µs of the shared clock).
pub struct Plan {
    /// Publisher number written in the body (`p=`).
    pub index: usize,
    pub topic_json: String,
    pub join_ref: u64,
    /// Messages per second of this publisher.
    pub rate: f64,
    /// First message due at `start_us + phase_us`.
    pub start_us: u64,
    pub phase_us: u64,
    /// No message is due at or after this.
    pub end_us: u64,
    /// Stop waiting for outstanding acks at this time.
    pub deadline_us: u64,
    pub body_bytes: usize,
}

/// What one publisher did.
#[derive(Default)]
pub struct PubOutcome {
    /// Counters (`n=`) acknowledged with status ok.
    pub acked: SeqSet,
    /// Highest `seq` in an ok reply (0 if none or not given).
    pub max_seq: u64,
    pub sent: u64,
    /// Error replies by reason.
    pub errors: Tally,
    /// Pushes still unanswered at the deadline.
    pub unacked: u64,
    /// How the socket ended early, if it did.
    pub ended: Option<String>,
}

/// Runs the schedule on an open, joined connection.
pub async fn run(mut conn: Conn, plan: Plan, shared: &PaceShared) -> PubOutcome {
    let mut out = PubOutcome::default();
    let interval_us = 1e6 / plan.rate.max(1e-6);
    let mut pending: VecDeque<(u64, u64, u64)> = VecDeque::new(); // (ref, n, sent_us)
    let mut k: u64 = 0;
    loop {
        let due = plan.start_us + plan.phase_us + (k as f64 * interval_us) as u64;
        let sending = due < plan.end_us;
        if !sending && pending.is_empty() {
            break;
        }
        if now_us() >= plan.deadline_us {
            break;
        }
        let wake = if sending { due } else { plan.deadline_us };
        tokio::select! {
            biased;
            received = conn.recv() => match received {
                Recv::Text(text) => on_frame(&text, &mut pending, &mut out, shared),
                end => {
                    out.ended = Some(end.end_class());
                    break;
                }
            },
            () = tokio::time::sleep_until(instant_at(wake)) => {
                if !sending {
                    continue;
                }
                let t = now_us();
                shared.lag.record(t.saturating_sub(due));
                let body = client::stamped_body(t, plan.index, k, plan.body_bytes);
                let payload = format!("{{\"body\":\"{body}\"}}");
                match conn.push(Some(plan.join_ref), &plan.topic_json, "new_msg", &payload).await {
                    Ok(r) => pending.push_back((r, k, t)),
                    Err(_) => {
                        out.ended = Some("send_error".into());
                        break;
                    }
                }
                if shared.in_window(t) {
                    shared.sent_in_window.fetch_add(1, Relaxed);
                }
                out.sent += 1;
                k += 1;
            }
        }
    }
    out.unacked = pending.len() as u64;
    out
}

fn on_frame(
    text: &str,
    pending: &mut VecDeque<(u64, u64, u64)>,
    out: &mut PubOutcome,
    shared: &PaceShared,
) {
    let Some(f) = scan::frame(text) else { return };
    if f.event != "phx_reply" {
        return;
    }
    let Some(r) = f.msg_ref.and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    let Some(pos) = pending.iter().position(|&(pr, _, _)| pr == r) else {
        return;
    };
    let Some((_, n, sent)) = pending.remove(pos) else {
        return;
    };
    if scan::is_ok(f.payload) {
        let now = now_us();
        out.acked.insert(n);
        if let Some(seq) = scan::u64_field(f.payload, "seq") {
            out.max_seq = out.max_seq.max(seq);
        }
        if shared.in_window(sent) {
            shared.ack.record(now.saturating_sub(sent));
        }
        if shared.in_window(now) {
            shared.acked_in_window.fetch_add(1, Relaxed);
        }
    } else {
        out.errors.add(scan::reason(f.payload), 1);
    }
}
