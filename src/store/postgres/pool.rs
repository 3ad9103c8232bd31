//! The PostgreSQL connection pool: built from `database_url` with
//! `database_pool_size` connections at most, with bounded connect and wait
//! times so an unreachable server is one clear error rather than a hang.
//! Errors name the host and port, never the password.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use super::{describe, PgError};

/// Longest wait for one new connection (TCP, then the login), unless the
/// URL sets `connect_timeout` itself.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a pooled connection, counting its creation: while the
/// database is away, requests answer `unavailable` after this at most.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL's default port.
const DEFAULT_PORT: u16 = 5432;

/// Parses `url` into the client's configuration.
fn parse(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Url(describe(&e)))?;
    if config.get_hosts().is_empty() {
        return Err(PgError::Url("it names no host".to_owned()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("confab");
    }
    // A write is acknowledged once COMMIT returns: make sure that means it
    // is on disk, whatever the server's default.
    let options = match config.get_options() {
        Some(given) => format!("{given} -c synchronous_commit=on"),
        None => "-c synchronous_commit=on".to_owned(),
    };
    config.options(&options);
    Ok(config)
}

/// `host:port` of every host the URL names, comma-separated, for messages.
pub fn target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port_of = |index: usize| match ports {
        [] => DEFAULT_PORT,
        [only] => *only,
        many => many.get(index).copied().unwrap_or(DEFAULT_PORT),
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| match host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port_of(index)),
            Host::Tcp(name) => format!("{name}:{}", port_of(index)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port_of(index)),
        })
        .collect();
    hosts.join(",")
}

/// `host:port/database` of `url`, for the log (never the password).
pub fn location(url: &str) -> Result<String, PgError> {
    let config = parse(url)?;
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    Ok(format!("postgres://{}/{database}", target(&config)))
}

/// Builds the pool (no connection is made yet).
pub fn build(url: &str, size: usize) -> Result<Pool, PgError> {
    let config = parse(url)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(WAIT_TIMEOUT))
        .build()
        .map_err(|e| PgError::Url(e.to_string()))
}

/// Builds the pool and proves the database is reachable with one
/// connection: a start-up failure is reported here, once, naming the host
/// and port.
pub async fn connect(url: &str, size: usize) -> Result<Pool, PgError> {
    let pool = build(url, size)?;
    drop(get(&pool, url).await?);
    Ok(pool)
}

/// A connection from the pool; a failure names the host and port of `url`.
pub async fn get(pool: &Pool, url: &str) -> Result<Object, PgError> {
    pool.get().await.map_err(|e| {
        let target = parse(url).map_or_else(|_| "database_url".to_owned(), |c| target(&c));
        let reason = match &e {
            PoolError::Backend(e) => describe(e),
            PoolError::Timeout(_) => {
                format!("no connection within {} seconds", WAIT_TIMEOUT.as_secs())
            }
            other => other.to_string(),
        };
        PgError::Connect { target, reason }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_hosts_and_ports() {
        let cases = [
            ("postgres://u:secret@db.example/chat", "db.example:5432"),
            ("postgres://u:secret@127.0.0.1:6000/chat", "127.0.0.1:6000"),
            ("postgresql://u@[::1]:6001/chat", "[::1]:6001"),
            ("postgres://u@a:1,b:2/chat", "a:1,b:2"),
        ];
        for (url, expected) in cases {
            assert_eq!(target(&parse(url).unwrap()), expected, "{url}");
        }
    }

    #[test]
    fn url_errors_do_not_echo_the_password() {
        let error = build("postgres://u:hunter2@db:notaport/chat", 4).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("database_url is not"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
