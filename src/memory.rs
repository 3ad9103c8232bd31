//! Allocator settings for a long-running server. Password hashing allocates
//! its whole argon2 memory cost (19 MiB by default) per hash on a
//! blocking-pool thread, which may then sit idle.
//!
//! The `confab` binary allocates with mimalloc (see `main.rs`), which gives
//! freed memory back only when the freeing thread allocates again; so a
//! thread that has just hashed returns it at once ([`release_freed`]). For
//! allocations that still go through glibc's malloc (C code), a fixed mmap
//! threshold makes every large block a mapping that is unmapped when freed
//! instead of staying in a per-thread arena.

/// Allocations at least this large are served by `mmap` and unmapped on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Applies the settings; call once at start, before threads are spawned.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives the memory this thread has freed back to the system now (mimalloc:
/// collects this thread's heap and purges freed pages). Where mimalloc is
/// linked but not the global allocator it finds little to do.
pub fn release_freed() {
    // SAFETY: mi_collect has no preconditions; it may be called from any
    // thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
