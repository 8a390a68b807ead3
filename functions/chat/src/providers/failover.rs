//! Failover: which (provider, key) to try next, and what a failed attempt means for the rest.
//!
//! Order: the providers serving the requested model, in the secret's order; within a provider its
//! keys in order. A key resting after a 429 and a provider whose circuit is open are skipped. The
//! decision table (`decide`) says whether a failure moves to the next key, to the next provider, or
//! stops (the request itself was refused, so no other upstream would accept it either). The caller
//! only fails over before anything reached the client.

use std::time::{Duration, Instant};

use super::catalog::{Catalog, Route};
use super::client::AttemptError;
use super::health::HealthBoard;

#[derive(Debug, Clone, Copy)]
pub struct CooldownPolicy {
    /// A 429 without a usable Retry-After rests the key this long.
    pub default: Duration,
    /// No cooldown is longer (a hostile or buggy Retry-After cannot park a key for days).
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try this provider's next key. `cool_key` rests the failed key; `provider_failure` counts
    /// towards the provider's circuit.
    NextKey { cool_key: Option<Duration>, provider_failure: bool },
    /// Skip this provider's remaining keys (another key cannot help).
    NextProvider { provider_failure: bool },
    /// Give up: the upstream refused the request itself.
    Stop,
}

pub fn decide(err: &AttemptError, policy: CooldownPolicy) -> Decision {
    use Decision::*;
    match err {
        // No TCP/TLS connection: the provider is unreachable whatever the key.
        AttemptError::Connect(_) => NextProvider { provider_failure: true },
        AttemptError::FirstTokenTimeout | AttemptError::Timeout | AttemptError::Transport(_) => {
            NextKey { cool_key: None, provider_failure: true }
        }
        AttemptError::Status { status, retry_after } => match *status {
            429 => NextKey {
                cool_key: Some(retry_after.unwrap_or(policy.default).clamp(Duration::from_secs(1), policy.max)),
                provider_failure: false,
            },
            // A revoked or wrong key: rest it long, another key may work.
            401 | 403 => NextKey { cool_key: Some(policy.max), provider_failure: false },
            408 => NextKey { cool_key: None, provider_failure: true },
            // The provider does not serve the model under that name: a configuration problem there.
            404 => NextProvider { provider_failure: false },
            s if s >= 500 => NextKey { cool_key: None, provider_failure: true },
            _ => Stop,
        },
        // Garbage instead of an answer: that provider is broken right now.
        AttemptError::Protocol(_) | AttemptError::Stream(_) => NextProvider { provider_failure: true },
    }
}

/// One attempt to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub provider: usize,
    /// None for a keyless provider.
    pub key: Option<usize>,
}

/// Walks the candidates of one request.
#[derive(Debug)]
pub struct Plan {
    routes: Vec<Route>,
    route: usize,
    key: usize,
    /// Earliest moment a skipped or failed candidate becomes usable again (for Retry-After).
    earliest: Option<Instant>,
    pub attempts: usize,
}

impl Plan {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes, route: 0, key: 0, earliest: None, attempts: 0 }
    }

    fn note(&mut self, until: Instant) {
        self.earliest = Some(self.earliest.map_or(until, |e| e.min(until)));
    }

    fn advance_provider(&mut self) {
        self.route += 1;
        self.key = 0;
    }

    /// The next usable candidate, skipping open circuits and resting keys.
    pub fn next(&mut self, catalog: &Catalog, health: &HealthBoard, now: Instant) -> Option<Candidate> {
        while let Some(route) = self.routes.get(self.route) {
            let provider = &catalog.providers[route.provider];
            if let Err(until) = health.circuit(&provider.name, now) {
                self.note(until);
                self.advance_provider();
                continue;
            }
            let key_count = provider.keys.len().max(1);
            if self.key >= key_count {
                self.advance_provider();
                continue;
            }
            let key = (!provider.keys.is_empty()).then_some(self.key);
            if let Some(k) = key
                && let Err(until) = health.key(&provider.name, k, now)
            {
                self.note(until);
                self.key += 1;
                continue;
            }
            self.attempts += 1;
            return Some(Candidate { provider: route.provider, key });
        }
        None
    }

    /// Applies a failed attempt's decision to the board and to the walk. Returns false on Stop.
    pub fn failed(
        &mut self,
        candidate: Candidate,
        decision: Decision,
        catalog: &Catalog,
        health: &HealthBoard,
        now: Instant,
    ) -> bool {
        let name = &catalog.providers[candidate.provider].name;
        match decision {
            Decision::Stop => return false,
            Decision::NextKey { cool_key, provider_failure } => {
                if let (Some(d), Some(k)) = (cool_key, candidate.key) {
                    health.cool_down(name, k, now + d);
                    self.note(now + d);
                }
                if provider_failure {
                    health.record_failure(name, now);
                }
                self.key += 1;
            }
            Decision::NextProvider { provider_failure } => {
                if provider_failure {
                    health.record_failure(name, now);
                }
                self.advance_provider();
            }
        }
        if let Err(until) = health.circuit(name, now) {
            self.note(until);
        }
        true
    }

    /// Whole seconds until something may work again (at least 1; `fallback` when nothing is known).
    pub fn retry_after(&self, now: Instant, fallback: Duration) -> u64 {
        let d = self.earliest.map_or(fallback, |e| e.saturating_duration_since(now));
        d.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::catalog::ProviderSpec;
    use crate::providers::health::HealthPolicy;

    const POLICY: CooldownPolicy = CooldownPolicy { default: Duration::from_secs(20), max: Duration::from_secs(600) };

    fn status(status: u16, retry_after: Option<u64>) -> AttemptError {
        AttemptError::Status { status, retry_after: retry_after.map(Duration::from_secs) }
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        assert_eq!(
            decide(&AttemptError::FirstTokenTimeout, POLICY),
            NextKey { cool_key: None, provider_failure: true }
        );
        assert_eq!(
            decide(&status(429, Some(7)), POLICY),
            NextKey { cool_key: Some(Duration::from_secs(7)), provider_failure: false }
        );
        assert_eq!(
            decide(&status(429, None), POLICY),
            NextKey { cool_key: Some(Duration::from_secs(20)), provider_failure: false }
        );
        assert_eq!(
            decide(&status(429, Some(999_999)), POLICY),
            NextKey { cool_key: Some(Duration::from_secs(600)), provider_failure: false },
            "Retry-After is capped"
        );
        assert_eq!(
            decide(&status(429, Some(0)), POLICY),
            NextKey { cool_key: Some(Duration::from_secs(1)), provider_failure: false }
        );
        for s in [500, 502, 503, 504, 529] {
            assert_eq!(decide(&status(s, None), POLICY), NextKey { cool_key: None, provider_failure: true }, "{s}");
        }
        assert_eq!(decide(&status(401, None), POLICY), NextKey { cool_key: Some(POLICY.max), provider_failure: false });
        assert_eq!(decide(&status(404, None), POLICY), NextProvider { provider_failure: false });
        for s in [400, 413, 422] {
            assert_eq!(decide(&status(s, None), POLICY), Stop, "{s}");
        }
        assert_eq!(decide(&AttemptError::Protocol("junk".into()), POLICY), NextProvider { provider_failure: true });
    }

    fn catalog() -> Catalog {
        let specs: Vec<ProviderSpec> = serde_json::from_value(serde_json::json!([
            {"name": "a", "base_url": "http://a.test", "api_keys": ["a0", "a1"], "models": [{"id": "m"}]},
            {"name": "b", "base_url": "http://b.test", "models": [{"id": "m"}, {"id": "other"}]},
            {"name": "c", "base_url": "http://c.test", "api_keys": ["c0"], "models": [{"id": "m"}]}
        ]))
        .unwrap();
        Catalog::from_specs(specs).unwrap()
    }

    fn board(failures: u32) -> HealthBoard {
        HealthBoard::new(HealthPolicy { circuit_failures: failures, circuit_open: Duration::from_secs(30) })
    }

    fn cand(provider: usize, key: Option<usize>) -> Candidate {
        Candidate { provider, key }
    }

    #[test]
    fn walks_keys_then_providers() {
        let (c, h, now) = (catalog(), board(100), Instant::now());
        let mut plan = Plan::new(c.routes("m"));
        let mut seen = Vec::new();
        while let Some(x) = plan.next(&c, &h, now) {
            seen.push(x);
            assert!(plan.failed(x, decide(&status(500, None), POLICY), &c, &h, now));
        }
        assert_eq!(seen, vec![cand(0, Some(0)), cand(0, Some(1)), cand(1, None), cand(2, Some(0))]);
        assert_eq!(plan.retry_after(now, Duration::from_secs(5)), 5);
    }

    #[test]
    fn connect_error_skips_the_providers_other_keys() {
        let (c, h, now) = (catalog(), board(100), Instant::now());
        let mut plan = Plan::new(c.routes("m"));
        let first = plan.next(&c, &h, now).unwrap();
        let err = AttemptError::Connect(reqwest_connect_error());
        plan.failed(first, decide(&err, POLICY), &c, &h, now);
        assert_eq!(plan.next(&c, &h, now), Some(cand(1, None)));
    }

    fn reqwest_connect_error() -> reqwest::Error {
        // Any reqwest::Error will do: the decision depends on the variant, not on the cause.
        reqwest::Client::new().get("not a url").build().unwrap_err()
    }

    #[test]
    fn rate_limited_key_rests_and_is_skipped_by_the_next_request() {
        let (c, h, now) = (catalog(), board(100), Instant::now());
        let mut plan = Plan::new(c.routes("m"));
        let x = plan.next(&c, &h, now).unwrap();
        plan.failed(x, decide(&status(429, Some(10)), POLICY), &c, &h, now);
        assert_eq!(plan.next(&c, &h, now), Some(cand(0, Some(1))));
        // A later request skips key 0 while it rests, and uses it again afterwards.
        let mut plan = Plan::new(c.routes("m"));
        assert_eq!(plan.next(&c, &h, now + Duration::from_secs(9)), Some(cand(0, Some(1))));
        let mut plan = Plan::new(c.routes("m"));
        assert_eq!(plan.next(&c, &h, now + Duration::from_secs(10)), Some(cand(0, Some(0))));
    }

    #[test]
    fn everything_resting_gives_the_earliest_retry_after() {
        let (c, h, now) = (catalog(), board(1), Instant::now());
        h.cool_down("a", 0, now + Duration::from_secs(40));
        h.cool_down("a", 1, now + Duration::from_secs(12));
        h.record_failure("b", now); // opens b's circuit for 30 s
        h.cool_down("c", 0, now + Duration::from_secs(50));
        let mut plan = Plan::new(c.routes("m"));
        assert_eq!(plan.next(&c, &h, now), None);
        assert_eq!(plan.attempts, 0);
        assert_eq!(plan.retry_after(now, Duration::from_secs(5)), 12);
    }

    #[test]
    fn open_circuit_mid_request_skips_remaining_keys() {
        let (c, h, now) = (catalog(), board(1), Instant::now());
        let mut plan = Plan::new(c.routes("m"));
        let x = plan.next(&c, &h, now).unwrap();
        plan.failed(x, decide(&status(503, None), POLICY), &c, &h, now);
        assert_eq!(plan.next(&c, &h, now), Some(cand(1, None)), "a's circuit opened after one failure");
    }

    #[test]
    fn stop_ends_the_walk() {
        let (c, h, now) = (catalog(), board(100), Instant::now());
        let mut plan = Plan::new(c.routes("m"));
        let x = plan.next(&c, &h, now).unwrap();
        assert!(!plan.failed(x, decide(&status(400, None), POLICY), &c, &h, now));
    }

    #[test]
    fn unknown_model_has_no_candidates() {
        let (c, h, now) = (catalog(), board(100), Instant::now());
        assert_eq!(Plan::new(c.routes("nope")).next(&c, &h, now), None);
    }
}
