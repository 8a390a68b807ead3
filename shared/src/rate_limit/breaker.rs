//! Whether this instance treats the rate-limit store as down.
//!
//! Closed (the normal state): every decision goes to DynamoDB. The limiter opens it only when the
//! store *as a whole* fails: a call errs or a decision waits `RATE_LIMIT_STORE_TIMEOUT_MS` while
//! no call of this instance, for any key, got an answer since it began (see
//! `DynamoStore::answered_since`). A slow or contended key whose neighbours are answered never
//! opens it.
//!
//! Open: decisions use their policy's fallback at once, without waiting for the store. One
//! decision per `RATE_LIMIT_STORE_RETRY_MS` (or the background prober, when no request comes)
//! goes to the store as a probe; the first answer closes the breaker, so an outage lasts on an
//! instance only as long as the store's.
//!
//! Times here are the process's monotonic clock, not the limiter's [`super::Clock`]: they
//! measure the store, not the buckets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    retry_us: u64,
    open: AtomicBool,
    /// When the next probe may go (microseconds since `epoch`).
    retry_at_us: AtomicU64,
    /// A background prober is running.
    pub(super) prober: AtomicBool,
    /// Times the breaker opened.
    outages: AtomicU64,
}

/// What a decision may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Ask the store.
    Closed,
    /// The store is down, but this decision is the next probe: ask it.
    Probe,
    /// The store is down: use the fallback.
    Open,
}

impl Breaker {
    pub fn new(retry_after: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            retry_us: retry_after.as_micros() as u64,
            open: AtomicBool::new(false),
            retry_at_us: AtomicU64::new(0),
            prober: AtomicBool::new(false),
            outages: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Open: a decision may probe once per retry period.
    pub fn gate(&self) -> Gate {
        if !self.is_open() {
            return Gate::Closed;
        }
        let now = self.now_us();
        let at = self.retry_at_us.load(Ordering::Acquire);
        if now >= at
            && self.retry_at_us.compare_exchange(at, now + self.retry_us, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            Gate::Probe
        } else {
            Gate::Open
        }
    }

    /// The store failed as a whole: open (or stay open) until the next probe. True if it was
    /// closed.
    pub fn trip(&self) -> bool {
        self.retry_at_us.store(self.now_us() + self.retry_us, Ordering::Release);
        let newly = !self.open.swap(true, Ordering::AcqRel);
        if newly {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        newly
    }

    /// The store answered. True if it was open.
    pub fn close(&self) -> bool {
        self.open.swap(false, Ordering::AcqRel)
    }

    /// How long until the next probe may go.
    pub fn until_retry(&self) -> Duration {
        Duration::from_micros(self.retry_at_us.load(Ordering::Acquire).saturating_sub(self.now_us()))
    }

    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_and_lets_one_probe_through_per_period() {
        let b = Breaker::new(Duration::from_secs(3600));
        assert_eq!(b.gate(), Gate::Closed);
        assert!(b.trip());
        assert!(!b.trip(), "already open");
        assert_eq!(b.gate(), Gate::Open, "not before the retry period");
        assert!(b.close());
        assert_eq!((b.gate(), b.outages()), (Gate::Closed, 1));

        let b = Breaker::new(Duration::ZERO);
        b.trip();
        assert_eq!(b.gate(), Gate::Probe);
        assert!(b.is_open(), "a probe does not close it; an answer does");
    }

    #[test]
    fn one_probe_per_period_however_many_ask() {
        let b = Breaker::new(Duration::from_millis(200));
        b.trip();
        std::thread::sleep(Duration::from_millis(210));
        let gates: Vec<_> = (0..10).map(|_| b.gate()).collect();
        assert_eq!(gates.iter().filter(|g| **g == Gate::Probe).count(), 1, "{gates:?}");
    }
}
