//! The single writer: one dedicated thread owns every redb write transaction.
//! Operations queue up while a commit is in flight and the next batch applies
//! all of them in one transaction with one durable commit (group commit).
//! Each operation's completion runs on this thread after the commit, in queue
//! order, so callers can publish results in exactly the order they became durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::batch_tables::BatchTables;
use crate::error::{Error, Result};
use crate::store::CommitObserver;

/// Most operations applied in one commit.
const MAX_BATCH: usize = 1024;
/// Operations waiting for the writer before submitters wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;

/// State the writer caches between batches (per-topic sequence heads).
/// Thrown away whenever a batch fails, and reloaded from the store.
#[derive(Default)]
pub struct WriterCache {
    /// topic id → last assigned seq.
    pub topic_heads: HashMap<u64, u64>,
}

/// What an operation sees while its batch is open.
pub struct WriteCtx<'a> {
    tx: &'a WriteTransaction,
    pub cache: &'a mut WriterCache,
    /// The hot-path tables, open until something needs the raw transaction.
    tables: Option<BatchTables<'a>>,
}

impl<'a> WriteCtx<'a> {
    fn new(tx: &'a WriteTransaction, cache: &'a mut WriterCache) -> WriteCtx<'a> {
        WriteCtx {
            tx,
            cache,
            tables: None,
        }
    }

    /// The batch transaction. Closes the hot-path tables first, since redb
    /// refuses to open a table twice; they reopen on the next [`Self::tables`].
    /// What is opened through it borrows `self`, so it must be closed before
    /// the hot-path tables can be used again.
    pub fn tx(&mut self) -> &WriteTransaction {
        self.tables = None;
        self.tx
    }

    /// The hot-path tables, opened once and kept open across operations.
    pub fn tables(&mut self) -> Result<&mut BatchTables<'a>> {
        Ok(self.tables_and_cache()?.0)
    }

    /// [`Self::tables`] together with the writer's cache.
    pub fn tables_and_cache(&mut self) -> Result<(&mut BatchTables<'a>, &mut WriterCache)> {
        let tables = match &mut self.tables {
            Some(tables) => tables,
            slot => slot.insert(BatchTables::open(self.tx)?),
        };
        Ok((tables, &mut *self.cache))
    }
}

/// One queued write. `apply` runs inside the batch transaction; `finish` runs
/// after the commit (or with the batch's failure).
trait Op: Send {
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> std::result::Result<(), String>;
    fn finish(self: Box<Self>, outcome: std::result::Result<(), String>);
}

/// An operation made of a closure and a completion.
struct FnOp<T, F, D> {
    work: Option<F>,
    output: Option<Result<T>>,
    done: Option<D>,
}

impl<T, F, D> Op for FnOp<T, F, D>
where
    T: Send,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T> + Send,
    D: FnOnce(Result<T>) + Send,
{
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> std::result::Result<(), String> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        let result = work(ctx);
        // A storage error fails the whole batch; any other error is this
        // operation's own answer (it must not have written anything).
        let failure = match &result {
            Err(Error::Store(message)) => Some(message.clone()),
            _ => None,
        };
        self.output = Some(result);
        match failure {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    fn finish(mut self: Box<Self>, outcome: std::result::Result<(), String>) {
        let result = match outcome {
            Ok(()) => self
                .output
                .take()
                .unwrap_or_else(|| Err(Error::Internal("operation was not applied".into()))),
            Err(message) => Err(Error::Store(message)),
        };
        if let Some(done) = self.done.take() {
            done(result);
        }
    }
}

/// Handle to the writer thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

/// What travels to the writer thread.
enum Job {
    Op(Box<dyn Op>),
    /// Drain what is queued, then end the thread.
    Stop,
}

impl Writer {
    /// Starts the writer thread over `db`. The thread ends once every
    /// handle is dropped and the queue is drained; join the returned handle.
    pub fn start(
        db: Arc<Database>,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = std::thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || run(db, rx, observer))
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (Writer { queue }, handle)
    }

    /// Queues `work`; `done` runs on the writer thread once the batch holding
    /// it is durable (or failed). Completions run in submission order.
    pub async fn submit<T, F, D>(&self, work: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
        D: FnOnce(Result<T>) + Send + 'static,
    {
        let op = Box::new(FnOp {
            work: Some(work),
            output: None,
            done: Some(done),
        });
        if let Err(mpsc::error::SendError(Job::Op(op))) = self.queue.send(Job::Op(op)).await {
            op.finish(Err("the store is closed".into()));
        }
    }

    /// Asks the thread to finish what is queued and stop; later writes fail.
    pub fn stop(&self) {
        let _ = self.queue.try_send(Job::Stop);
    }

    /// Runs `work` in the next batch and waits until it is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(work, move |result| {
            let _ = tx.send(result);
        })
        .await;
        rx.await
            .unwrap_or_else(|_| Err(Error::Unavailable("the store is closed".into())))
    }
}

fn run(db: Arc<Database>, mut rx: mpsc::Receiver<Job>, observer: Option<Arc<dyn CommitObserver>>) {
    let mut cache = WriterCache::default();
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    while !stopping {
        match rx.blocking_recv() {
            Some(Job::Op(op)) => batch.push(op),
            Some(Job::Stop) => stopping = true,
            None => break,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Op(op)) => batch.push(op),
                Ok(Job::Stop) => stopping = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let outcome = apply_batch(&db, &mut cache, &mut batch);
        if let Some(observer) = &observer {
            observer.committed(
                batch.len(),
                started.elapsed().as_secs_f64(),
                outcome.is_ok(),
            );
        }
        if let Err(message) = &outcome {
            tracing::error!(error = %message, ops = batch.len(), "store commit failed");
            cache = WriterCache::default();
        }
        for op in batch.drain(..) {
            op.finish(outcome.clone());
        }
    }
}

fn apply_batch(
    db: &Database,
    cache: &mut WriterCache,
    batch: &mut [Box<dyn Op>],
) -> std::result::Result<(), String> {
    let mut tx = db.begin_write().map_err(|e| e.to_string())?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| e.to_string())?;
    let mut failure = None;
    {
        let mut ctx = WriteCtx::new(&tx, cache);
        for op in batch.iter_mut() {
            if let Err(message) = op.apply(&mut ctx) {
                failure = Some(message);
                break;
            }
        }
    }
    match failure {
        Some(message) => {
            let _ = tx.abort();
            Err(message)
        }
        None => tx.commit().map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::tables::{self, MESSAGES};
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

    #[test]
    fn raw_transaction_and_batch_tables_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tables::create_all(&tx).unwrap();
        let mut cache = WriterCache::default();
        {
            let mut ctx = WriteCtx::new(&tx, &mut cache);
            ctx.tables()
                .unwrap()
                .messages
                .insert((1, 1), &b"one"[..])
                .unwrap();
            // The batch tables are open; the raw transaction must still be
            // able to open the same table (redb refuses a second open).
            let raw = ctx.tx().open_table(MESSAGES).unwrap();
            assert_eq!(raw.get((1, 1)).unwrap().unwrap().value(), b"one");
            drop(raw);
            ctx.tables()
                .unwrap()
                .messages
                .insert((1, 2), &b"two"[..])
                .unwrap();
        }
        tx.commit().unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(MESSAGES).unwrap();
        assert_eq!(table.len().unwrap(), 2);
    }
}
