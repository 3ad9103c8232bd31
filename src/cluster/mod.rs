//! Cluster mode: several nodes sharing one PostgreSQL (the record) and a
//! NATS bus (the fast path between them).
//!
//! - [`bus`]: the NATS connection and its subjects.
//! - [`envelope`]: what crosses the bus and its encoding.
//! - [`sequencer`]: per-topic order on each node; gaps are read from the
//!   database, never left.
//! - [`presence`]: presence replication with heartbeats and a silence bound.
//! - [`events`]: event names of broadcasts from other nodes.
//!
//! A broadcast made here goes once onto the bus (each node receives it
//! once, whatever its number of subscribers) and through the local
//! sequencer; one from another node goes through the sequencer only.
//! Acks never wait for the bus: a post is acked after its commit, and a
//! node that missed its broadcast reads it from the database.
//!
//! A node learns that it missed something from a later seq (a gap) or
//! from its own reconnect (a sweep). A broadcast lost on the way *out* of
//! a node (written into a connection whose server then died or hung, or
//! still in the client's buffer when it reconnected) shows neither to the
//! others if nothing follows it on that topic. So after reconnecting a
//! node sends again the newest message broadcast of each topic it sent
//! shortly before or while the bus was down: a receiver that has it drops
//! it as a duplicate, one that lacks it (or more) sees the gap and reads.

pub mod bus;
pub mod envelope;
pub mod events;
pub mod presence;
pub mod sequencer;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::presence::Meta;
use crate::hub::{Broadcast, Hub, Outlet, PRESENCE_INTERVAL};
use crate::store::Store;
use bus::{Bus, Link};
use envelope::{Control, Envelope, PresenceMessage, WireBroadcast};
use presence::{Replication, Then};
use sequencer::Sequencer;

/// How long a node waits for another's presence state.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long before the bus went down a broadcast sent may have been lost
/// with the connection: the client notices a dead connection within about
/// three ping intervals; the rest is margin.
const RESEND_WINDOW: Duration = Duration::from_secs(30);

/// What a node does with what other nodes announce.
pub trait Hooks: Send + Sync + 'static {
    /// Applies a [`Control`] to this node's sockets.
    fn control(&self, control: Control);
    /// A message event (`new_msg`, `msg_updated`, `msg_deleted`) of topic
    /// `topic_id` stored by another node.
    fn message(&self, topic_id: u64, event: &str, payload: &str);
    /// Unread counts after another node stored a post.
    fn unread(&self, topic: &str, last_seq: u64, counts: &[(u64, u64)]);
}

/// Why a request to another node ([`Cluster::ask`]) has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The request is larger than the bus carries (its `max_payload`).
    TooLarge,
    /// No answer: the node is gone, the bus is down, the node took longer
    /// than allowed, or the node id is not one.
    NoAnswer(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::TooLarge => f.write_str("the request is larger than the bus carries"),
            AskError::NoAnswer(why) => write!(f, "no answer: {why}"),
        }
    }
}

/// This node's part in the cluster.
pub struct Cluster {
    /// `name#run`: the configured name and a random id of this run.
    node: String,
    bus: Arc<Bus>,
    sequencer: Arc<Sequencer>,
    presence: Arc<Replication>,
    heartbeat: Duration,
    down_after: u32,
    links: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Link>>>,
    /// The newest message broadcast this node sent per topic, and when:
    /// sent again after a reconnect (see the module documentation).
    sent: Mutex<HashMap<String, (Instant, Arc<Broadcast>)>>,
    /// Whether the bus has been up since the last resend; only then are
    /// old entries of `sent` forgotten.
    steady: AtomicBool,
}

/// A node name made safe for NATS subjects.
fn subject_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The node name when none is configured: host name and process id.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "confab".into());
    format!("{host}-{}", std::process::id())
}

impl Cluster {
    /// Connects this node to the bus (`nats_url`); fails, with the reason,
    /// when no NATS server answers.
    pub async fn connect(
        cfg: &Config,
        hub: Arc<Hub>,
        store: Store,
    ) -> Result<Arc<Cluster>, String> {
        let name = if cfg.node_name.is_empty() {
            default_node_name()
        } else {
            cfg.node_name.clone()
        };
        let node = format!("{}#{}", subject_safe(&name), crate::random::random_token(6));
        let (bus, links) = Bus::connect(&cfg.nats_url, &node).await?;
        let cluster = Arc::new(Cluster {
            sequencer: Sequencer::new(hub.clone(), store),
            presence: Arc::new(Replication::new(node.clone(), hub.clone())),
            node,
            bus,
            heartbeat: Duration::from_millis(cfg.cluster_heartbeat_ms),
            down_after: cfg.cluster_down_after,
            links: tokio::sync::Mutex::new(Some(links)),
            sent: Mutex::default(),
            steady: AtomicBool::new(true),
        });
        hub.set_outlet(cluster.clone());
        tracing::info!(node = %cluster.node, nats = %bus::shown(&cfg.nats_url), "joined the cluster bus");
        Ok(cluster)
    }

    /// This node's id (`name#run`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the bus is connected now.
    pub fn bus_connected(&self) -> bool {
        self.bus.is_connected()
    }

    /// The largest message the bus carries, in bytes (the NATS server's
    /// `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.bus.client().max_payload()
    }

    /// Sends `bytes` to `service` of `node` (on its subject
    /// `confab.node.<node>.<service>`) and waits up to `timeout` for the
    /// answer. A node that is gone answers at once with NATS's "no
    /// responders"; while the bus is down nothing is sent.
    pub async fn ask(
        &self,
        node: &str,
        service: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, AskError> {
        if !bus::is_node_id(node) {
            return Err(AskError::NoAnswer(format!("{node:?} is not a node id")));
        }
        if !self.bus.is_connected() {
            return Err(AskError::NoAnswer("the bus is down".into()));
        }
        let request = async_nats::Request::new()
            .payload(bytes.into())
            .timeout(Some(timeout));
        match self
            .bus
            .client()
            .send_request(bus::service_subject(node, service), request)
            .await
        {
            Ok(message) => Ok(message.payload),
            Err(e) if e.kind() == async_nats::RequestErrorKind::MaxPayloadExceeded => {
                Err(AskError::TooLarge)
            }
            Err(e) => Err(AskError::NoAnswer(e.to_string())),
        }
    }

    /// Answers other nodes' requests to `service` of this node until
    /// `stop`: each request's bytes go to `answer`, in a task of their own
    /// (an answer may take long), and what it returns goes back to the
    /// asker. Returns once the subscription is in place.
    pub async fn serve<F, Fut>(
        &self,
        service: &str,
        answer: F,
        stop: CancellationToken,
    ) -> Result<(), String>
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        let subject = bus::service_subject(&self.node, service);
        let client = self.bus.client().clone();
        let mut requests = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
        let _ = client.flush().await;
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    request = requests.next() => match request {
                        Some(request) => request,
                        None => break,
                    },
                    () = stop.cancelled() => break,
                };
                let Some(reply) = request.reply else {
                    continue;
                };
                let answering = answer(request.payload);
                let client = client.clone();
                tokio::spawn(async move {
                    let bytes = answering.await;
                    if let Err(e) = client.publish(reply, bytes.into()).await {
                        tracing::debug!(error = %e, "cannot send an answer on the bus");
                    }
                });
            }
        });
        Ok(())
    }

    /// Applies `control` on every other node (the caller applies it here).
    pub fn announce(&self, control: Control) {
        self.bus
            .send(bus::CONTROL, envelope::encode(&Envelope::Control(control)));
    }

    /// Starts receiving from the bus, the presence ticker and the reaction
    /// to reconnects; `hooks` apply what other nodes announce here.
    /// At `stop` the node says goodbye; the returned task ends after that.
    pub async fn start(
        self: &Arc<Self>,
        hooks: impl Hooks,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let client = self.bus.client().clone();
        let subscribe = |subject: String| {
            let client = client.clone();
            async move {
                client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| format!("cannot subscribe to {subject}: {e}"))
            }
        };
        let broadcasts = subscribe(bus::BROADCASTS.into()).await?;
        let controls = subscribe(bus::CONTROL.into()).await?;
        let presences = subscribe(bus::PRESENCE.into()).await?;
        let requests = subscribe(bus::state_subject(&self.node)).await?;
        let _ = client.flush().await;
        if let Some(links) = self.links.lock().await.take() {
            tokio::spawn(self.clone().watch_links(links));
        }
        let cluster = self.clone();
        Ok(tokio::spawn(async move {
            cluster
                .receive(broadcasts, controls, presences, requests, hooks, stop)
                .await
        }))
    }

    async fn receive(
        self: Arc<Self>,
        mut broadcasts: async_nats::Subscriber,
        mut controls: async_nats::Subscriber,
        mut presences: async_nats::Subscriber,
        mut requests: async_nats::Subscriber,
        hooks: impl Hooks,
        stop: CancellationToken,
    ) {
        let mut delta_tick = tokio::time::interval(PRESENCE_INTERVAL);
        delta_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let silence = self.heartbeat * self.down_after;
        loop {
            tokio::select! {
                Some(message) = broadcasts.next() => self.received(&message.payload, &hooks),
                Some(message) = controls.next() => self.received(&message.payload, &hooks),
                Some(message) = presences.next() => self.received(&message.payload, &hooks),
                Some(request) = requests.next() => self.answer_state(request),
                _ = delta_tick.tick() => self.send_delta(),
                _ = heartbeat.tick() => {
                    self.send_delta();
                    self.send_presence(&self.presence.heartbeat());
                    self.presence.expire(silence);
                    self.forget_sent();
                }
                () = stop.cancelled() => break,
            }
        }
        self.send_presence(&self.presence.goodbye());
        self.bus.close().await;
    }

    fn received(self: &Arc<Self>, bytes: &[u8], hooks: &impl Hooks) {
        self.bus.counts.received.fetch_add(1, Ordering::Relaxed);
        let envelope = match envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a bus message");
                return;
            }
        };
        match envelope {
            Envelope::Broadcast(wire) => {
                if let Some(broadcast) = remote_broadcast(wire) {
                    if let Some(topic_id) = broadcast.topic_id {
                        hooks.message(topic_id, broadcast.event(), broadcast.payload());
                    }
                    self.sequencer.offer(Arc::new(broadcast));
                }
            }
            Envelope::Control(control) => hooks.control(control),
            Envelope::Unread {
                topic,
                last_seq,
                counts,
            } => hooks.unread(&topic, last_seq, &counts),
            Envelope::Presence(message) => self.presence_received(message),
        }
    }

    fn presence_received(self: &Arc<Self>, message: PresenceMessage) {
        if let Then::AskState(node) = self.presence.receive(message) {
            let cluster = self.clone();
            tokio::spawn(async move { cluster.ask_state(node).await });
        }
    }

    async fn ask_state(self: Arc<Self>, node: String) {
        let request = self
            .bus
            .client()
            .request(bus::state_subject(&node), Vec::new().into());
        let answer = match tokio::time::timeout(STATE_TIMEOUT, request).await {
            Ok(Ok(message)) => envelope::decode(&message.payload),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".into()),
        };
        match answer {
            Ok(Envelope::Presence(state @ PresenceMessage::State { .. })) => {
                self.presence.receive(state);
            }
            Ok(_) => self.presence.state_failed(&node),
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "presence state request failed");
                self.presence.state_failed(&node);
            }
        }
    }

    fn answer_state(&self, request: async_nats::Message) {
        let Some(reply) = request.reply else {
            return;
        };
        let (delta, state) = self.presence.state();
        if let Some(delta) = delta {
            self.send_presence(&delta);
        }
        let bytes = envelope::encode(&Envelope::Presence(state));
        let client = self.bus.client().clone();
        tokio::spawn(async move {
            let _ = client.publish(reply, bytes.into()).await;
        });
    }

    fn send_delta(&self) {
        if let Some(delta) = self.presence.delta() {
            self.send_presence(&delta);
        }
    }

    fn send_presence(&self, message: &PresenceMessage) {
        self.bus.send(
            bus::PRESENCE,
            envelope::encode(&Envelope::Presence(message.clone())),
        );
    }

    /// After the bus comes back: every lane reads what it may have missed,
    /// the others get again what this node may have lost on the way out,
    /// and they hear this node's presence digest at once.
    async fn watch_links(self: Arc<Self>, mut links: tokio::sync::mpsc::UnboundedReceiver<Link>) {
        let mut down_since: Option<Instant> = None;
        while let Some(link) = links.recv().await {
            match link {
                Link::Down => {
                    self.steady.store(false, Ordering::Relaxed);
                    down_since.get_or_insert_with(Instant::now);
                }
                Link::Up => {
                    if let Some(since) = down_since.take() {
                        self.sequencer.sweep();
                        // The client reports the connection before its
                        // subscriptions are renewed: a message committed in
                        // between is read by a second sweep a moment later.
                        let later = self.clone();
                        tokio::spawn(async move {
                            let _ = later.bus.client().flush().await;
                            tokio::time::sleep(later.heartbeat).await;
                            later.sequencer.sweep();
                        });
                        self.resend(since.checked_sub(RESEND_WINDOW).unwrap_or(since));
                        self.send_presence(&self.presence.heartbeat());
                    }
                    self.steady.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends again the newest message broadcast of each topic that this
    /// node sent at or after `since`.
    fn resend(&self, since: Instant) {
        let recent: Vec<Arc<Broadcast>> = lock(&self.sent)
            .values()
            .filter(|(at, _)| *at >= since)
            .map(|(_, broadcast)| broadcast.clone())
            .collect();
        if !recent.is_empty() {
            tracing::info!(
                topics = recent.len(),
                "bus back: sending the newest messages again"
            );
        }
        for broadcast in recent {
            self.bus.send(bus::BROADCASTS, wire_bytes(&broadcast));
        }
    }

    /// Forgets sent broadcasts too old to be resent, while the bus is up.
    fn forget_sent(&self) {
        if !self.steady.load(Ordering::Relaxed) {
            return;
        }
        if let Some(cutoff) = Instant::now().checked_sub(RESEND_WINDOW) {
            lock(&self.sent).retain(|_, (at, _)| *at >= cutoff);
        }
    }

    /// Cluster lines for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        let counts = &self.bus.counts;
        let seq = &self.sequencer.counts;
        let lines: [(&str, &str, &str, u64); 9] = [
            (
                "confab_cluster_peers",
                "gauge",
                "Other nodes heard from within the silence bound.",
                self.presence.peers() as u64,
            ),
            (
                "confab_bus_connected",
                "gauge",
                "1 while the NATS connection is up.",
                u64::from(self.bus.is_connected()),
            ),
            (
                "confab_bus_published_total",
                "counter",
                "Messages this node sent on the bus.",
                counts.published.load(Ordering::Relaxed),
            ),
            (
                "confab_bus_received_total",
                "counter",
                "Messages this node received from the bus.",
                counts.received.load(Ordering::Relaxed),
            ),
            (
                "confab_bus_publish_failures_total",
                "counter",
                "Bus sends that failed.",
                counts.dropped.load(Ordering::Relaxed),
            ),
            (
                "confab_gap_fills_total",
                "counter",
                "Reads of missed messages from the database.",
                seq.gap_fills.load(Ordering::Relaxed),
            ),
            (
                "confab_gap_fill_messages_total",
                "counter",
                "Messages delivered from those reads.",
                seq.gap_messages.load(Ordering::Relaxed),
            ),
            (
                "confab_bus_duplicates_total",
                "counter",
                "Message broadcasts dropped as already delivered.",
                seq.duplicates.load(Ordering::Relaxed),
            ),
            (
                "confab_presence_replication_lag_ms",
                "gauge",
                "Age of the last presence delta applied from another node, in ms.",
                self.presence.lag_ms.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
}

/// A broadcast from another node, ready for the hub (`None` for an event
/// this build does not know).
fn remote_broadcast(wire: WireBroadcast) -> Option<Broadcast> {
    let Some(event) = events::known(&wire.event) else {
        tracing::warn!(event = %wire.event, "dropped a broadcast of an unknown event");
        return None;
    };
    let topic: Arc<str> = Arc::from(wire.topic);
    let mut broadcast = match wire.binary {
        Some(frame) => Broadcast::binary(topic, event, frame.into()),
        None => Broadcast::from_payload_json(topic, event, &wire.payload),
    };
    broadcast.seq = wire.seq;
    broadcast.author = wire.author;
    broadcast.topic_id = wire.topic_id;
    broadcast.refers_to = wire.refers_to;
    Some(broadcast)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `broadcast` encoded for the bus.
fn wire_bytes(broadcast: &Broadcast) -> Vec<u8> {
    let wire = WireBroadcast {
        topic: broadcast.topic().to_owned(),
        event: broadcast.event().to_owned(),
        payload: broadcast.payload().to_owned(),
        seq: broadcast.seq,
        author: broadcast.author,
        topic_id: broadcast.topic_id,
        refers_to: broadcast.refers_to,
        binary: broadcast.binary_frame().map(|b| b.to_vec()),
    };
    envelope::encode(&Envelope::Broadcast(wire))
}

impl Outlet for Cluster {
    fn publish(&self, broadcast: Arc<Broadcast>) {
        self.bus.send(bus::BROADCASTS, wire_bytes(&broadcast));
        if let Some(seq) = broadcast.seq {
            let now = Instant::now();
            let mut sent = lock(&self.sent);
            match sent.get_mut(broadcast.topic()) {
                Some(entry) if entry.1.seq.is_some_and(|s| s > seq) => {}
                Some(entry) => *entry = (now, broadcast.clone()),
                None => {
                    sent.insert(broadcast.topic().to_owned(), (now, broadcast.clone()));
                }
            }
        }
        self.sequencer.offer(broadcast);
    }

    fn joined(&self, topic: &Arc<str>, topic_id: u64, last_seq: u64) {
        self.sequencer.joined(topic, topic_id, last_seq);
    }

    fn idle(&self, topic: &str) {
        self.sequencer.idle(topic);
    }

    fn tracked(&self, topic: &Arc<str>, key: &str, meta: &Meta) {
        self.presence.tracked(topic, key, meta);
    }

    fn untracked(&self, topic: &str, _key: &str, meta: &Meta) {
        self.presence.untracked(topic, meta);
    }

    fn unread(&self, topic: &str, last_seq: u64, counts: &[(u64, u64)]) {
        let envelope = Envelope::Unread {
            topic: topic.to_owned(),
            last_seq,
            counts: counts.to_vec(),
        };
        self.bus.send(bus::BROADCASTS, envelope::encode(&envelope));
    }
}
