//! Docs function: the OpenAPI 3.1 document of the whole API at `/api/docs.json` and Swagger UI at
//! `/api/docs`, its assets embedded in the binary.
//!
//! The document is generated from every function's code (`make openapi` writes `openapi.json`
//! beside this crate's manifest) and embedded here, so this Lambda links none of the other
//! functions; the contract test fails when the embedded copy differs from what the code
//! generates. Its only AWS access is the global per-IP rate limit (conditional updates of the
//! rate-limits table): no secret, no other table.

use std::io::Read as _;
use std::sync::{Arc, OnceLock};

use axum::{
    Router,
    extract::{Path, Request, State},
    response::{Html, IntoResponse, Response},
};
use baatcheet_shared::rate_limit::Limiter;
use baatcheet_shared::{ApiError, Config, openapi::NotFound, request_path};
use bytes::Bytes;
use http::{HeaderValue, header};
use lambda_http::{RequestExt, request::RequestContext};
use serde::Serialize;
use utoipa::ToSchema;

pub mod routes;

/// The generated document of the whole API (`make openapi`).
pub const DOCUMENT: &str = include_str!("../openapi.json");

const INDEX_HTML: &str = include_str!("../assets/index.html");
const INITIALIZER_JS: &str = include_str!("../assets/swagger-initializer.js");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("PUBLIC_API_URL must be an http(s) URL or an absolute path, got '{0}'")]
    PublicApiUrl(String),
}

/// What the docs function reads from its environment besides the shared [`Config`].
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `PUBLIC_API_URL`: the base URL "Try it out" calls (a custom domain, say). Unset, the
    /// document's server is the prefix the request itself came in under (the API Gateway stage,
    /// or `/` on the local gateway).
    pub public_api_url: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let public_api_url = match get("PUBLIC_API_URL").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => {
                let scheme_ok = url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/');
                if !scheme_ok || url.contains(char::is_whitespace) || url.contains(['"', '<', '>', '\\']) {
                    return Err(SettingsError::PublicApiUrl(url));
                }
                Some(url)
            }
        };
        Ok(Self { public_api_url })
    }
}

/// What the docs function's handlers work with (built by [`router`]).
#[derive(Clone)]
pub struct DocsState {
    document: Arc<serde_json::Value>,
    public_api_url: Option<Arc<str>>,
}

/// The OpenAPI document of this function's own routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::table().openapi()
}

/// The function's routes behind the shared request path (security headers with the CSP, CORS,
/// request ids, the global per-IP limit, problem+json fallbacks).
pub fn router(config: &Config, settings: Settings, limiter: Arc<Limiter>) -> Router {
    let (routes, access) = service(settings);
    request_path::wrap_limited(routes, config, limiter, access)
}

/// The routes with their state, without the request path, and how each is reached.
fn service(settings: Settings) -> (Router, baatcheet_shared::rate_limit::RouteAccess) {
    // The embedded document is checked by the tests; an unparsable one is a build defect.
    let document = serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON (checked by the tests)");
    let state = DocsState { document: Arc::new(document), public_api_url: settings.public_api_url.map(Arc::from) };
    let (routes, access) = routes::table().plain_router();
    (routes.with_state(state), access)
}

/// The public prefix the request came in under: API Gateway's request context keeps the path as
/// the client sent it (`/staging/api/docs.json`), the router sees it without the stage.
fn public_prefix(req: &Request) -> String {
    let seen = req.uri().path();
    let prefix = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            ctx.path.as_deref().and_then(|full| full.strip_suffix(seen)).unwrap_or_default().to_string()
        }
        _ => String::new(),
    };
    if prefix.starts_with('/') && !prefix.contains(['"', '<', '>', '\\', ' ']) { prefix } else { "/".into() }
}

fn with_type(body: impl IntoResponse, content_type: &'static str, cache: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// OpenAPI document
///
/// The OpenAPI 3.1 document of the whole API. Its `servers` entry is `PUBLIC_API_URL` when set,
/// else the prefix this request came in under (the API Gateway stage, or `/` locally).
#[utoipa::path(get, path = "/api/docs.json", tag = "docs", operation_id = "getOpenApiDocument", responses(
    (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object),
))]
async fn document(State(state): State<DocsState>, req: Request) -> Response {
    let server = match &state.public_api_url {
        Some(url) => url.to_string(),
        None => public_prefix(&req),
    };
    let mut doc = (*state.document).clone();
    doc["servers"] = serde_json::json!([{ "url": server }]);
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    with_type(body, "application/json", "no-cache")
}

/// Swagger UI
///
/// The interactive explorer of this document. *Authorize* takes a Clerk session token (locally:
/// `make token`); *Try it out* calls the API under the document's server.
#[utoipa::path(get, path = "/api/docs", tag = "docs", operation_id = "getSwaggerUi", responses(
    (status = 200, description = "The Swagger UI page.", content_type = "text/html", body = String),
))]
async fn swagger_ui() -> Response {
    with_type(Html(INDEX_HTML), "text/html; charset=utf-8", "no-cache")
}

/// The files the Swagger UI page loads.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum AssetName {
    #[serde(rename = "swagger-ui.css")]
    Stylesheet,
    #[serde(rename = "swagger-ui-bundle.js")]
    Bundle,
    #[serde(rename = "swagger-initializer.js")]
    Initializer,
}

/// Swagger UI asset
///
/// Swagger UI's script and stylesheet (embedded in the function, no CDN) and its initializer.
#[utoipa::path(get, path = "/api/docs/{asset}", tag = "docs", operation_id = "getSwaggerUiAsset",
    params(("asset" = inline(AssetName), Path, description = "The asset's file name.")),
    responses(
        (status = 200, description = "The asset.", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        NotFound,
    ))]
async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    const VENDORED: &str = "public, max-age=86400";
    static BUNDLE: OnceLock<Bytes> = OnceLock::new();
    static STYLESHEET: OnceLock<Bytes> = OnceLock::new();
    match name.as_str() {
        "swagger-initializer.js" => Ok(with_type(INITIALIZER_JS, "text/javascript; charset=utf-8", "no-cache")),
        "swagger-ui-bundle.js" => {
            vendored(&name, &BUNDLE).map(|b| with_type(b, "text/javascript; charset=utf-8", VENDORED))
        }
        "swagger-ui.css" => vendored(&name, &STYLESHEET).map(|b| with_type(b, "text/css; charset=utf-8", VENDORED)),
        _ => Err(ApiError::NotFound("No such Swagger UI asset.".into())),
    }
}

/// A file of the Swagger UI distribution embedded by utoipa-swagger-ui (`vendored`), stored
/// gzipped (its `gzip` feature: 4.3 MB of files become 1.2 MB of binary) and inflated once per
/// instance, on the first request for it (kept in `cell`).
fn vendored(name: &str, cell: &'static OnceLock<Bytes>) -> Result<Bytes, ApiError> {
    if let Some(bytes) = cell.get() {
        return Ok(bytes.clone());
    }
    let file = match utoipa_swagger_ui::serve(name, Arc::new(utoipa_swagger_ui::Config::default())) {
        Ok(Some(file)) => file,
        Ok(None) => return Err(ApiError::NotFound("No such Swagger UI asset.".into())),
        Err(e) => return Err(ApiError::Internal(e.to_string().into())),
    };
    let bytes = if file.gzpipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(file.bytes.as_ref())
            .read_to_end(&mut out)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        Bytes::from(out)
    } else {
        Bytes::from(file.bytes.into_owned())
    };
    Ok(cell.get_or_init(|| bytes).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: &Router, path: &str) -> (u16, http::HeaderMap, bytes::Bytes) {
        let res = router.clone().oneshot(http::Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.into_body().collect().await.unwrap().to_bytes())
    }

    // The request path's headers (the CSP included) are checked through the gateway (tests/docs.rs).
    #[tokio::test]
    async fn page_loads_only_files_this_function_serves() {
        let router = service(Settings::default()).0;
        let (status, headers, body) = get(&router, "/api/docs").await;
        assert_eq!(status, 200);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(!html.contains("<script>") && !html.contains("<script >"), "no inline script");
        let links: Vec<&str> =
            html.split(['"']).filter(|s| s.starts_with("docs/")).map(|s| s.trim_start_matches("docs/")).collect();
        assert_eq!(links.len(), 3, "{links:?}");
        for link in links {
            let (status, headers, body) = get(&router, &format!("/api/docs/{link}")).await;
            assert_eq!(status, 200, "{link}");
            assert!(body.len() > 100, "{link}");
            // Embedded gzipped, served inflated (API Gateway REST passes no binary by default).
            assert_ne!(&body[..2], &[0x1f, 0x8b], "{link} is served inflated");
            std::str::from_utf8(&body).unwrap_or_else(|_| panic!("{link} is text"));
            let ct = headers[header::CONTENT_TYPE].to_str().unwrap();
            assert!(ct.starts_with(if link.ends_with(".js") { "text/javascript" } else { "text/css" }), "{ct}");
            if link == "swagger-ui-bundle.js" {
                assert!(
                    body.len() > 1_000_000 && body.windows(15).any(|w| w == b"SwaggerUIBundle"),
                    "the whole bundle"
                );
            }
        }
    }

    #[tokio::test]
    async fn unknown_assets_are_problem_json() {
        let router = service(Settings::default()).0;
        for path in ["/api/docs/index.html", "/api/docs/..%2F..%2Fetc%2Fpasswd", "/api/docs/oauth2-redirect.html"] {
            let (status, headers, _) = get(&router, path).await;
            assert_eq!(status, 404, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        }
    }

    #[tokio::test]
    async fn servers_follow_configuration_or_the_request() {
        let (_, _, body) = get(&service(Settings::default()).0, "/api/docs.json").await;
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["servers"], serde_json::json!([{ "url": "/" }]));

        let settings = Settings { public_api_url: Some("https://api.baatcheet.test/v1".into()) };
        let (_, _, body) = get(&service(settings).0, "/api/docs.json").await;
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["servers"][0]["url"], "https://api.baatcheet.test/v1");
    }

    #[test]
    fn settings_reject_unusable_urls() {
        for bad in ["ftp://x", "api.example.com", "https://x/a b", "javascript:alert(1)", "https://x/\"<"] {
            assert!(Settings::from_lookup(|_| Some(bad.to_string())).is_err(), "{bad}");
        }
        let ok = Settings::from_lookup(|_| Some(" https://api.baatcheet.app/prod ".into())).unwrap();
        assert_eq!(ok.public_api_url.as_deref(), Some("https://api.baatcheet.app/prod"));
        assert!(Settings::from_lookup(|_| None).unwrap().public_api_url.is_none());
    }
}
