//! Per-instance knowledge of each bucket's TAT, as last seen in DynamoDB (the new TAT of an
//! admitted request, the stored TAT of a refused one).
//!
//! A bucket's TAT only grows, so a TAT seen earlier is a lower bound of the stored one: when the
//! known TAT alone already refuses a request, the store would refuse it too, and this instance
//! answers 429 without calling DynamoDB until the bucket can admit again. The same knowledge
//! tells the store which of its two conditional updates will match (see `store.rs`).
//!
//! Bounded: at the size limit, buckets that have refilled completely (their TAT is in the past,
//! which says nothing a missing entry would not) are dropped first; if that frees nothing, new
//! keys are not remembered (they are then simply asked of the store).

use std::collections::HashMap;
use std::sync::Mutex;

pub const DEFAULT_MAX_KEYS: usize = 10_000;

#[derive(Debug)]
pub struct DenyCache {
    tats: Mutex<HashMap<String, u64>>,
    max_keys: usize,
}

impl Default for DenyCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl DenyCache {
    pub fn new(max_keys: usize) -> Self {
        Self { tats: Mutex::new(HashMap::new()), max_keys: max_keys.max(1) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding the lock cannot leave a half-written u64: the map stays usable.
        self.tats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest TAT seen for `key`, if any.
    pub fn known(&self, key: &str) -> Option<u64> {
        self.map().get(key).copied()
    }

    /// Records a TAT seen in the store (never lowers what is known).
    pub fn observe(&self, key: &str, tat: u64, now: u64) {
        let mut map = self.map();
        if let Some(t) = map.get_mut(key) {
            *t = (*t).max(tat);
            return;
        }
        if map.len() >= self.max_keys {
            map.retain(|_, t| *t > now);
            if map.len() >= self.max_keys {
                return;
            }
        }
        map.insert(key.to_string(), tat);
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_tat() {
        let c = DenyCache::default();
        c.observe("k", 100, 0);
        c.observe("k", 50, 0);
        assert_eq!(c.known("k"), Some(100));
        c.observe("k", 150, 0);
        assert_eq!(c.known("k"), Some(150));
        assert_eq!(c.known("other"), None);
    }

    #[test]
    fn stays_bounded_dropping_refilled_buckets_first() {
        let c = DenyCache::new(2);
        c.observe("old", 10, 0);
        c.observe("busy", 1_000, 0);
        c.observe("new", 2_000, 500); // "old" refilled at 10 < 500: dropped
        assert_eq!((c.known("old"), c.known("busy"), c.known("new")), (None, Some(1_000), Some(2_000)));
        c.observe("more", 3_000, 500); // nothing refilled: not remembered
        assert_eq!((c.len(), c.known("more")), (2, None));
    }
}
