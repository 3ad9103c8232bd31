//! Direct conversations (table `conversations`) and ignores (table `ignores`).

use std::collections::HashSet;

use super::PgStore;
use crate::error::Result;
use crate::store::ops::ConversationSummary;
use crate::store::records::ConversationRecord;

/// Not yet.
#[allow(unused_variables)]
pub async fn open(store: &PgStore, a: u64, b: u64) -> Result<(ConversationRecord, bool)> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn get(store: &PgStore, id: u64) -> Result<Option<ConversationRecord>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn list(store: &PgStore, user_id: u64) -> Result<Vec<ConversationSummary>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn ignores(store: &PgStore, user_id: u64) -> Result<HashSet<u64>> {
    let _ = store;
    Err(super::not_yet())
}

/// Not yet.
#[allow(unused_variables)]
pub async fn set_ignore(
    store: &PgStore,
    user_id: u64,
    other: u64,
    ignore: bool,
) -> Result<HashSet<u64>> {
    let _ = store;
    Err(super::not_yet())
}
