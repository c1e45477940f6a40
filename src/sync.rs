//! The crate's one rule for poisoned locks: use the value anyway.

use std::sync::{LockResult, PoisonError};

/// Takes the guard (or `&mut`) out of a lock result, poisoned or not.
///
/// Every lock here guards a cache, a token set or a log record whose updates are whole
/// assignments or inserts, so a thread that panicked while holding one cannot have left it
/// half-written. Refusing a poisoned lock would turn one panicked request into failures for
/// every later one.
pub(crate) trait IgnorePoison<G> {
    /// The guard, whether or not another thread panicked while holding the lock.
    fn ignore_poison(self) -> G;
}

impl<G> IgnorePoison<G> for LockResult<G> {
    fn ignore_poison(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}
