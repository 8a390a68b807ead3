//! The API as AWS runs it (tests/support/deployed.rs) over real HTTP: every route of the
//! translated template served by its function, problem+json for unknown routes and methods,
//! security headers, CORS from configuration, and request ids.

use baatcheet_tests::deployed::{self, start};
use baatcheet_tests::{TestStack, assert_security_headers, http};

async fn api(stack: &TestStack) -> (baatcheet_local::lambda_stack::LambdaStack, String) {
    let gw = start(stack).await;
    let base = gw.base_url();
    (gw, base)
}

#[tokio::test]
async fn serves_every_template_route() {
    let stack = TestStack::new().await;
    let (_gw, base) = api(&stack).await;
    for r in deployed::deployed().routes.iter().filter(|r| r.method == "GET" && !r.path.contains('{')) {
        let res = http().get(format!("{base}{}", r.path)).send().await.unwrap();
        assert_security_headers(res.headers());
        let status = res.status();
        if status == 401 {
            // A protected route: served by its function, which asks for a token.
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["reason"], "missing_token", "{} {}", r.method, r.path);
        } else {
            assert!(status.is_success(), "{} {} -> {status}", r.method, r.path);
        }
    }
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_problem_json() {
    let stack = TestStack::new().await;
    let (_gw, base) = api(&stack).await;
    // API Gateway answers both itself (no resource, or no such method on it), from the gateway
    // response template.yaml customises.
    for res in [
        http().get(format!("{base}/api/v1/nothing-here")).send().await.unwrap(),
        http().delete(format!("{base}/health")).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let id = res.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["type"], "https://baatcheet.app/problems/not-found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["request_id"], id.as_str());
    }
    // Behind a route, the function's own problem+json.
    let res = http().get(format!("{base}/api/docs/nothing-here.js")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_security_headers(res.headers());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["instance"], "/api/docs/nothing-here.js");
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_well_formed() {
    let stack = TestStack::new().await;
    let (_gw, base) = api(&stack).await;
    let res = http().get(format!("{base}/live")).header("x-request-id", "client-req-0001").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-req-0001");
    let res = http().get(format!("{base}/live")).header("x-request-id", "bad id <x>").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // The problem body names the same id as the header.
    let res = http().get(format!("{base}/api/docs/missing.css")).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], id);
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let stack = TestStack::new().await;
    let (_gw, base) = api(&stack).await;
    let res = http().get(format!("{base}/live")).header("origin", "https://app.baatcheet.test").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.baatcheet.test");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    for h in ["ratelimit", "ratelimit-policy", "retry-after", "x-request-id"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    let res = http().get(format!("{base}/live")).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

/// A browser calling the chat API from the web app first sends a preflight; API Gateway routes
/// it (template.yaml's OPTIONS events) to the function, whose CORS layer answers it without
/// authentication, validation or a rate-limit charge.
#[tokio::test]
async fn preflights_of_authenticated_routes_are_answered_for_allowed_origins_only() {
    let stack = TestStack::new().await;
    let (_gw, base) = api(&stack).await;
    let preflight = |path: &str, origin: &str, method: &str| {
        http()
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    for (path, method) in [
        ("/api/v1/chat/completions", "POST"),
        ("/api/v1/conversations/c_0123456789abcdef", "PATCH"),
        ("/api/v1/admin/users/user_1", "PATCH"),
    ] {
        let res = preflight(path, "https://app.baatcheet.test", method).await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert_eq!(res.headers()["access-control-allow-origin"], "https://app.baatcheet.test", "{path}");
        let methods = res.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
        assert!(methods.contains(method), "{path}: {methods}");
        let headers = res.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
        assert!(headers.contains("authorization") && headers.contains("content-type"), "{path}: {headers}");
        assert!(res.headers().get("ratelimit").is_none(), "a preflight is not charged: {path}");
        assert_security_headers(res.headers());

        let res = preflight(path, "https://evil.example", method).await.unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{path}");
    }
}
