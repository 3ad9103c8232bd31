//! Maps PostgreSQL client and pool failures onto the crate's errors: a
//! database that cannot be reached (refused, lost, shutting down, no free
//! connection in time) is [`Error::Unavailable`], so a write answers
//! `unavailable` promptly instead of hanging or failing with 500; anything
//! else is [`Error::Store`], logged and never shown to clients.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use super::describe;
use crate::error::Error;

/// What clients are told while the database is away.
pub const UNREACHABLE: &str = "the database is unreachable; try again shortly";

/// What tokio-postgres's errors say first (their `Display`) for the kinds
/// that mean the connection failed, the kind itself not being public: an
/// I/O error on an open connection, a failed connect (refused, timed out,
/// no address), a connection the server closed, a timeout.
const CONNECTION_KINDS: &[&str] = &[
    "error communicating with the server",
    "error connecting to server",
    "connection closed",
    "timeout waiting for server",
];

/// Whether `error` means the connection (not the statement) failed.
pub fn is_connection_failure(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 (connection exception), the server shutting down or
        // not accepting connections yet.
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No answer from the server: only I/O, closed and timeout errors
        // are about the connection; a parameter that does not convert, a
        // column that is not there or an unexpected row count are bugs.
        None => {
            let text = error.to_string();
            CONNECTION_KINDS.iter().any(|kind| text.starts_with(kind))
        }
    }
}

/// The crate error for a failed statement.
pub fn db(error: tokio_postgres::Error) -> Error {
    if is_connection_failure(&error) {
        tracing::warn!(error = %describe(&error), "PostgreSQL connection failed");
        Error::Unavailable(UNREACHABLE.into())
    } else {
        Error::Store(describe(&error))
    }
}

/// The crate error for a connection the pool could not hand out.
pub fn pool(error: PoolError) -> Error {
    match error {
        PoolError::Closed => Error::Unavailable("the store is closed".into()),
        PoolError::Backend(e) => db(e),
        other => {
            tracing::warn!(error = %other, "no PostgreSQL connection");
            Error::Unavailable(UNREACHABLE.into())
        }
    }
}

/// Whether `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Whether a transaction failed only because it ran into another one
/// (deadlock, serialization) and may simply be run again.
pub fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("postgres://confab@127.0.0.1:{port}/chat");
        let error = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .err()
            .expect("nothing listens there");
        assert!(is_connection_failure(&error), "{error}");
        assert!(matches!(db(error), Error::Unavailable(_)));
    }

    #[test]
    fn other_client_errors_are_not() {
        let error = "host=/nonexistent port=x"
            .parse::<tokio_postgres::Config>()
            .expect_err("a bad port");
        assert!(!is_connection_failure(&error), "{error}");
        assert!(matches!(db(error), Error::Store(_)));
    }
}
