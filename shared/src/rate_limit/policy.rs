//! Policies: what the engine counts, how each is configured, and the bucket key of each request.
//!
//! The platform declares its own policies here, the ones the request path applies:
//!
//! | policy | default | key |
//! |---|---|---|
//! | global | 1000 / 1 h | the signed-in user; the client IP (IPv6: its /64) without a valid token (`RATE_LIMIT_GLOBAL`) |
//! | network | 10000 / 1 h | an IPv6 client's /48, requests without a valid token (`RATE_LIMIT_NETWORK`) |
//! | auth | 5 / 15 min | client IP, forged or garbled tokens (`RATE_LIMIT_AUTH`) |
//!
//! A function declares its own once, as [`PolicySpec`] constants (name, variables, default rate
//! and failure mode, flat or by tier; e.g. `functions/chat/src/limits.rs`), and hands them to
//! [`super::Limiter::declare`] at start, which reads their variables from the same environment.
//!
//! Each rate variable is `<count>/<window>`, the window in seconds or with a unit: `1000/1h`,
//! `5/15m`, `20/3600`, `10/30s`, `100/1d`.
//!
//! Each policy also has a failure mode ([`FallbackMode`], its `RATE_LIMIT_FALLBACK_<POLICY>`
//! variable): what it answers while the store cannot decide. The platform's: global and network
//! the whole limit, auth 5 units per window and key on one instance.
//!
//! Keys start with the policy's name (`global#ip#203.0.113.9`, `<name>#user#u_123`), so buckets
//! of different policies never share a key. The tiers of a policy sized by tier share one bucket
//! per user: a bucket's TAT is the share of the window already used, so a user who changes tier
//! keeps that share and refills at the new tier's rate from then on (no fresh burst from a
//! downgrade or upgrade).
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
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::gcra::Rate;
use crate::ClientIp;
use crate::auth::Tier;
use crate::config::ConfigError;

/// One policy as a request is charged: a declared policy's name and, for a policy sized by tier,
/// the caller's tier. Its rate and failure mode are the limiter's (read at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    name: &'static str,
    tier: Option<Tier>,
}

impl Policy {
    /// Every request of a limited route: by user when its token authenticates, else by client IP.
    pub const GLOBAL: Self = GLOBAL.policy();
    /// Requests without a valid token by IPv6 /48 (the /64 is the global policy's key).
    pub const NETWORK: Self = NETWORK.policy();
    /// Failed authentications by client IP.
    pub const AUTH: Self = AUTH.policy();

    /// The name in keys, `RateLimit` fields and problem bodies.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The tier this policy is sized by, if it is sized by tier.
    pub fn tier(self) -> Option<Tier> {
        self.tier
    }

    /// The name in counters: with the tier of a policy sized by tier (`<name>_pro`).
    pub fn label(self) -> String {
        match self.tier {
            Some(t) => format!("{}_{}", self.name, t.as_str()),
            None => self.name.to_string(),
        }
    }

    /// The bucket key for this policy and subject.
    pub fn key(self, subject: &Subject<'_>) -> String {
        let (kind, id) = match subject {
            Subject::Ip(ip) if self.name == NETWORK.name => ("ip", network_bucket(*ip)),
            Subject::Ip(ip) => ("ip", ip_bucket(*ip)),
            Subject::User(id) if id.len() <= MAX_ID_BYTES => ("user", id.to_string()),
            // Hashed ids get their own kind, so no plain id can collide with a hash.
            Subject::User(id) => ("user-sha256", sha256_hex(id)),
        };
        format!("{}#{kind}#{id}", self.name)
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

const HOUR: u64 = 3600;

const fn rate(capacity: u64, window_secs: u64) -> Rate {
    match Rate::new(capacity, window_secs) {
        Some(r) => r,
        None => panic!("invalid built-in rate"),
    }
}

/// A policy's rate and failure mode, with the variables that set them and their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// `<count>/<window>` (e.g. `RATE_LIMIT_GLOBAL`).
    pub rate_var: &'static str,
    pub rate: Rate,
    /// The failure mode (e.g. `RATE_LIMIT_FALLBACK_GLOBAL`).
    pub fallback_var: &'static str,
    pub fallback: FallbackMode,
}

impl Setting {
    /// `count` units per `window_secs`, falling back to `fallback` (panics at compile time on a
    /// rate the engine cannot hold).
    pub const fn new(
        rate_var: &'static str,
        count: u64,
        window_secs: u64,
        fallback_var: &'static str,
        fallback: FallbackMode,
    ) -> Self {
        Self { rate_var, rate: rate(count, window_secs), fallback_var, fallback }
    }
}

/// One policy, sized alike for everyone or by the caller's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    Flat(Setting),
    /// Free, pro, enterprise.
    ByTier([Setting; 3]),
}

/// A policy as its owner declares it, once: its name (bucket keys, `RateLimit` fields, problem
/// bodies, metrics) and its setting(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: &'static str,
    pub sizing: Sizing,
}

const TIERS: [Tier; 3] = [Tier::Free, Tier::Pro, Tier::Enterprise];

impl PolicySpec {
    /// The policy charged to a caller of `tier` (a flat policy is the same for every tier).
    pub const fn of(&self, tier: Tier) -> Policy {
        match self.sizing {
            Sizing::Flat(_) => Policy { name: self.name, tier: None },
            Sizing::ByTier(_) => Policy { name: self.name, tier: Some(tier) },
        }
    }

    /// The policy of a flat spec (a spec sized by tier: its free tier).
    pub const fn policy(&self) -> Policy {
        self.of(Tier::Free)
    }

    /// Each policy of the spec (one per tier when sized by tier) with its setting.
    pub fn settings(&self) -> Vec<(Policy, Setting)> {
        match self.sizing {
            Sizing::Flat(s) => vec![(self.policy(), s)],
            Sizing::ByTier(by) => TIERS.iter().zip(by).map(|(t, s)| (self.of(*t), s)).collect(),
        }
    }
}

/// The fallback of the address-wide policies while the store is down: the whole limit. An address
/// is shared by many users behind a carrier's NAT, so refusing it would take the API down for all
/// of them, and a request that passes it still meets its route's own limit.
const ALLOW_ALL: FallbackMode = FallbackMode::Allow(u64::MAX);

/// The platform's own policies, applied by the request path.
pub const GLOBAL: PolicySpec = PolicySpec {
    name: "global",
    sizing: Sizing::Flat(Setting::new("RATE_LIMIT_GLOBAL", 1000, HOUR, "RATE_LIMIT_FALLBACK_GLOBAL", ALLOW_ALL)),
};
pub const NETWORK: PolicySpec = PolicySpec {
    name: "network",
    // Ten /64s' worth: see docs/rate-limits.md for why a /48 and why ten.
    sizing: Sizing::Flat(Setting::new("RATE_LIMIT_NETWORK", 10_000, HOUR, "RATE_LIMIT_FALLBACK_NETWORK", ALLOW_ALL)),
};
pub const AUTH: PolicySpec = PolicySpec {
    name: "auth",
    sizing: Sizing::Flat(Setting::new(
        "RATE_LIMIT_AUTH",
        5,
        15 * 60,
        "RATE_LIMIT_FALLBACK_AUTH",
        FallbackMode::Allow(5),
    )),
};
pub const PLATFORM: [&PolicySpec; 3] = [&GLOBAL, &NETWORK, &AUTH];

/// A policy's rate and failure mode as read at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rate: Rate,
    pub fallback: FallbackMode,
}

/// The rate and failure mode of every declared policy (by default the platform's, with their
/// defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies(HashMap<Policy, Limits>);

impl Default for Policies {
    fn default() -> Self {
        let mut p = Self(HashMap::new());
        p.declare_defaults(&PLATFORM);
        p
    }
}

impl Policies {
    /// The limits of `policy`, if declared.
    pub fn get(&self, policy: Policy) -> Option<Limits> {
        self.0.get(&policy).copied()
    }

    /// Sets (or replaces) `policy`'s limits.
    pub fn set(&mut self, policy: Policy, limits: Limits) {
        self.0.insert(policy, limits);
    }

    /// Sets `policy`'s rate, keeping its failure mode (the spec's default when undeclared).
    pub fn set_rate(&mut self, policy: Policy, rate: Rate) {
        let fallback = self.get(policy).map_or(FallbackMode::Refuse, |l| l.fallback);
        self.set(policy, Limits { rate, fallback });
    }

    /// Sets `policy`'s failure mode (the policy must be declared).
    pub fn set_fallback(&mut self, policy: Policy, fallback: FallbackMode) {
        if let Some(l) = self.0.get_mut(&policy) {
            l.fallback = fallback;
        }
    }

    /// Every declared policy with its limits.
    pub fn iter(&self) -> impl Iterator<Item = (Policy, Limits)> + '_ {
        self.0.iter().map(|(p, l)| (*p, *l))
    }

    /// Declares `specs` with their default limits.
    pub fn declare_defaults(&mut self, specs: &[&PolicySpec]) {
        for spec in specs {
            for (policy, s) in spec.settings() {
                self.set(policy, Limits { rate: s.rate, fallback: s.fallback });
            }
        }
    }

    /// Declares `specs` with the limits their variables set (defaults where unset); a bad value
    /// is a [`ConfigError`] naming its variable (the start fails).
    pub fn declare(&mut self, specs: &[&PolicySpec], get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for spec in specs {
            for (policy, s) in spec.settings() {
                let rate = match get(s.rate_var) {
                    None => s.rate,
                    Some(v) => parse_rate(&v).ok_or_else(|| ConfigError::Invalid {
                        name: s.rate_var,
                        reason: format!("'{v}' is not <count>/<window> (e.g. 1000/1h, 5/15m, 20/3600)"),
                    })?,
                };
                let fallback = match get(s.fallback_var) {
                    None => s.fallback,
                    Some(v) => FallbackMode::parse(&v).ok_or_else(|| ConfigError::Invalid {
                        name: s.fallback_var,
                        reason: format!("'{v}' is not a number of units (1 or more), 'full' or 'refuse'"),
                    })?,
                };
                self.set(policy, Limits { rate, fallback });
            }
        }
        Ok(())
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

/// Limiter configuration: the platform's policies and how the limiter treats its store.
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policies: Policies::default(),
            store_timeout: Duration::from_millis(500),
            store_retry_after: Duration::from_millis(1000),
            contended_wait: Duration::from_millis(2000),
        }
    }
}

impl Settings {
    /// The longest any decision waits for the store.
    pub fn longest_wait(&self) -> Duration {
        self.contended_wait.max(self.store_timeout)
    }

    /// The platform's policies and the store timings from the environment (defaults where unset).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
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
        let mut policies = Policies::default();
        policies.declare(&PLATFORM, get)?;
        Ok(Self {
            policies,
            store_timeout: millis("RATE_LIMIT_STORE_TIMEOUT_MS", 1, d.store_timeout)?,
            store_retry_after: millis("RATE_LIMIT_STORE_RETRY_MS", 0, d.store_retry_after)?,
            contended_wait: millis("RATE_LIMIT_CONTENDED_WAIT_MS", 0, d.contended_wait)?,
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

    /// A function's policies as a function declares them: one sized by tier, one flat.
    const TIERED: PolicySpec = PolicySpec {
        name: "tiered",
        sizing: Sizing::ByTier([
            Setting::new("TEST_TIERED_FREE", 100, HOUR, "TEST_FALLBACK_TIERED_FREE", FallbackMode::Allow(10)),
            Setting::new("TEST_TIERED_PRO", 1000, HOUR, "TEST_FALLBACK_TIERED_PRO", FallbackMode::Allow(50)),
            Setting::new(
                "TEST_TIERED_ENTERPRISE",
                10_000,
                HOUR,
                "TEST_FALLBACK_TIERED_ENTERPRISE",
                FallbackMode::Allow(200),
            ),
        ]),
    };
    const FLAT: PolicySpec = PolicySpec {
        name: "flat",
        sizing: Sizing::Flat(Setting::new("TEST_FLAT", 50, HOUR, "TEST_FALLBACK_FLAT", FallbackMode::Allow(5))),
    };

    fn declared(vars: &[(&str, &str)]) -> Result<Policies, ConfigError> {
        let m: HashMap<&str, &str> = vars.iter().copied().collect();
        let mut p = Policies::default();
        p.declare(&[&TIERED, &FLAT], &|k: &str| m.get(k).map(|v| v.to_string()))?;
        Ok(p)
    }

    #[test]
    fn the_platforms_defaults_are_the_spec_table() {
        let p = Policies::default();
        let q = |policy: Policy| p.get(policy).map(|l| (l.rate.capacity(), l.rate.window_secs()));
        assert_eq!(q(Policy::GLOBAL), Some((1000, 3600)));
        assert_eq!(q(Policy::NETWORK), Some((10_000, 3600)));
        assert_eq!(q(Policy::AUTH), Some((5, 900)));
        assert_eq!(p.iter().count(), 3, "the platform declares its own policies only");
    }

    #[test]
    fn a_declared_policy_has_its_defaults_and_one_setting_per_tier() {
        let p = declared(&[]).unwrap();
        let q = |policy: Policy| p.get(policy).map(|l| (l.rate.capacity(), l.fallback));
        assert_eq!(q(TIERED.of(Tier::Free)), Some((100, FallbackMode::Allow(10))));
        assert_eq!(q(TIERED.of(Tier::Pro)), Some((1000, FallbackMode::Allow(50))));
        assert_eq!(q(TIERED.of(Tier::Enterprise)), Some((10_000, FallbackMode::Allow(200))));
        assert_eq!(FLAT.of(Tier::Pro), FLAT.policy(), "a flat policy is the same for every tier");
        assert_eq!(q(FLAT.policy()), Some((50, FallbackMode::Allow(5))));
        assert_eq!((TIERED.of(Tier::Pro).label(), FLAT.policy().label()), ("tiered_pro".into(), "flat".into()));
        assert_eq!(Policies::default().get(FLAT.policy()), None, "undeclared");
    }

    #[test]
    fn settings_come_from_the_environment() {
        let m: HashMap<&str, &str> =
            [("RATE_LIMIT_GLOBAL", "3/1h"), ("RATE_LIMIT_AUTH", " 2 / 15m "), ("RATE_LIMIT_STORE_TIMEOUT_MS", "2000")]
                .into_iter()
                .collect();
        let s = Settings::from_lookup(&|k: &str| m.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.policies.get(Policy::GLOBAL).unwrap().rate, Rate::new(3, 3600).unwrap());
        assert_eq!(s.policies.get(Policy::AUTH).unwrap().rate, Rate::new(2, 900).unwrap());
        assert_eq!(s.policies.get(Policy::NETWORK), Policies::default().get(Policy::NETWORK));
        assert_eq!(s.store_timeout, Duration::from_millis(2000));
        assert_eq!(s.store_retry_after, Settings::default().store_retry_after);
        let p = declared(&[("TEST_TIERED_PRO", "7/60")]).unwrap();
        assert_eq!(p.get(TIERED.of(Tier::Pro)).unwrap().rate, Rate::new(7, 60).unwrap());
        assert_eq!(p.get(TIERED.of(Tier::Free)).unwrap().rate, rate(100, HOUR));
    }

    #[test]
    fn bad_settings_fail_the_start() {
        for bad in ["", "100", "0/1h", "100/0", "-1/1h", "100/1w", "100/h", "1/99999999999999999999", "1e3/1h"] {
            let s = Settings::from_lookup(&|k: &str| (k == "RATE_LIMIT_GLOBAL").then(|| bad.to_string()));
            assert!(matches!(s, Err(ConfigError::Invalid { name: "RATE_LIMIT_GLOBAL", .. })), "{bad:?} was accepted");
            let p = declared(&[("TEST_TIERED_FREE", bad)]);
            assert!(matches!(p, Err(ConfigError::Invalid { name: "TEST_TIERED_FREE", .. })), "{bad:?} was accepted");
        }
        for bad in ["soon", "0", "600001", "-1"] {
            let s = Settings::from_lookup(&|k: &str| (k == "RATE_LIMIT_STORE_TIMEOUT_MS").then(|| bad.to_string()));
            assert!(s.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn keys_name_the_policy_and_never_collide() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(Policy::GLOBAL.key(&ip.into()), "global#ip#203.0.113.9");
        assert_eq!(Policy::AUTH.key(&ip.into()), "auth#ip#203.0.113.9");
        assert_eq!(TIERED.of(Tier::Pro).key(&"u_1".into()), "tiered#user#u_1");
        assert_eq!(TIERED.of(Tier::Free).key(&"u_1".into()), TIERED.of(Tier::Pro).key(&"u_1".into()));
        assert_ne!(FLAT.policy().key(&"u_1".into()), TIERED.of(Tier::Free).key(&"u_1".into()));
        // A user id that looks like an address is still a user key.
        assert_ne!(Policy::GLOBAL.key(&"203.0.113.9".into()), Policy::GLOBAL.key(&ip.into()));
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
        assert_eq!(Policy::NETWORK.key(&a.into()), "network#ip#2001:db8:1::/48");
        assert_eq!(Policy::NETWORK.key(&a.into()), Policy::NETWORK.key(&b.into()));
        assert_ne!(Policy::NETWORK.key(&a.into()), Policy::NETWORK.key(&other.into()));
        assert_ne!(Policy::GLOBAL.key(&a.into()), Policy::GLOBAL.key(&b.into()), "different /64s");
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!((network_of(v4), network_of(mapped)), (None, None), "IPv4 has no wider bucket");
    }

    #[test]
    fn long_ids_are_hashed_to_a_bounded_key() {
        let long = "x".repeat(5000);
        let key = FLAT.policy().key(&long.as_str().into());
        assert!(key.starts_with("flat#user-sha256#") && key.len() < 100, "{key}");
        assert_ne!(key, FLAT.policy().key(&"y".repeat(5000).as_str().into()));
    }

    #[test]
    fn failure_modes_come_from_the_environment() {
        let m: HashMap<&str, &str> = [
            ("RATE_LIMIT_FALLBACK_AUTH", "refuse"),
            ("RATE_LIMIT_FALLBACK_NETWORK", " 7 "),
            ("RATE_LIMIT_CONTENDED_WAIT_MS", "3000"),
        ]
        .into_iter()
        .collect();
        let s = Settings::from_lookup(&|k: &str| m.get(k).map(|v| v.to_string())).unwrap();
        let mode = |p: Policy| s.policies.get(p).unwrap().fallback;
        assert_eq!(mode(Policy::AUTH), FallbackMode::Refuse);
        assert_eq!(mode(Policy::NETWORK), FallbackMode::Allow(7));
        assert_eq!(mode(Policy::GLOBAL), FallbackMode::Allow(u64::MAX));
        assert_eq!(s.contended_wait, Duration::from_millis(3000));
        let p = declared(&[("TEST_FALLBACK_TIERED_FREE", "full")]).unwrap();
        assert_eq!(p.get(TIERED.of(Tier::Free)).unwrap().fallback, FallbackMode::Allow(u64::MAX));
        for bad in ["", "0", "-1", "some", "1.5"] {
            let p = declared(&[("TEST_FALLBACK_FLAT", bad)]);
            assert!(matches!(p, Err(ConfigError::Invalid { name: "TEST_FALLBACK_FLAT", .. })), "{bad:?} was accepted");
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
        // The platform's failure modes are its whole limits (see the global policy's why).
        for (policy, l) in Policies::default().iter() {
            assert_eq!(l.fallback.worst_case(&l.rate).0, l.rate.capacity(), "{policy:?}");
        }
    }
}
