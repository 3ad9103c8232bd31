//! Login throttling: failures are counted per client address and per
//! username in a sliding window; past the limit, attempts get 429 with the
//! time until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failure counters for one kind of key.
#[derive(Default)]
struct Window {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Window {
    fn prune(&mut self, key: &str, now: Instant, window: Duration) -> usize {
        let Some(times) = self.failures.get_mut(key) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        let n = times.len();
        if n == 0 {
            self.failures.remove(key);
        }
        n
    }

    fn retry_after(&self, key: &str, now: Instant, window: Duration) -> Duration {
        self.failures
            .get(key)
            .and_then(|t| t.front())
            .map_or(window, |oldest| {
                window.saturating_sub(now.duration_since(*oldest))
            })
    }
}

/// Per-address and per-username login failure limits.
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    by_ip: Mutex<Window>,
    by_user: Mutex<Window>,
}

impl LoginThrottle {
    /// At most `max_failures` within `window` per address and per username.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginThrottle {
            max_failures: max_failures as usize,
            window,
            by_ip: Mutex::default(),
            by_user: Mutex::default(),
        }
    }

    /// `Err(retry_after)` if either the address or the username is over its limit.
    pub fn check(&self, ip: &str, username: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let user_key = username.to_lowercase();
        for (table, key) in [(&self.by_ip, ip), (&self.by_user, user_key.as_str())] {
            let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
            if table.prune(key, now, self.window) >= self.max_failures {
                return Err(table
                    .retry_after(key, now, self.window)
                    .max(Duration::from_secs(1)));
            }
        }
        Ok(())
    }

    /// Counts one failed attempt.
    pub fn failed(&self, ip: &str, username: &str) {
        let now = Instant::now();
        let user_key = username.to_lowercase();
        for (table, key) in [(&self.by_ip, ip), (&self.by_user, user_key.as_str())] {
            let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
            table.prune(key, now, self.window);
            table
                .failures
                .entry(key.to_string())
                .or_default()
                .push_back(now);
        }
    }

    /// A successful login clears that username's failures.
    pub fn succeeded(&self, username: &str) {
        let mut table = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        table.failures.remove(&username.to_lowercase());
    }

    /// Forgets expired entries (called periodically so memory stays bounded).
    pub fn sweep(&self) {
        let now = Instant::now();
        for table in [&self.by_ip, &self.by_user] {
            let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
            let window = self.window;
            table.failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_per_user() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        assert!(throttle.check("1.1.1.1", "ada").is_ok());
        throttle.failed("1.1.1.1", "ada");
        throttle.failed("1.1.1.1", "bob");
        // the address is now over its limit, whatever the name
        let retry = throttle.check("1.1.1.1", "carol").unwrap_err();
        assert!(retry > Duration::from_secs(50));
        // another address is fine for another user
        assert!(throttle.check("2.2.2.2", "carol").is_ok());
        throttle.failed("2.2.2.2", "ADA");
        // ada has failed twice (from two addresses): the name is throttled
        assert!(throttle.check("3.3.3.3", "ada").is_err());
        throttle.succeeded("ada");
        assert!(throttle.check("3.3.3.3", "ada").is_ok());
    }

    #[test]
    fn failures_expire() {
        let throttle = LoginThrottle::new(1, Duration::from_millis(0));
        throttle.failed("ip", "u");
        assert!(throttle.check("ip", "u").is_ok());
        throttle.sweep();
    }
}
