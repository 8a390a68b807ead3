//! The chat function's HTTP edge: its state, its router and its handlers, one file per resource
//! (`models`, `completions`, `messages`, `transcribe`, `conversations`, `search`, `admin`), each a
//! thin adapter from validated input to a service call. `routes.rs` is the route table: how each
//! route is reached (the shared request path: request id, headers, CORS, authentication, the
//! global limit) and what it checks itself (`limit.rs`: its per-user limit and Idempotency-Key;
//! or the admin role). The `RateLimit` fields of the tightest policy a request went through are
//! written by the shared request path, on a 200 (SSE streams included) as on a 429.

use axum::extract::FromRef;
use axum::middleware;
use axum::response::Response;
use axum::{Extension, Router};
use baatcheet_shared::auth::{Role, require_role};
use baatcheet_shared::context::StartupError;
use baatcheet_shared::{AppContext, request_path};
use std::sync::Arc;

use crate::admin::Admin;
use crate::config::{ChatConfig, ChatTables};
use crate::safety::ssrf::Resolver;
use crate::service::{ChatService, ChatStream};
use crate::sse;

mod admin;
mod completions;
mod conversations;
mod limit;
mod messages;
mod models;
pub mod routes;
mod search;
mod transcribe;

use routes::Guard;

#[derive(Clone)]
pub struct ChatState {
    pub service: Arc<ChatService>,
    pub tables: Arc<ChatTables>,
    pub admin: Arc<Admin>,
    pub ctx: AppContext,
}

/// The auth extractor and layer find the shared context in the state.
impl FromRef<ChatState> for AppContext {
    fn from_ref(state: &ChatState) -> AppContext {
        state.ctx.clone()
    }
}

impl ChatState {
    pub fn new(ctx: &AppContext, config: ChatConfig) -> Result<Self, StartupError> {
        let tables = ChatTables::from_config(&ctx.config)?;
        Self::build(ctx, tables.clone(), ChatService::new(ctx, &tables, config)?)
    }

    /// As [`Self::new`], with the resolver image URLs are checked with (tests use a fixed table).
    pub fn with_resolver(
        ctx: &AppContext,
        config: ChatConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, StartupError> {
        let tables = ChatTables::from_config(&ctx.config)?;
        Self::build(ctx, tables.clone(), ChatService::with_resolver(ctx, &tables, config, resolver)?)
    }

    fn build(ctx: &AppContext, tables: ChatTables, service: ChatService) -> Result<Self, StartupError> {
        crate::limits::declare(ctx)?;
        let admin = Arc::new(Admin::new(ctx)?);
        Ok(Self { service: Arc::new(service), admin, ctx: ctx.clone(), tables: Arc::new(tables) })
    }
}

/// The function's router, chat settings from the environment.
pub fn router(ctx: AppContext) -> Result<Router, StartupError> {
    let state = ChatState::new(&ctx, ChatConfig::from_env()?)?;
    Ok(router_with(state, &ctx))
}

/// The OpenAPI document of this function's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::table().openapi()
}

/// Every route of the chat function (its [`routes::table`]), each behind its guard, with the
/// shared request path around them.
pub fn router_with(state: ChatState, ctx: &AppContext) -> Router {
    let limited =
        |policy| middleware::from_fn_with_state((ctx.clone(), policy, state.tables.clone()), limit::route_limit);
    // What the upload check of a transcription reads (MAX_AUDIO_BYTES and the rest).
    let uploads = state.service.config().uploads;
    let (routes, access) = routes::table().router(|r, guard| match guard {
        Guard::Limit(policy) => r.route_layer(limited(policy)),
        Guard::Admin => r.route_layer(require_role(ctx, &[Role::Admin])),
    });
    request_path::wrap(routes.layer(Extension(uploads)).with_state(state), ctx, access)
}

/// An answer's events as the response, with the configured keep-alive.
fn sse_response(state: &ChatState, stream: ChatStream) -> Response {
    sse::response(stream.events, state.service.config().heartbeat)
}
