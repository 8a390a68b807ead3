//! `chat-bench`: figures for the chat function, printed (no assertions). `scripts/bench-chat.sh`
//! starts the local AWS endpoint and runs it.
//!
//! The chat function runs in a child process (`chat-bench serve`: the chat function's real router,
//! with Clerk authentication and rate limits), so its memory is its own; the fake upstream and the
//! client (real session tokens) run here.
//! - First-token overhead: when the client got the first `delta` minus when the fake upstream handed
//!   that token to its connection (same clock: both in this process). This is what the chat function
//!   adds to the upstream's own time to first token.
//! - Time to first byte and the part before the upstream call (DynamoDB, against the local server).
//! - RSS of the chat process with `BENCH_STREAMS` (default 100) streams open at once.

use baatcheet_shared::{AppContext, Config};
use baatcheet_tests::TestStack;
use baatcheet_tests::clerk::{self, keys};
use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use chat::ChatConfig;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn serve() -> Result<(), BoxError> {
    let ctx = AppContext::new(Config::from_env()?, &baatcheet_shared::aws::sdk_config().await);
    ctx.secrets.fetch().await?;
    let _ = ChatConfig::from_env()?;
    let app = chat::router(ctx)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTENING {}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<44} n={:<4} median={:>8.3} ms  p90={:>8.3} ms  p99={:>8.3} ms",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99)
    );
}

/// Sends one streamed completion; returns when the first delta arrived and the whole body.
async fn one(client: &reqwest::Client, base: &str, user: &str) -> Result<(Instant, Instant), BoxError> {
    let sent = Instant::now();
    let mut res = client
        .post(format!("{base}/api/v1/chat/completions"))
        .bearer_auth(clerk::token(&keys()[0], user))
        .json(&serde_json::json!({"message": "Salaam! Aaj mausam kaisa hai?"}))
        .send()
        .await?;
    if res.status() != 200 {
        return Err(format!("status {}", res.status()).into());
    }
    let mut seen = String::new();
    let mut first = None;
    while let Some(chunk) = res.chunk().await? {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first.is_none() && seen.contains("event: delta") {
            first = Some(Instant::now());
        }
    }
    Ok((sent, first.ok_or("no delta")?))
}

async fn bench() -> Result<(), BoxError> {
    let requests = env_num("BENCH_REQUESTS", 200);
    let streams = env_num("BENCH_STREAMS", 100);
    let fake = FakeUpstream::start().await;
    fake.set_default(Behavior::ok().chunks(5));
    let providers = serde_json::json!([fake.provider("fake", &["k"], serde_json::json!([{"id": "m"}]))]);
    // The child verifies tokens with the public key (no JWKS fetch); limits do not get in the way.
    let mut stack =
        TestStack::with_secret(serde_json::json!({ "providers": providers, "CLERK_JWT_KEY": keys()[0].public_pem }))
            .await;
    for (k, v) in
        [("CLERK_ISSUER", clerk::ISSUER), ("RATE_LIMIT_GLOBAL", "1000000/1h"), ("RATE_LIMIT_CHAT_FREE", "1000000/1h")]
    {
        stack.env.insert(k.into(), v.into());
    }

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .envs(&stack.env)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("child has no pid")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let addr = loop {
        match lines.next_line().await? {
            Some(l) if l.starts_with("LISTENING ") => break l["LISTENING ".len()..].to_string(),
            Some(_) => continue,
            None => return Err("chat process exited".into()),
        }
    };
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let (idle_rss, _) = rss_kb(pid);

    for _ in 0..10 {
        one(&client, &base, "user_bench").await?;
    }
    let skip = fake.request_count();
    let mut overhead = Vec::new();
    let mut ttfb = Vec::new();
    let mut before_upstream = Vec::new();
    let mut upstream_own = Vec::new();
    for _ in 0..requests {
        let (sent, first) = one(&client, &base, "user_bench").await?;
        let rec = fake.requests().pop().ok_or("no upstream request")?;
        let chunk_at = rec.first_chunk_at.ok_or("no first chunk")?;
        overhead.push(first.duration_since(chunk_at).as_secs_f64() * 1e3);
        ttfb.push(first.duration_since(sent).as_secs_f64() * 1e3);
        before_upstream.push(rec.received_at.duration_since(sent).as_secs_f64() * 1e3);
        upstream_own.push(chunk_at.duration_since(rec.received_at).as_secs_f64() * 1e3);
    }
    assert_eq!(fake.request_count(), skip + requests);
    println!("chat function (debug build unless built with --release), local DynamoDB = moto");
    report("first token: chat function overhead", overhead);
    report("first token: upstream's own (fake)", upstream_own);
    report("before the upstream call (DynamoDB on moto)", before_upstream);
    report("time to first delta at the client", ttfb);

    // Many streams open at once. They are opened one after another (the local DynamoDB server
    // is slow), each answering slowly enough that all are still open when the last one starts.
    fake.set_default(Behavior::ok().chunks(400).token_delay(Duration::from_millis(100)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut res = client
                .post(format!("{base}/api/v1/chat/completions"))
                .bearer_auth(clerk::token(&keys()[0], &format!("user_bench{i}")))
                .json(&serde_json::json!({"message": "a long answer please"}))
                .send()
                .await?;
            if !res.status().is_success() {
                // Say why a stream did not start (the local DynamoDB server falling behind is a 503).
                eprintln!("stream {i}: {} {}", res.status(), res.text().await.unwrap_or_default());
                return Ok(0);
            }
            let mut tx = Some(tx);
            let mut bytes = 0;
            while let Some(c) = res.chunk().await? {
                bytes += c.len();
                if String::from_utf8_lossy(&c).contains("event: delta")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
            Ok::<_, reqwest::Error>(bytes)
        }));
        if rx.await.is_err() {
            let why = match tasks.pop() {
                Some(t) => format!("{:?}", t.await),
                None => "unknown".into(),
            };
            return Err(format!("stream {i} failed to start: {why}").into());
        }
    }
    let (open_rss, _) = rss_kb(pid);
    let open_after = started.elapsed();
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    let (_, peak) = rss_kb(pid);
    println!(
        "RSS of the chat process: idle {:.1} MB, {streams} streams open {:.1} MB (all open after {:.1} s), peak {:.1} MB ({bytes} bytes streamed)",
        idle_rss as f64 / 1024.0,
        open_rss as f64 / 1024.0,
        open_after.as_secs_f64(),
        peak as f64 / 1024.0
    );
    child.kill().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() == Some("serve") { serve().await } else { bench().await }
}
