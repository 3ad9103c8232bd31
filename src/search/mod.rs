//! Full-text search over messages: a tantivy index in `<data_dir>/search/`.
//!
//! The index is derived data, not a store: it lives beside the record store
//! (which stays the only source of truth, read only through `crate::store`)
//! and can be thrown away and rebuilt from it at any time (`confab
//! reindex`, or at start when it is missing or unreadable).
//!
//! - [`indexer`]: the thread that owns the index writer. Stored messages,
//!   edits and deletions reach it in commit order after each store commit;
//!   it commits the index every second (or every few thousand documents)
//!   with its progress (the last indexed seq of every topic) as the commit
//!   payload, and at start indexes whatever the store has beyond that.
//! - [`query`]: the query language; [`analyzer`]: how text becomes terms;
//!   [`snippet`]: highlighted snippets.
//!
//! Search itself ([`SearchIndex::search`]) returns hits newest first (by
//! message id, which grows in commit order); the caller checks each hit
//! against the store, so a message deleted or edited since it was indexed
//! is never shown by its old text even before the index catches up.

pub mod analyzer;
pub mod indexer;
pub mod query;
pub mod results;
pub mod snippet;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{IndexReader, Order, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::store::records::Stored;
use crate::store::Store;
use query::{Clause, Parsed};
use snippet::Highlight;

/// Most index terms a `word*` query expands to.
const MAX_PREFIX_EXPANSIONS: u32 = 2000;

/// The directory of the index inside the data directory.
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("search")
}

/// The index's fields.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// Message id: unique, sort key (newest first), delete key.
    pub id: Field,
    pub topic: Field,
    pub seq: Field,
    /// Author's user id.
    pub user: Field,
    /// `edited_at` of the indexed text (0 when never edited).
    pub edited: Field,
    pub body: Field,
}

impl Fields {
    /// The schema and its fields.
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let id = builder.add_u64_field("id", INDEXED | FAST | STORED);
        let topic = builder.add_u64_field("topic", INDEXED | STORED);
        let seq = builder.add_u64_field("seq", STORED);
        let user = builder.add_u64_field("user", INDEXED);
        let edited = builder.add_i64_field("edited", STORED);
        let body = builder.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer::NAME)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        );
        let fields = Fields {
            id,
            topic,
            seq,
            user,
            edited,
            body,
        };
        (builder.build(), fields)
    }

    /// The document of a stored message.
    pub fn document(&self, stored: &Stored) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_u64(self.id, stored.record.id);
        doc.add_u64(self.topic, stored.topic_id);
        doc.add_u64(self.seq, stored.seq);
        doc.add_u64(self.user, stored.record.user_id);
        doc.add_i64(self.edited, stored.record.edited_at.unwrap_or(0));
        doc.add_text(self.body, &stored.record.body);
        doc
    }
}

/// A message the index found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: u64,
    pub topic_id: u64,
    pub seq: u64,
    /// `edited_at` of the text that matched (0: the original text).
    pub edited: i64,
}

/// What to look for, with the caller's permissions already applied.
#[derive(Clone, Debug)]
pub struct Search {
    pub parsed: Parsed,
    /// Topics to search (those the caller may read, narrowed by `in:` and
    /// `topic`). Empty: nothing matches.
    pub topics: Vec<u64>,
    /// Authors from `from:` (any of them), if given.
    pub authors: Option<Vec<u64>>,
    /// Authors the caller ignores.
    pub ignored: Vec<u64>,
    /// Only messages with an id below this.
    pub before: Option<u64>,
}

/// The open index: a reader for searches and the feed of the indexer thread.
pub struct SearchIndex {
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    feed: mpsc::Sender<indexer::Feed>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SearchIndex {
    /// Opens the index in `<data_dir>/search` (rebuilding it when missing,
    /// unreadable or of another layout) and starts the indexer thread,
    /// which first indexes what the store has beyond the index's progress.
    pub fn open(data_dir: &Path, store: Store) -> std::result::Result<Arc<SearchIndex>, String> {
        let opened = indexer::open(&dir_of(data_dir))?;
        let reader = opened
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| format!("cannot read the search index: {e}"))?;
        let fields = opened.fields;
        let (feed, rx) = mpsc::channel();
        let thread = indexer::start(opened, store, rx, reader.clone())?;
        Ok(Arc::new(SearchIndex {
            reader,
            fields,
            analyzer: analyzer::analyzer(),
            feed,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// A newly stored message (in commit order).
    pub fn stored(&self, stored: &Stored) {
        let _ = self.feed.send(indexer::Feed::Put(stored.clone()));
    }

    /// An edited message: its document is replaced.
    pub fn edited(&self, stored: &Stored) {
        let _ = self.feed.send(indexer::Feed::Replace(stored.clone()));
    }

    /// A deleted message: its document goes.
    pub fn deleted(&self, message_id: u64) {
        let _ = self.feed.send(indexer::Feed::Remove(message_id));
    }

    /// A message broadcast by another node of a cluster: `new_msg` makes
    /// the indexer read the topic's new messages from the store,
    /// `msg_updated` and `msg_deleted` the one message (its `seq` is in
    /// the payload).
    pub fn remote_change(&self, topic_id: u64, event: &str, payload: &str) {
        let feed = match event {
            "new_msg" => indexer::Feed::Touched(topic_id),
            "msg_updated" | "msg_deleted" => {
                #[derive(serde::Deserialize)]
                struct Seq {
                    seq: u64,
                }
                match serde_json::from_str::<Seq>(payload) {
                    Ok(Seq { seq }) => indexer::Feed::Reread(topic_id, seq),
                    Err(_) => return,
                }
            }
            _ => return,
        };
        let _ = self.feed.send(feed);
    }

    /// Waits until everything fed before this call is searchable.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.feed.send(indexer::Feed::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Drops the index's documents and indexes the whole store again, on
    /// the indexer thread, while searches keep answering (with partial
    /// results until it is done); returns the document count.
    pub async fn rebuild_live(&self) -> std::result::Result<u64, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.feed
            .send(indexer::Feed::Rebuild(tx))
            .map_err(|_| "the search indexer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the search indexer has stopped".to_string())?
    }

    /// Commits what is pending and stops the indexer thread.
    pub fn close(&self) {
        let _ = self.feed.send(indexer::Feed::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// The terms to highlight in snippets of `parsed`'s hits.
    pub fn highlights(&self, parsed: &Parsed) -> Vec<Highlight> {
        let mut analyzer = self.analyzer.clone();
        let mut out = Vec::new();
        for clause in &parsed.clauses {
            let (text, prefix) = match clause {
                Clause::Word { text, prefix } => (text, *prefix),
                Clause::Phrase(text) => (text, false),
            };
            let terms = analyzer::terms(&mut analyzer, text);
            let last = terms.len().saturating_sub(1);
            for (i, term) in terms.into_iter().enumerate() {
                out.push(Highlight {
                    text: term.text,
                    prefix: prefix && i == last,
                });
            }
        }
        out
    }

    /// A snippet of `body` for `highlights`.
    pub fn snippet(&self, body: &str, highlights: &[Highlight]) -> String {
        snippet::snippet(&mut self.analyzer.clone(), body, highlights)
    }

    /// Up to `limit` hits, newest first.
    pub fn search(&self, search: &Search, limit: usize) -> Result<Vec<Hit>> {
        if search.topics.is_empty() || search.authors.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let query = self.query(search);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<u64>("id", Order::Desc);
        let found = searcher.search(&query, &top).map_err(internal)?;
        let mut hits = Vec::with_capacity(found.len());
        for (_, address) in found {
            let doc: TantivyDocument = searcher.doc(address).map_err(internal)?;
            let u64_of = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            hits.push(Hit {
                id: u64_of(self.fields.id),
                topic_id: u64_of(self.fields.topic),
                seq: u64_of(self.fields.seq),
                edited: doc
                    .get_first(self.fields.edited)
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
            });
        }
        Ok(hits)
    }

    fn query(&self, search: &Search) -> BooleanQuery {
        let f = self.fields;
        let mut analyzer = self.analyzer.clone();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for clause in &search.parsed.clauses {
            let (text, prefix) = match clause {
                Clause::Word { text, prefix } => (text, *prefix),
                Clause::Phrase(text) => (text, false),
            };
            let terms: Vec<Term> = analyzer::terms(&mut analyzer, text)
                .into_iter()
                .map(|t| Term::from_field_text(f.body, &t.text))
                .collect();
            let query: Box<dyn Query> = match terms.len() {
                // Only separators (`!!!`): no condition.
                0 => continue,
                _ if prefix => {
                    let mut query = PhrasePrefixQuery::new(terms);
                    query.set_max_expansions(MAX_PREFIX_EXPANSIONS);
                    Box::new(query)
                }
                1 => Box::new(TermQuery::new(
                    terms.into_iter().next().expect("one term"),
                    IndexRecordOption::Basic,
                )),
                _ => Box::new(PhraseQuery::new(terms)),
            };
            clauses.push((Occur::Must, query));
        }
        let topics = search
            .topics
            .iter()
            .map(|&id| Term::from_field_u64(f.topic, id));
        clauses.push((Occur::Must, Box::new(TermSetQuery::new(topics))));
        if let Some(authors) = &search.authors {
            let authors = authors.iter().map(|&id| Term::from_field_u64(f.user, id));
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(authors))));
        }
        if !search.ignored.is_empty() {
            let ignored = search
                .ignored
                .iter()
                .map(|&id| Term::from_field_u64(f.user, id));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(ignored))));
        }
        if let Some(before) = search.before {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Excluded(Term::from_field_u64(f.id, before)),
                )),
            ));
        }
        if clauses.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        BooleanQuery::new(clauses)
    }
}

fn internal(e: tantivy::TantivyError) -> Error {
    Error::Internal(format!("search: {e}"))
}

/// Rebuilds the index of `data_dir` from the store, offline; returns how
/// many messages it holds.
pub fn rebuild(data_dir: &Path, store: Store) -> std::result::Result<u64, String> {
    let dir = dir_of(data_dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let opened = indexer::open(&dir)?;
    indexer::build_offline(opened, &store)
}
