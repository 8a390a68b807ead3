//! GCRA buckets in the rate-limits table: one item per key, `pk` = the key, `tat` = the TAT in
//! microseconds since the epoch, `expires_at` = the table's TTL attribute (epoch seconds, after
//! the bucket has refilled completely, so only idle buckets expire).
//!
//! A decision is one conditional UpdateItem, with no read first. DynamoDB's update language has
//! no `max`, so GCRA's `max(tat, now) + cost*T` takes one of two shapes, each guarded by the
//! condition under which it is right:
//!
//! - *extend* (the bucket is in use or absent):
//!   `SET tat = if_not_exists(tat, :now) + :inc` if `attribute_not_exists(tat) OR (tat > :now AND tat <= :max)`
//! - *refill* (the bucket's TAT is in the past, i.e. it is full again):
//!   `SET tat = :now + :inc` (one value) if `attribute_not_exists(tat) OR tat <= :now`
//!
//! where `:max = now + tau - cost*T` is the highest TAT that still admits the request. The
//! instance's last seen TAT picks the shape (extend when it knows nothing); if the guess was
//! wrong the failed condition returns the stored item (`ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`), which either proves the bucket empty (a denial, with its Retry-After computed from
//! the stored TAT) or names the right shape for a second call. Because every write is
//! conditional on the stored value, concurrent requests on one key never admit more than the
//! bucket holds.
//!
//! The store also remembers when DynamoDB last *answered* (a write, or a failed condition: either
//! proves it is serving this table); the limiter tells a store that is down from a key that is
//! merely slow by it (see `Limiter`).
//!
//! After an outage, what the instances admitted from their in-memory buckets is added to the
//! stored buckets by [`DynamoStore::charge`]: a compare-and-set that moves the TAT forward by the
//! debt, unconditionally on whether the bucket had room (a bucket may end up overdrawn, and then
//! refuses until the over-admission has been paid back).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::gcra::{MICROS_PER_SEC, Outcome, Rate};

pub const TAT: &str = "tat";
pub const EXPIRES_AT: &str = "expires_at";
/// Extra life of an idle item past the moment its bucket is full again (clock skew between
/// instances); expiring earlier would forget a bucket still in use.
const TTL_MARGIN_SECS: u64 = 60;
/// Shapes tried per decision. Two suffice (a wrong guess, then the right shape); the third
/// covers a bucket that changed between them.
const MAX_ATTEMPTS: usize = 3;

const EXTEND_UPDATE: &str = "SET #tat = if_not_exists(#tat, :now) + :inc, #exp = :exp";
const EXTEND_CONDITION: &str = "attribute_not_exists(#tat) OR (#tat > :now AND #tat <= :max)";
const SET_UPDATE: &str = "SET #tat = :tat, #exp = :exp";
const REFILL_CONDITION: &str = "attribute_not_exists(#tat) OR #tat <= :now";
const SWAP_CONDITION: &str = "#tat = :old";
const NEW_CONDITION: &str = "attribute_not_exists(#tat)";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the rate-limit store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the rate-limit store failed an update")]
    Update(#[source] Box<SdkError<UpdateItemError>>),
    #[error("the rate-limit store failed a transaction")]
    Transaction(#[source] Box<SdkError<TransactWriteItemsError>>),
    #[error("the rate-limit store could not build a request")]
    Build(#[source] aws_sdk_dynamodb::error::BuildError),
    #[error("the rate-limit item has no readable {TAT} attribute")]
    Corrupt,
    #[error("the rate-limit item kept changing under {MAX_ATTEMPTS} conditional updates")]
    Contention,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Extend,
    Refill,
    /// Compare and set: `SET tat = :tat` if `tat = :old` (transactions only, where the new TAT
    /// is not returned and must therefore be known beforehand).
    Swap(u64),
}

/// One bucket of a [`DynamoStore::acquire_together`] decision.
#[derive(Debug, Clone, Copy)]
pub struct Take<'a> {
    pub key: &'a str,
    pub rate: &'a Rate,
    pub cost: u64,
    /// The TAT this instance last saw for the key.
    pub known: Option<u64>,
    /// Whether the new TAT must be known exactly (compare-and-set on a bucket in use); otherwise
    /// a bucket in use is extended without conflicts and its new TAT is a lower bound.
    pub exact: bool,
}

/// The verdict on buckets taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Together {
    /// Every bucket admitted the request; their TATs now (exact, or a lower bound for a bucket
    /// taken with `exact: false` that was in use).
    Allowed([u64; 2]),
    /// Bucket `index` is empty (its stored TAT given); nothing was taken from any bucket.
    Denied { index: usize, tat: u64 },
}

enum Attempt {
    Updated(u64),
    /// The condition failed; the stored TAT, if the item has one.
    ConditionFailed(Option<u64>),
}

#[derive(Debug)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Hard bound of one operation (the limiter gives up on a decision earlier).
    timeout: Duration,
    calls: AtomicU64,
    epoch: Instant,
    /// When DynamoDB last answered, in microseconds since `epoch` (0: never).
    last_answer_us: AtomicU64,
}

impl DynamoStore {
    /// One bucket's UpdateItem as every write of it starts: its key, the attribute names, the new
    /// TAT back on success and the stored item back on a failed condition.
    fn bucket_update(&self, key: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .expression_attribute_names("#tat", TAT)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, timeout: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            timeout,
            calls: AtomicU64::new(0),
            epoch: Instant::now(),
            last_answer_us: AtomicU64::new(0),
        }
    }

    /// One operation ran past its hard bound: counted, and its error.
    fn timed_out(&self) -> StoreError {
        crate::metrics::record_store_timeout();
        StoreError::Timeout(self.timeout)
    }

    fn since_epoch(&self, t: Instant) -> u64 {
        // +1: an answer at the epoch itself is still an answer.
        t.saturating_duration_since(self.epoch).as_micros() as u64 + 1
    }

    fn answered(&self) {
        self.last_answer_us.fetch_max(self.since_epoch(Instant::now()), Ordering::AcqRel);
    }

    /// Whether DynamoDB has answered any call of this store (any key) at or after `t`.
    pub fn answered_since(&self, t: Instant) -> bool {
        self.last_answer_us.load(Ordering::Acquire) >= self.since_epoch(t)
    }

    /// DynamoDB requests this store has sent (each operation once; the SDK's own retries of a
    /// throttled or failed attempt are not counted separately).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Takes `cost` tokens from the bucket `key` at `now`, or reports the stored TAT that refuses
    /// them. `known` is the TAT this instance last saw for the key (it picks the update shape).
    pub async fn acquire(
        &self,
        key: &str,
        rate: &Rate,
        now: u64,
        cost: u64,
        known: Option<u64>,
    ) -> Result<Outcome, StoreError> {
        let max = rate.max_tat_admitting(now, cost).ok_or(StoreError::Contention)?;
        let fut = async {
            let mut shape = match known {
                Some(tat) if tat <= now => Shape::Refill,
                _ => Shape::Extend,
            };
            for _ in 0..MAX_ATTEMPTS {
                match self.update(key, rate, now, cost, max, shape).await? {
                    Attempt::Updated(tat) => return Ok(Outcome::Allowed { tat }),
                    // Both shapes admit a missing item: a failed condition without a TAT means
                    // an item this code did not write.
                    Attempt::ConditionFailed(None) => return Err(StoreError::Corrupt),
                    Attempt::ConditionFailed(Some(tat)) if tat > max => return Ok(Outcome::Denied { tat }),
                    Attempt::ConditionFailed(Some(tat)) => {
                        shape = if tat <= now { Shape::Refill } else { Shape::Extend };
                    }
                }
            }
            Err(StoreError::Contention)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| self.timed_out())?
    }

    /// Takes from two buckets in one round trip (TransactWriteItems): both admit the request
    /// or neither is charged. Each bucket keeps the conditions of [`Self::acquire`], so a
    /// concurrent writer on either key cancels the transaction instead of overdrawing it.
    /// `Contention` when the buckets kept changing: the caller then decides them one by one.
    pub async fn acquire_together(&self, takes: [Take<'_>; 2], now: u64) -> Result<Together, StoreError> {
        let mut max = [0u64; 2];
        for (m, t) in max.iter_mut().zip(&takes) {
            *m = t.rate.max_tat_admitting(now, t.cost).ok_or(StoreError::Contention)?;
        }
        let fut = async {
            let mut seen = [takes[0].known, takes[1].known];
            for _ in 0..MAX_ATTEMPTS {
                let mut shapes = [Shape::Refill; 2];
                for i in 0..2 {
                    // TATs only grow, so a TAT seen above the bound proves the bucket empty.
                    match seen[i] {
                        Some(tat) if tat > max[i] => return Ok(Together::Denied { index: i, tat }),
                        Some(tat) if tat > now => {
                            shapes[i] = if takes[i].exact { Shape::Swap(tat) } else { Shape::Extend }
                        }
                        // Unknown: assume full (an exact bucket must not extend blindly).
                        None if !takes[i].exact => shapes[i] = Shape::Extend,
                        _ => {}
                    }
                }
                let mut items = Vec::with_capacity(2);
                for i in 0..2 {
                    items.push(self.transact_item(&takes[i], now, max[i], shapes[i])?);
                }
                self.calls.fetch_add(1, Ordering::Relaxed);
                let res = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
                let e = match res {
                    Ok(_) => {
                        self.answered();
                        let mut tats = [0u64; 2];
                        for i in 0..2 {
                            let inc = takes[i].rate.increment_us(takes[i].cost);
                            tats[i] = match shapes[i] {
                                Shape::Refill => now + inc,
                                Shape::Swap(old) => old + inc,
                                Shape::Extend => seen[i].unwrap_or(now).max(now) + inc,
                            };
                        }
                        return Ok(Together::Allowed(tats));
                    }
                    Err(e) => e,
                };
                let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() else {
                    return Err(StoreError::Transaction(Box::new(e)));
                };
                self.answered();
                for (i, reason) in c.cancellation_reasons().iter().enumerate().take(2) {
                    match reason.code() {
                        Some("ConditionalCheckFailed") => match (reason.item().and_then(read_tat), shapes[i]) {
                            (Some(tat), _) => seen[i] = Some(tat),
                            // A swap fails on a missing item (it expired): start afresh.
                            (None, Shape::Swap(_)) => seen[i] = None,
                            (None, _) => return Err(StoreError::Corrupt),
                        },
                        // Another transaction held the item; the next attempt may pass.
                        None | Some("None") | Some("TransactionConflict") => {}
                        Some(_) => return Err(StoreError::Transaction(Box::new(e))),
                    }
                }
            }
            Err(StoreError::Contention)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| self.timed_out())?
    }

    fn transact_item(
        &self,
        take: &Take<'_>,
        now: u64,
        max: u64,
        shape: Shape,
    ) -> Result<TransactWriteItem, StoreError> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let inc = take.rate.increment_us(take.cost);
        let expires_at = (now + take.rate.tolerance_us()).div_ceil(MICROS_PER_SEC) + TTL_MARGIN_SECS;
        let u = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(take.key.to_string()))
            .expression_attribute_names("#tat", TAT)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":exp", n(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let u = match shape {
            Shape::Extend => u
                .update_expression(EXTEND_UPDATE)
                .condition_expression(EXTEND_CONDITION)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":inc", n(inc))
                .expression_attribute_values(":max", n(max)),
            Shape::Refill => u
                .update_expression(SET_UPDATE)
                .condition_expression(REFILL_CONDITION)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":tat", n(now + inc)),
            Shape::Swap(old) => u
                .update_expression(SET_UPDATE)
                .condition_expression(SWAP_CONDITION)
                .expression_attribute_values(":old", n(old))
                .expression_attribute_values(":tat", n(old + inc)),
        };
        Ok(TransactWriteItem::builder().update(u.build().map_err(StoreError::Build)?).build())
    }

    async fn update(
        &self,
        key: &str,
        rate: &Rate,
        now: u64,
        cost: u64,
        max: u64,
        shape: Shape,
    ) -> Result<Attempt, StoreError> {
        let inc = rate.increment_us(cost);
        let n = |v: u64| AttributeValue::N(v.to_string());
        let mut req = self.bucket_update(key);
        // The item may expire once its TAT has passed: at most now + tau after this update.
        let expires_at = (now + rate.tolerance_us()).div_ceil(MICROS_PER_SEC) + TTL_MARGIN_SECS;
        req = req.expression_attribute_values(":exp", n(expires_at));
        req = match shape {
            Shape::Extend => req
                .update_expression(EXTEND_UPDATE)
                .condition_expression(EXTEND_CONDITION)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":inc", n(inc))
                .expression_attribute_values(":max", n(max)),
            Shape::Refill => req
                .update_expression(SET_UPDATE)
                .condition_expression(REFILL_CONDITION)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":tat", n(now + inc)),
            Shape::Swap(old) => req
                .update_expression(SET_UPDATE)
                .condition_expression(SWAP_CONDITION)
                .expression_attribute_values(":old", n(old))
                .expression_attribute_values(":tat", n(old + inc)),
        };
        self.send(req).await
    }

    async fn send(
        &self,
        req: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Attempt, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Ok(out) => {
                self.answered();
                out.attributes().and_then(read_tat).map(Attempt::Updated).ok_or(StoreError::Corrupt)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    self.answered();
                    Ok(Attempt::ConditionFailed(c.item().and_then(read_tat)))
                }
                _ => Err(StoreError::Update(Box::new(e))),
            },
        }
    }

    /// Adds `owed_us` to the stored TAT of `key` (at least from `now`: a full bucket is charged
    /// from now), whether or not the bucket has room: the write-back of what an instance
    /// admitted while the store could not decide. A compare-and-set on the TAT, starting from
    /// `known` (the failed condition returns the stored TAT for the next attempt). Returns the
    /// new TAT.
    pub async fn charge(
        &self,
        key: &str,
        rate: &Rate,
        now: u64,
        owed_us: u64,
        known: Option<u64>,
    ) -> Result<u64, StoreError> {
        let fut = async {
            let mut seen = known;
            for _ in 0..MAX_ATTEMPTS + 1 {
                let tat = seen.unwrap_or(now).max(now) + owed_us;
                // The item outlives the new TAT (which may be more than a window ahead).
                let expires_at = tat.max(now + rate.tolerance_us()).div_ceil(MICROS_PER_SEC) + TTL_MARGIN_SECS;
                let n = |v: u64| AttributeValue::N(v.to_string());
                let mut req = self
                    .bucket_update(key)
                    .update_expression(SET_UPDATE)
                    .expression_attribute_values(":tat", n(tat))
                    .expression_attribute_values(":exp", n(expires_at));
                req = match seen {
                    Some(old) => req.condition_expression(SWAP_CONDITION).expression_attribute_values(":old", n(old)),
                    None => req.condition_expression(NEW_CONDITION),
                };
                match self.send(req).await? {
                    Attempt::Updated(tat) => return Ok(tat),
                    Attempt::ConditionFailed(stored) => seen = stored,
                }
            }
            Err(StoreError::Contention)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| self.timed_out())?
    }
}

/// The TAT of an item. DynamoDB numbers are decimal strings; ours are whole microseconds.
pub fn read_tat(item: &HashMap<String, AttributeValue>) -> Option<u64> {
    let AttributeValue::N(s) = item.get(TAT)? else { return None };
    s.parse::<u64>().ok().or_else(|| {
        let f: f64 = s.parse().ok()?;
        (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then_some(f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tat_in_any_decimal_form() {
        let item = |v: &str| HashMap::from([(TAT.to_string(), AttributeValue::N(v.into()))]);
        assert_eq!(read_tat(&item("1795000180123456")), Some(1_795_000_180_123_456));
        assert_eq!(read_tat(&item("1.5E3")), Some(1500));
        assert_eq!(read_tat(&item("-5")), None);
        assert_eq!(read_tat(&item("NaN")), None);
        assert_eq!(read_tat(&HashMap::from([(TAT.to_string(), AttributeValue::S("1".into()))])), None);
        assert_eq!(read_tat(&HashMap::new()), None);
    }
}
