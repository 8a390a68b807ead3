//! Distributed rate limiting: GCRA token buckets in DynamoDB, exact across every Lambda instance.
//!
//! - [`gcra`]: the arithmetic. [`policy`]: the platform's policies, how a function declares its
//!   own ([`PolicySpec`]), their configuration and bucket keys.
//! - [`store`]: one conditional UpdateItem per decision, or one transaction for the global and a
//!   per-user bucket together (see [`layer::global_limit`]). [`deny_cache`]: answers 429 for buckets
//!   this instance knows are empty, without calling DynamoDB. [`fallback`]: in-memory buckets that
//!   remember the stored state and hold a small per-policy allowance, for when the store cannot
//!   decide; [`breaker`]: when the store counts as down (the limiter then reports itself degraded).
//!
//! ## When the store is slow, contended or down
//!
//! - **One key at a time per instance.** Concurrent decisions on one key wait in that key's lane
//!   for a single store call at a time, and are decided together: the call takes the units of
//!   every waiting request that fits what the instance knows is left (one conditional update of
//!   cost *n*), and refuses the rest with the returned TAT. A burst of 150 requests on one key is
//!   a few calls, not 150 calls queueing in DynamoDB, and stays exact. Other keys have lanes of
//!   their own: one hot key delays nobody else.
//! - **Slow is not down.** A decision waits for its call; conditional conflicts with other
//!   instances and throttling are retried with jittered backoff. While the store keeps answering
//!   (any call, any key), the decision keeps waiting up to `RATE_LIMIT_CONTENDED_WAIT_MS`, then
//!   that one decision uses its policy's fallback ([`Source::Fallback`]); nothing else changes.
//! - **Down.** When a call fails, or `RATE_LIMIT_STORE_TIMEOUT_MS` passes, with no answer from the
//!   store at all since the decision began, the instance opens its [`breaker`]: every decision
//!   uses its policy's fallback at once, and a probe every `RATE_LIMIT_STORE_RETRY_MS` (from a
//!   request or a background task) ends the outage at the store's first answer. What the
//!   fallback admitted is then written back to the stored buckets.
//! - **Fallback.** Per policy ([`FallbackMode`]): an allowance (an in-memory bucket that starts
//!   from the last stored state this instance learned for the key, capped at a few units per
//!   window: the client sees the usual 200 or 429 with `RateLimit` fields) or refuse (503
//!   `service-unavailable` with `Retry-After`). [`FallbackMode::worst_case`] bounds what one
//!   instance can over-admit.
//! - [`headers`]: `RateLimit-Policy` / `RateLimit`. [`layer`]: the global limit of the shared
//!   request path (per signed-in user, else per address), which also authenticates the routes a
//!   function declares signed-in and writes the fields of every check made while serving a request.
//!
//! A function declares its policies once and at start ([`Limiter::declare`]); handlers apply
//! them per user with [`Limiter::check`]:
//!
//! ```no_run
//! # use baatcheet_shared::{AppContext, ApiError, auth::AuthUser};
//! # use baatcheet_shared::rate_limit::{FallbackMode, PolicySpec, Setting, Sizing};
//! const WIDGETS: PolicySpec = PolicySpec {
//!     name: "widgets",
//!     sizing: Sizing::Flat(Setting::new("RATE_LIMIT_WIDGETS", 50, 3600, "RATE_LIMIT_FALLBACK_WIDGETS", FallbackMode::Allow(5))),
//! };
//! # fn start(ctx: &AppContext) -> Result<(), baatcheet_shared::config::ConfigError> {
//! ctx.limiter.declare(&[&WIDGETS], &|k: &str| ctx.config.var(k))?; // a bad value fails the start
//! # Ok(()) }
//! # async fn handler(ctx: AppContext, user: AuthUser, widgets: Vec<String>) -> Result<(), ApiError> {
//! // A refusal (`LimitError`) becomes its problem+json through `?`: a 429, 400 or 503.
//! ctx.limiter.check(WIDGETS.of(user.tier), &user.user_id, widgets.len() as u32).await?;
//! # Ok(()) }
//! ```
//!
//! Authentication uses two calls after a token failed verification (see
//! [`Limiter::auth_precheck`] and [`Limiter::record_auth_failure`]).

pub mod breaker;
pub mod clock;
pub mod deny_cache;
pub mod erase;
pub mod fallback;
pub mod gcra;
pub mod headers;
pub mod layer;
pub mod policy;
mod slot;
pub mod store;

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

pub use clock::{Clock, SystemClock};
pub use headers::{RateLimitStatus, Source, with_rate_limit};
pub use layer::{Access, GlobalLimit, RouteAccess, global_limit, identify};
pub use policy::{FallbackMode, Limits, Policies, Policy, PolicySpec, Setting, Settings, Sizing, Subject};

use crate::config::ConfigError;
use crate::error::{ApiError, error_chain};
use breaker::{Breaker, Gate};
use deny_cache::DenyCache;
use fallback::Fallback;
use gcra::{Outcome, Rate};
use slot::{GiveUp, Slot};
use store::{DynamoStore, StoreError};

/// Why the limiter did not admit a request: the limiter's one error type. The request path
/// turns it into problem+json through `From<LimitError> for ApiError` (below), so a function's
/// service can pass a refusal on without speaking HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The bucket cannot admit the cost yet (429 with `Retry-After`).
    #[error("the '{policy}' limit is used up; retry in {retry_after_secs} s")]
    Exceeded { policy: &'static str, retry_after_secs: u64 },
    /// The cost is above the policy's capacity, so no wait would admit it (400).
    #[error(
        "This request needs {cost} units of the '{policy}' limit, which allows at most {capacity} per {window_secs} s."
    )]
    TooCostly { policy: &'static str, cost: u64, capacity: u64, window_secs: u64 },
    /// The store cannot decide and the policy refuses without it (503 with `Retry-After`).
    #[error("The '{policy}' limit cannot be checked right now; try again shortly.")]
    Unavailable { policy: &'static str, retry_after_secs: u64 },
    /// A bug of the calling function (500).
    #[error("a rate-limit check of cost 0 was asked for policy {0}")]
    ZeroCost(&'static str),
    /// A bug of the calling function (500).
    #[error("policy {0} was never declared to the limiter")]
    Undeclared(&'static str),
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Exceeded { policy, retry_after_secs } => {
                ApiError::QuotaExceeded { policy: policy.into(), retry_after_secs }
            }
            LimitError::TooCostly { .. } => ApiError::BadRequest(e.to_string()),
            LimitError::Unavailable { retry_after_secs, .. } => {
                ApiError::Unavailable { detail: e.to_string(), retry_after_secs: Some(retry_after_secs) }
            }
            LimitError::ZeroCost(_) | LimitError::Undeclared(_) => ApiError::internal(e),
        }
    }
}

impl axum::response::IntoResponse for LimitError {
    fn into_response(self) -> axum::response::Response {
        ApiError::from(self).into_response()
    }
}

/// What the limiter has done on this instance, for `/health` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LimiterStats {
    /// The store counts as down on this instance: decisions are made by its fallback until the
    /// store answers a probe again.
    pub degraded: bool,
    /// DynamoDB requests sent by the limiter.
    pub store_calls: u64,
    /// Decisions made by DynamoDB.
    pub store_decisions: u64,
    /// Refusals answered from the deny cache (no DynamoDB call).
    pub deny_cache_hits: u64,
    /// Decisions made by the fallback (the store down, or one key slow past the contended wait).
    pub fallback_decisions: u64,
    /// DynamoDB failures (timeouts, throttling, unreachable endpoint, ...).
    pub store_failures: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Decisions that shared one DynamoDB call with other requests on the same key.
    pub coalesced_decisions: u64,
    /// Fallback decisions of a key that stayed slow while the store answered (the instance
    /// stayed on the store).
    pub contended_fallbacks: u64,
    /// Requests answered 503 because their policy refuses while the store cannot decide.
    pub fallback_refusals: u64,
    /// Fallback decisions by policy (its name; `<name>_<tier>` for a policy sized by tier).
    pub fallback_by_policy: BTreeMap<String, u64>,
    /// Times this instance found the store down.
    pub outages: u64,
    /// Buckets whose fallback admissions were written back to the store after an outage.
    pub written_back: u64,
    /// Buckets with fallback admissions still to write back.
    pub pending_write_backs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    store_decisions: AtomicU64,
    deny_cache_hits: AtomicU64,
    fallback_decisions: AtomicU64,
    store_failures: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    coalesced: AtomicU64,
    contended_fallbacks: AtomicU64,
    fallback_refusals: AtomicU64,
    written_back: AtomicU64,
    /// Fallback decisions by policy label (a rare path: a lock is fine).
    by_policy: Mutex<BTreeMap<String, u64>>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a decision is made by the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Down,
    Contended,
}

impl From<GiveUp> for Why {
    fn from(g: GiveUp) -> Self {
        match g {
            GiveUp::Down => Self::Down,
            GiveUp::Slow => Self::Contended,
        }
    }
}

/// What a key's lane hands a waiting decision.
#[derive(Debug, Clone, Copy)]
enum Delivered {
    /// The store decided (at `now` of the limiter's clock).
    Store { outcome: Outcome, now: u64 },
    /// The store is down: decide with the fallback.
    Down,
}

/// A decision waiting in its key's lane.
struct Waiter {
    policy: Policy,
    rate: Rate,
    cost: u64,
    /// Let through an open breaker (the probe of the store).
    probe: bool,
    slot: Slot<Delivered>,
}

/// What a joint (global + per-user) call hands its decision.
#[derive(Debug, Clone, Copy)]
enum JointDelivered {
    Allowed {
        tats: [u64; 2],
        now: u64,
    },
    Denied {
        index: usize,
        tat: u64,
        now: u64,
    },
    /// Not decided together: one check after the other.
    OneByOne,
}

/// How a deferred global check was made together with a per-user one.
enum Joint {
    /// One transaction decided both.
    Both(RateLimitStatus, RateLimitStatus),
    /// The global bucket refused; the per-user one was not charged.
    GlobalRefused(RateLimitStatus),
    /// The fallback decided (the transaction gave up): the global check, then (if it admitted)
    /// the per-user one.
    Fallback(Result<RateLimitStatus, LimitError>, Option<Result<RateLimitStatus, LimitError>>),
    /// Not together: the global check, then the per-user check.
    OneByOne,
}

/// Key of the bucket probes exercise to see whether a down store is back.
const PROBE_KEY: &str = "health#probe";
/// The longest one store call may run while the store answers others (an answer that late
/// still updates the buckets; decisions have long stopped waiting for it).
const STORE_CALL_LIMIT: Duration = Duration::from_secs(10);
/// Background probes never come faster than this, whatever `RATE_LIMIT_STORE_RETRY_MS` says.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// The rate limiter of one instance: built once per cold start, shared by every request.
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// The platform's policies and those the functions declared at start, with their limits.
    policies: RwLock<Policies>,
    store: DynamoStore,
    cache: DenyCache,
    fallback: Fallback,
    clock: Arc<dyn Clock>,
    breaker: Breaker,
    counters: Counters,
    /// Keys with a store call in progress on this instance, and the decisions waiting for it.
    lanes: Mutex<HashMap<String, VecDeque<Arc<Waiter>>>>,
    flushing: AtomicBool,
    me: Weak<Inner>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("settings", &self.inner.settings).field("stats", &self.stats()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values stay consistent between statements: a panic cannot leave them torn.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns on the current Tokio runtime, if there is one (there always is in a request), in the
/// trace of the request that started the work (a lane's store calls are traced under it).
fn spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(crate::xray::propagate(fut));
    }
}

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
        let table = table.into();
        let inner = Arc::new_cyclic(|me| Inner {
            store: DynamoStore::new(client, table, settings.longest_wait().max(STORE_CALL_LIMIT)),
            breaker: Breaker::new(settings.store_retry_after),
            policies: RwLock::new(settings.policies.clone()),
            settings,
            cache: DenyCache::default(),
            fallback: Fallback::default(),
            clock,
            counters: Counters::default(),
            lanes: Mutex::new(HashMap::new()),
            flushing: AtomicBool::new(false),
            me: me.clone(),
        });
        Self { inner }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Declares a function's policies, their limits read from `get` (the function's environment;
    /// defaults where unset). Called once at start: a bad value is an error that fails the start.
    pub fn declare(&self, specs: &[&PolicySpec], get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut declared = Policies::default();
        declared.declare(specs, get)?;
        let mut policies = self.inner.policies.write().unwrap_or_else(|e| e.into_inner());
        for spec in specs {
            for (policy, _) in spec.settings() {
                if let Some(limits) = declared.get(policy) {
                    policies.set(policy, limits);
                }
            }
        }
        Ok(())
    }

    /// The rate and failure mode of `policy`, if declared.
    pub fn limits(&self, policy: Policy) -> Option<Limits> {
        self.inner.limits(policy).ok()
    }

    /// Applies `policy` to `subject` (a user id, or a client IP), taking `cost` units.
    ///
    /// Admitted: the policy's status (the request path writes it into the `RateLimit` fields).
    /// Refused: `LimitError::Exceeded` (429 problem+json with `Retry-After`). A cost above the
    /// policy's capacity can never be admitted: 400. While the store cannot decide, the policy's
    /// fallback answers: the same kinds of answer, or (a policy that refuses) 503 with
    /// `Retry-After`.
    ///
    /// On a path whose global check the request path deferred, the first check also charges the
    /// signed-in user's global bucket, in the same DynamoDB call when it can.
    pub async fn check<'a>(
        &self,
        policy: Policy,
        subject: impl Into<Subject<'a>>,
        cost: u32,
    ) -> Result<RateLimitStatus, LimitError> {
        let subject = subject.into();
        match layer::take_pending_global() {
            Some(user) if policy != Policy::GLOBAL => {
                self.check_with_global(&Subject::User(&user), policy, &subject, cost).await
            }
            _ => self.check_alone(policy, &subject, cost).await,
        }
    }

    async fn check_alone(
        &self,
        policy: Policy,
        subject: &Subject<'_>,
        cost: u32,
    ) -> Result<RateLimitStatus, LimitError> {
        recorded(self.inner.decide(policy, subject, cost).await?)
    }

    /// The global check of `caller` and `policy`'s check of `subject`, in one transaction when
    /// the store can decide both; otherwise one after the other (global first), as two checks.
    /// [`Self::check`] calls it on paths whose global check was deferred.
    pub async fn check_with_global(
        &self,
        caller: &Subject<'_>,
        policy: Policy,
        subject: &Subject<'_>,
        cost: u32,
    ) -> Result<RateLimitStatus, LimitError> {
        match self.inner.decide_with_global(caller, policy, subject, cost).await {
            Joint::Both(global, status) => {
                layer::record(&global);
                recorded(status)
            }
            Joint::GlobalRefused(global) => recorded(global),
            Joint::Fallback(global, status) => {
                let global = recorded(global?)?;
                match status {
                    Some(status) => recorded(status?),
                    None => Ok(global),
                }
            }
            Joint::OneByOne => {
                self.check_alone(Policy::GLOBAL, caller, 1).await?;
                self.check_alone(policy, subject, cost).await
            }
        }
    }

    /// The decision of [`Self::check`] as a status (refusals included), without recording it
    /// for the response. `Err` for a cost of 0 or above the capacity, and for a policy that
    /// refuses while the store cannot decide.
    pub async fn decide(
        &self,
        policy: Policy,
        subject: &Subject<'_>,
        cost: u32,
    ) -> Result<RateLimitStatus, LimitError> {
        self.inner.decide(policy, subject, cost).await
    }

    /// The global limit of a request that carries no valid token: its client address (IPv6: the
    /// /64), and for IPv6 also its /48 (policy `network`, checked once the /64 admitted), so that
    /// rotating through the addresses of a /48 does not multiply the limit. Signed-in requests are
    /// charged to their user instead (the request path decides which).
    pub async fn check_address(&self, ip: IpAddr) -> Result<RateLimitStatus, LimitError> {
        let status = self.check_alone(Policy::GLOBAL, &Subject::Ip(ip), 1).await?;
        if policy::network_of(ip).is_some() {
            self.check_alone(Policy::NETWORK, &Subject::Ip(ip), 1).await?;
        }
        Ok(status)
    }

    /// Authentication, step 1 — after a token failed verification in a way that counts (a
    /// forged, garbled or foreign token; never a valid one, nor an expired one whose signature
    /// verifies): refuses the request (429, policy `auth`) when this instance already knows the
    /// client IP has used up its failed authentications. Uses only what this instance knows (the
    /// deny cache, or its fallback bucket during an outage): no DynamoDB call. A token that
    /// verifies never gets here, whatever others on its address did.
    pub fn auth_precheck(&self, ip: IpAddr) -> Result<(), LimitError> {
        self.precheck(Policy::AUTH, ip, 1)
    }

    /// Refuses (429, recorded for the response) when this instance already knows `policy`'s
    /// bucket for `subject` cannot admit `cost`, from its deny cache or fallback bucket; no
    /// DynamoDB call. `Ok` says nothing was known against the request.
    pub fn precheck<'a>(&self, policy: Policy, subject: impl Into<Subject<'a>>, cost: u64) -> Result<(), LimitError> {
        let inner = &self.inner;
        let rate = inner.limits(policy)?.rate;
        let key = policy.key(&subject.into());
        let now = inner.clock.now_us();
        let known = [inner.cache.known(&key), inner.fallback.known(&key)].into_iter().flatten().max();
        match known {
            Some(tat) if !gcra::could_admit(&rate, tat, now, cost) => {
                bump(&inner.counters.deny_cache_hits);
                let status = inner.status(policy, &rate, Outcome::Denied { tat }, now, cost, Source::DenyCache);
                layer::record(&status);
                Err(status.error().unwrap_or(LimitError::Exceeded { policy: policy.name(), retry_after_secs: 1 }))
            }
            _ => Ok(()),
        }
    }

    /// Authentication, step 2 — after step 1 let a counted failure through: counts the
    /// failure against the client IP's `auth` bucket (one DynamoDB call). `Ok` when the failure
    /// fitted (answer the 401); `Err(QuotaExceeded)` when the IP had already used up its
    /// failures (answer that 429 instead). Either way this instance now knows, so once the bucket
    /// is empty step 1 refuses the IP's next requests without a DynamoDB call.
    pub async fn record_auth_failure(&self, ip: IpAddr) -> Result<RateLimitStatus, LimitError> {
        self.check(Policy::AUTH, ip, 1).await
    }

    /// Whether the store counts as down on this instance (decisions are made by the fallback).
    pub fn is_degraded(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// DynamoDB requests sent so far.
    pub fn store_calls(&self) -> u64 {
        self.inner.store.calls()
    }

    pub fn stats(&self) -> LimiterStats {
        let inner = &self.inner;
        let c = &inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let fallback_by_policy = lock(&c.by_policy).clone();
        LimiterStats {
            degraded: self.is_degraded(),
            store_calls: inner.store.calls(),
            store_decisions: get(&c.store_decisions),
            deny_cache_hits: get(&c.deny_cache_hits),
            fallback_decisions: get(&c.fallback_decisions),
            store_failures: get(&c.store_failures),
            allowed: get(&c.allowed),
            denied: get(&c.denied),
            coalesced_decisions: get(&c.coalesced),
            contended_fallbacks: get(&c.contended_fallbacks),
            fallback_refusals: get(&c.fallback_refusals),
            fallback_by_policy,
            outages: inner.breaker.outages(),
            written_back: get(&c.written_back),
            pending_write_backs: inner.fallback.debtors(inner.clock.now_us()).len() as u64,
        }
    }

    /// The limiter's state for `/health`. While the store counts as down, a probe is due first
    /// (at most one per retry period: a real conditional update on a probe bucket, so the same
    /// permission is exercised), so health reports a recovery without waiting for a limited
    /// request.
    pub async fn health(&self) -> LimiterStats {
        if self.inner.breaker.is_open() {
            self.inner.probe().await;
        }
        self.stats()
    }
}

/// Records a status for the response; a refusal is its 429.
fn recorded(status: RateLimitStatus) -> Result<RateLimitStatus, LimitError> {
    layer::record(&status);
    match status.error() {
        Some(e) => Err(e),
        None => Ok(status),
    }
}

impl Inner {
    /// The limits of `policy`; an undeclared policy is a bug of its function (500).
    fn limits(&self, policy: Policy) -> Result<Limits, LimitError> {
        let policies = self.policies.read().unwrap_or_else(|e| e.into_inner());
        policies.get(policy).ok_or(LimitError::Undeclared(policy.name()))
    }

    fn validate(&self, policy: Policy, rate: &Rate, cost: u64) -> Result<(), LimitError> {
        if cost == 0 {
            return Err(LimitError::ZeroCost(policy.name()));
        }
        if cost > rate.capacity() {
            return Err(LimitError::TooCostly {
                policy: policy.name(),
                cost,
                capacity: rate.capacity(),
                window_secs: rate.window_secs(),
            });
        }
        Ok(())
    }

    async fn decide(&self, policy: Policy, subject: &Subject<'_>, cost: u32) -> Result<RateLimitStatus, LimitError> {
        let limits = self.limits(policy)?;
        let rate = limits.rate;
        let cost = u64::from(cost);
        self.validate(policy, &rate, cost)?;
        let key = policy.key(subject);
        let now = self.clock.now_us();
        if let Some(tat) = self.cache.known(&key)
            && !gcra::could_admit(&rate, tat, now, cost)
        {
            bump(&self.counters.deny_cache_hits);
            return Ok(self.status(policy, &rate, Outcome::Denied { tat }, now, cost, Source::DenyCache));
        }
        let probe = match self.breaker.gate() {
            Gate::Closed => false,
            Gate::Probe => true,
            Gate::Open => return self.fall_back(policy, &key, &rate, cost, Why::Down),
        };
        let waiter = Arc::new(Waiter { policy, rate, cost, probe, slot: Slot::default() });
        self.enqueue(&key, &waiter);
        let delivered =
            match waiter.slot.wait(&self.store, self.settings.store_timeout, self.settings.longest_wait()).await {
                Ok(d) => d,
                Err(give_up) => {
                    self.gave_up(policy, give_up);
                    let decided = waiter.slot.abandon(|| {
                        let decided = self.fall_back(policy, &key, &rate, cost, give_up.into());
                        let admitted = matches!(&decided, Ok(s) if s.is_allowed());
                        (decided, [admitted, false])
                    });
                    match decided {
                        Ok(d) => d,
                        Err(decided) => return decided,
                    }
                }
            };
        match delivered {
            Delivered::Store { outcome, now } => {
                bump(&self.counters.store_decisions);
                Ok(self.status(policy, &rate, outcome, now, cost, Source::Store))
            }
            Delivered::Down => self.fall_back(policy, &key, &rate, cost, Why::Down),
        }
    }

    /// Queues a decision in its key's lane, starting the lane's driver if none runs.
    fn enqueue(&self, key: &str, waiter: &Arc<Waiter>) {
        let mut lanes = lock(&self.lanes);
        if let Some(queue) = lanes.get_mut(key) {
            queue.push_back(waiter.clone());
            return;
        }
        lanes.insert(key.to_string(), VecDeque::from([waiter.clone()]));
        drop(lanes);
        if let Some(me) = self.me.upgrade() {
            let key = key.to_string();
            spawn(async move { me.drive(key).await });
        }
    }

    /// A key's lane: one store call at a time for the key on this instance, deciding every
    /// decision that waits for it (write-backs of the key's fallback admissions first).
    async fn drive(self: Arc<Self>, key: String) {
        let _lane = LaneGuard { inner: &self, key: &key };
        loop {
            if !self.breaker.is_open() && self.fallback.owes(&key, self.clock.now_us()) {
                self.write_back(&key).await;
            }
            let batch: Vec<Arc<Waiter>> = {
                let mut lanes = lock(&self.lanes);
                let Some(queue) = lanes.get_mut(&key) else { return };
                queue.retain(|w| w.slot.is_waiting());
                let Some(rate) = queue.front().map(|w| w.rate) else {
                    lanes.remove(&key);
                    return;
                };
                // One rate per call (the chat tiers share a key): others wait for the next one.
                let (batch, rest): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|w| w.rate == rate);
                *queue = rest;
                batch.into()
            };
            if self.breaker.is_open() && !batch.iter().any(|w| w.probe) {
                for w in &batch {
                    self.deliver(&key, w, Delivered::Down);
                }
                continue;
            }
            self.decide_batch(&key, &batch).await;
        }
    }

    /// Decides `batch` (one key, one rate) with as few store calls as it can: the units of every
    /// request that fits in what this instance knows is left, taken in one conditional update;
    /// a refusal returns the stored TAT, from which the next attempt knows exactly what fits.
    async fn decide_batch(&self, key: &str, batch: &[Arc<Waiter>]) {
        let (rate, policy) = (batch[0].rate, batch[0].policy);
        let mut known = self.cache.known(key);
        let mut attempt = 0u32;
        loop {
            let now = self.clock.now_us();
            let mut room = known.map_or(rate.capacity(), |t| gcra::remaining(&rate, t, now));
            let (mut take, mut refuse) = (Vec::new(), Vec::new());
            for w in batch.iter().filter(|w| w.slot.is_waiting()) {
                if w.cost <= room {
                    room -= w.cost;
                    take.push(w);
                } else {
                    refuse.push(w);
                }
            }
            if take.is_empty() {
                // Nothing fits in what is known to be left, a lower bound of the stored TAT:
                // certain refusals (or nobody waits any more).
                let tat = known.unwrap_or(now);
                for w in refuse {
                    self.deliver(key, w, Delivered::Store { outcome: Outcome::Denied { tat }, now });
                }
                return;
            }
            let total: u64 = take.iter().map(|w| w.cost).sum();
            let started = Instant::now();
            match self.bounded(self.store.acquire(key, &rate, now, total, known), started).await {
                Ok(Outcome::Allowed { tat }) => {
                    self.store_answered();
                    self.cache.observe(key, tat, now);
                    if take.len() > 1 {
                        self.counters.coalesced.fetch_add(take.len() as u64, Ordering::Relaxed);
                    }
                    let mut after = total;
                    for w in take {
                        after -= w.cost;
                        let outcome = Outcome::Allowed { tat: tat - rate.increment_us(after) };
                        self.deliver(key, w, Delivered::Store { outcome, now });
                    }
                    for w in refuse {
                        self.deliver(key, w, Delivered::Store { outcome: Outcome::Denied { tat }, now });
                    }
                    return;
                }
                Ok(Outcome::Denied { tat }) => {
                    self.store_answered();
                    self.cache.observe(key, tat, now);
                    known = Some(known.map_or(tat, |k| k.max(tat)));
                }
                Err(StoreError::Contention) => {
                    self.store_answered();
                    backoff(&mut attempt).await;
                }
                Err(e) => {
                    bump(&self.counters.store_failures);
                    if !self.store.answered_since(started) {
                        self.store_down(policy, &error_chain(&e));
                        for w in batch {
                            self.deliver(key, w, Delivered::Down);
                        }
                        return;
                    }
                    // The store answers other calls: this key is slow (throttled, contended).
                    tracing::debug!(policy = policy.name(), error = %error_chain(&e), "rate-limit call failed; retrying");
                    backoff(&mut attempt).await;
                }
            }
        }
    }

    /// Hands a lane's answer to a waiting decision. One that had given up and been admitted by
    /// the fallback, but that the store admitted too, is not written back a second time.
    fn deliver(&self, key: &str, w: &Waiter, d: Delivered) {
        if let Some([admitted, _]) = w.slot.deliver(d)
            && admitted
            && let Delivered::Store { outcome: Outcome::Allowed { .. }, now } = d
        {
            self.fallback.settle(key, &w.rate, w.cost, now);
        }
    }

    /// Runs a store call until it answers, or until nothing at all has answered the store for
    /// `RATE_LIMIT_STORE_TIMEOUT_MS` since it began (the store is down: the call is dropped).
    /// While the store answers other calls, a slow call is not dropped (its decisions may have
    /// stopped waiting for it, but its answer still counts: see [`Slot::deliver`]); the store's
    /// own bound ([`STORE_CALL_LIMIT`] at least) ends it.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
        started: Instant,
    ) -> Result<T, StoreError> {
        let down_at = started + self.settings.store_timeout;
        tokio::pin!(call);
        if let Ok(r) = tokio::time::timeout_at(down_at.into(), &mut call).await {
            return r;
        }
        if !self.store.answered_since(started) {
            crate::metrics::record_store_timeout();
            return Err(StoreError::Timeout(started.elapsed()));
        }
        call.await
    }

    /// The decision of `policy`'s fallback for `key`.
    fn fall_back(
        &self,
        policy: Policy,
        key: &str,
        rate: &Rate,
        cost: u64,
        why: Why,
    ) -> Result<RateLimitStatus, LimitError> {
        bump(&self.counters.fallback_decisions);
        *lock(&self.counters.by_policy).entry(policy.label()).or_default() += 1;
        if why == Why::Contended {
            bump(&self.counters.contended_fallbacks);
        }
        let reason = match why {
            Why::Down => "down",
            Why::Contended => "contended",
        };
        let mode = self.limits(policy).map_or(FallbackMode::Refuse, |l| l.fallback);
        let Some(allowance) = mode.allowance(rate) else {
            bump(&self.counters.fallback_refusals);
            crate::metrics::record_limiter_fallback(policy.name(), reason, "unavailable");
            let retry = match why {
                Why::Down => self.breaker.until_retry().max(self.settings.store_retry_after),
                Why::Contended => Duration::ZERO,
            };
            return Err(LimitError::Unavailable {
                policy: policy.name(),
                retry_after_secs: retry.as_secs_f64().ceil().max(1.0) as u64,
            });
        };
        let now = self.clock.now_us();
        let v = self.fallback.decide(key, rate, &allowance, now, cost, self.cache.known(key));
        bump(if v.allowed { &self.counters.allowed } else { &self.counters.denied });
        crate::metrics::record_limiter_fallback(policy.name(), reason, if v.allowed { "allowed" } else { "denied" });
        let wait = gcra::ceil_secs(v.wait_us);
        Ok(RateLimitStatus {
            policy: policy.name(),
            quota: rate.capacity(),
            window_secs: rate.window_secs(),
            remaining: v.remaining,
            reset_secs: wait.max(u64::from(!v.allowed)),
            retry_after_secs: (!v.allowed).then_some(wait.max(1)),
            source: Source::Fallback,
        })
    }

    /// A decision stopped waiting for its store call: with no answer from the store at all, the
    /// store counts as down.
    fn gave_up(&self, policy: Policy, give_up: GiveUp) {
        if give_up == GiveUp::Down {
            crate::metrics::record_store_timeout();
            bump(&self.counters.store_failures);
            self.store_down(policy, &"no answer from the store within RATE_LIMIT_STORE_TIMEOUT_MS");
        }
    }

    /// The store failed as a whole: this instance decides with the fallback until it answers.
    fn store_down(&self, policy: Policy, error: &dyn std::fmt::Display) {
        if self.breaker.trip() {
            // Keys carry addresses and user ids: the log names the policy only.
            tracing::warn!(
                policy = policy.name(),
                error = %error,
                "rate-limit store down; this instance decides with its fallback until the store answers"
            );
            self.spawn_prober();
        }
    }

    /// The store answered a call: an outage, if there was one, is over.
    fn store_answered(&self) {
        if self.breaker.close() {
            tracing::info!("rate-limit store answers again; decisions are exact across instances");
            self.spawn_flush();
        }
    }

    /// Probes the store if a probe is due: a real conditional update on the probe bucket.
    async fn probe(&self) {
        if self.breaker.gate() != Gate::Probe {
            return;
        }
        let Some(rate) = Rate::new(Rate::MAX_CAPACITY, 1) else { return };
        let started = Instant::now();
        match self.bounded(self.store.acquire(PROBE_KEY, &rate, self.clock.now_us(), 1, None), started).await {
            Ok(_) => self.store_answered(),
            Err(e) => {
                bump(&self.counters.store_failures);
                if !self.store.answered_since(started) {
                    self.breaker.trip();
                    tracing::debug!(error = %error_chain(&e), "rate-limit store still down");
                }
            }
        }
    }

    /// While the store is down, probes it once per retry period even if no request comes, so
    /// the outage ends (and the write-back happens) when the store returns.
    fn spawn_prober(&self) {
        if self.breaker.prober.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        spawn(async move {
            loop {
                let Some(wait) = me.upgrade().map(|i| i.breaker.until_retry()) else { return };
                tokio::time::sleep(wait.max(MIN_PROBE_INTERVAL)).await;
                let Some(inner) = me.upgrade() else { return };
                if !inner.breaker.is_open() {
                    inner.breaker.prober.store(false, Ordering::Release);
                    // Opened again meanwhile: keep probing.
                    if !inner.breaker.is_open() || inner.breaker.prober.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
                inner.probe().await;
            }
        });
    }

    /// Writes back every key's fallback admissions, each through its key's lane.
    fn spawn_flush(&self) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        spawn(async move {
            for key in me.fallback.debtors(me.clock.now_us()) {
                if me.breaker.is_open() {
                    break;
                }
                // A key with a running lane is written back by it.
                let claimed = {
                    let mut lanes = lock(&me.lanes);
                    !lanes.contains_key(&key) && lanes.insert(key.clone(), VecDeque::new()).is_none()
                };
                if claimed {
                    me.clone().drive(key).await;
                }
            }
            me.flushing.store(false, Ordering::Release);
        });
    }

    /// Adds what the fallback admitted for `key` to its stored bucket (one compare-and-set).
    async fn write_back(&self, key: &str) {
        let now = self.clock.now_us();
        let Some((rate, owed)) = self.fallback.take_debt(key, now) else { return };
        let started = Instant::now();
        match self.bounded(self.store.charge(key, &rate, now, owed, self.cache.known(key)), started).await {
            Ok(tat) => {
                self.cache.observe(key, tat, now);
                bump(&self.counters.written_back);
            }
            Err(e) => {
                self.fallback.restore_debt(key, rate, owed, now);
                bump(&self.counters.store_failures);
                tracing::warn!(error = %error_chain(&e), "rate-limit write-back failed; kept for the next attempt");
            }
        }
    }

    async fn decide_with_global(
        &self,
        caller: &Subject<'_>,
        policy: Policy,
        subject: &Subject<'_>,
        cost: u32,
    ) -> Joint {
        let (Ok(g_limits), Ok(limits)) = (self.limits(Policy::GLOBAL), self.limits(policy)) else {
            return Joint::OneByOne; // the errors of the single checks
        };
        let (g_rate, rate) = (g_limits.rate, limits.rate);
        let cost = u64::from(cost);
        if cost == 0 || cost > rate.capacity() {
            return Joint::OneByOne; // the errors of a single check, after the global one
        }
        let (g_key, key) = (Policy::GLOBAL.key(caller), policy.key(subject));
        let now = self.clock.now_us();
        let (g_known, known) = (self.cache.known(&g_key), self.cache.known(&key));
        let cached_empty =
            |rate: &Rate, tat: Option<u64>, cost| tat.is_some_and(|t| !gcra::could_admit(rate, t, now, cost));
        // A bucket known empty, no store, a lane busy with either key or a write-back due: the
        // single checks answer (from the cache or fallback, or in the key's lane).
        let busy = {
            let lanes = lock(&self.lanes);
            lanes.contains_key(&g_key) || lanes.contains_key(&key)
        };
        if cached_empty(&g_rate, g_known, 1)
            || cached_empty(&rate, known, cost)
            || self.breaker.is_open()
            || busy
            || self.fallback.owes(&g_key, now)
            || self.fallback.owes(&key, now)
        {
            return Joint::OneByOne;
        }
        let Some(me) = self.me.upgrade() else { return Joint::OneByOne };
        let slot = Arc::new(Slot::<JointDelivered>::default());
        {
            let (slot, g_key, key) = (slot.clone(), g_key.clone(), key.clone());
            spawn(async move {
                let takes = [
                    // The global bucket is shared by all the caller's requests (any route): extend
                    // it without conflicts (its new TAT is then a lower bound, enough for the cache).
                    store::Take { key: &g_key, rate: &g_rate, cost: 1, known: g_known, exact: false },
                    store::Take { key: &key, rate: &rate, cost, known, exact: true },
                ];
                let started = Instant::now();
                let d = match me.bounded(me.store.acquire_together(takes, now), started).await {
                    Ok(store::Together::Allowed(tats)) => {
                        me.store_answered();
                        me.cache.observe(&g_key, tats[0], now);
                        me.cache.observe(&key, tats[1], now);
                        JointDelivered::Allowed { tats, now }
                    }
                    Ok(store::Together::Denied { index, tat }) => {
                        me.store_answered();
                        me.cache.observe(if index == 0 { &g_key } else { &key }, tat, now);
                        JointDelivered::Denied { index, tat, now }
                    }
                    Err(StoreError::Contention) => {
                        me.store_answered();
                        JointDelivered::OneByOne
                    }
                    Err(e) => {
                        bump(&me.counters.store_failures);
                        if !me.store.answered_since(started) {
                            me.store_down(policy, &error_chain(&e));
                        }
                        JointDelivered::OneByOne
                    }
                };
                if let Some([g, u]) = slot.deliver(d)
                    && let JointDelivered::Allowed { now, .. } = d
                {
                    if g {
                        me.fallback.settle(&g_key, &g_rate, 1, now);
                    }
                    if u {
                        me.fallback.settle(&key, &rate, cost, now);
                    }
                }
            });
        }
        let delivered = match slot.wait(&self.store, self.settings.store_timeout, self.settings.longest_wait()).await {
            Ok(d) => d,
            Err(give_up) => {
                self.gave_up(policy, give_up);
                let why = Why::from(give_up);
                let decided = slot.abandon(|| {
                    let global = self.fall_back(Policy::GLOBAL, &g_key, &g_rate, 1, why);
                    if !matches!(&global, Ok(s) if s.is_allowed()) {
                        return (Joint::Fallback(global, None), [false, false]);
                    }
                    let status = self.fall_back(policy, &key, &rate, cost, why);
                    let admitted = matches!(&status, Ok(s) if s.is_allowed());
                    (Joint::Fallback(global, Some(status)), [true, admitted])
                });
                match decided {
                    Ok(d) => d,
                    Err(joint) => return joint,
                }
            }
        };
        match delivered {
            JointDelivered::Allowed { tats: [g_tat, tat], now } => {
                self.counters.store_decisions.fetch_add(2, Ordering::Relaxed);
                let global =
                    self.status(Policy::GLOBAL, &g_rate, Outcome::Allowed { tat: g_tat }, now, 1, Source::Store);
                Joint::Both(global, self.status(policy, &rate, Outcome::Allowed { tat }, now, cost, Source::Store))
            }
            JointDelivered::Denied { index: 0, tat, now } => {
                bump(&self.counters.store_decisions);
                Joint::GlobalRefused(self.status(
                    Policy::GLOBAL,
                    &g_rate,
                    Outcome::Denied { tat },
                    now,
                    1,
                    Source::Store,
                ))
            }
            // The per-user bucket is empty and nothing was charged: the global check alone, then
            // this refusal again from the deny cache.
            JointDelivered::Denied { .. } | JointDelivered::OneByOne => Joint::OneByOne,
        }
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
}

/// Sleeps before the next attempt on a contended or failing key: exponential from 5 ms to
/// 200 ms, with jitter so that instances retrying the same key spread out.
async fn backoff(attempt: &mut u32) {
    let base = (5u64 << (*attempt).min(6)).min(200);
    let jitter = std::collections::hash_map::RandomState::new().build_hasher().finish() % (base + 1);
    *attempt += 1;
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// Removes a lane whose driver ended abnormally (a panic), so its key is not stuck: whoever
/// still waits falls back.
struct LaneGuard<'a> {
    inner: &'a Inner,
    key: &'a str,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let queue = lock(&self.inner.lanes).remove(self.key).unwrap_or_default();
            for w in queue {
                w.slot.deliver(Delivered::Down);
            }
        }
    }
}
