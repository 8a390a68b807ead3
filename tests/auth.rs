//! Clerk authentication against the local stack: real RSA keys, a JWKS server on 127.0.0.1,
//! the users table on the local endpoint, and a router built here with the AuthUser extractor
//! and require_role.

use axum::{Json, Router, routing::get};
use baatcheet_shared::auth::{AuthUser, Role, require_role};
use baatcheet_shared::rate_limit::{Access, RouteAccess};
use baatcheet_shared::{AppContext, request_path};
use baatcheet_tests::clerk::{self, JwksServer, keys, token, unique_user};
use baatcheet_tests::{TestStack, as_client, http, serve};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

/// A stack whose secret has the Clerk secret key and webhook secret, with the JWKS at `jwks`.
async fn stack(jwks: &JwksServer) -> TestStack {
    let mut stack = TestStack::with_secret(
        json!({"CLERK_SECRET_KEY": clerk::SECRET_KEY, "CLERK_WEBHOOK_SECRET": clerk::WEBHOOK_SECRET}),
    )
    .await;
    stack.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    stack.env.insert("CLERK_AUTHORIZED_PARTIES".into(), clerk::AZP.into());
    stack.env.insert("CLERK_API_URL".into(), jwks.url.clone());
    // These tests are about verification: the per-IP limits get their own test below.
    stack.env.insert("RATE_LIMIT_AUTH".into(), "100000/15m".into());
    stack.env.insert("RATE_LIMIT_GLOBAL".into(), "100000/1h".into());
    stack
}

async fn context(stack: &TestStack, tweak: impl FnOnce(&mut baatcheet_shared::Config)) -> AppContext {
    let mut config = stack.config();
    tweak(&mut config);
    let ctx = AppContext::new(config, &stack.sdk);
    ctx.secrets.fetch().await.expect("secret is readable");
    ctx
}

/// `/me` for any user, `/admin` for admins only, `/staff` for moderators and admins.
fn app(ctx: &AppContext) -> Router {
    let me = || get(|user: AuthUser| async move { Json(user) });
    let routes = Router::new()
        .route("/me", me())
        .route("/admin", me().layer(require_role(ctx, &[Role::Admin])))
        .route("/staff", me().layer(require_role(ctx, &[Role::Moderator, Role::Admin])))
        .with_state(ctx.clone());
    as_client(request_path::wrap(routes, ctx, RouteAccess::all(Access::SignedIn)), "198.51.100.20")
}

async fn call(router: &Router, path: &str, token: Option<&str>) -> (u16, http::HeaderMap, Value) {
    let mut req = http::Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = router.clone().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn deliver(ctx: &AppContext, body: &Value) {
    let res = webhook::router(ctx.clone())
        .expect("the webhook starts")
        .oneshot(clerk::Delivery::new(body).request(clerk::WEBHOOK_SECRET))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "webhook delivery");
}

#[tokio::test]
async fn a_valid_token_authenticates_and_creates_the_unknown_user() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let ctx = stack.context().await;
    let router = app(&ctx);
    let sub = unique_user();

    let (status, _, body) = call(&router, "/me", Some(&token(&keys()[0], &sub))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clerk_id"], sub);
    assert_eq!((body["role"].as_str(), body["tier"].as_str()), (Some("user"), Some("free")));
    assert_eq!(body["email"], format!("{sub}@example.test"));
    let user_id = body["user_id"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("usr_"), "{user_id}");

    // The row exists, created from the token.
    let item = ctx
        .dynamo
        .get_item()
        .table_name(&ctx.config.tables.users)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(sub.clone()))
        .send()
        .await
        .unwrap()
        .item
        .expect("user row created");
    assert_eq!(item["source"].as_s().unwrap(), "token");

    // Same user through the __session cookie, and from another instance (no cache): same id.
    let other = context(&stack, |_| {}).await;
    let req = http::Request::get("/me")
        .header("cookie", format!("theme=dark; __session={}", token(&keys()[0], &sub)))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app(&other).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["user_id"], user_id);
}

#[tokio::test]
async fn jwks_is_fetched_once_with_the_secret_key_and_cached() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let ctx = stack.context().await;
    let router = app(&ctx);
    let sub = unique_user();
    // 50 concurrent requests on a cold cache share one fetch; later ones use the cache.
    let results = futures::future::join_all((0..50).map(|_| {
        let router = router.clone();
        let t = token(&keys()[0], &sub);
        async move { call(&router, "/me", Some(&t)).await.0 }
    }))
    .await;
    assert!(results.iter().all(|s| *s == 200), "{results:?}");
    for _ in 0..20 {
        assert_eq!(call(&router, "/me", Some(&token(&keys()[0], &sub))).await.0, 200);
    }
    assert_eq!(jwks.fetches(), 1);
    assert_eq!(ctx.auth.jwks_fetches(), 1);
}

#[tokio::test]
async fn rotation_picks_up_a_new_kid() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    // Shorten the unknown-kid interval (1 min in production) so the test need not wait a minute,
    // but keep it well above what the first call can take on a loaded CI machine.
    let ctx = context(&stack, |c| c.clerk.jwks.unknown_kid_refetch = Duration::from_secs(3)).await;
    let router = app(&ctx);
    let sub = unique_user();
    assert_eq!(call(&router, "/me", Some(&token(&keys()[0], &sub))).await.0, 200);
    assert_eq!(jwks.fetches(), 1);

    // Clerk rotates: the JWKS now lists key b too.
    jwks.set_keys(&[&keys()[0], &keys()[1]]);
    let (status, _, body) = call(&router, "/me", Some(&token(&keys()[1], &sub))).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("unknown_key")), "refetch too soon after the last");
    assert_eq!(jwks.fetches(), 1);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _, body) = call(&router, "/me", Some(&token(&keys()[1], &sub))).await;
    assert_eq!(status, 200, "new kid picked up: {body}");
    assert_eq!(jwks.fetches(), 2);
    // The old key still verifies while it is listed; a token signed by an unlisted key does not.
    assert_eq!(call(&router, "/me", Some(&token(&keys()[0], &sub))).await.0, 200);
    let forged = clerk::sign_as(&keys()[2], &keys()[1].kid, &clerk::claims(&sub));
    assert_eq!(call(&router, "/me", Some(&forged)).await.2["reason"], "invalid_signature");
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_fetch() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let ctx = stack.context().await;
    let base = format!("http://{}", serve(app(&ctx)).await);
    let client = http();
    let sub = unique_user();
    // A cold instance, hit by 1,000 tokens naming kids it has never seen, 100 at a time.
    let statuses: Vec<(u16, Value)> = futures::stream::iter(0..1000)
        .map(|i| {
            let t = clerk::sign_as(&keys()[2], &format!("forged_{i}"), &clerk::claims(&sub));
            let req = client.get(format!("{base}/me")).bearer_auth(t);
            async move {
                let res = req.send().await.unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(statuses.iter().all(|(s, b)| *s == 401 && b["reason"] == "unknown_key"), "{:?}", &statuses[..3]);
    println!("JWKS fetches during 1000 requests with unknown kids: {}", jwks.fetches());
    assert_eq!(jwks.fetches(), 1, "one shared fetch, then the once-a-minute rule");
    // Legitimate tokens are served from that one fetch.
    let res = client.get(format!("{base}/me")).bearer_auth(token(&keys()[0], &sub)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn a_deleted_users_token_is_rejected() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let ctx = stack.context().await;
    let router = app(&ctx);
    let sub = unique_user();
    let t = token(&keys()[0], &sub);
    assert_eq!(call(&router, "/me", Some(&t)).await.0, 200);

    deliver(&ctx, &clerk::deleted_event(&sub)).await;
    let (status, headers, body) = call(&router, "/me", Some(&t)).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("user_deleted")), "{body}");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    // Another instance (cold cache) refuses too, and a fresh token changes nothing.
    let other = app(&context(&stack, |_| {}).await);
    assert_eq!(call(&other, "/me", Some(&token(&keys()[0], &sub))).await.2["reason"], "user_deleted");
}

#[tokio::test]
async fn require_role_answers_401_403_200() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let ctx = stack.context().await;
    let router = app(&ctx);
    let sub = unique_user();
    let t = token(&keys()[0], &sub);

    let (status, headers, body) = call(&router, "/admin", None).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("missing_token")));
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["content-type"], "application/problem+json");

    let (status, headers, body) = call(&router, "/admin", Some(&t)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://baatcheet.app/problems/forbidden");

    deliver(&ctx, &clerk::user_event("user.updated", &sub, clerk::now_ms(), "Mod", "moderator", "pro")).await;
    assert_eq!(call(&router, "/admin", Some(&t)).await.0, 403);
    let (status, _, body) = call(&router, "/staff", Some(&t)).await;
    assert_eq!((status, body["role"].as_str(), body["tier"].as_str()), (200, Some("moderator"), Some("pro")));

    deliver(&ctx, &clerk::user_event("user.updated", &sub, clerk::now_ms() + 1, "Boss", "admin", "enterprise")).await;
    let (status, _, body) = call(&router, "/admin", Some(&t)).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    // A forged token never reaches the role check.
    let forged = clerk::sign_as(&keys()[1], &keys()[0].kid, &clerk::claims(&sub));
    assert_eq!(call(&router, "/admin", Some(&forged)).await.2["reason"], "invalid_signature");
}

#[tokio::test]
async fn token_creation_never_clobbers_the_webhook() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    // Webhook first: the token's user gets the synced role and tier.
    let ctx = stack.context().await;
    let sub = unique_user();
    deliver(&ctx, &clerk::user_event("user.created", &sub, clerk::now_ms(), "A", "admin", "pro")).await;
    let (_, _, body) = call(&app(&ctx), "/me", Some(&token(&keys()[0], &sub))).await;
    assert_eq!((body["role"].as_str(), body["tier"].as_str()), (Some("admin"), Some("pro")));

    // Token first, then the webhook: the webhook's data wins and the user id is kept.
    let sub = unique_user();
    let (_, _, first) = call(&app(&ctx), "/me", Some(&token(&keys()[0], &sub))).await;
    deliver(&ctx, &clerk::user_event("user.created", &sub, clerk::now_ms(), "B", "moderator", "enterprise")).await;
    let (_, _, after) = call(&app(&context(&stack, |_| {}).await), "/me", Some(&token(&keys()[0], &sub))).await;
    assert_eq!((after["role"].as_str(), after["tier"].as_str()), (Some("moderator"), Some("enterprise")));
    assert_eq!(after["user_id"], first["user_id"]);

    // Both at once, on fresh instances: whichever lands first, the webhook's data is what stays.
    for _ in 0..8 {
        let sub = unique_user();
        let api = app(&context(&stack, |_| {}).await);
        let t = token(&keys()[0], &sub);
        let event = clerk::user_event("user.created", &sub, clerk::now_ms(), "C", "admin", "pro");
        let hook = deliver(&ctx, &event);
        let ((status, _, body), ()) = tokio::join!(call(&api, "/me", Some(&t)), hook);
        assert_eq!(status, 200, "{body}");
        let (_, _, body) = call(&app(&context(&stack, |_| {}).await), "/me", Some(&t)).await;
        assert_eq!((body["role"].as_str(), body["tier"].as_str()), (Some("admin"), Some("pro")), "{sub}");
    }
}

#[tokio::test]
async fn networkless_verification_with_the_pem_key() {
    // The Backend API is unreachable: the PEM alone must do.
    let dead = baatcheet_tests::dead_endpoint().await;
    let mut stack = TestStack::with_secret(json!({"CLERK_JWT_KEY": keys()[1].public_pem})).await;
    stack.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    stack.env.insert("CLERK_API_URL".into(), format!("http://{dead}"));
    let ctx = stack.context().await;
    let sub = unique_user();
    assert_eq!(call(&app(&ctx), "/me", Some(&token(&keys()[1], &sub))).await.0, 200);
    // The kid does not matter with a PEM; the key does.
    let other_kid = clerk::sign_as(&keys()[1], "whatever", &clerk::claims(&sub));
    assert_eq!(call(&app(&ctx), "/me", Some(&other_kid)).await.0, 200);
    assert_eq!(call(&app(&ctx), "/me", Some(&token(&keys()[0], &sub))).await.2["reason"], "invalid_signature");
    assert_eq!(ctx.auth.jwks_fetches(), 0);

    // CLERK_JWT_KEY from the environment wins over the secret.
    let env_ctx = context(&stack, |c| c.clerk.jwt_key = Some(keys()[2].public_pem.replace('\n', "\\n"))).await;
    assert_eq!(call(&app(&env_ctx), "/me", Some(&token(&keys()[2], &sub))).await.0, 200);
    assert_eq!(call(&app(&env_ctx), "/me", Some(&token(&keys()[1], &sub))).await.0, 401);
}

#[tokio::test]
async fn rejections_are_problem_json_with_a_reason() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let router = app(&stack.context().await);
    let sub = unique_user();
    let expired = clerk::sign_as(&keys()[0], &keys()[0].kid, &{
        let mut c = clerk::claims(&sub);
        c["exp"] = json!(clerk::now() - 60);
        c
    });
    let wrong_azp = clerk::sign_as(&keys()[0], &keys()[0].kid, &{
        let mut c = clerk::claims(&sub);
        c["azp"] = json!("https://evil.example");
        c
    });
    for (t, reason) in [
        (expired.as_str(), "expired"),
        (wrong_azp.as_str(), "invalid_authorized_party"),
        ("not-a-jwt", "malformed"),
        (&"x".repeat(20_000), "token_too_large"),
    ] {
        let (status, headers, body) = call(&router, "/me", Some(t)).await;
        assert_eq!(status, 401, "{reason}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["reason"], reason);
        assert_eq!(body["type"], "https://baatcheet.app/problems/unauthorized");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert_eq!(challenge, format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""));
        assert!(!body.to_string().contains(&t[..t.len().min(40)]), "token echoed");
    }
}

#[tokio::test]
async fn misconfiguration_and_outages_fail_closed() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let sub = unique_user();
    let t = token(&keys()[0], &sub);

    // No issuer configured: nothing is accepted.
    let mut no_issuer = stack(&jwks).await;
    no_issuer.env.remove("CLERK_ISSUER");
    let (status, _, body) = call(&app(&no_issuer.context().await), "/me", Some(&t)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["detail"], "An unexpected error occurred.");

    // No key source at all.
    let mut nothing = TestStack::new().await;
    nothing.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    assert_eq!(call(&app(&nothing.context().await), "/me", Some(&t)).await.0, 500);

    // The JWKS endpoint is down: 503, retryable, not a 401 blaming the token.
    let mut down = stack(&jwks).await;
    down.env.insert("CLERK_API_URL".into(), format!("http://{}", baatcheet_tests::dead_endpoint().await));
    let (status, headers, body) = call(&app(&down.context().await), "/me", Some(&t)).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));

    // A wrong secret key: the Backend API refuses it, so no keys; still not a 401.
    let mut wrong = TestStack::with_secret(json!({"CLERK_SECRET_KEY": "sk_test_wrong"})).await;
    wrong.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    wrong.env.insert("CLERK_API_URL".into(), jwks.url.clone());
    assert_eq!(call(&app(&wrong.context().await), "/me", Some(&t)).await.0, 503);
}

/// Every log line of this test binary, at TRACE, from a global subscriber (a thread-local one
/// would miss callsites other tests' threads registered first).
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this binary");
        logs
    })
}

struct Capture(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    let logs = captured_logs();
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack(&jwks).await;
    let router = app(&stack.context().await);
    let sub = unique_user();
    let good = token(&keys()[0], &sub);
    let forged = clerk::sign_as(&keys()[1], &keys()[0].kid, &clerk::claims(&sub));
    assert_eq!(call(&router, "/me", Some(&good)).await.0, 200);
    assert_eq!(call(&router, "/me", Some(&forged)).await.0, 401);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains(&sub), "this test's requests are in the captured logs");
    assert!(text.contains("authentication failed reason=\"invalid_signature\""), "the failure is logged");
    for t in [&good, &forged] {
        for part in t.split('.') {
            assert!(!text.contains(part), "a token part reached the logs");
        }
    }
    assert!(!text.contains(clerk::SECRET_KEY), "the secret key reached the logs");
}

#[tokio::test]
async fn dev_tokens_are_trusted_by_the_local_stack_configuration() {
    use baatcheet_local::{dev_key, dev_secret};
    // What `make dev` stores and sets (no CLERK_* in the environment), and what `make token` mints.
    let dir = std::env::temp_dir().join(format!("baatcheet-devkey-{}", uuid::Uuid::new_v4().simple()));
    let key = dev_key::load_or_create(&dir.join("dev-key.pem")).unwrap();
    let secret = dev_secret::from_env(&[
        ("CLERK_WEBHOOK_SECRET", dev_key::DEV_WEBHOOK_SECRET.to_string()),
        ("CLERK_JWT_KEY", key.public_pem.clone()),
    ]);
    let mut stack = TestStack::with_secret(serde_json::from_str(&secret).unwrap()).await;
    stack.env.insert("CLERK_ISSUER".into(), dev_key::DEV_ISSUER.into());
    let router = app(&stack.context().await);
    let sub = unique_user();
    let claims =
        dev_key::session_claims(&sub, "dev@example.test", dev_key::DEV_ISSUER, dev_key::DEV_AZP, 3600, clerk::now());
    let (status, _, body) = call(&router, "/me", Some(&key.mint(&claims).unwrap())).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("dev@example.test")), "{body}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn forged_tokens_from_one_ip_are_limited_and_valid_or_expired_ones_are_not() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let mut stack = stack(&jwks).await;
    stack.env.insert("RATE_LIMIT_AUTH".into(), "5/15m".into());
    let ctx = stack.context().await;
    let base = format!("http://{}", serve(app(&ctx)).await);
    let client = http();
    let sub = unique_user();
    let forged = clerk::sign_as(&keys()[2], &keys()[0].kid, &clerk::claims(&sub));
    for i in 0..5 {
        let res = client.get(format!("{base}/me")).bearer_auth(&forged).send().await.unwrap();
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // The sixth bad token, and garbage: 429 with Retry-After.
    for bad in [forged.as_str(), "not.a.jwt"] {
        let res = client.get(format!("{base}/me")).bearer_auth(bad).send().await.unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().contains_key("retry-after"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["policy"], "auth");
    }
    // A token that verifies is never refused for what others on its address did.
    let res = client.get(format!("{base}/me")).bearer_auth(token(&keys()[0], &sub)).send().await.unwrap();
    assert_eq!(res.status(), 200, "verified first");
    // An expired token whose signature verifies is a client that has to refresh: 401, however
    // often, and not counted.
    let mut claims = clerk::claims(&sub);
    claims["exp"] = (clerk::now() - 120).into();
    claims["iat"] = (clerk::now() - 180).into();
    let expired = clerk::sign_as(&keys()[0], &keys()[0].kid, &claims);
    for _ in 0..7 {
        let res = client.get(format!("{base}/me")).bearer_auth(&expired).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["reason"], "expired");
    }
    // Requests without a token are not authentication attempts and are not counted.
    let res = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Another address is unaffected, also for expired tokens there (none were counted).
    let other = as_client(app(&ctx), "203.0.113.77");
    let (status, _, _) = call(&other, "/me", Some(&token(&keys()[0], &sub))).await;
    assert_eq!(status, 200);
}
