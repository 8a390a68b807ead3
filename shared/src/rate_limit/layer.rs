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
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{Limiter, Policy, RateLimitStatus, headers};
use crate::{ClientIp, error::ApiError};

/// Paths the global limit does not apply to: probes must answer even for a busy address, and
/// the Clerk webhook is authenticated by its signature and sent from Svix's shared addresses.
pub const UNLIMITED_PATHS: [&str; 4] = ["/live", "/ready", "/health", "/api/v1/clerk/webhook"];

#[derive(Clone, Default)]
struct Applied {
    statuses: Arc<Mutex<Vec<RateLimitStatus>>>,
    /// A deferred global check not yet made: the client IP it is for.
    pending_global: Arc<Mutex<Option<IpAddr>>>,
}

tokio::task_local! {
    static APPLIED: Applied;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data: a panic elsewhere cannot leave them half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes a check made while serving the current request (no-op outside the request path).
pub(crate) fn record(status: &RateLimitStatus) {
    let _ = APPLIED.try_with(|a| lock(&a.statuses).push(status.clone()));
}

/// Takes the current request's deferred global check, if it is still to be made: the first
/// per-user check of the request makes both in one DynamoDB call.
pub(crate) fn take_pending_global() -> Option<IpAddr> {
    APPLIED.try_with(|a| lock(&a.pending_global).take()).ok().flatten()
}

/// The global limit's step of the request path: the limiter, and the paths whose global check
/// is deferred to the route's own first limit check (see [`global_limit`]).
#[derive(Clone)]
pub struct GlobalLimit {
    pub limiter: Arc<Limiter>,
    pub deferred: &'static [&'static str],
}

/// Middleware: the global limit, then the `RateLimit` fields of the tightest policy applied.
///
/// On a deferred path (a route that authenticates and applies its per-user limit before doing
/// anything else) the global bucket is charged together with that limit, in one DynamoDB
/// transaction. If the route answered without a check (no token, a bad body), the global bucket
/// is charged once the answer is known: it had no side effects, so a refusal then replaces it.
pub async fn global_limit(State(g): State<GlobalLimit>, req: Request, next: Next) -> Response {
    if UNLIMITED_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    // Fail closed: a request whose source cannot be told is not served (never X-Forwarded-For).
    let Some(ClientIp(ip)) = ClientIp::from_extensions(req.extensions()) else {
        return ApiError::BadRequest("The client address is unknown.".into()).into_response();
    };
    let deferred = g.deferred.contains(&req.uri().path());
    let applied = Applied::default();
    let limiter = g.limiter;
    let scope = applied.clone();
    let mut res = APPLIED
        .scope(applied.clone(), async move {
            if !deferred {
                return match limiter.check(Policy::Global, ip, 1).await {
                    Ok(_) => next.run(req).await,
                    Err(refused) => refused.into_response(),
                };
            }
            if let Err(refused) = limiter.precheck(Policy::Global, ip, 1) {
                return refused.into_response();
            }
            *lock(&scope.pending_global) = Some(ip);
            let res = next.run(req).await;
            if take_pending_global().is_none() {
                return res;
            }
            match limiter.check(Policy::Global, ip, 1).await {
                Ok(_) => res,
                Err(refused) => refused.into_response(),
            }
        })
        .await;
    let statuses = lock(&applied.statuses);
    if let Some(tightest) = headers::tightest(statuses.iter()) {
        tightest.apply(res.headers_mut());
    }
    res
}
