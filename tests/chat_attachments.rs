//! Images with a message, through the chat router with real tokens: web URLs checked by the SSRF
//! guard (DNS from a fixed table, so hostile names resolve to internal addresses without the
//! internet), data URLs decoded and every file verified by its magic number, vision-capable models
//! only, each image counted against the images limit. A refused request stores nothing, reaches no
//! upstream, and costs no image quota.

use baatcheet_tests::chat::{Caller, ChatHarness, events, fast_config, parse_sse};
use baatcheet_tests::fake_upstream::FakeUpstream;
use baatcheet_tests::resolver::MapResolver;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

fn resolver() -> MapResolver {
    MapResolver::new(&[
        // Public, but unreachable from a machine without the internet.
        ("images.example.com", &["93.184.215.14"]),
        // Names an attacker controls that point inwards.
        ("loopback.attacker.test", &["127.0.0.1"]),
        ("v6loop.attacker.test", &["::1"]),
        ("metadata.attacker.test", &["169.254.169.254"]),
        ("private.attacker.test", &["10.0.0.7"]),
        ("mixed.attacker.test", &["93.184.215.14", "192.168.1.1"]),
        ("mapped.attacker.test", &["::ffff:127.0.0.1"]),
        ("ec2v6.attacker.test", &["fd00:ec2::254"]),
    ])
}

async fn harness(fake: &FakeUpstream, env: &[(&str, &str)]) -> (ChatHarness, Caller) {
    let models = json!([{"id": "text"}, {"id": "eyes", "vision": true}]);
    let h =
        ChatHarness::with(json!([fake.provider("p", &["k"], models)]), fast_config(), env, Some(Arc::new(resolver())))
            .await;
    let alice = h.caller("alice").await;
    (h, alice)
}

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn data_url(media_type: &str, bytes: &[u8]) -> String {
    format!("data:{media_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

async fn post(h: &ChatHarness, who: &Caller, attachments: Value, model: &str) -> (u16, Value) {
    let res = h
        .post("/api/v1/chat/completions", who)
        .json(
            &json!({"message": "what is in the picture?", "model": model, "attachments": attachments, "stream": false}),
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn nothing_stored(h: &ChatHarness, who: &Caller) {
    assert!(h.service().store().list(who.id(), 10, None).await.unwrap().items.is_empty(), "nothing stored");
}

#[tokio::test]
async fn hostile_urls_are_422_at_their_field_and_nothing_is_stored_or_counted() {
    let fake = FakeUpstream::start().await;
    let (h, alice) = harness(&fake, &[("RATE_LIMIT_IMAGES", "2/1h")]).await;
    let hostile = [
        "https://loopback.attacker.test/a.png",
        "https://v6loop.attacker.test/a.png",
        "https://metadata.attacker.test/latest/meta-data/",
        "https://private.attacker.test/a.png",
        "https://mixed.attacker.test/a.png",
        "https://mapped.attacker.test/a.png",
        "https://ec2v6.attacker.test/a.png",
        "https://127.0.0.1/a.png",
        "https://0x7f000001/a.png",
        "https://2130706433/a.png",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://[::1]/a.png",
        "https://[::ffff:169.254.169.254]/",
        "https://10.0.0.1/a.png",
        "https://localhost/a.png",
        "https://metadata.google.internal/computeMetadata/v1/",
        "http://images.example.com/a.png",
        "https://user:secret@images.example.com/a.png",
        "https://images.example.com:8443/a.png",
        "https://nx.attacker.test/a.png",
        "https://",
    ];
    for url in hostile {
        for (attachments, pointer) in [
            (json!([url]), "/attachments/0"),
            (json!([data_url("image/png", &file("tiny.png")), {"url": url}]), "/attachments/1/url"),
        ] {
            let (status, body) = post(&h, &alice, attachments, "eyes").await;
            assert_eq!(status, 422, "{url}: {body}");
            let errors = body["errors"].as_array().unwrap();
            assert_eq!(errors[0]["pointer"], pointer, "{url}: {body}");
            let text = body.to_string();
            for internal in ["10.0.0.7", "192.168.1.1", "fd00:ec2::254", "::ffff:127.0.0.1"] {
                assert!(!text.contains(internal), "{url}: the answer says what a name resolved to: {text}");
            }
        }
    }
    nothing_stored(&h, &alice).await;
    assert_eq!(fake.request_count(), 0);
    // No image was counted: the whole quota is still there.
    let two = json!([data_url("image/png", &file("tiny.png")), data_url("image/gif", &file("tiny.gif"))]);
    assert_eq!(post(&h, &alice, two, "eyes").await.0, 200);
}

#[tokio::test]
async fn a_public_url_that_cannot_be_fetched_is_422_and_nothing_is_stored() {
    let fake = FakeUpstream::start().await;
    let (h, alice) = harness(&fake, &[]).await;
    let (status, body) = post(&h, &alice, json!(["https://images.example.com/cat.png"]), "eyes").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/attachments/0");
    assert_eq!(body["errors"][0]["detail"], "could not be fetched");
    nothing_stored(&h, &alice).await;
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn inline_images_are_verified_by_their_bytes_and_sent_in_canonical_form() {
    let fake = FakeUpstream::start().await;
    let (h, alice) = harness(&fake, &[]).await;
    let ok = [
        ("tiny.png", "image/png", "image/png"),
        ("tiny.jpg", "image/jpg", "image/jpeg"),
        ("tiny.gif", "image/gif", "image/gif"),
        ("tiny.webp", "image/webp", "image/webp"),
    ];
    let attachments: Vec<Value> = ok.iter().map(|(f, declared, _)| json!(data_url(declared, &file(f)))).collect();
    let res = h
        .post("/api/v1/chat/completions", &alice)
        .json(&json!({"message": "four pictures", "model": "eyes", "attachments": attachments}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let evs = events(&parse_sse(&res.text().await.unwrap()));
    assert_eq!(evs.last().unwrap().0, "done");
    let parts = fake.requests()[0].body["messages"][1]["content"].clone();
    assert_eq!(parts[0]["text"], "four pictures");
    for (i, (f, _, canonical)) in ok.iter().enumerate() {
        assert_eq!(parts[i + 1]["image_url"]["url"], data_url(canonical, &file(f)), "{f}");
    }
    // Inline data is not stored with the message (only that there was an image).
    let id = evs[0].1["conversation_id"].as_str().unwrap().parse().unwrap();
    let (_, msgs) = h.service().store().load_recent(alice.id(), id, 10).await.unwrap();
    assert_eq!(msgs[0].attachments.len(), 4);
    assert!(msgs[0].attachments.iter().all(|a| a.inline && a.url.is_none()));
}

#[tokio::test]
async fn files_that_are_not_what_they_claim_are_refused_before_anything_is_stored() {
    let fake = FakeUpstream::start().await;
    let (h, alice) = harness(&fake, &[]).await;
    let mut html_in_png = file("tiny.png");
    html_in_png.extend_from_slice(b"<html><script>alert(1)</script></html>");
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!([data_url("image/jpeg", &file("tiny.png"))]), 415, "declared type differs from the bytes"),
        (json!([data_url("image/png", b"<html>not an image</html>")]), 415, "not an image at all"),
        (json!([data_url("image/png", &html_in_png)]), 415, "a polyglot"),
        (json!([data_url("image/svg+xml", svg)]), 415, "svg is not allowed"),
        (json!([data_url("audio/wav", &file("tiny.wav"))]), 415, "audio is not an image"),
        (json!(["data:image/png;base64,!!!notbase64"]), 422, "bad base64"),
        (json!(["data:image/png;base64,"]), 422, "empty"),
        (json!(["data:image/png,plain"]), 422, "not base64-encoded"),
        (json!([{"url": 5}]), 422, "not a string"),
        (json!(["javascript:alert(1)"]), 422, "not a URL we take"),
        (json!(vec![data_url("image/png", &file("tiny.png")); 6]), 413, "more than five images"),
    ];
    for (attachments, status, why) in cases {
        let (got, body) = post(&h, &alice, attachments, "eyes").await;
        assert_eq!(got, status, "{why}: {body}");
    }
    // A model without vision refuses images, before anything is fetched or counted.
    let (got, body) = post(&h, &alice, json!([data_url("image/png", &file("tiny.png"))]), "text").await;
    assert_eq!(got, 422);
    assert_eq!(body["errors"][0]["pointer"], "/attachments");
    nothing_stored(&h, &alice).await;
    assert_eq!(fake.request_count(), 0);
}

/// An attachment is a URL string or `{"url": ...}` and nothing else: no array spelling of the
/// object, no extra keys, no other JSON type; and a body is an object, not its fields in a row.
#[tokio::test]
async fn attachments_and_bodies_have_one_spelling_each() {
    let fake = FakeUpstream::start().await;
    let (h, alice) = harness(&fake, &[]).await;
    let png = data_url("image/png", &file("tiny.png"));
    for (attachments, pointer) in [
        (json!([[png.clone()]]), "/attachments/0"),
        (json!([{"url": png.clone(), "detail": "high"}]), "/attachments/0/detail"),
        (json!([{}]), "/attachments/0/url"),
        (json!([5]), "/attachments/0"),
        (json!([null]), "/attachments/0"),
    ] {
        let (status, body) = post(&h, &alice, attachments.clone(), "eyes").await;
        assert_eq!(status, 422, "{attachments}: {body}");
        assert_eq!(body["errors"][0]["pointer"], pointer, "{attachments}: {body}");
    }
    // A body is an object: never the request's fields as an array, in any order or length (serde's
    // derived structs would take one in declaration order).
    for array in [
        json!(["salaam", null, null, null, null, null, null, false]),
        json!(["salaam", null, null, false, [], null, null, null, null]),
        json!(["salaam", null, null, null, null, null, null, false, []]),
    ] {
        let res = h.post("/api/v1/chat/completions", &alice).json(&array).send().await.unwrap();
        assert_eq!(res.status(), 422);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["pointer"], "", "{array}: {body}");
    }
    nothing_stored(&h, &alice).await;
    assert_eq!(fake.request_count(), 0);
    // Both accepted spellings still work.
    assert_eq!(post(&h, &alice, json!([png.clone()]), "eyes").await.0, 200);
    assert_eq!(post(&h, &alice, json!([{"url": png}]), "eyes").await.0, 200);
}
