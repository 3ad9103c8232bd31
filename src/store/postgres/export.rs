//! The export of a PostgreSQL store and the import of an export into an
//! empty PostgreSQL database, in the format every backend shares
//! ([`crate::store::export_format`]), so a file moves between backends.
//!
//! The export reads every table in the format's order inside one
//! repeatable-read, read-only transaction (a consistent snapshot while the
//! server keeps running), page by page through portals, and hands the
//! lines in chunks to whoever writes them. Id counters are the sequences:
//! a counter line says the next id its sequence hands out, and a sequence
//! never used has no line, as a counter never used has none in the
//! embedded store.
//!
//! The import runs in one transaction: it refuses a database that holds
//! any account or history, inserts the rows with their ids (pipelined,
//! one batch of lines of one kind at a time), sets each topic's `last_seq`
//! and moves every sequence past the ids it restored.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use base64::Engine;
use deadpool_postgres::{Object, Transaction};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::convert::{from_db, owner_to_db, to_db};
use super::error::db;
use super::{
    attachments, bots, conversations, describe, history, mail, migrations, pool, rooms, users,
    PgStore,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::export_format::{self, Line, Reader};
use crate::store::records::{ReactionEntry, ReactionsRecord, TopicRecord};

/// Each counter of the format and the sequence behind it, in
/// the order of `export_format::COUNTERS`.
const SEQUENCES: &[(&str, &str)] = &[
    ("next_user_id", "users_id_seq"),
    ("next_topic_id", "topics_id_seq"),
    ("next_message_id", "messages_id_seq"),
    ("next_conversation_id", "conversations_id_seq"),
    ("next_attachment_id", "attachments_id_seq"),
    ("next_hook_id", "hooks_id_seq"),
    ("next_event_id", "deliveries_event_id_seq"),
    ("next_mail_id", "mail_queue_id_seq"),
];

/// The table whose largest id each sequence must stay above.
const SEQUENCE_TABLES: &[(&str, &str, &str)] = &[
    ("users_id_seq", "users", "id"),
    ("topics_id_seq", "topics", "id"),
    ("messages_id_seq", "messages", "id"),
    ("conversations_id_seq", "conversations", "id"),
    ("attachments_id_seq", "attachments", "id"),
    ("hooks_id_seq", "hooks", "id"),
    ("deliveries_event_id_seq", "deliveries", "event_id"),
    ("mail_queue_id_seq", "mail_queue", "id"),
    ("reactions_ord_seq", "reactions", "ord"),
];

/// Export bytes gathered before they are handed to the writer.
const CHUNK_BYTES: usize = 64 * 1024;

/// Rows fetched per round trip (attachments: [`ATTACHMENT_ROWS`]).
const PAGE_ROWS: i32 = 1000;

/// Attachment rows fetched per round trip (each holds an image).
const ATTACHMENT_ROWS: i32 = 16;

/// Writes the export of `store` to `out` (on a blocking thread, as the
/// store's interface asks); gives `out` back.
pub async fn export_into<W>(store: PgStore, out: W) -> Result<W>
where
    W: Write + Send + 'static,
{
    let (chunks, mut received) = mpsc::channel::<Vec<u8>>(4);
    let writer = tokio::task::spawn_blocking(move || -> Result<W> {
        let mut out = out;
        while let Some(chunk) = received.blocking_recv() {
            out.write_all(&chunk)
                .map_err(|e| Error::Internal(format!("cannot write the export: {e}")))?;
        }
        Ok(out)
    });
    let streamed = match store.client().await {
        Ok(client) => stream(client, chunks).await,
        Err(e) => Err(e),
    };
    let written = writer
        .await
        .map_err(|e| Error::Internal(format!("the export writer failed: {e}")))?;
    // A writer that failed made the stream fail too: its error says why.
    let out = written?;
    streamed?;
    Ok(out)
}

/// `confab export` without a running server: connects to `database_url`
/// (migrating its schema as the server would) and writes the export to
/// `out`.
pub async fn export_offline(cfg: &Config, out: &mut dyn Write) -> std::result::Result<(), String> {
    let client = connect(cfg).await?;
    let (chunks, mut received) = mpsc::channel::<Vec<u8>>(4);
    let job = tokio::spawn(stream(client, chunks));
    while let Some(chunk) = received.recv().await {
        if let Err(e) = out.write_all(&chunk) {
            job.abort();
            return Err(format!("cannot write the export: {e}"));
        }
    }
    job.await
        .map_err(|e| format!("the export failed: {e}"))?
        .map_err(|e| e.to_string())
}

/// A connection to `database_url` with the schema brought up to date.
async fn connect(cfg: &Config) -> std::result::Result<Object, String> {
    let pool = pool::connect(&cfg.database_url, 1)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = pool::get(&pool, &cfg.database_url)
        .await
        .map_err(|e| e.to_string())?;
    migrations::apply(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

/// Lines gathered into chunks for the writer.
struct Out {
    buf: Vec<u8>,
    chunks: mpsc::Sender<Vec<u8>>,
}

impl Out {
    async fn line(&mut self, line: &Line) -> Result<()> {
        export_format::push(&mut self.buf, line)?;
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.chunks
            .send(chunk)
            .await
            .map_err(|_| Error::Internal("the export's writer stopped".into()))
    }
}

/// Reads the whole store in one snapshot and sends it as export lines.
async fn stream(mut client: Object, chunks: mpsc::Sender<Vec<u8>>) -> Result<()> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db)?;
    let mut out = Out {
        buf: Vec::with_capacity(CHUNK_BYTES),
        chunks,
    };
    out.line(&export_format::header()).await?;
    // The snapshot starts with this first statement; a sequence is read
    // outside it, but never behind an id the snapshot shows.
    for &(name, sequence) in SEQUENCES {
        let row = tx
            .query_one(
                &format!("SELECT last_value, is_called FROM {sequence}"),
                &[],
            )
            .await
            .map_err(db)?;
        let last: i64 = row.try_get(0).map_err(db)?;
        let called: bool = row.try_get(1).map_err(db)?;
        if called {
            let next = from_db(last) + 1;
            out.line(&Line::Counter {
                name: name.to_owned(),
                next,
            })
            .await?;
        }
    }
    let sql = format!("SELECT {} FROM users ORDER BY id", users::COLUMNS);
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::User(users::from_row(row)?))
    })
    .await?;
    section(
        &tx,
        "SELECT id, name, epoch, created_at FROM topics ORDER BY id",
        PAGE_ROWS,
        &mut out,
        topic_line,
    )
    .await?;
    let sql = format!(
        "SELECT {} FROM rooms ORDER BY name COLLATE \"C\"",
        rooms::COLUMNS
    );
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::Room(rooms::from_row(row)?))
    })
    .await?;
    section(
        &tx,
        "SELECT topic_id, user_id FROM topic_members ORDER BY topic_id, user_id",
        PAGE_ROWS,
        &mut out,
        |row| {
            Ok(Line::Member {
                topic_id: id_at(row, 0)?,
                user_id: id_at(row, 1)?,
            })
        },
    )
    .await?;
    let sql = format!(
        "SELECT {} FROM conversations ORDER BY id",
        conversations::COLUMNS
    );
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::Conversation(conversations::from_row(row, 0)?))
    })
    .await?;
    let sql = format!(
        "SELECT {} FROM messages ORDER BY topic_id, seq",
        history::COLUMNS
    );
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        let stored = history::from_row(row)?;
        Ok(Line::Message {
            topic_id: stored.topic_id,
            seq: stored.seq,
            message: stored.record,
        })
    })
    .await?;
    reactions(&tx, &mut out).await?;
    section(
        &tx,
        "SELECT user_id, topic_id, seq FROM read_positions ORDER BY user_id, topic_id",
        PAGE_ROWS,
        &mut out,
        |row| {
            Ok(Line::Read {
                user_id: id_at(row, 0)?,
                topic_id: id_at(row, 1)?,
                seq: id_at(row, 2)?,
            })
        },
    )
    .await?;
    section(
        &tx,
        "SELECT user_id, ignored_id FROM ignores ORDER BY user_id, ignored_id",
        PAGE_ROWS,
        &mut out,
        |row| {
            Ok(Line::Ignore {
                user_id: id_at(row, 0)?,
                ignored: id_at(row, 1)?,
            })
        },
    )
    .await?;
    let sql = format!(
        "SELECT {}, bytes FROM attachments ORDER BY id",
        attachments::COLUMNS
    );
    let bytes_at = attachments::COLUMNS.split(',').count();
    section(&tx, &sql, ATTACHMENT_ROWS, &mut out, |row| {
        let bytes: Vec<u8> = row.try_get(bytes_at).map_err(db)?;
        Ok(Line::Attachment {
            record: attachments::from_row(row)?,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    })
    .await?;
    section(
        &tx,
        "SELECT jti, expires_at_secs FROM revoked_tokens ORDER BY jti COLLATE \"C\"",
        PAGE_ROWS,
        &mut out,
        |row| {
            Ok(Line::Revoked {
                jti: row.try_get(0).map_err(db)?,
                expires_at: id_at(row, 1)?,
            })
        },
    )
    .await?;
    section(
        &tx,
        "SELECT user_id, topic_id, seq FROM unread_mentions ORDER BY user_id, topic_id, seq",
        PAGE_ROWS,
        &mut out,
        |row| {
            Ok(Line::Mention {
                user_id: id_at(row, 0)?,
                topic_id: id_at(row, 1)?,
                seq: id_at(row, 2)?,
            })
        },
    )
    .await?;
    let sql = format!("SELECT {} FROM bots ORDER BY user_id", bots::BOT_COLUMNS);
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::Bot(bots::bot_from_row(row, 0)?.into()))
    })
    .await?;
    let sql = format!("SELECT {} FROM hooks ORDER BY id", bots::HOOK_COLUMNS);
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::Hook(bots::hook_from_row(row)?.into()))
    })
    .await?;
    let sql = format!(
        "SELECT {} FROM deliveries ORDER BY event_id",
        bots::DELIVERY_COLUMNS
    );
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        Ok(Line::Delivery(bots::delivery_from_row(row)?))
    })
    .await?;
    let sql = format!(
        "SELECT {} FROM password_links ORDER BY hash",
        mail::LINK_COLUMNS
    );
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        let (hash, link) = mail::link_from_row(row)?;
        Ok(Line::PasswordLink { hash, link })
    })
    .await?;
    let sql = format!("SELECT {} FROM mail_queue ORDER BY id", mail::MAIL_COLUMNS);
    section(&tx, &sql, PAGE_ROWS, &mut out, |row| {
        let (id, mail) = mail::mail_from_row(row)?;
        Ok(Line::Mail { id, mail })
    })
    .await?;
    tx.commit().await.map_err(db)?;
    out.flush().await
}

/// Sends one line per row of `sql`, fetched `rows` at a time.
async fn section(
    tx: &Transaction<'_>,
    sql: &str,
    rows: i32,
    out: &mut Out,
    to_line: impl Fn(&Row) -> Result<Line>,
) -> Result<()> {
    let statement = tx.prepare(sql).await.map_err(db)?;
    let portal = tx.bind(&statement, &[]).await.map_err(db)?;
    loop {
        let page = tx.query_portal(&portal, rows).await.map_err(db)?;
        for row in &page {
            out.line(&to_line(row)?).await?;
        }
        if page.len() < usize::try_from(rows).unwrap_or(0) {
            return Ok(());
        }
    }
}

/// One `reactions` line per message that has any: emoji in the order they
/// were first used, users in the order they reacted.
async fn reactions(tx: &Transaction<'_>, out: &mut Out) -> Result<()> {
    let statement = tx
        .prepare(
            "SELECT topic_id, seq, emoji, user_id FROM reactions \
             ORDER BY topic_id, seq, emoji_ord, ord",
        )
        .await
        .map_err(db)?;
    let portal = tx.bind(&statement, &[]).await.map_err(db)?;
    let mut pending: Option<(u64, u64, ReactionsRecord)> = None;
    loop {
        let page = tx.query_portal(&portal, PAGE_ROWS).await.map_err(db)?;
        for row in &page {
            let key = (id_at(row, 0)?, id_at(row, 1)?);
            let emoji: String = row.try_get(2).map_err(db)?;
            let user = id_at(row, 3)?;
            if let Some((topic_id, seq, reactions)) = pending.take_if(|p| (p.0, p.1) != key) {
                out.line(&Line::Reactions {
                    topic_id,
                    seq,
                    reactions,
                })
                .await?;
            }
            let (_, _, record) = pending.get_or_insert_with(|| (key.0, key.1, Default::default()));
            match record.entries.last_mut() {
                Some(entry) if entry.emoji == emoji => entry.users.push(user),
                _ => record.entries.push(ReactionEntry {
                    emoji,
                    users: vec![user],
                }),
            }
        }
        if page.len() < usize::try_from(PAGE_ROWS).unwrap_or(0) {
            break;
        }
    }
    if let Some((topic_id, seq, reactions)) = pending {
        out.line(&Line::Reactions {
            topic_id,
            seq,
            reactions,
        })
        .await?;
    }
    Ok(())
}

/// A `bigint` column as a u64.
fn id_at(row: &Row, index: usize) -> Result<u64> {
    Ok(from_db(row.try_get(index).map_err(db)?))
}

fn topic_line(row: &Row) -> Result<Line> {
    Ok(Line::Topic {
        id: id_at(row, 0)?,
        topic: TopicRecord {
            name: row.try_get(1).map_err(db)?,
            epoch: row.try_get(2).map_err(db)?,
            created_at: row.try_get(3).map_err(db)?,
        },
    })
}

// ---------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------

/// Lines sent to the database together (fewer when they carry images).
const BATCH_LINES: usize = 500;

/// Attachment bytes sent to the database together.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Lines parsed ahead of the database (few: a line may hold an image).
const READ_AHEAD: usize = 16;

/// One bind parameter, owned.
type Value = Box<dyn ToSql + Sync + Send>;

/// What one line inserts: its line number, the statement and its values.
struct Insert {
    number: usize,
    sql: &'static str,
    values: Vec<Value>,
}

/// `confab import FILE` with `database_url` set: loads `input` into the
/// database, which must hold no data yet. Returns the number of lines
/// loaded and where they went.
pub async fn import<R>(cfg: &Config, input: R) -> std::result::Result<(usize, String), String>
where
    R: BufRead + Send + 'static,
{
    let location = pool::location(&cfg.database_url).map_err(|e| e.to_string())?;
    let mut client = connect(cfg).await?;
    // Parsed on a blocking thread, loaded here as the lines arrive.
    let (lines, mut received) = mpsc::channel(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for item in Reader::new(input) {
            if lines.blocking_send(item).is_err() {
                return;
            }
        }
    });
    let tx = client.transaction().await.map_err(|e| describe(&e))?;
    refuse_unless_empty(&tx, &location).await?;
    let mut loader = Loader::default();
    let mut count = 0;
    while let Some(item) = received.recv().await {
        let (number, line) = item?;
        count += 1;
        loader.add(number, line)?;
        if loader.full() {
            loader.flush(&tx).await?;
        }
    }
    loader.flush(&tx).await?;
    let _ = reader.await;
    finish(&tx, &loader.counters).await?;
    tx.commit()
        .await
        .map_err(|e| format!("cannot commit the import: {}", describe(&e)))?;
    Ok((count, location))
}

/// Refuses a database that holds accounts, histories or queued work.
async fn refuse_unless_empty(
    tx: &Transaction<'_>,
    location: &str,
) -> std::result::Result<(), String> {
    // Nobody writes while the import looks and loads (readers may read).
    tx.batch_execute("LOCK TABLE users, topics IN EXCLUSIVE MODE")
        .await
        .map_err(|e| describe(&e))?;
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM topics), \
             EXISTS (SELECT 1 FROM revoked_tokens) OR EXISTS (SELECT 1 FROM deliveries) \
             OR EXISTS (SELECT 1 FROM mail_queue)",
            &[],
        )
        .await
        .map_err(|e| describe(&e))?;
    let users: i64 = row.try_get(0).map_err(|e| describe(&e))?;
    let topics: i64 = row.try_get(1).map_err(|e| describe(&e))?;
    let other: bool = row.try_get(2).map_err(|e| describe(&e))?;
    if users > 0 || topics > 0 || other {
        return Err(format!(
            "the database {location} already holds data (accounts: {users}, rooms and \
             conversations: {topics}): import only into an empty database, made with createdb \
             and never served from (a server creates the lobby when it starts)"
        ));
    }
    Ok(())
}

/// The lines of the batch being gathered, and what the import learns on
/// the way.
#[derive(Default)]
struct Loader {
    batch: Vec<Insert>,
    bytes: usize,
    /// The counter lines: name → next id.
    counters: HashMap<String, u64>,
    /// The last `ord` given to a reaction.
    ord: i64,
}

impl Loader {
    fn full(&self) -> bool {
        self.batch.len() >= BATCH_LINES || self.bytes >= BATCH_BYTES
    }

    /// Turns `line` into its insert (or notes it).
    fn add(&mut self, number: usize, line: Line) -> std::result::Result<(), String> {
        let bad = |reason: String| format!("line {number}: {reason}");
        let (sql, values): (&'static str, Vec<Value>) = match line {
            Line::Header { .. } => return Ok(()),
            Line::Counter { name, next } => {
                self.counters.insert(name, next);
                return Ok(());
            }
            Line::User(u) => (
                "INSERT INTO users (id, username, display_name, email, password_hash, admin, \
                 disabled, token_version, created_at, bot) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                vec![
                    Box::new(to_db(u.id)),
                    Box::new(u.username),
                    Box::new(u.display_name),
                    Box::new(u.email),
                    Box::new(u.password_hash),
                    Box::new(u.admin),
                    Box::new(u.disabled),
                    Box::new(i64::from(u.token_version)),
                    Box::new(u.created_at),
                    Box::new(u.bot),
                ],
            ),
            Line::Topic { id, topic } => {
                // The reader let only these two kinds through.
                let kind = if topic.name.starts_with("dm:") {
                    "dm"
                } else {
                    "room"
                };
                (
                    "INSERT INTO topics (id, kind, name, epoch, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    vec![
                        Box::new(to_db(id)),
                        Box::new(kind),
                        Box::new(topic.name),
                        Box::new(topic.epoch),
                        Box::new(topic.created_at),
                    ],
                )
            }
            Line::Room(r) => (
                "INSERT INTO rooms (name, topic_id, private, description, owner_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    Box::new(r.name),
                    Box::new(to_db(r.topic_id)),
                    Box::new(r.private),
                    Box::new(r.description),
                    Box::new(owner_to_db(r.owner)),
                    Box::new(r.created_at),
                ],
            ),
            Line::Member { topic_id, user_id } => (
                "INSERT INTO topic_members (topic_id, user_id) VALUES ($1, $2)",
                vec![Box::new(to_db(topic_id)), Box::new(to_db(user_id))],
            ),
            Line::Conversation(c) => (
                "INSERT INTO conversations (id, user_low, user_high, topic_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Box::new(to_db(c.id)),
                    Box::new(to_db(c.users.0)),
                    Box::new(to_db(c.users.1)),
                    Box::new(to_db(c.topic_id)),
                    Box::new(c.created_at),
                ],
            ),
            Line::Message {
                topic_id,
                seq,
                message: m,
            } => (
                "INSERT INTO messages (topic_id, seq, id, author_id, body, client_id, \
                 inserted_at, edited_at, deleted, mentions) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                vec![
                    Box::new(to_db(topic_id)),
                    Box::new(to_db(seq)),
                    Box::new(to_db(m.id)),
                    Box::new(to_db(m.user_id)),
                    Box::new(m.body),
                    Box::new(m.client_id),
                    Box::new(m.inserted_at),
                    Box::new(m.edited_at),
                    Box::new(m.deleted),
                    Box::new(m.mentions.into_iter().map(to_db).collect::<Vec<i64>>()),
                ],
            ),
            Line::Reactions {
                topic_id,
                seq,
                reactions,
            } => {
                let mut emoji = Vec::new();
                let mut user = Vec::new();
                let mut ord = Vec::new();
                let mut emoji_ord = Vec::new();
                for entry in reactions.entries {
                    let first = self.ord + 1;
                    for id in entry.users {
                        self.ord += 1;
                        emoji.push(entry.emoji.clone());
                        user.push(to_db(id));
                        ord.push(self.ord);
                        emoji_ord.push(first);
                    }
                }
                (
                    "INSERT INTO reactions (topic_id, seq, emoji, user_id, ord, emoji_ord) \
                     SELECT $1, $2, e, u, o, eo \
                     FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                     AS v(e, u, o, eo)",
                    vec![
                        Box::new(to_db(topic_id)),
                        Box::new(to_db(seq)),
                        Box::new(emoji),
                        Box::new(user),
                        Box::new(ord),
                        Box::new(emoji_ord),
                    ],
                )
            }
            Line::Read {
                user_id,
                topic_id,
                seq,
            } => (
                "INSERT INTO read_positions (user_id, topic_id, seq) VALUES ($1, $2, $3)",
                vec![
                    Box::new(to_db(user_id)),
                    Box::new(to_db(topic_id)),
                    Box::new(to_db(seq)),
                ],
            ),
            Line::Ignore { user_id, ignored } => (
                "INSERT INTO ignores (user_id, ignored_id) VALUES ($1, $2)",
                vec![Box::new(to_db(user_id)), Box::new(to_db(ignored))],
            ),
            Line::Revoked { jti, expires_at } => (
                "INSERT INTO revoked_tokens (jti, expires_at_secs) VALUES ($1, $2)",
                vec![Box::new(jti), Box::new(to_db(expires_at))],
            ),
            Line::Attachment { record: a, data } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.as_bytes())
                    .map_err(|_| bad("attachment data is not base64".into()))?;
                self.bytes += bytes.len();
                (
                    "INSERT INTO attachments (id, topic_id, uploader_id, content_type, size, \
                     bytes, created_at, message_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    vec![
                        Box::new(to_db(a.id)),
                        Box::new(to_db(a.topic_id)),
                        Box::new(to_db(a.user_id)),
                        Box::new(a.content_type),
                        Box::new(to_db(a.size)),
                        Box::new(bytes),
                        Box::new(a.created_at),
                        Box::new(a.linked_seq.map(to_db)),
                    ],
                )
            }
            Line::Mention {
                user_id,
                topic_id,
                seq,
            } => (
                "INSERT INTO unread_mentions (user_id, topic_id, seq) VALUES ($1, $2, $3)",
                vec![
                    Box::new(to_db(user_id)),
                    Box::new(to_db(topic_id)),
                    Box::new(to_db(seq)),
                ],
            ),
            Line::Bot(b) => (
                "INSERT INTO bots (user_id, key_hash, signing_secret, webhook_url, \
                 all_messages, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    Box::new(to_db(b.user_id)),
                    Box::new(b.key_hash),
                    Box::new(b.signing_secret),
                    Box::new(b.webhook_url),
                    Box::new(b.all_messages),
                    Box::new(to_db(b.created_by)),
                    Box::new(b.created_at),
                ],
            ),
            Line::Hook(h) => (
                "INSERT INTO hooks (id, room, topic_id, user_id, token_hash, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    Box::new(to_db(h.id)),
                    Box::new(h.room),
                    Box::new(to_db(h.topic_id)),
                    Box::new(to_db(h.user_id)),
                    Box::new(h.token_hash),
                    Box::new(to_db(h.created_by)),
                    Box::new(h.created_at),
                ],
            ),
            Line::Delivery(d) => (
                "INSERT INTO deliveries (event_id, bot_id, topic, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Box::new(to_db(d.event_id)),
                    Box::new(to_db(d.bot_id)),
                    Box::new(d.topic),
                    Box::new(d.body),
                    Box::new(d.created_at),
                ],
            ),
            Line::PasswordLink { hash, link } => (
                "INSERT INTO password_links (hash, user_id, purpose, token_version, \
                 expires_at) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Box::new(hash),
                    Box::new(to_db(link.user_id)),
                    Box::new(mail::purpose_to_db(link.purpose)),
                    Box::new(i64::from(link.token_version)),
                    Box::new(link.expires_at),
                ],
            ),
            Line::Mail { id, mail: m } => (
                "INSERT INTO mail_queue (id, recipient, subject, body, created_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    Box::new(to_db(id)),
                    Box::new(m.to),
                    Box::new(m.subject),
                    Box::new(m.body),
                    Box::new(m.created_at),
                    Box::new(mail::attempts_to_db(m.attempts)),
                    Box::new(m.next_attempt_at),
                ],
            ),
        };
        self.batch.push(Insert {
            number,
            sql,
            values,
        });
        Ok(())
    }

    /// Sends the batch, pipelined; on failure names the first line the
    /// database refused.
    async fn flush(&mut self, tx: &Transaction<'_>) -> std::result::Result<(), String> {
        let batch = std::mem::take(&mut self.batch);
        self.bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        let mut statements = HashMap::new();
        for insert in &batch {
            if !statements.contains_key(insert.sql) {
                let statement = tx
                    .prepare_cached(insert.sql)
                    .await
                    .map_err(|e| describe(&e))?;
                statements.insert(insert.sql, statement);
            }
        }
        let runs = batch.iter().map(|insert| {
            let statement = &statements[insert.sql];
            let params: Vec<&(dyn ToSql + Sync)> = insert
                .values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            async move {
                tx.execute(statement, &params)
                    .await
                    .map_err(|e| (insert.number, e))
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut failures: Vec<(usize, tokio_postgres::Error)> =
            results.into_iter().filter_map(|r| r.err()).collect();
        // After the first refusal the others only say the transaction
        // is aborted.
        failures.sort_by_key(|(number, e)| {
            (
                e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
                *number,
            )
        });
        match failures.into_iter().next() {
            Some((number, e)) => Err(format!("line {number}: {}", describe(&e))),
            None => Ok(()),
        }
    }
}

/// Sets each topic's `last_seq` from its messages and moves every
/// sequence to the counter of the file (never behind an id it restored).
async fn finish(
    tx: &Transaction<'_>,
    counters: &HashMap<String, u64>,
) -> std::result::Result<(), String> {
    tx.batch_execute(
        "UPDATE topics SET last_seq = m.last FROM \
         (SELECT topic_id, max(seq) AS last FROM messages GROUP BY topic_id) AS m \
         WHERE topics.id = m.topic_id",
    )
    .await
    .map_err(|e| describe(&e))?;
    for &(sequence, table, column) in SEQUENCE_TABLES {
        let counter = SEQUENCES
            .iter()
            .find(|(_, s)| *s == sequence)
            .and_then(|(name, _)| counters.get(*name))
            .map(|&next| to_db(next.saturating_sub(1)));
        let row = tx
            .query_one(&format!("SELECT max({column}) FROM {table}"), &[])
            .await
            .map_err(|e| describe(&e))?;
        let largest: Option<i64> = row.try_get(0).map_err(|e| describe(&e))?;
        // The last id handed out: the file's counter, or the largest id.
        let last = match (counter, largest) {
            (Some(c), Some(l)) => c.max(l),
            (Some(c), None) => c,
            (None, Some(l)) => l,
            (None, None) => 0,
        };
        if last > 0 {
            tx.execute(
                "SELECT setval($1::text::regclass, $2, true)",
                &[&sequence, &last],
            )
            .await
            .map_err(|e| describe(&e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::export_format::COUNTERS;
    use crate::store::records::LinkPurpose;

    #[test]
    fn every_counter_has_its_sequence_in_order() {
        let names: Vec<&str> = SEQUENCES.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, COUNTERS);
        for (_, sequence) in SEQUENCES {
            assert!(
                SEQUENCE_TABLES.iter().any(|(s, _, _)| s == sequence),
                "{sequence} has a table"
            );
        }
    }

    #[test]
    fn link_purposes_are_stored_as_the_schema_allows() {
        assert_eq!(mail::purpose_to_db(LinkPurpose::Welcome), "welcome");
        assert_eq!(mail::purpose_to_db(LinkPurpose::Reset), "reset");
    }
}
