//! `user.deleted` erases the user: through the Lambda-shaped stack, with real Svix signatures,
//! a user with 2,000 messages over 50 conversations (seeded past the API, in the chat store's
//! own item shapes), their rate-limit buckets, an Idempotency-Key record and a conversation whose
//! delete was interrupted.
//! The webhook's per-invocation budget is forced small, so the erasure needs several
//! invocations: each re-delivery (as Svix retries a 503) continues it. Afterwards a scan of every
//! table finds nothing of the user but the tombstone, and further deliveries change nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_shared::rate_limit::policy::{PLATFORM, Subject};
use baatcheet_tests::chat::{ChatHarness, fast_config};
use baatcheet_tests::clerk::{self, Delivery, keys};
use baatcheet_tests::deployed::start_with;
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::http;
use baatcheet_tests::seed::{self, Item, mentions};
use chat::store::idempotency::{Claim, IdempotencyStore, KeyRef};
use serde_json::{Value, json};

/// Sends `d` as Svix does a (re-)delivery: same id, fresh timestamp and signature.
async fn deliver(base: &str, d: &mut Delivery) -> (u16, Value) {
    d.timestamp = clerk::now();
    let res = d.post(base, clerk::WEBHOOK_SECRET).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn as_user(clerk_id: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
    let res =
        req.header("authorization", format!("Bearer {}", clerk::token(&keys()[0], clerk_id))).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

#[tokio::test]
async fn user_deleted_erases_everything_but_a_tombstone_over_several_invocations() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok());
    let models = json!([{"id": "text", "context_length": 32768}]);
    let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), &[], None).await;
    let gw = start_with(&h.stack, |_| {}, &[("WebhookFunction", "ERASURE_BUDGET_ITEMS", "500")]).await;
    let base = gw.base_url();
    let dynamo = baatcheet_shared::aws::dynamodb(&h.stack.sdk);

    // Two users Clerk created; the second one's data must stay.
    let (gone, kept) = (clerk::unique_user(), clerk::unique_user());
    for id in [&gone, &kept] {
        let mut d = Delivery::new(&clerk::user_event("user.created", id, clerk::now_ms(), "Ayesha", "user", "free"));
        assert_eq!(deliver(&base, &mut d).await.0, 200);
        // Through the API: a conversation (chat and global buckets) and a search (its bucket).
        let (status, body) = as_user(
            id,
            http()
                .post(format!("{base}/api/v1/chat/completions"))
                .header("idempotency-key", format!("erasure-{}", uuid::Uuid::new_v4()))
                .json(&json!({"message": "salaam", "stream": false})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = as_user(id, http().get(format!("{base}/api/v1/conversations/search?q=salaam"))).await;
        assert_eq!(status, 200);
    }
    let user_id = |clerk_id: String| {
        let dynamo = dynamo.clone();
        let table = h.stack.env["USERS_TABLE"].clone();
        async move {
            let out = dynamo
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(clerk_id))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            s(out.item().unwrap(), "user_id").unwrap().to_string()
        }
    };
    let (uid, kept_uid) = (user_id(gone.clone()).await, user_id(kept.clone()).await);

    // 2,000 messages over 50 conversations, one of them caught halfway through its delete (out of
    // the user's list, messages still there), and a bucket of every per-user policy.
    let ids = seed::conversations(&h.stack, &uid, 50, 40).await;
    dynamo
        .update_item()
        .table_name(&h.stack.env["CONVERSATIONS_TABLE"])
        .key("pk", AttributeValue::S(format!("CONV#{}", ids[0])))
        .key("sk", AttributeValue::S("META".into()))
        .update_expression("SET #d = :now, #gpk = :deleting")
        .expression_attribute_names("#d", "deleted_at")
        .expression_attribute_names("#gpk", "gsi1pk")
        .expression_attribute_values(":now", AttributeValue::S("2026-01-01T00:00:00Z".into()))
        .expression_attribute_values(":deleting", AttributeValue::S(format!("UDEL#{uid}")))
        .send()
        .await
        .unwrap();
    let policies = PLATFORM.iter().chain(chat::limits::ALL.iter());
    let mut keys: Vec<String> = policies.map(|p| p.policy().key(&Subject::User(&uid))).collect();
    keys.sort();
    keys.dedup();
    let buckets = keys
        .into_iter()
        .map(|k| {
            Item::from([
                ("pk".to_string(), AttributeValue::S(k)),
                ("tat".to_string(), AttributeValue::N("1".into())),
                ("expires_at".to_string(), AttributeValue::N((clerk::now() + 3600).to_string())),
            ])
        })
        .collect();
    seed::batch_put(&dynamo, &h.stack.env["RATE_LIMITS_TABLE"], buckets).await;
    // Open-stream leases (as a stream holds them: one item per taken slot).
    let leases = (0..2)
        .map(|slot| {
            Item::from([
                ("pk".to_string(), AttributeValue::S(uid.clone())),
                ("sk".to_string(), AttributeValue::S(format!("slot#{slot}"))),
                ("expires_at".to_string(), AttributeValue::N((clerk::now() + 3600).to_string())),
            ])
        })
        .collect();
    seed::batch_put(&dynamo, &h.stack.env["STREAM_LEASES_TABLE"], leases).await;
    // Idempotency-Key records: their own table partition, no index entry.
    let idempotency = IdempotencyStore::new(dynamo.clone(), h.stack.env["CONVERSATIONS_TABLE"].clone());
    for key in ["key-1", "key-2"] {
        let claim = idempotency.claim(&KeyRef::new(&uid, "completions", key), &uid, "fingerprint").await.unwrap();
        assert_eq!(claim, Claim::Owner);
    }

    let theirs = |all: &std::collections::BTreeMap<&str, Vec<Item>>, who: &str, uid: &str| -> Vec<(String, Item)> {
        all.iter()
            .flat_map(|(t, items)| items.iter().map(move |i| (t.to_string(), i.clone())))
            .filter(|(_, i)| mentions(i, who) || mentions(i, uid))
            .collect()
    };
    let before = seed::scan_all(&h.stack).await;
    let mine_before = theirs(&before, &gone, &uid);
    assert!(mine_before.len() > 2050, "seeded: {}", mine_before.len());
    let idem = format!("IDEM#{uid}");
    assert!(mine_before.iter().any(|(_, i)| s(i, "pk") == Some(idem.as_str())), "an Idempotency-Key record exists");
    let kept_before = theirs(&before, &kept, &kept_uid);

    // user.deleted, delivered again as long as the webhook answers 503 (Svix's retries).
    let mut deleted = Delivery::new(&clerk::deleted_event(&gone));
    let mut invocations = 0;
    loop {
        invocations += 1;
        let (status, body) = deliver(&base, &mut deleted).await;
        if status == 200 {
            assert_eq!(body, json!({"received": true}));
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["type"], "https://baatcheet.app/problems/service-unavailable", "{body}");
        assert!(invocations < 20, "the erasure never finishes");
    }
    // Over 2,050 items at 500 an invocation.
    assert!(invocations >= 5, "continued over {invocations} invocations");
    let (status, _) = as_user(&gone, http().get(format!("{base}/api/v1/conversations"))).await;
    assert_eq!(status, 401);

    let after = seed::scan_all(&h.stack).await;
    let left = theirs(&after, &gone, &uid);
    assert_eq!(left.len(), 1, "only the tombstone is left: {left:#?}");
    let (table, tomb) = &left[0];
    assert_eq!((table.as_str(), s(tomb, "pk")), ("USERS_TABLE", Some(gone.as_str())));
    assert_eq!(tomb.get("deleted"), Some(&AttributeValue::Bool(true)));
    assert_eq!(s(tomb, "erasure"), Some("done"));
    for personal in ["email", "first_name", "last_name", "image_url", "role", "tier"] {
        assert!(!tomb.contains_key(personal), "the tombstone keeps {personal}: {tomb:?}");
    }
    assert!(!format!("{tomb:?}").contains("example.test"), "no email anywhere: {tomb:?}");
    assert_eq!(theirs(&after, &kept, &kept_uid), kept_before, "the other user's data is untouched");

    // The same delivery again, and another user.deleted: acknowledged, nothing changes (but the
    // new delivery's own record).
    assert_eq!(deliver(&base, &mut deleted).await.0, 200);
    assert_eq!(seed::scan_all(&h.stack).await, after, "a re-delivery changes nothing");
    let mut again = Delivery::new(&clerk::deleted_event(&gone));
    assert_eq!(deliver(&base, &mut again).await.0, 200);
    let mut last = seed::scan_all(&h.stack).await;
    let records = last.get_mut("WEBHOOK_DELIVERIES_TABLE").unwrap();
    let pos = records.iter().position(|r| s(r, "pk") == Some(again.id.as_str())).expect("the new delivery's record");
    assert_eq!(s(&records.remove(pos), "outcome"), Some("stale"));
    assert_eq!(last, after, "a second user.deleted changes nothing else");
}
