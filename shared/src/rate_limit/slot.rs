//! One decision waiting for a store call that runs in a task of its own (a key's lane, or a
//! joint transaction), and what happens when it stops waiting.
//!
//! The call is never cancelled because its caller stopped waiting: when it answers late, the
//! answer still updates what the instance knows, and if the caller had meanwhile been decided by
//! its fallback, [`Slot::deliver`] says so, so that a request admitted twice (once by the store,
//! once by the fallback) is written back once.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::store::DynamoStore;

/// Why a decision stopped waiting for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Nothing at all answered for the store timeout: the store is down.
    Down,
    /// The store answers, but this decision's own call did not within the contended wait.
    Slow,
}

enum State<T> {
    Waiting,
    Done(T),
    /// The caller was decided without it; per bucket of the call, whether that admitted.
    Abandoned([bool; 2]),
}

pub struct Slot<T> {
    pub started: Instant,
    state: Mutex<State<T>>,
    notify: Notify,
}

impl<T: Copy> Default for Slot<T> {
    fn default() -> Self {
        Self { started: Instant::now(), state: Mutex::new(State::Waiting), notify: Notify::new() }
    }
}

impl<T: Copy> Slot<T> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Still waiting for an answer (neither answered nor given up).
    pub fn is_waiting(&self) -> bool {
        matches!(*self.state(), State::Waiting)
    }

    /// Hands the answer over. `Some(admitted)` if the caller had given up, with what its
    /// fallback admitted.
    pub fn deliver(&self, value: T) -> Option<[bool; 2]> {
        let mut state = self.state();
        match *state {
            State::Waiting => {
                *state = State::Done(value);
                drop(state);
                self.notify.notify_one();
                None
            }
            State::Abandoned(admitted) => Some(admitted),
            State::Done(_) => None,
        }
    }

    /// Waits for the answer: until it comes, or until nothing at all has answered `store` for
    /// `down_after` since this decision began ([`GiveUp::Down`]), or `give_up_after` in all
    /// ([`GiveUp::Slow`]).
    pub async fn wait(&self, store: &DynamoStore, down_after: Duration, give_up_after: Duration) -> Result<T, GiveUp> {
        let down_at = self.started + down_after;
        let give_up_at = self.started + give_up_after.max(down_after);
        loop {
            let notified = self.notify.notified();
            if let State::Done(v) = *self.state() {
                return Ok(v);
            }
            let now = Instant::now();
            if now >= down_at && !store.answered_since(self.started) {
                return Err(GiveUp::Down);
            }
            if now >= give_up_at {
                return Err(GiveUp::Slow);
            }
            let next = if now < down_at { down_at } else { give_up_at };
            let _ = tokio::time::timeout_at(next.into(), notified).await;
        }
    }

    /// Stops waiting: `fallback` decides (holding the slot, so a late answer sees its result),
    /// unless the answer came in the meantime (`Ok`).
    pub fn abandon<R>(&self, fallback: impl FnOnce() -> (R, [bool; 2])) -> Result<T, R> {
        let mut state = self.state();
        if let State::Done(v) = *state {
            return Ok(v);
        }
        let (decided, admitted) = fallback();
        *state = State::Abandoned(admitted);
        Err(decided)
    }
}
