//! One page of search results for one user (api.md §5): the topics they
//! may read (public rooms, rooms they belong to, their conversations),
//! their ignores, `from:` / `in:` resolved against the store, hits checked
//! against the store (a deleted message, or one whose indexed text is no
//! longer its text, is skipped and handed back to the indexer), then each
//! result as `{message, snippet}`, newest first, with the next cursor.

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use serde_json::{json, Value};

use super::query::Parsed;
use super::{Hit, Search, SearchIndex};
use crate::chat::views::{MessageView, UserBrief};
use crate::error::{Error, Result};
use crate::store::records::{AttachmentRecord, Stored};
use crate::store::Store;

/// Results per page when none is asked for.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results per page.
pub const MAX_LIMIT: usize = 100;
/// Index rounds per page before giving up on filling it (each round
/// skips hits the store no longer agrees with).
const MAX_ROUNDS: usize = 8;

/// What a user asks for.
#[derive(Clone, Debug)]
pub struct Request {
    pub user_id: u64,
    pub parsed: Parsed,
    /// Only this topic (already checked readable by the caller).
    pub topic_id: Option<u64>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// A page: `{results, next?}`.
pub struct Page {
    pub results: Vec<Value>,
    pub next: Option<u64>,
}

impl Page {
    /// The reply body.
    pub fn to_value(&self) -> Value {
        let mut body = json!({ "results": self.results });
        if let Some(next) = self.next {
            body["next"] = json!(encode_cursor(next));
        }
        body
    }
}

/// The opaque cursor of "results older than message `id`".
pub fn encode_cursor(id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("m{id}"))
}

/// The message id of a cursor.
pub fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix('m')?
        .parse()
        .ok()
}

/// Runs `request` (blocking: call it off the async runtime).
pub fn find(index: &SearchIndex, store: &Store, request: Request) -> Result<Page> {
    let Some(search) = scope(store, &request)? else {
        return Ok(Page {
            results: Vec::new(),
            next: None,
        });
    };
    let highlights = index.highlights(&request.parsed);
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let mut search = search;
    let mut results = Vec::with_capacity(limit);
    let mut next = None;
    let mut names: HashMap<u64, String> = HashMap::new();
    let mut authors: HashMap<u64, UserBrief> = HashMap::new();
    'rounds: for _ in 0..MAX_ROUNDS {
        let wanted = limit - results.len() + 1;
        let hits = index.search(&search, wanted)?;
        let exhausted = hits.len() < wanted;
        let keys: Vec<(u64, u64)> = hits.iter().map(|hit| (hit.topic_id, hit.seq)).collect();
        let lookup = store.lookup_messages_blocking(&keys)?;
        for (topic_id, name) in lookup.topic_names {
            names.entry(topic_id).or_insert(name);
        }
        for (id, author) in lookup.authors {
            authors.entry(id).or_insert(author);
        }
        let checked: Vec<Checked> = hits
            .iter()
            .zip(lookup.messages.into_iter().zip(lookup.attachments))
            .map(|(hit, (stored, attachment))| {
                match stored.filter(|s| s.record.id == hit.id && !s.record.deleted) {
                    None => Checked::Gone(*hit),
                    Some(stored) if stored.record.edited_at.unwrap_or(0) != hit.edited => {
                        Checked::Stale(stored)
                    }
                    Some(stored) => Checked::Found(stored, attachment),
                }
            })
            .collect();
        for (hit, checked) in hits.iter().zip(checked) {
            search.before = Some(hit.id);
            match checked {
                Checked::Gone(hit) => index.deleted(hit.id),
                Checked::Stale(stored) => index.edited(&stored),
                Checked::Found(stored, attachment) => {
                    if results.len() == limit {
                        // One more match exists beyond this page.
                        next = results_last_id(&results);
                        break 'rounds;
                    }
                    let topic = names.get(&stored.topic_id).map_or("", String::as_str);
                    let author = authors
                        .get(&stored.record.user_id)
                        .cloned()
                        .unwrap_or_else(|| UserBrief::unknown(stored.record.user_id));
                    let message = MessageView::new(topic, &stored, &author)
                        .with_attachment(attachment.as_ref())
                        .to_value();
                    let snippet = index.snippet(&stored.record.body, &highlights);
                    results.push(json!({"message": message, "snippet": snippet}));
                }
            }
        }
        if exhausted {
            break;
        }
        if results.len() == limit {
            // The page is full but the look-ahead hit was not usable: say
            // there may be more from here.
            next = search.before;
            break;
        }
    }
    Ok(Page { results, next })
}

fn results_last_id(results: &[Value]) -> Option<u64> {
    results.last()?["message"]["id"].as_u64()
}

/// What the store says about a hit.
enum Checked {
    /// Still there, with the indexed text.
    Found(Stored, Option<AttachmentRecord>),
    /// Edited since it was indexed.
    Stale(Stored),
    /// Deleted (or never stored).
    Gone(Hit),
}

/// The index search for `request`, or `None` when nothing can match
/// (no readable topic, unknown author or room).
fn scope(store: &Store, request: &Request) -> Result<Option<Search>> {
    let user_id = request.user_id;
    let parsed = request.parsed.clone();
    let scope = store.search_scope_blocking(user_id, &parsed.from)?;
    let mut readable = scope.readable;
    if let Some(topic_id) = request.topic_id {
        readable.retain(|&id| id == topic_id);
    }
    if !parsed.rooms.is_empty() {
        let wanted: BTreeSet<u64> = parsed
            .rooms
            .iter()
            .filter_map(|name| scope.rooms.get(name).copied())
            .collect();
        readable.retain(|id| wanted.contains(id));
    }
    if readable.is_empty() {
        return Ok(None);
    }
    let authors = if parsed.from.is_empty() {
        None
    } else if scope.from.is_empty() {
        return Ok(None);
    } else {
        Some(scope.from)
    };
    Ok(Some(Search {
        parsed,
        topics: readable.into_iter().collect(),
        authors,
        ignored: scope.ignored.into_iter().collect(),
        before: request.before,
    }))
}

/// Turns a parse failure into the 422 of api.md §5.
pub fn query_error(reason: String) -> Error {
    Error::field("q", reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("nope!"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
