//! The embedded backend: opens the redb file in the data directory, creates
//! every table, checks the schema version, and runs reads on the blocking
//! pool and writes through the single [`writer`] thread.
//!
//! One file per aggregate (`users`, `tokens`, `meta`, ...) keeps each table's
//! key layout next to the code that uses it; [`tables`] is the catalog and
//! [`backend`] maps the store's operations onto them.

pub mod attachments;
pub mod backend;
pub mod batch_tables;
pub mod bot_limits;
pub mod bots;
pub mod codec;
pub mod conversations;
pub mod deliveries;
pub mod delivery_log;
mod error;
pub mod export;
pub mod hooks;
pub mod ignores;
pub mod mail_queue;
pub mod mentions;
pub mod messages;
pub mod meta;
pub mod password_resets;
pub mod posting;
pub mod reactions;
pub mod reads;
pub mod rooms;
pub mod tables;
pub mod tokens;
pub mod topics;
pub mod users;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::error::{Error, Result};
use crate::store::{CommitObserver, OpenError};
pub use writer::{WriteCtx, Writer};

/// The schema this build writes. A store with a higher version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// The redb file in a data directory.
pub fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::config::STORE_FILE)
}

/// Shared handle to the open embedded store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Writer,
    writer_thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<data_dir>/confab.redb`.
    pub fn open(
        data_dir: &Path,
        cache_mib: usize,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> std::result::Result<EmbeddedStore, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| OpenError::DataDir {
            path: data_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let path = store_file(data_dir);
        let other = |reason: String| OpenError::Other {
            path: path.clone(),
            reason,
        };
        let db = Database::builder()
            .set_cache_size(cache_mib.saturating_mul(1024 * 1024))
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    OpenError::Locked(data_dir.to_path_buf())
                }
                other_error => other(other_error.to_string()),
            })?;
        let found = meta::init(&db).map_err(|e| other(e.to_string()))?;
        if found > SCHEMA_VERSION {
            return Err(OpenError::TooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let db = Arc::new(db);
        let (writer, thread) = Writer::start(db.clone(), observer);
        Ok(EmbeddedStore {
            db,
            writer,
            writer_thread: Arc::new(Mutex::new(Some(thread))),
            path,
        })
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer handle.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs a read on the blocking pool inside one short read transaction.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read()?;
            f(&tx)
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }

    /// Runs a read on the calling thread, for threads outside the runtime
    /// (the search indexer, offline commands).
    pub fn read_now<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&ReadTransaction) -> Result<T>,
    {
        let tx = self.db.begin_read()?;
        f(&tx)
    }

    /// Runs `work` in the writer's next batch and waits until it is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Stops the writer once it has committed everything queued before this
    /// call, and waits for it. Later writes fail with "the store is closed";
    /// the file closes when the last handle is dropped.
    fn stop(self) {
        self.writer.stop();
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
