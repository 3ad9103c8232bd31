//! One monotonic clock for the whole process: microseconds since a shared
//! epoch taken at start-up. Publishers write these stamps into message
//! bodies and subscribers in the same process subtract them from their own
//! reading, so end-to-end latencies are measured on one clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The shared epoch (fixed by the first call).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    us_at(Instant::now())
}

/// Microseconds since the epoch at `at` (0 before the epoch).
pub fn us_at(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// The instant `us` microseconds after the epoch, for timers.
pub fn instant_at(us: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch() + Duration::from_micros(us))
}

/// Whole microseconds of a duration.
pub fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}
