//! Lambda as it runs a function, on this machine: each instance is the function's built binary in
//! a process of its own, polling a Runtime API of its own (the HTTP interface of a `provided.al2023`
//! runtime), one invocation at a time. An invocation goes to an idle instance, or starts a new one
//! (up to the pool's ceiling), so per-instance state such as caches behaves as in Lambda.
//!
//! What Lambda does and this reproduces: a process that exits (or reports `/init/error`) before
//! its first poll fails the invocation that started it (API Gateway then answers 502); an
//! invocation that outlives the function's timeout has its instance killed; a crash mid-invocation
//! fails that invocation; a buffered response above 6 MB fails; a streamed response
//! (`Lambda-Runtime-Function-Response-Mode: streaming`) is handed on as it arrives.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Notify, mpsc, oneshot};

/// Lambda's limit on a buffered (RequestResponse) response payload.
pub const MAX_BUFFERED_RESPONSE: usize = 6 * 1024 * 1024;

/// Why an invocation produced no response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FunctionError {
    #[error("the function's init failed: {0}")]
    Init(String),
    #[error("the function reported {kind}: {message}")]
    Unhandled { kind: String, message: String },
    #[error("the function's process ended during the invocation: {0}")]
    Crashed(String),
    #[error("the invocation timed out after {0:?}")]
    Timeout(Duration),
    #[error("the response is larger than Lambda's 6 MB limit")]
    ResponseTooLarge,
    #[error("the function's process could not be started: {0}")]
    Spawn(String),
}

/// What an instance answered.
#[derive(Debug)]
pub enum Reply {
    /// A buffered response: the whole payload.
    Buffered(Bytes),
    /// A streamed response, chunk by chunk as the function writes it.
    Streamed(mpsc::Receiver<Result<Bytes, FunctionError>>),
}

/// One event for the function, with the ids Lambda gives it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub trace_id: String,
    pub event: Bytes,
}

impl Invocation {
    pub fn new(event: impl Into<Bytes>) -> Self {
        Self { request_id: uuid::Uuid::new_v4().to_string(), trace_id: new_trace_id(), event: event.into() }
    }
}

/// An X-Ray trace header for a new trace, as Lambda hands it to the runtime.
pub fn new_trace_id() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=1", &id[..24], &id[16..32])
}

/// Where the functions' stdout and stderr go (CloudWatch Logs in AWS).
#[derive(Debug, Clone)]
pub enum LogSink {
    /// This process's stderr, each line prefixed with the function and instance.
    Stderr,
    /// Appended to one file (tests: kept for a failing test's reading).
    File(Arc<Mutex<std::fs::File>>),
    Discard,
}

impl LogSink {
    pub fn file(path: &std::path::Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::File(Arc::new(Mutex::new(f))))
    }

    pub fn line(&self, prefix: &str, line: &str) {
        match self {
            Self::Stderr => eprintln!("[{prefix}] {line}"),
            Self::File(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(f, "[{prefix}] {line}");
            }
            Self::Discard => {}
        }
    }
}

/// How to run one function.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Logical id (log prefixes, the function name Lambda gives it).
    pub name: String,
    pub binary: PathBuf,
    /// The whole environment of each instance (nothing is inherited).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Most instances at once; an invocation waits for one to be free beyond that.
    pub max_instances: usize,
    pub logs: LogSink,
}

type ReplyTx = oneshot::Sender<Result<Reply, FunctionError>>;

struct Assigned {
    inv: Invocation,
    taken: Arc<AtomicBool>,
    reply: ReplyTx,
}

struct Instance {
    n: u64,
    tx: mpsc::Sender<Assigned>,
    dead: AtomicBool,
    initialized: AtomicBool,
    /// Why the process ended, once it has.
    ended: Mutex<Option<String>>,
    /// The request id being answered, until its response (streamed body included) is in.
    busy_with: Mutex<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

impl Instance {
    fn kill(&self) {
        if let Some(k) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = k.send(());
        }
    }

    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct PoolInner {
    cfg: FunctionConfig,
    idle: Mutex<Vec<Arc<Instance>>>,
    /// Every running instance, idle or not.
    all: Mutex<Vec<Arc<Instance>>>,
    live: AtomicUsize,
    started: AtomicU64,
    freed: Notify,
    init_durations: Mutex<Vec<Duration>>,
}

/// The instances of one function.
#[derive(Clone)]
pub struct FunctionPool {
    inner: Arc<PoolInner>,
}

impl FunctionPool {
    pub fn new(cfg: FunctionConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                cfg,
                idle: Mutex::default(),
                all: Mutex::default(),
                live: AtomicUsize::new(0),
                started: AtomicU64::new(0),
                freed: Notify::new(),
                init_durations: Mutex::default(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// Instances started so far (cold starts).
    pub fn instances_started(&self) -> u64 {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// Instances running now.
    pub fn instances_live(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// Init durations (process start to first poll) of every instance so far.
    pub fn init_durations(&self) -> Vec<Duration> {
        self.inner.init_durations.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one invocation on a free instance (a new one when none is idle).
    pub async fn invoke(&self, inv: Invocation) -> Result<Reply, FunctionError> {
        let timeout = self.inner.cfg.timeout;
        loop {
            let inst = self.instance().await?;
            let taken = Arc::new(AtomicBool::new(false));
            let request_id = inv.request_id.clone();
            let (reply, rx) = oneshot::channel();
            let assigned = Assigned { inv: inv.clone(), taken: taken.clone(), reply };
            if inst.tx.send(assigned).await.is_err() {
                continue; // it died while idle: another instance takes the invocation
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(Reply::Streamed(body)))) => {
                    // The timeout covers the whole invocation, the streamed body included.
                    let watched = inst.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(timeout).await;
                        let busy = watched.busy_with.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        if busy.as_deref() == Some(request_id.as_str()) {
                            watched.kill();
                        }
                    });
                    return Ok(Reply::Streamed(body));
                }
                Ok(Ok(result)) => return result,
                Ok(Err(_)) => {
                    // The instance went away with the invocation in hand (or before its first poll).
                    let why = inst.ended().unwrap_or_else(|| "the process ended".into());
                    if !inst.initialized.load(Ordering::Acquire) {
                        return Err(FunctionError::Init(why));
                    }
                    if !taken.load(Ordering::Acquire) {
                        continue; // it ended while idle, before taking this one
                    }
                    return Err(FunctionError::Crashed(why));
                }
                Err(_) => {
                    inst.kill();
                    return Err(FunctionError::Timeout(timeout));
                }
            }
        }
    }

    async fn instance(&self) -> Result<Arc<Instance>, FunctionError> {
        loop {
            let notified = self.inner.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(i) = idle.pop() {
                    if !i.dead.load(Ordering::Acquire) {
                        return Ok(i);
                    }
                }
            }
            let live = self.inner.live.load(Ordering::Acquire);
            if live < self.inner.cfg.max_instances
                && self.inner.live.compare_exchange(live, live + 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                return spawn(&self.inner).await.inspect_err(|_| {
                    self.inner.live.fetch_sub(1, Ordering::AcqRel);
                });
            }
            notified.await;
        }
    }

    /// Stops every instance.
    pub fn shutdown(&self) {
        for i in self.inner.all.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            i.kill();
        }
    }
}

struct RuntimeState {
    inst: Arc<Instance>,
    pool: Weak<PoolInner>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Assigned>>,
    current: Mutex<Option<(String, Instant, ReplyTx)>>,
    spawned: Instant,
    prefix: String,
    logs: LogSink,
    function_arn: String,
    timeout: Duration,
}

impl RuntimeState {
    fn take_current(&self, id: &str) -> Option<(Instant, ReplyTx)> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match cur.take() {
            Some((cid, at, tx)) if cid == id => Some((at, tx)),
            other => {
                *cur = other;
                None
            }
        }
    }

    /// The invocation is answered: Lambda's END and REPORT lines, and the instance is free.
    fn finish(&self, id: &str, at: Instant) {
        let ms = at.elapsed().as_secs_f64() * 1000.0;
        self.logs.line(&self.prefix, &format!("END RequestId: {id}"));
        self.logs.line(&self.prefix, &format!("REPORT RequestId: {id}\tDuration: {ms:.2} ms"));
        let mut busy = self.inst.busy_with.lock().unwrap_or_else(|p| p.into_inner());
        if busy.as_deref() == Some(id) {
            *busy = None;
        }
    }
}

async fn spawn(pool: &Arc<PoolInner>) -> Result<Arc<Instance>, FunctionError> {
    let cfg = &pool.cfg;
    let n = pool.started.fetch_add(1, Ordering::Relaxed) + 1;
    let prefix = format!("{}#{n}", cfg.name);
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| FunctionError::Spawn(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| FunctionError::Spawn(e.to_string()))?;
    let (tx, rx) = mpsc::channel(1);
    let (kill_tx, kill_rx) = oneshot::channel();
    let inst = Arc::new(Instance {
        n,
        tx,
        dead: AtomicBool::new(false),
        initialized: AtomicBool::new(false),
        ended: Mutex::default(),
        busy_with: Mutex::default(),
        kill: Mutex::new(Some(kill_tx)),
    });
    let state = Arc::new(RuntimeState {
        inst: inst.clone(),
        pool: Arc::downgrade(pool),
        rx: tokio::sync::Mutex::new(rx),
        current: Mutex::default(),
        spawned: Instant::now(),
        prefix: prefix.clone(),
        logs: cfg.logs.clone(),
        function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{}:live", cfg.name),
        timeout: cfg.timeout,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (xray_addr, xray) = match xray_daemon(cfg.logs.clone(), format!("xray:{prefix}")).await {
        Ok(d) => d,
        Err(e) => {
            server.abort();
            return Err(FunctionError::Spawn(e.to_string()));
        }
    };

    let mut cmd = tokio::process::Command::new(&cfg.binary);
    cmd.env_clear()
        .envs(&cfg.env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_XRAY_DAEMON_ADDRESS", xray_addr.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            server.abort();
            xray.abort();
            return Err(FunctionError::Spawn(format!("{}: {e}", cfg.binary.display())));
        }
    };
    for out in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
        let (logs, prefix) = (cfg.logs.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.line(&prefix, &line);
            }
        });
    }
    let watched = inst.clone();
    let weak = Arc::downgrade(pool);
    let logs = cfg.logs.clone();
    tokio::spawn(async move {
        let status = tokio::select! {
            s = child.wait() => s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            _ = kill_rx => {
                let _ = child.kill().await;
                "killed (timeout, init error or shutdown)".into()
            }
        };
        let phase = if watched.initialized.load(Ordering::Acquire) { "" } else { " before its first poll" };
        let why = format!("Runtime.ExitError: {status}{phase}");
        logs.line(&prefix, &why);
        *watched.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        watched.dead.store(true, Ordering::Release);
        // Dropping the Runtime API drops what it holds: a queued or current invocation then fails.
        server.abort();
        xray.abort();
        if let Some(pool) = weak.upgrade() {
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).retain(|i| i.n != watched.n);
            pool.all.lock().unwrap_or_else(|p| p.into_inner()).retain(|i| i.n != watched.n);
            pool.live.fetch_sub(1, Ordering::AcqRel);
            pool.freed.notify_one();
        }
    });
    pool.all.lock().unwrap_or_else(|p| p.into_inner()).push(inst.clone());
    Ok(inst)
}

/// The X-Ray daemon of one instance, as Lambda runs one beside each function (a local test
/// double): a UDP socket collecting the segment documents the function sends to
/// `AWS_XRAY_DAEMON_ADDRESS`, each written to `logs` as one line under `prefix` (the document
/// without the daemon protocol's header line). A datagram without that header is logged as
/// rejected, as the daemon would drop it.
async fn xray_daemon(
    logs: LogSink,
    prefix: String,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    const HEADER: &[u8] = br#"{"format":"json","version":1}"#;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = socket.recv(&mut buf).await {
            let datagram = &buf[..n];
            match datagram.iter().position(|&b| b == b'\n').map(|i| datagram.split_at(i)) {
                Some((HEADER, document)) => logs.line(&prefix, String::from_utf8_lossy(&document[1..]).trim_end()),
                _ => logs.line(&prefix, &format!("rejected: a datagram without the daemon header ({n} bytes)")),
            }
        }
    });
    Ok((addr, task))
}

fn boxed(r: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(r)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("invalid"))
}

/// `GET /invocation/next`: the instance is idle until an invocation is handed to it.
async fn next(State(s): State<Arc<RuntimeState>>) -> Response {
    if !s.inst.initialized.swap(true, Ordering::AcqRel) {
        let init = s.spawned.elapsed();
        s.logs.line(&s.prefix, &format!("INIT_REPORT Init Duration: {:.2} ms", init.as_secs_f64() * 1000.0));
        if let Some(pool) = s.pool.upgrade() {
            pool.init_durations.lock().unwrap_or_else(|p| p.into_inner()).push(init);
        }
    }
    let mut rx = s.rx.lock().await;
    // An invocation already handed to this instance (the one that started it, sent while it was
    // initialising) is taken at once: the instance was never idle, and listing it as idle would
    // queue another concurrent invocation behind this one instead of starting a new instance.
    let assigned = match rx.try_recv() {
        Ok(a) => Some(a),
        Err(_) => {
            if let Some(pool) = s.pool.upgrade() {
                pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(s.inst.clone());
                pool.freed.notify_one();
            }
            rx.recv().await
        }
    };
    drop(rx);
    let Some(a) = assigned else {
        return StatusCode::GONE.into_response();
    };
    a.taken.store(true, Ordering::Release);
    let id = a.inv.request_id.clone();
    let deadline = SystemTime::now()
        .checked_add(s.timeout)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    *s.inst.busy_with.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
    *s.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((id.clone(), Instant::now(), a.reply));
    s.logs.line(&s.prefix, &format!("START RequestId: {id} Version: $LATEST"));
    let mut h = HeaderMap::new();
    h.insert("lambda-runtime-aws-request-id", header(&id));
    h.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
    h.insert("lambda-runtime-invoked-function-arn", header(&s.function_arn));
    h.insert("lambda-runtime-trace-id", header(&a.inv.trace_id));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    (h, a.inv.event).into_response()
}

/// `POST /invocation/{id}/response`: buffered, or streamed when the runtime says so.
async fn response(
    State(s): State<Arc<RuntimeState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let Some((at, reply)) = s.take_current(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        let (tx, rx) = mpsc::channel(64);
        let _ = reply.send(Ok(Reply::Streamed(rx)));
        let mut body = body;
        // The client may be gone: the function still writes its whole answer, which is drained.
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let _ = tx.send(Ok(data.clone())).await;
                    } else if let Some(kind) =
                        frame.trailers_ref().and_then(|t| t.get("lambda-runtime-function-error-type"))
                    {
                        let kind = String::from_utf8_lossy(kind.as_bytes()).into_owned();
                        let _ = tx.send(Err(FunctionError::Unhandled { kind, message: "mid-stream".into() })).await;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(FunctionError::Crashed(e.to_string()))).await;
                    break;
                }
                None => break,
            }
        }
    } else {
        let result = match axum::body::to_bytes(body, MAX_BUFFERED_RESPONSE).await {
            Ok(b) => Ok(Reply::Buffered(b)),
            Err(_) => Err(FunctionError::ResponseTooLarge),
        };
        let _ = reply.send(result);
    }
    s.finish(&id, at);
    StatusCode::ACCEPTED
}

/// `POST /invocation/{id}/error`: the function's handler failed.
async fn invocation_error(
    State(s): State<Arc<RuntimeState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some((at, reply)) = s.take_current(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let (kind, message) = error_fields(&headers, &body);
    s.logs.line(&s.prefix, &format!("{kind}: {message}"));
    let _ = reply.send(Err(FunctionError::Unhandled { kind, message }));
    s.finish(&id, at);
    StatusCode::ACCEPTED
}

/// `POST /init/error`: the runtime could not start; Lambda ends the instance.
async fn init_error(State(s): State<Arc<RuntimeState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (kind, message) = error_fields(&headers, &body);
    s.logs.line(&s.prefix, &format!("init error {kind}: {message}"));
    *s.inst.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{kind}: {message}"));
    s.inst.kill();
    StatusCode::ACCEPTED
}

fn error_fields(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|h| h.to_str().ok())
        .or(v["errorType"].as_str())
        .unwrap_or("Unhandled")
        .to_string();
    let message = v["errorMessage"].as_str().unwrap_or_default().to_string();
    (kind, message)
}
