//! Health function: `/health` (detailed, truthful), `/ready` (critical dependencies), `/live`
//! (no dependencies) and `/api/v1/health/metrics` (process figures).

pub mod checks;
pub mod config;
pub mod metrics;
pub mod probe_cache;
pub mod routes;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use baatcheet_shared::config::ConfigError;
use baatcheet_shared::{AppContext, request_path};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

use checks::{Check, Status};
use config::HealthConfig;
use metrics::{Cpu, Memory};
use probe_cache::ProbeCache;

#[derive(Clone)]
pub struct HealthState {
    ctx: AppContext,
    invocations: Arc<AtomicU64>,
    /// Outside Lambda (`make dev`, tests): the limiter's figures are added to the metrics answer,
    /// there being no CloudWatch to read them from. Never in Lambda, where the answer is public.
    local: bool,
    probes: Arc<ProbeCache>,
    config: Arc<HealthConfig>,
}

/// The OpenAPI document of this function's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::table().openapi()
}

/// The function's routes with the shared request path around them; its settings are read from
/// the context's environment (a bad value fails the start).
pub fn router(ctx: AppContext) -> Result<Router, ConfigError> {
    let config = HealthConfig::from_config(&ctx.config)?;
    let state = HealthState {
        ctx: ctx.clone(),
        invocations: Arc::new(AtomicU64::new(0)),
        local: std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none(),
        probes: Arc::new(ProbeCache::new(config.probe_ttl)),
        config: Arc::new(config),
    };
    let (routes, access) = routes::table().plain_router();
    let routes = routes.layer(middleware::from_fn_with_state(state.clone(), count_invocation)).with_state(state);
    // No authenticator: the metrics are charged to the address, and this function never reads or
    // creates users (its grants allow neither).
    Ok(request_path::wrap_limited(routes, &ctx.config, ctx.limiter.clone(), access))
}

/// Counts invocations of this instance and marks the first one as the cold start.
async fn count_invocation(State(state): State<HealthState>, mut req: Request, next: Next) -> Response {
    let n = state.invocations.fetch_add(1, Ordering::Relaxed) + 1;
    req.extensions_mut().insert(Invocation(n));
    next.run(req).await
}

#[derive(Clone, Copy)]
struct Invocation(u64);

fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `GET /health` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub status: Status,
    #[schema(format = DateTime, example = "2026-11-27T12:00:00Z")]
    pub timestamp: String,
    #[schema(example = "0.1.0")]
    pub version: String,
    /// `development`, `staging` or `production`.
    #[schema(example = "staging")]
    pub environment: String,
    /// Seconds since this instance started.
    #[schema(example = 3600)]
    pub uptime: u64,
    /// When the probes behind `services` ran: one run answers this instance's `/health` and
    /// `/ready` for `HEALTH_PROBE_TTL_MS` (default 1 s).
    #[schema(format = DateTime, example = "2026-11-27T11:59:59.6Z")]
    pub checked_at: String,
    /// One probe per dependency: `database` (a key read on every table), `rate_limiter`, and
    /// `secrets` (a read of the function's own secret) only where it has one: the deployed
    /// health function has none.
    #[schema(value_type = BTreeMap<String, Check>)]
    pub services: BTreeMap<&'static str, Check>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyStatus {
    NotReady,
}

/// `GET /ready` when every critical dependency answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: ReadyStatus,
}

/// `GET /ready` when a critical dependency fails.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    pub status: NotReadyStatus,
    /// The critical dependencies that failed.
    #[schema(value_type = Vec<String>, example = json!(["database"]))]
    pub failed: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Alive,
}

/// `GET /live` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: LiveStatus,
    #[schema(format = DateTime, example = "2026-11-27T12:00:00Z")]
    pub timestamp: String,
}

/// `GET /api/v1/health/metrics` body: the seed's basic metrics of the instance that answered.
/// Public, so nothing internal: no function name, no traffic or limiter figures (those are in
/// CloudWatch, as EMF metrics, behind IAM: docs/observability.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessMetrics {
    #[schema(format = DateTime, example = "2026-11-27T12:00:00Z")]
    pub timestamp: String,
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Seconds since this instance started.
    #[schema(example = 3600.25)]
    pub uptime: f64,
    pub memory: Memory,
    pub cpu: Cpu,
    /// Whether this request was the instance's first (its cold start).
    pub cold_start: bool,
    /// Only outside Lambda (`make dev`, tests): this instance's rate-limiter decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub rate_limiter: Option<baatcheet_shared::rate_limit::LimiterStats>,
}

/// Detailed health
///
/// Probes every dependency concurrently, each with its own timeout (`DEPENDENCY_TIMEOUT_MS`):
/// a key read on every DynamoDB table and a fresh read of the app secret. `degraded` when the
/// secret is unreachable but cached; `unhealthy` (503) when DynamoDB is down or the secret was
/// never loaded. One probe run answers for `HEALTH_PROBE_TTL_MS` (default 1 s; `checked_at`
/// says when it ran), so bursts of health requests do not become bursts of backend calls.
#[utoipa::path(get, path = "/health", tag = "health", operation_id = "getHealth", responses(
    (status = 200, description = "Healthy or degraded.", body = HealthReport),
    (status = 503, description = "Unhealthy: a critical dependency failed.", body = HealthReport),
))]
async fn health(State(state): State<HealthState>) -> Response {
    let ctx = &state.ctx;
    let probed = state.probes.get(ctx, &state.config).await;
    let status = checks::overall(&probed.outcomes);
    let body = HealthReport {
        status,
        timestamp: now_rfc3339(),
        version: ctx.config.version.clone(),
        environment: ctx.config.environment.clone(),
        uptime: ctx.started.elapsed().as_secs(),
        checked_at: rfc3339(probed.checked_at),
        services: probed.outcomes.iter().map(|o| (o.name, o.check.clone())).collect(),
    };
    let code = if status == Status::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

/// Readiness
///
/// Ready when every critical dependency answers (the probes of `/health`, shared with it).
#[utoipa::path(get, path = "/ready", tag = "health", operation_id = "getReadiness", responses(
    (status = 200, description = "Ready to serve.", body = Ready),
    (status = 503, description = "A critical dependency failed.", body = NotReady),
))]
async fn ready(State(state): State<HealthState>) -> Response {
    let probed = state.probes.get(&state.ctx, &state.config).await;
    let failed: Vec<_> = probed
        .outcomes
        .iter()
        .filter(|o| o.criticality == checks::Criticality::Critical && o.check.status != Status::Healthy)
        .map(|o| o.name)
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, Json(Ready { status: ReadyStatus::Ready })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(NotReady { status: NotReadyStatus::NotReady, failed })).into_response()
    }
}

/// Liveness
///
/// Touches no dependency: the process answers.
#[utoipa::path(get, path = "/live", tag = "health", operation_id = "getLiveness", responses(
    (status = 200, description = "The process is alive.", body = Liveness),
))]
async fn live() -> Json<Liveness> {
    Json(Liveness { status: LiveStatus::Alive, timestamp: now_rfc3339() })
}

/// Process metrics
///
/// The version, resident and peak memory, CPU time, uptime and whether this request was the
/// instance's cold start. Nothing internal: the service's own metrics are in CloudWatch.
#[utoipa::path(get, path = "/api/v1/health/metrics", tag = "health", operation_id = "getProcessMetrics", responses(
    (status = 200, description = "Figures of the instance that served the request.", body = ProcessMetrics),
))]
async fn metrics_handler(State(state): State<HealthState>, req: Request) -> Json<ProcessMetrics> {
    let Invocation(n) = req.extensions().get::<Invocation>().copied().unwrap_or(Invocation(0));
    Json(ProcessMetrics {
        timestamp: now_rfc3339(),
        version: state.ctx.config.version.clone(),
        uptime: state.ctx.started.elapsed().as_secs_f64(),
        memory: metrics::memory(),
        cpu: metrics::cpu(),
        cold_start: n == 1,
        rate_limiter: state.local.then(|| state.ctx.limiter.stats()),
    })
}
