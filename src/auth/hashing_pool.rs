//! The threads that hash passwords. Argon2 takes tens of milliseconds of
//! CPU and its whole memory cost per hash, so hashing runs on a few threads
//! of its own (see [`crate::pool_sizes`] for how many), fed first come,
//! first served, instead of on tokio's blocking pool: a flood of logins then
//! queues here and never takes the pool threads that store reads need.
//!
//! The threads also run at a lower CPU priority (nice +10 on Linux), so
//! when logins and chat compete for the cores, reads, pushes and broadcasts
//! go first and the logins wait a little longer; on an otherwise idle
//! machine hashing still gets every core it can use.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the hashing threads; they stop once every handle is dropped.
#[derive(Clone)]
pub struct HashingPool {
    jobs: mpsc::Sender<Job>,
}

impl HashingPool {
    /// Starts `threads` hashing threads (at least one).
    pub fn start(threads: usize) -> Result<HashingPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("confab-hash-{i}"))
                .spawn(move || {
                    crate::thread_priority::lower();
                    loop {
                        // The lock is held only while waiting for a job.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(HashingPool { jobs })
    }

    /// Runs `job` on a hashing thread and waits (asynchronously) for it.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(job());
            }))
            .map_err(|_| Error::Unavailable("password hashing has stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Internal("a password hashing job failed".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_named_threads_at_lower_priority() {
        let pool = HashingPool::start(2).unwrap();
        let (name, nice) = pool
            .run(|| {
                let name = std::thread::current().name().map(str::to_string);
                #[cfg(target_os = "linux")]
                // SAFETY: getpriority only reads its integer arguments.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
                #[cfg(not(target_os = "linux"))]
                let nice = crate::thread_priority::NICE_INCREMENT;
                Ok((name, nice))
            })
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("confab-hash-")));
        assert!(
            nice >= crate::thread_priority::NICE_INCREMENT,
            "nice {nice}"
        );
        let err = pool
            .run(|| -> Result<()> { Err(Error::Internal("x".into())) })
            .await;
        assert!(err.is_err());
    }
}
