//! One run of the dependency probes answers every `/health` and `/ready` request of an instance
//! for `HEALTH_PROBE_TTL_MS`. Both routes are public and unauthenticated, and a run reads every
//! table and the secret: without sharing, each request would multiply into backend calls (a load
//! balancer's probes, a monitoring burst, a hostile client). Requests that arrive while a run is
//! in flight wait for it (bounded by the probe timeout) instead of starting their own.

use crate::checks::{self, Outcome};
use crate::config::HealthConfig;
use baatcheet_shared::AppContext;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// The outcome of one probe run and when it ran.
#[derive(Clone)]
pub struct Snapshot {
    pub outcomes: Arc<[Outcome]>,
    /// When the run started (reported as `checked_at`).
    pub checked_at: OffsetDateTime,
    started: Instant,
}

pub struct ProbeCache {
    ttl: Duration,
    last: Mutex<Option<Snapshot>>,
}

impl ProbeCache {
    /// `ttl` zero probes on every request.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, last: Mutex::new(None) }
    }

    /// The last run if it is younger than the TTL, else a new run (one at a time).
    pub async fn get(&self, ctx: &AppContext, config: &HealthConfig) -> Snapshot {
        self.get_with(|| checks::run_all(ctx, config)).await
    }

    async fn get_with<F, Fut>(&self, run: F) -> Snapshot
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Vec<Outcome>>,
    {
        let mut last = self.last.lock().await;
        if let Some(fresh) = last.as_ref().filter(|s| s.started.elapsed() < self.ttl) {
            return fresh.clone();
        }
        let started = Instant::now();
        let checked_at = OffsetDateTime::now_utc();
        let snapshot = Snapshot { outcomes: run().await.into(), checked_at, started };
        *last = Some(snapshot.clone());
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Check, Criticality, Status};
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn counting(runs: &AtomicUsize) -> Vec<Outcome> {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        vec![Outcome {
            name: "database",
            criticality: Criticality::Critical,
            check: Check { status: Status::Healthy, latency: 20, error: None },
        }]
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_run_within_the_ttl() {
        let cache = ProbeCache::new(Duration::from_secs(60));
        let runs = AtomicUsize::new(0);
        let all = futures::future::join_all((0..16).map(|_| cache.get_with(|| counting(&runs)))).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(all.iter().all(|s| s.checked_at == all[0].checked_at));
        cache.get_with(|| counting(&runs)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "still within the TTL");
    }

    #[tokio::test]
    async fn zero_ttl_probes_every_time_and_an_expired_run_is_replaced() {
        let runs = AtomicUsize::new(0);
        let cache = ProbeCache::new(Duration::ZERO);
        for _ in 0..3 {
            cache.get_with(|| counting(&runs)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        let runs = AtomicUsize::new(0);
        let cache = ProbeCache::new(Duration::from_millis(50));
        let first = cache.get_with(|| counting(&runs)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = cache.get_with(|| counting(&runs)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(second.checked_at > first.checked_at);
    }
}
