//! Rate limits over HTTP: the global per-IP limit through the local gateway (fields on a 200 and
//! a 429, the 429 problem and Retry-After, exempt probes, X-Forwarded-For ignored), per-route
//! checks from a handler, API Gateway events keyed by their source IP, a request without a
//! client address, `/health` while the limiter's store is down, and, through the API as AWS runs
//! it (function instances in processes of their own), a burst on one user's searches with the
//! store slow, and two instances with the store hung.

use crate::common::local_call_limit;
use axum::{Router, body::Body, extract::State, routing::get};
use baatcheet_shared::auth::Tier;
use baatcheet_shared::rate_limit::{Access, FallbackMode, Limiter, RouteAccess};
use baatcheet_shared::{ApiError, AppContext, request_path};
use baatcheet_tests::chat::{Caller, ChatHarness, chat_model, fast_config, rate_limit};
use baatcheet_tests::deployed;
use baatcheet_tests::fake_upstream::FakeUpstream;
use baatcheet_tests::faults::{Fault, Faulty};
use baatcheet_tests::{Switch, TestStack, assert_security_headers, dynamodb_at, http, serve, spawn_gateway};
use chat::limits::CHAT;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::{Arc, Once};
use std::time::Duration;
use tower::ServiceExt;

/// A stack whose functions run with these extra environment variables.
async fn stack_with(env: &[(&str, &str)]) -> TestStack {
    let mut stack = TestStack::new().await;
    for (k, v) in env {
        stack.env.insert(k.to_string(), v.to_string());
    }
    stack
}

/// `"name";r=R;t=T` -> (name, R, T)
fn parse_field(v: &str) -> (String, u64, u64) {
    let mut parts = v.split(';');
    let name = parts.next().unwrap().trim_matches('"').to_string();
    let mut get = |p: &str| parts.next().and_then(|s| s.strip_prefix(p)).and_then(|n| n.parse().ok()).unwrap();
    let r = get("r=");
    let t = get("t=");
    (name, r, t)
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn global_limit_fields_on_200_and_429_through_the_gateway() {
    let stack = stack_with(&[("RATE_LIMIT_GLOBAL", "3/1h")]).await;
    let base = spawn_gateway(&stack.context().await).await;
    let url = format!("{base}/api/v1/health/metrics");
    for left in [2, 1, 0] {
        let res = http().get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "ratelimit-policy"), Some("\"global\";q=3;w=3600"));
        let (name, r, t) = parse_field(header(&res, "ratelimit").expect("RateLimit field"));
        assert_eq!((name.as_str(), r), ("global", left));
        assert!((1..=1200).contains(&t), "next unit within one interval: {t}");
    }
    // Spoofing X-Forwarded-For does not buy a new bucket: the source is the connection.
    let res = http().get(&url).header("x-forwarded-for", "198.51.100.1").send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_security_headers(res.headers());
    assert_eq!(header(&res, "content-type"), Some("application/problem+json"));
    assert_eq!(header(&res, "ratelimit-policy"), Some("\"global\";q=3;w=3600"));
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    let (_, r, t) = parse_field(header(&res, "ratelimit").unwrap());
    assert_eq!((r, t), (0, retry));
    let request_id = header(&res, "x-request-id").unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "https://baatcheet.app/problems/quota-exceeded");
    assert_eq!(body["status"], 429);
    assert_eq!(body["policy"], "global");
    assert_eq!(body["retry_after"], retry);
    assert_eq!(body["instance"], "/api/v1/health/metrics");
    assert_eq!(body["request_id"], request_id.as_str());
    // Routes the API does not have are answered by the gateway itself, as API Gateway does,
    // before any function (and its limit) runs.
    assert_eq!(http().get(format!("{base}/api/v1/nope")).send().await.unwrap().status(), 404);
    // Probes are never limited, and carry no fields.
    for path in ["/health", "/live", "/ready"] {
        let res = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("ratelimit").is_none(), "{path}");
    }
}

async fn limited_chat(State(ctx): State<AppContext>) -> Result<&'static str, ApiError> {
    ctx.limiter.check(CHAT.of(Tier::Free), "u_chat", 1).await?;
    Ok("answer")
}

#[tokio::test]
async fn a_handler_check_sets_the_tightest_fields_and_its_429() {
    let stack = stack_with(&[("RATE_LIMIT_CHAT_FREE", "2/1h")]).await;
    let ctx = stack.context().await;
    chat::limits::declare(&ctx).expect("chat's policies");
    // A stand-in for the chat function: the shared request path around one per-user check.
    let routes = Router::new().route("/api/v1/chat/test", get(limited_chat)).with_state(ctx.clone());
    let base = format!("http://{}", serve(request_path::wrap(routes, &ctx, RouteAccess::all(Access::Public))).await);
    let url = format!("{base}/api/v1/chat/test");
    let res = http().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Chat (1 of 2 left) is tighter than global (999 of 1000 left).
    assert_eq!(header(&res, "ratelimit-policy"), Some("\"chat\";q=2;w=3600"));
    assert_eq!(parse_field(header(&res, "ratelimit").unwrap()).1, 1);
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    let res = http().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "ratelimit-policy"), Some("\"chat\";q=2;w=3600"));
    let retry = header(&res, "retry-after").unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["policy"].as_str(), body["retry_after"].to_string()), (Some("chat"), retry));
    assert_eq!(ctx.limiter.stats().denied, 1, "the refusal came from the chat check");
}

fn events_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

async fn invoke(router: Router, event: &str) -> http::Response<Body> {
    static ONCE: Once = Once::new();
    // SAFETY: set once, before any request is built; template.yaml sets the same for every function.
    ONCE.call_once(|| unsafe { std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true") });
    let req = lambda_http::request::from_str(event).expect("event parses");
    let (parts, body) = req.into_parts();
    router.oneshot(http::Request::from_parts(parts, Body::from(body.to_vec()))).await.unwrap()
}

#[tokio::test]
async fn lambda_events_are_limited_by_source_ip_with_ipv6_per_64() {
    let stack = stack_with(&[("RATE_LIMIT_GLOBAL", "2/1h")]).await;
    let router = health::router(stack.context().await).expect("the health function starts");
    let event = std::fs::read_to_string(events_dir().join("health-metrics.json")).unwrap();
    assert!(event.contains("\"sourceIp\": \"203.0.113.9\"") && event.contains("X-Forwarded-For"));
    let from = |ip: &str| event.replace("\"sourceIp\": \"203.0.113.9\"", &format!("\"sourceIp\": \"{ip}\""));
    let status = |ip: &'static str| {
        let (router, ev) = (router.clone(), from(ip));
        async move { invoke(router, &ev).await.status().as_u16() }
    };
    assert_eq!(status("2001:db8:0:5::1").await, 200);
    assert_eq!(status("2001:db8:0:5:ffff:ffff:ffff:ffff").await, 200);
    assert_eq!(status("2001:db8:0:5::abc").await, 429, "the same /64 shares a bucket");
    assert_eq!(status("2001:db8:0:6::1").await, 200);
    assert_eq!(status("203.0.113.9").await, 200, "X-Forwarded-For names 198.51.100.77: not used");
}

#[tokio::test]
async fn a_request_without_a_client_address_fails_closed() {
    let stack = stack_with(&[]).await;
    let router = health::router(stack.context().await).expect("the health function starts");
    let get = |path: &str| http::Request::get(path).body(Body::empty()).unwrap();
    let res = router.clone().oneshot(get("/api/v1/health/metrics")).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["type"], "https://baatcheet.app/problems/bad-request");
    // Probes are not limited, so they need no address.
    assert_eq!(router.oneshot(get("/live")).await.unwrap().status(), 200);
}

async fn get_json(base: &str, path: &str) -> (u16, Value, Option<String>) {
    let res = http().get(format!("{base}{path}")).send().await.unwrap();
    let field = header(&res, "ratelimit").map(str::to_string);
    (res.status().as_u16(), res.json().await.unwrap(), field)
}

#[tokio::test]
async fn store_down_keeps_serving_and_health_reports_the_limiter_degraded() {
    let stack = stack_with(&[("RATE_LIMIT_STORE_RETRY_MS", "0"), ("RATE_LIMIT_STORE_TIMEOUT_MS", "2000")]).await;
    let switch = Switch::to(&baatcheet_tests::endpoint()).await;
    let mut ctx = stack.context().await;
    // Only the limiter's DynamoDB goes through the switch: the database probe stays healthy.
    let config = stack.config();
    ctx.limiter =
        Arc::new(Limiter::new(dynamodb_at(&switch.url()).await, config.tables.rate_limits, config.rate_limits));
    let base = format!("http://{}", serve(health::router(ctx.clone()).expect("the health function starts")).await);

    let (status, _, field) = get_json(&base, "/api/v1/health/metrics").await;
    assert_eq!((status, field.is_some()), (200, true));
    let (status, body, _) = get_json(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")), "{body}");
    assert_eq!(body["services"]["rate_limiter"]["status"], "healthy");

    switch.cut();
    let (status, metrics, field) = get_json(&base, "/api/v1/health/metrics").await;
    assert_eq!(status, 200, "a limiter outage never fails a request: {metrics}");
    assert!(field.is_some(), "the fallback's fields are still sent");
    assert_eq!(metrics["rate_limiter"]["degraded"], true, "{metrics}");
    assert!(metrics["rate_limiter"]["fallback_decisions"].as_u64().unwrap() >= 1);
    assert!(metrics["rate_limiter"]["store_failures"].as_u64().unwrap() >= 1);
    let (status, body, _) = get_json(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["services"]["rate_limiter"]["status"], "degraded");
    assert_eq!(body["services"]["database"]["status"], "healthy");
    assert!(!body.to_string().contains(&switch.addr.port().to_string()), "no internals: {body}");
    assert_eq!(get_json(&base, "/ready").await.0, 200, "the limiter is not critical");

    switch.restore();
    let (status, body, _) = get_json(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")), "{body}");
    assert!(!ctx.limiter.is_degraded());
}

// ---- The deployed shape: each function instance a process of its own (issue 25) ------------

/// A chat stack whose chat function processes reach AWS through `proxy`, with `env` for the
/// chat function (over everything else), with the Lambda-shaped API in front.
async fn deployed_chat(
    proxy: &Faulty,
    env: &[(&str, &str)],
    tweak: impl FnOnce(&mut baatcheet_local::deployed::Deployed),
) -> (ChatHarness, FakeUpstream, baatcheet_local::lambda_stack::LambdaStack) {
    let fake = FakeUpstream::start().await;
    let providers = serde_json::json!([fake.provider("primary", &["k1"], chat_model("text"))]);
    let h = ChatHarness::with(providers, fast_config(), env, None).await;
    let url = proxy.url();
    let mut function_env = vec![("ChatFunction", "AWS_ENDPOINT_URL", url.as_str())];
    function_env.extend(env.iter().map(|(k, v)| ("ChatFunction", *k, *v)));
    let gw = deployed::start_with(&h.stack, tweak, &function_env).await;
    (h, fake, gw)
}

/// `n` concurrent searches by `who`: the statuses, and the `RateLimit` remaining of each.
async fn searches(gw: &str, who: &Caller, n: usize) -> Vec<(u16, String, u64)> {
    let url = format!("{gw}/api/v1/conversations/search?q=chai");
    futures::future::join_all((0..n).map(|_| {
        let req = http().get(&url).header("authorization", who.bearer());
        async move {
            let res = req.send().await.expect("an answer");
            let (policy, (_, r, _)) = rate_limit(res.headers());
            (res.status().as_u16(), policy, r)
        }
    }))
    .await
}

#[tokio::test]
async fn two_instances_with_the_store_hung_admit_at_most_twice_the_per_instance_bound() {
    let proxy = Faulty::to(&baatcheet_tests::endpoint()).await;
    let env = [
        ("RATE_LIMIT_SEARCH", "100/1h"),
        ("RATE_LIMIT_FALLBACK_SEARCH", "5"),
        ("RATE_LIMIT_STORE_TIMEOUT_MS", "500"),
        ("RATE_LIMIT_STORE_RETRY_MS", "1000"),
        // Admitted searches then meet the hung store themselves: fail them fast.
        ("AWS_SDK_ATTEMPT_TIMEOUT_MS", "700"),
        ("AWS_SDK_OPERATION_TIMEOUT_MS", "1200"),
        // Each instance keeps the signed-in user for the whole test (the users table hangs too).
        ("AUTH_USER_CACHE_TTL_SECS", "600"),
    ];
    let (h, _fake, gw) = deployed_chat(&proxy, &env, |d| {
        d.functions.get_mut("ChatFunction").expect("the chat function").reserved_concurrency = Some(2);
    })
    .await;
    let base = gw.base_url();
    let who = h.caller("burst").await;
    // Both instances start and serve the user while the store answers (4 of 100 spent).
    let warm = searches(&base, &who, 4).await;
    assert!(warm.iter().all(|(s, ..)| *s == 200), "{warm:?}");
    let pool = gw.pool("ChatFunction").unwrap();
    assert_eq!(pool.instances_started(), 2);

    proxy.set(Fault::Hung);
    let burst = searches(&base, &who, 40).await;
    let refused: Vec<_> = burst.iter().filter(|(s, ..)| *s == 429).collect();
    let admitted = burst.len() - refused.len();
    assert!(refused.iter().all(|(_, policy, _)| policy.starts_with("\"search\"")), "{burst:?}");
    let rate = baatcheet_shared::rate_limit::policy::parse_rate("100/1h").unwrap();
    let (per_instance, _) = FallbackMode::Allow(5).worst_case(&rate);
    assert_eq!(per_instance, 5);
    assert!(admitted as u64 <= 2 * per_instance, "{admitted} admitted: {burst:?}");
    assert!(admitted >= 5, "the fallback still serves: {burst:?}");
    assert_eq!(pool.instances_started(), 2, "the same two processes decided");

    // Back: the instances find the store again by themselves and write back what they admitted:
    // the next search sees 4 + admitted + 1 units used.
    proxy.set(Fault::Up);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = searches(&base, &who, 1).await;
    let (status, _, left) = &after[0];
    assert_eq!(*status, 200, "{after:?}");
    let expected = 100 - 4 - admitted as u64 - 1;
    assert!((expected..=expected + 1).contains(left), "{left} left, expected {expected}: the outage was forgotten");
}

#[tokio::test]
async fn a_150_way_search_burst_through_the_deployed_api_admits_exactly_the_limit() {
    let proxy = Faulty::to(&baatcheet_tests::endpoint()).await;
    // Slow but answering: every answer of the store takes 100 ms more, and the burst queues in
    // the local endpoint on top of it. The store timeout (and the contended wait) is the delay
    // plus the longest the local endpoint may take to answer under the parallel suite, so that
    // every decision is the store's: with the deployed 500 ms, a loaded machine's queue sent
    // some to the fallback (99 of 100 admitted).
    let delay = Duration::from_millis(100);
    proxy.set(Fault::Slow(delay));
    let timeout = (delay + local_call_limit().await).as_millis().to_string();
    let env = [
        ("RATE_LIMIT_SEARCH", "100/1h"),
        ("RATE_LIMIT_STORE_TIMEOUT_MS", timeout.as_str()),
        ("RATE_LIMIT_CONTENDED_WAIT_MS", timeout.as_str()),
        ("RATE_LIMIT_STORE_RETRY_MS", "1000"),
    ];
    let (h, _fake, gw) = deployed_chat(&proxy, &env, |_| {}).await;
    let who = h.caller("burst").await;
    let burst = searches(&gw.base_url(), &who, 150).await;
    let count = |s: u16| burst.iter().filter(|(status, ..)| *status == s).count();
    assert_eq!((count(200), count(429)), (100, 50), "{burst:?}");
    assert!(gw.pool("ChatFunction").unwrap().instances_started() > 1, "several processes shared the burst");
}
