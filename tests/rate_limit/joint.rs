//! The signed-in user's global check made together with a route's per-user check (one DynamoDB
//! transaction for both), against the local DynamoDB-compatible server: calls per request,
//! exact counts on both buckets, a refusal by either, a route that answers without a check, and
//! exactness under concurrency.

use axum::{Router, body::Body, extract::State, routing::get};
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::rate_limit::{Access, RouteAccess, Subject};
use baatcheet_shared::{ApiError, AppContext, request_path};
use baatcheet_tests::clerk::{self, JwksServer, keys, unique_user};
use baatcheet_tests::{TestStack, as_client};
use chat::limits::SEARCH;
use tower::ServiceExt;

/// `/limited` and `/unchecked` are deferred (the user's global check joins the route's first
/// check), `/plain` is an ordinary signed-in route.
fn access() -> RouteAccess {
    let deferred = ["/limited", "/unchecked"].map(|p| (p.to_string(), Access::SignedInLimited));
    RouteAccess::new(Access::SignedIn, deferred)
}

async fn limited(State(ctx): State<AppContext>, user: AuthUser) -> Result<&'static str, ApiError> {
    ctx.limiter.check(SEARCH.policy(), &user.user_id, 1).await?;
    Ok("searched")
}

/// A function instance: `/limited` checks the search limit first (a deferred global check),
/// `/unchecked` answers without a check (deferred too), `/plain` is an ordinary route.
fn instance(ctx: &AppContext, ip: &str) -> Router {
    chat::limits::declare(ctx).expect("chat's policies");
    let routes = Router::new()
        .route("/limited", get(limited))
        .route("/unchecked", get(|| async { "no check" }))
        .route("/plain", get(|| async { "plain" }))
        .with_state(ctx.clone());
    as_client(request_path::wrap(routes, ctx, access()), ip)
}

/// A signed-in caller's bearer token.
struct Who(String);

fn who() -> Who {
    Who(clerk::token(&keys()[0], &unique_user()))
}

struct Answer {
    status: u16,
    policy: Option<String>,
    remaining: Option<u64>,
}

async fn get_path(router: &Router, path: &str, who: &Who) -> Answer {
    let req = http::Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {}", who.0))
        .body(Body::empty())
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let h = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let policy = h("ratelimit-policy").and_then(|p| p.split(';').next().map(|n| n.trim_matches('"').to_string()));
    let remaining =
        h("ratelimit").and_then(|f| f.split(';').find_map(|p| p.strip_prefix("r=").and_then(|n| n.parse().ok())));
    Answer { status: res.status().as_u16(), policy, remaining }
}

/// A stack whose callers sign in against `jwks`, with these limits.
async fn stack_with(jwks: &JwksServer, env: &[(&str, &str)]) -> TestStack {
    let mut stack = TestStack::with_secret(serde_json::json!({"CLERK_SECRET_KEY": clerk::SECRET_KEY})).await;
    stack.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    stack.env.insert("CLERK_AUTHORIZED_PARTIES".into(), clerk::AZP.into());
    stack.env.insert("CLERK_API_URL".into(), jwks.url.clone());
    for (k, v) in env {
        stack.env.insert(k.to_string(), v.to_string());
    }
    stack
}

#[tokio::test]
async fn one_call_charges_both_buckets_and_a_refusal_still_counts_globally() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack_with(&jwks, &[("RATE_LIMIT_GLOBAL", "5/1h"), ("RATE_LIMIT_SEARCH", "3/1h")]).await;
    let ctx = stack.context().await;
    let api = instance(&ctx, "198.51.100.61");
    let me = who();
    for left in [2, 1, 0] {
        let calls = ctx.limiter.store_calls();
        let a = get_path(&api, "/limited", &me).await;
        assert_eq!(a.status, 200);
        assert_eq!((a.policy.as_deref(), a.remaining), (Some("search"), Some(left)), "search is the tighter");
        assert_eq!(ctx.limiter.store_calls() - calls, 1, "global and search in one DynamoDB call");
    }
    let calls = ctx.limiter.store_calls();
    let a = get_path(&api, "/limited", &me).await;
    assert_eq!((a.status, a.policy.as_deref()), (429, Some("search")));
    assert_eq!(ctx.limiter.store_calls() - calls, 1, "the global check alone; search refused from the deny cache");
    // Four requests were charged to the user: the fifth unit is the last.
    let a = get_path(&api, "/plain", &me).await;
    assert_eq!((a.status, a.policy.as_deref(), a.remaining), (200, Some("global"), Some(0)));
    assert_eq!(get_path(&api, "/plain", &me).await.status, 429);
}

#[tokio::test]
async fn a_deferred_route_that_answers_without_a_check_is_charged_after_it() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack_with(&jwks, &[("RATE_LIMIT_GLOBAL", "2/1h")]).await;
    let ctx = stack.context().await;
    let api = instance(&ctx, "198.51.100.62");
    let me = who();
    for left in [1, 0] {
        let a = get_path(&api, "/unchecked", &me).await;
        assert_eq!((a.status, a.policy.as_deref(), a.remaining), (200, Some("global"), Some(left)));
    }
    let a = get_path(&api, "/unchecked", &me).await;
    assert_eq!((a.status, a.policy.as_deref()), (429, Some("global")), "the answer is replaced by the refusal");
    let calls = ctx.limiter.store_calls();
    assert_eq!(get_path(&api, "/unchecked", &me).await.status, 429);
    assert_eq!(ctx.limiter.store_calls(), calls, "known empty: refused before the route, no DynamoDB call");
}

#[tokio::test]
async fn a_global_refusal_leaves_the_per_user_bucket_untouched() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack_with(&jwks, &[("RATE_LIMIT_GLOBAL", "2/1h"), ("RATE_LIMIT_SEARCH", "2/1h")]).await;
    // Instance A empties the user's global bucket; instance B has never seen it.
    let me = who();
    let a_ctx = stack.context().await;
    let a = instance(&a_ctx, "198.51.100.63");
    assert_eq!(get_path(&a, "/plain", &me).await.status, 200);
    assert_eq!(get_path(&a, "/plain", &me).await.status, 200);
    let b_ctx = stack.context().await;
    // Another address changes nothing: the global bucket is the user's.
    let b = instance(&b_ctx, "198.51.100.64");
    let calls = b_ctx.limiter.store_calls();
    let refused = get_path(&b, "/limited", &me).await;
    assert_eq!((refused.status, refused.policy.as_deref()), (429, Some("global")));
    assert_eq!(b_ctx.limiter.store_calls() - calls, 1, "the transaction's failed condition told");
    // The refused request took nothing from search, whose two units are both still there.
    let user = b_ctx.auth.authenticate_token(&me.0).await.unwrap();
    let search = b_ctx.limiter.decide(SEARCH.policy(), &Subject::User(&user.user_id), 1).await.unwrap();
    assert_eq!((search.is_allowed(), search.remaining), (true, 1), "one of two taken now, none before");
}

#[tokio::test]
async fn concurrent_joint_checks_admit_exactly_the_capacity_and_charge_every_request_once() {
    let jwks = JwksServer::start(&[&keys()[0]]).await;
    let stack = stack_with(&jwks, &[("RATE_LIMIT_GLOBAL", "200/1h"), ("RATE_LIMIT_SEARCH", "20/1h")]).await;
    let ctx = stack.context().await;
    let api = instance(&ctx, "198.51.100.65");
    let me = who();
    let started = std::time::Instant::now();
    let answers = futures::future::join_all((0..64).map(|_| {
        let (api, me) = (api.clone(), &me);
        async move { get_path(&api, "/limited", me).await.status }
    }))
    .await;
    let admitted = answers.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, 20, "{answers:?}");
    assert!(answers.iter().all(|s| *s == 200 || *s == 429), "{answers:?}");
    // Another instance (no cache) charges the 65th unit of the user: 200 - 65 left, plus what
    // refilled meanwhile (one unit per 18 s).
    let other = instance(&stack.context().await, "198.51.100.65");
    let a = get_path(&other, "/plain", &me).await;
    let refilled = started.elapsed().as_secs() / 18 + 1;
    let left = a.remaining.expect("global fields");
    assert!((135..=135 + refilled).contains(&left), "global left {left}: every request charged once");
}
