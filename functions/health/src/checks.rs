//! Dependency probes. Each runs with its own short timeout and all run concurrently, so one hung
//! dependency costs at most one timeout.

use crate::config::HealthConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_shared::{AppContext, error::error_chain};
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// `healthy`; `degraded` when only a non-critical dependency failed; `unhealthy` when a critical
/// one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One dependency probe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// `healthy` or `unhealthy`.
    pub status: Status,
    /// Milliseconds the probe took.
    #[schema(example = 12)]
    pub latency: u64,
    /// Why a probe failed (generic, no internals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeError {
    /// The dependency answered with an error or could not be reached.
    Unreachable,
    /// No answer within `DEPENDENCY_TIMEOUT_MS`.
    Timeout,
    /// The rate limiter's store failed; decisions come from per-instance buckets.
    #[serde(rename = "store_unavailable_using_fallback")]
    StoreUnavailableUsingFallback,
}

/// Whether a failing dependency makes the instance unhealthy or only degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    Critical,
    NonCritical,
}

#[derive(Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub criticality: Criticality,
    pub check: Check,
}

async fn timed<F, E>(timeout: Duration, name: &'static str, fut: F) -> Check
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, fut).await;
    let latency = started.elapsed().as_millis() as u64;
    match result {
        Ok(Ok(())) => Check { status: Status::Healthy, latency, error: None },
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %error_chain(&e), "health probe failed");
            Check { status: Status::Unhealthy, latency, error: Some(ProbeError::Unreachable) }
        }
        Err(_) => {
            tracing::warn!(dependency = name, timeout_ms = timeout.as_millis() as u64, "health probe timed out");
            Check { status: Status::Unhealthy, latency, error: Some(ProbeError::Timeout) }
        }
    }
}

/// One key read on every table the project declares: proves the endpoint, credentials,
/// permissions and each table's existence with the same calls the request path makes.
pub async fn database(ctx: &AppContext, config: &HealthConfig) -> Check {
    timed(config.dependency_timeout, "database", async move {
        let probes = config.tables.iter().map(|t| {
            let mut req =
                ctx.dynamo.get_item().table_name(&t.physical).key("pk", AttributeValue::S("__health__".into()));
            if t.sort_key {
                req = req.key("sk", AttributeValue::S("__health__".into()));
            }
            req.send()
        });
        futures::future::try_join_all(probes).await.map(|_| ())
    })
    .await
}

/// A fresh read of the secret (it also refreshes the cache).
pub async fn secrets(ctx: &AppContext, config: &HealthConfig) -> Check {
    timed(config.dependency_timeout, "secrets", async { ctx.secrets.fetch().await.map(|_| ()) }).await
}

/// The rate limiter as it has fared on this instance: degraded while DynamoDB failed it and its
/// decisions come from in-memory buckets (requests are still served).
pub async fn rate_limiter(ctx: &AppContext, config: &HealthConfig) -> Check {
    let started = Instant::now();
    // A degraded limiter may try its store once; an answer later than the timeout is no recovery.
    let degraded = tokio::time::timeout(config.dependency_timeout, ctx.limiter.health())
        .await
        .map_or(true, |stats| stats.degraded);
    let latency = started.elapsed().as_millis() as u64;
    if degraded {
        Check { status: Status::Degraded, latency, error: Some(ProbeError::StoreUnavailableUsingFallback) }
    } else {
        Check { status: Status::Healthy, latency, error: None }
    }
}

/// Runs every probe concurrently. Secrets are probed only when the function has one (the
/// deployed health function has none: it needs no secret and may read none), and are critical
/// only until a value has been cached.
pub async fn run_all(ctx: &AppContext, config: &HealthConfig) -> Vec<Outcome> {
    let with_secret = ctx.secrets.is_configured();
    let sec = async { if with_secret { Some(secrets(ctx, config).await) } else { None } };
    let (db, sec, limiter) = tokio::join!(database(ctx, config), sec, rate_limiter(ctx, config));
    let secrets_criticality = if ctx.secrets.has_value() { Criticality::NonCritical } else { Criticality::Critical };
    let mut out = vec![Outcome { name: "database", criticality: Criticality::Critical, check: db }];
    if let Some(check) = sec {
        out.push(Outcome { name: "secrets", criticality: secrets_criticality, check });
    }
    out.push(Outcome { name: "rate_limiter", criticality: Criticality::NonCritical, check: limiter });
    out
}

/// Overall status: any critical failure is unhealthy, any other failure degraded.
pub fn overall(outcomes: &[Outcome]) -> Status {
    let failed = |c: Criticality| outcomes.iter().any(|o| o.criticality == c && o.check.status != Status::Healthy);
    if failed(Criticality::Critical) {
        Status::Unhealthy
    } else if failed(Criticality::NonCritical) {
        Status::Degraded
    } else {
        Status::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &'static str, criticality: Criticality, status: Status) -> Outcome {
        Outcome { name, criticality, check: Check { status, latency: 1, error: None } }
    }

    #[test]
    fn overall_status_follows_criticality() {
        use Criticality::*;
        use Status::*;
        assert_eq!(overall(&[outcome("a", Critical, Healthy), outcome("b", NonCritical, Healthy)]), Healthy);
        assert_eq!(overall(&[outcome("a", Critical, Healthy), outcome("b", NonCritical, Unhealthy)]), Degraded);
        assert_eq!(overall(&[outcome("a", Critical, Unhealthy), outcome("b", NonCritical, Healthy)]), Unhealthy);
    }
}
