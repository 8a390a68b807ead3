//! The functions the local gateway can mount, by their template.yaml logical id, and the OpenAPI
//! document of each function's routes (from the same source as its router).

use axum::Router;
use baatcheet_shared::AppContext;
use baatcheet_shared::routes::RouteRow;

/// Builds the router of the function with this logical id, or None if this build has no such
/// function (the gateway then refuses to start: the template and the code disagree).
pub fn router_for(logical_id: &str, ctx: &AppContext) -> Option<Router> {
    match logical_id {
        "HealthFunction" => started(logical_id, health::router(ctx.clone())),
        "WebhookFunction" => started(logical_id, webhook::router(ctx.clone())),
        "ChatFunction" => started(logical_id, chat::router(ctx.clone())),
        "DocsFunction" => Some(docs::router(&ctx.config, docs_settings(), ctx.limiter.clone())),
        _ => None,
    }
}

/// The router of a function that started; one that could not (its settings are bad) is logged.
fn started<E: std::error::Error + 'static>(logical_id: &str, router: Result<Router, E>) -> Option<Router> {
    match router {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(function = logical_id, cause = %baatcheet_shared::error::error_chain(&e), "the function cannot start");
            None
        }
    }
}

/// The OpenAPI document of the routes of the function with this logical id (its `openapi()`).
/// `make openapi` merges these into the document the docs function embeds.
pub fn openapi_for(logical_id: &str) -> Option<utoipa::openapi::OpenApi> {
    match logical_id {
        "HealthFunction" => Some(health::openapi()),
        "WebhookFunction" => Some(webhook::openapi()),
        "ChatFunction" => Some(chat::openapi()),
        "DocsFunction" => Some(docs::openapi()),
        _ => None,
    }
}

/// The route table of the function with this logical id, row by row (its `routes::table()`, the
/// source of its router and document): what the template must route to it, and how.
pub fn routes_for(logical_id: &str) -> Option<Vec<RouteRow>> {
    match logical_id {
        "HealthFunction" => Some(health::routes::table().rows()),
        "WebhookFunction" => Some(webhook::routes::table().rows()),
        "ChatFunction" => Some(chat::http::routes::table().rows()),
        "DocsFunction" => Some(docs::routes::table().rows()),
        _ => None,
    }
}

/// The response mode of the function with this logical id (its `RESPONSE_MODE`, what its main
/// runs and its route table holds): every route template.yaml gives it must use the matching
/// integration.
pub fn response_mode_for(logical_id: &str) -> Option<baatcheet_shared::lambda::ResponseMode> {
    match logical_id {
        "HealthFunction" => Some(health::routes::RESPONSE_MODE),
        "WebhookFunction" => Some(webhook::routes::RESPONSE_MODE),
        "ChatFunction" => Some(chat::http::routes::RESPONSE_MODE),
        "DocsFunction" => Some(docs::routes::RESPONSE_MODE),
        _ => None,
    }
}

/// `PUBLIC_API_URL` for the docs function; a value it cannot use is reported and ignored, so the
/// document's server stays the gateway itself.
fn docs_settings() -> docs::Settings {
    docs::Settings::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "PUBLIC_API_URL ignored");
        docs::Settings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baatcheet_shared::lambda::ResponseMode;

    #[test]
    fn chat_alone_streams() {
        assert_eq!(response_mode_for("ChatFunction"), Some(ResponseMode::Streamed));
        for id in ["HealthFunction", "WebhookFunction", "DocsFunction"] {
            assert_eq!(response_mode_for(id), Some(ResponseMode::Buffered), "{id}");
        }
        assert_eq!(response_mode_for("NoSuchFunction"), None);
    }

    #[test]
    fn each_table_holds_its_functions_mode() {
        for id in ["HealthFunction", "WebhookFunction", "ChatFunction", "DocsFunction"] {
            let rows = routes_for(id).expect("a table");
            assert!(!rows.is_empty(), "{id}");
            assert!(rows.iter().all(|r| Some(r.mode) == response_mode_for(id)), "{id}");
        }
    }
}
