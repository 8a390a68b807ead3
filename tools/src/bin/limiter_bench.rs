//! `make bench-limits`: DynamoDB calls per limiter decision (counted by the limiter's store) and
//! decision latency against the local AWS endpoint, per kind of decision, plus the 64-way
//! concurrency check. Prints a table; asserts nothing.
//!
//! Needs `AWS_ENDPOINT_URL` (the script starts moto and sets it). Latency here is dominated by
//! moto (a Python server handling one request at a time), not by the limiter or DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_local::{stack, template::Template};
use baatcheet_shared::aws;
use baatcheet_shared::rate_limit::{Clock, Limiter, Policy, Settings, Source, Subject, gcra::Rate};
use chat::limits::{IMAGES, SEARCH};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The system clock shifted by an offset the bench moves (to age buckets without waiting).
struct ShiftedClock(AtomicU64);

impl Clock for ShiftedClock {
    fn now_us(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        real + self.0.load(Ordering::Relaxed)
    }
}

struct Bench {
    client: aws_sdk_dynamodb::Client,
    table: String,
    settings: Settings,
    clock: Arc<ShiftedClock>,
}

impl Bench {
    fn instance(&self) -> Limiter {
        Limiter::with_clock(self.client.clone(), self.table.clone(), self.settings.clone(), self.clock.clone())
    }
}

#[derive(Default)]
struct Row {
    latencies_us: Vec<u64>,
    calls: u64,
    decisions: u64,
    sources: Vec<Source>,
}

impl Row {
    fn print(&mut self, name: &str) {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
            self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        let from_store = self.sources.iter().filter(|s| **s == Source::Store).count();
        println!(
            "{name:<52} {:>6} {:>9.2} {:>9.3} {:>9.3} {:>7}",
            self.decisions,
            self.calls as f64 / self.decisions.max(1) as f64,
            pct(0.5),
            pct(0.99),
            format!("{}/{}", from_store, self.decisions),
        );
    }
}

async fn timed(l: &Limiter, policy: Policy, subject: &str, cost: u32, row: &mut Row, want_allowed: bool) {
    let before = l.store_calls();
    let started = Instant::now();
    let st = l.decide(policy, &Subject::User(subject), cost).await.expect("a decision");
    row.latencies_us.push(started.elapsed().as_micros() as u64);
    row.calls += l.store_calls() - before;
    row.decisions += 1;
    row.sources.push(st.source);
    assert_eq!(st.is_allowed(), want_allowed, "unexpected decision {st:?}");
}

async fn timed_joint(l: &Limiter, subject: &str, row: &mut Row) {
    let before = l.store_calls();
    let started = Instant::now();
    let user = Subject::User(subject);
    let st = l.check_with_global(&user, SEARCH.policy(), &user, 1).await.expect("admitted");
    row.latencies_us.push(started.elapsed().as_micros() as u64);
    row.calls += l.store_calls() - before;
    row.decisions += 1;
    row.sources.push(st.source);
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return Err("AWS_ENDPOINT_URL must point at the local AWS endpoint (scripts/bench-limits.sh sets it)".into());
    }
    let n: u64 = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let sdk = aws::sdk_config().await;
    let client = aws::dynamodb(&sdk);
    let template = Template::load_default()?;
    let prefix = format!("bench{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = stack::create_tables(&client, &template, &prefix).await?;
    let table = env["RATE_LIMITS_TABLE"].clone();

    let mut settings = Settings { store_timeout: Duration::from_secs(30), ..Settings::default() };
    // Search: never refuses in the "allowed" rows, and a token takes 0.6 s to come back, so a key
    // under this bench's traffic stays busy (its TAT ahead of now). Images: 20 per hour.
    settings.policies.declare_defaults(&[&SEARCH, &IMAGES]);
    settings.policies.set_rate(SEARCH.policy(), Rate::new(1_000_000, 7 * 24 * 3600).ok_or("rate")?);
    settings.policies.set_rate(IMAGES.policy(), Rate::new(20, 3600).ok_or("rate")?);
    // The joint rows charge each user's global bucket.
    settings.policies.set_rate(Policy::GLOBAL, Rate::new(1_000_000, 3600).ok_or("rate")?);
    let b = Bench {
        client: client.clone(),
        table: table.clone(),
        settings,
        clock: Arc::new(ShiftedClock(AtomicU64::new(0))),
    };

    println!("limiter decisions against {} (N = {n} per row, debug build)", std::env::var("AWS_ENDPOINT_URL")?);
    println!("{:<52} {:>6} {:>9} {:>9} {:>9} {:>7}", "decision", "count", "calls/op", "p50 ms", "p99 ms", "store");

    // Baseline: one plain key read, to tell the endpoint's own latency from the limiter's.
    let mut row = Row::default();
    for _ in 0..n {
        let started = Instant::now();
        client.get_item().table_name(&table).key("pk", AttributeValue::S("nothing".into())).send().await?;
        row.latencies_us.push(started.elapsed().as_micros() as u64);
        row.calls += 1;
        row.decisions += 1;
        row.sources.push(Source::Store);
    }
    row.print("(baseline: one GetItem on the endpoint)");

    let warm = b.instance();
    let mut row = Row::default();
    for _ in 0..n {
        timed(&warm, SEARCH.policy(), "u_steady", 1, &mut row, true).await;
    }
    row.print("allowed: steady traffic on one key, warm instance");

    let mut row = Row::default();
    for i in 0..n {
        timed(&warm, SEARCH.policy(), &format!("u_new_{i}"), 1, &mut row, true).await;
    }
    row.print("allowed: first request of a new key");

    // A chat completion's limits: the user's global bucket and their chat bucket in one
    // TransactWriteItems (what a route with a deferred global check pays).
    let mut row = Row::default();
    for _ in 0..n {
        timed_joint(&warm, "u_joint_steady", &mut row).await;
    }
    row.print("allowed: global + search together, warm instance");
    let mut row = Row::default();
    for i in 0..n {
        timed_joint(&warm, &format!("u_joint_new_{i}"), &mut row).await;
    }
    row.print("allowed: global + search together, new user key");

    let mut row = Row::default();
    for _ in 0..n {
        timed(&b.instance(), SEARCH.policy(), "u_steady", 1, &mut row, true).await;
    }
    row.print("allowed: busy key, instance that never saw it");

    // Buckets used two hours ago: full again, but their items have not expired yet.
    for i in 0..n {
        warm.decide(SEARCH.policy(), &Subject::User(&format!("u_idle_a_{i}")), 1).await?;
        warm.decide(SEARCH.policy(), &Subject::User(&format!("u_idle_b_{i}")), 1).await?;
    }
    b.clock.0.store(2 * 3600 * 1_000_000, Ordering::Relaxed);
    let mut row = Row::default();
    for i in 0..n {
        timed(&warm, SEARCH.policy(), &format!("u_idle_a_{i}"), 1, &mut row, true).await;
    }
    row.print("allowed: refilled key, instance that saw it");
    let mut row = Row::default();
    for i in 0..n {
        timed(&b.instance(), SEARCH.policy(), &format!("u_idle_b_{i}"), 1, &mut row, true).await;
    }
    row.print("allowed: refilled key still stored, unseen instance");

    // Refusals: one bucket emptied, then asked by instances that know nothing, then by one that does.
    let drainer = b.instance();
    for _ in 0..20 {
        drainer.decide(IMAGES.policy(), &Subject::User("u_empty"), 1).await?;
    }
    let mut row = Row::default();
    for _ in 0..n {
        timed(&b.instance(), IMAGES.policy(), "u_empty", 1, &mut row, false).await;
    }
    row.print("denied: by the store (instance without knowledge)");
    let mut row = Row::default();
    for _ in 0..n * 10 {
        timed(&drainer, IMAGES.policy(), "u_empty", 1, &mut row, false).await;
    }
    row.print("denied: by the deny cache (instance that knows)");

    // 64 concurrent requests on one key of capacity 20, from 4 instances.
    let instances: Vec<_> = (0..4).map(|_| Arc::new(b.instance())).collect();
    let started = Instant::now();
    let results = futures::future::join_all((0..64).map(|i| {
        let l = instances[i % 4].clone();
        async move { l.decide(IMAGES.policy(), &Subject::User("u_race"), 1).await }
    }))
    .await;
    let elapsed = started.elapsed();
    let results: Vec<_> = results.into_iter().collect::<Result<_, _>>()?;
    let admitted = results.iter().filter(|s| s.is_allowed()).count();
    let calls: u64 = instances.iter().map(|l| l.store_calls()).sum();
    println!();
    println!(
        "64 concurrent requests, one key of capacity 20, 4 instances: admitted {admitted}, refused {}, \
         DynamoDB calls {calls} ({:.2} per request), {} ms in all",
        64 - admitted,
        calls as f64 / 64.0,
        elapsed.as_millis()
    );
    Ok(())
}
