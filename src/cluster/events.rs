//! Event names of broadcasts that arrive from other nodes, turned back
//! into the `'static` names the hub's broadcasts carry.

/// Every event a node broadcasts to a topic's subscribers (presence diffs
/// are made by each node from its own merged presence and never cross).
const EVENTS: &[&str] = &[
    "new_msg",
    "msg_updated",
    "msg_deleted",
    "reaction",
    "typing",
    "binary",
    "mention",
    "unread",
    "conversation_created",
    "room_added",
    "room_removed",
];

/// The `'static` name of `event`, if it is one a node broadcasts.
pub fn known(event: &str) -> Option<&'static str> {
    EVENTS.iter().copied().find(|known| *known == event)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_events_only() {
        assert_eq!(super::known("new_msg"), Some("new_msg"));
        assert_eq!(super::known("presence_diff"), None);
        assert_eq!(super::known("phx_reply"), None);
    }
}
