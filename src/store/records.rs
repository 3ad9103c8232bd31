//! The records the store keeps and hands out: plain structs shared by every
//! backend and the layers above the store. The embedded backend encodes
//! them through `redb::codec`; a field change needs a new format byte there.

use serde::{Deserialize, Serialize};

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub admin: bool,
    pub disabled: bool,
    /// Tokens carrying an older version are refused (password change, `user passwd`).
    pub token_version: u32,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// An automated account: no password sign-in, authenticates with an API
    /// key (see [`BotRecord`]). Absent before record format 3.
    #[serde(default)]
    pub bot: bool,
}

/// What makes a user a bot: its API key (as a hash) and its outgoing webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotRecord {
    /// The bot's user id.
    pub user_id: u64,
    /// SHA-256 of the API key; the key itself is shown once and never kept.
    pub key_hash: Vec<u8>,
    /// Key for signing outgoing webhook requests (HMAC-SHA256).
    pub signing_secret: String,
    /// Where events are POSTed; none = the bot only uses the API.
    pub webhook_url: Option<String>,
    /// Also send every message of the rooms the bot is a member of.
    pub all_messages: bool,
    /// The admin who made it.
    pub created_by: u64,
    pub created_at: i64,
}

/// An incoming webhook: a secret URL that posts into one room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    pub id: u64,
    /// The room's name and topic id.
    pub room: String,
    pub topic_id: u64,
    /// Who the posts are from (the creator, or the bot named at creation).
    pub user_id: u64,
    /// SHA-256 of the URL token.
    pub token_hash: Vec<u8>,
    pub created_by: u64,
    pub created_at: i64,
}

/// An outgoing webhook event waiting to be delivered (deleted once
/// delivered or given up on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The event id, unique, sent as `id` for deduplication.
    pub event_id: u64,
    pub bot_id: u64,
    /// The topic the event happened in (replies are posted there).
    pub topic: String,
    /// The JSON request body, exactly as it is signed and sent.
    pub body: String,
    pub created_at: i64,
}

/// A room: a named topic `room:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    pub name: String,
    pub topic_id: u64,
    pub private: bool,
    pub description: String,
    /// User id of the creator (0 for rooms made by the server or the CLI).
    pub owner: u64,
    pub created_at: i64,
}

/// A topic with a message history (a room or a conversation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The Phoenix topic, e.g. `room:lobby` or `dm:3`.
    pub name: String,
    /// Random string fixed when the history is created (api.md §3).
    pub epoch: String,
    pub created_at: i64,
}

/// One stored message; its topic and seq are the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Unique across topics.
    pub id: u64,
    pub user_id: u64,
    /// Erased (empty) once deleted.
    pub body: String,
    pub client_id: Option<String>,
    pub inserted_at: i64,
    pub edited_at: Option<i64>,
    pub deleted: bool,
    /// Users mentioned (`@username`, `@here`), resolved when stored or
    /// edited; emptied when deleted. Absent before record format 2.
    #[serde(default)]
    pub mentions: Vec<u64>,
}

/// A direct conversation between two users, topic `dm:<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: u64,
    /// The two participants, lower id first.
    pub users: (u64, u64),
    pub topic_id: u64,
    pub created_at: i64,
}

impl ConversationRecord {
    /// The participant who is not `user_id`.
    pub fn other(&self, user_id: u64) -> u64 {
        if self.users.0 == user_id {
            self.users.1
        } else {
            self.users.0
        }
    }

    /// Whether `user_id` takes part.
    pub fn includes(&self, user_id: u64) -> bool {
        self.users.0 == user_id || self.users.1 == user_id
    }
}

/// An uploaded file (a small image) belonging to one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub id: u64,
    pub topic_id: u64,
    pub user_id: u64,
    /// Sniffed from the bytes, never taken from the client.
    pub content_type: String,
    /// Length of the bytes (kept apart in `attachment_bytes`).
    pub size: u64,
    pub created_at: i64,
    /// The seq of the message carrying it, once linked.
    pub linked_seq: Option<u64>,
}

/// A message with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub topic_id: u64,
    pub seq: u64,
    pub record: MessageRecord,
}

/// `{id, username, display_name, bot?}`: who wrote a message, as message views show it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Author {
    pub id: u64,
    pub username: String,
    pub display_name: String,
    /// Present (true) only for bot accounts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bot: bool,
}

impl From<&UserRecord> for Author {
    fn from(user: &UserRecord) -> Self {
        Author {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            bot: user.bot,
        }
    }
}

impl Author {
    /// Stand-in for an author whose account no longer exists.
    pub fn unknown(id: u64) -> Self {
        Author {
            id,
            username: format!("user{id}"),
            display_name: "unknown user".into(),
            bot: false,
        }
    }
}

/// The reactions on one message; its topic and seq are the key. Emoji keep
/// the order in which they were first used, users the order they reacted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionsRecord {
    pub entries: Vec<ReactionEntry>,
}

/// One emoji on a message and who reacted with it (never empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionEntry {
    pub emoji: String,
    pub users: Vec<u64>,
}

/// What a one-time password link lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkPurpose {
    /// Sent to an account an admin created: choose a first password.
    Welcome,
    /// Sent on "forgot password": choose a new password.
    Reset,
}

/// A one-time password link; the SHA-256 of its token is the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLinkRecord {
    pub user_id: u64,
    pub purpose: LinkPurpose,
    /// The user's token version when issued: a password change since
    /// (which bumps it) voids the link.
    pub token_version: u32,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// One mail waiting in the outgoing queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRecord {
    pub to: String,
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// When to try next, in milliseconds since the epoch.
    pub next_attempt_at: i64,
}

/// A message rate limit: a token bucket of `burst` messages at once,
/// refilled by `refill_per_sec` a second (the shape of `push_burst` and
/// `push_refill_per_sec`). A bot without one is limited as people are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// At least 1.
    pub burst: u32,
    /// At least 1.
    pub refill_per_sec: u32,
}

/// How one delivery attempt of an outgoing webhook event ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx; the event is done.
    Delivered,
    /// It failed; another attempt follows.
    Retrying,
    /// It failed for good (refused target, or past `webhook_retry_hours`).
    GaveUp,
}

impl AttemptOutcome {
    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retrying => "retrying",
            AttemptOutcome::GaveUp => "gave_up",
        }
    }

    /// The outcome named `name` (see [`AttemptOutcome::as_str`]).
    pub fn from_name(name: &str) -> Option<AttemptOutcome> {
        match name {
            "delivered" => Some(AttemptOutcome::Delivered),
            "retrying" => Some(AttemptOutcome::Retrying),
            "gave_up" => Some(AttemptOutcome::GaveUp),
            _ => None,
        }
    }
}

/// One delivery attempt in a bot's delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttemptRecord {
    pub event_id: u64,
    /// 1 for the first attempt at the event, then 2, 3, ...
    pub attempt: u32,
    /// When the attempt started, in milliseconds since the epoch.
    pub at: i64,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    pub latency_ms: u64,
    pub outcome: AttemptOutcome,
}
