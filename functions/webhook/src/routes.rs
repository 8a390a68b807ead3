//! The webhook function's route table: the one source of its router, its OpenAPI document, how
//! its route is reached (the global limit) and the template test.

use baatcheet_shared::lambda::ResponseMode;
use baatcheet_shared::routes::{Route, RouteTable, Unguarded};
use utoipa_axum::routes;

use crate::{MAX_BODY_BYTES, WebhookState};

/// Every route answers buffered (the JSON proxy response).
pub const RESPONSE_MODE: ResponseMode = ResponseMode::Buffered;

/// The webhook is authenticated by its Svix signature and delivered from Svix's few shared
/// addresses: a per-address limit would refuse Clerk's own deliveries.
pub fn table() -> RouteTable<WebhookState, Unguarded> {
    RouteTable::new(RESPONSE_MODE).route(routes!(crate::receive), Route::unlimited().body_limit(MAX_BODY_BYTES))
}
