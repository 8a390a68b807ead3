//! The chat function end to end through the local gateway (as `make dev` serves it): real session
//! tokens verified through the fake Clerk's JWKS, the users table, the rate-limits table and the
//! conversations table on the local endpoint, and the fake OpenAI-compatible upstream over HTTP.

use baatcheet_tests::chat::{Caller, ChatHarness, chat_model, events, fast_config, parse_sse, rate_limit};
use baatcheet_tests::clerk::{self, keys};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::{http, spawn_gateway};
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

/// The stack of one test: the harness (stack, context, fake Clerk) and the gateway over it.
struct Gw {
    h: ChatHarness,
    base: String,
    fake: FakeUpstream,
}

impl Gw {
    async fn new(env: &[(&str, &str)]) -> Self {
        let fake = FakeUpstream::start().await;
        fake.set_default(Behavior::ok().chunks(3));
        let models = json!([
            {"id": "text", "context_length": 32768},
            {"id": "eyes", "vision": true},
            {"id": "whisper", "chat": false, "audio": true}
        ]);
        let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), env, None).await;
        let base = spawn_gateway(&h.ctx).await;
        Self { h, base, fake }
    }

    fn req(&self, method: Method, path: &str, who: Option<&Caller>) -> reqwest::RequestBuilder {
        let r = http().request(method, format!("{}{path}", self.base));
        match who {
            Some(w) => r.header("authorization", w.bearer()),
            None => r,
        }
    }

    async fn complete(&self, who: &Caller, body: Value) -> reqwest::Response {
        self.req(Method::POST, "/api/v1/chat/completions", Some(who)).json(&body).send().await.unwrap()
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A 429 problem of `policy` with its Retry-After and `RateLimit` fields (the time to wait in both);
/// returns the Retry-After.
async fn assert_refused(res: reqwest::Response, policy: &str) -> u64 {
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "content-type"), Some("application/problem+json"));
    let retry: u64 = header(&res, "retry-after").expect("Retry-After").parse().unwrap();
    let (policy_field, (name, _, reset)) = rate_limit(res.headers());
    assert!(policy_field.starts_with(&format!("\"{policy}\";")), "{policy_field}");
    assert_eq!((name.as_str(), reset), (policy, retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["status"].as_u64(), body["policy"].as_str()), (Some(429), Some(policy)), "{body}");
    assert_eq!(body["retry_after"], retry);
    retry
}

fn data_url(file: &str, media_type: &str) -> String {
    let bytes = std::fs::read(format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    format!("data:{media_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn audio_form(file: &str, declared: &str) -> reqwest::multipart::Form {
    let bytes = std::fs::read(format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let part = reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()).mime_str(declared).unwrap();
    reqwest::multipart::Form::new().part("file", part)
}

#[tokio::test]
async fn without_a_token_every_route_but_models_is_401() {
    let gw = Gw::new(&[]).await;
    let id = "0190b8a4-5b7e-7000-8000-000000000001";
    let routes = [
        (Method::POST, "/api/v1/chat/completions".to_string()),
        (Method::POST, "/api/v1/chat/regenerate".into()),
        (Method::POST, "/api/v1/chat/transcribe".into()),
        (Method::GET, "/api/v1/conversations".into()),
        (Method::GET, "/api/v1/conversations/search?q=chai".into()),
        (Method::GET, format!("/api/v1/conversations/{id}")),
        (Method::PATCH, format!("/api/v1/conversations/{id}")),
        (Method::DELETE, format!("/api/v1/conversations/{id}")),
        (Method::GET, "/api/v1/admin/users/user_abc".into()),
        (Method::PATCH, "/api/v1/admin/users/user_abc".into()),
    ];
    for (method, path) in routes {
        let res = gw.req(method.clone(), &path, None).json(&json!({"message": "hi"})).send().await.unwrap();
        assert_eq!(res.status(), 401, "{method} {path}");
        assert!(header(&res, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{method} {path}");
        assert_eq!(header(&res, "content-type"), Some("application/problem+json"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["reason"], "missing_token", "{method} {path}");
    }
    // A token from a key Clerk never published is as good as none.
    let forged = clerk::sign_as(&keys()[2], &keys()[0].kid, &clerk::claims("user_mallory"));
    let res = gw.req(Method::GET, "/api/v1/conversations", None).bearer_auth(forged).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["reason"], "invalid_signature");

    let res = gw.req(Method::GET, "/api/v1/chat/models", None).send().await.unwrap();
    assert_eq!(res.status(), 200, "public");
    assert!(header(&res, "ratelimit-policy").is_some_and(|p| p.starts_with("\"global\";")), "under the global limit");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["models"].as_array().unwrap().len(), 3);
    assert_eq!(gw.fake.request_count(), 0);
}

#[tokio::test]
async fn streamed_and_whole_completions_through_the_gateway() {
    let gw = Gw::new(&[("RATE_LIMIT_CHAT_FREE", "10/1h")]).await;
    let alice = gw.h.caller("alice").await;
    let res = gw.complete(&alice, json!({"message": "Salaam! Kya haal hai?"})).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").unwrap().starts_with("text/event-stream"));
    assert_eq!(header(&res, "x-accel-buffering"), Some("no"));
    // The stream carries the tightest limit's fields like any response.
    let (policy, (name, remaining, _)) = rate_limit(res.headers());
    assert_eq!((policy.as_str(), name.as_str(), remaining), ("\"chat\";q=10;w=3600", "chat", 9));
    let evs = events(&parse_sse(&res.text().await.unwrap()));
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conversation", "delta", "delta", "delta", "done"]);
    let id = evs[0].1["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(evs[4].1["provider"], "primary");

    let res = gw.complete(&alice, json!({"message": "Aur?", "conversation_id": id, "stream": false})).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").unwrap().starts_with("application/json"));
    assert_eq!(rate_limit(res.headers()).1.1, 8);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["conversation_id"], id.as_str());
    assert_eq!(body["message"]["content"], "tok0 tok1 tok2 ");

    let res = gw.req(Method::GET, &format!("/api/v1/conversations/{id}"), Some(&alice)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let detail: Value = res.json().await.unwrap();
    assert_eq!(detail["messages"].as_array().unwrap().len(), 4);
    assert_eq!(gw.fake.request_count(), 2);
}

#[tokio::test]
async fn every_limit_applies_to_its_route_with_fields_on_200_and_429() {
    let gw = Gw::new(&[
        ("RATE_LIMIT_CHAT_FREE", "2/1h"),
        ("RATE_LIMIT_IMAGES", "3/1h"),
        ("RATE_LIMIT_AUDIO", "1/1h"),
        ("RATE_LIMIT_SEARCH", "2/1h"),
    ])
    .await;

    // Chat: completions and regenerations share the user's chat bucket.
    let alice = gw.h.caller("alice").await;
    let res = gw.complete(&alice, json!({"message": "one", "stream": false})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(rate_limit(res.headers()).0, "\"chat\";q=2;w=3600");
    let id = res.json::<Value>().await.unwrap()["conversation_id"].as_str().unwrap().to_string();
    let res = gw
        .req(Method::POST, "/api/v1/chat/regenerate", Some(&alice))
        .json(&json!({"conversation_id": id, "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, (name, remaining, reset)) = rate_limit(res.headers());
    assert_eq!((name.as_str(), remaining), ("chat", 0));
    assert!((1..=1800).contains(&reset), "one unit back within one interval: {reset}");
    assert_refused(gw.complete(&alice, json!({"message": "three"})).await, "chat").await;
    let res = gw
        .req(Method::POST, "/api/v1/chat/regenerate", Some(&alice))
        .json(&json!({"conversation_id": id}))
        .send()
        .await;
    assert_refused(res.unwrap(), "chat").await;
    assert_eq!(gw.fake.request_count(), 2, "refused requests never reach the upstream");

    // Images: each image counts one, checked before the provider is called.
    let bob = gw.h.caller("bob").await;
    let two = json!([data_url("tiny.png", "image/png"), {"url": data_url("tiny.jpg", "image/jpeg")}]);
    let res = gw.complete(&bob, json!({"message": "look", "model": "eyes", "attachments": two, "stream": false})).await;
    assert_eq!(res.status(), 200);
    let fields = rate_limit(res.headers());
    assert!(fields.0 == "\"images\";q=3;w=3600" || fields.0 == "\"chat\";q=2;w=3600", "{fields:?}");
    assert_eq!(fields.1.1, 1, "one image and one chat unit left");
    let before = gw.fake.request_count();
    let res = gw.complete(&bob, json!({"message": "and these?", "model": "eyes", "attachments": two})).await;
    assert_refused(res, "images").await;
    assert_eq!(gw.fake.request_count(), before, "the provider is not called");
    let listed: Value =
        gw.req(Method::GET, "/api/v1/conversations", Some(&bob)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 1, "nothing stored for the refused request");

    // Audio.
    let carol = gw.h.caller("carol").await;
    let transcribe =
        || gw.req(Method::POST, "/api/v1/chat/transcribe", Some(&carol)).multipart(audio_form("tiny.wav", "audio/wav"));
    let res = transcribe().send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(rate_limit(res.headers()).0, "\"audio\";q=1;w=3600");
    assert_eq!(rate_limit(res.headers()).1.1, 0);
    assert_refused(transcribe().send().await.unwrap(), "audio").await;

    // Search; the other conversation routes have no per-user limit.
    let dave = gw.h.caller("dave").await;
    let search = || gw.req(Method::GET, "/api/v1/conversations/search?q=chai", Some(&dave)).send();
    for left in [1, 0] {
        let res = search().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(rate_limit(res.headers()).0, "\"search\";q=2;w=3600");
        assert_eq!(rate_limit(res.headers()).1.1, left);
    }
    assert_refused(search().await.unwrap(), "search").await;
    let res = gw.req(Method::GET, "/api/v1/conversations", Some(&dave)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(rate_limit(res.headers()).0.starts_with("\"global\";"));
    // Carol's audio and Dave's searches did not touch Alice's chat bucket (and vice versa).
    assert_eq!(gw.complete(&dave, json!({"message": "hi", "stream": false})).await.status(), 200);
}

#[tokio::test]
async fn free_and_pro_tiers_have_different_chat_limits() {
    let gw = Gw::new(&[("RATE_LIMIT_CHAT_FREE", "2/1h"), ("RATE_LIMIT_CHAT_PRO", "4/1h")]).await;
    let free = gw.h.caller("free").await;
    let mut pro = gw.h.caller("pro").await;
    gw.h.set_role(&mut pro, "user", "pro").await;
    for (who, quota) in [(&free, 2u64), (&pro, 4)] {
        for left in (0..quota).rev() {
            let res = gw.complete(who, json!({"message": "hi", "stream": false})).await;
            assert_eq!(res.status(), 200);
            let (policy, (_, remaining, _)) = rate_limit(res.headers());
            assert_eq!((policy, remaining), (format!("\"chat\";q={quota};w=3600"), left));
        }
        assert_refused(gw.complete(who, json!({"message": "one more"})).await, "chat").await;
    }
}

#[tokio::test]
async fn the_auth_policy_blocks_an_ips_bad_tokens_after_5_but_never_a_valid_one() {
    let gw = Gw::new(&[("RATE_LIMIT_AUTH", "5/15m")]).await;
    let alice = gw.h.caller("alice").await;
    let forged = clerk::sign_as(&keys()[2], &keys()[0].kid, &clerk::claims(&alice.clerk_id));
    let post = |token: String| {
        gw.req(Method::POST, "/api/v1/chat/completions", None)
            .bearer_auth(token)
            .json(&json!({"message": "let me in"}))
            .send()
    };
    for _ in 0..5 {
        let res = post(forged.clone()).await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.json::<Value>().await.unwrap()["reason"], "invalid_signature");
    }
    let retry = assert_refused(post(forged.clone()).await.unwrap(), "auth").await;
    assert!((1..=900).contains(&retry), "{retry}");
    // The address's forged and garbled tokens are refused now...
    assert_refused(post("garbage".into()).await.unwrap(), "auth").await;
    // ...but a valid token is verified first and served, whatever others on its address did.
    let res = gw.req(Method::GET, "/api/v1/conversations", Some(&alice)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // A request without a token is not an authentication attempt: still the plain 401.
    let res = gw.req(Method::GET, "/api/v1/conversations", None).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(gw.fake.request_count(), 0);
}

#[tokio::test]
async fn transcribe_real_audio_files() {
    let gw = Gw::new(&[]).await;
    let alice = gw.h.caller("alice").await;
    let files = [
        ("tiny.mp3", "audio/mpeg", "audio/mpeg"),
        ("tiny.wav", "audio/wav", "audio/wav"),
        ("tiny.ogg", "audio/ogg", "audio/ogg"),
        ("tiny-opus.ogg", "audio/ogg", "audio/ogg"),
        ("tiny.flac", "audio/flac", "audio/flac"),
        ("tiny.webm", "audio/webm", "audio/webm"),
        ("tiny.m4a", "audio/x-m4a", "audio/mp4"),
    ];
    for (i, (file, declared, canonical)) in files.iter().enumerate() {
        let size = std::fs::metadata(format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap().len();
        let res = gw
            .req(Method::POST, "/api/v1/chat/transcribe?language=ur", Some(&alice))
            .multipart(audio_form(file, declared))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{file}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"text": format!("transcribed {size} bytes"), "language": "urdu"}), "{file}");
        let sent = &gw.fake.requests()[i];
        assert_eq!(sent.path, "/v1/audio/transcriptions");
        assert_eq!(sent.body["file_bytes"], size, "{file}");
        assert_eq!(sent.body["file_type"], *canonical, "{file}");
        assert_eq!(sent.body["language"], "ur");
        assert_eq!(sent.body["model"], "whisper");
        // The client's file name never goes on: the server names the file.
        assert!(!sent.body["file_name"].as_str().unwrap().contains("tiny"), "{}", sent.body);
    }
    let sent_before = gw.fake.request_count();
    let refused = [
        (audio_form("tiny.png", "audio/wav"), 415, "an image is not audio"),
        (audio_form("tiny.mp3", "audio/wav"), 415, "declared type must match the bytes"),
        (audio_form("tiny.wav", "text/plain"), 415, "not an audio type"),
    ];
    for (form, status, why) in refused {
        let res = gw.req(Method::POST, "/api/v1/chat/transcribe", Some(&alice)).multipart(form).send().await.unwrap();
        assert_eq!(res.status(), status, "{why}");
        assert_eq!(header(&res, "content-type"), Some("application/problem+json"));
    }
    let res = gw
        .req(Method::POST, "/api/v1/chat/transcribe?language=Urdu", Some(&alice))
        .multipart(audio_form("tiny.wav", "audio/wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["pointer"], "/query/language");
    assert_eq!(gw.fake.request_count(), sent_before, "refused files never reach the upstream");
}

#[tokio::test]
async fn two_real_users_never_see_each_others_conversations() {
    let gw = Gw::new(&[]).await;
    let alice = gw.h.caller("alice").await;
    let bob = gw.h.caller("bob").await;
    let res = gw.complete(&alice, json!({"message": "my secret chai recipe", "stream": false})).await;
    let id = res.json::<Value>().await.unwrap()["conversation_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{id}");
    let attempts = [
        gw.req(Method::GET, &path, Some(&bob)).send().await.unwrap().status(),
        gw.req(Method::PATCH, &path, Some(&bob)).json(&json!({"title": "mine"})).send().await.unwrap().status(),
        gw.req(Method::DELETE, &path, Some(&bob)).send().await.unwrap().status(),
        gw.complete(&bob, json!({"message": "x", "conversation_id": id})).await.status(),
        gw.req(Method::POST, "/api/v1/chat/regenerate", Some(&bob))
            .json(&json!({"conversation_id": id}))
            .send()
            .await
            .unwrap()
            .status(),
    ];
    assert!(attempts.iter().all(|s| *s == 404), "not found, never forbidden: {attempts:?}");
    let listed: Value =
        gw.req(Method::GET, "/api/v1/conversations", Some(&bob)).send().await.unwrap().json().await.unwrap();
    assert!(listed["conversations"].as_array().unwrap().is_empty());
    let found: Value = gw
        .req(Method::GET, "/api/v1/conversations/search?q=secret", Some(&bob))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(found["results"].as_array().unwrap().is_empty(), "{found}");

    let found: Value = gw
        .req(Method::GET, "/api/v1/conversations/search?q=SECRET", Some(&alice))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!found["results"].as_array().unwrap().is_empty(), "{found}");
    let res = gw.req(Method::GET, &path, Some(&alice)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "bob changed nothing");
    // A malformed id is a field error before any store call.
    let res = gw.req(Method::GET, "/api/v1/conversations/CONV%23x", Some(&alice)).send().await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["errors"][0]["pointer"], "/path/id");
}

#[tokio::test]
async fn dynamodb_calls_per_completion_on_a_warm_instance() {
    // The user cache outlives the test even on a slow machine (the default is 30 s).
    let gw = Gw::new(&[("AUTH_USER_CACHE_TTL_SECS", "600")]).await;
    let alice = gw.h.caller("alice").await;
    // Warm: the instance has served this user once (user cached, secret and limiter warm).
    let res = gw.complete(&alice, json!({"message": "first", "stream": false})).await;
    let id = res.json::<Value>().await.unwrap()["conversation_id"].as_str().unwrap().to_string();
    gw.h.calls.take();
    let res = gw.complete(&alice, json!({"message": "follow-up", "conversation_id": id})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(events(&parse_sse(&res.text().await.unwrap())).last().unwrap().0, "done");
    let follow_up = gw.h.calls.take();
    gw.complete(&alice, json!({"message": "new conversation", "stream": false})).await;
    let new_conversation = gw.h.calls.take();
    println!("DynamoDB calls for one streamed completion in a conversation (warm instance): {follow_up:?}");
    println!("  limiter (global per IP + chat per user): 1 TransactWriteItems; user lookup: 0 (cached);");
    println!("  open-stream lease: 1 Query + 1 PutItem, released by 1 DeleteItem");
    println!("  context: 1 Query; persist: 2 TransactWriteItems (prompt before the upstream call, answer after)");
    println!("  resumable stream: 1 PutItem (the answer's streaming item, before the upstream call)");
    println!("DynamoDB calls for one completion starting a conversation: {new_conversation:?}");
    assert_eq!(
        follow_up,
        [
            "TransactWriteItems",
            "Query",
            "PutItem",
            "Query",
            "TransactWriteItems",
            "PutItem",
            "TransactWriteItems",
            "DeleteItem"
        ]
    );
    assert_eq!(
        new_conversation,
        ["TransactWriteItems", "Query", "PutItem", "TransactWriteItems", "PutItem", "TransactWriteItems", "DeleteItem"]
    );
}

#[tokio::test]
async fn models_route_lists_the_configured_models() {
    let fake = FakeUpstream::start().await;
    let h = ChatHarness::new(json!([fake.provider("groq", &["k"], chat_model("llama"))]), fast_config()).await;
    let base = spawn_gateway(&h.ctx).await;
    let body: Value = http().get(format!("{base}/api/v1/chat/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["default_model"], "llama");
    assert_eq!(body["models"][0]["provider"], "groq");
}
