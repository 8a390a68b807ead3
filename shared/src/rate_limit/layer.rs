//! The rate-limit step of the shared request path (after CORS and the security headers, before
//! the routes): the global limit per client IP, and the `RateLimit` fields of the response.
//!
//! Every check made while the request is served (the global one here, per-user ones in handlers,
//! the auth steps) is recorded in a task-local list; when the response comes back, the tightest
//! of them is written into `RateLimit-Policy` / `RateLimit`, on a 200 as on a 429. Handlers only
//! call `ctx.limiter.check(..)`.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::{Arc, Mutex};

use super::{Limiter, Policy, RateLimitStatus, headers};
use crate::{ClientIp, error::ApiError};

/// Paths the global limit does not apply to: probes must answer even for a busy address, and
/// the Clerk webhook is authenticated by its signature and sent from Svix's shared addresses.
pub const UNLIMITED_PATHS: [&str; 4] = ["/live", "/ready", "/health", "/api/v1/clerk/webhook"];

#[derive(Clone, Default)]
struct Applied(Arc<Mutex<Vec<RateLimitStatus>>>);

tokio::task_local! {
    static APPLIED: Applied;
}

/// Notes a check made while serving the current request (no-op outside the request path).
pub(crate) fn record(status: &RateLimitStatus) {
    let _ = APPLIED.try_with(|a| a.0.lock().unwrap_or_else(|e| e.into_inner()).push(status.clone()));
}

/// Middleware: the global limit, then the `RateLimit` fields of the tightest policy applied.
pub async fn global_limit(State(limiter): State<Arc<Limiter>>, req: Request, next: Next) -> Response {
    if UNLIMITED_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    // Fail closed: a request whose source cannot be told is not served (never X-Forwarded-For).
    let Some(ClientIp(ip)) = ClientIp::from_extensions(req.extensions()) else {
        return ApiError::BadRequest("The client address is unknown.".into()).into_response();
    };
    let applied = Applied::default();
    let mut res = APPLIED
        .scope(applied.clone(), async move {
            match limiter.check(Policy::Global, ip, 1).await {
                Ok(_) => next.run(req).await,
                Err(refused) => refused.into_response(),
            }
        })
        .await;
    let statuses = applied.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tightest) = headers::tightest(statuses.iter()) {
        tightest.apply(res.headers_mut());
    }
    res
}
