//! Distributed rate limiting: GCRA token buckets in DynamoDB, exact across every Lambda instance.
//!
//! - [`gcra`]: the arithmetic. [`policy`]: the spec's limits, their configuration and bucket keys.
//! - [`store`]: one conditional UpdateItem per decision, or one transaction for the global and a
//!   per-user bucket together (see [`layer::global_limit`]). [`deny_cache`]: answers 429 for buckets
//!   this instance knows are empty, without calling DynamoDB. [`fallback`]: in-memory buckets while
//!   DynamoDB is unreachable (the limiter then reports itself degraded).
//! - [`headers`]: `RateLimit-Policy` / `RateLimit`. [`layer`]: the global per-IP limit of the
//!   shared request path, which also writes the fields of every check made while serving a request.
//!
//! Handlers apply per-user limits with [`Limiter::check`]:
//!
//! ```no_run
//! # use baatcheet_shared::{AppContext, ApiError, auth::AuthUser, rate_limit::Policy};
//! # async fn handler(ctx: AppContext, user: AuthUser, images: Vec<String>) -> Result<(), ApiError> {
//! ctx.limiter.check(Policy::Chat(user.tier), &user.user_id, 1).await?; // a refusal is the 429 problem
//! if !images.is_empty() {
//!     ctx.limiter.check(Policy::Images, &user.user_id, images.len() as u32).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Authentication uses two calls around token verification (see [`Limiter::auth_precheck`] and
//! [`Limiter::record_auth_failure`]).

pub mod clock;
pub mod deny_cache;
pub mod fallback;
pub mod gcra;
pub mod headers;
pub mod layer;
pub mod policy;
pub mod store;

use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use clock::{Clock, SystemClock};
pub use headers::{RateLimitStatus, Source, with_rate_limit};
pub use layer::{GlobalLimit, UNLIMITED_PATHS, global_limit};
pub use policy::{Policies, Policy, Settings, Subject};

use crate::error::{ApiError, error_chain};
use deny_cache::DenyCache;
use fallback::Fallback;
use gcra::{Outcome, Rate};
use store::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("a rate-limit check of cost 0 was asked for policy {0}")]
    ZeroCost(&'static str),
}

/// What the limiter has done on this instance, for `/health` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LimiterStats {
    /// The last attempt to reach DynamoDB failed: decisions are made by in-memory buckets.
    pub degraded: bool,
    /// DynamoDB requests sent by the limiter.
    pub store_calls: u64,
    /// Decisions made by DynamoDB.
    pub store_decisions: u64,
    /// Refusals answered from the deny cache (no DynamoDB call).
    pub deny_cache_hits: u64,
    /// Decisions made by in-memory buckets because DynamoDB failed.
    pub fallback_decisions: u64,
    /// DynamoDB failures (timeouts, throttling, unreachable endpoint, ...).
    pub store_failures: u64,
    pub allowed: u64,
    pub denied: u64,
}

#[derive(Debug, Default)]
struct Counters {
    store_decisions: AtomicU64,
    deny_cache_hits: AtomicU64,
    fallback_decisions: AtomicU64,
    store_failures: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
}

/// After a store failure the limiter stays on its fallback for `store_retry_after`, so an outage
/// costs one timeout per instance per period, not one per request.
#[derive(Debug, Default)]
struct Breaker {
    degraded: AtomicBool,
    retry_at_us: AtomicU64,
}

impl Breaker {
    fn store_allowed(&self, now: u64) -> bool {
        !self.degraded.load(Ordering::Acquire) || now >= self.retry_at_us.load(Ordering::Acquire)
    }

    fn failed(&self, now: u64, retry_after_us: u64) -> bool {
        self.retry_at_us.store(now.saturating_add(retry_after_us), Ordering::Release);
        !self.degraded.swap(true, Ordering::AcqRel)
    }

    fn succeeded(&self) -> bool {
        self.degraded.swap(false, Ordering::AcqRel)
    }
}

/// The rate limiter of one instance: built once per cold start, shared by every request.
pub struct Limiter {
    settings: Settings,
    store: DynamoStore,
    cache: DenyCache,
    fallback: Fallback,
    clock: Arc<dyn Clock>,
    breaker: Breaker,
    counters: Counters,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("settings", &self.settings).field("stats", &self.stats()).finish()
    }
}

/// How a deferred global check was made together with a per-user one.
enum Joint {
    /// One transaction decided both.
    Both(RateLimitStatus, RateLimitStatus),
    /// The global bucket refused; the per-user one was not charged.
    GlobalRefused(RateLimitStatus),
    /// Not together: the global check, then the per-user check.
    OneByOne,
}

/// Key of the bucket `/health` exercises to see whether a degraded limiter's store is back.
const PROBE_KEY: &str = "health#probe";

impl Limiter {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, settings: Settings) -> Self {
        Self::with_clock(client, table, settings, Arc::new(SystemClock))
    }

    pub fn with_clock(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store: DynamoStore::new(client, table, settings.store_timeout),
            settings,
            cache: DenyCache::default(),
            fallback: Fallback::default(),
            clock,
            breaker: Breaker::default(),
            counters: Counters::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn rate(&self, policy: Policy) -> Rate {
        self.settings.policies.rate(policy)
    }

    /// Applies `policy` to `subject` (a user id, or a client IP), taking `cost` units.
    ///
    /// Admitted: the policy's status (the request path writes it into the `RateLimit` fields).
    /// Refused: `ApiError::QuotaExceeded` (429 problem+json with `Retry-After`). A cost above the
    /// policy's capacity can never be admitted: 400. Never fails because DynamoDB is down.
    ///
    /// On a path whose global check the request path deferred, the first check also charges the
    /// client IP's global bucket, in the same DynamoDB call when it can.
    pub async fn check<'a>(
        &self,
        policy: Policy,
        subject: impl Into<Subject<'a>>,
        cost: u32,
    ) -> Result<RateLimitStatus, ApiError> {
        let subject = subject.into();
        match layer::take_pending_global() {
            Some(ip) if policy != Policy::Global => self.check_with_global(ip, policy, &subject, cost).await,
            _ => self.check_alone(policy, &subject, cost).await,
        }
    }

    async fn check_alone(&self, policy: Policy, subject: &Subject<'_>, cost: u32) -> Result<RateLimitStatus, ApiError> {
        let status = self.decide(policy, subject, cost).await?;
        layer::record(&status);
        match status.error() {
            Some(e) => Err(e),
            None => Ok(status),
        }
    }

    /// The global check of `ip` and `policy`'s check of `subject`, in one transaction when the
    /// store can decide both; otherwise one after the other (global first), as two checks.
    /// [`Self::check`] calls it on paths whose global check was deferred.
    pub async fn check_with_global(
        &self,
        ip: IpAddr,
        policy: Policy,
        subject: &Subject<'_>,
        cost: u32,
    ) -> Result<RateLimitStatus, ApiError> {
        match self.decide_with_global(ip, policy, subject, cost).await {
            Joint::Both(global, status) => {
                layer::record(&global);
                layer::record(&status);
                match status.error() {
                    Some(e) => Err(e),
                    None => Ok(status),
                }
            }
            Joint::GlobalRefused(global) => {
                layer::record(&global);
                Err(global.error().unwrap_or(ApiError::QuotaExceeded { policy: "global".into(), retry_after_secs: 1 }))
            }
            Joint::OneByOne => {
                self.check_alone(Policy::Global, &Subject::Ip(ip), 1).await?;
                self.check_alone(policy, subject, cost).await
            }
        }
    }

    async fn decide_with_global(&self, ip: IpAddr, policy: Policy, subject: &Subject<'_>, cost: u32) -> Joint {
        let (g_rate, rate) = (self.rate(Policy::Global), self.rate(policy));
        let cost = u64::from(cost);
        if cost == 0 || cost > rate.capacity() {
            return Joint::OneByOne; // the errors of a single check, after the global one
        }
        let (g_key, key) = (Policy::Global.key(&Subject::Ip(ip)), policy.key(subject));
        let now = self.clock.now_us();
        let (g_known, known) = (self.cache.known(&g_key), self.cache.known(&key));
        let cached_empty =
            |rate: &Rate, tat: Option<u64>, cost| tat.is_some_and(|t| !gcra::could_admit(rate, t, now, cost));
        // A bucket known empty, or no store: the single checks answer from the cache or fallback.
        if cached_empty(&g_rate, g_known, 1) || cached_empty(&rate, known, cost) || !self.breaker.store_allowed(now) {
            return Joint::OneByOne;
        }
        let takes = [
            // The global bucket of an address is shared by all its requests: extend it without
            // conflicts (its new TAT is then a lower bound, enough for the deny cache).
            store::Take { key: &g_key, rate: &g_rate, cost: 1, known: g_known, exact: false },
            store::Take { key: &key, rate: &rate, cost, known, exact: true },
        ];
        match self.store.acquire_together(takes, now).await {
            Ok(store::Together::Allowed([g_tat, tat])) => {
                if self.breaker.succeeded() {
                    tracing::info!("rate-limit store reachable again; decisions are exact across instances");
                }
                self.cache.observe(&g_key, g_tat, now);
                self.cache.observe(&key, tat, now);
                self.counters.store_decisions.fetch_add(2, Ordering::Relaxed);
                let global =
                    self.status(Policy::Global, &g_rate, Outcome::Allowed { tat: g_tat }, now, 1, Source::Store);
                Joint::Both(global, self.status(policy, &rate, Outcome::Allowed { tat }, now, cost, Source::Store))
            }
            Ok(store::Together::Denied { index: 0, tat }) => {
                self.cache.observe(&g_key, tat, now);
                self.counters.store_decisions.fetch_add(1, Ordering::Relaxed);
                Joint::GlobalRefused(self.status(
                    Policy::Global,
                    &g_rate,
                    Outcome::Denied { tat },
                    now,
                    1,
                    Source::Store,
                ))
            }
            // The per-user bucket is empty and nothing was charged: the global check alone, then
            // this refusal again from the deny cache.
            Ok(store::Together::Denied { tat, .. }) => {
                self.cache.observe(&key, tat, now);
                Joint::OneByOne
            }
            Err(store::StoreError::Contention) => Joint::OneByOne,
            Err(e) => {
                self.store_failed(policy, &e, now);
                Joint::OneByOne
            }
        }
    }

    /// The decision of [`Self::check`] as a status (refusals included), without recording it
    /// for the response.
    pub async fn decide(&self, policy: Policy, subject: &Subject<'_>, cost: u32) -> Result<RateLimitStatus, ApiError> {
        let rate = self.rate(policy);
        let cost = u64::from(cost);
        if cost == 0 {
            return Err(ApiError::internal(LimitError::ZeroCost(policy.name())));
        }
        if cost > rate.capacity() {
            return Err(ApiError::BadRequest(format!(
                "This request needs {cost} units of the '{}' limit, which allows at most {} per {} s.",
                policy.name(),
                rate.capacity(),
                rate.window_secs()
            )));
        }
        let key = policy.key(subject);
        let now = self.clock.now_us();
        let known = self.cache.known(&key);
        if let Some(tat) = known
            && !gcra::could_admit(&rate, tat, now, cost)
        {
            self.counters.deny_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(self.status(policy, &rate, Outcome::Denied { tat }, now, cost, Source::DenyCache));
        }
        if self.breaker.store_allowed(now) {
            match self.store.acquire(&key, &rate, now, cost, known).await {
                Ok(outcome) => {
                    if self.breaker.succeeded() {
                        tracing::info!("rate-limit store reachable again; decisions are exact across instances");
                    }
                    let (Outcome::Allowed { tat } | Outcome::Denied { tat }) = outcome;
                    self.cache.observe(&key, tat, now);
                    self.counters.store_decisions.fetch_add(1, Ordering::Relaxed);
                    return Ok(self.status(policy, &rate, outcome, now, cost, Source::Store));
                }
                Err(e) => self.store_failed(policy, &e, now),
            }
        }
        self.counters.fallback_decisions.fetch_add(1, Ordering::Relaxed);
        let outcome = self.fallback.decide(&key, &rate, now, cost, known);
        Ok(self.status(policy, &rate, outcome, now, cost, Source::Fallback))
    }

    fn store_failed(&self, policy: Policy, e: &store::StoreError, now: u64) {
        self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
        let retry_us = self.settings.store_retry_after.as_micros() as u64;
        let newly = self.breaker.failed(now, retry_us);
        // Keys carry addresses and user ids: the log names the policy only.
        tracing::warn!(
            policy = policy.name(),
            error = %error_chain(e),
            newly_degraded = newly,
            "rate-limit store unavailable; this instance decides with in-memory buckets"
        );
    }

    fn status(
        &self,
        policy: Policy,
        rate: &Rate,
        outcome: Outcome,
        now: u64,
        cost: u64,
        source: Source,
    ) -> RateLimitStatus {
        let (tat, retry_after_secs) = match outcome {
            Outcome::Allowed { tat } => {
                self.counters.allowed.fetch_add(1, Ordering::Relaxed);
                (tat, None)
            }
            Outcome::Denied { tat } => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
                (tat, Some(gcra::ceil_secs(gcra::retry_after_us(rate, tat, now, cost)).max(1)))
            }
        };
        RateLimitStatus {
            policy: policy.name(),
            quota: rate.capacity(),
            window_secs: rate.window_secs(),
            remaining: gcra::remaining(rate, tat, now),
            reset_secs: retry_after_secs.unwrap_or_else(|| gcra::ceil_secs(gcra::next_token_us(rate, tat, now))),
            retry_after_secs,
            source,
        }
    }

    /// Authentication, step 1 — before verifying a request's token: refuses the request (429,
    /// policy `auth`) when this instance already knows the client IP has used up its failed
    /// authentications. Uses only what this instance knows (the deny cache, or its fallback
    /// bucket during an outage): no DynamoDB call, so a request with a valid token pays nothing.
    /// Another instance that has not seen this IP's failures lets the request through to
    /// verification, where a further failure is counted (and refused) by step 2.
    pub fn auth_precheck(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.precheck(Policy::Auth, ip, 1)
    }

    /// Refuses (429, recorded for the response) when this instance already knows `policy`'s
    /// bucket for `subject` cannot admit `cost`, from its deny cache or fallback bucket; no
    /// DynamoDB call. `Ok` says nothing was known against the request.
    pub fn precheck<'a>(&self, policy: Policy, subject: impl Into<Subject<'a>>, cost: u64) -> Result<(), ApiError> {
        let rate = self.rate(policy);
        let key = policy.key(&subject.into());
        let now = self.clock.now_us();
        let known = [self.cache.known(&key), self.fallback.known(&key)].into_iter().flatten().max();
        match known {
            Some(tat) if !gcra::could_admit(&rate, tat, now, cost) => {
                self.counters.deny_cache_hits.fetch_add(1, Ordering::Relaxed);
                let status = self.status(policy, &rate, Outcome::Denied { tat }, now, cost, Source::DenyCache);
                layer::record(&status);
                Err(status
                    .error()
                    .unwrap_or(ApiError::QuotaExceeded { policy: policy.name().into(), retry_after_secs: 1 }))
            }
            _ => Ok(()),
        }
    }

    /// Authentication, step 2 — after a token failed verification (the 401 case): counts the
    /// failure against the client IP's `auth` bucket (one DynamoDB call). `Ok` when the failure
    /// fitted (answer the 401); `Err(QuotaExceeded)` when the IP had already used up its
    /// failures (answer that 429 instead). Either way this instance now knows, so once the bucket
    /// is empty step 1 refuses the IP's next requests without a DynamoDB call.
    pub async fn record_auth_failure(&self, ip: IpAddr) -> Result<RateLimitStatus, ApiError> {
        self.check(Policy::Auth, ip, 1).await
    }

    /// Whether decisions are currently made by in-memory buckets because DynamoDB failed.
    pub fn is_degraded(&self) -> bool {
        self.breaker.degraded.load(Ordering::Acquire)
    }

    /// DynamoDB requests sent so far.
    pub fn store_calls(&self) -> u64 {
        self.store.calls()
    }

    pub fn stats(&self) -> LimiterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LimiterStats {
            degraded: self.is_degraded(),
            store_calls: self.store.calls(),
            store_decisions: get(&c.store_decisions),
            deny_cache_hits: get(&c.deny_cache_hits),
            fallback_decisions: get(&c.fallback_decisions),
            store_failures: get(&c.store_failures),
            allowed: get(&c.allowed),
            denied: get(&c.denied),
        }
    }

    /// The limiter's state for `/health`. A degraded limiter whose retry period has passed first
    /// tries the store once (a real conditional update on a probe bucket, so the same permission
    /// is exercised), so health reports a recovery without waiting for a limited request.
    pub async fn health(&self) -> LimiterStats {
        let now = self.clock.now_us();
        if self.is_degraded() && self.breaker.store_allowed(now) {
            let rate = Rate::new(Rate::MAX_CAPACITY, 1).unwrap_or(self.rate(Policy::Global));
            match self.store.acquire(PROBE_KEY, &rate, now, 1, None).await {
                Ok(_) => {
                    if self.breaker.succeeded() {
                        tracing::info!("rate-limit store reachable again; decisions are exact across instances");
                    }
                }
                Err(e) => {
                    self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    self.breaker.failed(now, self.settings.store_retry_after.as_micros() as u64);
                    tracing::warn!(error = %error_chain(&e), "rate-limit store still unavailable");
                }
            }
        }
        self.stats()
    }
}
