//! Webhook function: `POST /api/v1/clerk/webhook`. Clerk (through Svix) reports user changes;
//! each delivery is verified over its raw bytes, then applied to the users table exactly once
//! and in order. Not behind the per-IP global limit: Svix sends from a handful of addresses.

pub mod clerk;
pub mod deliveries;
pub mod svix;

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, header},
    routing::post,
};
use baatcheet_shared::users::UsersStore;
use baatcheet_shared::{ApiError, AppContext, request_path};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;

use clerk::Action;
use deliveries::{Deliveries, Outcome};

pub const PATH: &str = "/api/v1/clerk/webhook";
/// Clerk user payloads are a few KB (metadata is capped at 8 KB per kind).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

#[derive(Clone)]
struct WebhookState {
    ctx: AppContext,
    deliveries: Arc<Deliveries>,
}

pub fn router(ctx: AppContext) -> Router {
    let users = UsersStore::new(ctx.dynamo.clone(), ctx.config.tables.users.clone());
    let deliveries = Deliveries::new(ctx.dynamo.clone(), ctx.config.tables.webhook_deliveries.clone(), users);
    let state = WebhookState { ctx: ctx.clone(), deliveries: Arc::new(deliveries) };
    let routes = Router::new().route(PATH, post(receive)).with_state(state);
    request_path::wrap(routes, &ctx)
}

fn bad_request(what: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Webhook rejected: {what}."))
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("Webhook bodies are limited to {MAX_BODY_BYTES} bytes."));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())
}

async fn receive(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let body = read_body(&headers, body).await?;
    // Headers and timestamp first: a delivery that cannot be valid is refused whatever the
    // configuration, and a replayed old delivery never reaches the secret.
    let svix = svix::Headers::from_map(&headers).map_err(bad_request)?;
    svix.check_timestamp(time::OffsetDateTime::now_utc().unix_timestamp()).map_err(bad_request)?;

    let secrets = state.ctx.secrets.get().await.map_err(|e| {
        tracing::error!(cause = %baatcheet_shared::error::error_chain(&e), "secrets unavailable for a webhook");
        ApiError::Unavailable { detail: "The webhook cannot be verified right now.".into(), retry_after_secs: Some(5) }
    })?;
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
    if let Some(id) = clerk_id
        && outcome == Outcome::Applied
    {
        state.ctx.auth.forget_user(id);
    }
    tracing::info!(svix_id = %svix.id, event_type = %event_type, clerk_id = clerk_id.unwrap_or("-"), outcome = ?outcome, "webhook delivery");
    Ok(Json(json!({ "received": true })))
}
