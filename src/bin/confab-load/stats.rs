//! Latency statistics: an HDR-style log-linear histogram of microseconds.
//!
//! Values below 128 µs have their own bucket; above, every power of two is
//! split into 64 buckets, so a reported percentile is at most 1/64 (1.6 %)
//! above the true value (the bucket's highest value, capped at the exact
//! maximum). Values are capped at 2^36 µs (about 19 hours). Count, sum and
//! maximum are exact. [`Histogram`] records lock-free through atomics so
//! thousands of connection tasks can share one without a lock; recording
//! is a handful of instructions.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Value};

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const MAX_VALUE: u64 = (1 << 36) - 1;
const BUCKETS: usize = index(MAX_VALUE) + 1;

const fn index(v: u64) -> usize {
    let v = if v > MAX_VALUE { MAX_VALUE } else { v };
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    (shift as usize) * SUB as usize + (v >> shift) as usize
}

/// The highest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < 2 * SUB as usize {
        return i as u64;
    }
    let shift = (i / SUB as usize - 1) as u32;
    let mantissa = (i % SUB as usize) as u64 + SUB;
    ((mantissa + 1) << shift) - 1
}

/// A shared histogram of microsecond values.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one value in microseconds.
    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(us, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The value at quantile `q` (0..=1), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let max = self.max.load(Relaxed);
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= rank {
                return upper(i).min(max);
            }
        }
        max
    }

    /// Count and percentiles in milliseconds, as JSON.
    pub fn summary(&self) -> Value {
        let count = self.count();
        let mean = if count == 0 {
            0.0
        } else {
            self.sum.load(Relaxed) as f64 / count as f64
        };
        json!({
            "count": count,
            "p50_ms": ms(self.quantile(0.50)),
            "p90_ms": ms(self.quantile(0.90)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max.load(Relaxed)),
            "mean_ms": round3(mean / 1000.0),
        })
    }

    /// One human line: `p50 1.234 ms  p99 ...`.
    pub fn line(&self) -> String {
        if self.count() == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (n={})",
            ms(self.quantile(0.50)),
            ms(self.quantile(0.99)),
            ms(self.quantile(0.999)),
            ms(self.max.load(Relaxed)),
            self.count()
        )
    }
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

/// Rounds to three decimals (for JSON figures).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A per-second rate over a window of `window_us` microseconds.
pub fn per_sec(count: u64, window_us: u64) -> f64 {
    if window_us == 0 {
        return 0.0;
    }
    round1(count as f64 * 1e6 / window_us as f64)
}

/// Counts of named outcomes (error classes, close codes), for reports.
#[derive(Default, Debug, Clone)]
pub struct Tally(pub std::collections::BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, key: impl Into<String>, n: u64) {
        *self.0.entry(key.into()).or_default() += n;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            self.add(k.clone(), *v);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn to_json(&self) -> Value {
        json!(self.0)
    }

    /// `a: 3, b: 1`, or `none`.
    pub fn line(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for v in 0..200_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "v={v}");
            assert!(upper(i) >= v, "v={v}");
            assert!(
                upper(i) as f64 <= v as f64 * (1.0 + 1.0 / 64.0) + 1.0,
                "v={v}"
            );
            last = i;
        }
        assert_eq!(index(MAX_VALUE), BUCKETS - 1);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((500..=508).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn rates() {
        assert_eq!(per_sec(500, 2_000_000), 250.0);
        assert_eq!(per_sec(1, 0), 0.0);
    }
}
