//! A lower CPU priority for background threads whose work may wait a little
//! (password hashing, search indexing), so that when the cores are busy,
//! reads, pushes and broadcasts go first. On an otherwise idle machine the
//! background work still gets every core it can use.

/// How much lower than the server's other threads background work runs.
pub const NICE_INCREMENT: libc::c_int = 10;

/// Lowers the calling thread's CPU priority (on Linux nice is per thread,
/// and threads it starts later inherit it). Elsewhere it does nothing.
pub fn lower() {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority and setpriority only read their integer
    // arguments; gettid names this thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, current + NICE_INCREMENT);
    }
}
