//! A broadcast frame serialized once and shared by every subscriber. The V2
//! array frame is built eagerly; the V1 object frame only if a V1 client
//! asks for it. Metadata (seq, author, excluded connection) lets each
//! session filter without parsing the frame.

use std::sync::{Arc, OnceLock};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::socket::frame::Vsn;
use crate::socket::ws_deflate;

/// Bytes reserved up front for a frame besides its topic: a typical
/// `new_msg` payload fits, so serializing rarely grows the buffer.
const FRAME_CAPACITY: usize = 320;

/// One event sent to a topic (`[null, null, topic, event, payload]`).
pub struct Broadcast {
    topic: Arc<str>,
    event: &'static str,
    v2: Utf8Bytes,
    /// Where the serialized payload object sits inside `v2`.
    payload: std::ops::Range<usize>,
    v1: OnceLock<Utf8Bytes>,
    /// The message seq, for `new_msg`: lets a joining session drop what its join reply already held.
    pub seq: Option<u64>,
    /// Who caused it, for per-recipient ignore filtering.
    pub author: Option<u64>,
    /// The topic's id, for message events (`new_msg`, `msg_updated`,
    /// `msg_deleted`): other nodes of a cluster read gaps and index by it.
    pub topic_id: Option<u64>,
    /// The message an event is about (`msg_updated`, `msg_deleted`,
    /// `reaction`): a node of a cluster delivers it only after that
    /// message.
    pub refers_to: Option<u64>,
    /// A connection that must not receive it (broadcast-from).
    pub exclude_conn: Option<u64>,
    /// A V2 binary broadcast frame (kind 2) instead of a text frame; only
    /// WebSocket clients speaking V2 receive it.
    binary: Option<bytes::Bytes>,
    /// The frame's payload compressed for permessage-deflate, made once on
    /// first use and shared: for V1 text, and for V2 (text or binary).
    deflated: [OnceLock<Option<bytes::Bytes>>; 2],
}

impl Broadcast {
    /// Serializes `payload` once for `topic`/`event`.
    pub fn new(topic: Arc<str>, event: &'static str, payload: &impl serde::Serialize) -> Broadcast {
        Broadcast::framed(topic, event, |bytes| {
            serde_json::to_writer(bytes, payload).map_err(|_| ())
        })
    }

    /// A broadcast whose payload is already serialized JSON (a broadcast
    /// that arrived from another node); the text is used as it is.
    pub fn from_payload_json(topic: Arc<str>, event: &'static str, payload: &str) -> Broadcast {
        Broadcast::framed(topic, event, |bytes| {
            bytes.extend_from_slice(payload.as_bytes());
            Ok(())
        })
    }

    fn framed(
        topic: Arc<str>,
        event: &'static str,
        write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), ()>,
    ) -> Broadcast {
        // One buffer: `[null,null,"topic","event",` payload `]`.
        let mut v2 = String::with_capacity(FRAME_CAPACITY + topic.len());
        v2.push_str("[null,null,");
        v2.push_str(&json_string(&topic));
        v2.push(',');
        v2.push_str(&json_string(event));
        v2.push(',');
        let start = v2.len();
        let mut bytes = v2.into_bytes();
        if write_payload(&mut bytes).is_err() {
            bytes.truncate(start);
            bytes.extend_from_slice(b"{}");
        }
        let mut payload = start..bytes.len();
        bytes.push(b']');
        // Only JSON text was written (serde_json emits UTF-8), so the
        // fallback is never taken; it keeps the range consistent anyway.
        let v2 = String::from_utf8(bytes).unwrap_or_else(|_| {
            const EMPTY: &str = "[null,null,null,null,{}]";
            payload = EMPTY.len() - 3..EMPTY.len() - 1;
            EMPTY.into()
        });
        let v2 = Utf8Bytes::from(v2);
        Broadcast {
            topic,
            event,
            payload,
            v2,
            v1: OnceLock::new(),
            seq: None,
            author: None,
            topic_id: None,
            refers_to: None,
            exclude_conn: None,
            binary: None,
            deflated: Default::default(),
        }
    }

    /// A binary broadcast of `payload` (already checked against field limits).
    pub fn binary(topic: Arc<str>, event: &'static str, frame: bytes::Bytes) -> Broadcast {
        let mut broadcast = Broadcast::new(topic, event, &serde_json::json!({}));
        broadcast.binary = Some(frame);
        broadcast
    }

    /// The binary frame, for a binary broadcast.
    pub fn binary_frame(&self) -> Option<bytes::Bytes> {
        self.binary.clone()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The event name.
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// Whether `conn_id` is the excluded sender.
    pub fn excludes(&self, conn_id: u64) -> bool {
        self.exclude_conn == Some(conn_id)
    }

    /// The serialized payload object.
    pub fn payload(&self) -> &str {
        self.v2.as_str().get(self.payload.clone()).unwrap_or("{}")
    }

    /// The frame text for a client speaking `vsn` (shared bytes, not a copy).
    pub fn frame(&self, vsn: Vsn) -> Utf8Bytes {
        match vsn {
            Vsn::V2 => self.v2.clone(),
            Vsn::V1 => self
                .v1
                .get_or_init(|| {
                    Utf8Bytes::from(format!(
                        "{{\"topic\":{},\"event\":{},\"payload\":{},\"ref\":null}}",
                        json_string(&self.topic),
                        json_string(self.event),
                        self.payload()
                    ))
                })
                .clone(),
        }
    }
}

impl Broadcast {
    /// The payload of [`Broadcast::frame`] (or of the binary frame, for a
    /// binary broadcast to V2) compressed once for every subscriber that
    /// negotiated permessage-deflate; `None` if compression failed.
    pub fn deflated(&self, vsn: Vsn) -> Option<bytes::Bytes> {
        let slot = match vsn {
            Vsn::V1 => 0,
            Vsn::V2 => 1,
        };
        self.deflated[slot]
            .get_or_init(|| {
                let compressed = match (&self.binary, vsn) {
                    (Some(binary), Vsn::V2) => ws_deflate::deflate(binary),
                    _ => ws_deflate::deflate(self.frame(vsn).as_bytes()),
                };
                compressed.map(bytes::Bytes::from)
            })
            .clone()
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_match_the_codec() {
        let b = Broadcast::new(
            Arc::from("room:lobby"),
            "new_msg",
            &json!({"body": "hi \"x\""}),
        );
        let v2: serde_json::Value = serde_json::from_str(b.frame(Vsn::V2).as_str()).unwrap();
        assert_eq!(
            v2,
            json!([null, null, "room:lobby", "new_msg", {"body": "hi \"x\""}])
        );
        let v1: serde_json::Value = serde_json::from_str(b.frame(Vsn::V1).as_str()).unwrap();
        assert_eq!(
            v1,
            json!({"topic": "room:lobby", "event": "new_msg", "payload": {"body": "hi \"x\""}, "ref": null})
        );
    }
}
