//! The request path every function shares, as one call wrapping a function's routes:
//! request id + span -> security headers -> CORS -> global rate limit (per signed-in user, else per
//! client address; signed-in routes are authenticated first) -> (routes)
//! with problem+json for unknown routes, wrong methods and panics.

use axum::{Router, middleware, response::IntoResponse};
use std::any::Any;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

use crate::rate_limit::{Limiter, RouteAccess};
use crate::{config::Config, context::AppContext, cors, error, rate_limit, request_id, security_headers};

/// A function's routes behind the shared request path, each reached as `access` declares (see
/// [`rate_limit::Access`]): the global limit per signed-in user or per address, and the
/// authentication of signed-in routes before it.
pub fn wrap(routes: Router, ctx: &AppContext, access: RouteAccess) -> Router {
    let global = rate_limit::GlobalLimit {
        limiter: ctx.limiter.clone(),
        auth: Some(ctx.auth.clone()),
        access,
        origins: ctx.config.cors_origins.clone().into(),
    };
    layered(routes, &ctx.config, global)
}

/// The request path of a function without signed-in routes (docs, health): the same layers as
/// [`wrap`], the global limit included, for routes that are public or unlimited (no
/// authenticator: a token is not looked at, every request is charged to its address).
pub fn wrap_limited(routes: Router, config: &Config, limiter: Arc<Limiter>, access: RouteAccess) -> Router {
    let origins = config.cors_origins.clone().into();
    layered(routes, config, rate_limit::GlobalLimit { limiter, auth: None, access, origins })
}

fn layered(routes: Router, config: &Config, global: rate_limit::GlobalLimit) -> Router {
    // `identify` wraps each route (not the fallbacks, set after it): a request no route takes is
    // charged to its address by `global_limit` once answered.
    routes
        .route_layer(middleware::from_fn_with_state(global.clone(), rate_limit::identify))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(global, rate_limit::global_limit))
        .layer(cors::cors_layer(config))
        .layer(middleware::from_fn(security_headers::security_headers_layer))
        .layer(middleware::from_fn(request_id::request_id_layer))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    error::ApiError::internal(std::io::Error::other(format!("handler panicked: {what}"))).into_response()
}
