//! The webhook function against the local stack: deliveries signed here with Svix's scheme,
//! applied to the users table exactly once and in order, with nothing written on any rejection.

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use baatcheet_shared::AppContext;
use baatcheet_tests::clerk::{self, Delivery, deleted_event, now_ms, unique_user, user_event};
use baatcheet_tests::{TestStack, template};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use tower::ServiceExt;

type Item = HashMap<String, AttributeValue>;

async fn setup() -> (TestStack, AppContext, Router) {
    let stack = TestStack::with_secret(json!({"CLERK_WEBHOOK_SECRET": clerk::WEBHOOK_SECRET})).await;
    let ctx = stack.context().await;
    let router = webhook::router(ctx.clone()).expect("the webhook starts");
    (stack, ctx, router)
}

async fn send(router: &Router, req: http::Request<axum::body::Body>) -> (u16, http::HeaderMap, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn deliver(router: &Router, d: &Delivery) -> (u16, Value) {
    let (status, _, body) = send(router, d.request(clerk::WEBHOOK_SECRET)).await;
    (status, body)
}

async fn user(ctx: &AppContext, clerk_id: &str) -> Option<Item> {
    let out = ctx
        .dynamo
        .get_item()
        .table_name(&ctx.config.tables.users)
        .key("pk", AttributeValue::S(clerk_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

async fn delivery_record(ctx: &AppContext, svix_id: &str) -> Option<Item> {
    let out = ctx
        .dynamo
        .get_item()
        .table_name(ctx.config.var(webhook::DELIVERIES_TABLE).expect("the deliveries table"))
        .key("pk", AttributeValue::S(svix_id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn user_created_is_stored_with_primary_email_role_and_tier() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let at = now_ms();
    let d = Delivery::new(&user_event("user.created", &id, at, "Ayesha", "moderator", "pro"));
    assert_eq!(deliver(&router, &d).await, (200, json!({"received": true})));

    let u = user(&ctx, &id).await.expect("user stored");
    assert_eq!(s(&u, "email"), Some(format!("{id}@example.test").as_str()), "primary, not first, address");
    assert_eq!((s(&u, "first_name"), s(&u, "last_name")), (Some("Ayesha"), Some("Test")));
    assert_eq!(s(&u, "image_url"), Some("https://img.clerk.com/test"));
    assert_eq!((s(&u, "role"), s(&u, "tier")), (Some("moderator"), Some("pro")));
    assert_eq!((n(&u, "created_at"), n(&u, "updated_at")), (Some(at - 1000), Some(at)));
    assert_eq!(n(&u, "revision"), Some(1));
    assert!(s(&u, "user_id").unwrap().starts_with("usr_"));

    let rec = delivery_record(&ctx, &d.id).await.expect("delivery recorded");
    assert_eq!(s(&rec, "event_type"), Some("user.created"));
    let ttl = n(&rec, "expires_at").unwrap() - clerk::now();
    assert!((29 * 86400..=30 * 86400).contains(&ttl), "TTL {ttl}");
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_without_a_second_write() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let mut d = Delivery::new(&user_event("user.created", &id, now_ms(), "First", "user", "free"));
    assert_eq!(deliver(&router, &d).await.0, 200);
    // Svix retries with the same id; even a (validly signed) different body is not applied.
    d.body = user_event("user.updated", &id, now_ms() + 5000, "Second", "admin", "enterprise").to_string();
    assert_eq!(deliver(&router, &d).await, (200, json!({"received": true})));
    let u = user(&ctx, &id).await.unwrap();
    assert_eq!((s(&u, "first_name"), s(&u, "role"), n(&u, "revision")), (Some("First"), Some("user"), Some(1)));
}

#[tokio::test]
async fn an_older_event_never_overwrites_newer_data() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let t = now_ms();
    for (at, name, role) in [(t, "v1", "user"), (t + 2000, "v3", "admin"), (t + 1000, "v2", "moderator")] {
        let d = Delivery::new(&user_event("user.updated", &id, at, name, role, "pro"));
        assert_eq!(deliver(&router, &d).await.0, 200, "{name}");
        if name == "v2" {
            assert_eq!(s(&delivery_record(&ctx, &d.id).await.unwrap(), "outcome"), Some("stale"));
        }
    }
    let u = user(&ctx, &id).await.unwrap();
    assert_eq!((s(&u, "first_name"), s(&u, "role"), n(&u, "updated_at")), (Some("v3"), Some("admin"), Some(t + 2000)));
    assert_eq!(n(&u, "revision"), Some(2));
    // An equal timestamp is not newer either.
    let d = Delivery::new(&user_event("user.updated", &id, t + 2000, "same", "user", "free"));
    assert_eq!(deliver(&router, &d).await.0, 200);
    assert_eq!(s(&user(&ctx, &id).await.unwrap(), "first_name"), Some("v3"));
}

#[tokio::test]
async fn fifty_concurrent_duplicates_make_one_write() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let d = Delivery::new(&user_event("user.created", &id, now_ms(), "Once", "user", "pro"));
    let results = futures::future::join_all((0..50).map(|_| deliver(&router, &d))).await;
    assert!(results.iter().all(|r| *r == (200, json!({"received": true}))), "{results:?}");
    let u = user(&ctx, &id).await.unwrap();
    assert_eq!(n(&u, "revision"), Some(1), "exactly one write");
    assert!(delivery_record(&ctx, &d.id).await.is_some());
}

#[tokio::test]
async fn concurrent_updates_in_any_order_keep_the_newest() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let t = now_ms();
    let ds: Vec<_> = (0..20)
        .map(|i| Delivery::new(&user_event("user.updated", &id, t + i, &format!("v{i}"), "user", "free")))
        .collect();
    let results = futures::future::join_all(ds.iter().rev().map(|d| deliver(&router, d))).await;
    assert!(results.iter().all(|r| r.0 == 200));
    let u = user(&ctx, &id).await.unwrap();
    assert_eq!((s(&u, "first_name"), n(&u, "updated_at")), (Some("v19"), Some(t + 19)));
}

#[tokio::test]
async fn bad_signatures_and_headers_are_400_with_nothing_written() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let body = user_event("user.created", &id, now_ms(), "X", "admin", "pro");
    let good = Delivery::new(&body);
    let stale = Delivery { timestamp: clerk::now() - 301, ..Delivery::new(&body) };
    let future = Delivery { timestamp: clerk::now() + 301, ..Delivery::new(&body) };
    let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    let mut cases: Vec<(&str, http::Request<axum::body::Body>)> = vec![
        ("wrong secret", good.request(other_secret)),
        ("stale timestamp", stale.request(clerk::WEBHOOK_SECRET)),
        ("future timestamp", future.request(clerk::WEBHOOK_SECRET)),
    ];
    let mut tampered = good.request(clerk::WEBHOOK_SECRET);
    *tampered.body_mut() = axum::body::Body::from(good.body.replace("\"admin\"", "\"user\""));
    cases.push(("tampered body", tampered));
    let mut reformatted = good.request(clerk::WEBHOOK_SECRET);
    *reformatted.body_mut() = axum::body::Body::from(format!("{} ", good.body));
    cases.push(("bytes changed (whitespace)", reformatted));
    for header in ["svix-id", "svix-timestamp", "svix-signature"] {
        let mut r = good.request(clerk::WEBHOOK_SECRET);
        r.headers_mut().remove(header);
        cases.push(("missing header", r));
    }
    for (header, value) in [
        ("svix-signature", "v1,"),
        ("svix-signature", "v2,AAAA v1,!!!"),
        ("svix-signature", "garbage"),
        ("svix-timestamp", "yesterday"),
        ("svix-id", "has space"),
    ] {
        let mut r = good.request(clerk::WEBHOOK_SECRET);
        r.headers_mut().insert(header, value.parse().unwrap());
        cases.push(("malformed header", r));
    }
    for (what, req) in cases {
        let (status, headers, body) = send(&router, req).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json", "{what}");
        assert_eq!(body["type"], "https://baatcheet.app/problems/bad-request");
    }
    assert!(user(&ctx, &id).await.is_none(), "nothing written");
    for d in [&good, &stale, &future] {
        assert!(delivery_record(&ctx, &d.id).await.is_none());
    }
    // The genuine delivery still applies afterwards.
    assert_eq!(deliver(&router, &good).await.0, 200);
}

#[tokio::test]
async fn unbranded_headers_and_several_signatures_are_accepted() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let d = Delivery::new(&user_event("user.created", &id, now_ms(), "U", "user", "free"));
    let req = http::Request::post(webhook::PATH)
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", d.timestamp.to_string())
        // During secret rotation Svix signs with the old and the new secret.
        .header(
            "webhook-signature",
            format!("{} {}", d.signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), d.signature(clerk::WEBHOOK_SECRET)),
        )
        .body(axum::body::Body::from(d.body.clone()))
        .unwrap();
    assert_eq!(send(&router, req).await.0, 200);
    assert!(user(&ctx, &id).await.is_some());
}

#[tokio::test]
async fn a_missing_webhook_secret_is_a_500_never_a_silent_accept() {
    let stack = TestStack::new().await;
    let ctx = stack.context().await;
    let router = webhook::router(ctx.clone()).expect("the webhook starts");
    let id = unique_user();
    let d = Delivery::new(&user_event("user.created", &id, now_ms(), "X", "user", "free"));
    let (status, headers, body) = send(&router, d.request(clerk::WEBHOOK_SECRET)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["detail"], "An unexpected error occurred.", "no internals in the body");
    assert!(user(&ctx, &id).await.is_none());

    let bad = TestStack::with_secret(json!({"CLERK_WEBHOOK_SECRET": "whsec_***not base64***"})).await;
    let router = webhook::router(bad.context().await).expect("the webhook starts");
    assert_eq!(send(&router, d.request(clerk::WEBHOOK_SECRET)).await.0, 500);
}

#[tokio::test]
async fn a_storage_failure_is_5xx_and_leaves_nothing_half_written() {
    let (stack, ctx, router) = setup().await;
    let id = unique_user();
    let d = Delivery::new(&user_event("user.created", &id, now_ms(), "X", "admin", "pro"));
    // The users table is gone: the user write fails, so the delivery must not be recorded,
    // or Svix's retry would be taken for a duplicate and the update lost.
    ctx.dynamo.delete_table().table_name(&ctx.config.tables.users).send().await.unwrap();
    let (status, body) = deliver(&router, &d).await;
    assert!(status >= 500, "{status} {body}");
    assert!(delivery_record(&ctx, &d.id).await.is_none(), "delivery recorded without its user write");

    let users = template().tables.iter().find(|t| t.logical_id == "UsersTable").unwrap();
    baatcheet_local::stack::create_table(&ctx.dynamo, users, &ctx.config.tables.users).await.unwrap();
    assert_eq!(deliver(&router, &d).await.0, 200, "Svix's retry applies");
    assert_eq!(s(&user(&ctx, &id).await.unwrap(), "role"), Some("admin"));
    drop(stack);
}

#[tokio::test]
async fn user_deleted_marks_the_user_and_nothing_resurrects_them() {
    let (_stack, ctx, router) = setup().await;
    let id = unique_user();
    let t = now_ms();
    assert_eq!(deliver(&router, &Delivery::new(&user_event("user.created", &id, t, "X", "admin", "pro"))).await.0, 200);
    assert_eq!(deliver(&router, &Delivery::new(&deleted_event(&id))).await.0, 200);
    let u = user(&ctx, &id).await.unwrap();
    assert_eq!(u.get("deleted").and_then(|v| v.as_bool().ok()), Some(&true));
    assert!(n(&u, "deleted_at").is_some());
    for pii in ["email", "first_name", "last_name", "image_url"] {
        assert!(!u.contains_key(pii), "{pii} kept after deletion");
    }
    // A late update (even a newer one) and a replayed deletion change nothing.
    assert_eq!(
        deliver(&router, &Delivery::new(&user_event("user.updated", &id, t + 10_000, "Y", "user", "free"))).await.0,
        200
    );
    assert_eq!(deliver(&router, &Delivery::new(&deleted_event(&id))).await.0, 200);
    let after = user(&ctx, &id).await.unwrap();
    assert_eq!(after.get("deleted").and_then(|v| v.as_bool().ok()), Some(&true));
    assert!(!after.contains_key("email"));
    assert_eq!(n(&after, "revision"), n(&u, "revision"));

    // Deleting a user never seen leaves a tombstone, so a late user.created cannot create them.
    let ghost = unique_user();
    assert_eq!(deliver(&router, &Delivery::new(&deleted_event(&ghost))).await.0, 200);
    assert_eq!(
        deliver(&router, &Delivery::new(&user_event("user.created", &ghost, t, "G", "user", "free"))).await.0,
        200
    );
    assert_eq!(user(&ctx, &ghost).await.unwrap().get("deleted").and_then(|v| v.as_bool().ok()), Some(&true));
}

#[tokio::test]
async fn other_events_are_acknowledged_and_ignored() {
    let (_stack, ctx, router) = setup().await;
    let d = Delivery::new(
        &json!({"type": "session.created", "object": "event", "data": {"id": "sess_1", "user_id": "user_x"}}),
    );
    assert_eq!(deliver(&router, &d).await, (200, json!({"received": true})));
    assert!(user(&ctx, "user_x").await.is_none());
    assert!(user(&ctx, "sess_1").await.is_none());
}

#[tokio::test]
async fn unusable_payloads_and_oversized_bodies_are_rejected() {
    let (_stack, _ctx, router) = setup().await;
    let (status, body) =
        deliver(&router, &Delivery::new(&json!({"type": "user.created", "data": {"id": "user_1"}}))).await;
    assert_eq!(status, 400, "{body}");
    let huge = Delivery {
        body: format!("{{\"pad\":\"{}\"}}", "x".repeat(webhook::MAX_BODY_BYTES)),
        ..Delivery::new(&json!({}))
    };
    let (status, headers, _) = send(&router, huge.request(clerk::WEBHOOK_SECRET)).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_event_fixture_applies_when_freshly_signed() {
    // events/clerk-webhook.json carries a real Svix signature from its recorded time (so it is
    // refused as stale); re-signed now with the test secret, the same event applies.
    let (_stack, ctx, _router) = setup().await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/clerk-webhook.json")).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let d = Delivery {
        id: "msg_fixture_resigned".into(),
        timestamp: clerk::now(),
        body: event["body"].as_str().unwrap().into(),
    };
    for (k, v) in [
        ("svix-id", d.id.clone()),
        ("svix-timestamp", d.timestamp.to_string()),
        ("svix-signature", d.signature(clerk::WEBHOOK_SECRET)),
    ] {
        event["headers"][k] = json!(v);
        event["multiValueHeaders"][k] = json!([v]);
    }
    // SAFETY: every test in this binary that builds lambda requests wants this same value.
    unsafe { std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true") };
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (parts, body) = req.into_parts();
    let res = webhook::router(ctx.clone())
        .expect("the webhook starts")
        .oneshot(http::Request::from_parts(parts, axum::body::Body::from(body.to_vec())))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let u = user(&ctx, "user_2pLXbF0fixture0000000000").await.unwrap();
    assert_eq!((s(&u, "email"), s(&u, "tier")), (Some("ayesha@example.org"), Some("pro")));
}

#[tokio::test]
async fn the_local_gateway_routes_the_webhook() {
    let (_stack, ctx, _router) = setup().await;
    let base = baatcheet_tests::spawn_gateway(&ctx).await;
    let id = unique_user();
    let d = Delivery::new(&user_event("user.created", &id, now_ms(), "G", "user", "free"));
    let res = d.post(&base, clerk::WEBHOOK_SECRET).await;
    assert_eq!(res.status(), 200);
    baatcheet_tests::assert_security_headers(res.headers());
    assert!(user(&ctx, &id).await.is_some());
}
