//! API Gateway's REST API in front of the Lambda-shaped functions, as the translated template
//! configures it: the stage prefix, resource matching (most specific first), the Lambda proxy
//! event, binary media types (base64 bodies), the 10 MB request limit, per-route integrations —
//! buffered (strict proxy-response parsing, 502 on anything malformed, Lambda's 6 MB limit) or
//! response-streaming (JSON prelude, 8 NUL bytes, then the body as it comes) — integration
//! timeouts (504), gateway responses rendered from their templates, and one access-log line per
//! request in the stage's format.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::Response,
};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

use crate::deployed::{ApiRoute, Deployed, GatewayResponse};
use crate::lambda::{FunctionError, FunctionPool, Invocation, LogSink, MAX_BUFFERED_RESPONSE, Reply};

/// API Gateway's limit on a request payload.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;
/// Largest streaming prelude accepted before the 8-NUL delimiter.
const MAX_PRELUDE: usize = 64 * 1024;
const DELIMITER: [u8; 8] = [0; 8];

/// The REST API of one stage, with the pools of the functions its routes invoke.
pub struct RestApi {
    deployed: Arc<Deployed>,
    pools: BTreeMap<String, FunctionPool>,
    access_log: LogSink,
    api_id: String,
    /// Local only (tests): a request header whose value, when it is an IP address, stands for the
    /// client's address (`identity.sourceIp`), so that one test can speak from many addresses.
    /// API Gateway has no such thing; `make dev` never sets it.
    source_ip_header: Option<HeaderName>,
}

impl RestApi {
    /// `pools` must hold a pool for every function a route names.
    pub fn new(deployed: Arc<Deployed>, pools: BTreeMap<String, FunctionPool>, access_log: LogSink) -> Self {
        Self { deployed, pools, access_log, api_id: "local".into(), source_ip_header: None }
    }

    /// Takes the client's address from `header` when a request carries one (see the field).
    pub fn with_source_ip_header(mut self, header: Option<HeaderName>) -> Self {
        self.source_ip_header = header;
        self
    }

    pub fn pool(&self, function: &str) -> Option<&FunctionPool> {
        self.pools.get(function)
    }

    pub fn pools(&self) -> impl Iterator<Item = &FunctionPool> {
        self.pools.values()
    }

    pub fn stage(&self) -> &str {
        &self.deployed.stage
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// The route API Gateway picks for this method and path (without the stage), and its path
    /// parameters: literal segments beat `{param}`, which beats a greedy `{param+}`.
    pub fn route(&self, method: &str, path: &str) -> Option<(&ApiRoute, BTreeMap<String, String>)> {
        let mut best: Option<(u32, &ApiRoute, BTreeMap<String, String>)> = None;
        for r in &self.deployed.routes {
            if r.method != method && r.method != "ANY" {
                continue;
            }
            let Some((score, params)) = match_path(&r.path, path) else { continue };
            // An exact method beats ANY on the same resource.
            let score = score * 2 + u32::from(r.method == method);
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, r, params));
            }
        }
        best.map(|(_, r, p)| (r, p))
    }
}

/// Matches an API Gateway resource path against a request path: a specificity score and the path
/// parameters (percent-decoded), or None.
fn match_path(template: &str, path: &str) -> Option<(u32, BTreeMap<String, String>)> {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = if p == [""] { Vec::new() } else { p };
    let mut params = BTreeMap::new();
    let mut score = 0;
    for (i, seg) in t.iter().enumerate() {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            let rest = p.get(i..).filter(|r| !r.is_empty() && r.iter().any(|s| !s.is_empty()))?;
            params.insert(name.to_string(), decode(&rest.join("/")));
            return Some((score, params));
        }
        let got = p.get(i)?;
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if got.is_empty() {
                return None;
            }
            params.insert(name.to_string(), decode(got));
            score += 1;
        } else if seg == got {
            score += 4;
        } else {
            return None;
        }
    }
    (t.len() == p.len()).then_some((score, params))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Whether `content_type` is one of the API's binary media types (`*` wildcards allowed).
pub fn is_binary(types: &[String], content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if ct.is_empty() {
        return false;
    }
    types.iter().any(|t| media_matches(&t.to_ascii_lowercase(), &ct))
}

fn media_matches(pattern: &str, ct: &str) -> bool {
    let (pt, ps) = pattern.split_once('/').unwrap_or((pattern, "*"));
    let (ct_t, ct_s) = ct.split_once('/').unwrap_or((ct, ""));
    (pt == "*" || pt == ct_t || ct_t == "*") && (ps == "*" || ps == ct_s || ct_s == "*")
}

/// What one request's access-log line and gateway responses can refer to (`$context.*`).
struct Ctx {
    vars: BTreeMap<&'static str, String>,
    started: Instant,
}

impl Ctx {
    fn set(&mut self, k: &'static str, v: impl Into<String>) {
        self.vars.insert(k, v.into());
    }
}

/// Substitutes `$context.x.y` (and `${context.x.y}`) references; unknown ones render `missing`.
pub fn render(template: &str, vars: &BTreeMap<&str, String>, missing: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (braced, body) = match after.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, after),
        };
        if let Some(name_part) = body.strip_prefix("context.") {
            let len = name_part
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
                .map(|(i, _)| i)
                .unwrap_or(name_part.len());
            let mut name = &name_part[..len];
            // A sentence's full stop is not part of the name.
            while let Some(n) = name.strip_suffix('.') {
                name = n;
            }
            let closing = if braced { name_part[name.len()..].starts_with('}') as usize } else { 0 };
            out.push_str(vars.get(name).map(String::as_str).unwrap_or(missing));
            rest = &name_part[name.len() + closing..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

async fn handle(State(api): State<Arc<RestApi>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let mut req = req;
    let mut source_ip = peer.ip();
    if let Some(name) = &api.source_ip_header
        && let Some(v) = req.headers_mut().remove(name)
        && let Some(ip) = v.to_str().ok().and_then(|s| s.trim().parse().ok())
    {
        source_ip = ip;
    }
    let now = time::OffsetDateTime::now_utc();
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut ctx = Ctx { vars: BTreeMap::new(), started: Instant::now() };
    ctx.set("requestId", request_id.clone());
    ctx.set("extendedRequestId", request_id.replace('-', "")[..16].to_string());
    ctx.set("identity.sourceIp", source_ip.to_string());
    ctx.set("httpMethod", req.method().as_str());
    ctx.set("path", req.uri().path());
    ctx.set("protocol", format!("{:?}", req.version()));
    ctx.set("stage", api.deployed.stage.clone());
    ctx.set("apiId", api.api_id.clone());
    ctx.set("requestTimeEpoch", (now.unix_timestamp_nanos() / 1_000_000).to_string());
    ctx.set("requestTime", request_time(now));
    let ua = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    ctx.set("identity.userAgent", ua);
    let res = serve(&api, &mut ctx, req).await;
    let mut res = res;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    ctx.set("status", res.status().as_u16().to_string());
    ctx.set("responseLatency", ctx.started.elapsed().as_millis().to_string());
    if let Some(length) = res.headers().get("content-length").and_then(|v| v.to_str().ok()) {
        ctx.set("responseLength", length.to_string());
    }
    // Access logs show `-` for what a request does not have; a quoted field stays valid JSON.
    ctx.vars.entry("error.messageString").or_insert_with(|| "\"-\"".into());
    if let Some(format) = &api.deployed.access_log_format {
        api.access_log.line("access", &render(format, &ctx.vars, "-"));
    }
    res
}

fn request_time(t: time::OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn serve(api: &RestApi, ctx: &mut Ctx, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let full_path = parts.uri.path().to_string();
    let stage_prefix = format!("/{}", api.deployed.stage);
    let path = match full_path.strip_prefix(&stage_prefix) {
        Some("") => "/".to_string(),
        Some(p) if p.starts_with('/') => p.to_string(),
        _ => return gateway_error(api, ctx, "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token"),
    };
    let method = parts.method.as_str().to_string();
    let Some((route, params)) = api.route(&method, &path) else {
        return gateway_error(api, ctx, "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token");
    };
    let route = route.clone();
    ctx.set("resourcePath", route.path.clone());
    let Some(pool) = api.pools.get(&route.function) else {
        return gateway_error(api, ctx, "API_CONFIGURATION_ERROR", 500, "Internal server error");
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => return gateway_error(api, ctx, "REQUEST_TOO_LARGE", 413, "Request Too Long"),
    };
    // The ids come first: the event's X-Amzn-Trace-Id header carries the trace Lambda is given.
    let mut inv = Invocation::new(Bytes::new());
    ctx.set("integration.requestId", inv.request_id.clone());
    ctx.set("xrayTraceId", inv.trace_id.split(';').next().unwrap_or_default().trim_start_matches("Root=").to_string());
    inv.event = proxy_event(api, ctx, &parts, &path, &route, params, &body).to_string().into();
    let accept = parts.headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + route.timeout;
    let integration_started = Instant::now();
    let reply = match tokio::time::timeout_at(deadline, pool.invoke(inv)).await {
        Err(_) => return gateway_error(api, ctx, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"),
        Ok(Err(e)) => return function_failed(api, ctx, &e),
        Ok(Ok(r)) => r,
    };
    let res = if route.streamed {
        streamed_response(api, ctx, reply, deadline).await
    } else {
        match tokio::time::timeout_at(deadline, collect(reply)).await {
            Err(_) => return gateway_error(api, ctx, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"),
            Ok(Err(e)) => return function_failed(api, ctx, &e),
            Ok(Ok(payload)) => match proxy_response(&payload, &accept, &api.deployed.binary_media_types) {
                Ok(r) => r,
                Err(why) => {
                    ctx.set("integration.error", why);
                    gateway_error(api, ctx, "DEFAULT_5XX", 502, "Internal server error")
                }
            },
        }
    };
    ctx.set("integrationLatency", integration_started.elapsed().as_millis().to_string());
    res
}

/// A Lambda proxy integration's event (REST API, payload format 1.0).
fn proxy_event(
    api: &RestApi,
    ctx: &Ctx,
    parts: &axum::http::request::Parts,
    path: &str,
    route: &ApiRoute,
    params: BTreeMap<String, String>,
    body: &Bytes,
) -> Value {
    let source_ip = ctx.vars.get("identity.sourceIp").cloned().unwrap_or_default();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        multi
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    // API Gateway appends the address it saw to whatever X-Forwarded-For the client sent.
    let xff = match multi.get("x-forwarded-for") {
        Some(v) => format!("{}, {source_ip}", v.join(", ")),
        None => source_ip.clone(),
    };
    multi.insert("x-forwarded-for".into(), vec![xff]);
    multi.insert("x-forwarded-proto".into(), vec!["https".into()]);
    multi.insert("x-forwarded-port".into(), vec!["443".into()]);
    let trace = ctx.vars.get("xrayTraceId").cloned().unwrap_or_default();
    if !trace.is_empty() {
        multi.insert("x-amzn-trace-id".into(), vec![format!("Root={trace}")]);
    }
    let single: BTreeMap<&String, &String> = multi.iter().filter_map(|(k, v)| Some((k, v.last()?))).collect();
    let mut mq: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        mq.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let sq: BTreeMap<&String, &String> = mq.iter().filter_map(|(k, v)| Some((k, v.last()?))).collect();
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let binary = is_binary(&api.deployed.binary_media_types, content_type);
    let body_json = if body.is_empty() {
        Value::Null
    } else if binary {
        Value::String(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    };
    let or_null = |empty: bool, v: Value| if empty { Value::Null } else { v };
    let get = |k: &str| ctx.vars.get(k).cloned().unwrap_or_default();
    json!({
        "resource": route.path,
        "path": path,
        "httpMethod": parts.method.as_str(),
        "headers": or_null(single.is_empty(), json!(single)),
        "multiValueHeaders": or_null(multi.is_empty(), json!(multi)),
        "queryStringParameters": or_null(sq.is_empty(), json!(sq)),
        "multiValueQueryStringParameters": or_null(mq.is_empty(), json!(mq)),
        "pathParameters": or_null(params.is_empty(), json!(params)),
        "stageVariables": null,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": parts.method.as_str(),
            "extendedRequestId": get("extendedRequestId"),
            "requestTime": get("requestTime"),
            "path": format!("/{}{path}", api.deployed.stage),
            "accountId": "123456789012",
            "protocol": get("protocol"),
            "stage": api.deployed.stage,
            "domainPrefix": "local",
            "requestTimeEpoch": get("requestTimeEpoch").parse::<i64>().unwrap_or_default(),
            "requestId": get("requestId"),
            "identity": {
                "cognitoIdentityPoolId": null, "accountId": null, "cognitoIdentityId": null, "caller": null,
                "sourceIp": source_ip, "principalOrgId": null, "accessKey": null,
                "cognitoAuthenticationType": null, "cognitoAuthenticationProvider": null, "userArn": null,
                "userAgent": get("identity.userAgent"), "user": null
            },
            "domainName": parts.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost"),
            "apiId": api.api_id,
        },
        "body": body_json,
        "isBase64Encoded": binary && !body.is_empty(),
    })
}

/// A buffered integration receives the whole payload (a streaming function's output included:
/// Lambda buffers it for a plain Invoke).
async fn collect(reply: Reply) -> Result<Bytes, FunctionError> {
    match reply {
        Reply::Buffered(b) => Ok(b),
        Reply::Streamed(mut rx) => {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                out.extend_from_slice(&chunk?);
                if out.len() > MAX_BUFFERED_RESPONSE {
                    return Err(FunctionError::ResponseTooLarge);
                }
            }
            Ok(out.into())
        }
    }
}

/// Parses a Lambda proxy response as API Gateway's REST API does: a JSON object of exactly the
/// known fields with the right types, else it is malformed (the caller answers 502).
pub fn proxy_response(payload: &[u8], accept: &str, binary_types: &[String]) -> Result<Response, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    const FIELDS: [&str; 5] = ["statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"];
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unexpected field {k}"));
    }
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .filter(|s| (100..600).contains(&s.as_u16()))
        .ok_or("statusCode is missing or not a status")?;
    let mut headers = HeaderMap::new();
    if let Some(mv) = obj.get("multiValueHeaders").filter(|v| !v.is_null()) {
        for (k, vals) in mv.as_object().ok_or("multiValueHeaders is not an object")? {
            for val in vals.as_array().ok_or("a multiValueHeaders entry is not a list")? {
                append(&mut headers, k, val.as_str().ok_or("a multiValueHeaders value is not a string")?)?;
            }
        }
    }
    if let Some(h) = obj.get("headers").filter(|v| !v.is_null()) {
        for (k, val) in h.as_object().ok_or("headers is not an object")? {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad header name {k}"))?;
            headers.remove(&name);
            append(&mut headers, k, val.as_str().ok_or("a header value is not a string")?)?;
        }
    }
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err("body is not a string".into()),
    };
    // Base64 is decoded only for a client that accepts a binary media type; others get the text.
    let wants_binary = accept.split(',').any(|a| is_binary(binary_types, a));
    let body = if base64 && wants_binary {
        base64::engine::general_purpose::STANDARD.decode(&body).map_err(|_| "body is not base64")?
    } else {
        body
    };
    strip_hop_by_hop(&mut headers);
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}

fn append(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name}"))?;
    let v = HeaderValue::from_str(value).map_err(|_| format!("bad value for header {name}"))?;
    headers.append(n, v);
    Ok(())
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in ["connection", "transfer-encoding", "content-length", "keep-alive", "upgrade"] {
        headers.remove(h);
    }
}

/// The metadata prelude of a streamed response: status, headers, cookies.
pub fn parse_prelude(prelude: &[u8]) -> Result<(StatusCode, HeaderMap), String> {
    let v: Value = serde_json::from_slice(prelude).map_err(|e| format!("prelude is not JSON: {e}"))?;
    let status = v["statusCode"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for field in ["multiValueHeaders", "headers"] {
        for (k, val) in v[field].as_object().into_iter().flatten() {
            match val {
                Value::String(s) => append(&mut headers, k, s)?,
                Value::Array(list) => {
                    for s in list {
                        append(&mut headers, k, s.as_str().ok_or("a prelude header value is not a string")?)?;
                    }
                }
                _ => return Err(format!("prelude header {k} is not a string")),
            }
        }
    }
    for c in v["cookies"].as_array().into_iter().flatten() {
        append(&mut headers, "set-cookie", c.as_str().ok_or("a cookie is not a string")?)?;
    }
    strip_hop_by_hop(&mut headers);
    Ok((status, headers))
}

/// A response-streaming integration: the prelude gives status and headers, the rest of the
/// stream is the body, passed on as it arrives until the function ends or the timeout passes.
async fn streamed_response(api: &RestApi, ctx: &mut Ctx, reply: Reply, deadline: tokio::time::Instant) -> Response {
    let mut rx = match reply {
        Reply::Streamed(rx) => rx,
        Reply::Buffered(b) => {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Ok(b));
            rx
        }
    };
    let mut head = Vec::new();
    let split = loop {
        if let Some(i) = head.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            break i;
        }
        if head.len() > MAX_PRELUDE {
            ctx.set("integration.error", "no prelude delimiter");
            return gateway_error(api, ctx, "DEFAULT_5XX", 502, "Internal server error");
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return gateway_error(api, ctx, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"),
            Ok(None) => {
                ctx.set("integration.error", "the stream ended before its prelude");
                return gateway_error(api, ctx, "DEFAULT_5XX", 502, "Internal server error");
            }
            Ok(Some(Err(e))) => return function_failed(api, ctx, &e),
            Ok(Some(Ok(chunk))) => head.extend_from_slice(&chunk),
        }
    };
    let (status, headers) = match parse_prelude(&head[..split]) {
        Ok(p) => p,
        Err(why) => {
            ctx.set("integration.error", why);
            return gateway_error(api, ctx, "DEFAULT_5XX", 502, "Internal server error");
        }
    };
    let first = Bytes::copy_from_slice(&head[split + DELIMITER.len()..]);
    let stream = futures::stream::unfold((Some(first), rx, deadline), |(first, mut rx, deadline)| async move {
        if let Some(f) = first.filter(|f| !f.is_empty()) {
            return Some((Ok::<Bytes, std::io::Error>(f), (None, rx, deadline)));
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), (None, rx, deadline))),
            // A failure or timeout mid-stream cuts the connection: the client sees a truncated body.
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e.to_string())), (None, rx, deadline))),
            Err(_) => Some((Err(std::io::Error::other("integration timeout")), (None, rx, deadline))),
            Ok(None) => None,
        }
    });
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// A function that answered nothing usable: API Gateway's 502 (504 for Lambda's own timeout is
/// not what API Gateway says either: a timed-out function is an integration failure).
fn function_failed(api: &RestApi, ctx: &mut Ctx, e: &FunctionError) -> Response {
    ctx.set("integration.error", e.to_string());
    gateway_error(api, ctx, "DEFAULT_5XX", 502, "Internal server error")
}

/// A gateway response as API Gateway renders it: the customised entry of this type, else the
/// stage's DEFAULT_4XX / DEFAULT_5XX, else API Gateway's own `{"message": ...}`.
fn gateway_error(api: &RestApi, ctx: &mut Ctx, kind: &str, status: u16, message: &str) -> Response {
    ctx.set("error.message", message);
    ctx.set("error.messageString", Value::String(message.into()).to_string());
    ctx.set("error.responseType", kind);
    let default_kind = if status >= 500 { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
    let entry: Option<&GatewayResponse> =
        api.deployed.gateway_responses.get(kind).or_else(|| api.deployed.gateway_responses.get(default_kind));
    let status = entry.and_then(|e| e.status).unwrap_or(status);
    ctx.set("status", status.to_string());
    let (body, content_type) = match entry.and_then(|e| e.templates.get("application/json")) {
        Some(t) => (render(t, &ctx.vars, ""), "application/json"),
        None => (json!({ "message": message }).to_string(), "application/json"),
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    res.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    res.headers_mut().insert("x-amzn-errortype", header_value(&error_type(kind)));
    for (k, v) in entry.map(|e| e.headers.as_slice()).unwrap_or_default() {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            res.headers_mut().insert(n, v);
        }
    }
    res
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("InternalServerErrorException"))
}

/// `MISSING_AUTHENTICATION_TOKEN` -> `MissingAuthenticationTokenException`.
fn error_type(kind: &str) -> String {
    if kind.starts_with("DEFAULT_") || kind == "API_CONFIGURATION_ERROR" {
        return "InternalServerErrorException".into();
    }
    let mut out: String = kind
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_string() + &c.as_str().to_lowercase()).unwrap_or_default()
        })
        .collect();
    out.push_str("Exception");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn most_specific_resource_wins() {
        assert_eq!(match_path("/a/b", "/a/b").map(|m| m.0), Some(8));
        assert!(match_path("/a/{id}", "/a/b").is_some_and(|(s, p)| s == 5 && p["id"] == "b"));
        assert!(match_path("/a/{id}", "/a/").is_none());
        assert!(match_path("/a/{id}", "/a/b/c").is_none());
        assert!(match_path("/a/{p+}", "/a/b/c").is_some_and(|(_, p)| p["p"] == "b/c"));
        assert!(match_path("/a/{p+}", "/a").is_none());
        assert!(match_path("/a/{id}", "/a/%D8%B3%D9%84%D8%A7%D9%85").is_some_and(|(_, p)| p["id"] == "سلام"));
        assert!(match_path("/", "/").is_some());
        assert!(match_path("/health", "/").is_none());
    }

    #[test]
    fn binary_media_types_match_with_wildcards() {
        let t = vec!["multipart/form-data".to_string(), "audio/*".to_string()];
        assert!(is_binary(&t, "multipart/form-data; boundary=x"));
        assert!(is_binary(&t, "Audio/Ogg"));
        assert!(!is_binary(&t, "application/json"));
        assert!(!is_binary(&t, ""));
        assert!(is_binary(&["*/*".to_string()], "text/plain"));
    }

    #[test]
    fn renders_context_variables() {
        let mut vars = BTreeMap::new();
        vars.insert("error.messageString", "\"Missing \\\"x\\\"\"".to_string());
        vars.insert("requestId", "r1".to_string());
        let out = render(
            r#"{"detail":$context.error.messageString,"id":"${context.requestId}","u":"$context.nope"}"#,
            &vars,
            "",
        );
        assert_eq!(out, r#"{"detail":"Missing \"x\"","id":"r1","u":""}"#);
        assert_eq!(render("cost $5 at $context.requestId.", &vars, ""), "cost $5 at r1.");
        assert_eq!(render("$context.nope", &vars, "-"), "-");
    }

    async fn body_of(r: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (p, b) = r.into_parts();
        (p.status, p.headers, b.collect().await.unwrap().to_bytes().to_vec())
    }

    #[tokio::test]
    async fn proxy_responses_are_parsed_strictly() {
        let ok = br#"{"statusCode":201,"headers":{"a":"1"},"multiValueHeaders":{"b":["1","2"]},"body":"hi","isBase64Encoded":false}"#;
        let (s, h, b) = body_of(proxy_response(ok, "", &[]).unwrap()).await;
        assert_eq!((s.as_u16(), b.as_slice()), (201, &b"hi"[..]));
        assert_eq!(h.get_all("b").iter().count(), 2);
        for bad in [
            &b"not json"[..],
            b"[1]",
            br#"{"statusCode":"200"}"#,
            br#"{"body":"x"}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":200,"headers":{"a":1}}"#,
            br#"{"statusCode":200,"extra":true}"#,
            br#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
            br#"{"statusCode":99}"#,
        ] {
            assert!(proxy_response(bad, "", &[]).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // A streaming function's output where a JSON proxy response is expected.
        let mut streamed = br#"{"statusCode":200,"headers":{}}"#.to_vec();
        streamed.extend_from_slice(&DELIMITER);
        streamed.extend_from_slice(b"data");
        assert!(proxy_response(&streamed, "", &[]).is_err());
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded_only_for_binary_accepts() {
        let types = vec!["image/*".to_string()];
        let payload = br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#;
        let (_, _, b) = body_of(proxy_response(payload, "image/png", &types).unwrap()).await;
        assert_eq!(b, b"hi");
        let (_, _, b) = body_of(proxy_response(payload, "application/json", &types).unwrap()).await;
        assert_eq!(b, b"aGk=");
    }

    #[test]
    fn preludes_carry_status_headers_and_cookies() {
        let (s, h) =
            parse_prelude(br#"{"statusCode":429,"headers":{"retry-after":"3","x":["a","b"]},"cookies":["c=1"]}"#)
                .unwrap();
        assert_eq!(s.as_u16(), 429);
        assert_eq!(h["retry-after"], "3");
        assert_eq!(h.get_all("x").iter().count(), 2);
        assert_eq!(h["set-cookie"], "c=1");
        assert!(parse_prelude(b"{oops").is_err());
    }

    #[test]
    fn error_types_are_named_as_api_gateway_names_them() {
        assert_eq!(error_type("MISSING_AUTHENTICATION_TOKEN"), "MissingAuthenticationTokenException");
        assert_eq!(error_type("DEFAULT_5XX"), "InternalServerErrorException");
    }
}
