//! Authentication in the request path: `authenticate` (the one call that decides who is
//! calling), the `AuthUser` extractor built on it, and the `require_role` layer.
//!
//! `authenticate` is the seam for the per-IP auth-failure rate limit: wrap exactly that call.

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::request::Parts;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service};

use super::origin::check_request_origin;
use super::token::token_from_headers;
use super::user::{AuthUser, Role};
use crate::client_ip::ClientIp;
use crate::context::AppContext;
use crate::error::ApiError;

/// Who is calling: the token from `Authorization: Bearer` or the `__session` cookie (a cookie
/// on a state-changing request only from an allowed origin, else 403), verified, and resolved
/// to a live user. Failures are 401 problem+json with a `reason` (5xx when the
/// service itself cannot authenticate). The token is never logged.
pub async fn authenticate(parts: &Parts, ctx: &AppContext) -> Result<AuthUser, ApiError> {
    let (token, source) = token_from_headers(&parts.headers)?;
    check_request_origin(&parts.method, &parts.headers, source, &ctx.config.cors_origins)?;
    // The auth policy (per IP) limits failed verifications, so token guessing and forgery from
    // one address stop after a few tries. An IP this instance knows to be spent gets 429 before
    // any verification work; a request without a token is not an attempt and is not counted.
    let ip =
        ClientIp::from_parts(parts).ok_or_else(|| ApiError::BadRequest("The client address is unknown.".into()))?;
    ctx.limiter.auth_precheck(ip.0)?;
    let result = ctx.auth.authenticate_token(token).await;
    if let Err(e) = &result
        && let Some(reason) = e.reason()
    {
        tracing::info!(reason, "authentication failed");
        // Spent bucket: the 429 replaces the 401.
        ctx.limiter.record_auth_failure(ip.0).await?;
    }
    let user = result?;
    crate::request_id::record_user(&user.user_id);
    Ok(user)
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppContext: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A layer (require_role) or an earlier extractor may have authenticated already.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let ctx = AppContext::from_ref(state);
        let user = authenticate(parts, &ctx).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl AuthUser {
    /// 403 problem+json unless the user has one of `allowed`.
    pub fn require_role(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!("This resource requires the role {}.", names.join(" or "))))
    }
}

/// A layer admitting only users with one of `allowed` roles: 401 without a valid user, 403 with
/// another role. The user is left in the request extensions for the handler's `AuthUser`.
pub fn require_role(ctx: &AppContext, allowed: &'static [Role]) -> RequireRoleLayer {
    RequireRoleLayer { ctx: ctx.clone(), allowed }
}

#[derive(Clone)]
pub struct RequireRoleLayer {
    ctx: AppContext,
    allowed: &'static [Role],
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRole { inner, ctx: self.ctx.clone(), allowed: self.allowed }
    }
}

#[derive(Clone)]
pub struct RequireRole<S> {
    inner: S,
    ctx: AppContext,
    allowed: &'static [Role],
}

impl<S> Service<Request> for RequireRole<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is ready only after poll_ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let ctx = self.ctx.clone();
        let allowed = self.allowed;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let checked = match AuthUser::from_request_parts(&mut parts, &ctx).await {
                Ok(user) => user.require_role(allowed),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}
