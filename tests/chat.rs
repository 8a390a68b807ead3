//! The chat function's completion paths end to end over real HTTP: client (real session tokens) ->
//! the chat router (request path, auth, limits, validated extractors) -> service -> fake
//! OpenAI-compatible upstreams (real HTTP, SSE) and the local DynamoDB.

use baatcheet_tests::chat::{Caller, ChatHarness, Sse, chat_model, events, fast_config, parse_sse, user};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::{dead_endpoint, http};
use base64::Engine;
use chat::ChatConfig;
use chat::store::ids::ConversationId;
use chat::store::model::{Conversation, Message, MessageStatus, Role};
use serde_json::{Value, json};
use std::time::Duration;

async fn one_provider(fake: &FakeUpstream, config: ChatConfig) -> ChatHarness {
    ChatHarness::new(json!([fake.provider("primary", &["k1"], chat_model("m"))]), config).await
}

/// Posts a completion and reads the whole event stream.
async fn stream(h: &ChatHarness, as_user: &Caller, body: Value) -> (reqwest::header::HeaderMap, Vec<Sse>) {
    let res = h.post("/api/v1/chat/completions", as_user).json(&body).send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    (headers, parse_sse(&text))
}

async fn stored(h: &ChatHarness, as_user: &Caller, id: &str) -> (Conversation, Vec<Message>) {
    let id: ConversationId = id.parse().expect("conversation id");
    h.service().store().load_recent(as_user.id(), id, 500).await.expect("conversation readable")
}

#[tokio::test]
async fn streamed_completion_sends_events_in_order_and_stores_both_messages() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(4));
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let (headers, all) = stream(&h, &alice, json!({"message": "  Salaam! Kya haal hai?\n"})).await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(headers["cache-control"].to_str().unwrap().contains("no-cache"));
    assert_eq!(headers["x-accel-buffering"], "no");

    let evs = events(&all);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conversation", "delta", "delta", "delta", "delta", "done"], "{all:?}");
    let start = &evs[0].1;
    let deltas: String = evs[1..5].iter().map(|(_, d)| d["content"].as_str().unwrap()).collect();
    assert_eq!(deltas, "tok0 tok1 tok2 tok3 ");
    let done = &evs[5].1;
    assert_eq!(done["message_id"], start["message_id"]);
    assert_eq!((done["model"].as_str(), done["provider"].as_str()), (Some("m"), Some("primary")));
    assert_eq!(done["usage"]["completion_tokens"], 4);
    assert_eq!(start["created"], true);
    assert_eq!(start["title"], "Salaam! Kya haal hai?");

    let (conv, msgs) = stored(&h, &alice, start["conversation_id"].as_str().unwrap()).await;
    assert_eq!(conv.title, "Salaam! Kya haal hai?");
    assert_eq!(conv.message_count, 2);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].role, msgs[0].content.as_str()),
        (Role::User, "  Salaam! Kya haal hai?\n"),
        "stored byte-exact"
    );
    assert_eq!(msgs[0].id.to_string(), start["user_message_id"].as_str().unwrap());
    assert_eq!((msgs[1].role, msgs[1].status), (Role::Assistant, MessageStatus::Complete));
    assert_eq!(msgs[1].content, deltas);
    assert_eq!(msgs[1].id.to_string(), done["message_id"].as_str().unwrap());
    assert_eq!(msgs[1].provider.as_deref(), Some("primary"));
    assert_eq!(msgs[1].usage.unwrap().completion_tokens, 4);

    let sent = &fake.requests()[0];
    assert_eq!(sent.key.as_deref(), Some("k1"));
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.body["model"], "m");
    let roles: Vec<&str> =
        sent.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user"]);
    assert!(sent.body["messages"][0]["content"].as_str().unwrap().contains("Roman Urdu"));
}

#[tokio::test]
async fn non_streamed_completion_returns_the_answer_as_json() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().reply("Wa alaikum salaam!").chunks(3));
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let res = h
        .post("/api/v1/chat/completions", &alice)
        .json(&json!({"message": "Salaam", "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"]["role"], "assistant");
    assert_eq!(body["message"]["content"], "Wa alaikum salaam!");
    assert_eq!((body["model"].as_str(), body["provider"].as_str()), (Some("m"), Some("primary")));
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(fake.requests()[0].body["stream"], false);
    let (_, msgs) = stored(&h, &alice, body["conversation_id"].as_str().unwrap()).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].id.to_string(), body["message"]["id"].as_str().unwrap());
    assert_eq!(msgs[1].content, "Wa alaikum salaam!");
}

#[tokio::test]
async fn temperature_zero_and_mode_defaults_reach_the_upstream() {
    let fake = FakeUpstream::start().await;
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    stream(&h, &alice, json!({"message": "2+2?", "temperature": 0, "mode": "creative", "max_tokens": 64})).await;
    stream(&h, &alice, json!({"message": "code please", "mode": "code"})).await;
    stream(&h, &alice, json!({"message": "a poem", "mode": "creative", "temperature": 1.25})).await;
    let reqs = fake.requests();
    assert_eq!(reqs[0].body["temperature"].as_f64(), Some(0.0), "0 is honoured, not replaced by creative's 1.0");
    assert_eq!(reqs[0].body["max_tokens"], 64);
    assert_eq!(reqs[1].body["temperature"].as_f64(), Some(0.2), "code mode's default");
    assert!(reqs[1].body.get("max_tokens").is_none());
    assert_eq!(reqs[2].body["temperature"].as_f64(), Some(1.25));
    assert!(reqs[1].body["messages"][0]["content"].as_str().unwrap().contains("expert programmer"));
}

#[tokio::test]
async fn failover_before_the_first_token_uses_the_next_key_then_provider() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(Behavior::status(500));
    b.set_default(Behavior::ok().reply("from the backup").chunks(2));
    let h = ChatHarness::new(
        json!([a.provider("primary", &["a1", "a2"], chat_model("m")), b.provider("backup", &["b1"], chat_model("m"))]),
        fast_config(),
    )
    .await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "hi"})).await;
    let evs = events(&all);
    let text: String = evs.iter().filter(|(n, _)| n == "delta").map(|(_, d)| d["content"].as_str().unwrap()).collect();
    assert_eq!(text, "from the backup", "only the provider that answered reached the client");
    assert_eq!(evs.last().unwrap().1["provider"], "backup");
    let keys: Vec<_> = a.requests().into_iter().map(|r| r.key.unwrap()).collect();
    assert_eq!(keys, ["a1", "a2"], "next key first, then the next provider");
    assert_eq!(b.request_count(), 1);
}

#[tokio::test]
async fn connect_errors_and_first_token_timeouts_fail_over() {
    let dead = dead_endpoint().await;
    let slow = FakeUpstream::start().await;
    let good = FakeUpstream::start().await;
    // Headers come at once, the first token never within the timeout.
    slow.set_default(Behavior::ok().first_delay(Duration::from_secs(30)));
    let config = ChatConfig { first_token_timeout: Duration::from_millis(400), ..fast_config() };
    let h = ChatHarness::new(
        json!([
            {"name": "dead", "base_url": format!("http://{dead}/v1"), "api_keys": ["d1", "d2"], "models": chat_model("m")},
            slow.provider("slow", &["s1"], chat_model("m")),
            good.provider("good", &["g1"], chat_model("m"))
        ]),
        config,
    )
    .await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "hi"})).await;
    assert_eq!(events(&all).last().unwrap().1["provider"], "good");
    assert_eq!(slow.request_count(), 1);
    assert_eq!(good.request_count(), 1);
}

#[tokio::test]
async fn no_failover_after_the_first_token_and_the_partial_answer_is_kept() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(Behavior::ok().chunks(5).drop_after(2));
    let h = ChatHarness::new(
        json!([a.provider("primary", &["a1"], chat_model("m")), b.provider("backup", &["b1"], chat_model("m"))]),
        fast_config(),
    )
    .await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "tell me a story"})).await;
    let evs = events(&all);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conversation", "delta", "delta", "error"], "{all:?}");
    let problem = &evs[3].1;
    assert_eq!(problem["status"], 502);
    assert!(problem["type"].as_str().unwrap().ends_with("/bad-gateway"));
    assert_eq!(b.request_count(), 0, "the user must never see text repeated by a failover");
    let (_, msgs) = stored(&h, &alice, evs[0].1["conversation_id"].as_str().unwrap()).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].status, MessageStatus::Incomplete);
    assert_eq!(msgs[1].content, "tok0 tok1 ");
}

#[tokio::test]
async fn an_upstream_silent_between_chunks_times_out_and_keeps_the_partial_answer() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(3).token_delay(Duration::from_secs(30)));
    let config = ChatConfig { idle_timeout: Duration::from_millis(300), ..fast_config() };
    let h = one_provider(&fake, config).await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "hi"})).await;
    let evs = events(&all);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conversation", "delta", "error"], "{all:?}");
    assert_eq!(evs[2].1["status"], 502);
    let (_, msgs) = stored(&h, &alice, evs[0].1["conversation_id"].as_str().unwrap()).await;
    assert_eq!((msgs[1].status, msgs[1].content.as_str()), (MessageStatus::Incomplete, "tok0 "));
}

#[tokio::test]
async fn a_rate_limited_key_cools_down_for_its_retry_after() {
    let a = FakeUpstream::start().await;
    a.on_key("k1", Behavior::rate_limited(120));
    let h = ChatHarness::new(json!([a.provider("primary", &["k1", "k2"], chat_model("m"))]), fast_config()).await;
    let alice = h.caller("alice").await;
    stream(&h, &alice, json!({"message": "one"})).await;
    stream(&h, &alice, json!({"message": "two"})).await;
    stream(&h, &alice, json!({"message": "three"})).await;
    let keys: Vec<_> = a.requests().into_iter().map(|r| r.key.unwrap()).collect();
    assert_eq!(keys, ["k1", "k2", "k2", "k2"], "k1 rests after its 429 instead of being tried again");
}

#[tokio::test]
async fn everything_exhausted_is_503_with_retry_after_and_the_prompt_is_kept() {
    let a = FakeUpstream::start().await;
    a.set_default(Behavior::rate_limited(42));
    let h = one_provider(&a, fast_config()).await;
    let alice = h.caller("alice").await;
    for round in 0..2 {
        let res = h.post("/api/v1/chat/completions", &alice).json(&json!({"message": "hello?"})).send().await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((41..=42).contains(&retry), "round {round}: {retry}");
        let body: Value = res.json().await.unwrap();
        assert!(body["type"].as_str().unwrap().ends_with("/service-unavailable"));
        assert_eq!(body["retry_after"].as_u64(), Some(retry));
    }
    assert_eq!(a.request_count(), 1, "the resting key is not hammered");
    let list = h.service().store().list(alice.id(), 10, None).await.unwrap();
    assert_eq!(list.items.len(), 2, "each prompt was stored before the upstream call");
    let (_, msgs) = h.service().store().load_recent(alice.id(), list.items[0].id, 10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].role, Role::User);
}

#[tokio::test]
async fn repeated_failures_open_the_providers_circuit() {
    let counts = baatcheet_tests::recorder::Counts::default();
    let _recording = metrics::set_default_local_recorder(&counts);
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(Behavior::status(503));
    let config = ChatConfig { circuit_failures: 2, circuit_open: Duration::from_secs(300), ..fast_config() };
    let h = ChatHarness::new(
        json!([a.provider("primary", &["a1"], chat_model("m")), b.provider("backup", &["b1"], chat_model("m"))]),
        config,
    )
    .await;
    let alice = h.caller("alice").await;
    for _ in 0..4 {
        let (_, all) = stream(&h, &alice, json!({"message": "hi"})).await;
        assert_eq!(events(&all).last().unwrap().1["provider"], "backup");
    }
    assert_eq!(a.request_count(), 2, "after two failures the circuit skips the provider");
    assert_eq!(b.request_count(), 4);
    // Recorded through the metrics facade: one circuit opened, the primary's; its two failures.
    use baatcheet_shared::metrics::names;
    assert_eq!(counts.sum(names::CIRCUIT_OPENS, &[("provider", "primary")]), 1);
    assert_eq!(counts.sum(names::CIRCUIT_OPENS, &[]), 1);
    assert_eq!(counts.sum(names::PROVIDER_ERRORS, &[("provider", "primary")]), 2);
    assert_eq!(counts.sum(names::COMPLETIONS, &[("provider", "backup")]), 4);
}

async fn seed_conversation(h: &ChatHarness, owner: &str, n: usize) -> ConversationId {
    use chat::store::Settings;
    use chat::store::ids::MessageId;
    use chat::store::model::now_rfc3339;
    let msg = |i: usize| Message {
        id: MessageId::new(),
        role: if i.is_multiple_of(2) { Role::User } else { Role::Assistant },
        content: format!("m{i:02}"),
        status: MessageStatus::Complete,
        created_at: now_rfc3339(),
        model: None,
        provider: None,
        usage: None,
        attachments: vec![],
    };
    let conv = Conversation {
        id: ConversationId::new(),
        user_id: owner.into(),
        title: "seeded".into(),
        mode: chat::modes::Mode::Chat,
        model: Some("m".into()),
        system_prompt: None,
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        message_count: 1,
        deleted: false,
    };
    let store = h.service().store();
    store.create(&conv, &msg(0)).await.unwrap();
    let settings = Settings { mode: conv.mode, model: "m".into(), system_prompt: None };
    for i in 1..n {
        store.append(owner, conv.id, &msg(i), &settings).await.unwrap();
    }
    conv.id
}

#[tokio::test]
async fn context_is_the_newest_50_of_60_messages_in_order() {
    let fake = FakeUpstream::start().await;
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let id = seed_conversation(&h, alice.id(), 60).await;
    stream(&h, &alice, json!({"message": "m60", "conversation_id": id.to_string()})).await;
    let sent = fake.requests()[0].body["messages"].as_array().unwrap().clone();
    assert_eq!(sent.len(), 51, "system prompt + 50 messages");
    assert_eq!(sent[0]["role"], "system");
    let contents: Vec<&str> = sent[1..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    let want: Vec<String> = (11..=60).map(|i| format!("m{i:02}")).collect();
    assert_eq!(contents, want);
    for (m, i) in sent[1..].iter().zip(11usize..) {
        assert_eq!(m["role"], if i.is_multiple_of(2) { "user" } else { "assistant" });
    }
}

#[tokio::test]
async fn dynamodb_calls_per_completion_are_counted() {
    let fake = FakeUpstream::start().await;
    // The user stays cached for the whole test, however slow the machine (the default TTL, the
    // revocation bound, is 2 s).
    let models = chat_model("m");
    let h = ChatHarness::with(
        json!([fake.provider("primary", &["k1"], models)]),
        fast_config(),
        &[("AUTH_USER_CACHE_TTL_SECS", "600")],
        None,
    )
    .await;
    let alice = h.caller("alice").await;
    h.calls.take();
    let (_, all) = stream(&h, &alice, json!({"message": "first"})).await;
    let new_conversation = h.calls.take();
    let id = events(&all)[0].1["conversation_id"].as_str().unwrap().to_string();
    stream(&h, &alice, json!({"message": "second", "conversation_id": id})).await;
    let follow_up = h.calls.take();
    println!("DynamoDB calls, new conversation: {new_conversation:?}");
    println!("DynamoDB calls, follow-up in a conversation: {follow_up:?}");
    // The user is cached (signed in before); the limiter charges both policies (global per IP,
    // chat per user) in one transaction; the prompt is stored before the upstream call, the answer after.
    // The answer's item is written (PutItem) before the upstream call, so it can be followed at once.
    // The open-stream lease: one Query of the user's slots and one PutItem after the limiter, one
    // DeleteItem (release) before the stream's last byte.
    assert_eq!(
        new_conversation,
        ["TransactWriteItems", "Query", "PutItem", "TransactWriteItems", "PutItem", "TransactWriteItems", "DeleteItem"]
    );
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
}

#[tokio::test]
async fn regenerate_replaces_the_answer_without_duplicating_the_prompt() {
    let fake = FakeUpstream::start().await;
    fake.push(Behavior::ok().reply("first answer").chunks(2));
    fake.push(Behavior::ok().reply("second answer").chunks(2));
    fake.push(Behavior::ok().reply("third answer").chunks(2));
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "question"})).await;
    let start = events(&all)[0].1.clone();
    let id = start["conversation_id"].as_str().unwrap().to_string();
    let first_answer = start["message_id"].as_str().unwrap().to_string();

    let res = h.post("/api/v1/chat/regenerate", &alice).json(&json!({"conversation_id": id})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let evs = events(&parse_sse(&res.text().await.unwrap()));
    assert_eq!(evs.first().unwrap().0, "conversation");
    assert_eq!(evs[0].1["replaces"].as_str(), Some(first_answer.as_str()));
    assert_eq!(evs[0].1["user_message_id"], start["user_message_id"]);
    assert_eq!(evs.last().unwrap().0, "done");

    let regen = &fake.requests()[1].body["messages"];
    let sent: Vec<(&str, &str)> = regen.as_array().unwrap()[1..]
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(sent, [("user", "question")], "the prompt once, the old answer not sent");

    let (conv, msgs) = stored(&h, &alice, &id).await;
    let stored: Vec<(Role, &str)> = msgs.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(stored, [(Role::User, "question"), (Role::Assistant, "second answer")]);
    assert_eq!(conv.message_count, 2);

    // The whole-answer variant replaces in the same way.
    let res = h
        .post("/api/v1/chat/regenerate", &alice)
        .json(&json!({"conversation_id": id, "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, msgs) = stored_pair(&h, &alice, &id).await;
    assert_eq!(msgs, [(Role::User, "question".to_string()), (Role::Assistant, "third answer".to_string())]);
}

async fn stored_pair(h: &ChatHarness, who: &Caller, id: &str) -> (Conversation, Vec<(Role, String)>) {
    let (c, m) = stored(h, who, id).await;
    (c, m.into_iter().map(|m| (m.role, m.content)).collect())
}

#[tokio::test]
async fn regenerate_answers_a_prompt_left_without_an_answer() {
    let fake = FakeUpstream::start().await;
    fake.push(Behavior::status(400)); // refused: the prompt is stored, no answer
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let res = h.post("/api/v1/chat/completions", &alice).json(&json!({"message": "q"})).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let id = h.service().store().list(alice.id(), 10, None).await.unwrap().items[0].id.to_string();
    let res = h
        .post("/api/v1/chat/regenerate", &alice)
        .json(&json!({"conversation_id": id, "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, msgs) = stored_pair(&h, &alice, &id).await;
    assert_eq!(msgs, [(Role::User, "q".to_string()), (Role::Assistant, "tok0 tok1 tok2 ".to_string())]);
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_stop_the_answer_which_is_stored_as_it_grows() {
    let fake = FakeUpstream::start().await;
    // 30 pieces of 100 bytes, 100 ms apart: progressive writes (every 512 bytes and 1 s at most) land mid-answer.
    let reply: String = (0..30).map(|i| format!("{i:02} {}\n", "x".repeat(96))).collect();
    fake.set_default(Behavior::ok().reply(&reply).chunks(30).token_delay(Duration::from_millis(100)));
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let mut res =
        h.post("/api/v1/chat/completions", &alice).json(&json!({"message": "a long story"})).send().await.unwrap();
    let mut seen = String::new();
    while events(&parse_sse(&seen)).iter().filter(|(n, _)| n == "delta").count() < 2 {
        let chunk = res.chunk().await.unwrap().expect("stream continues");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let id = events(&parse_sse(&seen))[0].1["conversation_id"].as_str().unwrap().to_string();
    drop(res); // the client goes away mid-answer

    let mut partial = None;
    let answer = loop {
        let (_, msgs) = stored(&h, &alice, &id).await;
        let answer =
            msgs.into_iter().find(|m| m.role == Role::Assistant).expect("the answer's item exists from the start");
        match answer.status {
            MessageStatus::Streaming => {
                if !answer.content.is_empty() && partial.is_none() {
                    partial = Some(answer.content);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break answer,
        }
    };
    assert_eq!(answer.status, MessageStatus::Complete, "the answer went on without its client");
    assert_eq!(answer.content, reply);
    let partial = partial.expect("the text was stored while it was generated");
    assert!(partial.len() < reply.len() && reply.starts_with(&partial), "{} of {}", partial.len(), reply.len());
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_stream_alive() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(3).token_delay(Duration::from_millis(800)));
    let config = ChatConfig { heartbeat: Duration::from_millis(150), ..fast_config() };
    let h = one_provider(&fake, config).await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "slowly please"})).await;
    let first_delta = all.iter().position(|e| e.name() == "delta").unwrap();
    let done = all.iter().position(|e| e.name() == "done").unwrap();
    assert!(all[first_delta..done].iter().any(|e| matches!(e, Sse::Comment(c) if c == "keep-alive")), "{all:?}");
    assert_eq!(events(&all).len(), 5, "heartbeats are comments, not events");
}

#[tokio::test]
async fn models_are_listed_publicly() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let h = ChatHarness::new(
        json!([
            a.provider(
                "groq",
                &["k"],
                json!([{"id": "llama", "context_length": 131072}, {"id": "whisper", "chat": false, "audio": true}])
            ),
            b.provider(
                "openrouter",
                &["k"],
                json!([{"id": "llama", "upstream_id": "meta-llama/llama"}, {"id": "eyes", "vision": true}])
            )
        ]),
        fast_config(),
    )
    .await;
    let res = http().get(format!("{}/api/v1/chat/models", h.base)).send().await.unwrap();
    assert_eq!(res.status(), 200, "no caller needed");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["default_model"], "llama");
    let models = body["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    assert_eq!(models[0]["id"], "llama");
    assert_eq!(models[0]["provider"], "groq");
    assert_eq!(models[0]["providers"], json!(["groq", "openrouter"]));
    assert_eq!(models[0]["context_length"], 131072);
    assert_eq!(models[1]["capabilities"], json!({"chat": false, "vision": false, "audio": true}));
    assert_eq!(models[2]["capabilities"]["vision"], true);
    assert!(!body.to_string().contains("\"k\""), "no keys in the listing");
}

#[tokio::test]
async fn invalid_input_is_rejected_before_anything_is_written() {
    let fake = FakeUpstream::start().await;
    let h = ChatHarness::new(
        json!([fake.provider("p", &["k"], json!([{"id": "text"}, {"id": "eyes", "vision": true}]))]),
        fast_config(),
    )
    .await;
    let alice = h.caller("alice").await;
    let cases = [
        (json!({"message": "x", "model": "gpt-17"}), "/model"),
        (json!({"message": "x", "model": "text", "attachments": ["https://img.example/a.png"]}), "/attachments"),
        (json!({"message": "   "}), "/message"),
        (json!({"message": "x", "temperature": 2.01}), "/temperature"),
        (json!({"message": "x", "max_tokens": 9000}), "/max_tokens"),
    ];
    for (body, pointer) in cases {
        let res = h.post("/api/v1/chat/completions", &alice).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
        let p: Value = res.json().await.unwrap();
        assert!(p["errors"].as_array().unwrap().iter().any(|e| e["pointer"] == pointer), "{p}");
    }
    assert!(h.service().store().list(alice.id(), 10, None).await.unwrap().items.is_empty());
    assert_eq!(fake.request_count(), 0);

    // With a vision model the image (verified by its magic number) goes upstream with the prompt.
    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tiny.png")).unwrap();
    let data_url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    let (_, all) =
        stream(&h, &alice, json!({"message": "what is this?", "model": "eyes", "attachments": [{"url": data_url}]}))
            .await;
    assert_eq!(events(&all).last().unwrap().0, "done");
    let last = fake.requests()[0].body["messages"][1].clone();
    assert_eq!(last["content"][0], json!({"type": "text", "text": "what is this?"}));
    assert_eq!(last["content"][1]["image_url"]["url"], data_url.as_str());
}

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let fake = FakeUpstream::start().await;
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let bob = h.caller("bob").await;
    let (_, all) = stream(&h, &alice, json!({"message": "private"})).await;
    let id = events(&all)[0].1["conversation_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{id}");
    let checks = [
        h.get(&path, &bob).send().await.unwrap().status(),
        h.post("/api/v1/chat/completions", &bob)
            .json(&json!({"message": "x", "conversation_id": id}))
            .send()
            .await
            .unwrap()
            .status(),
        h.post("/api/v1/chat/regenerate", &bob).json(&json!({"conversation_id": id})).send().await.unwrap().status(),
        h.patch(&path, &bob).json(&json!({"title": "mine"})).send().await.unwrap().status(),
        h.delete(&path, &bob).send().await.unwrap().status(),
    ];
    assert!(checks.iter().all(|s| *s == 404), "{checks:?}");
    let res = h.get(&path, &alice).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["conversation"]["title"], "private");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "bob's attempts changed nothing");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn conversation_routes_list_read_rename_and_delete() {
    let fake = FakeUpstream::start().await;
    let h = one_provider(&fake, fast_config()).await;
    let alice = h.caller("alice").await;
    let (_, all) = stream(&h, &alice, json!({"message": "first chat"})).await;
    let id = events(&all)[0].1["conversation_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{id}");

    let list: Value = h.get("/api/v1/conversations", &alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["conversations"][0]["id"], id.as_str());
    assert_eq!(list["next_cursor"], Value::Null);

    let res = h.patch(&path, &alice).json(&json!({"title": "  Chai  recipes "})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // A title is a short identifier: NFC, trimmed, one line (inner spacing is the user's).
    assert_eq!(res.json::<Value>().await.unwrap()["title"], "Chai  recipes");
    let res = h.patch(&path, &alice).json(&json!({"title": " "})).send().await.unwrap();
    assert_eq!(res.status(), 422);

    let res = h.get("/api/v1/conversations?cursor=bm90LWEtY3Vyc29y", &alice).send().await.unwrap();
    assert_eq!(res.status(), 422, "a forged cursor is a field error");

    let res = h.delete(&path, &alice).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(h.get(&path, &alice).send().await.unwrap().status(), 404);
    let list: Value = h.get("/api/v1/conversations", &alice).send().await.unwrap().json().await.unwrap();
    assert!(list["conversations"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn unusable_provider_configuration_is_503_and_leaks_nothing() {
    let h = ChatHarness::new(
        json!([{"name": "x", "base_url": "ftp://nope", "api_keys": ["sk-live-TOPSECRET"], "models": [{"id": "m"}]}]),
        fast_config(),
    )
    .await;
    let alice = h.caller("alice").await;
    for res in [
        h.post("/api/v1/chat/completions", &alice).json(&json!({"message": "hi"})).send().await.unwrap(),
        http().get(format!("{}/api/v1/chat/models", h.base)).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 503);
        let text = res.text().await.unwrap();
        assert!(!text.contains("TOPSECRET") && !text.contains("ftp"), "{text}");
    }
}

/// A real (tiny) WAV file: 16 kHz mono 16-bit PCM, a quarter second of a 440 Hz tone.
fn wav() -> Vec<u8> {
    let samples: Vec<i16> =
        (0..4000).map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin() * 8000.0) as i16).collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&32000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn transcription_sends_the_audio_as_multipart_with_failover() {
    use chat::providers::client::AudioFile;
    use chat::service::TranscriptionInput;
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(Behavior::status(502));
    let whisper = json!([{"id": "whisper", "upstream_id": "whisper-large-v3", "chat": false, "audio": true}]);
    let h = ChatHarness::new(
        json!([a.provider("a", &["ka"], whisper.clone()), b.provider("b", &["kb"], whisper)]),
        fast_config(),
    )
    .await;
    let audio = wav();
    let input = TranscriptionInput {
        audio: AudioFile {
            bytes: audio.clone().into(),
            file_name: "audio.wav".into(),
            content_type: "audio/wav".into(),
        },
        seconds: 1,
        language: Some("ur".into()),
        model: None,
    };
    let out = h.service().transcribe(&user("alice"), input.clone()).await.unwrap();
    assert_eq!(out.text, format!("transcribed {} bytes", audio.len()));
    assert_eq!(out.language.as_deref(), Some("urdu"));
    let sent = &b.requests()[0];
    assert_eq!(sent.path, "/v1/audio/transcriptions");
    assert_eq!(sent.key.as_deref(), Some("kb"));
    assert_eq!(sent.body["model"], "whisper-large-v3");
    assert_eq!(sent.body["response_format"], "verbose_json");
    assert_eq!(sent.body["language"], "ur");
    assert_eq!(sent.body["file_bytes"], audio.len());
    assert_eq!(sent.body["file_type"], "audio/wav");
    assert_eq!(sent.body["file_name"], "audio.wav");
    assert_eq!(a.request_count(), 1);

    let bad = TranscriptionInput { model: Some("nope".into()), ..input.clone() };
    assert!(matches!(
        h.service().transcribe(&user("alice"), bad).await.map_err(baatcheet_shared::ApiError::from),
        Err(baatcheet_shared::ApiError::Validation(_))
    ));
    let empty = TranscriptionInput { audio: AudioFile { bytes: Vec::new().into(), ..input.audio.clone() }, ..input };
    assert!(h.service().transcribe(&user("alice"), empty).await.is_err());
}
