//! Reactions: which emoji are accepted, and toggling one on a message
//! (durable, then broadcast as `reaction` to the topic in commit order).

use std::sync::Arc;

use serde_json::json;
use unicode_segmentation::UnicodeSegmentation;

use super::topic::Access;
use crate::error::{Error, Result};
use crate::hub::{Broadcast, Hub};
use crate::state::AppState;
use crate::store::ops::{ReactRequest, Toggled};

/// Longest emoji accepted, in UTF-8 bytes (flags, skin tones and ZWJ
/// sequences fit; a paragraph glued with combining marks does not).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Whether `emoji` is one extended grapheme cluster of at most
/// [`MAX_EMOJI_BYTES`] bytes.
pub fn emoji_ok(emoji: &str) -> bool {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return false;
    }
    let mut clusters = emoji.graphemes(true);
    clusters.next().is_some() && clusters.next().is_none()
}

/// The outcome of [`toggle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reacted {
    /// `on`: whether the user's reaction is there now.
    Toggled { on: bool },
    /// The message already carries the most distinct emoji.
    TooMany,
}

/// Toggles `user_id`'s `emoji` (already checked with [`emoji_ok`]) on
/// message `seq`; once durable, broadcasts `reaction` `{seq, emoji,
/// user_id, on}` to the topic.
pub async fn toggle(
    state: &AppState,
    user_id: u64,
    access: &Access,
    seq: u64,
    emoji: String,
) -> Result<Reacted> {
    let hub: Arc<Hub> = state.hub.clone();
    let relay = state.relay.clone();
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let request = ReactRequest {
        topic_id,
        seq,
        emoji: emoji.clone(),
        user_id,
    };
    state
        .store
        .react(request, move |result: Result<Toggled>| {
            relay.run(move || {
                let out = result.map(|toggled| {
                    let on = match toggled {
                        Toggled::On => true,
                        Toggled::Off => false,
                        Toggled::Full => return Reacted::TooMany,
                    };
                    let payload = json!({
                        "seq": seq,
                        "emoji": emoji,
                        "user_id": user_id,
                        "on": on,
                    });
                    let mut broadcast = Broadcast::new(topic, "reaction", &payload);
                    broadcast.topic_id = Some(topic_id);
                    broadcast.refers_to = Some(seq);
                    hub.publish(Arc::new(broadcast));
                    Reacted::Toggled { on }
                });
                let _ = tx.send(out);
            });
        })
        .await;
    rx.await
        .unwrap_or_else(|_| Err(Error::Unavailable("the store is closed".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grapheme_cluster_of_at_most_32_bytes() {
        for ok in ["👍", "a", "🇫🇷", "👍🏽", "👩‍👩‍👧‍👦", "❤️", "é"]
        {
            assert!(emoji_ok(ok), "{ok} should be accepted");
        }
        let long = format!("a{}", "\u{301}".repeat(16));
        assert_eq!(long.graphemes(true).count(), 1);
        for bad in ["", "👍👍", "ab", " 👍", long.as_str()] {
            assert!(!emoji_ok(bad), "{bad:?} should be refused");
        }
    }
}
