//! The PostgreSQL backend: [`PgStore`] keeps confab's data in a PostgreSQL
//! database through a connection pool ([`pool`]), with the schema built into
//! the binary ([`migrations`]) and applied when the store opens.
//!
//! One file per aggregate (`users`, `rooms`, `bots`, ...) holds its SQL;
//! [`backend`] maps the store's operations onto them. Reads and most writes
//! run on a pooled connection in their own statement or transaction; posts,
//! edits, deletes and reactions go through the [`writer`], which batches
//! them (group commit) and completes them in commit order.

pub mod attachments;
pub mod backend;
pub mod bot_limits;
pub mod bots;
pub mod conversations;
pub mod convert;
pub mod delivery_log;
pub mod error;
pub mod export;
pub mod history;
pub mod mail;
pub mod meta;
pub mod migrations;
pub mod pool;
pub mod posting;
pub mod rooms;
pub mod search_reads;
pub mod tokens;
pub mod users;
pub mod writer;

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};

use crate::config::Config;
use crate::store::CommitObserver;

/// Why the PostgreSQL database could not be prepared. `Display` is one line
/// and never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `database_url` cannot be turned into a connection configuration.
    #[error("database_url is not a usable PostgreSQL URL: {0}")]
    Url(String),
    /// The server could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// `host:port` (or the socket directory) of every host tried.
        target: String,
        /// Why, from the client library or the server.
        reason: String,
    },
    /// The database carries a schema newer than this binary knows.
    #[error(
        "the PostgreSQL schema is at version {database}, newer than this \
         binary knows (version {binary}): run a newer confab against this database"
    )]
    SchemaTooNew {
        /// The highest version in `schema_migrations`.
        database: i32,
        /// The highest migration built into this binary.
        binary: i32,
    },
    /// The data directory (search index, admin socket) cannot be made, or
    /// another server holds it.
    #[error("{0}")]
    DataDir(String),
    /// A statement failed while migrating.
    #[error("{context}: {reason}")]
    Query {
        /// What was being done.
        context: String,
        /// The server's or the client's reason.
        reason: String,
    },
}

/// The reason of a client error on one line: the server's message (with its
/// detail) for database errors, the client's text otherwise.
pub fn describe(error: &tokio_postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        // The client's text names only the kind of failure; the cause
        // (e.g. the I/O error) says what happened. Neither holds the URL.
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    };
    text.replace(['\n', '\r'], " ")
}

/// Connects to `database_url` and applies the migrations this binary has;
/// returns the schema version the database is at afterwards.
pub async fn prepare(cfg: &Config) -> Result<migrations::Outcome, PgError> {
    let pool = pool::connect(&cfg.database_url, cfg.database_pool_size).await?;
    let mut client = pool::get(&pool, &cfg.database_url).await?;
    migrations::apply(&mut client).await
}

/// Shared handle to the open PostgreSQL store. Cloning shares the pool and
/// the writer.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `host:port/database`, for the log and errors (never the password).
    location: String,
    writer: writer::Writer,
    /// The runtime the pool lives on, for the blocking reads of threads
    /// outside it (the search indexer).
    runtime: tokio::runtime::Handle,
    /// Held while the store is open: the data directory keeps this
    /// process's search index and admin socket, so one process uses it.
    _dir_lock: std::fs::File,
}

/// Takes the lock on `<data_dir>/confab.lock` that keeps a second process
/// off the data directory, as the embedded store's file lock does.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, PgError> {
    let unusable = |e: std::io::Error| {
        PgError::DataDir(format!(
            "cannot use the data directory {}: {e}",
            data_dir.display()
        ))
    };
    std::fs::create_dir_all(data_dir).map_err(unusable)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("confab.lock"))
        .map_err(unusable)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(PgError::DataDir(
            crate::store::OpenError::Locked(data_dir.to_path_buf()).to_string(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(unusable(e)),
    }
}

impl PgStore {
    /// Locks the data directory, connects, applies the migrations, creates
    /// `lobby` if missing and starts the writer. Must be called inside the tokio runtime.
    pub async fn open(
        cfg: &Config,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<PgStore, PgError> {
        let dir_lock = lock_data_dir(&cfg.data_dir)?;
        let pool = pool::connect(&cfg.database_url, cfg.database_pool_size).await?;
        {
            let mut client = pool::get(&pool, &cfg.database_url).await?;
            migrations::apply(&mut client).await?;
        }
        let location = pool::location(&cfg.database_url)?;
        let writer = writer::Writer::start(pool.clone(), observer);
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                location,
                writer,
                runtime: tokio::runtime::Handle::current(),
                _dir_lock: dir_lock,
            }),
        };
        rooms::ensure_lobby(&store)
            .await
            .map_err(|e| PgError::Query {
                context: "cannot create the lobby".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(store)
    }

    /// A pooled connection, or [`crate::error::Error::Unavailable`] promptly
    /// when the database cannot be reached.
    pub async fn client(&self) -> crate::error::Result<Object> {
        self.inner.pool.get().await.map_err(error::pool)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The writer that batches posts, edits, deletes and reactions.
    pub fn writer(&self) -> &writer::Writer {
        &self.inner.writer
    }

    /// Where the data lives, for the log.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Runs `future` to completion from a thread outside the runtime (the
    /// search indexer, search queries on the blocking pool).
    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.inner.runtime.block_on(future)
    }
}
