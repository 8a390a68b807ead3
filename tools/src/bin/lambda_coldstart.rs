//! Runs every function of template.yaml as Lambda runs it — its release binary exec'd under a
//! local Lambda Runtime API (`support::runtime_api`) — and prints one table, a row per kind of
//! request: cold start (exec to the first answered invocation, config and secret read included)
//! as the median of several runs, the warm invocation median, peak RSS after N invocations, the
//! binary's size, and the AWS calls each request makes (counted by `support::aws_proxy`'s
//! recording proxy in front of the local endpoint).
//!
//! The local endpoint (moto) and the fake provider stand in for DynamoDB, Secrets Manager and an
//! LLM; their speed is not the product's. So each cold start and warm invocation is also run
//! through the recording proxy, which times every call, and the function's own time is reported
//! beside the total: the total less the time it waited on the endpoint (overlapping calls counted
//! once) and on the provider (request received to `[DONE]` sent). The totals come from separate
//! runs straight to the endpoint, without the proxy's hop. `init` is exec to the function's first
//! poll of the Runtime API (Lambda's `Init Duration`).
//!
//! Usage (make bench runs it): `lambda-coldstart [--runs 15] [--invocations 1000] [--only TEXT]
//! [--xray]`. Needs AWS_ENDPOINT_URL (the local endpoint) like the tests, and the release binaries.
//! The EMF metrics are on (the functions run under a function name); X-Ray subsegments are sent
//! only with `--xray`, which gives the functions `AWS_XRAY_DAEMON_ADDRESS` (a UDP socket here,
//! drained) beside the sampled trace header every invocation carries.
//!
//! The rows (fixtures from `events/`) are listed in [`rows`]; a function of template.yaml without
//! a row fails the run, so a new function is measured as soon as it is added.

use baatcheet_tests::aws_proxy::{AwsCall, RecordingProxy, Service, Span, time_within};
use baatcheet_tests::clerk::{self, Delivery, keys};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use baatcheet_tests::{TestStack, runtime_api::RuntimeApi, template};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()
}

/// How a row's fixture is made fit to send.
#[derive(Clone, Copy)]
enum Prep {
    AsIs,
    /// A fresh Svix id, timestamp and signature with the bench secret's webhook secret (the
    /// fixture's own signature is from its recorded time, so it would be refused as stale).
    Resign,
    /// `Authorization: Bearer` a session token of this user (RS256, the bench's Clerk key).
    Bearer(&'static str),
}

/// One kind of request to one function.
struct Row {
    binary: &'static str,
    request: &'static str,
    event: &'static str,
    prep: Prep,
    /// Function environment beside the stack's.
    env: &'static [(&'static str, &'static str)],
    /// Sent once by a short-lived instance before the row is measured (e.g. to use up a limit).
    before: Option<Prep>,
    status: u16,
}

fn rows() -> Vec<Row> {
    const CHAT_USER: &str = "user_bench_chat";
    const DENIED_USER: &str = "user_bench_denied";
    vec![
        Row {
            binary: "health",
            request: "`GET /live` (live.json)",
            event: "events/live.json",
            prep: Prep::AsIs,
            env: &[],
            before: None,
            status: 200,
        },
        Row {
            binary: "health",
            request: "`GET /health`: every table and the secret probed, on every request (health.json, HEALTH_PROBE_TTL_MS=0)",
            event: "events/health.json",
            prep: Prep::AsIs,
            // The probes' own cost; as deployed, one run answers for a second (tests/health.rs).
            env: &[("HEALTH_PROBE_TTL_MS", "0")],
            before: None,
            status: 200,
        },
        Row {
            binary: "webhook",
            request: "`POST /api/v1/clerk/webhook` `user.updated` (clerk-webhook.json, re-signed)",
            event: "events/clerk-webhook.json",
            prep: Prep::Resign,
            env: &[],
            before: None,
            status: 200,
        },
        Row {
            binary: "docs",
            request: "`GET /api/docs.json` (docs-json.json)",
            event: "events/docs-json.json",
            prep: Prep::AsIs,
            env: &[],
            before: None,
            status: 200,
        },
        Row {
            binary: "chat",
            request: "`GET /api/v1/chat/models` (chat-models.json)",
            event: "events/chat-models.json",
            prep: Prep::AsIs,
            env: &[],
            before: None,
            status: 200,
        },
        Row {
            binary: "chat",
            request: "chat completion, streamed, new conversation (chat-completions.json + token)",
            event: "events/chat-completions.json",
            prep: Prep::Bearer(CHAT_USER),
            // One user sends every invocation of the row: their chat limit must not answer them.
            env: &[("RATE_LIMIT_CHAT_FREE", "1000000/1h")],
            before: None,
            status: 200,
        },
        Row {
            binary: "chat",
            request: "denied: chat completion of a user past the chat limit (429)",
            event: "events/chat-completions.json",
            prep: Prep::Bearer(DENIED_USER),
            env: &[("RATE_LIMIT_CHAT_FREE", "1/1h")],
            before: Some(Prep::Bearer(DENIED_USER)),
            status: 429,
        },
    ]
}

fn set_header(event: &mut Value, name: &str, value: &str) {
    event["headers"][name] = json!(value);
    event["multiValueHeaders"][name] = json!([value]);
}

/// The event to send, made fresh for each invocation where it must be (signatures).
fn event_for(template: &Value, prep: Prep) -> Vec<u8> {
    let mut event = template.clone();
    match prep {
        Prep::AsIs => {}
        Prep::Resign => {
            let d = Delivery {
                id: format!("msg_bench_{}", uuid::Uuid::new_v4().simple()),
                timestamp: clerk::now(),
                body: event["body"].as_str().unwrap_or_default().to_string(),
            };
            set_header(&mut event, "svix-id", &d.id);
            set_header(&mut event, "svix-timestamp", &d.timestamp.to_string());
            set_header(&mut event, "svix-signature", &d.signature(clerk::WEBHOOK_SECRET));
        }
        Prep::Bearer(user) => {
            // Valid for an hour: the warm invocations of a row take longer than a test token's minute.
            let mut claims = clerk::claims(user);
            claims["exp"] = json!(clerk::now() + 3600);
            let token = clerk::sign_as(&keys()[0], &keys()[0].kid, &claims);
            set_header(&mut event, "Authorization", &format!("Bearer {token}"));
        }
    }
    event.to_string().into_bytes()
}

/// The HTTP status of a Lambda answer: the response object, or the prelude of a streamed one
/// (JSON, then eight NUL bytes, then the body).
fn status_of(body: &[u8]) -> Option<u16> {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    let v: Value = serde_json::from_slice(&body[..end]).ok()?;
    v["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok())
}

struct Bench {
    stack: TestStack,
    proxy: RecordingProxy,
    fake: FakeUpstream,
    /// The stand-in X-Ray daemon's address, with `--xray`.
    xray: Option<String>,
}

/// Milliseconds of a duration.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Bench {
    async fn spawn(
        &self,
        bin: &PathBuf,
        api: &RuntimeApi,
        row: &Row,
        counted: bool,
    ) -> Result<tokio::process::Child, BoxError> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.envs(&self.stack.env)
            .envs(row.env.iter().copied())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if counted {
            cmd.env("AWS_ENDPOINT_URL", &self.proxy.url);
        }
        if let Some(daemon) = &self.xray {
            cmd.env("AWS_XRAY_DAEMON_ADDRESS", daemon);
        }
        Ok(cmd.spawn()?)
    }

    async fn invoke(api: &RuntimeApi, event: Vec<u8>, row: &Row) -> Result<Instant, BoxError> {
        let a = tokio::time::timeout(Duration::from_secs(30), api.invoke(event)).await??;
        if a.error {
            return Err(format!("{}: invocation error: {}", row.binary, String::from_utf8_lossy(&a.body)).into());
        }
        match status_of(&a.body) {
            Some(s) if s == row.status => Ok(a.at),
            other => Err(format!(
                "{} {}: answered {other:?}, expected {}: {}",
                row.binary,
                row.request,
                row.status,
                String::from_utf8_lossy(&a.body[..a.body.len().min(600)])
            )
            .into()),
        }
    }

    fn calls_since(&self, from: usize) -> Vec<AwsCall> {
        self.proxy.calls().split_off(from)
    }

    /// The time between `from` and `to` spent waiting on the stand-ins: AWS calls through the
    /// proxy and requests to the fake provider, overlaps counted once.
    fn waited(&self, from: Instant, to: Instant) -> Duration {
        let mut spans = self.proxy.spans_between(from, to);
        spans.extend(
            self.fake
                .requests()
                .iter()
                .filter(|r| r.received_at >= from)
                .map(|r| Span { start: r.received_at, end: r.done_at.unwrap_or(to) }),
        );
        time_within(&spans, from, to)
    }

    /// A fresh instance answering one invocation, then killed: when it was exec'd, when its
    /// answer arrived and when it first polled the Runtime API (its init's end).
    async fn cold_start(
        &self,
        bin: &PathBuf,
        fixture: &Value,
        row: &Row,
        counted: bool,
    ) -> Result<(Instant, Instant, Option<Instant>), BoxError> {
        let api = RuntimeApi::start().await?;
        let event = event_for(fixture, row.prep);
        let t0 = Instant::now();
        let mut child = self.spawn(bin, &api, row, counted).await?;
        let at = Bench::invoke(&api, event, row).await?;
        child.kill().await?;
        Ok((t0, at, api.first_poll()))
    }

    /// One invocation through the proxy: the part of its time not spent on the stand-ins.
    async fn own_time(&self, api: &RuntimeApi, event: Vec<u8>, row: &Row) -> Result<f64, BoxError> {
        let t = Instant::now();
        let at = Bench::invoke(api, event, row).await?;
        Ok(ms((at - t).saturating_sub(self.waited(t, at))))
    }
}

/// `3: UpdateItem×2, GetItem` — the count, then each operation once with its number.
fn describe(calls: &[AwsCall]) -> String {
    if calls.is_empty() {
        return "0".into();
    }
    let mut order: Vec<&str> = Vec::new();
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for c in calls {
        if !n.contains_key(c.operation.as_str()) {
            order.push(&c.operation);
        }
        *n.entry(&c.operation).or_default() += 1;
    }
    let ops: Vec<String> =
        order.iter().map(|op| if n[op] > 1 { format!("{op}×{}", n[op]) } else { op.to_string() }).collect();
    format!("{}: {}", calls.len(), ops.join(", "))
}

fn is_dynamodb(c: &AwsCall) -> bool {
    c.service == Service::DynamoDb
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut runs = 15usize;
    let mut invocations = 1000usize;
    let mut only: Option<String> = None;
    let mut xray = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            "--invocations" => invocations = args.next().ok_or("--invocations N")?.parse()?,
            "--only" => only = Some(args.next().ok_or("--only TEXT")?),
            "--xray" => xray = true,
            other => {
                return Err(format!(
                    "unknown argument {other} (usage: lambda-coldstart [--runs N] [--invocations N] [--only TEXT] [--xray])"
                )
                .into());
            }
        }
    }
    let rows = rows();
    for (logical_id, binary) in &template().binaries {
        if !rows.iter().any(|r| r.binary == binary.as_str()) {
            return Err(format!(
                "template.yaml's {logical_id} (binary {binary}) has no row in tools/src/bin/lambda_coldstart.rs: add one"
            )
            .into());
        }
    }
    if let Some(r) = rows.iter().find(|r| !template().binaries.values().any(|b| b == r.binary)) {
        return Err(format!("{} is not a function of template.yaml", r.binary).into());
    }

    // One stack for every row: the secret has what each function reads (a fake provider for
    // chat, the Clerk key that verifies the bench's tokens, the webhook secret). The per-IP global
    // limit is out of the way (every event comes from one address); per-user limits are the defaults.
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(5));
    let providers = json!([fake.provider("fake", &["k"], json!([{"id": "fake-chat", "context_length": 32768}]))]);
    let mut stack = TestStack::with_secret(json!({
        "providers": providers,
        "CLERK_JWT_KEY": keys()[0].public_pem,
        "CLERK_WEBHOOK_SECRET": clerk::WEBHOOK_SECRET,
    }))
    .await;
    for (k, v) in [("CLERK_ISSUER", clerk::ISSUER), ("RATE_LIMIT_GLOBAL", "1000000/1h")] {
        stack.env.insert(k.into(), v.into());
    }
    let proxy = RecordingProxy::to(&baatcheet_tests::endpoint()).await;
    let xray = if xray {
        let daemon = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = daemon.local_addr()?.to_string();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while daemon.recv(&mut buf).is_ok() {}
        });
        Some(addr)
    } else {
        None
    };
    let bench = Bench { stack, proxy, fake, xray };

    println!(
        "| function | request | answer | binary (stripped) | cold start median | min..max | init median | cold start, own time | warm median | warm, own time | peak RSS after {invocations} | AWS calls, cold (init + 1st request) | DynamoDB calls per warm request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // --only: the rows whose function or request contains TEXT (to look at one closely).
    for row in rows.iter().filter(|r| only.as_deref().is_none_or(|t| r.binary.contains(t) || r.request.contains(t))) {
        let bin = root().join("target/release").join(row.binary);
        let size =
            std::fs::metadata(&bin).map_err(|e| format!("{}: {e} (build it with --release)", bin.display()))?.len();
        let fixture: Value = serde_json::from_slice(&std::fs::read(root().join(row.event))?)?;

        if let Some(prep) = row.before {
            let api = RuntimeApi::start().await?;
            let answer = api.invoke(event_for(&fixture, prep));
            let _child = bench.spawn(&bin, &api, row, false).await?;
            tokio::time::timeout(Duration::from_secs(30), answer).await??;
        }

        // Calls, through the recording proxy: a cold instance's first request, then warm ones.
        let api = RuntimeApi::start().await?;
        let from = bench.proxy.calls().len();
        let child = bench.spawn(&bin, &api, row, true).await?;
        Bench::invoke(&api, event_for(&fixture, row.prep), row).await?;
        let cold_calls = bench.calls_since(from);
        let mut warm_calls = Vec::new();
        for _ in 0..5 {
            let from = bench.proxy.calls().len();
            Bench::invoke(&api, event_for(&fixture, row.prep), row).await?;
            warm_calls = bench.calls_since(from);
        }
        drop(child);
        let secrets = cold_calls.iter().filter(|c| !is_dynamodb(c)).cloned().collect::<Vec<_>>();
        let dynamo = cold_calls.iter().filter(|c| is_dynamodb(c)).cloned().collect::<Vec<_>>();
        let cold_desc = match (secrets.is_empty(), dynamo.is_empty()) {
            (true, true) => "0".to_string(),
            (false, true) => describe(&secrets),
            (true, false) => describe(&dynamo),
            (false, false) => format!("{} + {}", describe(&secrets), describe(&dynamo)),
        };
        let warm_dynamo: Vec<AwsCall> = warm_calls.iter().filter(|c| is_dynamodb(c)).cloned().collect();
        let warm_other = warm_calls.len() - warm_dynamo.len();
        let warm_desc = if warm_other > 0 {
            format!("{} (+{warm_other} other)", describe(&warm_dynamo))
        } else {
            describe(&warm_dynamo)
        };

        // Cold starts, straight to the local endpoint.
        let mut colds = Vec::new();
        for _ in 0..runs {
            let (t0, at, _) = bench.cold_start(&bin, &fixture, row, false).await?;
            colds.push(ms(at - t0));
        }
        let (min, max) = colds.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let cold = median(&mut colds);

        // The same through the timing proxy: init, and the cold start less the stand-ins' time.
        let (mut inits, mut own_colds) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t0, at, polled) = bench.cold_start(&bin, &fixture, row, true).await?;
            inits.push(ms(polled.ok_or("the function never polled")? - t0));
            own_colds.push(ms((at - t0).saturating_sub(bench.waited(t0, at))));
        }
        let (init, own_cold) = (median(&mut inits), median(&mut own_colds));

        // Warm invocations' own time, through the proxy (fewer: the figure settles quickly).
        let api = RuntimeApi::start().await?;
        let child = bench.spawn(&bin, &api, row, true).await?;
        Bench::invoke(&api, event_for(&fixture, row.prep), row).await?;
        let mut own_warm = Vec::new();
        for _ in 0..invocations.min(300) {
            own_warm.push(bench.own_time(&api, event_for(&fixture, row.prep), row).await?);
        }
        drop(child);
        let own_warm = median(&mut own_warm);

        // Warm invocations and the peak RSS after them.
        let api = RuntimeApi::start().await?;
        let child = bench.spawn(&bin, &api, row, false).await?;
        let pid = child.id().ok_or("no pid")?;
        let mut warm = Vec::with_capacity(invocations);
        for _ in 0..invocations {
            let event = event_for(&fixture, row.prep);
            let t = Instant::now();
            let at = Bench::invoke(&api, event, row).await?;
            warm.push((at - t).as_secs_f64() * 1000.0);
        }
        let rss = peak_rss_kb(pid).unwrap_or(0);
        drop(child);
        println!(
            "| {} | {} | {} | {:.1} MB | {:.1} ms | {:.1}..{:.1} ms | {:.1} ms | {:.1} ms | {:.3} ms | {:.3} ms | {:.1} MB | {} | {} |",
            row.binary,
            row.request,
            row.status,
            size as f64 / 1e6,
            cold,
            min,
            max,
            init,
            own_cold,
            median(&mut warm),
            own_warm,
            rss as f64 / 1024.0,
            cold_desc,
            warm_desc,
        );
    }
    Ok(())
}
