//! GCRA (the generic cell rate algorithm): a token bucket kept as one number per key, the
//! "theoretical arrival time" (TAT). Pure arithmetic on microseconds; the caller supplies `now`.
//!
//! A bucket of `capacity` tokens refilling over `window` has an emission interval
//! `T = ceil(window / capacity)` (the time one token takes to come back) and a tolerance
//! `tau = capacity * T` (how far the TAT may run ahead of now). A request of `cost` tokens moves
//! the TAT to `max(tat, now) + cost * T` and is allowed when that is at most `now + tau`.
//! `T` is rounded up, so the burst is exactly `capacity` and the refill never runs faster than
//! the configured rate. A missing TAT (or one in the past) is a full bucket. The TAT only ever
//! grows, which makes any TAT seen earlier a safe lower bound of the stored one.

pub const MICROS_PER_SEC: u64 = 1_000_000;

/// Capacity per window. Valid by construction: capacity >= 1, window >= 1 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    capacity: u64,
    window_secs: u64,
}

impl Rate {
    pub const MAX_CAPACITY: u64 = 10_000_000;
    pub const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;

    pub const fn new(capacity: u64, window_secs: u64) -> Option<Self> {
        if capacity == 0 || capacity > Self::MAX_CAPACITY || window_secs == 0 || window_secs > Self::MAX_WINDOW_SECS {
            return None;
        }
        Some(Self { capacity, window_secs })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// Emission interval: microseconds for one token to refill.
    pub fn interval_us(&self) -> u64 {
        (self.window_secs * MICROS_PER_SEC).div_ceil(self.capacity)
    }

    /// How far ahead of now the TAT may be: a full burst.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us() * self.capacity
    }

    pub fn increment_us(&self, cost: u64) -> u64 {
        self.interval_us().saturating_mul(cost)
    }

    /// The largest stored TAT that still admits `cost` at `now` (the bound a conditional write
    /// checks): `now + tau - cost * T`.
    pub fn max_tat_admitting(&self, now: u64, cost: u64) -> Option<u64> {
        (now + self.tolerance_us()).checked_sub(self.increment_us(cost))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the bucket's TAT is now `tat`.
    Allowed { tat: u64 },
    /// Refused; `cost` fits again `retry_after_us` from now (if nothing else is taken meanwhile).
    Denied { retry_after_us: u64 },
}

/// A bucket's state after a step: its TAT, and whether the request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted; the bucket's TAT is now `tat`.
    Allowed { tat: u64 },
    /// Refused; the bucket's TAT is (still) `tat`.
    Denied { tat: u64 },
}

/// The GCRA step for a bucket whose stored TAT is `stored` (None: no bucket yet). Callers ensure
/// `1 <= cost <= capacity`; a larger cost is never admitted.
pub fn decide(rate: &Rate, stored: Option<u64>, now: u64, cost: u64) -> Decision {
    let base = stored.unwrap_or(0).max(now);
    let tat = base.saturating_add(rate.increment_us(cost));
    let limit = now + rate.tolerance_us();
    if tat <= limit { Decision::Allowed { tat } } else { Decision::Denied { retry_after_us: tat - limit } }
}

/// Whether a bucket with at least this TAT could admit `cost` at `now`. With a lower bound of
/// the TAT, `false` is certain: the bucket is empty for this cost.
pub fn could_admit(rate: &Rate, tat_lower_bound: u64, now: u64, cost: u64) -> bool {
    matches!(decide(rate, Some(tat_lower_bound), now, cost), Decision::Allowed { .. })
}

/// Microseconds until `cost` fits, 0 if it fits now.
pub fn retry_after_us(rate: &Rate, tat: u64, now: u64, cost: u64) -> u64 {
    match decide(rate, Some(tat), now, cost) {
        Decision::Allowed { .. } => 0,
        Decision::Denied { retry_after_us } => retry_after_us,
    }
}

/// Whole tokens left in a bucket whose TAT is `tat`.
pub fn remaining(rate: &Rate, tat: u64, now: u64) -> u64 {
    let free = (now + rate.tolerance_us()).saturating_sub(tat.max(now));
    (free / rate.interval_us()).min(rate.capacity)
}

/// Microseconds until one more whole token is back (0 when the bucket is full).
pub fn next_token_us(rate: &Rate, tat: u64, now: u64) -> u64 {
    if remaining(rate, tat, now) >= rate.capacity {
        return 0;
    }
    let free = (now + rate.tolerance_us()).saturating_sub(tat.max(now));
    rate.interval_us() - free % rate.interval_us()
}

/// Whole seconds, rounded up: a client told to wait this long never comes back too early.
pub fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(MICROS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = MICROS_PER_SEC;

    /// The controllable clock of these tests: time only moves when the test moves it.
    struct Clock(u64);
    impl Clock {
        fn advance(&mut self, us: u64) {
            self.0 += us;
        }
    }

    /// Runs `n` requests of `cost` against an in-memory TAT, returning how many were admitted.
    fn take(rate: &Rate, tat: &mut Option<u64>, now: u64, n: u64, cost: u64) -> u64 {
        let mut admitted = 0;
        for _ in 0..n {
            if let Decision::Allowed { tat: t } = decide(rate, *tat, now, cost) {
                *tat = Some(t);
                admitted += 1;
            }
        }
        admitted
    }

    #[test]
    fn a_full_bucket_admits_exactly_its_burst() {
        let clock = Clock(1_800_000_000 * S);
        let rate = Rate::new(5, 900).unwrap(); // auth: 5 per 15 min
        let mut tat = None;
        assert_eq!(take(&rate, &mut tat, clock.0, 50, 1), 5);
        assert_eq!(remaining(&rate, tat.unwrap(), clock.0), 0);
    }

    #[test]
    fn tokens_refill_continuously_at_capacity_per_window() {
        let mut clock = Clock(1_700_000_000 * S);
        let rate = Rate::new(100, 3600).unwrap(); // chat free: one token per 36 s
        let mut tat = None;
        assert_eq!(take(&rate, &mut tat, clock.0, 100, 1), 100);
        clock.advance(35 * S);
        assert_eq!(take(&rate, &mut tat, clock.0, 1, 1), 0, "one token needs 36 s");
        clock.advance(S);
        assert_eq!(take(&rate, &mut tat, clock.0, 5, 1), 1);
        clock.advance(360 * S);
        assert_eq!(take(&rate, &mut tat, clock.0, 50, 1), 10);
        // Idle for longer than a window: full again, never more than the capacity.
        clock.advance(10 * 3600 * S);
        assert_eq!(remaining(&rate, tat.unwrap(), clock.0), 100);
        assert_eq!(take(&rate, &mut tat, clock.0, 500, 1), 100);
    }

    #[test]
    fn retry_after_is_exactly_when_the_bucket_admits_again() {
        let mut clock = Clock(1_700_000_000 * S);
        let rate = Rate::new(20, 3600).unwrap(); // one token per 180 s
        let mut tat = None;
        take(&rate, &mut tat, clock.0, 20, 1);
        clock.advance(50 * S);
        let Decision::Denied { retry_after_us } = decide(&rate, tat, clock.0, 1) else { panic!("bucket is empty") };
        assert_eq!(retry_after_us, 130 * S);
        assert_eq!(ceil_secs(retry_after_us), 130);
        // One microsecond early is still refused; at the instant it is admitted.
        assert!(!could_admit(&rate, tat.unwrap(), clock.0 + retry_after_us - 1, 1));
        assert!(could_admit(&rate, tat.unwrap(), clock.0 + retry_after_us, 1));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let clock = Clock(1_700_000_000 * S + 250_000);
        let rate = Rate::new(3, 10).unwrap(); // T = 3_333_334 us (rounded up)
        assert_eq!(rate.interval_us(), 3_333_334);
        let mut tat = None;
        take(&rate, &mut tat, clock.0, 3, 1);
        let wait = retry_after_us(&rate, tat.unwrap(), clock.0, 1);
        assert_eq!(wait, 3_333_334);
        assert_eq!(ceil_secs(wait), 4, "3.33 s is announced as 4 s, never 3");
        assert!(could_admit(&rate, tat.unwrap(), clock.0 + ceil_secs(wait) * S, 1));
    }

    #[test]
    fn cost_above_one_takes_that_many_tokens() {
        let mut clock = Clock(1_700_000_000 * S);
        let rate = Rate::new(50, 3600).unwrap(); // images: one per 72 s
        let mut tat = None;
        assert_eq!(take(&rate, &mut tat, clock.0, 1, 30), 1);
        assert_eq!(remaining(&rate, tat.unwrap(), clock.0), 20);
        assert_eq!(take(&rate, &mut tat, clock.0, 1, 21), 0, "21 images do not fit in 20");
        assert_eq!(retry_after_us(&rate, tat.unwrap(), clock.0, 21), 72 * S);
        assert_eq!(take(&rate, &mut tat, clock.0, 1, 20), 1);
        clock.advance(72 * 3 * S);
        assert_eq!(remaining(&rate, tat.unwrap(), clock.0), 3);
        assert_eq!(take(&rate, &mut tat, clock.0, 1, 3), 1);
        // A cost above the capacity can never be admitted, even by a full bucket.
        assert!(!could_admit(&rate, 0, clock.0, 51));
    }

    #[test]
    fn next_token_and_remaining_describe_the_bucket() {
        let now = 1_700_000_000 * S;
        let rate = Rate::new(100, 3600).unwrap();
        assert_eq!((remaining(&rate, 0, now), next_token_us(&rate, 0, now)), (100, 0));
        let Decision::Allowed { tat } = decide(&rate, None, now, 1) else { panic!() };
        assert_eq!((remaining(&rate, tat, now), ceil_secs(next_token_us(&rate, tat, now))), (99, 36));
        assert_eq!(ceil_secs(next_token_us(&rate, tat, now + 10 * S)), 26);
    }

    #[test]
    fn rates_are_validated() {
        assert!(Rate::new(0, 60).is_none());
        assert!(Rate::new(1, 0).is_none());
        assert!(Rate::new(Rate::MAX_CAPACITY + 1, 60).is_none());
        assert!(Rate::new(1, Rate::MAX_WINDOW_SECS + 1).is_none());
        let r = Rate::new(Rate::MAX_CAPACITY, 1).unwrap();
        assert!(r.interval_us() >= 1);
        assert!(r.max_tat_admitting(0, r.capacity()).is_some());
    }

    proptest! {
        /// Over any schedule of requests, the admitted tokens never exceed the burst plus what
        /// refilled in the elapsed time.
        #[test]
        fn never_admits_more_than_capacity_plus_refill(
            capacity in 1u64..200,
            window in 1u64..7200,
            steps in proptest::collection::vec((0u64..5_000_000, 1u64..5), 1..300),
        ) {
            let rate = Rate::new(capacity, window).unwrap();
            let start = 1_700_000_000 * S;
            let mut now = start;
            let mut tat = None;
            let mut admitted = 0u64;
            for (dt, cost) in steps {
                now += dt;
                let cost = cost.min(capacity);
                if let Decision::Allowed { tat: t } = decide(&rate, tat, now, cost) {
                    tat = Some(t);
                    admitted += cost;
                }
            }
            let refilled = (now - start) / rate.interval_us();
            prop_assert!(admitted <= capacity + refilled, "{admitted} > {capacity} + {refilled}");
        }
    }
}
