//! A connection as the hub sees it: its id, its user, and the sending end of
//! its bounded outbound queue. Sending never waits: a full queue marks the
//! connection for closing as a slow consumer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use super::Broadcast;

/// What a session's writer receives.
pub enum Out {
    /// A frame already encoded for this connection (replies, channel pushes).
    Frame(String),
    /// A shared broadcast; the session filters and picks the encoding.
    Broadcast(Arc<Broadcast>),
    /// The channel on this topic ended server-side (membership removed).
    Eject(Arc<str>),
    /// The user's credentials changed: re-check this socket's token.
    Recheck,
    /// The user's ignore list changed.
    Ignores(Arc<HashSet<u64>>),
}

/// Why the hub wants a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// Still open.
    None = 0,
    /// Its outbound queue overflowed.
    SlowConsumer = 1,
}

struct Shared {
    id: u64,
    user_id: u64,
    queue: mpsc::Sender<Out>,
    close: AtomicU8,
    wake: Notify,
}

/// Cheap, cloneable handle to one connection.
#[derive(Clone)]
pub struct ConnTx {
    shared: Arc<Shared>,
}

impl ConnTx {
    /// A handle and the receiving end of a queue of `capacity` frames.
    pub fn new(id: u64, user_id: u64, capacity: usize) -> (ConnTx, mpsc::Receiver<Out>) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared {
            id,
            user_id,
            queue,
            close: AtomicU8::new(CloseReason::None as u8),
            wake: Notify::new(),
        });
        (ConnTx { shared }, rx)
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
        match self.shared.queue.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the session to close for `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.shared.close.store(reason as u8, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Why the connection must close, if it must.
    pub fn close_reason(&self) -> CloseReason {
        match self.shared.close.load(Ordering::Acquire) {
            1 => CloseReason::SlowConsumer,
            _ => CloseReason::None,
        }
    }

    /// Resolves once [`ConnTx::close`] has been called.
    pub async fn closed(&self) {
        loop {
            if self.close_reason() != CloseReason::None {
                return;
            }
            self.shared.wake.notified().await;
        }
    }
}
