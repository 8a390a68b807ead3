//! Per-user limits of the chat function that need more than a token bucket per request, through
//! the Lambda-shaped stack: audio charged by its measured seconds, and open completion streams
//! capped per user by leases in DynamoDB, exact across separate instance processes.

use baatcheet_tests::chat::ChatHarness;
use baatcheet_tests::chat::fast_config;
use baatcheet_tests::deployed::start;
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::http;
use serde_json::{Value, json};

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
