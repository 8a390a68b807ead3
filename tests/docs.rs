//! The docs function over real HTTP as AWS runs it (tests/support/deployed.rs), and through a
//! Lambda event: the document, Swagger UI and its assets under the project's headers, and the
//! document's server (the stage).

use axum::body::Body;
use baatcheet_tests::deployed::start;
use baatcheet_tests::{TestStack, assert_security_headers, http};
use http_body_util::BodyExt;
use std::path::PathBuf;
use tower::ServiceExt;

#[tokio::test]
async fn gateway_serves_the_document_and_swagger_ui() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let base = gw.base_url();

    let res = http().get(format!("{base}/api/docs.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_security_headers(res.headers());
    assert!(res.headers().contains_key("x-request-id"));
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let stage = base.rsplit('/').next().unwrap();
    assert_eq!(doc["servers"], serde_json::json!([{ "url": format!("/{stage}") }]));
    let embedded: serde_json::Value = serde_json::from_str(docs::DOCUMENT).unwrap();
    assert_eq!(doc["paths"], embedded["paths"], "served paths are the embedded document's");

    let res = http().get(format!("{base}/api/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_security_headers(res.headers());
    let html = res.text().await.unwrap();
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        assert!(html.contains(&format!("\"docs/{asset}\"")), "{asset} linked relatively");
        let res = http().get(format!("{base}/api/docs/{asset}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert_security_headers(res.headers());
    }
    let res = http().get(format!("{base}/api/docs/swagger-ui-standalone-preset.js")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn initializer_loads_the_document_beside_the_page_without_inline_script() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let base = gw.base_url();
    let js = http().get(format!("{base}/api/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("\"../docs.json\""), "resolved against the script's own URL: {js}");
    assert!(js.contains("validatorUrl: null"), "no image from the online validator");
    let html = http().get(format!("{base}/api/docs")).send().await.unwrap().text().await.unwrap();
    for inline in ["<script>", "onload=", "javascript:"] {
        assert!(!html.contains(inline), "inline script: {inline}");
    }
}

/// Through a REST API event with a stage, as in AWS: "Try it out" must call the stage, not the
/// domain root.
#[tokio::test]
async fn document_server_is_the_stage_the_request_came_in_under() {
    // SAFETY: template.yaml sets this for every function; the same value as every other test.
    unsafe { std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true") };
    let stack = TestStack::new().await;
    let router = docs::router(&stack.config(), docs::Settings::default(), stack.context().await.limiter.clone());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/docs-json.json");
    let event = std::fs::read_to_string(path).unwrap();
    let req = lambda_http::request::from_str(&event).expect("event parses");
    assert_eq!(req.uri().path(), "/api/docs.json", "the stage is not in the routed path");
    let (parts, body) = req.into_parts();
    let res = router.oneshot(http::Request::from_parts(parts, Body::from(body.to_vec()))).await.unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["servers"], serde_json::json!([{ "url": "/staging" }]));
}

/// The docs routes are under the global per-IP limit like every route but the probes and the
/// webhook.
#[tokio::test]
async fn docs_are_under_the_global_limit() {
    let mut stack = TestStack::new().await;
    stack.env.insert("RATE_LIMIT_GLOBAL".into(), "2/1h".into());
    let gw = start(&stack).await;
    let base = gw.base_url();
    for left in ["1", "0"] {
        let res = http().get(format!("{base}/api/docs.json")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-policy"], "\"global\";q=2;w=3600");
        let field = res.headers()["ratelimit"].to_str().unwrap().to_string();
        assert!(field.starts_with(&format!("\"global\";r={left};")), "{field}");
    }
    let res = http().get(format!("{base}/api/docs")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
