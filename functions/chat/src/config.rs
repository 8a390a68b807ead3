//! The chat function's own settings, from environment variables (template.yaml sets them in AWS).
//! Parsed once at cold start like the shared `Config`; a bad value fails the start.

use crate::safety::ssrf::{FetchLimits, UrlPolicy};
use crate::safety::upload::UploadLimits;
use crate::streams::StreamLimits;
use baatcheet_shared::config::{Config, ConfigError};
use std::time::Duration;

/// The chat function's tables (template.yaml sets their names), read from the environment the
/// shared config was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTables {
    /// `CONVERSATIONS_TABLE`: conversations, messages and Idempotency-Key records (`store/`).
    pub conversations: String,
    /// `STREAM_LEASES_TABLE`: open-stream leases (`pk` user id, `sk` slot; `streams.rs`).
    pub stream_leases: String,
}

impl ChatTables {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            conversations: config.env.required("CONVERSATIONS_TABLE")?,
            stream_leases: config.env.required("STREAM_LEASES_TABLE")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// TCP + TLS connect to an upstream (`UPSTREAM_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// From sending the request to the first token of a streamed answer
    /// (`UPSTREAM_FIRST_TOKEN_TIMEOUT_MS`). Failover is allowed within it.
    pub first_token_timeout: Duration,
    /// Longest silence between two chunks once streaming (`UPSTREAM_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Whole-request bound of non-streamed calls and transcriptions (`UPSTREAM_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Consecutive failures that open a provider's circuit (`PROVIDER_CIRCUIT_FAILURES`).
    pub circuit_failures: u32,
    /// How long an open circuit skips its provider (`PROVIDER_CIRCUIT_OPEN_SECONDS`).
    pub circuit_open: Duration,
    /// Cooldown of a key after a 429 without a usable Retry-After (`PROVIDER_COOLDOWN_SECONDS`).
    pub default_cooldown: Duration,
    /// Upper bound on any cooldown an upstream asks for (`PROVIDER_MAX_COOLDOWN_SECONDS`).
    pub max_cooldown: Duration,
    /// Most recent messages sent upstream as context, the new one included (`CHAT_CONTEXT_MESSAGES`).
    pub context_messages: usize,
    /// Estimated-token budget of the context, system prompt included (`CHAT_CONTEXT_BUDGET_TOKENS`);
    /// the model's context length minus the answer's reserve bounds it further.
    pub context_budget_tokens: usize,
    /// Longest gap without bytes on an SSE response before a comment heartbeat (`SSE_HEARTBEAT_SECONDS`,
    /// at most 15).
    pub heartbeat: Duration,
    /// Items a search may read per request, across all pages it fetches (`SEARCH_MAX_ITEMS`).
    pub search_max_items: usize,
    /// What an image URL may be (`URL_ALLOW_HTTP`, `URL_ALLOWED_PORTS`, `URL_RESOLVE_TIMEOUT_MS`).
    pub urls: UrlPolicy,
    /// Image and audio sizes and images per message (`MAX_IMAGE_BYTES`, `MAX_AUDIO_BYTES`,
    /// `MAX_IMAGES_PER_MESSAGE`).
    pub uploads: UploadLimits,
    /// Whole fetch of one image URL, connect to last byte (`IMAGE_FETCH_TIMEOUT_MS`).
    pub image_fetch_timeout: Duration,
    /// Open completion streams per user by tier, and their leases' TTL (`CHAT_STREAMS_*`,
    /// `CHAT_STREAM_LEASE_TTL_SECONDS`).
    pub streams: StreamLimits,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(3_000),
            first_token_timeout: Duration::from_millis(20_000),
            idle_timeout: Duration::from_millis(30_000),
            request_timeout: Duration::from_millis(120_000),
            circuit_failures: 5,
            circuit_open: Duration::from_secs(30),
            default_cooldown: Duration::from_secs(20),
            max_cooldown: Duration::from_secs(600),
            context_messages: 50,
            context_budget_tokens: 24_000,
            heartbeat: Duration::from_secs(15),
            search_max_items: 500,
            urls: UrlPolicy::default(),
            uploads: UploadLimits::default(),
            image_fetch_timeout: Duration::from_millis(10_000),
            streams: StreamLimits::default(),
        }
    }
}

/// Heartbeats further apart than this let proxies time the stream out.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(15);

impl ChatConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let Some(raw) = get(name).filter(|v| !v.trim().is_empty()) else { return Ok(default) };
            let v: u64 = raw
                .trim()
                .parse()
                .map_err(|e: std::num::ParseIntError| ConfigError::Invalid { name, reason: e.to_string() })?;
            if !(min..=max).contains(&v) {
                return Err(ConfigError::Invalid { name, reason: format!("{v} is outside {min}..={max}") });
            }
            Ok(v)
        };
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(Self {
            connect_timeout: Duration::from_millis(num(
                "UPSTREAM_CONNECT_TIMEOUT_MS",
                ms(d.connect_timeout),
                1,
                60_000,
            )?),
            first_token_timeout: Duration::from_millis(num(
                "UPSTREAM_FIRST_TOKEN_TIMEOUT_MS",
                ms(d.first_token_timeout),
                1,
                600_000,
            )?),
            idle_timeout: Duration::from_millis(num("UPSTREAM_IDLE_TIMEOUT_MS", ms(d.idle_timeout), 1, 600_000)?),
            request_timeout: Duration::from_millis(num(
                "UPSTREAM_REQUEST_TIMEOUT_MS",
                ms(d.request_timeout),
                1,
                900_000,
            )?),
            circuit_failures: num("PROVIDER_CIRCUIT_FAILURES", d.circuit_failures.into(), 1, 1_000)? as u32,
            circuit_open: Duration::from_secs(num(
                "PROVIDER_CIRCUIT_OPEN_SECONDS",
                d.circuit_open.as_secs(),
                1,
                3_600,
            )?),
            default_cooldown: Duration::from_secs(num(
                "PROVIDER_COOLDOWN_SECONDS",
                d.default_cooldown.as_secs(),
                1,
                3_600,
            )?),
            max_cooldown: Duration::from_secs(num(
                "PROVIDER_MAX_COOLDOWN_SECONDS",
                d.max_cooldown.as_secs(),
                1,
                86_400,
            )?),
            context_messages: num("CHAT_CONTEXT_MESSAGES", d.context_messages as u64, 1, 500)? as usize,
            context_budget_tokens: num("CHAT_CONTEXT_BUDGET_TOKENS", d.context_budget_tokens as u64, 256, 2_000_000)?
                as usize,
            heartbeat: Duration::from_secs(num(
                "SSE_HEARTBEAT_SECONDS",
                d.heartbeat.as_secs(),
                1,
                MAX_HEARTBEAT.as_secs(),
            )?),
            search_max_items: num("SEARCH_MAX_ITEMS", d.search_max_items as u64, 10, 5_000)? as usize,
            urls: UrlPolicy::from_lookup(&get)?,
            uploads: UploadLimits::from_lookup(&get)?,
            image_fetch_timeout: Duration::from_millis(num(
                "IMAGE_FETCH_TIMEOUT_MS",
                ms(d.image_fetch_timeout),
                1,
                60_000,
            )?),
            streams: StreamLimits::from_lookup(&get)?,
        })
    }

    /// Bounds of one image fetch: the image size limit, the fetch timeout, the connect timeout.
    pub fn image_fetch_limits(&self) -> FetchLimits {
        FetchLimits {
            max_bytes: self.uploads.max_image_bytes,
            timeout: self.image_fetch_timeout,
            connect_timeout: self.connect_timeout.min(self.image_fetch_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<ChatConfig, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ChatConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.context_messages, 50);
        assert_eq!(c.heartbeat, Duration::from_secs(15));
        let c = parse(&[("UPSTREAM_FIRST_TOKEN_TIMEOUT_MS", "250"), ("CHAT_CONTEXT_MESSAGES", "10")]).unwrap();
        assert_eq!(c.first_token_timeout, Duration::from_millis(250));
        assert_eq!(c.context_messages, 10);
    }

    #[test]
    fn rejects_bad_values() {
        for (k, v) in [
            ("UPSTREAM_IDLE_TIMEOUT_MS", "soon"),
            ("UPSTREAM_IDLE_TIMEOUT_MS", "0"),
            ("SSE_HEARTBEAT_SECONDS", "30"),
            ("CHAT_CONTEXT_MESSAGES", "-1"),
        ] {
            assert!(parse(&[(k, v)]).is_err(), "{k}={v}");
        }
    }
}
