//! The connection to NATS: subjects, connecting, publishing from
//! synchronous code, and the connection's state.
//!
//! Subjects (core NATS, no persistence: the database is the record):
//! - `confab.bcast`: broadcasts to topics, one message per broadcast,
//!   received once by every node;
//! - `confab.ctl`: [`super::envelope::Control`] changes;
//! - `confab.presence`: presence deltas, heartbeats and goodbyes;
//! - `confab.node.<node>.state`: requests for one node's presence state;
//! - `confab.node.<node>.<service>`: other requests to one node (see
//!   [`super::Cluster::ask`] and [`super::Cluster::serve`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub const BROADCASTS: &str = "confab.bcast";
pub const CONTROL: &str = "confab.ctl";
pub const PRESENCE: &str = "confab.presence";

/// The subject on which `node` answers requests for its presence state.
pub fn state_subject(node: &str) -> String {
    service_subject(node, "state")
}

/// The subject on which `node` answers requests to `service`.
pub fn service_subject(node: &str, service: &str) -> String {
    format!("confab.node.{node}.{service}")
}

/// Whether `node` has the shape of a node id (`name#run`, each made of
/// letters, digits, `-` and `_`), so that it names exactly one subject.
pub fn is_node_id(node: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    matches!(node.split_once('#'), Some((name, run)) if token(name) && token(run))
}

/// `urls` for logs and errors: a password in a URL (`nats://user:pw@host`)
/// is replaced by `<redacted>`.
pub fn shown(urls: &[String]) -> String {
    urls.iter()
        .map(|url| {
            let Some((head, host)) = url.rsplit_once('@') else {
                return url.clone();
            };
            let (scheme, credentials) = head.split_once("://").unwrap_or(("", head));
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            let scheme = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            if credentials.contains(':') {
                format!("{scheme}{user}:<redacted>@{host}")
            } else {
                format!("{scheme}<redacted>@{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long connecting at start may take before start fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the client pings the server (a dead server is noticed within
/// about two of these).
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// Longest pause between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Messages waiting to be sent, at most (while NATS is unreachable they
/// wait here; past this the newest are dropped, which costs nothing that
/// matters: the other nodes read missed messages from the database after
/// the outage and ask for presence states that disagree).
const QUEUE: usize = 100_000;

/// Counters of bus traffic for `/metrics`.
#[derive(Default)]
pub struct BusCounts {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
}

/// A connected bus.
pub struct Bus {
    client: async_nats::Client,
    outgoing: mpsc::Sender<(&'static str, Vec<u8>)>,
    connected: Arc<AtomicBool>,
    pub counts: Arc<BusCounts>,
}

/// Connection state changes the cluster reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Up,
    Down,
}

impl Bus {
    /// Connects to the first reachable of `urls` (the client learns the
    /// rest of the NATS cluster from it) as `node`. Returns the bus and the
    /// stream of its connection changes.
    pub async fn connect(
        urls: &[String],
        node: &str,
    ) -> Result<(Arc<Bus>, mpsc::UnboundedReceiver<Link>), String> {
        let (links, link_rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(BusCounts::default());
        let state = connected.clone();
        let reconnects = counts.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("confab {node}"))
            .no_echo()
            .connection_timeout(CONNECT_TIMEOUT)
            .ping_interval(PING_INTERVAL)
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                (Duration::from_millis(50) * attempts.min(20) as u32).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(move |event| {
                let links = links.clone();
                let state = state.clone();
                let reconnects = reconnects.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            state.store(true, Ordering::Relaxed);
                            reconnects.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("bus connected");
                            let _ = links.send(Link::Up);
                        }
                        async_nats::Event::Disconnected => {
                            state.store(false, Ordering::Relaxed);
                            tracing::warn!("bus disconnected; reconnecting");
                            let _ = links.send(Link::Down);
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!("bus: this node fell behind and lost messages");
                            // Treated as a disconnect: lanes read what was lost.
                            let _ = links.send(Link::Down);
                            let _ = links.send(Link::Up);
                        }
                        other => tracing::info!(event = %other, "bus event"),
                    }
                }
            });
        let client = options
            .connect(urls)
            .await
            .map_err(|e| format!("cannot reach NATS at {}: {e}", shown(urls)))?;
        connected.store(true, Ordering::Relaxed);
        let (outgoing, mut queue) = mpsc::channel::<(&'static str, Vec<u8>)>(QUEUE);
        let sender = client.clone();
        let published = counts.clone();
        tokio::spawn(async move {
            while let Some((subject, bytes)) = queue.recv().await {
                match sender.publish(subject, bytes.into()).await {
                    Ok(()) => {
                        published.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        published.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "bus publish failed");
                    }
                }
            }
        });
        Ok((
            Arc::new(Bus {
                client,
                outgoing,
                connected,
                counts,
            }),
            link_rx,
        ))
    }

    /// Sends `bytes` on `subject`, in order with earlier sends, without
    /// waiting (messages wait in a bounded queue while NATS is away).
    pub fn send(&self, subject: &'static str, bytes: Vec<u8>) {
        if self.outgoing.try_send((subject, bytes)).is_err()
            && self
                .counts
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(10_000)
        {
            tracing::warn!("the bus queue is full: dropping messages for the other nodes");
        }
    }

    /// Whether the connection to NATS is up now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The client, for subscriptions and requests.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Sends what is queued and closes the connection.
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_not_shown() {
        let urls = [
            "nats://10.0.0.5:4222".to_string(),
            "nats://app:hunter2@10.0.0.6:4222".to_string(),
            "nats://s3cr3t-token@10.0.0.7:4222".to_string(),
        ];
        assert_eq!(
            super::shown(&urls),
            "nats://10.0.0.5:4222, nats://app:<redacted>@10.0.0.6:4222, nats://<redacted>@10.0.0.7:4222"
        );
    }

    #[test]
    fn node_ids_name_one_subject() {
        assert!(is_node_id("host-1_a#Ab-_9z"));
        for bad in [
            "", "n1", "#run", "n1#", "n1#a#b", "n.1#run", "n1#*", "n1#>", "n 1#run",
        ] {
            assert!(!is_node_id(bad), "{bad:?}");
        }
        assert_eq!(
            service_subject("n1#r", "longpoll"),
            "confab.node.n1#r.longpoll"
        );
        assert_eq!(state_subject("n1#r"), "confab.node.n1#r.state");
    }
}
