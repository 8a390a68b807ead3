//! The health function against the local AWS endpoint, through real HTTP: truthful status,
//! readiness, liveness, metrics, and outages of DynamoDB and Secrets Manager.

use baatcheet_shared::AppContext;
use baatcheet_tests::{
    Switch, TestStack, assert_security_headers, aws_proxy::RecordingProxy, blackhole, dead_endpoint, dynamodb_at, http,
    secrets_manager_at, serve,
};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn get(base: &str, path: &str) -> (u16, Value) {
    let res = http().get(format!("{base}{path}")).send().await.expect("request");
    let status = res.status().as_u16();
    assert_security_headers(res.headers());
    (status, res.json().await.expect("json body"))
}

async fn serve_health(ctx: AppContext) -> String {
    format!("http://{}", serve(health::router(ctx).expect("the health function starts")).await)
}

#[tokio::test]
async fn healthy_stack_reports_every_service() {
    let stack = TestStack::new().await;
    let base = serve_health(stack.context().await).await;
    let (status, body) = get(&base, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["environment"], "development");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].is_u64());
    assert!(
        time::OffsetDateTime::parse(
            body["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    for svc in ["database", "secrets"] {
        assert_eq!(body["services"][svc]["status"], "healthy", "{svc}: {body}");
        assert!(body["services"][svc]["latency"].is_u64());
    }
    assert_eq!(get(&base, "/ready").await, (200, serde_json::json!({"status": "ready"})));
    let (status, live) = get(&base, "/live").await;
    assert_eq!((status, &live["status"]), (200, &Value::from("alive")));
}

#[tokio::test]
async fn missing_table_is_unhealthy() {
    let mut stack = TestStack::new().await;
    let missing = format!("{}does-not-exist", stack.prefix);
    stack.env.insert("CONVERSATIONS_TABLE".into(), missing);
    let ctx = AppContext::new(stack.config(), &stack.sdk);
    let base = serve_health(ctx).await;
    let (status, body) = get(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")), "{body}");
}

async fn context_with_database_at(stack: &TestStack, url: &str) -> AppContext {
    let dynamo = dynamodb_at(url).await;
    let secrets = baatcheet_shared::aws::secrets_manager(&stack.sdk);
    let ctx = AppContext::with_clients(stack.config(), dynamo, secrets);
    ctx.secrets.fetch().await.unwrap();
    ctx
}

#[tokio::test]
async fn database_down_is_unhealthy_and_not_ready() {
    let stack = TestStack::new().await;
    let dead = dead_endpoint().await;
    let base = serve_health(context_with_database_at(&stack, &format!("http://{dead}")).await).await;
    let (status, body) = get(&base, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["services"]["database"]["status"], "unhealthy");
    assert_eq!(body["services"]["secrets"]["status"], "healthy");
    let text = body.to_string();
    assert!(!text.contains(&dead.port().to_string()), "internals leaked: {text}");
    let (status, body) = get(&base, "/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["failed"], serde_json::json!(["database"]));
    // Liveness never touches dependencies.
    assert_eq!(get(&base, "/live").await.0, 200);
}

#[tokio::test]
async fn hung_database_times_out_quickly() {
    let stack = TestStack::new().await;
    let hole = blackhole().await;
    let base = serve_health(context_with_database_at(&stack, &format!("http://{hole}")).await).await;
    let started = Instant::now();
    let (status, body) = get(&base, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["services"]["database"]["error"], "timeout");
    // The probe timeout is 800 ms here: the answer must not wait for the SDK's own timeouts.
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn secrets_outage_is_degraded_once_cached_and_unhealthy_before() {
    let stack = TestStack::new().await;
    let switch = Switch::to(&baatcheet_tests::endpoint()).await;
    let secrets = secrets_manager_at(&switch.url()).await;
    let ctx = AppContext::with_clients(stack.config(), baatcheet_shared::aws::dynamodb(&stack.sdk), secrets);
    let base = serve_health(ctx.clone()).await;

    // Never loaded (a cold start that could not read its secret): critical.
    switch.cut();
    let (status, body) = get(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")), "{body}");

    // Loaded once, then Secrets Manager goes away: the cached value keeps serving.
    switch.restore();
    let (status, body) = get(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")), "{body}");
    switch.cut();
    let (status, body) = get(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["services"]["secrets"]["status"], "unhealthy");
    assert_eq!(get(&base, "/ready").await.0, 200);
}

#[tokio::test]
async fn database_outage_and_recovery_are_reported() {
    let stack = TestStack::new().await;
    let switch = Switch::to(&baatcheet_tests::endpoint()).await;
    let base = serve_health(context_with_database_at(&stack, &switch.url()).await).await;
    assert_eq!(get(&base, "/health").await.0, 200);
    switch.cut();
    let (status, body) = get(&base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")), "{body}");
    assert_eq!(get(&base, "/ready").await.0, 503);
    switch.restore();
    assert_eq!(get(&base, "/ready").await.0, 200);
}

#[tokio::test]
async fn one_probe_run_answers_health_and_ready_within_the_ttl() {
    let mut stack = TestStack::new().await;
    let proxy = RecordingProxy::to(&baatcheet_tests::endpoint()).await;
    stack.env.insert("HEALTH_PROBE_TTL_MS".into(), "1500".into());
    let config = stack.config();
    let tables = health::config::HealthConfig::from_config(&config).expect("health settings").tables.len();
    let ctx = AppContext::with_clients(config, dynamodb_at(&proxy.url).await, secrets_manager_at(&proxy.url).await);
    let base = serve_health(ctx).await;
    let probe_calls = || proxy.calls().iter().filter(|c| c.operation == "GetItem").count();

    // A burst on a fresh instance: one run, every answer carrying its time.
    let burst = futures::future::join_all((0..8).map(|_| get(&base, "/health"))).await;
    assert_eq!(probe_calls(), tables, "one key read per table for the whole burst");
    let checked_at = &burst[0].1["checked_at"];
    assert!(checked_at.is_string(), "{}", burst[0].1);
    for (status, body) in &burst {
        assert_eq!((*status, body["status"].as_str()), (200, Some("healthy")), "{body}");
        assert_eq!(&body["checked_at"], checked_at);
    }
    assert_eq!(get(&base, "/ready").await.0, 200);
    assert_eq!(probe_calls(), tables, "/ready shares the run");

    // After the TTL, the next request probes again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, body) = get(&base, "/health").await;
    assert_eq!(probe_calls(), 2 * tables);
    assert_ne!(&body["checked_at"], checked_at);
}

#[tokio::test]
async fn metrics_report_basic_process_figures_and_no_internals() {
    let stack = TestStack::new().await;
    let base = serve_health(stack.context().await).await;
    let (status, first) = get(&base, "/api/v1/health/metrics").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cold_start"], true);
    let (_, report) = get(&base, "/health").await;
    assert_eq!(first["version"], report["version"], "the version /health reports");
    assert!(first["uptime"].as_f64().is_some_and(|u| u >= 0.0));
    assert!(first["memory"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(first["cpu"]["user_ms"].is_u64());
    let (_, second) = get(&base, "/api/v1/health/metrics").await;
    assert_eq!(second["cold_start"], false);
    // No function identity or traffic figures, in or out of Lambda; the limiter's figures only
    // outside Lambda (this process), where there is no CloudWatch to read them from.
    let mut fields: Vec<&str> = second.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["cold_start", "cpu", "memory", "rate_limiter", "timestamp", "uptime", "version"], "{second}");
}
