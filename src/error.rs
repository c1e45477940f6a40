//! The one error type of the request path, and the one place it becomes an Anthropic-shaped
//! response (`{"type":"error","error":{"type","message"}}`) or an SSE `event: error`.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::operation::count_tokens::CountTokensError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::operation::invoke_model_with_response_stream::InvokeModelWithResponseStreamError;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Seconds a caller is asked to wait after a final 429 or 529. The SDKs honour `retry-after`,
/// and Bedrock's throttling windows are short, so a small value keeps callers moving.
pub const RETRY_AFTER_SECONDS: &str = "2";

/// A budget's refusal: the sentence for the caller (which budget, when it resets) and the
/// response headers (`retry-after`, `x-should-retry: false`, `anthropic-ratelimit-unified-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// What the caller reads.
    pub message: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(&'static str, String)>,
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    InvalidRequest(String),
    /// Missing or wrong token.
    #[error("{0}")]
    Authentication(String),
    /// The caller's policy does not allow this (our own refusal; the message is for the caller).
    #[error("{0}")]
    PermissionDenied(String),
    /// Bedrock refused the proxy's AWS role. Its message names the role and the account, so
    /// the caller gets a generic sentence and the log line the detail.
    #[error("{0}")]
    BedrockAccessDenied(String),
    /// Unknown route, model or resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than `MAX_BODY_BYTES`.
    #[error("{0}")]
    RequestTooLarge(String),
    /// The request's headers are larger than we accept.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Bedrock throttled the call (after our retries).
    #[error("{0}")]
    RateLimited(String),
    /// A budget of the caller, its group or the deployment is spent, or could not be read
    /// (the proxy fails closed): a 429 with the headers that make SDKs and Claude Code stop.
    #[error("{}", .0.message)]
    BudgetRefused(Box<BudgetRefusal>),
    /// Bedrock is unavailable or the model is not ready (after our retries).
    #[error("{0}")]
    Overloaded(String),
    /// The token store could not be read, so no request can be authenticated.
    #[error("{0}")]
    TokenStoreUnavailable(String),
    /// Bedrock took longer than `UPSTREAM_TIMEOUT_SECONDS`.
    #[error("{0}")]
    Timeout(String),
    /// The answer could not be finished before the Lambda invocation's deadline (less
    /// `LAMBDA_DEADLINE_MARGIN_MS`): ended by us, so that the caller hears why instead of being
    /// cut off by Lambda.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The call to Bedrock failed below the API: no credentials, no connection, a connection
    /// that broke, an answer that could not be read. `message` is one sentence a person can act
    /// on; `detail` is the SDK's whole error chain, for the log only. `transient` failures
    /// before any response (a pooled connection the far end had closed, a reset, a connect
    /// timeout) are worth another attempt.
    #[error("{message}")]
    Connection {
        /// What the caller reads.
        message: String,
        /// What the log line says.
        detail: String,
        /// Whether another attempt may succeed.
        transient: bool,
    },
    /// Bedrock accepted a stream and ended it without a single event.
    #[error("bedrock ended the stream without sending any event")]
    EmptyStream,
    /// Bedrock's CountTokens does not count this model (Bedrock's words: "The provided model
    /// doesn't support counting tokens"), under its profile ID nor its base ID. Kept apart
    /// from other refusals so that a caller can count elsewhere.
    #[error("{0}")]
    CountTokensUnsupported(String),
    /// Bedrock failed, or answered with something we could not read.
    #[error("{0}")]
    Upstream(String),
    /// A bug or an unexpected state on our side; the caller gets a generic message.
    #[error("{0}")]
    Internal(String),
}

impl ProxyError {
    /// True for the failures worth trying again before anything reached the caller: Bedrock
    /// saying "later", a connection that died before any response, a stream with no event.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited(_) | Self::Overloaded(_) | Self::EmptyStream | Self::Connection { transient: true, .. }
        )
    }

    /// What the request's log line calls this failure, when more precise than the status
    /// class (`rejected` for 4xx, `error` for 5xx, `stream_error` once a stream had begun).
    pub fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::Timeout(_) => Some("timeout"),
            Self::DeadlineExceeded(_) => Some("deadline"),
            Self::Connection { .. } => Some("connection_failed"),
            Self::EmptyStream => Some("empty_stream"),
            Self::BudgetRefused(_) => Some("budget"),
            _ => None,
        }
    }

    /// What the log line says about a failure on our side or Bedrock's (5xx), in full: the SDK
    /// chain behind a short caller message, or an internal detail the caller never sees.
    /// `None` for refusals of the request (4xx), whose messages are the caller's business.
    pub fn log_detail(&self) -> Option<String> {
        match self {
            Self::Connection { detail, .. } => Some(detail.clone()),
            Self::BedrockAccessDenied(detail) => Some(format!("bedrock AccessDenied: {detail}")),
            other if other.status_and_type().0.is_server_error() => Some(other.to_string()),
            _ => None,
        }
    }

    /// HTTP status and Anthropic `error.type`.
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            Self::Authentication(_) => (StatusCode::UNAUTHORIZED, "authentication_error"),
            Self::PermissionDenied(_) | Self::BedrockAccessDenied(_) => (StatusCode::FORBIDDEN, "permission_error"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error"),
            Self::RequestTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            Self::HeadersTooLarge(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request_too_large"),
            Self::RateLimited(_) | Self::BudgetRefused(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            Self::Overloaded(_) => (overloaded_status(), "overloaded_error"),
            Self::TokenStoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
            Self::Timeout(_) | Self::DeadlineExceeded(_) => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
            Self::Connection { .. } | Self::EmptyStream => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            Self::CountTokensUnsupported(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            Self::Upstream(_) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
        }
    }

    /// The message the caller sees. Internal details stay in our logs.
    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error in the proxy; see its logs".to_string(),
            Self::BedrockAccessDenied(_) => "bedrock refused the proxy access to this model; the operator can find \
                                             why in the proxy's log under this request-id (model access, or the \
                                             function's IAM policy)"
                .to_string(),
            other => other.to_string(),
        }
    }

    /// The Anthropic error body, shared by JSON responses and SSE error events.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind) = self.status_and_type();
        serde_json::json!({
            "type": "error",
            "error": { "type": kind, "message": self.public_message() }
        })
    }

    /// A complete SSE `event: error` frame, for errors after the stream has begun.
    pub fn sse_event(&self) -> Bytes {
        Bytes::from(format!("event: error\ndata: {}\n\n", self.body()))
    }
}

// 529 is Anthropic's overloaded status; it has no constant in `http`.
fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// Rides on an error response from the handler to the request-log layer, so that the log line
/// gets the outcome and the full detail while the caller gets only the public message.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// See [`ProxyError::outcome`].
    pub outcome: Option<&'static str>,
    /// See [`ProxyError::log_detail`].
    pub detail: Option<String>,
    /// The Anthropic `error.type` the caller got (for the metrics).
    pub kind: &'static str,
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        response.extensions_mut().insert(ErrorReport {
            outcome: self.outcome(),
            detail: self.log_detail(),
            kind,
        });
        // Only Bedrock's "later" answers carry retry-after; a dead connection that was
        // already retried is not a reason to ask callers to wait a set time.
        if matches!(self, Self::RateLimited(_) | Self::Overloaded(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if let Self::BudgetRefused(refusal) = &self {
            for (name, value) in &refusal.headers {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(*name, value);
                }
            }
        }
        if matches!(self, Self::Authentication(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Bedrock's exceptions to ours, by the SDK's variant: the one table. Bedrock's message is
/// kept. Exceptions without a row (internal and model errors, variants newer than this SDK)
/// become `Upstream`.
macro_rules! bedrock_exception {
    (ValidationException, $m:expr) => {
        ProxyError::InvalidRequest($m)
    };
    (AccessDeniedException, $m:expr) => {
        ProxyError::BedrockAccessDenied($m)
    };
    (ResourceNotFoundException, $m:expr) => {
        ProxyError::NotFound($m)
    };
    (ThrottlingException, $m:expr) => {
        ProxyError::RateLimited($m)
    };
    (ServiceQuotaExceededException, $m:expr) => {
        ProxyError::RateLimited($m)
    };
    (ModelNotReadyException, $m:expr) => {
        ProxyError::Overloaded($m)
    };
    (ServiceUnavailableException, $m:expr) => {
        ProxyError::Overloaded($m)
    };
    (ModelTimeoutException, $m:expr) => {
        ProxyError::Timeout($m)
    };
}

/// One `From` impl per operation's error enum (and the event stream's), each matching the
/// variants of the table above that its enum has.
macro_rules! from_bedrock_exceptions {
    ($($error:ident { $($variant:ident),* $(,)? })*) => {$(
        impl From<$error> for ProxyError {
            fn from(e: $error) -> Self {
                let message = e.message().unwrap_or_default().to_string();
                match e {
                    $($error::$variant(_) => bedrock_exception!($variant, message),)*
                    other if message.is_empty() => {
                        Self::Upstream(format!("bedrock error {}", other.code().unwrap_or("UnknownError")))
                    }
                    _ => Self::Upstream(message),
                }
            }
        }
    )*};
}

from_bedrock_exceptions! {
    InvokeModelError {
        ValidationException, AccessDeniedException, ResourceNotFoundException, ThrottlingException,
        ServiceQuotaExceededException, ModelNotReadyException, ServiceUnavailableException, ModelTimeoutException,
    }
    InvokeModelWithResponseStreamError {
        ValidationException, AccessDeniedException, ResourceNotFoundException, ThrottlingException,
        ServiceQuotaExceededException, ModelNotReadyException, ServiceUnavailableException, ModelTimeoutException,
    }
    CountTokensError {
        ValidationException, AccessDeniedException, ResourceNotFoundException, ThrottlingException,
        ServiceUnavailableException,
    }
    // Exceptions inside an event stream carry only `{"message"}`; the SDK decodes the variant
    // from the frame's `:exception-type`.
    ResponseStreamError { ValidationException, ThrottlingException, ServiceUnavailableException, ModelTimeoutException }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_exceptions_map_to_anthropic_errors() {
        use aws_sdk_bedrockruntime::types::error as x;
        use InvokeModelError as Op;
        use InvokeModelWithResponseStreamError as Start;
        use ResponseStreamError as Stream;
        let m = || "m".to_string();
        let cases: [(&str, ProxyError, u16, &str); 12] = [
            (
                "ValidationException",
                Op::ValidationException(x::ValidationException::builder().message(m()).build()).into(),
                400,
                "invalid_request_error",
            ),
            (
                "validationException",
                Stream::ValidationException(x::ValidationException::builder().message(m()).build()).into(),
                400,
                "invalid_request_error",
            ),
            (
                "AccessDeniedException",
                Op::AccessDeniedException(x::AccessDeniedException::builder().message(m()).build()).into(),
                403,
                "permission_error",
            ),
            (
                "ResourceNotFoundException",
                Op::ResourceNotFoundException(x::ResourceNotFoundException::builder().message(m()).build()).into(),
                404,
                "not_found_error",
            ),
            (
                "ThrottlingException",
                Op::ThrottlingException(x::ThrottlingException::builder().message(m()).build()).into(),
                429,
                "rate_limit_error",
            ),
            (
                "throttlingException",
                Stream::ThrottlingException(x::ThrottlingException::builder().message(m()).build()).into(),
                429,
                "rate_limit_error",
            ),
            (
                "ServiceQuotaExceededException",
                Op::ServiceQuotaExceededException(x::ServiceQuotaExceededException::builder().message(m()).build())
                    .into(),
                429,
                "rate_limit_error",
            ),
            (
                "ServiceUnavailableException",
                Op::ServiceUnavailableException(x::ServiceUnavailableException::builder().message(m()).build()).into(),
                529,
                "overloaded_error",
            ),
            (
                "ModelNotReadyException",
                Op::ModelNotReadyException(x::ModelNotReadyException::builder().message(m()).build()).into(),
                529,
                "overloaded_error",
            ),
            (
                "ModelTimeoutException",
                Op::ModelTimeoutException(x::ModelTimeoutException::builder().message(m()).build()).into(),
                504,
                "api_error",
            ),
            (
                "ModelStreamErrorException",
                Start::ModelStreamErrorException(x::ModelStreamErrorException::builder().message(m()).build()).into(),
                500,
                "api_error",
            ),
            (
                "InternalServerException",
                Op::InternalServerException(x::InternalServerException::builder().message(m()).build()).into(),
                500,
                "api_error",
            ),
        ];
        for (code, err, status, kind) in cases {
            let (s, k) = err.status_and_type();
            assert_eq!((s.as_u16(), k), (status, kind), "{code}");
        }
    }

    #[test]
    fn validation_keeps_bedrocks_message() {
        let err: ProxyError = InvokeModelError::ValidationException(
            // As the SDK decodes it: the message in the error's metadata too.
            aws_sdk_bedrockruntime::types::error::ValidationException::builder()
                .message("stream: Extra inputs are not permitted")
                .meta(
                    aws_sdk_bedrockruntime::error::ErrorMetadata::builder()
                        .code("ValidationException")
                        .message("stream: Extra inputs are not permitted")
                        .build(),
                )
                .build(),
        )
        .into();
        assert_eq!(err.body()["error"]["message"], "stream: Extra inputs are not permitted");
        assert_eq!(err.body()["type"], "error");
    }

    #[test]
    fn internal_details_are_not_shown_to_callers() {
        let err = ProxyError::Internal("secret detail".into());
        assert!(!err.body().to_string().contains("secret detail"));
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let response = ProxyError::RateLimited("slow down".into()).into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
        let response = ProxyError::Overloaded("busy".into()).into_response();
        assert_eq!(response.status().as_u16(), 529);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn sse_error_events_are_one_complete_frame() {
        let frame = ProxyError::Upstream("cut".into()).sse_event();
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("event: error\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        let data: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
        assert_eq!(data["error"]["type"], "api_error");
    }
}
