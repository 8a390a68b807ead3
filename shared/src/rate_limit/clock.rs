//! Time for the limiter, in microseconds since the Unix epoch. Wall-clock time, not a monotonic
//! clock: the stored arrival times are shared by every instance, so they must mean the same
//! instant everywhere. Injectable so tests can move time without sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        // A clock before 1970 is a broken host; 0 keeps the arithmetic defined.
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_us() > 1_704_067_200_000_000);
    }
}
