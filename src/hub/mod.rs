//! The hub: which connections are subscribed to which topic, and fan-out.
//! A broadcast is serialized once into shared bytes; each subscriber gets a
//! reference-counted handle in its bounded outbound queue. A connection whose
//! queue is full is told to close as a slow consumer; nobody else waits.
//!
//! The topic registry is sharded by topic name so subscribing, leaving and
//! publishing on different topics do not contend. The hub knows nothing of
//! sockets or HTTP: REST posts and socket pushes publish the same way.

pub mod broadcast;
pub mod conn;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use broadcast::Broadcast;
pub use conn::{CloseReason, ConnTx, Out};

const SHARDS: usize = 32;

type Subscribers = HashMap<u64, ConnTx>;

/// Topic subscriptions and per-user connection lists.
pub struct Hub {
    shards: Vec<Mutex<HashMap<Arc<str>, Subscribers>>>,
    hasher: std::collections::hash_map::RandomState,
    users: Mutex<HashMap<u64, Vec<ConnTx>>>,
    sockets: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            users: Mutex::default(),
            sockets: AtomicUsize::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    fn shard(&self, topic: &str) -> &Mutex<HashMap<Arc<str>, Subscribers>> {
        let mut h = self.hasher.build_hasher();
        topic.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Subscribes `conn` to `topic` (replacing an earlier subscription of the same connection).
    pub fn subscribe(&self, topic: &Arc<str>, conn: &ConnTx) {
        let mut shard = lock(self.shard(topic));
        shard
            .entry(topic.clone())
            .or_default()
            .insert(conn.id(), conn.clone());
    }

    /// Removes the subscription of connection `conn_id` to `topic`.
    pub fn unsubscribe(&self, topic: &str, conn_id: u64) {
        let mut shard = lock(self.shard(topic));
        if let Some(subs) = shard.get_mut(topic) {
            subs.remove(&conn_id);
            if subs.is_empty() {
                shard.remove(topic);
            }
        }
    }

    /// Delivers `broadcast` to every subscriber of its topic. Returns how
    /// many queues accepted it.
    pub fn publish(&self, broadcast: Arc<Broadcast>) -> usize {
        let shard = lock(self.shard(broadcast.topic()));
        let Some(subs) = shard.get(broadcast.topic()) else {
            return 0;
        };
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

    /// Number of connections subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        lock(self.shard(topic)).get(topic).map_or(0, HashMap::len)
    }

    /// Tells every connection of `user_id` subscribed to `topic` that its
    /// channel there has ended (membership removed).
    pub fn eject(&self, topic: &str, user_id: u64) {
        let targets: Vec<ConnTx> = lock(self.shard(topic))
            .get(topic)
            .map(|subs| {
                subs.values()
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

    /// Registers a new connection of its user; `Err` with the current count
    /// if the user already has `max_per_user`.
    pub fn register(&self, conn: &ConnTx, max_per_user: usize) -> Result<(), usize> {
        let mut users = lock(&self.users);
        let list = users.entry(conn.user_id()).or_default();
        if list.len() >= max_per_user {
            return Err(list.len());
        }
        list.push(conn.clone());
        self.sockets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets a connection (when its session ends).
    pub fn unregister(&self, conn: &ConnTx) {
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
