//! Chat's rate-limit policies, declared once: name (bucket keys, `RateLimit` fields, problem
//! bodies), variables, default rate and failure mode. The limiter reads their variables at start
//! ([`declare`]); docs/rate-limits.md states each (a test checks the page against these).
//!
//! | policy | default | key |
//! |---|---|---|
//! | chat | 100 / 1000 / 10000 per 1 h by tier | user (`RATE_LIMIT_CHAT_FREE`, `_PRO`, `_ENTERPRISE`) |
//! | images | 50 / 1 h | user (`RATE_LIMIT_IMAGES`) |
//! | audio | 20 / 1 h | user, files sent to transcription (`RATE_LIMIT_AUDIO`) |
//! | audio_seconds | 1200 / 10800 / 72000 per 1 h by tier | user, seconds of audio transcribed (`RATE_LIMIT_AUDIO_SECONDS_FREE`, `_PRO`, `_ENTERPRISE`) |
//! | search | 100 / 1 h | user (`RATE_LIMIT_SEARCH`) |
//!
//! Failure modes (`RATE_LIMIT_FALLBACK_<POLICY>`): small allowances, for what costs money per
//! request: chat 10 / 50 / 200 by tier, images 5, audio 2, audio seconds 120 / 600 / 3600 by
//! tier, search 20 units per window and key on one instance.

use baatcheet_shared::AppContext;
use baatcheet_shared::config::ConfigError;
use baatcheet_shared::rate_limit::{FallbackMode, PolicySpec, Setting, Sizing};

const HOUR: u64 = 3600;

const fn allow(units: u64) -> FallbackMode {
    FallbackMode::Allow(units)
}

/// Chat completions (and regenerations) by user, sized by the user's tier; the tiers share one
/// bucket per user.
pub const CHAT: PolicySpec = PolicySpec {
    name: "chat",
    sizing: Sizing::ByTier([
        Setting::new("RATE_LIMIT_CHAT_FREE", 100, HOUR, "RATE_LIMIT_FALLBACK_CHAT_FREE", allow(10)),
        Setting::new("RATE_LIMIT_CHAT_PRO", 1000, HOUR, "RATE_LIMIT_FALLBACK_CHAT_PRO", allow(50)),
        Setting::new("RATE_LIMIT_CHAT_ENTERPRISE", 10_000, HOUR, "RATE_LIMIT_FALLBACK_CHAT_ENTERPRISE", allow(200)),
    ]),
};

/// Images by user; each image a request carries costs one.
pub const IMAGES: PolicySpec = PolicySpec {
    name: "images",
    sizing: Sizing::Flat(Setting::new("RATE_LIMIT_IMAGES", 50, HOUR, "RATE_LIMIT_FALLBACK_IMAGES", allow(5))),
};

/// Audio files sent to transcription by user (one per file).
pub const AUDIO: PolicySpec = PolicySpec {
    name: "audio",
    sizing: Sizing::Flat(Setting::new("RATE_LIMIT_AUDIO", 20, HOUR, "RATE_LIMIT_FALLBACK_AUDIO", allow(2))),
};

/// Seconds of audio transcribed by user, sized by the user's tier: a file costs its duration (a
/// weighted charge), so a long file cannot pass for a short one. Free 20 minutes an hour (voice
/// notes), pro 3 hours, enterprise 20 hours (meetings); a file is at most `MAX_AUDIO_SECONDS`.
pub const AUDIO_SECONDS: PolicySpec = PolicySpec {
    name: "audio_seconds",
    sizing: Sizing::ByTier([
        Setting::new("RATE_LIMIT_AUDIO_SECONDS_FREE", 1200, HOUR, "RATE_LIMIT_FALLBACK_AUDIO_SECONDS_FREE", allow(120)),
        Setting::new("RATE_LIMIT_AUDIO_SECONDS_PRO", 10_800, HOUR, "RATE_LIMIT_FALLBACK_AUDIO_SECONDS_PRO", allow(600)),
        Setting::new(
            "RATE_LIMIT_AUDIO_SECONDS_ENTERPRISE",
            72_000,
            HOUR,
            "RATE_LIMIT_FALLBACK_AUDIO_SECONDS_ENTERPRISE",
            allow(3600),
        ),
    ]),
};

/// Searches by user.
pub const SEARCH: PolicySpec = PolicySpec {
    name: "search",
    sizing: Sizing::Flat(Setting::new("RATE_LIMIT_SEARCH", 100, HOUR, "RATE_LIMIT_FALLBACK_SEARCH", allow(20))),
};

/// Every policy of the chat function (the webhook's erasure deletes each one's buckets).
pub const ALL: [&PolicySpec; 5] = [&CHAT, &IMAGES, &AUDIO, &AUDIO_SECONDS, &SEARCH];

/// Declares chat's policies to the context's limiter, from the context's environment (at start:
/// a bad value fails it).
pub fn declare(ctx: &AppContext) -> Result<(), ConfigError> {
    ctx.limiter.declare(&ALL, &|k: &str| ctx.config.var(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baatcheet_shared::auth::Tier;
    use baatcheet_shared::rate_limit::Policies;
    use baatcheet_shared::rate_limit::policy::PLATFORM;

    #[test]
    fn defaults_are_the_spec_table() {
        let mut p = Policies::default();
        p.declare_defaults(&ALL);
        let q = |policy| p.get(policy).map(|l| (l.rate.capacity(), l.rate.window_secs()));
        assert_eq!(q(CHAT.of(Tier::Free)), Some((100, 3600)));
        assert_eq!(q(CHAT.of(Tier::Pro)), Some((1000, 3600)));
        assert_eq!(q(CHAT.of(Tier::Enterprise)), Some((10_000, 3600)));
        assert_eq!(q(IMAGES.policy()), Some((50, 3600)));
        assert_eq!(q(AUDIO.policy()), Some((20, 3600)));
        assert_eq!(q(AUDIO_SECONDS.of(Tier::Free)), Some((1200, 3600)));
        assert_eq!(q(AUDIO_SECONDS.of(Tier::Pro)), Some((10_800, 3600)));
        assert_eq!(q(AUDIO_SECONDS.of(Tier::Enterprise)), Some((72_000, 3600)));
        assert_eq!(q(SEARCH.policy()), Some((100, 3600)));
    }

    #[test]
    fn the_failure_modes_are_small_for_what_costs_money() {
        let mut p = Policies::default();
        p.declare_defaults(&ALL);
        for spec in ALL {
            for (policy, _) in spec.settings() {
                let l = p.get(policy).unwrap();
                let (at_once, _) = l.fallback.worst_case(&l.rate);
                assert!(at_once * 5 <= l.rate.capacity(), "{policy:?}: {at_once}");
            }
        }
    }

    #[test]
    fn names_are_unique_so_no_two_policies_share_a_bucket() {
        let mut names: Vec<&str> = PLATFORM.iter().chain(ALL.iter()).map(|s| s.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "{names:?}");
    }

    #[test]
    fn bad_values_fail_the_start_naming_their_variable() {
        let mut p = Policies::default();
        let err = p.declare(&ALL, &|k: &str| (k == "RATE_LIMIT_CHAT_FREE").then(|| "100".to_string())).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "RATE_LIMIT_CHAT_FREE", .. }), "{err}");
        let err = p.declare(&ALL, &|k: &str| (k == "RATE_LIMIT_FALLBACK_IMAGES").then(|| "0".to_string())).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "RATE_LIMIT_FALLBACK_IMAGES", .. }), "{err}");
    }
}
