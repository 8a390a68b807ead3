//! Health function: `/health` (detailed, truthful), `/ready` (critical dependencies), `/live`
//! (no dependencies) and `/api/v1/health/metrics` (process figures).

pub mod checks;
pub mod metrics;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use baatcheet_shared::{AppContext, request_path};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use checks::Status;

#[derive(Clone)]
pub struct HealthState {
    ctx: AppContext,
    invocations: Arc<AtomicU64>,
}

/// The function's routes with the shared request path around them.
pub fn router(ctx: AppContext) -> Router {
    let state = HealthState { ctx: ctx.clone(), invocations: Arc::new(AtomicU64::new(0)) };
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/live", get(live))
        .route("/api/v1/health/metrics", get(metrics_handler))
        .layer(middleware::from_fn_with_state(state.clone(), count_invocation))
        .with_state(state);
    request_path::wrap(routes, &ctx)
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
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

async fn health(State(state): State<HealthState>) -> Response {
    let ctx = &state.ctx;
    let outcomes = checks::run_all(ctx).await;
    let status = checks::overall(&outcomes);
    let services: BTreeMap<_, _> = outcomes.iter().map(|o| (o.name, &o.check)).collect();
    let body = json!({
        "status": status,
        "timestamp": now_rfc3339(),
        "version": ctx.config.version,
        "environment": ctx.config.environment,
        "uptime": ctx.started.elapsed().as_secs(),
        "services": services,
    });
    let code = if status == Status::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

async fn ready(State(state): State<HealthState>) -> Response {
    let outcomes = checks::run_all(&state.ctx).await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.criticality == checks::Criticality::Critical && o.check.status != Status::Healthy)
        .map(|o| o.name)
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "failed": failed }))).into_response()
    }
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive", "timestamp": now_rfc3339() }))
}

async fn metrics_handler(State(state): State<HealthState>, req: Request) -> Json<serde_json::Value> {
    let Invocation(n) = req.extensions().get::<Invocation>().copied().unwrap_or(Invocation(0));
    Json(json!({
        "timestamp": now_rfc3339(),
        "uptime": state.ctx.started.elapsed().as_secs_f64(),
        "memory": metrics::memory(),
        "cpu": metrics::cpu(),
        "cold_start": n == 1,
        "invocations": state.invocations.load(Ordering::Relaxed),
        "lambda": metrics::lambda_info(),
        "rate_limiter": state.ctx.limiter.stats(),
    }))
}
