//! The revocation bound (docs/auth.md): a role, tier or deletion change, delivered as Clerk does
//! (a Svix-signed webhook), takes effect in a chat process that had the user cached, within the
//! stated bound. Two Lambda-shaped stacks share one set of tables and one secret: the webhook of
//! the first is told, the chat functions of both (separate processes) must follow.

use baatcheet_shared::auth::USER_CACHE_TTL_SECS;
use baatcheet_tests::chat::{ChatHarness, fast_config};
use baatcheet_tests::clerk::{self, Delivery, keys};
use baatcheet_tests::deployed::start;
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::http;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The bound, plus what one request through the local stack may take on a loaded machine.
fn deadline_after(delivered: Instant) -> Instant {
    delivered + Duration::from_secs(USER_CACHE_TTL_SECS) + Duration::from_secs(4)
}

async fn deliver(base: &str, event: &Value) -> Instant {
    let res = Delivery::new(event).post(base, clerk::WEBHOOK_SECRET).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    Instant::now()
}

/// Status of the admin route for `clerk_id`, asked as `clerk_id` itself.
async fn admin_status(base: &str, clerk_id: &str) -> u16 {
    let res = http()
        .get(format!("{base}/api/v1/admin/users/{clerk_id}"))
        .header("authorization", format!("Bearer {}", clerk::token(&keys()[0], clerk_id)))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// The chat policy a completion is counted under (`RateLimit-Policy`).
async fn chat_policy(base: &str, clerk_id: &str) -> String {
    let res = http()
        .post(format!("{base}/api/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", clerk::token(&keys()[0], clerk_id)))
        .json(&json!({"message": "salaam", "stream": false}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let policy = res.headers().get("ratelimit-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let _ = res.bytes().await;
    assert_eq!(status, 200, "{policy}");
    policy
}

/// Polls `probe` on every base until each answers `want`, failing at `deadline`.
async fn until<F, Fut, T>(bases: &[&str], deadline: Instant, want: T, probe: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = T>,
    T: PartialEq + std::fmt::Debug,
{
    for base in bases {
        loop {
            let got = probe(base.to_string()).await;
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{base}: still {got:?}, want {want:?} past the revocation bound");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn role_tier_and_deletion_reach_another_chat_process_within_the_bound() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok());
    let models = json!([{"id": "text", "context_length": 32768}]);
    let h = ChatHarness::with(
        json!([fake.provider("primary", &["k1"], models)]),
        fast_config(),
        // The header names the tightest policy: the global one must not be it.
        &[("RATE_LIMIT_CHAT_PRO", "200000/1h"), ("RATE_LIMIT_GLOBAL", "1000000/1h")],
        None,
    )
    .await;
    // Two deployments over the same tables: each has its own chat process (and webhook).
    let (a, b) = (start(&h.stack).await, start(&h.stack).await);
    let (base_a, base_b) = (a.base_url(), b.base_url());
    let bases = [base_a.as_str(), base_b.as_str()];

    let clerk_id = clerk::unique_user();
    let t0 = clerk::now_ms() - 10_000;
    deliver(&base_a, &clerk::user_event("user.created", &clerk_id, t0, "Ayesha", "admin", "free")).await;
    // Both chat processes hold the admin in their cache.
    for base in bases {
        assert_eq!(admin_status(base, &clerk_id).await, 200);
        assert_eq!(chat_policy(base, &clerk_id).await, "\"chat\";q=100000;w=3600");
    }
    let chat_b = b.pool("ChatFunction").expect("the chat function's pool");
    let started_b = chat_b.instances_started();

    // Demoted: the admin route refuses them on both.
    let at = deliver(&base_a, &clerk::user_event("user.updated", &clerk_id, t0 + 1, "Ayesha", "user", "free")).await;
    until(&bases, deadline_after(at), 403, |base| {
        let id = clerk_id.clone();
        async move { admin_status(&base, &id).await }
    })
    .await;

    // Upgraded: completions count under the pro quota.
    let at = deliver(&base_a, &clerk::user_event("user.updated", &clerk_id, t0 + 2, "Ayesha", "user", "pro")).await;
    until(&bases, deadline_after(at), "\"chat\";q=200000;w=3600".to_string(), |base| {
        let id = clerk_id.clone();
        async move { chat_policy(&base, &id).await }
    })
    .await;

    // Deleted: their still-valid tokens are refused.
    let at = deliver(&base_a, &clerk::deleted_event(&clerk_id)).await;
    until(&bases, deadline_after(at), 401, |base| {
        let id = clerk_id.clone();
        async move { admin_status(&base, &id).await }
    })
    .await;
    // The same process of the second stack saw every change (no fresh instance started).
    assert_eq!(chat_b.instances_started(), started_b);
}
