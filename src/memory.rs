//! Allocator settings for a long-running server. Password hashing allocates
//! its whole argon2 memory cost (19 MiB by default) per hash on the blocking
//! pool; with glibc's default, such blocks end up in per-thread arenas and
//! are never returned, so a burst of logins would leave hundreds of MiB of
//! RSS behind. A fixed mmap threshold makes every large block a mapping that
//! is returned to the system when freed.

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
