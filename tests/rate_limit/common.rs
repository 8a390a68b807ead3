//! Helpers shared by the rate-limit tests: a clock the test moves, and limiters ("instances") on
//! a test stack's rate-limits table.

use baatcheet_shared::auth::Tier;
use baatcheet_shared::rate_limit::{Clock, Limiter, Policy, Settings, policy::parse_rate};
use baatcheet_tests::TestStack;
use chat::limits::{AUDIO, CHAT, IMAGES, SEARCH};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SEC: u64 = 1_000_000;

/// Time stands still until the test moves it. Starts at the real time, so TTLs stay realistic.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        Arc::new(Self(AtomicU64::new(now)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Settings with generous store timeouts (the local endpoint is slow under parallel tests), chat's
/// policies declared, and the given rates by policy label.
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let mut s =
        Settings { store_timeout: Duration::from_secs(30), store_retry_after: Duration::ZERO, ..Settings::default() };
    s.policies.declare_defaults(&chat::limits::ALL);
    for (name, value) in overrides {
        let rate = parse_rate(value).expect("valid rate");
        let policy = match *name {
            "global" => Policy::GLOBAL,
            "auth" => Policy::AUTH,
            "chat_free" => CHAT.of(Tier::Free),
            "chat_pro" => CHAT.of(Tier::Pro),
            "images" => IMAGES.policy(),
            "search" => SEARCH.policy(),
            "audio" => AUDIO.policy(),
            other => panic!("unknown policy {other}"),
        };
        s.policies.set_rate(policy, rate);
    }
    s
}

/// The longest one call to the shared local endpoint may take while the suite runs in parallel:
/// the attempt timeout of the SDK configuration every test client is built from
/// (`AWS_SDK_ATTEMPT_TIMEOUT_MS`, 15 s under `make test`: the endpoint serialises every call of
/// every test). A test whose premise is a store that is slow but answering sets its store
/// timeout this far above the delay it injects: on a loaded machine the endpoint's queue, not
/// the store, would otherwise pass the deployed 500 ms and send decisions to the fallback.
pub async fn local_call_limit() -> Duration {
    let sdk = baatcheet_tests::sdk().await;
    sdk.timeout_config().and_then(|t| t.operation_attempt_timeout()).expect("the SDK config sets an attempt timeout")
}

/// One "instance": its own deny cache and fallback, the stack's table, the shared clock.
pub fn instance(stack: &TestStack, settings: &Settings, clock: &Arc<ManualClock>) -> Limiter {
    Limiter::with_clock(
        baatcheet_shared::aws::dynamodb(&stack.sdk),
        stack.config().tables.rate_limits,
        settings.clone(),
        clock.clone(),
    )
}

/// An "instance" whose DynamoDB is at `url` (a proxy a test makes slow, hung or down).
pub async fn instance_via(stack: &TestStack, url: &str, settings: &Settings, clock: &Arc<ManualClock>) -> Limiter {
    Limiter::with_clock(
        baatcheet_tests::dynamodb_at(url).await,
        stack.config().tables.rate_limits,
        settings.clone(),
        clock.clone(),
    )
}

/// The TAT stored for a bucket key (microseconds), read consistently.
pub async fn stored_tat(stack: &TestStack, key: &str) -> Option<u64> {
    let item = baatcheet_shared::aws::dynamodb(&stack.sdk)
        .get_item()
        .table_name(stack.config().tables.rate_limits)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("a read of the rate-limits table")
        .item?;
    baatcheet_shared::rate_limit::store::read_tat(&item)
}

/// Polls `cond` every 50 ms for up to `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
