//! What metrics and traces add to one request, network excluded: the work the chat function's
//! observability does for one streamed completion — the invocation's trace scoped from its
//! header, ten subsegments (each made, named and sent as a UDP datagram to a daemon: a local
//! socket drained by a thread), the request's, completion's and answer's metrics recorded, and
//! the invocation's EMF lines written. Run with `OBSERVABILITY` = `off`, `metrics` (EMF alone),
//! `traces` (subsegments alone) or `on` (both), and compare:
//! `OBSERVABILITY=on cargo bench -p baatcheet-shared --bench observability | grep -v _aws`.
//! Off is a function outside Lambda or with tracing off (no `AWS_LAMBDA_FUNCTION_NAME`: no EMF
//! recorder; no `AWS_XRAY_DAEMON_ADDRESS`: no subsegment), so the difference is what they cost a
//! request. Each DynamoDB subsegment reads its table names from a request body as the SDK
//! interceptor does (a transaction writing a message of about 1 KB).
//!
//! Each mode is measured twice: wall time (`..._one_completion`), and the CPU time of the thread
//! that does the work (`..._one_completion_cpu`, `CLOCK_THREAD_CPUTIME_ID`: the kernel's work for
//! the datagrams and the stdout write included), which other processes on a busy machine do not
//! inflate.

use baatcheet_shared::{metrics, xray};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::{Arc, Once};
use std::time::Duration;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The calls of one streamed completion (tests/api.rs traced ten: GetItem, TransactWriteItems×3,
/// Query, PutItem×2, DeleteItem, GetSecretValue, the provider).
const CALLS: usize = 10;

/// A transaction as a completion writes one: the message put (about 1 KB of text) and the
/// conversation's update.
fn body() -> &'static [u8] {
    static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        let text = "آپ کیسے ہیں؟ Main theek hoon, shukriya. ".repeat(24);
        serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "baatcheet-prod-MessagesTable-1ABC", "Item": {
                "pk": {"S": "conv#0190f0a2-7c1e-7d3a-9b1e-3f2a1c4d5e6f"}, "sk": {"S": "msg#0190f0a2-7c1e-7d3a-9b1e-3f2a1c4d5e70"},
                "role": {"S": "assistant"}, "text": {"S": text}, "created_at": {"N": "1765000000000"}}}},
            {"Update": {"TableName": "baatcheet-prod-ConversationsTable-1ABC",
                "Key": {"pk": {"S": "user#u1"}, "sk": {"S": "conv#0190f0a2-7c1e-7d3a-9b1e-3f2a1c4d5e6f"}},
                "UpdateExpression": "SET updated_at = :t, message_count = message_count + :one",
                "ExpressionAttributeValues": {":t": {"N": "1765000000000"}, ":one": {"N": "1"}}}}
        ]})
        .to_string()
        .into_bytes()
    })
}

fn one_request(rt: &tokio::runtime::Runtime) {
    let ctx = xray::TraceContext::sampled(HEADER).map(Arc::new);
    rt.block_on(xray::scope(ctx, async {
        for _ in 0..CALLS {
            if let Some(mut s) = xray::Subsegment::start("DynamoDB", xray::Namespace::Aws, "TransactWriteItems") {
                if let Some(tables) = xray::dynamodb_tables(body()) {
                    s.table(tables);
                }
                s.status(200);
                s.request_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOP");
                s.end();
            }
        }
    }));
    metrics::record_request("/api/v1/chat/completions", 200, Duration::from_millis(12));
    metrics::record_completion_opened("groq", "llama-3.3-70b", Duration::from_millis(300));
    metrics::record_answer("groq", "llama-3.3-70b", 812, 240, Some(Duration::from_secs(3)));
    metrics::flush();
}

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Criterion measuring the benchmarked thread's CPU time instead of wall time.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, shown as times.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

/// `OBSERVABILITY` (off, metrics, traces, on), set up once per process.
fn mode() -> String {
    static SETUP: Once = Once::new();
    let mode = std::env::var("OBSERVABILITY").unwrap_or_else(|_| "off".into());
    let (metrics_on, traces_on) = match mode.as_str() {
        "on" => (true, true),
        "metrics" => (true, false),
        "traces" => (false, true),
        "off" => (false, false),
        other => panic!("OBSERVABILITY={other}: one of off, metrics, traces, on"),
    };
    SETUP.call_once(|| {
        if traces_on {
            let daemon = std::net::UdpSocket::bind("127.0.0.1:0").expect("a daemon socket");
            let addr = daemon.local_addr().expect("its address");
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while daemon.recv(&mut buf).is_ok() {}
            });
            // SAFETY: set before any other thread reads the environment (the drain thread does not).
            unsafe { std::env::set_var(xray::DAEMON_ADDRESS_VAR, addr.to_string()) };
        }
        if metrics_on {
            // SAFETY: as above.
            unsafe { std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "bench") };
            metrics::init_from_env();
        }
    });
    mode
}

fn wall(c: &mut Criterion) {
    let name = format!("observability_{}_one_completion", mode());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    c.bench_function(&name, |b| b.iter(|| one_request(&rt)));
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    let name = format!("observability_{}_one_completion_cpu", mode());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    c.bench_function(&name, |b| b.iter(|| one_request(&rt)));
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
