//! The health function's own settings, read at start from the environment the shared config was
//! read from; a bad value fails the start.

use baatcheet_shared::config::{Config, ConfigError, parse_num};
use std::time::Duration;

/// A table the database probe reads one key of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// For logs.
    pub name: &'static str,
    pub physical: String,
    /// Whether its key has a sort key (`sk`) besides `pk`.
    pub sort_key: bool,
}

/// Every table of the stack (template.yaml): name, variable, whether it has a sort key.
const TABLES: [(&str, &str, bool); 5] = [
    ("users", "USERS_TABLE", false),
    ("conversations", "CONVERSATIONS_TABLE", true),
    ("rate_limits", "RATE_LIMITS_TABLE", false),
    ("webhook_deliveries", "WEBHOOK_DELIVERIES_TABLE", false),
    ("stream_leases", "STREAM_LEASES_TABLE", true),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Per-dependency timeout of the probes (`DEPENDENCY_TIMEOUT_MS`, default 1500).
    pub dependency_timeout: Duration,
    /// How long one run of the probes answers `/health` and `/ready` on an instance
    /// (`HEALTH_PROBE_TTL_MS`, default 1000; 0 probes on every request).
    pub probe_ttl: Duration,
    /// Every table of the stack, each probed with one key read.
    pub tables: Vec<Table>,
}

impl HealthConfig {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let get = |k: &str| config.var(k);
        let tables = TABLES
            .iter()
            .map(|&(name, var, sort_key)| Ok(Table { name, physical: config.env.required(var)?, sort_key }))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            dependency_timeout: Duration::from_millis(parse_num(&get, "DEPENDENCY_TIMEOUT_MS", 1500)?),
            probe_ttl: Duration::from_millis(parse_num(&get, "HEALTH_PROBE_TTL_MS", 1000)?),
            tables,
        })
    }
}
