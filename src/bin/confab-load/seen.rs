//! A growable bitset of message numbers (publisher counters or topic
//! seqs) for loss and duplicate detection: inserting a number twice is a
//! duplicate; a number acknowledged by the server but never inserted was
//! lost. Numbers are relative to a base and capped, so a garbled number
//! cannot make it allocate without bound.

/// Largest span of numbers one set covers (2^26 bits = 8 MiB).
const MAX_SPAN: u64 = 1 << 26;

/// Which numbers at or above `base` have been seen.
#[derive(Default, Clone, Debug)]
pub struct SeqSet {
    base: u64,
    words: Vec<u64>,
    count: u64,
}

/// The outcome of [`SeqSet::insert`].
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    New,
    Duplicate,
    /// Below the base or beyond the span.
    OutOfRange,
}

impl SeqSet {
    /// An empty set for numbers `>= base`.
    pub fn new(base: u64) -> SeqSet {
        SeqSet {
            base,
            words: Vec::new(),
            count: 0,
        }
    }

    /// Marks `n` as seen.
    pub fn insert(&mut self, n: u64) -> Insert {
        let Some(offset) = n.checked_sub(self.base).filter(|&o| o < MAX_SPAN) else {
            return Insert::OutOfRange;
        };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.words[word] & mask != 0 {
            return Insert::Duplicate;
        }
        self.words[word] |= mask;
        self.count += 1;
        Insert::New
    }

    /// Whether `n` has been seen.
    pub fn contains(&self, n: u64) -> bool {
        let Some(offset) = n.checked_sub(self.base) else {
            return false;
        };
        self.words
            .get((offset / 64) as usize)
            .is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    /// How many numbers have been seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The seen numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(move |(w, &bits)| {
            (0..64u64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| self.base + w as u64 * 64 + b)
        })
    }

    /// How many of `lo..=hi` have not been seen.
    pub fn missing(&self, lo: u64, hi: u64) -> u64 {
        (lo..=hi).filter(|&n| !self.contains(n)).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_queries() {
        let mut s = SeqSet::new(10);
        assert_eq!(s.insert(10), Insert::New);
        assert_eq!(s.insert(200), Insert::New);
        assert_eq!(s.insert(10), Insert::Duplicate);
        assert_eq!(s.insert(9), Insert::OutOfRange);
        assert_eq!(s.insert(10 + MAX_SPAN), Insert::OutOfRange);
        assert!(s.contains(200));
        assert!(!s.contains(11));
        assert!(!s.contains(3));
        assert_eq!(s.count(), 2);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10, 200]);
        assert_eq!(s.missing(10, 12), 2);
    }
}
