//! Chat on flaky connections (issue 24), through the Lambda-shaped stack: resumable streams
//! (`id:` on every event, `GET /api/v1/chat/messages/{message_id}/stream` with `Last-Event-ID`),
//! Idempotency-Key on the chat routes, a clean state when every provider fails, and one regenerate
//! at a time.

use baatcheet_tests::chat::{Caller, ChatHarness, fast_config};
use baatcheet_tests::deployed::start;
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::http;
use chat::store::idempotency::IdempotencyStore;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::time::Duration;

/// The Lambda-shaped stack with one fake provider.
async fn stack(fake: &FakeUpstream, env: &[(&str, &str)]) -> (ChatHarness, baatcheet_local::lambda_stack::LambdaStack) {
    let models = json!([{"id": "text", "context_length": 32768}]);
    let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), env, None).await;
    let gw = start(&h.stack).await;
    (h, gw)
}

/// One event as a client reads it: its id, name and data.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: Option<String>,
    name: String,
    data: Value,
}

/// Reads a `text/event-stream` body event by event, as it arrives.
struct Reader {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Reader {
    fn new(res: reqwest::Response) -> Self {
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { body: res.bytes_stream().boxed(), buf: String::new() }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue; // heartbeat
                }
                let (mut id, mut name, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                return Some(Event { id, name, data: serde_json::from_str(&data).unwrap() });
            }
            let chunk = self.body.next().await?.expect("body reads");
            self.buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8 (events are whole lines)"));
        }
    }

    async fn rest(mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

fn text(events: &[Event]) -> String {
    events.iter().filter(|e| e.name == "delta").map(|e| e.data["content"].as_str().unwrap()).collect()
}

struct Api {
    base: String,
}

impl Api {
    fn post(&self, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        http().post(format!("{}{path}", self.base)).header("authorization", who.bearer())
    }

    fn follow(&self, message: &str, who: &Caller, last: Option<&str>) -> reqwest::RequestBuilder {
        let r = http()
            .get(format!("{}/api/v1/chat/messages/{message}/stream", self.base))
            .header("authorization", who.bearer());
        match last {
            Some(id) => r.header("last-event-id", id),
            None => r,
        }
    }
}

#[tokio::test]
async fn a_client_that_drops_mid_answer_resumes_with_no_gap_and_no_repeat() {
    let fake = FakeUpstream::start().await;
    let reply = "Chai ke liye: پانی ابالیں، پتی ڈالیں، دودھ اور چینی ملائیں۔ Bas!";
    fake.set_default(Behavior::ok().reply(reply).chunks(8).token_delay(Duration::from_millis(150)));
    let (h, gw) = stack(&fake, &[]).await;
    let api = Api { base: gw.base_url() };
    let alice = h.caller("alice").await;

    let mut dropped = Reader::new(
        api.post("/api/v1/chat/completions", &alice).json(&json!({"message": "Chai?"})).send().await.unwrap(),
    );
    let mut seen = Vec::new();
    while seen.iter().filter(|e: &&Event| e.name == "delta").count() < 2 {
        seen.push(dropped.next().await.expect("an event"));
    }
    assert_eq!(seen[0].name, "conversation");
    assert_eq!(seen[0].id.as_deref(), Some("0"));
    let message = seen[0].data["message_id"].as_str().unwrap().to_string();
    // A client that never drops, following the same answer from its start.
    let whole = Reader::new(api.follow(&message, &alice, None).send().await.unwrap());
    drop(dropped); // the connection goes away after the second delta
    let last = seen.last().unwrap().id.clone().expect("every event has an id");
    assert_eq!(last, text(&seen).len().to_string(), "a delta's id is the answer's length in bytes after it");

    let resumed = Reader::new(api.follow(&message, &alice, Some(&last)).send().await.unwrap()).rest().await;
    let whole = whole.rest().await;
    assert_eq!(whole[0].name, "conversation");
    assert_eq!(whole[0].data, seen[0].data, "the replayed conversation event is the one first sent");
    assert!(resumed.iter().all(|e| e.name != "conversation"), "after an id, only later events");
    assert_eq!(resumed.last().map(|e| (e.name.as_str(), e.id.as_deref())), Some(("done", Some("end"))));
    assert_eq!(whole.last().unwrap(), resumed.last().unwrap());
    seen.extend(resumed);
    assert_eq!(text(&seen), reply, "no gap and no repeat");
    assert_eq!(text(&whole), reply);
    for w in seen.windows(2).filter(|w| w[1].name == "delta") {
        let (a, b): (usize, usize) =
            (w[0].id.as_ref().unwrap().parse().unwrap(), w[1].id.as_ref().unwrap().parse().unwrap());
        assert_eq!(b - a, w[1].data["content"].as_str().unwrap().len(), "ids are byte offsets");
    }
    // The answer was generated once and stored whole although its first client left.
    assert_eq!(fake.request_count(), 1);
    let conversation: String = seen[0].data["conversation_id"].as_str().unwrap().into();
    let res = http()
        .get(format!("{}/api/v1/conversations/{conversation}", api.base))
        .header("authorization", alice.bearer())
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let answer = &body["messages"][1];
    assert_eq!((answer["content"].as_str(), answer["status"].as_str()), (Some(reply), Some("complete")));

    // After the end: the end again; a bad id is a 400; someone else's answer is a 404.
    let again = Reader::new(api.follow(&message, &alice, Some("end")).send().await.unwrap()).rest().await;
    assert_eq!(again.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["done"]);
    let bad = api.follow(&message, &alice, Some("-3")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    // Inside a multi-byte character: not an id this stream sent.
    let inside = reply.char_indices().find(|(i, c)| c.len_utf8() > 1 && *i > 0).unwrap().0 + 1;
    let bad = api.follow(&message, &alice, Some(&inside.to_string())).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let mallory = h.caller("mallory").await;
    let res = api.follow(&message, &mallory, None).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

/// The messages of a conversation, as its owner reads them.
async fn messages(api: &Api, who: &Caller, conversation: &str) -> Vec<Value> {
    let res = http()
        .get(format!("{}/api/v1/conversations/{conversation}", api.base))
        .header("authorization", who.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn five_concurrent_sends_with_one_key_cost_once_and_get_one_answer() {
    let fake = FakeUpstream::start().await;
    let reply = "Ek hi jawab, paanch baar.";
    fake.set_default(Behavior::ok().reply(reply).chunks(5).token_delay(Duration::from_millis(200)));
    let (h, gw) = stack(&fake, &[("RATE_LIMIT_CHAT_FREE", "10/1h")]).await;
    let api = Api { base: gw.base_url() };
    let alice = h.caller("alice").await;
    let key = uuid::Uuid::new_v4().to_string();
    let send = |stream: bool| {
        api.post("/api/v1/chat/completions", &alice)
            .header("idempotency-key", &key)
            .json(&json!({"message": "Paanch baar bhejo", "stream": stream}))
            .send()
    };
    // Four ask for events, one for JSON: the same answer in the form each asked for.
    let (a, b, c, d, e) = tokio::join!(send(true), send(true), send(true), send(true), send(false));
    let mut answers = Vec::new();
    for res in [a, b, c, d] {
        answers.push(Reader::new(res.unwrap()).rest().await);
    }
    let whole: Value = {
        let res = e.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    };
    let done: Vec<&Value> = answers.iter().map(|a| &a.last().unwrap().data).collect();
    for a in &answers {
        assert_eq!(text(a), reply);
        assert_eq!(a.last().unwrap().name, "done");
        assert_eq!(a.last().unwrap().data["message_id"], done[0]["message_id"], "one answer");
    }
    assert_eq!(whole["message"]["content"], reply);
    assert_eq!(whole["message"]["id"], done[0]["message_id"]);
    assert_eq!(fake.request_count(), 1, "one provider call");
    let conversation = answers[0][0].data["conversation_id"].as_str().unwrap().to_string();
    let stored = messages(&api, &alice, &conversation).await;
    assert_eq!(stored.len(), 2, "one user message and its answer: {stored:?}");
    assert_eq!(h.service().store().list(alice.id(), 10, None).await.unwrap().items.len(), 1, "one conversation");
    // The chat limit was charged once: a new send is the second of ten.
    let res = api
        .post("/api/v1/chat/completions", &alice)
        .json(&json!({"message": "aur", "stream": false}))
        .send()
        .await
        .unwrap();
    let (_, (name, remaining, _)) = baatcheet_tests::chat::rate_limit(res.headers());
    assert_eq!((name.as_str(), remaining), ("chat", 8));

    // The same key with another body is a 422; a malformed key a 400; neither costs a provider call.
    let res = api
        .post("/api/v1/chat/completions", &alice)
        .header("idempotency-key", &key)
        .json(&json!({"message": "kuch aur"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["pointer"], "/headers/idempotency-key", "{body}");
    for bad in ["", "has space", &"k".repeat(129)] {
        let res = api
            .post("/api/v1/chat/completions", &alice)
            .header("idempotency-key", bad)
            .json(&json!({"message": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad:?}");
        assert!(res.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("Idempotency-Key"));
    }
    // The same key from another user is theirs alone.
    let bob = h.caller("bob").await;
    let res = api
        .post("/api/v1/chat/completions", &bob)
        .header("idempotency-key", &key)
        .json(&json!({"message": "kuch aur", "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fake.request_count(), 3);

    // Erasure removes every key of a user, and only theirs.
    let keys = IdempotencyStore::new(h.ctx.dynamo.clone(), h.stack.env["CONVERSATIONS_TABLE"].clone());
    assert_eq!(keys.delete_all_for_user(alice.id()).await.unwrap(), 1);
    assert_eq!(keys.delete_all_for_user(alice.id()).await.unwrap(), 0);
    assert_eq!(keys.delete_all_for_user(bob.id()).await.unwrap(), 1);
}

#[tokio::test]
async fn a_send_no_provider_answered_is_answered_by_its_retry_with_one_user_message() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::status(500));
    let (h, gw) = stack(&fake, &[]).await;
    let api = Api { base: gw.base_url() };
    let alice = h.caller("alice").await;
    let key = uuid::Uuid::new_v4().to_string();
    let send = || {
        api.post("/api/v1/chat/completions", &alice)
            .header("idempotency-key", &key)
            .json(&json!({"message": "Kya mausam hai?"}))
            .send()
    };
    let res = send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("marked failed"), "{problem}");
    let listed = h.service().store().list(alice.id(), 10, None).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let conversation = listed.items[0].id.to_string();
    let stored = messages(&api, &alice, &conversation).await;
    assert_eq!(stored.len(), 1, "no half-written answer: {stored:?}");
    assert_eq!((stored[0]["role"].as_str(), stored[0]["status"].as_str()), (Some("user"), Some("failed")));
    assert!(problem["detail"].as_str().unwrap().contains(stored[0]["id"].as_str().unwrap()));

    // The provider is back: the retry answers the stored message.
    fake.set_default(Behavior::ok().reply("Dhoop hai."));
    let failed_calls = fake.request_count();
    let answer = Reader::new(send().await.unwrap()).rest().await;
    assert_eq!(text(&answer), "Dhoop hai.");
    assert_eq!(answer[0].data["user_message_id"], stored[0]["id"]);
    assert_eq!(answer.last().unwrap().name, "done");
    let stored = messages(&api, &alice, &conversation).await;
    let summary: Vec<(&str, &str)> =
        stored.iter().map(|m| (m["role"].as_str().unwrap(), m["status"].as_str().unwrap())).collect();
    assert_eq!(summary, [("user", "complete"), ("assistant", "complete")], "one user message, answered");
    assert_eq!(h.service().store().list(alice.id(), 10, None).await.unwrap().items.len(), 1);
    // A repeat now replays that answer.
    let again = Reader::new(send().await.unwrap()).rest().await;
    assert_eq!(text(&again), "Dhoop hai.");
    assert_eq!(fake.request_count(), failed_calls + 1, "one answer generated");
}

#[tokio::test]
async fn two_concurrent_regenerates_one_answer_kept_one_409() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().reply("Pehla jawab.").first_delay(Duration::from_millis(300)));
    let (h, gw) = stack(&fake, &[]).await;
    let api = Api { base: gw.base_url() };
    let alice = h.caller("alice").await;
    let send = |m: &'static str| {
        api.post("/api/v1/chat/completions", &alice).json(&json!({"message": m, "stream": false})).send()
    };
    // Two at once: two warm instances, so the regenerates below run side by side.
    let (first, _) = tokio::join!(send("Ek sher sunao"), send("Doosri baat"));
    let first: Value = first.unwrap().json().await.unwrap();
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    fake.set_default(
        Behavior::ok().reply("Naya jawab, dheere dheere.").chunks(4).token_delay(Duration::from_millis(300)),
    );
    let regen = || api.post("/api/v1/chat/regenerate", &alice).json(&json!({"conversation_id": conversation})).send();
    // The first is answering (its first event arrived) when the second comes.
    let mut kept = Reader::new(regen().await.unwrap());
    let started = kept.next().await.unwrap();
    let refused = regen().await.unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    let mut kept_events = vec![started];
    kept_events.extend(kept.rest().await);
    let kept = kept_events;
    let running = kept[0].data["message_id"].as_str().unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("/api/v1/chat/messages/{running}/stream")), "{detail}");
    assert_eq!(text(&kept), "Naya jawab, dheere dheere.");
    let stored = messages(&api, &alice, &conversation).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["id"].as_str(), Some(running), "one answer kept: the new one");
    assert_eq!(stored[1]["content"], "Naya jawab, dheere dheere.");
    // The lock went with the answer: the next regenerate proceeds.
    fake.set_default(Behavior::ok().reply("Teesra."));
    let res = api
        .post("/api/v1/chat/regenerate", &alice)
        .json(&json!({"conversation_id": conversation, "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["message"]["content"], "Teesra.");
}
