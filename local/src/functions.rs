//! The functions the local gateway can mount, by their template.yaml logical id.

use axum::Router;
use baatcheet_shared::AppContext;

/// Builds the router of the function with this logical id, or None if this build has no such
/// function (the gateway then refuses to start: the template and the code disagree).
pub fn router_for(logical_id: &str, ctx: &AppContext) -> Option<Router> {
    match logical_id {
        "HealthFunction" => Some(health::router(ctx.clone())),
        "WebhookFunction" => Some(webhook::router(ctx.clone())),
        "ChatFunction" => match chat::router(ctx.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(cause = %baatcheet_shared::error::error_chain(&e), "the chat function cannot start");
                None
            }
        },
        _ => None,
    }
}
