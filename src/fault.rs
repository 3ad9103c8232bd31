//! Faults a test injects into a debug build, to prove that the server copes
//! with its own failures (a session task that panics). A release build has
//! none: the checks compile to nothing there, whatever the environment says.
//!
//! `CONFAB_TEST_PANIC_EVENT=NAME` makes a socket session panic when a client
//! pushes the channel event `NAME`.

/// The variable naming the event that panics a session.
pub const PANIC_EVENT_ENV: &str = "CONFAB_TEST_PANIC_EVENT";

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
