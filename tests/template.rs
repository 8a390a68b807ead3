//! template.yaml as a deploy creates it: AWS's SAM translator's output (CloudFormation JSON, with
//! the API's OpenAPI body), read from `$SAM_TEMPLATE_JSON` (`translate_template` in scripts/lib.sh
//! writes it; scripts/test.sh calls it before `cargo test`). Each test states one fact of the
//! deployed shape that a release depends on:
//! - every route of every function's route table (`routes.rs`) is routed to that function, with
//!   the integration its binary answers in (buffered JSON proxy response or Lambda's streaming
//!   format), and the routes it declares long have a timeout that fits;
//! - API Gateway may invoke every function on every route it serves;
//! - uploads arrive byte for byte (binary media types), and the events/ fixtures agree;
//! - API Gateway's own answers are problem+json with the status it really sends, and the access
//!   log is JSON whatever the error message holds;
//! - the alarms watch every function, mean something, and roll a canary back;
//! - logs expire; the secret is created without a value and says how it gets one;
//! - the edge: health and the webhook have concurrency of their own, chat a ceiling, the stage's
//!   throttle protects the account, and the optional WAF web ACL is what it says.

use baatcheet_local::functions::{response_mode_for, routes_for};
use baatcheet_shared::lambda::ResponseMode;
use baatcheet_shared::routes::RouteRow;
use baatcheet_tests::template;
use chat::safety::upload::Kind;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The translated template, read once.
fn translated() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| {
        let path = std::env::var("SAM_TEMPLATE_JSON").unwrap_or_else(|_| {
            panic!(
                "SAM_TEMPLATE_JSON is not set: these tests read template.yaml as AWS's SAM translator renders it. \
                 Run them through `make test`, or first `source scripts/lib.sh; translate_template` in this shell."
            )
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("SAM_TEMPLATE_JSON={path} cannot be read ({e}): run translate_template again"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("SAM_TEMPLATE_JSON={path} is not JSON: {e}"))
    })
}

fn resources() -> &'static Map<String, Value> {
    translated()["Resources"].as_object().expect("the translated template has Resources")
}

fn of_type(ty: &str) -> impl Iterator<Item = (&'static String, &'static Value)> + '_ {
    resources().iter().filter(move |(_, r)| r["Type"] == ty)
}

/// The API's OpenAPI (Swagger 2.0) body, with one `x-amazon-apigateway-integration` per route.
fn body() -> &'static Value {
    let api = &resources()["Api"];
    assert_eq!(api["Type"], "AWS::ApiGateway::RestApi", "the translated template has no RestApi named Api");
    &api["Properties"]["Body"]
}

fn integration(method: &str, path: &str) -> Option<&'static Value> {
    body()["paths"].get(path)?.get(method.to_lowercase())?.get("x-amazon-apigateway-integration")
}

/// The text of an `Fn::Sub` (plain or with its variable map), or a plain string.
fn sub_text(v: &Value) -> Option<&str> {
    match v.get("Fn::Sub") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(a)) => a.first()?.as_str(),
        _ => v.as_str(),
    }
}

/// `{"Ref": "X"}` -> X.
fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

/// The function an integration URI invokes: `.../functions/${ChatFunctionAliaslive}/...` (the
/// `live` alias of AutoPublishAlias) or `${ChatFunction.Arn}`, as the function's logical id.
fn invoked_function(uri: &str) -> Option<String> {
    let rest = &uri[uri.find("/functions/${")? + "/functions/${".len()..];
    let var = &rest[..rest.find('}')?];
    let id = var.strip_suffix(".Arn").unwrap_or(var);
    Some(id.find("Alias").map_or(id, |i| &id[..i]).to_string())
}

/// Every row of the route table of every function template.yaml routes to, with the function's
/// logical id.
fn table_rows() -> &'static [(String, RouteRow)] {
    static ROWS: OnceLock<Vec<(String, RouteRow)>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let functions: BTreeSet<&String> = template().routes.iter().map(|r| &r.function).collect();
        functions
            .into_iter()
            .flat_map(|f| {
                let rows = routes_for(f)
                    .unwrap_or_else(|| panic!("{f}: baatcheet_local::functions::routes_for does not know its table"));
                rows.into_iter().map(move |row| (f.clone(), row))
            })
            .collect()
    })
}

/// Whether a route's table declares it long: it waits on an LLM provider's answer (or follows
/// one being generated) and may run to the function's timeout.
fn is_long(method: &str, path: &str) -> bool {
    table_rows().iter().any(|(_, r)| r.long && r.method == method && r.path == path)
}

/// API Gateway's default integration timeout, and the most a streamed integration may have.
const DEFAULT_TIMEOUT_MS: u64 = 29_000;
const MAX_STREAM_TIMEOUT_MS: u64 = 15 * 60 * 1000;

fn fail_with(problems: Vec<String>, what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// --- integrations ------------------------------------------------------------------------------

/// A problem with the integration of `method path`, which `function` serves and whose binary
/// answers in `mode`.
fn integration_problem(function: &str, method: &str, path: &str, mode: ResponseMode) -> Option<String> {
    let route = format!("{method} {path} ({function})");
    let Some(i) = integration(method, path) else {
        return Some(format!("{route}: no integration in the translated API"));
    };
    let uri = sub_text(&i["uri"]).unwrap_or_default();
    if i["type"] != "aws_proxy" {
        return Some(format!("{route}: integration type {}, not aws_proxy", i["type"]));
    }
    match invoked_function(uri) {
        Some(f) if f == function => {}
        other => return Some(format!("{route}: the integration invokes {other:?}")),
    }
    let transfer = i.get("responseTransferMode").and_then(Value::as_str);
    let streamed_uri = uri.ends_with("/response-streaming-invocations");
    match mode {
        ResponseMode::Streamed if !(streamed_uri && transfer == Some("STREAM")) => Some(format!(
            "{route}: the binary answers in Lambda's streaming format, but the integration is {uri} with \
             responseTransferMode {transfer:?} (needs ResponseTransferMode: RESPONSE_STREAM on the Api event)"
        )),
        ResponseMode::Buffered if streamed_uri || !uri.ends_with("/invocations") || transfer == Some("STREAM") => {
            Some(format!(
                "{route}: the binary answers with a buffered proxy response, but the integration is {uri} \
                 with responseTransferMode {transfer:?}"
            ))
        }
        _ => None,
    }
}

#[test]
fn every_route_of_the_tables_uses_the_integration_its_binary_answers_in() {
    let mut problems: Vec<String> = table_rows()
        .iter()
        .filter_map(|(function, r)| integration_problem(function, &r.method, &r.path, r.mode))
        .collect();
    // The preflights are no table's rows, but they reach the same binary.
    for r in template().routes.iter().filter(|r| r.method == "OPTIONS") {
        match response_mode_for(&r.function) {
            Some(mode) => problems.extend(integration_problem(&r.function, &r.method, &r.path, mode)),
            None => problems.push(format!("OPTIONS {}: response_mode_for does not know {}", r.path, r.function)),
        }
    }
    fail_with(problems, "integrations that do not match their function's response mode");
}

#[test]
fn the_template_routes_exactly_the_route_tables() {
    let declared: BTreeSet<(String, String, String)> =
        table_rows().iter().map(|(f, r)| (r.method.clone(), r.path.clone(), f.clone())).collect();
    let routed: BTreeSet<(String, String, String)> = template()
        .routes
        .iter()
        .filter(|r| r.method != "OPTIONS")
        .map(|r| (r.method.clone(), r.path.clone(), r.function.clone()))
        .collect();
    let only = |a: &BTreeSet<_>, b: &BTreeSet<_>| a.difference(b).cloned().collect::<Vec<_>>();
    assert!(
        declared == routed,
        "only in the route tables: {:?}; only in template.yaml: {:?}",
        only(&declared, &routed),
        only(&routed, &declared)
    );
}

#[test]
fn the_api_routes_exactly_the_template_routes() {
    let declared: BTreeSet<(String, String)> =
        template().routes.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    let mut integrated = BTreeSet::new();
    for (path, methods) in body()["paths"].as_object().expect("the API body has paths") {
        for (method, op) in methods.as_object().expect("a path item is an object") {
            if op.get("x-amazon-apigateway-integration").is_some() {
                integrated.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(integrated, declared, "routes with an integration vs template.yaml's Api events");
}

fn function_timeout_ms(function: &str) -> u64 {
    let t = &resources()[function]["Properties"]["Timeout"];
    t.as_u64().unwrap_or_else(|| panic!("{function} has no numeric Timeout: {t}")) * 1000
}

#[test]
fn llm_routes_are_streamed_with_a_timeout_that_fits_a_long_answer() {
    let mut problems = Vec::new();
    for r in &template().routes {
        let route = format!("{} {}", r.method, r.path);
        let Some(i) = integration(&r.method, &r.path) else { continue };
        let timeout = i.get("timeoutInMillis").map(|t| t.as_u64().expect("timeoutInMillis is a number"));
        let streamed = i.get("responseTransferMode").and_then(Value::as_str) == Some("STREAM");
        if is_long(&r.method, &r.path) {
            let need = function_timeout_ms(&r.function);
            match timeout {
                Some(t) if t > DEFAULT_TIMEOUT_MS && t >= need && t <= MAX_STREAM_TIMEOUT_MS && streamed => {}
                _ => problems.push(format!(
                    "{route}: timeoutInMillis {timeout:?} (streamed: {streamed}); an LLM answer may take the \
                     function's {need} ms, so it needs a streamed integration with {need}..={MAX_STREAM_TIMEOUT_MS}"
                )),
            }
        } else if let Some(t) = timeout.filter(|t| *t > DEFAULT_TIMEOUT_MS) {
            problems
                .push(format!("{route}: timeoutInMillis {t} on a route that answers at once; keep the 29 s default"));
        }
    }
    fail_with(problems, "integration timeouts");
}

/// `arn:...:${__ApiId__}/${__Stage__}/GET/api/v1/conversations/*` covers `GET /api/v1/conversations/{id}`.
fn source_arn_covers(arn: &str, method: &str, path: &str) -> bool {
    let Some(i) = arn.find("${__Stage__}/") else { return false };
    let pattern = &arn[i + "${__Stage__}/".len()..];
    let want = format!("{method}{path}");
    let (mut p, mut w) = (pattern.split('/'), want.split('/'));
    loop {
        match (p.next(), w.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[test]
fn api_gateway_may_invoke_every_function_on_every_route() {
    // InvokeWithResponseStream is authorised by lambda:InvokeFunction (Lambda API reference), which
    // SAM's generated permissions grant; a permission naming it alone grants nothing more.
    let permissions: Vec<_> = of_type("AWS::Lambda::Permission").collect();
    let mut problems = Vec::new();
    for (id, p) in &permissions {
        let action = p["Properties"]["Action"].as_str().unwrap_or_default();
        if action != "lambda:InvokeFunction" {
            problems.push(format!("{id}: Action {action}; InvokeFunction covers InvokeWithResponseStream"));
        }
    }
    for r in &template().routes {
        let alias = format!("{}Aliaslive", r.function);
        let granted = permissions.iter().any(|(_, p)| {
            let p = &p["Properties"];
            p["Action"] == "lambda:InvokeFunction"
                && p["Principal"] == "apigateway.amazonaws.com"
                && ref_of(&p["FunctionName"]) == Some(alias.as_str())
                && sub_text(&p["SourceArn"]).is_some_and(|arn| source_arn_covers(arn, &r.method, &r.path))
        });
        if !granted {
            problems.push(format!("{} {}: no lambda:InvokeFunction permission on {alias} for it", r.method, r.path));
        }
    }
    fail_with(problems, "Lambda permissions");
}

// --- binary media types --------------------------------------------------------------------------

fn binary_media_types() -> Vec<String> {
    body()
        .get("x-amazon-apigateway-binary-media-types")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_ascii_lowercase)).collect())
        .unwrap_or_default()
}

/// Whether API Gateway treats a request of `content_type` (parameters ignored) as binary.
fn is_binary(types: &[String], content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let top = essence.split('/').next().unwrap_or_default();
    types.iter().any(|t| *t == essence || *t == "*/*" || t.strip_suffix("/*") == Some(top))
}

/// Every declared media type `Kind::from_declared` accepts: its canonical types come from the code
/// (`Kind::ALL`), its aliases are listed here (the code has no public list of them) and checked
/// against it, so a new alias in the code is a new line here.
fn accepted_upload_types() -> Vec<String> {
    const ALIASES: [&str; 17] = [
        "image/jpg",
        "image/pjpeg",
        "audio/mp3",
        "audio/mpeg3",
        "audio/x-mpeg-3",
        "audio/mpga",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/opus",
        "application/ogg",
        "audio/x-ogg",
        "audio/x-flac",
        "video/webm",
        "audio/m4a",
        "audio/x-m4a",
        "video/mp4",
    ];
    // The multipart body of POST /api/v1/chat/transcribe (functions/chat/src/safety/upload/multipart.rs), and the
    // generic type clients send raw files as.
    const REQUEST_BODIES: [&str; 2] = ["multipart/form-data", "application/octet-stream"];
    for alias in ALIASES {
        assert!(Kind::from_declared(alias).is_some(), "{alias} is no longer accepted by Kind::from_declared");
    }
    Kind::ALL.iter().map(|k| k.media_type()).chain(ALIASES).chain(REQUEST_BODIES).map(str::to_string).collect()
}

#[test]
fn every_upload_type_arrives_as_binary() {
    let types = binary_media_types();
    let missing: Vec<_> = accepted_upload_types().into_iter().filter(|t| !is_binary(&types, t)).collect();
    assert!(
        missing.is_empty(),
        "API Gateway would re-encode these upload types as text (x-amazon-apigateway-binary-media-types = \
         {types:?}; add them to BinaryMediaTypes, `/` spelled `~1`): {missing:?}"
    );
    // JSON and text must stay text: lambda_http reads them as UTF-8 either way, but the request
    // limits and logs are kinder to text.
    for text in ["application/json", "text/plain"] {
        assert!(!is_binary(&types, text), "{text} must not be a binary media type");
    }
}

#[test]
fn event_fixtures_are_encoded_as_this_api_sends_them() {
    let types = binary_media_types();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("events/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("fixture is JSON");
        if event["body"].as_str().is_none_or(str::is_empty) {
            continue;
        }
        let content_type = event["headers"]
            .as_object()
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        let base64 = event["isBase64Encoded"].as_bool().unwrap_or(false);
        if base64 != is_binary(&types, content_type) {
            problems.push(format!(
                "{name}: isBase64Encoded {base64} with Content-Type {content_type:?}, but API Gateway base64-encodes \
                 exactly the bodies of {types:?}"
            ));
        }
    }
    fail_with(problems, "events/ fixtures this API could not send");
}

// --- gateway responses and the access log -------------------------------------------------------

/// The status API Gateway sends for each gateway response type unless the API sets one
/// (developer guide, "Gateway response types for API Gateway"). DEFAULT_4XX/5XX have none: they
/// keep the status of whichever type fell back to them.
fn default_status(response_type: &str) -> Option<u16> {
    Some(match response_type {
        "ACCESS_DENIED"
        | "EXPIRED_TOKEN"
        | "INVALID_API_KEY"
        | "INVALID_SIGNATURE"
        | "MISSING_AUTHENTICATION_TOKEN"
        | "WAF_FILTERED" => 403,
        "API_CONFIGURATION_ERROR" | "AUTHORIZER_CONFIGURATION_ERROR" | "AUTHORIZER_FAILURE" => 500,
        "BAD_REQUEST_PARAMETERS" | "BAD_REQUEST_BODY" => 400,
        "INTEGRATION_FAILURE" | "INTEGRATION_TIMEOUT" => 504,
        "QUOTA_EXCEEDED" | "THROTTLED" => 429,
        "REQUEST_TOO_LARGE" => 413,
        "RESOURCE_NOT_FOUND" => 404,
        "UNAUTHORIZED" => 401,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "DEFAULT_4XX" | "DEFAULT_5XX" => return None,
        other => panic!("{other} is not an API Gateway gateway response type"),
    })
}

/// An error message with everything that breaks naive quoting.
const NASTY_MESSAGE: &str = "Missing \"x\" \\ y\n</script>";
const REQUEST_ID: &str = "c6af9ac6-7b61-11e6-9a41-93e8dead93ef";

/// What API Gateway puts for each `$context` variable a template may use: `messageString` is the
/// message as a quoted JSON string, `message` the raw text. A variable not listed fails the test
/// (add a realistic value for it here).
fn context_value(var: &str, message: &str) -> Option<String> {
    Some(match var {
        "error.messageString" => serde_json::to_string(message).unwrap(),
        "error.message" => message.to_string(),
        "error.responseType" => "DEFAULT_4XX".into(),
        "error.validationErrorString" => "[instance value (\"x\") not found]".into(),
        "requestId" => REQUEST_ID.into(),
        "extendedRequestId" => "BvKqTEgLjoEFZHQ=".into(),
        "integration.requestId" | "awsEndpointRequestId" => "3e9a4b1e-5f3c-4d1a-9b1e-2f6c7d8e9f00".into(),
        "xrayTraceId" => "Root=1-67891233-abcdef012345678912345678".into(),
        "requestTime" => "27/Nov/2026:10:00:00 +0000".into(),
        "requestTimeEpoch" => "1795773600000".into(),
        "identity.sourceIp" => "203.0.113.9".into(),
        "httpMethod" => "POST".into(),
        "resourcePath" => "/api/v1/conversations/{id}".into(),
        "protocol" => "HTTP/1.1".into(),
        "stage" => "staging".into(),
        // Numbers, or "-" when the request never got that far.
        "status" | "integration.status" | "integrationStatus" => "-".into(),
        "responseLength" | "responseLatency" | "integrationLatency" | "integration.latency" => "-".into(),
        _ => return None,
    })
}

/// `template` with every `$context.x.y` replaced by [`context_value`]. Unknown variables are errors.
fn render(template: &str, message: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("$context.") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + "$context.".len()..];
        let mut end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).unwrap_or(tail.len());
        while tail[..end].ends_with('.') {
            end -= 1;
        }
        let var = &tail[..end];
        out.push_str(&context_value(var, message).ok_or_else(|| format!("no sample value for $context.{var}"))?);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn gateway_responses_are_problem_json_with_the_status_sent() {
    let responses = body()["x-amazon-apigateway-gateway-responses"]
        .as_object()
        .expect("the API customises its gateway responses (x-amazon-apigateway-gateway-responses)");
    let mut problems = Vec::new();
    for (ty, r) in responses {
        let sent = match r.get("statusCode") {
            Some(s) => Some(s.as_str().and_then(|s| s.parse::<u16>().ok()).expect("statusCode is a number string")),
            None => default_status(ty),
        };
        if r["responseParameters"]["gatewayresponse.header.Content-Type"] != "'application/problem+json'" {
            problems.push(format!("{ty}: Content-Type is not application/problem+json"));
        }
        let templates = r["responseTemplates"].as_object().cloned().unwrap_or_default();
        if templates.is_empty() {
            problems.push(format!("{ty}: no response template"));
        }
        for (media, t) in templates {
            let t = t.as_str().unwrap_or_default();
            for message in [NASTY_MESSAGE, "Missing Authentication Token", ""] {
                let rendered = match render(t, message) {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(format!("{ty} {media}: {e}"));
                        continue;
                    }
                };
                let doc: Value = match serde_json::from_str(&rendered) {
                    Ok(d) => d,
                    Err(e) => {
                        problems.push(format!("{ty} {media}: not JSON once rendered ({e}): {rendered}"));
                        continue;
                    }
                };
                for field in ["type", "title", "detail"] {
                    if !doc[field].is_string() {
                        problems.push(format!("{ty}: no string {field:?} in {rendered}"));
                    }
                }
                if t.contains("$context.error.message") && doc["detail"] != message {
                    problems.push(format!("{ty}: detail {} is not the gateway's message {message:?}", doc["detail"]));
                }
                if doc["request_id"] != REQUEST_ID {
                    problems.push(format!("{ty}: request_id is not $context.requestId: {rendered}"));
                }
                match (doc.get("status"), sent) {
                    (None, _) => {}
                    (Some(s), Some(sent)) if s.as_u64() == Some(sent.into()) => {}
                    (Some(s), sent) => problems.push(format!(
                        "{ty}: the body says status {s}, but API Gateway sends {}",
                        sent.map_or("the original error's status".to_string(), |s| s.to_string())
                    )),
                }
            }
        }
    }
    // The ones a client of this API meets, each stating the status it is sent with.
    for (ty, status) in [
        ("MISSING_AUTHENTICATION_TOKEN", 404),
        ("ACCESS_DENIED", 403),
        ("UNAUTHORIZED", 401),
        ("REQUEST_TOO_LARGE", 413),
        ("THROTTLED", 429),
        ("QUOTA_EXCEEDED", 429),
        ("BAD_REQUEST_BODY", 400),
        ("BAD_REQUEST_PARAMETERS", 400),
        ("INTEGRATION_TIMEOUT", 504),
    ] {
        let sent = responses.get(ty).and_then(|r| r.get("statusCode")).and_then(Value::as_str);
        if sent != Some(status.to_string().as_str()) {
            problems.push(format!("{ty}: not customised with statusCode {status} (has {sent:?})"));
        }
    }
    for ty in ["DEFAULT_4XX", "DEFAULT_5XX"] {
        if !responses.contains_key(ty) {
            problems.push(format!("{ty}: not customised, so its body is API Gateway's {{\"message\":...}}"));
        }
    }
    fail_with(problems, "gateway responses");
}

#[test]
fn access_log_lines_are_json_whatever_the_error_says() {
    let (_, stage) = of_type("AWS::ApiGateway::Stage").next().expect("the translated template has a stage");
    let format =
        stage["Properties"]["AccessLogSetting"]["Format"].as_str().expect("the stage has an access log format");
    for message in [NASTY_MESSAGE, "-"] {
        let line = render(format, message).unwrap_or_else(|e| panic!("access log format: {e}"));
        let doc: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the access log line is not JSON ({e}) when the error is {message:?}: {line}"));
        for (key, value) in [
            ("requestId", REQUEST_ID),
            ("extendedRequestId", "BvKqTEgLjoEFZHQ="),
            ("integrationRequestId", "3e9a4b1e-5f3c-4d1a-9b1e-2f6c7d8e9f00"),
            ("ip", "203.0.113.9"),
            ("method", "POST"),
            ("resourcePath", "/api/v1/conversations/{id}"),
            ("error", message),
        ] {
            assert_eq!(doc[key], value, "access log field {key} in {line}");
        }
        for key in ["status", "responseLatencyMs", "integrationLatencyMs"] {
            assert!(doc.get(key).is_some(), "access log has no {key}: {line}");
        }
    }
}

// --- alarms, canary rollback, logs, secret ---------------------------------------------------------

fn functions() -> BTreeSet<String> {
    of_type("AWS::Lambda::Function").map(|(id, _)| id.clone()).collect()
}

/// Every metric an alarm watches: (namespace, metric name, dimensions name -> value text, stat).
fn alarm_metrics(alarm: &Value) -> Vec<(String, String, BTreeMap<String, String>, String)> {
    let p = &alarm["Properties"];
    let one = |metric: &Value, stat: &Value| {
        let dims = metric["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let v = &d["Value"];
                let text = ref_of(v).or_else(|| sub_text(v)).map(str::to_string).unwrap_or_else(|| v.to_string());
                (d["Name"].as_str().unwrap_or_default().to_string(), text)
            })
            .collect();
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (s(&metric["Namespace"]), s(&metric["MetricName"]), dims, s(stat))
    };
    if let Some(metrics) = p["Metrics"].as_array() {
        metrics
            .iter()
            .filter(|m| m.get("MetricStat").is_some())
            .map(|m| one(&m["MetricStat"]["Metric"], &m["MetricStat"]["Stat"]))
            .collect()
    } else {
        let stat = p.get("ExtendedStatistic").unwrap_or(&p["Statistic"]);
        vec![one(p, stat)]
    }
}

fn alarms() -> BTreeMap<String, &'static Value> {
    of_type("AWS::CloudWatch::Alarm").map(|(id, a)| (id.clone(), a)).collect()
}

#[test]
fn errors_and_throttles_alarms_watch_every_function() {
    let all = alarms();
    for (alarm, metric) in [("FunctionErrorsAlarm", "Errors"), ("FunctionThrottlesAlarm", "Throttles")] {
        let a = all.get(alarm).unwrap_or_else(|| panic!("no {alarm}"));
        let watched: BTreeSet<String> = alarm_metrics(a)
            .into_iter()
            .filter(|(ns, name, _, _)| ns == "AWS/Lambda" && name == metric)
            .filter_map(|(_, _, dims, _)| dims.get("FunctionName").cloned())
            .collect();
        assert_eq!(watched, functions(), "{alarm}: the functions whose {metric} it sums vs the stack's functions");
    }
}

#[test]
fn latency_alarms_watch_only_answers_that_do_not_wait_on_an_llm() {
    let mut problems = Vec::new();
    let mut latency_alarms = 0;
    for (id, a) in alarms() {
        for (ns, name, dims, _) in alarm_metrics(a) {
            match (ns.as_str(), name.as_str()) {
                ("AWS/ApiGateway", "Latency" | "IntegrationLatency") => {
                    latency_alarms += 1;
                    let (Some(resource), Some(method)) = (dims.get("Resource"), dims.get("Method")) else {
                        problems.push(format!(
                            "{id}: API-wide {name} includes streamed LLM answers, which last as long as the \
                             provider takes; watch per-method latency of the routes that answer at once"
                        ));
                        continue;
                    };
                    if is_long(method, resource) {
                        problems.push(format!("{id}: {method} {resource} waits on an LLM; judge it by errors"));
                    }
                    if integration(method, resource).is_none() {
                        problems.push(format!("{id}: {method} {resource} is not a route of the API"));
                    }
                }
                ("AWS/Lambda", "Duration") => {
                    latency_alarms += 1;
                    let f = dims.get("FunctionName").cloned().unwrap_or_default();
                    if response_mode_for(&f) != Some(ResponseMode::Buffered) {
                        problems
                            .push(format!("{id}: Duration of {f}, whose streamed answers last as long as the LLM's"));
                    }
                }
                _ => {}
            }
        }
    }
    if latency_alarms == 0 {
        problems.push("no latency alarm at all".into());
    }
    fail_with(problems, "latency alarms");
}

/// Alarms on the service's own metrics that notify only: a provider's trouble is no reason to roll
/// a release back.
/// DynamoDB's throttling and the limiter's fallback are the store's state, not the release's.
/// The health function's 5xx answers (/ready and /health: 503 while a dependency is down) report
/// its dependencies' state too.
const NOTIFY_ONLY: &[&str] = &[
    "FirstTokenLatencyAlarm",
    "ProviderErrorsAlarm",
    "DynamoDbThrottlesAlarm",
    "LimiterFallbacksAlarm",
    "HealthFunction5xxRateAlarm",
];

/// Every alarm notifies the stack's AlarmTopic, and the AlarmTopicArn parameter's topic too when
/// it is set.
fn notifies_the_alarm_topics(alarm: &Value) -> bool {
    let f = &alarm["Properties"]["AlarmActions"]["Fn::If"];
    fn refs(v: &Value) -> Option<Vec<&str>> {
        v.as_array().map(|a| a.iter().filter_map(ref_of).collect())
    }
    f[0] == "HasAlarmTopic"
        && refs(&f[1]) == Some(vec!["AlarmTopic", "AlarmTopicArn"])
        && refs(&f[2]) == Some(vec!["AlarmTopic"])
}

#[test]
fn alarms_on_service_metrics_watch_metrics_the_code_emits() {
    use baatcheet_shared::metrics::{NAMESPACE, names};
    let all = alarms();
    let mut problems = Vec::new();
    for id in NOTIFY_ONLY {
        if !all.contains_key(*id) {
            problems.push(format!("no {id}"));
        }
    }
    for (id, a) in &all {
        if !notifies_the_alarm_topics(a) {
            problems.push(format!("{id} does not notify the alarm topics: {}", a["Properties"]["AlarmActions"]));
        }
    }
    let lambdas: BTreeSet<&str> = of_type("AWS::Lambda::Function").map(|(id, _)| id.as_str()).collect();
    let mut watched = BTreeSet::new();
    for (id, a) in &all {
        let p = &a["Properties"];
        if p["Namespace"] == NAMESPACE {
            watched.insert(p["MetricName"].as_str().unwrap_or_default().to_string());
            if p["Dimensions"][0]["Name"] != "function"
                || !ref_of(&p["Dimensions"][0]["Value"]).is_some_and(|f| lambdas.contains(f))
            {
                problems.push(format!("{id}: the first dimension is not a function of the stack: {}", p["Dimensions"]));
            }
        }
        for m in p["Metrics"].as_array().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if metric["Namespace"] == NAMESPACE {
                watched.insert(metric["MetricName"].as_str().unwrap_or_default().to_string());
                if metric["Dimensions"][0]["Name"] != "function"
                    || !ref_of(&metric["Dimensions"][0]["Value"]).is_some_and(|f| lambdas.contains(f))
                {
                    problems.push(format!("{id}: the first dimension is not a function of the stack: {metric}"));
                }
            }
            // A Metrics Insights query sees every stack's metrics in the account: another stage's
            // trouble would ring this stage's alarm.
            if let Some(q) = m["Expression"].as_str().filter(|e| e.trim_start().to_uppercase().starts_with("SELECT")) {
                problems.push(format!("{id}: a Metrics Insights query is not scoped to this stack's functions: {q}"));
            }
        }
    }
    for name in &watched {
        if !names::ALL.contains(&name.as_str()) {
            problems.push(format!("an alarm watches {name}, which the code never emits (metrics::names::ALL)"));
        }
    }
    for name in [names::FIRST_TOKEN_LATENCY, names::PROVIDER_ERRORS, names::LIMITER_FALLBACKS, names::REQUESTS] {
        if !watched.contains(name) {
            problems.push(format!("no alarm watches {name}"));
        }
    }
    // Any function may fall back (each has a rate limiter): the alarm sums every one of them.
    let fallbacks: BTreeSet<&str> = all
        .get("LimiterFallbacksAlarm")
        .and_then(|a| a["Properties"]["Metrics"].as_array())
        .into_iter()
        .flatten()
        .filter(|m| m["MetricStat"]["Metric"]["MetricName"] == names::LIMITER_FALLBACKS)
        .filter_map(|m| ref_of(&m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]))
        .collect();
    if fallbacks != lambdas {
        problems.push(format!("LimiterFallbacksAlarm sums {fallbacks:?}, the stack's functions are {lambdas:?}"));
    }
    fail_with(problems, "alarms on service metrics");
}

#[test]
fn every_alarm_rolls_a_canary_back() {
    let all: BTreeSet<String> = alarms().into_keys().filter(|id| !NOTIFY_ONLY.contains(&id.as_str())).collect();
    let groups: Vec<_> = of_type("AWS::CodeDeploy::DeploymentGroup").collect();
    assert_eq!(groups.len(), functions().len(), "one CodeDeploy deployment group per function");
    for (id, g) in groups {
        let c = &g["Properties"]["AlarmConfiguration"];
        assert_eq!(c["Enabled"], true, "{id}: alarm rollback disabled");
        let wired: BTreeSet<String> = c["Alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| ref_of(&a["Name"]).map(str::to_string))
            .collect();
        assert_eq!(wired, all, "{id}: the alarms that roll a release back vs the stack's alarms");
    }
}

/// The webhook function's 5xx answers roll a release back (a broken webhook loses users'
/// updates); DynamoDB throttles are watched on every table of the stack.
#[test]
fn webhook_failures_roll_back_and_every_table_is_watched_for_throttles() {
    let all = alarms();
    let w = &all["WebhookFailuresAlarm"]["Properties"];
    assert_eq!(w["MetricName"], "Requests");
    let dims: BTreeMap<&str, &Value> = w["Dimensions"]
        .as_array()
        .expect("dimensions")
        .iter()
        .map(|d| (d["Name"].as_str().unwrap_or(""), &d["Value"]))
        .collect();
    assert_eq!(ref_of(dims["function"]), Some("WebhookFunction"));
    assert_eq!(dims["status_class"], "5xx");
    let route = dims["route"].as_str().expect("a route");
    assert!(integration("post", route).is_some(), "{route} is the webhook's route in the API");
    assert!(!NOTIFY_ONLY.contains(&"WebhookFailuresAlarm"), "rolls back (every_alarm_rolls_a_canary_back)");

    let watched: BTreeSet<(String, String)> = all["DynamoDbThrottlesAlarm"]["Properties"]["Metrics"]
        .as_array()
        .expect("metric math")
        .iter()
        .filter_map(|m| {
            let metric = &m["MetricStat"]["Metric"];
            (metric["Namespace"] == "AWS/DynamoDB").then(|| {
                let table = ref_of(&metric["Dimensions"][0]["Value"]).unwrap_or_default().to_string();
                (table, metric["MetricName"].as_str().unwrap_or_default().to_string())
            })
        })
        .collect();
    for (table, _) in of_type("AWS::DynamoDB::Table") {
        for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
            assert!(watched.contains(&(table.clone(), metric.to_string())), "{table} {metric} not watched");
        }
    }
}

/// Each function has an alarm on the 5xx share of its own answers: its `Requests` of status
/// class 5xx over all its `Requests` (the two dimension sets the code emits besides the per-route
/// one, `metrics::record_request`), above a minimum volume; each rolls a canary back but health's.
#[test]
fn every_function_has_a_5xx_rate_alarm_on_its_own_answers() {
    let all = alarms();
    let mut problems = Vec::new();
    for function in functions() {
        let requests = |a: &Value, extra: &[(&str, &str)]| {
            let mut want = BTreeMap::from([("function".to_string(), function.clone())]);
            want.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            alarm_metrics(a)
                .into_iter()
                .any(|(ns, name, dims, stat)| ns == "BaatCheet" && name == "Requests" && dims == want && stat == "Sum")
        };
        let found: Vec<_> =
            all.iter().filter(|(_, a)| requests(a, &[]) && requests(a, &[("status_class", "5xx")])).collect();
        let [(id, a)] = found.as_slice() else {
            problems.push(format!("{function}: {} 5xx-rate alarms", found.len()));
            continue;
        };
        let p = &a["Properties"];
        let metrics = p["Metrics"].as_array().expect("metric math");
        let id_of = |extra: bool| {
            metrics
                .iter()
                .find(|m| {
                    m["MetricStat"]["Metric"]["Dimensions"].as_array().map(Vec::len) == Some(1 + usize::from(extra))
                })
                .and_then(|m| m["Id"].as_str())
                .unwrap_or_default()
        };
        let (errors, total) = (id_of(true), id_of(false));
        let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
        let expected = format!("IF({total} >= 10, 100 * {errors} / {total}, 0)");
        if returned.len() != 1 || returned[0]["Expression"] != expected.as_str() {
            problems.push(format!("{id}: returns {returned:?}, not the share {expected}"));
        }
        if p["Threshold"] != 5.0 && p["Threshold"] != 5 || p["ComparisonOperator"] != "GreaterThanThreshold" {
            problems.push(format!("{id}: fires on {} {}", p["ComparisonOperator"], p["Threshold"]));
        }
        if p["TreatMissingData"] != "notBreaching" {
            problems.push(format!("{id}: a minute without 5xx (no data) must not breach"));
        }
        if NOTIFY_ONLY.contains(&id.as_str()) != (function == "HealthFunction") {
            problems.push(format!("{id}: only health's is notify-only"));
        }
    }
    fail_with(problems, "5xx-rate alarms");
}

/// The stack's own alarm topic, with an email subscription only when an address is given.
#[test]
fn the_alarm_topic_has_an_optional_email_subscription() {
    let topics: Vec<_> = of_type("AWS::SNS::Topic").collect();
    assert_eq!(topics.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["AlarmTopic"]);
    let subs: Vec<_> = of_type("AWS::SNS::Subscription").collect();
    assert_eq!(subs.len(), 1);
    let (_, sub) = subs[0];
    assert_eq!(ref_of(&sub["Properties"]["TopicArn"]), Some("AlarmTopic"));
    assert_eq!(sub["Properties"]["Protocol"], "email");
    let param = ref_of(&sub["Properties"]["Endpoint"]).expect("the address is a parameter");
    assert_eq!(translated()["Parameters"][param]["Default"], "", "no subscription unless asked for");
    // Its condition: the parameter is not empty.
    let cond = sub["Condition"].as_str().expect("the subscription has a condition");
    let equals = &translated()["Conditions"][cond]["Fn::Not"][0]["Fn::Equals"];
    assert_eq!((ref_of(&equals[0]), &equals[1]), (Some(param), &Value::from("")), "{cond}");
}

/// The dashboard's body is JSON once its `${...}` are substituted, and every BaatCheet metric it
/// shows is one the code emits; it shows the service's main figures.
#[test]
fn the_dashboard_is_json_and_shows_only_emitted_metrics() {
    use baatcheet_shared::metrics::{NAMESPACE, names};
    let dashboards: Vec<_> = of_type("AWS::CloudWatch::Dashboard").collect();
    assert_eq!(dashboards.len(), 1);
    let body = sub_text(&dashboards[0].1["Properties"]["DashboardBody"]).expect("the body is an Fn::Sub string");
    // Substitute every `${X}`: with a resource's or pseudo parameter's stand-in, failing on any
    // name the stack does not have.
    let mut text = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        text.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closed ${") + at;
        let name = &rest[at + 2..end];
        assert!(name.starts_with("AWS::") || resources().contains_key(name), "${{{name}}} is not in the stack");
        text.push_str(&format!("stand-in-{}", name.replace("::", "-")));
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}\n{text}"));
    let mut shown = BTreeSet::new();
    let mut problems = Vec::new();
    for w in doc["widgets"].as_array().expect("widgets") {
        for row in w["properties"]["metrics"].as_array().expect("every widget shows metrics") {
            let row = row.as_array().expect("a metric row");
            if row.first().and_then(Value::as_str) == Some(NAMESPACE) {
                shown.insert(row[1].as_str().unwrap_or_default().to_string());
            } else if let Some(e) = row[0]["expression"].as_str() {
                // SEARCH('{BaatCheet,<dimensions>} MetricName="<name>" ...', ...)
                let inner = e.strip_prefix("SEARCH('{").and_then(|r| r.split_once("MetricName=\""));
                let Some((schema, after)) = inner else {
                    problems.push(format!("expression not understood: {e}"));
                    continue;
                };
                if !schema.starts_with(&format!("{NAMESPACE},")) {
                    problems.push(format!("a search outside {NAMESPACE}: {e}"));
                }
                shown.insert(after.split('"').next().unwrap_or_default().to_string());
            }
        }
    }
    for name in &shown {
        if !names::ALL.contains(&name.as_str()) {
            problems.push(format!("the dashboard shows {name}, which the code never emits"));
        }
    }
    for name in [
        names::REQUESTS,
        names::REQUEST_LATENCY,
        names::COMPLETIONS,
        names::FIRST_TOKEN_LATENCY,
        names::INPUT_TOKENS,
        names::OUTPUT_TOKENS,
        names::PROVIDER_ERRORS,
        names::FAILOVERS,
        names::RATE_LIMITED,
        names::LIMITER_FALLBACKS,
        names::WEBHOOK_EVENTS,
    ] {
        if !shown.contains(name) {
            problems.push(format!("the dashboard does not show {name}"));
        }
    }
    if !text.contains("\"AWS/DynamoDB\",\"ReadThrottleEvents\"") {
        problems.push("the dashboard does not show DynamoDB throttles".into());
    }
    fail_with(problems, "dashboard");
}

#[test]
fn every_function_logs_to_a_group_that_expires() {
    let mut groups = BTreeSet::new();
    let mut problems = Vec::new();
    for (id, f) in of_type("AWS::Lambda::Function") {
        let Some(group) = ref_of(&f["Properties"]["LoggingConfig"]["LogGroup"]) else {
            problems.push(format!("{id}: LoggingConfig.LogGroup is not a !Ref to a log group of the stack"));
            continue;
        };
        let g = &resources()[group];
        if g["Type"] != "AWS::Logs::LogGroup" || ref_of(&g["Properties"]["RetentionInDays"]) != Some("LogRetentionDays")
        {
            problems.push(format!(
                "{id}: {group} is not an AWS::Logs::LogGroup with RetentionInDays !Ref LogRetentionDays"
            ));
        }
        if !groups.insert(group) {
            problems.push(format!("{id}: shares {group} with another function"));
        }
    }
    fail_with(problems, "function log groups");
}

#[test]
fn each_secret_is_created_empty_and_says_how_it_is_filled() {
    let secrets: Vec<_> = of_type("AWS::SecretsManager::Secret").collect();
    assert!(!secrets.is_empty(), "the stack has its secrets");
    for (id, s) in secrets {
        let p = &s["Properties"];
        assert!(
            p.get("SecretString").is_none() && p.get("GenerateSecretString").is_none(),
            "{id}: secret values never appear in the template"
        );
        let description = p["Description"].as_str().unwrap_or_default();
        assert!(
            description.contains("scripts/put-secret.sh") && description.contains("docs/deploy.md"),
            "{id}: the description says how a new stack's empty secret gets its value: {description}"
        );
    }
}

/// One secret per function that needs one, read by that function only: health and docs have
/// none, and each secret holds the fields `make dev` and `scripts/put-secret.sh` put in it
/// (`dev_secret::SECRETS`). (tests/iam.rs checks each function is granted exactly its own.)
#[test]
fn one_secret_per_function_that_needs_one() {
    let mut readers: std::collections::BTreeMap<String, Vec<String>> =
        of_type("AWS::SecretsManager::Secret").map(|(id, _)| (id.clone(), Vec::new())).collect();
    for (id, f) in of_type("AWS::Lambda::Function") {
        let vars = &f["Properties"]["Environment"]["Variables"];
        match vars.get("SECRET_ID") {
            Some(v) => {
                let target = v["Ref"].as_str().unwrap_or_else(|| panic!("{id}: SECRET_ID is not a Ref: {v}"));
                readers
                    .get_mut(target)
                    .unwrap_or_else(|| panic!("{id}: SECRET_ID names {target}, no secret"))
                    .push(id.clone());
            }
            None => assert!(id.starts_with("HealthFunction") || id.starts_with("DocsFunction"), "{id} has no secret"),
        }
        if id.starts_with("HealthFunction") || id.starts_with("DocsFunction") {
            assert!(vars.get("SECRET_ID").is_none(), "{id} needs no secret and must have none");
        }
    }
    for (secret, functions) in &readers {
        assert_eq!(functions.len(), 1, "{secret} is read by exactly one function: {functions:?}");
    }
    let local: Vec<&str> = baatcheet_local::dev_secret::SECRETS.iter().map(|(s, _)| *s).collect();
    assert_eq!(readers.keys().map(String::as_str).collect::<Vec<_>>(), local, "dev_secret::SECRETS lists every secret");
}

// --- the helpers themselves ------------------------------------------------------------------------

#[test]
fn helpers_read_what_sam_writes() {
    assert_eq!(
        invoked_function(
            "arn:aws:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/${ChatFunctionAliaslive}/response-streaming-invocations"
        )
        .as_deref(),
        Some("ChatFunction")
    );
    assert_eq!(
        invoked_function(
            "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${HealthFunction.Arn}/invocations"
        )
        .as_deref(),
        Some("HealthFunction")
    );
    let arn =
        "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${__ApiId__}/${__Stage__}/GET/api/v1/conversations/*";
    assert!(source_arn_covers(arn, "GET", "/api/v1/conversations/{id}"));
    assert!(!source_arn_covers(arn, "GET", "/api/v1/conversations"));
    assert!(!source_arn_covers(arn, "PATCH", "/api/v1/conversations/{id}"));
    let types = vec!["multipart/form-data".to_string(), "audio/*".to_string()];
    assert!(is_binary(&types, "multipart/form-data; boundary=x"));
    assert!(is_binary(&types, "Audio/WAV"));
    assert!(!is_binary(&types, "application/json"));
    assert_eq!(render(r#"{"d":$context.error.messageString}"#, "a\"b").unwrap(), r#"{"d":"a\"b"}"#);
    assert_eq!(render("$context.requestId.", "").unwrap(), format!("{REQUEST_ID}."));
    assert!(render("$context.nope", "").is_err());
}

// --- the edge (issue 20) -----------------------------------------------------------------------

/// The translated template as a deploy with these parameter values would run it.
fn deployed_with(parameters: &[(&str, &str)]) -> baatcheet_local::deployed::Deployed {
    let mut doc = translated().clone();
    for (name, value) in parameters {
        doc["Parameters"][name]["Default"] = Value::String(value.to_string());
    }
    baatcheet_local::deployed::Deployed::from_cloudformation(&doc).expect("the translated template loads")
}

/// The default per-Region Lambda concurrency quota, and the part of it Lambda keeps unreserved.
const ACCOUNT_CONCURRENCY: u32 = 1000;
const MIN_UNRESERVED: u32 = 100;

#[test]
fn health_and_the_webhook_have_reserved_concurrency_and_chat_a_ceiling() {
    let d = deployed_with(&[]);
    let reserved = |f: &str| d.functions[f].reserved_concurrency;
    let (health, webhook, chat) = (reserved("HealthFunction"), reserved("WebhookFunction"), reserved("ChatFunction"));
    assert!(health.is_some_and(|n| n >= 2), "health must answer while chat is busy: {health:?}");
    assert!(webhook.is_some_and(|n| n >= 2), "the webhook must answer while chat is busy: {webhook:?}");
    let chat = chat.expect("chat has a ceiling");
    assert!(chat >= 100, "the chat ceiling serves real traffic: {chat}");
    let total = health.unwrap() + webhook.unwrap() + chat;
    assert!(total <= ACCOUNT_CONCURRENCY - MIN_UNRESERVED, "{total} reserved leaves docs and the account too little");
    assert_eq!(reserved("DocsFunction"), None, "docs shares the unreserved pool");
    // Each is a parameter, and 0 means none (an account still on the new-account quota of 10
    // cannot reserve anything): 0 must not reach Lambda, where it would throttle every call.
    let none = deployed_with(&[
        ("HealthReservedConcurrency", "0"),
        ("WebhookReservedConcurrency", "0"),
        ("ChatMaxConcurrency", "0"),
    ]);
    for f in ["HealthFunction", "WebhookFunction", "ChatFunction"] {
        assert_eq!(none.functions[f].reserved_concurrency, None, "{f}");
    }
    assert_eq!(deployed_with(&[("ChatMaxConcurrency", "40")]).functions["ChatFunction"].reserved_concurrency, Some(40));
}

#[test]
fn the_stage_throttle_protects_the_account_not_users_from_each_other() {
    let (_, stage) = of_type("AWS::ApiGateway::Stage").next().expect("a stage");
    let settings = stage["Properties"]["MethodSettings"].as_array().expect("MethodSettings");
    let all = settings.iter().find(|m| m["ResourcePath"] == "/*" && m["HttpMethod"] == "*").expect("a /* * setting");
    let default = |v: &Value| -> u64 {
        let p = ref_of(v).expect("the throttle is a parameter");
        translated()["Parameters"][p]["Default"]
            .as_u64()
            .or_else(|| translated()["Parameters"][p]["Default"].as_str()?.parse().ok())
            .unwrap()
    };
    let (rate, burst) = (default(&all["ThrottlingRateLimit"]), default(&all["ThrottlingBurstLimit"]));
    // One client sending tokenless requests at a few hundred a second must not throttle every
    // user's completions; the Region's account-level throttle (10000/s, burst 5000) is the bound.
    assert!((2000..=10_000).contains(&rate), "{rate}");
    assert!((1000..=5000).contains(&burst), "{burst}");
    assert!(settings.iter().all(|m| m["ResourcePath"] == "/*"), "no method has a tighter bucket of its own");
}

#[test]
fn the_waf_web_acl_is_optional_and_guards_the_stage() {
    let conditions = &translated()["Conditions"];
    let acls: Vec<_> = of_type("AWS::WAFv2::WebACL").collect();
    let associations: Vec<_> = of_type("AWS::WAFv2::WebACLAssociation").collect();
    assert_eq!((acls.len(), associations.len()), (1, 1), "one web ACL, associated once");
    let (acl_id, acl) = acls[0];
    let (_, assoc) = associations[0];
    // Off unless asked for: both behind one condition on a parameter whose default is "false".
    let cond = acl["Condition"].as_str().expect("the web ACL has a condition");
    assert_eq!(assoc["Condition"], cond);
    let equals = conditions[cond]["Fn::Equals"].as_array().expect("an Fn::Equals condition");
    let param = ref_of(&equals[0]).expect("on a parameter");
    assert_eq!(
        (translated()["Parameters"][param]["Default"].as_str(), equals[1].as_str()),
        (Some("false"), Some("true"))
    );

    let p = &acl["Properties"];
    assert_eq!((p["Scope"].as_str(), p["DefaultAction"].get("Allow").is_some()), (Some("REGIONAL"), true));
    let rules = p["Rules"].as_array().expect("rules");
    let rate =
        rules.iter().find_map(|r| r["Statement"].get("RateBasedStatement").map(|s| (r, s))).expect("a rate rule");
    assert_eq!(rate.1["AggregateKeyType"], "IP", "per address");
    let limit = ref_of(&rate.1["Limit"]).expect("the rate is a parameter");
    let limit: u64 = translated()["Parameters"][limit]["Default"].as_u64().unwrap_or_default();
    // Thousands of users share one carrier-NAT address: the rule is a flood brake, far above what
    // one address's users send (each user's own limit is 1000 an hour).
    assert!(limit >= 10_000, "{limit} per 5 minutes would block a busy carrier address");
    let refusal = &rate.0["Action"]["Block"]["CustomResponse"];
    assert_eq!(refusal["ResponseCode"], 429);
    // Like the API's own 429s: Retry-After (the evaluation window) and a quota-exceeded problem
    // saying the same.
    let window = rate.1["EvaluationWindowSec"].as_u64().expect("a window");
    let retry: Vec<_> = refusal["ResponseHeaders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("retry-after")))
        .collect();
    assert_eq!(retry.len(), 1, "one Retry-After: {refusal}");
    assert_eq!(retry[0]["Value"].as_str().and_then(|v| v.parse::<u64>().ok()), Some(window));
    let key = refusal["CustomResponseBodyKey"].as_str().expect("a body");
    let body = &p["CustomResponseBodies"][key];
    let problem: Value = serde_json::from_str(body["Content"].as_str().expect("content")).expect("a JSON problem");
    assert_eq!(
        (problem["type"].as_str(), problem["status"].as_u64(), problem["retry_after"].as_u64()),
        (Some("https://baatcheet.app/problems/quota-exceeded"), Some(429), Some(window))
    );
    let managed =
        rules.iter().find_map(|r| r["Statement"].get("ManagedRuleGroupStatement")).expect("a managed rule group");
    assert_eq!(
        (managed["VendorName"].as_str(), managed["Name"].as_str()),
        (Some("AWS"), Some("AWSManagedRulesCommonRuleSet"))
    );
    let counted: BTreeSet<&str> = managed["RuleActionOverrides"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["ActionToUse"].get("Count").is_some())
        .filter_map(|o| o["Name"].as_str())
        .collect();
    // Bodies over 8 KB are long messages, inline images and audio uploads: never blocked by size.
    assert!(counted.contains("SizeRestrictions_BODY"), "{counted:?}");

    // Associated with this API's stage (the stage resource, so it waits for it).
    assert_eq!(
        ref_of(&assoc["Properties"]["WebACLArn"]).or(assoc["Properties"]["WebACLArn"]["Fn::GetAtt"][0].as_str()),
        Some(acl_id.as_str())
    );
    let arn = sub_text(&assoc["Properties"]["ResourceArn"]).expect("a Sub ARN");
    let (stage_id, _) = of_type("AWS::ApiGateway::Stage").next().expect("a stage");
    assert_eq!(
        arn,
        format!("arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{Api}}/stages/${{{stage_id}}}")
    );
}
