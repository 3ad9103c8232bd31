//! Faults and conditions a test injects into a debug build, to prove that
//! the server copes with its own failures (a session task that panics) and
//! with machines unlike the test's (many cores). A release build has none:
//! the checks compile to nothing there, whatever the environment says.
//!
//! - `CONFAB_TEST_PANIC_EVENT=NAME` makes a socket session panic when a
//!   client pushes the channel event `NAME`.
//! - `CONFAB_TEST_CORES=N` sizes the thread pools as for `N` cores.
//! - `CONFAB_TEST_LINK_SECS=N` makes password links (welcome, reset) valid
//!   for `N` seconds, so a test can see one expire.

/// The variable naming the event that panics a session.
pub const PANIC_EVENT_ENV: &str = "CONFAB_TEST_PANIC_EVENT";
/// The variable giving the core count to size pools for.
pub const CORES_ENV: &str = "CONFAB_TEST_CORES";
/// The variable giving the validity of password links, in seconds.
pub const LINK_SECS_ENV: &str = "CONFAB_TEST_LINK_SECS";

/// `configured`, or in a debug build the validity in seconds a test asked
/// for password links.
pub fn link_validity(configured: std::time::Duration) -> std::time::Duration {
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var(LINK_SECS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return std::time::Duration::from_secs(secs);
    }
    configured
}

/// The core count to size pools for: `actual`, or in a debug build the
/// count a test asked for.
pub fn cores(actual: usize) -> usize {
    #[cfg(debug_assertions)]
    if let Some(cores) = std::env::var(CORES_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return cores;
    }
    actual
}

/// Panics if this is a debug build told to panic on `event`.
#[inline]
pub fn on_channel_event(event: &str) {
    #[cfg(debug_assertions)]
    if panic_event().is_some_and(|name| name == event) {
        panic!("fault injected: session panics on {event:?}");
    }
    #[cfg(not(debug_assertions))]
    let _ = event;
}

#[cfg(debug_assertions)]
fn panic_event() -> Option<&'static str> {
    static EVENT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    EVENT
        .get_or_init(|| {
            std::env::var(PANIC_EVENT_ENV)
                .ok()
                .filter(|e| !e.is_empty())
        })
        .as_deref()
}
