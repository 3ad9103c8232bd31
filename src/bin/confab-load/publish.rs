//! `publish` mode: C publisher sockets, each joined to its topic (topic j
//! of the pattern, or the one `--topic`), push `new_msg` as fast as acks
//! come back (`--inflight` outstanding per socket, default 1), or at a
//! steady `--rate` per socket to read the ack latency at a given load.
//!
//! Measures: acknowledged messages/s — confab acks a `new_msg` only after
//! the message is durably stored (fsync, group commit), so this is durable
//! throughput — counted as ok replies received inside the window over the
//! window, and ack latency (push -> ok reply) of pushes sent inside the
//! window. Error replies (e.g. `rate_limited`) are counted by reason.

use std::sync::Arc;

use serde_json::json;

use crate::cli::PublishArgs;
use crate::client;
use crate::closed_loop::{self, Drive};
use crate::report::Report;
use crate::stats::per_sec;
use crate::Ctx;

pub async fn run(ctx: Arc<Ctx>, args: PublishArgs) -> Result<Report, String> {
    let c = ctx.common.clone();
    let body_bytes = args.body_bytes;
    eprintln!(
        "confab-load publish: {} publishers, {} in flight each, {}, {} topic(s)",
        args.concurrency,
        args.inflight,
        if args.rate > 0.0 {
            format!("{} msg/s each", args.rate)
        } else {
            "as fast as acks come back".into()
        },
        c.topic_count().min(args.concurrency)
    );
    let topics = c.clone();
    let driven = closed_loop::drive(
        ctx.clone(),
        Drive {
            sockets: args.concurrency,
            topic: Box::new(move |j| (topics.topic_for(j), true)),
            event: "new_msg".into(),
            inflight: args.inflight,
            spacing_us: if args.rate > 0.0 {
                (1e6 / args.rate) as u64
            } else {
                0
            },
            payload: Arc::new(move |j, t, n| {
                format!(
                    "{{\"body\":\"{}\"}}",
                    client::stamped_body(t, j, n, body_bytes)
                )
            }),
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
    let problems =
        closed_loop::problems(&driven, &errors, &ended, unanswered, "publishers", "pushes");
    if driven.ready == 0 {
        return Err(format!(
            "no publisher could connect and join: {}",
            driven.open_errors.line()
        ));
    }
    let lines = vec![
        format!(
            "publish: {}/{} publishers, inflight {}, window {:.1} s",
            driven.ready,
            args.concurrency,
            args.inflight,
            driven.window_us as f64 / 1e6
        ),
        format!(
            "acked (durable) {rate} msg/s in the window; {ok} ok of {sent} sent, errors: {}",
            errors.line()
        ),
        format!("ack latency: {}", shared.latency.line()),
    ];
    Ok(Report {
        lines,
        params: json!({
            "url": c.url_label(), "concurrency": args.concurrency, "inflight": args.inflight,
            "rate_per_publisher": args.rate,
            "body_bytes": args.body_bytes, "count": args.count,
            "topic": c.topic, "topic_pattern": c.topic_pattern, "rooms": c.rooms,
            "duration_s": c.duration.as_secs_f64(), "warmup_s": c.warmup.as_secs_f64(),
            "threads": c.threads, "users": ctx.tokens.len(),
        }),
        results: json!({
            "publishers_ready": driven.ready,
            "open_errors": driven.open_errors.to_json(),
            "acked_per_s": rate,
            "acked_in_window": in_window,
            "window_s": driven.window_us as f64 / 1e6,
            "sent": sent,
            "acked": ok,
            "errors": errors.to_json(),
            "unanswered": unanswered,
            "disconnected": ended.to_json(),
            "ack_latency": shared.latency.summary(),
        }),
        problems,
        violation: false,
    })
}
