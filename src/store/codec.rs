//! Value encoding for every record the store keeps: one format-version byte,
//! then the record in bincode 1.3. Decoding dispatches on that byte, so the
//! encoding can change later without rewriting old rows.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The format byte written in front of every record today.
pub const FORMAT_V1: u8 = 1;

/// Encodes a record as `[FORMAT_V1] ++ bincode(record)`.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    // bincode 1.3 only fails on sizes over its limit (none is set) or on
    // serde errors from non-serializable types, which our records are not.
    if let Err(e) = bincode::serialize_into(&mut out, record) {
        tracing::error!(error = %e, "record encoding failed");
    }
    out
}

/// Decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            bincode::deserialize(body).map_err(|e| Error::Store(format!("corrupt record: {e}")))
        }
        Some((other, _)) => Err(Error::Store(format!(
            "record format {other} is newer than this build understands"
        ))),
        None => Err(Error::Store("empty record".into())),
    }
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
        }
    }

    #[test]
    fn round_trips_with_version_byte() {
        let bytes = encode(&user());
        assert_eq!(bytes[0], FORMAT_V1);
        let back: UserRecord = decode(&bytes).unwrap();
        assert_eq!(back, user());
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
    }
}
