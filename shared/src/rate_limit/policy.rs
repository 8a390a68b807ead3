//! The limits of the spec, their configuration, and the bucket key each request is counted under.
//!
//! | policy | default | key |
//! |---|---|---|
//! | global | 1000 / 1 h | client IP (`RATE_LIMIT_GLOBAL`) |
//! | auth | 5 / 15 min | client IP, failed authentications (`RATE_LIMIT_AUTH`) |
//! | chat | 100 / 1000 / 10000 per 1 h by tier | user (`RATE_LIMIT_CHAT_FREE`, `_PRO`, `_ENTERPRISE`) |
//! | images | 50 / 1 h | user (`RATE_LIMIT_IMAGES`) |
//! | audio | 20 / 1 h | user (`RATE_LIMIT_AUDIO`) |
//! | search | 100 / 1 h | user (`RATE_LIMIT_SEARCH`) |
//!
//! Each variable is `<count>/<window>`, the window in seconds or with a unit: `1000/1h`,
//! `5/15m`, `20/3600`, `10/30s`, `100/1d`.
//!
//! Keys start with the policy's name (`global#ip#203.0.113.9`, `chat#user#u_123`), so buckets of
//! different policies never share a key. The chat tiers share one bucket per user: a bucket's TAT
//! is the share of the window already used, so a user who changes tier keeps that share and
//! refills at the new tier's rate from then on (no fresh burst from a downgrade or upgrade).
//!
//! IPv6 clients are counted per /64: one subscriber usually holds a whole /64 and can rotate
//! addresses within it freely, so a per-address key would let one client multiply its limit by
//! 2^64. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as the IPv4 address.

use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::gcra::Rate;
use crate::ClientIp;
use crate::auth::Tier;
use crate::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Every request by client IP, except liveness, readiness, health and the Clerk webhook.
    Global,
    /// Failed authentications by client IP.
    Auth,
    /// Chat completions by user, sized by the user's tier.
    Chat(Tier),
    /// Images by user; each image a request carries costs one.
    Images,
    Audio,
    Search,
}

impl Policy {
    /// The name in keys, `RateLimit` fields and problem bodies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Auth => "auth",
            Self::Chat(_) => "chat",
            Self::Images => "images",
            Self::Audio => "audio",
            Self::Search => "search",
        }
    }

    /// The bucket key for this policy and subject.
    pub fn key(self, subject: &Subject<'_>) -> String {
        let (kind, id) = match subject {
            Subject::Ip(ip) => ("ip", ip_bucket(*ip)),
            Subject::User(id) if id.len() <= MAX_ID_BYTES => ("user", id.to_string()),
            // Hashed ids get their own kind, so no plain id can collide with a hash.
            Subject::User(id) => ("user-sha256", sha256_hex(id)),
        };
        format!("{}#{kind}#{id}", self.name())
    }
}

/// Who a bucket counts: a client address or a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Ip(IpAddr),
    User(&'a str),
}

impl From<IpAddr> for Subject<'_> {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<ClientIp> for Subject<'_> {
    fn from(ip: ClientIp) -> Self {
        Self::Ip(ip.0)
    }
}

impl<'a> From<&'a str> for Subject<'a> {
    fn from(user_id: &'a str) -> Self {
        Self::User(user_id)
    }
}

impl<'a> From<&'a String> for Subject<'a> {
    fn from(user_id: &'a String) -> Self {
        Self::User(user_id)
    }
}

/// The address a per-IP bucket is keyed by: IPv4 as is, IPv6 by its /64.
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Ids longer than this are hashed: a DynamoDB key holds at most 2048 bytes.
const MAX_ID_BYTES: usize = 256;

fn sha256_hex(id: &str) -> String {
    Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The rate of every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub global: Rate,
    pub auth: Rate,
    pub chat_free: Rate,
    pub chat_pro: Rate,
    pub chat_enterprise: Rate,
    pub images: Rate,
    pub audio: Rate,
    pub search: Rate,
}

const HOUR: u64 = 3600;

const fn rate(capacity: u64, window_secs: u64) -> Rate {
    match Rate::new(capacity, window_secs) {
        Some(r) => r,
        None => panic!("invalid built-in rate"),
    }
}

impl Default for Policies {
    /// The spec's table.
    fn default() -> Self {
        Self {
            global: rate(1000, HOUR),
            auth: rate(5, 15 * 60),
            chat_free: rate(100, HOUR),
            chat_pro: rate(1000, HOUR),
            chat_enterprise: rate(10_000, HOUR),
            images: rate(50, HOUR),
            audio: rate(20, HOUR),
            search: rate(100, HOUR),
        }
    }
}

impl Policies {
    pub fn rate(&self, policy: Policy) -> Rate {
        match policy {
            Policy::Global => self.global,
            Policy::Auth => self.auth,
            Policy::Chat(Tier::Free) => self.chat_free,
            Policy::Chat(Tier::Pro) => self.chat_pro,
            Policy::Chat(Tier::Enterprise) => self.chat_enterprise,
            Policy::Images => self.images,
            Policy::Audio => self.audio,
            Policy::Search => self.search,
        }
    }
}

/// Limiter configuration: the policies and how the limiter treats its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policies: Policies,
    /// Longest a limiter decision waits for DynamoDB before it falls back (`RATE_LIMIT_STORE_TIMEOUT_MS`).
    pub store_timeout: Duration,
    /// After a store failure, how long decisions stay on the in-memory fallback before the store
    /// is tried again (`RATE_LIMIT_STORE_RETRY_MS`).
    pub store_retry_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policies: Policies::default(),
            store_timeout: Duration::from_millis(500),
            store_retry_after: Duration::from_millis(5000),
        }
    }
}

impl Settings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let p = d.policies;
        let rate = |name: &'static str, default: Rate| match get(name) {
            None => Ok(default),
            Some(v) => parse_rate(&v).ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("'{v}' is not <count>/<window> (e.g. 1000/1h, 5/15m, 20/3600)"),
            }),
        };
        let millis = |name: &'static str, min: u64, default: Duration| match get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (min..=600_000).contains(ms))
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!("'{v}' is not {min}..=600000 milliseconds"),
                }),
        };
        Ok(Self {
            policies: Policies {
                global: rate("RATE_LIMIT_GLOBAL", p.global)?,
                auth: rate("RATE_LIMIT_AUTH", p.auth)?,
                chat_free: rate("RATE_LIMIT_CHAT_FREE", p.chat_free)?,
                chat_pro: rate("RATE_LIMIT_CHAT_PRO", p.chat_pro)?,
                chat_enterprise: rate("RATE_LIMIT_CHAT_ENTERPRISE", p.chat_enterprise)?,
                images: rate("RATE_LIMIT_IMAGES", p.images)?,
                audio: rate("RATE_LIMIT_AUDIO", p.audio)?,
                search: rate("RATE_LIMIT_SEARCH", p.search)?,
            },
            store_timeout: millis("RATE_LIMIT_STORE_TIMEOUT_MS", 1, d.store_timeout)?,
            store_retry_after: millis("RATE_LIMIT_STORE_RETRY_MS", 0, d.store_retry_after)?,
        })
    }
}

/// `<count>/<window>`; the window is seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_rate(s: &str) -> Option<Rate> {
    let (count, window) = s.trim().split_once('/')?;
    let count: u64 = count.trim().parse().ok()?;
    let window = window.trim();
    let (digits, unit) = match window.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => window.split_at(i),
        None => (window, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    })?;
    Rate::new(count, secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_are_the_spec_table() {
        let p = Policies::default();
        let q = |p: Policy, r: &Policies| (r.rate(p).capacity(), r.rate(p).window_secs());
        assert_eq!(q(Policy::Global, &p), (1000, 3600));
        assert_eq!(q(Policy::Auth, &p), (5, 900));
        assert_eq!(q(Policy::Chat(Tier::Free), &p), (100, 3600));
        assert_eq!(q(Policy::Chat(Tier::Pro), &p), (1000, 3600));
        assert_eq!(q(Policy::Chat(Tier::Enterprise), &p), (10_000, 3600));
        assert_eq!(q(Policy::Images, &p), (50, 3600));
        assert_eq!(q(Policy::Audio, &p), (20, 3600));
        assert_eq!(q(Policy::Search, &p), (100, 3600));
    }

    #[test]
    fn settings_come_from_the_environment() {
        let m: HashMap<&str, &str> = [
            ("RATE_LIMIT_GLOBAL", "3/1h"),
            ("RATE_LIMIT_AUTH", " 2 / 15m "),
            ("RATE_LIMIT_CHAT_PRO", "7/60"),
            ("RATE_LIMIT_STORE_TIMEOUT_MS", "2000"),
        ]
        .into_iter()
        .collect();
        let s = Settings::from_lookup(&|k: &str| m.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.policies.global, Rate::new(3, 3600).unwrap());
        assert_eq!(s.policies.auth, Rate::new(2, 900).unwrap());
        assert_eq!(s.policies.chat_pro, Rate::new(7, 60).unwrap());
        assert_eq!(s.policies.chat_free, Policies::default().chat_free);
        assert_eq!(s.store_timeout, Duration::from_millis(2000));
        assert_eq!(s.store_retry_after, Settings::default().store_retry_after);
    }

    #[test]
    fn bad_settings_fail_the_start() {
        for bad in ["", "100", "0/1h", "100/0", "-1/1h", "100/1w", "100/h", "1/99999999999999999999", "1e3/1h"] {
            let s = Settings::from_lookup(&|k: &str| (k == "RATE_LIMIT_CHAT_FREE").then(|| bad.to_string()));
            assert!(
                matches!(s, Err(ConfigError::Invalid { name: "RATE_LIMIT_CHAT_FREE", .. })),
                "{bad:?} was accepted"
            );
        }
        for bad in ["soon", "0", "600001", "-1"] {
            let s = Settings::from_lookup(&|k: &str| (k == "RATE_LIMIT_STORE_TIMEOUT_MS").then(|| bad.to_string()));
            assert!(s.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn keys_name_the_policy_and_never_collide() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(Policy::Global.key(&ip.into()), "global#ip#203.0.113.9");
        assert_eq!(Policy::Auth.key(&ip.into()), "auth#ip#203.0.113.9");
        assert_eq!(Policy::Chat(Tier::Pro).key(&"u_1".into()), "chat#user#u_1");
        assert_eq!(Policy::Chat(Tier::Free).key(&"u_1".into()), Policy::Chat(Tier::Pro).key(&"u_1".into()));
        assert_ne!(Policy::Images.key(&"u_1".into()), Policy::Audio.key(&"u_1".into()));
        // A user id that looks like an address is still a user key.
        assert_ne!(Policy::Global.key(&"203.0.113.9".into()), Policy::Global.key(&ip.into()));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_bucket(a), "2001:db8:1:2::/64");
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_ne!(ip_bucket(a), ip_bucket(other));
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(ip_bucket(mapped), "203.0.113.9");
    }

    #[test]
    fn long_ids_are_hashed_to_a_bounded_key() {
        let long = "x".repeat(5000);
        let key = Policy::Search.key(&long.as_str().into());
        assert!(key.starts_with("search#user-sha256#") && key.len() < 100, "{key}");
        assert_ne!(key, Policy::Search.key(&"y".repeat(5000).as_str().into()));
    }
}
