//! The rate-limit step of the shared request path (after CORS and the security headers, before
//! the routes): who the caller is, the global limit charged to them, and the `RateLimit` fields
//! of the response.
//!
//! Charge the identity you know: a request whose token authenticates is charged to its user (the
//! user's own global allowance, wherever they connect from); only a request without a valid
//! token is charged to its client address (IPv6: its /64, and its /48 under the `network`
//! policy). Many users share one public address behind carrier-grade NAT, so an address is the
//! identity of last resort.
//!
//! Each function declares its routes' [`Access`] in its route table ([`crate::routes`]); the platform
//! names none.
//! Routes that need a signed-in user are authenticated here, before the global check, and the
//! user is left in the request for the handlers' `AuthUser`.
//!
//! Every check made while the request is served (the global one here, per-user ones in handlers,
//! the auth steps) is recorded in a task-local list; when the response comes back, the tightest
//! of them is written into `RateLimit-Policy` / `RateLimit`, on a 200 as on a 429. Handlers only
//! call `ctx.limiter.check(..)`.

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Limiter, Policy, RateLimitStatus, headers};
use crate::auth::origin::check_request_origin;
use crate::auth::{AuthUser, Authenticator, extract::authenticate_with, token::token_from_headers};
use crate::{ClientIp, error::ApiError};
use http::HeaderValue;

/// How a route is reached, as the function that owns it declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not limited here: probes must answer even for a busy address, and a webhook is
    /// authenticated by its signature and sent from its sender's few shared addresses.
    Unlimited,
    /// Anyone may call. Charged to the user when the request carries a token that authenticates,
    /// else to the address; a bad token is not refused (nor counted) here.
    Public,
    /// A signed-in user only: authenticated here (401 without a valid token, counted against the
    /// address when forged or garbled) and charged to the user.
    SignedIn,
    /// [`Access::SignedIn`], on a route whose first action is its per-user limit check, before any
    /// side effect: the user's global check is made with that check, in one DynamoDB call.
    SignedInLimited,
}

/// A function's routes and how each is reached: `routes` by their path template as the router
/// declares it (`/widgets/{id}`), `default` for any other (including paths no route
/// matches). Functions build it from their route table (`crate::routes::RouteTable::access`).
#[derive(Debug, Clone)]
pub struct RouteAccess {
    default: Access,
    routes: Arc<BTreeMap<String, Access>>,
}

impl RouteAccess {
    pub fn new(default: Access, routes: impl IntoIterator<Item = (String, Access)>) -> Self {
        Self { default, routes: Arc::new(routes.into_iter().collect()) }
    }

    /// Every route reached the same way.
    pub fn all(access: Access) -> Self {
        Self::new(access, [])
    }

    /// The access of the route matched at `path` (a path template), or the default.
    pub fn of(&self, path: Option<&str>) -> Access {
        path.and_then(|p| self.routes.get(p)).copied().unwrap_or(self.default)
    }
}

#[derive(Clone, Default)]
struct Applied {
    statuses: Arc<Mutex<Vec<RateLimitStatus>>>,
    /// A deferred global check not yet made: the user it is for.
    pending_global: Arc<Mutex<Option<String>>>,
    /// A route took the request in hand ([`identify`] ran): it charged the global limit.
    routed: Arc<AtomicBool>,
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
pub(crate) fn take_pending_global() -> Option<String> {
    APPLIED.try_with(|a| lock(&a.pending_global).take()).ok().flatten()
}

/// The global limit's step of the request path: the limiter, the authenticator (absent for a
/// function that has no signed-in routes), and the function's routes' access.
#[derive(Clone)]
pub struct GlobalLimit {
    pub limiter: Arc<Limiter>,
    pub auth: Option<Arc<Authenticator>>,
    pub access: RouteAccess,
    /// The origins a cookie-authenticated, state-changing request may come from (CORS list).
    pub origins: Arc<[HeaderValue]>,
}

impl GlobalLimit {
    fn access(&self, req: &Request) -> Access {
        self.access.of(req.extensions().get::<MatchedPath>().map(MatchedPath::as_str))
    }
}

/// Middleware around the whole router: the client address (400 when it cannot be told), the
/// scope in which every check of the request is recorded, and then the `RateLimit` fields of the
/// tightest policy applied. A request no route took ([`identify`] did not run: no such path or
/// method) is charged to its address once answered; a refusal replaces the answer.
pub async fn global_limit(State(g): State<GlobalLimit>, req: Request, next: Next) -> Response {
    if g.access(&req) == Access::Unlimited {
        return next.run(req).await;
    }
    // Fail closed: a request whose source cannot be told is not served (never X-Forwarded-For).
    let Some(ClientIp(ip)) = ClientIp::from_extensions(req.extensions()) else {
        return ApiError::BadRequest("The client address is unknown.".into()).into_response();
    };
    let applied = Applied::default();
    let scope = applied.clone();
    let mut res = APPLIED
        .scope(applied.clone(), async move {
            let res = next.run(req).await;
            if scope.routed.load(Ordering::Acquire) {
                return res;
            }
            match g.limiter.check_address(ip).await {
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

/// Middleware around each route (not the fallbacks): who the caller is, as the route's
/// [`Access`] says, and the global limit charged to them before the route runs.
///
/// On a [`Access::SignedInLimited`] route the user's global bucket is charged together with the
/// route's own first limit, in one DynamoDB transaction. If the route answered without a check,
/// the global bucket is charged once the answer is known: it had no side effects, so a refusal
/// then replaces it.
pub async fn identify(State(g): State<GlobalLimit>, req: Request, next: Next) -> Response {
    let access = g.access(&req);
    let Ok(scope) = APPLIED.try_with(Applied::clone) else {
        // Outside global_limit's scope: an unlimited route.
        return next.run(req).await;
    };
    scope.routed.store(true, Ordering::Release);
    let Some(ClientIp(ip)) = ClientIp::from_extensions(req.extensions()) else {
        return ApiError::BadRequest("The client address is unknown.".into()).into_response();
    };
    let (mut parts, body) = req.into_parts();
    let limiter = g.limiter;
    let user = match (access, &g.auth) {
        (Access::Unlimited, _) => return next.run(Request::from_parts(parts, body)).await,
        (Access::Public, Some(auth)) => match token_from_headers(&parts.headers) {
            Ok((token, source)) if check_request_origin(&parts.method, &parts.headers, source, &g.origins).is_ok() => {
                let user = auth.authenticate_token(token).await.ok();
                if let Some(u) = &user {
                    crate::request_id::record_user(&u.user_id);
                }
                user
            }
            _ => None,
        },
        (Access::Public, None) => None,
        (_, None) => {
            return ApiError::internal(std::io::Error::other("a signed-in route without an authenticator"))
                .into_response();
        }
        (_, Some(auth)) => match authenticate_with(&parts, auth, &limiter, &g.origins).await {
            Ok(user) => Some(user),
            // No valid token: the address pays for the request; its refusal replaces the 401.
            Err(e) => {
                return match limiter.check_address(ip).await {
                    Ok(_) => e.into_response(),
                    Err(refused) => refused.into_response(),
                };
            }
        },
    };
    let Some(user) = user else {
        return match limiter.check_address(ip).await {
            Ok(_) => next.run(Request::from_parts(parts, body)).await,
            Err(refused) => refused.into_response(),
        };
    };
    let user_id = user.user_id.clone();
    parts.extensions.insert::<AuthUser>(user);
    let req = Request::from_parts(parts, body);
    if access != Access::SignedInLimited {
        return match limiter.check(Policy::GLOBAL, user_id.as_str(), 1).await {
            Ok(_) => next.run(req).await,
            Err(refused) => refused.into_response(),
        };
    }
    if let Err(refused) = limiter.precheck(Policy::GLOBAL, user_id.as_str(), 1) {
        return refused.into_response();
    }
    *lock(&scope.pending_global) = Some(user_id.clone());
    let res = next.run(req).await;
    if take_pending_global().is_none() {
        return res;
    }
    match limiter.check(Policy::GLOBAL, user_id.as_str(), 1).await {
        Ok(_) => res,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_reached_as_declared_and_any_other_by_default() {
        let routes = RouteAccess::new(
            Access::SignedIn,
            [("/models".to_string(), Access::Public), ("/search".to_string(), Access::SignedInLimited)],
        );
        assert_eq!(routes.of(Some("/models")), Access::Public);
        assert_eq!(routes.of(Some("/search")), Access::SignedInLimited);
        assert_eq!(routes.of(Some("/conversations/{id}")), Access::SignedIn);
        assert_eq!(routes.of(None), Access::SignedIn, "no route matched");
        assert_eq!(RouteAccess::all(Access::Unlimited).of(Some("/x")), Access::Unlimited);
    }
}
