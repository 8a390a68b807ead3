//! Authentication in the request path: `authenticate` (the one call that decides who is
//! calling), the `AuthUser` extractor built on it, and the `require_role` layer.
//!
//! `authenticate` is the seam for the per-IP auth-failure rate limit: wrap exactly that call.

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::HeaderValue;
use http::request::Parts;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service};

use super::Authenticator;
use super::origin::check_request_origin;
use super::token::token_from_headers;
use super::user::{AuthUser, Role};
use crate::client_ip::ClientIp;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::rate_limit::Limiter;

/// Who is calling: the token from `Authorization: Bearer` or the `__session` cookie (a cookie
/// on a state-changing request only from an allowed origin, else 403), verified, and resolved
/// to a live user. Failures are 401 problem+json with a `reason` (5xx when the
/// service itself cannot authenticate). The token is never logged.
pub async fn authenticate(parts: &Parts, ctx: &AppContext) -> Result<AuthUser, ApiError> {
    authenticate_with(parts, &ctx.auth, &ctx.limiter, &ctx.config.cors_origins).await
}

/// [`authenticate`] with the authenticator, limiter and allowed origins given apart (the request
/// path's step).
///
/// The token is verified first, always: a token that verifies is never refused because of what
/// other clients on its address did. Only a failure that looks like guessing or forgery
/// ([`AuthError::counts_as_forgery`]: garbled, wrong signature or key, foreign issuer) is counted
/// against the client address's `auth` policy (an address this instance knows to be spent gets
/// 429 without a DynamoDB call, else the failure is counted and its refusal replaces the 401).
/// An expired token whose signature verifies is a client that has to refresh: 401, not counted.
/// A request without a token is not an attempt.
pub async fn authenticate_with(
    parts: &Parts,
    auth: &Authenticator,
    limiter: &Limiter,
    allowed_origins: &[HeaderValue],
) -> Result<AuthUser, ApiError> {
    let (token, source) = token_from_headers(&parts.headers)?;
    check_request_origin(&parts.method, &parts.headers, source, allowed_origins)?;
    let e = match auth.authenticate_token(token).await {
        Ok(user) => {
            crate::request_id::record_user(&user.user_id);
            return Ok(user);
        }
        Err(e) => e,
    };
    if let Some(reason) = e.reason() {
        tracing::info!(reason, "authentication failed");
    }
    if e.counts_as_forgery() {
        let ip =
            ClientIp::from_parts(parts).ok_or_else(|| ApiError::BadRequest("The client address is unknown.".into()))?;
        limiter.auth_precheck(ip.0)?;
        // Spent bucket: the 429 replaces the 401.
        limiter.record_auth_failure(ip.0).await?;
    }
    Err(e.into())
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
