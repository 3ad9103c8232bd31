//! The `meta` table: schema version, the generated JWT secret, and counters
//! that hand out ids (`next_user_id`, ...).

use redb::{Database, ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::tables::{self, META};
use super::WriteCtx;
use crate::error::Result;

const SCHEMA_VERSION_KEY: &str = "schema_version";
const JWT_SECRET_KEY: &str = "jwt_secret";

/// Creates every table, stamps a new store with the current schema version,
/// and returns the version the store carries.
pub fn init(db: &Database) -> Result<u32> {
    let tx = db.begin_write()?;
    let version = {
        tables::create_all(&tx)?;
        super::rooms::ensure_lobby(&tx)?;
        let mut meta = tx.open_table(META)?;
        let existing = meta
            .get(SCHEMA_VERSION_KEY)?
            .map(|v| decode_u64(v.value()) as u32);
        match existing {
            Some(version) => version,
            None => {
                let version = super::SCHEMA_VERSION;
                meta.insert(SCHEMA_VERSION_KEY, &u64::from(version).to_be_bytes()[..])?;
                version
            }
        }
    };
    tx.commit()?;
    Ok(version)
}

fn decode_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

/// Hands out the next value of a monotonic counter (starting at 1).
pub fn next_id(tx: &WriteTransaction, counter: &str) -> Result<u64> {
    next_id_in(&mut tx.open_table(META)?, counter)
}

/// [`next_id`] on an already open `meta` table.
pub fn next_id_in(meta: &mut Table<'_, &'static str, &'static [u8]>, counter: &str) -> Result<u64> {
    let next = meta
        .get(counter)?
        .map(|v| decode_u64(v.value()))
        .unwrap_or(1);
    meta.insert(counter, &(next + 1).to_be_bytes()[..])?;
    Ok(next)
}

/// The JWT secret, if one has been made.
pub fn jwt_secret(tx: &ReadTransaction) -> Result<Option<Vec<u8>>> {
    let meta = tx.open_table(META)?;
    Ok(meta.get(JWT_SECRET_KEY)?.map(|v| v.value().to_vec()))
}

/// The JWT secret, made and kept now if there is none yet.
pub fn ensure_jwt_secret(ctx: &mut WriteCtx<'_>) -> Result<Vec<u8>> {
    let mut meta = ctx.tx().open_table(META)?;
    if let Some(existing) = meta.get(JWT_SECRET_KEY)? {
        return Ok(existing.value().to_vec());
    }
    let secret = crate::random::random_bytes::<32>().to_vec();
    meta.insert(JWT_SECRET_KEY, secret.as_slice())?;
    Ok(secret)
}

/// The schema version the store carries (0 for a store never stamped).
pub fn schema_version(tx: &ReadTransaction) -> Result<u32> {
    let meta = tx.open_table(META)?;
    let found = meta.get(SCHEMA_VERSION_KEY)?;
    Ok(found.map_or(0, |v| decode_u64(v.value()) as u32))
}
