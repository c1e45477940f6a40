//! One log line per request: request id, caller, model asked, Bedrock model, status, latency,
//! token counts and cost. Never a token, never prompt or completion text.
//!
//! A stream outlives its handler, so the record is shared (`Arc`) between the middleware, the
//! handler and the stream, and the line is written when the last of them lets go.

use std::sync::{Arc, Mutex, OnceLock};

use crate::sync::IgnorePoison;
use crate::usage::budgets::Spend;
use crate::usage::charge::Charge;
use crate::usage::cost::{cost_usd, Usd};
use crate::usage::metrics::{add_emf, Dimensions, RequestMetrics};
use crate::usage::prices::PriceTable;
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
    /// Of those, the tokens written to the 1-hour cache, when the answer says
    /// (`usage.cache_creation.ephemeral_1h_input_tokens`).
    pub cache_write_1h: Option<u64>,
}

impl Usage {
    /// Every token, cache included: what token budgets count.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Reads Anthropic's `usage` object (`input_tokens`, `output_tokens`, cache counts).
    pub fn from_anthropic(usage: &serde_json::Value) -> Self {
        let n = |k: &str| usage.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Self {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_write: n("cache_creation_input_tokens"),
            cache_write_1h: usage
                .get("cache_creation")
                .and_then(|c| c.get("ephemeral_1h_input_tokens"))
                .and_then(serde_json::Value::as_u64),
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
            cache_write_1h: None,
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
    /// True when the usage is the proxy's estimate of a stream that ended early, not counts
    /// Bedrock reported.
    usage_estimated: bool,
    /// Set for Messages requests: the prices their cost is computed at.
    prices: Option<Arc<PriceTable>>,
    /// The request marked a block `"ttl": "1h"` (prices cache writes of unknown split).
    asked_1h_cache: bool,
    /// The caller's group, a metrics dimension.
    group: Option<String>,
    /// The caller's name may be a metrics dimension (a static token's: a bounded set).
    caller_is_dimension: bool,
    /// Where the answer's spend is charged once it is done.
    charge: Option<Charge>,
}

impl Record {
    /// The request's cost in dollars: `Some(0.0)` for requests that are not billed (no
    /// Messages call), `None` for a model with no price.
    fn cost(&self) -> Option<f64> {
        let Some(prices) = &self.prices else {
            return Some(0.0);
        };
        let (Some(asked), Some(bedrock)) = (&self.model, &self.bedrock_model) else {
            return Some(0.0);
        };
        let usage = self.usage.unwrap_or_default();
        if usage == Usage::default() {
            return Some(0.0);
        }
        let price = prices.lookup(asked, bedrock)?;
        Some(cost_usd(&price, &usage, self.asked_1h_cache))
    }
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
        if let Some(charge) = r.charge.take() {
            // Every path that ends a request settles its charge before this; one left here is
            // a bug, and is still written rather than lost.
            let spend = spend_of(r);
            tracing::warn!("a request's charge was settled only when its log line was written");
            crate::usage::charge::settle_later(charge, spend);
        }
        let cost = r.cost();
        if let Some(namespace) = METRICS_NAMESPACE.get() {
            emf_line(r, &usage, cost, self.started, namespace);
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
            usage_estimated = r.usage_estimated,
            cost_usd = cost.unwrap_or(f64::NAN),
            priced = cost.is_some(),
            "request"
        );
    }
}

/// The request line as one JSON object that is also an EMF record, written straight to stdout
/// (CloudWatch Logs reads the function's stdout; EMF needs its keys at the top level, which the
/// tracing JSON layer nests under `fields`).
fn emf_line(r: &Record, usage: &Usage, cost: Option<f64>, started: Instant, namespace: &str) {
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
    // The metrics' `model` dimension is the Bedrock ID of a known model (else "other": any
    // string a caller sends must not become a metric); the name asked for stays beside it.
    put(
        "model",
        crate::usage::metrics::model_dimension(r.bedrock_model.as_deref()).into(),
    );
    put("group", r.group.as_deref().unwrap_or("-").into());
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
    put("usage_estimated", r.usage_estimated.into());
    // null for a model with no price: unknown, never guessed.
    put(
        "cost_usd",
        cost.map_or(serde_json::Value::Null, serde_json::Value::from),
    );
    put("priced", cost.is_some().into());
    let metrics = RequestMetrics {
        cost_usd: cost.unwrap_or(0.0),
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
    let dimensions = Dimensions {
        caller: r.caller_is_dimension,
    };
    add_emf(&mut fields, namespace, now_ms, &metrics, dimensions);
    let mut line = serde_json::Value::Object(fields).to_string();
    line.push('\n');
    // One write per line, so that lines of concurrent requests never interleave.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

fn spend_of(r: &Record) -> Spend {
    Spend {
        tokens: r.usage.unwrap_or_default().total(),
        usd: Usd::from_dollars_ceil(r.cost().unwrap_or(0.0)),
    }
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

    /// Marks a Messages request, whose cost is computed at `prices`; `asked_1h_cache` when it
    /// marked a block `"ttl": "1h"`.
    pub fn priced_by(&self, prices: Arc<PriceTable>, asked_1h_cache: bool) {
        self.update(|r| {
            r.prices = Some(prices);
            r.asked_1h_cache = asked_1h_cache;
        });
    }

    /// Records the caller's group (a metrics dimension) and whether its name may be one.
    pub fn dimensions(&self, group: Option<&str>, caller_is_dimension: bool) {
        self.update(|r| {
            r.group = group.map(str::to_string);
            r.caller_is_dimension = caller_is_dimension;
        });
    }

    /// Holds the request's charge until the answer is done ([`RequestLog::take_charge`]).
    pub fn hold_charge(&self, charge: Charge) {
        self.update(|r| r.charge = Some(charge));
    }

    /// The charge, for the path that ends the request to settle.
    pub fn take_charge(&self) -> Option<Charge> {
        let mut guard = self.0.record.lock().ignore_poison();
        guard.charge.take()
    }

    /// What the request used so far, in tokens and dollars (no dollars for an unpriced model).
    pub fn spend(&self) -> Spend {
        let guard = self.0.record.lock().ignore_poison();
        spend_of(&guard)
    }

    /// Records usage the proxy estimated (a stream that ended early).
    pub fn estimated_usage(&self, usage: Usage) {
        self.update(|r| {
            r.usage = Some(usage);
            r.usage_estimated = true;
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
