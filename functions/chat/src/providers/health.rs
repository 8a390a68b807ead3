//! Per-instance memory of how upstreams behaved: key cooldowns (a key that got 429 rests for its
//! Retry-After) and a circuit per provider (after N consecutive failures the provider is skipped for
//! a while; after that the next request tries it again and one more failure re-opens it at once).
//! Time is passed in, so the rules are tested without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub circuit_failures: u32,
    pub circuit_open: Duration,
}

#[derive(Debug, Default)]
struct ProviderState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// Key index -> resting until.
    cooldowns: HashMap<usize, Instant>,
}

#[derive(Debug)]
pub struct HealthBoard {
    policy: HealthPolicy,
    providers: Mutex<HashMap<String, ProviderState>>,
}

impl HealthBoard {
    pub fn new(policy: HealthPolicy) -> Self {
        Self { policy, providers: Mutex::new(HashMap::new()) }
    }

    fn with<R>(&self, provider: &str, f: impl FnOnce(&mut ProviderState) -> R) -> R {
        let mut map = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(provider.to_string()).or_default())
    }

    /// `Err(until)` while the provider's circuit is open.
    pub fn circuit(&self, provider: &str, now: Instant) -> Result<(), Instant> {
        self.with(provider, |s| match s.open_until {
            Some(until) if until > now => Err(until),
            _ => Ok(()),
        })
    }

    /// `Err(until)` while the key rests.
    pub fn key(&self, provider: &str, key: usize, now: Instant) -> Result<(), Instant> {
        self.with(provider, |s| match s.cooldowns.get(&key) {
            Some(&until) if until > now => Err(until),
            _ => Ok(()),
        })
    }

    pub fn cool_down(&self, provider: &str, key: usize, until: Instant) {
        self.with(provider, |s| {
            let e = s.cooldowns.entry(key).or_insert(until);
            *e = (*e).max(until);
        });
    }

    pub fn record_success(&self, provider: &str) {
        self.with(provider, |s| {
            s.consecutive_failures = 0;
            s.open_until = None;
        });
    }

    /// Counts a provider-level failure; returns true if this opened (or re-opened) the circuit.
    pub fn record_failure(&self, provider: &str, now: Instant) -> bool {
        let policy = self.policy;
        let opened = self.with(provider, |s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if s.consecutive_failures >= policy.circuit_failures {
                s.open_until = Some(now + policy.circuit_open);
                true
            } else {
                false
            }
        });
        if opened {
            baatcheet_shared::metrics::record_circuit_open(provider);
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> HealthBoard {
        HealthBoard::new(HealthPolicy { circuit_failures: 3, circuit_open: Duration::from_secs(30) })
    }

    #[test]
    fn circuit_opens_after_consecutive_failures_and_half_opens_later() {
        let b = board();
        let t0 = Instant::now();
        assert!(!b.record_failure("p", t0));
        assert!(!b.record_failure("p", t0));
        assert!(b.circuit("p", t0).is_ok());
        assert!(b.record_failure("p", t0));
        assert_eq!(b.circuit("p", t0 + Duration::from_secs(29)), Err(t0 + Duration::from_secs(30)));
        assert!(b.circuit("other", t0).is_ok(), "circuits are per provider");
        // After the open period one trial is let through; its failure re-opens at once.
        let later = t0 + Duration::from_secs(31);
        assert!(b.circuit("p", later).is_ok());
        assert!(b.record_failure("p", later));
        assert!(b.circuit("p", later).is_err());
        b.record_success("p");
        assert!(b.circuit("p", later).is_ok());
        assert!(!b.record_failure("p", later), "success resets the count");
    }

    #[test]
    fn success_between_failures_keeps_the_circuit_closed() {
        let b = board();
        let t = Instant::now();
        for _ in 0..10 {
            b.record_failure("p", t);
            b.record_failure("p", t);
            b.record_success("p");
        }
        assert!(b.circuit("p", t).is_ok());
    }

    #[test]
    fn key_cooldowns_are_per_key_and_keep_the_longest() {
        let b = board();
        let t = Instant::now();
        b.cool_down("p", 0, t + Duration::from_secs(10));
        b.cool_down("p", 0, t + Duration::from_secs(5));
        assert_eq!(b.key("p", 0, t), Err(t + Duration::from_secs(10)));
        assert!(b.key("p", 1, t).is_ok());
        assert!(b.key("p", 0, t + Duration::from_secs(10)).is_ok());
    }
}
