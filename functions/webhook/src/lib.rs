//! Webhook function: `POST /api/v1/clerk/webhook`. Clerk (through Svix) reports user changes;
//! each delivery is verified over its raw bytes, then applied to the users table exactly once
//! and in order. Not behind the per-IP global limit: Svix sends from a handful of addresses.

pub mod clerk;
pub mod deliveries;
pub mod erasure;
pub mod routes;
pub mod svix;

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, header},
};
use baatcheet_shared::config::ConfigError;
use baatcheet_shared::openapi::{BadRequest, PayloadTooLarge, ServiceUnavailable};
use baatcheet_shared::users::UsersStore;
use baatcheet_shared::validation::BodyLimit;
use baatcheet_shared::{ApiError, AppContext, request_path};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

use clerk::Action;
use deliveries::{Deliveries, Outcome};
use erasure::{Eraser, ErasureSettings, Progress};

/// Where Clerk delivers (its handler's path; clients and tests post here).
pub const PATH: &str = "/api/v1/clerk/webhook";
/// Clerk user payloads are a few KB (metadata is capped at 8 KB per kind).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// What the webhook's handler works with (built by [`router_with`]).
#[derive(Clone)]
pub struct WebhookState {
    ctx: AppContext,
    deliveries: Arc<Deliveries>,
    eraser: Arc<Eraser>,
}

/// The acknowledgement Svix needs to stop retrying a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    #[schema(example = true)]
    pub received: bool,
}

/// The OpenAPI document of this function's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::table().openapi()
}

/// The router with the default erasure settings.
pub fn router(ctx: AppContext) -> Result<Router, ConfigError> {
    router_with(ctx, ErasureSettings::default())
}

/// The router; its tables are read from the context's environment (a missing one fails the start).
pub fn router_with(ctx: AppContext, erasure: ErasureSettings) -> Result<Router, ConfigError> {
    let users = UsersStore::new(ctx.dynamo.clone(), ctx.config.tables.users.clone());
    let eraser = Eraser::new(users.clone(), erasure::stores(&ctx)?, erasure);
    let deliveries = Deliveries::new(ctx.dynamo.clone(), ctx.config.env.required(DELIVERIES_TABLE)?, users);
    let state = WebhookState { ctx: ctx.clone(), deliveries: Arc::new(deliveries), eraser: Arc::new(eraser) };
    let (routes, access) = routes::table().plain_router();
    Ok(request_path::wrap(routes.with_state(state), &ctx, access))
}

/// The variable naming the deliveries table (one item per Svix message id).
pub const DELIVERIES_TABLE: &str = "WEBHOOK_DELIVERIES_TABLE";

fn bad_request(what: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Webhook rejected: {what}."))
}

async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("Webhook bodies are limited to {max} bytes."));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max).await.map_err(|_| too_large())
}

/// Clerk user events (Svix-signed)
///
/// Clerk, through Svix, reports `user.created`, `user.updated` and `user.deleted`. The signature
/// (`svix-id`, `svix-timestamp`, `svix-signature`, or the `webhook-*` names) is verified over the
/// raw body; each delivery is applied exactly once and never over newer data. `user.deleted`
/// erases all of the user's data; while that is unfinished (more than one invocation's work)
/// the answer is 503, and Svix's next delivery continues it. Other event types are acknowledged
/// and ignored. Not behind the per-IP global limit.
#[utoipa::path(post, path = PATH, tag = "webhooks", operation_id = "receiveClerkWebhook",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A Clerk event as Svix delivers it.",
        example = json!({"type": "user.created", "data": {"id": "user_2abc", "primary_email_address_id": "idn_1",
            "email_addresses": [{"id": "idn_1", "email_address": "ali@example.com"}],
            "public_metadata": {"role": "user", "tier": "free"}, "created_at": 1764264000000_i64, "updated_at": 1764264000000_i64}})),
    params(
        ("svix-id" = String, Header, description = "Delivery id (idempotency key)."),
        ("svix-timestamp" = String, Header, description = "Unix seconds; must be within 5 minutes."),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` entries."),
    ),
    responses(
        (status = 200, description = "Applied, already applied, stale, or ignored.", body = Received),
        BadRequest, PayloadTooLarge, ServiceUnavailable,
    ))]
async fn receive(
    State(state): State<WebhookState>,
    Extension(BodyLimit(max)): Extension<BodyLimit>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Received>, ApiError> {
    let body = read_body(&headers, body, max).await?;
    // Headers and timestamp first: a delivery that cannot be valid is refused whatever the
    // configuration, and a replayed old delivery never reaches the secret.
    let svix = svix::Headers::from_map(&headers).map_err(bad_request)?;
    svix.check_timestamp(time::OffsetDateTime::now_utc().unix_timestamp()).map_err(bad_request)?;

    // No secret (a new stack) or Secrets Manager down: 503, so Svix retries; never an accept.
    let secrets = state.ctx.secrets.get().await?;
    let Some(secret) = secrets.string("CLERK_WEBHOOK_SECRET") else {
        // Never a silent accept: Svix retries, and the log says why.
        return Err(ApiError::internal(std::io::Error::other("CLERK_WEBHOOK_SECRET is not configured")));
    };
    let secret = svix::Secret::parse(secret.expose_secret()).map_err(ApiError::internal)?;
    svix.verify(&secret, &body).map_err(bad_request)?;

    let (event_type, action) = clerk::parse(&body).map_err(bad_request)?;
    let outcome = state.deliveries.apply(&svix.id, &event_type, &action).await.map_err(ApiError::internal)?;
    let clerk_id = match &action {
        Action::Upsert(p) => Some(p.clerk_id.as_str()),
        Action::Delete { clerk_id } => Some(clerk_id.as_str()),
        Action::Ignore => None,
    };
    // This instance's own cache only (an in-process API, as in tests and `make dev`'s gateway);
    // chat instances pick the change up within their user cache TTL (docs/auth.md).
    if let Some(id) = clerk_id
        && outcome == Outcome::Applied
    {
        state.ctx.auth.forget_user(id);
    }
    tracing::info!(svix_id = %svix.id, event_type = %event_type, user_hash = clerk_id.map(baatcheet_shared::request_id::user_hash).as_deref().unwrap_or("-"), outcome = ?outcome, "webhook delivery");
    baatcheet_shared::metrics::record_webhook_event(&event_type, outcome.as_str());
    // Applied, or seen before (a re-delivery, another user.deleted): either way the erasure
    // continues if it is pending.
    if let Action::Delete { clerk_id } = &action
        && state.eraser.run(clerk_id).await.map_err(ApiError::internal)? == Progress::More
    {
        return Err(ApiError::Unavailable {
            detail: "The user's data is being erased; deliver again to continue.".into(),
            retry_after_secs: Some(5),
        });
    }
    Ok(Json(Received { received: true }))
}
