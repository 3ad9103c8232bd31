//! Bots (table `bots`, with their user in `users` flagged `bot`), incoming
//! webhooks (`hooks`) and the outgoing webhook queue (`deliveries`).
//!
//! A key or token is found by its SHA-256 alone (the unique `key_hash` and
//! `token_hash` columns); re-keying and deleting a bot move its user's token
//! version in the same transaction, so the old key and its sockets die at
//! that commit. Deliveries are written by the posting transaction through
//! [`next_event_id`] and [`enqueue_in`], and deleted once delivered or
//! given up on.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::convert::{from_db, prefixed, to_db, Param};
use super::error::{db, is_unique_violation};
use super::{users, PgStore};
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::{NewBot, NewHook};
use crate::store::records::{BotRecord, DeliveryRecord, HookRecord, UserRecord};

/// The columns [`bot_from_row`] reads, in order.
pub const BOT_COLUMNS: &str =
    "user_id, key_hash, signing_secret, webhook_url, all_messages, created_by, created_at";

/// The columns [`hook_from_row`] reads, in order.
pub const HOOK_COLUMNS: &str = "id, room, topic_id, user_id, token_hash, created_by, created_at";

/// The columns [`delivery_from_row`] reads, in order.
pub const DELIVERY_COLUMNS: &str = "event_id, bot_id, topic, body, created_at";

/// SQL that moves a `token_version` on by one as a u32 does (wrapping).
const NEXT_TOKEN_VERSION: &str = "(token_version + 1) % 4294967296";

/// A `bots` row selected with [`BOT_COLUMNS`] from column `at` on.
pub fn bot_from_row(row: &Row, at: usize) -> Result<BotRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("bots row: {e}"));
    Ok(BotRecord {
        user_id: from_db(row.try_get(at).map_err(column)?),
        key_hash: row.try_get(at + 1).map_err(column)?,
        signing_secret: row.try_get(at + 2).map_err(column)?,
        webhook_url: row.try_get(at + 3).map_err(column)?,
        all_messages: row.try_get(at + 4).map_err(column)?,
        created_by: from_db(row.try_get(at + 5).map_err(column)?),
        created_at: row.try_get(at + 6).map_err(column)?,
    })
}

/// A `hooks` row selected with [`HOOK_COLUMNS`].
pub fn hook_from_row(row: &Row) -> Result<HookRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("hooks row: {e}"));
    Ok(HookRecord {
        id: from_db(row.try_get(0).map_err(column)?),
        room: row.try_get(1).map_err(column)?,
        topic_id: from_db(row.try_get(2).map_err(column)?),
        user_id: from_db(row.try_get(3).map_err(column)?),
        token_hash: row.try_get(4).map_err(column)?,
        created_by: from_db(row.try_get(5).map_err(column)?),
        created_at: row.try_get(6).map_err(column)?,
    })
}

/// A `deliveries` row selected with [`DELIVERY_COLUMNS`].
pub fn delivery_from_row(row: &Row) -> Result<DeliveryRecord> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("deliveries row: {e}"));
    Ok(DeliveryRecord {
        event_id: from_db(row.try_get(0).map_err(column)?),
        bot_id: from_db(row.try_get(1).map_err(column)?),
        topic: row.try_get(2).map_err(column)?,
        body: row.try_get(3).map_err(column)?,
        created_at: row.try_get(4).map_err(column)?,
    })
}

/// Runs `sql` (prepared once per connection) with `params`.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// Executes `sql` (prepared once per connection) with `params`.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// Creates the bot's user (flagged `bot`, no password) and its record in
/// one transaction; 422 on a taken username.
pub async fn create(store: &PgStore, new: NewBot) -> Result<(UserRecord, BotRecord)> {
    let taken = || Error::field("username", "is already taken");
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let key = new.username.to_lowercase();
    // Checked before the insert so that a refused name uses no id.
    let exists = query(
        &tx,
        "SELECT 1 FROM users WHERE lower(username) = $1",
        &[&key],
    )
    .await
    .map_err(db)?;
    if !exists.is_empty() {
        return Err(taken());
    }
    let now = clock::now_ms();
    let sql = format!(
        "INSERT INTO users (username, display_name, email, password_hash, admin, disabled, \
         token_version, created_at, bot) \
         VALUES ($1, $2, NULL, '', false, false, 0, $3, true) RETURNING {}",
        users::COLUMNS
    );
    let rows = match query(&tx, &sql, &[&new.username, &new.display_name, &now]).await {
        Ok(rows) => rows,
        Err(e) if is_unique_violation(&e) => return Err(taken()),
        Err(e) => return Err(db(e)),
    };
    let user = match rows.first() {
        Some(row) => users::from_row(row)?,
        None => return Err(Error::Store("the new bot user was not returned".into())),
    };
    let sql = format!(
        "INSERT INTO bots ({BOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING {BOT_COLUMNS}"
    );
    let rows = query(
        &tx,
        &sql,
        &[
            &to_db(user.id),
            &new.key_hash,
            &new.signing_secret,
            &new.webhook_url,
            &new.all_messages,
            &to_db(new.created_by),
            &now,
        ],
    )
    .await
    .map_err(db)?;
    let bot = match rows.first() {
        Some(row) => bot_from_row(row, 0)?,
        None => return Err(Error::Store("the new bot was not returned".into())),
    };
    tx.commit().await.map_err(db)?;
    Ok((user, bot))
}

/// Every bot with its user, by id.
pub async fn all(store: &PgStore) -> Result<Vec<(UserRecord, BotRecord)>> {
    let client = store.client().await?;
    let user_columns = prefixed(users::COLUMNS, "u");
    let bot_columns = prefixed(BOT_COLUMNS, "b");
    let sql = format!(
        "SELECT {user_columns}, {bot_columns} FROM bots b JOIN users u ON u.id = b.user_id \
         ORDER BY b.user_id"
    );
    let rows = query(&client, &sql, &[]).await.map_err(db)?;
    let at = users::COLUMNS.split(',').count();
    rows.iter()
        .map(|row| Ok((users::from_row(row)?, bot_from_row(row, at)?)))
        .collect()
}

/// One bot by user id.
pub async fn get(store: &PgStore, user_id: u64) -> Result<Option<BotRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {BOT_COLUMNS} FROM bots WHERE user_id = $1");
    let rows = query(&client, &sql, &[&to_db(user_id)]).await.map_err(db)?;
    rows.first().map(|row| bot_from_row(row, 0)).transpose()
}

/// The user of the bot whose API key hashes to `key_hash`.
pub async fn by_key_hash(store: &PgStore, key_hash: Vec<u8>) -> Result<Option<UserRecord>> {
    let client = store.client().await?;
    let sql = format!(
        "SELECT {} FROM bots b JOIN users u ON u.id = b.user_id WHERE b.key_hash = $1",
        prefixed(users::COLUMNS, "u")
    );
    let rows = query(&client, &sql, &[&key_hash]).await.map_err(db)?;
    rows.first().map(users::from_row).transpose()
}

/// Replaces a bot's key and signing secret and moves its user's token
/// version, in one transaction: the old key is refused from this commit on
/// and the bot's open sockets fail their recheck.
pub async fn rotate_key(
    store: &PgStore,
    user_id: u64,
    key_hash: Vec<u8>,
    signing_secret: String,
) -> Result<BotRecord> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let id = to_db(user_id);
    let sql = format!(
        "UPDATE bots SET key_hash = $2, signing_secret = $3 WHERE user_id = $1 \
         RETURNING {BOT_COLUMNS}"
    );
    let rows = query(&tx, &sql, &[&id, &key_hash, &signing_secret])
        .await
        .map_err(db)?;
    let bot = match rows.first() {
        Some(row) => bot_from_row(row, 0)?,
        None => return Err(Error::NotFound("bot")),
    };
    let sql = format!("UPDATE users SET token_version = {NEXT_TOKEN_VERSION} WHERE id = $1");
    if execute(&tx, &sql, &[&id]).await.map_err(db)? == 0 {
        return Err(Error::NotFound("bot"));
    }
    tx.commit().await.map_err(db)?;
    Ok(bot)
}

/// Changes a bot's outgoing webhook settings.
pub async fn update_webhook(
    store: &PgStore,
    user_id: u64,
    webhook_url: Option<String>,
    all_messages: bool,
) -> Result<BotRecord> {
    let client = store.client().await?;
    let sql = format!(
        "UPDATE bots SET webhook_url = $2, all_messages = $3 WHERE user_id = $1 \
         RETURNING {BOT_COLUMNS}"
    );
    let rows = query(
        &client,
        &sql,
        &[&to_db(user_id), &webhook_url, &all_messages],
    )
    .await
    .map_err(db)?;
    match rows.first() {
        Some(row) => bot_from_row(row, 0),
        None => Err(Error::NotFound("bot")),
    }
}

/// Removes a bot: its key is refused from this commit on and its user is
/// disabled (kept, so its messages keep their author), in one transaction.
pub async fn delete(store: &PgStore, user_id: u64) -> Result<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let id = to_db(user_id);
    if execute(&tx, "DELETE FROM bots WHERE user_id = $1", &[&id])
        .await
        .map_err(db)?
        == 0
    {
        return Err(Error::NotFound("bot"));
    }
    let sql = format!(
        "UPDATE users SET disabled = true, token_version = {NEXT_TOKEN_VERSION} WHERE id = $1"
    );
    execute(&tx, &sql, &[&id]).await.map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Stores a new incoming webhook.
pub async fn create_hook(store: &PgStore, new: NewHook) -> Result<HookRecord> {
    let client = store.client().await?;
    let sql = format!(
        "INSERT INTO hooks (room, topic_id, user_id, token_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {HOOK_COLUMNS}"
    );
    let rows = query(
        &client,
        &sql,
        &[
            &new.room,
            &to_db(new.topic_id),
            &to_db(new.user_id),
            &new.token_hash,
            &to_db(new.created_by),
            &clock::now_ms(),
        ],
    )
    .await
    .map_err(db)?;
    match rows.first() {
        Some(row) => hook_from_row(row),
        None => Err(Error::Store("the new hook was not returned".into())),
    }
}

/// The incoming webhooks of one room's topic, by id.
pub async fn hooks_of_topic(store: &PgStore, topic_id: u64) -> Result<Vec<HookRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE topic_id = $1 ORDER BY id");
    let rows = query(&client, &sql, &[&to_db(topic_id)])
        .await
        .map_err(db)?;
    rows.iter().map(hook_from_row).collect()
}

/// The incoming webhook whose token hashes to `token_hash`.
pub async fn hook_by_token_hash(
    store: &PgStore,
    token_hash: Vec<u8>,
) -> Result<Option<HookRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE token_hash = $1");
    let rows = query(&client, &sql, &[&token_hash]).await.map_err(db)?;
    rows.first().map(hook_from_row).transpose()
}

/// Deletes hook `id` of topic `topic_id`; its token is refused from this
/// commit on. 404 if the room has no such hook.
pub async fn delete_hook(store: &PgStore, topic_id: u64, id: u64) -> Result<()> {
    let client = store.client().await?;
    let removed = execute(
        &client,
        "DELETE FROM hooks WHERE id = $1 AND topic_id = $2",
        &[&to_db(id), &to_db(topic_id)],
    )
    .await
    .map_err(db)?;
    if removed == 0 {
        return Err(Error::NotFound("hook"));
    }
    Ok(())
}

/// Every outgoing webhook event not delivered yet, oldest first.
pub async fn pending_deliveries(store: &PgStore) -> Result<Vec<DeliveryRecord>> {
    let client = store.client().await?;
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries ORDER BY event_id");
    let rows = query(&client, &sql, &[]).await.map_err(db)?;
    rows.iter().map(delivery_from_row).collect()
}

/// Drops an event once delivered or given up on.
pub async fn finish_delivery(store: &PgStore, event_id: u64) -> Result<()> {
    let client = store.client().await?;
    execute(
        &client,
        "DELETE FROM deliveries WHERE event_id = $1",
        &[&to_db(event_id)],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Hands out the next event id, inside the transaction that will queue the
/// event (the raw client error, so a batch can tell a retry from a failure).
pub async fn next_event_id(
    client: &impl GenericClient,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let statement = client
        .prepare_cached("SELECT nextval('deliveries_event_id_seq')")
        .await?;
    let row = client.query_one(&statement, &[]).await?;
    Ok(from_db(row.try_get(0)?))
}

/// Queues `events` (their ids from [`next_event_id`]) in the caller's
/// transaction, so they commit with the message that caused them.
pub async fn enqueue_in(
    client: &impl GenericClient,
    events: &[DeliveryRecord],
) -> std::result::Result<(), tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let id: Vec<i64> = events.iter().map(|d| to_db(d.event_id)).collect();
    let bot: Vec<i64> = events.iter().map(|d| to_db(d.bot_id)).collect();
    let topic: Vec<&str> = events.iter().map(|d| d.topic.as_str()).collect();
    let body: Vec<&str> = events.iter().map(|d| d.body.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|d| d.created_at).collect();
    execute(
        client,
        "INSERT INTO deliveries (event_id, bot_id, topic, body, created_at) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
         $5::bigint[])",
        &[&id, &bot, &topic, &body, &at],
    )
    .await?;
    Ok(())
}
