//! The limits of the spec, their configuration, and the bucket key each request is counted under.
//!
//! | policy | default | key |
//! |---|---|---|
//! | global | 1000 / 1 h | the signed-in user; the client IP (IPv6: its /64) without a valid token (`RATE_LIMIT_GLOBAL`) |
//! | network | 10000 / 1 h | an IPv6 client's /48, requests without a valid token (`RATE_LIMIT_NETWORK`) |
//! | auth | 5 / 15 min | client IP, forged or garbled tokens (`RATE_LIMIT_AUTH`) |
//! | chat | 100 / 1000 / 10000 per 1 h by tier | user (`RATE_LIMIT_CHAT_FREE`, `_PRO`, `_ENTERPRISE`) |
//! | images | 50 / 1 h | user (`RATE_LIMIT_IMAGES`) |
//! | audio | 20 / 1 h | user, files sent to transcription (`RATE_LIMIT_AUDIO`) |
//! | audio_seconds | 1200 / 10800 / 72000 per 1 h by tier | user, seconds of audio transcribed (`RATE_LIMIT_AUDIO_SECONDS_FREE`, `_PRO`, `_ENTERPRISE`) |
//! | search | 100 / 1 h | user (`RATE_LIMIT_SEARCH`) |
//!
//! Each variable is `<count>/<window>`, the window in seconds or with a unit: `1000/1h`,
//! `5/15m`, `20/3600`, `10/30s`, `100/1d`.
//!
//! Each policy also has a failure mode ([`FallbackMode`], `RATE_LIMIT_FALLBACK_<POLICY>`): what
//! it answers while the store cannot decide. Defaults ([`FallbackModes::default`]): global the
//! whole limit, auth 5, chat 10 / 50 / 200 by tier, images 5, audio 2, audio seconds 120 / 600 /
//! 3600 by tier, search 20 units per window and key on one instance.
//!
//! Keys start with the policy's name (`global#ip#203.0.113.9`, `chat#user#u_123`), so buckets of
//! different policies never share a key. The chat tiers share one bucket per user: a bucket's TAT
//! is the share of the window already used, so a user who changes tier keeps that share and
//! refills at the new tier's rate from then on (no fresh burst from a downgrade or upgrade).
//!
//! IPv6 clients are counted per /64: one subscriber usually holds a whole /64 and can rotate
//! addresses within it freely, so a per-address key would let one client multiply its limit by
//! 2^64. Whoever holds a /48 (a business site's usual assignment, free from tunnel brokers) has
//! 65,536 of those: the `network` policy counts the same requests once more per /48, with a
//! larger allowance (a /48 may hold a whole office or a carrier's pool of subscribers, whose
//! signed-in requests are charged to each user anyway). IPv4-mapped IPv6 addresses
//! (`::ffff:a.b.c.d`) count as the IPv4 address; IPv4 has no wider bucket (carrier-grade NAT
//! already puts thousands of subscribers behind one address, and a /24 holds unrelated ones).

use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::gcra::Rate;
use crate::ClientIp;
use crate::auth::Tier;
use crate::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Every request of a limited route: by user when its token authenticates, else by client IP.
    Global,
    /// Requests without a valid token by IPv6 /48 (the /64 is the global policy's key).
    Network,
    /// Failed authentications by client IP.
    Auth,
    /// Chat completions by user, sized by the user's tier.
    Chat(Tier),
    /// Images by user; each image a request carries costs one.
    Images,
    /// Audio files sent to transcription by user (one per file).
    Audio,
    /// Seconds of audio transcribed by user, sized by the user's tier: a file costs its
    /// duration (a weighted charge), so a long file cannot pass for a short one.
    AudioSeconds(Tier),
    Search,
}

impl Policy {
    /// The name in keys, `RateLimit` fields and problem bodies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Network => "network",
            Self::Auth => "auth",
            Self::Chat(_) => "chat",
            Self::Images => "images",
            Self::Audio => "audio",
            Self::AudioSeconds(_) => "audio_seconds",
            Self::Search => "search",
        }
    }

    /// The bucket key for this policy and subject.
    pub fn key(self, subject: &Subject<'_>) -> String {
        let (kind, id) = match subject {
            Subject::Ip(ip) if self == Self::Network => ("ip", network_bucket(*ip)),
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

/// The wider block an IPv6 address is counted in as well (the `network` policy): its /48.
/// `None` for IPv4 (and IPv4-mapped IPv6), which has no wider bucket.
pub fn network_of(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => Some(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
        _ => None,
    }
}

fn network_bucket(ip: IpAddr) -> String {
    match network_of(ip) {
        Some(prefix) => format!("{prefix}/48"),
        None => ip_bucket(ip),
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
    pub network: Rate,
    pub auth: Rate,
    pub chat_free: Rate,
    pub chat_pro: Rate,
    pub chat_enterprise: Rate,
    pub images: Rate,
    pub audio: Rate,
    pub audio_seconds_free: Rate,
    pub audio_seconds_pro: Rate,
    pub audio_seconds_enterprise: Rate,
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
            // Ten /64s' worth: see docs/rate-limits.md for why a /48 and why ten.
            network: rate(10_000, HOUR),
            auth: rate(5, 15 * 60),
            chat_free: rate(100, HOUR),
            chat_pro: rate(1000, HOUR),
            chat_enterprise: rate(10_000, HOUR),
            images: rate(50, HOUR),
            audio: rate(20, HOUR),
            // Seconds of audio per hour: free 20 minutes (voice notes), pro 3 hours, enterprise
            // 20 hours (meetings). A file is charged its duration, at most `MAX_AUDIO_SECONDS`.
            audio_seconds_free: rate(1200, HOUR),
            audio_seconds_pro: rate(10_800, HOUR),
            audio_seconds_enterprise: rate(72_000, HOUR),
            search: rate(100, HOUR),
        }
    }
}

impl Policies {
    pub fn rate(&self, policy: Policy) -> Rate {
        match policy {
            Policy::Global => self.global,
            Policy::Network => self.network,
            Policy::Auth => self.auth,
            Policy::Chat(Tier::Free) => self.chat_free,
            Policy::Chat(Tier::Pro) => self.chat_pro,
            Policy::Chat(Tier::Enterprise) => self.chat_enterprise,
            Policy::Images => self.images,
            Policy::Audio => self.audio,
            Policy::AudioSeconds(Tier::Free) => self.audio_seconds_free,
            Policy::AudioSeconds(Tier::Pro) => self.audio_seconds_pro,
            Policy::AudioSeconds(Tier::Enterprise) => self.audio_seconds_enterprise,
            Policy::Search => self.search,
        }
    }
}

/// What a policy does while its decision cannot come from the store (the store is down, or one
/// key's decision stayed slow past [`Settings::contended_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackMode {
    /// Decide with this instance's in-memory bucket for the key, which starts from the last state
    /// the instance learned from the store (never fuller), and admit at most this many units per
    /// policy window per key on this instance (at most the policy's capacity; `u64::MAX`: all of
    /// it). Admissions are written back to the store when it answers again.
    Allow(u64),
    /// Answer 503 (`service-unavailable`, with `Retry-After`) instead of deciding.
    Refuse,
}

impl FallbackMode {
    /// The allowance as a rate over `rate`'s window (`None` for [`FallbackMode::Refuse`]).
    pub fn allowance(self, rate: &Rate) -> Option<Rate> {
        match self {
            Self::Allow(n) => Rate::new(n.clamp(1, rate.capacity()), rate.window_secs()),
            Self::Refuse => None,
        }
    }

    /// The most one instance can admit for one key while the store is down, whatever the
    /// bucket held: `(at once, in any hour)`. Every unit of it is over-admission in the worst
    /// case (a client who had already used the whole limit through other instances). 0 when the
    /// policy refuses.
    pub fn worst_case(self, rate: &Rate) -> (u64, u64) {
        match self.allowance(rate) {
            None => (0, 0),
            Some(a) => (a.capacity(), a.capacity() + 3600 * super::gcra::MICROS_PER_SEC / a.interval_us()),
        }
    }

    fn parse(v: &str) -> Option<Self> {
        match v.trim() {
            "refuse" => Some(Self::Refuse),
            "full" => Some(Self::Allow(u64::MAX)),
            n => n.parse::<u64>().ok().filter(|n| *n >= 1).map(Self::Allow),
        }
    }
}

/// The failure mode of every policy (`RATE_LIMIT_FALLBACK_<POLICY>`: a number of units per
/// window, `full`, or `refuse`).
///
/// Defaults: small allowances for what costs money per request (chat by tier, images, audio),
/// the whole limit for the global one (an address is shared by many users behind a carrier's
/// NAT: refusing it would take the API down for all of them, and a request that passes it still
/// meets its route's own limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackModes {
    pub global: FallbackMode,
    pub network: FallbackMode,
    pub auth: FallbackMode,
    pub chat_free: FallbackMode,
    pub chat_pro: FallbackMode,
    pub chat_enterprise: FallbackMode,
    pub images: FallbackMode,
    pub audio: FallbackMode,
    pub audio_seconds_free: FallbackMode,
    pub audio_seconds_pro: FallbackMode,
    pub audio_seconds_enterprise: FallbackMode,
    pub search: FallbackMode,
}

impl Default for FallbackModes {
    fn default() -> Self {
        Self {
            global: FallbackMode::Allow(u64::MAX),
            network: FallbackMode::Allow(u64::MAX),
            auth: FallbackMode::Allow(5),
            chat_free: FallbackMode::Allow(10),
            chat_pro: FallbackMode::Allow(50),
            chat_enterprise: FallbackMode::Allow(200),
            images: FallbackMode::Allow(5),
            audio: FallbackMode::Allow(2),
            audio_seconds_free: FallbackMode::Allow(120),
            audio_seconds_pro: FallbackMode::Allow(600),
            audio_seconds_enterprise: FallbackMode::Allow(3600),
            search: FallbackMode::Allow(20),
        }
    }
}

impl FallbackModes {
    pub fn mode(&self, policy: Policy) -> FallbackMode {
        match policy {
            Policy::Global => self.global,
            Policy::Network => self.network,
            Policy::Auth => self.auth,
            Policy::Chat(Tier::Free) => self.chat_free,
            Policy::Chat(Tier::Pro) => self.chat_pro,
            Policy::Chat(Tier::Enterprise) => self.chat_enterprise,
            Policy::Images => self.images,
            Policy::Audio => self.audio,
            Policy::AudioSeconds(Tier::Free) => self.audio_seconds_free,
            Policy::AudioSeconds(Tier::Pro) => self.audio_seconds_pro,
            Policy::AudioSeconds(Tier::Enterprise) => self.audio_seconds_enterprise,
            Policy::Search => self.search,
        }
    }
}

/// Every policy, chat and audio seconds once per tier (for tables and counters).
pub const ALL: [Policy; 12] = [
    Policy::Global,
    Policy::Network,
    Policy::Auth,
    Policy::Chat(Tier::Free),
    Policy::Chat(Tier::Pro),
    Policy::Chat(Tier::Enterprise),
    Policy::Images,
    Policy::Audio,
    Policy::AudioSeconds(Tier::Free),
    Policy::AudioSeconds(Tier::Pro),
    Policy::AudioSeconds(Tier::Enterprise),
    Policy::Search,
];

/// Limiter configuration: the policies and how the limiter treats its store.
///
/// How long a decision waits for DynamoDB:
/// - `store_timeout`: if nothing at all (no call, for any key) has answered for this long while
///   a decision waits, the store counts as down: this instance decides every key with its
///   fallback until a probe (one per `store_retry_after`) gets an answer.
/// - `contended_wait`: while the store keeps answering, a decision whose own key is slow
///   (contended, throttled) keeps waiting, retrying with backoff, this long in all before that
///   one decision uses its policy's fallback; the instance and every other key stay on the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policies: Policies,
    /// `RATE_LIMIT_STORE_TIMEOUT_MS` (default 500).
    pub store_timeout: Duration,
    /// While the store is down, how often it is probed again (`RATE_LIMIT_STORE_RETRY_MS`,
    /// default 1000); the first answer ends the outage.
    pub store_retry_after: Duration,
    /// `RATE_LIMIT_CONTENDED_WAIT_MS` (default 2000; never shorter than `store_timeout`).
    pub contended_wait: Duration,
    /// Per policy: what happens while the store cannot decide.
    pub fallback: FallbackModes,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policies: Policies::default(),
            store_timeout: Duration::from_millis(500),
            store_retry_after: Duration::from_millis(1000),
            contended_wait: Duration::from_millis(2000),
            fallback: FallbackModes::default(),
        }
    }
}

impl Settings {
    /// The longest any decision waits for the store.
    pub fn longest_wait(&self) -> Duration {
        self.contended_wait.max(self.store_timeout)
    }

    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let p = d.policies;
        let f = d.fallback;
        let rate = |name: &'static str, default: Rate| match get(name) {
            None => Ok(default),
            Some(v) => parse_rate(&v).ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("'{v}' is not <count>/<window> (e.g. 1000/1h, 5/15m, 20/3600)"),
            }),
        };
        let mode = |name: &'static str, default: FallbackMode| match get(name) {
            None => Ok(default),
            Some(v) => FallbackMode::parse(&v).ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("'{v}' is not a number of units (1 or more), 'full' or 'refuse'"),
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
                network: rate("RATE_LIMIT_NETWORK", p.network)?,
                auth: rate("RATE_LIMIT_AUTH", p.auth)?,
                chat_free: rate("RATE_LIMIT_CHAT_FREE", p.chat_free)?,
                chat_pro: rate("RATE_LIMIT_CHAT_PRO", p.chat_pro)?,
                chat_enterprise: rate("RATE_LIMIT_CHAT_ENTERPRISE", p.chat_enterprise)?,
                images: rate("RATE_LIMIT_IMAGES", p.images)?,
                audio: rate("RATE_LIMIT_AUDIO", p.audio)?,
                audio_seconds_free: rate("RATE_LIMIT_AUDIO_SECONDS_FREE", p.audio_seconds_free)?,
                audio_seconds_pro: rate("RATE_LIMIT_AUDIO_SECONDS_PRO", p.audio_seconds_pro)?,
                audio_seconds_enterprise: rate("RATE_LIMIT_AUDIO_SECONDS_ENTERPRISE", p.audio_seconds_enterprise)?,
                search: rate("RATE_LIMIT_SEARCH", p.search)?,
            },
            store_timeout: millis("RATE_LIMIT_STORE_TIMEOUT_MS", 1, d.store_timeout)?,
            store_retry_after: millis("RATE_LIMIT_STORE_RETRY_MS", 0, d.store_retry_after)?,
            contended_wait: millis("RATE_LIMIT_CONTENDED_WAIT_MS", 0, d.contended_wait)?,
            fallback: FallbackModes {
                global: mode("RATE_LIMIT_FALLBACK_GLOBAL", f.global)?,
                network: mode("RATE_LIMIT_FALLBACK_NETWORK", f.network)?,
                auth: mode("RATE_LIMIT_FALLBACK_AUTH", f.auth)?,
                chat_free: mode("RATE_LIMIT_FALLBACK_CHAT_FREE", f.chat_free)?,
                chat_pro: mode("RATE_LIMIT_FALLBACK_CHAT_PRO", f.chat_pro)?,
                chat_enterprise: mode("RATE_LIMIT_FALLBACK_CHAT_ENTERPRISE", f.chat_enterprise)?,
                images: mode("RATE_LIMIT_FALLBACK_IMAGES", f.images)?,
                audio: mode("RATE_LIMIT_FALLBACK_AUDIO", f.audio)?,
                audio_seconds_free: mode("RATE_LIMIT_FALLBACK_AUDIO_SECONDS_FREE", f.audio_seconds_free)?,
                audio_seconds_pro: mode("RATE_LIMIT_FALLBACK_AUDIO_SECONDS_PRO", f.audio_seconds_pro)?,
                audio_seconds_enterprise: mode(
                    "RATE_LIMIT_FALLBACK_AUDIO_SECONDS_ENTERPRISE",
                    f.audio_seconds_enterprise,
                )?,
                search: mode("RATE_LIMIT_FALLBACK_SEARCH", f.search)?,
            },
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
        assert_eq!(q(Policy::Network, &p), (10_000, 3600));
        assert_eq!(q(Policy::Auth, &p), (5, 900));
        assert_eq!(q(Policy::Chat(Tier::Free), &p), (100, 3600));
        assert_eq!(q(Policy::Chat(Tier::Pro), &p), (1000, 3600));
        assert_eq!(q(Policy::Chat(Tier::Enterprise), &p), (10_000, 3600));
        assert_eq!(q(Policy::Images, &p), (50, 3600));
        assert_eq!(q(Policy::Audio, &p), (20, 3600));
        assert_eq!(q(Policy::AudioSeconds(Tier::Free), &p), (1200, 3600));
        assert_eq!(q(Policy::AudioSeconds(Tier::Pro), &p), (10_800, 3600));
        assert_eq!(q(Policy::AudioSeconds(Tier::Enterprise), &p), (72_000, 3600));
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
    fn ipv6_networks_are_counted_per_48() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:ffff::1".parse().unwrap();
        let other: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(Policy::Network.key(&a.into()), "network#ip#2001:db8:1::/48");
        assert_eq!(Policy::Network.key(&a.into()), Policy::Network.key(&b.into()));
        assert_ne!(Policy::Network.key(&a.into()), Policy::Network.key(&other.into()));
        assert_ne!(Policy::Global.key(&a.into()), Policy::Global.key(&b.into()), "different /64s");
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!((network_of(v4), network_of(mapped)), (None, None), "IPv4 has no wider bucket");
    }

    #[test]
    fn long_ids_are_hashed_to_a_bounded_key() {
        let long = "x".repeat(5000);
        let key = Policy::Search.key(&long.as_str().into());
        assert!(key.starts_with("search#user-sha256#") && key.len() < 100, "{key}");
        assert_ne!(key, Policy::Search.key(&"y".repeat(5000).as_str().into()));
    }

    #[test]
    fn failure_modes_come_from_the_environment() {
        let m: HashMap<&str, &str> = [
            ("RATE_LIMIT_FALLBACK_AUDIO", "refuse"),
            ("RATE_LIMIT_FALLBACK_SEARCH", " 7 "),
            ("RATE_LIMIT_FALLBACK_CHAT_FREE", "full"),
            ("RATE_LIMIT_CONTENDED_WAIT_MS", "3000"),
        ]
        .into_iter()
        .collect();
        let s = Settings::from_lookup(&|k: &str| m.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.fallback.mode(Policy::Audio), FallbackMode::Refuse);
        assert_eq!(s.fallback.mode(Policy::Search), FallbackMode::Allow(7));
        assert_eq!(s.fallback.mode(Policy::Chat(Tier::Free)), FallbackMode::Allow(u64::MAX));
        assert_eq!(s.fallback.mode(Policy::Images), FallbackModes::default().images);
        assert_eq!(s.contended_wait, Duration::from_millis(3000));
        for bad in ["", "0", "-1", "some", "1.5"] {
            let s = Settings::from_lookup(&|k: &str| (k == "RATE_LIMIT_FALLBACK_IMAGES").then(|| bad.to_string()));
            assert!(
                matches!(s, Err(ConfigError::Invalid { name: "RATE_LIMIT_FALLBACK_IMAGES", .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn the_worst_case_of_a_failure_mode_is_its_allowance_at_once_and_its_refill() {
        let hourly = rate(100, HOUR);
        assert_eq!(FallbackMode::Allow(10).worst_case(&hourly), (10, 20));
        assert_eq!(FallbackMode::Allow(u64::MAX).worst_case(&hourly), (100, 200), "full: the policy itself");
        assert_eq!(FallbackMode::Allow(500).worst_case(&hourly), (100, 200), "never above the capacity");
        assert_eq!(FallbackMode::Refuse.worst_case(&hourly), (0, 0));
        assert_eq!(
            FallbackMode::Allow(5).worst_case(&rate(5, 900)),
            (5, 25),
            "a 15-minute window refills 4 times an hour"
        );
        // The defaults are small for what costs money, the whole limit for the global one.
        let (p, f) = (Policies::default(), FallbackModes::default());
        for policy in ALL {
            let (at_once, _) = f.mode(policy).worst_case(&p.rate(policy));
            match policy {
                Policy::Global | Policy::Network | Policy::Auth => assert_eq!(at_once, p.rate(policy).capacity()),
                _ => assert!(at_once * 5 <= p.rate(policy).capacity(), "{policy:?}: {at_once}"),
            }
        }
    }
}
