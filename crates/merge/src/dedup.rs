//! Exact-duplicate removal within a time window (SPAN ports and two taps on one link copy
//! packets): a packet is a duplicate when an earlier one with the same link type, the same
//! captured bytes and the same original length was kept no longer than the window before it.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};

/// Remembers the packets kept within the last `window` nanoseconds.
#[derive(Debug)]
pub struct Dedup<'a> {
    window: i64,
    /// (time, hash) of kept packets, oldest first.
    recent: VecDeque<(i64, u64)>,
    /// hash → (time, link type, original length, bytes) of the latest kept packet with it.
    seen: FxHashMap<u64, (i64, u16, u32, &'a [u8])>,
    /// Packets found to be duplicates so far.
    pub dropped: u64,
}

impl<'a> Dedup<'a> {
    #[must_use]
    pub fn new(window_ns: i64) -> Self {
        Dedup {
            window: window_ns.max(0),
            recent: VecDeque::new(),
            seen: FxHashMap::default(),
            dropped: 0,
        }
    }

    /// Whether this packet duplicates one kept within the window; if not, it is remembered.
    /// Packets must come in time order (a merge's output order).
    pub fn is_duplicate(&mut self, ts: i64, link: u16, orig_len: u32, data: &'a [u8]) -> bool {
        while let Some(&(t, h)) = self.recent.front() {
            if ts.saturating_sub(t) <= self.window {
                break;
            }
            self.recent.pop_front();
            if self.seen.get(&h).is_some_and(|e| e.0 == t) {
                self.seen.remove(&h);
            }
        }
        let mut hasher = FxHasher::default();
        link.hash(&mut hasher);
        orig_len.hash(&mut hasher);
        data.hash(&mut hasher);
        let h = hasher.finish();
        if let Some(&(t, l, o, d)) = self.seen.get(&h)
            && ts.saturating_sub(t) <= self.window
            && l == link
            && o == orig_len
            && d == data
        {
            self.dropped += 1;
            return true;
        }
        self.seen.insert(h, (ts, link, orig_len, data));
        self.recent.push_back((ts, h));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_copies_within_the_window_only() {
        let a = [1u8, 2, 3];
        let b = [1u8, 2, 4];
        let mut d = Dedup::new(1_000);
        assert!(!d.is_duplicate(0, 1, 3, &a));
        assert!(d.is_duplicate(500, 1, 3, &a), "copy 500 ns later");
        assert!(!d.is_duplicate(600, 1, 3, &b), "different bytes");
        assert!(!d.is_duplicate(700, 1, 9, &a), "different original length");
        assert!(!d.is_duplicate(800, 113, 3, &a), "different link type");
        assert!(d.is_duplicate(1_700, 1, 9, &a), "copy of the 700 ns one");
        assert!(!d.is_duplicate(5_000, 1, 3, &a), "the window has passed");
        assert_eq!(d.dropped, 2);
    }
}
