//! The limiter's answer while DynamoDB cannot be reached: an in-memory GCRA bucket per key on
//! this instance, with the same policy. It is exact for this instance only (N instances may admit
//! up to N times the limit), which is the price of not failing requests when the store is down.
//! A bucket starts from the TAT this instance last saw in the store, so an outage does not hand
//! out a fresh burst to a client who had already used theirs.
//!
//! Bounded: at the size limit, refilled buckets are dropped first, then an arbitrary one.

use std::collections::HashMap;
use std::sync::Mutex;

use super::gcra::{self, Decision, Outcome, Rate};

pub const DEFAULT_MAX_KEYS: usize = 10_000;

#[derive(Debug)]
pub struct Fallback {
    tats: Mutex<HashMap<String, u64>>,
    max_keys: usize,
}

impl Default for Fallback {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl Fallback {
    pub fn new(max_keys: usize) -> Self {
        Self { tats: Mutex::new(HashMap::new()), max_keys: max_keys.max(1) }
    }

    /// One GCRA step on this instance's bucket for `key`, starting no lower than `seed`.
    pub fn decide(&self, key: &str, rate: &Rate, now: u64, cost: u64, seed: Option<u64>) -> Outcome {
        let mut map = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let stored = match (map.get(key).copied(), seed) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let tat = match gcra::decide(rate, stored, now, cost) {
            Decision::Allowed { tat } => tat,
            Decision::Denied { .. } => return Outcome::Denied { tat: stored.unwrap_or(now) },
        };
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, t| *t > now);
            if map.len() >= self.max_keys
                && let Some(victim) = map.keys().next().cloned()
            {
                map.remove(&victim);
            }
        }
        map.insert(key.to_string(), tat);
        Outcome::Allowed { tat }
    }

    /// The TAT this instance's fallback bucket holds for `key`.
    pub fn known(&self, key: &str) -> Option<u64> {
        self.tats.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = gcra::MICROS_PER_SEC;

    #[test]
    fn admits_the_policy_burst_per_key() {
        let f = Fallback::default();
        let rate = Rate::new(3, 60).unwrap();
        let now = 1_700_000_000 * S;
        let admitted =
            (0..10).filter(|_| matches!(f.decide("a", &rate, now, 1, None), Outcome::Allowed { .. })).count();
        assert_eq!(admitted, 3);
        assert!(matches!(f.decide("b", &rate, now, 1, None), Outcome::Allowed { .. }));
        assert!(matches!(f.decide("a", &rate, now + 20 * S, 1, None), Outcome::Allowed { .. }));
    }

    #[test]
    fn starts_from_what_the_store_last_said() {
        let f = Fallback::default();
        let rate = Rate::new(3, 60).unwrap();
        let now = 1_700_000_000 * S;
        // The store had the bucket empty (TAT = now + 60 s): no fresh burst during the outage.
        let seed = Some(now + 60 * S);
        assert!(matches!(f.decide("a", &rate, now, 1, seed), Outcome::Denied { .. }));
        assert!(matches!(f.decide("a", &rate, now + 20 * S, 1, seed), Outcome::Allowed { .. }));
    }

    #[test]
    fn stays_bounded() {
        let f = Fallback::new(2);
        let rate = Rate::new(3, 60).unwrap();
        for k in ["a", "b", "c", "d"] {
            f.decide(k, &rate, 0, 1, None);
        }
        assert_eq!(f.tats.lock().unwrap().len(), 2);
    }
}
