//! What search needs from the store: the topics to index, a user's scope
//! (what they may read, the rooms by name, the authors asked for, whom they
//! ignore), and the messages behind hits with their authors, attachments and
//! topic names.

use std::collections::{BTreeSet, HashMap, HashSet};

use deadpool_postgres::GenericClient;

use super::convert::{from_db, to_db, Param};
use super::error::db;
use super::PgStore;
use crate::error::Result;
use crate::store::ops::{MessageLookup, SearchScope};
use crate::store::records::Author;

/// Every topic id, ascending.
pub async fn topic_ids(store: &PgStore) -> Result<Vec<u64>> {
    let client = store.client().await?;
    let rows = client
        .query("SELECT id FROM topics ORDER BY id", &[])
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| row.try_get::<_, i64>(0).map(from_db).map_err(db))
        .collect()
}

/// What `user_id` may search, with the accounts named in `from` (in order,
/// unknown names left out).
pub async fn scope(store: &PgStore, user_id: u64, from: &[String]) -> Result<SearchScope> {
    let client = store.client().await?;
    let user = to_db(user_id);
    let member_sql = "SELECT topic_id FROM topic_members WHERE user_id = $1";
    let rooms_sql = "SELECT r.name, r.topic_id, r.private, \
                     EXISTS (SELECT 1 FROM topic_members m \
                             WHERE m.topic_id = r.topic_id AND m.user_id = $1) \
                     FROM rooms r";
    let conversations_sql =
        "SELECT topic_id FROM conversations WHERE user_low = $1 OR user_high = $1";
    let ignores_sql = "SELECT ignored_id FROM ignores WHERE user_id = $1";
    let lowered: Vec<String> = from.iter().map(|name| name.to_lowercase()).collect();
    let users_sql = "SELECT lower(username), id FROM users WHERE lower(username) = ANY($1)";
    let by_user: [Param; 1] = [&user];
    let by_names: [Param; 1] = [&lowered];
    let (members, rooms, conversations, ignores, users) = tokio::try_join!(
        client.query(member_sql, &by_user),
        client.query(rooms_sql, &by_user),
        client.query(conversations_sql, &by_user),
        client.query(ignores_sql, &by_user),
        client.query(users_sql, &by_names),
    )
    .map_err(db)?;
    let mut readable = BTreeSet::new();
    for row in members.iter().chain(&conversations) {
        readable.insert(from_db(row.try_get(0).map_err(db)?));
    }
    let mut by_name = HashMap::new();
    for row in &rooms {
        let name: String = row.try_get(0).map_err(db)?;
        let topic_id = from_db(row.try_get(1).map_err(db)?);
        let private: bool = row.try_get(2).map_err(db)?;
        let member: bool = row.try_get(3).map_err(db)?;
        if !private || member {
            readable.insert(topic_id);
            by_name.insert(name, topic_id);
        }
    }
    let mut ids_by_name = HashMap::new();
    for row in &users {
        let name: String = row.try_get(0).map_err(db)?;
        ids_by_name.insert(name, from_db(row.try_get(1).map_err(db)?));
    }
    let found = lowered
        .iter()
        .filter_map(|name| ids_by_name.get(name).copied())
        .collect();
    let mut ignored = HashSet::new();
    for row in &ignores {
        ignored.insert(from_db(row.try_get(0).map_err(db)?));
    }
    Ok(SearchScope {
        readable,
        rooms: by_name,
        from: found,
        ignored,
    })
}

/// The messages at `keys` ((topic id, seq)), with their views' needs.
pub async fn lookup(store: &PgStore, keys: &[(u64, u64)]) -> Result<MessageLookup> {
    let client = store.client().await?;
    let topics: Vec<i64> = keys.iter().map(|&(t, _)| to_db(t)).collect();
    let seqs: Vec<i64> = keys.iter().map(|&(_, s)| to_db(s)).collect();
    let messages_sql = format!(
        "SELECT {} FROM messages m \
         JOIN unnest($1::bigint[], $2::bigint[]) AS k(t, s) ON m.topic_id = k.t AND m.seq = k.s",
        prefixed(super::history::COLUMNS, "m")
    );
    let attachments_sql = format!(
        "SELECT {} FROM attachments a \
         JOIN unnest($1::bigint[], $2::bigint[]) AS k(t, s) \
         ON a.topic_id = k.t AND a.message_seq = k.s",
        prefixed(super::attachments::COLUMNS, "a")
    );
    let by_key: [Param; 2] = [&topics, &seqs];
    let (message_rows, attachment_rows) = tokio::try_join!(
        client.query(&messages_sql, &by_key),
        client.query(&attachments_sql, &by_key),
    )
    .map_err(db)?;
    let mut messages = HashMap::new();
    for row in &message_rows {
        let stored = super::history::from_row(row)?;
        messages.insert((stored.topic_id, stored.seq), stored);
    }
    let mut attachments = HashMap::new();
    for row in &attachment_rows {
        let attachment = super::attachments::from_row(row)?;
        if let Some(seq) = attachment.linked_seq {
            attachments.insert((attachment.topic_id, seq), attachment);
        }
    }
    let live: Vec<_> = messages.values().filter(|m| !m.record.deleted).collect();
    let mut author_ids: Vec<i64> = live.iter().map(|m| to_db(m.record.user_id)).collect();
    author_ids.sort_unstable();
    author_ids.dedup();
    let mut topic_ids: Vec<i64> = live.iter().map(|m| to_db(m.topic_id)).collect();
    topic_ids.sort_unstable();
    topic_ids.dedup();
    let users_sql = format!(
        "SELECT {} FROM users WHERE id = ANY($1)",
        super::users::COLUMNS
    );
    let by_authors: [Param; 1] = [&author_ids];
    let by_topics: [Param; 1] = [&topic_ids];
    let (user_rows, topic_rows) = tokio::try_join!(
        client.query(&users_sql, &by_authors),
        client.query("SELECT id, name FROM topics WHERE id = ANY($1)", &by_topics),
    )
    .map_err(db)?;
    let mut out = MessageLookup {
        messages: Vec::with_capacity(keys.len()),
        attachments: Vec::with_capacity(keys.len()),
        ..MessageLookup::default()
    };
    for row in &user_rows {
        let user = super::users::from_row(row)?;
        out.authors.insert(user.id, Author::from(&user));
    }
    for row in &topic_rows {
        let id = from_db(row.try_get(0).map_err(db)?);
        out.topic_names.insert(id, row.try_get(1).map_err(db)?);
    }
    for key in keys {
        let stored = messages.remove(key);
        let attachment = match &stored {
            Some(stored) if !stored.record.deleted => {
                out.authors
                    .entry(stored.record.user_id)
                    .or_insert_with(|| Author::unknown(stored.record.user_id));
                out.topic_names.entry(stored.topic_id).or_default();
                attachments.remove(key)
            }
            _ => None,
        };
        out.messages.push(stored);
        out.attachments.push(attachment);
    }
    Ok(out)
}

/// `columns` (comma-separated) each prefixed with `alias.`.
fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
