//! Errors in the Anthropic API's shape, as Bedrock's Anthropic Messages endpoint (Mantle)
//! answers them: `{"type":"error","error":{"type":...,"message":...}}` with Anthropic's
//! statuses, before the answer or as an SSE `event: error` inside it. Bedrock exceptions
//! (the Runtime side's directives and validation errors) map onto them by one table.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::BedrockError;

/// Anthropic's error types with their statuses (Anthropic API docs, "Errors") and a
/// default message for a directive that names the type itself (`emulator:error=overloaded_error`).
const ANTHROPIC_TYPES: &[(&str, u16, &str)] = &[
    (
        "invalid_request_error",
        400,
        "There was an issue with the format or content of your request.",
    ),
    ("authentication_error", 401, "There's an issue with your API key."),
    (
        "billing_error",
        402,
        "There's an issue with your billing or payment information.",
    ),
    (
        "permission_error",
        403,
        "Your API key does not have permission to use the specified resource.",
    ),
    ("not_found_error", 404, "The requested resource was not found."),
    (
        "request_too_large",
        413,
        "Request exceeds the maximum allowed number of bytes.",
    ),
    ("rate_limit_error", 429, "Your account has hit a rate limit."),
    (
        "api_error",
        500,
        "An unexpected error has occurred internal to Anthropic's systems.",
    ),
    ("timeout_error", 504, "The request timed out while processing."),
    ("overloaded_error", 529, "Overloaded"),
];

/// What Mantle answers where Bedrock Runtime raises each exception. No source defines
/// it; the choices follow the meaning of each pair:
/// - quota and throttling are the caller's rate limit (429 `rate_limit_error`);
/// - `ModelNotReadyException` and `ServiceUnavailableException` are capacity, which
///   Anthropic calls 529 `overloaded_error`;
/// - `ModelTimeoutException` is Anthropic's documented 504 `timeout_error` (the Runtime
///   side's 408 has no Anthropic twin, and 500 would hide that it was a timeout);
/// - model and internal failures are 500 `api_error`.
const EXCEPTION_TYPES: &[(&str, &str)] = &[
    ("ValidationException", "invalid_request_error"),
    ("ServiceQuotaExceededException", "rate_limit_error"),
    ("AccessDeniedException", "permission_error"),
    ("ResourceNotFoundException", "not_found_error"),
    ("ModelTimeoutException", "timeout_error"),
    ("ModelErrorException", "api_error"),
    ("ModelStreamErrorException", "api_error"),
    ("ThrottlingException", "rate_limit_error"),
    ("ModelNotReadyException", "overloaded_error"),
    ("InternalServerException", "api_error"),
    ("ServiceUnavailableException", "overloaded_error"),
];

/// An Anthropic-shaped error: the HTTP status, `error.type` and `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicError {
    /// The HTTP status Anthropic uses for `error_type` (529 for `overloaded_error`).
    pub status: StatusCode,
    /// `error.type`, e.g. `invalid_request_error`.
    pub error_type: String,
    /// `error.message`.
    pub message: String,
}

impl AnthropicError {
    /// An error of a known Anthropic type; its status comes from `ANTHROPIC_TYPES`.
    fn of_type(error_type: &str, message: impl Into<String>) -> Self {
        let status = ANTHROPIC_TYPES
            .iter()
            .find(|(known, _, _)| *known == error_type)
            .map_or(500, |(_, status, _)| *status);
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error_type: error_type.to_owned(),
            message: message.into(),
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::of_type("invalid_request_error", message)
    }

    /// 401 `authentication_error`.
    pub fn authentication(message: impl Into<String>) -> Self {
        Self::of_type("authentication_error", message)
    }

    /// 404 `not_found_error`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of_type("not_found_error", message)
    }

    /// 500 `api_error`: the emulator's own fault, said as such.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::of_type("api_error", message)
    }

    /// The error a directive names: a Bedrock exception, in either case of its first
    /// letter (`ThrottlingException` as in `error=`, `throttlingException` as in
    /// `stream_exception_after=`), mapped by `EXCEPTION_TYPES`; or an Anthropic error
    /// type itself (`overloaded_error`). Anything else is a 500 that names the typo.
    pub fn named(name: &str) -> Self {
        if let Some((known, _, message)) = ANTHROPIC_TYPES.iter().find(|(known, _, _)| *known == name) {
            return Self::of_type(known, *message);
        }
        let mut chars = name.chars();
        let exception: String = chars
            .next()
            .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default();
        Self::from(BedrockError::named(&exception))
    }

    /// The JSON body, also the data of an SSE `event: error`.
    pub fn body(&self) -> Value {
        json!({
            "type": "error",
            "error": { "type": self.error_type, "message": self.message },
        })
    }
}

impl From<BedrockError> for AnthropicError {
    /// Keeps Bedrock's message (a validation message names the field at fault) and
    /// takes the type from `EXCEPTION_TYPES`; an exception missing there is a 500.
    fn from(error: BedrockError) -> Self {
        let error_type = EXCEPTION_TYPES
            .iter()
            .find(|(name, _)| *name == error.name)
            .map_or("api_error", |(_, error_type)| *error_type);
        Self::of_type(error_type, error.message)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
            .headers_mut()
            .insert("x-amzn-requestid", crate::ids::request_id_header());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_and_type(error: &AnthropicError) -> (u16, &str) {
        (error.status.as_u16(), error.error_type.as_str())
    }

    #[test]
    fn every_bedrock_exception_maps_to_an_anthropic_status_and_type() {
        for (name, expected) in [
            ("ValidationException", (400, "invalid_request_error")),
            ("ServiceQuotaExceededException", (429, "rate_limit_error")),
            ("AccessDeniedException", (403, "permission_error")),
            ("ResourceNotFoundException", (404, "not_found_error")),
            ("ModelTimeoutException", (504, "timeout_error")),
            ("ModelErrorException", (500, "api_error")),
            ("ModelStreamErrorException", (500, "api_error")),
            ("ThrottlingException", (429, "rate_limit_error")),
            ("ModelNotReadyException", (529, "overloaded_error")),
            ("InternalServerException", (500, "api_error")),
            ("ServiceUnavailableException", (529, "overloaded_error")),
        ] {
            let error = AnthropicError::named(name);
            assert_eq!(status_and_type(&error), expected, "{name}");
            assert_eq!(error.message, BedrockError::named(name).message, "{name}");
        }
    }

    #[test]
    fn stream_exception_names_and_anthropic_types_are_understood() {
        assert_eq!(
            status_and_type(&AnthropicError::named("throttlingException")),
            (429, "rate_limit_error")
        );
        assert_eq!(
            status_and_type(&AnthropicError::named("modelStreamErrorException")),
            (500, "api_error")
        );
        let overloaded = AnthropicError::named("overloaded_error");
        assert_eq!(status_and_type(&overloaded), (529, "overloaded_error"));
        assert_eq!(overloaded.message, "Overloaded");
    }

    #[test]
    fn unknown_names_fail_loudly() {
        let error = AnthropicError::named("NoSuchException");
        assert_eq!(status_and_type(&error), (500, "api_error"));
        assert!(error.message.contains("NoSuchException"), "{}", error.message);
    }

    #[test]
    fn validation_messages_are_kept() {
        let error = AnthropicError::from(BedrockError::validation(
            "messages.1.output_config: Extra inputs are not permitted",
        ));
        assert_eq!(
            error.body(),
            json!({ "type": "error", "error": {
                "type": "invalid_request_error",
                "message": "messages.1.output_config: Extra inputs are not permitted"
            } })
        );
        assert_eq!(error.status, 400);
    }
}
