//! One log line per request: request id, caller, model asked, Bedrock model, status, latency
//! and token counts. Never a token, never prompt or completion text.
//!
//! A stream outlives its handler, so the record is shared (`Arc`) between the middleware, the
//! handler and the stream, and the line is written when the last of them lets go.

use std::sync::{Arc, Mutex, OnceLock};

use crate::sync::IgnorePoison;
use crate::usage::budgets::{Account, Budgets};
use crate::usage::metrics::{add_emf, RequestMetrics};
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
    /// Claude Code's `x-claude-code-session-id` and agent id, so spend traces to a session.
    session_id: Option<String>,
    agent_id: Option<String>,
    model: Option<String>,
    bedrock_model: Option<String>,
    stream: bool,
    usage: Option<Usage>,
    outcome: Option<&'static str>,
    error: Option<String>,
    healed: Option<String>,
    error_type: Option<&'static str>,
    throttles: u64,
    fallbacks: u64,
    first_token: Option<Instant>,
    /// Where the answer's tokens are charged once it is done.
    charge: Option<(Arc<Budgets>, Vec<Account>)>,
}

/// Inside Lambda, the CloudWatch namespace of the request lines' metrics (EMF); unset
/// locally, where the lines stay text.
static METRICS_NAMESPACE: OnceLock<String> = OnceLock::new();

/// Makes every request line also a CloudWatch EMF record in `namespace` (Lambda only).
pub fn emit_metrics(namespace: &str) {
    let _ = METRICS_NAMESPACE.set(namespace.to_string());
}

struct Inner {
    started: Instant,
    record: Mutex<Record>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let r = self.record.get_mut().ignore_poison();
        let usage = r.usage.unwrap_or_default();
        if let Some((budgets, accounts)) = r.charge.take() {
            let tokens = usage.input + usage.output + usage.cache_read + usage.cache_write;
            if tokens > 0 {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        for account in &accounts {
                            budgets.record_account(account, tokens).await;
                        }
                    });
                }
            }
        }
        if let Some(namespace) = METRICS_NAMESPACE.get() {
            emf_line(r, &usage, self.started, namespace);
            return;
        }
        tracing::info!(
            request_id = %r.request_id,
            method = %r.method,
            path = %r.path,
            status = r.status,
            caller = r.caller.as_deref().unwrap_or("-"),
            session_id = r.session_id.as_deref().unwrap_or("-"),
            agent_id = r.agent_id.as_deref().unwrap_or("-"),
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

/// The request line as one JSON object that is also an EMF record, written straight to stdout
/// (CloudWatch Logs reads the function's stdout; EMF needs its keys at the top level, which the
/// tracing JSON layer nests under `fields`).
fn emf_line(r: &Record, usage: &Usage, started: Instant, namespace: &str) {
    use std::io::Write;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut fields = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        fields.insert(k.to_string(), v);
    };
    put("level", "INFO".into());
    put("message", "request".into());
    put("request_id", r.request_id.as_str().into());
    put("method", r.method.as_str().into());
    put("path", r.path.as_str().into());
    put("status", r.status.into());
    put("caller", r.caller.as_deref().unwrap_or("-").into());
    put("session_id", r.session_id.as_deref().unwrap_or("-").into());
    put("agent_id", r.agent_id.as_deref().unwrap_or("-").into());
    // The metrics' `model` dimension is the Bedrock ID; the name asked for stays beside it.
    put("model", r.bedrock_model.as_deref().unwrap_or("-").into());
    put("bedrock_model", r.bedrock_model.as_deref().unwrap_or("-").into());
    put("requested_model", r.model.as_deref().unwrap_or("-").into());
    put("stream", r.stream.into());
    put("outcome", r.outcome.unwrap_or("ok").into());
    put("error", r.error.as_deref().unwrap_or("-").into());
    put("healed", r.healed.as_deref().unwrap_or("-").into());
    put("latency_ms", duration_ms.into());
    // The same token fields as the text line, so one query reads both.
    put("input_tokens", usage.input.into());
    put("output_tokens", usage.output.into());
    put("cache_read_input_tokens", usage.cache_read.into());
    put("cache_creation_input_tokens", usage.cache_write.into());
    let metrics = RequestMetrics {
        input_tokens: usage.input,
        output_tokens: usage.output,
        cache_read_input_tokens: usage.cache_read,
        cache_write_input_tokens: usage.cache_write,
        time_to_first_token_ms: r.first_token.map(|t| t.duration_since(started).as_secs_f64() * 1000.0),
        duration_ms,
        error_type: r.error_type.map(str::to_string),
        throttles: r.throttles,
        fallbacks: r.fallbacks,
        healed: r.healed.is_some(),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    add_emf(&mut fields, namespace, now_ms, &metrics);
    let mut line = serde_json::Value::Object(fields).to_string();
    line.push('\n');
    // One write per line, so that lines of concurrent requests never interleave.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// A handle on one request's log record; clones share it.
#[derive(Clone)]
pub struct RequestLog(Arc<Inner>);

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog")
    }
}

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
        let mut guard = self.0.record.lock().ignore_poison();
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

    /// Records the client's session and agent ids (Claude Code's `x-claude-code-session-id`
    /// and `x-claude-code-agent-id`). They are the caller's text, so only short, plain ids are
    /// kept: a log line must not carry whatever a header holds.
    pub fn session(&self, session_id: Option<&str>, agent_id: Option<&str>) {
        let plain = |v: Option<&str>| {
            v.filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            })
            .map(str::to_string)
        };
        let (session_id, agent_id) = (plain(session_id), plain(agent_id));
        self.update(|r| {
            r.session_id = session_id;
            r.agent_id = agent_id;
        });
    }

    /// Records the model asked for and the Bedrock ID it became.
    pub fn model(&self, asked: &str, bedrock: &str, stream: bool) {
        self.update(|r| {
            r.model = Some(asked.to_string());
            r.bedrock_model = Some(bedrock.to_string());
            r.stream = stream;
        });
    }

    /// Counts an upstream attempt refused for throttling.
    pub fn throttled(&self) {
        self.update(|r| r.throttles += 1);
    }

    /// Counts a move to the next `MODEL_FALLBACKS` target.
    pub fn fell_back(&self) {
        self.update(|r| r.fallbacks += 1);
    }

    /// Marks the first token sent to the caller (the first time only).
    pub fn first_token(&self) {
        self.update(|r| {
            r.first_token.get_or_insert_with(Instant::now);
        });
    }

    /// Records the Anthropic `error.type` the caller got.
    pub fn error_type(&self, kind: &'static str) {
        self.update(|r| r.error_type = Some(kind));
    }

    /// Charges the answer's tokens to these accounts (the caller's, its groups' pools) when
    /// the request is done.
    pub fn charge_to(&self, budgets: Arc<Budgets>, accounts: Vec<Account>) {
        self.update(|r| r.charge = Some((budgets, accounts)));
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
