//! The PostgreSQL schema: numbered SQL migrations built into the binary
//! (`migrations/NNNN_name.sql`) and [`apply`], which applies every one the
//! database has not had yet, in order. Applied versions are recorded in
//! `schema_migrations(version, applied_at)`.
//!
//! Everything runs in one transaction under a transaction-scoped advisory
//! lock ([`LOCK_KEY`]), so nodes starting at once take turns: the first
//! applies what is missing, the others then find nothing to do. A database
//! whose schema is newer than this binary knows is refused before anything
//! is changed.

use tokio_postgres::Client;

use super::{describe, PgError};

/// One migration: its version (the file's number) and SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// The number in the file name; versions increase.
    pub version: i32,
    /// The rest of the file name, e.g. `initial`.
    pub name: &'static str,
    /// The statements, run as one batch.
    pub sql: &'static str,
}

/// Every migration this binary carries, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "integrations",
        sql: include_str!("migrations/0002_integrations.sql"),
    },
    Migration {
        version: 3,
        name: "bot_settings",
        sql: include_str!("migrations/0003_bot_settings.sql"),
    },
];

/// Key of the advisory lock held while migrating: "confab" in ASCII, fixed
/// so that every node and every version takes the same lock.
pub const LOCK_KEY: i64 = 0x636f_6e66_6162;

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The schema version the database is at now.
    pub version: i32,
    /// The versions applied by this call (empty when already up to date).
    pub applied: Vec<i32>,
}

/// The newest schema version this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies every migration the database has not had, in one transaction
/// under the advisory lock.
pub async fn apply(client: &mut Client) -> Result<Outcome, PgError> {
    let query = |context: &'static str| {
        move |e: tokio_postgres::Error| PgError::Query {
            context: context.to_owned(),
            reason: describe(&e),
        }
    };
    let tx = client
        .transaction()
        .await
        .map_err(query("cannot begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(query("cannot take the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(query("cannot create schema_migrations"))?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .and_then(|rows| rows.iter().map(|row| row.try_get(0)).collect())
        .map_err(query("cannot read schema_migrations"))?;
    let current = done.iter().copied().max().unwrap_or(0);
    let binary = latest();
    if current > binary {
        return Err(PgError::SchemaTooNew {
            database: current,
            binary,
        });
    }
    let mut applied = Vec::new();
    // Every migration not recorded yet, in order.
    for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let failed = |e: tokio_postgres::Error| PgError::Query {
            context: format!(
                "migration {:04}_{} failed",
                migration.version, migration.name
            ),
            reason: describe(&e),
        };
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&migration.version],
        )
        .await
        .map_err(failed)?;
        applied.push(migration.version);
    }
    tx.commit()
        .await
        .map_err(query("cannot commit the migration"))?;
    Ok(Outcome {
        version: binary,
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        let mut previous = 0;
        for migration in MIGRATIONS {
            assert!(migration.version > previous, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty());
            previous = migration.version;
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        assert_eq!(latest(), previous);
    }
}
