//! The calls to Bedrock Runtime (InvokeModel, InvokeModelWithResponseStream, CountTokens),
//! with timeouts, jittered exponential backoff for throttling and unavailability, and the task
//! that pumps a response stream to the caller and stops the moment the caller is gone.

use std::future::Future;
use std::time::Duration;

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest, ResponseStream};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::ProxyError;

/// One item of a Bedrock stream as the SSE writer sees it: the payload of a chunk (one
/// Anthropic event as JSON), or the error that ended the stream.
pub type StreamItem = Result<Bytes, ProxyError>;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub base_delay: Duration,
    /// Time allowed for one attempt to produce its response (or first stream event).
    pub timeout: Duration,
}

/// The Bedrock Runtime client and how to call it.
#[derive(Clone, Debug)]
pub struct Bedrock {
    client: aws_sdk_bedrockruntime::Client,
    policy: RetryPolicy,
}

/// A stream that has produced its first event (or has gone quiet long enough that the caller
/// should start getting pings).
pub struct StartedStream {
    /// The first item, if it came before the ping interval (`None` also when the stream ended
    /// without any event).
    pub first: Option<StreamItem>,
    /// True when Bedrock stayed silent for the whole first wait: the caller is owed a ping now.
    pub silent: bool,
    /// The rest of the stream. Dropping it stops the pump and closes Bedrock's connection.
    pub rest: mpsc::Receiver<StreamItem>,
}

impl Bedrock {
    /// Wraps a client built once per process (per Lambda instance).
    pub fn new(client: aws_sdk_bedrockruntime::Client, policy: RetryPolicy) -> Self {
        Self { client, policy }
    }

    /// InvokeModel: the whole answer at once.
    pub async fn invoke(&self, model_id: &str, body: &[u8]) -> Result<Bytes, ProxyError> {
        self.with_retries(|| async {
            let call = self
                .client
                .invoke_model()
                .model_id(model_id)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body))
                .send();
            let output = self.timed(call).await?.map_err(map_sdk_error)?;
            Ok(Bytes::from(output.body.into_inner()))
        })
        .await
    }

    /// InvokeModelWithResponseStream. Waits for the first event, at most `first_event_wait`
    /// (the ping interval), so that errors Bedrock reports at once still get a real HTTP status
    /// and can be retried, while a long silence never delays the caller's first byte (a ping).
    pub async fn invoke_stream(
        &self,
        model_id: &str,
        body: &[u8],
        first_event_wait: Duration,
    ) -> Result<StartedStream, ProxyError> {
        self.with_retries(|| async {
            let call = self
                .client
                .invoke_model_with_response_stream()
                .model_id(model_id)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body))
                .send();
            let output = self.timed(call).await?.map_err(map_sdk_error)?;
            // A small buffer: if the caller reads slowly, we stop reading Bedrock rather than
            // buffering an answer in memory.
            let (tx, mut rx) = mpsc::channel(16);
            tokio::spawn(pump(output.body, tx));
            match tokio::time::timeout(first_event_wait, rx.recv()).await {
                Ok(Some(Err(e))) => Err(e),
                Ok(first) => Ok(StartedStream {
                    first,
                    silent: false,
                    rest: rx,
                }),
                Err(_elapsed) => Ok(StartedStream {
                    first: None,
                    silent: true,
                    rest: rx,
                }),
            }
        })
        .await
    }

    /// CountTokens for an InvokeModel body. Bedrock is reported to refuse some
    /// inference-profile IDs here, so a refused profile ID is retried with its base model ID.
    pub async fn count_tokens(&self, model_id: &str, body: &[u8]) -> Result<u64, ProxyError> {
        let first = self.count_tokens_once(model_id, body).await;
        let base = crate::models::base_model_id(model_id);
        match first {
            Err(ProxyError::InvalidRequest(message)) if base != model_id => {
                tracing::debug!(%message, model_id, base, "count_tokens refused the profile id; retrying with the base model id");
                self.count_tokens_once(base, body).await
            }
            other => other,
        }
    }

    async fn count_tokens_once(&self, model_id: &str, body: &[u8]) -> Result<u64, ProxyError> {
        let request = InvokeModelTokensRequest::builder()
            .body(Blob::new(body))
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
        tokio::time::timeout(self.policy.timeout, call).await.map_err(|_| {
            ProxyError::Timeout(format!(
                "bedrock did not answer within {} s (UPSTREAM_TIMEOUT_SECONDS)",
                self.policy.timeout.as_secs()
            ))
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of attempts. Only called
    /// before anything has been sent to the caller, so retrying is always safe.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ProxyError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let mut n = 1;
        loop {
            match attempt().await {
                Err(e) if e.is_retryable() && n < self.policy.max_attempts => {
                    let delay = backoff(self.policy.base_delay, n);
                    tracing::debug!(attempt = n, delay_ms = delay.as_millis() as u64, error = %e, "retrying bedrock call");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                other => return other,
            }
        }
    }
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries
/// from many callers spread out but never collapse to zero.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(10));
    let half = capped / 2;
    let mut buf = [0u8; 8];
    let random = getrandom::fill(&mut buf).map(|_| u64::from_le_bytes(buf)).unwrap_or(0);
    let jitter_ns = match half.as_nanos() as u64 {
        0 => 0,
        span => random % span,
    };
    half + Duration::from_nanos(jitter_ns)
}

/// Reads Bedrock's stream into `tx` until it ends, fails, or the caller goes away. Returning
/// drops the event receiver, which closes the HTTP connection to Bedrock so that it stops
/// generating (and billing) an answer nobody will read.
async fn pump(
    mut events: aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<ResponseStream, ResponseStreamError>,
    tx: mpsc::Sender<StreamItem>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => return,
            next = events.recv() => next,
        };
        let item = match next {
            Ok(Some(ResponseStream::Chunk(part))) => match part.bytes {
                Some(blob) => Ok(Bytes::from(blob.into_inner())),
                None => continue,
            },
            // Event types newer than this SDK carry nothing we could forward.
            Ok(Some(_)) => continue,
            Ok(None) => return,
            Err(e) => Err(map_stream_error(e)),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// Exceptions inside an event stream carry only `{"message"}`, so their code is not in the
/// error metadata; it is the variant the SDK decoded from the frame's `:exception-type`.
fn map_stream_error<R: std::fmt::Debug>(err: SdkError<ResponseStreamError, R>) -> ProxyError {
    let SdkError::ServiceError(service) = &err else {
        return map_sdk_error(err);
    };
    let e = service.err();
    let code = match e {
        ResponseStreamError::ThrottlingException(_) => "ThrottlingException",
        ResponseStreamError::ServiceUnavailableException(_) => "ServiceUnavailableException",
        ResponseStreamError::ValidationException(_) => "ValidationException",
        ResponseStreamError::ModelTimeoutException(_) => "ModelTimeoutException",
        ResponseStreamError::ModelStreamErrorException(_) => "ModelStreamErrorException",
        ResponseStreamError::InternalServerException(_) => "InternalServerException",
        other => other.code().unwrap_or("UnknownError"),
    };
    ProxyError::from_bedrock(code, e.message().unwrap_or_default().to_string())
}

/// The one mapping from an SDK error (of any operation, or of the event stream) to ours.
fn map_sdk_error<E, R>(err: SdkError<E, R>) -> ProxyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("UnknownError");
            ProxyError::from_bedrock(code, e.message().unwrap_or_default().to_string())
        }
        SdkError::TimeoutError(_) => ProxyError::Timeout("timed out calling bedrock".into()),
        SdkError::DispatchFailure(_) => {
            ProxyError::Upstream(format!("could not reach bedrock: {}", DisplayErrorContext(&err)))
        }
        SdkError::ResponseError(_) => ProxyError::Upstream(format!(
            "bedrock's response could not be read: {}",
            DisplayErrorContext(&err)
        )),
        _ => ProxyError::Upstream(format!("bedrock call failed: {}", DisplayErrorContext(&err))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_jittered_within_bounds() {
        let base = Duration::from_millis(100);
        for attempt in 1..6 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= Duration::from_secs(10));
    }
}
