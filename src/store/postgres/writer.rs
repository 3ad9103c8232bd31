//! The writer: posts, edits, deletes and reactions go through one task that
//! batches what is queued into one transaction (group commit) and completes
//! each operation after its COMMIT has returned.
//!
//! # Order with several connections
//!
//! Up to [`PIPELINE`] batches are in flight at once, each on its own pooled
//! connection, so one batch's COMMIT (an fsync on the server) overlaps the
//! next batch's statements. Per topic, seqs and broadcasts still follow
//! commit order:
//!
//! - a batch first locks the `topics` rows of every topic it writes
//!   (`SELECT … FOR UPDATE`, in id order so two batches never deadlock) and
//!   reads their `last_seq` only then. A later batch touching the same topic
//!   therefore waits until the earlier one has committed (or rolled back)
//!   and continues from the seq it left: seqs are gapless and increase in
//!   commit order;
//! - batches take their locks in queue order ([`posting::LockTurn`]): batch
//!   N+1 sends its lock statement only once batch N holds its locks (or has
//!   failed without them). Without this, N+1's statement could reach the
//!   server first on its own connection and take a topic's next seqs ahead
//!   of the older batch, so one socket's pushes would get seqs out of push
//!   order;
//! - completions are taken from an ordered queue ([`FuturesOrdered`]): the
//!   operations of batch N+1 complete only after every operation of batch N
//!   has, whatever finished first on the server. The callers broadcast from
//!   their completion, so a topic's broadcasts leave in seq order.
//!
//! A batch that fails with a deadlock or serialization error while taking
//! its locks is run again once on a new transaction (its successor still
//! waits for it); any other failure, and any failure once the successor has
//! been let go, fails the operations of that batch (nothing of it was
//! committed) and not the others: running it again then would give it seqs
//! after its successor's.

use std::time::Instant;

use deadpool_postgres::Pool;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::posting;
use crate::error::{Error, Result};
use crate::store::ops::{
    ChangeOutcome, ChangeRequest, PostOutcome, PostRequest, ReactRequest, Toggled,
};
use crate::store::CommitObserver;
use std::sync::Arc;

/// Most operations in one transaction.
const MAX_BATCH: usize = 512;
/// Batches in flight at once, each on its own connection.
const PIPELINE: usize = 3;
/// Operations waiting before submitters wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;

/// A completion, run once the operation is durable (or failed).
pub type Done<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// What one queued write asks for.
pub enum Request {
    Post(PostRequest),
    Change(ChangeRequest),
    React(ReactRequest),
}

/// Where one queued write's outcome goes.
enum Op {
    Post(Done<PostOutcome>),
    Change(Done<ChangeOutcome>),
    React(Done<Toggled>),
}

/// What one operation came to inside its batch, before the commit.
pub enum Outcome {
    Post(Result<PostOutcome>),
    Change(Result<ChangeOutcome>),
    React(Result<Toggled>),
}

impl Op {
    /// Runs the completion with `outcome` (the batch committed) or with
    /// `failure` (it did not).
    fn finish(self, outcome: Option<Outcome>, failure: &Option<Error>) {
        fn pick<T>(result: Option<Result<T>>, failure: &Option<Error>) -> Result<T> {
            match (failure, result) {
                (Some(error), _) => Err(copy(error)),
                (None, Some(result)) => result,
                (None, None) => Err(Error::Internal("operation was not applied".into())),
            }
        }
        match (self, outcome) {
            (Op::Post(done), Some(Outcome::Post(r))) => done(pick(Some(r), failure)),
            (Op::Post(done), _) => done(pick(None, failure)),
            (Op::Change(done), Some(Outcome::Change(r))) => done(pick(Some(r), failure)),
            (Op::Change(done), _) => done(pick(None, failure)),
            (Op::React(done), Some(Outcome::React(r))) => done(pick(Some(r), failure)),
            (Op::React(done), _) => done(pick(None, failure)),
        }
    }
}

/// The same failure for every operation of a batch.
fn copy(error: &Error) -> Error {
    match error {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        Error::Store(m) => Error::Store(m.clone()),
        other => Error::Store(other.to_string()),
    }
}

/// What the writer's queue carries. Nearly every job is an `Op`, so the
/// size difference to `Stop` costs nothing; boxing would add an allocation
/// per write.
#[allow(clippy::large_enum_variant)]
enum Job {
    Op(Request, Op),
    Stop,
}

/// Handle to the writer task. Cloning shares it.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn start(pool: Pool, observer: Option<Arc<dyn CommitObserver>>) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(pool, rx, observer));
        Writer { queue }
    }

    async fn submit(&self, request: Request, op: Op) {
        if let Err(mpsc::error::SendError(Job::Op(_, op))) =
            self.queue.send(Job::Op(request, op)).await
        {
            op.finish(
                None,
                &Some(Error::Unavailable("the store is closed".into())),
            );
        }
    }

    /// Queues a post; `done` runs once it is durable (or failed).
    pub async fn post<D>(&self, request: PostRequest, done: D)
    where
        D: FnOnce(Result<PostOutcome>) + Send + 'static,
    {
        self.submit(Request::Post(request), Op::Post(Box::new(done)))
            .await;
    }

    /// Queues an edit or delete.
    pub async fn change<D>(&self, request: ChangeRequest, done: D)
    where
        D: FnOnce(Result<ChangeOutcome>) + Send + 'static,
    {
        self.submit(Request::Change(request), Op::Change(Box::new(done)))
            .await;
    }

    /// Queues a reaction toggle.
    pub async fn react<D>(&self, request: ReactRequest, done: D)
    where
        D: FnOnce(Result<Toggled>) + Send + 'static,
    {
        self.submit(Request::React(request), Op::React(Box::new(done)))
            .await;
    }

    /// Finishes what is queued, then refuses later writes.
    pub fn stop(&self) {
        let _ = self.queue.try_send(Job::Stop);
    }
}

/// A batch that has run: its operations, their outcomes, and the failure
/// that rolled it back (if any).
struct Finished {
    ops: Vec<Op>,
    outcomes: Vec<Outcome>,
    failure: Option<Error>,
    seconds: f64,
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>, observer: Option<Arc<dyn CommitObserver>>) {
    let mut in_flight = FuturesOrdered::new();
    let mut stopping = false;
    // Resolves once the newest batch in flight holds its topic locks.
    let mut newest_locked: Option<oneshot::Receiver<()>> = None;
    loop {
        let room = in_flight.len() < PIPELINE && !stopping;
        tokio::select! {
            biased;
            Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                complete(finished, observer.as_deref());
            }
            job = rx.recv(), if room => {
                let mut requests = Vec::new();
                let mut ops = Vec::new();
                match job {
                    Some(Job::Op(request, op)) => {
                        requests.push(request);
                        ops.push(op);
                    }
                    Some(Job::Stop) | None => stopping = true,
                }
                while !stopping && ops.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Job::Op(request, op)) => {
                            requests.push(request);
                            ops.push(op);
                        }
                        Ok(Job::Stop) => stopping = true,
                        Err(_) => break,
                    }
                }
                if !ops.is_empty() {
                    let (then, locked) = oneshot::channel();
                    let turn = posting::LockTurn {
                        after: newest_locked.replace(locked),
                        then: Some(then),
                    };
                    in_flight.push_back(execute(pool.clone(), requests, ops, turn));
                }
            }
            else => break,
        }
        if stopping && in_flight.is_empty() {
            break;
        }
    }
    // Later writes are refused: the receiver is dropped here.
    rx.close();
    while let Ok(Job::Op(_, op)) = rx.try_recv() {
        op.finish(
            None,
            &Some(Error::Unavailable("the store is closed".into())),
        );
    }
}

/// Runs the completions of a finished batch, in queue order.
fn complete(finished: Finished, observer: Option<&dyn CommitObserver>) {
    let Finished {
        ops,
        outcomes,
        failure,
        seconds,
    } = finished;
    if let Some(observer) = observer {
        observer.committed(ops.len(), seconds, failure.is_none());
    }
    if let Some(error) = &failure {
        tracing::error!(error = %error, ops = ops.len(), "store commit failed");
    }
    let mut outcomes = outcomes.into_iter();
    for op in ops {
        op.finish(outcomes.next(), &failure);
    }
}

/// Applies `ops` in one transaction (once more after a deadlock while
/// locking) and commits.
async fn execute(
    pool: Pool,
    requests: Vec<Request>,
    ops: Vec<Op>,
    mut turn: posting::LockTurn,
) -> Finished {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match posting::apply_batch(&pool, &requests, &mut turn).await {
            Ok(outcomes) => {
                return Finished {
                    ops,
                    outcomes,
                    failure: None,
                    seconds: started.elapsed().as_secs_f64(),
                }
            }
            Err(posting::BatchError::Retry(_)) if attempt < 2 && !turn.has_locked() => continue,
            Err(e) => {
                return Finished {
                    ops,
                    outcomes: Vec::new(),
                    failure: Some(e.into_error()),
                    seconds: started.elapsed().as_secs_f64(),
                }
            }
        }
    }
}
