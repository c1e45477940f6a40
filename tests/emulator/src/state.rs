//! What the emulator remembers between requests: the request log, `fail_first`
//! counters, and the stream statistics tests read to see a cancelled stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};

use crate::ids;

/// How many requests `GET /_emulator/requests` keeps.
pub const LOG_CAPACITY: usize = 200;

/// Shared by every handler and every live stream body.
#[derive(Debug, Default)]
pub struct State {
    log: Mutex<VecDeque<Value>>,
    fail_first: Mutex<HashMap<String, u32>>,
    requests: AtomicU64,
    open_streams: AtomicU64,
    streams_cancelled: AtomicU64,
    /// Epoch milliseconds of the latest cancel; 0 means none since the last clear.
    last_cancel_unix_ms: AtomicU64,
}

/// A poisoned lock only means another handler panicked mid-update; the log is still
/// usable for tests, so keep serving instead of cascading the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Counts a Bedrock request as it arrives.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends one request to the log, dropping the oldest beyond [`LOG_CAPACITY`].
    pub fn record(&self, entry: Value) {
        let mut log = lock(&self.log);
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// The logged requests, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Counts one more request for `key`; true while it is among the first `count`.
    pub fn fail_first(&self, key: &str, count: u32) -> bool {
        let mut seen = lock(&self.fail_first);
        let seen = seen.entry(key.to_owned()).or_insert(0);
        *seen = seen.saturating_add(1);
        *seen <= count
    }

    /// Forgets logged requests, `fail_first` counters and the request/cancel counts.
    /// Open streams stay counted: they are still open.
    pub fn clear(&self) {
        lock(&self.log).clear();
        lock(&self.fail_first).clear();
        self.requests.store(0, Ordering::Relaxed);
        self.streams_cancelled.store(0, Ordering::Relaxed);
        self.last_cancel_unix_ms.store(0, Ordering::Relaxed);
    }

    /// The body of `GET /_emulator/stats`.
    pub fn stats(&self) -> Value {
        let last_cancel = self.last_cancel_unix_ms.load(Ordering::Relaxed);
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "open_streams": self.open_streams.load(Ordering::Relaxed),
            "streams_cancelled": self.streams_cancelled.load(Ordering::Relaxed),
            "last_cancel_unix_ms": if last_cancel == 0 { Value::Null } else { json!(last_cancel) },
        })
    }
}

/// Owned by a streaming response body. Hyper drops the body when the connection
/// closes, so a guard dropped before [`StreamGuard::finish`] is a client that left.
#[derive(Debug)]
pub struct StreamGuard {
    state: Arc<State>,
    finished: bool,
}

impl StreamGuard {
    /// Counts a newly opened stream.
    pub fn open(state: Arc<State>) -> Self {
        state.open_streams.fetch_add(1, Ordering::Relaxed);
        Self { state, finished: false }
    }

    /// The emulator wrote everything it meant to (or cut the stream on purpose).
    pub fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.streams_cancelled.fetch_add(1, Ordering::Relaxed);
            self.state
                .last_cancel_unix_ms
                .store(ids::unix_millis(), Ordering::Relaxed);
        }
        self.state.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_first_counts_per_key() {
        let state = State::default();
        assert!(state.fail_first("a", 2));
        assert!(state.fail_first("a", 2));
        assert!(!state.fail_first("a", 2));
        assert!(state.fail_first("b", 1));
        state.clear();
        assert!(state.fail_first("a", 1));
    }

    #[test]
    fn a_dropped_unfinished_stream_counts_as_cancelled() {
        let state = Arc::new(State::default());
        let mut finished = StreamGuard::open(state.clone());
        let abandoned = StreamGuard::open(state.clone());
        assert_eq!(state.stats()["open_streams"], 2);
        finished.finish();
        drop(finished);
        drop(abandoned);
        let stats = state.stats();
        assert_eq!(stats["open_streams"], 0);
        assert_eq!(stats["streams_cancelled"], 1);
        assert!(stats["last_cancel_unix_ms"].is_u64());
    }

    #[test]
    fn the_log_keeps_the_latest_requests() {
        let state = State::default();
        for n in 0..LOG_CAPACITY + 5 {
            state.record(json!(n));
        }
        let log = state.requests();
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log[0], json!(5));
    }
}
