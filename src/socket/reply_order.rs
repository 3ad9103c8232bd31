//! The order of one channel's frames. Phoenix handles a channel's pushes one
//! after another, so their replies, and the `phx_close` of a leave, reach the
//! client in the order of the pushes. Here a `new_msg` is answered only once
//! its message is durable, after later pushes may already have been answered:
//! while such a reply is outstanding on a topic, the topic's later frames wait
//! behind it and leave the moment it lands.
//!
//! With nothing outstanding (the usual case) nothing is kept and every frame
//! goes straight out; a topic's queue lives only while a reply is pending.

use std::collections::{HashMap, VecDeque};

use tokio_tungstenite::tungstenite::Message;

/// One place in a topic's line of outgoing frames.
enum Slot {
    /// The reply to a push that has not been answered yet.
    Pending,
    /// A frame that waits for the pending replies before it.
    Ready(Message),
}

/// Per topic, the frames waiting behind a pending reply.
#[derive(Default)]
pub struct ReplyOrder {
    topics: HashMap<String, VecDeque<Slot>>,
}

impl ReplyOrder {
    /// Whether no reply is pending on any topic.
    pub fn is_idle(&self) -> bool {
        self.topics.is_empty()
    }

    /// A push on `topic` whose reply comes later, through [`Self::arrive`].
    pub fn expect(&mut self, topic: &str) {
        self.topics
            .entry(topic.to_string())
            .or_default()
            .push_back(Slot::Pending);
    }

    /// Whether frames for `topic` must wait (a reply before them is pending).
    pub fn holds(&self, topic: &str) -> bool {
        !self.topics.is_empty() && self.topics.contains_key(topic)
    }

    /// Whether `topic` holds frames other than pending replies: then even a
    /// broadcast must wait, so it cannot overtake a `phx_close` or the reply
    /// of a rejoin.
    pub fn holds_frames(&self, topic: &str) -> bool {
        !self.topics.is_empty()
            && self
                .topics
                .get(topic)
                .is_some_and(|line| line.iter().any(|slot| matches!(slot, Slot::Ready(_))))
    }

    /// Sends `frames` for `topic` to `out`, or queues them behind the
    /// topic's pending reply.
    pub fn send(
        &mut self,
        topic: &str,
        frames: impl IntoIterator<Item = Message>,
        out: &mut Vec<Message>,
    ) {
        match self.topics.get_mut(topic) {
            Some(line) => line.extend(frames.into_iter().map(Slot::Ready)),
            None => out.extend(frames),
        }
    }

    /// The reply for the oldest pending push on `topic` has come: it goes
    /// out with every frame that waited only for it.
    pub fn arrive(&mut self, topic: &str, reply: Message, out: &mut Vec<Message>) {
        let Some(line) = self.topics.get_mut(topic) else {
            // Nothing was expected: it is the only frame of its push.
            out.push(reply);
            return;
        };
        match line.iter_mut().find(|slot| matches!(slot, Slot::Pending)) {
            Some(slot) => *slot = Slot::Ready(reply),
            None => line.push_back(Slot::Ready(reply)),
        }
        while let Some(Slot::Ready(_)) = line.front() {
            if let Some(Slot::Ready(frame)) = line.pop_front() {
                out.push(frame);
            }
        }
        if line.is_empty() {
            self.topics.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Message {
        Message::Text(s.into())
    }

    fn texts(frames: &[Message]) -> Vec<String> {
        frames
            .iter()
            .map(|m| m.to_text().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn frames_go_straight_out_with_nothing_pending() {
        let mut order = ReplyOrder::default();
        let mut out = Vec::new();
        order.send("room:a", [text("leave ok"), text("close")], &mut out);
        assert_eq!(texts(&out), ["leave ok", "close"]);
        assert!(order.is_idle());
    }

    #[test]
    fn later_frames_wait_for_the_pending_reply() {
        let mut order = ReplyOrder::default();
        let mut out = Vec::new();
        order.expect("room:a");
        order.send("room:a", [text("leave ok"), text("close")], &mut out);
        order.send("room:b", [text("other topic")], &mut out);
        assert_eq!(texts(&out), ["other topic"]);
        assert!(order.holds("room:a") && order.holds_frames("room:a"));
        order.arrive("room:a", text("new_msg ok"), &mut out);
        assert_eq!(
            texts(&out),
            ["other topic", "new_msg ok", "leave ok", "close"]
        );
        assert!(order.is_idle());
    }

    #[test]
    fn replies_between_two_pending_pushes_keep_their_place() {
        let mut order = ReplyOrder::default();
        let mut out = Vec::new();
        order.expect("t");
        order.send("t", [text("history ok")], &mut out);
        order.expect("t");
        assert!(order.holds("t"));
        order.arrive("t", text("msg 1 ok"), &mut out);
        assert_eq!(texts(&out), ["msg 1 ok", "history ok"]);
        assert!(!order.holds_frames("t"), "only the second reply is pending");
        order.send("t", [text("leave ok")], &mut out);
        order.arrive("t", text("msg 2 ok"), &mut out);
        assert_eq!(
            texts(&out),
            ["msg 1 ok", "history ok", "msg 2 ok", "leave ok"]
        );
        assert!(order.is_idle());
    }

    #[test]
    fn an_unexpected_reply_goes_straight_out() {
        let mut order = ReplyOrder::default();
        let mut out = Vec::new();
        order.arrive("t", text("late"), &mut out);
        assert_eq!(texts(&out), ["late"]);
        assert!(order.is_idle());
    }
}
