//! Personal notifications on `user:<id>`: added to or removed from a room,
//! a new conversation, and unread counts that change when messages arrive
//! in the user's rooms and conversations or when they read. (Mentions
//! are sent by [`super::mentions`].)

use std::sync::Arc;

use serde_json::{json, Value};

use super::topic::personal;
use crate::hub::{Broadcast, Hub};

/// Publishes `event` with `payload` on `user:<user_id>` (nothing happens
/// when none of their sockets has joined it).
pub fn send(hub: &Hub, user_id: u64, event: &'static str, payload: &Value) {
    let topic: Arc<str> = Arc::from(personal(user_id));
    if !hub.is_heard(&topic) {
        return;
    }
    hub.publish(Arc::new(Broadcast::new(topic, event, payload)));
}

/// `unread {topic, last_seq, unread}` for each `(user id, unread)` after a
/// post. In a cluster the counts cross the bus as one message, not one
/// per member, and every node tells its own sockets.
pub fn unread_counts(hub: &Hub, topic: &Arc<str>, last_seq: u64, counts: &[(u64, u64)]) {
    if counts.is_empty() {
        return;
    }
    if let Some(outlet) = hub.outlet() {
        outlet.unread(topic, last_seq, counts);
    }
    unread_here(hub, topic, last_seq, counts);
}

/// [`unread_counts`] for the sockets of this node only.
pub fn unread_here(hub: &Hub, topic: &str, last_seq: u64, counts: &[(u64, u64)]) {
    for &(user_id, unread) in counts {
        let personal: Arc<str> = Arc::from(personal(user_id));
        if hub.subscriber_count(&personal) == 0 {
            continue;
        }
        hub.deliver(Arc::new(Broadcast::new(
            personal,
            "unread",
            &json!({"topic": topic, "last_seq": last_seq, "unread": unread}),
        )));
    }
}

/// `unread {topic, last_seq, unread, unread_mentions}` for one user (after
/// they read, when both counts are known).
pub fn unread_with_mentions(
    hub: &Hub,
    user_id: u64,
    topic: &str,
    last_seq: u64,
    unread: u64,
    unread_mentions: u64,
) {
    send(
        hub,
        user_id,
        "unread",
        &json!({
            "topic": topic,
            "last_seq": last_seq,
            "unread": unread,
            "unread_mentions": unread_mentions,
        }),
    );
}
