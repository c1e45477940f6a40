//! Log capture for tests: the JSON lines (the Lambda format) logged on the test's thread.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

/// The request-log lines and everything else logged on this thread, as JSON. Capture in a
/// current-thread test (`#[tokio::test]`), so that spawned tasks, such as the response body
/// of a stream, log here too.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

/// Held while a capture runs, so that concurrent captures never see each other's lines.
static ONE_CAPTURE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The process-wide default while tests run: it asks to be consulted for every callsite and
/// enables nothing.
///
/// tracing caches each callsite's interest process-wide, computed when the callsite is first
/// hit. A test thread with no subscriber that hits a callsite first (say the request line)
/// while another thread is still installing its capture caches "never", and the capturing
/// test then sees no lines at all. With this default in place every interest is at least
/// "sometimes", so each event asks the thread's own subscriber.
struct AskEveryTime;

impl tracing::Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs [`AskEveryTime`] once per test binary; every harness calls it before any request.
pub fn ask_every_time() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if something else set a global default first, which is as good.
        let _ = tracing::subscriber::set_global_default(AskEveryTime);
    });
}

/// Ends the capture when dropped (the subscriber first, then the lock).
pub struct Capture {
    _subscriber: tracing::subscriber::DefaultGuard,
    _turn: MutexGuard<'static, ()>,
}

impl std::io::Write for Logs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures everything at info and above until the guard drops.
    pub fn capture(&self) -> Capture {
        self.capture_at("info")
    }

    /// Captures everything, at every level, until the guard drops.
    pub fn capture_all(&self) -> Capture {
        self.capture_at("trace")
    }

    fn capture_at(&self, level: &str) -> Capture {
        ask_every_time();
        let turn = ONE_CAPTURE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(move || logs.clone())
            .finish();
        Capture {
            _subscriber: tracing::subscriber::set_default(subscriber),
            _turn: turn,
        }
    }

    /// Everything captured, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Every captured line that is JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The per-request lines (`message == "request"`).
    pub fn requests(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["message"] == "request").collect()
    }

    /// The one log line of the request whose response carried `request_id`.
    pub fn request_line(&self, request_id: &str) -> Value {
        self.requests()
            .into_iter()
            .find(|l| l["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no log line for {request_id}: {:?}", self.text()))
    }
}
