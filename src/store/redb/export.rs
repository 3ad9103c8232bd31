//! Backup as JSON Lines: one header line, then every record of every table
//! in key order, read inside ONE read transaction (a consistent snapshot).
//! Import loads such a file into a new store in one write transaction.
//!
//! The JWT secret is deliberately not exported: a restored server makes a
//! new one, so tokens issued before the backup stop working. Password hashes
//! are exported (a restore keeps everyone's password); guard the file.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::codec;
use base64::Engine;

use super::tables::*;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::records::{
    AttachmentRecord, ConversationRecord, MessageRecord, ReactionsRecord, RoomRecord, TopicRecord,
    UserRecord,
};

/// Format of the export file.
pub const EXPORT_FORMAT: u32 = 1;

/// One line of an export.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header {
        confab_export: u32,
        schema_version: u32,
        exported_at: String,
    },
    Counter {
        name: String,
        next: u64,
    },
    User(UserRecord),
    Topic {
        id: u64,
        #[serde(flatten)]
        topic: TopicRecord,
    },
    Room(RoomRecord),
    Member {
        topic_id: u64,
        user_id: u64,
    },
    Conversation(ConversationRecord),
    Message {
        topic_id: u64,
        seq: u64,
        #[serde(flatten)]
        message: MessageRecord,
    },
    Read {
        user_id: u64,
        topic_id: u64,
        seq: u64,
    },
    /// The reactions on one message (a later line than the message).
    Reactions {
        topic_id: u64,
        seq: u64,
        #[serde(flatten)]
        reactions: ReactionsRecord,
    },
    Ignore {
        user_id: u64,
        ignored: u64,
    },
    Revoked {
        jti: String,
        expires_at: u64,
    },
    Attachment {
        #[serde(flatten)]
        record: AttachmentRecord,
        /// The bytes, standard base64.
        data: String,
    },
}

const COUNTERS: &[&str] = &[
    "next_user_id",
    "next_topic_id",
    "next_message_id",
    "next_conversation_id",
    "next_attachment_id",
];

fn emit(out: &mut dyn Write, line: &Line) -> Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(|e| Error::Internal(e.to_string()))?;
    out.write_all(b"\n")
        .map_err(|e| Error::Internal(format!("cannot write the export: {e}")))
}

/// Writes every record visible in `tx` to `out`.
pub fn export(tx: &ReadTransaction, out: &mut dyn Write) -> Result<()> {
    emit(
        out,
        &Line::Header {
            confab_export: EXPORT_FORMAT,
            schema_version: super::SCHEMA_VERSION,
            exported_at: clock::rfc3339_ms(clock::now_ms()),
        },
    )?;
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
    let store_err = |e: Error| e.to_string();
    let mut count = 0;
    let mut saw_header = false;
    let mut heads: BTreeMap<u64, u64> = BTreeMap::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| format!("line {number}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line =
            serde_json::from_str(&line).map_err(|e| format!("line {number}: {e}"))?;
        let result: Result<()> = (|| {
            match parsed {
                Line::Header {
                    confab_export,
                    schema_version,
                    ..
                } => {
                    if confab_export > EXPORT_FORMAT || schema_version > super::SCHEMA_VERSION {
                        return Err(Error::Internal(format!(
                            "the export is newer (format {confab_export}, schema {schema_version}) than this build"
                        )));
                    }
                    tx.open_table(META)?.insert(
                        "schema_version",
                        &u64::from(super::SCHEMA_VERSION).to_be_bytes()[..],
                    )?;
                    saw_header = true;
                }
                _ if !saw_header => {
                    return Err(Error::Internal(
                        "the first line must be the export header".into(),
                    ))
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
                    let expected = heads.get(&topic_id).copied().unwrap_or(0) + 1;
                    if seq != expected {
                        return Err(Error::Internal(format!(
                            "topic {topic_id}: seq {seq} where {expected} was expected"
                        )));
                    }
                    heads.insert(topic_id, seq);
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
            }
            Ok(())
        })();
        result.map_err(|e| format!("line {number}: {}", store_err(e)))?;
        count += 1;
    }
    if !saw_header {
        return Err("the file is empty or not a confab export".into());
    }
    Ok(count)
}
