//! The calls to Bedrock Runtime (InvokeModel, InvokeModelWithResponseStream, CountTokens),
//! with timeouts (UPSTREAM_TIMEOUT_SECONDS, or the Lambda invocation's deadline), jittered
//! exponential backoff for throttling, unavailability and connections that died before any
//! response, and the event stream the caller's response body reads from: decoded in the body
//! itself, so that when the body is dropped, Bedrock's connection closes with it.

use std::future::Future;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest, ResponseStream};
use aws_smithy_types::retry::ErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::auth::guardrail::Guardrail;
use crate::error::ProxyError;
use crate::upstream::deadline::Deadline;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::{EventStream, StartedStream};

/// The input of InvokeModel and InvokeModelWithResponseStream, which is the same on both: two
/// builder types with no trait in common, so one macro fills both. `body` is shared, not
/// copied; `betas` becomes the signed `anthropic-beta` header; the caller's guardrail becomes
/// the SDK's `X-Amzn-Bedrock-GuardrailIdentifier` and `-GuardrailVersion` headers. No
/// `X-Amzn-Bedrock-Trace`: a trace would put the guardrail's assessment, with the text it
/// matched, into the answer.
macro_rules! invoke_input {
    ($builder:expr, $call:expr) => {
        $builder
            .model_id($call.model_id)
            .content_type("application/json")
            .accept("application/json")
            .set_guardrail_identifier($call.guardrail.map(|g| g.id.clone()))
            .set_guardrail_version($call.guardrail.map(|g| g.version.clone()))
            .body(Blob::from_maybe_shared($call.body.clone()))
            .customize()
            .mutate_request(beta_header($call.betas))
    };
}

/// One InvokeModel call as the proxy makes it: the model, the body (shared, not copied), the
/// `anthropic-beta` header and the caller's guardrail.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The Bedrock model or inference-profile ID.
    pub model_id: &'a str,
    /// The InvokeModel body.
    pub body: &'a Bytes,
    /// The `anthropic-beta` header, if any flag goes there.
    pub betas: Option<&'a str>,
    /// The guardrail Bedrock must apply, if the caller has one.
    pub guardrail: Option<&'a Guardrail>,
}

/// The Bedrock Runtime client and how to call it.
#[derive(Clone, Debug)]
pub struct Bedrock {
    client: aws_sdk_bedrockruntime::Client,
    policy: RetryPolicy,
}

impl Bedrock {
    /// Wraps a client built once per process (per Lambda instance).
    pub fn new(client: aws_sdk_bedrockruntime::Client, policy: RetryPolicy) -> Self {
        Self { client, policy }
    }

    /// The same client for one request that must be answered by `deadline` (the Lambda
    /// invocation's, less a margin), counting its throttled attempts on `log`. Cheap: the SDK
    /// client is shared.
    pub fn for_request(&self, deadline: Option<Deadline>, log: &crate::usage::request_log::RequestLog) -> Self {
        Self {
            client: self.client.clone(),
            policy: self.policy.for_request(deadline, log),
        }
    }

    /// How this client retries and times out.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// InvokeModel: the whole answer at once.
    pub async fn invoke(&self, invocation: Invocation<'_>) -> Result<Bytes, ProxyError> {
        self.with_retries(|| async {
            let call = invoke_input!(self.client.invoke_model(), invocation).send();
            let output = self.timed(call).await?.map_err(map_sdk_error)?;
            Ok(output.body.into_bytes())
        })
        .await
    }

    /// InvokeModelWithResponseStream. Waits for the first event, at most `first_event_wait`
    /// (the ping interval), so that errors Bedrock reports at once still get a real HTTP status
    /// and can be retried, while a long silence never delays the caller's first byte (a ping).
    pub async fn invoke_stream(
        &self,
        invocation: Invocation<'_>,
        first_event_wait: Duration,
    ) -> Result<StartedStream, ProxyError> {
        self.with_retries(|| async {
            let call = invoke_input!(self.client.invoke_model_with_response_stream(), invocation).send();
            let output = self.policy.timed_stream_start(call).await?.map_err(map_sdk_error)?;
            StartedStream::begin(events(output.body), first_event_wait).await
        })
        .await
    }

    /// CountTokens for an InvokeModel body. Bedrock refuses cross-region inference-profile IDs
    /// here with "The provided model doesn't support counting tokens" (the same words as for a
    /// model it does not count at all), so that refusal, and only that one, is retried with the
    /// base model ID. If the base ID is refused the same way, the model is not counted by
    /// Runtime: [`ProxyError::CountTokensUnsupported`], so that the caller can count elsewhere.
    pub async fn count_tokens(&self, model_id: &str, body: &Bytes) -> Result<u64, ProxyError> {
        let first = self.count_tokens_once(model_id, body).await;
        let base = crate::translate::models::base_model_id(model_id);
        let answer = match first {
            Err(e) if refuses_counting(&e) && base != model_id => {
                tracing::debug!(error = %e, model_id, base, "count_tokens refused the profile id; retrying with the base model id");
                self.count_tokens_once(base, body).await
            }
            other => other,
        };
        match answer {
            Err(ProxyError::InvalidRequest(message)) if is_counting_refusal(&message) => {
                Err(ProxyError::CountTokensUnsupported(message))
            }
            other => other,
        }
    }

    async fn count_tokens_once(&self, model_id: &str, body: &Bytes) -> Result<u64, ProxyError> {
        let request = InvokeModelTokensRequest::builder()
            .body(Blob::from_maybe_shared(body.clone()))
            .build()
            .map_err(|e| ProxyError::Internal(format!("building CountTokens input: {e}")))?;
        self.with_retries(|| async {
            let call = self
                .client
                .count_tokens()
                .model_id(model_id)
                .input(CountTokensInput::InvokeModel(request.clone()))
                .send();
            let output = self.timed(call).await?.map_err(map_sdk_error)?;
            Ok(u64::try_from(output.input_tokens()).unwrap_or(0))
        })
        .await
    }

    async fn timed<F: Future>(&self, call: F) -> Result<F::Output, ProxyError> {
        self.policy.timed(call).await
    }

    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<T, ProxyError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        self.policy.run(attempt).await
    }
}

/// Bedrock Runtime's CountTokens refusal of a model ID it does not count: a cross-region
/// profile ID, an application inference profile ARN, or a model counted only on Mantle
/// (pydantic-ai#4001, bifrost#2169; Claude Code's own gateway code has the same words).
fn is_counting_refusal(message: &str) -> bool {
    message.contains("doesn't support counting tokens")
}

fn refuses_counting(error: &ProxyError) -> bool {
    matches!(error, ProxyError::InvalidRequest(message) if is_counting_refusal(message))
}

/// Adds the `anthropic-beta` header before the request is signed, as Claude Code's own Bedrock
/// client does (some flags, such as effort's, travel only there).
fn beta_header(
    betas: Option<&str>,
) -> impl Fn(&mut aws_sdk_bedrockruntime::config::http::HttpRequest) + Send + Sync + 'static {
    let betas = betas.map(str::to_string);
    move |request| {
        if let Some(value) = &betas {
            // Flags come from the rules table, so the value is always a valid header; one
            // that was not would only lose the header, never the request.
            let _ = request.headers_mut().try_insert("anthropic-beta", value.clone());
        }
    }
}

/// Bedrock's event receiver as a stream of chunk payloads. No task sits in between: the
/// caller's response body polls this directly, so frames read together leave together, and
/// dropping the body drops the receiver, which closes the HTTP connection to Bedrock so that it
/// stops generating (and billing) an answer nobody will read.
///
/// Waiting on it under a timeout (for pings) loses nothing: `unfold` keeps an unfinished
/// `recv` alive across polls, and `recv` itself only awaits the next body frame. It is fused:
/// polled again after its end it says "ended" again, where a bare `unfold` would panic.
fn events(
    receiver: aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<ResponseStream, ResponseStreamError>,
) -> EventStream {
    Box::pin(
        futures_util::stream::unfold(Some(receiver), |state| async move {
            let mut receiver = state?;
            loop {
                match receiver.recv().await {
                    Ok(Some(ResponseStream::Chunk(part))) => {
                        if let Some(blob) = part.bytes {
                            return Some((Ok(Bytes::from(blob.into_inner())), Some(receiver)));
                        }
                    }
                    // Event types newer than this SDK carry nothing we could forward.
                    Ok(Some(_)) => {}
                    Ok(None) => return None,
                    // An error ends the stream; the receiver is dropped with it.
                    Err(e) => return Some((Err(map_stream_error(e)), None)),
                }
            }
        })
        .fuse(),
    )
}

/// An error inside a stream: Bedrock's exceptions map by variant (`error.rs`); anything else
/// means the stream broke off.
fn map_stream_error<R: std::fmt::Debug>(err: SdkError<ResponseStreamError, R>) -> ProxyError {
    let err = match err {
        SdkError::ServiceError(service) => return service.into_err().into(),
        other => other,
    };
    // A cut connection or an unreadable frame: the stream had begun, so this is never a
    // failure to reach Bedrock, whatever the SDK calls it.
    ProxyError::Connection {
        message: "bedrock's stream broke off (the proxy's log has the details)".into(),
        detail: DisplayErrorContext(&err).to_string(),
        transient: false,
    }
}

/// The one mapping from an operation's SDK error to ours. Bedrock's own exceptions keep their
/// message; everything below the API becomes one sentence for the caller, with the SDK's
/// whole chain kept for the log.
fn map_sdk_error<E, R>(err: SdkError<E, R>) -> ProxyError
where
    E: Into<ProxyError> + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let err = match err {
        SdkError::ServiceError(service) => return service.into_err().into(),
        other => other,
    };
    let (message, transient) = match &err {
        SdkError::TimeoutError(_) => return ProxyError::Timeout("timed out calling bedrock".into()),
        SdkError::DispatchFailure(failure) => match failure.as_connector_error().and_then(credentials_problem) {
            Some(advice) => (advice, false),
            // What the SDK's own standard retry policy retries: connect and I/O failures, and
            // hyper's "connection closed before message completed" (a pooled keep-alive
            // connection that Bedrock or a NAT had already closed, the classic first request
            // after a Lambda thaw).
            None if failure.is_timeout() => ("could not reach Bedrock: connecting timed out".into(), true),
            None if failure.is_io() => (
                "could not reach Bedrock: the connection failed before any answer".into(),
                true,
            ),
            None if failure.as_other() == Some(ErrorKind::TransientError) => (
                "could not reach Bedrock: the connection closed before any answer".into(),
                true,
            ),
            None => (
                "could not reach Bedrock (the proxy's log has the details)".into(),
                false,
            ),
        },
        SdkError::ResponseError(_) => (
            "bedrock's answer could not be read (the proxy's log has the details)".into(),
            false,
        ),
        _ => (
            "the call to Bedrock failed (the proxy's log has the details)".into(),
            false,
        ),
    };
    ProxyError::Connection {
        message,
        detail: DisplayErrorContext(&err).to_string(),
        transient,
    }
}

/// The sentence for a caller when the SDK could not load AWS credentials (the error is deep
/// in the chain of a dispatch failure), or `None` when credentials are not the problem.
fn credentials_problem(err: &aws_sdk_bedrockruntime::error::ConnectorError) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            return Some(format!("could not reach Bedrock: {}", credentials_advice(credentials)));
        }
        next = e.source();
    }
    None
}

/// What to do about credentials that could not be loaded, in one clause: the caller's error
/// message and the start-up warning share it.
pub fn credentials_advice(error: &CredentialsError) -> String {
    match error {
        CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found (set AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; inside Lambda the function's role provides them)"
            .into(),
        other => format!(
            "the AWS credentials could not be loaded ({other}; check AWS_PROFILE and the AWS config \
             files, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ),
    }
}
