//! What nodes send each other over the bus, and its encoding: a version
//! byte, then the bincode of [`Envelope`]. Message payloads travel as the
//! JSON text already serialized for the sockets, so a receiving node frames
//! them without parsing.

use serde::{Deserialize, Serialize};

use crate::hub::presence::Meta;

/// The encoding's version; a node drops what it cannot read.
pub const VERSION: u8 = 1;

/// One message on the bus.
#[derive(Debug, Serialize, Deserialize)]
pub enum Envelope {
    /// A broadcast to a topic's subscribers on every node.
    Broadcast(WireBroadcast),
    /// Something every node applies to its own sockets.
    Control(Control),
    /// Presence replication between nodes.
    Presence(PresenceMessage),
    /// Unread counts `(user id, unread)` of a topic's members after a post.
    Unread {
        topic: String,
        last_seq: u64,
        counts: Vec<(u64, u64)>,
    },
}

/// A broadcast as it crosses the bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireBroadcast {
    pub topic: String,
    pub event: String,
    /// The payload object as JSON text.
    pub payload: String,
    pub seq: Option<u64>,
    pub author: Option<u64>,
    /// The topic's id, for message events.
    pub topic_id: Option<u64>,
    /// The message an event is about.
    pub refers_to: Option<u64>,
    /// A V2 binary broadcast frame, for binary pushes.
    pub binary: Option<Vec<u8>>,
}

/// Changes every node applies to its own sockets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Control {
    /// A user's credentials changed (password, disabled, logout, key
    /// rotated): their sockets re-check their tokens.
    Recheck { user_id: u64 },
    /// A user's ignore list is now `ignored`.
    Ignores { user_id: u64, ignored: Vec<u64> },
    /// A user was removed from a private room: their sockets leave it.
    Eject { topic: String, user_id: u64 },
    /// Bots or their settings changed: read them again.
    BotsChanged,
}

/// One presence as it crosses the bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireMeta {
    pub topic: String,
    pub key: String,
    pub phx_ref: String,
    pub online_at: i64,
    pub username: String,
    pub display_name: String,
    pub bot: bool,
}

impl WireMeta {
    pub fn new(topic: &str, key: &str, meta: &Meta) -> WireMeta {
        WireMeta {
            topic: topic.to_owned(),
            key: key.to_owned(),
            phx_ref: meta.phx_ref.clone(),
            online_at: meta.online_at,
            username: meta.username.clone(),
            display_name: meta.display_name.clone(),
            bot: meta.bot,
        }
    }

    /// The meta to track (its local id and order are set by the hub).
    pub fn meta(&self) -> Meta {
        Meta {
            phx_ref: self.phx_ref.clone(),
            online_at: self.online_at,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            bot: self.bot,
            conn_id: 0,
            joined: 0,
        }
    }
}

/// Presence replication, in the manner of Phoenix.Tracker: each node sends
/// its own changes as numbered deltas and a heartbeat with a digest of its
/// state; a node that misses a delta asks for the whole state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PresenceMessage {
    /// Changes of `node`'s presences: its state went from version `from`
    /// to `to`.
    Delta {
        node: String,
        from: u64,
        to: u64,
        /// When the changes were sent, ms since the epoch (for the lag).
        sent_ms: i64,
        joins: Vec<WireMeta>,
        /// `(topic, phx_ref)` of each presence that left.
        leaves: Vec<(String, String)>,
    },
    /// `node` is alive with state `version` holding `count` presences.
    Heartbeat {
        node: String,
        version: u64,
        count: u64,
    },
    /// `node` is shutting down: its presences leave now.
    Goodbye { node: String },
    /// The whole state of a node (a reply to a state request).
    State {
        node: String,
        version: u64,
        metas: Vec<WireMeta>,
    },
}

/// `envelope` on the wire.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    // Serializing these plain structures to a Vec cannot fail.
    if let Err(e) = bincode::serialize_into(&mut bytes, envelope) {
        tracing::error!(error = %e, "a bus message did not serialize");
    }
    bytes
}

/// Reads an envelope; `Err` says why it is dropped.
pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            bincode::deserialize(rest).map_err(|e| format!("unreadable bus message: {e}"))
        }
        Some((version, _)) => Err(format!("bus message of version {version}")),
        None => Err("empty bus message".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version() {
        let envelope = Envelope::Broadcast(WireBroadcast {
            topic: "room:lobby".into(),
            event: "new_msg".into(),
            payload: "{\"seq\":3}".into(),
            seq: Some(3),
            author: Some(7),
            topic_id: Some(2),
            refers_to: None,
            binary: None,
        });
        let bytes = encode(&envelope);
        assert_eq!(bytes[0], VERSION);
        let Envelope::Broadcast(back) = decode(&bytes).unwrap() else {
            panic!("a broadcast");
        };
        assert_eq!((back.seq, back.author), (Some(3), Some(7)));
        assert_eq!(back.payload, "{\"seq\":3}");
        let mut newer = bytes.clone();
        newer[0] = VERSION + 1;
        assert!(decode(&newer).unwrap_err().contains("version"));
        assert!(decode(&[]).is_err());
        assert!(decode(&[VERSION, 200, 1]).is_err());
    }
}
