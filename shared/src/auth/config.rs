//! Clerk settings, from environment variables (template.yaml in AWS, the gateway locally).
//! Secret values (`CLERK_SECRET_KEY`, `CLERK_WEBHOOK_SECRET`, and `CLERK_JWT_KEY` when it is not
//! in the environment) come from the Secrets Manager secret instead.

use http::Uri;
use std::time::Duration;

use crate::config::ConfigError;

/// The `ENVIRONMENT` value of production (template.yaml's `Environment` parameter).
pub const PRODUCTION: &str = "prod";

/// Clerk's Backend API, whose `GET /v1/jwks` serves the instance's signing keys.
pub const DEFAULT_API_URL: &str = "https://api.clerk.com";

/// Default user cache TTL: the revocation bound. A role, tier or deletion written to the users
/// table (webhook or admin) applies to every request that starts this long after the write, on
/// every instance: each instance re-reads a user (one strongly consistent GetItem) once its
/// cached copy is this old. Lambda instances share no memory, so no instance can drop another's
/// copy; the TTL is what bounds them all.
pub const USER_CACHE_TTL_SECS: u64 = 2;

/// How the per-instance JWKS cache behaves. Not read from the environment: the defaults are the
/// contract (5 min TTL, unknown-kid refetch at most once a minute); tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksPolicy {
    /// Keys older than this are refetched before use.
    pub ttl: Duration,
    /// A token naming a kid the cache does not know triggers a refetch only if the last fetch
    /// is at least this old: a flood of forged kids cannot become a fetch storm.
    pub unknown_kid_refetch: Duration,
    /// After a failed fetch, no new attempt for this long (stale keys keep serving meanwhile).
    pub failure_backoff: Duration,
    /// Bound on one fetch, connect to last byte.
    pub fetch_timeout: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            unknown_kid_refetch: Duration::from_secs(60),
            failure_backoff: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// `CLERK_ISSUER`: the instance's Frontend API URL; every token's `iss` must equal it. Unset
    /// means authentication fails closed (500) rather than accepting any issuer.
    pub issuer: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES` (comma-separated origins): when set, `azp` must be one of them.
    pub authorized_parties: Vec<String>,
    /// `CLERK_CLOCK_SKEW_SECS` (default 5): tolerance on `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// `CLERK_API_URL` (default https://api.clerk.com): base of the Backend API JWKS endpoint.
    pub api_url: String,
    /// `CLERK_JWKS_URL`: a JWKS to read instead of the Backend API (e.g. the instance's
    /// `/.well-known/jwks.json`); fetched without credentials.
    pub jwks_url: Option<String>,
    /// `CLERK_JWT_KEY` from the environment: the PEM public key for networkless verification.
    pub jwt_key: Option<String>,
    /// `AUTH_USER_CACHE_TTL_SECS` (default [`USER_CACHE_TTL_SECS`]): how long a user row is
    /// trusted per instance, i.e. the revocation bound (docs/auth.md).
    pub user_cache_ttl: Duration,
    pub jwks: JwksPolicy,
}

impl ClerkConfig {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let opt = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let authorized_parties = opt("CLERK_AUTHORIZED_PARTIES")
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let api_url = match opt("CLERK_API_URL") {
            Some(url) => fetchable_url("CLERK_API_URL", &url)?,
            None => DEFAULT_API_URL.to_string(),
        };
        let jwks_url = opt("CLERK_JWKS_URL").map(|u| fetchable_url("CLERK_JWKS_URL", &u)).transpose()?;
        Ok(Self {
            // Clerk's `iss` has no trailing slash; a configured one must not make every token fail.
            issuer: opt("CLERK_ISSUER").map(|i| i.trim_end_matches('/').to_string()),
            authorized_parties,
            clock_skew: Duration::from_secs(secs(&opt, "CLERK_CLOCK_SKEW_SECS", 5)?),
            api_url,
            jwks_url,
            jwt_key: get("CLERK_JWT_KEY").filter(|v| !v.trim().is_empty()),
            user_cache_ttl: Duration::from_secs(secs(&opt, "AUTH_USER_CACHE_TTL_SECS", USER_CACHE_TTL_SECS)?),
            jwks: JwksPolicy::default(),
        })
    }

    /// Production refuses to start without authorized parties: with none, `azp` is not checked,
    /// and a token the Clerk instance signs for any other client (any origin, a native app of
    /// another product) would be accepted here.
    pub fn check_for_environment(&self, environment: &str) -> Result<(), ConfigError> {
        if environment == PRODUCTION && self.authorized_parties.is_empty() {
            return Err(ConfigError::Invalid {
                name: "CLERK_AUTHORIZED_PARTIES",
                reason: format!(
                    "must list the origins of the apps that may call this API (e.g. https://app.baatcheet.pk) \
                     when ENVIRONMENT={PRODUCTION}; set the ClerkAuthorizedParties parameter"
                ),
            });
        }
        Ok(())
    }

    /// The Backend API's JWKS endpoint.
    pub fn backend_jwks_url(&self) -> String {
        format!("{}/v1/jwks", self.api_url)
    }
}

fn secs(opt: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match opt(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 3600)
            .ok_or(ConfigError::Invalid { name, reason: format!("'{v}' is not a number of seconds up to 3600") }),
    }
}

/// A URL the instance may fetch keys from: https, or plain http only to a loopback host (local
/// development and tests), so a misconfiguration cannot send the secret key in clear text.
fn fetchable_url(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { name, reason: format!("'{raw}' {reason}") };
    let uri: Uri = raw.parse().map_err(|_| invalid("is not a URL"))?;
    let host = uri.host().ok_or_else(|| invalid("has no host"))?;
    let loopback =
        matches!(host, "localhost" | "[::1]") || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        Some("http") => return Err(invalid("must use https (plain http only to a loopback host)")),
        _ => return Err(invalid("must be an http(s) URL")),
    }
    if uri.query().is_some() || raw.contains('@') {
        return Err(invalid("must not carry a query or credentials"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<ClerkConfig, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ClerkConfig::from_lookup(&|k: &str| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.issuer, None);
        assert!(c.authorized_parties.is_empty());
        assert_eq!(c.clock_skew, Duration::from_secs(5));
        assert_eq!(c.backend_jwks_url(), "https://api.clerk.com/v1/jwks");
        assert_eq!(c.jwks, JwksPolicy::default());
        assert_eq!(c.user_cache_ttl, Duration::from_secs(USER_CACHE_TTL_SECS));
    }

    #[test]
    fn parses_values() {
        let c = parse(&[
            ("CLERK_ISSUER", "https://clerk.example.com/"),
            ("CLERK_AUTHORIZED_PARTIES", " https://app.example.com, http://localhost:5173/ ,"),
            ("CLERK_CLOCK_SKEW_SECS", "10"),
            ("CLERK_API_URL", "http://127.0.0.1:4000/"),
        ])
        .unwrap();
        assert_eq!(c.issuer.as_deref(), Some("https://clerk.example.com"));
        assert_eq!(c.authorized_parties, ["https://app.example.com", "http://localhost:5173"]);
        assert_eq!(c.clock_skew, Duration::from_secs(10));
        assert_eq!(c.backend_jwks_url(), "http://127.0.0.1:4000/v1/jwks");
    }

    #[test]
    fn production_requires_authorized_parties() {
        let open = parse(&[]).unwrap();
        let err = open.check_for_environment("prod").unwrap_err().to_string();
        assert!(err.contains("CLERK_AUTHORIZED_PARTIES") && err.contains("ENVIRONMENT=prod"), "{err}");
        assert!(open.check_for_environment("staging").is_ok());
        assert!(open.check_for_environment("development").is_ok());
        let listed = parse(&[("CLERK_AUTHORIZED_PARTIES", "https://app.example.com")]).unwrap();
        assert!(listed.check_for_environment("prod").is_ok());
        let blank = parse(&[("CLERK_AUTHORIZED_PARTIES", " , ")]).unwrap();
        assert!(blank.check_for_environment("prod").is_err(), "separators alone list nothing");
    }

    #[test]
    fn rejects_unsafe_urls_and_bad_numbers() {
        for bad in ["http://api.clerk.com", "ftp://127.0.0.1", "not a url", "https://user:pw@api.clerk.com"] {
            assert!(parse(&[("CLERK_API_URL", bad)]).is_err(), "{bad}");
            assert!(parse(&[("CLERK_JWKS_URL", bad)]).is_err(), "{bad}");
        }
        assert!(parse(&[("CLERK_CLOCK_SKEW_SECS", "-1")]).is_err());
        assert!(parse(&[("CLERK_CLOCK_SKEW_SECS", "99999")]).is_err());
    }
}
