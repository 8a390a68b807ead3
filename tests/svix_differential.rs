//! The webhook's Svix signature check against the vendors' own code (tests/clerk/webhooks.mjs,
//! pinned in tests/clerk/package-lock.json, installed by scripts/test.sh with `npm ci`): Clerk's
//! `verifyWebhook` for the `svix-*` headers Clerk sends, and the Standard Webhooks library Svix
//! publishes for the unbranded `webhook-*` ones and as the signer.
//!
//! - Signing: this API's `Secret::sign` writes exactly the vendor's signature, for bodies in Urdu,
//!   emoji, escapes and 200 KB, and for secrets of several lengths.
//! - Verification: a corpus of deliveries (signed by the vendor, or made here where the vendor's
//!   signer cannot make them) goes through both verifiers under one pinned clock. The contract: no
//!   delivery the vendor refuses is accepted here. Where this API is deliberately stricter, the
//!   case is named in `STRICTER`; any other disagreement fails the test.
//! - End to end: a delivery the vendor signed, through the local gateway to the webhook function,
//!   is applied.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use baatcheet_tests::TestStack;
use baatcheet_tests::clerk::{self, Delivery, WEBHOOK_SECRET, run_vendor_script, unique_user, user_event};
use serde_json::{Value, json};
use webhook::svix::{Headers, Secret, TOLERANCE_SECS};

/// The pinned clock (seconds), and the vendor's in milliseconds: half a second into that second,
/// so the tolerance boundaries also check how each side rounds.
const NOW: i64 = 1_900_000_000;
const NOW_MS: i64 = NOW * 1000 + 500;

/// Deliveries the vendor accepts and this API refuses on purpose.
const STRICTER: &[(&str, &str)] = &[
    ("ts_leading_zero", "a timestamp is signed as sent: only its canonical decimal form is taken"),
    ("ts_trailing_junk", "a timestamp is digits only (the vendor reads the leading number)"),
    ("ts_fraction", "a timestamp is whole seconds, digits only"),
    ("ts_padded", "a timestamp is digits only, without spaces"),
    ("id_with_space", "message ids are printable ASCII without spaces (Svix's are msg_ and base62)"),
    ("id_non_ascii", "message ids are printable ASCII without spaces (Svix's are msg_ and base62)"),
];

/// One call to the vendor's code: its signatures of `sign`, its verdicts on `verify`.
fn vendor(secret: &str, sign: &[Value], verify: &[Value]) -> (Vec<String>, Vec<(bool, String)>) {
    let input = json!({"now_ms": NOW_MS, "secret": secret, "sign": sign, "verify": verify});
    let v = run_vendor_script("webhooks.mjs", &input);
    let signatures = v["signatures"].as_array().expect("signatures").iter().map(|s| s.as_str().unwrap().to_owned());
    let verdicts = v["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|r| (r["ok"].as_bool().expect("ok"), r["reason"].as_str().unwrap_or_default().to_owned()));
    (signatures.collect(), verdicts.collect())
}

async fn vendor_async(secret: &str, sign: Vec<Value>, verify: Vec<Value>) -> (Vec<String>, Vec<(bool, String)>) {
    let secret = secret.to_owned();
    tokio::task::spawn_blocking(move || vendor(&secret, &sign, &verify)).await.expect("node run")
}

/// Bodies as Clerk sends them (JSON), and the text a signature must cover byte for byte.
fn bodies() -> Vec<String> {
    let event = user_event("user.created", "user_2abcDEF", 1_899_999_999_000, "Ayesha", "user", "free");
    vec![
        event.to_string(),
        json!({"type": "user.updated", "data": {"first_name": "عائشہ", "last_name": "خان 🙂", "bio": "آپ کیسے ہیں؟"}})
            .to_string(),
        // Escapes left as sent: the signature covers the raw bytes, not the decoded text.
        r#"{"type":"user.updated","data":{"first_name":"\u0639\u0627\u0626\u0634\u06c1","note":"a\"b\\c\/d"}}"#.into(),
        format!("{{\n  \"type\": \"user.updated\",\r\n  \"data\": {{\"pad\": \"{}\"}}\n}}\n", "ک".repeat(100_000)),
        "{}".into(),
    ]
}

/// The vendor's and this API's signatures of the same deliveries are the same strings.
#[tokio::test]
async fn signatures_are_the_vendors_to_the_byte() {
    let secrets = [
        WEBHOOK_SECRET.to_owned(),
        // Secrets of other lengths, with and without the whsec_ prefix.
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        format!("whsec_{}", base64_of(&[7u8; 64])),
        base64_of(b"a sixteen-byte k"),
    ];
    let mut cases = Vec::new();
    for (i, body) in bodies().into_iter().enumerate() {
        for (id, ts) in
            [("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", NOW), ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330 + i as i64)]
        {
            cases.push(json!({"id": id, "timestamp": ts, "body": body}));
        }
    }
    for secret in &secrets {
        let (theirs, _) = vendor_async(secret, cases.clone(), Vec::new()).await;
        let ours = Secret::parse(secret).expect("the secret parses");
        for (case, theirs) in cases.iter().zip(&theirs) {
            let mine = ours.sign(
                case["id"].as_str().unwrap(),
                &case["timestamp"].to_string(),
                case["body"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(&mine, theirs, "secret {secret}, id {}, timestamp {}", case["id"], case["timestamp"]);
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One delivery of the verification corpus: its headers (name, value) and body.
struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

const ID: &str = "msg_2LJVpQ9x8ZJgW3DUAbjQ4zzvcQX";

/// The corpus. `sig(id, ts, body)` is the vendor's signature (the vendor's signer ran first);
/// `raw_sig` is a signature over exactly the given strings, for shapes the vendor cannot sign.
fn corpus(sig: &dyn Fn(&str, i64, &str) -> String, raw_sig: &dyn Fn(&str, &str, &str) -> String) -> Vec<Case> {
    let body = bodies()[0].clone();
    let urdu = bodies()[1].clone();
    let svix = |id: &str, ts: String, signature: String| {
        vec![("svix-id", id.to_owned()), ("svix-timestamp", ts), ("svix-signature", signature)]
    };
    let good = sig(ID, NOW, &body);
    let other_secret = {
        let other = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        other.sign(ID, &NOW.to_string(), body.as_bytes())
    };
    let case = |name, headers, body: &str| Case { name, headers, body: body.to_owned() };
    let mut cases = vec![
        case("valid", svix(ID, NOW.to_string(), good.clone()), &body),
        case("valid_urdu_body", svix(ID, NOW.to_string(), sig(ID, NOW, &urdu)), &urdu),
        case(
            "valid_unbranded_headers",
            vec![
                ("webhook-id", ID.into()),
                ("webhook-timestamp", NOW.to_string()),
                ("webhook-signature", good.clone()),
            ],
            &body,
        ),
        case("body_tampered", svix(ID, NOW.to_string(), good.clone()), &body.replacen("Ayesha", "Ayeshb", 1)),
        case("body_trailing_newline", svix(ID, NOW.to_string(), good.clone()), &format!("{body}\n")),
        case("id_changed", svix("msg_2LJVpQ9x8ZJgW3DUAbjQ4zzvcQY", NOW.to_string(), good.clone()), &body),
        case("ts_changed", svix(ID, (NOW - 1).to_string(), good.clone()), &body),
        case("other_secret", svix(ID, NOW.to_string(), other_secret.clone()), &body),
        case("list_bad_then_good", svix(ID, NOW.to_string(), format!("{other_secret} {good}")), &body),
        case("list_double_space", svix(ID, NOW.to_string(), format!("v1,AAAA  {good}")), &body),
        case("version_v2", svix(ID, NOW.to_string(), good.replacen("v1,", "v2,", 1)), &body),
        case("version_upper", svix(ID, NOW.to_string(), good.replacen("v1,", "V1,", 1)), &body),
        case("version_missing", svix(ID, NOW.to_string(), good.replacen("v1,", "", 1)), &body),
        case("sig_unpadded", svix(ID, NOW.to_string(), good.trim_end_matches('=').to_owned()), &body),
        case("sig_truncated", svix(ID, NOW.to_string(), good[..good.len().saturating_sub(4)].to_owned()), &body),
        case("sig_extra_field", svix(ID, NOW.to_string(), format!("{good},x")), &body),
        case("sig_empty", svix(ID, NOW.to_string(), String::new()), &body),
        case("sig_spaces", svix(ID, NOW.to_string(), "   ".into()), &body),
        case("missing_id", svix(ID, NOW.to_string(), good.clone())[1..].to_vec(), &body),
        case("missing_timestamp", vec![("svix-id", ID.into()), ("svix-signature", good.clone())], &body),
        case("missing_signature", svix(ID, NOW.to_string(), good.clone())[..2].to_vec(), &body),
        case("id_trimmed", svix(&format!("  {ID} "), NOW.to_string(), good.clone()), &body),
        case("id_with_space", svix("msg 1", NOW.to_string(), sig("msg 1", NOW, &body)), &body),
        case("id_non_ascii", svix("msg_ü", NOW.to_string(), sig("msg_ü", NOW, &body)), &body),
        // The vendor signs the number it read; a signature over the raw header is made here.
        case("ts_leading_zero", svix(ID, format!("0{NOW}"), good.clone()), &body),
        case(
            "ts_leading_zero_signed_as_sent",
            svix(ID, format!("0{NOW}"), raw_sig(ID, &format!("0{NOW}"), &body)),
            &body,
        ),
        case("ts_trailing_junk", svix(ID, format!("{NOW}abc"), good.clone()), &body),
        case("ts_fraction", svix(ID, format!("{NOW}.9"), good.clone()), &body),
        case("ts_padded", svix(ID, format!(" {NOW} "), good.clone()), &body),
        case("ts_negative", svix(ID, format!("-{NOW}"), raw_sig(ID, &format!("-{NOW}"), &body)), &body),
        case("ts_not_a_number", svix(ID, "soon".into(), raw_sig(ID, "soon", &body)), &body),
    ];
    // The tolerance on both sides of now, each signed for its own timestamp.
    for (name, ts) in [
        ("ts_oldest_accepted", NOW - TOLERANCE_SECS),
        ("ts_too_old", NOW - TOLERANCE_SECS - 1),
        ("ts_newest_accepted", NOW + TOLERANCE_SECS),
        ("ts_too_new", NOW + TOLERANCE_SECS + 1),
        ("ts_zero", 0),
    ] {
        cases.push(case(name, svix(ID, ts.to_string(), sig(ID, ts, &body)), &body));
    }
    cases
}

/// The (id, timestamp, body) triples `corpus` asks the vendor to sign, found by a dry run.
fn signed_by_vendor() -> Vec<(String, i64, String)> {
    let wanted = std::cell::RefCell::new(Vec::new());
    corpus(
        &|id, ts, body| {
            wanted.borrow_mut().push((id.to_owned(), ts, body.to_owned()));
            String::new()
        },
        &|_, _, _| String::new(),
    );
    wanted.into_inner()
}

fn ours(secret: &Secret, case: &Case) -> Result<(), String> {
    let mut map = HeaderMap::new();
    for (name, value) in &case.headers {
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|e| format!("header: {e}"))?;
        map.append(HeaderName::from_static(name), value);
    }
    let headers = Headers::from_map(&map).map_err(|e| e.to_string())?;
    headers.check_timestamp(NOW).map_err(|e| e.to_string())?;
    headers.verify(secret, case.body.as_bytes()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_vendor_refuses_no_delivery_this_api_accepts() {
    let wanted = signed_by_vendor();
    let to_sign: Vec<Value> =
        wanted.iter().map(|(id, ts, body)| json!({"id": id, "timestamp": ts, "body": body})).collect();
    let (signatures, _) = vendor_async(WEBHOOK_SECRET, to_sign, Vec::new()).await;
    let secret = Secret::parse(WEBHOOK_SECRET).unwrap();
    let sig = |id: &str, ts: i64, body: &str| {
        let i = wanted.iter().position(|(i, t, b)| i == id && *t == ts && b == body).expect("signed in the dry run");
        signatures[i].clone()
    };
    let raw_sig = |id: &str, ts: &str, body: &str| secret.sign(id, ts, body.as_bytes());
    let cases = corpus(&sig, &raw_sig);
    let verify: Vec<Value> = cases
        .iter()
        .map(|c| {
            let headers: serde_json::Map<String, Value> =
                c.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            json!({"headers": headers, "body": c.body})
        })
        .collect();
    let (_, theirs) = vendor_async(WEBHOOK_SECRET, Vec::new(), verify).await;

    let mut laxer = Vec::new();
    let mut stricter = Vec::new();
    let mut table = String::new();
    for (case, (their_ok, their_reason)) in cases.iter().zip(&theirs) {
        let mine = ours(&secret, case);
        table.push_str(&format!(
            "{:<32} vendor {:<6} {:<70} api {}\n",
            case.name,
            if *their_ok { "accept" } else { "refuse" },
            their_reason,
            mine.as_ref().map_or_else(|e| format!("refuse {e}"), |_| "accept".into())
        ));
        match (their_ok, mine.is_ok()) {
            (false, true) => laxer.push(case.name),
            (true, false) => stricter.push(case.name),
            _ => {}
        }
    }
    println!("{table}");
    assert!(laxer.is_empty(), "this API accepts deliveries the vendor refuses: {laxer:?}\n{table}");
    let unexplained: Vec<_> = stricter.iter().filter(|n| !STRICTER.iter().any(|(s, _)| s == *n)).collect();
    assert!(unexplained.is_empty(), "refused here, accepted by the vendor, not in STRICTER: {unexplained:?}\n{table}");
    for (name, why) in STRICTER {
        assert!(stricter.contains(name), "{name} ({why}) is listed as stricter, but both sides agree\n{table}");
    }
    // The corpus is not vacuous: the vendor accepts the plain deliveries and refuses forgeries.
    let verdict = |name: &str| theirs[cases.iter().position(|c| c.name == name).unwrap()].0;
    assert!(verdict("valid") && verdict("valid_unbranded_headers") && verdict("list_bad_then_good"));
    assert!(!verdict("body_tampered") && !verdict("other_secret") && !verdict("ts_too_old"));
}

/// A Clerk event signed by the vendor's signer, through the local gateway to the webhook function
/// as AWS runs it: applied to the users table.
#[tokio::test]
async fn a_delivery_the_vendor_signed_is_applied_through_the_gateway() {
    let stack = TestStack::with_secret(json!({"CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET})).await;
    let ctx = stack.context().await;
    let base = baatcheet_tests::spawn_gateway(&ctx).await;
    let id = unique_user();
    let body = user_event("user.created", &id, clerk::now_ms(), "عائشہ", "user", "free").to_string();
    let msg = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let ts = clerk::now();
    let (signatures, _) =
        vendor_async(WEBHOOK_SECRET, vec![json!({"id": msg, "timestamp": ts, "body": body})], Vec::new()).await;
    let res = Delivery { id: msg, timestamp: ts, body }.post_signed(&base, &signatures[0]).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    let item = ctx
        .dynamo
        .get_item()
        .table_name(&ctx.config.tables.users)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(item.item.is_some(), "the user was stored");
}
