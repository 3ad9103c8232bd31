//! Counters and histograms for `/metrics` (Prometheus text format). Plain
//! atomics on the hot paths; rendering reads them without stopping anyone.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::hub::Hub;
use crate::store::CommitObserver;

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
const SECONDS_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0,
];

/// Everything `/metrics` reports besides what the hub counts itself.
pub struct Metrics {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub messages_stored: AtomicU64,
    pub auth_failures: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub commit_failures: AtomicU64,
    /// Mails the mail server accepted.
    pub mail_sent: AtomicU64,
    /// Delivery attempts that failed (each retry counts).
    pub mail_failures: AtomicU64,
    /// Mails given up (refused for good, or a day old).
    pub mail_dropped: AtomicU64,
    /// Mails waiting in the queue (a gauge, set by the sender).
    pub mail_queued: AtomicU64,
    pub commit_batch: Histogram,
    pub commit_seconds: Histogram,
    http: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            messages_stored: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            mail_sent: AtomicU64::new(0),
            mail_failures: AtomicU64::new(0),
            mail_dropped: AtomicU64::new(0),
            mail_queued: AtomicU64::new(0),
            commit_batch: Histogram::new(BATCH_BOUNDS),
            commit_seconds: Histogram::new(SECONDS_BOUNDS),
            http: Mutex::default(),
        }
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, ops: usize, seconds: f64, ok: bool) {
        self.commit_batch.observe(ops as f64);
        self.commit_seconds.observe(seconds);
        if !ok {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Metrics {
    /// Counts one HTTP request by route pattern and status.
    pub fn http_request(&self, route: &'static str, status: u16) {
        let mut http = self.http.lock().unwrap_or_else(|p| p.into_inner());
        *http.entry((route, status)).or_default() += 1;
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, hub: &Hub) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "confab_sockets_open",
            "Open WebSocket connections.",
            hub.socket_count() as f64,
        );
        gauge(
            "confab_channels_joined",
            "Channels joined across all sockets.",
            hub.subscription_count() as f64,
        );
        gauge(
            "confab_presence_entries",
            "Presence metas across all topics.",
            hub.presence_count() as f64,
        );
        gauge(
            "confab_mail_queued",
            "Mails waiting in the outgoing queue.",
            self.mail_queued.load(Ordering::Relaxed) as f64,
        );
        let counters: [(&str, &str, u64); 11] = [
            (
                "confab_frames_in_total",
                "Frames received from clients.",
                self.frames_in.load(Ordering::Relaxed),
            ),
            (
                "confab_frames_out_total",
                "Frames written to clients.",
                self.frames_out.load(Ordering::Relaxed),
            ),
            (
                "confab_messages_stored_total",
                "Messages durably stored.",
                self.messages_stored.load(Ordering::Relaxed),
            ),
            (
                "confab_broadcasts_total",
                "Broadcasts published.",
                hub.broadcasts(),
            ),
            (
                "confab_broadcast_deliveries_total",
                "Broadcast frames queued to subscribers (fan-out).",
                hub.deliveries(),
            ),
            (
                "confab_auth_failures_total",
                "Refused logins and socket authentications.",
                self.auth_failures.load(Ordering::Relaxed),
            ),
            (
                "confab_slow_consumer_disconnects_total",
                "Sockets closed for not keeping up.",
                self.slow_consumer_closes.load(Ordering::Relaxed),
            ),
            (
                "confab_commit_failures_total",
                "Store commits that failed.",
                self.commit_failures.load(Ordering::Relaxed),
            ),
            (
                "confab_mail_sent_total",
                "Mails the mail server accepted.",
                self.mail_sent.load(Ordering::Relaxed),
            ),
            (
                "confab_mail_failed_attempts_total",
                "Mail delivery attempts that failed.",
                self.mail_failures.load(Ordering::Relaxed),
            ),
            (
                "confab_mail_dropped_total",
                "Mails given up after failing for good or for a day.",
                self.mail_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        self.commit_batch.render(
            &mut out,
            "confab_commit_batch_size",
            "Operations per durable commit (group commit).",
        );
        self.commit_seconds.render(
            &mut out,
            "confab_commit_seconds",
            "Time to apply and fsync one batch.",
        );
        let _ = writeln!(
            out,
            "# HELP confab_http_requests_total HTTP requests by route and status.\n# TYPE confab_http_requests_total counter"
        );
        let http = self.http.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, status), count) in http.iter() {
            let _ = writeln!(
                out,
                "confab_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.committed(3, 0.002, true);
        metrics.committed(1, 0.5, false);
        metrics.http_request("/api/login", 401);
        Metrics::inc(&metrics.frames_in);
        let text = metrics.render(&Hub::default());
        assert!(text.contains("confab_commit_batch_size_bucket{le=\"4\"} 2"));
        assert!(text.contains("confab_commit_batch_size_count 2"));
        assert!(text.contains("confab_commit_failures_total 1"));
        assert!(text.contains("confab_frames_in_total 1"));
        assert!(text.contains("confab_http_requests_total{route=\"/api/login\",status=\"401\"} 1"));
        assert!(text.contains("confab_sockets_open 0"));
    }
}
