//! The health function's route table: the one source of its router, its OpenAPI document, how
//! each route is reached (the global limit) and the template test.

use baatcheet_shared::lambda::ResponseMode;
use baatcheet_shared::routes::{Route, RouteTable, Unguarded};
use utoipa_axum::routes;

use crate::HealthState;

/// Every route answers buffered (the JSON proxy response).
pub const RESPONSE_MODE: ResponseMode = ResponseMode::Buffered;

/// The probes are never limited (a busy address must not make a load balancer or an operator see
/// the API down); the metrics are public, limited per address.
pub fn table() -> RouteTable<HealthState, Unguarded> {
    RouteTable::new(RESPONSE_MODE)
        .route(routes!(crate::health), Route::unlimited())
        .route(routes!(crate::ready), Route::unlimited())
        .route(routes!(crate::live), Route::unlimited())
        .route(routes!(crate::metrics_handler), Route::public())
}
