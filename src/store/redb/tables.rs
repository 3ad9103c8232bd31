//! The catalog of every redb table: its name states key → value. Used by
//! store initialisation (every table is created once at open) and export.

use redb::{MultimapTableDefinition, TableDefinition};

/// Settings and counters: `schema_version`, `jwt_secret`, `next_user_id`, ...
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// user id → [`crate::store::records::UserRecord`].
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
/// lowercase username → user id.
pub const USERNAME_USER: TableDefinition<&str, u64> = TableDefinition::new("username_user");
/// revoked token id (`jti`) → its expiry in seconds since the epoch.
pub const REVOKED_JTI_EXPIRY: TableDefinition<&str, u64> =
    TableDefinition::new("revoked_jti_expiry");
/// room name → [`crate::store::records::RoomRecord`].
pub const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
/// topic name (`room:lobby`) → topic id.
pub const TOPIC_IDS: TableDefinition<&str, u64> = TableDefinition::new("topic_ids");
/// topic id → [`crate::store::records::TopicRecord`].
pub const TOPICS: TableDefinition<u64, &[u8]> = TableDefinition::new("topics");
/// topic id → member user ids (private rooms, conversations).
pub const TOPIC_MEMBERS: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("topic_members");
/// user id → topic ids the user is a member of.
pub const USER_TOPICS: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("user_topics");
/// (topic id, seq) → [`crate::store::records::MessageRecord`]; one topic is one contiguous range.
pub const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
/// (topic id, user id, client_id) → seq of the message that client_id produced.
pub const CLIENT_ID_SEQ: TableDefinition<(u64, u64, &str), u64> =
    TableDefinition::new("client_id_seq");
/// (user id, topic id) → the last seq the user has read.
pub const READ_POSITIONS: TableDefinition<(u64, u64), u64> = TableDefinition::new("read_positions");
/// conversation id → [`crate::store::records::ConversationRecord`].
pub const CONVERSATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("conversations");
/// (lower user id, higher user id) → conversation id: one conversation per pair.
pub const USER_PAIR_CONVERSATION: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("user_pair_conversation");
/// user id → user ids they ignore.
pub const USER_IGNORES: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("user_ignores");
/// attachment id → [`crate::store::records::AttachmentRecord`] (without the bytes).
pub const ATTACHMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("attachments");
/// attachment id → the file's bytes, as uploaded.
pub const ATTACHMENT_BYTES: TableDefinition<u64, &[u8]> = TableDefinition::new("attachment_bytes");
/// (topic id, seq) → the attachment id a message carries.
pub const MESSAGE_ATTACHMENT: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("message_attachment");
/// (user id, topic id, seq) → author id: mentions of the user not read yet.
pub const UNREAD_MENTIONS: TableDefinition<(u64, u64, u64), u64> =
    TableDefinition::new("unread_mentions");
/// bot user id → [`super::records::BotRecord`].
pub const BOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("bots");
/// SHA-256 of a bot API key → bot user id.
pub const BOT_KEY_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("bot_key_hashes");
/// incoming webhook id → [`super::records::HookRecord`].
pub const HOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("hooks");
/// SHA-256 of an incoming webhook token → hook id.
pub const HOOK_TOKEN_HASHES: TableDefinition<&[u8], u64> =
    TableDefinition::new("hook_token_hashes");
/// event id → [`super::records::DeliveryRecord`]: outgoing webhook events
/// not delivered yet.
pub const DELIVERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("deliveries");

/// (topic id, seq) → [`super::records::ReactionsRecord`]: a message's reactions.
pub const REACTIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("reactions");
/// SHA-256 of a password link's token → [`super::records::PasswordLinkRecord`].
pub const PASSWORD_LINKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("password_links");
/// queued mail id → [`super::records::MailRecord`], until sent or given up.
pub const MAIL_QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_queue");
/// bot user id → [`super::records::RateLimit`]: the bots limited otherwise
/// than people.
pub const BOT_RATE_LIMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("bot_rate_limits");
/// (bot user id, n) → [`super::records::DeliveryAttemptRecord`]: the last
/// delivery attempts of each bot, n counting up per bot.
pub const DELIVERY_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("delivery_log");

/// Opens every table once so later read transactions find them.
pub fn create_all(tx: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    tx.open_table(META)?;
    tx.open_table(USERS)?;
    tx.open_table(USERNAME_USER)?;
    tx.open_table(REVOKED_JTI_EXPIRY)?;
    tx.open_table(ROOMS)?;
    tx.open_table(TOPIC_IDS)?;
    tx.open_table(TOPICS)?;
    tx.open_multimap_table(TOPIC_MEMBERS)?;
    tx.open_multimap_table(USER_TOPICS)?;
    tx.open_table(MESSAGES)?;
    tx.open_table(CLIENT_ID_SEQ)?;
    tx.open_table(READ_POSITIONS)?;
    tx.open_table(CONVERSATIONS)?;
    tx.open_table(USER_PAIR_CONVERSATION)?;
    tx.open_multimap_table(USER_IGNORES)?;
    tx.open_table(ATTACHMENTS)?;
    tx.open_table(ATTACHMENT_BYTES)?;
    tx.open_table(MESSAGE_ATTACHMENT)?;
    tx.open_table(UNREAD_MENTIONS)?;
    tx.open_table(REACTIONS)?;
    tx.open_table(BOTS)?;
    tx.open_table(BOT_KEY_HASHES)?;
    tx.open_table(HOOKS)?;
    tx.open_table(HOOK_TOKEN_HASHES)?;
    tx.open_table(DELIVERIES)?;
    tx.open_table(PASSWORD_LINKS)?;
    tx.open_table(MAIL_QUEUE)?;
    tx.open_table(BOT_RATE_LIMITS)?;
    tx.open_table(DELIVERY_LOG)?;
    Ok(())
}
