//! The API in the shape AWS runs it: the REST API that AWS's SAM translator renders from
//! template.yaml, in front of the built function binaries under a Lambda Runtime API, one
//! invocation at a time per instance (tests/support/deployed.rs). What these tests show holds
//! between API Gateway and Lambda, not only inside a router.

use baatcheet_tests::chat::{ChatHarness, events, fast_config, parse_sse};
use baatcheet_tests::deployed::{self, start, start_with};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream, fnv1a};
use baatcheet_tests::{TestStack, http};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A gateway response or function problem: valid JSON with a type, title and the HTTP status.
async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "{:?}", res.headers());
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.contains("json"), "{ct}");
    let body: Value = res.json().await.expect("a JSON body");
    assert!(body["title"].is_string() || body["message"].is_string(), "{body}");
    if let Some(s) = body["status"].as_u64() {
        assert_eq!(s, u64::from(status), "{body}");
    }
    body
}

/// A chat stack with the fake provider, its users signed in through the fake Clerk, and the
/// Lambda-shaped stack over it.
async fn chat_stack(fake: &FakeUpstream) -> (ChatHarness, baatcheet_local::lambda_stack::LambdaStack) {
    let models = json!([{"id": "text", "context_length": 32768}, {"id": "whisper", "chat": false, "audio": true}]);
    let h = ChatHarness::with(json!([fake.provider("primary", &["k1"], models)]), fast_config(), &[], None).await;
    let gw = start(&h.stack).await;
    (h, gw)
}

#[tokio::test]
async fn every_route_answers_in_the_mode_of_its_integration() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let d = deployed::deployed();
    assert!(!d.routes.is_empty());
    for r in &d.routes {
        let path = r.path.replace("{id}", "0190b8a4-5b7e-7000-8000-000000000001").replace("{asset}", "swagger-ui.css");
        let mut req =
            http().request(Method::from_bytes(r.method.as_bytes()).unwrap(), format!("{}{path}", gw.base_url()));
        if r.method == "OPTIONS" {
            req = req.header("origin", "https://app.baatcheet.test").header("access-control-request-method", "POST");
        }
        let res = req.send().await.unwrap();
        // A function answering in the other format is a 502 from API Gateway, with its error type.
        assert!(res.headers().get("x-amzn-errortype").is_none(), "{} {path}: {:?}", r.method, res.status());
        assert!(
            res.status().as_u16() < 500 || path.contains("health") || path == "/ready",
            "{} {path}: {}",
            r.method,
            res.status()
        );
    }
}

#[tokio::test]
async fn a_function_answering_in_the_other_format_is_a_502() {
    let stack = TestStack::new().await;
    // The defect of the first template: chat's routes on buffered integrations while the binary
    // streams, and (the other way round) a buffered function behind a streaming integration.
    let gw = start_with(
        &stack,
        |d| {
            for r in d.routes.iter_mut() {
                r.streamed = r.function == "HealthFunction";
            }
        },
        &[],
    )
    .await;
    let base = gw.base_url();
    for path in ["/api/v1/chat/models", "/live"] {
        let res = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.headers()["x-amzn-errortype"], "InternalServerErrorException");
        problem(res, 502).await;
    }
    // The docs function, on its own buffered integration, is unaffected.
    assert_eq!(http().get(format!("{base}/api/docs.json")).send().await.unwrap().status(), 200);
}

/// The public metrics route, deployed: the seed's basic figures and nothing internal (no function
/// name, traffic or limiter figures: those are EMF metrics in CloudWatch).
#[tokio::test]
async fn the_public_health_metrics_name_no_internals() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let res = http().get(format!("{}/api/v1/health/metrics", gw.base_url())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let mut fields: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["cold_start", "cpu", "memory", "timestamp", "uptime", "version"], "{body}");
    assert!(!body.to_string().contains("HealthFunction"), "{body}");
}

#[tokio::test]
async fn the_stage_prefix_and_unknown_routes_get_gateway_responses() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let root = format!("http://{}", gw.addr);
    let base = gw.base_url();
    assert_eq!(http().get(format!("{base}/live")).send().await.unwrap().status(), 200);
    for url in [format!("{root}/live"), format!("{base}/nowhere"), format!("{base}/live/extra")] {
        let res = http().get(&url).send().await.unwrap();
        assert_eq!(res.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException", "{url}");
        let status = res.status().as_u16();
        assert!(status == 404 || status == 403, "{url}: {status}");
        let body = problem(res, status).await;
        assert!(body["request_id"].is_string() || body.get("request_id").is_none(), "{body}");
    }
    // A method the resource does not have.
    let res = http().delete(format!("{base}/live")).send().await.unwrap();
    assert_eq!(res.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn a_request_over_10_mb_is_refused_by_the_gateway() {
    let stack = TestStack::new().await;
    let gw = start(&stack).await;
    let body = vec![b'a'; 10 * 1024 * 1024 + 1];
    let res = http()
        .post(format!("{}/api/v1/clerk/webhook", gw.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-amzn-errortype"], "RequestTooLargeException");
    problem(res, 413).await;
    // The function never ran.
    assert_eq!(gw.pool("WebhookFunction").unwrap().instances_started(), 0);
}

#[tokio::test]
async fn a_function_whose_init_fails_answers_502_and_the_others_serve() {
    let stack = TestStack::new().await;
    let gw = start_with(&stack, |_| {}, &[("HealthFunction", "USERS_TABLE", "")]).await;
    let base = gw.base_url();
    for _ in 0..2 {
        let res = http().get(format!("{base}/live")).send().await.unwrap();
        problem(res, 502).await;
    }
    // Each request tried a new instance, as Lambda retries init on the next invocation.
    let pool = gw.pool("HealthFunction").unwrap();
    assert_eq!(pool.instances_started(), 2);
    assert_eq!(pool.instances_live(), 0);
    assert_eq!(http().get(format!("{base}/api/docs.json")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_integration_that_outlives_its_timeout_is_a_504() {
    let stack = TestStack::new().await;
    // No process starts and answers within a millisecond: the cold start alone passes it.
    let gw = start_with(
        &stack,
        |d| {
            for r in d.routes.iter_mut().filter(|r| r.path == "/live") {
                r.timeout = Duration::from_millis(1);
            }
        },
        &[],
    )
    .await;
    let res = http().get(format!("{}/live", gw.base_url())).send().await.unwrap();
    assert_eq!(res.headers()["x-amzn-errortype"], "IntegrationTimeoutException");
    problem(res, 504).await;
}

#[tokio::test]
async fn instances_start_on_demand_and_serve_one_invocation_at_a_time() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(4).token_delay(Duration::from_millis(250)));
    let (h, gw) = chat_stack(&fake).await;
    let base = gw.base_url();
    let mut callers = Vec::new();
    for i in 0..3 {
        callers.push(h.caller(&format!("c{i}")).await);
    }
    let sends = callers.iter().map(|c| {
        http()
            .post(format!("{base}/api/v1/chat/completions"))
            .header("authorization", c.bearer())
            .json(&json!({"message": "Salaam"}))
            .send()
    });
    for res in futures::future::join_all(sends).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(text.contains("event: done"), "{text}");
    }
    let pool = gw.pool("ChatFunction").unwrap();
    assert_eq!(pool.instances_started(), 3, "three concurrent streams need three instances");
    // Warm instances are reused.
    let res = http()
        .get(format!("{base}/api/v1/chat/models"))
        .header("authorization", callers[0].bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(pool.instances_started(), 3);
    assert_eq!(pool.init_durations().len(), 3);
}

#[tokio::test]
async fn a_completion_streams_through_the_gateway_as_it_is_generated() {
    let fake = FakeUpstream::start().await;
    let gap = Duration::from_millis(300);
    fake.set_default(Behavior::ok().echo().token_delay(gap));
    let (h, gw) = chat_stack(&fake).await;
    let alice = h.caller("alice").await;
    // Urdu from an Arabic keyboard, in a JSON body (not a binary media type: passed as text).
    let message = "Salaam! آپ كيسے ہیں؟";
    let started = Instant::now();
    let res = http()
        .post(format!("{}/api/v1/chat/completions", gw.base_url()))
        .header("authorization", alice.bearer())
        .json(&json!({ "message": message }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(res.headers().get("ratelimit").is_some(), "the prelude's headers reach the client");
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let mut first_delta = None;
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first_delta.is_none() && text.contains("event: delta") {
            first_delta = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_delta.expect("a delta");
    // Five words, one per gap: a buffered answer would arrive all at the end.
    assert!(total - first >= gap * 3, "first delta at {first:?}, end at {total:?}");
    let all = parse_sse(&text);
    let answer: String = events(&all)
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| d["content"].as_str().unwrap_or_default())
        .collect();
    assert!(answer.contains("آپ كيسے ہیں؟"), "{answer}");
    assert_eq!(events(&all).last().map(|(n, _)| n.as_str()), Some("done"));
}

#[tokio::test]
async fn an_audio_upload_arrives_as_sent() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().reply("salaam duniya"));
    let (h, gw) = chat_stack(&fake).await;
    let bob = h.caller("bob").await;
    let bytes = std::fs::read(format!("{}/data/tiny.wav", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name("tiny.wav").mime_str("audio/wav").unwrap();
    let res = http()
        .post(format!("{}/api/v1/chat/transcribe", gw.base_url()))
        .header("authorization", bob.bearer())
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    // The provider received the file byte for byte: the multipart body crossed API Gateway as
    // base64 (a binary media type) and Lambda decoded it.
    let sent = fake.requests().into_iter().find(|r| r.path.ends_with("/audio/transcriptions")).expect("sent");
    assert_eq!(sent.body["file_bytes"], bytes.len());
    assert_eq!(sent.body["file_fnv1a"], fnv1a(&bytes), "the audio reached the provider intact");
}

/// A browser attaches the `__session` cookie to requests any site starts: through the gateway,
/// a completion POSTed with the cookie from another site is refused with a problem body before
/// anything reaches the provider; the same POST with a Bearer token from anywhere works, as does
/// the cookie from an allowed origin (CORS_ALLOWED_ORIGINS) and a cookie GET from anywhere. Two
/// different `__session` cookies are refused as ambiguous.
#[tokio::test]
async fn cookie_sessions_change_data_only_from_allowed_origins_and_bearer_from_anywhere() {
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(2));
    let (h, gw) = chat_stack(&fake).await;
    let base = gw.base_url();
    let alice = h.caller("alice").await;
    let cookie = format!("theme=dark; __session={}", alice.token());
    let completion = || http().post(format!("{base}/api/v1/chat/completions")).json(&json!({"message": "Salaam"}));

    for (origin, site) in [("https://evil.example", "cross-site"), ("https://other.baatcheet.test", "same-site")] {
        let res = completion()
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert!(
            res.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"),
            "{:?}",
            res.headers()
        );
        let body = problem(res, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("allowed origin"), "{body}");
    }
    // A cookie POST with no Origin and no Sec-Fetch-Site (no evidence of where it came from).
    problem(completion().header("cookie", &cookie).send().await.unwrap(), 403).await;
    assert_eq!(fake.request_count(), 0, "a refused request reaches no provider");

    // Bearer from another site: the browser never attaches it on its own, so it is not checked.
    let res = completion()
        .header("authorization", alice.bearer())
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("event: done"));
    // The cookie from the app's own origin (CORS_ALLOWED_ORIGINS) works.
    let res = completion()
        .header("cookie", &cookie)
        .header("origin", "https://app.baatcheet.test")
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("event: done"));
    assert_eq!(fake.request_count(), 2);
    // Reading with the cookie from anywhere is not a forgery risk (CORS keeps the answer away).
    let res = http()
        .get(format!("{base}/api/v1/conversations"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["conversations"].as_array().unwrap().len(), 2);

    // A sibling subdomain's second __session: refused, not the first one picked.
    let bob = h.caller("bob").await;
    let res = http()
        .get(format!("{base}/api/v1/conversations"))
        .header("cookie", format!("__session={}; __session={}", alice.token(), bob.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 401).await["reason"], "ambiguous_session_cookie");
}

/// One request's access-log line and its function's log lines join on API Gateway's request id,
/// Lambda's request id and the X-Ray trace id (the same field names in both); the caller appears
/// only as a hash; a client's X-Request-Id is kept as its own field and echoed.
#[tokio::test]
async fn access_log_function_logs_and_trace_join_on_the_same_ids() {
    let fake = FakeUpstream::start().await;
    let (h, gw) = chat_stack(&fake).await;
    let alice = h.caller("alice").await;
    let get = |client_id: Option<&str>| {
        let mut req =
            http().get(format!("{}/api/v1/conversations", gw.base_url())).header("authorization", alice.bearer());
        if let Some(id) = client_id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let header = |res: &reqwest::Response, name: &str| {
        res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    // Without an X-Request-Id of its own, the client is given API Gateway's.
    let res = get(None).await.unwrap();
    assert_eq!(res.status(), 200);
    let api_id = header(&res, "x-amzn-requestid");
    assert!(!api_id.is_empty());
    assert_eq!(header(&res, "x-request-id"), api_id);
    // With one, it is echoed and logged as its own field.
    let res2 = get(Some("mobile-client-0001")).await.unwrap();
    assert_eq!(res2.status(), 200);
    let api_id2 = header(&res2, "x-amzn-requestid");
    assert_eq!(header(&res2, "x-request-id"), "mobile-client-0001");
    assert_ne!(api_id2, api_id);

    let lines = deployed::log_lines_when(&h.stack, |lines| {
        [&api_id, &api_id2].iter().all(|id| {
            lines.iter().any(|(p, l)| {
                p.starts_with("ChatFunction") && l.contains("request completed") && l.contains(id.as_str())
            })
        }) && subsegments(lines).iter().filter(|(_, d)| d["aws"]["operation"] == "Query").count() >= 2
    })
    .await;
    let json = |l: &str| serde_json::from_str::<Value>(l).ok();
    for (id, client_id) in [(&api_id, api_id.as_str()), (&api_id2, "mobile-client-0001")] {
        let access: Vec<Value> = lines
            .iter()
            .filter(|(p, _)| p == "access")
            .filter_map(|(_, l)| json(l))
            .filter(|d| d["requestId"] == id.as_str())
            .collect();
        assert_eq!(access.len(), 1, "one access-log line for {id}: {lines:?}");
        let (lambda_id, trace) = (&access[0]["integrationRequestId"], &access[0]["xrayTraceId"]);
        assert!(lambda_id.as_str().is_some_and(|s| s.len() > 8), "{}", access[0]);
        assert!(trace.as_str().is_some_and(|s| s.starts_with("1-")), "{}", access[0]);
        let function: Vec<Value> = lines
            .iter()
            .filter(|(p, _)| p.starts_with("ChatFunction"))
            .filter_map(|(_, l)| json(l))
            .filter(|d| d["span"]["requestId"] == id.as_str())
            .collect();
        assert!(!function.is_empty(), "the function logged under API Gateway's id {id}: {lines:?}");
        for line in &function {
            let span = &line["span"];
            assert_eq!(&span["integrationRequestId"], lambda_id, "{line}");
            assert_eq!(&span["xrayTraceId"], trace, "{line}");
            assert_eq!(span["clientRequestId"], client_id, "{line}");
        }
        let done = function.iter().find(|l| l["message"] == "request completed").expect("a request completed line");
        assert_eq!(done["span"]["userHash"], baatcheet_shared::request_id::user_hash(alice.id()), "{done}");
        // Lambda's own START line for the same invocation carries its request id.
        let lambda_id = lambda_id.as_str().unwrap();
        assert!(lines.iter().any(|(_, l)| l.starts_with("START RequestId: ") && l.contains(lambda_id)));
        // Its X-Ray subsegments are in the same trace: the conversations it listed.
        let traced: Vec<Value> =
            subsegments(&lines).into_iter().map(|(_, d)| d).filter(|d| &d["trace_id"] == trace).collect();
        assert!(
            traced.iter().any(|d| d["name"] == "DynamoDB"
                && d["aws"]["operation"] == "Query"
                && d["aws"]["table_name"] == format!("{}ConversationsTable", h.stack.prefix)),
            "a DynamoDB Query subsegment under trace {trace}: {traced:#?}"
        );
    }
    // Every subsegment of the chat function belongs to one of the two requests' traces.
    let traces: Vec<Value> = lines
        .iter()
        .filter(|(p, _)| p == "access")
        .filter_map(|(_, l)| json(l))
        .map(|d| d["xrayTraceId"].clone())
        .collect();
    for (p, d) in subsegments(&lines) {
        assert!(p.starts_with("xray:ChatFunction") && traces.contains(&d["trace_id"]), "{p}: {d}");
    }
    // The caller is never in the logs by id, Clerk id or email.
    for (_, l) in &lines {
        assert!(!l.contains(alice.id()) && !l.contains(&alice.clerk_id), "{l}");
        if let Some(email) = &alice.user.email {
            assert!(!l.contains(email.as_str()), "{l}");
        }
    }
}

/// The X-Ray subsegment documents the functions sent to their instances' daemons (the local stack
/// logs each under `xray:<function>#<instance>`), each checked on the way: a subsegment of a
/// trace, with only the fields that name and time a call (no request, item, prompt or key can
/// be in them).
fn subsegments(lines: &[(String, String)]) -> Vec<(String, Value)> {
    let hex =
        |v: &Value, len: usize| v.as_str().is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let only = |v: &Value, allowed: &[&str]| keys(v).iter().all(|k| allowed.contains(&k.as_str()));
    lines
        .iter()
        .filter(|(p, _)| p.starts_with("xray:"))
        .map(|(p, l)| {
            let d: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("{p}: a JSON document: {l}"));
            assert_eq!(d["type"], "subsegment", "{d}");
            assert!(hex(&d["id"], 16) && hex(&d["parent_id"], 16), "{d}");
            assert!(d["trace_id"].as_str().is_some_and(|t| t.starts_with("1-") && t.len() == 35), "{d}");
            assert!(
                d["end_time"].as_f64() >= d["start_time"].as_f64() && d["start_time"].as_f64() > Some(1.6e9),
                "{d}"
            );
            let fields = [
                "name",
                "id",
                "trace_id",
                "parent_id",
                "type",
                "start_time",
                "end_time",
                "namespace",
                "aws",
                "annotations",
                "http",
                "error",
                "fault",
                "throttle",
            ];
            assert!(only(&d, &fields), "{d}");
            assert!(only(&d["aws"], &["operation", "table_name", "request_id"]), "{d}");
            assert!(only(&d["annotations"], &["operation"]), "{d}");
            assert!(only(&d["http"], &["response"]) && only(&d["http"]["response"], &["status"]), "{d}");
            (p.clone(), d)
        })
        .collect()
}

/// One chat completion through the Lambda-shaped stack: its DynamoDB calls (operation and table),
/// its Secrets Manager read and its provider call are X-Ray subsegments of the request's trace,
/// sent to the instance's daemon, and none holds the prompt, the user or a key.
#[tokio::test]
async fn a_completions_store_secret_and_provider_calls_are_subsegments_of_its_trace() {
    let fake = FakeUpstream::start().await;
    let models = json!([{"id": "text", "context_length": 32768}]);
    let h =
        ChatHarness::with(json!([fake.provider("primary", &["k1-xray-key"], models)]), fast_config(), &[], None).await;
    // The secret read at init is in no trace (Lambda has no invocation, so no trace header, until
    // init ends); with no TTL, the request reads it again, within its own trace.
    let gw = start_with(&h.stack, |_| {}, &[("ChatFunction", "SECRET_TTL_SECONDS", "0")]).await;
    let alice = h.caller("alice").await;
    let prompt = format!("Salaam, xray probe {}", uuid::Uuid::new_v4().simple());
    let res = http()
        .post(format!("{}/api/v1/chat/completions", gw.base_url()))
        .header("authorization", alice.bearer())
        .json(&json!({ "message": prompt }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("event: done"));

    // The provider's subsegment is sent when its stream ends, after the response began.
    let lines = deployed::log_lines_when(&h.stack, |lines| {
        lines.iter().any(|(p, l)| p == "access" && l.contains("/api/v1/chat/completions"))
            && subsegments(lines).iter().any(|(_, d)| d["name"] == "primary")
    })
    .await;
    let access: Value = lines
        .iter()
        .filter(|(p, _)| p == "access")
        .find_map(|(_, l)| {
            serde_json::from_str::<Value>(l).ok().filter(|d| d["resourcePath"] == "/api/v1/chat/completions")
        })
        .expect("the completion's access-log line");
    let trace = access["xrayTraceId"].as_str().expect("a trace id").to_string();
    let docs: Vec<Value> = subsegments(&lines).into_iter().map(|(_, d)| d).collect();
    // The chat function made them all, in this one invocation.
    for d in &docs {
        assert_eq!(d["trace_id"], trace.as_str(), "{d}");
        assert_eq!(d["parent_id"], docs[0]["parent_id"], "{d}");
    }
    let tables: Vec<String> =
        ["UsersTable", "ConversationsTable", "RateLimitsTable", "StreamLeasesTable", "WebhookDeliveriesTable"]
            .iter()
            .map(|t| format!("{}{t}", h.stack.prefix))
            .collect();
    let dynamo: Vec<&Value> = docs.iter().filter(|d| d["name"] == "DynamoDB").collect();
    for d in &dynamo {
        assert_eq!(d["namespace"], "aws", "{d}");
        assert!(d["aws"]["operation"].as_str().is_some_and(|o| !o.is_empty()), "{d}");
        let named = d["aws"]["table_name"].as_str().unwrap_or_else(|| panic!("a table name: {d}"));
        assert!(named.split(',').all(|t| tables.iter().any(|s| s == t)), "{d}");
        assert_eq!(d["http"]["response"]["status"], 200, "{d}");
    }
    let touched =
        |table: &str| dynamo.iter().any(|d| d["aws"]["table_name"].as_str().is_some_and(|n| n.contains(table)));
    for table in ["RateLimitsTable", "ConversationsTable", "StreamLeasesTable"] {
        assert!(touched(table), "no subsegment for {table}: {dynamo:#?}");
    }
    assert!(
        docs.iter().any(|d| d["name"] == "SecretsManager"
            && d["aws"]["operation"] == "GetSecretValue"
            && d["http"]["response"]["status"] == 200),
        "{docs:#?}"
    );
    let provider: Vec<&Value> = docs.iter().filter(|d| d["name"] == "primary").collect();
    assert_eq!(provider.len(), 1, "{provider:#?}");
    assert_eq!(provider[0]["namespace"], "remote");
    assert_eq!(provider[0]["annotations"]["operation"], "chat.completions.stream");
    assert_eq!(provider[0]["http"]["response"]["status"], 200);
    assert!(provider[0].get("fault").is_none() && provider[0].get("error").is_none(), "{}", provider[0]);
    // No payload: not the prompt, the user (id, Clerk id) or the provider's key.
    for (p, l) in lines.iter().filter(|(p, _)| p.starts_with("xray:")) {
        for secret in [prompt.as_str(), alice.id(), alice.clerk_id.as_str(), "k1-xray-key"] {
            assert!(!l.contains(secret), "{p}: {l} holds {secret}");
        }
    }
}

/// Checks one CloudWatch Embedded Metric Format document against the format's specification and
/// returns its (dimension set, metric name -> values) pairs.
fn check_emf(doc: &Value) -> Vec<(std::collections::BTreeMap<String, String>, String, Vec<f64>)> {
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let aws = &doc["_aws"];
    assert!(aws["Timestamp"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "Timestamp in ms: {doc}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is an array");
    assert!(!directives.is_empty(), "{doc}");
    let mut out = Vec::new();
    for d in directives {
        let ns = d["Namespace"].as_str().expect("a Namespace");
        assert!(!ns.is_empty() && ns.len() <= 255, "{doc}");
        assert_eq!(ns, baatcheet_shared::metrics::NAMESPACE);
        let sets = d["Dimensions"].as_array().expect("Dimensions is an array of dimension sets");
        let metrics = d["Metrics"].as_array().expect("Metrics is an array");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{doc}");
        for set in sets {
            let names = set.as_array().expect("a dimension set is an array");
            assert!(!names.is_empty() && names.len() <= 30, "{doc}");
            let mut dims = std::collections::BTreeMap::new();
            for n in names {
                let n = n.as_str().expect("a dimension name is a string");
                let v = doc[n].as_str().unwrap_or_else(|| panic!("dimension {n} is a top-level string: {doc}"));
                assert!(!v.is_empty() && v.len() <= 1024, "{doc}");
                // Bounded values only: no raw paths with ids, no user ids.
                assert!(!v.contains("user_") && !v.contains("0190"), "{n}={v}");
                dims.insert(n.to_string(), v.to_string());
            }
            for m in metrics {
                let name = m["Name"].as_str().expect("a metric Name");
                assert!(baatcheet_shared::metrics::names::ALL.contains(&name), "{name} is not in metrics::names::ALL");
                if let Some(unit) = m.get("Unit") {
                    assert!(UNITS.contains(&unit.as_str().unwrap_or_default()), "unit {unit} of {name}");
                }
                let values: Vec<f64> = match &doc[name] {
                    Value::Number(n) => vec![n.as_f64().unwrap()],
                    Value::Array(a) => a.iter().map(|v| v.as_f64().expect("a numeric value")).collect(),
                    other => panic!("metric {name} is a top-level number or array, not {other}"),
                };
                assert!(!values.is_empty() && values.len() <= 100, "{name}: {} values", values.len());
                out.push((dims.clone(), name.to_string(), values));
            }
        }
    }
    out
}

/// The EMF documents among the functions' log lines.
fn emf(lines: &[(String, String)]) -> Vec<(String, Value)> {
    lines
        .iter()
        .filter(|(p, l)| p != "access" && l.contains("\"_aws\""))
        .filter_map(|(p, l)| Some((p.clone(), serde_json::from_str::<Value>(l).ok()?)))
        .collect()
}

/// The sum and the number of values of `metric` emitted by `function` (logical id) in documents
/// whose dimensions include `want`; every document is checked against the spec on the way.
fn sum(docs: &[(String, Value)], function: &str, metric: &str, want: &[(&str, &str)]) -> (f64, usize) {
    let mut total = (0.0, 0);
    for (_, doc) in docs {
        for (dims, name, values) in check_emf(doc) {
            if name == metric
                // The deployed name: `<stack>-<logical id>`.
                && dims.get("function").is_some_and(|f| f.ends_with(&format!("-{function}")))
                && want.iter().all(|(k, v)| dims.get(*k).map(String::as_str) == Some(*v))
            {
                total.0 += values.iter().sum::<f64>();
                total.1 += values.len();
            }
        }
    }
    total
}

/// The sum of `metric` emitted by `function` in documents whose dimensions are exactly `function`
/// and `want`.
fn sum_exact(docs: &[(String, Value)], function: &str, metric: &str, want: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for (_, doc) in docs {
        for (dims, name, values) in check_emf(doc) {
            if name == metric
                && dims.len() == want.len() + 1
                && dims.get("function").is_some_and(|f| f.ends_with(&format!("-{function}")))
                && want.iter().all(|(k, v)| dims.get(*k).map(String::as_str) == Some(*v))
            {
                total += values.iter().sum::<f64>();
            }
        }
    }
    total
}

/// Requests through the Lambda-shaped stack leave EMF documents in the functions' logs that meet
/// the format's specification, with the expected values per function, route and status class.
#[tokio::test]
async fn functions_emit_valid_embedded_metrics_per_invocation() {
    use baatcheet_shared::metrics::names;
    let fake = FakeUpstream::start().await;
    let (h, gw) = chat_stack(&fake).await;
    let alice = h.caller("alice").await;
    for _ in 0..2 {
        let res = http()
            .get(format!("{}/api/v1/conversations", gw.base_url()))
            .header("authorization", alice.bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = http().get(format!("{}/api/v1/conversations", gw.base_url())).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http().get(format!("{}/live", gw.base_url())).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let route = [("route", "/api/v1/conversations")];
    let ok = [("route", "/api/v1/conversations"), ("status_class", "2xx")];
    let lines = deployed::log_lines_when(&h.stack, |lines| {
        let docs = emf(lines);
        sum(&docs, "ChatFunction", names::REQUESTS, &route).0 >= 3.0
            && sum(&docs, "HealthFunction", names::REQUESTS, &[]).0 >= 1.0
    })
    .await;
    let docs = emf(&lines);
    assert!(!docs.is_empty());
    assert_eq!(sum(&docs, "ChatFunction", names::REQUESTS, &ok).0, 2.0);
    assert_eq!(
        sum(&docs, "ChatFunction", names::REQUESTS, &[("route", "/api/v1/conversations"), ("status_class", "4xx")]).0,
        1.0
    );
    assert_eq!(sum(&docs, "ChatFunction", names::REQUEST_LATENCY, &route).1, 3, "one latency value per request");
    // The same requests per function alone and per function and status class, every route:
    // what the function's 5xx-rate alarm divides (template.yaml).
    assert_eq!(sum_exact(&docs, "ChatFunction", names::REQUESTS, &[]), 3.0);
    assert_eq!(sum_exact(&docs, "ChatFunction", names::REQUESTS, &[("status_class", "2xx")]), 2.0);
    assert_eq!(sum_exact(&docs, "ChatFunction", names::REQUESTS, &[("status_class", "4xx")]), 1.0);
    assert_eq!(sum_exact(&docs, "ChatFunction", names::REQUESTS, &[("status_class", "5xx")]), 0.0);
    assert_eq!(sum_exact(&docs, "HealthFunction", names::REQUESTS, &[]), 1.0);
    assert_eq!(sum(&docs, "HealthFunction", names::REQUESTS, &[("route", "/live"), ("status_class", "2xx")]).0, 1.0);
    // One cold start per instance started.
    let instances =
        |f: &str| lines.iter().filter(|(p, l)| p.starts_with(f) && l.starts_with("INIT_REPORT")).count() as f64;
    assert_eq!(sum(&docs, "ChatFunction", names::COLD_STARTS, &[]).0, instances("ChatFunction"));
    assert_eq!(sum(&docs, "HealthFunction", names::COLD_STARTS, &[]).0, instances("HealthFunction"));
}

/// A known sequence through the Lambda-shaped stack: a completion served by the second provider
/// after the first failed, a second completion refused by the chat limit, and a webhook event;
/// each shows in the embedded metrics with its value.
#[tokio::test]
async fn a_completion_failover_429_and_webhook_event_show_in_the_embedded_metrics() {
    use baatcheet_shared::metrics::names;
    let (bad, good) = (FakeUpstream::start().await, FakeUpstream::start().await);
    bad.set_default(Behavior::status(500));
    good.set_default(Behavior::ok());
    let models = json!([{"id": "text", "context_length": 32768}]);
    let providers = json!([bad.provider("first", &["k1"], models.clone()), good.provider("second", &["k2"], models)]);
    let h = ChatHarness::with(providers, fast_config(), &[], None).await;
    let gw = start_with(&h.stack, |_| {}, &[("ChatFunction", "RATE_LIMIT_CHAT_FREE", "1/1h")]).await;
    let alice = h.caller("alice").await;
    let complete = || {
        http()
            .post(format!("{}/api/v1/chat/completions", gw.base_url()))
            .header("authorization", alice.bearer())
            .json(&json!({ "message": "Salaam" }))
            .send()
    };
    let res = complete().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let done = events(&parse_sse(&text)).pop().filter(|(n, _)| n == "done").map(|(_, d)| d).expect(&text);
    let usage = |field: &str| done["usage"][field].as_f64().expect("the fake upstream reports usage");
    let (prompt_tokens, completion_tokens) = (usage("prompt_tokens"), usage("completion_tokens"));
    assert!(prompt_tokens > 0.0 && completion_tokens > 0.0, "{done}");
    let refused = problem(complete().await.unwrap(), 429).await;
    let policy = refused["policy"].as_str().expect("the 429 names its policy").to_string();

    let user = baatcheet_tests::clerk::unique_user();
    let mut d = baatcheet_tests::clerk::Delivery::new(&baatcheet_tests::clerk::user_event(
        "user.created",
        &user,
        baatcheet_tests::clerk::now_ms(),
        "Ayesha",
        "user",
        "free",
    ));
    d.timestamp = baatcheet_tests::clerk::now();
    let res = http()
        .post(format!("{}{}", gw.base_url(), webhook::PATH))
        .header("content-type", "application/json")
        .header("svix-id", &d.id)
        .header("svix-timestamp", d.timestamp.to_string())
        .header("svix-signature", d.signature(baatcheet_tests::clerk::WEBHOOK_SECRET))
        .body(d.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let text_model = [("model", "text")];
    let webhook_event = [("event_type", "user.created"), ("outcome", "applied")];
    let lines = deployed::log_lines_when(&h.stack, |lines| {
        let docs = emf(lines);
        sum(&docs, "ChatFunction", names::RATE_LIMITED, &[]).0 >= 1.0
            && sum(&docs, "ChatFunction", names::COMPLETIONS, &[]).0 >= 1.0
            && sum(&docs, "ChatFunction", names::OUTPUT_TOKENS, &[]).0 >= 1.0
            && sum(&docs, "WebhookFunction", names::WEBHOOK_EVENTS, &[]).0 >= 1.0
    })
    .await;
    let docs = emf(&lines);
    let second = [("provider", "second"), ("model", "text")];
    assert_eq!(sum(&docs, "ChatFunction", names::COMPLETIONS, &second).0, 1.0);
    assert_eq!(sum(&docs, "ChatFunction", names::COMPLETIONS, &text_model).0, 1.0, "only the second served");
    assert_eq!(sum(&docs, "ChatFunction", names::FIRST_TOKEN_LATENCY, &second).1, 1);
    assert_eq!(sum(&docs, "ChatFunction", names::FAILOVERS, &second).0, 1.0);
    assert!(sum(&docs, "ChatFunction", names::PROVIDER_ERRORS, &[("provider", "first"), ("model", "text")]).0 >= 1.0);
    assert_eq!(sum(&docs, "ChatFunction", names::PROVIDER_ERRORS, &[("provider", "second")]).0, 0.0);
    // And per function alone, what ProviderErrorsAlarm watches: the same count.
    assert_eq!(
        sum_exact(&docs, "ChatFunction", names::PROVIDER_ERRORS, &[]),
        sum(&docs, "ChatFunction", names::PROVIDER_ERRORS, &[("provider", "first"), ("model", "text")]).0
    );
    assert_eq!(sum(&docs, "ChatFunction", names::RATE_LIMITED, &[("policy", policy.as_str())]).0, 1.0);
    assert_eq!(
        sum(&docs, "ChatFunction", names::REQUESTS, &[("route", "/api/v1/chat/completions"), ("status_class", "4xx")])
            .0,
        1.0
    );
    assert_eq!(sum(&docs, "WebhookFunction", names::WEBHOOK_EVENTS, &webhook_event).0, 1.0);
    // The answer's tokens, as the upstream reported them, and one stream duration.
    assert_eq!(sum(&docs, "ChatFunction", names::INPUT_TOKENS, &second).0, prompt_tokens);
    assert_eq!(sum(&docs, "ChatFunction", names::OUTPUT_TOKENS, &second).0, completion_tokens);
    assert_eq!(sum(&docs, "ChatFunction", names::INPUT_TOKENS, &[("provider", "first")]).0, 0.0);
    assert_eq!(sum(&docs, "ChatFunction", names::STREAM_DURATION, &second).1, 1);
}
