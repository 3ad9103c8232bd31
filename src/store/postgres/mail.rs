//! One-time password links (table `password_links`, keyed by the SHA-256
//! of their token) and the outgoing mail queue (`mail_queue`).
//!
//! A link is void once used, once expired, and once its user's token
//! version has moved on (any password change). Redeeming locks the link's
//! row, so of two redemptions at once the second finds it gone: a link
//! works once. Issuing a link queues the mail that carries it in the same
//! transaction.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::convert::{from_db, prefixed, to_db, Param};
use super::error::db;
use super::{users, PgStore};
use crate::error::{Error, Result};
use crate::store::ops::{LinkState, QueueStatus, Redeemed};
use crate::store::records::{LinkPurpose, MailRecord, PasswordLinkRecord};

/// The columns [`mail_from_row`] reads, in order (the id first).
pub const MAIL_COLUMNS: &str =
    "id, recipient, subject, body, created_at, attempts, next_attempt_at";

/// The columns [`link_from_row`] reads, in order (the hash first).
pub const LINK_COLUMNS: &str = "hash, user_id, purpose, token_version, expires_at";

/// A link's purpose as stored.
pub fn purpose_to_db(purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::Welcome => "welcome",
        LinkPurpose::Reset => "reset",
    }
}

fn purpose_from_db(text: &str) -> Result<LinkPurpose> {
    match text {
        "welcome" => Ok(LinkPurpose::Welcome),
        "reset" => Ok(LinkPurpose::Reset),
        other => Err(Error::Store(format!("unknown link purpose {other:?}"))),
    }
}

/// A `password_links` row selected with [`LINK_COLUMNS`]: its hash and link.
pub fn link_from_row(row: &Row) -> Result<(Vec<u8>, PasswordLinkRecord)> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("password_links row: {e}"));
    let purpose: String = row.try_get(2).map_err(column)?;
    let token_version: i64 = row.try_get(3).map_err(column)?;
    Ok((
        row.try_get(0).map_err(column)?,
        PasswordLinkRecord {
            user_id: from_db(row.try_get(1).map_err(column)?),
            purpose: purpose_from_db(&purpose)?,
            token_version: u32::try_from(token_version).unwrap_or(u32::MAX),
            expires_at: row.try_get(4).map_err(column)?,
        },
    ))
}

/// A `mail_queue` row selected with [`MAIL_COLUMNS`]: its id and mail.
pub fn mail_from_row(row: &Row) -> Result<(u64, MailRecord)> {
    let column = |e: tokio_postgres::Error| Error::Store(format!("mail_queue row: {e}"));
    let attempts: i32 = row.try_get(5).map_err(column)?;
    Ok((
        from_db(row.try_get(0).map_err(column)?),
        MailRecord {
            to: row.try_get(1).map_err(column)?,
            subject: row.try_get(2).map_err(column)?,
            body: row.try_get(3).map_err(column)?,
            created_at: row.try_get(4).map_err(column)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            next_attempt_at: row.try_get(6).map_err(column)?,
        },
    ))
}

/// A u32 attempt count as the `integer` column holds it.
pub fn attempts_to_db(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// Runs `sql` (prepared once per connection) with `params`.
async fn query(client: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(db)?;
    client.query(&statement, params).await.map_err(db)
}

/// Executes `sql` (prepared once per connection) with `params`.
async fn execute(client: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<u64> {
    let statement = client.prepare_cached(sql).await.map_err(db)?;
    client.execute(&statement, params).await.map_err(db)
}

/// Adds `mail` to the queue on `client` (a transaction or not); its id.
async fn enqueue_on(client: &impl GenericClient, mail: &MailRecord) -> Result<u64> {
    let rows = query(
        client,
        "INSERT INTO mail_queue (recipient, subject, body, created_at, attempts, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            &mail.to,
            &mail.subject,
            &mail.body,
            &mail.created_at,
            &attempts_to_db(mail.attempts),
            &mail.next_attempt_at,
        ],
    )
    .await?;
    match rows.first() {
        Some(row) => Ok(from_db(row.try_get(0).map_err(db)?)),
        None => Err(Error::Store("the queued mail's id was not returned".into())),
    }
}

/// Stores a link under `hash` and queues `mail` (which carries it) in one
/// transaction; returns the mail's id.
pub async fn issue_password_link(
    store: &PgStore,
    hash: [u8; 32],
    link: PasswordLinkRecord,
    mail: MailRecord,
) -> Result<u64> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    execute(
        &tx,
        "INSERT INTO password_links (hash, user_id, purpose, token_version, expires_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (hash) DO UPDATE SET user_id = EXCLUDED.user_id, \
         purpose = EXCLUDED.purpose, token_version = EXCLUDED.token_version, \
         expires_at = EXCLUDED.expires_at",
        &[
            &&hash[..],
            &to_db(link.user_id),
            &purpose_to_db(link.purpose),
            &i64::from(link.token_version),
            &link.expires_at,
        ],
    )
    .await?;
    let id = enqueue_on(&tx, &mail).await?;
    tx.commit().await.map_err(db)?;
    Ok(id)
}

/// What a link is worth given its user's token version (`None`: no user).
fn judge(link: &PasswordLinkRecord, user_version: Option<u32>, now_ms: i64) -> LinkState {
    if user_version != Some(link.token_version) {
        LinkState::Unknown
    } else if link.expires_at <= now_ms {
        LinkState::Expired
    } else {
        LinkState::Usable
    }
}

/// Whether the link under `hash` could be redeemed at `now_ms`.
pub async fn password_link_state(
    store: &PgStore,
    hash: [u8; 32],
    now_ms: i64,
) -> Result<LinkState> {
    let client = store.client().await?;
    let sql = format!(
        "SELECT {}, u.token_version FROM password_links l \
         LEFT JOIN users u ON u.id = l.user_id WHERE l.hash = $1",
        prefixed(LINK_COLUMNS, "l")
    );
    let rows = query(&client, &sql, &[&&hash[..]]).await?;
    let Some(row) = rows.first() else {
        return Ok(LinkState::Unknown);
    };
    let (_, link) = link_from_row(row)?;
    let version: Option<i64> = row.try_get(5).map_err(db)?;
    let version = version.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    Ok(judge(&link, version, now_ms))
}

/// Uses the link under `hash` to set `password_hash`, bumping the user's
/// token version (which voids their tokens and other links). The link's
/// row is locked for the transaction, so it can be used only once.
pub async fn redeem_password_link(
    store: &PgStore,
    hash: [u8; 32],
    password_hash: String,
    now_ms: i64,
) -> Result<Redeemed> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let sql = format!("SELECT {LINK_COLUMNS} FROM password_links WHERE hash = $1 FOR UPDATE");
    let rows = query(&tx, &sql, &[&&hash[..]]).await?;
    let Some(row) = rows.first() else {
        return Ok(Redeemed::Unknown);
    };
    let (_, link) = link_from_row(row)?;
    let user_id = to_db(link.user_id);
    let sql = format!(
        "SELECT {} FROM users WHERE id = $1 FOR UPDATE",
        users::COLUMNS
    );
    let rows = query(&tx, &sql, &[&user_id]).await?;
    let user = rows.first().map(users::from_row).transpose()?;
    let state = judge(&link, user.as_ref().map(|u| u.token_version), now_ms);
    let outcome = match (state, user) {
        // Nothing changes: the link stays for when the account is enabled.
        (LinkState::Usable, Some(user)) if user.disabled => return Ok(Redeemed::Disabled),
        (LinkState::Usable, Some(_)) => {
            let sql = format!(
                "UPDATE users SET password_hash = $2, \
                 token_version = (token_version + 1) % 4294967296 \
                 WHERE id = $1 RETURNING {}",
                users::COLUMNS
            );
            let rows = query(&tx, &sql, &[&user_id, &password_hash]).await?;
            match rows.first() {
                Some(row) => Redeemed::Done(users::from_row(row)?),
                None => Redeemed::Unknown,
            }
        }
        (LinkState::Expired, _) => Redeemed::Expired,
        _ => Redeemed::Unknown,
    };
    execute(
        &tx,
        "DELETE FROM password_links WHERE hash = $1",
        &[&&hash[..]],
    )
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(outcome)
}

/// Drops the links expired by `now_ms`; returns how many.
pub async fn purge_expired_password_links(store: &PgStore, now_ms: i64) -> Result<usize> {
    let client = store.client().await?;
    let removed = execute(
        &client,
        "DELETE FROM password_links WHERE expires_at <= $1",
        &[&now_ms],
    )
    .await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// Adds a mail to the queue; returns its id.
pub async fn enqueue(store: &PgStore, mail: MailRecord) -> Result<u64> {
    let client = store.client().await?;
    enqueue_on(&client, &mail).await
}

/// How long a mail taken from the queue is left to the node that took it:
/// several nodes of a cluster share the queue, and a mail is sent by one
/// of them; if that node dies mid-send, another takes the mail after this.
const CLAIM_MS: i64 = 5 * 60 * 1000;

/// Up to `limit` queued mails due by `now_ms`, oldest (lowest id) first,
/// claimed for this node: their next attempt moves [`CLAIM_MS`] ahead (the
/// sender then removes each or records its failure), and rows another
/// node is claiming right now are skipped.
pub async fn due(store: &PgStore, now_ms: i64, limit: usize) -> Result<Vec<(u64, MailRecord)>> {
    let client = store.client().await?;
    let sql = format!(
        "UPDATE mail_queue SET next_attempt_at = $3 WHERE id IN ( \
             SELECT id FROM mail_queue WHERE next_attempt_at <= $1 \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING {MAIL_COLUMNS}"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let claimed_until = now_ms.saturating_add(CLAIM_MS);
    let rows = query(&client, &sql, &[&now_ms, &limit, &claimed_until]).await?;
    let mut due: Vec<(u64, MailRecord)> = rows.iter().map(mail_from_row).collect::<Result<_>>()?;
    due.sort_by_key(|(id, _)| *id);
    Ok(due)
}

/// Removes a mail from the queue (sent, or given up).
pub async fn remove(store: &PgStore, id: u64) -> Result<()> {
    let client = store.client().await?;
    execute(
        &client,
        "DELETE FROM mail_queue WHERE id = $1",
        &[&to_db(id)],
    )
    .await?;
    Ok(())
}

/// Records a failed attempt: `attempts` so far, next try at
/// `next_attempt_at` (nothing if the mail is gone).
pub async fn attempt_failed(
    store: &PgStore,
    id: u64,
    attempts: u32,
    next_attempt_at: i64,
) -> Result<()> {
    let client = store.client().await?;
    execute(
        &client,
        "UPDATE mail_queue SET attempts = $2, next_attempt_at = $3 WHERE id = $1",
        &[&to_db(id), &attempts_to_db(attempts), &next_attempt_at],
    )
    .await?;
    Ok(())
}

/// How many mails wait and when the next one is due.
pub async fn queue_status(store: &PgStore) -> Result<QueueStatus> {
    let client = store.client().await?;
    let rows = query(
        &client,
        "SELECT count(*), min(next_attempt_at) FROM mail_queue",
        &[],
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(QueueStatus::default());
    };
    let queued: i64 = row.try_get(0).map_err(db)?;
    Ok(QueueStatus {
        queued: usize::try_from(queued).unwrap_or(0),
        next_attempt_at: row.try_get(1).map_err(db)?,
    })
}
