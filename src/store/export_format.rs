//! The export file, the same for every backend: JSON Lines, one header line,
//! then one line per record, each section in key order:
//!
//! | `type`          | what                                  | order             |
//! |-----------------|---------------------------------------|-------------------|
//! | `header`        | format, record schema, time of export | first             |
//! | `counter`       | the next id each counter hands out    | [`COUNTERS`]      |
//! | `user`          | an account                            | id                |
//! | `topic`         | a history (room or conversation)      | id                |
//! | `room`          | a room                                | name (bytes)      |
//! | `member`        | a member of a private room or DM      | topic, user       |
//! | `conversation`  | a direct conversation                 | id                |
//! | `message`       | a message (seqs gapless per topic)    | topic, seq        |
//! | `reactions`     | the reactions on one message          | topic, seq        |
//! | `read`          | a read position                       | user, topic       |
//! | `ignore`        | a user ignoring another               | user, ignored     |
//! | `attachment`    | an upload and its bytes (base64)      | id                |
//! | `revoked`       | a revoked token                       | jti (bytes)       |
//! | `mention`       | a mention not read yet                | user, topic, seq  |
//! | `bot`           | a bot's key hash and webhook          | user id           |
//! | `hook`          | an incoming webhook                   | id                |
//! | `delivery`      | an outgoing webhook event not sent    | event id          |
//! | `password_link` | a one-time password link              | hash (bytes)      |
//! | `mail`          | a mail waiting to be sent             | id                |
//!
//! Hashes are lowercase hex. Format 1 ended at `revoked`; a reader of
//! format 2 reads format 1 files too. The JWT secret is never exported: a
//! restored server makes a new one, so tokens issued before stop working.
//! Password hashes are exported (a restore keeps everyone's password):
//! guard the file.
//!
//! [`Reader`] parses a file and checks what every importer relies on (the
//! header first and not newer than this build, gapless seqs), so every
//! backend accepts and refuses the same files.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::records::{
    AttachmentRecord, BotRecord, ConversationRecord, DeliveryRecord, HookRecord, MailRecord,
    MessageRecord, PasswordLinkRecord, ReactionsRecord, RoomRecord, TopicRecord, UserRecord,
};
use crate::error::{Error, Result};

/// The format this build writes (and the newest it reads).
pub const FORMAT: u32 = 2;

/// The shape of the records in the lines (`user`, `message`, ...): a
/// reader refuses a file whose records are newer.
pub const RECORD_SCHEMA: u32 = 1;

/// The id counters, in the order their lines are written. Each line says
/// the next id the counter hands out; a counter never used has no line.
pub const COUNTERS: &[&str] = &[
    "next_user_id",
    "next_topic_id",
    "next_message_id",
    "next_conversation_id",
    "next_attachment_id",
    "next_hook_id",
    "next_event_id",
    "next_mail_id",
];

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
    /// A mention of `user_id` in message (`topic_id`, `seq`) not read yet.
    Mention {
        user_id: u64,
        topic_id: u64,
        seq: u64,
    },
    Bot(BotLine),
    Hook(HookLine),
    Delivery(DeliveryRecord),
    PasswordLink {
        /// SHA-256 of the link's token.
        #[serde(with = "hex")]
        hash: Vec<u8>,
        #[serde(flatten)]
        link: PasswordLinkRecord,
    },
    Mail {
        id: u64,
        #[serde(flatten)]
        mail: MailRecord,
    },
}

/// A [`BotRecord`] as a line: its key hash in hex.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct BotLine {
    pub user_id: u64,
    #[serde(with = "hex")]
    pub key_hash: Vec<u8>,
    pub signing_secret: String,
    pub webhook_url: Option<String>,
    pub all_messages: bool,
    pub created_by: u64,
    pub created_at: i64,
}

impl From<BotRecord> for BotLine {
    fn from(bot: BotRecord) -> Self {
        BotLine {
            user_id: bot.user_id,
            key_hash: bot.key_hash,
            signing_secret: bot.signing_secret,
            webhook_url: bot.webhook_url,
            all_messages: bot.all_messages,
            created_by: bot.created_by,
            created_at: bot.created_at,
        }
    }
}

impl From<BotLine> for BotRecord {
    fn from(line: BotLine) -> Self {
        BotRecord {
            user_id: line.user_id,
            key_hash: line.key_hash,
            signing_secret: line.signing_secret,
            webhook_url: line.webhook_url,
            all_messages: line.all_messages,
            created_by: line.created_by,
            created_at: line.created_at,
        }
    }
}

/// A [`HookRecord`] as a line: its token hash in hex.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct HookLine {
    pub id: u64,
    pub room: String,
    pub topic_id: u64,
    pub user_id: u64,
    #[serde(with = "hex")]
    pub token_hash: Vec<u8>,
    pub created_by: u64,
    pub created_at: i64,
}

impl From<HookRecord> for HookLine {
    fn from(hook: HookRecord) -> Self {
        HookLine {
            id: hook.id,
            room: hook.room,
            topic_id: hook.topic_id,
            user_id: hook.user_id,
            token_hash: hook.token_hash,
            created_by: hook.created_by,
            created_at: hook.created_at,
        }
    }
}

impl From<HookLine> for HookRecord {
    fn from(line: HookLine) -> Self {
        HookRecord {
            id: line.id,
            room: line.room,
            topic_id: line.topic_id,
            user_id: line.user_id,
            token_hash: line.token_hash,
            created_by: line.created_by,
            created_at: line.created_at,
        }
    }
}

/// The header line of an export taken now.
pub fn header() -> Line {
    Line::Header {
        confab_export: FORMAT,
        schema_version: RECORD_SCHEMA,
        exported_at: crate::clock::rfc3339_ms(crate::clock::now_ms()),
    }
}

/// Appends `line` and its newline to `buf`.
pub fn push(buf: &mut Vec<u8>, line: &Line) -> Result<()> {
    serde_json::to_writer(&mut *buf, line).map_err(|e| Error::Internal(e.to_string()))?;
    buf.push(b'\n');
    Ok(())
}

/// Writes `line` and its newline to `out`.
pub fn emit(out: &mut dyn Write, line: &Line) -> Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(|e| Error::Internal(e.to_string()))?;
    out.write_all(b"\n")
        .map_err(|e| Error::Internal(format!("cannot write the export: {e}")))
}

/// The lines of an export file, each with its line number (from 1),
/// checked as they are read: the header comes first and is not newer than
/// this build, counters and topics are of known kinds, and every topic's
/// messages come in seq order from 1 without gaps. The header is handed
/// out too. A problem is one line of text naming the line; after it the
/// reader ends. (On PostgreSQL the database also refuses a line naming a
/// record no earlier line holds.)
pub struct Reader<R> {
    lines: std::io::Lines<R>,
    number: usize,
    saw_header: bool,
    finished: bool,
    /// Per topic, the seq of its last message so far.
    heads: HashMap<u64, u64>,
}

impl<R: BufRead> Reader<R> {
    /// Reads `input`.
    pub fn new(input: R) -> Reader<R> {
        Reader {
            lines: input.lines(),
            number: 0,
            saw_header: false,
            finished: false,
            heads: HashMap::new(),
        }
    }

    /// Checks a parsed line against what came before it.
    fn check(&mut self, line: &Line) -> std::result::Result<(), String> {
        match line {
            Line::Header {
                confab_export,
                schema_version,
                ..
            } => {
                if self.saw_header {
                    return Err("a second export header".into());
                }
                if *confab_export > FORMAT || *schema_version > RECORD_SCHEMA {
                    return Err(format!(
                        "the export is newer (format {confab_export}, schema {schema_version}) \
                         than this build (format {FORMAT}, schema {RECORD_SCHEMA})"
                    ));
                }
                self.saw_header = true;
            }
            _ if !self.saw_header => return Err("the first line must be the export header".into()),
            Line::Counter { name, .. } if !COUNTERS.contains(&name.as_str()) => {
                return Err(format!("unknown counter {name:?}"));
            }
            Line::Topic { topic, .. }
                if !topic.name.starts_with("room:") && !topic.name.starts_with("dm:") =>
            {
                return Err(format!(
                    "topic {:?} is neither a room nor a conversation",
                    topic.name
                ));
            }
            Line::Message { topic_id, seq, .. } => {
                let head = self.heads.entry(*topic_id).or_insert(0);
                let expected = *head + 1;
                if *seq != expected {
                    return Err(format!(
                        "topic {topic_id}: seq {seq} where {expected} was expected"
                    ));
                }
                *head = expected;
            }
            _ => {}
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::result::Result<(usize, Line), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        loop {
            let text = match self.lines.next() {
                Some(Ok(text)) => text,
                Some(Err(e)) => {
                    self.finished = true;
                    return Some(Err(format!("line {}: {e}", self.number + 1)));
                }
                None => {
                    self.finished = true;
                    return (!self.saw_header)
                        .then(|| Err("the file is empty or not a confab export".into()));
                }
            };
            self.number += 1;
            if text.trim().is_empty() {
                continue;
            }
            let number = self.number;
            let checked = serde_json::from_str::<Line>(&text)
                .map_err(|e| e.to_string())
                .and_then(|line| self.check(&line).map(|()| line));
            return Some(match checked {
                Ok(line) => Ok((number, line)),
                Err(e) => {
                    self.finished = true;
                    Err(format!("line {number}: {e}"))
                }
            });
        }
    }
}

/// Byte strings as lowercase hex in JSON.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::LinkPurpose;

    fn read(text: &str) -> std::result::Result<Vec<(usize, Line)>, String> {
        Reader::new(text.as_bytes()).collect()
    }

    const HEADER_V1: &str =
        r#"{"type":"header","confab_export":1,"schema_version":1,"exported_at":"x"}"#;

    #[test]
    fn new_lines_round_trip_with_hex_hashes() {
        let lines = [
            Line::Bot(BotLine {
                user_id: 3,
                key_hash: vec![0, 1, 0xab, 0xff],
                signing_secret: "whsec_x".into(),
                webhook_url: Some("https://example.test/hook".into()),
                all_messages: true,
                created_by: 1,
                created_at: 5,
            }),
            Line::PasswordLink {
                hash: vec![0xde, 0xad],
                link: PasswordLinkRecord {
                    user_id: 2,
                    purpose: LinkPurpose::Reset,
                    token_version: 4,
                    expires_at: 99,
                },
            },
            Line::Mail {
                id: 7,
                mail: MailRecord {
                    to: "a@example.test".into(),
                    subject: "s".into(),
                    body: "b".into(),
                    created_at: 1,
                    attempts: 2,
                    next_attempt_at: 3,
                },
            },
        ];
        for line in lines {
            let mut buf = Vec::new();
            push(&mut buf, &line).unwrap();
            let text = String::from_utf8(buf).unwrap();
            assert!(!text.contains("[0,"), "hashes are hex: {text}");
            assert_eq!(serde_json::from_str::<Line>(text.trim_end()).unwrap(), line);
        }
        let mut buf = Vec::new();
        push(
            &mut buf,
            &Line::Bot(BotLine::from(BotRecord {
                user_id: 3,
                key_hash: vec![0x0f, 0xa0],
                signing_secret: String::new(),
                webhook_url: None,
                all_messages: false,
                created_by: 1,
                created_at: 5,
            })),
        )
        .unwrap();
        assert!(String::from_utf8(buf)
            .unwrap()
            .contains(r#""key_hash":"0fa0""#));
    }

    #[test]
    fn format_one_files_are_read() {
        let text = format!(
            "{HEADER_V1}\n\n{}\n",
            r#"{"type":"member","topic_id":1,"user_id":2}"#
        );
        let lines = read(&text).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].0, 3, "blank lines count in line numbers");
    }

    #[test]
    fn problems_name_their_line() {
        assert_eq!(
            read("").unwrap_err(),
            "the file is empty or not a confab export"
        );
        let no_header = read(r#"{"type":"member","topic_id":1,"user_id":2}"#).unwrap_err();
        assert!(
            no_header.starts_with("line 1: the first line"),
            "{no_header}"
        );
        let newer =
            read(r#"{"type":"header","confab_export":3,"schema_version":1,"exported_at":""}"#)
                .unwrap_err();
        assert!(newer.contains("newer"), "{newer}");
        let message = |seq: u64| {
            format!(
                r#"{{"type":"message","topic_id":1,"seq":{seq},"id":{seq},"user_id":1,"body":"","client_id":null,"inserted_at":0,"edited_at":null,"deleted":false}}"#
            )
        };
        let gap = read(&format!("{HEADER_V1}\n{}\n{}\n", message(1), message(3))).unwrap_err();
        assert_eq!(gap, "line 3: topic 1: seq 3 where 2 was expected");
        let garbage = read(&format!("{HEADER_V1}\nnot json\n")).unwrap_err();
        assert!(garbage.starts_with("line 2: "), "{garbage}");
        let counter = read(&format!(
            "{HEADER_V1}\n{}\n",
            r#"{"type":"counter","name":"next_thing_id","next":2}"#
        ))
        .unwrap_err();
        assert_eq!(counter, r#"line 2: unknown counter "next_thing_id""#);
        let topic = read(&format!(
            "{HEADER_V1}\n{}\n",
            r#"{"type":"topic","id":1,"name":"lobby","epoch":"e","created_at":0}"#
        ))
        .unwrap_err();
        assert!(
            topic.contains("neither a room nor a conversation"),
            "{topic}"
        );
    }
}
