//! Per-topic order of message broadcasts on one node of a cluster.
//!
//! Seqs are allocated per topic inside the posting transaction, so commits
//! of one topic happen in `seq` order on any node, and a node that holds
//! seq `s` knows every seq below it is already in the database. The bus
//! may still lose, repeat or reorder what it carries between nodes. So each
//! topic with subscribers here has a lane that remembers the next seq its
//! sockets are owed:
//!
//! - the expected seq is delivered and the lane moves on;
//! - one below it is a duplicate and is dropped;
//! - one past it means a gap: the lane holds it (and everything after it,
//!   messages or not, so edits never overtake their message), reads the
//!   missing range from the database, delivers that, then what it held.
//!
//! A lane starts at the snapshot a joining socket read (subscribed first,
//! then read, as on one node); broadcasts that arrive before that are held.
//! After the bus reconnects every lane reads what it may have missed.
//! Local posts pass through the same lanes, so a socket here never sees a
//! seq before the ones below it, whichever node stored them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::hub::{Broadcast, Hub};
use crate::store::Store;

/// Messages read from the database per gap-fill query.
const FILL_PAGE: usize = 200;
/// Broadcasts a lane holds while it waits for a joining socket's snapshot;
/// past this the first held message starts the lane (the join failed or
/// never reported).
const HELD_WITHOUT_BASE: usize = 10_000;
/// Pause between attempts to read a gap while the database is unreachable.
const FILL_RETRY: Duration = Duration::from_millis(250);

/// What a lane remembers of one topic.
struct Lane {
    topic_id: Option<u64>,
    /// The seq the sockets here are owed next; `None` until a join says.
    next: Option<u64>,
    /// Whether a read of missing messages is under way.
    filling: bool,
    /// Broadcasts waiting behind the fill or the base, in arrival order.
    held: VecDeque<Arc<Broadcast>>,
    /// `next` when the lane last read ahead for an edit, delete or
    /// reaction of a message it had not delivered (it reads once per
    /// position, so a message missing from the database cannot loop).
    refer_fill_at: Option<u64>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            topic_id: None,
            next: None,
            filling: false,
            held: VecDeque::new(),
            refer_fill_at: None,
        }
    }
}

/// Counters the sequencer keeps for `/metrics`.
#[derive(Default)]
pub struct SequencerCounts {
    /// Reads of missing messages from the database.
    pub gap_fills: std::sync::atomic::AtomicU64,
    /// Messages delivered from those reads.
    pub gap_messages: std::sync::atomic::AtomicU64,
    /// Message broadcasts dropped as already delivered.
    pub duplicates: std::sync::atomic::AtomicU64,
}

/// The lanes of every topic with subscribers on this node.
pub struct Sequencer {
    lanes: Mutex<HashMap<Arc<str>, Lane>>,
    hub: Arc<Hub>,
    store: Store,
    pub counts: SequencerCounts,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to do after a broadcast was offered to a lane.
enum Next {
    Done,
    /// Read the topic's messages from the database after `after` (a gap
    /// or a sweep) and deliver them before what the lane holds.
    Fill {
        topic_id: u64,
        after: u64,
    },
}

impl Sequencer {
    pub fn new(hub: Arc<Hub>, store: Store) -> Arc<Sequencer> {
        Arc::new(Sequencer {
            lanes: Mutex::default(),
            hub,
            store,
            counts: SequencerCounts::default(),
        })
    }

    /// Delivers `broadcast` here in order (see the module documentation).
    pub fn offer(self: &Arc<Self>, broadcast: Arc<Broadcast>) {
        let topic: Arc<str> = Arc::from(broadcast.topic());
        let next = {
            let mut lanes = lock(&self.lanes);
            let lane = match lanes.get_mut(broadcast.topic()) {
                Some(lane) => lane,
                // No lane: messages of a topic nobody here follows are not
                // delivered (a later join reads them); the rest go out.
                None if broadcast.seq.is_none() => {
                    drop(lanes);
                    self.hub.deliver(broadcast);
                    return;
                }
                None => {
                    if self.hub.subscriber_count(broadcast.topic()) == 0 {
                        return;
                    }
                    lanes.entry(topic.clone()).or_insert_with(Lane::new)
                }
            };
            if lane.topic_id.is_none() {
                lane.topic_id = broadcast.topic_id;
            }
            let ordered = broadcast.seq.is_some() || broadcast.refers_to.is_some();
            if lane.filling || (lane.next.is_none() && ordered) {
                lane.held.push_back(broadcast);
                if lane.next.is_none() && lane.held.len() > HELD_WITHOUT_BASE {
                    let first = lane.held.iter().find_map(|b| b.seq).unwrap_or(1);
                    lane.next = Some(first);
                    self.drain_held(lane)
                } else {
                    Next::Done
                }
            } else {
                self.pass(lane, broadcast)
            }
        };
        self.follow(topic, next);
    }

    /// A socket here joined `topic` with a snapshot up to `last_seq`.
    pub fn joined(self: &Arc<Self>, topic: &Arc<str>, topic_id: u64, last_seq: u64) {
        let next = {
            let mut lanes = lock(&self.lanes);
            let lane = lanes.entry(topic.clone()).or_insert_with(Lane::new);
            lane.topic_id = Some(topic_id);
            if lane.next.is_some() {
                // Earlier sockets are owed what follows their own base; the
                // new one drops what its snapshot held.
                return;
            }
            lane.next = Some(last_seq + 1);
            if lane.filling {
                Next::Done
            } else {
                self.drain_held(lane)
            }
        };
        self.follow(topic.clone(), next);
    }

    /// The last subscriber here left `topic`: forget its lane (unless a
    /// socket subscribed again meanwhile).
    pub fn idle(&self, topic: &str) {
        let mut lanes = lock(&self.lanes);
        if self.hub.subscriber_count(topic) == 0 {
            lanes.remove(topic);
        }
    }

    /// After the bus was down: every lane reads what it may have missed.
    pub fn sweep(self: &Arc<Self>) {
        let fills: Vec<(Arc<str>, Next)> = {
            let mut lanes = lock(&self.lanes);
            lanes
                .iter_mut()
                .filter_map(|(topic, lane)| {
                    let (Some(topic_id), Some(next)) = (lane.topic_id, lane.next) else {
                        return None;
                    };
                    if lane.filling {
                        return None;
                    }
                    lane.filling = true;
                    Some((
                        topic.clone(),
                        Next::Fill {
                            topic_id,
                            after: next - 1,
                        },
                    ))
                })
                .collect()
        };
        for (topic, next) in fills {
            self.follow(topic, next);
        }
    }

    /// Topics with a lane here.
    pub fn lanes(&self) -> usize {
        lock(&self.lanes).len()
    }

    /// Delivers or holds one broadcast on a lane that is not filling and
    /// has its base.
    fn pass(&self, lane: &mut Lane, broadcast: Arc<Broadcast>) -> Next {
        let Some(next) = lane.next else {
            self.hub.deliver(broadcast);
            return Next::Done;
        };
        match (broadcast.seq, broadcast.refers_to) {
            (Some(seq), _) if seq < next => {
                crate::metrics::Metrics::inc(&self.counts.duplicates);
                Next::Done
            }
            (Some(seq), _) if seq == next => {
                lane.next = Some(next + 1);
                self.hub.deliver(broadcast);
                Next::Done
            }
            (Some(seq), _) => {
                lane.held.push_back(broadcast);
                match lane.topic_id {
                    Some(topic_id) => {
                        lane.filling = true;
                        Next::Fill {
                            topic_id,
                            after: next - 1,
                        }
                    }
                    // A lane always has its topic id once it has a base (the
                    // join gives both); without one the gap cannot be read.
                    None => {
                        lane.next = Some(seq);
                        self.drain_held(lane)
                    }
                }
            }
            // An edit, delete or reaction of a message not delivered here
            // yet: read up to it first, so it never arrives before it.
            (None, Some(message)) if message >= next => match lane.topic_id {
                Some(topic_id) if lane.refer_fill_at != Some(next) => {
                    lane.refer_fill_at = Some(next);
                    lane.held.push_back(broadcast);
                    lane.filling = true;
                    Next::Fill {
                        topic_id,
                        after: next - 1,
                    }
                }
                _ => {
                    self.hub.deliver(broadcast);
                    Next::Done
                }
            },
            _ => {
                self.hub.deliver(broadcast);
                Next::Done
            }
        }
    }

    /// Passes what a lane holds, in order, until it is empty or another gap
    /// shows. Edits, deletes and reactions of messages not delivered yet
    /// wait for them (other broadcasts pass them); if they still wait at
    /// the end, the lane reads ahead once more, and past that (the message
    /// is not in the database) they are delivered as they are.
    fn drain_held(&self, lane: &mut Lane) -> Next {
        lane.filling = false;
        let mut waiting: VecDeque<Arc<Broadcast>> = VecDeque::new();
        while let Some(broadcast) = lane.held.pop_front() {
            let Some(next) = lane.next else {
                lane.held.push_front(broadcast);
                break;
            };
            match (broadcast.seq, broadcast.refers_to) {
                (Some(seq), _) if seq > next => {
                    let Some(topic_id) = lane.topic_id else {
                        lane.next = Some(seq);
                        lane.held.push_front(broadcast);
                        continue;
                    };
                    lane.held.push_front(broadcast);
                    while let Some(earlier) = waiting.pop_back() {
                        lane.held.push_front(earlier);
                    }
                    lane.filling = true;
                    return Next::Fill {
                        topic_id,
                        after: next - 1,
                    };
                }
                (Some(seq), _) if seq < next => {
                    crate::metrics::Metrics::inc(&self.counts.duplicates);
                }
                (Some(_), _) => {
                    lane.next = Some(next + 1);
                    self.hub.deliver(broadcast);
                    self.release(&mut waiting, next + 1);
                }
                (None, Some(message)) if message >= next => waiting.push_back(broadcast),
                _ => {
                    self.hub.deliver(broadcast);
                }
            }
        }
        if waiting.is_empty() {
            return Next::Done;
        }
        match (lane.topic_id, lane.next) {
            (Some(topic_id), Some(next)) if lane.refer_fill_at != Some(next) => {
                lane.refer_fill_at = Some(next);
                lane.held = waiting;
                lane.filling = true;
                Next::Fill {
                    topic_id,
                    after: next - 1,
                }
            }
            _ => {
                for broadcast in waiting {
                    self.hub.deliver(broadcast);
                }
                Next::Done
            }
        }
    }

    /// Delivers, in order, what waits for a message below `next`.
    fn release(&self, waiting: &mut VecDeque<Arc<Broadcast>>, next: u64) {
        if waiting.is_empty() {
            return;
        }
        let mut still = VecDeque::with_capacity(waiting.len());
        for broadcast in waiting.drain(..) {
            if broadcast.refers_to.is_some_and(|message| message >= next) {
                still.push_back(broadcast);
            } else {
                self.hub.deliver(broadcast);
            }
        }
        *waiting = still;
    }

    fn follow(self: &Arc<Self>, topic: Arc<str>, next: Next) {
        if let Next::Fill { topic_id, after } = next {
            let sequencer = self.clone();
            tokio::spawn(async move { sequencer.fill(topic, topic_id, after).await });
        }
    }

    /// Reads the topic's messages after `after` up to what the lane holds
    /// (or to the newest, for a sweep), delivers them, then what it holds.
    async fn fill(self: Arc<Self>, topic: Arc<str>, topic_id: u64, mut after: u64) {
        crate::metrics::Metrics::inc(&self.counts.gap_fills);
        loop {
            let read = crate::chat::messages::broadcasts_after(
                &self.store,
                &topic,
                topic_id,
                after,
                FILL_PAGE,
            )
            .await;
            let (broadcasts, more) = match read {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, topic = %topic, "cannot read missed messages; retrying");
                    tokio::time::sleep(FILL_RETRY).await;
                    if !lock(&self.lanes).contains_key(&topic) {
                        return;
                    }
                    continue;
                }
            };
            let mut lanes = lock(&self.lanes);
            let Some(lane) = lanes.get_mut(&topic) else {
                return;
            };
            let Some(mut next) = lane.next else {
                lane.filling = false;
                return;
            };
            // The first seq held: the fill ends below it.
            let held_from = lane.held.iter().find_map(|b| b.seq);
            let mut reached = false;
            for broadcast in broadcasts {
                let Some(seq) = broadcast.seq else { continue };
                if held_from.is_some_and(|h| seq >= h) {
                    reached = true;
                    break;
                }
                after = seq;
                if seq < next {
                    continue;
                }
                next = seq + 1;
                crate::metrics::Metrics::inc(&self.counts.gap_messages);
                self.hub.deliver(broadcast);
            }
            lane.next = Some(next);
            if more && !reached && held_from.is_none_or(|h| next < h) {
                // More to read before what the lane holds.
                continue;
            }
            if held_from.is_some_and(|h| next < h) && !more {
                // The database has nothing between: the held seq's
                // predecessors were all delivered or do not exist yet as
                // rows (never: a seq is visible only after its commit).
                next = held_from.unwrap_or(next);
                lane.next = Some(next);
            }
            let follow = self.drain_held(lane);
            drop(lanes);
            self.follow(topic, follow);
            return;
        }
    }
}
