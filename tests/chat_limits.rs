//! Per-user limits of the chat function that need more than a token bucket per request, through
//! the Lambda-shaped stack: audio charged by its measured seconds, and open completion streams
//! capped per user by leases in DynamoDB, exact across separate instance processes.

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_tests::chat::{Caller, ChatHarness, events, fast_config, parse_sse};
use baatcheet_tests::deployed::{start, start_with};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::http;
use serde_json::{Value, json};
use std::time::Duration;

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// A PCM WAV file of `secs` seconds (8 kHz, mono, 16-bit).
fn wav(secs: u32) -> Vec<u8> {
    let frames = 8000 * secs;
    let data_len = frames * 2;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend((0..frames).flat_map(|i| (((i % 40) as i16 - 20) * 800).to_le_bytes()));
    v
}

fn form(bytes: Vec<u8>, declared: &str) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("clip").mime_str(declared).unwrap();
    reqwest::multipart::Form::new().part("file", part)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn a_transcription_is_charged_its_seconds_and_an_over_long_file_is_refused() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().reply("salaam"));
    let models = json!([{"id": "whisper", "chat": false, "audio": true}]);
    let env = [("RATE_LIMIT_AUDIO_SECONDS_FREE", "10/1h"), ("MAX_AUDIO_SECONDS", "5")];
    let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), &env, None).await;
    let gw = start(&h.stack).await;
    let bob = h.caller("bob").await;
    let transcribe = |f: reqwest::multipart::Form| {
        http()
            .post(format!("{}/api/v1/chat/transcribe", gw.base_url()))
            .header("authorization", bob.bearer())
            .multipart(f)
            .send()
    };

    // Longer than MAX_AUDIO_SECONDS: refused before any charge of its seconds or upstream call.
    let res = transcribe(form(wav(6), "audio/wav")).await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(header(&res, "content-type").as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["pointer"], "/file", "{body}");
    assert!(body["errors"][0]["detail"].as_str().unwrap_or_default().contains("at most 5 s"), "{body}");

    // Each 3 s file takes 3 of the 10 seconds, whatever its container.
    for (i, (file, declared)) in
        [("tone-3s.ogg", "audio/ogg"), ("tone-3s.webm", "audio/webm"), ("tone-3s.m4a", "audio/mp4")].iter().enumerate()
    {
        let res = transcribe(form(fixture(file), declared)).await.unwrap();
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(header(&res, "ratelimit-policy").as_deref(), Some("\"audio_seconds\";q=10;w=3600"), "{file}");
        let left = 10 - 3 * (i as u64 + 1);
        let field = header(&res, "ratelimit").unwrap_or_default();
        assert!(field.starts_with(&format!("\"audio_seconds\";r={left};")), "{file}: {field}");
    }
    assert_eq!(fake.request_count(), 3);

    // 1 second left: a 3 s file is refused until 2 more have come back (360 s each).
    let res = transcribe(form(fixture("tone-3s.mp3"), "audio/mpeg")).await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((700..=720).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["policy"], "audio_seconds", "{body}");
    // A 1 s file still fits.
    let res = transcribe(form(wav(1), "audio/wav")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fake.request_count(), 4, "refused files never reach the upstream");
}

// ---- open completion streams ----

/// A chat stack whose fake provider streams `chunks` pieces 100 ms apart.
async fn stream_stack(chunks: usize, env: &[(&str, &str)]) -> (FakeUpstream, ChatHarness) {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(chunks).token_delay(Duration::from_millis(100)));
    let models = json!([{"id": "text", "context_length": 32768}]);
    let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), env, None).await;
    (fake, h)
}

async fn open(base: &str, who: &Caller, message: &str) -> reqwest::Response {
    http()
        .post(format!("{base}/api/v1/chat/completions"))
        .header("authorization", who.bearer())
        .json(&json!({"message": message}))
        .send()
        .await
        .unwrap()
}

/// The stream's event names, read to its end.
async fn finish(res: reqwest::Response) -> Vec<String> {
    let text = res.text().await.unwrap_or_default();
    events(&parse_sse(&text)).into_iter().map(|(name, _)| name).collect()
}

/// The lease items the user's streams hold in the table.
async fn lease_items(h: &ChatHarness, who: &Caller) -> usize {
    baatcheet_shared::aws::dynamodb(&h.stack.sdk)
        .query()
        .table_name(&h.stack.env["STREAM_LEASES_TABLE"])
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(who.id().to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("query")
        .count() as usize
}

#[tokio::test]
async fn a_free_users_third_concurrent_stream_is_refused_and_an_ended_one_frees_its_place() {
    // Each answer streams for 6 s: long enough to hold both places while the third is asked for.
    let (_fake, h) = stream_stack(60, &[]).await;
    let gw = start(&h.stack).await;
    let base = gw.base_url();
    let bob = h.caller("bob").await;

    let a = open(&base, &bob, "first").await;
    assert_eq!(a.status(), 200);
    let b = open(&base, &bob, "second").await;
    assert_eq!(b.status(), 200);
    // One invocation at a time per instance: the two streams run in two processes.
    let pool = gw.pool("ChatFunction").expect("chat pool");
    assert_eq!(pool.instances_live(), 2, "started {}", pool.instances_started());
    assert_eq!(lease_items(&h, &bob).await, 2);

    let c = open(&base, &bob, "third").await;
    assert_eq!(c.status(), 429);
    let retry: u64 = header(&c, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=30).contains(&retry), "within the lease TTL: {retry}");
    assert_eq!(header(&c, "content-type").as_deref(), Some("application/problem+json"));
    let body: Value = c.json().await.unwrap();
    assert_eq!((body["status"].as_u64(), body["policy"].as_str()), (Some(429), Some("streams")), "{body}");

    // Another user is not held up by bob's streams.
    let carol = h.caller("carol").await;
    let other = open(&base, &carol, "mine").await;
    assert_eq!(other.status(), 200);

    // A stream that ended has released its place before its last byte: a new one is admitted.
    assert_eq!(finish(a).await.last().map(String::as_str), Some("done"));
    let d = open(&base, &bob, "fourth").await;
    assert_eq!(d.status(), 200);
    for res in [b, d, other] {
        assert_eq!(finish(res).await.last().map(String::as_str), Some("done"));
    }
    assert_eq!(lease_items(&h, &bob).await, 0, "every ended stream released its lease");
}

#[tokio::test]
async fn a_client_that_drops_keeps_its_place_until_the_answer_it_left_is_made() {
    // One place; a 3 s answer whose client leaves after its first bytes.
    let (_fake, h) = stream_stack(30, &[("CHAT_STREAMS_FREE", "1")]).await;
    let gw = start(&h.stack).await;
    let base = gw.base_url();
    let bob = h.caller("bob").await;

    let mut a = open(&base, &bob, "I will not wait").await;
    assert_eq!(a.status(), 200);
    assert!(a.chunk().await.expect("first bytes").is_some());
    drop(a);
    // The answer goes on without its client, so the place stays taken: dropping and resending
    // must not start a second generation past the cap.
    let again = open(&base, &bob, "again").await;
    assert_eq!(again.status(), 429, "a dropped client's generation still holds its place");
    assert_eq!(again.json::<Value>().await.unwrap()["policy"], "streams");

    // Once the answer is made (and stored), the place is free.
    let mut tries = 0;
    while lease_items(&h, &bob).await > 0 {
        tries += 1;
        assert!(tries < 100, "the finished generation never released its place");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = open(&base, &bob, "now").await;
    assert_eq!(next.status(), 200);
    assert_eq!(finish(next).await.last().map(String::as_str), Some("done"));
}

#[tokio::test]
async fn a_whole_answer_holds_a_place_only_while_it_is_made() {
    let (_fake, h) = stream_stack(2, &[("CHAT_STREAMS_FREE", "1")]).await;
    let gw = start(&h.stack).await;
    let bob = h.caller("bob").await;
    for i in 0..3 {
        let res = http()
            .post(format!("{}/api/v1/chat/completions", gw.base_url()))
            .header("authorization", bob.bearer())
            .json(&json!({"message": format!("hello {i}"), "stream": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "one at a time, each after the last ended");
    }
    assert_eq!(lease_items(&h, &bob).await, 0);
}

#[tokio::test]
async fn a_crashed_instances_lease_is_reclaimed_at_its_expiry() {
    // One stream at a time, a 2 s lease TTL, and a function timeout (5 s) that kills the instance
    // in the middle of a 20 s answer: its process dies holding the lease.
    let env = [("CHAT_STREAMS_FREE", "1"), ("CHAT_STREAM_LEASE_TTL_SECONDS", "2")];
    let (fake, h) = stream_stack(200, &env).await;
    let gw = start_with(
        &h.stack,
        |d| {
            if let Some(f) = d.functions.get_mut("ChatFunction") {
                f.timeout = Duration::from_secs(5);
            }
        },
        &[],
    )
    .await;
    let base = gw.base_url();
    let bob = h.caller("bob").await;

    let a = open(&base, &bob, "a long one").await;
    assert_eq!(a.status(), 200);
    let names = finish(a).await;
    assert!(!names.iter().any(|n| n == "done"), "the instance was killed mid-stream: {names:?}");
    // Nobody released it: the dead process's lease is still there.
    assert_eq!(lease_items(&h, &bob).await, 1);

    // Refused while the lease is live; admitted once it has lapsed (2 s after the last heartbeat).
    fake.set_default(Behavior::ok().chunks(2));
    let mut refused = 0;
    let admitted = loop {
        let res = open(&base, &bob, "again").await;
        if res.status() == 200 {
            break res;
        }
        assert_eq!(res.status(), 429);
        assert_eq!(res.json::<Value>().await.unwrap()["policy"], "streams");
        refused += 1;
        assert!(refused < 60, "the lease was never reclaimed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(finish(admitted).await.last().map(String::as_str), Some("done"));
}
