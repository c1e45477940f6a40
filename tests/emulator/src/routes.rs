//! The HTTP surface: Bedrock Runtime's InvokeModel, InvokeModelWithResponseStream and
//! CountTokens operations; Bedrock's Anthropic Messages endpoint ("Mantle",
//! `/anthropic/v1/messages` and `/anthropic/v1/messages/count_tokens`, whose paths do not
//! collide with Runtime's); and the `/_emulator/*` routes tests use to look inside.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State as Shared};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::answer::{self, Answer};
use crate::anthropic_error::AnthropicError;
use crate::error::BedrockError;
use crate::guardrail;
use crate::ids;
use crate::mantle::{self, Endpoint};
use crate::scenario::Scenario;
use crate::state::State;
use crate::stream::{self, Wire};
use crate::validate::{self, ModelRef};

/// Bedrock takes bodies up to 25 MB; CountTokens wraps one in base64 (4/3 larger).
const MAX_BODY_BYTES: usize = 34_000_000;

/// The name `fail_first` and `error` take, in place of an exception, for `emulator:close`.
pub const CLOSE: &str = "close";

/// Drops the connection a request arrived on, without a response. The emulator's accept
/// loop puts one into every request's extensions and waits on it beside the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCloser(Arc<Notify>);

impl ConnectionCloser {
    /// Asks the connection's task to drop the socket.
    pub fn close(&self) {
        // notify_one keeps a permit, so the close holds even if nobody waits yet.
        self.0.notify_one();
    }

    /// Resolves once [`ConnectionCloser::close`] has been called.
    pub async fn closed(&self) {
        self.0.notified().await;
    }
}

/// The router over shared `state`; [`crate::serve`] and [`crate::spawn`] both use it.
pub fn app(state: Arc<State>) -> Router {
    Router::new()
        .route("/model/{model_id}/invoke", post(invoke))
        .route(
            "/model/{model_id}/invoke-with-response-stream",
            post(invoke_with_response_stream),
        )
        .route("/model/{model_id}/count-tokens", post(count_tokens))
        // Any query string matches too: Claude Code sends `?beta=true`.
        .route("/anthropic/v1/messages", post(mantle_messages))
        .route("/anthropic/v1/messages/count_tokens", post(mantle_count_tokens))
        .route("/_emulator/requests", get(list_requests).delete(clear_requests))
        .route("/_emulator/stats", get(stats))
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Invoke,
    InvokeStream,
    CountTokens,
    MantleMessages,
    MantleCountTokens,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Invoke => "invoke",
            Self::InvokeStream => "invoke-with-response-stream",
            Self::CountTokens => "count-tokens",
            Self::MantleMessages => "mantle-messages",
            Self::MantleCountTokens => "mantle-count-tokens",
        }
    }

    /// Mantle answers errors in the Anthropic API's shape, Runtime in Bedrock's.
    fn is_mantle(self) -> bool {
        matches!(self, Self::MantleMessages | Self::MantleCountTokens)
    }
}

/// One request on its way through, remembered for the request log.
struct Call {
    operation: Operation,
    /// Runtime: the URI's model id. Mantle: the body's `model` (null if there is none).
    model_id: Value,
    /// Path and query as received, e.g. `/anthropic/v1/messages?beta=true`.
    path: String,
    headers: Value,
    body: Value,
    started: Instant,
}

impl Call {
    fn new(operation: Operation, model_id: Value, uri: &Uri, headers: &HeaderMap, raw_body: &[u8]) -> Self {
        let headers: Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), Value::String(value))
            })
            .collect();
        // Log what arrived even when it is not JSON, so a test can see the bad bytes.
        let body = serde_json::from_slice(raw_body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw_body).into_owned()));
        Self {
            operation,
            model_id,
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), ToString::to_string),
            headers: Value::Object(headers),
            body,
            started: Instant::now(),
        }
    }

    /// A Mantle call: the model is the body's.
    fn mantle(operation: Operation, uri: &Uri, headers: &HeaderMap, raw_body: &[u8]) -> Self {
        let mut call = Self::new(operation, Value::Null, uri, headers, raw_body);
        call.model_id = call.body.get("model").cloned().unwrap_or(Value::Null);
        call
    }

    /// Logs the request with the status it got; `None` for one never answered (`hang`).
    fn record(&self, state: &State, status: Option<StatusCode>) {
        state.record(json!({
            "operation": self.operation.name(),
            "model_id": self.model_id,
            "path": self.path,
            "body": self.body,
            "status": status.map(|status| status.as_u16()),
            "headers": self.headers,
        }));
    }

    /// Answers with a Bedrock exception (Runtime's shape).
    fn fail(&self, state: &State, error: BedrockError) -> Response {
        self.record(state, Some(error.status));
        error.into_response()
    }

    /// Answers with an Anthropic-shaped error (Mantle's shape).
    fn refuse(&self, state: &State, error: AnthropicError) -> Response {
        self.record(state, Some(error.status));
        error.into_response()
    }

    /// The error a directive names, in this operation's shape.
    fn fail_named(&self, state: &State, name: &str) -> Response {
        if self.operation.is_mantle() {
            self.refuse(state, AnthropicError::named(name))
        } else {
            self.fail(state, BedrockError::named(name))
        }
    }

    /// The emulator's own failure (not the request's), in this operation's shape.
    fn internal(&self, state: &State, message: &str) -> Response {
        if self.operation.is_mantle() {
            self.refuse(state, AnthropicError::internal(message))
        } else {
            self.fail(
                state,
                BedrockError {
                    name: "InternalServerException".to_owned(),
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: message.to_owned(),
                },
            )
        }
    }
}

/// Checks what Bedrock checks before running the model: the signature header, the
/// model id and the body. The returned `Call` is for the request log either way.
fn admit(
    operation: Operation,
    model_id: String,
    uri: &Uri,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> (Call, Result<(ModelRef, Value), BedrockError>) {
    let mut call = Call::new(operation, Value::String(model_id.clone()), uri, headers, raw_body);
    let admitted = check(&mut call, &model_id, headers, raw_body);
    (call, admitted)
}

fn check(
    call: &mut Call,
    model_id: &str,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<(ModelRef, Value), BedrockError> {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256"));
    if !signed {
        return Err(BedrockError::missing_signature());
    }
    let model = validate::model_id(model_id)?;
    let header_betas = validate::header_betas(headers);
    let context = validate::Context {
        model: &model,
        header_betas: &header_betas,
    };
    if call.operation != Operation::CountTokens {
        let body = validate::body(raw_body, context)?;
        return Ok((model, body));
    }
    // Before the body, as a model that cannot be counted fails whatever the body says.
    if !validate::runtime_counts_tokens(&model) {
        return Err(BedrockError::cannot_count_tokens());
    }
    let inner = count_tokens_input(raw_body)?;
    // The log shows the InvokeModel body, the part a test wants to assert on.
    call.body = serde_json::from_slice(&inner).unwrap_or(Value::Null);
    let body = validate::body(&inner, context)?;
    Ok((model, body))
}

/// The InvokeModel body inside `{"input":{"invokeModel":{"body":"<base64>"}}}`.
fn count_tokens_input(raw_body: &[u8]) -> Result<Vec<u8>, BedrockError> {
    let request: Value = serde_json::from_slice(raw_body)
        .map_err(|error| BedrockError::validation(format!("Malformed input request: {error}")))?;
    let encoded = request
        .pointer("/input/invokeModel/body")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BedrockError::validation(
                "1 validation error detected: Value at 'input.invokeModel.body' failed to satisfy constraint: Member must not be null",
            )
        })?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| BedrockError::validation("input.invokeModel.body: Invalid base64-encoded string"))
}

/// What a directive puts in place of the answer.
enum Fault {
    /// The named exception before any frame, in the operation's error shape.
    Exception(String),
    /// The connection closed with no response.
    Close,
}

impl Fault {
    fn named(name: &str) -> Self {
        if name == CLOSE {
            Self::Close
        } else {
            Self::Exception(name.to_owned())
        }
    }
}

/// The fault a directive asks for, if any (`close`, `error`, or `fail_first` still counting).
fn scripted_fault(state: &State, scenario: &Scenario) -> Option<Fault> {
    if scenario.close {
        return Some(Fault::Close);
    }
    if let Some(name) = &scenario.error {
        return Some(Fault::named(name));
    }
    let fail_first = scenario.fail_first.as_ref()?;
    state
        .fail_first(&fail_first.key, fail_first.count)
        .then(|| Fault::named(&fail_first.exception))
}

/// The fault of a count-tokens call: only `close` and `error`. `fail_first` is left to
/// the operations that answer, so a count does not use up a test's failures.
fn counting_fault(scenario: &Scenario) -> Option<Fault> {
    if scenario.close {
        Some(Fault::Close)
    } else {
        scenario.error.as_deref().map(Fault::named)
    }
}

/// Answers with the fault: an error response, or no response at all.
async fn fail_with(call: &Call, state: &State, fault: Fault, closer: Option<Extension<ConnectionCloser>>) -> Response {
    match fault {
        Fault::Exception(name) => call.fail_named(state, &name),
        Fault::Close => close(call, state, closer).await,
    }
}

/// `emulator:hang`: no response at all. Hyper drops this future when the client
/// closes the connection, which ends the wait.
async fn hang(call: &Call, state: &State) -> Response {
    call.record(state, None);
    std::future::pending().await
}

/// `emulator:close`: the connection ends before any response byte, as when a client
/// reuses a pooled keep-alive connection that Bedrock's side already closed.
async fn close(call: &Call, state: &State, closer: Option<Extension<ConnectionCloser>>) -> Response {
    let Some(Extension(closer)) = closer else {
        // Only the emulator's own accept loop can drop a connection from a handler.
        return call.internal(state, "emulator: close needs bedrock_emulator::serve or spawn");
    };
    call.record(state, None);
    closer.close();
    // Never answer: the connection task drops the socket (and this future with it).
    std::future::pending().await
}

/// The headers of a Runtime streamed answer, before its first frame.
fn stream_headers() -> [(&'static str, String); 3] {
    [
        (
            header::CONTENT_TYPE.as_str(),
            "application/vnd.amazon.eventstream".to_owned(),
        ),
        ("x-amzn-bedrock-content-type", "application/json".to_owned()),
        ("x-amzn-requestid", ids::request_id()),
    ]
}

/// The headers of a Mantle streamed answer, before its first event.
fn sse_headers() -> [(&'static str, String); 3] {
    [
        (header::CONTENT_TYPE.as_str(), "text/event-stream".to_owned()),
        (header::CACHE_CONTROL.as_str(), "no-cache".to_owned()),
        ("x-amzn-requestid", ids::request_id()),
    ]
}

async fn invoke(
    Shared(state): Shared<Arc<State>>,
    Path(model_id): Path<String>,
    closer: Option<Extension<ConnectionCloser>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::Invoke, model_id, &uri, &headers, &body);
    let (model, body, guard) =
        match admitted.and_then(|(model, body)| Ok((model, body, guardrail::from_headers(&headers)?))) {
            Ok(admitted) => admitted,
            Err(error) => return call.fail(&state, error),
        };
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    tokio::time::sleep(scenario.first_delay).await;
    if let Some(fault) = scripted_fault(&state, &scenario) {
        return fail_with(&call, &state, fault, closer).await;
    }
    let mut answer = Answer::plan(&body, &scenario, &model.model);
    guardrail::apply(&mut answer, guard, &body);
    call.record(&state, Some(StatusCode::OK));
    let headers = [
        ("x-amzn-requestid", ids::request_id()),
        ("x-amzn-bedrock-input-token-count", answer.input_tokens.to_string()),
        ("x-amzn-bedrock-output-token-count", answer.output_tokens.to_string()),
        (
            "x-amzn-bedrock-invocation-latency",
            call.started.elapsed().as_millis().to_string(),
        ),
        ("x-amzn-bedrock-cache-read-input-token-count", "0".to_owned()),
        ("x-amzn-bedrock-cache-write-input-token-count", "0".to_owned()),
    ];
    (headers, Json(answer.message())).into_response()
}

async fn invoke_with_response_stream(
    Shared(state): Shared<Arc<State>>,
    Path(model_id): Path<String>,
    closer: Option<Extension<ConnectionCloser>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::InvokeStream, model_id, &uri, &headers, &body);
    let (model, body, guard) =
        match admitted.and_then(|(model, body)| Ok((model, body, guardrail::from_headers(&headers)?))) {
            Ok(admitted) => admitted,
            Err(error) => return call.fail(&state, error),
        };
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    if let Some(fault) = scripted_fault(&state, &scenario) {
        return fail_with(&call, &state, fault, closer).await;
    }
    call.record(&state, Some(StatusCode::OK));
    if scenario.empty_stream {
        return (stream_headers(), stream::empty_body()).into_response();
    }
    let mut answer = Answer::plan(&body, &scenario, &model.model);
    guardrail::apply(&mut answer, guard, &body);
    let body = stream::body(state, Wire::EventStream, answer, scenario, call.started);
    (stream_headers(), body).into_response()
}

async fn count_tokens(
    Shared(state): Shared<Arc<State>>,
    Path(model_id): Path<String>,
    closer: Option<Extension<ConnectionCloser>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::CountTokens, model_id, &uri, &headers, &body);
    let (_model, body) = match admitted {
        Ok(admitted) => admitted,
        Err(error) => return call.fail(&state, error),
    };
    // Only the directives that make sense without an answer (`error`, `close`, `hang`,
    // `first_delay_ms`).
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    tokio::time::sleep(scenario.first_delay).await;
    if let Some(fault) = counting_fault(&scenario) {
        return fail_with(&call, &state, fault, closer).await;
    }
    call.record(&state, Some(StatusCode::OK));
    let headers = [("x-amzn-requestid", ids::request_id())];
    (headers, Json(json!({ "inputTokens": answer::input_tokens(&body) }))).into_response()
}

/// Mantle's Messages: the Anthropic message as JSON, or as SSE with `"stream": true`.
/// The directives act as on the Runtime side, with Anthropic-shaped errors.
async fn mantle_messages(
    Shared(state): Shared<Arc<State>>,
    closer: Option<Extension<ConnectionCloser>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let call = Call::mantle(Operation::MantleMessages, &uri, &headers, &body);
    let (model, body) = match mantle::admit(Endpoint::Messages, &headers, &body) {
        Ok(admitted) => admitted,
        Err(error) => return call.refuse(&state, error),
    };
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    let streamed = body.get("stream").and_then(Value::as_bool) == Some(true);
    // As on the Runtime side: a stream sends its headers at once and waits before the
    // first event; a single answer waits before anything.
    if !streamed {
        tokio::time::sleep(scenario.first_delay).await;
    }
    if let Some(fault) = scripted_fault(&state, &scenario) {
        return fail_with(&call, &state, fault, closer).await;
    }
    call.record(&state, Some(StatusCode::OK));
    let answer = Answer::plan(&body, &scenario, &model.model);
    if !streamed {
        let headers = [("x-amzn-requestid", ids::request_id())];
        return (headers, Json(answer.message())).into_response();
    }
    if scenario.empty_stream {
        return (sse_headers(), stream::empty_body()).into_response();
    }
    let body = stream::body(state, Wire::Sse, answer, scenario, call.started);
    (sse_headers(), body).into_response()
}

/// Mantle's count_tokens: `{"input_tokens": N}` for every model it serves (the point of
/// counting on Mantle: Runtime refuses the newer models). Directives as Runtime's count.
async fn mantle_count_tokens(
    Shared(state): Shared<Arc<State>>,
    closer: Option<Extension<ConnectionCloser>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let call = Call::mantle(Operation::MantleCountTokens, &uri, &headers, &body);
    let body = match mantle::admit(Endpoint::CountTokens, &headers, &body) {
        Ok((_model, body)) => body,
        Err(error) => return call.refuse(&state, error),
    };
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    tokio::time::sleep(scenario.first_delay).await;
    if let Some(fault) = counting_fault(&scenario) {
        return fail_with(&call, &state, fault, closer).await;
    }
    call.record(&state, Some(StatusCode::OK));
    let headers = [("x-amzn-requestid", ids::request_id())];
    (headers, Json(json!({ "input_tokens": answer::input_tokens(&body) }))).into_response()
}

async fn list_requests(Shared(state): Shared<Arc<State>>) -> Json<Vec<Value>> {
    Json(state.requests())
}

async fn clear_requests(Shared(state): Shared<Arc<State>>) -> StatusCode {
    state.clear();
    StatusCode::NO_CONTENT
}

async fn stats(Shared(state): Shared<Arc<State>>) -> Json<Value> {
    Json(state.stats())
}

/// No such operation: a Bedrock-shaped 404, or an Anthropic-shaped one under Mantle's
/// `/anthropic/` prefix (e.g. `/anthropic/v1/models`, which Anthropic's Bedrock page
/// lists among the endpoints Mantle lacks).
async fn unknown_operation(method: Method, uri: Uri) -> Response {
    let message = format!("emulator: no operation at {method} {}", uri.path());
    if uri.path().starts_with("/anthropic/") {
        return AnthropicError::not_found(message).into_response();
    }
    BedrockError {
        name: "UnknownOperationException".to_owned(),
        status: StatusCode::NOT_FOUND,
        message,
    }
    .into_response()
}
