//! API Gateway REST proxy events from `events/` fed through `lambda_http::request::from_str` into
//! the router of the function template.yaml routes them to: the same path a Lambda invocation
//! (or `sam local invoke -e`) takes.

use axum::{Router, body::Body, routing::get};
use baatcheet_local::functions;
use baatcheet_shared::ClientIp;
use baatcheet_tests::{TestStack, template};
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::sync::Once;
use tower::ServiceExt;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// template.yaml sets this for every function; lambda_http reads it when it builds the request.
fn lambda_env() {
    static ONCE: Once = Once::new();
    // SAFETY: set once, before any request is built, to the one value every test here needs.
    ONCE.call_once(|| unsafe { std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true") });
}

struct Fixture {
    name: String,
    method: String,
    resource: String,
    text: String,
}

fn fixtures() -> Vec<Fixture> {
    let mut out: Vec<_> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            let v: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
            Fixture {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                method: v["httpMethod"].as_str().expect("httpMethod").to_uppercase(),
                resource: v["resource"].as_str().expect("resource").to_string(),
                text,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

async fn invoke(router: Router, event: &str) -> (u16, http::HeaderMap, serde_json::Value) {
    lambda_env();
    let req = lambda_http::request::from_str(event).expect("event parses as an API Gateway request");
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Body::from(body.to_vec()));
    let res = router.oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[test]
fn every_route_has_a_fixture() {
    let have: Vec<_> = fixtures().into_iter().map(|f| (f.method, f.resource)).collect();
    for r in &template().routes {
        if r.method == "OPTIONS" {
            continue; // preflights are answered by the shared CORS layer
        }
        assert!(have.contains(&(r.method.clone(), r.path.clone())), "no events/*.json for {} {}", r.method, r.path);
    }
}

#[tokio::test]
async fn every_fixture_is_served_by_its_function() {
    let stack = TestStack::new().await;
    let ctx = stack.context().await;
    let fixtures = fixtures();
    assert!(!fixtures.is_empty());
    for f in fixtures {
        let route = template()
            .routes
            .iter()
            .find(|r| r.method == f.method && r.path == f.resource)
            .unwrap_or_else(|| panic!("{}: template.yaml has no route {} {}", f.name, f.method, f.resource));
        let router = functions::router_for(&route.function, &ctx).expect("function exists");
        let (status, headers, body) = invoke(router, &f.text).await;
        assert!(!matches!(status, 404 | 405) && status < 500, "{}: {status} {body}", f.name);
        assert_eq!(headers["x-content-type-options"], "nosniff", "{}", f.name);
        assert!(headers.contains_key("x-request-id"), "{}", f.name);
    }
}

#[tokio::test]
async fn health_fixtures_answer_as_documented() {
    let stack = TestStack::new().await;
    let router = health::router(stack.context().await).expect("the health function starts");
    let read = |n: &str| std::fs::read_to_string(events_dir().join(format!("{n}.json"))).unwrap();
    let (s, _, b) = invoke(router.clone(), &read("health")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("healthy")), "{b}");
    let (s, _, b) = invoke(router.clone(), &read("ready")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ready")));
    let (s, _, b) = invoke(router.clone(), &read("live")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("alive")));
    let (s, _, b) = invoke(router, &read("health-metrics")).await;
    assert_eq!(s, 200);
    assert!(b["memory"]["rss_bytes"].is_u64());
    assert!(b["version"].is_string() && b.get("lambda").is_none() && b.get("invocations").is_none(), "{b}");
}

#[tokio::test]
async fn source_ip_comes_from_the_request_context_not_x_forwarded_for() {
    let router = Router::new().route("/live", get(|ip: ClientIp| async move { axum::Json(ip.0.to_string()) }));
    let event = std::fs::read_to_string(events_dir().join("live.json")).unwrap();
    assert!(event.contains("198.51.100.77"), "fixture carries a spoofed X-Forwarded-For");
    let (status, _, body) = invoke(router, &event).await;
    assert_eq!(status, 200);
    assert_eq!(body, "203.0.113.9");
}

#[tokio::test]
async fn unknown_path_in_a_function_is_problem_json() {
    let stack = TestStack::new().await;
    let router = health::router(stack.context().await).expect("the health function starts");
    let event = std::fs::read_to_string(events_dir().join("live.json")).unwrap().replace("\"/live\"", "\"/nope\"");
    let (status, headers, body) = invoke(router, &event).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], 404);
    assert_eq!(body["instance"], "/nope");
}
