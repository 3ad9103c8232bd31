//! The PostgreSQL groundwork end to end: `confab migrate` and `confab serve`
//! (the real binary) against a private PostgreSQL server started per test,
//! checked with queries through tokio-postgres; and the clear refusals for
//! an unreachable server, a bad URL and a schema newer than the binary.

mod common;

use std::thread;

use common::postgres::PgServer;
use common::{closed_port, describe_output, run_confab_with, temp_dir, TestServer};

const PASSWORD: &str = "hunter2-secret";

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn migrate(url: &str) -> std::process::Output {
    let cwd = temp_dir();
    run_confab_with(
        cwd.path(),
        &[("CONFAB_DATABASE_URL", url)],
        &["migrate"],
        None,
    )
}

#[test]
fn migrate_applies_the_initial_schema_once() {
    let pg = PgServer::start();
    let output = migrate(&pg.url());
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(
        stdout(&output).trim(),
        "PostgreSQL schema is at version 2 (applied: 1, 2)"
    );
    let again = migrate(&pg.url());
    assert!(again.status.success(), "{}", describe_output(&again));
    assert_eq!(
        stdout(&again).trim(),
        "PostgreSQL schema is up to date at version 2"
    );

    pg.with_client(async |client| {
        let versions: Vec<i32> = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, [1, 2]);
        let tables: Vec<String> = client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' ORDER BY table_name",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            tables,
            [
                "attachments",
                "bots",
                "conversations",
                "deliveries",
                "hooks",
                "ignores",
                "mail_queue",
                "messages",
                "meta",
                "password_links",
                "reactions",
                "read_positions",
                "revoked_tokens",
                "rooms",
                "schema_migrations",
                "topic_members",
                "topics",
                "unread_mentions",
                "users",
            ]
        );

        // The schema's rules hold: names unique whatever their case,
        // client_id idempotent per author.
        client
            .batch_execute(
                "INSERT INTO users (username, display_name, password_hash, created_at)
                     VALUES ('Alice', 'Alice', 'x', 0);
                 INSERT INTO topics (kind, name, epoch, created_at)
                     VALUES ('room', 'room:lobby', 'e', 0);
                 INSERT INTO messages (topic_id, seq, author_id, body, client_id, inserted_at)
                     VALUES (1, 1, 1, 'Hello wide world', 'c1', 0),
                            (1, 2, 1, 'second', NULL, 0),
                            (1, 3, 1, 'third', NULL, 0);",
            )
            .await
            .unwrap();
        let duplicate_name = client
            .execute(
                "INSERT INTO users (username, display_name, password_hash, created_at)
                 VALUES ('aLICE', 'a', 'x', 0)",
                &[],
            )
            .await;
        assert!(duplicate_name.is_err(), "usernames differing in case");
        let duplicate_client_id = client
            .execute(
                "INSERT INTO messages (topic_id, seq, author_id, body, client_id, inserted_at)
                 VALUES (1, 4, 1, 'again', 'c1', 0)",
                &[],
            )
            .await;
        assert!(duplicate_client_id.is_err(), "client_id reused");

        // History after a seq is a range scan of the (topic_id, seq) key.
        client
            .batch_execute("SET enable_seqscan = off; ANALYZE messages")
            .await
            .unwrap();
        let plan: Vec<String> = client
            .query(
                "EXPLAIN SELECT * FROM messages WHERE topic_id = 1 AND seq > 1
                 ORDER BY seq LIMIT 50",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using messages_pkey"), "{plan}");
        assert!(!plan.contains("Sort"), "{plan}");
    });
}

#[test]
fn concurrent_migrations_apply_once() {
    let pg = PgServer::start();
    let url = pg.url();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || migrate(&url))
        })
        .collect();
    let mut lines: Vec<String> = runs
        .into_iter()
        .map(|run| {
            let output = run.join().expect("migrate thread");
            assert!(output.status.success(), "{}", describe_output(&output));
            stdout(&output).trim().to_owned()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "PostgreSQL schema is at version 2 (applied: 1, 2)",
            "PostgreSQL schema is up to date at version 2",
        ]
    );
    let rows: i64 = pg.with_client(async |client| {
        client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0)
    });
    // One row per migration: none was recorded twice.
    assert_eq!(rows, 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let pg = PgServer::start();
    pg.with_client(async |client| {
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now());
                 INSERT INTO schema_migrations (version) VALUES (999);",
            )
            .await
            .unwrap();
    });
    for command in ["migrate", "serve"] {
        let cwd = temp_dir();
        let output = run_confab_with(
            cwd.path(),
            &[("CONFAB_DATABASE_URL", &pg.url())],
            &[command],
            None,
        );
        assert!(!output.status.success(), "{}", describe_output(&output));
        let text = stderr(&output);
        assert!(
            text.contains("schema is at version 999, newer than this binary knows (version 2)"),
            "{command}: {text}"
        );
    }
    // Nothing was applied.
    let tables: i64 = pg.with_client(async |client| {
        client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(tables, 1);
}

#[test]
fn serve_migrates_a_fresh_database_and_serves() {
    let pg = PgServer::start();
    let server = TestServer::options()
        .env("CONFAB_DATABASE_URL", &pg.url())
        .start();
    let (token, _) = server.register("alice", "correct horse battery");
    let posted = server.post_message(
        "lobby",
        &token,
        &serde_json::json!({"body": "kept in PostgreSQL"}),
    );
    assert_eq!(posted["seq"], 1, "{posted}");
    assert!(
        !server.data_dir().join("confab.redb").exists(),
        "an embedded store was made"
    );
    let (version, body): (i32, String) = pg.with_client(async |client| {
        let version = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        let body = client
            .query_one("SELECT body FROM messages WHERE seq = 1", &[])
            .await
            .unwrap()
            .get(0);
        (version, body)
    });
    assert_eq!(version, 2);
    assert_eq!(body, "kept in PostgreSQL");
}

#[test]
fn an_unreachable_database_is_named_without_the_password() {
    let addr = closed_port();
    let url = format!("postgres://confab:{PASSWORD}@{addr}/chat");
    for command in ["migrate", "serve"] {
        let cwd = temp_dir();
        let output = run_confab_with(
            cwd.path(),
            &[("CONFAB_DATABASE_URL", &url), ("CONFAB_LOG", "info")],
            &[command],
            None,
        );
        assert!(!output.status.success(), "{}", describe_output(&output));
        let text = stderr(&output);
        assert!(
            text.contains(&format!("cannot connect to PostgreSQL at {addr}")),
            "{command}: {text}"
        );
        assert!(!text.contains(PASSWORD), "{command}: {text}");
        assert!(!stdout(&output).contains(PASSWORD), "{command}");
    }
}

#[test]
fn a_url_that_is_not_postgres_is_refused() {
    for url in [
        format!("mysql://confab:{PASSWORD}@127.0.0.1:3306/chat"),
        format!("host=127.0.0.1 password={PASSWORD}"),
    ] {
        for command in ["migrate", "serve"] {
            let cwd = temp_dir();
            let output = run_confab_with(
                cwd.path(),
                &[("CONFAB_DATABASE_URL", &url)],
                &[command],
                None,
            );
            assert!(!output.status.success(), "{}", describe_output(&output));
            let text = stderr(&output);
            assert!(
                text.contains("must start with postgres:// or postgresql://"),
                "{command}: {text}"
            );
            assert!(!text.contains(PASSWORD), "{command}: {text}");
        }
    }
}

#[test]
fn migrate_without_a_database_url_needs_nothing() {
    let cwd = temp_dir();
    let output = run_confab_with(cwd.path(), &[], &["migrate"], None);
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        stdout(&output).contains("the embedded store in ./data needs no migrations"),
        "{}",
        describe_output(&output)
    );
    assert!(!cwd.path().join("data").exists());
}
