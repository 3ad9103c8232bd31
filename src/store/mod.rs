//! The store: one interface ([`Backend`]) over the backends that keep
//! confab's data, and the [`Store`] handle everyone uses, which dispatches
//! to the open backend by `match` (no boxing on the hot paths).
//!
//! Layout: this directory holds the interface and the types shared by
//! every backend ([`records`], [`ops`]); [`redb`] is the embedded backend
//! (one redb file in the data directory, a single writer thread with group
//! commit); [`postgres`] keeps them in a PostgreSQL database
//! (`database_url`). Nothing here knows about chat, the
//! hub, HTTP or sockets.

pub mod backend;
pub mod export_format;
pub mod ops;
pub mod postgres;
pub mod records;
pub mod redb;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use backend::Backend;
use ops::{AroundPage, LinkState, NewBot, NewHook, QueueStatus, ReactRequest, Redeemed, Toggled};
use ops::{
    ChangeOutcome, ChangeRequest, ConversationSummary, HistoryQuery, MessageLookup, MessagePage,
    NewRoom, NewUser, PostOutcome, PostRequest, ProfileChange, Recovery, RecoveryQuery,
    RoomSummary, SearchScope, TopicCounts,
};
use records::{AttachmentRecord, ConversationRecord, RoomRecord, Stored, TopicRecord, UserRecord};
use records::{BotRecord, DeliveryRecord, HookRecord, MailRecord, PasswordLinkRecord};

use crate::error::{Error, Result};

/// Why the store could not be opened; each is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the data directory {0} is in use by a running server: use the HTTP admin API, or stop the server first")]
    Locked(PathBuf),
    #[error("the store {path} has schema version {found}, newer than this build ({supported}): upgrade confab")]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot create the data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("cannot open the store {path}: {reason}")]
    Other { path: PathBuf, reason: String },
}

/// Figures of the last commits, for metrics.
pub trait CommitObserver: Send + Sync {
    /// Called after every commit attempt with the batch size and its duration.
    fn committed(&self, ops: usize, seconds: f64, ok: bool);
}

/// Shared handle to the open store. Cloning shares the backend.
#[derive(Clone)]
pub enum Store {
    /// The redb file in the data directory.
    Embedded(redb::EmbeddedStore),
    /// A PostgreSQL database (`database_url`).
    Postgres(postgres::PgStore),
}

/// Forwards inherent async methods to the backend (see [`Backend`] for
/// what each does).
macro_rules! forward {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {$(
        #[doc = concat!("See [`Backend::", stringify!($name), "`].")]
        pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
            match self {
                Store::Embedded(store) => store.$name($($arg),*).await,
                Store::Postgres(store) => store.$name($($arg),*).await,
            }
        }
    )*};
}

impl Store {
    /// Opens (creating if needed) the embedded store in `data_dir`.
    pub fn open(
        data_dir: &Path,
        cache_mib: usize,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> std::result::Result<Store, OpenError> {
        redb::EmbeddedStore::open(data_dir, cache_mib, observer).map(Store::Embedded)
    }

    /// Opens the store `cfg` names: PostgreSQL when `database_url` is set
    /// (migrating its schema first), else the embedded store in `data_dir`.
    pub async fn open_configured(
        cfg: &crate::config::Config,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> std::result::Result<Store, String> {
        if cfg.uses_postgres() {
            postgres::PgStore::open(cfg, observer)
                .await
                .map(Store::Postgres)
                .map_err(|e| e.to_string())
        } else {
            Store::open(&cfg.data_dir, cfg.store_cache_mib, observer).map_err(|e| e.to_string())
        }
    }

    /// Where the data lives, for the log.
    pub fn location(&self) -> String {
        match self {
            Store::Embedded(store) => store.location(),
            Store::Postgres(store) => Backend::location(store),
        }
    }

    /// See [`Backend::close`].
    pub fn close(self) {
        match self {
            Store::Embedded(store) => store.close(),
            Store::Postgres(store) => store.close(),
        }
    }

    /// Stores an image for a topic; refuses what is not a known image type.
    pub async fn add_attachment(
        &self,
        topic_id: u64,
        user_id: u64,
        bytes: Vec<u8>,
    ) -> Result<AttachmentRecord> {
        let content_type = ops::sniff(&bytes)
            .ok_or_else(|| Error::field("file", "must be a PNG, JPEG, GIF or WebP image"))?;
        match self {
            Store::Embedded(store) => {
                store
                    .add_attachment(topic_id, user_id, content_type, bytes)
                    .await
            }
            Store::Postgres(store) => {
                store
                    .add_attachment(topic_id, user_id, content_type, bytes)
                    .await
            }
        }
    }

    /// See [`Backend::export_into`].
    pub async fn export_into<W>(&self, out: W) -> Result<W>
    where
        W: Write + Send + 'static,
    {
        match self {
            Store::Embedded(store) => store.export_into(out).await,
            Store::Postgres(store) => store.export_into(out).await,
        }
    }

    /// The whole export in memory.
    pub async fn export(&self) -> Result<Vec<u8>> {
        self.export_into(Vec::new()).await
    }

    /// See [`Backend::topic_ids_blocking`].
    pub fn topic_ids_blocking(&self) -> Result<Vec<u64>> {
        match self {
            Store::Embedded(store) => store.topic_ids_blocking(),
            Store::Postgres(store) => store.topic_ids_blocking(),
        }
    }

    /// See [`Backend::messages_after_blocking`].
    pub fn messages_after_blocking(
        &self,
        topic_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool)> {
        match self {
            Store::Embedded(store) => store.messages_after_blocking(topic_id, after, limit),
            Store::Postgres(store) => store.messages_after_blocking(topic_id, after, limit),
        }
    }

    /// See [`Backend::search_scope_blocking`].
    pub fn search_scope_blocking(&self, user_id: u64, from: &[String]) -> Result<SearchScope> {
        match self {
            Store::Embedded(store) => store.search_scope_blocking(user_id, from),
            Store::Postgres(store) => store.search_scope_blocking(user_id, from),
        }
    }

    /// See [`Backend::lookup_messages_blocking`].
    pub fn lookup_messages_blocking(&self, keys: &[(u64, u64)]) -> Result<MessageLookup> {
        match self {
            Store::Embedded(store) => store.lookup_messages_blocking(keys),
            Store::Postgres(store) => store.lookup_messages_blocking(keys),
        }
    }

    /// See [`Backend::post_message`].
    pub async fn post_message<D>(&self, request: PostRequest, done: D)
    where
        D: FnOnce(Result<PostOutcome>) + Send + 'static,
    {
        match self {
            Store::Embedded(store) => store.post_message(request, done).await,
            Store::Postgres(store) => store.post_message(request, done).await,
        }
    }

    /// See [`Backend::react`].
    pub async fn react<D>(&self, request: ReactRequest, done: D)
    where
        D: FnOnce(Result<Toggled>) + Send + 'static,
    {
        match self {
            Store::Embedded(store) => store.react(request, done).await,
            Store::Postgres(store) => store.react(request, done).await,
        }
    }

    /// See [`Backend::change_message`].
    pub async fn change_message<D>(&self, request: ChangeRequest, done: D)
    where
        D: FnOnce(Result<ChangeOutcome>) + Send + 'static,
    {
        match self {
            Store::Embedded(store) => store.change_message(request, done).await,
            Store::Postgres(store) => store.change_message(request, done).await,
        }
    }

    forward! {
        fn ready(&self) -> bool;
        fn schema_version(&self) -> Result<u32>;
        fn jwt_secret(&self) -> Result<Vec<u8>>;
        fn create_user(&self, new: NewUser) -> Result<UserRecord>;
        fn user(&self, id: u64) -> Result<Option<UserRecord>>;
        fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>>;
        fn users(&self) -> Result<Vec<UserRecord>>;
        fn update_profile(&self, id: u64, change: ProfileChange) -> Result<UserRecord>;
        fn set_password_hash(&self, id: u64, password_hash: String) -> Result<UserRecord>;
        fn set_disabled(&self, id: u64, disabled: bool) -> Result<UserRecord>;
        fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<()>;
        fn is_token_revoked(&self, jti: &str) -> Result<bool>;
        fn purge_expired_revocations(&self, now: u64) -> Result<usize>;
        fn create_room(&self, new: NewRoom) -> Result<RoomRecord>;
        fn room(&self, name: &str) -> Result<Option<RoomRecord>>;
        fn rooms(&self) -> Result<Vec<RoomRecord>>;
        fn room_access(&self, name: &str, user_id: u64) -> Result<Option<(RoomRecord, bool)>>;
        fn room_list(&self, user_id: u64) -> Result<Vec<RoomSummary>>;
        fn add_member(&self, topic_id: u64, user_id: u64) -> Result<bool>;
        fn remove_member(&self, topic_id: u64, user_id: u64) -> Result<bool>;
        fn topic(&self, topic_id: u64) -> Result<Option<TopicRecord>>;
        fn last_seq(&self, topic_id: u64) -> Result<u64>;
        fn topic_counts(&self, user_id: u64, topic_id: u64) -> Result<TopicCounts>;
        fn open_conversation(&self, a: u64, b: u64) -> Result<(ConversationRecord, bool)>;
        fn conversation(&self, id: u64) -> Result<Option<ConversationRecord>>;
        fn conversation_list(&self, user_id: u64) -> Result<Vec<ConversationSummary>>;
        fn ignores(&self, user_id: u64) -> Result<HashSet<u64>>;
        fn set_ignore(&self, user_id: u64, other: u64, ignore: bool) -> Result<HashSet<u64>>;
        fn attachment(&self, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>>;
        fn mark_read(&self, user_id: u64, topic_id: u64, seq: u64) -> Result<TopicCounts>;
        fn history(&self, topic_id: u64, query: HistoryQuery) -> Result<MessagePage>;
        fn recovery(&self, topic_id: u64, query: RecoveryQuery) -> Result<Recovery>;
        fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;
        fn create_bot(&self, new: NewBot) -> Result<(UserRecord, BotRecord)>;
        fn bots(&self) -> Result<Vec<(UserRecord, BotRecord)>>;
        fn bot(&self, user_id: u64) -> Result<Option<BotRecord>>;
        fn bot_by_key_hash(&self, key_hash: Vec<u8>) -> Result<Option<UserRecord>>;
        fn rotate_bot_key(&self, user_id: u64, key_hash: Vec<u8>, signing_secret: String) -> Result<BotRecord>;
        fn update_bot_webhook(&self, user_id: u64, webhook_url: Option<String>, all_messages: bool) -> Result<BotRecord>;
        fn delete_bot(&self, user_id: u64) -> Result<()>;
        fn create_hook(&self, new: NewHook) -> Result<HookRecord>;
        fn hooks_of_topic(&self, topic_id: u64) -> Result<Vec<HookRecord>>;
        fn hook_by_token_hash(&self, token_hash: Vec<u8>) -> Result<Option<HookRecord>>;
        fn delete_hook(&self, topic_id: u64, id: u64) -> Result<()>;
        fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>>;
        fn finish_delivery(&self, event_id: u64) -> Result<()>;
        fn issue_password_link(&self, hash: [u8; 32], link: PasswordLinkRecord, mail: MailRecord) -> Result<u64>;
        fn password_link_state(&self, hash: [u8; 32], now_ms: i64) -> Result<LinkState>;
        fn redeem_password_link(&self, hash: [u8; 32], password_hash: String, now_ms: i64) -> Result<Redeemed>;
        fn purge_expired_password_links(&self, now_ms: i64) -> Result<usize>;
        fn enqueue_mail(&self, mail: MailRecord) -> Result<u64>;
        fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<(u64, MailRecord)>>;
        fn remove_mail(&self, id: u64) -> Result<()>;
        fn mail_attempt_failed(&self, id: u64, attempts: u32, next_attempt_at: i64) -> Result<()>;
        fn mail_queue_status(&self) -> Result<QueueStatus>;
        fn history_around(&self, topic_id: u64, seq: u64, limit: usize) -> Result<AroundPage>;
    }
}

/// Writes the JSON Lines export of the stopped store in `data_dir` to `out`.
pub fn export_offline(data_dir: &Path, out: &mut dyn Write) -> std::result::Result<(), String> {
    redb::export::export_offline(data_dir, out)
}

/// Loads an export into a new store in the empty `data_dir`; returns the
/// number of records loaded.
pub fn import(data_dir: &Path, input: impl BufRead) -> std::result::Result<usize, String> {
    redb::export::import(data_dir, input)
}

/// Where [`import`] puts the data, for the operator.
pub fn import_location(data_dir: &Path) -> PathBuf {
    redb::store_file(data_dir)
}

/// `confab export` without a running server: the export of the store `cfg`
/// names (PostgreSQL when `database_url` is set, else the embedded store in
/// the data directory), written to `out`.
pub async fn export_configured(
    cfg: &crate::config::Config,
    out: &mut dyn Write,
) -> std::result::Result<(), String> {
    if cfg.uses_postgres() {
        postgres::export::export_offline(cfg, out).await
    } else {
        export_offline(&cfg.data_dir, out)
    }
}

/// `confab import`: loads an export into the empty store `cfg` names (an
/// empty PostgreSQL database when `database_url` is set, else a new store
/// in the data directory); returns the number of records loaded and where
/// they went.
pub async fn import_configured<R>(
    cfg: &crate::config::Config,
    input: R,
) -> std::result::Result<(usize, String), String>
where
    R: BufRead + Send + 'static,
{
    if cfg.uses_postgres() {
        postgres::export::import(cfg, input).await
    } else {
        let count = import(&cfg.data_dir, input)?;
        Ok((count, import_location(&cfg.data_dir).display().to_string()))
    }
}
