//! The indexer thread: the only owner of the tantivy index writer.
//!
//! It is fed after each store commit, in commit order, and never blocks the
//! store's writer. Documents are buffered and the index is committed every
//! [`COMMIT_INTERVAL`] or [`COMMIT_DOCS`] documents, with its [`Progress`]
//! (per topic, the last seq indexed) as the commit payload. At start it
//! first catches up: every message with a seq above the progress of its
//! topic is indexed, so a message acknowledged just before a crash is
//! searchable after the restart. After an unclean stop it also re-applies
//! deletions and recent edits, which the seq progress cannot see.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};

use super::{analyzer, Fields};
use crate::store::records::Stored;
use crate::store::Store;

/// Longest time a stored message waits to become searchable.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Documents buffered before a commit regardless of time.
pub const COMMIT_DOCS: usize = 20_000;
/// Messages read from the store per read transaction while catching up.
const CATCH_UP_CHUNK: usize = 2_000;
/// The index writer's memory budget.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// The layout of documents; an index of another layout is rebuilt.
const LAYOUT_VERSION: u32 = 1;
/// Edits this close before the last indexed edit are re-applied after an
/// unclean stop (clock steps between the store's edits).
const EDIT_MARGIN_MS: i64 = 5_000;

/// What the indexer is told.
pub enum Feed {
    /// A new message (skipped if its seq is already covered).
    Put(Stored),
    /// An edited message.
    Replace(Stored),
    /// A deleted message, by id.
    Remove(u64),
    /// Another node of a cluster stored messages in this topic: index what
    /// the store has beyond the topic's progress (before the next commit).
    Touched(u64),
    /// Another node edited or deleted the message `(topic id, seq)`: read
    /// it again.
    Reread(u64, u64),
    /// Commit now and answer.
    Flush(mpsc::Sender<()>),
    /// Drop every document and index the whole store again; answers with
    /// the document count.
    Rebuild(tokio::sync::oneshot::Sender<std::result::Result<u64, String>>),
    /// Commit and end the thread.
    Stop,
}

/// How far the index has got, kept as the commit payload.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub layout: u32,
    /// topic id → last seq indexed (every message up to it is indexed,
    /// deleted ones by their absence).
    pub heads: BTreeMap<u64, u64>,
    /// The newest `edited_at` indexed.
    pub edits_ms: i64,
    /// Whether the index was closed cleanly (nothing fed was lost).
    pub clean: bool,
}

/// An index opened for writing.
pub struct Opened {
    pub index: Index,
    pub fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    progress: Progress,
    /// Whether it was created empty now.
    fresh: bool,
}

/// Opens the index in `dir`, or creates an empty one there when it is
/// missing, unreadable or of another layout.
pub fn open(dir: &Path) -> std::result::Result<Opened, String> {
    match open_existing(dir) {
        Ok(opened) => Ok(opened),
        Err(reason) => {
            if dir.exists() {
                tracing::warn!(%reason, dir = %dir.display(), "rebuilding the search index");
                std::fs::remove_dir_all(dir)
                    .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
            }
            create(dir)
        }
    }
}

fn open_existing(dir: &Path) -> std::result::Result<Opened, String> {
    if !dir.join("meta.json").exists() {
        return Err("no index".into());
    }
    let directory = MmapDirectory::open(dir).map_err(|e| e.to_string())?;
    let index = Index::open(directory).map_err(|e| e.to_string())?;
    let (schema, fields) = Fields::schema();
    if index.schema() != schema {
        return Err("the index has another schema".into());
    }
    let metas = index.load_metas().map_err(|e| e.to_string())?;
    let progress: Progress = match metas.payload.as_deref() {
        Some(payload) => serde_json::from_str(payload).map_err(|e| e.to_string())?,
        None => Progress::default(),
    };
    if metas.payload.is_some() && progress.layout != LAYOUT_VERSION {
        return Err(format!("index layout {}", progress.layout));
    }
    writer_for(index, fields, progress, false)
}

fn create(dir: &Path) -> std::result::Result<Opened, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (schema, fields) = Fields::schema();
    let index = Index::create_in_dir(dir, schema)
        .map_err(|e| format!("cannot create the search index: {e}"))?;
    writer_for(index, fields, Progress::default(), true)
}

fn writer_for(
    index: Index,
    fields: Fields,
    progress: Progress,
    fresh: bool,
) -> std::result::Result<Opened, String> {
    index
        .tokenizers()
        .register(analyzer::NAME, analyzer::analyzer());
    let writer = index
        .writer_with_num_threads(1, WRITER_MEMORY)
        .map_err(|e| format!("cannot write the search index: {e}"))?;
    Ok(Opened {
        index,
        fields,
        writer,
        progress,
        fresh,
    })
}

/// Starts the indexer thread; `reader` is reloaded after each commit.
pub(super) fn start(
    opened: Opened,
    store: Store,
    feed: mpsc::Receiver<Feed>,
    reader: IndexReader,
) -> std::result::Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("confab-search".into())
        .spawn(move || {
            // Indexing may lag a moment; posting and delivery may not. The
            // index writer's own threads, started below, inherit this.
            crate::thread_priority::lower();
            let mut indexer = Indexer::new(opened, Some(reader));
            indexer.catch_up(&store);
            indexer.run(feed, &store);
        })
        .map_err(|e| format!("cannot start the search indexer: {e}"))
}

/// Indexes everything the store has, offline; returns the document count.
pub(super) fn build_offline(opened: Opened, store: &Store) -> std::result::Result<u64, String> {
    let mut indexer = Indexer::new(opened, None);
    indexer.catch_up(store);
    indexer.progress.clean = true;
    indexer.commit().map_err(|e| e.to_string())?;
    let searcher = indexer
        .index
        .reader()
        .map_err(|e| e.to_string())?
        .searcher();
    let count = searcher.num_docs();
    indexer
        .writer
        .wait_merging_threads()
        .map_err(|e| e.to_string())?;
    Ok(count)
}

struct Indexer {
    index: Index,
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    progress: Progress,
    fresh: bool,
    /// The searchers' reader, reloaded after each commit.
    reader: Option<IndexReader>,
    pending: usize,
    last_commit: Instant,
    /// Topics to catch up before the next commit.
    touched: BTreeSet<u64>,
}

impl Indexer {
    fn new(opened: Opened, reader: Option<IndexReader>) -> Indexer {
        Indexer {
            index: opened.index,
            fields: opened.fields,
            writer: opened.writer,
            progress: opened.progress,
            fresh: opened.fresh,
            reader,
            pending: 0,
            last_commit: Instant::now(),
            touched: BTreeSet::new(),
        }
    }

    /// Indexes what the store has beyond the progress; after an unclean
    /// stop, also re-applies deletions and recent edits.
    fn catch_up(&mut self, store: &Store) {
        let started = Instant::now();
        let repair = !self.fresh && !self.progress.clean;
        let edits_since = self.progress.edits_ms.saturating_sub(EDIT_MARGIN_MS);
        let topic_ids = match store.topic_ids_blocking() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "search catch-up cannot list topics");
                return;
            }
        };
        let mut added = 0u64;
        for topic_id in topic_ids {
            let head = self.progress.heads.get(&topic_id).copied().unwrap_or(0);
            let mut after = if repair { 0 } else { head };
            loop {
                let chunk = store.messages_after_blocking(topic_id, after, CATCH_UP_CHUNK);
                let (chunk, more) = match chunk {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::error!(error = %e, topic_id, "search catch-up cannot read");
                        break;
                    }
                };
                for stored in &chunk {
                    if stored.seq > head {
                        if !stored.record.deleted {
                            self.add(stored);
                            added += 1;
                        }
                    } else if stored.record.deleted {
                        self.remove(stored.record.id);
                    } else if stored.record.edited_at.is_some_and(|t| t >= edits_since) {
                        self.replace(stored);
                    }
                }
                if let Some(last) = chunk.last() {
                    after = last.seq;
                    let covered = self.progress.heads.entry(topic_id).or_insert(0);
                    *covered = (*covered).max(last.seq);
                }
                if self.pending >= COMMIT_DOCS {
                    self.commit_logged();
                }
                if !more {
                    break;
                }
            }
        }
        self.progress.clean = false;
        self.commit_logged();
        if added > 0 || repair {
            tracing::info!(
                added,
                repair,
                seconds = started.elapsed().as_secs_f64(),
                "search index caught up with the store"
            );
        }
    }

    /// Drops every document and indexes the whole store again. Searches
    /// answer meanwhile: from the old documents until the first commit of
    /// the rebuild, then from what it has indexed so far. Feeds queued
    /// meanwhile are applied after it (new messages it already covered
    /// are skipped by their seq).
    fn rebuild(&mut self, store: &Store) -> std::result::Result<u64, String> {
        let started = Instant::now();
        // A delete of everything added before it; what the rebuild adds
        // after it stays.
        self.writer
            .delete_query(Box::new(tantivy::query::AllQuery))
            .map_err(|e| e.to_string())?;
        self.progress = Progress::default();
        self.fresh = true;
        self.pending += 1;
        self.catch_up(store);
        self.fresh = false;
        self.commit().map_err(|e| e.to_string())?;
        let count = match &self.reader {
            Some(reader) => reader.searcher().num_docs(),
            None => 0,
        };
        tracing::info!(
            count,
            seconds = started.elapsed().as_secs_f64(),
            "search index rebuilt"
        );
        Ok(count)
    }

    fn run(mut self, feed: mpsc::Receiver<Feed>, store: &Store) {
        loop {
            let wait = COMMIT_INTERVAL.saturating_sub(self.last_commit.elapsed());
            let next = if self.pending == 0 && self.touched.is_empty() {
                feed.recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                feed.recv_timeout(wait)
            };
            match next {
                Ok(Feed::Put(stored)) => {
                    let head = self.progress.heads.entry(stored.topic_id).or_insert(0);
                    if stored.seq == *head + 1 {
                        *head = stored.seq;
                        if !stored.record.deleted {
                            self.add(&stored);
                        }
                    } else if stored.seq > *head {
                        // Messages of other nodes lie between: read them all
                        // in order rather than skip past them.
                        self.touched.insert(stored.topic_id);
                    }
                }
                Ok(Feed::Replace(stored)) => self.replace(&stored),
                Ok(Feed::Remove(id)) => self.remove(id),
                Ok(Feed::Touched(topic_id)) => {
                    self.touched.insert(topic_id);
                }
                Ok(Feed::Reread(topic_id, seq)) => self.reread(store, topic_id, seq),
                Ok(Feed::Flush(done)) => {
                    self.commit_logged();
                    let _ = done.send(());
                }
                Ok(Feed::Rebuild(done)) => {
                    let _ = done.send(self.rebuild(store));
                }
                Ok(Feed::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.progress.clean = true;
                    self.commit_logged();
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let due = self.last_commit.elapsed() >= COMMIT_INTERVAL;
            if due && !self.touched.is_empty() {
                self.catch_up_touched(store);
            }
            if self.pending > 0 && (self.pending >= COMMIT_DOCS || due) {
                self.commit_logged();
            }
        }
    }

    /// Indexes what the store has beyond the progress of each touched topic.
    fn catch_up_touched(&mut self, store: &Store) {
        for topic_id in std::mem::take(&mut self.touched) {
            loop {
                let head = self.progress.heads.get(&topic_id).copied().unwrap_or(0);
                let (chunk, more) = match store.messages_after_blocking(
                    topic_id,
                    head,
                    CATCH_UP_CHUNK,
                ) {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, topic_id, "search cannot read new messages; later");
                        self.touched.insert(topic_id);
                        break;
                    }
                };
                for stored in &chunk {
                    if !stored.record.deleted {
                        self.add(stored);
                    }
                }
                if let Some(last) = chunk.last() {
                    self.progress.heads.insert(topic_id, last.seq);
                }
                if !more || chunk.is_empty() {
                    break;
                }
            }
        }
        // A commit follows even when nothing was new, so the wait ends.
        self.pending = self.pending.max(1);
    }

    /// Reads one message again (edited or deleted elsewhere).
    fn reread(&mut self, store: &Store, topic_id: u64, seq: u64) {
        match store.messages_after_blocking(topic_id, seq.saturating_sub(1), 1) {
            Ok((found, _)) => {
                if let Some(stored) = found.first().filter(|s| s.seq == seq) {
                    self.replace(stored);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, topic_id, seq, "search cannot read an edited message")
            }
        }
    }

    fn add(&mut self, stored: &Stored) {
        if let Err(e) = self.writer.add_document(self.fields.document(stored)) {
            tracing::error!(error = %e, "search index cannot add a document");
        }
        self.pending += 1;
    }

    fn remove(&mut self, id: u64) {
        self.writer
            .delete_term(Term::from_field_u64(self.fields.id, id));
        self.pending += 1;
    }

    fn replace(&mut self, stored: &Stored) {
        self.remove(stored.record.id);
        if !stored.record.deleted {
            self.add(stored);
            if let Some(t) = stored.record.edited_at {
                self.progress.edits_ms = self.progress.edits_ms.max(t);
            }
        }
    }

    fn commit_logged(&mut self) {
        if let Err(e) = self.commit() {
            tracing::error!(error = %e, "search index commit failed");
        }
    }

    fn commit(&mut self) -> tantivy::Result<()> {
        self.progress.layout = LAYOUT_VERSION;
        let payload = serde_json::to_string(&self.progress)
            .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.pending = 0;
        self.last_commit = Instant::now();
        if let Some(reader) = &self.reader {
            reader.reload()?;
        }
        Ok(())
    }
}
