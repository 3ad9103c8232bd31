//! What the store's operations take and give back (see [`super::Backend`]):
//! plain requests and outcomes, the same for every backend.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::records::{
    AttachmentRecord, Author, ConversationRecord, DeliveryRecord, ReactionsRecord, RoomRecord,
    Stored, UserRecord,
};

/// Longest `client_id` kept (longer ones are refused by the callers).
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// Most distinct emoji on one message.
pub const MAX_DISTINCT_EMOJI: usize = 20;

/// The room every server has, created when a store is made.
pub const LOBBY: &str = "lobby";

/// What is needed to create an account (the password is already hashed).
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub admin: bool,
}

/// A change of a user's own profile; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProfileChange {
    /// Stored trimmed.
    pub display_name: Option<String>,
    /// An empty address removes it.
    pub email: Option<String>,
}

/// What is needed to create a room.
#[derive(Clone, Debug)]
pub struct NewRoom {
    pub name: String,
    pub private: bool,
    pub description: String,
    /// Creator's user id (0 for the CLI); becomes owner and member.
    pub owner: u64,
}

/// Who a body mentions, gathered before the write: per `@token` the
/// lowercase spellings to try in order (the first that is an account wins),
/// and the users it names through presence (`@here`, without the author).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MentionQuery {
    pub names: Vec<Vec<String>>,
    pub present: Vec<u64>,
}

/// A message to store.
#[derive(Clone, Debug)]
pub struct PostRequest {
    pub topic_id: u64,
    /// The topic's name (`room:lobby`, `dm:3`): mentions in a public room
    /// may name anyone, elsewhere only members.
    pub topic: Arc<str>,
    pub user_id: u64,
    /// Validated by the caller (may be empty with an attachment).
    pub body: String,
    pub client_id: Option<String>,
    /// An image uploaded to the same topic by the same user, not yet linked.
    pub attachment_id: Option<u64>,
    /// `None` when the body names nobody.
    pub mentions: Option<MentionQuery>,
    /// The bots that may hear of the message through outgoing webhooks;
    /// `None` when none may (no bots, or the author is one).
    pub bots: Option<BotAudience>,
}

/// Makes the request body of a `message` event from the event id, the
/// topic's name, the message, its author and its attachment.
pub type EventBody = fn(u64, &str, &Stored, &Author, Option<&AttachmentRecord>) -> String;

/// Who may be told of a post through outgoing webhooks, as known before the
/// write: the post enqueues one event per bot that qualifies, in the same
/// batch as the message, so a commit never loses an event. A bot qualifies
/// when the message mentions it, or when it is a member of the topic and
/// the topic is a conversation or the bot takes all messages.
#[derive(Clone, Debug)]
pub struct BotAudience {
    /// `(bot user id, all_messages)` of every bot but the author.
    pub bots: Vec<(u64, bool)>,
    /// The author as the events show it.
    pub author: Author,
    pub body: EventBody,
}

/// What a post did, for the broadcasts that follow it.
#[derive(Clone, Debug)]
pub struct PostOutcome {
    pub stored: Stored,
    /// True when the `client_id` had been used: nothing new was stored and
    /// the rest is empty but for the attachment.
    pub duplicate: bool,
    /// Every other member's `(user id, unread count)` after the post.
    pub unread: Vec<(u64, u64)>,
    pub attachment: Option<AttachmentRecord>,
    /// Users to tell of their mention (not the author, nor who ignores them).
    pub mentioned: Vec<u64>,
    /// Outgoing webhook events queued with the message, to send now.
    pub events: Vec<DeliveryRecord>,
}

/// What an edit or delete does to a message.
#[derive(Clone, Debug)]
pub enum MessageChange {
    Edit(String),
    /// Erases the body, the mentions and the attachment.
    Delete,
}

/// An edit or delete of the message at `seq`, by its author or an admin.
#[derive(Clone, Debug)]
pub struct ChangeRequest {
    pub topic_id: u64,
    pub topic: Arc<str>,
    pub seq: u64,
    pub editor_id: u64,
    pub editor_admin: bool,
    pub change: MessageChange,
    /// For an edit: who the new body mentions.
    pub mentions: Option<MentionQuery>,
}

/// The message after an edit or delete.
#[derive(Clone, Debug)]
pub struct ChangeOutcome {
    pub stored: Stored,
    pub author: Author,
    pub attachment: Option<AttachmentRecord>,
    /// Users newly mentioned, to be told.
    pub mentioned: Vec<u64>,
    /// The message's reactions (none once deleted).
    pub reactions: Option<ReactionsRecord>,
}

/// Which page of history to read: the oldest `limit` after `after`, else
/// the newest `limit` before `before` (or the newest of all).
#[derive(Clone, Copy, Debug)]
pub struct HistoryQuery {
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub limit: usize,
}

/// Messages, ascending by seq, with what their views need.
#[derive(Debug, Default)]
pub struct MessagePage {
    pub messages: Vec<Stored>,
    /// Every author of `messages` (a missing account as [`Author::unknown`]).
    pub authors: HashMap<u64, Author>,
    /// Per message, its attachment.
    pub attachments: Vec<Option<AttachmentRecord>>,
    /// seq → reactions, for the messages that have any.
    pub reactions: HashMap<u64, ReactionsRecord>,
    /// Whether more messages lie beyond the page in its direction.
    pub has_more: bool,
}

/// A page of history centred on one message (see [`super::Backend::history_around`]).
#[derive(Debug, Default)]
pub struct AroundPage {
    /// `has_more` is unused here: see the two flags.
    pub page: MessagePage,
    pub has_more_before: bool,
    pub has_more_after: bool,
}

/// A toggle of one user's emoji on one message.
#[derive(Clone, Debug)]
pub struct ReactRequest {
    pub topic_id: u64,
    pub seq: u64,
    /// Already checked by the caller.
    pub emoji: String,
    pub user_id: u64,
}

/// What a join recovers (api.md §3).
#[derive(Clone, Debug)]
pub struct RecoveryQuery {
    /// The last seq the client has.
    pub since: Option<u64>,
    /// The epoch the client saw; recovery only when it matches (or is absent).
    pub epoch: Option<String>,
    /// Messages when not recovering.
    pub default_limit: usize,
    /// Most messages recovered before the page says `has_more` (truncated).
    pub max_recovery: usize,
}

/// The history part of a join reply.
#[derive(Debug)]
pub struct Recovery {
    pub epoch: String,
    /// The topic's last seq when it was read.
    pub last_seq: u64,
    /// Recovered messages (`has_more`: truncated) or the newest ones.
    pub page: MessagePage,
    pub recovered: bool,
}

/// A user's counts in one topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub last_seq: u64,
    /// The user's read position.
    pub read: u64,
    pub unread_mentions: u64,
}

impl TopicCounts {
    /// Messages after the read position.
    pub fn unread(&self) -> u64 {
        self.last_seq.saturating_sub(self.read)
    }
}

/// A room as listed for one user.
#[derive(Clone, Debug)]
pub struct RoomSummary {
    pub room: RoomRecord,
    pub owner: Option<String>,
    pub counts: TopicCounts,
}

/// A conversation as listed for one participant.
#[derive(Clone, Debug)]
pub struct ConversationSummary {
    pub conversation: ConversationRecord,
    /// The other participant.
    pub with: UserRecord,
    pub counts: TopicCounts,
}

/// What a user's search may cover, read in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct SearchScope {
    /// Topics the user may read: public rooms, rooms and conversations
    /// they belong to.
    pub readable: BTreeSet<u64>,
    /// The readable rooms' topics by room name.
    pub rooms: HashMap<String, u64>,
    /// The ids of the accounts among the usernames asked for, in order.
    pub from: Vec<u64>,
    /// The users the user ignores.
    pub ignored: HashSet<u64>,
}

/// Messages looked up by (topic id, seq), with what their views need.
#[derive(Debug, Default)]
pub struct MessageLookup {
    /// Per key, the message there, if any.
    pub messages: Vec<Option<Stored>>,
    /// Per key, the attachment of a message that is there and not deleted.
    pub attachments: Vec<Option<AttachmentRecord>>,
    /// The authors of the messages there and not deleted.
    pub authors: HashMap<u64, Author>,
    /// The names of their topics.
    pub topic_names: HashMap<u64, String>,
}

/// What is needed to create a bot (the key already hashed).
#[derive(Clone, Debug)]
pub struct NewBot {
    pub username: String,
    pub display_name: String,
    pub key_hash: Vec<u8>,
    pub signing_secret: String,
    pub webhook_url: Option<String>,
    pub all_messages: bool,
    pub created_by: u64,
}

/// What is needed to create an incoming webhook (the token already hashed).
#[derive(Clone, Debug)]
pub struct NewHook {
    pub room: String,
    pub topic_id: u64,
    pub user_id: u64,
    pub token_hash: Vec<u8>,
    pub created_by: u64,
}

/// The queue's size and its earliest next attempt (ms since the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStatus {
    pub queued: usize,
    pub next_attempt_at: Option<i64>,
}

/// What redeeming a link came to.
#[derive(Debug)]
pub enum Redeemed {
    /// The password is set and the token version bumped.
    Done(UserRecord),
    /// No such link: never issued, already used, or voided by a password change.
    Unknown,
    /// The link was valid but its time is up (it is removed).
    Expired,
    /// The account is disabled; nothing was changed.
    Disabled,
}

/// Why a link cannot be used, without using it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Usable,
    Unknown,
    Expired,
}

/// What a toggle did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toggled {
    /// The user's reaction is now there.
    On,
    /// The user's reaction was removed.
    Off,
    /// Refused: the message already carries the most distinct emoji.
    Full,
}

/// Image types accepted for attachments, recognised by their first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// What an edit changes in a message's mentions: the users named now and
/// not before (`added`, to notify), and those named before and not now
/// (`removed`, whose unread mention goes).
pub fn mention_changes(before: &[u64], after: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let added = after
        .iter()
        .copied()
        .filter(|u| !before.contains(u))
        .collect();
    let removed = before
        .iter()
        .copied()
        .filter(|u| !after.contains(u))
        .collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_images_only() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }
}
