//! A minimal AWS Lambda Runtime API (the HTTP interface a `provided.al2023` function polls), so a
//! function's release binary can be run exactly as Lambda runs it: exec, poll
//! `/invocation/next`, post the response. Used to measure cold start and per-invocation cost.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What the function posted for one invocation, and when it arrived.
#[derive(Debug)]
pub struct Answer {
    pub body: Bytes,
    pub error: bool,
    pub at: Instant,
}

struct Pending {
    id: String,
    event: Bytes,
    reply: oneshot::Sender<Answer>,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    first_poll: Arc<OnceLock<Instant>>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    tx: mpsc::UnboundedSender<Pending>,
    next_id: std::sync::atomic::AtomicU64,
    first_poll: Arc<OnceLock<Instant>>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let first_poll = Arc::new(OnceLock::new());
        let shared = Shared {
            queue: Arc::new(tokio::sync::Mutex::new(rx)),
            waiting: Arc::default(),
            first_poll: first_poll.clone(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, tx, next_id: 0.into(), first_poll })
    }

    /// When the function first asked for an invocation: the end of its init phase (what Lambda
    /// reports as `Init Duration`, counted from the exec).
    pub fn first_poll(&self) -> Option<Instant> {
        self.first_poll.get().copied()
    }

    /// Queues an event; the returned receiver yields the function's answer.
    pub fn invoke(&self, event: impl Into<Bytes>) -> oneshot::Receiver<Answer> {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Pending { id: format!("inv-{n:08}"), event: event.into(), reply });
        rx
    }
}

async fn next(State(s): State<Shared>) -> Response {
    s.first_poll.get_or_init(Instant::now);
    let Some(p) = s.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    s.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(p.id.clone(), p.reply);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut h = HeaderMap::new();
    let hv = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("x"));
    h.insert("lambda-runtime-aws-request-id", hv(p.id));
    h.insert("lambda-runtime-deadline-ms", hv(deadline.to_string()));
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    // Sampled, as Lambda's under `Tracing: Active`: subsegments are sent wherever the function has
    // an X-Ray daemon address (lambda-coldstart --xray).
    h.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000;Parent=0000000000000001;Sampled=1"),
    );
    (h, p.event).into_response()
}

fn answer(s: &Shared, id: &str, body: Bytes, error: bool) -> StatusCode {
    let at = Instant::now();
    match s.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id) {
        Some(tx) => {
            let _ = tx.send(Answer { body, error, at });
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, body, false)
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, body, true)
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}
