//! Value encoding for every record the store keeps: one format-version byte,
//! then the record in bincode 1.3. Decoding dispatches on that byte, so the
//! encoding can change later without rewriting old rows.
//!
//! Formats: 1, the first layout; 2, where a message record ends with its
//! `mentions`; 3 (written today), where a user record ends with its `bot`
//! flag. Every other record is laid out alike in all three; a format-1
//! message decodes with no mentions, a format-1 or -2 user as no bot.

use std::any::Any;

use serde::de::DeserializeOwned;
use serde::Serialize;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::store::records::MessageRecord;
use crate::store::records::UserRecord;

/// A message as written in record format 1, before mentions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecordV1 {
    pub id: u64,
    pub user_id: u64,
    pub body: String,
    pub client_id: Option<String>,
    pub inserted_at: i64,
    pub edited_at: Option<i64>,
    pub deleted: bool,
}

impl From<MessageRecordV1> for MessageRecord {
    fn from(old: MessageRecordV1) -> Self {
        MessageRecord {
            id: old.id,
            user_id: old.user_id,
            body: old.body,
            client_id: old.client_id,
            inserted_at: old.inserted_at,
            edited_at: old.edited_at,
            deleted: old.deleted,
            mentions: Vec::new(),
        }
    }
}

/// A user as written in record formats 1 and 2, before bot accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecordV2 {
    pub id: u64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub admin: bool,
    pub disabled: bool,
    pub token_version: u32,
    pub created_at: i64,
}

impl From<UserRecordV2> for UserRecord {
    fn from(old: UserRecordV2) -> Self {
        UserRecord {
            id: old.id,
            username: old.username,
            display_name: old.display_name,
            email: old.email,
            password_hash: old.password_hash,
            admin: old.admin,
            disabled: old.disabled,
            token_version: old.token_version,
            created_at: old.created_at,
            bot: false,
        }
    }
}

/// A format-1 or -2 user body, upgraded; `None` for other record types
/// (laid out alike in formats 2 and 3).
fn upgrade_user<T: 'static>(body: &[u8]) -> Result<Option<T>> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<UserRecord>() {
        return Ok(None);
    }
    let old: UserRecordV2 = bincode::deserialize(body).map_err(corrupt)?;
    let upgraded: Box<dyn Any> = Box::new(UserRecord::from(old));
    Ok(upgraded.downcast::<T>().ok().map(|record| *record))
}

/// The format byte of records written before messages had mentions.
pub const FORMAT_V1: u8 = 1;
/// The format byte of records written before users had a `bot` flag.
pub const FORMAT_V2: u8 = 2;
/// The format byte written in front of every record today.
pub const FORMAT_V3: u8 = 3;

/// Encodes a record as `[FORMAT_V3] ++ bincode(record)`.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V3];
    // bincode 1.3 only fails on sizes over its limit (none is set) or on
    // serde errors from non-serializable types, which our records are not.
    if let Err(e) = bincode::serialize_into(&mut out, record) {
        tracing::error!(error = %e, "record encoding failed");
    }
    out
}

fn corrupt(e: bincode::Error) -> Error {
    Error::Store(format!("corrupt record: {e}"))
}

/// Decodes a record written by [`encode`], today or in an older format.
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V3, body)) => bincode::deserialize(body).map_err(corrupt),
        Some((&FORMAT_V2, body)) => match upgrade_user::<T>(body)? {
            Some(record) => Ok(record),
            None => bincode::deserialize(body).map_err(corrupt),
        },
        Some((&FORMAT_V1, body)) => match upgrade_v1::<T>(body)? {
            Some(record) => Ok(record),
            None => bincode::deserialize(body).map_err(corrupt),
        },
        Some((other, _)) => Err(Error::Store(format!(
            "record format {other} is newer than this build understands"
        ))),
        None => Err(Error::Store("empty record".into())),
    }
}

/// A format-1 body of a record type whose layout changed since, upgraded;
/// `None` for the types laid out alike in both formats.
fn upgrade_v1<T: 'static>(body: &[u8]) -> Result<Option<T>> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<UserRecord>() {
        return upgrade_user(body);
    }
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<MessageRecord>() {
        return Ok(None);
    }
    let old: MessageRecordV1 = bincode::deserialize(body).map_err(corrupt)?;
    let upgraded: Box<dyn Any> = Box::new(MessageRecord::from(old));
    Ok(upgraded.downcast::<T>().ok().map(|record| *record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::UserRecord;

    fn user() -> UserRecord {
        UserRecord {
            id: 7,
            username: "ada".into(),
            display_name: "Ada L.".into(),
            email: Some("ada@example.com".into()),
            password_hash: "$argon2id$...".into(),
            admin: true,
            disabled: false,
            token_version: 3,
            created_at: 1_700_000_000_000,
            bot: true,
        }
    }

    fn old_user() -> UserRecordV2 {
        let u = user();
        UserRecordV2 {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            password_hash: u.password_hash,
            admin: u.admin,
            disabled: u.disabled,
            token_version: u.token_version,
            created_at: u.created_at,
        }
    }

    #[test]
    fn round_trips_with_version_byte() {
        let bytes = encode(&user());
        assert_eq!(bytes[0], FORMAT_V3);
        let back: UserRecord = decode(&bytes).unwrap();
        assert_eq!(back, user());
    }

    #[test]
    fn format_1_records_still_decode() {
        let not_bot = UserRecord {
            bot: false,
            ..user()
        };
        for format in [FORMAT_V1, FORMAT_V2] {
            let mut bytes = vec![format];
            bincode::serialize_into(&mut bytes, &old_user()).unwrap();
            assert_eq!(decode::<UserRecord>(&bytes).unwrap(), not_bot);
        }

        let old = MessageRecordV1 {
            id: 4,
            user_id: 7,
            body: "hi @ada".into(),
            client_id: Some("c1".into()),
            inserted_at: 1_700_000_000_000,
            edited_at: None,
            deleted: false,
        };
        let mut bytes = vec![FORMAT_V1];
        bincode::serialize_into(&mut bytes, &old).unwrap();
        let message: MessageRecord = decode(&bytes).unwrap();
        assert_eq!(message.body, "hi @ada");
        assert_eq!(message.client_id.as_deref(), Some("c1"));
        assert!(message.mentions.is_empty());

        let mut current = message.clone();
        current.mentions = vec![7, 9];
        let back: MessageRecord = decode(&encode(&current)).unwrap();
        assert_eq!(back, current);
    }

    #[test]
    fn refuses_unknown_format_and_garbage() {
        let mut bytes = encode(&user());
        bytes[0] = 9;
        assert!(decode::<UserRecord>(&bytes)
            .unwrap_err()
            .to_string()
            .contains("newer"));
        assert!(decode::<UserRecord>(&[]).is_err());
        assert!(decode::<UserRecord>(&[FORMAT_V1, 1, 2]).is_err());
        assert!(decode::<MessageRecord>(&[FORMAT_V1, 1, 2]).is_err());
    }
}
