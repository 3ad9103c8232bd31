//! Conversions between the store's unsigned ids and counters and
//! PostgreSQL's signed `bigint`, and the "no owner" convention: the records'
//! owner 0 is a SQL `NULL`. Ids are handed out by sequences and stay far
//! below 2^63, so the casts never wrap in practice; values from the
//! database that are negative (they cannot be, by the CHECKs) read as 0.

/// A u64 id or counter as a `bigint`.
pub fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `bigint` id or counter as a u64.
pub fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A user id where 0 means nobody, as a nullable `bigint`.
pub fn owner_to_db(value: u64) -> Option<i64> {
    (value != 0).then(|| to_db(value))
}

/// A nullable `bigint` user id as the records' id (0 for nobody).
pub fn owner_from_db(value: Option<i64>) -> u64 {
    value.map_or(0, from_db)
}

/// A list of u64 ids as a `bigint[]` parameter.
pub fn ids_to_db(values: &[u64]) -> Vec<i64> {
    values.iter().copied().map(to_db).collect()
}

/// A `bigint[]` column as u64 ids.
pub fn ids_from_db(values: Vec<i64>) -> Vec<u64> {
    values.into_iter().map(from_db).collect()
}

/// One bind parameter.
pub type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// `columns` (comma-separated) each prefixed with `alias.`, for the same
/// column list read from a join.
pub fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
