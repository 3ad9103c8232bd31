//! Presence across nodes, replicated in the manner of Phoenix.Tracker.
//!
//! Each node owns the presences of its own sockets. It sends their changes
//! as numbered deltas (one message per flush interval, whatever the number
//! of changes) and, every heartbeat interval, its state's version and
//! presence count. Every other node keeps a replica per node: a delta that
//! continues the replica's version is applied; a delta that skips one, a
//! heartbeat whose digest disagrees, or a node not seen before makes it ask
//! that node for its whole state and put the replica right. Replicas are
//! tracked in the local hub under ids of their own, so joins, leaves,
//! `presence_state` and `presence_diff` work as for local sockets.
//!
//! A node silent for `down_after` heartbeats is down: its presences leave
//! (one `presence_diff` per topic). A node shutting down says goodbye
//! first. A restarted node has a new run id under the same name, and the
//! replica of its former run is dropped as soon as the new run is heard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::envelope::{PresenceMessage, WireMeta};
use crate::hub::presence::Meta;
use crate::hub::Hub;

/// Replica ids start here, far above any connection id of this node.
const REPLICA_IDS: u64 = 1 << 62;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This node's own presences and the changes not yet sent.
#[derive(Default)]
struct Own {
    version: u64,
    /// `(topic, phx_ref)` → the presence.
    metas: HashMap<(String, String), WireMeta>,
    joins: Vec<WireMeta>,
    leaves: Vec<(String, String)>,
}

/// What this node holds of another node's presences.
struct Replica {
    /// The run this replica is of (the part of the node id after `#`).
    run: String,
    version: u64,
    /// Whether a state request is under way.
    asking: bool,
    last_heard: Instant,
    /// `(topic, phx_ref)` → the local replica id.
    metas: HashMap<(String, String), u64>,
}

/// Presence replication state of this node.
pub struct Replication {
    node: String,
    hub: Arc<Hub>,
    own: Mutex<Own>,
    replicas: Mutex<HashMap<String, Replica>>,
    next_replica_id: AtomicU64,
    /// The lag of the last delta applied, in ms (for `/metrics`).
    pub lag_ms: AtomicU64,
}

/// What the caller must do after handling a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// Ask `node` for its whole state.
    AskState(String),
}

/// Splits a node id `name#run` into its name and run.
fn name_and_run(node: &str) -> (&str, &str) {
    node.rsplit_once('#').unwrap_or((node, ""))
}

impl Replication {
    pub fn new(node: String, hub: Arc<Hub>) -> Replication {
        Replication {
            node,
            hub,
            own: Mutex::default(),
            replicas: Mutex::default(),
            next_replica_id: AtomicU64::new(REPLICA_IDS),
            lag_ms: AtomicU64::new(0),
        }
    }

    /// A presence tracked here.
    pub fn tracked(&self, topic: &str, key: &str, meta: &Meta) {
        let wire = WireMeta::new(topic, key, meta);
        let mut own = lock(&self.own);
        own.metas
            .insert((topic.to_owned(), meta.phx_ref.clone()), wire.clone());
        own.joins.push(wire);
    }

    /// A presence here left.
    pub fn untracked(&self, topic: &str, meta: &Meta) {
        let id = (topic.to_owned(), meta.phx_ref.clone());
        let mut own = lock(&self.own);
        if own.metas.remove(&id).is_some() {
            own.leaves.push(id);
        }
    }

    /// The changes since the last call as one delta, if there are any.
    pub fn delta(&self) -> Option<PresenceMessage> {
        let mut own = lock(&self.own);
        if own.joins.is_empty() && own.leaves.is_empty() {
            return None;
        }
        let from = own.version;
        own.version += 1;
        Some(PresenceMessage::Delta {
            node: self.node.clone(),
            from,
            to: own.version,
            sent_ms: crate::clock::now_ms(),
            joins: std::mem::take(&mut own.joins),
            leaves: std::mem::take(&mut own.leaves),
        })
    }

    /// This node's heartbeat. Changes not yet sent as a delta are not in
    /// the version yet, so they are not counted either.
    pub fn heartbeat(&self) -> PresenceMessage {
        let own = lock(&self.own);
        let pending_joins = own.joins.len() as i64;
        let pending_leaves = own.leaves.len() as i64;
        let count = own.metas.len() as i64 - pending_joins + pending_leaves;
        PresenceMessage::Heartbeat {
            node: self.node.clone(),
            version: own.version,
            count: count.max(0) as u64,
        }
    }

    /// This node's whole state (sends pending changes into it first, as a
    /// new version, so the state and the deltas agree).
    pub fn state(&self) -> (Option<PresenceMessage>, PresenceMessage) {
        let delta = self.delta();
        let own = lock(&self.own);
        let state = PresenceMessage::State {
            node: self.node.clone(),
            version: own.version,
            metas: own.metas.values().cloned().collect(),
        };
        (delta, state)
    }

    /// This node's goodbye.
    pub fn goodbye(&self) -> PresenceMessage {
        PresenceMessage::Goodbye {
            node: self.node.clone(),
        }
    }

    /// Applies a message from another node.
    pub fn receive(&self, message: PresenceMessage) -> Then {
        match message {
            PresenceMessage::Delta {
                node,
                from,
                to,
                sent_ms,
                joins,
                leaves,
            } => {
                let mut replicas = lock(&self.replicas);
                let Some(replica) = self.replica(&mut replicas, &node) else {
                    return Then::Nothing;
                };
                replica.last_heard = Instant::now();
                if to <= replica.version && replica.version > 0 {
                    return Then::Nothing;
                }
                if from != replica.version {
                    return self.ask(replica, &node);
                }
                for (topic, phx_ref) in leaves {
                    if let Some(id) = replica.metas.remove(&(topic.clone(), phx_ref)) {
                        self.hub.untrack_replica(&topic, id);
                    }
                }
                for wire in joins {
                    self.track(replica, wire);
                }
                replica.version = to;
                let lag = (crate::clock::now_ms() - sent_ms).max(0) as u64;
                self.lag_ms.store(lag, Ordering::Relaxed);
                Then::Nothing
            }
            PresenceMessage::Heartbeat {
                node,
                version,
                count,
            } => {
                let mut replicas = lock(&self.replicas);
                let Some(replica) = self.replica(&mut replicas, &node) else {
                    return Then::Nothing;
                };
                replica.last_heard = Instant::now();
                if version < replica.version {
                    return Then::Nothing;
                }
                if version != replica.version || count != replica.metas.len() as u64 {
                    return self.ask(replica, &node);
                }
                Then::Nothing
            }
            PresenceMessage::Goodbye { node } => {
                let (name, run) = name_and_run(&node);
                let mut replicas = lock(&self.replicas);
                if replicas.get(name).is_some_and(|r| r.run == run) {
                    if let Some(replica) = replicas.remove(name) {
                        self.drop_replica(replica);
                    }
                }
                Then::Nothing
            }
            PresenceMessage::State {
                node,
                version,
                metas,
            } => {
                let mut replicas = lock(&self.replicas);
                let Some(replica) = self.replica(&mut replicas, &node) else {
                    return Then::Nothing;
                };
                replica.asking = false;
                replica.last_heard = Instant::now();
                if version < replica.version {
                    return Then::Nothing;
                }
                let mut wanted: HashMap<(String, String), WireMeta> = metas
                    .into_iter()
                    .map(|m| ((m.topic.clone(), m.phx_ref.clone()), m))
                    .collect();
                let gone: Vec<(String, String)> = replica
                    .metas
                    .keys()
                    .filter(|id| !wanted.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    if let Some(local) = replica.metas.remove(&id) {
                        self.hub.untrack_replica(&id.0, local);
                    }
                }
                for (id, wire) in wanted.drain() {
                    if !replica.metas.contains_key(&id) {
                        self.track(replica, wire);
                    }
                }
                replica.version = version;
                Then::Nothing
            }
        }
    }

    /// A state request failed or timed out: ask again on the next heartbeat.
    pub fn state_failed(&self, node: &str) {
        let (name, _) = name_and_run(node);
        if let Some(replica) = lock(&self.replicas).get_mut(name) {
            replica.asking = false;
        }
    }

    /// Drops the replicas of nodes silent for longer than `silence`;
    /// returns their node names.
    pub fn expire(&self, silence: Duration) -> Vec<String> {
        let mut replicas = lock(&self.replicas);
        let gone: Vec<String> = replicas
            .iter()
            .filter(|(_, r)| r.last_heard.elapsed() > silence)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            if let Some(replica) = replicas.remove(name) {
                tracing::warn!(node = %name, "a node went silent; its presences leave");
                self.drop_replica(replica);
            }
        }
        gone
    }

    /// Other nodes heard from within the silence bound.
    pub fn peers(&self) -> usize {
        lock(&self.replicas).len()
    }

    /// The replica of `node`'s current run: made for a node not known yet,
    /// and made afresh (the old run's presences leaving) for a new run.
    /// `None` for this node's own messages.
    fn replica<'a>(
        &self,
        replicas: &'a mut HashMap<String, Replica>,
        node: &str,
    ) -> Option<&'a mut Replica> {
        if node == self.node {
            return None;
        }
        let (name, run) = name_and_run(node);
        if replicas.get(name).is_some_and(|r| r.run != run) {
            if let Some(old) = replicas.remove(name) {
                tracing::info!(node = %name, "a node restarted; its former run's presences leave");
                self.drop_replica(old);
            }
        }
        Some(replicas.entry(name.to_owned()).or_insert_with(|| {
            tracing::info!(node = %name, "a node joined the cluster");
            Replica {
                run: run.to_owned(),
                version: 0,
                asking: false,
                last_heard: Instant::now(),
                metas: HashMap::new(),
            }
        }))
    }

    fn ask(&self, replica: &mut Replica, node: &str) -> Then {
        if replica.asking {
            return Then::Nothing;
        }
        replica.asking = true;
        Then::AskState(node.to_owned())
    }

    fn track(&self, replica: &mut Replica, wire: WireMeta) {
        let id = self.next_replica_id.fetch_add(1, Ordering::Relaxed);
        let topic: Arc<str> = Arc::from(wire.topic.as_str());
        self.hub
            .track_replica(&topic, wire.key.clone(), wire.meta(), id);
        if let Some(old) = replica.metas.insert((wire.topic, wire.phx_ref), id) {
            self.hub.untrack_replica(&topic, old);
        }
    }

    fn drop_replica(&self, replica: Replica) {
        for ((topic, _), id) in replica.metas {
            self.hub.untrack_replica(&topic, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(phx_ref: &str) -> Meta {
        Meta {
            phx_ref: phx_ref.into(),
            online_at: 1,
            username: "ann".into(),
            display_name: "Ann".into(),
            bot: false,
            conn_id: 0,
            joined: 0,
        }
    }

    #[test]
    fn deltas_apply_in_order_and_gaps_ask_for_state() {
        let hub_a = Arc::new(Hub::default());
        let hub_b = Arc::new(Hub::default());
        let a = Replication::new("a#1".into(), hub_a);
        let b = Replication::new("b#1".into(), hub_b.clone());
        a.tracked("room:x", "10", &meta("r1"));
        let first = a.delta().unwrap();
        assert_eq!(b.receive(first), Then::Nothing);
        assert_eq!(hub_b.present_users("room:x"), [10]);
        a.tracked("room:x", "11", &meta("r2"));
        let lost = a.delta().unwrap();
        drop(lost);
        a.untracked("room:x", &meta("r1"));
        let third = a.delta().unwrap();
        // Version 1 → 2 was lost: B asks for the state instead of applying.
        assert_eq!(b.receive(third), Then::AskState("a#1".into()));
        let (pending, state) = a.state();
        assert!(pending.is_none());
        b.receive(state);
        assert_eq!(hub_b.present_users("room:x"), [11]);
        // The heartbeat agrees now.
        assert_eq!(b.receive(a.heartbeat()), Then::Nothing);
        // A new run of A replaces the old one's presences.
        let a2 = Replication::new("a#2".into(), Arc::new(Hub::default()));
        a2.tracked("room:y", "12", &meta("s1"));
        b.receive(a2.delta().unwrap());
        assert!(hub_b.present_users("room:x").is_empty());
        assert_eq!(hub_b.present_users("room:y"), [12]);
        // Silence drops it.
        assert_eq!(b.expire(Duration::ZERO), ["a"]);
        assert!(hub_b.present_users("room:y").is_empty());
        assert_eq!(b.peers(), 0);
    }

    #[test]
    fn goodbye_of_the_current_run_only() {
        let hub_b = Arc::new(Hub::default());
        let b = Replication::new("b#1".into(), hub_b.clone());
        let a = Replication::new("a#2".into(), Arc::new(Hub::default()));
        a.tracked("room:x", "10", &meta("r1"));
        b.receive(a.delta().unwrap());
        b.receive(PresenceMessage::Goodbye { node: "a#1".into() });
        assert_eq!(hub_b.present_users("room:x"), [10]);
        b.receive(a.goodbye());
        assert!(hub_b.present_users("room:x").is_empty());
    }
}
