//! An operator changes a user's role or tier: `PATCH /api/v1/admin/users/{id}` writes Clerk's
//! `public_metadata` through its Backend API (a fake Clerk on 127.0.0.1 that records requests), then
//! the users table at once; the new limits apply, the webhook that follows changes nothing further,
//! an older one cannot undo it, and Clerk's failures leave the table untouched.

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_tests::chat::{Caller, ChatHarness, chat_model, fast_config, rate_limit};
use baatcheet_tests::clerk::{self, Delivery};
use baatcheet_tests::fake_upstream::FakeUpstream;
use baatcheet_tests::{dead_endpoint, http, spawn_gateway};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

struct Gw {
    h: ChatHarness,
    base: String,
    _fake: FakeUpstream,
}

impl Gw {
    async fn new(env: &[(&str, &str)]) -> Self {
        let fake = FakeUpstream::start().await;
        let h = ChatHarness::with(json!([fake.provider("p", &["k"], chat_model("m"))]), fast_config(), env, None).await;
        let base = spawn_gateway(&h.ctx).await;
        Self { h, base, _fake: fake }
    }

    fn req(&self, method: Method, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        http().request(method, format!("{}{path}", self.base)).header("authorization", who.bearer())
    }

    async fn patch_user(&self, admin: &Caller, clerk_id: &str, body: Value) -> reqwest::Response {
        self.req(Method::PATCH, &format!("/api/v1/admin/users/{clerk_id}"), admin).json(&body).send().await.unwrap()
    }

    async fn complete(&self, who: &Caller) -> reqwest::Response {
        self.req(Method::POST, "/api/v1/chat/completions", who)
            .json(&json!({"message": "hi", "stream": false}))
            .send()
            .await
            .unwrap()
    }

    /// The user's item in the users table.
    async fn row(&self, clerk_id: &str) -> HashMap<String, AttributeValue> {
        self.h
            .ctx
            .dynamo
            .get_item()
            .table_name(&self.h.ctx.config.tables.users)
            .key("pk", AttributeValue::S(clerk_id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("user row")
    }

    /// A signed delivery to the webhook function through the gateway, as Svix sends it.
    async fn deliver(&self, event: &Value) {
        let res = Delivery::new(event).post(&self.base, clerk::WEBHOOK_SECRET).await;
        assert_eq!(res.status(), 200, "webhook delivery");
    }
}

fn s<'a>(row: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    row.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn n(row: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    row.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

async fn admin(gw: &Gw) -> Caller {
    let mut a = gw.h.caller("admin").await;
    gw.h.set_role(&mut a, "admin", "free").await;
    a
}

#[tokio::test]
async fn an_admin_upgrade_through_clerk_applies_the_new_limit_and_no_webhook_undoes_it() {
    let gw = Gw::new(&[("RATE_LIMIT_CHAT_FREE", "2/1h"), ("RATE_LIMIT_CHAT_PRO", "10/1h")]).await;
    let user = gw.h.caller("user").await;
    let admin = admin(&gw).await;

    let res = gw.complete(&user).await;
    assert_eq!(res.status(), 200);
    assert_eq!(rate_limit(res.headers()).0, "\"chat\";q=2;w=3600");

    let res = gw.patch_user(&admin, &user.clerk_id, json!({"tier": "pro"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["clerk_id"].as_str(), body["tier"].as_str()), (Some(user.clerk_id.as_str()), Some("pro")));
    assert_eq!(body["role"], "user", "only what was asked changes");
    assert_eq!(body["user_id"], user.id());

    // Clerk got exactly the metadata change, authenticated with the secret key.
    let sent = gw.h.clerk.metadata_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].user_id, user.clerk_id);
    assert_eq!(sent[0].authorization.as_deref(), Some(format!("Bearer {}", clerk::SECRET_KEY).as_str()));
    assert_eq!(sent[0].body, json!({"public_metadata": {"tier": "pro"}}));
    let at_clerk = gw.h.clerk.user(&user.clerk_id).unwrap();
    assert_eq!(at_clerk["public_metadata"], json!({"role": "user", "tier": "pro"}), "Clerk merged it");

    // The table holds Clerk's user at once, with Clerk's updated_at.
    let row = gw.row(&user.clerk_id).await;
    assert_eq!((s(&row, "tier"), s(&row, "source")), (Some("pro"), Some("admin")));
    assert_eq!(n(&row, "updated_at"), at_clerk["updated_at"].as_i64());
    assert_eq!(body["updated_at"], at_clerk["updated_at"]);

    // The new limit applies to the user's next request (this instance dropped its cached user);
    // the share of the window already used carries over.
    let res = gw.complete(&user).await;
    assert_eq!(res.status(), 200);
    let (policy, (_, remaining, _)) = rate_limit(res.headers());
    assert_eq!(policy, "\"chat\";q=10;w=3600");
    assert!((3..=5).contains(&remaining), "{remaining}");
    for _ in 0..2 {
        assert_eq!(gw.complete(&user).await.status(), 200, "beyond what the free tier allows");
    }

    // The webhook that follows the change carries the same data: nothing further is written.
    let revision = n(&gw.row(&user.clerk_id).await, "revision");
    gw.deliver(&gw.h.clerk.updated_event(&user.clerk_id)).await;
    let row = gw.row(&user.clerk_id).await;
    assert_eq!((n(&row, "revision"), s(&row, "source"), s(&row, "tier")), (revision, Some("admin"), Some("pro")));
    // An older event (delivered late) cannot undo the change.
    let older = at_clerk["updated_at"].as_i64().unwrap() - 5_000;
    gw.deliver(&clerk::user_event("user.updated", &user.clerk_id, older, "Old", "user", "free")).await;
    let row = gw.row(&user.clerk_id).await;
    assert_eq!((n(&row, "revision"), s(&row, "tier")), (revision, Some("pro")));
    // A later change at Clerk (made elsewhere) still comes through the webhook.
    let later = at_clerk["updated_at"].as_i64().unwrap() + 5_000;
    gw.deliver(&clerk::user_event("user.updated", &user.clerk_id, later, "New", "moderator", "enterprise")).await;
    let row = gw.row(&user.clerk_id).await;
    assert_eq!(
        (s(&row, "role"), s(&row, "tier"), s(&row, "source")),
        (Some("moderator"), Some("enterprise"), Some("webhook"))
    );
}

#[tokio::test]
async fn admin_routes_are_for_admins_and_clerk_failures_change_nothing() {
    let gw = Gw::new(&[]).await;
    let user = gw.h.caller("user").await;
    let admin = admin(&gw).await;
    let path = format!("/api/v1/admin/users/{}", user.clerk_id);

    // Only admins: a user is forbidden (and Clerk is never asked).
    assert_eq!(gw.req(Method::GET, &path, &user).send().await.unwrap().status(), 403);
    assert_eq!(gw.patch_user(&user, &admin.clerk_id, json!({"role": "admin"})).await.status(), 403);

    let res = gw.req(Method::GET, &path, &admin).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["role"].as_str(), body["tier"].as_str()), (Some("user"), Some("free")));
    assert_eq!(body["email"], format!("{}@example.test", user.clerk_id));

    // Bad input: 422 before Clerk is asked.
    for (body, pointer) in
        [(json!({}), ""), (json!({"tier": "platinum"}), "/tier"), (json!({"tier": "pro", "x": 1}), "/x")]
    {
        let res = gw.patch_user(&admin, &user.clerk_id, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["pointer"], pointer, "{body}");
    }
    let res = gw.patch_user(&admin, "not-a-clerk-id", json!({"tier": "pro"})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["pointer"], "/path/id");
    assert!(gw.h.clerk.metadata_requests().is_empty());

    // Unknown users: 404 from the table (GET) and from Clerk (PATCH).
    let ghost = "user_NoSuchUser123";
    assert_eq!(
        gw.req(Method::GET, &format!("/api/v1/admin/users/{ghost}"), &admin).send().await.unwrap().status(),
        404
    );
    assert_eq!(gw.patch_user(&admin, ghost, json!({"tier": "pro"})).await.status(), 404);
    assert_eq!(gw.h.clerk.metadata_requests().len(), 1);

    // Clerk fails: 502 (its error) or 503 (it is busy), and the table is not changed.
    let before = gw.row(&user.clerk_id).await;
    for (status, want) in [(500, 502), (401, 502), (429, 503), (503, 502)] {
        gw.h.clerk.fail_metadata_with(Some(status));
        let res = gw.patch_user(&admin, &user.clerk_id, json!({"tier": "enterprise"})).await;
        assert_eq!(res.status(), want, "Clerk answered {status}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        if want == 503 {
            assert!(res.headers().contains_key("retry-after"));
        }
        let text = res.text().await.unwrap();
        assert!(!text.contains(clerk::SECRET_KEY) && !text.contains("fake_failure"), "{text}");
    }
    gw.h.clerk.fail_metadata_with(None);
    assert_eq!(gw.row(&user.clerk_id).await, before);

    // A deleted user stays deleted: 404, and Clerk is not asked.
    gw.deliver(&clerk::deleted_event(&user.clerk_id)).await;
    let asked = gw.h.clerk.metadata_requests().len();
    assert_eq!(gw.patch_user(&admin, &user.clerk_id, json!({"tier": "pro"})).await.status(), 404);
    assert_eq!(gw.req(Method::GET, &path, &admin).send().await.unwrap().status(), 404);
    assert_eq!(gw.h.clerk.metadata_requests().len(), asked);
}

#[tokio::test]
async fn clerk_unreachable_is_503_and_the_table_is_not_changed() {
    let gw = Gw::new(&[]).await;
    let user = gw.h.caller("user").await;
    let admin = admin(&gw).await;
    let before = gw.row(&user.clerk_id).await;
    // Another instance of the function whose Backend API is down (tokens still verify with the
    // public JWKS).
    let mut config = gw.h.stack.config();
    config.clerk.api_url = format!("http://{}", dead_endpoint().await);
    config.clerk.jwks_url = Some(format!("{}/.well-known/jwks.json", gw.h.clerk.url));
    let ctx = baatcheet_shared::AppContext::new(config, &gw.h.stack.sdk);
    ctx.secrets.fetch().await.unwrap();
    let state = chat::ChatState::new(&ctx, fast_config()).unwrap();
    let base = format!("http://{}", baatcheet_tests::serve(chat::router_with(state, &ctx)).await);
    let res = http()
        .patch(format!("{base}/api/v1/admin/users/{}", user.clerk_id))
        .header("authorization", admin.bearer())
        .json(&json!({"tier": "pro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.json::<Value>().await.unwrap()["status"], 503);
    assert_eq!(gw.row(&user.clerk_id).await, before);
    assert!(gw.h.clerk.metadata_requests().is_empty());
}
