//! What metrics and traces add to one request, network excluded: the work the chat function's
//! observability does for one streamed completion — the invocation's trace scoped from its
//! header, ten subsegments (each made, named and sent as a UDP datagram to a daemon: a local
//! socket drained by a thread), the request's, completion's and answer's metrics recorded, and
//! the invocation's EMF lines written. Run with `OBSERVABILITY` = `off`, `metrics` (EMF alone),
//! `traces` (subsegments alone) or `on` (both), and compare:
//! `OBSERVABILITY=on cargo bench -p baatcheet-shared --bench observability | grep -v _aws`.
//! Off is a function outside Lambda or with tracing off (no `AWS_LAMBDA_FUNCTION_NAME`: no EMF
//! recorder; no `AWS_XRAY_DAEMON_ADDRESS`: no subsegment), so the difference is what they cost a
//! request. Not included: reading DynamoDB's table names from a request body (a small JSON scan
//! per call).

use baatcheet_shared::{metrics, xray};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Duration;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The calls of one streamed completion (tests/api.rs traced ten: GetItem, TransactWriteItems×3,
/// Query, PutItem×2, DeleteItem, GetSecretValue, the provider).
const CALLS: usize = 10;

fn one_request(rt: &tokio::runtime::Runtime) {
    let ctx = xray::TraceContext::sampled(HEADER).map(Arc::new);
    rt.block_on(xray::scope(ctx, async {
        for i in 0..CALLS {
            if let Some(mut s) = xray::Subsegment::start("DynamoDB", xray::Namespace::Aws, "TransactWriteItems") {
                s.table(format!("baatcheet-prod-ConversationsTable-{i}"));
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

fn bench(c: &mut Criterion) {
    let mode = std::env::var("OBSERVABILITY").unwrap_or_else(|_| "off".into());
    let (metrics_on, traces_on) = match mode.as_str() {
        "on" => (true, true),
        "metrics" => (true, false),
        "traces" => (false, true),
        "off" => (false, false),
        other => panic!("OBSERVABILITY={other}: one of off, metrics, traces, on"),
    };
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
    let name = format!("observability_{mode}_one_completion");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    c.bench_function(&name, |b| b.iter(|| one_request(&rt)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
