//! Typed configuration from environment variables (set by template.yaml in AWS, by the local
//! gateway locally). Parsed once at cold start; a bad value fails the start, not a request.

use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required")]
    Missing { name: &'static str },
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The physical names of the platform's own tables (template.yaml declares them). A function
/// reads its own tables in its own config module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `USERS_TABLE`: the users (`users.rs`), read and created by authentication.
    pub users: String,
    /// `RATE_LIMITS_TABLE`: the limiter's buckets.
    pub rate_limits: String,
}

/// The environment the configuration was read from (the process's in AWS, a map in tests), kept
/// so that each function reads its own settings, tables and limits from the same source.
#[derive(Clone)]
pub struct Env(Arc<Lookup>);

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Env {
    pub fn new(get: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(get))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// A variable that must be set (and not blank).
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing { name })
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `development` (unset), `staging` or `prod` (template.yaml's `Environment`).
    pub environment: String,
    pub version: String,
    pub tables: Tables,
    /// `SECRET_ID`: this function's own Secrets Manager secret (name or ARN, a JSON object), if it
    /// needs one (health and docs have none).
    pub secret_id: Option<String>,
    pub secret_ttl: Duration,
    /// Exact origins allowed by CORS; empty means no cross-origin access.
    pub cors_origins: Vec<HeaderValue>,
    /// Rate-limit store behaviour and the platform's policies (`RATE_LIMIT_*`); functions
    /// declare their own to the limiter.
    pub rate_limits: crate::rate_limit::Settings,
    /// Clerk authentication settings (CLERK_* variables).
    pub clerk: crate::auth::ClerkConfig,
    /// Where the above was read from, for the function's own settings.
    pub env: Env,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the config from any key lookup, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let get = |k: &str| env.get(k);
        let tables = Tables { users: env.required("USERS_TABLE")?, rate_limits: env.required("RATE_LIMITS_TABLE")? };
        let cors_origins = get("CORS_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                parse_origin(o).ok_or(ConfigError::Invalid {
                    name: "CORS_ALLOWED_ORIGINS",
                    reason: format!("'{o}' is not a scheme://host[:port] origin"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let environment = get("ENVIRONMENT").unwrap_or_else(|| "development".into());
        let clerk = crate::auth::ClerkConfig::from_lookup(&get)?;
        clerk.check_for_environment(&environment)?;
        Ok(Self {
            environment,
            version: get("APP_VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            tables,
            secret_id: get("SECRET_ID").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
            secret_ttl: Duration::from_secs(parse_num(&get, "SECRET_TTL_SECONDS", 300)?),
            cors_origins,
            rate_limits: crate::rate_limit::Settings::from_lookup(&get)?,
            clerk,
            env: env.clone(),
        })
    }

    /// A variable of the environment this config was read from.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }
}

/// A whole-number variable, `default` when unset.
pub fn parse_num(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => {
            v.trim().parse().map_err(|e: std::num::ParseIntError| ConfigError::Invalid { name, reason: e.to_string() })
        }
    }
}

/// An origin is compared byte for byte by CORS, so only the canonical form is accepted.
fn parse_origin(o: &str) -> Option<HeaderValue> {
    let (scheme, rest) = o.split_once("://")?;
    let host_ok =
        !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']) && rest.bytes().all(|b| b.is_ascii_graphic());
    if !matches!(scheme, "http" | "https") || !host_ok {
        return None;
    }
    HeaderValue::from_str(o).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> =
            [("USERS_TABLE", "u"), ("RATE_LIMITS_TABLE", "r"), ("SECRET_ID", "baatcheet/dev")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn parses_defaults_and_origins() {
        let m = vars(&[("CORS_ALLOWED_ORIGINS", "https://app.baatcheet.app, http://localhost:5173")]);
        let c = Config::from_lookup(move |k| m.get(k).cloned()).unwrap();
        assert_eq!(c.cors_origins.len(), 2);
        assert_eq!(c.secret_ttl, Duration::from_secs(300));
        assert_eq!(c.environment, "development");
    }

    #[test]
    fn rejects_missing_and_invalid() {
        let mut m = vars(&[]);
        m.remove("USERS_TABLE");
        assert!(matches!(
            Config::from_lookup(move |k| m.get(k).cloned()),
            Err(ConfigError::Missing { name: "USERS_TABLE" })
        ));
        for bad in ["*", "https://a.com/path", "ftp://a.com", "https://user@a.com"] {
            let m = vars(&[("CORS_ALLOWED_ORIGINS", bad)]);
            assert!(Config::from_lookup(move |k| m.get(k).cloned()).is_err(), "{bad}");
        }
        let m = vars(&[("SECRET_TTL_SECONDS", "soon")]);
        assert!(Config::from_lookup(move |k| m.get(k).cloned()).is_err());
    }

    #[test]
    fn production_without_authorized_parties_does_not_start() {
        let m = vars(&[("ENVIRONMENT", "prod")]);
        let err = Config::from_lookup(move |k| m.get(k).cloned()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "CLERK_AUTHORIZED_PARTIES", .. }), "{err}");
        let m = vars(&[("ENVIRONMENT", "prod"), ("CLERK_AUTHORIZED_PARTIES", "https://app.baatcheet.app")]);
        assert_eq!(Config::from_lookup(move |k| m.get(k).cloned()).unwrap().environment, "prod");
    }
}
