//! One log line per request: request id, caller, model asked, Bedrock model, status, latency
//! and token counts. Never a token, never prompt or completion text.
//!
//! A stream outlives its handler, so the record is shared (`Arc`) between the middleware, the
//! handler and the stream, and the line is written when the last of them lets go.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Token counts reported by Bedrock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
}

impl Usage {
    /// Reads Anthropic's `usage` object (`input_tokens`, `output_tokens`, cache counts).
    pub fn from_anthropic(usage: &serde_json::Value) -> Self {
        let n = |k: &str| usage.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Self {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_write: n("cache_creation_input_tokens"),
        }
    }

    /// Reads Bedrock's `amazon-bedrock-invocationMetrics` object.
    pub fn from_bedrock_metrics(metrics: &serde_json::Value) -> Self {
        let n = |k: &str| metrics.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Self {
            input: n("inputTokenCount"),
            output: n("outputTokenCount"),
            cache_read: n("cacheReadInputTokenCount"),
            cache_write: n("cacheWriteInputTokenCount"),
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    request_id: String,
    method: String,
    path: String,
    status: u16,
    caller: Option<String>,
    model: Option<String>,
    bedrock_model: Option<String>,
    stream: bool,
    usage: Option<Usage>,
    outcome: Option<&'static str>,
    error: Option<String>,
    healed: Option<String>,
}

struct Inner {
    started: Instant,
    record: Mutex<Record>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let r = self.record.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let usage = r.usage.unwrap_or_default();
        tracing::info!(
            request_id = %r.request_id,
            method = %r.method,
            path = %r.path,
            status = r.status,
            caller = r.caller.as_deref().unwrap_or("-"),
            model = r.model.as_deref().unwrap_or("-"),
            bedrock_model = r.bedrock_model.as_deref().unwrap_or("-"),
            stream = r.stream,
            outcome = r.outcome.unwrap_or("ok"),
            error = r.error.as_deref().unwrap_or("-"),
            healed = r.healed.as_deref().unwrap_or("-"),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            input_tokens = usage.input,
            output_tokens = usage.output,
            cache_read_input_tokens = usage.cache_read,
            cache_creation_input_tokens = usage.cache_write,
            "request"
        );
    }
}

/// A handle on one request's log record; clones share it.
#[derive(Clone)]
pub struct RequestLog(Arc<Inner>);

impl RequestLog {
    /// Starts the record for a request.
    pub fn new(request_id: &str, method: &str, path: &str) -> Self {
        Self(Arc::new(Inner {
            started: Instant::now(),
            record: Mutex::new(Record {
                request_id: request_id.to_string(),
                method: method.to_string(),
                path: path.to_string(),
                ..Record::default()
            }),
        }))
    }

    fn update(&self, f: impl FnOnce(&mut Record)) {
        let mut guard = self.0.record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    /// Records the response status.
    pub fn status(&self, status: u16) {
        self.update(|r| r.status = status);
    }

    /// Records the authenticated caller's name.
    pub fn caller(&self, name: &str) {
        self.update(|r| r.caller = Some(name.to_string()));
    }

    /// Records the model asked for and the Bedrock ID it became.
    pub fn model(&self, asked: &str, bedrock: &str, stream: bool) {
        self.update(|r| {
            r.model = Some(asked.to_string());
            r.bedrock_model = Some(bedrock.to_string());
            r.stream = stream;
        });
    }

    /// Records token counts.
    pub fn usage(&self, usage: Usage) {
        self.update(|r| r.usage = Some(usage));
    }

    /// Records that Bedrock refused the first attempt and which field or flag was taken out
    /// for the retry (a name, never a value).
    pub fn healed(&self, what: &str) {
        self.update(|r| r.healed = Some(what.to_string()));
    }

    /// Records how a request ended when not normally: `rejected` (4xx), `error` (5xx), or more
    /// precisely `timeout`, `deadline` (the Lambda deadline came near), `connection_failed`
    /// (Bedrock could not be reached or its connection broke), `empty_stream`; for a stream
    /// that had begun, `client_gone`, `stream_error` or `deadline`.
    pub fn outcome(&self, outcome: &'static str) {
        self.update(|r| r.outcome = Some(outcome));
    }

    /// Records what went wrong, in full (e.g. the AWS SDK's error chain behind the one sentence
    /// the caller got). Never a token or prompt text: only errors from our side or AWS's.
    pub fn error(&self, detail: String) {
        self.update(|r| r.error = Some(detail));
    }
}
