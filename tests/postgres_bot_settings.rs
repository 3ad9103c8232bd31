//! Bots' own rate limits and their delivery log through the store's
//! interface, on PostgreSQL and on the embedded store, call by call: the
//! same answers (errors, order, trimming to the newest attempts), kept
//! across a reopen of the store, and gone with the bot.
//!
//! On PostgreSQL the bots are made and deleted with SQL on the `bots`
//! table (what creating and deleting a bot does there), so this exercises
//! the schema's cascade; on the embedded store through `create_bot` and
//! `delete_bot`.

mod common;

use common::postgres::PgServer;
use common::temp_dir;
use confab::config::Config;
use confab::error::Error;
use confab::store::ops::{NewBot, NewUser};
use confab::store::records::{AttemptOutcome, DeliveryAttemptRecord, RateLimit};
use confab::store::Store;

/// Attempts kept per bot in these checks (the server keeps 50).
const KEEP: usize = 50;

fn limit(burst: u32, refill_per_sec: u32) -> RateLimit {
    RateLimit {
        burst,
        refill_per_sec,
    }
}

/// The `i`-th attempt of the checks: every field varies with `i`.
fn attempt(i: u64) -> DeliveryAttemptRecord {
    let (status, error, outcome) = match i % 3 {
        0 => (Some(200), None, AttemptOutcome::Delivered),
        1 => (
            Some(503),
            Some("answered 503".to_owned()),
            AttemptOutcome::Retrying,
        ),
        _ => (
            None,
            Some(format!("no answer within 10 s ({i})")),
            AttemptOutcome::GaveUp,
        ),
    };
    DeliveryAttemptRecord {
        event_id: 1000 + i,
        attempt: u32::try_from(i % 4 + 1).unwrap_or(1),
        at: 1_700_000_000_000 + i64::try_from(i).unwrap_or(0),
        status,
        error,
        latency_ms: i * 7,
        outcome,
    }
}

/// What an answer was, for comparing the two stores.
fn shown<T: std::fmt::Debug>(answer: Result<T, Error>) -> String {
    match answer {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("error {error:?}"),
    }
}

/// Three accounts: two bots (`a`, `b`) and a person; on PostgreSQL
/// (`pg_url`) the bots' rows are written with SQL. Returns their ids.
async fn accounts(store: &Store, pg_url: Option<&str>) -> (u64, u64, u64) {
    let embedded = pg_url.is_none();
    let mut ids = Vec::new();
    for name in ["alpha", "beta"] {
        let id = if embedded {
            let (user, _) = store
                .create_bot(NewBot {
                    username: name.to_owned(),
                    display_name: name.to_owned(),
                    key_hash: format!("hash of {name}").into_bytes(),
                    signing_secret: format!("whsec_{name}"),
                    webhook_url: None,
                    all_messages: false,
                    created_by: 0,
                })
                .await
                .expect("create bot");
            user.id
        } else {
            store.create_user(person(name)).await.expect("user").id
        };
        ids.push(id);
    }
    let person_id = store.create_user(person("carol")).await.expect("user").id;
    if let Some(url) = pg_url {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        let driver = tokio::spawn(connection);
        for &id in &ids {
            let id = i64::try_from(id).expect("id");
            client
                .execute("UPDATE users SET bot = true WHERE id = $1", &[&id])
                .await
                .expect("flag the bot");
            client
                .execute(
                    "INSERT INTO bots (user_id, key_hash, signing_secret, created_by, created_at)
                     VALUES ($1, $2, 'whsec_x', 0, 0)",
                    &[&id, &id.to_be_bytes().to_vec()],
                )
                .await
                .expect("insert the bot");
        }
        drop(client);
        let _ = driver.await;
    }
    (ids[0], ids[1], person_id)
}

fn person(name: &str) -> NewUser {
    NewUser {
        username: name.to_owned(),
        display_name: name.to_owned(),
        email: None,
        password_hash: "$argon2id$x".to_owned(),
        admin: false,
    }
}

/// Rate limits and the delivery log, answer by answer.
async fn settings(store: &Store, a: u64, b: u64, person: u64) -> Vec<String> {
    let mut out = Vec::new();
    out.push(shown(store.bot_rate_limits().await));
    out.push(shown(store.set_bot_rate_limit(a, Some(limit(3, 1))).await));
    out.push(shown(store.set_bot_rate_limit(b, Some(limit(10, 5))).await));
    out.push(shown(store.set_bot_rate_limit(a, Some(limit(4, 2))).await));
    let both = store.bot_rate_limits().await;
    assert_eq!(
        both.as_ref().ok(),
        Some(&vec![(a, limit(4, 2)), (b, limit(10, 5))]),
        "limits by bot id, the last set"
    );
    out.push(shown(both));
    out.push(shown(store.set_bot_rate_limit(b, None).await));
    out.push(shown(store.set_bot_rate_limit(b, None).await));
    out.push(shown(store.bot_rate_limits().await));
    let refused = store.set_bot_rate_limit(person, Some(limit(1, 1))).await;
    assert!(
        matches!(refused, Err(Error::NotFound("bot"))),
        "{refused:?}"
    );
    out.push(shown(refused));
    out.push(shown(store.set_bot_rate_limit(person, None).await));
    out.push(shown(
        store.set_bot_rate_limit(9999, Some(limit(1, 1))).await,
    ));

    out.push(shown(store.delivery_log(a).await));
    for i in 1..=60 {
        store
            .log_delivery_attempt(a, attempt(i), KEEP)
            .await
            .expect("log an attempt");
    }
    for i in 1..=3 {
        store
            .log_delivery_attempt(b, attempt(100 + i), KEEP)
            .await
            .expect("log an attempt");
    }
    let log = store.delivery_log(a).await.expect("log of a");
    let newest_first: Vec<DeliveryAttemptRecord> = (11..=60).rev().map(attempt).collect();
    assert_eq!(log, newest_first, "the newest 50, newest first, as written");
    out.push(shown(Ok::<_, Error>(log)));
    out.push(shown(store.delivery_log(b).await));
    // A smaller `keep` trims at once.
    store
        .log_delivery_attempt(b, attempt(104), 2)
        .await
        .expect("log an attempt");
    let log = store.delivery_log(b).await.expect("log of b");
    assert_eq!(log, vec![attempt(104), attempt(103)]);
    out.push(shown(Ok::<_, Error>(log)));
    let refused = store.log_delivery_attempt(person, attempt(1), KEEP).await;
    assert!(
        matches!(refused, Err(Error::NotFound("bot"))),
        "{refused:?}"
    );
    out.push(shown(refused));
    out.push(shown(store.delivery_log(person).await));
    out
}

/// What the store holds now (after a reopen, after a deletion).
async fn kept(store: &Store, a: u64, b: u64) -> Vec<String> {
    vec![
        shown(store.bot_rate_limits().await),
        shown(store.delivery_log(a).await.map(|log| log.len())),
        shown(store.delivery_log(a).await.map(|log| log.first().cloned())),
        shown(store.delivery_log(b).await),
    ]
}

#[test]
fn bot_settings_agree_on_postgres_and_the_embedded_store() {
    let pg = PgServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let data = temp_dir();
    let embedded_cfg = Config {
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let pg_cfg = Config {
        database_url: pg.url(),
        ..embedded_cfg.clone()
    };

    let (expected, expected_kept, expected_after_delete) = runtime.block_on(async {
        let store = Store::open_configured(&embedded_cfg, None)
            .await
            .expect("embedded");
        let (a, b, person) = accounts(&store, None).await;
        let answers = settings(&store, a, b, person).await;
        store.close();
        let store = Store::open_configured(&embedded_cfg, None)
            .await
            .expect("embedded again");
        let kept_after_reopen = kept(&store, a, b).await;
        store.delete_bot(a).await.expect("delete bot a");
        let after_delete = kept(&store, a, b).await;
        store.close();
        (answers, kept_after_reopen, after_delete)
    });

    let (a, b, actual) = runtime.block_on(async {
        let store = Store::open_configured(&pg_cfg, None)
            .await
            .expect("postgres");
        let (a, b, person) = accounts(&store, Some(&pg.url())).await;
        let answers = settings(&store, a, b, person).await;
        store.close();
        (a, b, answers)
    });
    assert_eq!(expected.len(), actual.len());
    for (index, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(want, got, "answer {index} differs on PostgreSQL");
    }

    // Kept: a store opened anew (as after a restart) has them.
    let actual_kept = runtime.block_on(async {
        let store = Store::open_configured(&pg_cfg, None)
            .await
            .expect("postgres again");
        let answers = kept(&store, a, b).await;
        store.close();
        answers
    });
    assert_eq!(expected_kept, actual_kept);
    assert!(actual_kept[0].contains("burst: 4"), "{}", actual_kept[0]);
    assert_eq!(actual_kept[1], "50");

    // Gone with the bot (deleting a bot drops its `bots` row).
    let id = i64::try_from(a).expect("id");
    pg.with_client(async |client| {
        client
            .execute("DELETE FROM bots WHERE user_id = $1", &[&id])
            .await
            .expect("delete the bot");
    });
    let actual_after_delete = runtime.block_on(async {
        let store = Store::open_configured(&pg_cfg, None)
            .await
            .expect("postgres again");
        let answers = kept(&store, a, b).await;
        store.close();
        answers
    });
    assert_eq!(expected_after_delete, actual_after_delete);
    assert_eq!(actual_after_delete[0], "[]");
    assert_eq!(actual_after_delete[1], "0");
}
