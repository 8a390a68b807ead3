//! A fake OpenAI-compatible upstream on 127.0.0.1, for tests and the offline local run: the same
//! wire format as real providers (`POST /v1/chat/completions` streamed as SSE `data:` chunks ending
//! in `data: [DONE]`, or whole JSON; `POST /v1/audio/transcriptions` multipart). It records every
//! request it receives and can be told, per request, per API key or by default, to answer slowly,
//! fail with a status (429 with Retry-After, 500, ...), hang, stream N chunks with a delay between
//! them, or drop the connection mid-stream.

use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Non-200: answer this status (with `retry_after` if set) and a JSON error body.
    pub status: u16,
    pub retry_after: Option<String>,
    /// Never answer (the connection stays open).
    pub hang: bool,
    /// Before the first chunk (streamed: after the headers) or before the whole answer.
    pub first_delay: Duration,
    /// Delay between chunks.
    pub token_delay: Duration,
    /// Number of content chunks.
    pub chunks: usize,
    /// Cut the connection after this many chunks (no finish reason, no `[DONE]`).
    pub drop_after: Option<usize>,
    /// The answer text, split into `chunks` pieces; default `tok0 tok1 ...`.
    pub reply: Option<String>,
    /// Answer `You said: <last user message>` (the local dev default).
    pub echo: bool,
    /// Report usage (in the final chunk when streaming, as `stream_options.include_usage` asks).
    pub usage: bool,
    /// Transcription text.
    pub transcript: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            status: 200,
            retry_after: None,
            hang: false,
            first_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            chunks: 3,
            drop_after: None,
            reply: None,
            echo: false,
            usage: true,
            transcript: None,
        }
    }
}

impl Behavior {
    pub fn ok() -> Self {
        Self::default()
    }

    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self { status: 429, retry_after: Some(retry_after_secs.to_string()), ..Self::default() }
    }

    pub fn hang() -> Self {
        Self { hang: true, ..Self::default() }
    }

    pub fn chunks(mut self, n: usize) -> Self {
        self.chunks = n;
        self
    }

    pub fn reply(mut self, text: &str) -> Self {
        self.reply = Some(text.to_string());
        self
    }

    pub fn first_delay(mut self, d: Duration) -> Self {
        self.first_delay = d;
        self
    }

    pub fn token_delay(mut self, d: Duration) -> Self {
        self.token_delay = d;
        self
    }

    pub fn drop_after(mut self, n: usize) -> Self {
        self.drop_after = Some(n);
        self
    }

    pub fn without_usage(mut self) -> Self {
        self.usage = false;
        self
    }

    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// The pieces of the answer to `body`.
    pub fn pieces(&self, body: &Value) -> Vec<String> {
        if self.echo {
            let last_user = body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .map(|m| match &m["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            let text = format!("You said: {last_user}");
            return text.split_inclusive(' ').map(str::to_string).collect();
        }
        match &self.reply {
            None => (0..self.chunks).map(|i| format!("tok{i} ")).collect(),
            Some(text) => {
                let chars: Vec<char> = text.chars().collect();
                let n = self.chunks.max(1);
                let size = chars.len().div_ceil(n).max(1);
                chars.chunks(size).map(|c| c.iter().collect()).collect()
            }
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// The bearer token, if any.
    pub key: Option<String>,
    /// The JSON body (chat), or the text fields plus `file_bytes`/`file_name`/`file_type` (audio).
    pub body: Value,
    pub received_at: Instant,
    /// When the first content chunk was handed to the connection (streamed answers).
    pub first_chunk_at: Option<Instant>,
    /// When the last chunk (`[DONE]`) was handed to the connection (streamed answers that ended).
    pub done_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Behavior>,
    by_key: HashMap<String, Behavior>,
    default: Behavior,
    requests: Vec<Recorded>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the request; returns its behaviour and its index in the record.
    fn take(&self, path: &str, key: Option<String>, body: Value) -> (Behavior, usize) {
        let mut inner = self.lock();
        let b = match inner.queue.pop_front() {
            Some(b) => b,
            None => key.as_ref().and_then(|k| inner.by_key.get(k).cloned()).unwrap_or_else(|| inner.default.clone()),
        };
        inner.requests.push(Recorded {
            path: path.into(),
            key,
            body,
            received_at: Instant::now(),
            first_chunk_at: None,
            done_at: None,
        });
        (b, inner.requests.len() - 1)
    }

    fn first_chunk(&self, index: usize) {
        if let Some(r) = self.lock().requests.get_mut(index) {
            r.first_chunk_at.get_or_insert_with(Instant::now);
        }
    }

    fn done(&self, index: usize) {
        if let Some(r) = self.lock().requests.get_mut(index) {
            r.done_at = Some(Instant::now());
        }
    }
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Shared,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn error_response(b: &Behavior) -> Response {
    let status = StatusCode::from_u16(b.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res =
        (status, Json(json!({"error": {"message": "fake upstream failure", "type": "fake", "code": b.status}})))
            .into_response();
    if let Some(r) = &b.retry_after
        && let Ok(v) = r.parse()
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> Bytes {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({}),
    };
    let v = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {v}\n\n"))
}

fn usage_for(body: &Value, pieces: &[String]) -> Value {
    let prompt: usize = body["messages"].as_array().map(|m| m.len() * 10).unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": pieces.len(), "total_tokens": prompt + pieces.len()})
}

async fn completions(State(shared): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (b, index) = shared.take("/v1/chat/completions", bearer(&headers), body.clone());
    if b.hang {
        std::future::pending::<()>().await;
    }
    if b.status != 200 {
        return error_response(&b);
    }
    let pieces = b.pieces(&body);
    if body["stream"] != true {
        pause(b.first_delay).await;
        let text: String = pieces.concat();
        let mut v = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        });
        if b.usage {
            v["usage"] = usage_for(&body, &pieces);
        }
        return Json(v).into_response();
    }
    let include_usage = b.usage && body["stream_options"]["include_usage"] == true;
    let usage = usage_for(&body, &pieces);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        pause(b.first_delay).await;
        // The usual first chunk: the role, no content.
        let role = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        if tx.send(Ok(Bytes::from(format!("data: {role}\n\n")))).await.is_err() {
            return;
        }
        for (i, p) in pieces.iter().enumerate() {
            if b.drop_after == Some(i) {
                // Let what was sent reach the client before the connection is cut.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(Err(std::io::Error::other("fake upstream dropped the connection"))).await;
                return;
            }
            if i > 0 {
                pause(b.token_delay).await;
            } else {
                shared.first_chunk(index);
            }
            if tx.send(Ok(chunk(Some(p), None))).await.is_err() {
                return;
            }
        }
        if b.drop_after.is_some_and(|n| n >= pieces.len()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Err(std::io::Error::other("fake upstream dropped the connection"))).await;
            return;
        }
        let _ = tx.send(Ok(chunk(None, Some("stop")))).await;
        if include_usage {
            let v = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage});
            let _ = tx.send(Ok(Bytes::from(format!("data: {v}\n\n")))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        shared.done(index);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("static"));
    res
}

/// A fingerprint of an uploaded file, so a test can tell it arrived byte for byte.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

async fn transcriptions(State(shared): State<Shared>, headers: HeaderMap, mut form: Multipart) -> Response {
    let mut fields = serde_json::Map::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            fields.insert("file_name".into(), json!(field.file_name()));
            fields.insert("file_type".into(), json!(field.content_type()));
            let bytes = field.bytes().await.unwrap_or_default();
            fields.insert("file_bytes".into(), json!(bytes.len()));
            fields.insert("file_fnv1a".into(), json!(fnv1a(&bytes)));
        } else {
            fields.insert(name, json!(field.text().await.unwrap_or_default()));
        }
    }
    let (b, _) = shared.take("/v1/audio/transcriptions", bearer(&headers), Value::Object(fields.clone()));
    if b.hang {
        std::future::pending::<()>().await;
    }
    if b.status != 200 {
        return error_response(&b);
    }
    pause(b.first_delay).await;
    let text = b.transcript.clone().unwrap_or_else(|| format!("transcribed {} bytes", fields["file_bytes"]));
    let language = match fields.get("language").and_then(Value::as_str) {
        Some("ur") => "urdu",
        Some("en") | None => "english",
        Some(other) => other,
    };
    Json(json!({"task": "transcribe", "language": language, "duration": 1.0, "text": text})).into_response()
}

impl FakeUpstream {
    /// On an ephemeral port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/audio/transcriptions", post(transcriptions))
            .layer(axum::extract::DefaultBodyLimit::max(8 << 20))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind fake upstream");
        let addr = listener.local_addr().expect("addr");
        // Chunks go out as written, as a real provider's would (no Nagle delay between small writes).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// The base URL a provider entry uses (`.../v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Answers every request not matched otherwise like this.
    pub fn set_default(&self, b: Behavior) {
        self.shared.lock().default = b;
    }

    /// Requests with this API key are answered like this (unless a queued behaviour comes first).
    pub fn on_key(&self, key: &str, b: Behavior) {
        self.shared.lock().by_key.insert(key.to_string(), b);
    }

    /// The next request (whatever its key) is answered like this; queued behaviours go first.
    pub fn push(&self, b: Behavior) {
        self.shared.lock().queue.push_back(b);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// A provider entry for the secret's `providers` list serving `models` with `keys`.
    pub fn provider(&self, name: &str, keys: &[&str], models: Value) -> Value {
        json!({ "name": name, "base_url": self.base_url(), "api_keys": keys, "models": models })
    }
}

/// Waits `d`; a zero delay does not wait at all (tokio's timer would still take ~1 ms to fire
/// `sleep(0)`, which made "no delay" streams 1 ms per chunk).
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
