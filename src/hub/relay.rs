//! Runs what follows a durable commit (broadcasts, unread counts, acks) on
//! the async runtime instead of the store's writer thread, in commit order:
//! one task drains one queue. The writer hands over one closure per
//! operation and goes straight back to its next batch, and waking thousands
//! of subscriber tasks happens on a runtime thread, where it is cheap.

use tokio::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs handed over per wake-up of the relay task.
const JOBS_PER_WAKE: usize = 256;

/// Handle to the relay task.
pub struct Relay {
    queue: mpsc::UnboundedSender<Job>,
}

impl Relay {
    /// Starts the relay task on the current runtime. It ends once every
    /// handle is dropped and its queue is drained.
    pub fn start() -> Relay {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(JOBS_PER_WAKE);
            while jobs.recv_many(&mut batch, JOBS_PER_WAKE).await > 0 {
                for job in batch.drain(..) {
                    job();
                }
            }
        });
        Relay { queue }
    }

    /// Runs `job` after every job handed over before it (at once, here, if
    /// the runtime has already stopped the relay task).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::error::SendError(job)) = self.queue.send(Box::new(job)) {
            job();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn jobs_run_in_the_order_handed_over() {
        let relay = Relay::start();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let thread_seen = seen.clone();
        std::thread::spawn(move || {
            for i in 0..1000 {
                let seen = thread_seen.clone();
                relay.run(move || seen.lock().unwrap().push(i));
            }
            relay.run(move || {
                let _ = done_tx.send(());
            });
        });
        done_rx.await.unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..1000).collect::<Vec<_>>());
    }
}
