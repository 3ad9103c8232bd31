//! The storage interface: every operation the layers above the store use,
//! implemented by each backend (today the embedded redb store). Writes are
//! durable when their future (or completion) reports success.
//!
//! Methods return `impl Future + Send` rather than boxed futures, and
//! [`super::Store`] dispatches by `match`, so the hot paths (posting,
//! history) cost no allocation for the indirection.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;

use super::ops::{
    AroundPage, LinkState, NewBot, NewHook, QueueStatus, ReactRequest, Redeemed, Toggled,
};
use super::ops::{
    ChangeOutcome, ChangeRequest, ConversationSummary, HistoryQuery, MessageLookup, MessagePage,
    NewRoom, NewUser, PostOutcome, PostRequest, ProfileChange, Recovery, RecoveryQuery,
    RoomSummary, SearchScope, TopicCounts,
};
use super::records::{
    AttachmentRecord, ConversationRecord, RoomRecord, Stored, TopicRecord, UserRecord,
};
use super::records::{BotRecord, DeliveryRecord, HookRecord, MailRecord, PasswordLinkRecord};
use super::records::{DeliveryAttemptRecord, RateLimit};
use crate::error::Result;

/// A store backend.
pub trait Backend: Clone + Send + Sync + 'static {
    // --- Lifecycle and meta ---

    /// Where the data lives, for the log (a file path, a database name).
    fn location(&self) -> String;

    /// Whether the store answers reads (for `/readyz`).
    fn ready(&self) -> impl Future<Output = bool> + Send;

    /// The schema version the store carries.
    fn schema_version(&self) -> impl Future<Output = Result<u32>> + Send;

    /// The JWT secret kept in the store, generated and persisted on first use.
    fn jwt_secret(&self) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Writes the JSON Lines export of the whole store, from one
    /// consistent snapshot, to `out` (on a blocking thread); gives `out` back.
    fn export_into<W>(&self, out: W) -> impl Future<Output = Result<W>> + Send
    where
        W: Write + Send + 'static;

    /// Finishes the writes queued before this call, then refuses later ones
    /// ("the store is closed").
    fn close(self);

    // --- Users and tokens ---

    /// Creates an account; 422 on a taken username (case-insensitive). The
    /// very first account is an admin.
    fn create_user(&self, new: NewUser) -> impl Future<Output = Result<UserRecord>> + Send;

    /// One user by id.
    fn user(&self, id: u64) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// One user by username (case-insensitive).
    fn user_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// Every user, by id.
    fn users(&self) -> impl Future<Output = Result<Vec<UserRecord>>> + Send;

    /// Changes a user's display name and email; 404 for no such user.
    fn update_profile(
        &self,
        id: u64,
        change: ProfileChange,
    ) -> impl Future<Output = Result<UserRecord>> + Send;

    /// Sets a new password hash and bumps the token version, so tokens
    /// issued before are refused.
    fn set_password_hash(
        &self,
        id: u64,
        password_hash: String,
    ) -> impl Future<Output = Result<UserRecord>> + Send;

    /// Enables or disables an account.
    fn set_disabled(
        &self,
        id: u64,
        disabled: bool,
    ) -> impl Future<Output = Result<UserRecord>> + Send;

    /// Refuses the token `jti` from now on (until `expires_at`, epoch seconds).
    fn revoke_token(&self, jti: &str, expires_at: u64) -> impl Future<Output = Result<()>> + Send;

    /// Whether `jti` has been revoked.
    fn is_token_revoked(&self, jti: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Drops revocations whose token has expired by `now` (epoch seconds);
    /// returns how many.
    fn purge_expired_revocations(&self, now: u64) -> impl Future<Output = Result<usize>> + Send;

    // --- Rooms, topics, membership ---

    /// Creates a room and its topic; 422 on a taken name. A non-zero owner
    /// becomes a member.
    fn create_room(&self, new: NewRoom) -> impl Future<Output = Result<RoomRecord>> + Send;

    /// One room by name.
    fn room(&self, name: &str) -> impl Future<Output = Result<Option<RoomRecord>>> + Send;

    /// Every room, by name.
    fn rooms(&self) -> impl Future<Output = Result<Vec<RoomRecord>>> + Send;

    /// One room by name and whether `user_id` may read it (public, or a member).
    fn room_access(
        &self,
        name: &str,
        user_id: u64,
    ) -> impl Future<Output = Result<Option<(RoomRecord, bool)>>> + Send;

    /// The public rooms and the private rooms `user_id` belongs to, by name,
    /// with the owner's username and the user's counts.
    fn room_list(&self, user_id: u64) -> impl Future<Output = Result<Vec<RoomSummary>>> + Send;

    /// Adds a member to a topic (idempotent); whether they were newly added.
    fn add_member(&self, topic_id: u64, user_id: u64) -> impl Future<Output = Result<bool>> + Send;

    /// Removes a member (idempotent); whether they were a member.
    fn remove_member(
        &self,
        topic_id: u64,
        user_id: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// One topic by id.
    fn topic(&self, topic_id: u64) -> impl Future<Output = Result<Option<TopicRecord>>> + Send;

    /// The last seq of a topic (0 when empty).
    fn last_seq(&self, topic_id: u64) -> impl Future<Output = Result<u64>> + Send;

    /// A user's last seq, read position and unread mentions in a topic.
    fn topic_counts(
        &self,
        user_id: u64,
        topic_id: u64,
    ) -> impl Future<Output = Result<TopicCounts>> + Send;

    // --- Conversations and ignores ---

    /// The conversation between two users, created (both as members) if
    /// needed; the flag says whether it is new.
    fn open_conversation(
        &self,
        a: u64,
        b: u64,
    ) -> impl Future<Output = Result<(ConversationRecord, bool)>> + Send;

    /// One conversation by id.
    fn conversation(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<ConversationRecord>>> + Send;

    /// The conversations of `user_id`, by id, with the other participant
    /// (skipped when their account is gone) and the user's counts.
    fn conversation_list(
        &self,
        user_id: u64,
    ) -> impl Future<Output = Result<Vec<ConversationSummary>>> + Send;

    /// The users `user_id` ignores.
    fn ignores(&self, user_id: u64) -> impl Future<Output = Result<HashSet<u64>>> + Send;

    /// Starts or stops ignoring `other`; returns the new set.
    fn set_ignore(
        &self,
        user_id: u64,
        other: u64,
        ignore: bool,
    ) -> impl Future<Output = Result<HashSet<u64>>> + Send;

    // --- Attachments ---

    /// Stores an image (already sniffed as `content_type`) for a topic.
    fn add_attachment(
        &self,
        topic_id: u64,
        user_id: u64,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<AttachmentRecord>> + Send;

    /// One attachment with its bytes.
    fn attachment(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<(AttachmentRecord, Vec<u8>)>>> + Send;

    // --- Messages ---

    /// Posts a message: idempotent on (topic, user, `client_id`), checks
    /// and links the attachment, resolves the mentions, takes the topic's
    /// next seq (gapless), moves the author's read position to it and
    /// counts every other member's unread. `done` runs once the post is
    /// durable (or failed), in commit order across all writes, so the
    /// caller can broadcast a topic's messages in seq order; the future
    /// resolves once the post is queued.
    fn post_message<D>(&self, request: PostRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<PostOutcome>) + Send + 'static;

    /// Edits or deletes (erasing body, mentions and attachment) a message
    /// of its author or by an admin, updating unread mentions; `done` runs
    /// once durable, in commit order like [`Backend::post_message`].
    fn change_message<D>(&self, request: ChangeRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<ChangeOutcome>) + Send + 'static;

    /// Moves a user's read position forward to `seq` (never back, never
    /// past the last message) and clears the mentions up to it; returns
    /// the counts after.
    fn mark_read(
        &self,
        user_id: u64,
        topic_id: u64,
        seq: u64,
    ) -> impl Future<Output = Result<TopicCounts>> + Send;

    /// A page of a topic's history.
    fn history(
        &self,
        topic_id: u64,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<MessagePage>> + Send;

    /// What a joining client gets: every message after `since` (up to
    /// `max_recovery`) when the epoch matches, else the newest ones.
    fn recovery(
        &self,
        topic_id: u64,
        query: RecoveryQuery,
    ) -> impl Future<Output = Result<Recovery>> + Send;

    // --- Users ---

    /// The user whose e-mail address is `email` (case-insensitive); the first
    /// by id if several share it.
    fn user_by_email(&self, email: &str)
        -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    // --- Bots and webhooks ---

    /// Creates a bot: its user (flagged `bot`, no password) and its record;
    /// 422 on a taken username.
    fn create_bot(
        &self,
        new: NewBot,
    ) -> impl Future<Output = Result<(UserRecord, BotRecord)>> + Send;

    /// Every bot with its user, by id.
    fn bots(&self) -> impl Future<Output = Result<Vec<(UserRecord, BotRecord)>>> + Send;

    /// One bot by user id.
    fn bot(&self, user_id: u64) -> impl Future<Output = Result<Option<BotRecord>>> + Send;

    /// The user of the bot whose API key hashes to `key_hash`.
    fn bot_by_key_hash(
        &self,
        key_hash: Vec<u8>,
    ) -> impl Future<Output = Result<Option<UserRecord>>> + Send;

    /// Replaces a bot's key and signing secret: the old key is refused from
    /// this commit on, and the bot's token version moves.
    fn rotate_bot_key(
        &self,
        user_id: u64,
        key_hash: Vec<u8>,
        signing_secret: String,
    ) -> impl Future<Output = Result<BotRecord>> + Send;

    /// Changes a bot's outgoing webhook settings.
    fn update_bot_webhook(
        &self,
        user_id: u64,
        webhook_url: Option<String>,
        all_messages: bool,
    ) -> impl Future<Output = Result<BotRecord>> + Send;

    /// Removes a bot: its key is refused from this commit on and its user is
    /// disabled (kept, so its messages keep their author).
    fn delete_bot(&self, user_id: u64) -> impl Future<Output = Result<()>> + Send;

    /// Stores a new incoming webhook.
    fn create_hook(&self, new: NewHook) -> impl Future<Output = Result<HookRecord>> + Send;

    /// The incoming webhooks of one room's topic, by id.
    fn hooks_of_topic(&self, topic_id: u64)
        -> impl Future<Output = Result<Vec<HookRecord>>> + Send;

    /// The incoming webhook whose token hashes to `token_hash`.
    fn hook_by_token_hash(
        &self,
        token_hash: Vec<u8>,
    ) -> impl Future<Output = Result<Option<HookRecord>>> + Send;

    /// Deletes hook `id` of topic `topic_id`; 404 if the room has no such hook.
    fn delete_hook(&self, topic_id: u64, id: u64) -> impl Future<Output = Result<()>> + Send;

    /// Every outgoing webhook event not delivered yet, oldest first.
    fn pending_deliveries(&self) -> impl Future<Output = Result<Vec<DeliveryRecord>>> + Send;

    /// Drops an outgoing webhook event once delivered or given up on.
    fn finish_delivery(&self, event_id: u64) -> impl Future<Output = Result<()>> + Send;

    // --- Password links and mail ---

    /// Stores a password link under the SHA-256 `hash` of its token and
    /// queues `mail` (which carries it) in the same durable write.
    fn issue_password_link(
        &self,
        hash: [u8; 32],
        link: PasswordLinkRecord,
        mail: MailRecord,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Whether the link under `hash` could be redeemed at `now_ms`.
    fn password_link_state(
        &self,
        hash: [u8; 32],
        now_ms: i64,
    ) -> impl Future<Output = Result<LinkState>> + Send;

    /// Uses the link under `hash` to set `password_hash`, bumping the user's
    /// token version (which voids their tokens and other links).
    fn redeem_password_link(
        &self,
        hash: [u8; 32],
        password_hash: String,
        now_ms: i64,
    ) -> impl Future<Output = Result<Redeemed>> + Send;

    /// Drops the links expired by `now_ms`; returns how many.
    fn purge_expired_password_links(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// Adds a mail to the outgoing queue; returns its id.
    fn enqueue_mail(&self, mail: MailRecord) -> impl Future<Output = Result<u64>> + Send;

    /// Up to `limit` queued mails due by `now_ms`, oldest first.
    fn due_mail(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, MailRecord)>>> + Send;

    /// Removes a mail from the queue (sent, or given up).
    fn remove_mail(&self, id: u64) -> impl Future<Output = Result<()>> + Send;

    /// Records a failed attempt: `attempts` so far, next try at `next_attempt_at`.
    fn mail_attempt_failed(
        &self,
        id: u64,
        attempts: u32,
        next_attempt_at: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// How many mails wait and when the next one is due.
    fn mail_queue_status(&self) -> impl Future<Output = Result<QueueStatus>> + Send;

    // --- Reactions and pages around a message ---

    /// Toggles a user's emoji on a message (404 for a missing or deleted
    /// one; [`Toggled::Full`] when it already carries the most distinct
    /// emoji, and nothing is written); `done` runs once durable, in commit
    /// order like [`Backend::post_message`].
    fn react<D>(&self, request: ReactRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<Toggled>) + Send + 'static;

    /// A page of up to `limit` messages centred on `seq`, ascending.
    fn history_around(
        &self,
        topic_id: u64,
        seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<AroundPage>> + Send;

    // --- Blocking reads, for threads outside the async runtime (the
    // search indexer, search queries on the blocking pool) ---

    /// Every topic id with a history (rooms and conversations), ascending.
    fn topic_ids_blocking(&self) -> Result<Vec<u64>>;

    /// The oldest `limit` messages of a topic with `seq > after`, ascending,
    /// and whether newer ones exist.
    fn messages_after_blocking(
        &self,
        topic_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool)>;

    /// What `user_id` may search, with the accounts named in `from`.
    fn search_scope_blocking(&self, user_id: u64, from: &[String]) -> Result<SearchScope>;

    /// The messages at `keys` ((topic id, seq)), with their views' needs.
    fn lookup_messages_blocking(&self, keys: &[(u64, u64)]) -> Result<MessageLookup>;

    // --- Bot rate limits and the delivery log ---

    /// The bots with a rate limit of their own, by user id (the others are
    /// limited as people are).
    fn bot_rate_limits(&self) -> impl Future<Output = Result<Vec<(u64, RateLimit)>>> + Send;

    /// Sets a bot's own rate limit, or with `None` returns it to the one of
    /// people; 404 for no such bot. Deleting the bot drops it.
    fn set_bot_rate_limit(
        &self,
        user_id: u64,
        limit: Option<RateLimit>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Adds an attempt to a bot's delivery log and drops the oldest beyond
    /// the newest `keep`; 404 for no such bot. Deleting the bot drops its log.
    fn log_delivery_attempt(
        &self,
        bot_id: u64,
        attempt: DeliveryAttemptRecord,
        keep: usize,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A bot's delivery log, newest (last added) first.
    fn delivery_log(
        &self,
        bot_id: u64,
    ) -> impl Future<Output = Result<Vec<DeliveryAttemptRecord>>> + Send;
}
