//! Giving freed memory back to the system. Password hashing allocates its
//! whole argon2 memory cost (19 MiB by default) per hash on a blocking-pool
//! thread, which may then sit idle. The `confab` binary allocates with
//! mimalloc (see `main.rs`), which returns freed memory only when the freeing
//! thread allocates again; so a thread that has just hashed returns it at
//! once ([`release_freed`]).

/// Gives the memory this thread has freed back to the system now (mimalloc:
/// collects this thread's heap and purges freed pages). Where mimalloc is
/// linked but not the global allocator it finds little to do.
pub fn release_freed() {
    // SAFETY: mi_collect has no preconditions; it may be called from any
    // thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
