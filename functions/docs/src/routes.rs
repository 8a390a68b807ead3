//! The docs function's route table: the one source of its router, its OpenAPI document, how each
//! route is reached (the global limit) and the template test.

use baatcheet_shared::lambda::ResponseMode;
use baatcheet_shared::routes::{Route, RouteTable, Unguarded};
use utoipa_axum::routes;

use crate::DocsState;

/// Every route answers buffered (the JSON proxy response).
pub const RESPONSE_MODE: ResponseMode = ResponseMode::Buffered;

/// Public, each request charged to its address (the function has no authenticator).
pub fn table() -> RouteTable<DocsState, Unguarded> {
    RouteTable::new(RESPONSE_MODE)
        .route(routes!(crate::document), Route::public())
        .route(routes!(crate::swagger_ui), Route::public())
        .route(routes!(crate::asset), Route::public())
}
