//! The embedded store's export and import in the shared format
//! ([`crate::store::export_format`]): the export reads every table in key
//! order inside ONE read transaction (a consistent snapshot); the import
//! loads a file into a new store in one write transaction.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    WriteTransaction,
};

use super::codec;
use super::tables::*;
use crate::error::{Error, Result};
use crate::store::export_format::{self, emit, Line, Reader, COUNTERS};
use crate::store::records::{
    BotRecord, DeliveryRecord, HookRecord, MailRecord, MessageRecord, PasswordLinkRecord,
};

/// Writes every record visible in `tx` to `out`.
pub fn export(tx: &ReadTransaction, out: &mut dyn Write) -> Result<()> {
    emit(out, &export_format::header())?;
    let meta = tx.open_table(META)?;
    for name in COUNTERS {
        if let Some(value) = meta.get(*name)? {
            let bytes = value.value();
            let mut buf = [0u8; 8];
            let n = bytes.len().min(8);
            buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
            emit(
                out,
                &Line::Counter {
                    name: name.to_string(),
                    next: u64::from_be_bytes(buf),
                },
            )?;
        }
    }
    for entry in tx.open_table(USERS)?.iter()? {
        emit(out, &Line::User(codec::decode(entry?.1.value())?))?;
    }
    for entry in tx.open_table(TOPICS)?.iter()? {
        let (id, value) = entry?;
        emit(
            out,
            &Line::Topic {
                id: id.value(),
                topic: codec::decode(value.value())?,
            },
        )?;
    }
    for entry in tx.open_table(ROOMS)?.iter()? {
        emit(out, &Line::Room(codec::decode(entry?.1.value())?))?;
    }
    for entry in tx.open_multimap_table(TOPIC_MEMBERS)?.iter()? {
        let (topic, users) = entry?;
        for user in users {
            emit(
                out,
                &Line::Member {
                    topic_id: topic.value(),
                    user_id: user?.value(),
                },
            )?;
        }
    }
    for entry in tx.open_table(CONVERSATIONS)?.iter()? {
        emit(out, &Line::Conversation(codec::decode(entry?.1.value())?))?;
    }
    for entry in tx.open_table(MESSAGES)?.iter()? {
        let (key, value) = entry?;
        let (topic_id, seq) = key.value();
        emit(
            out,
            &Line::Message {
                topic_id,
                seq,
                message: codec::decode(value.value())?,
            },
        )?;
    }
    for entry in tx.open_table(REACTIONS)?.iter()? {
        let (key, value) = entry?;
        let (topic_id, seq) = key.value();
        emit(
            out,
            &Line::Reactions {
                topic_id,
                seq,
                reactions: codec::decode(value.value())?,
            },
        )?;
    }
    for entry in tx.open_table(READ_POSITIONS)?.iter()? {
        let (key, seq) = entry?;
        let (user_id, topic_id) = key.value();
        emit(
            out,
            &Line::Read {
                user_id,
                topic_id,
                seq: seq.value(),
            },
        )?;
    }
    for entry in tx.open_multimap_table(USER_IGNORES)?.iter()? {
        let (user, ignored) = entry?;
        for other in ignored {
            emit(
                out,
                &Line::Ignore {
                    user_id: user.value(),
                    ignored: other?.value(),
                },
            )?;
        }
    }
    let bytes_table = tx.open_table(ATTACHMENT_BYTES)?;
    for entry in tx.open_table(ATTACHMENTS)?.iter()? {
        let (id, value) = entry?;
        let data = bytes_table
            .get(id.value())?
            .map(|v| base64::engine::general_purpose::STANDARD.encode(v.value()))
            .unwrap_or_default();
        emit(
            out,
            &Line::Attachment {
                record: codec::decode(value.value())?,
                data,
            },
        )?;
    }
    for entry in tx.open_table(REVOKED_JTI_EXPIRY)?.iter()? {
        let (jti, expires_at) = entry?;
        emit(
            out,
            &Line::Revoked {
                jti: jti.value().to_string(),
                expires_at: expires_at.value(),
            },
        )?;
    }
    export_integrations(tx, out)
}

/// The sections after `revoked`: unread mentions, bots, hooks, deliveries,
/// password links and queued mail.
fn export_integrations(tx: &ReadTransaction, out: &mut dyn Write) -> Result<()> {
    for entry in tx.open_table(UNREAD_MENTIONS)?.iter()? {
        let (key, _) = entry?;
        let (user_id, topic_id, seq) = key.value();
        emit(
            out,
            &Line::Mention {
                user_id,
                topic_id,
                seq,
            },
        )?;
    }
    for entry in tx.open_table(BOTS)?.iter()? {
        let bot: BotRecord = codec::decode(entry?.1.value())?;
        emit(out, &Line::Bot(bot.into()))?;
    }
    for entry in tx.open_table(HOOKS)?.iter()? {
        let hook: HookRecord = codec::decode(entry?.1.value())?;
        emit(out, &Line::Hook(hook.into()))?;
    }
    for entry in tx.open_table(DELIVERIES)?.iter()? {
        let delivery: DeliveryRecord = codec::decode(entry?.1.value())?;
        emit(out, &Line::Delivery(delivery))?;
    }
    for entry in tx.open_table(PASSWORD_LINKS)?.iter()? {
        let (hash, value) = entry?;
        emit(
            out,
            &Line::PasswordLink {
                hash: hash.value().to_vec(),
                link: codec::decode::<PasswordLinkRecord>(value.value())?,
            },
        )?;
    }
    for entry in tx.open_table(MAIL_QUEUE)?.iter()? {
        let (id, value) = entry?;
        emit(
            out,
            &Line::Mail {
                id: id.value(),
                mail: codec::decode::<MailRecord>(value.value())?,
            },
        )?;
    }
    Ok(())
}

/// Exports the store at `data_dir` (the server must be stopped; a running
/// one exports through its admin socket).
pub fn export_offline(data_dir: &Path, out: &mut dyn Write) -> std::result::Result<(), String> {
    let path = super::store_file(data_dir);
    if !path.exists() {
        return Err(format!("no store at {}", path.display()));
    }
    let db = Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            crate::store::OpenError::Locked(data_dir.to_path_buf()).to_string()
        }
        other => format!("cannot open {}: {other}", path.display()),
    })?;
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    export(&tx, out).map_err(|e| e.to_string())
}

/// Loads an export into a NEW store at `<data_dir>/confab.redb` (refused if
/// one exists). Returns the number of records loaded.
pub fn import(data_dir: &Path, input: impl BufRead) -> std::result::Result<usize, String> {
    let path = super::store_file(data_dir);
    if path.exists() {
        return Err(format!(
            "{} already exists: import only into an empty data directory",
            path.display()
        ));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let db =
        Database::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let result = (|| {
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        create_all(&tx).map_err(|e| e.to_string())?;
        let count = load(&tx, input)?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(count)
    })();
    if result.is_err() {
        drop(db);
        let _ = std::fs::remove_file(&path);
    }
    result
}

fn load(tx: &WriteTransaction, input: impl BufRead) -> std::result::Result<usize, String> {
    let mut count = 0;
    for item in Reader::new(input) {
        let (number, line) = item?;
        put(tx, line).map_err(|e| format!("line {number}: {e}"))?;
        count += 1;
    }
    Ok(count)
}

/// Stores one line of an export (checked by the [`Reader`]).
fn put(tx: &WriteTransaction, line: Line) -> Result<()> {
    match line {
        Line::Header { .. } => {
            tx.open_table(META)?.insert(
                "schema_version",
                &u64::from(super::SCHEMA_VERSION).to_be_bytes()[..],
            )?;
        }
        Line::Counter { name, next } => {
            tx.open_table(META)?
                .insert(name.as_str(), &next.to_be_bytes()[..])?;
        }
        Line::User(user) => {
            tx.open_table(USERNAME_USER)?
                .insert(user.username.to_lowercase().as_str(), user.id)?;
            tx.open_table(USERS)?
                .insert(user.id, codec::encode(&user).as_slice())?;
        }
        Line::Topic { id, topic } => {
            tx.open_table(TOPIC_IDS)?.insert(topic.name.as_str(), id)?;
            tx.open_table(TOPICS)?
                .insert(id, codec::encode(&topic).as_slice())?;
        }
        Line::Room(room) => {
            tx.open_table(ROOMS)?
                .insert(room.name.as_str(), codec::encode(&room).as_slice())?;
        }
        Line::Member { topic_id, user_id } => {
            super::topics::add_member(tx, topic_id, user_id)?;
        }
        Line::Conversation(c) => {
            tx.open_table(USER_PAIR_CONVERSATION)?
                .insert(c.users, c.id)?;
            tx.open_table(CONVERSATIONS)?
                .insert(c.id, codec::encode(&c).as_slice())?;
        }
        Line::Message {
            topic_id,
            seq,
            message,
        } => {
            if let Some(client_id) = message.client_id.as_deref() {
                tx.open_table(CLIENT_ID_SEQ)?
                    .insert((topic_id, message.user_id, client_id), seq)?;
            }
            tx.open_table(MESSAGES)?
                .insert((topic_id, seq), codec::encode(&message).as_slice())?;
        }
        Line::Read {
            user_id,
            topic_id,
            seq,
        } => {
            tx.open_table(READ_POSITIONS)?
                .insert((user_id, topic_id), seq)?;
        }
        Line::Ignore { user_id, ignored } => {
            tx.open_multimap_table(USER_IGNORES)?
                .insert(user_id, ignored)?;
        }
        Line::Revoked { jti, expires_at } => {
            tx.open_table(REVOKED_JTI_EXPIRY)?
                .insert(jti.as_str(), expires_at)?;
        }
        Line::Reactions {
            topic_id,
            seq,
            reactions,
        } => {
            tx.open_table(REACTIONS)?
                .insert((topic_id, seq), codec::encode(&reactions).as_slice())?;
        }
        Line::Attachment { record, data } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|_| Error::Internal("attachment data is not base64".into()))?;
            if let Some(seq) = record.linked_seq {
                tx.open_table(MESSAGE_ATTACHMENT)?
                    .insert((record.topic_id, seq), record.id)?;
            }
            tx.open_table(ATTACHMENT_BYTES)?
                .insert(record.id, bytes.as_slice())?;
            tx.open_table(ATTACHMENTS)?
                .insert(record.id, codec::encode(&record).as_slice())?;
        }
        Line::Mention {
            user_id,
            topic_id,
            seq,
        } => {
            // The table keeps the author too; it comes from the message.
            let author = {
                let messages = tx.open_table(MESSAGES)?;
                let found = messages.get((topic_id, seq))?;
                match found {
                    Some(value) => codec::decode::<MessageRecord>(value.value())?.user_id,
                    None => {
                        return Err(Error::Internal(format!(
                            "a mention of message {topic_id}/{seq}, which is not in the file"
                        )))
                    }
                }
            };
            tx.open_table(UNREAD_MENTIONS)?
                .insert((user_id, topic_id, seq), author)?;
        }
        Line::Bot(line) => {
            let bot = BotRecord::from(line);
            tx.open_table(BOT_KEY_HASHES)?
                .insert(bot.key_hash.as_slice(), bot.user_id)?;
            tx.open_table(BOTS)?
                .insert(bot.user_id, codec::encode(&bot).as_slice())?;
        }
        Line::Hook(line) => {
            let hook = HookRecord::from(line);
            tx.open_table(HOOK_TOKEN_HASHES)?
                .insert(hook.token_hash.as_slice(), hook.id)?;
            tx.open_table(HOOKS)?
                .insert(hook.id, codec::encode(&hook).as_slice())?;
        }
        Line::Delivery(delivery) => {
            tx.open_table(DELIVERIES)?
                .insert(delivery.event_id, codec::encode(&delivery).as_slice())?;
        }
        Line::PasswordLink { hash, link } => {
            tx.open_table(PASSWORD_LINKS)?
                .insert(hash.as_slice(), codec::encode(&link).as_slice())?;
        }
        Line::Mail { id, mail } => {
            tx.open_table(MAIL_QUEUE)?
                .insert(id, codec::encode(&mail).as_slice())?;
        }
    }
    Ok(())
}
