//! How many threads the blocking pool and password hashing have, both from
//! the core count.
//!
//! Store reads run on tokio's blocking pool; a read is short and CPU-bound,
//! so four threads per core keep the cores busy, between 8 and 32 (more
//! only add stacks and per-thread allocator caches: each thread that ran a
//! read keeps its own freed pages for reuse).
//!
//! Argon2 hashing takes tens of milliseconds of CPU and its whole memory
//! cost (19 MiB by default) per hash, so more hashes at once than cores only
//! queue on the CPU and add memory: one thread per core, at most 16. Those
//! threads are hashing's own ([`crate::auth::hashing_pool`]), not the
//! blocking pool's, at a lower CPU priority: a flood of logins queues there
//! and can neither fill the pool that store reads wait on nor crowd the
//! reads off the cores.

/// Thread counts of the blocking pool and of password hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSizes {
    /// Most threads of tokio's blocking pool (store reads, file work).
    pub blocking_threads: usize,
    /// Threads that hash passwords, i.e. most hashes running at once.
    pub hashing_threads: usize,
}

/// Most hashing threads, whatever the core count (16 × 19 MiB at most).
const MAX_HASHING_THREADS: usize = 16;

impl PoolSizes {
    /// Sizes for `cores` cores.
    pub fn for_cores(cores: usize) -> PoolSizes {
        let cores = cores.max(1);
        PoolSizes {
            blocking_threads: (cores * 4).clamp(8, 32),
            hashing_threads: cores.min(MAX_HASHING_THREADS),
        }
    }

    /// Sizes for this machine (a debug build may be told to assume another
    /// core count, see [`crate::fault`]).
    pub fn of_this_machine() -> PoolSizes {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolSizes::for_cores(crate::fault::cores(cores))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_cores_within_bounds() {
        for cores in 0..=512 {
            let sizes = PoolSizes::for_cores(cores);
            assert!((8..=32).contains(&sizes.blocking_threads), "{sizes:?}");
            assert!(
                (1..=MAX_HASHING_THREADS).contains(&sizes.hashing_threads),
                "{sizes:?}"
            );
            assert!(sizes.hashing_threads <= cores.max(1), "{sizes:?}");
        }
        assert_eq!(
            PoolSizes::for_cores(2),
            PoolSizes {
                blocking_threads: 8,
                hashing_threads: 2
            }
        );
        assert_eq!(PoolSizes::for_cores(64).hashing_threads, 16);
    }
}
