//! The HTTP surface: Bedrock's InvokeModel, InvokeModelWithResponseStream and
//! CountTokens operations, plus the `/_emulator/*` routes tests use to look inside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Path, State as Shared};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::Stream;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};

use crate::answer::{self, Answer, Planned};
use crate::error::BedrockError;
use crate::frames;
use crate::ids;
use crate::scenario::Scenario;
use crate::state::{State, StreamGuard};
use crate::validate::{self, ModelRef};

/// Bedrock takes bodies up to 25 MB; CountTokens wraps one in base64 (4/3 larger).
const MAX_BODY_BYTES: usize = 34_000_000;

/// Small on purpose: the producer should block on a slow reader rather than run
/// ahead, as Bedrock's model does not outpace the connection by much either.
const FRAME_CHANNEL_CAPACITY: usize = 4;

type Frame = Result<Bytes, io::Error>;

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
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Invoke => "invoke",
            Self::InvokeStream => "invoke-with-response-stream",
            Self::CountTokens => "count-tokens",
        }
    }
}

/// One Bedrock request on its way through, remembered for the request log.
struct Call {
    operation: Operation,
    model_id: String,
    headers: Value,
    body: Value,
    started: Instant,
}

impl Call {
    fn new(operation: Operation, model_id: String, headers: &HeaderMap, raw_body: &[u8]) -> Self {
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
            headers: Value::Object(headers),
            body,
            started: Instant::now(),
        }
    }

    /// Logs the request with the status it got; `None` for one never answered (`hang`).
    fn record(&self, state: &State, status: Option<StatusCode>) {
        state.record(json!({
            "operation": self.operation.name(),
            "model_id": self.model_id,
            "body": self.body,
            "status": status.map(|status| status.as_u16()),
            "headers": self.headers,
        }));
    }

    fn fail(&self, state: &State, error: BedrockError) -> Response {
        self.record(state, Some(error.status));
        error.into_response()
    }
}

/// Checks what Bedrock checks before running the model: the signature header, the
/// model id and the body. The returned `Call` is for the request log either way.
fn admit(
    operation: Operation,
    model_id: String,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> (Call, Result<(ModelRef, Value), BedrockError>) {
    let mut call = Call::new(operation, model_id, headers, raw_body);
    let admitted = check(&mut call, headers, raw_body);
    (call, admitted)
}

fn check(call: &mut Call, headers: &HeaderMap, raw_body: &[u8]) -> Result<(ModelRef, Value), BedrockError> {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256"));
    if !signed {
        return Err(BedrockError::missing_signature());
    }
    let model = validate::model_id(&call.model_id)?;
    // The header may be repeated; each occurrence is a comma-separated list.
    let header_betas: Vec<String> = headers
        .get_all("anthropic-beta")
        .iter()
        .flat_map(|value| validate::beta_flags(&String::from_utf8_lossy(value.as_bytes())))
        .collect();
    let context = validate::Context {
        model: &model,
        header_betas: &header_betas,
    };
    if call.operation != Operation::CountTokens {
        let body = validate::body(raw_body, context)?;
        return Ok((model, body));
    }
    // Reported Bedrock behaviour: CountTokens refuses cross-region profile ids, so the
    // proxy must retry with the base id.
    if model.profile.is_some() && !call.model_id.starts_with("arn:") {
        return Err(BedrockError::invalid_model());
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
    /// A Bedrock exception, before any frame.
    Exception(BedrockError),
    /// The connection closed with no response.
    Close,
}

impl Fault {
    fn named(name: &str) -> Self {
        if name == CLOSE {
            Self::Close
        } else {
            Self::Exception(BedrockError::named(name))
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

/// Answers with the fault: an exception response, or no response at all.
async fn fail_with(call: &Call, state: &State, fault: Fault, closer: Option<Extension<ConnectionCloser>>) -> Response {
    match fault {
        Fault::Exception(error) => call.fail(state, error),
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
        return call.fail(
            state,
            BedrockError {
                name: "InternalServerException".to_owned(),
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "emulator: close needs bedrock_emulator::serve or spawn".to_owned(),
            },
        );
    };
    call.record(state, None);
    closer.close();
    // Never answer: the connection task drops the socket (and this future with it).
    std::future::pending().await
}

/// The headers of a streamed answer, before its first frame.
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

async fn invoke(
    Shared(state): Shared<Arc<State>>,
    Path(model_id): Path<String>,
    closer: Option<Extension<ConnectionCloser>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::Invoke, model_id, &headers, &body);
    let (model, body) = match admitted {
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
    let answer = Answer::plan(&body, &scenario, &model.model);
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::InvokeStream, model_id, &headers, &body);
    let (model, body) = match admitted {
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
    if scenario.empty_stream {
        call.record(&state, Some(StatusCode::OK));
        // A stream body of unknown length, so hyper sends chunked encoding and then at
        // once its terminating chunk: a well-formed body with zero frames.
        let body = Body::from_stream(futures_util::stream::empty::<Frame>());
        return (stream_headers(), body).into_response();
    }
    let answer = Answer::plan(&body, &scenario, &model.model);
    call.record(&state, Some(StatusCode::OK));

    let (sender, receiver) = mpsc::channel(FRAME_CHANNEL_CAPACITY);
    tokio::spawn(produce(sender, answer, scenario, call.started));
    let body = Body::from_stream(FrameStream {
        receiver,
        guard: StreamGuard::open(state),
        held_error: None,
    });
    (stream_headers(), body).into_response()
}

async fn count_tokens(
    Shared(state): Shared<Arc<State>>,
    Path(model_id): Path<String>,
    closer: Option<Extension<ConnectionCloser>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_request();
    let (call, admitted) = admit(Operation::CountTokens, model_id, &headers, &body);
    let (_model, body) = match admitted {
        Ok(admitted) => admitted,
        Err(error) => return call.fail(&state, error),
    };
    // Only the directives that make sense without an answer (`error`, `close`, `hang`,
    // `first_delay_ms`); `fail_first` is left to
    // the invoke operations so a count_tokens call does not use up a test's failures.
    let scenario = Scenario::from_body(&body);
    if scenario.hang {
        return hang(&call, &state).await;
    }
    tokio::time::sleep(scenario.first_delay).await;
    let fault = if scenario.close {
        Some(Fault::Close)
    } else {
        scenario.error.as_deref().map(Fault::named)
    };
    if let Some(fault) = fault {
        return fail_with(&call, &state, fault, closer).await;
    }
    call.record(&state, Some(StatusCode::OK));
    let headers = [("x-amzn-requestid", ids::request_id())];
    (headers, Json(json!({ "inputTokens": answer::input_tokens(&body) }))).into_response()
}

/// The streaming body: frames from the producer task, with the guard that tells a
/// finished stream from one the client abandoned.
struct FrameStream {
    receiver: mpsc::Receiver<Frame>,
    guard: StreamGuard,
    /// The `cut_after` error, held back for one poll (see `poll_next`).
    held_error: Option<io::Error>,
}

impl Stream for FrameStream {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        if let Some(error) = self.held_error.take() {
            self.guard.finish();
            return Poll::Ready(Some(Err(error)));
        }
        let item = ready!(self.receiver.poll_recv(cx));
        // Hyper discards what it has not flushed when the body fails, and it flushes
        // when the body is pending: so pend once before the error, or the frames sent
        // just before a `cut_after` would never reach the client.
        if let Some(Err(error)) = item {
            self.held_error = Some(error);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The producer wrote all it meant to, so the drop that follows is not a cancel.
        if item.is_none() {
            self.guard.finish();
        }
        Poll::Ready(item)
    }
}

/// What ends a stream early, and after how many chunk frames.
enum Interruption {
    Exception(String),
    Garbage,
    Cut,
}

fn interruption(scenario: &Scenario) -> Option<(usize, Interruption)> {
    let candidates = [
        scenario
            .stream_exception_after
            .clone()
            .map(|(after, kind)| (after, Interruption::Exception(kind))),
        scenario.garbage_after.map(|after| (after, Interruption::Garbage)),
        scenario.cut_after.map(|after| (after, Interruption::Cut)),
    ];
    candidates.into_iter().flatten().min_by_key(|(after, _)| *after)
}

/// Sleeps unless the body is dropped first; false when nobody is listening any more.
async fn pause(sender: &mpsc::Sender<Frame>, duration: Duration) -> bool {
    if duration.is_zero() {
        return !sender.is_closed();
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = sender.closed() => false,
    }
}

/// Writes the frames of one streamed answer, each handed to hyper as soon as it exists.
/// Stops as soon as the body is dropped, like Bedrock stops billing a closed stream.
async fn produce(sender: mpsc::Sender<Frame>, answer: Answer, scenario: Scenario, started: Instant) {
    let events = answer.events();
    let interruption = interruption(&scenario).map(|(after, what)| (after.min(events.len()), what));
    let mut first_byte_latency = None;
    for seq in 0..=events.len() {
        let interrupt_here = matches!(&interruption, Some((after, _)) if *after == seq);
        if seq == events.len() && !interrupt_here {
            return;
        }
        let wait = if seq == 0 { scenario.first_delay } else { scenario.delay };
        if !pause(&sender, wait).await {
            return;
        }
        let frame = match &interruption {
            Some((after, what)) if *after == seq => match what {
                Interruption::Exception(kind) => frames::exception(kind, frames::exception_message(kind)),
                Interruption::Garbage => frames::garbage(seq),
                Interruption::Cut => {
                    // An error from the body makes hyper drop the connection without
                    // the final empty chunk: the client sees a truncated body.
                    let _ = sender.send(Err(io::Error::other("emulator: cut_after"))).await;
                    return;
                }
            },
            _ => {
                let Some(planned) = events.get(seq) else {
                    return;
                };
                let first_byte = *first_byte_latency.get_or_insert_with(|| started.elapsed().as_millis());
                let event = match planned {
                    Planned::Ready(event) => event.clone(),
                    Planned::StampedDelta { index } => answer::stamped_delta(*index),
                    Planned::MessageStop => answer::message_stop(&answer, started.elapsed().as_millis(), first_byte),
                };
                frames::chunk(&event, seq)
            }
        };
        let frame = frame.map_err(io::Error::other);
        let failed = frame.is_err();
        if sender.send(frame).await.is_err() || failed {
            return;
        }
        if interrupt_here {
            return;
        }
    }
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

async fn unknown_operation(method: Method, uri: Uri) -> Response {
    BedrockError {
        name: "UnknownOperationException".to_owned(),
        status: StatusCode::NOT_FOUND,
        message: format!("emulator: no operation at {method} {}", uri.path()),
    }
    .into_response()
}
