//! The validated extractors through an axum router wrapped in the shared request path, as a
//! function would use them: 415 / 400 / 413 / 422 with problem+json bodies naming each failing
//! field by JSON pointer; valid input reaches the handler (titles NFC, content byte-exact).

use axum::{Json, Router, body::Body, extract::Extension, routing::get, routing::post};
use baatcheet_shared::rate_limit::{Access, RouteAccess};
use baatcheet_shared::validation::{
    BodyLimit, ConversationId, ModelId, Report, ValidJson, ValidPath, ValidQuery, Validate, parse_json, text, validate,
};
use baatcheet_shared::{AppContext, Config, request_path};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
    System,
}

#[derive(Debug, Deserialize, Serialize)]
struct Message {
    role: Role,
    content: String,
}

impl Validate for Message {
    fn validate(&mut self, r: &mut Report) {
        text::content(r, "content", &self.content, 32_000);
    }
}

#[derive(Debug, Deserialize, Serialize)]
struct CreateConversation {
    title: String,
    model: ModelId,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    messages: Vec<Message>,
}

impl Validate for CreateConversation {
    fn validate(&mut self, r: &mut Report) {
        text::identifier(r, "title", &mut self.title, 1, 200);
        if let Some(t) = self.temperature {
            text::range(r, "temperature", t, 0.0, 2.0);
        }
        if let Some(n) = self.max_tokens {
            text::range(r, "max_tokens", n, 1, 8192);
        }
        text::count(r, "messages", self.messages.len(), 1, 50);
        r.each("messages", &mut self.messages);
    }
}

#[derive(Debug, Deserialize, Serialize)]
struct Page {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl Validate for Page {
    fn validate(&mut self, r: &mut Report) {
        if let Some(l) = self.limit {
            text::range(r, "limit", l, 1, 100);
        }
        if let Some(c) = &self.cursor {
            r.check(
                "cursor",
                c.len() <= 512 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "must be a cursor from a previous page",
            );
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConversationPath {
    id: ConversationId,
}

impl Validate for ConversationPath {
    fn validate(&mut self, _: &mut Report) {}
}

fn app() -> Router {
    let config = Config::from_lookup(|k| {
        Some(match k {
            "USERS_TABLE"
            | "CONVERSATIONS_TABLE"
            | "RATE_LIMITS_TABLE"
            | "WEBHOOK_DELIVERIES_TABLE"
            | "STREAM_LEASES_TABLE" => "t".into(),
            "SECRET_ID" => "s".into(),
            _ => return None,
        })
    })
    .expect("config");
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let ctx = AppContext::new(config, &sdk);
    let routes = Router::new()
        .route(
            "/api/v1/conversations",
            post(|ValidJson(c): ValidJson<CreateConversation>| async move { Json(json!(c)) })
                .get(|ValidQuery(p): ValidQuery<Page>| async move { Json(json!(p)) }),
        )
        .route(
            "/api/v1/conversations/{id}",
            get(|ValidPath(p): ValidPath<ConversationPath>| async move { Json(json!({"id": p.id})) })
                .delete(|ValidPath(id): ValidPath<ConversationId>| async move { Json(json!({"deleted": id})) }),
        )
        .route(
            "/api/v1/small",
            post(|ValidJson(v): ValidJson<Value>| async move { Json(v) }).layer(Extension(BodyLimit(64))),
        );
    baatcheet_tests::as_client(request_path::wrap(routes, &ctx, RouteAccess::all(Access::Public)), "198.51.100.30")
}

struct Reply {
    status: StatusCode,
    content_type: String,
    nosniff: bool,
    body: Value,
}

async fn call(method: &str, uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = app().oneshot(req.body(body.into()).unwrap()).await.unwrap();
    let status = res.status();
    let h = res.headers();
    let content_type = h.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let nosniff = h.get("x-content-type-options").is_some_and(|v| v == "nosniff");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply { status, content_type, nosniff, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

async fn post_json(uri: &str, body: &str) -> Reply {
    call("POST", uri, Some("application/json"), body.to_string()).await
}

fn assert_problem(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(r.nosniff);
    assert_eq!(r.body["status"], status);
    assert!(r.body["type"].as_str().unwrap().starts_with("https://baatcheet.app/problems/"));
    assert!(r.body["title"].is_string() && r.body["detail"].is_string());
    assert!(r.body["request_id"].is_string(), "{}", r.body);
}

fn pointers(r: &Reply) -> Vec<String> {
    r.body["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap().to_string()).collect()
}

const VALID: &str = r#"{"title":"  Cafe\u0301 talk ","model":"llama-3.1-8b-instant","temperature":0.7,
  "messages":[{"role":"user","content":"Explain <script>alert('x')</script>\r\n\tand </b>&amp; \u0065\u0301"}]}"#;

#[tokio::test]
async fn valid_input_reaches_the_handler_titles_normalised_content_byte_exact() {
    let r = post_json("/api/v1/conversations", VALID).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    assert!(r.nosniff);
    assert_eq!(r.body["title"], "Caf\u{e9} talk");
    assert_eq!(r.body["messages"][0]["content"], "Explain <script>alert('x')</script>\r\n\tand </b>&amp; e\u{301}");
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    for ct in
        [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json; charset=utf-16")]
    {
        let r = call("POST", "/api/v1/conversations", ct, VALID.to_string()).await;
        assert_problem(&r, 415);
    }
    let r = call("POST", "/api/v1/conversations", Some("application/json; charset=UTF-8"), VALID.to_string()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn malformed_json_is_400() {
    for body in ["{", "{\"title\":}", "", "nul", "{\"title\":\"a\"} {}", "\u{feff}", "\u{feff}\u{feff}{}"] {
        let r = post_json("/api/v1/conversations", body).await;
        assert_problem(&r, 400);
    }
    // One leading byte order mark is ignored (RFC 8259 allows it): the body is then read as usual.
    let r = post_json("/api/v1/conversations", "\u{feff}{}").await;
    assert_problem(&r, 422);
    assert_eq!(pointers(&r), ["/title"]);
    let r = call("POST", "/api/v1/conversations", Some("application/json"), b"{\"title\":\"\xc3\x28\"}".to_vec()).await;
    assert_problem(&r, 400);
}

#[tokio::test]
async fn every_range_failure_is_listed_with_its_pointer() {
    let body = r#"{"title":"   ","model":"gpt-4o","temperature":5,"max_tokens":0,
      "messages":[{"role":"user","content":"ok"},{"role":"user","content":"bell\u0007"},{"role":"assistant","content":" "}]}"#;
    let r = post_json("/api/v1/conversations", body).await;
    assert_problem(&r, 422);
    assert_eq!(pointers(&r), ["/title", "/temperature", "/max_tokens", "/messages/1/content", "/messages/2/content"]);
    assert_eq!(r.body["errors"][0]["detail"], "must not be empty");
    assert_eq!(r.body["errors"][3]["detail"], "must not contain control characters");
}

#[tokio::test]
async fn type_failures_name_the_field() {
    let cases = [
        (r#"{"title":5,"model":"m","messages":[]}"#, "/title"),
        (r#"{"title":"t","model":"bad model!","messages":[]}"#, "/model"),
        (r#"{"title":"t","model":"m","messages":[{"role":"root","content":"x"}]}"#, "/messages/0/role"),
        (r#"{"title":"t","model":"m","max_tokens":-3,"messages":[]}"#, "/max_tokens"),
        (r#"{"title":"t","model":"m","max_tokens":1e99,"messages":[]}"#, "/max_tokens"),
        (r#"{"title":"t","messages":[]}"#, "/model"),
        (r#"{"title":"t","model":"m","messages":{}}"#, "/messages"),
    ];
    for (body, pointer) in cases {
        let r = post_json("/api/v1/conversations", body).await;
        assert_problem(&r, 422);
        assert_eq!(pointers(&r), [pointer], "{body}");
    }
}

#[tokio::test]
async fn unknown_fields_are_all_rejected() {
    let body = r#"{"title":"t","model":"m","messages":[{"role":"user","content":"x","name":"n"}],"role":"admin","tier":"enterprise"}"#;
    let r = post_json("/api/v1/conversations", body).await;
    assert_problem(&r, 422);
    assert_eq!(pointers(&r), ["/messages/0/name", "/role", "/tier"]);
    assert_eq!(r.body["errors"][1]["detail"], "is not a known field");
}

#[tokio::test]
async fn oversized_bodies_are_413_before_parsing() {
    let big = format!("{{\"title\":\"{}\"}}", "a".repeat(1024 * 1024));
    let r = post_json("/api/v1/conversations", &big).await;
    assert_problem(&r, 413);
    // Invalid JSON past the limit is still a 413: size is checked before anything parses.
    let r = post_json("/api/v1/small", &"{".repeat(65)).await;
    assert_problem(&r, 413);
    let r = post_json("/api/v1/small", r#"{"a":1}"#).await;
    assert_eq!(r.status, 200);
    // A body streamed without Content-Length is bounded while reading.
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 10]))));
    let r = call("POST", "/api/v1/small", Some("application/json"), Body::from_stream(chunks)).await;
    assert_problem(&r, 413);
}

#[tokio::test]
async fn query_parameters_are_validated() {
    let r = call("GET", "/api/v1/conversations?limit=20&cursor=abc_1", None, Body::empty()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"limit": 20, "cursor": "abc_1"}));
    let cases = [
        ("limit=ten", vec!["/query/limit"]),
        ("limit=0", vec!["/query/limit"]),
        ("limit=1&limit=2", vec!["/query/limit"]),
        ("limit=500&cursor=%3Cscript%3E", vec!["/query/limit", "/query/cursor"]),
        ("sort=asc&admin=1", vec!["/query/sort", "/query/admin"]),
        ("cursor=%C3%28", vec!["/query/cursor"]),
    ];
    for (q, expected) in cases {
        let r = call("GET", &format!("/api/v1/conversations?{q}"), None, Body::empty()).await;
        assert_problem(&r, 422);
        assert_eq!(pointers(&r), expected, "{q}");
    }
}

#[tokio::test]
async fn path_ids_are_checked_before_any_handler() {
    let id = ConversationId::new();
    let r = call("GET", &format!("/api/v1/conversations/{id}"), None, Body::empty()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], id.to_string());
    let r = call("DELETE", &format!("/api/v1/conversations/{id}"), None, Body::empty()).await;
    assert_eq!(r.body["deleted"], id.to_string());
    let upper = id.to_string().to_uppercase();
    for bad in ["not-an-id", "..%2F..%2Fetc", "%00", upper.as_str(), "00000000-0000-0000-0000-000000000000", "%FF%FE"] {
        for method in ["GET", "DELETE"] {
            let r = call(method, &format!("/api/v1/conversations/{bad}"), None, Body::empty()).await;
            assert_problem(&r, 422);
            assert_eq!(pointers(&r), ["/path/id"], "{method} {bad}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No body makes the JSON validation panic, and every refusal is a 4xx.
    #[test]
    fn no_body_panics_the_json_validation(s in any::<String>()) {
        match parse_json::<CreateConversation>(s.as_bytes()).and_then(|v| validate(v, "")) {
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e.status().as_u16(), 400 | 422), "{e:?}"),
        }
    }

    #[test]
    fn no_field_values_panic_the_validation(title in any::<String>(), content in any::<String>(), t in any::<f32>()) {
        let body = json!({"title": title, "model": "m", "temperature": t, "messages": [{"role": "user", "content": content}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        match parse_json::<CreateConversation>(&bytes).and_then(|v| validate(v, "")) {
            Ok(v) => prop_assert_eq!(&v.messages[0].content, &content),
            Err(e) => prop_assert!(matches!(e.status().as_u16(), 400 | 422), "{e:?}"),
        }
    }
}
