//! The limiter's answer when DynamoDB cannot decide: an in-memory bucket per key on this
//! instance, bounded twice.
//!
//! - **It remembers.** The key's bucket (the policy's GCRA) starts from the highest TAT this
//!   instance learned from the store for the key (every store decision returns it, see
//!   `deny_cache.rs`), or from its own earlier fallback state, never from a fresh full bucket: a
//!   client who had used 90 of 100 has at most 10 left here.
//! - **It is small.** Each key also has an *allowance* bucket of the policy's failure mode
//!   ([`super::policy::FallbackMode::Allow`]: `n` units per policy window). A request must fit in
//!   both, so a key this instance has never seen (or saw long ago, full) gets at most `n` at once
//!   and `n` per window after that, however many units the policy would have left. The allowance
//!   bucket is never reset by a recovery: an outage that comes and goes does not hand out a new
//!   allowance each time.
//!
//! Every unit admitted here is also kept as a *debt* (a GCRA TAT of its own, so it decays as the
//! bucket would have refilled) and written back to the store when it answers again (see
//! `DynamoStore::charge`): after an outage the stored bucket holds what was admitted during it,
//! from every instance, instead of the state before it.
//!
//! Bounded: at the size limit, idle entries (everything refilled, no debt) are dropped first,
//! then entries without debt, then an arbitrary one.

use std::collections::HashMap;
use std::sync::Mutex;

use super::gcra::{self, Decision, Rate};

pub const DEFAULT_MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The policy's bucket on this instance (0: full).
    tat: u64,
    /// The allowance bucket (0: full).
    allowance_tat: u64,
    /// Admitted here and not yet written back (0: nothing).
    debt_tat: u64,
    /// The policy rate of the last decision (the debt is in its intervals).
    rate: Rate,
}

impl Entry {
    fn idle(&self, now: u64) -> bool {
        self.tat <= now && self.allowance_tat <= now && self.debt_tat <= now
    }
}

/// A fallback decision, as the `RateLimit` fields and a 429 describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole units this instance would still admit for the key.
    pub remaining: u64,
    /// Admitted: microseconds until one more unit is back (0 when full). Refused: until this
    /// request would fit.
    pub wait_us: u64,
}

#[derive(Debug)]
pub struct Fallback {
    entries: Mutex<HashMap<String, Entry>>,
    max_keys: usize,
}

impl Default for Fallback {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl Fallback {
    pub fn new(max_keys: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), max_keys: max_keys.max(1) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Plain numbers: a panic elsewhere cannot leave an entry half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One decision for `key`: the policy's bucket (`rate`, starting no lower than `remembered`,
    /// the TAT last learned from the store) and the `allowance` bucket must both admit `cost`.
    pub fn decide(
        &self,
        key: &str,
        rate: &Rate,
        allowance: &Rate,
        now: u64,
        cost: u64,
        remembered: Option<u64>,
    ) -> Verdict {
        let mut map = self.map();
        let old = map.get(key).copied();
        let tat = old.map(|e| e.tat).max(remembered).unwrap_or(0);
        let allowance_tat = old.map_or(0, |e| e.allowance_tat);
        let decided =
            (gcra::decide(rate, Some(tat), now, cost), gcra::decide(allowance, Some(allowance_tat), now, cost));
        let (Decision::Allowed { tat: new_tat }, Decision::Allowed { tat: new_allowance }) = decided else {
            let wait = |d: Decision| match d {
                Decision::Allowed { .. } => 0,
                Decision::Denied { retry_after_us } => retry_after_us,
            };
            return Verdict {
                allowed: false,
                remaining: gcra::remaining(rate, tat, now).min(gcra::remaining(allowance, allowance_tat, now)),
                wait_us: wait(decided.0).max(wait(decided.1)),
            };
        };
        let debt_tat = old.map_or(0, |e| e.debt_tat).max(now) + rate.increment_us(cost);
        if old.is_none() && map.len() >= self.max_keys {
            Self::evict(&mut map, now, self.max_keys);
        }
        map.insert(key.to_string(), Entry { tat: new_tat, allowance_tat: new_allowance, debt_tat, rate: *rate });
        let (left, left_allowance) =
            (gcra::remaining(rate, new_tat, now), gcra::remaining(allowance, new_allowance, now));
        Verdict {
            allowed: true,
            remaining: left.min(left_allowance),
            wait_us: if left <= left_allowance {
                gcra::next_token_us(rate, new_tat, now)
            } else {
                gcra::next_token_us(allowance, new_allowance, now)
            },
        }
    }

    fn evict(map: &mut HashMap<String, Entry>, now: u64, max_keys: usize) {
        map.retain(|_, e| !e.idle(now));
        if map.len() < max_keys {
            return;
        }
        let victim = map.iter().find(|(_, e)| e.debt_tat <= now).or_else(|| map.iter().next()).map(|(k, _)| k.clone());
        if let Some(victim) = victim {
            map.remove(&victim);
        }
    }

    /// A request the fallback admitted was also admitted by the store (its call answered after
    /// the decision had given up on it): it is already counted there, so it is not written back.
    pub fn settle(&self, key: &str, rate: &Rate, cost: u64, now: u64) {
        if let Some(e) = self.map().get_mut(key) {
            e.debt_tat = e.debt_tat.saturating_sub(rate.increment_us(cost));
            if e.debt_tat <= now {
                e.debt_tat = 0;
            }
        }
    }

    /// Takes what `key` owes the store: its rate and the microseconds to add to its stored TAT
    /// (what was admitted here and has not refilled since). `None` when nothing is owed.
    pub fn take_debt(&self, key: &str, now: u64) -> Option<(Rate, u64)> {
        let mut map = self.map();
        let e = map.get_mut(key)?;
        let owed = e.debt_tat.saturating_sub(now);
        e.debt_tat = 0;
        (owed > 0).then_some((e.rate, owed))
    }

    /// Puts back a debt whose write-back failed.
    pub fn restore_debt(&self, key: &str, rate: Rate, owed_us: u64, now: u64) {
        let mut map = self.map();
        match map.get_mut(key) {
            Some(e) => e.debt_tat = e.debt_tat.max(now) + owed_us,
            None => {
                map.insert(key.to_string(), Entry { tat: 0, allowance_tat: 0, debt_tat: now + owed_us, rate });
            }
        }
    }

    /// Whether `key` owes the store anything.
    pub fn owes(&self, key: &str, now: u64) -> bool {
        self.map().get(key).is_some_and(|e| e.debt_tat > now)
    }

    /// The keys that owe the store something.
    pub fn debtors(&self, now: u64) -> Vec<String> {
        self.map().iter().filter(|(_, e)| e.debt_tat > now).map(|(k, _)| k.clone()).collect()
    }

    /// The TAT this instance's fallback bucket holds for `key` (the policy's bucket).
    pub fn known(&self, key: &str) -> Option<u64> {
        self.map().get(key).map(|e| e.tat).filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = gcra::MICROS_PER_SEC;
    const NOW: u64 = 1_700_000_000 * S;

    fn admitted(
        f: &Fallback,
        key: &str,
        rate: &Rate,
        allowance: &Rate,
        now: u64,
        n: usize,
        seed: Option<u64>,
    ) -> usize {
        (0..n).filter(|_| f.decide(key, rate, allowance, now, 1, seed).allowed).count()
    }

    #[test]
    fn a_key_never_seen_gets_the_allowance_not_the_whole_limit() {
        let f = Fallback::default();
        let rate = Rate::new(100, 3600).unwrap();
        let allowance = Rate::new(10, 3600).unwrap();
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW, 50, None), 10);
        // The allowance refills at its own rate (10 per hour: one per 360 s), not the policy's.
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW + 359 * S, 5, None), 0);
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW + 360 * S, 5, None), 1);
        // Other keys have their own buckets.
        assert_eq!(admitted(&f, "b", &rate, &allowance, NOW, 50, None), 10);
    }

    #[test]
    fn a_remembered_key_starts_from_what_the_store_last_said() {
        let f = Fallback::default();
        let rate = Rate::new(100, 3600).unwrap();
        let allowance = Rate::new(100, 3600).unwrap();
        // The store had 90 of 100 used: 10 left here, even with a generous allowance.
        let seed = Some(NOW + 90 * 36 * S);
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW, 50, seed), 10);
        let v = f.decide("a", &rate, &allowance, NOW, 1, seed);
        assert_eq!((v.allowed, v.remaining, v.wait_us), (false, 0, 36 * S));
        // An empty bucket stays empty until it refills.
        let empty = Some(NOW + 3600 * S);
        assert_eq!(admitted(&f, "b", &rate, &allowance, NOW, 5, empty), 0);
        assert_eq!(admitted(&f, "b", &rate, &allowance, NOW + 36 * S, 5, empty), 1);
    }

    #[test]
    fn admissions_are_owed_to_the_store_as_they_would_have_refilled() {
        let f = Fallback::default();
        let rate = Rate::new(100, 3600).unwrap();
        let allowance = Rate::new(10, 3600).unwrap();
        assert!(f.take_debt("a", NOW).is_none());
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW, 3, None), 3);
        assert!(f.owes("a", NOW));
        assert_eq!(f.debtors(NOW), vec!["a".to_string()]);
        // Three units of 36 s; 36 s later one of them has refilled.
        assert_eq!(f.take_debt("a", NOW + 36 * S), Some((rate, 72 * S)));
        assert!(f.take_debt("a", NOW + 36 * S).is_none(), "taken once");
        f.restore_debt("a", rate, 72 * S, NOW + 36 * S);
        // A late store answer for one of them: it is counted there already.
        f.settle("a", &rate, 1, NOW + 36 * S);
        assert_eq!(f.take_debt("a", NOW + 36 * S), Some((rate, 36 * S)));
        // Refused requests owe nothing.
        let g = Fallback::default();
        let empty = Some(NOW + 3600 * S);
        assert_eq!(admitted(&g, "a", &rate, &allowance, NOW, 5, empty), 0);
        assert!(!g.owes("a", NOW));
    }

    #[test]
    fn the_allowance_is_not_renewed_by_a_short_recovery() {
        let f = Fallback::default();
        let rate = Rate::new(100, 3600).unwrap();
        let allowance = Rate::new(10, 3600).unwrap();
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW, 10, None), 10);
        // The store came back, the debt was written back, then it failed again.
        assert!(f.take_debt("a", NOW + S).is_some());
        assert_eq!(admitted(&f, "a", &rate, &allowance, NOW + 2 * S, 10, None), 0);
    }

    #[test]
    fn stays_bounded_and_keeps_debts_longest() {
        let f = Fallback::new(2);
        let rate = Rate::new(3, 60).unwrap();
        f.decide("a", &rate, &rate, NOW, 1, None);
        f.settle("a", &rate, 1, NOW); // no debt left
        f.decide("b", &rate, &rate, NOW, 1, None);
        f.decide("c", &rate, &rate, NOW, 1, None);
        assert_eq!(f.map().len(), 2);
        assert!(f.owes("b", NOW) && f.owes("c", NOW), "the entry without a debt went first");
    }
}
