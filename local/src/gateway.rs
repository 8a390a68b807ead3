//! The in-process gateway, for tests that inject test doubles into a function (a DynamoDB call
//! counter, an SSRF resolver, short chat timeouts): one listener that routes each (method, path) of
//! template.yaml to the router of the function the template names. Everything a client can see of
//! the deployed shape is tested through the Lambda-shaped stack instead (docs/local-stack.md).

use axum::{
    Router,
    extract::{ConnectInfo, Request},
    response::IntoResponse,
    routing::MethodFilter,
};
use baatcheet_shared::AppContext;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use tower::ServiceExt;

use crate::{functions, template::Template};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("template.yaml routes {method} {path} to {function}, which this build does not have")]
    UnknownFunction { method: String, path: String, function: String },
    #[error("template.yaml has an unsupported method {0}")]
    Method(String),
}

/// API Gateway path template -> axum path (`{proxy+}` becomes a wildcard).
pub fn axum_path(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            Some(name) => format!("{{*{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_filter(m: &str) -> Result<MethodFilter, GatewayError> {
    Ok(match m {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        "OPTIONS" => MethodFilter::OPTIONS,
        "HEAD" => MethodFilter::HEAD,
        "ANY" => MethodFilter::GET
            .or(MethodFilter::POST)
            .or(MethodFilter::PUT)
            .or(MethodFilter::PATCH)
            .or(MethodFilter::DELETE)
            .or(MethodFilter::OPTIONS)
            .or(MethodFilter::HEAD),
        other => return Err(GatewayError::Method(other.into())),
    })
}

/// The request as API Gateway hands it to a function: what the client sent plus the source
/// address, without what this router's own matching attached (its path parameters would be
/// appended to the function's and break its `Path` extractors).
fn as_forwarded(req: Request) -> Request {
    let (parts, body) = req.into_parts();
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = parts.uri;
    *out.version_mut() = parts.version;
    *out.headers_mut() = parts.headers;
    if let Some(addr) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        out.extensions_mut().insert(*addr);
    }
    out
}

/// Builds the gateway router for every route of the template.
pub fn build(template: &Template, ctx: &AppContext) -> Result<Router, GatewayError> {
    let mut routers: HashMap<String, Router> = HashMap::new();
    let mut by_path: BTreeMap<String, axum::routing::MethodRouter> = BTreeMap::new();
    for route in &template.routes {
        let fn_router = match routers.get(&route.function) {
            Some(r) => r.clone(),
            None => {
                let r = functions::router_for(&route.function, ctx).ok_or_else(|| GatewayError::UnknownFunction {
                    method: route.method.clone(),
                    path: route.path.clone(),
                    function: route.function.clone(),
                })?;
                routers.insert(route.function.clone(), r.clone());
                r
            }
        };
        let forward = move |req: Request| {
            let r = fn_router.clone();
            async move { r.oneshot(as_forwarded(req)).await.into_response() }
        };
        let filter = method_filter(&route.method)?;
        let entry = by_path.remove(&route.path).unwrap_or_default();
        by_path.insert(route.path.clone(), entry.on(filter, forward));
    }
    let mut router = Router::new();
    for (path, mr) in by_path {
        router = router.route(&axum_path(&path), mr);
    }
    // What no function serves is API Gateway's own answer; tests through this gateway exercise
    // the functions behind it (the Lambda-shaped stack tests the edge itself).
    Ok(router.fallback(baatcheet_shared::error::not_found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_greedy_segments() {
        assert_eq!(axum_path("/api/v1/conversations/{id}"), "/api/v1/conversations/{id}");
        assert_eq!(axum_path("/{proxy+}"), "/{*proxy}");
    }
}
