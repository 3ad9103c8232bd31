//! Where the hub's broadcasts go besides its own subscribers: in cluster
//! mode, the bus to the other nodes and the per-topic sequencer that keeps
//! every socket's `seq`s gapless. Without an outlet (one node) the hub
//! fans out at once, as it always has.
//!
//! The hub calls an outlet without holding any of its own locks, and an
//! outlet may call back into the hub (its `deliver`).

use std::sync::Arc;

use super::presence::Meta;
use super::Broadcast;

/// What the hub hands to the cluster.
pub trait Outlet: Send + Sync {
    /// A broadcast made on this node: send it to the other nodes and
    /// deliver it here (in `seq` order, for messages).
    fn publish(&self, broadcast: Arc<Broadcast>);

    /// A socket here joined `topic` (id `topic_id`) with a snapshot up to
    /// `last_seq`: the topic's messages after it arrive as broadcasts.
    fn joined(&self, topic: &Arc<str>, topic_id: u64, last_seq: u64);

    /// The last subscriber here left `topic`.
    fn idle(&self, topic: &str);

    /// A presence tracked here (`meta.phx_ref` is set).
    fn tracked(&self, topic: &Arc<str>, key: &str, meta: &Meta);

    /// A presence here left.
    fn untracked(&self, topic: &str, key: &str, meta: &Meta);

    /// Unread counts `(user id, unread)` after a post in `topic` up to
    /// `last_seq`, for the other nodes' sockets (one message for all).
    fn unread(&self, topic: &str, last_seq: u64, counts: &[(u64, u64)]);
}
