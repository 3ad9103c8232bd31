//! `confab-load`: a load generator for servers speaking Phoenix Channels V2
//! JSON over WebSocket (confab, or any Phoenix-protocol server: the token,
//! connect params and topic pattern are configurable).
//!
//! Modes: `connect`, `fanout`, `publish`, `rtt`, `reconnect-storm` (see
//! `--help` of each). Every run is bounded in time, prints a short human
//! summary and then one final JSON line of figures, including this
//! process's CPU share and, with `--server-pid`, the server's CPU and RSS.
//!
//! The generator is built to cost little next to the server on a small
//! machine: a current-thread runtime by default (`--threads`), its own
//! WebSocket framing reading into 4 KiB buffers ([`wire`]), and frames
//! are inspected with a byte scanner ([`scan`]) instead of a full JSON
//! parse. It does not depend on the confab library.

mod accounts;
mod cli;
mod client;
mod clock;
mod closed_loop;
mod connect;
mod fanout;
mod http;
mod procstat;
mod publish;
mod publisher;
mod report;
mod rtt;
mod scan;
mod scrape;
mod seen;
mod stats;
mod storm;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::sync::Semaphore;

use cli::{Cli, Common, Mode};
use client::Target;
use procstat::Meter;
use report::Report;

/// What every mode gets.
pub struct Ctx {
    pub common: Common,
    /// The `--url` targets; socket i of a kind connects to target i mod n.
    pub targets: Vec<Target>,
    /// Where publisher sockets of fanout and reconnect-storm connect
    /// (`--publisher-url`, else the `--url` targets).
    pub publisher_targets: Vec<Target>,
    /// Tokens, used round robin by socket index; empty = no token param.
    pub tokens: Vec<String>,
    pub meter: Arc<Meter>,
    /// Limits handshakes in flight (`--connect-concurrency`).
    pub permits: Arc<Semaphore>,
}

impl Ctx {
    /// The token for socket `i`.
    pub fn token(&self, i: usize) -> Option<&str> {
        client::token_for(&self.tokens, i)
    }

    /// The target of socket `i` (round robin over `--url`).
    pub fn target(&self, i: usize) -> &Target {
        &self.targets[i % self.targets.len()]
    }

    /// The target of publisher `j` (round robin over `--publisher-url`, or
    /// over `--url` when none is given).
    pub fn publisher_target(&self, j: usize) -> &Target {
        &self.publisher_targets[j % self.publisher_targets.len()]
    }
}

/// The targets of `urls`, one per distinct URL in `known` (a URL given
/// twice, or as both --url and --publisher-url, shares its counter).
async fn targets_for(
    urls: &[String],
    common: &Common,
    known: &mut Vec<Target>,
) -> Result<Vec<Target>, String> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let target = match known.iter().find(|t| t.url == *url) {
            Some(t) => t.clone(),
            None => {
                let t = Target::new(url, common).await?;
                known.push(t.clone());
                t
            }
        };
        out.push(target);
    }
    Ok(out)
}

/// With several URLs: a summary line and `sockets_per_url` (connections
/// opened to each, reconnections included) in the results.
fn add_spread(report: &mut Report, known: &[Target]) {
    if known.len() < 2 {
        return;
    }
    let counts: Vec<(String, u64)> = known
        .iter()
        .map(|t| {
            (
                t.url.clone(),
                t.opened.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    report.lines.push(format!(
        "connections per URL: {}",
        counts
            .iter()
            .map(|(url, n)| format!("{url} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(results) = report.results.as_object_mut() {
        results.insert(
            "sockets_per_url".into(),
            serde_json::Value::Array(
                counts
                    .into_iter()
                    .map(|(url, n)| serde_json::json!({"url": url, "sockets": n}))
                    .collect(),
            ),
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    clock::epoch();
    let threads = cli.mode.common().threads.max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("confab-load: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(cli.mode));
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

async fn run(mode: Mode) -> u8 {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let common = mode.common().clone();
    let name = mode.name();
    let meter = Meter::start(common.server_pid, common.watch.clone());
    let hard_limit = common
        .timeout
        .unwrap_or(common.warmup + common.duration + mode.slack());
    let work = async {
        if common.urls.is_empty() {
            return Err("no --url given".to_string());
        }
        let mut known = Vec::new();
        let targets = targets_for(&common.urls, &common, &mut known).await?;
        let publisher_targets = if common.publisher_urls.is_empty() {
            targets.clone()
        } else {
            targets_for(&common.publisher_urls, &common, &mut known).await?
        };
        let tokens = accounts::tokens(&common).await?;
        if common.create_rooms {
            let created =
                accounts::create_rooms(&common, client::token_for(&tokens, 0), &topics(&mode))
                    .await?;
            eprintln!("confab-load: created {created} rooms");
        }
        let ctx = Arc::new(Ctx {
            permits: Arc::new(Semaphore::new(common.connect_concurrency.max(1))),
            common: common.clone(),
            targets,
            publisher_targets,
            tokens,
            meter: meter.clone(),
        });
        let mut report = match mode {
            Mode::Connect(args) => connect::run(ctx, args).await,
            Mode::Fanout(args) => fanout::run(ctx, args).await,
            Mode::Publish(args) => publish::run(ctx, args).await,
            Mode::Rtt(args) => rtt::run(ctx, args).await,
            Mode::ReconnectStorm(args) => storm::run(ctx, args).await,
        }?;
        add_spread(&mut report, &known);
        Ok(report)
    };
    let outcome: Result<Result<Report, String>, _> = tokio::time::timeout(hard_limit, work).await;
    let label = common.label.as_deref();
    match outcome {
        Ok(Ok(report)) => report::emit(name, label, started_unix, report, &meter),
        Ok(Err(error)) => {
            report::emit_failure(name, label, started_unix, &error, &meter);
            1
        }
        Err(_) => {
            let error = format!(
                "hard timeout: the run did not finish within {:.0} s",
                hard_limit.as_secs_f64()
            );
            report::emit_failure(name, label, started_unix, &error, &meter);
            2
        }
    }
}

/// The topics a mode will join (for `--create-rooms`).
fn topics(mode: &Mode) -> Vec<String> {
    let c = mode.common();
    let spread = |n: usize| -> Vec<String> {
        let mut all: Vec<String> = (0..n.min(c.topic_count()).max(1))
            .map(|i| c.topic_for(i))
            .collect();
        all.dedup();
        all
    };
    match mode {
        Mode::Connect(a) => spread(a.sockets * a.topics_per_socket.max(1)),
        Mode::Fanout(_) => spread(1),
        Mode::Publish(a) => spread(a.concurrency),
        Mode::Rtt(a) => vec![a.rtt_topic.clone()],
        Mode::ReconnectStorm(a) => spread(a.clients),
    }
}
