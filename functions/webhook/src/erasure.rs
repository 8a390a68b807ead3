//! `user.deleted`: everything of the user goes but the users table's tombstone. The tombstone
//! (written with the delivery record, `users::mark_deleted`) says the erasure is pending; this
//! driver then walks [`stores`] (every store holding per-user items, each finding them by key or
//! index) within a per-invocation budget of deleted items. Unfinished, the delivery answers 503,
//! so Svix delivers it again and the next invocation continues (each store's erasure is
//! stateless and idempotent: what was deleted is not found again); a partial failure is the same
//! case. Finished, the tombstone records it and later deliveries change nothing.
//!
//! A chat instance may still accept the user's requests for the revocation bound after the
//! tombstone (docs/auth.md) and write again: the erasure ends only with a pass that began at
//! least [`ErasureSettings::settle`] after the deletion (waiting for it, when the rest is done).

use baatcheet_shared::config::ConfigError;
use baatcheet_shared::erasure::{Budget, Erased, UserData};
use baatcheet_shared::leases::Leases;
use baatcheet_shared::rate_limit::erase::UserBuckets;
use baatcheet_shared::users::{StoreError, UsersStore};
use baatcheet_shared::{AppContext, auth::USER_CACHE_TTL_SECS};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every store that keeps items per user. A new per-user store is added here (and its table's
/// delete and index query to the webhook's IAM policy in template.yaml).
pub fn stores(ctx: &AppContext) -> Result<Vec<Box<dyn UserData>>, ConfigError> {
    let chat = chat::config::ChatTables::from_config(&ctx.config)?;
    Ok(vec![
        Box::new(chat::store::ConversationStore::new(ctx.dynamo.clone(), chat.conversations)),
        Box::new(UserBuckets::new(ctx.dynamo.clone(), ctx.config.tables.rate_limits.clone(), &chat::limits::ALL)),
        // Open-stream places: only deleted here, so the lease TTL given is never used.
        Box::new(Leases::new(ctx.dynamo.clone(), chat.stream_leases, Duration::from_secs(1))),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureSettings {
    /// `ERASURE_BUDGET_ITEMS` (default 2000): items one invocation deletes at most. About 100
    /// DynamoDB calls: a second or two, well inside the function's timeout and Svix's.
    pub budget_items: usize,
    /// `ERASURE_SETTLE_MS` (default: the revocation bound plus 3 s): how long after the deletion
    /// the last pass must begin.
    pub settle: Duration,
}

impl Default for ErasureSettings {
    fn default() -> Self {
        Self { budget_items: 2000, settle: Duration::from_secs(USER_CACHE_TTL_SECS + 3) }
    }
}

impl ErasureSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or(ConfigError::Invalid { name, reason: format!("'{v}' is not a number from 1 to {max}") }),
            }
        };
        Ok(Self {
            budget_items: num("ERASURE_BUDGET_ITEMS", d.budget_items as u64, 100_000)? as usize,
            settle: Duration::from_millis(num("ERASURE_SETTLE_MS", d.settle.as_millis() as u64, 60_000)?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("users table")]
    Users(#[from] StoreError),
    #[error("erasing the user's {store}")]
    Store {
        store: &'static str,
        #[source]
        source: BoxError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing of the user is left but the tombstone (now, or already before).
    Done,
    /// The budget ran out: a later invocation continues.
    More,
}

pub struct Eraser {
    users: UsersStore,
    stores: Vec<Box<dyn UserData>>,
    settings: ErasureSettings,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Eraser {
    pub fn new(users: UsersStore, stores: Vec<Box<dyn UserData>>, settings: ErasureSettings) -> Self {
        Self { users, stores, settings }
    }

    /// Continues the erasure of a deleted user, if it is pending.
    pub async fn run(&self, clerk_id: &str) -> Result<Progress, ErasureError> {
        let Some(user) = self.users.get(clerk_id).await? else { return Ok(Progress::Done) };
        if !(user.deleted && user.erasure_pending) {
            return Ok(Progress::Done);
        }
        let started = Instant::now();
        let mut budget = Budget::new(self.settings.budget_items);
        let settled_at = user.deleted_at.unwrap_or(0).saturating_add(self.settings.settle.as_millis() as i64);
        let mut pass_began = now_ms();
        if self.pass(&user.user_id, &mut budget).await? == Progress::More {
            self.log(clerk_id, Progress::More, &budget, started);
            return Ok(Progress::More);
        }
        if pass_began < settled_at {
            // Whatever a chat instance wrote inside the revocation bound goes in a last pass.
            tokio::time::sleep(Duration::from_millis((settled_at - now_ms()).max(0) as u64)).await;
            pass_began = now_ms();
            if self.pass(&user.user_id, &mut budget).await? == Progress::More {
                self.log(clerk_id, Progress::More, &budget, started);
                return Ok(Progress::More);
            }
        }
        debug_assert!(pass_began >= settled_at);
        self.users.mark_erased(clerk_id, now_ms()).await?;
        self.log(clerk_id, Progress::Done, &budget, started);
        Ok(Progress::Done)
    }

    /// One walk over every store, until the budget runs out.
    async fn pass(&self, user_id: &str, budget: &mut Budget) -> Result<Progress, ErasureError> {
        for store in &self.stores {
            let erased = store
                .erase(user_id, budget)
                .await
                .map_err(|source| ErasureError::Store { store: store.name(), source })?;
            if erased == Erased::More {
                return Ok(Progress::More);
            }
        }
        Ok(Progress::Done)
    }

    fn log(&self, clerk_id: &str, progress: Progress, budget: &Budget, started: Instant) {
        let deleted = self.settings.budget_items - budget.left();
        // A hash, never the Clerk id: the id is personal data and must not outlive the erasure in logs.
        tracing::info!(user_hash = %baatcheet_shared::request_id::user_hash(clerk_id), progress = ?progress, items_deleted = deleted, ms = started.elapsed().as_millis() as u64, "user erasure");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_bounds() {
        let none = ErasureSettings::from_lookup(|_| None).unwrap();
        assert_eq!(none, ErasureSettings::default());
        assert_eq!(none.settle, Duration::from_secs(USER_CACHE_TTL_SECS + 3));
        let set = ErasureSettings::from_lookup(|k| match k {
            "ERASURE_BUDGET_ITEMS" => Some("300".into()),
            "ERASURE_SETTLE_MS" => Some("250".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.budget_items, set.settle), (300, Duration::from_millis(250)));
        for bad in ["0", "-1", "lots", "100001"] {
            assert!(
                ErasureSettings::from_lookup(|k| (k == "ERASURE_BUDGET_ITEMS").then(|| bad.into())).is_err(),
                "{bad}"
            );
        }
    }
}
