//! template.yaml's IAM grants against what each function's code really calls.
//!
//! Static: every function's policy statements name no wildcard action or resource, and nothing
//! this test cannot read (managed policies, SAM policy templates, NotAction, Deny).
//! Runtime: each function is built with its AWS clients behind a recording proxy and driven
//! through its `events/*.json` fixtures and the flows listed for it in [`DRIVERS`]; every
//! (action, table/index/secret) its code needed must be granted, and every DynamoDB and Secrets
//! Manager grant must have been needed: exact both ways.
//!
//! A new function in template.yaml fails here until it has an entry in [`DRIVERS`].

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_tests::TestStack;
use baatcheet_tests::chat;
use baatcheet_tests::clerk::{self, Delivery, JwksServer, deleted_event, keys, user_event};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::iam::{Action, Resource, TemplateGrants, compare, template_grants_from_str};
use baatcheet_tests::probe::Probe;
use futures::future::BoxFuture;
use serde_json::json;

/// The function's own stack: its secret and settings.
type StackFn = fn() -> BoxFuture<'static, TestStack>;
/// Requests beyond the function's route fixtures that reach each of its data paths; they assert
/// that each path really ran (status, stored outcome), so a grant is exercised, not guessed.
type FlowsFn = fn(Probe) -> BoxFuture<'static, ()>;

struct Driver {
    function: &'static str,
    stack: StackFn,
    flows: FlowsFn,
}

/// Every function of template.yaml and what drives it. Its `events/*.json` fixtures are always
/// fed through it first; `flows` add what they cannot reach (signed deliveries, rare branches).
/// If a grant is needed only by a rare path, drive that path here rather than loosen the check.
/// An entry may come before its function reaches template.yaml (branches merge in any order): it
/// is used once the template declares the function.
const DRIVERS: &[Driver] = &[
    Driver { function: "HealthFunction", stack: standard_stack, flows: health_flows },
    Driver { function: "WebhookFunction", stack: webhook_stack, flows: webhook_flows },
    // Serves embedded documents only: its fixtures are all there is, and all it calls is the
    // global rate limit.
    Driver { function: "DocsFunction", stack: standard_stack, flows: no_flows },
    Driver { function: "ChatFunction", stack: chat_stack, flows: chat_flows },
];

/// A fake Clerk (JWKS and Backend API) and a fake upstream, kept for the rest of the test process:
/// the chat function is driven once, and its stack has to reach them for the whole drive.
fn chat_stack() -> BoxFuture<'static, TestStack> {
    Box::pin(async {
        let clerk = Box::leak(Box::new(JwksServer::start(&[&keys()[0]]).await));
        let fake = Box::leak(Box::new(FakeUpstream::start().await));
        fake.set_default(Behavior::ok().chunks(2));
        let models = json!([{"id": "text", "context_length": 32768}]);
        let mut stack = chat::stack_for(json!([fake.provider("primary", &["k1"], models)]), clerk, &[]).await;
        stack.env.insert("CLERK_API_URL".into(), clerk.url.clone());
        CHAT_CLERK.set(clerk).ok();
        stack
    })
}

static CHAT_CLERK: std::sync::OnceLock<&'static JwksServer> = std::sync::OnceLock::new();

fn authed(
    method: &str,
    path: &str,
    clerk_id: &str,
    body: Option<serde_json::Value>,
) -> http::Request<axum::body::Body> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", clerk::token(&keys()[0], clerk_id)));
    match body {
        Some(v) => b.header("content-type", "application/json").body(axum::body::Body::from(v.to_string())),
        None => b.body(axum::body::Body::empty()),
    }
    .expect("request")
}

/// Every data path of the chat function: a first token (the user created), a completion in a new
/// conversation and a follow-up (the context read), the list (by-user index), one conversation,
/// search (batch reads), rename, delete (batch deletes), and an admin's change written at once.
fn chat_flows(p: Probe) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let me = clerk::unique_user();
        let send = |m: &'static str, path: String, body: Option<serde_json::Value>| {
            let p = p.clone();
            let me = me.clone();
            async move { p.send(authed(m, &path, &me, body)).await }
        };
        let (status, first) =
            send("POST", "/api/v1/chat/completions".into(), Some(json!({"message": "hello there", "stream": false})))
                .await;
        assert_eq!(status, 200, "completion: {first}");
        let id = first["conversation_id"].as_str().expect("conversation id").to_string();
        let (status, body) = send(
            "POST",
            "/api/v1/chat/completions".into(),
            Some(json!({"message": "and again", "conversation_id": id, "stream": false})),
        )
        .await;
        assert_eq!(status, 200, "follow-up: {body}");
        let (status, body) = send("GET", "/api/v1/conversations".into(), None).await;
        assert_eq!(status, 200, "list: {body}");
        let (status, body) = send("GET", format!("/api/v1/conversations/{id}"), None).await;
        assert_eq!(status, 200, "get: {body}");
        let (status, body) = send("GET", "/api/v1/conversations/search?q=hello".into(), None).await;
        assert_eq!(status, 200, "search: {body}");
        // A word only a message holds: a content match, whose conversations are batch-read.
        let (status, body) = send("GET", "/api/v1/conversations/search?q=again".into(), None).await;
        assert_eq!((status, body["results"].as_array().map(Vec::len)), (200, Some(1)), "content search: {body}");
        let (status, body) =
            send("PATCH", format!("/api/v1/conversations/{id}"), Some(json!({"title": "Renamed"}))).await;
        assert_eq!(status, 200, "rename: {body}");
        let (status, body) = send("DELETE", format!("/api/v1/conversations/{id}"), None).await;
        assert_eq!(status, 204, "delete: {body}");

        // An admin (role set in the table past the proxy, as the webhook would have) changes a tier.
        let admin = clerk::unique_user();
        baatcheet_shared::aws::dynamodb(&p.stack.sdk)
            .put_item()
            .table_name(&p.stack.env["USERS_TABLE"])
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(admin.clone()))
            .item("user_id", aws_sdk_dynamodb::types::AttributeValue::S(format!("usr_{admin}")))
            .item("role", aws_sdk_dynamodb::types::AttributeValue::S("admin".into()))
            .item("tier", aws_sdk_dynamodb::types::AttributeValue::S("pro".into()))
            // Every write of the users table counts itself; an item without a revision is corrupt.
            .item("revision", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
            .send()
            .await
            .expect("admin seeded");
        let clerk = CHAT_CLERK.get().expect("chat stack started");
        clerk.add_user(&me, "user", "free", clerk::now_ms() - 60_000);
        let (status, body) =
            p.send(authed("PATCH", &format!("/api/v1/admin/users/{me}"), &admin, Some(json!({"tier": "pro"})))).await;
        assert_eq!((status, body["tier"].as_str()), (200, Some("pro")), "admin change: {body}");
    })
}

fn no_flows(_: Probe) -> BoxFuture<'static, ()> {
    Box::pin(async {})
}

fn standard_stack() -> BoxFuture<'static, TestStack> {
    Box::pin(async {
        let mut stack = TestStack::new().await;
        // Generous probes: a queued local endpoint must not turn /health into a 503.
        stack.env.insert("DEPENDENCY_TIMEOUT_MS".into(), "5000".into());
        stack
    })
}

fn webhook_stack() -> BoxFuture<'static, TestStack> {
    Box::pin(async { TestStack::with_secret(json!({"CLERK_WEBHOOK_SECRET": clerk::WEBHOOK_SECRET})).await })
}

/// /health and /ready read every table and the secret; the metrics route is behind the global
/// rate limit (a conditional UpdateItem of the caller's bucket).
fn health_flows(p: Probe) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let (status, body) = p.get("/health").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("healthy")), "/health: {body}");
        let (status, body) = p.get("/ready").await;
        assert_eq!(status, 200, "/ready: {body}");
        let (status, body) = p.get("/api/v1/health/metrics").await;
        assert_eq!(status, 200, "metrics: {body}");
    })
}

/// Signed deliveries down every branch of the webhook's store: applied (one TransactWriteItems:
/// the delivery record's Put and the user's Update), a duplicate (the transaction refused), an
/// older event (the delivery recorded alone with PutItem), a deletion (the user's Update) and the
/// erasure of the user's data (their tombstone read, their items found through the index and
/// batch-deleted, their buckets batch-deleted, the end recorded).
fn webhook_flows(p: Probe) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let id = clerk::unique_user();
        let at = clerk::now_ms();
        let ok = (200, json!({"received": true}));
        let created = Delivery::new(&user_event("user.created", &id, at, "Ayesha", "user", "pro"));
        assert_eq!(p.send(created.request(clerk::WEBHOOK_SECRET)).await, ok, "user.created");
        assert_eq!(delivery_outcome(&p, &created.id).await.as_deref(), Some("applied"));
        assert_eq!(p.send(created.request(clerk::WEBHOOK_SECRET)).await, ok, "the same delivery again");

        let older = Delivery::new(&user_event("user.updated", &id, at - 5000, "Old", "user", "free"));
        assert_eq!(p.send(older.request(clerk::WEBHOOK_SECRET)).await, ok, "an older user.updated");
        assert_eq!(delivery_outcome(&p, &older.id).await.as_deref(), Some("stale"));

        // The user's data, written past the proxy, for the erasure to find and delete.
        let item = baatcheet_shared::aws::dynamodb(&p.stack.sdk)
            .get_item()
            .table_name(&p.stack.env["USERS_TABLE"])
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
            .consistent_read(true)
            .send()
            .await
            .expect("user readable");
        let user_id = item.item().and_then(|i| i.get("user_id")).and_then(|v| v.as_s().ok()).expect("user_id").clone();
        baatcheet_tests::seed::conversations(&p.stack, &user_id, 1, 2).await;
        // An open-stream lease left by a stream (the erasure finds it by partition and deletes it).
        let lease = std::collections::HashMap::from([
            ("pk".to_string(), AttributeValue::S(user_id.clone())),
            ("sk".to_string(), AttributeValue::S("slot#0".into())),
            ("expires_at".to_string(), AttributeValue::N((clerk::now() + 3600).to_string())),
        ]);
        baatcheet_tests::seed::batch_put(
            &baatcheet_shared::aws::dynamodb(&p.stack.sdk),
            &p.stack.env["STREAM_LEASES_TABLE"],
            vec![lease],
        )
        .await;

        let deleted = Delivery::new(&deleted_event(&id));
        assert_eq!(p.send(deleted.request(clerk::WEBHOOK_SECRET)).await, ok, "user.deleted");
        assert_eq!(delivery_outcome(&p, &deleted.id).await.as_deref(), Some("applied"));
        let left = baatcheet_tests::seed::scan_all(&p.stack).await;
        let mentions = left["CONVERSATIONS_TABLE"].iter().filter(|i| baatcheet_tests::seed::mentions(i, &user_id));
        assert_eq!(mentions.count(), 0, "the erasure ran");
        assert_eq!(
            left["STREAM_LEASES_TABLE"].iter().filter(|i| baatcheet_tests::seed::mentions(i, &user_id)).count(),
            0
        );
    })
}

/// The stored outcome of a delivery, read past the proxy (the test's reads are not the function's).
async fn delivery_outcome(p: &Probe, svix_id: &str) -> Option<String> {
    let out = baatcheet_shared::aws::dynamodb(&p.stack.sdk)
        .get_item()
        .table_name(&p.stack.env["WEBHOOK_DELIVERIES_TABLE"])
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(svix_id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("delivery record readable");
    out.item?.get("outcome")?.as_s().ok().cloned()
}

fn grants() -> TemplateGrants {
    let path = baatcheet_local::template::default_path();
    template_grants_from_str(&std::fs::read_to_string(&path).expect("template.yaml is readable"))
}

/// What is wrong with the list of drivers against the functions template.yaml declares: a
/// function without a driver, or with two. (A misspelt entry shows as its function's missing one.)
fn coverage<'a>(declared: impl IntoIterator<Item = &'a str>, listed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in declared {
        match listed.iter().filter(|l| **l == f).count() {
            0 => out.push(format!(
                "template.yaml declares {f}, which DRIVERS in tests/iam.rs does not list: add its Driver (the \
                 requests that reach each of its data paths) so its IAM grants are checked against its code"
            )),
            1 => {}
            n => out.push(format!("DRIVERS in tests/iam.rs lists {f} {n} times")),
        }
    }
    out
}

async fn drive(driver: &Driver) -> Result<Probe, String> {
    let probe = Probe::start(driver.function, (driver.stack)().await).await?;
    probe.drive_fixtures().await;
    (driver.flows)(probe.clone()).await;
    Ok(probe)
}

#[test]
fn no_function_policy_names_a_wildcard_or_an_uncheckable_grant() {
    let grants = grants();
    assert!(!grants.functions.is_empty(), "template.yaml declares no function");
    assert!(grants.problems.is_empty(), "template.yaml's IAM policies:\n  {}", grants.problems.join("\n  "));
}

#[test]
fn every_template_function_has_a_driver() {
    let grants = grants();
    let listed: Vec<_> = DRIVERS.iter().map(|d| d.function).collect();
    let problems = coverage(grants.functions.keys().map(String::as_str), &listed);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_function_without_a_driver_is_named() {
    let problems = coverage(
        ["HealthFunction", "ChatFunction", "WebhookFunction"],
        &["HealthFunction", "ChatFuntcion", "WebhookFunction", "WebhookFunction"],
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("template.yaml declares ChatFunction, which DRIVERS in tests/iam.rs does not list")
    );
    assert_eq!(problems[1], "DRIVERS in tests/iam.rs lists WebhookFunction 2 times");
}

#[tokio::test]
async fn every_function_is_granted_exactly_what_its_code_calls() {
    let grants = grants();
    let mut problems = Vec::new();
    for (function, granted) in &grants.functions {
        let Some(driver) = DRIVERS.iter().find(|d| d.function == function) else {
            problems.extend(coverage([function.as_str()], &[]));
            continue;
        };
        match drive(driver).await {
            Ok(probe) => {
                let (used, unnamed) = probe.used();
                problems.extend(unnamed);
                problems.extend(compare(function, granted, &used));
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "template.yaml's IAM grants disagree with the code:\n  {}", problems.join("\n  "));
}

/// The check above can fail: the health function really driven, against its grants with one
/// taken away and one added.
#[tokio::test]
async fn a_missing_or_an_unused_grant_is_named() {
    let health = DRIVERS.iter().find(|d| d.function == "HealthFunction").expect("health is driven");
    let (used, unnamed) = drive(health).await.expect("health builds").used();
    assert!(unnamed.is_empty(), "{unnamed:?}");
    let mut granted = grants().functions.remove("HealthFunction").expect("template.yaml declares HealthFunction");
    let update = (Action("dynamodb:UpdateItem".into()), Resource::of("RateLimitsTable"));
    assert!(granted.remove(&update), "template.yaml no longer grants HealthFunction {update:?}: pick another grant");
    granted.insert((Action("dynamodb:DeleteItem".into()), Resource::of("UsersTable")));
    assert_eq!(
        compare("HealthFunction", &granted, &used),
        [
            "HealthFunction calls dynamodb:UpdateItem on RateLimitsTable, which template.yaml does not grant",
            "HealthFunction is granted dynamodb:DeleteItem on UsersTable, which its code never called while driven: \
             remove the grant, or drive the path that needs it (tests/iam.rs, DRIVERS)",
        ]
    );
}
