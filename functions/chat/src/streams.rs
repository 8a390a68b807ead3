//! Open completion streams per user, capped by tier and exact across instances: a completion
//! (streamed or whole, new or regenerated) holds one of its user's leases ([`baatcheet_shared::leases`])
//! from before it starts until it ends. Over the cap: 429 (`policy: "streams"`) with `Retry-After`.
//!
//! Settings: `CHAT_STREAMS_FREE` [2], `CHAT_STREAMS_PRO` [5], `CHAT_STREAMS_ENTERPRISE` [20],
//! `CHAT_STREAM_LEASE_TTL_SECONDS` [30] (how long a dead instance's lease blocks its slot; a live
//! stream extends its lease every third of it); the table is `STREAM_LEASES_TABLE` (shared config).

use std::time::Duration;

use baatcheet_shared::auth::{AuthUser, Tier};
use baatcheet_shared::config::ConfigError;
use baatcheet_shared::error::error_chain;
use baatcheet_shared::leases::{Lease, LeaseError, Leases};

/// The policy name a refusal carries.
pub const POLICY: &str = "streams";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    pub free: u32,
    pub pro: u32,
    pub enterprise: u32,
    pub lease_ttl: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { free: 2, pro: 5, enterprise: 20, lease_ttl: Duration::from_secs(30) }
    }
}

impl StreamLimits {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &'static str, default: u32, max: u32| match get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(ConfigError::Invalid { name, reason: format!("'{v}' is not a number in 1..={max}") }),
        };
        Ok(Self {
            free: num("CHAT_STREAMS_FREE", d.free, 1000)?,
            pro: num("CHAT_STREAMS_PRO", d.pro, 1000)?,
            enterprise: num("CHAT_STREAMS_ENTERPRISE", d.enterprise, 1000)?,
            lease_ttl: Duration::from_secs(num("CHAT_STREAM_LEASE_TTL_SECONDS", 30, 900)?.into()),
        })
    }

    pub fn cap(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// Why a completion got no place among its user's open streams.
#[derive(Debug, thiserror::Error)]
pub enum StreamRefused {
    /// Every place of the user's tier is taken (429, policy [`POLICY`]).
    #[error("every open stream of the user's tier is taken; one frees within {retry_after_secs} s")]
    Full { retry_after_secs: u64 },
    /// The lease store cannot tell: fail closed (503).
    #[error("open streams cannot be counted")]
    Store(#[source] LeaseError),
}

/// The open streams of every user.
#[derive(Debug, Clone)]
pub struct OpenStreams {
    leases: Leases,
    limits: StreamLimits,
}

/// One open stream's place: hold it until the stream ends (dropping it releases it too).
#[derive(Debug)]
pub struct StreamLease(Lease);

impl StreamLease {
    /// Releases the place now, waiting for the store.
    pub async fn release(self) {
        self.0.release().await;
    }
}

impl OpenStreams {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, limits: StreamLimits) -> Self {
        Self { leases: Leases::new(client, table, limits.lease_ttl), limits }
    }

    /// The user's leases, for erasure.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// A place for one more open stream of `user`, or why there is none.
    pub async fn open(&self, user: &AuthUser) -> Result<StreamLease, StreamRefused> {
        match self.leases.acquire(&user.user_id, self.limits.cap(user.tier)).await {
            Ok(lease) => Ok(StreamLease(lease)),
            Err(LeaseError::Full { retry_after, .. }) => {
                Err(StreamRefused::Full { retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64 })
            }
            Err(e @ LeaseError::Store(_)) => {
                // Fail closed: without the store the cap cannot be told.
                tracing::warn!(error = %error_chain(&e), "stream lease store unavailable");
                Err(StreamRefused::Store(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<StreamLimits, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        StreamLimits::from_lookup(&|k: &str| m.get(k).cloned())
    }

    #[test]
    fn caps_by_tier_from_the_environment() {
        let s = parse(&[]).unwrap();
        assert_eq!((s.cap(Tier::Free), s.cap(Tier::Pro), s.cap(Tier::Enterprise)), (2, 5, 20));
        assert_eq!(s.lease_ttl, Duration::from_secs(30));
        let s = parse(&[("CHAT_STREAMS_FREE", "1"), ("CHAT_STREAM_LEASE_TTL_SECONDS", "3")]).unwrap();
        assert_eq!((s.cap(Tier::Free), s.lease_ttl), (1, Duration::from_secs(3)));
        for bad in ["0", "-1", "many", "1001"] {
            assert!(parse(&[("CHAT_STREAMS_PRO", bad)]).is_err(), "{bad}");
        }
    }
}
