//! Counted leases in DynamoDB: at most `cap` held at once per owner, exact across every instance.
//!
//! A function hands in its table and decides what an owner is and what the cap is (e.g. chat: open
//! completion streams per user by tier). Items: partition key `pk` = the owner, sort key `sk` =
//! `slot#<n>` for n < cap, with the holder's lease id and an expiry (`expires_ms`; `expires_at` in
//! seconds is the table's TTL attribute, which only tidies up).
//!
//! - **Acquire**: one consistent Query of the owner's slots; if fewer than `cap` are live, a
//!   conditional PutItem takes a free slot (absent, or expired: `expires_ms < now`). Two instances
//!   racing for one slot: one write wins, the other reads again. At `cap` live slots: refused, with
//!   the time until the first one expires.
//! - **Heartbeat**: while held, the holder extends its expiry every third of the TTL (a PutItem
//!   conditioned on its lease id), so a live holder is never reclaimed however long it runs.
//! - **Release**: DeleteItem conditioned on the lease id, when the holder ends
//!   ([`Lease::release`]) or is dropped (then from a spawned task).
//! - **Reclaim**: a holder that dies (its process killed) stops extending; its slot counts as free
//!   once `expires_ms` passes.
//! - **Erasure**: an owner's items are found by partition key ([`UserData`]).

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::erasure::{BoxError, Budget, EraseFuture, Erased, UserData};

const SLOT: &str = "slot#";
/// Attempts at a slot when other instances keep taking the one picked.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// `cap` leases are held; the first one expires (unless extended or released) in this long.
    #[error("all {cap} leases are held")]
    Full { cap: u32, retry_after: Duration },
    #[error("lease store: {0}")]
    Store(#[source] BoxError),
}

fn store_error(e: impl Into<BoxError>) -> LeaseError {
    LeaseError::Store(e.into())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The leases of one table, with one TTL.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("table", &self.inner.table).field("ttl", &self.inner.ttl).finish()
    }
}

impl Leases {
    /// `ttl`: how long a lease outlives its holder's last heartbeat (at least 1 s).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        let ttl = ttl.max(Duration::from_secs(1));
        Self { inner: Arc::new(Inner { client, table: table.into(), ttl }) }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Takes one of `owner`'s `cap` leases.
    pub async fn acquire(&self, owner: &str, cap: u32) -> Result<Lease, LeaseError> {
        let mut earliest = self.inner.ttl;
        for _ in 0..ATTEMPTS {
            let now = now_ms();
            let live = self.live_slots(owner, now).await?;
            if live.len() >= cap as usize {
                let first = live.values().min().map_or(0, |e| e.saturating_sub(now));
                return Err(LeaseError::Full { cap, retry_after: Duration::from_millis(first) });
            }
            let Some(slot) = (0..cap).find(|n| !live.contains_key(n)) else { break };
            let id = uuid::Uuid::new_v4().to_string();
            match self.put(owner, slot, &id, now, None).await {
                Ok(()) => return Ok(Lease::new(self.clone(), owner, slot, id)),
                Err(Put::Taken) => {
                    earliest = earliest.min(Duration::from_millis(1000));
                    continue;
                }
                Err(Put::Failed(e)) => return Err(e),
            }
        }
        Err(LeaseError::Full { cap, retry_after: earliest })
    }

    /// The owner's live slots and when each expires (ms since the epoch).
    async fn live_slots(&self, owner: &str, now: u64) -> Result<HashMap<u32, u64>, LeaseError> {
        let mut live = HashMap::new();
        for item in self.items(owner).await? {
            let expires = item.get("expires_ms").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
            if let (Some(slot), Some(expires)) = (slot_of(&item), expires)
                && expires > now
            {
                live.insert(slot, expires);
            }
        }
        Ok(live)
    }

    /// Every lease item of `owner` (one consistent Query, page by page).
    async fn items(&self, owner: &str) -> Result<Vec<HashMap<String, AttributeValue>>, LeaseError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .inner
                .client
                .query()
                .table_name(&self.inner.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(":pk", AttributeValue::S(owner.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            all.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(all),
            }
        }
    }

    /// Writes `owner`'s `slot` for lease `id`, expiring a TTL from `now`: a new lease (the slot
    /// absent or expired) or, with `held`, an extension of the holder's own.
    async fn put(&self, owner: &str, slot: u32, id: &str, now: u64, held: Option<()>) -> Result<(), Put> {
        let expires = now + self.inner.ttl.as_millis() as u64;
        let mut req = self
            .inner
            .client
            .put_item()
            .table_name(&self.inner.table)
            .item("pk", AttributeValue::S(owner.to_string()))
            .item("sk", AttributeValue::S(format!("{SLOT}{slot}")))
            .item("lease", AttributeValue::S(id.to_string()))
            .item("expires_ms", AttributeValue::N(expires.to_string()))
            .item("expires_at", AttributeValue::N((expires / 1000 + 1).to_string()));
        req = match held {
            None => req
                .condition_expression("attribute_not_exists(#pk) OR #exp < :now")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#exp", "expires_ms")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string())),
            Some(()) => req
                .condition_expression("#lease = :id")
                .expression_attribute_names("#lease", "lease")
                .expression_attribute_values(":id", AttributeValue::S(id.to_string())),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(Put::Taken)
            }
            Err(e) => Err(Put::Failed(store_error(e))),
        }
    }

    async fn delete(&self, owner: &str, slot: u32, id: &str) -> Result<(), LeaseError> {
        let res = self
            .inner
            .client
            .delete_item()
            .table_name(&self.inner.table)
            .key("pk", AttributeValue::S(owner.to_string()))
            .key("sk", AttributeValue::S(format!("{SLOT}{slot}")))
            .condition_expression("#lease = :id")
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Reclaimed meanwhile (and maybe taken by another holder): not ours to delete.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Deletes every lease item of `owner`, held or not (erasure). Returns how many.
    pub async fn delete_all(&self, owner: &str) -> Result<usize, LeaseError> {
        let slots: Vec<u32> = self.items(owner).await?.iter().filter_map(slot_of).collect();
        for chunk in slots.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|slot| {
                    DeleteRequest::builder()
                        .key("pk", AttributeValue::S(owner.to_string()))
                        .key("sk", AttributeValue::S(format!("{SLOT}{slot}")))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error)?;
            for attempt in 0..5u32 {
                let out = self
                    .inner
                    .client
                    .batch_write_item()
                    .request_items(&self.inner.table, requests)
                    .send()
                    .await
                    .map_err(store_error)?;
                requests = out.unprocessed_items().and_then(|m| m.get(&self.inner.table)).cloned().unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(store_error("lease items left unprocessed after retries"));
            }
        }
        Ok(slots.len())
    }
}

/// The slot number of a lease item (`sk` = `slot#<n>`).
fn slot_of(item: &HashMap<String, AttributeValue>) -> Option<u32> {
    item.get("sk").and_then(|v| v.as_s().ok()).and_then(|s| s.strip_prefix(SLOT)?.parse().ok())
}

enum Put {
    /// The condition failed: the slot is another holder's (or, for an extension, no longer ours).
    Taken,
    Failed(LeaseError),
}

impl UserData for Leases {
    fn name(&self) -> &'static str {
        "leases"
    }

    fn erase<'a>(&'a self, user_id: &'a str, budget: &'a mut Budget) -> EraseFuture<'a> {
        Box::pin(async move {
            let n = self.delete_all(user_id).await.map_err(|e| Box::new(e) as BoxError)?;
            budget.spend(n);
            Ok(Erased::Done)
        })
    }
}

/// A held lease: extended in the background while held, released by [`Lease::release`] or when
/// dropped.
pub struct Lease {
    held: Option<Held>,
}

struct Held {
    leases: Leases,
    owner: String,
    slot: u32,
    id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("slot", &self.held.as_ref().map(|h| h.slot)).finish()
    }
}

impl Lease {
    fn new(leases: Leases, owner: &str, slot: u32, id: String) -> Self {
        let heartbeat = {
            let (leases, owner, id) = (leases.clone(), owner.to_string(), id.clone());
            tokio::spawn(crate::xray::propagate(async move {
                let every = leases.ttl() / 3;
                loop {
                    tokio::time::sleep(every).await;
                    match leases.put(&owner, slot, &id, now_ms(), Some(())).await {
                        Ok(()) => {}
                        Err(Put::Taken) => {
                            // Not extended in time (a stalled instance): the slot was reclaimed.
                            tracing::warn!(slot, "a held lease was reclaimed; no longer extended");
                            return;
                        }
                        // Tried again at the next beat; the TTL leaves two more.
                        Err(Put::Failed(e)) => tracing::warn!(error = %e, "lease heartbeat failed"),
                    }
                }
            }))
        };
        Self { held: Some(Held { leases, owner: owner.to_string(), slot, id, heartbeat }) }
    }

    /// Ends the lease now (the holder is done), waiting for the delete.
    pub async fn release(mut self) {
        if let Some(h) = self.held.take() {
            h.release().await;
        }
    }
}

impl Held {
    async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self.leases.delete(&self.owner, self.slot, &self.id).await {
            // The lease lapses at its expiry instead.
            tracing::warn!(error = %e, "lease release failed; it expires within its TTL");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            h.heartbeat.abort();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(crate::xray::propagate(h.release()));
            }
        }
    }
}
