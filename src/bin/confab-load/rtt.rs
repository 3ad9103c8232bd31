//! `rtt` mode: C sockets each send one request at a time (or at
//! `--rate` per socket) and wait for its `phx_reply`. The default request
//! is the `phoenix` heartbeat, which the server answers without touching
//! storage, so this is the protocol round trip: WebSocket framing, routing,
//! the session's write path and scheduling on both sides.
//!
//! Measures: round trips/s (ok replies received inside the window) and
//! the round-trip latency of requests sent inside the window.

use std::sync::Arc;

use serde_json::json;

use crate::cli::RttArgs;
use crate::closed_loop::{self, Drive};
use crate::report::Report;
use crate::stats::per_sec;
use crate::Ctx;

pub async fn run(ctx: Arc<Ctx>, args: RttArgs) -> Result<Report, String> {
    let c = ctx.common.clone();
    let topic = args.rtt_topic.clone();
    let join = topic != "phoenix";
    let payload = args.rtt_payload.clone();
    if !payload.trim_start().starts_with('{') {
        return Err("--rtt-payload must be a JSON object".into());
    }
    eprintln!(
        "confab-load rtt: {} socket(s), {} {} on {}",
        args.concurrency,
        if args.rate > 0.0 {
            format!("{} req/s each,", args.rate)
        } else {
            "back to back,".into()
        },
        args.rtt_event,
        topic
    );
    let driven = closed_loop::drive(
        ctx.clone(),
        Drive {
            sockets: args.concurrency,
            topic: Box::new(move |_| (topic.clone(), join)),
            event: args.rtt_event.clone(),
            inflight: 1,
            spacing_us: if args.rate > 0.0 {
                (1e6 / args.rate) as u64
            } else {
                0
            },
            payload: Arc::new(move |_, _, _| payload.clone()),
            limit: args.count,
        },
    )
    .await;
    let (sent, ok, errors, unanswered, ended) = closed_loop::totals(&driven.outcomes);
    let shared = &driven.shared;
    let in_window = shared
        .ok_in_window
        .load(std::sync::atomic::Ordering::Relaxed);
    let rate = per_sec(in_window, driven.window_us);
    if driven.ready == 0 {
        return Err(format!(
            "no socket could connect: {}",
            driven.open_errors.line()
        ));
    }
    let problems =
        closed_loop::problems(&driven, &errors, &ended, unanswered, "sockets", "requests");
    let lines = vec![
        format!(
            "rtt: {}/{} sockets, {} round trips/s in the window ({ok} ok of {sent})",
            driven.ready, args.concurrency, rate
        ),
        format!("round trip: {}", shared.latency.line()),
    ];
    Ok(Report {
        lines,
        params: json!({
            "url": c.url_label(), "concurrency": args.concurrency, "rate_per_socket": args.rate,
            "count": args.count, "topic": args.rtt_topic, "event": args.rtt_event,
            "duration_s": c.duration.as_secs_f64(), "warmup_s": c.warmup.as_secs_f64(),
            "threads": c.threads,
        }),
        results: json!({
            "sockets_ready": driven.ready,
            "round_trips_per_s": rate,
            "round_trips_in_window": in_window,
            "window_s": driven.window_us as f64 / 1e6,
            "sent": sent,
            "ok": ok,
            "errors": errors.to_json(),
            "unanswered": unanswered,
            "disconnected": ended.to_json(),
            "rtt": shared.latency.summary(),
        }),
        problems,
        violation: false,
    })
}
