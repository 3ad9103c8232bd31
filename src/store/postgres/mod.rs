//! PostgreSQL groundwork: the connection pool ([`pool`]) and the schema
//! migrations built into the binary ([`migrations`]). The store itself is
//! still the embedded one; [`prepare`] is what `confab migrate` and a
//! `confab serve` with `database_url` set run before anything else.

pub mod migrations;
pub mod pool;

use crate::config::Config;

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
