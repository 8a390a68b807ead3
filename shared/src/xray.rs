//! X-Ray subsegments for the calls a request makes to other services (DynamoDB, Secrets Manager,
//! the LLM providers), sent as Lambda's X-Ray SDKs send them: one UDP datagram per subsegment to
//! the daemon at `AWS_XRAY_DAEMON_ADDRESS` (`{"format":"json","version":1}`, a newline, the
//! document), under the invocation's trace (`Root`) and segment (`Parent`) from its trace header.
//!
//! Only names, timings and outcomes are recorded: the service and operation, the table or
//! provider name, the HTTP status and AWS's request id. Never an item, a prompt, a key, a secret
//! or a user id.
//!
//! The trace is the invocation's own, carried as a task-local value set by the request path
//! ([`scope`]) rather than read from the process-wide `_X_AMZN_TRACE_ID` (which the next
//! invocation overwrites while a dropped client's generation still runs); work spawned for a
//! request takes it along with [`propagate`].
//!
//! Nothing is sent unless the invocation is sampled (`Sampled=1`) and the daemon address is set:
//! unset `AWS_XRAY_DAEMON_ADDRESS` (or an unsampled trace) turns tracing off. Sending never fails
//! a request: a socket error drops the subsegment.

use std::borrow::Cow;
use std::future::Future;
use std::net::UdpSocket;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable Lambda sets to the X-Ray daemon's UDP address (`169.254.79.129:2000`).
pub const DAEMON_ADDRESS_VAR: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// What precedes every document in a datagram to the daemon.
const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

/// A sampled invocation's trace: where its subsegments attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`
    pub root: String,
    /// The function's segment id (16 hex digits).
    pub parent: String,
}

impl TraceContext {
    /// From a trace header (`Root=...;Parent=...;Sampled=1`); None unless it is sampled and its
    /// ids are well-formed (they are copied into every document).
    pub fn sampled(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v),
                Some(("Parent", v)) => parent = Some(v),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        let root = root.filter(|r| is_trace_root(r))?;
        let parent = parent.filter(|p| is_segment_id(p))?;
        sampled.then(|| Self { root: root.to_owned(), parent: parent.to_owned() })
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_segment_id(s: &str) -> bool {
    is_hex(s, 16)
}

/// `1-` + 8 hex digits (epoch seconds) + `-` + 24 hex digits.
fn is_trace_root(s: &str) -> bool {
    let mut parts = s.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(t), Some(id), None) if is_hex(t, 8) && is_hex(id, 24)
    )
}

tokio::task_local! {
    static CURRENT: Option<Arc<TraceContext>>;
}

/// The trace of the invocation this task works for, when it is sampled.
pub fn current() -> Option<Arc<TraceContext>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Runs `fut` as work of the trace `ctx` (the request path, for each invocation).
pub async fn scope<F: Future>(ctx: Option<Arc<TraceContext>>, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// `fut` with the current task's trace, for spawning: the spawned work's calls stay in the trace
/// of the invocation that started it, whenever they run.
pub fn propagate<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(current(), fut)
}

/// The daemon's socket, made on the first sampled subsegment; None without an address (tracing
/// off) or if no socket could be made.
fn daemon() -> Option<&'static Daemon> {
    static DAEMON: OnceLock<Option<Daemon>> = OnceLock::new();
    DAEMON.get_or_init(|| Daemon::new(&std::env::var(DAEMON_ADDRESS_VAR).ok()?)).as_ref()
}

/// A connected, non-blocking UDP socket to the daemon.
#[derive(Debug)]
pub struct Daemon {
    socket: UdpSocket,
}

impl Daemon {
    /// `host:port`, or the SDKs' `tcp:host:port udp:host:port` form (the UDP one is used).
    pub fn new(address: &str) -> Option<Self> {
        let udp = address
            .split_whitespace()
            .find_map(|a| a.strip_prefix("udp:"))
            .unwrap_or_else(|| address.trim())
            .to_owned();
        let socket = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
        socket.connect(&udp).ok()?;
        // A full buffer drops the datagram rather than stalling a request.
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket })
    }

    /// Sends one datagram (the header line and a document); a failure is dropped (a subsegment
    /// is not worth a request).
    fn send(&self, datagram: &[u8]) {
        let _ = self.socket.send(datagram);
    }
}

/// Which X-Ray namespace a subsegment is in: `aws` (an AWS SDK call) or `remote` (another
/// service over HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Aws,
    Remote,
}

/// One downstream call being timed; sent when [`Subsegment::end`] is called or it is dropped.
#[derive(Debug)]
pub struct Subsegment {
    ctx: Arc<TraceContext>,
    daemon: Option<&'static Daemon>,
    name: Cow<'static, str>,
    namespace: Namespace,
    operation: Cow<'static, str>,
    start: f64,
    table: Option<String>,
    status: Option<u16>,
    request_id: Option<String>,
    failed: bool,
    sent: bool,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

impl Subsegment {
    /// Starts timing a call named `name` (`DynamoDB`, a provider's name) doing `operation`, in
    /// the current task's trace. None when the invocation is not sampled or tracing is off: the
    /// call then costs nothing more.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        namespace: Namespace,
        operation: impl Into<Cow<'static, str>>,
    ) -> Option<Self> {
        Self::start_with(namespace, || (name.into(), operation.into()))
    }

    /// [`Subsegment::start`] with the name and operation made only when the call is traced, so
    /// an untraced call (tracing off, or not sampled) allocates nothing for them.
    pub fn start_with(
        namespace: Namespace,
        names: impl FnOnce() -> (Cow<'static, str>, Cow<'static, str>),
    ) -> Option<Self> {
        let ctx = current()?;
        let daemon = daemon()?;
        let (name, operation) = names();
        Some(Self::with(ctx, Some(daemon), name, namespace, operation))
    }

    fn with(
        ctx: Arc<TraceContext>,
        daemon: Option<&'static Daemon>,
        name: Cow<'static, str>,
        namespace: Namespace,
        operation: Cow<'static, str>,
    ) -> Self {
        Self {
            ctx,
            daemon,
            name,
            namespace,
            operation,
            start: now(),
            table: None,
            status: None,
            request_id: None,
            failed: false,
            sent: false,
        }
    }

    /// The DynamoDB table(s) the call worked on (names only).
    pub fn table(&mut self, table: String) {
        self.table = Some(table);
    }

    /// The HTTP status the service answered.
    pub fn status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// The service's own id of the request (AWS's `x-amzn-requestid`), for support cases.
    pub fn request_id(&mut self, id: &str) {
        if id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            self.request_id = Some(id.to_owned());
        }
    }

    /// The call failed after its status (a broken or abandoned stream, an unreadable body); a
    /// subsegment ended with no status at all is a failure already.
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// Ends the call now and sends its subsegment.
    pub fn end(mut self) {
        self.send();
    }

    fn send(&mut self) {
        if std::mem::replace(&mut self.sent, true) {
            return;
        }
        if let Some(d) = self.daemon {
            d.send(&self.datagram(now()));
        }
    }

    /// The daemon's header line and the subsegment's JSON document, ended at `end` (epoch
    /// seconds): written straight into one buffer (no JSON tree: this runs for every call).
    fn datagram(&self, end: f64) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(HEADER.as_bytes());
        // Writing to a Vec cannot fail, nor can serialising these plain fields.
        let _ = serde_json::to_writer(&mut out, &self.fields(end));
        out
    }

    #[cfg(test)]
    fn document(&self, end: f64) -> String {
        serde_json::to_string(&self.fields(end)).unwrap_or_default()
    }

    fn fields(&self, end: f64) -> Document<'_> {
        let (aws, annotations) = match self.namespace {
            // As AWS's own SDK instrumentation records an AWS call.
            Namespace::Aws => (
                Some(AwsFields {
                    operation: &self.operation,
                    table_name: self.table.as_deref(),
                    request_id: self.request_id.as_deref(),
                }),
                None,
            ),
            // An annotation: indexed, so `annotation.operation = "..."` filters traces.
            Namespace::Remote => (None, Some(Annotations { operation: &self.operation })),
        };
        // X-Ray's flags: `throttle` (429) is also an `error`, 4xx an error, 5xx a fault, and so is
        // a call that failed or was given up with no answer (connect error, timeout).
        let (error, fault, throttle) = match self.status {
            Some(429) => (true, false, true),
            Some(400..=499) => (true, false, false),
            Some(500..) | None => (false, true, false),
            _ => (false, self.failed, false),
        };
        Document {
            name: &self.name,
            id: SegmentId::new(),
            trace_id: &self.ctx.root,
            parent_id: &self.ctx.parent,
            kind: "subsegment",
            start_time: self.start,
            end_time: end.max(self.start),
            namespace: match self.namespace {
                Namespace::Aws => "aws",
                Namespace::Remote => "remote",
            },
            aws,
            annotations,
            http: self.status.map(|status| Http { response: HttpResponse { status } }),
            error,
            fault,
            throttle,
        }
    }
}

/// A subsegment document, as the X-Ray daemon takes it; flags that are false are left out.
#[derive(serde::Serialize)]
struct Document<'a> {
    name: &'a str,
    id: SegmentId,
    trace_id: &'a str,
    parent_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    start_time: f64,
    end_time: f64,
    namespace: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws: Option<AwsFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Annotations<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<Http>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    error: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fault: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    throttle: bool,
}

#[derive(serde::Serialize)]
struct AwsFields<'a> {
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    table_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct Annotations<'a> {
    operation: &'a str,
}

#[derive(serde::Serialize)]
struct Http {
    response: HttpResponse,
}

#[derive(serde::Serialize)]
struct HttpResponse {
    status: u16,
}

/// A fresh random subsegment id: 16 lowercase hex digits, formatted without allocating.
struct SegmentId([u8; 16]);

impl SegmentId {
    fn new() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // uuid's v4 generator: a thread-local PRNG seeded from the OS (its `fast-rng`), no
        // system call per id.
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        // Either half has version or variant bits fixed; together they are random.
        let n = high ^ low;
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(out)
    }
}

impl serde::Serialize for SegmentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Only ASCII hex digits were written.
        s.serialize_str(std::str::from_utf8(&self.0).unwrap_or("0000000000000000"))
    }
}

impl Drop for Subsegment {
    fn drop(&mut self) {
        self.send();
    }
}

pub use sdk::dynamodb_tables;

/// The AWS SDK interceptor that makes one subsegment per SDK operation (retries included),
/// registered once on each client (shared/src/aws.rs): named after the service (`DynamoDB`,
/// `SecretsManager`) with the operation, and DynamoDB's table name(s) read from the request body.
#[derive(Debug, Default)]
pub struct SdkInterceptor;

/// The operation's subsegment, between the interceptor's hooks.
#[derive(Debug)]
struct InFlight(std::sync::Mutex<Option<Subsegment>>);

impl aws_smithy_types::config_bag::Storable for InFlight {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

mod sdk {
    use super::*;
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::{
        BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
    };
    use aws_smithy_runtime_api::client::orchestrator::Metadata;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::config_bag::ConfigBag;

    fn in_flight(cfg: &ConfigBag) -> Option<std::sync::MutexGuard<'_, Option<Subsegment>>> {
        cfg.load::<InFlight>().map(|f| f.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    impl Intercept for SdkInterceptor {
        fn name(&self) -> &'static str {
            "XRaySubsegments"
        }

        // Not `read_before_execution`: a client's interceptors run that before the operation's
        // configuration (its name, in `Metadata`) is in the bag.
        fn read_before_serialization(
            &self,
            _: &BeforeSerializationInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
            let names = || {
                // X-Ray's service names have no spaces (`Secrets Manager` -> `SecretsManager`).
                let name: String = meta.service().chars().filter(|c| !c.is_whitespace()).collect();
                (name.into(), meta.name().to_owned().into())
            };
            if let Some(s) = Subsegment::start_with(Namespace::Aws, names) {
                cfg.interceptor_state().store_put(InFlight(std::sync::Mutex::new(Some(s))));
            }
            Ok(())
        }

        fn read_after_serialization(
            &self,
            ctx: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            if let Some(mut guard) = in_flight(cfg)
                && let Some(s) = guard.as_mut()
                && s.name == "DynamoDB"
                && let Some(tables) = ctx.request().body().bytes().and_then(dynamodb_tables)
            {
                s.table(tables);
            }
            Ok(())
        }

        fn read_after_execution(
            &self,
            ctx: &FinalizerInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let Some(mut s) = in_flight(cfg).and_then(|mut g| g.take()) else { return Ok(()) };
            match ctx.response() {
                Some(res) => {
                    s.status(res.status().as_u16());
                    if let Some(id) = res.headers().get("x-amzn-requestid") {
                        s.request_id(id);
                    }
                }
                None => s.failed(),
            }
            s.end();
            Ok(())
        }
    }

    /// The table names of a DynamoDB request (JSON): its `TableName`, or those of a batch's
    /// `RequestItems` or a transaction's items, comma-separated. Nothing else is kept.
    pub fn dynamodb_tables(body: &[u8]) -> Option<String> {
        use serde::Deserialize;
        use serde::de::IgnoredAny;
        use std::collections::{BTreeMap, BTreeSet};
        #[derive(Deserialize)]
        struct Named {
            #[serde(rename = "TableName")]
            table: Option<String>,
        }
        #[derive(Deserialize)]
        struct Request {
            #[serde(rename = "TableName")]
            table: Option<String>,
            #[serde(rename = "RequestItems")]
            batch: Option<BTreeMap<String, IgnoredAny>>,
            #[serde(rename = "TransactItems")]
            transaction: Option<Vec<BTreeMap<String, Named>>>,
        }
        let r: Request = serde_json::from_slice(body).ok()?;
        let mut names: BTreeSet<String> = r.table.into_iter().collect();
        names.extend(r.batch.into_iter().flat_map(BTreeMap::into_keys));
        names.extend(r.transaction.into_iter().flatten().flat_map(BTreeMap::into_values).filter_map(|n| n.table));
        (!names.is_empty()).then(|| names.into_iter().collect::<Vec<_>>().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const HEADER_SAMPLED: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[test]
    fn only_a_sampled_well_formed_header_is_a_context() {
        let ctx = TraceContext::sampled(HEADER_SAMPLED).expect("sampled");
        assert_eq!(ctx.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(ctx.parent, "53995c3f42cd8ad8");
        for h in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a99427279\";Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad\";Sampled=1",
            "",
        ] {
            assert_eq!(TraceContext::sampled(h), None, "{h}");
        }
    }

    fn doc(s: &Subsegment) -> Value {
        serde_json::from_str(&s.document(s.start + 0.01)).expect("JSON")
    }

    #[test]
    fn a_document_names_the_call_and_nothing_else() {
        let ctx = Arc::new(TraceContext::sampled(HEADER_SAMPLED).unwrap());
        let remote = Subsegment::with(ctx.clone(), None, "groq".into(), Namespace::Remote, "chat.completions".into());
        assert_eq!(doc(&remote)["namespace"], "remote");
        assert_eq!(doc(&remote)["annotations"]["operation"], "chat.completions");
        assert!(doc(&remote).get("aws").is_none());
        let mut s = Subsegment::with(ctx, None, "DynamoDB".into(), Namespace::Aws, "GetItem".into());
        s.table("stack-UsersTable".into());
        s.status(200);
        s.request_id("ABCD1234EFGH");
        let d = doc(&s);
        assert_eq!(d["name"], "DynamoDB");
        assert_eq!(d["type"], "subsegment");
        assert_eq!(d["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(d["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(d["namespace"], "aws");
        assert_eq!(
            d["aws"],
            serde_json::json!({"operation": "GetItem", "table_name": "stack-UsersTable", "request_id": "ABCD1234EFGH"})
        );
        assert_eq!(d["http"]["response"]["status"], 200);
        assert!(d["id"].as_str().is_some_and(is_segment_id), "{d}");
        assert!(d["end_time"].as_f64() > d["start_time"].as_f64());
        assert!(d.get("fault").is_none() && d.get("error").is_none());
        // A request id of any other shape is not copied.
        s.request_id("id with \"quotes\"");
        assert_eq!(doc(&s)["aws"]["request_id"], "ABCD1234EFGH");
    }

    #[test]
    fn segment_ids_are_16_hex_digits_and_fresh_each_time() {
        let ids: std::collections::BTreeSet<String> =
            (0..1000).map(|_| String::from_utf8(SegmentId::new().0.to_vec()).unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| is_segment_id(id) && id.bytes().all(|b| !b.is_ascii_uppercase())));
    }

    #[test]
    fn outcomes_set_xrays_flags() {
        let ctx = Arc::new(TraceContext::sampled(HEADER_SAMPLED).unwrap());
        let flags = |status: Option<u16>, failed: bool| {
            let mut s = Subsegment::with(ctx.clone(), None, "groq".into(), Namespace::Remote, "chat".into());
            if let Some(st) = status {
                s.status(st);
            }
            if failed {
                s.failed();
            }
            let d = doc(&s);
            (d["error"].as_bool(), d["fault"].as_bool(), d["throttle"].as_bool())
        };
        assert_eq!(flags(Some(200), false), (None, None, None));
        assert_eq!(flags(Some(400), false), (Some(true), None, None));
        assert_eq!(flags(Some(429), false), (Some(true), None, Some(true)));
        assert_eq!(flags(Some(503), false), (None, Some(true), None));
        assert_eq!(flags(Some(200), true), (None, Some(true), None));
        assert_eq!(flags(None, false), (None, Some(true), None));
    }

    #[tokio::test]
    async fn the_trace_is_the_tasks_and_goes_with_spawned_work() {
        assert_eq!(current(), None);
        let ctx = Arc::new(TraceContext::sampled(HEADER_SAMPLED).unwrap());
        let seen = scope(Some(ctx.clone()), async {
            let spawned = tokio::spawn(propagate(async { current() }));
            let bare = tokio::spawn(async { current() });
            (current(), spawned.await.unwrap(), bare.await.unwrap())
        })
        .await;
        assert_eq!(seen, (Some(ctx.clone()), Some(ctx), None));
        assert_eq!(current(), None);
    }

    #[test]
    fn datagrams_reach_the_daemon_with_the_header_line() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let addr = listener.local_addr().unwrap();
        for form in [addr.to_string(), format!("tcp:127.0.0.1:1 udp:{addr}")] {
            let daemon: &'static Daemon = Box::leak(Box::new(Daemon::new(&form).expect(&form)));
            let ctx = Arc::new(TraceContext::sampled(HEADER_SAMPLED).unwrap());
            Subsegment::with(ctx, Some(daemon), "SecretsManager".into(), Namespace::Aws, "GetSecretValue".into()).end();
            let mut buf = [0u8; 4096];
            let n = listener.recv(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let (header, body) = text.split_once('\n').expect("a header line");
            assert_eq!(header, r#"{"format":"json","version":1}"#);
            let d: Value = serde_json::from_str(body).unwrap();
            assert_eq!(d["aws"]["operation"], "GetSecretValue");
        }
        // No daemon at all: nothing to send to, and nothing fails.
        assert!(Daemon::new("not an address").is_none());
    }

    #[test]
    fn dynamodb_table_names_and_nothing_else_come_from_the_body() {
        let get = br#"{"TableName":"s-Users","Key":{"pk":{"S":"user_secret"}}}"#;
        assert_eq!(dynamodb_tables(get).as_deref(), Some("s-Users"));
        let batch = br#"{"RequestItems":{"s-Messages":[{"PutRequest":{"Item":{"text":{"S":"prompt"}}}}],"s-Conversations":[]}}"#;
        assert_eq!(dynamodb_tables(batch).as_deref(), Some("s-Conversations,s-Messages"));
        let tx = br#"{"TransactItems":[{"Put":{"TableName":"s-Messages","Item":{}}},{"Update":{"TableName":"s-Conversations","Key":{}}},{"ConditionCheck":{"TableName":"s-Messages","Key":{}}}]}"#;
        assert_eq!(dynamodb_tables(tx).as_deref(), Some("s-Conversations,s-Messages"));
        assert_eq!(dynamodb_tables(br#"{"Key":{}}"#), None);
        assert_eq!(dynamodb_tables(b"not json"), None);
    }
}
