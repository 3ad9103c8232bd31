//! A connection as the hub sees it: its id, its user, and the sending end of
//! its bounded outbound queue. Sending never waits: a full queue marks the
//! connection for closing as a slow consumer. The queue is a plain deque
//! that holds no memory while empty, so an idle socket costs a few words here.
//!
//! A session waits on one thing for everything the hub has for it: the next
//! queued items or the order to close (slowness, shutdown) come out of the
//! same [`Outbox::recv_many`], so each wake registers one waiter, not three.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Broadcast;
/// What a session's writer receives.
pub enum Out {
    /// The reply to a push, answered after later pushes may have been (a
    /// `new_msg`, once durable): the session writes it in its channel's turn.
    Reply(Box<LateReply>),
    /// A shared broadcast; the session filters and picks the encoding.
    Broadcast(Arc<Broadcast>),
    /// The channel on this topic ended server-side (membership removed).
    Eject(Arc<str>),
    /// The user's credentials changed: re-check this socket's token.
    Recheck,
    /// The user's ignore list changed.
    Ignores(Arc<HashSet<u64>>),
}

/// A reply encoded for this connection, and the topic it answers on.
pub struct LateReply {
    pub topic: String,
    pub frame: String,
}

/// Why the hub wants a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// Its outbound queue overflowed.
    SlowConsumer = 1,
    /// The server is shutting down.
    Shutdown = 2,
}

/// The close flag's value while no [`CloseReason`] has been given.
const OPEN: u8 = 0;

/// A queue that gives its memory back once it has been drained after a burst.
const KEEP_CAPACITY: usize = 8;

struct Queue {
    items: VecDeque<Out>,
    /// The session ended: nothing more is accepted.
    receiver_gone: bool,
}

struct Shared {
    id: u64,
    user_id: u64,
    capacity: usize,
    queue: Mutex<Queue>,
    /// Something was queued, or closing was asked.
    ready: Notify,
    close: AtomicU8,
    /// Closing was asked (for waiters other than the queue's receiver).
    wake: Notify,
}

impl Shared {
    fn closing(&self) -> Option<CloseReason> {
        match self.close.load(Ordering::Acquire) {
            1 => Some(CloseReason::SlowConsumer),
            2 => Some(CloseReason::Shutdown),
            _ => None,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The lock guards plain pushes and drains; a panic cannot leave it inconsistent.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Cheap, cloneable handle to one connection.
#[derive(Clone)]
pub struct ConnTx {
    shared: Arc<Shared>,
}

/// The receiving end of a connection's queue, owned by its session.
pub struct Outbox {
    shared: Arc<Shared>,
}

impl ConnTx {
    /// A handle and the receiving end of a queue of `capacity` frames.
    pub fn new(id: u64, user_id: u64, capacity: usize) -> (ConnTx, Outbox) {
        let shared = Arc::new(Shared {
            id,
            user_id,
            capacity: capacity.max(1),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                receiver_gone: false,
            }),
            ready: Notify::new(),
            close: AtomicU8::new(OPEN),
            wake: Notify::new(),
        });
        (
            ConnTx {
                shared: shared.clone(),
            },
            Outbox { shared },
        )
    }

    /// Connection id, unique for the process lifetime.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The user this connection authenticated as.
    pub fn user_id(&self) -> u64 {
        self.shared.user_id
    }

    /// Queues `out` without waiting. On a full queue the connection is
    /// marked slow and told to close; returns whether it was queued.
    pub fn send(&self, out: Out) -> bool {
        {
            let mut queue = self.shared.queue();
            if queue.receiver_gone {
                return false;
            }
            if queue.items.len() >= self.shared.capacity {
                drop(queue);
                self.close(CloseReason::SlowConsumer);
                return false;
            }
            queue.items.push_back(out);
        }
        self.shared.ready.notify_one();
        true
    }

    /// Asks the session to close for `reason`; the first reason given stands.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.shared.close.compare_exchange(
            OPEN,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.shared.wake.notify_one();
        self.shared.ready.notify_one();
    }

    /// Why the connection must close, if it must.
    pub fn closing(&self) -> Option<CloseReason> {
        self.shared.closing()
    }

    /// Resolves with the reason once [`ConnTx::close`] has been called.
    pub async fn closed(&self) -> CloseReason {
        loop {
            if let Some(reason) = self.closing() {
                return reason;
            }
            self.shared.wake.notified().await;
        }
    }
}

impl Outbox {
    /// Waits until something is queued, then moves up to `limit` items into
    /// `into` and returns how many; or returns why the connection must close,
    /// once that is asked (before anything still queued). Cancel-safe:
    /// nothing is taken before it returns.
    pub async fn recv_many(
        &mut self,
        into: &mut Vec<Out>,
        limit: usize,
    ) -> Result<usize, CloseReason> {
        loop {
            if let Some(reason) = self.shared.closing() {
                return Err(reason);
            }
            {
                let mut queue = self.shared.queue();
                if !queue.items.is_empty() {
                    let n = queue.items.len().min(limit.max(1));
                    into.extend(queue.items.drain(..n));
                    if queue.items.is_empty() && queue.items.capacity() > KEEP_CAPACITY {
                        queue.items = VecDeque::new();
                    }
                    return Ok(n);
                }
            }
            // A notification sent since the checks above is kept as a permit.
            self.shared.ready.notified().await;
        }
    }

    /// The next queued item, or `None` once the connection must close.
    pub async fn recv(&mut self) -> Option<Out> {
        let mut one = Vec::with_capacity(1);
        self.recv_many(&mut one, 1).await.ok()?;
        one.pop()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut queue = self.shared.queue();
        queue.receiver_gone = true;
        queue.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_overflow_closes_before_the_backlog_and_its_reason_stands() {
        let (conn, mut outbox) = ConnTx::new(1, 10, 2);
        assert!(conn.send(Out::Recheck));
        assert!(conn.send(Out::Recheck));
        // The third frame does not fit a queue of two.
        assert!(!conn.send(Out::Recheck));
        conn.close(CloseReason::Shutdown);
        assert_eq!(conn.closing(), Some(CloseReason::SlowConsumer));
        let mut batch = Vec::new();
        assert!(matches!(
            outbox.recv_many(&mut batch, 64).await,
            Err(CloseReason::SlowConsumer)
        ));
        assert!(batch.is_empty(), "nothing is written to a closing socket");
        assert_eq!(conn.closed().await, CloseReason::SlowConsumer);
    }

    #[tokio::test]
    async fn a_receiver_blocked_on_an_empty_queue_hears_the_close() {
        let (conn, mut outbox) = ConnTx::new(1, 10, 8);
        let mut batch = Vec::new();
        let mut receiving = std::pin::pin!(outbox.recv_many(&mut batch, 64));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            std::future::Future::poll(receiving.as_mut(), &mut cx).is_pending(),
            "an empty queue waits"
        );
        conn.close(CloseReason::Shutdown);
        let received = tokio::time::timeout(std::time::Duration::from_secs(5), receiving)
            .await
            .expect("the close wakes the waiting receiver");
        assert!(matches!(received, Err(CloseReason::Shutdown)));
    }
}
