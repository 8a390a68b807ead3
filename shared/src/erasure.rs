//! Erasure of a deleted user's data, store by store. Each module that keeps per-user items
//! implements [`UserData`] (find the user's items by key or index, delete them, within a budget);
//! the erasure driver (the webhook's `user.deleted`) walks one list of them until every store
//! reports [`Erased::Done`]. A store's erasure must be idempotent and restartable: it is called
//! again after a partial failure, a spent budget or a re-delivery, and must then finish what is
//! left without any state of its own (deleted items are simply no longer found).

use std::future::Future;
use std::pin::Pin;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one store's erasure call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// Nothing of the user is left in this store.
    Done,
    /// The budget ran out first; call again (a later invocation) to continue.
    More,
}

/// Items one invocation may still delete, shared by every store of one erasure run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    left: usize,
}

impl Budget {
    pub fn new(items: usize) -> Self {
        Self { left: items }
    }

    /// Items still allowed.
    pub fn left(&self) -> usize {
        self.left
    }

    pub fn is_spent(&self) -> bool {
        self.left == 0
    }

    /// Counts `n` deleted items.
    pub fn spend(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n);
    }
}

pub type EraseFuture<'a> = Pin<Box<dyn Future<Output = Result<Erased, BoxError>> + Send + 'a>>;

/// A store holding per-user items.
pub trait UserData: Send + Sync {
    /// For logs: which store (never the user's data).
    fn name(&self) -> &'static str;

    /// Deletes `user_id`'s items, at most `budget.left()` of them (spending what it deletes).
    fn erase<'a>(&'a self, user_id: &'a str, budget: &'a mut Budget) -> EraseFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_spent_and_never_below_zero() {
        let mut b = Budget::new(3);
        b.spend(2);
        assert_eq!((b.left(), b.is_spent()), (1, false));
        b.spend(5);
        assert_eq!((b.left(), b.is_spent()), (0, true));
    }
}
