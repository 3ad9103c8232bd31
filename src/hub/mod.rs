//! The hub: which connections are subscribed to which topic, presence per
//! topic, and fan-out. A broadcast is serialized once into shared bytes;
//! each subscriber gets a reference-counted handle in its bounded outbound
//! queue. A connection whose queue is full is told to close as a slow
//! consumer; nobody else waits. At shutdown the hub tells every connection
//! to close ([`Hub::shut_down`]), through the same queue.
//!
//! The topic registry is sharded by topic name so subscribing, leaving and
//! publishing on different topics do not contend. The hub knows nothing of
//! sockets or HTTP: REST posts and socket pushes publish the same way.

pub mod broadcast;
pub mod conn;
pub mod outlet;
pub mod presence;
pub mod relay;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use broadcast::Broadcast;
pub use conn::{CloseReason, ConnTx, LateReply, Out, Outbox};
pub use outlet::Outlet;
use presence::{Meta, Presence};
pub use relay::Relay;

const SHARDS: usize = 32;

/// How often pending presence changes are published as one diff per topic.
pub const PRESENCE_INTERVAL: Duration = Duration::from_millis(50);

/// Subscribers and presence of one topic.
#[derive(Default)]
struct Topic {
    subs: HashMap<u64, ConnTx>,
    presence: Presence,
}

type Shard = HashMap<Arc<str>, Topic>;

/// Topic subscriptions, presence and per-user connection lists.
pub struct Hub {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    users: Mutex<HashMap<u64, Vec<ConnTx>>>,
    /// Set (under the `users` lock) once the server shuts down.
    shutting_down: AtomicBool,
    sockets: AtomicUsize,
    /// Topics with presence changes not yet published.
    dirty: Mutex<HashSet<Arc<str>>>,
    /// Presence metas present across all topics.
    presences: AtomicUsize,
    next_ref: AtomicU64,
    ref_prefix: String,
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    /// The cluster, when this node is one of several.
    outlet: OnceLock<Arc<dyn Outlet>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            users: Mutex::default(),
            shutting_down: AtomicBool::new(false),
            sockets: AtomicUsize::new(0),
            dirty: Mutex::default(),
            presences: AtomicUsize::new(0),
            next_ref: AtomicU64::new(1),
            ref_prefix: crate::auth::random_token(6),
            broadcasts: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            outlet: OnceLock::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `broadcast` to every subscriber in `subs`; returns how many took it.
fn fan_out(subs: &HashMap<u64, ConnTx>, broadcast: &Arc<Broadcast>) -> usize {
    let mut delivered = 0;
    for conn in subs.values() {
        if broadcast.excludes(conn.id()) {
            continue;
        }
        if conn.send(Out::Broadcast(broadcast.clone())) {
            delivered += 1;
        }
    }
    delivered
}

impl Hub {
    fn shard(&self, topic: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(topic) as usize) % SHARDS]
    }

    /// Subscribes `conn` to `topic` (replacing an earlier subscription of the same connection).
    pub fn subscribe(&self, topic: &Arc<str>, conn: &ConnTx) {
        let mut shard = lock(self.shard(topic));
        shard
            .entry(topic.clone())
            .or_default()
            .subs
            .insert(conn.id(), conn.clone());
    }

    /// Ends the subscription (and presence) of connection `conn_id` on `topic`.
    pub fn unsubscribe(&self, topic: &str, conn_id: u64) {
        let mut shard = lock(self.shard(topic));
        let Some(entry) = shard.get_mut(topic) else {
            return;
        };
        let was_subscribed = entry.subs.remove(&conn_id).is_some();
        let idle = was_subscribed && entry.subs.is_empty();
        let left = entry.presence.untrack_meta(conn_id);
        if left.is_some() {
            self.presences.fetch_sub(1, Ordering::Relaxed);
            if let Some((name, _)) = shard.get_key_value(topic) {
                lock(&self.dirty).insert(name.clone());
            }
        }
        if shard
            .get(topic)
            .is_some_and(|t| t.subs.is_empty() && t.presence.is_empty())
        {
            shard.remove(topic);
        }
        drop(shard);
        if let Some(outlet) = self.outlet.get() {
            if let Some((key, meta)) = &left {
                outlet.untracked(topic, key, meta);
            }
            if idle {
                outlet.idle(topic);
            }
        }
    }

    /// Removes the presence of connection `conn_id` on `topic` but keeps its
    /// subscription (a duplicate join replaces the channel without a gap in
    /// the diffs the socket receives).
    pub fn untrack(&self, topic: &str, conn_id: u64) {
        let mut shard = lock(self.shard(topic));
        let Some(entry) = shard.get_mut(topic) else {
            return;
        };
        let left = entry.presence.untrack_meta(conn_id);
        if left.is_some() {
            self.presences.fetch_sub(1, Ordering::Relaxed);
            if let Some((name, _)) = shard.get_key_value(topic) {
                lock(&self.dirty).insert(name.clone());
            }
        }
        drop(shard);
        if let (Some(outlet), Some((key, meta))) = (self.outlet.get(), &left) {
            outlet.untracked(topic, key, meta);
        }
    }

    /// Makes `outlet` the cluster this hub belongs to (once, at start).
    pub fn set_outlet(&self, outlet: Arc<dyn Outlet>) {
        let _ = self.outlet.set(outlet);
    }

    /// The cluster, when this node is one of several.
    pub fn outlet(&self) -> Option<&Arc<dyn Outlet>> {
        self.outlet.get()
    }

    /// Whether this node is one of several (broadcasts cross nodes).
    pub fn clustered(&self) -> bool {
        self.outlet.get().is_some()
    }

    /// Whether a broadcast on `topic` may reach anyone: a subscriber here,
    /// or, in a cluster, possibly one on another node.
    pub fn is_heard(&self, topic: &str) -> bool {
        self.clustered() || self.subscriber_count(topic) > 0
    }

    /// A socket here joined `topic` with a snapshot up to `last_seq`; in a
    /// cluster, the topic's messages after it are delivered in order.
    pub fn joined(&self, topic: &Arc<str>, topic_id: u64, last_seq: u64) {
        if let Some(outlet) = self.outlet.get() {
            outlet.joined(topic, topic_id, last_seq);
        }
    }

    /// Tracks a presence of another node (its `phx_ref` kept) under the
    /// local id `replica_id`, which must not be a connection id of this
    /// node; nobody here needs to be subscribed.
    pub fn track_replica(&self, topic: &Arc<str>, key: String, mut meta: Meta, replica_id: u64) {
        meta.conn_id = replica_id;
        let mut shard = lock(self.shard(topic));
        let entry = shard.entry(topic.clone()).or_default();
        entry.presence.track(key, meta);
        self.presences.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirty).insert(topic.clone());
    }

    /// Removes the presence of another node tracked as `replica_id`.
    pub fn untrack_replica(&self, topic: &str, replica_id: u64) {
        let mut shard = lock(self.shard(topic));
        let Some(entry) = shard.get_mut(topic) else {
            return;
        };
        if entry.presence.untrack(replica_id) {
            self.presences.fetch_sub(1, Ordering::Relaxed);
            if let Some((name, _)) = shard.get_key_value(topic) {
                lock(&self.dirty).insert(name.clone());
            }
        }
        if shard
            .get(topic)
            .is_some_and(|t| t.subs.is_empty() && t.presence.is_empty())
        {
            shard.remove(topic);
        }
    }

    /// Tracks `meta` under `key` on `topic` and returns the `presence_state`
    /// payload for the joining socket (which must already be subscribed),
    /// with at most `state_limit` presences (0 = all).
    pub fn track(
        &self,
        topic: &Arc<str>,
        key: String,
        mut meta: Meta,
        state_limit: usize,
    ) -> Arc<str> {
        meta.phx_ref = format!(
            "{}{}",
            self.ref_prefix,
            self.next_ref.fetch_add(1, Ordering::Relaxed)
        );
        if let Some(outlet) = self.outlet.get() {
            outlet.tracked(topic, &key, &meta);
        }
        let mut shard = lock(self.shard(topic));
        let entry = shard.entry(topic.clone()).or_default();
        entry.presence.track(key, meta);
        self.presences.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirty).insert(topic.clone());
        entry.presence.state(state_limit)
    }

    /// Publishes one `presence_diff` for every topic whose presence changed
    /// since the last call. Returns how many diffs went out.
    pub fn flush_presence(&self) -> usize {
        let dirty: Vec<Arc<str>> = lock(&self.dirty).drain().collect();
        let mut sent = 0;
        for topic in dirty {
            let mut shard = lock(self.shard(&topic));
            let Some(entry) = shard.get_mut(&topic) else {
                continue;
            };
            if let Some(diff) = entry.presence.flush() {
                let broadcast = Arc::new(Broadcast::new(topic.clone(), "presence_diff", &diff));
                let delivered = fan_out(&entry.subs, &broadcast);
                self.count_broadcast(delivered);
                sent += 1;
            }
            if entry.subs.is_empty() && entry.presence.is_empty() {
                shard.remove(&topic);
            }
        }
        sent
    }

    /// Runs [`Hub::flush_presence`] every [`PRESENCE_INTERVAL`] until `stop`.
    pub async fn run_presence(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(PRESENCE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.flush_presence(); }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Metas present across all topics.
    pub fn presence_count(&self) -> usize {
        self.presences.load(Ordering::Relaxed)
    }

    /// Metas present on one topic (pending changes included).
    pub fn presence_len(&self, topic: &str) -> usize {
        lock(self.shard(topic))
            .get(topic)
            .map_or(0, |t| t.presence.len())
    }

    /// The users present on one topic now (presence keys that are user ids).
    pub fn present_users(&self, topic: &str) -> Vec<u64> {
        lock(self.shard(topic))
            .get(topic)
            .map(|t| t.presence.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Publishes `broadcast` to its topic: delivers it to the subscribers
    /// here at once, or, in a cluster, hands it to the cluster, which sends
    /// it to the other nodes and delivers it here in `seq` order.
    pub fn publish(&self, broadcast: Arc<Broadcast>) {
        match self.outlet.get() {
            Some(outlet) => outlet.publish(broadcast),
            None => {
                self.deliver(broadcast);
            }
        }
    }

    /// Delivers `broadcast` to every subscriber of its topic here. Returns
    /// how many queues accepted it.
    pub fn deliver(&self, broadcast: Arc<Broadcast>) -> usize {
        let shard = lock(self.shard(broadcast.topic()));
        let delivered = match shard.get(broadcast.topic()) {
            Some(entry) => fan_out(&entry.subs, &broadcast),
            None => 0,
        };
        self.count_broadcast(delivered);
        delivered
    }

    fn count_broadcast(&self, delivered: usize) {
        self.broadcasts.fetch_add(1, Ordering::Relaxed);
        self.deliveries
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }

    /// Broadcasts published so far.
    pub fn broadcasts(&self) -> u64 {
        self.broadcasts.load(Ordering::Relaxed)
    }

    /// Broadcast frames queued to subscribers so far (the fan-out).
    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    /// Subscriptions across all topics (channels joined).
    pub fn subscription_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).values().map(|t| t.subs.len()).sum::<usize>())
            .sum()
    }

    /// Number of connections subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        lock(self.shard(topic))
            .get(topic)
            .map_or(0, |t| t.subs.len())
    }

    /// Tells every connection of `user_id` subscribed to `topic` that its
    /// channel there has ended (membership removed).
    pub fn eject(&self, topic: &str, user_id: u64) {
        let targets: Vec<ConnTx> = lock(self.shard(topic))
            .get(topic)
            .map(|t| {
                t.subs
                    .values()
                    .filter(|c| c.user_id() == user_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let topic: Arc<str> = Arc::from(topic);
        for conn in targets {
            conn.send(Out::Eject(topic.clone()));
        }
    }

    /// Registers a new connection of its user and returns its
    /// [`Registration`]; `Err` with the current count if the user already
    /// has `max_per_user`.
    pub fn register(
        self: &Arc<Self>,
        conn: &ConnTx,
        max_per_user: usize,
    ) -> Result<Registration, usize> {
        let mut users = lock(&self.users);
        let list = users.entry(conn.user_id()).or_default();
        if list.len() >= max_per_user {
            return Err(list.len());
        }
        list.push(conn.clone());
        self.sockets.fetch_add(1, Ordering::Relaxed);
        if self.shutting_down.load(Ordering::Relaxed) {
            conn.close(CloseReason::Shutdown);
        }
        Ok(Registration {
            hub: self.clone(),
            conn: conn.clone(),
        })
    }

    /// Tells every connection to close because the server shuts down, and
    /// any connection registered from now on as soon as it registers.
    pub fn shut_down(&self) {
        let users = lock(&self.users);
        self.shutting_down.store(true, Ordering::Relaxed);
        for conn in users.values().flatten() {
            conn.close(CloseReason::Shutdown);
        }
    }

    /// Forgets a connection (when its [`Registration`] is dropped).
    fn unregister(&self, conn: &ConnTx) {
        let mut users = lock(&self.users);
        if let Some(list) = users.get_mut(&conn.user_id()) {
            let before = list.len();
            list.retain(|c| c.id() != conn.id());
            if list.len() < before {
                self.sockets.fetch_sub(1, Ordering::Relaxed);
            }
            if list.is_empty() {
                users.remove(&conn.user_id());
            }
        }
    }

    /// The live connections of a user.
    pub fn connections_of(&self, user_id: u64) -> Vec<ConnTx> {
        lock(&self.users).get(&user_id).cloned().unwrap_or_default()
    }

    /// Open sockets.
    pub fn socket_count(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }
}

/// A connection's place in the hub. Dropping it forgets the connection,
/// so a session that ends in any way (returning, panicking, cancelled)
/// leaves no socket behind in the counts and the per-user lists.
pub struct Registration {
    hub: Arc<Hub>,
    conn: ConnTx,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(conn_id: u64) -> Meta {
        Meta {
            phx_ref: String::new(),
            online_at: 0,
            username: "u".into(),
            display_name: "U".into(),
            bot: false,
            conn_id,
            joined: 0,
        }
    }

    #[tokio::test]
    async fn presence_diffs_are_batched_and_shared() {
        let hub = Hub::default();
        let topic: Arc<str> = Arc::from("room:x");
        let (a, mut rx_a) = ConnTx::new(1, 10, 64);
        let (b, mut rx_b) = ConnTx::new(2, 20, 64);
        hub.subscribe(&topic, &a);
        hub.track(&topic, "10".into(), meta(1), 0);
        hub.subscribe(&topic, &b);
        // The state is shared until the next flush; what it lacks arrives in that diff.
        let state = hub.track(&topic, "20".into(), meta(2), 0);
        assert!(state.contains("\"10\""));
        assert_eq!(hub.flush_presence(), 1);
        assert_eq!(hub.flush_presence(), 0);
        let (Some(Out::Broadcast(da)), Some(Out::Broadcast(db))) =
            (rx_a.recv().await, rx_b.recv().await)
        else {
            panic!("both subscribers get the diff");
        };
        assert!(Arc::ptr_eq(&da, &db), "one diff serialized once");
        let diff: serde_json::Value =
            serde_json::from_str(da.frame(crate::socket::frame::Vsn::V2).as_str()).unwrap();
        assert_eq!(diff[3], "presence_diff");
        assert_eq!(diff[4]["joins"].as_object().unwrap().len(), 2);
        let mut present = hub.present_users(&topic);
        present.sort_unstable();
        assert_eq!(present, [10, 20]);
        hub.unsubscribe(&topic, 1);
        assert_eq!(hub.presence_count(), 1);
        assert_eq!(hub.present_users(&topic), [20]);
        hub.flush_presence();
        let Some(Out::Broadcast(leave)) = rx_b.recv().await else {
            panic!("leave diff");
        };
        let diff: serde_json::Value =
            serde_json::from_str(leave.frame(crate::socket::frame::Vsn::V2).as_str()).unwrap();
        assert!(diff[4]["leaves"]["10"].is_object());
        hub.unsubscribe(&topic, 2);
        hub.flush_presence();
        assert_eq!(hub.presence_len(&topic), 0);
        assert_eq!(hub.subscriber_count(&topic), 0);
    }

    #[tokio::test]
    async fn shutting_down_closes_connections_now_and_later() {
        let hub = Arc::new(Hub::default());
        let (before, mut rx_before) = ConnTx::new(1, 10, 64);
        let _before = hub.register(&before, 8).unwrap();
        before.send(Out::Recheck);
        hub.shut_down();
        let mut batch = Vec::new();
        // Closing comes before what is still queued.
        assert!(matches!(
            rx_before.recv_many(&mut batch, 64).await,
            Err(CloseReason::Shutdown)
        ));
        assert!(batch.is_empty());
        let (after, mut rx_after) = ConnTx::new(2, 10, 64);
        let registered = hub.register(&after, 8).unwrap();
        assert_eq!(hub.socket_count(), 2);
        assert!(matches!(
            rx_after.recv_many(&mut batch, 64).await,
            Err(CloseReason::Shutdown)
        ));
        assert_eq!(after.closed().await, CloseReason::Shutdown);
        drop(registered);
        assert_eq!(hub.socket_count(), 1, "dropping a registration forgets it");
        assert!(hub.connections_of(10).iter().all(|c| c.id() == 1));
    }
}
