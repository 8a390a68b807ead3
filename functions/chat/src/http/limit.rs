//! What runs before a limited chat route's handler: the user's per-user limit and, on completions
//! and transcriptions, the Idempotency-Key (a repeat within a day costs once).

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::rate_limit::Policy;
use baatcheet_shared::validation::MIB;
use baatcheet_shared::{ApiError, AppContext};
use std::sync::Arc;

use crate::config::ChatTables;
use crate::limits;
use crate::service::Idempotent;
use crate::store::idempotency::{self, Claim, IdempotencyStore, KeyRef};

use super::routes::RouteLimit;

/// Authenticates the caller (401/429 from the auth step) and applies the route's limit to them
/// (429 with `Retry-After`), before the body is read. The user stays in the request for the
/// handler's `AuthUser`.
pub(super) async fn route_limit(
    State((ctx, limit, tables)): State<(AppContext, RouteLimit, Arc<ChatTables>)>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, &ctx).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let policy = match limit {
        RouteLimit::Chat => limits::CHAT.of(user.tier),
        RouteLimit::Audio => limits::AUDIO.policy(),
        RouteLimit::Search => limits::SEARCH.policy(),
    };
    let key = match parts.headers.get(IDEMPOTENCY_KEY) {
        Some(v) if matches!(limit, RouteLimit::Chat | RouteLimit::Audio) => {
            match idempotency::parse_key(v.as_bytes()) {
                Ok(k) => Some(k),
                Err(_) => return ApiError::BadRequest(BAD_KEY.into()).into_response(),
            }
        }
        _ => None,
    };
    let Some(key) = key else {
        if let Err(refused) = ctx.limiter.check(policy, &user.user_id, 1).await {
            return refused.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    };
    // The same key, user and request within a day costs once: the body is read here to tell.
    let bytes = match axum::body::to_bytes(body, IDEMPOTENT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge("The request body is too large.".into()).into_response(),
    };
    let route = parts.uri.path().rsplit('/').next().unwrap_or_default().to_string();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let fingerprint = idempotency::fingerprint(&route, parts.uri.query().unwrap_or_default(), content_type, &bytes);
    let store = IdempotencyStore::new(ctx.dynamo.clone(), tables.conversations.clone());
    let key = KeyRef::new(&user.user_id, &route, &key);
    let claim = match store.claim(&key, &user.user_id, &fingerprint).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let owner = match claim {
        Claim::Mismatch => {
            return ApiError::Validation(vec![baatcheet_shared::FieldError::new(
                "/headers/idempotency-key",
                "was already used with a different request; use a new key for a new request",
            )])
            .into_response();
        }
        Claim::Owner => {
            if let Err(refused) = ctx.limiter.check(policy, &user.user_id, 1).await {
                if let Err(e) = store.release(&key).await {
                    tracing::warn!(cause = %baatcheet_shared::error::error_chain(&e), "releasing a refused key");
                }
                return refused.into_response();
            }
            true
        }
        // A repeat costs nothing more than any request: the global limit only.
        Claim::Repeat(_) => {
            if let Err(refused) = ctx.limiter.check(Policy::GLOBAL, &user.user_id, 1).await {
                return refused.into_response();
            }
            false
        }
    };
    parts.extensions.insert(Idempotent { store: store.clone(), key: key.clone(), claim });
    let res = next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await;
    if owner && (res.status().is_client_error() || res.status().is_server_error()) {
        // An error that stored nothing frees the key (one whose user message is kept marks it failed).
        if let Err(e) = store.release(&key).await {
            tracing::warn!(cause = %baatcheet_shared::error::error_chain(&e), "releasing a key after an error");
        }
    }
    res
}

/// The header of the IETF httpapi draft.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub(super) const BAD_KEY: &str = "Idempotency-Key must be 1 to 128 characters from A-Z a-z 0-9 - _ . : ~ + / = (optionally in \
double quotes); a UUID is a good key.";
/// What a keyed request's body may be, read whole to compare repeats (API Gateway takes 10 MB).
pub(super) const IDEMPOTENT_BODY_LIMIT: usize = 10 * MIB;
