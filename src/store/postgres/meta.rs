//! Settings the database keeps: readiness, the schema version and the JWT secret (table `meta`).

use super::PgStore;
use crate::error::Result;

/// Not yet.
#[allow(unused_variables)]
pub async fn ready(store: &PgStore) -> bool {
    let _ = store;
    false
}

/// Not yet.
#[allow(unused_variables)]
pub async fn schema_version(store: &PgStore) -> Result<u32> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn jwt_secret(store: &PgStore) -> Result<Vec<u8>> {
    let _ = store;
    Err(super::not_yet())
}
